"""Attention encoder-decoder (Bahdanau et al., 2015; Luong et al., 2015).

    source ids [B, S] -> Embedding -> (Bi)LSTM/GRU x num_layers (masked) -> memory [B, S, De]
                                                 final states --bridge--> decoder initial states
    target_in [B, T] -> Embedding (+ previous attentional vector if input_feeding)
                     -> LSTM/GRU x num_layers -> h_t
    attention(h_t, memory, source mask) -> context c_t
    attentional vector  a_t = tanh(Wc [c_t; h_t])  -> Dense(target_vocab) -> logits (float32)

Training on `{"source", "target_in"}` returns logits `[B, T, V]`. Without input
feeding and with full teacher forcing the decoder stack runs over the whole
target in one pass and attention is computed for all steps at once; input
feeding or scheduled sampling (`teacher_forcing_ratio < 1`) run an in-graph
`tf.while_loop` over target steps. Decoding uses the shared contract
`initial_state(source_ids)` / `step(tokens, state)` of `keras_seq.decoding`.
With `sampled_softmax=N > 0`, `fit` trains on a sampled softmax (the output
projection is a `keras_seq.layers.SampledSoftmax`) and everything else sees
full logits.
"""

import keras
import tensorflow as tf
from keras import ops

from keras_seq.layers.attention import BahdanauAttention, LuongAttention
from keras_seq.layers.recurrent import GRU, LSTM
from keras_seq.layers.sampled_softmax import (
    SampledSoftmax,
    SampledSoftmaxModel,
    check_sampled_softmax,
)
from keras_seq.models.generative import TranslationModel
from keras_seq.utils import check_positive_int

# Fixed token id of the shared contract (`keras_seq.text`).
PAD_ID = 0

_CELLS = {"lstm": LSTM, "gru": GRU}
_ATTENTIONS = ("bahdanau", "luong-dot", "luong-general", "luong-concat")


# --------------------------------------------------------------------------
# Loss and metric for padded targets.
# --------------------------------------------------------------------------


