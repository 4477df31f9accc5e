"""Decoding strategies (`Greedy`, `BeamSearch`), the GNMT length penalty,
`DecodeOptions`, and strategy/sampler validation and (de)serialization."""

import collections.abc
import dataclasses
from typing import Optional

import tensorflow as tf

from keras_seq.decoding.config import DecodingConfig
from keras_seq.decoding.sampling import RandomSampler
from keras_seq.decoding.tensor_utils import is_runtime
from keras_seq.decoding.tensor_utils import runtime_scalar
from keras_seq.utils import is_int as _is_int
from keras_seq.utils import is_number as _is_number

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


class Greedy(DecodingConfig):
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




class BeamSearch(DecodingConfig):
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

    Each argument may also be a scalar tensor chosen at run time (an export's
    per-request inputs; int32 `beam_size` and `num_return`, float32
    `length_penalty`), checked in the graph (`tf.debugging.Assert`). A runtime
    `beam_size` or `num_return` makes the beam and n-best dimensions dynamic
    (no XLA); the same values give the same hypotheses as Python settings.

    Example:
    ```python
    result = decode(model.step, model.initial_state(source), start_ids,
                    end_id=EOS_ID, max_length=50,
                    strategy=BeamSearch(4, length_penalty=0.6, num_return=2))
    result.ids      # int32 [B, 2, 50]
    ```
    """

    def __init__(self, beam_size, length_penalty=0.0, num_return=1):
        runtime = [is_runtime(v) for v in (beam_size, length_penalty, num_return)]
        if runtime[0]:
            beam_size = runtime_scalar(
                beam_size, "beam_size", tf.int32, lambda v: v >= 1, "an integer >= 1"
            )
        elif not _is_int(beam_size) or beam_size < 1:
            raise ValueError(
                f"`beam_size` must be an integer >= 1, got {beam_size!r}."
            )
        if runtime[1]:
            length_penalty = runtime_scalar(
                length_penalty, "length_penalty", tf.float32,
                lambda v: tf.math.is_finite(v) & (v >= 0.0), "a finite number >= 0",
            )
        elif not _is_number(length_penalty) or not (
            0.0 <= float(length_penalty) < float("inf")
        ):
            raise ValueError(
                "`length_penalty` (the GNMT alpha) must be a finite number "
                f">= 0, got {length_penalty!r}."
            )
        if runtime[2]:
            num_return = runtime_scalar(
                num_return, "num_return", tf.int32, lambda v: v >= 1, "an integer >= 1"
            )
        elif not _is_int(num_return) or num_return < 1:
            raise ValueError(
                f"`num_return` must be an integer >= 1, got {num_return!r}."
            )
        if runtime[0] or runtime[2]:
            num_return = runtime_scalar(
                num_return, "num_return", tf.int32, lambda v: v <= beam_size,
                "at most `beam_size`",
            )
        elif num_return > beam_size:
            raise ValueError(
                f"`num_return` ({num_return}) cannot exceed `beam_size` "
                f"({beam_size})."
            )
        self.beam_size = beam_size if runtime[0] else int(beam_size)
        self.length_penalty = length_penalty if runtime[1] else float(length_penalty)
        self.num_return = num_return if runtime[0] or runtime[2] else int(num_return)

    def get_config(self):
        return {
            "beam_size": self.beam_size,
            "length_penalty": self.length_penalty,
            "num_return": self.num_return,
        }




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
    config = obj.get_config()
    if any(is_runtime(value) for value in config.values()):
        raise TypeError(f"Cannot serialize {type(obj).__name__} with runtime (tensor) settings.")
    return {"class_name": type(obj).__name__, "config": config}


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
