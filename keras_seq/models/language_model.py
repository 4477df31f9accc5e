"""`RNNLanguageModel`: an embedding, stacked LSTM/GRU/SimpleRNN layers, softmax.

Trained with Keras `fit` over truncated-BPTT streams (stateful, per-row resets
at document boundaries) and decoded through the shared generative contract
`initial_state(prompt_ids)` / `step(tokens, state)`.
"""

import keras
from keras import ops

from keras_seq.layers.recurrent import GRU, LSTM, SimpleRNN
from keras_seq.layers.sampled_softmax import (
    SampledSoftmax,
    SampledSoftmaxModel,
    check_sampled_softmax,
)
from keras_seq.models.generative import LanguageModel
from keras_seq.text import PAD_ID as _PAD_ID
from keras_seq.utils import check_ids

__all__ = ["RNNLanguageModel"]

_CELLS = {"lstm": LSTM, "gru": GRU, "rnn": SimpleRNN}


def _check_config(
    vocab_size, embedding_dim, units, num_layers, cell, dropout, batch_size, stateful,
    sampled_softmax,
):
    """Validates `RNNLanguageModel`'s arguments; returns the checked `sampled_softmax`."""
    for arg, value in (
        ("vocab_size", vocab_size),
        ("embedding_dim", embedding_dim),
        ("units", units),
        ("num_layers", num_layers),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"`{arg}` must be a positive integer; received {value!r}."
            )
    if cell not in _CELLS:
        raise ValueError(
            f"`cell` must be one of {sorted(_CELLS)}; received {cell!r}."
        )
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1); received {dropout!r}.")
    if stateful:
        if (
            batch_size is None
            or isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or batch_size < 1
        ):
            raise ValueError(
                "`stateful=True` needs a fixed positive integer "
                f"`batch_size` (rows of carried state); received "
                f"batch_size={batch_size!r}. Pass `stateful=False` for a "
                "model that starts every call from a zero state."
            )
    return check_sampled_softmax("RNNLanguageModel", sampled_softmax, vocab_size)


