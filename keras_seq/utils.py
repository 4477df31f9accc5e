"""Small helpers shared across keras_seq (one home, one copy each).

Nothing here imports TensorFlow at module import time, so the CLI can use these
before deciding whether TensorFlow is needed.

Example:

>>> from keras_seq import utils
>>> utils.is_int(3), utils.is_int(True)
(True, False)
>>> utils.right_pad([[5, 6, 7], [8]]).tolist()
[[5, 6, 7], [8, 0, 0]]
>>> utils.one_line(ValueError("first line\\nsecond line"))
'first line'
"""

import numbers

import numpy as np

__all__ = [
    "check_ids",
    "check_positive_int",
    "has_gpu",
    "is_int",
    "is_number",
    "one_line",
    "right_pad",
]


def has_gpu():
    """Whether TensorFlow sees a GPU (imports TensorFlow)."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def is_int(value):
    """True for Python/NumPy integers, False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """True for real numbers (int or float, NumPy included), False for bools."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(name, value, minimum=1, owner=None):
    """Returns `int(value)` or raises `ValueError` naming `name` (and `owner`).

    Args:
        name: the argument's name, shown in backticks.
        value: the value to check.
        minimum: the smallest accepted value.
        owner: optional class or function name prefixed to the message.
    """
    if not is_int(value) or value < minimum:
        prefix = f"{owner}: " if owner else ""
        raise ValueError(
            f"{prefix}`{name}` must be an int >= {minimum}; received {value!r}."
        )
    return int(value)


def one_line(error, limit=None):
    """The first non-blank line of an error (or text), for one-line messages.

    Args:
        error: an exception or a string.
        limit: optional maximum length; longer text is cut with "...".

    Returns:
        A string without newlines; the exception's type name when it has no
        message.
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__ if isinstance(error, BaseException) else ""
    text = lines[0]
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def right_pad(rows, pad_id=0, dtype=np.int32, width=None):
    """Stacks variable-length id lists into a right-padded `[N, width]` array.

    Args:
        rows: a sequence of int sequences.
        pad_id: the value written after each row's end.
        dtype: the NumPy dtype of the result.
        width: the number of columns; defaults to the longest row (at least 1).

    Returns:
        A NumPy array of shape `[len(rows), width]`.
    """
    rows = [list(row) for row in rows]
    if width is None:
        width = max([len(row) for row in rows] + [1])
    out = np.full((len(rows), width), pad_id, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row[:width]
    return out


def check_ids(ids, name, rank, owner=None, max_length=None):
    """Converts token ids to an int32 tensor, checking rank, dtype and length.

    Args:
        ids: integer ids, `[N]` (rank 1) or `[N, T]` (rank 2).
        name: the argument's name for messages.
        rank: the expected rank, 1 or 2.
        owner: optional class name prefixed to messages.
        max_length: optional largest static `T` accepted (rank 2).

    Returns:
        The ids as an int32 tensor.

    Raises:
        TypeError: non-integer dtype.
        ValueError: wrong rank, or longer than `max_length`.
    """
    import keras  # Late import: keeps this module free of TensorFlow at import.
    from keras import ops

    prefix = f"{owner}: " if owner else ""
    ids = ops.convert_to_tensor(ids)
    if len(ids.shape) != rank:
        expected = "[batch, time]" if rank == 2 else "[batch]"
        raise ValueError(
            f"{prefix}`{name}` must be int token ids of shape {expected}; "
            f"received shape {tuple(ids.shape)}."
        )
    dtype = keras.backend.standardize_dtype(ids.dtype)
    if not (dtype.startswith("int") or dtype.startswith("uint")):
        raise TypeError(
            f"{prefix}`{name}` must be integer token ids; received dtype {dtype}."
        )
    if (
        max_length is not None
        and rank == 2
        and ids.shape[1] is not None
        and ids.shape[1] > max_length
    ):
        raise ValueError(
            f"{prefix}`{name}` has length {ids.shape[1]}, longer than the "
            f"model's max_length={max_length}."
        )
    return ops.cast(ids, "int32")
