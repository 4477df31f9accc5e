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

    Example:
    ```python
    sampler = RandomSampler(temperature=0.8, top_p=0.9, seed=1)
    result = decode(model.step, state, start_ids, end_id=EOS_ID,
                    max_length=100, sampler=sampler)
    ```
    """

    def __init__(self, temperature=1.0, top_k=None, top_p=None, seed=None):
        if not _is_number(temperature) or not (
            0.0 < float(temperature) < float("inf")
        ):
            raise ValueError(
                "`temperature` must be a finite number > 0, got "
                f"{temperature!r} (use strategy='greedy' without a sampler "
                "for deterministic decoding)."
            )
        if top_k is not None and (not _is_int(top_k) or top_k < 1):
            raise ValueError(
                f"`top_k` must be None or an integer >= 1, got {top_k!r}."
            )
        if top_p is not None and (
            not _is_number(top_p) or not 0.0 < float(top_p) <= 1.0
        ):
            raise ValueError(
                f"`top_p` must be None or a number in (0, 1], got {top_p!r}."
            )
        if seed is not None and (not _is_int(seed) or not 0 <= seed < 2**63):
            raise ValueError(
                f"`seed` must be None or an integer in [0, 2**63), got {seed!r}."
            )
        self.temperature = float(temperature)
        self.top_k = None if top_k is None else int(top_k)
        self.top_p = None if top_p is None else float(top_p)
        self.seed = None if seed is None else int(seed)

    def get_config(self):
        return {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "seed": self.seed,
        }



    def make_key(self):
        """int64 scalar key in [0, 2**31 - 1) for one `decode()` call.

        `seed % (2**31 - 1)`, or drawn at random when `seed` is None.
        """
        if self.seed is None:
            return tf.cast(
                tf.random.uniform([], 0, _PRIME, dtype=tf.int32), tf.int64
            )
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
        if self.temperature != 1.0:
            logits = logits / self.temperature
        top_p = self.top_p if self.top_p is not None and self.top_p < 1.0 else None
        if self.top_k is None and top_p is None:
            return _gumbel_argmax(logits, key, step)
        vocab = logits.shape[-1]
        if vocab is None:
            vocab = tf.shape(logits)[-1]
            k = vocab if self.top_k is None else tf.minimum(self.top_k, vocab)
        else:
            k = vocab if self.top_k is None else min(self.top_k, vocab)
        values, indices = tf.math.top_k(logits, k=k)  # [N, k], sorted desc
        if top_p is not None:
            probs = tf.nn.softmax(values, axis=-1)
            mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
            # The most likely token always has mass_before == 0 < p.
            values = tf.where(mass_before < top_p, values, _NEG_INF)
        choice = _gumbel_argmax(values, key, step)  # [N], index into top k
        return _take_along(indices, choice)
