"""In-graph decoding over a model's `step` function: greedy, sampling and beam search.

Every generative model in keras_seq exposes

    state = model.initial_state(inputs)          # nest of tensors, leading dim N
    logits, state = model.step(tokens, state)    # int32 [N] -> float [N, vocab]

and `decode()` runs that step inside a single `tf.while_loop`, so the same code
runs eagerly, under `tf.function`, under `tf.function(jit_compile=True)`, inside
an exported SavedModel, and converts with tf2onnx into one ONNX `Loop`.

Strategies (how hypotheses are kept) are separate from samplers (how one token
is chosen from a distribution), as in OpenNMT-tf:

- `Greedy()` (or the string `"greedy"`): one hypothesis per row; the most
  likely token each step, or with a `RandomSampler` one random sample per row
  (ancestral, temperature, top-k, top-p).
- `BeamSearch(beam_size, length_penalty, num_return)`: beam search with the GNMT
  length penalty, finished hypotheses kept aside (never extended) and an n-best
  list.

`DecodeOptions` holds the user-facing settings (beam size, length penalty,
n-best, sampling) in one typed record and builds the strategy and sampler from
them; `serialize`/`deserialize` turn strategies and samplers into JSON configs
(used by exports and run directories). Models implement the contract in
`keras_seq.models.GenerativeModel`, whose `generate` calls `decode`.

Random numbers come from a counter-based hash of (seed, step, row, column)
written with int64 arithmetic only, so a seeded decode gives the same tokens
eagerly, in `tf.function`, under XLA, in a reloaded SavedModel and in
onnxruntime (TensorFlow's own stateless Philox ops give different streams with
and without XLA, and tf2onnx cannot convert them).
"""

import collections.abc
import dataclasses
from typing import NamedTuple
from typing import Optional

import tensorflow as tf

from keras_seq.utils import is_int as _is_int
from keras_seq.utils import is_number as _is_number

__all__ = [
    "BeamSearch",
    "DecodeOptions",
    "DecodeResult",
    "Greedy",
    "RandomSampler",
    "check_decoding",
    "decode",
    "deserialize",
    "get_strategy",
    "length_penalty",
    "serialize",
]

_NEG_INF = float("-inf")


