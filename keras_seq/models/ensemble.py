"""`Ensemble`: several generative models decoded as one.

An ensemble is itself a `GenerativeModel`: its state nests the members'
states, and its `step` runs every member's `step` and returns the log of the
mean of their next-token probabilities,

    log p(y | ...) = log( (1/K) * sum_k softmax(logits_k) )

so greedy decoding, sampling and beam search (`keras_seq.decoding.decode`)
run it unchanged, in the one decoding loop.
"""

import math

from keras import ops

from keras_seq import errors
from keras_seq.models.generative import GenerativeModel

__all__ = ["Ensemble"]


class Ensemble(GenerativeModel):
    """Decodes with several models of one task by averaging their probabilities.

    The members must agree on what ids mean: the same task, input and output
    vocabulary sizes, and start and end tokens (that their tokenizers hold
    the same tokens is the caller's check: `Translator.from_run` with several
    runs makes it). `initial_state` is `{"members": (state_1, ..., state_K)}`
    plus, when every member records attention, `"attention"`: the mean of the
    members' attention weights (used for `<unk>` replacement and plots).

    Args:
        members: a list of two or more `GenerativeModel`s (a model may appear
            more than once).

    Raises:
        InputError: fewer than two members, or members that do not agree
            (the message names the first difference).

    Example:

    ```python
    import keras_seq as ks

    a = ks.models.load_run("runs/translator-a")
    b = ks.models.load_run("runs/translator-b")
    ensemble = ks.models.Ensemble([a, b])
    result = ensemble.generate(source_ids, strategy=ks.decoding.BeamSearch(5))
    ```
    """

    def __init__(self, members):
        members = list(members)
        if len(members) < 2:
            raise errors.InputError(f"an ensemble needs at least 2 members, got {len(members)}")
        for i, member in enumerate(members):
            if not isinstance(member, GenerativeModel):
                raise TypeError(f"ensemble member {i} is a {type(member).__name__}, "
                                "not a keras_seq GenerativeModel")
        first = members[0]
        for i, member in enumerate(members[1:], start=1):
            for what, read in _AGREE:
                mine, theirs = read(first), read(member)
                if mine != theirs:
                    raise errors.InputError(
                        f"ensemble members do not agree: member {i} has {what} {theirs!r}, "
                        f"member 0 has {mine!r}")
        self.members = members
        self.task = first.task
        self.input_name = first.input_name
        self.start_id = first.start_id
        self.end_id = first.end_id
        self.supports_attention = all(m.supports_attention for m in members)

    # ------------------------------------------------------------ vocabularies
    @property
    def input_vocab_size(self):
        """Input ids accepted (every member's)."""
        return self.members[0].input_vocab_size

    @property
    def output_vocab_size(self):
        """Classes of `step` (every member's)."""
        return self.members[0].output_vocab_size

    @property
    def source_vocab_size(self):
        """Translation members: the source vocabulary size."""
        return self.input_vocab_size

    @property
    def target_vocab_size(self):
        """Translation members: the target vocabulary size."""
        return self.output_vocab_size

    @property
    def vocab_size(self):
        """Language-model members: the vocabulary size."""
        return self.output_vocab_size

    # ------------------------------------------------------------ limits
    def input_length_limit(self, max_length=None):
        """The shortest of the members' input limits (None: no limit)."""
        return _smallest(m.input_length_limit(max_length) for m in self.members)

    def output_length_limit(self):
        """The shortest of the members' output limits (None: no limit)."""
        return _smallest(m.output_length_limit() for m in self.members)

    @property
    def default_output_length(self):
        """The shortest of the members' defaults (None: `max_length` is required)."""
        return _smallest(m.default_output_length for m in self.members)

    def start_tokens(self, inputs):
        """The first member's start tokens (the members agree on `start_id`)."""
        return self.members[0].start_tokens(inputs)

    # ------------------------------------------------------------ the contract
    def initial_state(self, inputs):
        """`{"members": (state_k, ...)}` (+ the mean `"attention"`)."""
        return self._nest([m.initial_state(inputs) for m in self.members])

    def decoding_state(self, inputs, max_length):
        """Each member's `decoding_state`, nested."""
        return self._nest([m.decoding_state(inputs, max_length) for m in self.members])

    def step(self, tokens, state):
        """Every member's step; returns `(log mean probability [N, V], state)`."""
        outputs = [m.step(tokens, s) for m, s in zip(self.members, state["members"])]
        logp = ops.stack([ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
                          for logits, _ in outputs])  # [K, N, V]
        mean = ops.logsumexp(logp, axis=0) - math.log(len(self.members))
        return mean, self._nest([s for _, s in outputs])

    def _nest(self, states):
        nested = {"members": tuple(states)}
        if self.supports_attention:
            nested["attention"] = ops.mean(ops.stack([s["attention"] for s in states]), axis=0)
        return nested


# What ensemble members must agree on: (what the message calls it, how to read it).
_AGREE = (
    ("task", lambda m: m.task),
    ("input vocabulary size", lambda m: m.input_vocab_size),
    ("output vocabulary size", lambda m: m.output_vocab_size),
    ("start id", lambda m: m.start_id),
    ("end id", lambda m: m.end_id),
)


def _smallest(values):
    values = [v for v in values if v is not None]
    return min(values) if values else None
