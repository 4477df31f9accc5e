"""Transformer models: an encoder-decoder translator and a decoder-only LM.

Both follow the keras_seq generative contract

    state = model.initial_state(inputs)           # encode once / prefill the cache
    logits, state = model.step(tokens, state)      # one position, O(1) new work

with a per-layer key/value cache preallocated at its final length and written
at the current index (static shapes: one XLA compilation, ONNX-convertible),
and both train with Keras `fit` on a masked token loss (PAD = 0 ignored),
optionally a sampled softmax (`sampled_softmax=N`) whose evaluation is the full
softmax.
"""

import math

import keras
import tensorflow as tf
from keras import ops

from keras_seq import errors
from keras_seq.layers.sampled_softmax import (
    SampledSoftmax,
    SampledSoftmaxModel,
    check_sampled_softmax,
)
from keras_seq.layers.transformer import (
    PositionalEncoding,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
)
from keras_seq.models.generative import LanguageModel
from keras_seq.models.generative import TranslationModel
from keras_seq.utils import check_ids as _check_ids
from keras_seq.utils import check_positive_int

__all__ = ["Transformer", "TransformerLanguageModel"]

# Shared token-id contract (keras_seq.text).
PAD_ID = 0


def _check_positive_int(owner, name, value, minimum=1):
    return check_positive_int(name, value, minimum, owner=owner)


def _check_cache_length(owner, cache_length, max_length):
    if cache_length is None:
        return max_length
    _check_positive_int(owner, "cache_length", cache_length)
    if cache_length > max_length:
        raise errors.InputError(
            f"{owner}: cache_length={cache_length} exceeds the model's "
            f"max_length={max_length} positions."
        )
    return cache_length


