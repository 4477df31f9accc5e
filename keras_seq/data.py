"""Data loading and tf.data pipelines for translation and language modelling.

Loading:

- `resolve_data(spec)`: `"bundled:fra-eng"`, `"bundled:anna-karenina"` or a
  file path -> the path of an existing file.
- `load_pairs(spec, max_pairs=None)`: `source<TAB>target` lines (plain or
  gzip) -> `[(source, target), ...]`.
- `load_text(spec)`: a whole text file (plain or gzip) -> `str`.
- `load_split_file(spec, "valid" | "test", pairs=True)`: a separate
  validation or test file, read as above, its errors starting with
  "validation data:" / "test data:".

Every problem with a data file raises `keras_seq.errors.DataError` with a
one-line message naming the file (and the line or byte at fault).

Splitting: `train_val_test_split(items, ...)` (any list) and
`split_pairs(pairs, ...)` (keeps all translations of one source sentence in
the same split, so no test source is seen in training).

Pipelines (token ids in, `tf.data.Dataset` out; all ids int32, 0 = PAD):

- `make_pair_dataset(source_ids, target_ids, batch_size, ...)` yields
  `({"source": [B, S], "target_in": [B, T]}, target_out [B, T])` with
  `source = src + EOS`, `target_in = BOS + tgt`, `target_out = tgt + EOS`,
  batched by similar length (bucketing) to keep padding small.
- `make_lm_dataset(token_ids, batch_size, seq_len, doc_starts=None)` yields
  `({"tokens": [B, T], "reset": bool [B]}, labels [B, T])` for truncated
  backpropagation through time (stateful training), in stream order.
- `padding_fraction(dataset)` measures the share of PAD slots.
"""

import gzip
import itertools
import logging
import os
import zlib

import numpy as np
import tensorflow as tf

from keras_seq import datasets
from keras_seq.errors import DataError
from keras_seq.text import BOS_ID
from keras_seq.text import EOS_ID
from keras_seq.text import PAD_ID

logger = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled:"
# Name -> file in keras_seq/datasets/ (see keras_seq/datasets/README.md).
BUNDLED_DATA = datasets.BUNDLED_DATA
_DATASETS_DIR = datasets.DATASETS_DIR
_GZIP_MAGIC = b"\x1f\x8b"


# ----------------------------------------------------------------------------
# Loading.


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


# ----------------------------------------------------------------------------
# Translation pipeline.


def _as_id_lists(sequences, name):
    """Validates a list of id sequences -> (flat int32 array, lengths)."""
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"`{name}` must be a list of id lists")
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    try:
        flat = np.fromiter(
            itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum())
        )
    except (TypeError, ValueError) as e:
        raise TypeError(f"`{name}` must hold integer token ids ({e})") from None
    if flat.size:
        low = int(flat.min())
        if low <= PAD_ID:
            first_bad = int(np.argmax(flat <= PAD_ID))
            row = int(np.searchsorted(np.cumsum(lengths), first_bad, side="right"))
            raise ValueError(
                f"`{name}[{row}]` holds id {low}: ids must be >= 1 "
                f"(0 is PAD and is added by the pipeline)"
            )
        if int(flat.max()) >= 2**31:
            raise ValueError(f"`{name}` holds an id >= 2**31")
    return flat.astype(np.int32), lengths