@keras.saving.register_keras_serializable(package="keras_seq")
class RNNLanguageModel(LanguageModel, SampledSoftmaxModel, keras.Model):
    """Word- or character-level recurrent language model.

    `tokens -> Embedding -> dropout -> [RNN -> dropout] x num_layers ->
    (projection) -> softmax logits` (Zaremba et al. 2014 style: dropout on the
    non-recurrent connections only). The RNN layers are
    `keras_seq.layers.LSTM` / `GRU` / `SimpleRNN`, so the training path is one
    symbolic loop per layer (cuDNN on GPU for LSTM/GRU), never a Python loop
    over time steps.

    Training (truncated BPTT, `stateful=True`, the default): the recurrent
    state lives in the RNN layers' state variables, shape `[batch_size,
    units]`; the final state of one batch is the initial state of the next
    batch, row by row. Feed `{"tokens": int32 [B, T], "reset": bool [B]}`:
    rows where `reset` is true start from a zero state (a new document or
    stream begins in that row); the reset is a tensor op inside the compiled
    train step. Every batch must have exactly `batch_size` rows and the
    dataset must not be shuffled across batches. Call `reset_states()` at the
    start of each epoch and before evaluating (Keras callbacks
    `on_epoch_begin` and `on_test_begin`): evaluation runs through the same
    state variables. Loss: `SparseCategoricalCrossentropy(from_logits=True)`;
    perplexity = exp(mean cross-entropy).

    Sampled softmax (`sampled_softmax=N > 0`): the softmax is computed by
    `output_head`, a `keras_seq.layers.SampledSoftmax` over the weights of
    `output_layer` (or of the tied embedding), for every N, so the weights
    and their saved layout do not depend on N. `fit` then
    trains on the sampled-softmax loss over N shared log-uniform negatives
    (`call(..., training=True)` returns the last hidden states `[B, T, d]`,
    not logits), while `evaluate`, `predict`, `call(training=False)` and
    `step` give full logits, so `evaluate` reports the compiled loss on the
    full softmax (or, compiled with `loss=None`, the full cross-entropy) and
    perplexities are full ones. Sort the vocabulary by decreasing frequency
    (keras_seq's tokenizers do): the sampler is log-uniform (Zipfian).

    Decoding (stateless, any batch size `N`, never touches the state
    variables):

        state = model.initial_state(prompt_ids)  # int32 [N, T], 0-padded
        start_ids = model.start_tokens(prompt_ids)  # int32 [N]
        logits, state = model.step(start_ids, state)  # next-token logits

    The state is a dict of float32 `[N, units]` tensors, `"h_0"`, `"h_1"`, ...
    plus `"c_0"`, ... for LSTM. `initial_state` reads every real prompt
    token except the last one;
    `start_tokens` returns that last token, which is what the decoder
    feeds first (`decode(model.step, state, start_ids, ...)`). An empty prompt
    (all padding) starts from a zero state with `start_ids = BOS` (id 2).
    `generate()` does all of this.

    Args:
        vocab_size: int, number of token ids (logits are `[..., vocab_size]`).
        embedding_dim: int, size of the token embeddings.
        units: int, state size of every recurrent layer.
        num_layers: int >= 1, number of stacked recurrent layers.
        cell: `"lstm"`, `"gru"` or `"rnn"` (tanh `SimpleRNN`).
        dropout: float in [0, 1), dropout rate on embeddings, between layers
            and before the softmax (training only).
        tie_embeddings: bool; share the embedding matrix with the softmax
            weights (Press & Wolf 2017, Inan et al. 2017). When
            `embedding_dim != units` a linear projection `units ->
            embedding_dim` (no bias) is inserted before the tied softmax.
        batch_size: int; required when `stateful=True` (rows of carried
            state); ignored otherwise.
        stateful: bool; carry state across batches (truncated BPTT). With
            `False` every call starts from zeros and `reset` is ignored.
        sampled_softmax: int, negatives of the sampled softmax used by `fit`
            (0 = full softmax, the default); must be smaller than
            `vocab_size`.
        **kwargs: `keras.Model` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: int tensor `[B, T]` of token ids, or a dict
            `{"tokens": int [B, T], "reset": bool [B]}` (`reset` optional).
        training: whether dropout is active.

    Returns:
        logits `float32 [B, T, vocab_size]` (float32 also under mixed
        precision); hidden states `[B, T, d]` when `training` with
        `sampled_softmax > 0`.

    Example:

    >>> model = keras_seq.models.RNNLanguageModel(
    ...     vocab_size=50, embedding_dim=16, units=16, batch_size=4)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(
    ...     from_logits=True))
    >>> # ds yields ({"tokens": [4, 35], "reset": [4]}, labels [4, 35])
    >>> model.fit(ds, epochs=1, shuffle=False,
    ...           callbacks=[keras.callbacks.LambdaCallback(
    ...               on_epoch_begin=lambda e, l: model.reset_states())])
    >>> result = model.generate(prompt_ids, max_length=20)
    """

    # The SampledSoftmax layer that `SampledSoftmaxModel` wires into fit/evaluate.
    _output_head_attribute = "output_head"

    def __init__(
        self,
        vocab_size,
        embedding_dim=200,
        units=200,
        num_layers=2,
        cell="lstm",
        dropout=0.0,
        tie_embeddings=False,
        batch_size=None,
        stateful=True,
        sampled_softmax=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        sampled_softmax = _check_config(
            vocab_size, embedding_dim, units, num_layers, cell, dropout, batch_size,
            stateful, sampled_softmax,
        )
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell = cell
        self.dropout = float(dropout)
        self.tie_embeddings = bool(tie_embeddings)
        self.batch_size = batch_size
        self.stateful = bool(stateful)
        self.sampled_softmax = sampled_softmax

        self._make_layers()
        # All shapes follow from the config: build now. The recorded input
        # shape (and `input_dtype`) give Keras/TF a valid default signature
        # when the model is saved inside a SavedModel.
        self.build((batch_size if self.stateful else None, None))

    def _make_layers(self):
        """Creates the embedding, recurrent stack, projection and softmax head."""
        vocab_size, embedding_dim, units = self.vocab_size, self.embedding_dim, self.units
        num_layers, cell = self.num_layers, self.cell
        if self.tie_embeddings:
            # One [vocab, embedding_dim] table: the lookup, and (transposed)
            # the softmax weights of `output_head` (computed in float32).
            self.embedding = keras.layers.ReversibleEmbedding(
                vocab_size,
                embedding_dim,
                tie_weights=True,
                reverse_dtype="float32",
                name="embedding",
            )
        else:
            self.embedding = keras.layers.Embedding(
                vocab_size, embedding_dim, name="embedding"
            )
        self.dropout_layers = [
            keras.layers.Dropout(self.dropout, name=f"dropout_{i}")
            for i in range(num_layers + 1)
        ]
        layer_cls = _CELLS[cell]
        self.rnn_layers = [
            layer_cls(
                units,
                return_sequences=True,
                stateful=self.stateful,
                name=f"{cell}_{i}",
            )
            for i in range(num_layers)
        ]
        self.projection = None
        self.output_layer = None
        if self.tie_embeddings:
            if embedding_dim != units:
                self.projection = keras.layers.Dense(
                    embedding_dim, use_bias=False, name="projection"
                )
        else:
            # Holds the softmax weights (kernel [d, V], bias [V]); float32 so
            # logits stay float32 under mixed precision.
            self.output_layer = keras.layers.Dense(
                vocab_size, dtype="float32", name="logits"
            )
        self.output_bias = None
        # The softmax itself: full logits, or the sampled loss in training.
        # It owns no weight (the saved layout is the same for every
        # `sampled_softmax`): untied, it uses `output_layer`'s kernel and
        # bias; tied, the embedding table and the model's `output_bias`.
        if self.tie_embeddings:
            tie = dict(
                tied_embedding=self.embedding, tied_bias=lambda: self.output_bias
            )
        else:
            tie = dict(tied_dense=self.output_layer)
        self.output_head = SampledSoftmax(
            vocab_size,
            num_sampled=self.sampled_softmax,
            dtype="float32",
            name="softmax",
            **tie,
        )

    @property
    def input_dtype(self):
        """Token ids: Keras converts call inputs to int32, never to floats."""
        return "int32"

    # ------------------------------------------------------------- building
    def build(self, input_shape=None):
        """Create every weight; shapes follow from the config alone."""
        if self.built:
            return  # Built in __init__; `build_from_config` lands here.
        batch = self.batch_size if self.stateful else None
        self.embedding.build((batch, None))
        dim = self.embedding_dim
        for layer in self.rnn_layers:
            # Stateful layers create their [batch_size, units] state here.
            layer.build((batch, None, dim))
            dim = self.units
        if self.projection is not None:
            self.projection.build((batch, None, dim))
            dim = self.embedding_dim
        if self.tie_embeddings:
            self.output_bias = self.add_weight(
                shape=(self.vocab_size,),
                initializer="zeros",
                dtype="float32",
                name="output_bias",
            )
        else:
            self.output_layer.build((batch, None, dim))
        self.output_head.build((batch, None, dim))  # creates no weight

    # ------------------------------------------------------------- training
    def _split_inputs(self, inputs):
        if isinstance(inputs, dict):
            if "tokens" not in inputs:
                raise ValueError(
                    "RNNLanguageModel inputs given as a dict need a 'tokens' "
                    f"entry; received keys {sorted(inputs)}."
                )
            unknown = set(inputs) - {"tokens", "reset"}
            if unknown:
                raise ValueError(
                    f"Unexpected RNNLanguageModel input keys {sorted(unknown)}; "
                    "expected 'tokens' and optionally 'reset'."
                )
            tokens, reset = inputs["tokens"], inputs.get("reset")
        else:
            tokens, reset = inputs, None
        tokens = self._check_ids(tokens, rank=2, what="tokens")
        if reset is not None:
            reset = ops.convert_to_tensor(reset)
            if len(reset.shape) != 1:
                raise ValueError(
                    "`reset` must be a bool vector [batch]; received shape "
                    f"{tuple(reset.shape)}."
                )
            reset = ops.cast(reset, "bool")
        return tokens, reset

    @staticmethod
    def _check_ids(ids, rank, what):
        return check_ids(ids, what, rank)

    def call(self, inputs, training=False):
        tokens, reset = self._split_inputs(inputs)
        x = self.embedding(tokens)  # [B, T, E]
        x = self.dropout_layers[0](x, training=training)
        for layer, drop in zip(self.rnn_layers, self.dropout_layers[1:]):
            x = layer(x, training=training, reset=reset)  # [B, T, U]
            x = drop(x, training=training)
        # Full logits, or the softmax inputs when training with sampling.
        return self.output_head.model_outputs(self._softmax_inputs(x), training=training)

    def _softmax_inputs(self, x):
        """`[..., units]` RNN outputs -> the inputs of the softmax layer."""
        if self.projection is not None:
            x = self.projection(x)  # [..., embedding_dim] (tied)
        return x

    def _logits(self, x):
        """`[..., units]` hidden states -> float32 `[..., vocab]` logits."""
        return ops.cast(self.output_head(self._softmax_inputs(x)), "float32")

    def reset_states(self, mask=None):
        """Zero the carried state (call at each epoch start).

        Args:
            mask: optional bool `[batch_size]`; only those rows are reset.
        """
        for layer in self.rnn_layers:
            if layer.stateful:
                layer.reset_state(mask)

    # ------------------------------------------------------------- decoding
    def _state_names(self, index):
        if self.cell == "lstm":
            return (f"h_{index}", f"c_{index}")
        return (f"h_{index}",)

    def initial_state(self, prompt_ids):
        """Read prompts once (stateless) and return the decoding state.

        Reads every real token of each prompt except the last one (see
        `start_tokens`, which the decoder must feed first). Works for
        any `N`, does not read or write the training state variables, and
        traces in `tf.function`/XLA/SavedModel (portable while loop, no cuDNN).

        Args:
            prompt_ids: int `[N, T]`, right-padded with 0 (`T >= 1`).

        Returns:
            dict of float32 `[N, units]` tensors: `"h_{i}"` for every layer
            `i`, plus `"c_{i}"` for LSTM.
        """
        prompt = self._check_ids(prompt_ids, rank=2, what="prompt_ids")
        if prompt.shape[1] == 0:
            raise ValueError("`prompt_ids` has no time steps (shape [N, 0]).")
        lengths = ops.sum(ops.cast(ops.not_equal(prompt, _PAD_ID), "int32"), 1)
        positions = ops.arange(ops.shape(prompt)[1], dtype="int32")
        # Read tokens 0 .. length-2; the last real token is fed by the decoder.
        mask = positions[None, :] < (lengths - 1)[:, None]  # [N, T]
        x = self.embedding(prompt)
        state = {}
        for index, layer in enumerate(self.rnn_layers):
            x, states = layer.forward(x, mask=mask)
            for name, value in zip(self._state_names(index), states):
                state[name] = ops.cast(value, "float32")
        return state

    def step(self, tokens, state):
        """One decoding step: feed `tokens`, get next-token logits.

        O(1) in the prefix length; any batch size `N`; no dropout.

        Args:
            tokens: int `[N]`.
            state: dict from `initial_state` or a previous `step`.

        Returns:
            `(logits float32 [N, vocab_size], new_state)`.
        """
        tokens = self._check_ids(tokens, rank=1, what="tokens")
        x = self.embedding(tokens)  # [N, E]
        new_state = {}
        for index, layer in enumerate(self.rnn_layers):
            names = self._state_names(index)
            missing = [n for n in names if n not in state]
            if missing:
                raise ValueError(
                    f"`state` is missing {missing}; expected the dict returned "
                    "by `initial_state` / `step`."
                )
            x, states = layer.step(x, [state[n] for n in names])
            for name, value in zip(names, states):
                new_state[name] = ops.cast(value, "float32")
        return self._logits(x), new_state

    # -------------------------------------------------------- serialization
    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "cell": self.cell,
            "dropout": self.dropout,
            "tie_embeddings": self.tie_embeddings,
            "batch_size": self.batch_size,
            "stateful": self.stateful,
            "sampled_softmax": self.sampled_softmax,
        }
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

