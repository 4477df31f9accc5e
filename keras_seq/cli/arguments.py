"""Argument types of `keras-seq`: each checks one value and says what was wrong.

Each takes the text of one flag and returns its value, or raises
`argparse.ArgumentTypeError` with a message argparse prints as
`keras-seq: error: argument --FLAG: <message>` (exit status 2). Nothing here
imports TensorFlow.

Example:

>>> positive_int("3"), probability("0.5")
(3, 0.5)
"""

import argparse
from pathlib import Path

__all__ = [
    "at_least_two",
    "bundled_names",
    "data_spec",
    "dropout_rate",
    "integer",
    "nonnegative_float",
    "nonnegative_int",
    "positive_float",
    "positive_int",
    "precision_mode",
    "probability",
    "unit_interval",
    "utf8_argument",
    "worker_addresses",
]


def integer(text):
    """Any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text):
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text):
    """An integer >= 1."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def at_least_two(text):
    """An integer >= 2 (e.g. the checkpoints to average)."""
    value = integer(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text!r}")
    return value


def nonnegative_int(text):
    """An integer >= 0."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def positive_float(text):
    """A number > 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonnegative_float(text):
    """A number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def probability(text):
    """A number in (0, 1]."""
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def unit_interval(text):
    """A number in [0, 1]."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def dropout_rate(text):
    """A number in [0, 1)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def precision_mode(text):
    """`--mixed-precision` value: "on" (True), "off" (False) or "auto"."""
    modes = {"on": True, "off": False, "auto": "auto"}
    if text not in modes:
        raise argparse.ArgumentTypeError(f"must be on, off or auto, got {text!r}")
    return modes[text]


def bundled_names():
    """Names usable as `bundled:NAME` (files shipped in keras_seq/datasets)."""
    from keras_seq.datasets import BUNDLED_DATA

    return sorted(BUNDLED_DATA)


def data_spec(text):
    """`bundled:NAME` with a known NAME, or an existing file (as `keras_seq.data.resolve_data`)."""
    if not text:
        raise argparse.ArgumentTypeError("must be a file path or bundled:NAME, got an empty string")
    if text.startswith("bundled:"):
        name = text[len("bundled:") :]
        names = bundled_names()
        if name not in names:
            raise argparse.ArgumentTypeError(
                f"unknown bundled data set {name!r} (available: {', '.join(names) or 'none'})"
            )
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"data path {text} is a directory, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"data file {text} does not exist")
    return str(path)


def utf8_argument(name, text):
    """Returns `text`, an argument of the command line, if it is valid UTF-8.

    Python decodes undecodable bytes of `argv` to lone surrogates
    (surrogateescape); such an argument is refused naming it.

    Raises:
        InputError: one line naming the argument and the byte.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raw = text[e.start:e.end].encode("utf-8", "surrogateescape")
        from keras_seq import errors

        raise errors.InputError(
            f"{name} is not valid UTF-8 (byte 0x{raw[:1].hex()} at character {e.start + 1}); "
            "pass UTF-8 text") from None
    return text


def worker_addresses(text):
    """`host:port,host:port`: the workers of a multi-worker run, as a list (worker 0 first).

    The addresses are checked by `keras_seq.training.multi_worker`, as the
    library checks them.
    """
    from keras_seq.training.multi_worker import check_worker_addresses  # no TensorFlow

    workers = [w.strip() for w in text.split(",")]
    if not any(workers):
        raise argparse.ArgumentTypeError(f"expected host:port,host:port, got {text!r}")
    try:
        return check_worker_addresses(workers)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