class DecodeResult(NamedTuple):
    """What `decode()` returns; every field has leading dims `[B, R]`.

    `R` is `num_return` for beam search and 1 for greedy/sampled decoding.
    Hypotheses are sorted best first.

    Attributes:
        ids: int32 `[B, R, max_length]`, the generated tokens after the start
            token, including `end_id` when it was emitted, 0 after it.
        lengths: int32 `[B, R]`, number of generated tokens including the end
            token (`max_length` for a hypothesis cut at the length limit).
        scores: float32 `[B, R]`, summed log-probabilities of the tokens (under
            the model's distribution, before temperature or filtering). Beam
            hypotheses are *ranked* by `scores / length_penalty(lengths, alpha)`.
            `-inf` marks a padding entry (fewer than `R` distinct hypotheses
            exist); its ids and length are 0.
        attention: `[B, R, max_length, S]` attention weights of each emitted
            token (0 after the end), or None unless `return_attention=True`.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: Optional[tf.Tensor] = None


def length_penalty(lengths, alpha):
    """GNMT length penalty `((5 + lengths) / 6) ** alpha` (Wu et al., 2016).

    Beam search ranks a hypothesis by `log_prob_sum / length_penalty(length,
    alpha)`; `alpha = 0` ranks by the raw sum, a larger `alpha` favours longer
    hypotheses.

    Args:
        lengths: int or float tensor, number of generated tokens (with the end
            token).
        alpha: float >= 0.

    Returns:
        float32 tensor with the shape of `lengths`.

    Example:
    >>> float(length_penalty(7, 1.0))
    2.0
    """
    lengths = tf.cast(lengths, tf.float32)
    return tf.pow((5.0 + lengths) / 6.0, tf.cast(alpha, tf.float32))


class Greedy:
    """One hypothesis per row: the strategy of greedy and sampled decoding.

    Each step keeps a single continuation per row: the most likely token, or,
    when `decode()` is given a `RandomSampler`, one random sample. A row stops
    at `end_id`; the loop stops once every row has. `"greedy"` is accepted
    wherever a strategy is and means `Greedy()`.

    Example:
    ```python
    result = decode(model.step, state, start_ids, end_id=EOS_ID,
                    max_length=50, strategy=Greedy())
    result.ids      # int32 [B, 1, 50]
    ```
    """

    num_return = 1

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, Greedy)

    def __hash__(self):
        return hash(Greedy)

    def __repr__(self):
        return "Greedy()"


class BeamSearch:
    """Beam search strategy for `decode()`.

    Each step every live hypothesis is extended by every token; among the
    `beam_size * vocab` candidates:

    - candidates ending in `end_id` that rank within the top `beam_size` (by
      summed log-probability) become *finished* hypotheses. They are kept aside,
      never extended, and compete for the n-best list by
      `scores / length_penalty(lengths, length_penalty)`;
    - the best `beam_size` candidates that do not end in `end_id` stay live.

    So `BeamSearch(1)` is greedy search, and a beam at least as wide as the
    number of candidates is exhaustive search. Hypotheses still live at
    `max_length` are cut there and ranked with the finished ones (length
    `max_length`, no end token).

    Early stop (exact): the loop ends as soon as, for every batch row, the
    `num_return`-th best finished score is at least the best score any live
    hypothesis could still reach (its current sum divided by
    `length_penalty(max_length)`, an upper bound because log-probabilities are
    <= 0 and the penalty grows with length). The result is then the same as
    decoding to `max_length`. With `length_penalty > 0` the bound is loose, so
    the loop usually runs longer than "all beams finished".

    Args:
        beam_size: int >= 1, number of live hypotheses per batch row.
        length_penalty: float >= 0, the GNMT `alpha`. Defaults to 0 (rank by
            summed log-probability).
        num_return: int in `[1, beam_size]`, hypotheses returned per row.

    Example:
    ```python
    result = decode(model.step, model.initial_state(source), start_ids,
                    end_id=EOS_ID, max_length=50,
                    strategy=BeamSearch(4, length_penalty=0.6, num_return=2))
    result.ids      # int32 [B, 2, 50]
    ```
    """

    def __init__(self, beam_size, length_penalty=0.0, num_return=1):
        if not _is_int(beam_size) or beam_size < 1:
            raise ValueError(
                f"`beam_size` must be an integer >= 1, got {beam_size!r}."
            )
        if not _is_number(length_penalty) or not (
            0.0 <= float(length_penalty) < float("inf")
        ):
            raise ValueError(
                "`length_penalty` (the GNMT alpha) must be a finite number "
                f">= 0, got {length_penalty!r}."
            )
        if not _is_int(num_return) or num_return < 1:
            raise ValueError(
                f"`num_return` must be an integer >= 1, got {num_return!r}."
            )
        if num_return > beam_size:
            raise ValueError(
                f"`num_return` ({num_return}) cannot exceed `beam_size` "
                f"({beam_size})."
            )
        self.beam_size = int(beam_size)
        self.length_penalty = float(length_penalty)
        self.num_return = int(num_return)

    def get_config(self):
        return {
            "beam_size": self.beam_size,
            "length_penalty": self.length_penalty,
            "num_return": self.num_return,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, BeamSearch) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(tuple(sorted(self.get_config().items())))

    def __repr__(self):
        return (
            f"BeamSearch(beam_size={self.beam_size}, "
            f"length_penalty={self.length_penalty}, "
            f"num_return={self.num_return})"
        )


# --------------------------------------------------------------------------
# Counter-based random numbers (int64 arithmetic only: TF, XLA and ONNX agree).

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


class RandomSampler:
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

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, RandomSampler) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(tuple(sorted(self.get_config().items())))

    def __repr__(self):
        return (
            f"RandomSampler(temperature={self.temperature}, top_k={self.top_k}, "
            f"top_p={self.top_p}, seed={self.seed})"
        )

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


# --------------------------------------------------------------------------
# Choosing, checking and (de)serializing strategies and samplers.

_STRATEGIES = {"Greedy": Greedy, "BeamSearch": BeamSearch}


def get_strategy(identifier):
    """Returns a strategy object from a strategy, a name or a config.

    Args:
        identifier: a `Greedy` or `BeamSearch`, `"greedy"`, `None` (greedy), or
            a config from `serialize()` (`{"class_name": ..., "config": ...}`;
            the older `"greedy"` / `{"beam_search": {...}}` forms of exports
            are read too).

    Returns:
        A `Greedy` or `BeamSearch`.

    Example:
    >>> get_strategy("greedy")
    Greedy()
    >>> get_strategy({"class_name": "BeamSearch", "config": {"beam_size": 4}})
    BeamSearch(beam_size=4, length_penalty=0.0, num_return=1)
    """
    if identifier is None:
        return Greedy()
    if isinstance(identifier, (Greedy, BeamSearch)):
        return identifier
    if isinstance(identifier, str):
        if identifier != "greedy":
            raise ValueError(
                "`strategy` must be 'greedy', a `Greedy` or a `BeamSearch` "
                f"instance, got {identifier!r}."
            )
        return Greedy()
    if isinstance(identifier, collections.abc.Mapping):
        if "beam_search" in identifier:  # the export format 1 spelling
            return BeamSearch(**identifier["beam_search"])
        cls = _STRATEGIES.get(identifier.get("class_name"))
        if cls is not None:
            return cls.from_config(dict(identifier.get("config") or {}))
        raise ValueError(f"Unknown decoding strategy config: {dict(identifier)!r}.")
    raise TypeError(
        "`strategy` must be 'greedy', a `Greedy` or a `BeamSearch` instance, "
        f"got {identifier!r}."
    )


def check_decoding(strategy, sampler):
    """Validates a strategy/sampler pair and returns them normalized.

    Args:
        strategy: anything `get_strategy` accepts.
        sampler: None or a `RandomSampler` (only with greedy decoding).

    Returns:
        `(strategy, sampler)` with `strategy` a `Greedy` or `BeamSearch`.
    """
    strategy = get_strategy(strategy)
    if sampler is not None:
        if not isinstance(sampler, RandomSampler):
            raise TypeError(
                f"`sampler` must be None or a `RandomSampler`, got {sampler!r}."
            )
        if isinstance(strategy, BeamSearch):
            raise ValueError(
                "`sampler` is only supported with strategy='greedy' (one "
                "sample per row); beam search is deterministic."
            )
    return strategy, sampler


def serialize(obj):
    """JSON-ready config of a `Greedy`, `BeamSearch` or `RandomSampler` (or None).

    Example:
    >>> serialize(BeamSearch(4))
    {'class_name': 'BeamSearch', 'config': {'beam_size': 4, 'length_penalty': 0.0, 'num_return': 1}}
    """
    if obj is None:
        return None
    if isinstance(obj, str):
        obj = get_strategy(obj)
    if not isinstance(obj, (Greedy, BeamSearch, RandomSampler)):
        raise TypeError(f"Cannot serialize {obj!r}: not a decoding strategy or sampler.")
    return {"class_name": type(obj).__name__, "config": obj.get_config()}


def deserialize(config):
    """Inverse of `serialize` (None stays None)."""
    if config is None:
        return None
    if isinstance(config, collections.abc.Mapping) and config.get("class_name") == "RandomSampler":
        return RandomSampler.from_config(dict(config.get("config") or {}))
    return get_strategy(config)


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """User-facing decoding settings, turned into a strategy and a sampler.

    `beam_size > 1` selects beam search; otherwise decoding is greedy, or random
    sampling when `temperature`, `top_k` or `top_p` is set (or `sample=True`).

    Args:
        beam_size: int >= 1; 1 is greedy (or sampled) decoding.
        length_penalty: float >= 0, the GNMT alpha of beam search.
        num_return: int in `[1, beam_size]`, hypotheses returned per input.
        max_length: int >= 1 or None (the model's default), generated tokens.
        sample: draw random samples even with none of the settings below.
        temperature: float > 0 or None (1.0 when sampling).
        top_k: int >= 1 or None.
        top_p: float in (0, 1] or None.
        seed: int >= 0 or None, for reproducible samples.

    Example:
    >>> DecodeOptions(beam_size=5, length_penalty=0.6).strategy()
    BeamSearch(beam_size=5, length_penalty=0.6, num_return=1)
    >>> DecodeOptions(temperature=0.7, seed=1).sampler()
    RandomSampler(temperature=0.7, top_k=None, top_p=None, seed=1)
    """

    beam_size: int = 1
    length_penalty: float = 0.0
    num_return: int = 1
    max_length: Optional[int] = None
    sample: bool = False
    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None

    def __post_init__(self):
        if self.max_length is not None and (not _is_int(self.max_length) or self.max_length < 1):
            raise ValueError(
                f"`max_length` must be None or an integer >= 1, got {self.max_length!r}."
            )
        if self.sampling and self.beam_size != 1:
            raise ValueError(
                "Sampling (temperature/top_k/top_p) and beam search "
                f"(beam_size={self.beam_size}) cannot be combined."
            )
        # Builds both once so a bad value fails here, naming the field.
        self.strategy()
        self.sampler()

    @property
    def sampling(self):
        """Whether this draws random samples."""
        return self.sample or any(
            v is not None for v in (self.temperature, self.top_k, self.top_p)
        )

    def strategy(self):
        """The `Greedy` or `BeamSearch` these options describe."""
        if self.beam_size == 1 and self.num_return == 1:
            return Greedy()
        return BeamSearch(self.beam_size, self.length_penalty, self.num_return)

    def sampler(self):
        """The `RandomSampler`, or None when not sampling."""
        if not self.sampling:
            return None
        temperature = 1.0 if self.temperature is None else self.temperature
        return RandomSampler(temperature, self.top_k, self.top_p, self.seed)


# --------------------------------------------------------------------------
# Small tensor helpers (plain Gather/Reshape so tf2onnx and XLA are happy).


def _shape_list(x):
    """Static dims where known, dynamic scalars otherwise."""
    static = x.shape.as_list()
    dynamic = tf.shape(x)
    return [dynamic[i] if d is None else d for i, d in enumerate(static)]


def _take_along(x, idx):
    """x [N, C], idx int32 [N] -> x[n, idx[n]] of shape [N]."""
    n, c = _shape_list(x)
    flat = tf.reshape(x, [-1])
    return tf.gather(flat, tf.range(n) * c + idx)


def _gather_rows(x, idx):
    """x [B, M, ...], idx int32 [B, M'] -> x[b, idx[b, m']] of shape [B, M', ...]."""
    shape = _shape_list(x)
    batch, m = shape[0], shape[1]
    flat_x = tf.reshape(x, [-1] + shape[2:])  # [B*M, ...]
    flat_idx = idx + tf.range(batch)[:, None] * m  # [B, M']
    return tf.gather(flat_x, flat_idx)


def _map_rows(fn, state):
    """Applies fn to every rank >= 1 leaf; scalars are shared, left alone."""
    return tf.nest.map_structure(
        lambda x: fn(x) if x.shape.rank != 0 else x, state
    )


def _keep_shape(new, old):
    """Sets the static shape of an internal loop variable to its initial one."""
    new.set_shape(old.shape)
    return new


def _conform_state(new_state, state):
    """Checks the state returned by step_fn against the one it was given."""
    try:
        tf.nest.assert_same_structure(state, new_state)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "`step_fn` must return `(logits, state)` with the state in the same "
            f"nested structure it was given. {e}"
        ) from None

    names = _leaf_names(state)
    new_leaves = tf.nest.flatten(new_state)
    old_leaves = tf.nest.flatten(state)
    out = []
    for name, new, old in zip(names, new_leaves, old_leaves):
        new = tf.convert_to_tensor(new)
        if new.dtype != old.dtype:
            raise TypeError(
                f"`step_fn` changed the dtype of {name} from {old.dtype.name} "
                f"to {new.dtype.name}; decoding state must keep its dtype."
            )
        if not new.shape.is_compatible_with(old.shape):
            raise ValueError(
                f"`step_fn` changed the shape of {name} from {old.shape} to "
                f"{new.shape}. Decoding state must keep a fixed shape (e.g. "
                "preallocate key/value caches to the maximum length)."
            )
        if new.shape.merge_with(old.shape) != new.shape:
            new = tf.ensure_shape(new, old.shape)
        out.append(new)
    return tf.nest.pack_sequence_as(state, out)


