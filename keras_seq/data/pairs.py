"""The translation pipeline: id pairs -> bucketed `tf.data` batches.

`make_pair_dataset(source_ids, target_ids, batch_size | batch_tokens=...)`
yields `({"source": [B, S], "target_in": [B, T]}, target_out [B, T])` with
`source = src + EOS`, `target_in = BOS + tgt`, `target_out = tgt + EOS`
(int32, 0 = PAD), batched by similar length to keep padding small;
`padding_fraction(dataset)` measures the share of PAD slots.
"""

import itertools
import logging

import numpy as np
import tensorflow as tf

from keras_seq.errors import DataError
from keras_seq.text import BOS_ID
from keras_seq.text import EOS_ID
from keras_seq.text import PAD_ID

logger = logging.getLogger("keras_seq.data")


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
