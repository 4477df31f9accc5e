"""The generative-model contract: `initial_state`, `step`, and one `generate`.

Every generative model of keras_seq (the recurrent and Transformer language
models, the attention encoder-decoder and the Transformer translator) mixes in
`GenerativeModel` and implements

    state = model.initial_state(inputs)          # nest of tensors, leading dim N
    logits, state = model.step(tokens, state)    # int32 [N] -> float32 [N, vocab]

plus, where the defaults do not fit, the start tokens of a batch and its length
limits. Everything downstream is written once against this class: `generate`
(over `keras_seq.decoding.decode`), the export signatures and the pipelines.
Nothing downstream probes method signatures or attributes.
"""

from keras import ops

from keras_seq.utils import check_ids
from keras_seq.utils import check_positive_int

PAD_ID = 0
BOS_ID = 2
EOS_ID = 3

__all__ = ["GenerativeModel", "LanguageModel", "TranslationModel"]


class GenerativeModel:
    """Mixin of every generative keras_seq model (put it before `keras.Model`).

    Subclasses implement `initial_state` and `step`, set the class attributes
    below, and override `start_tokens`, `input_length_limit` and
    `output_length_limit` where the defaults do not fit. `generate` is the one
    decoding entry point; it runs `keras_seq.decoding.decode` inside one
    `tf.while_loop`, so it works eagerly, in `tf.function`, under XLA, in an
    exported SavedModel and converted to ONNX.

    Class attributes:
        task: `"language_model"` (continue prompts) or `"translation"` (map a
            source sequence to a target one).
        input_name: the name of the id input (`"prompt_ids"`/`"source_ids"`),
            used in messages and export signatures.
        start_id: the token fed first when an input gives none (BOS = 2).
        end_id: the token that ends a hypothesis (EOS = 3).
        supports_attention: whether `step` records attention weights in the
            state's `"attention"` entry (`generate(return_attention=True)`).

    Example:

    ```python
    model = keras_seq.models.RNNLanguageModel(vocab_size=1000)
    result = model.generate(prompt_ids, max_length=20,
                            sampler=keras_seq.decoding.RandomSampler(seed=1))
    result.ids        # int32 [N, 1, 20]

    # The same loop, driven by hand:
    state, start = model.start(prompt_ids, max_length=20)
    keras_seq.decoding.decode(model.step, state, start, end_id=model.end_id,
                              max_length=20)
    ```
    """

    task = None
    input_name = "inputs"
    start_id = BOS_ID
    end_id = EOS_ID
    supports_attention = False

    # ------------------------------------------------------------ the contract
    def initial_state(self, inputs):
        """Reads a batch of inputs once and returns the decoding state.

        Args:
            inputs: int `[N, T]` token ids, right-padded with 0.

        Returns:
            A nest (flat dict) of tensors with leading dimension N.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement initial_state().")

    def step(self, tokens, state):
        """One decoding step, O(1) in the length of what came before.

        Args:
            tokens: int `[N]`, the previous token of each row.
            state: the state from `initial_state` or the previous `step`.

        Returns:
            `(logits, state)`: float32 `[N, output_vocab_size]` and the next
            state, with the structure, dtypes and shapes of the one given.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement step().")

    @property
    def output_vocab_size(self):
        """The number of output classes of `step` (the logits' last dim)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define output_vocab_size."
        )

    @property
    def input_vocab_size(self):
        """The number of input token ids accepted (`inputs < input_vocab_size`)."""
        return self.output_vocab_size

    def start_tokens(self, inputs):
        """The first token fed to `step` for each row: `start_id` by default.

        Args:
            inputs: int `[N, T]`, the same ids given to `initial_state`.

        Returns:
            int32 `[N]`.
        """
        return ops.full((ops.shape(inputs)[0],), self.start_id, dtype="int32")

    def input_length_limit(self, max_length=None):
        """The longest input (in tokens) accepted, or None for no limit.

        Args:
            max_length: the number of tokens that will be generated; models
                whose positions hold both the input and the output (the
                Transformer language model) accept shorter inputs when more
                tokens are generated.
        """
        return None

    def output_length_limit(self):
        """The most tokens `generate` may produce, or None for no limit."""
        return None

    @property
    def default_output_length(self):
        """`generate`'s `max_length` when none is given, or None (required)."""
        return self.output_length_limit()

    def decoding_state(self, inputs, max_length):
        """`initial_state(inputs)` sized for `max_length` generated tokens.

        Models with fixed-size caches (the Transformers) override this to
        allocate only the positions that decoding will use.
        """
        return self.initial_state(inputs)

    # ----------------------------------------------------- derived, shared
    def check_output_length(self, max_length):
        """Returns `max_length` (or the default) checked against the limit."""
        owner = type(self).__name__
        if max_length is None:
            max_length = self.default_output_length
            if max_length is None:
                raise ValueError(f"{owner}: `max_length` is required.")
        max_length = check_positive_int("max_length", max_length, owner=owner)
        limit = self.output_length_limit()
        if limit is not None and max_length > limit:
            from keras_seq import errors

            raise errors.InputError(
                f"{owner}: max_length={max_length} exceeds the model's limit of "
                f"{limit} generated tokens."
            )
        return max_length

    def start(self, inputs, max_length):
        """The decoding state and start tokens for `max_length` new tokens.

        Args:
            inputs: int `[N, T]`, right-padded with 0.
            max_length: int >= 1, tokens that will be generated.

        Returns:
            `(state, start_ids)`, ready for `keras_seq.decoding.decode`.
        """
        inputs = check_ids(inputs, self.input_name, 2, owner=type(self).__name__)
        return self.decoding_state(inputs, max_length), self.start_tokens(inputs)

    def generate(
        self,
        inputs,
        max_length=None,
        strategy="greedy",
        sampler=None,
        return_attention=False,
        end_id=None,
    ):
        """Decodes a batch with `keras_seq.decoding.decode` over `step`.

        Args:
            inputs: int `[N, T]` prompts or sources, right-padded with 0
                (sources end with EOS).
            max_length: int, the most tokens to generate (EOS included);
                defaults to `default_output_length`.
            strategy: `keras_seq.decoding.Greedy()` / `"greedy"` or a
                `keras_seq.decoding.BeamSearch`.
            sampler: optional `keras_seq.decoding.RandomSampler` (greedy only).
            return_attention: record the attention weights of the returned
                hypotheses in `result.attention` (models with
                `supports_attention` only).
            end_id: the token that ends a hypothesis; defaults to `end_id`
                (an id outside the vocabulary decodes exactly `max_length`).

        Returns:
            A `keras_seq.decoding.DecodeResult`: `ids` int32 `[N, R, L]` (the
            generated tokens only, EOS included, 0 after it), `lengths`
            `[N, R]`, `scores` `[N, R]`, best first.
        """
        from keras_seq import decoding  # decoding imports nothing of the models.

        if return_attention and not self.supports_attention:
            raise ValueError(
                f"{type(self).__name__} does not record attention weights."
            )
        max_length = self.check_output_length(max_length)
        state, start = self.start(inputs, max_length)
        return decoding.decode(
            self.step,
            state,
            start,
            end_id=self.end_id if end_id is None else end_id,
            max_length=max_length,
            strategy=strategy,
            sampler=sampler,
            return_attention=return_attention,
        )