def _leaf_names(state, prefix="state"):
    """Readable names of the leaves of `state`, in `tf.nest.flatten` order."""
    if isinstance(state, collections.abc.Mapping):
        items = [(key, state[key]) for key in sorted(state)]
    elif tf.nest.is_nested(state):
        items = list(enumerate(state))
    else:
        return [prefix]
    names = []
    for key, value in items:
        names.extend(_leaf_names(value, f"{prefix}[{key!r}]"))
    return names


def _check_logits(logits):
    logits = tf.convert_to_tensor(logits)
    if not logits.dtype.is_floating:
        raise TypeError(
            f"`step_fn` must return float logits, got dtype {logits.dtype.name}."
        )
    if logits.shape.rank is not None and logits.shape.rank != 2:
        raise ValueError(
            "`step_fn` must return logits of shape [N, vocab], got shape "
            f"{logits.shape}."
        )
    return tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1), logits


# --------------------------------------------------------------------------
# decode()


def decode(
    step_fn,
    state,
    start_ids,
    *,
    end_id,
    max_length,
    strategy="greedy",
    sampler=None,
    return_attention=False,
):
    """Decodes sequences from `step_fn` inside one `tf.while_loop`.

    Args:
        step_fn: `step_fn(tokens, state) -> (logits, state)`; tokens int32
            `[N]`, state a nest of tensors with leading dimension `N` (rank-0
            leaves are allowed and shared by all rows, e.g. a step counter),
            logits float `[N, vocab]`. The state must keep its structure,
            dtypes and shapes from step to step.
        state: the initial state (e.g. `model.initial_state(inputs)`), leading
            dimension `B`. For beam search every rank >= 1 leaf is repeated
            `beam_size` times along axis 0 (row `b * beam_size + k`), so encoder
            outputs are tiled too, and reordered with a gather each step.
        start_ids: int `[B]`, the first input token of each row (usually BOS).
        end_id: int, the end token; a row/hypothesis that emits it is finished
            (an id outside the vocabulary means rows only stop at
            `max_length`).
        max_length: int >= 1, the maximum number of generated tokens (static:
            it is the last dimension of `ids`).
        strategy: `Greedy()` (or `"greedy"`) or a `BeamSearch`.
        sampler: None (take the most likely token) or a `RandomSampler`; only
            with greedy decoding.
        return_attention: if True, `state` must be a dict with an
            `"attention"` entry of shape `[N, S]` that `step_fn` sets to the
            attention weights used for the logits it returns; the loop records
            it for every emitted token of the returned hypotheses
            (`DecodeResult.attention`, `[B, R, max_length, S]`).

    Returns:
        A `DecodeResult(ids, lengths, scores, attention)`, best first;
        `R = strategy.num_return` for beam search, 1 otherwise.

    The loop stops early once every row is finished (greedy/sampling) or once
    no live beam can still enter the n-best list (see `BeamSearch`).

    Example:
    ```python
    state = model.initial_state(source_ids)
    result = decode(model.step, state, tf.fill([batch], BOS_ID),
                    end_id=EOS_ID, max_length=40, strategy=BeamSearch(4))
    best = result.ids[:, 0]           # int32 [batch, 40]
    ```
    """
    if not callable(step_fn):
        raise TypeError(f"`step_fn` must be callable, got {step_fn!r}.")
    if not _is_int(end_id) or end_id < 0:
        raise ValueError(f"`end_id` must be an integer >= 0, got {end_id!r}.")
    if not _is_int(max_length) or max_length < 1:
        raise ValueError(
            f"`max_length` must be an integer >= 1, got {max_length!r}."
        )
    strategy, sampler = check_decoding(strategy, sampler)

    end_id, max_length = int(end_id), int(max_length)
    start_ids = tf.convert_to_tensor(start_ids)
    if not start_ids.dtype.is_integer:
        raise TypeError(
            f"`start_ids` must be integer token ids, got {start_ids.dtype.name}."
        )
    if start_ids.shape.rank != 1:
        raise ValueError(
            f"`start_ids` must have shape [batch], got {start_ids.shape}."
        )
    start_ids = tf.cast(start_ids, tf.int32)
    state = tf.nest.map_structure(tf.convert_to_tensor, state)
    batch = start_ids.shape[0]
    for path, leaf in zip(_leaf_names(state), tf.nest.flatten(state)):
        if leaf.shape.rank == 0 or leaf.shape.rank is None:
            continue
        if batch is not None and leaf.shape[0] is not None and leaf.shape[0] != batch:
            raise ValueError(
                f"{path} has leading dimension {leaf.shape[0]} "
                f"but `start_ids` has batch size {batch}."
            )
    if return_attention:
        if not isinstance(state, collections.abc.Mapping) or "attention" not in state:
            raise ValueError(
                "`return_attention=True` needs a dict state with an "
                "'attention' entry of shape [N, source_length] set by `step_fn`."
            )
        if state["attention"].shape.rank != 2:
            raise ValueError(
                "state['attention'] must have shape [N, source_length], got "
                f"{state['attention'].shape}."
            )

    if isinstance(strategy, BeamSearch):
        return _beam_search(
            step_fn, state, start_ids, end_id, max_length, strategy,
            return_attention,
        )
    return _greedy(
        step_fn, state, start_ids, end_id, max_length, sampler, return_attention
    )


