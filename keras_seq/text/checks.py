"""Input checks of the tokenizers' Python API."""

import numpy as np
import tensorflow as tf

from keras_seq.text.vocabulary import RESERVED_TOKENS


def _check_texts(texts, what="texts"):
    """Returns `texts` as a list of str, or raises TypeError."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"`{what}` must be a list of strings, got a single "
            f"{type(texts).__name__}; wrap it in a list: [{texts!r:.40}]"
        )
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(
            f"`{what}` must be a list of strings, got {type(texts).__name__}"
        ) from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"`{what}[{i}]` must be a str, got {type(text).__name__}: "
                f"{text!r:.40}"
            )
    return texts


def _check_string_tensor(strings, name):
    strings = tf.convert_to_tensor(strings)
    if strings.dtype != tf.string:
        raise TypeError(f"`{name}` must be a tf.string tensor, got {strings.dtype}")
    if strings.shape.rank is not None and strings.shape.rank != 1:
        raise ValueError(
            f"`{name}` must have shape [N] (a batch of strings), got {strings.shape}"
        )
    return strings


def _to_str(value):
    return value.decode("utf-8")


def _ids_to_array(ids_batch):
    """A list of id lists or an int array -> int32 numpy [N, T], 0-padded."""
    if isinstance(ids_batch, (tf.Tensor, tf.RaggedTensor)):
        if isinstance(ids_batch, tf.RaggedTensor):
            ids_batch = ids_batch.to_tensor()
        ids_batch = ids_batch.numpy()
    if isinstance(ids_batch, np.ndarray):
        if ids_batch.ndim != 2:
            raise ValueError(f"ids must have shape [N, T], got {ids_batch.shape}")
        if not np.issubdtype(ids_batch.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {ids_batch.dtype}")
        return ids_batch.astype(np.int64)
    if isinstance(ids_batch, (str, bytes)) or not hasattr(ids_batch, "__iter__"):
        raise TypeError(
            f"ids_batch must be a list of id lists, got {type(ids_batch).__name__}"
        )
    rows = list(ids_batch)
    width = 0
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
            raise TypeError(
                f"ids_batch[{i}] must be a list of ints, got {type(row).__name__}"
            )
        row = list(row)
        for v in row:
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(
                    f"ids_batch[{i}] holds a non-integer: {v!r} "
                    f"({type(v).__name__})"
                )
        rows[i] = row
        width = max(width, len(row))
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _check_cap(max_tokens, min_frequency):
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise TypeError(f"max_tokens must be an int or None, got {max_tokens!r}")
        if max_tokens <= len(RESERVED_TOKENS):
            raise ValueError(
                f"max_tokens counts the {len(RESERVED_TOKENS)} reserved tokens "
                f"and must be > {len(RESERVED_TOKENS)}, got {max_tokens}"
            )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int):
        raise TypeError(f"min_frequency must be an int, got {min_frequency!r}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
