"""Random token choice: `RandomSampler` and its counter-based random numbers.

Random numbers come from a counter-based hash of (seed, step, row, column)
written with int64 arithmetic only, so a seeded sampler gives the same tokens
eagerly, in `tf.function`, under XLA, in a reloaded SavedModel and in
onnxruntime (TensorFlow's own stateless Philox ops give different streams with
and without XLA, and tf2onnx cannot convert them).
"""

import tensorflow as tf

from keras_seq.decoding.config import DecodingConfig
from keras_seq.decoding.tensor_utils import _shape_list
from keras_seq.decoding.tensor_utils import _take_along
from keras_seq.decoding.tensor_utils import is_runtime
from keras_seq.decoding.tensor_utils import runtime_scalar
from keras_seq.utils import is_int as _is_int
from keras_seq.utils import is_number as _is_number

_NEG_INF = float("-inf")

_PRIME = 2**31 - 1
_ROUND_CONSTANTS = (1013904223, 1664525, 2147001325, 915488749)


def _mix(h):
    """Nonlinear mixing of int64 values in [0, 2**31 - 1): rounds of
    `h = (h * h + c) mod p`. Products stay below 2**62 (no overflow)."""
    for c in _ROUND_CONSTANTS:
        h = tf.math.floormod(h * h + c, _PRIME)
    return h


def _hash_uniform(key, step, shape):
    """Uniform float32 in (0, 1) of `shape = [rows, cols]`, a pure function of
    (key, step, row, col). `key`: int64 scalar in [0, 2**31 - 1)."""
    step = tf.cast(step, tf.int64)
    h = _mix(tf.math.floormod(key + step * 1103515245, _PRIME))  # scalar
    rows = tf.range(tf.cast(shape[0], tf.int64), dtype=tf.int64)[:, None]
    cols = tf.range(tf.cast(shape[1], tf.int64), dtype=tf.int64)[None, :]
    h = _mix(tf.math.floormod(h + rows * 1201563343, _PRIME))  # [rows, 1]
    h = _mix(tf.math.floormod(h + cols * 1876223287, _PRIME))  # [rows, cols]
    # 23 high bits + 0.5 is exact in float32 and strictly inside (0, 1).
    return (tf.cast(tf.math.floordiv(h, 256), tf.float32) + 0.5) * (1.0 / 2**23)


def _gumbel_argmax(logits, key, step):
    """One categorical sample per row of float32 `logits` [N, C] -> int32 [N]."""
    u = _hash_uniform(key, step, _shape_list(logits))
    gumbel = -tf.math.log(-tf.math.log(u))
    return tf.argmax(logits + gumbel, axis=-1, output_type=tf.int32)