class _GreedyLoop(NamedTuple):
    """Loop variables of greedy/sampled decoding (B = batch, L = max_length)."""

    t: tf.Tensor  # int32 scalar, the step
    tokens: tf.Tensor  # int32 [B], the tokens fed next
    state: object  # the model's state nest
    ids: tf.Tensor  # int32 [B, L], tokens emitted so far (0 after the end)
    lengths: tf.Tensor  # int32 [B], tokens incl. the end token (L if cut)
    scores: tf.Tensor  # float32 [B], summed log-probabilities
    finished: tf.Tensor  # bool [B]
    history: tf.Tensor  # [B, L, S] attention per emitted token, or [0]


def _greedy(step_fn, state, start_ids, end_id, max_length, sampler, return_attention):
    batch = _shape_list(start_ids)[0]
    positions = tf.range(max_length)  # [L]
    key = sampler.make_key() if sampler is not None else None
    if return_attention:
        att = state["attention"]
        history = tf.zeros([batch, max_length, _shape_list(att)[1]], att.dtype)
    else:
        history = tf.zeros([0])
    initial = _GreedyLoop(
        t=tf.constant(0),
        tokens=start_ids,
        state=state,
        ids=tf.zeros([batch, max_length], tf.int32),
        lengths=tf.fill([batch], tf.constant(max_length, tf.int32)),
        scores=tf.zeros([batch], tf.float32),
        finished=tf.zeros([batch], tf.bool),
        history=history,
    )

    def cond(loop):
        return tf.logical_and(
            loop.t < max_length, tf.logical_not(tf.reduce_all(loop.finished))
        )

    def body(loop):
        t, finished = loop.t, loop.finished
        logits, new_state = step_fn(loop.tokens, loop.state)
        new_state = _conform_state(new_state, loop.state)
        logp, logits = _check_logits(logits)  # [B, V]
        if sampler is None:
            chosen = tf.argmax(logp, axis=-1, output_type=tf.int32)
        else:
            chosen = sampler.sample(logits, t, key)
        chosen_logp = _take_along(logp, chosen)
        written = tf.where(finished, 0, chosen)  # [B]
        at_t = tf.equal(positions, t)  # [L]
        ended = tf.logical_and(tf.logical_not(finished), tf.equal(chosen, end_id))
        history = loop.history
        if return_attention:
            write = tf.logical_and(
                at_t[None, :, None], tf.logical_not(finished)[:, None, None]
            )
            history = tf.where(write, new_state["attention"][:, None, :], history)
        new_finished = tf.logical_or(finished, ended)
        return (_GreedyLoop(
            t=t + 1,
            tokens=_keep_shape(tf.where(new_finished, end_id, chosen), loop.tokens),
            state=new_state,
            ids=_keep_shape(tf.where(at_t[None, :], written[:, None], loop.ids), loop.ids),
            lengths=_keep_shape(tf.where(ended, t + 1, loop.lengths), loop.lengths),
            scores=_keep_shape(
                loop.scores + tf.where(finished, 0.0, chosen_logp), loop.scores
            ),
            finished=_keep_shape(new_finished, finished),
            history=_keep_shape(history, initial.history),
        ),)

    (final,) = tf.while_loop(cond, body, (initial,))
    return DecodeResult(
        ids=final.ids[:, None, :],
        lengths=final.lengths[:, None],
        scores=final.scores[:, None],
        attention=final.history[:, None] if return_attention else None,
    )