def masked_sparse_categorical_crossentropy(y_true, y_pred, pad_id=PAD_ID):
    """Token cross-entropy from logits, averaged over the non-padded targets.

    Args:
        y_true: int `[B, T]` target ids; positions equal to `pad_id` are ignored.
        y_pred: float logits `[B, T, V]`.
        pad_id: id of the padding token.

    Returns:
        Scalar float32: sum of the per-token losses over real tokens divided by
        the number of real tokens (0 when there is none).

    Example:

    ```python
    loss = masked_sparse_categorical_crossentropy(target_out, model(inputs))
    ```
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.cast(y_pred, "float32")
    mask = ops.not_equal(y_true, pad_id)
    labels = ops.where(mask, y_true, ops.zeros_like(y_true))
    per_token = ops.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
    mask = ops.cast(mask, "float32")
    return ops.divide_no_nan(ops.sum(per_token * mask), ops.sum(mask))


def masked_loss(pad_id=PAD_ID):
    """The Keras loss object equivalent to `masked_sparse_categorical_crossentropy`.

    `keras.losses.SparseCategoricalCrossentropy(from_logits=True,
    ignore_class=pad_id)`: its default `"sum_over_batch_size"` reduction with
    the ignore-class mask is the mean over real tokens, and it serializes with
    the model's compile config.
    """
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=pad_id, name="masked_sparse_categorical_crossentropy"
    )


@keras.saving.register_keras_serializable(package="keras_seq")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Fraction of non-padded target tokens whose argmax prediction is right.

    Args:
        pad_id: id of the padding token, ignored.
        name: metric name.

    Example:

    ```python
    model.compile("adam", loss=masked_loss(), metrics=[MaskedTokenAccuracy()])
    ```
    """

    def __init__(self, pad_id=PAD_ID, name="masked_accuracy", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = pad_id
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        predicted = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        if sample_weight is not None:
            mask = mask * ops.cast(sample_weight, "float32")
        hits = ops.cast(ops.equal(predicted, y_true), "float32") * mask
        self.correct.assign_add(ops.sum(hits))
        self.count.assign_add(ops.sum(mask))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {"pad_id": self.pad_id, "name": self.name, "dtype": self.dtype}


# --------------------------------------------------------------------------
# The model.
# --------------------------------------------------------------------------


def _check_positive_int(name, value, minimum=1):
    return check_positive_int(name, value, minimum, owner="AttentionSeq2Seq")


def _check_config(
    source_vocab_size, target_vocab_size, embedding_dim, units, num_layers, cell,
    attention, dropout, teacher_forcing_ratio, max_length, sampled_softmax,
):
    """Validates `AttentionSeq2Seq`'s arguments; returns the checked `sampled_softmax`."""
    _check_positive_int("source_vocab_size", source_vocab_size, 4)
    _check_positive_int("target_vocab_size", target_vocab_size, 4)
    _check_positive_int("embedding_dim", embedding_dim)
    _check_positive_int("units", units)
    _check_positive_int("num_layers", num_layers)
    _check_positive_int("max_length", max_length)
    if cell not in _CELLS:
        raise ValueError(
            f"AttentionSeq2Seq: `cell` must be one of {tuple(_CELLS)}; received {cell!r}."
        )
    if attention not in _ATTENTIONS:
        raise ValueError(
            f"AttentionSeq2Seq: `attention` must be one of {_ATTENTIONS}; "
            f"received {attention!r}."
        )
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(
            f"AttentionSeq2Seq: `dropout` must be in [0, 1); received {dropout!r}."
        )
    if not 0.0 <= float(teacher_forcing_ratio) <= 1.0:
        raise ValueError(
            "AttentionSeq2Seq: `teacher_forcing_ratio` must be in [0, 1]; "
            f"received {teacher_forcing_ratio!r}."
        )
    return check_sampled_softmax("AttentionSeq2Seq", sampled_softmax, target_vocab_size)


@keras.saving.register_keras_serializable(package="keras_seq")
class AttentionSeq2Seq(TranslationModel, SampledSoftmaxModel, keras.Model):
    """Recurrent encoder-decoder with attention, for translation.

    Args:
        source_vocab_size: int, size of the source vocabulary (id 0 is padding).
        target_vocab_size: int, size of the target vocabulary (0 = PAD,
            2 = BOS, 3 = EOS).
        embedding_dim: int, size of both embeddings.
        units: int, size of every RNN layer (each direction of a bidirectional
            encoder layer has `units`; their concatenation is bridged to `units`
            for the decoder's initial state).
        num_layers: int >= 1, layers of the encoder and of the decoder.
        cell: `"lstm"` or `"gru"`.
        bidirectional: bool, bidirectional encoder layers.
        attention: `"bahdanau"` (additive), `"luong-dot"`, `"luong-general"` or
            `"luong-concat"`: the score function. The architecture is Luong's
            for all four: the query is the decoder's current top state `h_t`
            (after the RNN step) and the output is the attentional vector
            `tanh(Wc [c_t; h_t])`; this is what lets the teacher-forced pass run
            the RNN over the whole target first. (Bahdanau's original feeds
            `c_t` into the RNN input; `input_feeding=True` is the Luong way of
            giving the RNN the previous attention.) For `"luong-dot"` with
            encoder outputs of another size than `units`, the encoder outputs
            are first projected to `units`.
        input_feeding: bool, Luong input feeding: the previous attentional
            vector is concatenated to the next decoder input.
        dropout: float in [0, 1), dropout on embeddings, between stacked RNN
            layers and on the attentional vector (training only).
        teacher_forcing_ratio: float in [0, 1]: during training, the probability
            of feeding the true previous token rather than the model's own
            greedy prediction (scheduled sampling). 1.0 = full teacher forcing.
        max_length: int, the longest source and target (in tokens) the model
            accepts, and the default decoding length.
        sampled_softmax: int, negatives of the sampled softmax that `fit`
            trains on (0 = full softmax, the default); must be smaller than
            `target_vocab_size`. Training passes then return the attentional
            vectors `[B, T, units]` instead of logits and the training loss is
            the sampled softmax over non-padded targets (the compiled loss, e.g.
            label smoothing, applies to evaluation only); `evaluate`,
            `predict` and `step` use the full softmax, so the loss `evaluate`
            reports is the full one. The weights (`output_projection`, a
            `Dense`) and their saved layout are the same for every N.
        **kwargs: `keras.Model` arguments (`name`, `dtype`).

    Call arguments:
        inputs: dict with `"source"` int `[B, S]` and `"target_in"` int `[B, T]`
            (0-padded; `target_in` starts with BOS).
        training: bool.

    Returns:
        float32 logits `[B, T, target_vocab_size]` (the attentional vectors
        `[B, T, units]` when `training` with `sampled_softmax > 0`).

    Decoding (`keras_seq.decoding` contract):
        `state = initial_state(source_ids)` and
        `logits, state = step(tokens, state)`; see `initial_state` for the
        state layout. `generate` runs the whole search.

    Example:

    ```python
    model = keras_seq.models.AttentionSeq2Seq(8000, 8000, units=256,
                                              attention="luong-general")
    model.compile(optimizer="adam")   # masked loss + masked accuracy by default
    model.fit(train_ds, epochs=10)    # ({"source", "target_in"}, target_out)
    result = model.generate(source_ids, strategy=BeamSearch(4))
    ```
    """

    # The SampledSoftmax layer that `SampledSoftmaxModel` wires into fit/evaluate.
    _output_head_attribute = "output_head"

    @property
    def default_output_length(self):
        """`max_length` target tokens unless `generate` is told otherwise."""
        return self.max_length

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        embedding_dim=256,
        units=256,
        num_layers=1,
        cell="lstm",
        bidirectional=True,
        attention="bahdanau",
        input_feeding=False,
        dropout=0.0,
        teacher_forcing_ratio=1.0,
        max_length=128,
        sampled_softmax=0,
        **kwargs,
    ):
        sampled_softmax = _check_config(
            source_vocab_size, target_vocab_size, embedding_dim, units, num_layers,
            cell, attention, dropout, teacher_forcing_ratio, max_length, sampled_softmax,
        )
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell = cell
        self.bidirectional = bool(bidirectional)
        self.attention_type = attention
        self.input_feeding = bool(input_feeding)
        self.dropout = float(dropout)
        self.teacher_forcing_ratio = float(teacher_forcing_ratio)
        self.max_length = max_length
        self.sampled_softmax = sampled_softmax

        self._state_names = ("h", "c") if cell == "lstm" else ("h",)
        encoder_dim, memory_dim = self._make_encoder()
        self._make_decoder()
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self._seed_generator = keras.random.SeedGenerator()

        self._build_all(encoder_dim, memory_dim)

    # ------------------------------------------------------------ building
    def _make_encoder(self):
        """Creates the source embedding, encoder stack, bridges and memory projection.

        Returns:
            `(encoder_dim, memory_dim)`: the encoder outputs' and the attention
            memory's widths.
        """
        policy, rnn_class = self.dtype_policy, _CELLS[self.cell]
        units, cell, num_layers = self.units, self.cell, self.num_layers
        self.source_embedding = keras.layers.Embedding(
            self.source_vocab_size, self.embedding_dim, dtype=policy, name="source_embedding"
        )
        self.encoder_layers = []
        for i in range(num_layers):
            rnn = rnn_class(
                units,
                return_sequences=True,
                return_state=True,
                dtype=policy,
                name=f"encoder_{cell}_{i}",
            )
            if self.bidirectional:
                rnn = keras.layers.Bidirectional(
                    rnn, merge_mode="concat", dtype=policy, name=f"encoder_bi{cell}_{i}"
                )
            self.encoder_layers.append(rnn)
        encoder_dim = units * (2 if self.bidirectional else 1)
        # Bridges from the encoder's final states to the decoder's initial ones.
        self.bridges = []
        if self.bidirectional:
            for i in range(num_layers):
                for name in self._state_names:
                    self.bridges.append(
                        keras.layers.Dense(
                            units,
                            activation="tanh" if name == "h" else None,
                            dtype=policy,
                            name=f"bridge_{name}_{i}",
                        )
                    )
        self.memory_projection = None
        if self.attention_type == "luong-dot" and encoder_dim != units:
            self.memory_projection = keras.layers.Dense(
                units, use_bias=False, dtype=policy, name="memory_projection"
            )
        memory_dim = units if self.memory_projection is not None else encoder_dim

        return encoder_dim, memory_dim

    def _make_decoder(self):
        """Creates the target embedding, decoder stack, attention and output head."""
        policy, rnn_class = self.dtype_policy, _CELLS[self.cell]
        units, cell, num_layers = self.units, self.cell, self.num_layers
        attention, target_vocab_size = self.attention_type, self.target_vocab_size
        self.target_embedding = keras.layers.Embedding(
            target_vocab_size, self.embedding_dim, dtype=policy, name="target_embedding"
        )
        self.decoder_layers = [
            rnn_class(units, return_sequences=True, dtype=policy, name=f"decoder_{cell}_{i}")
            for i in range(num_layers)
        ]
        if attention == "bahdanau":
            self.attention = BahdanauAttention(units, dtype=policy, name="attention")
        else:
            self.attention = LuongAttention(
                attention.split("-", 1)[1], dtype=policy, name="attention"
            )
        self.attention_combine = keras.layers.Dense(
            units, activation="tanh", use_bias=False, dtype=policy, name="attention_combine"
        )
        # Logits always in float32 (mixed precision safe softmax / loss). The
        # Dense layer holds the weights; `output_head` computes the full
        # logits or the sampled loss from them and owns no weight, so the
        # saved layout does not depend on `sampled_softmax`.
        self.output_projection = keras.layers.Dense(
            target_vocab_size, dtype="float32", name="output_projection"
        )
        self.output_head = SampledSoftmax(
            target_vocab_size,
            num_sampled=self.sampled_softmax,
            tied_dense=self.output_projection,
            dtype="float32",
            name="softmax",
        )

    def _build_all(self, encoder_dim, memory_dim):
        """Creates every weight now, so `.keras` files load without a call."""
        units = self.units
        self.source_embedding.build((None, None))
        features = self.embedding_dim
        for layer in self.encoder_layers:
            layer.build((None, None, features))
            features = encoder_dim
        for bridge in self.bridges:
            bridge.build((None, encoder_dim))
        if self.memory_projection is not None:
            self.memory_projection.build((None, None, encoder_dim))
        self.target_embedding.build((None, None))
        features = self.embedding_dim + (units if self.input_feeding else 0)
        for layer in self.decoder_layers:
            layer.build((None, None, features))
            features = units
        self.attention.build((None, None, units), (None, None, memory_dim))
        self.attention_combine.build((None, memory_dim + units))
        self.output_projection.build((None, units))
        self.output_head.build((None, units))  # creates no weight
        self.built = True

    def build(self, input_shape=None):
        # Everything is built in __init__ (sizes come from the config).
        self.built = True

    # ------------------------------------------------------------- helpers
    def _check_ids(self, ids, name, rank):
        ids = ops.convert_to_tensor(ids)
        dtype = keras.backend.standardize_dtype(ids.dtype)
        if "int" not in dtype:
            raise TypeError(
                f"AttentionSeq2Seq: `{name}` must be integer token ids; received "
                f"dtype {dtype}."
            )
        if len(ids.shape) != rank:
            shape = "[N]" if rank == 1 else "[N, length]"
            raise ValueError(
                f"AttentionSeq2Seq: `{name}` must have shape {shape}; received "
                f"shape {tuple(ids.shape)}."
            )
        if rank == 2 and ids.shape[1] is not None and ids.shape[1] > self.max_length:
            raise ValueError(
                f"AttentionSeq2Seq: `{name}` has length {ids.shape[1]}, longer than "
                f"the model's max_length={self.max_length}."
            )
        return ops.cast(ids, "int32")

    def _split_states(self, flat):
        """Flat list of state tensors -> list (per layer) of lists [h(, c)]."""
        k = len(self._state_names)
        return [list(flat[i * k : (i + 1) * k]) for i in range(self.num_layers)]

    def _encode(self, source, training=False):
        """source int32 [B, S] -> (memory [B, S, Dm], mask bool [B, S], states)."""
        mask = ops.not_equal(source, PAD_ID)
        x = self.source_embedding(source)
        x = self.dropout_layer(x, training=training)
        decoder_states = []
        k = len(self._state_names)
        for i, layer in enumerate(self.encoder_layers):
            if i > 0:
                x = self.dropout_layer(x, training=training)
            outputs = layer(x, mask=mask, training=training)
            x, final = outputs[0], list(outputs[1:])
            if self.bidirectional:
                forward, backward = final[:k], final[k:]
                final = [
                    self.bridges[i * k + j](ops.concatenate([f, b], axis=-1))
                    for j, (f, b) in enumerate(zip(forward, backward))
                ]
            decoder_states.append(final)
        memory = x
        if self.memory_projection is not None:
            memory = self.memory_projection(memory)
        return memory, mask, decoder_states

    def _combine(self, context, h):
        """Luong's attentional vector tanh(Wc [context; h])."""
        return self.attention_combine(
            ops.concatenate([ops.cast(context, h.dtype), h], axis=-1)
        )

    def _decoder_step(self, x, states, memory, keys, mask, masks=None, logits=True):
        """One decoder step on an embedded (and input-fed) input x [N, F].

        `masks` (training only) holds pre-drawn dropout masks for this step:
        (between-layer masks, attentional-vector mask). With `logits=False`
        the output projection is skipped (the first output is None).
        """
        new_states = []
        h = x
        for i, layer in enumerate(self.decoder_layers):
            if i > 0 and masks is not None:
                h = h * masks[0][i - 1]
            h, layer_states = layer.step(h, states[i])
            new_states.append(layer_states)
        context, weights = self.attention(h, memory, mask=mask, projected_keys=keys)
        attentional = self._combine(context, h)
        if masks is not None:
            attentional = attentional * masks[1]
        if not logits:
            return None, new_states, attentional, weights
        return self.output_head(attentional), new_states, attentional, weights

    # ------------------------------------------------------------- forward
    def call(self, inputs, training=False):
        outputs, _ = self._forward(inputs, training=training)
        return outputs

    def _unpack_inputs(self, inputs):
        if not isinstance(inputs, dict) or not {"source", "target_in"} <= set(inputs):
            raise ValueError(
                "AttentionSeq2Seq expects a dict with keys 'source' [B, S] and "
                f"'target_in' [B, T]; received {type(inputs).__name__}"
                + (f" with keys {sorted(inputs)}" if isinstance(inputs, dict) else "")
                + "."
            )
        source = self._check_ids(inputs["source"], "source", 2)
        target_in = self._check_ids(inputs["target_in"], "target_in", 2)
        return source, target_in

    def _forward(self, inputs, training=False):
        """Returns (logits [B, T, V] float32, attention weights [B, T, S]).

        In a training pass with a sampled softmax the first output is the
        attentional vectors [B, T, units] instead of logits.
        """
        source, target_in = self._unpack_inputs(inputs)
        memory, mask, states = self._encode(source, training=training)
        keys = self.attention.project_keys(memory)
        scheduled = bool(training) and self.teacher_forcing_ratio < 1.0
        if self.input_feeding or scheduled:
            return self._forward_loop(target_in, memory, keys, mask, states, training)

        # Full teacher forcing: the whole target through each RNN layer, then
        # attention for all steps at once.
        y = self.target_embedding(target_in)
        y = self.dropout_layer(y, training=training)
        for i, layer in enumerate(self.decoder_layers):
            if i > 0:
                y = self.dropout_layer(y, training=training)
            y = layer(y, initial_state=states[i], training=training)
        context, weights = self.attention(y, memory, mask=mask, projected_keys=keys)
        attentional = self._combine(context, y)
        attentional = self.dropout_layer(attentional, training=training)
        return self.output_head.model_outputs(attentional, training=training), weights

    def _dropout_mask(self, shape, training):
        if not training or self.dropout == 0.0:
            return None
        ones = ops.ones(shape, dtype=self.compute_dtype)
        return keras.random.dropout(ones, self.dropout, seed=self._seed_generator)

    def _forward_loop(self, target_in, memory, keys, mask, states, training):
        """Step-by-step decoding over the target inside one tf.while_loop.

        Returns (logits [B, T, V] float32, or the attentional vectors [B, T,
        units] float32 in a sampled-softmax training pass; weights [B, T, S]).
        """
        batch = ops.shape(target_in)[0]
        length = ops.shape(target_in)[1]
        units = self.units
        hidden_outputs = self.output_head.uses_hidden_outputs(training)
        scheduled = bool(training) and self.teacher_forcing_ratio < 1.0
        # Full logits are needed as outputs, or for scheduled sampling's
        # greedy predictions (no gradient flows through those).
        need_logits = scheduled or not hidden_outputs
        # Per-step randomness is drawn before the loop (time-major).
        if scheduled:
            coins = keras.random.uniform((length, batch), seed=self._seed_generator)
            use_truth = ops.less(coins, self.teacher_forcing_ratio)
        else:
            use_truth = ops.ones((length, batch), dtype="bool")
        emb_masks = self._dropout_mask((length, batch, self.embedding_dim), training)
        layer_masks = [
            self._dropout_mask((length, batch, units), training)
            for _ in range(self.num_layers - 1)
        ]
        att_masks = self._dropout_mask((length, batch, units), training)
        truth = ops.transpose(target_in)  # [T, B]

        flat_states = [s for layer_states in states for s in layer_states]
        feed = ops.zeros((batch, units), dtype=self.compute_dtype)
        previous = truth[0]
        outputs_ta = tf.TensorArray(
            tf.float32,
            size=length,
            element_shape=(None, units if hidden_outputs else self.target_vocab_size),
        )
        weights_ta = tf.TensorArray(tf.float32, size=length, element_shape=keys.shape[:2])

        def body(t, flat_states, feed, previous, outputs_ta, weights_ta):
            tokens = tf.where(use_truth[t], truth[t], previous)
            x = self.target_embedding(tokens)
            if emb_masks is not None:
                x = x * emb_masks[t]
            if self.input_feeding:
                x = ops.concatenate([x, feed], axis=-1)
            masks = None
            if att_masks is not None:
                masks = ([m[t] for m in layer_masks], att_masks[t])
            logits, new_states, attentional, weights = self._decoder_step(
                x, self._split_states(flat_states), memory, keys, mask, masks,
                logits=need_logits,
            )
            if need_logits:
                previous = tf.cast(tf.argmax(logits, axis=-1), tf.int32)
            else:  # full teacher forcing: the prediction is never fed back
                previous = tokens
            output = tf.cast(attentional, tf.float32) if hidden_outputs else logits
            new_flat = [
                tf.cast(s, old.dtype)
                for s, old in zip(
                    [s for layer_states in new_states for s in layer_states],
                    flat_states,
                )
            ]
            return (
                t + 1,
                new_flat,
                tf.cast(attentional, feed.dtype),
                previous,
                outputs_ta.write(t, output),
                weights_ta.write(t, weights),
            )

        _, _, _, _, outputs_ta, weights_ta = tf.while_loop(
            lambda t, *_: t < length,
            body,
            (tf.constant(0), flat_states, feed, previous, outputs_ta, weights_ta),
            maximum_iterations=length,  # XLA needs it to bound the gradient stacks.
        )
        outputs = tf.transpose(outputs_ta.stack(), [1, 0, 2])  # [B, T, V or units]
        weights = tf.transpose(weights_ta.stack(), [1, 0, 2])  # [B, T, S]
        return outputs, weights

    def attention_map(self, source_ids, target_in):
        """Attention weights of a teacher-forced pass (inference mode).

        Args:
            source_ids: int `[B, S]`.
            target_in: int `[B, T]` (BOS + target tokens).

        Returns:
            float32 `[B, T, S]`: the weights over the source at each target
            step (exactly 0 at padded source positions).
        """
        _, weights = self._forward(
            {"source": source_ids, "target_in": target_in}, training=False
        )
        return weights

    # ---------------------------------------------------------- decoding
    def initial_state(self, source_ids):
        """Encodes a batch of sources into the decoding state.

        Args:
            source_ids: int `[N, S]`, right-padded with 0 (source + EOS).

        Returns:
            A flat dict of tensors, every one with leading dimension N:

            - `"encoder_outputs"`: `[N, S, Dm]`, the attention values (Dm =
              units, or 2 * units for a bidirectional encoder unless the
              attention is `"luong-dot"`).
            - `"projected_keys"`: `[N, S, K]`, `attention.project_keys` of them.
            - `"source_mask"`: bool `[N, S]`, True on real source tokens.
            - `"decoder_h_{i}"` (and `"decoder_c_{i}"` for LSTM), `[N, units]`
              for each decoder layer i.
            - `"input_feed"`: `[N, units]`, the previous attentional vector
              (only when `input_feeding=True`).
            - `"attention"`: float32 `[N, S]`, the attention weights of the
              latest step (zeros before the first step).
        """
        source = self._check_ids(source_ids, "source_ids", 2)
        memory, mask, states = self._encode(source, training=False)
        state = {
            "encoder_outputs": memory,
            "projected_keys": self.attention.project_keys(memory),
            "source_mask": mask,
        }
        for i, layer_states in enumerate(states):
            for name, tensor in zip(self._state_names, layer_states):
                state[f"decoder_{name}_{i}"] = tensor
        if self.input_feeding:
            state["input_feed"] = ops.zeros(
                (ops.shape(source)[0], self.units), dtype=self.compute_dtype
            )
        state["attention"] = ops.zeros(ops.shape(source), dtype="float32")
        return state

    def step(self, tokens, state):
        """One decoding step.

        Args:
            tokens: int `[N]`, the previous target token (BOS at the start).
            state: the dict from `initial_state` or the previous `step`.

        Returns:
            `(logits, state)`: float32 logits `[N, target_vocab_size]` and the
            next state (same keys, shapes and dtypes).
        """
        tokens = self._check_ids(tokens, "tokens", 1)
        x = self.target_embedding(tokens)
        if self.input_feeding:
            x = ops.concatenate([x, ops.cast(state["input_feed"], x.dtype)], axis=-1)
        states = [
            [state[f"decoder_{name}_{i}"] for name in self._state_names]
            for i in range(self.num_layers)
        ]
        logits, new_states, attentional, weights = self._decoder_step(
            x,
            states,
            state["encoder_outputs"],
            state["projected_keys"],
            state["source_mask"],
        )
        new_state = dict(state)
        for i, layer_states in enumerate(new_states):
            for name, tensor in zip(self._state_names, layer_states):
                old = state[f"decoder_{name}_{i}"]
                new_state[f"decoder_{name}_{i}"] = ops.cast(tensor, old.dtype)
        if self.input_feeding:
            new_state["input_feed"] = ops.cast(attentional, state["input_feed"].dtype)
        new_state["attention"] = ops.cast(weights, "float32")
        return ops.cast(logits, "float32"), new_state

    # ------------------------------------------------------------ training
    def compile(self, optimizer="adam", loss="auto", metrics="auto", **kwargs):
        """`keras.Model.compile` with padded-target defaults.

        `loss="auto"` is `masked_loss()` (cross-entropy averaged over
        non-padded target tokens) and `metrics="auto"` is
        `[MaskedTokenAccuracy()]`.
        """
        if loss == "auto":
            loss = masked_loss()
        if metrics == "auto":
            metrics = [MaskedTokenAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size,
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "num_layers": self.num_layers,
                "cell": self.cell,
                "bidirectional": self.bidirectional,
                "attention": self.attention_type,
                "input_feeding": self.input_feeding,
                "dropout": self.dropout,
                "teacher_forcing_ratio": self.teacher_forcing_ratio,
                "max_length": self.max_length,
                "sampled_softmax": self.sampled_softmax,
            }
        )
        return config
