"""Transformer encoder and decoder layers with a key/value cache for incremental decoding.

- `TransformerEncoderLayer` (built on `keras.layers.MultiHeadAttention`) and
  `TransformerDecoderLayer` (causal self-attention, optional cross-attention,
  feed-forward; pre- or post-layer-norm), whose `step` decodes one position
  over the fixed-size cache of `CachedMultiHeadAttention`.
- The attention functions and `PositionalEncoding` live in
  `keras_seq.layers.cached_attention` and `keras_seq.layers.positional_encoding`;
  they are re-exported here.
"""

import keras
from keras import ops


from keras_seq.layers.cached_attention import CachedMultiHeadAttention
from keras_seq.layers.cached_attention import _check_positive_int
from keras_seq.layers.cached_attention import _check_rate
from keras_seq.layers.cached_attention import causal_mask
from keras_seq.layers.cached_attention import scaled_dot_product_attention  # noqa: F401
from keras_seq.layers.positional_encoding import PositionalEncoding  # noqa: F401

_PACKAGE = "keras_seq"


class _TransformerLayerBase(keras.layers.Layer):
    """Shared argument checks, feed-forward block and config of both layers."""

    def __init__(
        self,
        d_model,
        num_heads,
        ff_dim,
        dropout=0.1,
        norm_first=True,
        activation="relu",
        layer_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("d_model", d_model)
        _check_positive_int("num_heads", num_heads)
        _check_positive_int("ff_dim", ff_dim)
        _check_rate("dropout", dropout)
        if d_model % num_heads:
            raise ValueError(
                f"`num_heads` ({num_heads}) must divide `d_model` ({d_model})."
            )
        self.d_model = int(d_model)
        self.num_heads = int(num_heads)
        self.head_dim = self.d_model // self.num_heads
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.norm_first = bool(norm_first)
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

        policy = self.dtype_policy
        self.ff_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="ff_norm"
        )
        self.ff_intermediate = keras.layers.Dense(
            self.ff_dim, activation=self.activation, dtype=policy, name="ff_intermediate"
        )
        self.ff_output = keras.layers.Dense(self.d_model, dtype=policy, name="ff_output")
        self.ff_dropout = keras.layers.Dropout(self.dropout, dtype=policy)

    def _build_feed_forward(self):
        self.ff_norm.build((None, None, self.d_model))
        self.ff_intermediate.build((None, None, self.d_model))
        self.ff_output.build((None, None, self.ff_dim))

    def _residual(self, x, norm, dropout, block, training):
        """Pre-LN: x + drop(block(norm(x))); post-LN: norm(x + drop(block(x)))."""
        if self.norm_first:
            return x + dropout(block(norm(x)), training=training)
        return norm(x + dropout(block(x), training=training))

    def _feed_forward(self, x, training):
        return self._residual(
            x,
            self.ff_norm,
            self.ff_dropout,
            lambda h: self.ff_output(self.ff_intermediate(h)),
            training,
        )

    def compute_output_shape(self, inputs_shape, *args, **kwargs):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "d_model": self.d_model,
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
                "norm_first": self.norm_first,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TransformerEncoderLayer(_TransformerLayerBase):
    """One Transformer encoder layer: self-attention and feed-forward.

    Self-attention is `keras.layers.MultiHeadAttention`; each sub-block has a
    residual connection, dropout, and layer normalisation applied before
    (`norm_first=True`, pre-LN; the stack then needs a final LayerNorm) or after
    (post-LN, as in Vaswani et al.) the residual sum.

    Args:
        d_model: int, model width.
        num_heads: int, attention heads; must divide `d_model`.
        ff_dim: int, hidden size of the feed-forward block.
        dropout: float, dropout rate (attention weights and residual branches).
        norm_first: bool, pre-LN if True, post-LN otherwise.
        activation: feed-forward activation.
        layer_norm_epsilon: float.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `[B, S, d_model]`.
        padding_mask: optional bool `[B, S]`, True at real (non-pad) tokens.
        training: Python bool, enables dropout.

    Returns:
        `[B, S, d_model]`.

    Example:

    >>> layer = TransformerEncoderLayer(d_model=16, num_heads=2, ff_dim=32)
    >>> layer(np.ones((2, 5, 16), "float32"), padding_mask=np.ones((2, 5), bool)).shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, d_model, num_heads, ff_dim, dropout=0.1, norm_first=True, **kwargs):
        super().__init__(d_model, num_heads, ff_dim, dropout, norm_first, **kwargs)
        policy = self.dtype_policy
        self.self_attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self.head_dim,
            dropout=self.dropout,
            dtype=policy,
            name="self_attention",
        )
        self.self_attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=policy, name="self_attention_norm"
        )
        self.self_attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy)

    def build(self, inputs_shape=None):
        shape = (None, None, self.d_model)
        self.self_attention.build(shape, shape)
        self.self_attention_norm.build(shape)
        self._build_feed_forward()
        self.built = True

    def call(self, inputs, padding_mask=None, training=None):
        attention_mask = None
        if padding_mask is not None:
            # [B, S] -> [B, S(query), S(key)]: every query sees the real keys.
            padding_mask = ops.cast(padding_mask, "bool")
            attention_mask = ops.logical_and(
                ops.ones_like(padding_mask)[:, :, None], padding_mask[:, None, :]
            )

        def attention(h):
            return self.self_attention(
                h, h, attention_mask=attention_mask, training=training
            )

        x = self._residual(
            inputs,
            self.self_attention_norm,
            self.self_attention_dropout,
            attention,
            training,
        )
        return self._feed_forward(x, training)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TransformerDecoderLayer(_TransformerLayerBase):
    """One Transformer decoder layer, with a key/value cache for decoding.

    Causal self-attention, optional cross-attention over encoder outputs
    (`cross_attention=False` gives a decoder-only/LM layer), feed-forward; each
    with a residual, dropout and pre- or post-layer-norm. `call` runs a whole
    (teacher-forced) sequence; `step` runs one new position against a cache
    and returns the same values as `call` does at that position.

    Cache entries (a dict, leading dim N): `self_key`, `self_value`
    `[N, heads, max_length, head_dim]` written at `index` by each step, and with
    cross-attention `cross_key`, `cross_value` `[N, heads, S, head_dim]` from
    `project_encoder_outputs`, computed once per source.

    Args:
        d_model: int, model width.
        num_heads: int, attention heads; must divide `d_model`.
        ff_dim: int, hidden size of the feed-forward block.
        dropout: float, dropout rate (attention weights and residual branches).
        norm_first: bool, pre-LN if True, post-LN otherwise.
        cross_attention: bool, whether the layer attends to encoder outputs.
        activation: feed-forward activation.
        layer_norm_epsilon: float.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float `[B, T, d_model]`.
        encoder_outputs: float `[B, S, d_model]` (required with cross-attention).
        decoder_padding_mask: optional bool `[B, T]`, True at real tokens.
        encoder_padding_mask: optional bool `[B, S]`, True at real tokens.
        training: Python bool, enables dropout.

    Returns:
        `[B, T, d_model]`; output `t` depends on inputs `0..t` only.

    Example:

    >>> layer = TransformerDecoderLayer(16, 2, 32, dropout=0.0)
    >>> x, enc = np.ones((2, 4, 16), "float32"), np.ones((2, 6, 16), "float32")
    >>> full = layer(x, enc)                                       # [2, 4, 16]
    >>> cache = dict(zip(("cross_key", "cross_value"),
    ...                  layer.project_encoder_outputs(enc)))
    >>> cache.update(zip(("self_key", "self_value"), layer.empty_cache(2, 8)))
    >>> y0, cache = layer.step(x[:, :1], cache, index=np.zeros(2, "int32"))
    >>> np.allclose(y0[:, 0], full[:, 0], atol=1e-5)
    True
    """

    def __init__(
        self,
        d_model,
        num_heads,
        ff_dim,
        dropout=0.1,
        norm_first=True,
        cross_attention=True,
        **kwargs,
    ):
        super().__init__(d_model, num_heads, ff_dim, dropout, norm_first, **kwargs)
        self.cross_attention = bool(cross_attention)
        policy = self.dtype_policy

        def attention(name):
            return CachedMultiHeadAttention(
                num_heads=self.num_heads,
                head_dim=self.head_dim,
                dropout=self.dropout,
                dtype=policy,
                name=name,
            )

        def norm(name):
            return keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, dtype=policy, name=name
            )

        self.self_attention = attention("self_attention")
        self.self_attention_norm = norm("self_attention_norm")
        self.self_attention_dropout = keras.layers.Dropout(self.dropout, dtype=policy)
        if self.cross_attention:
            self.cross_attention_layer = attention("cross_attention")
            self.cross_attention_norm = norm("cross_attention_norm")
            self.cross_attention_dropout = keras.layers.Dropout(
                self.dropout, dtype=policy
            )

    def build(self, inputs_shape=None):
        shape = (None, None, self.d_model)
        self.self_attention.build(shape, shape)
        self.self_attention_norm.build(shape)
        if self.cross_attention:
            self.cross_attention_layer.build(shape, shape)
            self.cross_attention_norm.build(shape)
        self._build_feed_forward()
        self.built = True

    # -- shared blocks -----------------------------------------------------

    def _cross_block(self, x, cross_key, cross_value, encoder_padding_mask, training):
        """Cross-attention sub-block; returns outputs and weights [B, h, T, S]."""
        mask = None
        if encoder_padding_mask is not None:
            mask = ops.cast(encoder_padding_mask, "bool")[:, None, :]  # [B, 1, S]
        weights = {}

        def attention(h):
            outputs, weights["value"] = self.cross_attention_layer.attend(
                h, cross_key, cross_value, mask, training=training, return_weights=True
            )
            return outputs

        outputs = self._residual(
            x, self.cross_attention_norm, self.cross_attention_dropout, attention, training
        )
        return outputs, weights["value"]

    def _check_encoder_outputs(self, encoder_outputs):
        if self.cross_attention and encoder_outputs is None:
            raise ValueError(
                f"{self.name}: `encoder_outputs` are required by a decoder layer "
                "with cross-attention."
            )
        if not self.cross_attention and encoder_outputs is not None:
            raise ValueError(
                f"{self.name}: got `encoder_outputs` but the layer was built with "
                "`cross_attention=False`."
            )

    def _forward(
        self,
        inputs,
        encoder_outputs,
        decoder_padding_mask,
        encoder_padding_mask,
        training,
    ):
        """Full-sequence forward pass; also returns the self-attention keys/values."""
        self._check_encoder_outputs(encoder_outputs)
        length = ops.shape(inputs)[1]
        attention_mask = causal_mask(length)[None, :, :]  # [1, T, T]
        if decoder_padding_mask is not None:
            attention_mask = ops.logical_and(
                attention_mask, ops.cast(decoder_padding_mask, "bool")[:, None, :]
            )
        projected = {}

        def self_attention(h):
            keys, values = self.self_attention.project_key_value(h)
            projected["kv"] = (keys, values)
            return self.self_attention.attend(
                h, keys, values, attention_mask, training=training
            )

        x = self._residual(
            inputs,
            self.self_attention_norm,
            self.self_attention_dropout,
            self_attention,
            training,
        )
        if self.cross_attention:
            cross_key, cross_value = self.project_encoder_outputs(encoder_outputs)
            x, _ = self._cross_block(
                x, cross_key, cross_value, encoder_padding_mask, training
            )
        return self._feed_forward(x, training), projected["kv"]

    def call(
        self,
        inputs,
        encoder_outputs=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
        training=None,
    ):
        outputs, _ = self._forward(
            inputs, encoder_outputs, decoder_padding_mask, encoder_padding_mask, training
        )
        return outputs

    # -- incremental decoding ----------------------------------------------

    def project_encoder_outputs(self, encoder_outputs):
        """Cross-attention keys/values `[N, heads, S, head_dim]`, computed once."""
        if not self.cross_attention:
            raise ValueError(f"{self.name} has no cross-attention.")
        return self.cross_attention_layer.project_key_value(encoder_outputs)

    def empty_cache(self, batch_size, max_length, dtype=None):
        """Zero `(self_key, self_value)` caches `[batch_size, heads, max_length, hd]`."""
        return self.self_attention.empty_cache(batch_size, max_length, dtype)

    def prefill(
        self,
        inputs,
        max_length,
        encoder_outputs=None,
        decoder_padding_mask=None,
        encoder_padding_mask=None,
    ):
        """Runs a whole prefix (inference mode) and returns it as a cache.

        Args:
            inputs: `[N, T, d_model]` with `T <= max_length`.
            max_length: int, the cache length.
            encoder_outputs, decoder_padding_mask, encoder_padding_mask: as in `call`.

        Returns:
            `(outputs [N, T, d_model], {"self_key", "self_value"})` where the
            caches are `[N, heads, max_length, head_dim]` holding positions
            `0..T-1` (zeros after).
        """
        outputs, (keys, values) = self._forward(
            inputs, encoder_outputs, decoder_padding_mask, encoder_padding_mask, False
        )
        length = inputs.shape[1] if inputs.shape[1] is not None else ops.shape(inputs)[1]
        pad = [[0, 0], [0, 0], [0, max_length - length], [0, 0]]
        # Reshape restores the static cache length lost by a dynamic pad.
        shape = (-1, self.num_heads, max_length, self.head_dim)
        return outputs, {
            "self_key": ops.reshape(ops.pad(keys, pad), shape),
            "self_value": ops.reshape(ops.pad(values, pad), shape),
        }

    def step(self, inputs, cache, index, encoder_padding_mask=None, return_attention=False):
        """Decodes one position per row against the cache (inference mode).

        Args:
            inputs: float `[N, 1, d_model]`, the layer input at position `index`.
            cache: dict with `self_key`, `self_value` `[N, heads, L, head_dim]`
                (and `cross_key`, `cross_value` with cross-attention).
            index: int `[N]`, the position of `inputs` in each row (< L). Keys
                at positions `<= index` are attended to; later ones are ignored.
            encoder_padding_mask: optional bool `[N, S]`, True at real tokens.
            return_attention: also return the cross-attention weights averaged
                over heads, float32 `[N, S]` (needs cross-attention).

        Returns:
            `(outputs [N, 1, d_model], cache)` with the new position written into
            `self_key`/`self_value`; other entries are passed through. With
            `return_attention=True`, `(outputs, cache, attention)`.
        """
        if return_attention and not self.cross_attention:
            raise ValueError(f"{self.name} has no cross-attention to return.")
        index = ops.cast(index, "int32")
        new_cache = dict(cache)

        def self_attention(h):
            keys, values = self.self_attention.append_to_cache(
                cache["self_key"], cache["self_value"], h, index
            )
            new_cache["self_key"], new_cache["self_value"] = keys, values
            length = keys.shape[2] or ops.shape(keys)[2]
            mask = ops.arange(length)[None, None, :] <= index[:, None, None]  # [N,1,L]
            return self.self_attention.attend(h, keys, values, mask, training=False)

        x = self._residual(
            inputs,
            self.self_attention_norm,
            self.self_attention_dropout,
            self_attention,
            False,
        )
        weights = None
        if self.cross_attention:
            x, weights = self._cross_block(
                x, cache["cross_key"], cache["cross_value"], encoder_padding_mask, False
            )
        outputs = self._feed_forward(x, False)
        if return_attention:
            return outputs, new_cache, ops.mean(weights[:, :, 0, :], axis=1)
        return outputs, new_cache

    def get_config(self):
        config = super().get_config()
        config["cross_attention"] = self.cross_attention
        return config