class _BeamLoop(NamedTuple):
    """Loop variables of beam search (B = batch, K = beam, R = n-best, L = length)."""

    t: tf.Tensor  # int32 scalar, the step
    tokens: tf.Tensor  # int32 [B*K], the tokens fed next
    state: object  # the model's state nest, rows b*K + k
    alive_ids: tf.Tensor  # int32 [B, K, L], live hypotheses
    alive_logp: tf.Tensor  # float32 [B, K], their summed log-probabilities
    fin_ids: tf.Tensor  # int32 [B, R, L], finished hypotheses, best first
    fin_logp: tf.Tensor  # float32 [B, R]
    fin_norm: tf.Tensor  # float32 [B, R], ranking score logp / penalty
    fin_len: tf.Tensor  # int32 [B, R], lengths incl. the end token
    alive_att: tf.Tensor  # [B, K, L, S] attention, or [0]
    fin_att: tf.Tensor  # [B, R, L, S] attention, or [0]


def _beam_search(step_fn, state, start_ids, end_id, max_length, strategy, return_attention):
    k, r, alpha = strategy.beam_size, strategy.num_return, strategy.length_penalty
    length = max_length
    batch = _shape_list(start_ids)[0]
    positions = tf.range(length)  # [L]
    # A Python float (not a tensor), so this also traces with autograph off.
    max_penalty = ((5.0 + length) / 6.0) ** alpha if alpha else 1.0

    def penalty(n):
        return length_penalty(n, alpha) if alpha else 1.0

    # Tile to B*K rows: row b*K + j is beam j of batch row b.
    state = _map_rows(lambda x: tf.repeat(x, k, axis=0), state)
    if return_attention:
        att = state["attention"]
        source_len = _shape_list(att)[1]
        alive_att = tf.zeros([batch, k, length, source_len], att.dtype)
        fin_att = tf.zeros([batch, r, length, source_len], att.dtype)
    else:
        alive_att = fin_att = tf.zeros([0])
    initial = _BeamLoop(
        t=tf.constant(0),
        tokens=tf.repeat(start_ids, k),
        state=state,
        alive_ids=tf.zeros([batch, k, length], tf.int32),
        # Only beam 0 is live at first, so the K copies do not duplicate hypotheses.
        alive_logp=tf.tile(
            tf.constant([[0.0] + [_NEG_INF] * (k - 1)], tf.float32), [batch, 1]
        ),
        fin_ids=tf.zeros([batch, r, length], tf.int32),
        fin_logp=tf.fill([batch, r], _NEG_INF),
        fin_norm=tf.fill([batch, r], _NEG_INF),
        fin_len=tf.zeros([batch, r], tf.int32),
        alive_att=alive_att,
        fin_att=fin_att,
    )

    def cond(loop):
        best_possible = tf.reduce_max(loop.alive_logp, axis=1) / max_penalty  # [B]
        done = tf.reduce_all(loop.fin_norm[:, r - 1] >= best_possible)
        return tf.logical_and(loop.t < length, tf.logical_not(done))

    def body(loop):
        t = loop.t
        logits, new_state = step_fn(loop.tokens, loop.state)
        new_state = _conform_state(new_state, loop.state)
        logp, _ = _check_logits(logits)  # [B*K, V]
        vocab = _shape_list(logp)[1]
        cand = tf.reshape(logp, [batch, k, vocab]) + loop.alive_logp[:, :, None]
        cand = tf.reshape(cand, [batch, k * vocab])  # [B, K*V]
        at_t = tf.equal(positions, t)  # [L]
        if return_attention:
            att_now = tf.reshape(new_state["attention"], [batch, k, -1])
            at_t4 = at_t[None, None, :, None]

        # 1) Hypotheses that end now: end tokens ranking in the top K overall.
        top_logp, top_idx = tf.math.top_k(cand, k=k)  # [B, K]
        top_beam = tf.math.floordiv(top_idx, vocab)
        is_end = tf.equal(tf.math.floormod(top_idx, vocab), end_id)
        new_logp = tf.where(is_end, top_logp, _NEG_INF)
        new_norm = new_logp / penalty(t + 1)
        new_ids = tf.where(
            at_t[None, None, :], end_id, _gather_rows(loop.alive_ids, top_beam)
        )
        merged_norm = tf.concat([loop.fin_norm, new_norm], axis=1)  # [B, R+K]
        fin_norm_next, pick = tf.math.top_k(merged_norm, k=r)  # [B, R]
        fin_ids_next = _gather_rows(tf.concat([loop.fin_ids, new_ids], 1), pick)
        fin_logp_next = _gather_rows(tf.concat([loop.fin_logp, new_logp], 1), pick)
        fin_len_next = _gather_rows(
            tf.concat([loop.fin_len, tf.fill(tf.shape(new_logp), t + 1)], 1), pick
        )
        fin_att_next = loop.fin_att
        if return_attention:
            new_att = tf.where(
                at_t4,
                _gather_rows(att_now, top_beam)[:, :, None, :],
                _gather_rows(loop.alive_att, top_beam),
            )
            fin_att_next = _gather_rows(tf.concat([loop.fin_att, new_att], 1), pick)

        # 2) Live hypotheses: the best K candidates that do not end.
        ends_flat = tf.equal(tf.math.floormod(tf.range(k * vocab), vocab), end_id)
        alive_logp_next, alive_idx = tf.math.top_k(
            tf.where(ends_flat[None, :], _NEG_INF, cand), k=k
        )  # [B, K]
        alive_beam = tf.math.floordiv(alive_idx, vocab)
        alive_tok = tf.math.floormod(alive_idx, vocab)
        alive_ids_next = tf.where(
            at_t[None, None, :], alive_tok[:, :, None],
            _gather_rows(loop.alive_ids, alive_beam),
        )
        alive_att_next = loop.alive_att
        if return_attention:
            alive_att_next = tf.where(
                at_t4,
                _gather_rows(att_now, alive_beam)[:, :, None, :],
                _gather_rows(loop.alive_att, alive_beam),
            )
        flat_beam = tf.reshape(alive_beam + tf.range(batch)[:, None] * k, [-1])
        next_loop = _BeamLoop(
            t=t + 1,
            tokens=tf.reshape(alive_tok, [-1]),
            state=_map_rows(lambda x: tf.gather(x, flat_beam), new_state),
            alive_ids=alive_ids_next,
            alive_logp=alive_logp_next,
            fin_ids=fin_ids_next,
            fin_logp=fin_logp_next,
            fin_norm=fin_norm_next,
            fin_len=fin_len_next,
            alive_att=alive_att_next,
            fin_att=fin_att_next,
        )
        # Every loop variable but the state keeps its initial static shape.
        return (next_loop._replace(**{
            name: _keep_shape(getattr(next_loop, name), getattr(loop, name))
            for name in _BeamLoop._fields if name != "state"
        }),)

    (final,) = tf.while_loop(cond, body, (initial,))

    # Hypotheses still live at max_length are cut there and compete too (when
    # the loop stopped early they cannot enter the n-best list anyway).
    alive_norm = tf.where(final.t >= length, final.alive_logp / max_penalty, _NEG_INF)
    all_norm = tf.concat([final.fin_norm, alive_norm], axis=1)  # [B, R+K]
    best_norm, pick = tf.math.top_k(all_norm, k=r)  # [B, R]
    valid = best_norm > _NEG_INF
    ids = _gather_rows(tf.concat([final.fin_ids, final.alive_ids], 1), pick)
    ids = tf.where(valid[:, :, None], ids, 0)
    lengths = _gather_rows(
        tf.concat([final.fin_len, tf.fill(tf.shape(final.alive_logp), length)], 1), pick
    )
    lengths = tf.where(valid, lengths, 0)
    scores = _gather_rows(tf.concat([final.fin_logp, final.alive_logp], 1), pick)
    attention = None
    if return_attention:
        attention = _gather_rows(tf.concat([final.fin_att, final.alive_att], 1), pick)
        attention = tf.where(
            valid[:, :, None, None], attention, tf.zeros_like(attention)
        )
    return DecodeResult(ids=ids, lengths=lengths, scores=scores, attention=attention)
