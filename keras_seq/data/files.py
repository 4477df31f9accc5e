"""Data files: bundled data sets, TSV pairs and text (plain or gzip), splits.

- `resolve_data(spec)`: `"bundled:fra-eng"`, `"bundled:anna-karenina"` or a
  file path -> the path of an existing file.
- `load_pairs(spec, max_pairs=None)`: `source<TAB>target` lines (plain or
  gzip) -> `[(source, target), ...]`.
- `load_text(spec)`: a whole text file (plain or gzip) -> `str`.
- `load_split_file(spec, "valid" | "test", pairs=True)`: a separate
  validation or test file, read as above, its errors starting with
  "validation data:" / "test data:".
- `train_val_test_split(items, ...)` (any list) and `split_pairs(pairs, ...)`
  (keeps all translations of one source sentence in the same split, so no
  test source is seen in training).

Every problem with a data file raises `keras_seq.errors.DataError` with a
one-line message naming the file (and the line or byte at fault).
"""

import gzip
import os
import zlib

import numpy as np

from keras_seq import datasets
from keras_seq.errors import DataError

BUNDLED_PREFIX = "bundled:"
# Name -> file in keras_seq/datasets/ (see keras_seq/datasets/README.md).
BUNDLED_DATA = datasets.BUNDLED_DATA
_DATASETS_DIR = datasets.DATASETS_DIR
_GZIP_MAGIC = b"\x1f\x8b"


def resolve_data(spec):
    """Turns a data specification into the path of an existing file.

    Args:
        spec: `"bundled:<name>"` for a data set shipped with keras_seq
            (`"bundled:fra-eng"`, `"bundled:anna-karenina"`), or a file path
            (str or `os.PathLike`).

    Returns:
        str, the file's path.

    Raises:
        DataError: unknown bundled name (the message lists the known ones),
            or no such file.

    Example:

    >>> os.path.basename(resolve_data("bundled:fra-eng"))
    'fra-eng.tsv.gz'
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(
            f"data spec must be a str or a path, got {type(spec).__name__}"
        )
    if not spec.strip():
        raise DataError("empty data spec: give a file path or bundled:<name>")
    if spec.startswith(BUNDLED_PREFIX):
        name = spec[len(BUNDLED_PREFIX) :]
        if name not in BUNDLED_DATA:
            known = ", ".join(BUNDLED_PREFIX + n for n in sorted(BUNDLED_DATA))
            raise DataError(f"unknown bundled data set {name!r}; known: {known}")
        path = os.path.join(_DATASETS_DIR, BUNDLED_DATA[name])
        if not os.path.isfile(path):  # a broken installation
            raise DataError(f"bundled data set {name!r} is missing: no such file: {path}")
        return path
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        raise DataError(f"data path is a directory, not a file: {spec}")
    if not os.path.isfile(path):
        raise DataError(f"cannot read data: no such file: {spec}")
    return path


def _read_text_file(path):
    """Reads a UTF-8 text file (plain or gzip) -> str with "\\n" line ends."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    compressed = raw[:2] == _GZIP_MAGIC
    if compressed:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: not a valid gzip file ({e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        where = "decompressed byte" if compressed else "byte"
        raise DataError(
            f"{path} is not UTF-8: invalid byte 0x{raw[e.start]:02x} at line "
            f"{line}, column {column} ({where} offset {e.start}); "
            f"re-save the file as UTF-8"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"{path} is empty")
    return text


def load_text(spec):
    """Loads a whole text file (UTF-8, plain or gzip).

    Line ends are normalized to "\\n" (CRLF and CR are converted) and a UTF-8
    byte-order mark is dropped.

    Args:
        spec: a file path or `"bundled:anna-karenina"` (see `resolve_data`).

    Returns:
        str.

    Raises:
        DataError: missing file, unknown bundled name, empty file, not UTF-8
            (the message gives the line, column and byte offset).

    Example:

    >>> text = load_text("bundled:anna-karenina")
    >>> text[:9]
    'Chapter 1'
    """
    return _read_text_file(resolve_data(spec))


def load_pairs(spec, max_pairs=None):
    """Loads `source<TAB>target` sentence pairs (UTF-8, plain or gzip).

    Columns after the second are ignored, blank lines are skipped, source and
    target are stripped of surrounding whitespace, CRLF line ends work.

    Args:
        spec: a file path or `"bundled:fra-eng"` (see `resolve_data`).
        max_pairs: int or None. Keep only the first `max_pairs` pairs.

    Returns:
        list of `(source, target)` tuples of str, in file order.

    Raises:
        DataError: missing file, unknown bundled name, empty file, not UTF-8,
            a line with no tab or with an empty source or target (the
            message gives the line number).

    Example:

    >>> pairs = load_pairs("bundled:fra-eng", max_pairs=2)
    >>> pairs
    [('Hi.', 'Salut !'), ('Run!', 'Courez\\u202f!')]
    """
    if max_pairs is not None:
        if isinstance(max_pairs, bool) or not isinstance(max_pairs, int):
            raise TypeError(f"max_pairs must be an int or None, got {max_pairs!r}")
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    path = resolve_data(spec)
    text = _read_text_file(path)
    pairs = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(
                f"{path}: line {number} has no tab (expected "
                f"source<TAB>target): {line[:60]!r}"
            )
        source, target = fields[0].strip(), fields[1].strip()
        if not source or not target:
            side = "source" if not source else "target"
            raise DataError(f"{path}: line {number} has an empty {side}")
        pairs.append((source, target))
        if max_pairs is not None and len(pairs) >= max_pairs:
            break
    return pairs


SPLIT_FILE_ROLES = {"valid": "validation", "test": "test"}


def load_split_file(spec, split, *, pairs=True):
    """Loads a separate validation or test file, its errors naming the split.

    The file gets the checks of `load_pairs` (`pairs=True`) or `load_text`;
    a `DataError` is re-raised with the split in front, so a user who gave
    a training file and a validation file knows which one is at fault.

    Args:
        spec: a file path or `"bundled:NAME"` (see `resolve_data`).
        split: "valid" or "test".
        pairs: read `source<TAB>target` pairs (True) or a whole text.

    Returns:
        list of `(source, target)` (`pairs=True`) or str.

    Raises:
        DataError: missing file, empty file, not UTF-8, (pairs) a line with
            no tab or an empty side; the message starts with
            "validation data:" or "test data:" and names the file and line.

    Example:

    >>> load_split_file("no-such.tsv", "valid")
    Traceback (most recent call last):
    ...
    keras_seq.errors.DataError: validation data: cannot read data: no such file: no-such.tsv
    """
    spec = split_file_spec(spec, split)
    try:
        return load_pairs(spec) if pairs else load_text(spec)
    except DataError as e:
        raise DataError(f"{SPLIT_FILE_ROLES[split]} data: {e}") from None


def split_file_spec(spec, split):
    """Checks a validation or test file's spec; returns it as a str (as config.json keeps it).

    Args:
        spec: a file path (str or `os.PathLike`) or `"bundled:NAME"`.
        split: "valid" or "test".

    Returns:
        str, `spec` itself (not resolved: a relative path stays relative).

    Raises:
        DataError: an empty spec, an unknown bundled name, no such file (the
            message starts with "validation data:" / "test data:").
        TypeError: `spec` is not a str or path.
    """
    if split not in SPLIT_FILE_ROLES:
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"{split}_data must be a str or a path, got {type(spec).__name__}")
    try:
        resolve_data(spec)
    except DataError as e:
        raise DataError(f"{SPLIT_FILE_ROLES[split]} data: {e}") from None
    return spec


# ----------------------------------------------------------------------------
# Splits.


def _check_fractions(val_fraction, test_fraction):
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{name} must be a float, got {value!r}")
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1, got "
            f"{val_fraction} + {test_fraction}"
        )


