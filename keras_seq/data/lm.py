"""The language-model pipeline: a token stream -> truncated-BPTT batches.

`make_lm_dataset(token_ids, batch_size, seq_len, doc_starts=None)` yields
`({"tokens": [B, T], "reset": bool [B]}, labels [B, T])` in stream order,
for stateful training; `concat_documents` builds the stream and its
document starts.
"""

import numpy as np
import tensorflow as tf

from keras_seq.data.pairs import _as_id_lists
from keras_seq.errors import DataError


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