def filter_by_length(source_ids, target_ids, max_source_length=None,
                     max_target_length=None):
    """Drops pairs that would exceed the length limits once EOS/BOS is added.

    A pair is kept when `len(src) + 1 <= max_source_length` and
    `len(tgt) + 1 <= max_target_length` (the +1 is the EOS of `source` and the
    BOS/EOS of `target_in`/`target_out`), so the limits are the widths of the
    batched tensors. `None` means no limit.

    Returns:
        `(kept_source_ids, kept_target_ids, num_dropped)`.
    """
    if len(source_ids) != len(target_ids):
        raise ValueError(
            f"source_ids and target_ids differ in length: "
            f"{len(source_ids)} != {len(target_ids)}"
        )
    for name, limit in (("max_source_length", max_source_length),
                        ("max_target_length", max_target_length)):
        bad = isinstance(limit, bool) or not isinstance(limit, int) or limit < 2
        if limit is not None and bad:
            raise ValueError(f"{name} must be an int >= 2 or None, got {limit!r}")
    if max_source_length is None and max_target_length is None:
        return list(source_ids), list(target_ids), 0
    kept_src, kept_tgt = [], []
    for src, tgt in zip(source_ids, target_ids):
        if max_source_length is not None and len(src) + 1 > max_source_length:
            continue
        if max_target_length is not None and len(tgt) + 1 > max_target_length:
            continue
        kept_src.append(src)
        kept_tgt.append(tgt)
    return kept_src, kept_tgt, len(source_ids) - len(kept_src)


def _add_special(source, target):
    eos = tf.constant([EOS_ID], tf.int32)
    bos = tf.constant([BOS_ID], tf.int32)
    features = {
        "source": tf.concat([source, eos], axis=0),
        "target_in": tf.concat([bos, target], axis=0),
    }
    return features, tf.concat([target, eos], axis=0)


def _sort_window(features, target_out):
    # features["source"]: [W, S_max]; target_in/target_out: [W, T_max].
    src_len = tf.reduce_sum(tf.cast(features["source"] != PAD_ID, tf.int64), axis=1)
    tgt_len = tf.reduce_sum(tf.cast(target_out != PAD_ID, tf.int64), axis=1)
    # Longer side first, then total length: keeps both sides' padding small.
    key = tf.maximum(src_len, tgt_len) * (1 << 21) + src_len + tgt_len
    order = tf.argsort(key, stable=True)
    features = {k: tf.gather(v, order) for k, v in features.items()}
    return features, tf.gather(target_out, order)


def _trim_padding(features, target_out):
    # Cut the columns that are PAD in every row of this batch.
    def width(x):
        return tf.reduce_max(tf.reduce_sum(tf.cast(x != PAD_ID, tf.int32), axis=1))

    s = width(features["source"])
    t = width(target_out)
    features = {
        "source": features["source"][:, :s],
        "target_in": features["target_in"][:, :t],
    }
    return features, target_out[:, :t]