def train_val_test_split(items, val_fraction=0.05, test_fraction=0.05, seed=0):
    """Splits a list into disjoint train / validation / test lists.

    Which items go where is a seeded random choice (NumPy `default_rng`);
    each returned list keeps the input order. The validation and test sets
    get `round(n * fraction)` items each.

    Args:
        items: a list (or any sequence).
        val_fraction: float in [0, 1).
        test_fraction: float in [0, 1); `val_fraction + test_fraction < 1`.
        seed: int. Same seed, same split.

    Returns:
        `(train, val, test)`, three lists.

    Example:

    >>> train, val, test = train_val_test_split(list(range(20)), 0.1, 0.1)
    >>> len(train), len(val), len(test)
    (16, 2, 2)
    """
    _check_fractions(val_fraction, test_fraction)
    items = list(items)
    n = len(items)
    n_val = int(round(n * val_fraction))
    n_test = int(round(n * test_fraction))
    order = np.random.default_rng(seed).permutation(n)
    test_idx = np.sort(order[:n_test])
    val_idx = np.sort(order[n_test : n_test + n_val])
    train_idx = np.sort(order[n_test + n_val :])
    return (
        [items[i] for i in train_idx],
        [items[i] for i in val_idx],
        [items[i] for i in test_idx],
    )


def split_pairs(pairs, val_fraction=0.05, test_fraction=0.05, seed=0):
    """Splits translation pairs, keeping equal sources in the same split.

    A source sentence with several translations ("Go now." -> "Va,
    maintenant." / "Allez-y maintenant.") has all its pairs in one split,
    so validation/test sources are never seen in training. Source groups are
    assigned in a seeded random order until each held-out split has at least
    `round(n * fraction)` pairs.

    Args:
        pairs: list of `(source, target)`.
        val_fraction, test_fraction, seed: as in `train_val_test_split`.

    Returns:
        `(train, val, test)`, lists of pairs in input order.
    """
    _check_fractions(val_fraction, test_fraction)
    pairs = list(pairs)
    groups = {}
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) < 2:
            raise TypeError(f"pairs[{i}] must be a (source, target) pair, got {pair!r}")
        groups.setdefault(pair[0], []).append(i)
    group_list = list(groups.values())
    order = np.random.default_rng(seed).permutation(len(group_list))
    n = len(pairs)
    wanted = [int(round(n * test_fraction)), int(round(n * val_fraction))]
    chosen = [[], []]  # test, val
    split = 0
    for g in order:
        while split < 2 and len(chosen[split]) >= wanted[split]:
            split += 1
        if split == 2:
            break
        chosen[split].extend(group_list[g])
    held_out = set(chosen[0]) | set(chosen[1])
    test = [pairs[i] for i in sorted(chosen[0])]
    val = [pairs[i] for i in sorted(chosen[1])]
    train = [pair for i, pair in enumerate(pairs) if i not in held_out]
    return train, val, test

