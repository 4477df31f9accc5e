"""In-graph checks of the serving inputs, with messages that name the problem.

Every check is a `tf.debugging.Assert` that runs before anything depending on
the checked tensor, and fails with the signature's name, what was checked, the
batch rows at fault and the problem:

    assertion failed: [generate: prompts at batch index] [1] [are empty ...]

tf2onnx drops assertions, so the ONNX graphs carry none of these checks.

Example:

```python
ids = validate_ids(ids, "translate_ids", "source_ids rows", vocab_size=40,
                   from_text=False, max_tokens=10, max_note=" (EOS included)")
```
"""

import tensorflow as tf

from keras_seq.text import PAD_ID
from keras_seq.text import UNK_ID

__all__ = ["assert_no_rows", "validate_ids", "validate_tokens"]


def assert_no_rows(bad_rows_mask, fn_name, what, problem):
    """An Assert op that fails, naming the rows, when any row is bad.

    Args:
        bad_rows_mask: bool `[N]`, True for the rows at fault.
        fn_name: the signature's name, first in the message.
        what: what the rows are (`"prompts"`, `"source_ids rows"`).
        problem: what is wrong with them (`"are empty"`).

    Returns:
        The Assert op (for `tf.control_dependencies`).
    """
    rows = tf.where(bad_rows_mask)[:, 0]
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad_rows_mask)),
        [f"{fn_name}: {what} at batch index", rows, problem],
        summarize=20,
    )


def validate_ids(
    ids,
    fn_name,
    what,
    vocab_size,
    *,
    from_text,
    max_tokens=None,
    max_note="",
    check_unknown=True,
):
    """Checks int32 ids `[N, T]` (right-padded with 0); returns them, guarded.

    Ids that come from text skip the range and padding checks (the tokenizer
    guarantees both). `[N, 0]` ids get one padding column, so an empty batch
    flows through the model (N = 0 gives empty outputs) and empty rows fail
    the emptiness check.

    Args:
        ids: int32 `[N, T]`.
        fn_name: the signature's name, for the messages.
        what: what the rows are, for the messages.
        vocab_size: ids must lie in `[0, vocab_size)`.
        from_text: whether the ids were tokenized in the graph.
        max_tokens: optional, the most tokens (non-padding ids) per row.
        max_note: appended to the too-long message (e.g. `" (EOS included)"`).
        check_unknown: reject rows made only of `<unk>` ids.

    Returns:
        int32 `[N, max(T, 1)]`, the ids once every check has passed.
    """
    missing = tf.maximum(1 - tf.shape(ids)[1], 0)
    ids = tf.pad(ids, [[0, 0], [0, missing]])
    nonpad = tf.not_equal(ids, PAD_ID)
    lengths = tf.reduce_sum(tf.cast(nonpad, tf.int32), axis=1)  # [N]
    checks = []
    if from_text:
        empty = "are empty (no tokens after tokenization); send non-empty text"
    else:
        empty = (
            f"are empty (only padding, id {PAD_ID}); every row needs at least "
            "one token"
        )
        checks.extend(_range_and_padding_checks(ids, nonpad, lengths, fn_name, what, vocab_size))
    checks.append(assert_no_rows(tf.equal(lengths, 0), fn_name, what, empty))
    if check_unknown:
        known = tf.reduce_any(nonpad & tf.not_equal(ids, UNK_ID), axis=1)
        checks.append(
            assert_no_rows(
                (lengths > 0) & tf.logical_not(known), fn_name, what,
                f"contain only unknown tokens (<unk>, id {UNK_ID}: not in the "
                "vocabulary); the model cannot condition on them",
            )
        )
    if max_tokens is not None:
        checks.append(
            assert_no_rows(
                lengths > max_tokens, fn_name, what,
                f"are longer than the {max_tokens} tokens the model accepts{max_note}",
            )
        )
    with tf.control_dependencies(checks):
        return tf.identity(ids)


def _range_and_padding_checks(ids, nonpad, lengths, fn_name, what, vocab_size):
    """Ids inside the vocabulary; no token after a padding id."""
    out_of_range = tf.reduce_any((ids < 0) | (ids >= vocab_size), axis=1)
    positions = tf.range(tf.shape(ids)[1])
    expected = positions[None, :] < lengths[:, None]
    return [
        assert_no_rows(
            out_of_range, fn_name, what,
            f"hold token ids outside the vocabulary [0, {vocab_size})",
        ),
        assert_no_rows(
            tf.reduce_any(tf.not_equal(nonpad, expected), axis=1),
            fn_name, what,
            f"are not right-padded (a padding id {PAD_ID} is followed by a token)",
        ),
    ]


def validate_tokens(tokens, fn_name, vocab_size):
    """Checks the int32 `[N]` tokens fed to `step`; returns them, guarded."""
    bad = (tokens < 0) | (tokens >= vocab_size)
    check = assert_no_rows(
        bad, fn_name, "tokens", f"are outside the vocabulary [0, {vocab_size})"
    )
    with tf.control_dependencies([check]):
        return tf.identity(tokens)