class LanguageModel(GenerativeModel):
    """A `GenerativeModel` that continues prompts (`task = "language_model"`).

    Subclasses define `vocab_size`. `initial_state(prompt_ids)` reads every
    real prompt token except the last one, which `start_tokens` returns (BOS
    for an empty prompt), so prompts of different lengths decode together.
    """

    task = "language_model"
    input_name = "prompt_ids"

    @property
    def output_vocab_size(self):
        """Classes of `step` (the vocabulary)."""
        return self.vocab_size

    @property
    def default_output_length(self):
        """No default: `generate` needs `max_length`."""
        return None

    def start_tokens(self, prompt_ids):
        """The last real token of each prompt: the decoder's `start_ids`.

        Args:
            prompt_ids: int `[N, T]`, right-padded with 0.

        Returns:
            int32 `[N]`; BOS (2) for an empty (all-padding) prompt.
        """
        prompt = check_ids(prompt_ids, "prompt_ids", 2)
        lengths = ops.sum(ops.cast(ops.not_equal(prompt, PAD_ID), "int32"), 1)
        index = ops.maximum(lengths - 1, 0)[:, None]
        last = ops.take_along_axis(prompt, index, axis=1)[:, 0]
        return ops.where(lengths > 0, last, ops.full_like(last, self.start_id))


class TranslationModel(GenerativeModel):
    """A `GenerativeModel` from a source sequence to a target (`task = "translation"`).

    Subclasses define `source_vocab_size`, `target_vocab_size` and
    `max_length` (the longest source, EOS included). Decoding starts from BOS
    and records attention weights (`generate(return_attention=True)`).
    """

    task = "translation"
    input_name = "source_ids"
    supports_attention = True

    @property
    def input_vocab_size(self):
        """Source token ids accepted."""
        return self.source_vocab_size

    @property
    def output_vocab_size(self):
        """Target classes of `step`."""
        return self.target_vocab_size

    def input_length_limit(self, max_length=None):
        """Sources up to `max_length` tokens (EOS included)."""
        return self.max_length