def make_pair_dataset(source_ids, target_ids, batch_size=None, *, batch_tokens=None,
                      max_source_length=None, max_target_length=None, shuffle=True, seed=0,
                      bucket=True, drop_remainder=False, bucket_window=64):
    """Builds the translation `tf.data.Dataset` from encoded pairs.

    Each element is `({"source": int32 [B, S], "target_in": int32 [B, T]},
    target_out int32 [B, T])`, right-padded with PAD_ID (0), so the mask is
    `ids != 0`; `source = src + [EOS]`, `target_in = [BOS] + tgt`,
    `target_out = tgt + [EOS]`.

    Pairs longer than the limits are dropped (see `filter_by_length`); their
    number is logged (logger `keras_seq.data`) and stored on the dataset as
    `dataset.num_filtered`, with `dataset.num_examples` (pairs kept).
    `dataset.cardinality()` is the number of batches per epoch:
    `ceil(num_examples / batch_size)` (`floor` with `drop_remainder`).

    With `bucket=True` the pairs (shuffled if `shuffle`) are cut into windows
    of `batch_size * bucket_window` pairs, each window is sorted by length
    (the longer of source and target, then their sum) and cut into
    batches, every batch is trimmed to its own longest sequence, and the
    batches are shuffled. With `bucket=False` batches are plain shuffled
    padded batches (to measure what bucketing saves).

    With `batch_tokens` instead of `batch_size`, batches hold a number of
    tokens rather than of pairs: the pairs are grouped by length L (the
    longer side, EOS/BOS included) and a batch of length L holds
    `max(1, batch_tokens // L)` pairs, so short pairs come in larger batches
    and `rows * L <= batch_tokens` (padding included) for every pair that
    fits the budget at all. The batches of one epoch come out in shuffled
    order; there are `sum over L of ceil(pairs of length L / rows(L))`.

    The order is a function of `seed` only (and differs from one epoch to the
    next); `shuffle=False` keeps the input order (sorted within windows when
    bucketing).

    Args:
        source_ids: list of source id lists (no EOS; ids >= 1).
        target_ids: list of target id lists (no BOS/EOS; ids >= 1).
        batch_size: int >= 1, pairs per batch (or give `batch_tokens`).
        batch_tokens: int >= 1, tokens per batch of the longer side, padding
            included (instead of `batch_size`; not with `bucket=False` or
            `drop_remainder`).
        max_source_length: int or None. Max width of `source` (EOS included).
        max_target_length: int or None. Max width of `target_in`/`target_out`.
        shuffle: bool.
        seed: int or None (None: not reproducible).
        bucket: bool. Batch by similar length.
        drop_remainder: bool. Drop the last partial batch (static batch size).
        bucket_window: int. Batches per sorting window.

    Returns:
        A `tf.data.Dataset`.

    Raises:
        DataError: no pair is left after filtering.
        ValueError/TypeError: bad arguments (mismatched lengths, id 0 inside
            a sequence, ...).

    Example:

    >>> ds = make_pair_dataset([[5, 6], [7]], [[8], [9, 10]], batch_size=2,
    ...                        shuffle=False, bucket=False)
    >>> features, target_out = next(iter(ds))
    >>> features["source"].numpy().tolist(), features["target_in"].numpy().tolist()
    ([[5, 6, 3], [7, 3, 0]], [[2, 8, 0], [2, 9, 10]])
    >>> target_out.numpy().tolist()
    [[8, 3, 0], [9, 10, 3]]
    """
    if (batch_size is None) == (batch_tokens is None):
        raise ValueError("give batch_size or batch_tokens (one of them)")
    for name, value in (("batch_size", batch_size), ("batch_tokens", batch_tokens)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if batch_tokens is not None and (drop_remainder or not bucket):
        raise ValueError("batch_tokens groups pairs by length: it takes neither "
                         "drop_remainder nor bucket=False")
    if isinstance(bucket_window, bool) or not isinstance(bucket_window, int) or bucket_window < 1:
        raise ValueError(f"bucket_window must be an int >= 1, got {bucket_window!r}")
    total = len(source_ids)
    source_ids, target_ids, dropped = filter_by_length(
        source_ids, target_ids, max_source_length, max_target_length
    )
    n = len(source_ids)
    if dropped:
        logger.info(
            "make_pair_dataset: dropped %d of %d pairs longer than "
            "max_source_length=%s / max_target_length=%s",
            dropped, total, max_source_length, max_target_length,
        )
    if n == 0:
        raise DataError(
            f"no translation pair to batch: {total} given, {dropped} dropped "
            f"by max_source_length={max_source_length} / "
            f"max_target_length={max_target_length}"
        )
    if drop_remainder and n < batch_size:  # (batch_size is set: see above)
        raise DataError(
            f"only {n} pairs for batch_size={batch_size} with drop_remainder=True"
        )
    src_flat, src_len = _as_id_lists(source_ids, "source_ids")
    tgt_flat, tgt_len = _as_id_lists(target_ids, "target_ids")
    sources = tf.RaggedTensor.from_row_lengths(src_flat, src_len)
    targets = tf.RaggedTensor.from_row_lengths(tgt_flat, tgt_len)
    if batch_tokens is None:
        num_batches = n // batch_size if drop_remainder else -(-n // batch_size)

    ds = tf.data.Dataset.from_tensor_slices((sources, targets))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(_add_special)
    if batch_tokens is not None:
        ds, num_batches = _batch_by_tokens(ds, np.maximum(src_len, tgt_len) + 1, batch_tokens)
    elif bucket:
        window = batch_size * bucket_window
        ds = ds.padded_batch(window, padding_values=PAD_ID)
        ds = ds.map(_sort_window)
        ds = ds.flat_map(
            lambda f, y: tf.data.Dataset.from_tensor_slices((f, y)).batch(
                batch_size, drop_remainder=drop_remainder
            )
        )
        ds = ds.map(_trim_padding)
    if bucket:  # by windows or by tokens: the batches come out grouped, shuffle them
        if shuffle:
            batch_seed = None if seed is None else seed + 1
            ds = ds.shuffle(
                min(num_batches, 4096), seed=batch_seed, reshuffle_each_iteration=True
            )
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    else:
        ds = ds.padded_batch(
            batch_size, padding_values=PAD_ID, drop_remainder=drop_remainder
        )
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.num_filtered = dropped
    ds.num_examples = n
    return ds


def _batch_by_tokens(ds, lengths, batch_tokens):
    """Batches `(features, target_out)` pairs by length; returns `(dataset, num_batches)`.

    `lengths` [n]: each pair's longer side, EOS/BOS included. One bucket per
    length L, `max(1, batch_tokens // L)` pairs a batch; a bucket's last
    batch may be smaller (each bucket's count is fixed, so the number of
    batches is too).
    """
    longest = int(lengths.max())
    lengths_of_buckets = np.arange(1, longest + 1)  # bucket i holds length i + 1
    rows = np.maximum(1, batch_tokens // lengths_of_buckets)
    counts = np.bincount(lengths - 1, minlength=longest)
    num_batches = int(np.sum(-(-counts // rows)))

    def length(features, target_out):
        return tf.maximum(tf.shape(features["source"])[0], tf.shape(target_out)[0])

    ds = ds.bucket_by_sequence_length(
        length, bucket_boundaries=list(range(2, longest + 1)),
        bucket_batch_sizes=[int(r) for r in rows], padding_values=PAD_ID)
    return ds, num_batches


def padding_fraction(dataset, max_batches=None):
    """Share of PAD (0) slots among all integer tensor slots of a dataset.

    For translation batches this counts `source`, `target_in` and
    `target_out`; boolean tensors (the LM `reset` flags) are ignored.

    Args:
        dataset: a `tf.data.Dataset` of (features, labels) batches.
        max_batches: int or None. Only look at the first batches.

    Returns:
        float in [0, 1].
    """
    pad = 0
    slots = 0
    if max_batches is not None:
        dataset = dataset.take(max_batches)
    for element in dataset:
        for x in tf.nest.flatten(element):
            if x.dtype.is_integer:
                x = x.numpy()
                pad += int(np.count_nonzero(x == PAD_ID))
                slots += x.size
    if slots == 0:
        raise ValueError("padding_fraction: the dataset yielded no integer tensor")
    return pad / slots


# ----------------------------------------------------------------------------
# Language-model (truncated BPTT) pipeline.


def concat_documents(documents):
    """Concatenates encoded documents into one stream.

    Args:
        documents: list of id lists (e.g. `tokenizer.encode(texts,
            add_eos=True)`, so each document ends with EOS).

    Returns:
        `(token_ids, doc_starts)`: int32 array [N] and int64 array of the
        positions where each non-empty document begins, for
        `make_lm_dataset`.
    """
    flat, lengths = _as_id_lists(documents, "documents")
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0)
    return flat, starts[lengths > 0].astype(np.int64)


def lm_batches_per_epoch(num_tokens, batch_size, seq_len):
    """Number of batches `make_lm_dataset` yields for a stream of that size.

    `(num_tokens // batch_size - 1) // seq_len` (0 when too short).
    """
    row_len = num_tokens // batch_size
    return max(0, (row_len - 1) // seq_len)


def make_lm_dataset(token_ids, batch_size, seq_len, *, doc_starts=None):
    """Builds the truncated-BPTT language-model `tf.data.Dataset`.

    The stream of `N` tokens is cut into `batch_size` contiguous rows of
    `L = N // batch_size` tokens (row `r` is `token_ids[r*L:(r+1)*L]`), and
    each row into windows of `seq_len`. Batch `i` is

        tokens[r] = row_r[i*seq_len : (i+1)*seq_len]
        labels[r] = row_r[i*seq_len + 1 : (i+1)*seq_len + 1]   (next tokens)

    so row `r` of batch `i+1` starts exactly where row `r` of batch `i`
    ended: carry the recurrent state of row `r` from one batch to the next.
    There are `lm_batches_per_epoch(N, batch_size, seq_len)` batches (also
    `dataset.cardinality()` and `dataset.num_batches`), all full (static
    shapes [batch_size, seq_len]); the tokens at the end of each row that do
    not fill a window (and the last `N % batch_size`) are not used. No
    shuffling: stateful training needs this order.

    `reset[r]` (bool [B]) is True for every row of the first batch and when a
    document begins exactly at the first token of row `r`'s window: the
    trainer then zeroes row `r`'s state before the batch. A document boundary
    that falls *inside* a window does not reset anything: the model reads
    across it, with the end of the previous document as context, and the
    label of the previous document's last token is the next document's first
    token. End every document with EOS (`concat_documents` of
    `encode(..., add_eos=True)`) so the model learns that a new text follows
    EOS.

    Args:
        token_ids: 1-D int sequence (list, NumPy array or tensor) of the
            whole corpus.
        batch_size: int >= 1, rows per batch.
        seq_len: int >= 1, tokens per window.
        doc_starts: optional iterable of positions in `token_ids` where a
            document begins.

    Returns:
        A `tf.data.Dataset` of `({"tokens": int32 [B, T], "reset": bool [B]},
        labels int32 [B, T])`.

    Raises:
        DataError: the stream is too short for one batch.

    Example:

    >>> ds = make_lm_dataset(list(range(1, 22)), batch_size=2, seq_len=3)
    >>> for features, labels in ds:
    ...     print(features["tokens"].numpy().tolist(),
    ...           features["reset"].numpy().tolist(), labels.numpy().tolist())
    [[1, 2, 3], [11, 12, 13]] [True, True] [[2, 3, 4], [12, 13, 14]]
    [[4, 5, 6], [14, 15, 16]] [False, False] [[5, 6, 7], [15, 16, 17]]
    [[7, 8, 9], [17, 18, 19]] [False, False] [[8, 9, 10], [18, 19, 20]]
    """
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(token_ids, (tf.Tensor, tf.Variable)):
        token_ids = token_ids.numpy()
    ids = np.asarray(token_ids)
    if ids.ndim != 1:
        raise ValueError(f"token_ids must be 1-D, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"token_ids must be integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int32)
    n = ids.size
    num_batches = lm_batches_per_epoch(n, batch_size, seq_len)
    if num_batches < 1:
        raise DataError(
            f"a stream of {n} tokens is too short for batch_size={batch_size}, "
            f"seq_len={seq_len}: need at least {batch_size * (seq_len + 1)} tokens"
        )
    row_len = n // batch_size
    rows = ids[: batch_size * row_len].reshape(batch_size, row_len)
    used = num_batches * seq_len
    # [B, num_batches, T] -> [num_batches, B, T]
    tokens = rows[:, :used].reshape(batch_size, num_batches, seq_len).transpose(1, 0, 2)
    labels = rows[:, 1 : used + 1].reshape(batch_size, num_batches, seq_len).transpose(1, 0, 2)

    is_start = np.zeros(n, dtype=bool)
    if doc_starts is not None:
        starts = np.asarray(list(doc_starts), dtype=np.int64)
        if starts.size:
            if starts.min() < 0 or starts.max() >= n:
                raise ValueError(
                    f"doc_starts must lie in [0, {n}), got values from "
                    f"{starts.min()} to {starts.max()}"
                )
            is_start[starts] = True
    # Position in the stream of each window's first token: [num_batches, B].
    window_start = (
        np.arange(batch_size)[None, :] * row_len + np.arange(num_batches)[:, None] * seq_len
    )
    reset = is_start[window_start]
    reset[0, :] = True

    ds = tf.data.Dataset.from_tensor_slices(
        (
            {"tokens": np.ascontiguousarray(tokens), "reset": reset},
            np.ascontiguousarray(labels),
        )
    )
    ds.num_batches = num_batches
    return ds