class _TransformerBase(SampledSoftmaxModel, keras.Model):
    """Decoder stack and output head shared by both models (loss wiring:
    `SampledSoftmaxModel`)."""

    _output_head_attribute = "head"

    def _configure(
        self,
        vocab_size,
        d_model,
        num_heads,
        ff_dim,
        num_layers,
        dropout,
        max_length,
        tie_embeddings,
        sampled_softmax,
        norm_first,
        positional_encoding,
    ):
        """Validates and stores the shared hyper-parameters."""
        owner = type(self).__name__
        for name, value in (
            ("vocab_size", vocab_size),
            ("d_model", d_model),
            ("num_heads", num_heads),
            ("ff_dim", ff_dim),
            ("num_layers", num_layers),
            ("max_length", max_length),
        ):
            _check_positive_int(owner, name, value)
        sampled_softmax = check_sampled_softmax(owner, sampled_softmax, vocab_size)
        if d_model % num_heads:
            raise ValueError(
                f"{owner}: `num_heads` ({num_heads}) must divide `d_model` ({d_model})."
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{owner}: `dropout` must be in [0, 1); received {dropout!r}.")
        self.d_model = d_model
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.max_length = max_length
        self.tie_embeddings = bool(tie_embeddings)
        self.sampled_softmax = sampled_softmax
        self.norm_first = bool(norm_first)
        self.positional_encoding = positional_encoding
        self._embedding_scale = math.sqrt(d_model)

    def _setup_decoder(self, vocab_size, cross_attention, embedding=None):
        """Creates the target embedding (or reuses `embedding`), decoder layers and head."""
        d_model, num_heads, ff_dim = self.d_model, self.num_heads, self.ff_dim
        max_length, positional_encoding = self.max_length, self.positional_encoding
        self.target_embedding = embedding or self._make_embedding(vocab_size, "target_embedding")
        self.target_positions = PositionalEncoding(
            max_length, d_model, kind=positional_encoding, name="target_positions"
        )
        self.target_dropout = keras.layers.Dropout(self.dropout, name="target_dropout")
        self.decoder_layers = [
            TransformerDecoderLayer(
                d_model,
                num_heads,
                ff_dim,
                dropout=self.dropout,
                norm_first=self.norm_first,
                cross_attention=cross_attention,
                name=f"decoder_layer_{i}",
            )
            for i in range(self.num_layers)
        ]
        # Pre-LN stacks end with a LayerNorm (their residual stream is unnormalised).
        self.decoder_norm = self._make_final_norm("decoder_norm")
        self.head = SampledSoftmax(
            vocab_size,
            num_sampled=self.sampled_softmax,
            tied_embedding=self.target_embedding if self.tie_embeddings else None,
            name="output_projection",
        )

    def _make_embedding(self, vocab_size, name):
        # N(0, 1/d) entries scaled by sqrt(d): unit-variance inputs, and
        # unit-scale logits when the table doubles as the output kernel.
        return keras.layers.Embedding(
            vocab_size,
            self.d_model,
            embeddings_initializer=keras.initializers.RandomNormal(
                stddev=self.d_model**-0.5
            ),
            name=name,
        )

    def _make_final_norm(self, name):
        if not self.norm_first:
            return None
        return keras.layers.LayerNormalization(epsilon=1e-5, name=name)

    def _build_decoder(self):
        if not self.target_embedding.built:  # built already when shared with the source
            self.target_embedding.build((None, None))
        self.target_positions.build((None, None, self.d_model))
        for layer in self.decoder_layers:
            layer.build((None, None, self.d_model))
        if self.decoder_norm is not None:
            self.decoder_norm.build((None, None, self.d_model))
        self.head.build((None, None, self.d_model))

    # -- shared computation ----------------------------------------------------

    def _embed(self, embedding, positions_layer, dropout_layer, ids, positions, training):
        x = embedding(ids)  # [B, T, d]
        x = x * ops.cast(self._embedding_scale, x.dtype)
        x = positions_layer(x, positions=positions)
        return dropout_layer(x, training=training)

    def _decoder_hidden(self, target_ids, encoder_outputs, source_mask, training):
        """Teacher-forced decoder: ids `[B, T]` -> final hidden states `[B, T, d]`."""
        x = self._embed(
            self.target_embedding,
            self.target_positions,
            self.target_dropout,
            target_ids,
            None,
            training,
        )
        mask = ops.not_equal(target_ids, PAD_ID)
        for layer in self.decoder_layers:
            x = layer(
                x,
                encoder_outputs,
                decoder_padding_mask=mask,
                encoder_padding_mask=source_mask,
                training=training,
            )
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return x

    def _decoder_step(self, tokens, state, source_mask=None, return_attention=False):
        """One cached decoder position for every row; see the models' `step`."""
        tokens = _check_ids(tokens, "tokens", 1)
        missing = [key for key in self._state_keys() if key not in state]
        if missing:
            raise ValueError(
                f"`state` is missing {missing}; pass the dict returned by "
                "`initial_state` / `step`."
            )
        index = ops.cast(state["index"], "int32")  # [N]
        cache_length = state["self_key_0"].shape[2] or ops.shape(state["self_key_0"])[2]
        with tf.control_dependencies(
            [
                tf.debugging.assert_less(
                    index,
                    cache_length,
                    message=(
                        f"{type(self).__name__}.step: decoding past the key/value "
                        f"cache ({cache_length} positions)"
                    ),
                )
            ]
        ):
            index = tf.identity(index)
        x = self._embed(
            self.target_embedding,
            self.target_positions,
            self.target_dropout,
            tokens[:, None],
            index[:, None],
            False,
        )  # [N, 1, d]
        new_state = dict(state)
        attention = None
        last = len(self.decoder_layers) - 1
        for i, layer in enumerate(self.decoder_layers):
            cache = {"self_key": state[f"self_key_{i}"], "self_value": state[f"self_value_{i}"]}
            if layer.cross_attention:
                cache["cross_key"] = state[f"cross_key_{i}"]
                cache["cross_value"] = state[f"cross_value_{i}"]
            outputs = layer.step(
                x,
                cache,
                index,
                encoder_padding_mask=source_mask,
                return_attention=return_attention and i == last,
            )
            x, cache = outputs[0], outputs[1]
            if return_attention and i == last:
                attention = outputs[2]
            new_state[f"self_key_{i}"] = cache["self_key"]
            new_state[f"self_value_{i}"] = cache["self_value"]
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        logits = self.head(x[:, 0, :])  # float32 [N, V]
        new_state["index"] = index + 1
        if attention is not None:
            new_state["attention"] = ops.cast(attention, "float32")
        return logits, new_state

    def _state_keys(self):
        keys = ["index"]
        for i in range(self.num_layers):
            keys += [f"self_key_{i}", f"self_value_{i}"]
        return keys

    # -- training --------------------------------------------------------------

    def compile(self, optimizer="adam", loss="auto", metrics=None, **kwargs):
        """`keras.Model.compile`; the model computes its own loss by default.

        With `loss="auto"` (or None) the loss is the token cross-entropy
        averaged over non-PAD labels: the sampled softmax in training when
        `sampled_softmax > 0`, the full softmax otherwise and always in
        `evaluate`. A loss function `loss(labels [B, T], logits [B, T, V])`
        replaces the full-softmax loss (e.g. a label-smoothed one,
        `keras_seq.pipelines.translation_training.label_smoothed_loss`); a
        sampled-softmax training pass keeps its own. `metrics` (e.g.
        `keras_seq.models.MaskedTokenAccuracy()`) receive full logits; with
        `sampled_softmax > 0` they are only updated in `evaluate` (training
        computes no full logits).
        """
        if isinstance(loss, str) and loss == "auto":
            loss = None
        if loss is not None and not callable(loss):
            raise ValueError(
                f"{type(self).__name__} computes its own masked loss (PAD=0 "
                "ignored; sampled softmax when `sampled_softmax > 0`); compile "
                f"it with loss=None, 'auto' or a loss function of (labels, logits), "
                f"not {loss!r}."
            )
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        # The model is built in __init__, so Keras would create the optimizer's
        # slots inside the first trace of the train step, which makes
        # tf.function trace it twice; creating them now halves that cost.
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _base_config(self):
        return {
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "max_length": self.max_length,
            "tie_embeddings": self.tie_embeddings,
            "sampled_softmax": self.sampled_softmax,
            "norm_first": self.norm_first,
            "positional_encoding": self.positional_encoding,
        }


@keras.saving.register_keras_serializable(package="keras_seq")
class Transformer(TranslationModel, _TransformerBase):
    """Encoder-decoder Transformer for translation (Vaswani et al., 2017).

    `source -> embedding * sqrt(d) + positions -> num_layers x encoder layer`,
    `target_in -> embedding * sqrt(d) + positions -> num_layers x decoder layer
    (causal self-attention, cross-attention) -> output projection`. Pre-LN by
    default (`norm_first=True`, with a final LayerNorm on each stack).

    Training: Keras `fit` on `({"source": [B, S], "target_in": [B, T]},
    target_out [B, T])`; the loss is the cross-entropy averaged over non-PAD
    target tokens (see `compile`). With `sampled_softmax=N > 0`, `call` in
    training returns the decoder's hidden states and the loss is the sampled
    softmax over N shared log-uniform negatives; `evaluate`/`predict` always
    use full logits.

    Decoding (see `generate`):

        state = model.initial_state(source_ids)      # encodes once
        logits, state = model.step(tokens, state)    # start with tokens = BOS (2)

    Args:
        source_vocab_size: int.
        target_vocab_size: int.
        d_model: int, model width.
        num_heads: int, attention heads (must divide `d_model`).
        ff_dim: int, feed-forward hidden size.
        num_layers: int, encoder layers and decoder layers (each).
        dropout: float in [0, 1).
        max_length: int, longest source or target sequence (positions).
        tie_embeddings: share the target embedding and the output kernel.
        share_embeddings: one embedding table for the source and the target
            (a shared vocabulary: `source_vocab_size == target_vocab_size`);
            with `tie_embeddings` it is also the output kernel, so the
            model holds a single `[V, d_model]` table.
        sampled_softmax: int, sampled negatives in training (0 = full softmax);
            must be smaller than `target_vocab_size`.
        norm_first: pre-LN (True) or post-LN (False) layers.
        positional_encoding: `"sinusoidal"` or `"learned"`.
        **kwargs: `keras.Model` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: dict `{"source": int [B, S], "target_in": int [B, T]}`,
            0-padded.
        training: Python bool.

    Returns:
        float32 logits `[B, T, target_vocab_size]` (hidden states `[B, T,
        d_model]` when training with `sampled_softmax > 0`).

    Example:

    >>> model = Transformer(12, 12, d_model=32, num_heads=2, ff_dim=64,
    ...                     num_layers=1, max_length=16)
    >>> model.compile(keras.optimizers.Adam(1e-3))
    >>> model.fit(dataset, epochs=5)                   # doctest: +SKIP
    >>> result = model.generate(source_ids)       # doctest: +SKIP
    >>> result.ids[:, 0]                               # doctest: +SKIP
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        d_model=256,
        num_heads=4,
        ff_dim=1024,
        num_layers=3,
        dropout=0.1,
        max_length=256,
        tie_embeddings=False,
        sampled_softmax=0,
        norm_first=True,
        positional_encoding="sinusoidal",
        share_embeddings=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("Transformer", "source_vocab_size", source_vocab_size)
        if share_embeddings and source_vocab_size != target_vocab_size:
            raise ValueError(
                "Transformer: `share_embeddings` needs one vocabulary for both sides; "
                f"received source_vocab_size={source_vocab_size}, "
                f"target_vocab_size={target_vocab_size}."
            )
        self.share_embeddings = bool(share_embeddings)
        self._configure(  # In the order of the signature, after the vocabulary.
            target_vocab_size, d_model, num_heads, ff_dim, num_layers, dropout,
            max_length, tie_embeddings, sampled_softmax, norm_first, positional_encoding,
        )
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.source_embedding = self._make_embedding(source_vocab_size, "source_embedding")
        self.source_positions = PositionalEncoding(
            max_length, d_model, kind=positional_encoding, name="source_positions"
        )
        self.source_dropout = keras.layers.Dropout(self.dropout, name="source_dropout")
        self.encoder_layers = [
            TransformerEncoderLayer(
                d_model,
                num_heads,
                ff_dim,
                dropout=self.dropout,
                norm_first=self.norm_first,
                name=f"encoder_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = self._make_final_norm("encoder_norm")
        self._setup_decoder(target_vocab_size, cross_attention=True,
                            embedding=self.source_embedding if share_embeddings else None)
        self.build(None)

    def output_length_limit(self):
        """At most `max_length` generated tokens (the cache's positions)."""
        return self.max_length

    def decoding_state(self, inputs, max_length):
        """`initial_state` with a self-attention cache of `max_length` positions."""
        return self.initial_state(inputs, cache_length=max_length)

    def build(self, input_shape=None):
        """Creates every weight; shapes follow from the config alone."""
        if self.built:
            return
        self.source_embedding.build((None, None))
        self.source_positions.build((None, None, self.d_model))
        for layer in self.encoder_layers:
            layer.build((None, None, self.d_model))
        if self.encoder_norm is not None:
            self.encoder_norm.build((None, None, self.d_model))
        self._build_decoder()

    def _split_inputs(self, inputs):
        if not isinstance(inputs, dict) or not {"source", "target_in"} <= set(inputs):
            keys = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
            raise ValueError(
                "Transformer inputs must be a dict with 'source' [B, S] and "
                f"'target_in' [B, T] token ids; received {keys}."
            )
        source = _check_ids(inputs["source"], "source", 2)
        target_in = _check_ids(inputs["target_in"], "target_in", 2)
        return source, target_in

    def encode(self, source_ids, training=False):
        """Encodes sources once.

        Args:
            source_ids: int `[B, S]`, 0-padded.
            training: Python bool.

        Returns:
            `(encoder_outputs [B, S, d_model], source_mask bool [B, S])`.
        """
        source = _check_ids(source_ids, "source_ids", 2)
        mask = ops.not_equal(source, PAD_ID)
        x = self._embed(
            self.source_embedding,
            self.source_positions,
            self.source_dropout,
            source,
            None,
            training,
        )
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=mask, training=training)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, mask

    def call(self, inputs, training=None):
        source, target_in = self._split_inputs(inputs)
        encoder_outputs, source_mask = self.encode(source, training=training)
        hidden = self._decoder_hidden(target_in, encoder_outputs, source_mask, training)
        return self.head.model_outputs(hidden, training=training)

    # -- decoding --------------------------------------------------------------

    def initial_state(self, source_ids, cache_length=None):
        """Encodes the sources and projects cross-attention keys/values once.

        Args:
            source_ids: int `[N, S]`, 0-padded (source + EOS).
            cache_length: int, positions of the self-attention cache (the most
                decoding steps that will follow); defaults to `max_length`.

        Returns:
            A flat dict of tensors, each with leading dimension N:
            `"index"` int32 `[N]` (next position, 0), `"source_mask"` bool
            `[N, S]`, `"attention"` float32 `[N, S]` (last layer's
            cross-attention averaged over heads, set by `step`), and per
            decoder layer i: `"self_key_i"`/`"self_value_i"` `[N, heads,
            cache_length, head_dim]` (zeros), `"cross_key_i"`/`"cross_value_i"`
            `[N, heads, S, head_dim]`. Decode from `start_ids = BOS` (2).
        """
        cache_length = _check_cache_length("Transformer", cache_length, self.max_length)
        source = _check_ids(source_ids, "source_ids", 2)
        encoder_outputs, source_mask = self.encode(source, training=False)
        batch = ops.shape(source)[0]
        state = {
            "index": ops.zeros((batch,), "int32"),
            "source_mask": source_mask,
            "attention": ops.zeros(ops.shape(source), "float32"),
        }
        for i, layer in enumerate(self.decoder_layers):
            state[f"cross_key_{i}"], state[f"cross_value_{i}"] = (
                layer.project_encoder_outputs(encoder_outputs)
            )
            state[f"self_key_{i}"], state[f"self_value_{i}"] = layer.empty_cache(
                batch, cache_length
            )
        return state

    def _state_keys(self):
        keys = super()._state_keys() + ["source_mask", "attention"]
        for i in range(self.num_layers):
            keys += [f"cross_key_{i}", f"cross_value_{i}"]
        return keys

    def step(self, tokens, state):
        """One decoding step; O(1) new projections, attention over the cache.

        Args:
            tokens: int `[N]`, the previous target token (BOS at the start).
            state: the dict from `initial_state` or the previous `step`.

        Returns:
            `(logits float32 [N, target_vocab_size], state)`: same keys, shapes
            and dtypes; `index` advanced by one.
        """
        return self._decoder_step(
            tokens, state, source_mask=state.get("source_mask"), return_attention=True
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size,
                **self._base_config(),
                "share_embeddings": self.share_embeddings,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_seq")
class TransformerLanguageModel(LanguageModel, _TransformerBase):
    """Decoder-only Transformer language model (GPT-style, causal).

    `tokens -> embedding * sqrt(d) + positions -> num_layers x decoder layer
    (causal self-attention, feed-forward) -> output projection`. Stateless
    across batches: each `[B, T]` chunk is its own context (the `reset` input
    of truncated-BPTT batches is accepted and ignored), so `T <= max_length`.

    Training: Keras `fit` on `({"tokens": [B, T], "reset": [B]}, labels
    [B, T])` (or `tokens` alone); loss as in `Transformer.compile`.

    Decoding (`generate` does all of it):

        state = model.initial_state(prompt_ids)          # prefill the cache
        start_ids = model.start_tokens(prompt_ids)  # int32 [N]
        logits, state = model.step(start_ids, state)     # next-token logits

    `initial_state` runs the prompt through the decoder once and keeps every
    real token except the last one in the key/value cache (per-row `index` =
    prompt length - 1, so prompts of different lengths decode together);
    `start_tokens` returns that last token, the decoder's first input.
    An empty (all-padding) prompt starts at index 0 from `BOS` (2). This is
    the same convention as `RNNLanguageModel`.

    Args:
        vocab_size: int.
        d_model, num_heads, ff_dim, num_layers, dropout, max_length,
        tie_embeddings, sampled_softmax, norm_first, positional_encoding: as
            in `Transformer` (`max_length` bounds prompt + generated tokens).
        **kwargs: `keras.Model` arguments.

    Call arguments:
        inputs: int `[B, T]` or dict `{"tokens": int [B, T], "reset": ...}`.
        training: Python bool.

    Returns:
        float32 logits `[B, T, vocab_size]` (hidden states when training with
        `sampled_softmax > 0`).

    Example:

    >>> lm = TransformerLanguageModel(50, d_model=32, num_heads=2, ff_dim=64,
    ...                               num_layers=1, max_length=64)
    >>> lm.compile("adam")
    >>> lm.fit(lm_dataset, epochs=1)                   # doctest: +SKIP
    >>> lm.generate(np.array([[2, 7, 9]]), max_length=10).ids  # doctest: +SKIP
    """

    def __init__(
        self,
        vocab_size,
        d_model=256,
        num_heads=4,
        ff_dim=1024,
        num_layers=3,
        dropout=0.1,
        max_length=256,
        tie_embeddings=False,
        sampled_softmax=0,
        norm_first=True,
        positional_encoding="sinusoidal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._configure(  # In the order of the signature, after the vocabulary.
            vocab_size, d_model, num_heads, ff_dim, num_layers, dropout,
            max_length, tie_embeddings, sampled_softmax, norm_first, positional_encoding,
        )
        self.vocab_size = vocab_size
        self._setup_decoder(vocab_size, cross_attention=False)
        self.build(None)

    def input_length_limit(self, max_length=None):
        """Prompts up to `self.max_length - max_length + 1` tokens.

        The positions hold the prompt (but its last token, which `step` reads)
        and the generated tokens.
        """
        if max_length is None:
            return self.max_length
        return self.max_length - max_length + 1

    def output_length_limit(self):
        """At most `max_length` generated tokens (after a one-token prompt)."""
        return self.max_length

    def decoding_state(self, inputs, max_length):
        """`initial_state` with a cache for the prompt and `max_length` tokens."""
        cache_length = self.max_length
        if inputs.shape[1] is not None:
            cache_length = min(self.max_length, max(inputs.shape[1], 1) - 1 + max_length)
            cache_length = max(cache_length, inputs.shape[1], 1)
        return self.initial_state(inputs, cache_length=cache_length)

    def build(self, input_shape=None):
        """Creates every weight; shapes follow from the config alone."""
        if self.built:
            return
        self._build_decoder()

    def _tokens(self, inputs):
        if isinstance(inputs, dict):
            if "tokens" not in inputs:
                raise ValueError(
                    "TransformerLanguageModel inputs given as a dict need a "
                    f"'tokens' entry; received keys {sorted(inputs)}."
                )
            inputs = inputs["tokens"]
        return _check_ids(inputs, "tokens", 2)

    def call(self, inputs, training=None):
        tokens = self._tokens(inputs)
        hidden = self._decoder_hidden(tokens, None, None, training)
        return self.head.model_outputs(hidden, training=training)

    # -- decoding --------------------------------------------------------------

    def initial_state(self, prompt_ids, cache_length=None):
        """Prefills the key/value cache with the prompts (one forward pass).

        Args:
            prompt_ids: int `[N, T]`, right-padded with 0.
            cache_length: int >= T, positions of the cache (prompt + generated
                tokens); defaults to `max_length`.

        Returns:
            A flat dict: `"index"` int32 `[N]` (= prompt length - 1, or 0 for an
            empty prompt: the position of the first token `step` will read) and
            per layer i `"self_key_i"`/`"self_value_i"` `[N, heads,
            cache_length, head_dim]`. Start decoding from
            `start_tokens(prompt_ids)`.
        """
        cache_length = _check_cache_length(
            "TransformerLanguageModel", cache_length, self.max_length
        )
        prompt = _check_ids(prompt_ids, "prompt_ids", 2)
        length = prompt.shape[1]
        if length is not None and length > cache_length:
            raise errors.InputError(
                f"TransformerLanguageModel: a prompt of {length} tokens does not "
                f"fit in a cache of {cache_length} positions."
            )
        mask = ops.not_equal(prompt, PAD_ID)
        lengths = ops.sum(ops.cast(mask, "int32"), axis=1)
        x = self._embed(
            self.target_embedding,
            self.target_positions,
            self.target_dropout,
            prompt,
            None,
            False,
        )
        state = {"index": ops.maximum(lengths - 1, 0)}
        for i, layer in enumerate(self.decoder_layers):
            x, cache = layer.prefill(x, cache_length, decoder_padding_mask=mask)
            state[f"self_key_{i}"] = cache["self_key"]
            state[f"self_value_{i}"] = cache["self_value"]
        return state

    def step(self, tokens, state):
        """One decoding step: feed `tokens` at position `index`, get next logits.

        Args:
            tokens: int `[N]`.
            state: the dict from `initial_state` or the previous `step`.

        Returns:
            `(logits float32 [N, vocab_size], state)`, `index` advanced by one.
        """
        return self._decoder_step(tokens, state)

    def get_config(self):
        config = super().get_config()
        config.update({"vocab_size": self.vocab_size, **self._base_config()})
        return config