class RandomSampler(DecodingConfig):
    """Random token choice for `decode(..., strategy="greedy", sampler=...)`.

    With neither `top_k` nor `top_p` this is ancestral sampling from
    `softmax(logits / temperature)`. `top_k` keeps the `k` most likely tokens,
    `top_p` keeps the smallest set of most likely tokens whose probability
    (after temperature and top-k) reaches `p` (nucleus sampling); both may be
    combined (top-k first). One sample is drawn per row; to get several samples
    of one prompt, repeat the prompt.

    Sampling uses the Gumbel-max trick with a counter-based hash of
    `(seed, step, row, column)`: a seeded sampler gives the same tokens
    eagerly, in `tf.function`, under XLA, in a reloaded SavedModel and in
    onnxruntime. The noise depends on the row index, so a row's sample also
    depends on its position in the batch.

    Args:
        temperature: float > 0; values < 1 sharpen the distribution (near 0 it
            approaches greedy), values > 1 flatten it.
        top_k: int >= 1 or None.
        top_p: float in (0, 1] or None (1 keeps every token).
        seed: int in [0, 2**63) for reproducible results (used modulo
            2**31 - 1), or None for a fresh random seed on every `decode()`
            call.

    Each setting may also be a scalar tensor chosen at run time (an export's
    per-request inputs): temperature float32, top_k int32 (0: no limit),
    top_p float32 (1: no filter), seed int64 (-1: a fresh random seed). Their
    ranges are then checked in the graph (`tf.debugging.Assert`), and the
    same values give the same tokens as the Python settings.

    Example:
    ```python
    sampler = RandomSampler(temperature=0.8, top_p=0.9, seed=1)
    result = decode(model.step, state, start_ids, end_id=EOS_ID,
                    max_length=100, sampler=sampler)
    ```
    """

    def __init__(self, temperature=1.0, top_k=None, top_p=None, seed=None):
        if is_runtime(temperature):
            temperature = runtime_scalar(
                temperature, "temperature", tf.float32,
                lambda v: tf.math.is_finite(v) & (v > 0.0), "a finite number > 0",
            )
        elif not _is_number(temperature) or not (
            0.0 < float(temperature) < float("inf")
        ):
            raise ValueError(
                "`temperature` must be a finite number > 0, got "
                f"{temperature!r} (use strategy='greedy' without a sampler "
                "for deterministic decoding)."
            )
        else:
            temperature = float(temperature)
        if is_runtime(top_k):
            top_k = runtime_scalar(
                top_k, "top_k", tf.int32, lambda v: v >= 0, "an integer >= 0 (0: no limit)"
            )
        elif top_k is not None and (not _is_int(top_k) or top_k < 1):
            raise ValueError(
                f"`top_k` must be None or an integer >= 1, got {top_k!r}."
            )
        elif top_k is not None:
            top_k = int(top_k)
        if is_runtime(top_p):
            top_p = runtime_scalar(
                top_p, "top_p", tf.float32, lambda v: (v > 0.0) & (v <= 1.0),
                "a number in (0, 1]",
            )
        elif top_p is not None and (
            not _is_number(top_p) or not 0.0 < float(top_p) <= 1.0
        ):
            raise ValueError(
                f"`top_p` must be None or a number in (0, 1], got {top_p!r}."
            )
        elif top_p is not None:
            top_p = float(top_p)
        if is_runtime(seed):
            seed = runtime_scalar(
                seed, "seed", tf.int64, lambda v: v >= -1,
                "an integer in [0, 2**63), or -1 for a fresh random seed",
            )
        elif seed is not None and (not _is_int(seed) or not 0 <= seed < 2**63):
            raise ValueError(
                f"`seed` must be None or an integer in [0, 2**63), got {seed!r}."
            )
        elif seed is not None:
            seed = int(seed)
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed

    def get_config(self):
        return {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "seed": self.seed,
        }



    def make_key(self):
        """int64 scalar key in [0, 2**31 - 1) for one `decode()` call.

        `seed % (2**31 - 1)`, or drawn at random when `seed` is None (or, for
        a runtime seed, -1).
        """
        if self.seed is None:
            return _fresh_key()
        if is_runtime(self.seed):
            return tf.where(self.seed < 0, _fresh_key(), tf.math.floormod(self.seed, _PRIME))
        return tf.constant(self.seed % _PRIME, tf.int64)

    def sample(self, logits, step, key=None):
        """Draws one token per row.

        Args:
            logits: float `[N, vocab]`, unnormalized.
            step: int scalar, the decoding step (part of the random stream).
            key: int64 scalar from `make_key()`; defaults to `make_key()`.

        Returns:
            int32 `[N]` token ids.
        """
        if key is None:
            key = self.make_key()
        logits = tf.cast(logits, tf.float32)
        if is_runtime(self.temperature) or self.temperature != 1.0:
            logits = logits / self.temperature
        top_k, top_p = self.top_k, self.top_p
        if not (is_runtime(top_k) or is_runtime(top_p)):
            top_p = top_p if top_p is not None and top_p < 1.0 else None
            if top_k is None and top_p is None:
                return _gumbel_argmax(logits, key, step)
            return _filtered_sample(logits, key, step, top_k, top_p)
        # Runtime settings: top_k 0 and top_p 1 mean no filter. Unfiltered
        # sampling takes the same path as a sampler built without them, so a
        # seed gives the same tokens either way.
        top_k = tf.constant(0) if top_k is None else top_k
        top_p = tf.constant(1.0) if top_p is None else top_p
        return tf.cond(
            (top_k <= 0) & (top_p >= 1.0),
            lambda: _gumbel_argmax(logits, key, step),
            lambda: _filtered_sample(logits, key, step, top_k, top_p),
        )


def _fresh_key():
    return tf.cast(tf.random.uniform([], 0, _PRIME, dtype=tf.int32), tf.int64)


def _filtered_sample(logits, key, step, top_k, top_p):
    """One sample per row among the top-k / top-p tokens of float32 `logits`.

    `top_k`, `top_p`: Python values (None: no filter) or runtime scalars
    (`top_k <= 0`, `top_p >= 1`: no filter).
    """
    vocab = _shape_list(logits)[-1]
    if top_k is None:
        k = vocab
    elif is_runtime(top_k):
        k = tf.where(top_k > 0, tf.minimum(top_k, vocab), vocab)
    else:
        k = tf.minimum(top_k, vocab) if tf.is_tensor(vocab) else min(top_k, vocab)
    values, indices = tf.math.top_k(logits, k=k)  # [N, k], sorted desc
    if top_p is not None:
        probs = tf.nn.softmax(values, axis=-1)
        mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
        # The most likely token always has mass_before == 0 < p.
        keep = mass_before < top_p
        if is_runtime(top_p):
            keep = keep | (top_p >= 1.0)
        values = tf.where(keep, values, _NEG_INF)
    choice = _gumbel_argmax(values, key, step)  # [N], index into top k
    return _take_along(indices, choice)
