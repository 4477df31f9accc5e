"""Transformer building blocks with a key/value cache for incremental decoding.

This module holds the pieces the Transformer models are made of:

- `scaled_dot_product_attention(q, k, v, mask)`: softmax(QK^T / sqrt(d_k)) V.
- `PositionalEncoding`: sinusoidal or learned positions, addable at an offset
  (or at explicit per-row positions) so that one decoding step can add the
  encoding of position `t` alone.
- `CachedMultiHeadAttention`: multi-head attention that can project keys and
  values once (encoder outputs for cross-attention) and append one position
  at a time to a fixed-size key/value cache (decoder self-attention).
- `TransformerEncoderLayer` (built on `keras.layers.MultiHeadAttention`) and
  `TransformerDecoderLayer` (causal self-attention, optional cross-attention,
  feed-forward; pre- or post-layer-norm), whose `step` decodes one position.

The key/value cache of a decoder layer is preallocated at its final size
`[N, num_heads, max_length, head_dim]` and written with a one-hot update at the
current index, so every decoding step has the same static shapes (XLA compiles
one step; tf2onnx converts it without dynamic concatenation).
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_seq import errors

_PACKAGE = "keras_seq"


def _large_negative(dtype):
    """The additive value used for masked-out attention scores in `dtype`."""
    return -3e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1e9


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {value!r}.")
    if value <= 0:
        raise ValueError(f"`{name}` must be positive, got {value}.")


def _check_rate(name, value):
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1), got {value}.")


def _attention_weights(query, key, mask=None):
    """softmax(Q K^T / sqrt(d_k)) in float32, masked where `mask` is False."""
    depth = query.shape[-1]
    if depth is None:
        raise ValueError("The last dimension of `query` must be static.")
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2))  # [..., Tq, Tk]
    scores = ops.cast(scores, "float32") * (1.0 / math.sqrt(float(depth)))
    if mask is not None:
        scores = ops.where(ops.cast(mask, "bool"), scores, _large_negative("float32"))
    return tf.nn.softmax(scores, axis=-1)


def scaled_dot_product_attention(query, key, value, mask=None, return_weights=False):
    """Scaled dot-product attention: softmax(Q K^T / sqrt(d_k)) V.

    Scores are computed and normalised in float32 (also under mixed precision);
    masked-out scores get a large negative value (-1e9), so a fully masked row
    yields a uniform distribution instead of NaN.

    Args:
        query: float tensor `[..., Tq, d_k]` (static `d_k`).
        key: float tensor `[..., Tk, d_k]`.
        value: float tensor `[..., Tk, d_v]`.
        mask: optional bool tensor broadcastable to `[..., Tq, Tk]`; True where
            a query may attend to a key.
        return_weights: also return the attention weights.

    Returns:
        The attended values `[..., Tq, d_v]` in `value`'s dtype, and with
        `return_weights=True` also the float32 weights `[..., Tq, Tk]`.

    Example:

    >>> q = np.ones((2, 3, 4), "float32"); kv = np.ones((2, 5, 4), "float32")
    >>> scaled_dot_product_attention(q, kv, kv).shape
    TensorShape([2, 3, 4])
    """
    weights = _attention_weights(query, key, mask)
    outputs = ops.matmul(ops.cast(weights, value.dtype), value)
    if return_weights:
        return outputs, weights
    return outputs


def causal_mask(length):
    """Bool `[length, length]` mask, True where key position <= query position."""
    positions = ops.arange(length)
    return positions[:, None] >= positions[None, :]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PositionalEncoding(keras.layers.Layer):
    """Adds position information to a sequence of embeddings.

    `kind="sinusoidal"` adds the fixed encoding of Vaswani et al. (2017),
    `PE[p, 2i] = sin(p / 10000^(2i/d))`, `PE[p, 2i+1] = cos(p / 10000^(2i/d))`;
    `kind="learned"` adds a trained `[max_length, d_model]` table.

    Positions are `offset + [0, 1, ..., T-1]` by default; pass `positions`
    (int, shaped like `inputs` without its last axis) to add the encoding of
    arbitrary positions, e.g. position `t` alone during incremental decoding.
    A sequence that does not fit in `max_length` raises `InputError` when its
    length is static, and fails a `tf.debugging` assertion at run time
    otherwise (assertions are no-ops under XLA and are dropped by tf2onnx).

    Args:
        max_length: int, the number of positions the layer supports.
        d_model: int, the embedding size (even for the sinusoidal kind).
        kind: `"sinusoidal"` or `"learned"`.
        embeddings_initializer: initializer of the learned table.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: float tensor `[..., T, d_model]`.
        offset: int scalar (Python or tensor) added to the default positions.
        positions: optional int tensor of `inputs.shape[:-1]` overriding them.

    Returns:
        `inputs + PE[positions]`, same shape and dtype as `inputs`.

    Example:

    >>> layer = PositionalEncoding(max_length=16, d_model=8)
    >>> x = np.zeros((2, 5, 8), "float32")
    >>> y_all = layer(x)                                   # positions 0..4
    >>> y_4 = layer(x[:, :1], positions=np.full((2, 1), 4))  # position 4 alone
    >>> np.allclose(y_all[:, 4:5], y_4)
    True
    """

    KINDS = ("sinusoidal", "learned")

    def __init__(
        self,
        max_length,
        d_model,
        kind="sinusoidal",
        embeddings_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("max_length", max_length)
        _check_positive_int("d_model", d_model)
        if kind not in self.KINDS:
            raise ValueError(f"`kind` must be one of {self.KINDS}, got {kind!r}.")
        if kind == "sinusoidal" and d_model % 2:
            raise ValueError(
                f"A sinusoidal encoding needs an even `d_model`, got {d_model}."
            )
        self.max_length = int(max_length)
        self.d_model = int(d_model)
        self.kind = kind
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        # Frequencies of the sinusoidal encoding, one per dimension (pairs share).
        exponents = 2.0 * (np.arange(self.d_model) // 2) / self.d_model
        self._inverse_frequencies = (1.0 / 10000.0**exponents).astype("float32")

    def build(self, input_shape=None):
        if self.kind == "learned":
            self.position_embeddings = self.add_weight(
                name="position_embeddings",
                shape=(self.max_length, self.d_model),
                initializer=self.embeddings_initializer,
            )
        self.built = True

    def encoding(self, positions):
        """The float32 encoding `[..., d_model]` of int `positions` `[...]`."""
        positions = ops.convert_to_tensor(positions)
        if self.kind == "learned":
            table = ops.cast(self.position_embeddings, "float32")
            return ops.take(table, ops.cast(positions, "int32"), axis=0)
        angles = ops.cast(positions, "float32")[..., None] * self._inverse_frequencies
        even = (np.arange(self.d_model) % 2) == 0
        return ops.where(even, ops.sin(angles), ops.cos(angles))

    def _assert_in_range(self, positions):
        if not tf.executing_eagerly() and tf.get_static_value(positions) is None:
            with tf.control_dependencies(
                [
                    tf.debugging.assert_less(
                        tf.cast(positions, "int32"),
                        self.max_length,
                        message=(
                            f"{self.name}: position out of range; the model "
                            f"supports sequences of at most {self.max_length} "
                            "positions"
                        ),
                    )
                ]
            ):
                return tf.identity(positions)
        value = np.asarray(tf.get_static_value(positions))
        if value.size and (value.max() >= self.max_length or value.min() < 0):
            raise errors.InputError(
                f"{self.name}: position {int(value.max())} is out of range; the "
                f"model supports sequences of at most {self.max_length} positions."
            )
        return positions

    def call(self, inputs, offset=0, positions=None):
        if inputs.shape[-1] is not None and inputs.shape[-1] != self.d_model:
            raise ValueError(
                f"{self.name}: expected inputs with last dimension "
                f"{self.d_model}, got shape {inputs.shape}."
            )
        if positions is None:
            length = inputs.shape[-2]
            static_offset = tf.get_static_value(offset)
            if length is not None and static_offset is not None:
                if int(static_offset) + length > self.max_length:
                    raise errors.InputError(
                        f"{self.name}: a sequence of {int(static_offset) + length}"
                        f" positions is longer than max_length={self.max_length}."
                    )
            positions = ops.cast(offset, "int32") + ops.arange(
                ops.shape(inputs)[-2], dtype="int32"
            )
        positions = self._assert_in_range(ops.convert_to_tensor(positions))
        return inputs + ops.cast(self.encoding(positions), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_length": self.max_length,
                "d_model": self.d_model,
                "kind": self.kind,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CachedMultiHeadAttention(keras.layers.Layer):
    """Multi-head attention whose keys/values can be projected once or cached.

    The math is that of `keras.layers.MultiHeadAttention` (same projections,
    scaling, masking and dropout on the attention weights); its kernels are
    stored as dense `[d, num_heads * head_dim]` matrices. Besides the usual
    `call(query, value)` it exposes the steps separately, which is what
    incremental decoding needs:

    - `project_key_value(value)` -> keys, values `[B, heads, S, head_dim]`
      (done once per source sentence for cross-attention);
    - `append_to_cache(key_cache, value_cache, inputs, index)` projects one new
      position and writes it into fixed-size caches at `index` (self-attention);
    - `attend(query, keys, values, mask)` attends with projected keys/values.

    Args:
        num_heads: int, number of heads.
        head_dim: int, size of each head's query/key/value.
        output_dim: int, output size (defaults to the query's last dimension).
        dropout: float, dropout rate on the attention weights.
        use_bias: whether the projections have biases.
        kernel_initializer, bias_initializer: projection initializers.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        query: `[B, T, d_query]`.
        value: `[B, S, d_value]` (also used as the key).
        attention_mask: optional bool `[B, T, S]`, True where attention is allowed.
        training: Python bool, enables dropout.

    Returns:
        `[B, T, output_dim]`.

    Example:

    >>> mha = CachedMultiHeadAttention(num_heads=2, head_dim=4)
    >>> mha(np.ones((1, 3, 8), "float32"), np.ones((1, 5, 8), "float32")).shape
    TensorShape([1, 3, 8])
    """

    def __init__(
        self,
        num_heads,
        head_dim,
        output_dim=None,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_positive_int("num_heads", num_heads)
        _check_positive_int("head_dim", head_dim)
        if output_dim is not None:
            _check_positive_int("output_dim", output_dim)
        _check_rate("dropout", dropout)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.output_dim = output_dim
        self.dropout = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

        def dense(units, name):
            return keras.layers.Dense(
                units,
                use_bias=self.use_bias,
                kernel_initializer=self.kernel_initializer,
                bias_initializer=self.bias_initializer,
                dtype=self.dtype_policy,
                name=name,
            )

        inner = self.num_heads * self.head_dim
        self.query_dense = dense(inner, "query")
        self.key_dense = dense(inner, "key")
        self.value_dense = dense(inner, "value")
        self._output_dense_factory = lambda units: dense(units, "attention_output")
        self.output_dense = None
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, query_shape, value_shape=None):
        query_dim = query_shape[-1]
        value_dim = query_dim if value_shape is None else value_shape[-1]
        output_dim = self.output_dim or query_dim
        self.query_dense.build((None, None, query_dim))
        self.key_dense.build((None, None, value_dim))
        self.value_dense.build((None, None, value_dim))
        self.output_dense = self._output_dense_factory(output_dim)
        self.output_dense.build((None, None, self.num_heads * self.head_dim))
        self.built = True

    # The sequence length is read from the layer's input, never from a Dense
    # output: tf2onnx 1.17 rewires `Shape(Dense(x))` of a rank-3 Dense to its
    # internal 2-D MatMul, and the converted Reshape then fails in onnxruntime.

    def _split_heads(self, x, length):
        # [B, T, heads * head_dim] -> [B, heads, T, head_dim]
        x = ops.reshape(x, (-1, length, self.num_heads, self.head_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def _merge_heads(self, x, length):
        # [B, heads, T, head_dim] -> [B, T, heads * head_dim]
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, length, self.num_heads * self.head_dim))

    @staticmethod
    def _length(x):
        return x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]

    def project_key_value(self, value):
        """Projects `value` `[B, S, d]` to keys and values `[B, heads, S, head_dim]`."""
        length = self._length(value)
        keys = self._split_heads(self.key_dense(value), length)
        values = self._split_heads(self.value_dense(value), length)
        return keys, values

    def attend(
        self, query, keys, values, attention_mask=None, training=None, return_weights=False
    ):
        """Attends `query` `[B, T, d]` to projected `keys`/`values` `[B, h, S, hd]`.

        `attention_mask` is a bool tensor broadcastable to `[B, T, S]`. Returns
        `[B, T, output_dim]`, and with `return_weights=True` also the float32
        attention weights `[B, h, T, S]` (before dropout).
        """
        length = self._length(query)
        queries = self._split_heads(self.query_dense(query), length)  # [B, h, T, hd]
        mask = None
        if attention_mask is not None:
            mask = ops.expand_dims(ops.cast(attention_mask, "bool"), 1)  # [B, 1, T, S]
        weights = _attention_weights(queries, keys, mask)
        dropped = self.dropout_layer(ops.cast(weights, values.dtype), training=training)
        outputs = ops.matmul(dropped, values)  # [B, h, T, hd]
        outputs = self.output_dense(self._merge_heads(outputs, length))
        if return_weights:
            return outputs, weights
        return outputs

    def call(self, query, value, attention_mask=None, training=None):
        keys, values = self.project_key_value(value)
        return self.attend(query, keys, values, attention_mask, training=training)

    def empty_cache(self, batch_size, max_length, dtype=None):
        """Zero key and value caches `[batch_size, heads, max_length, head_dim]`."""
        shape = (batch_size, self.num_heads, max_length, self.head_dim)
        dtype = dtype or self.compute_dtype
        return ops.zeros(shape, dtype), ops.zeros(shape, dtype)

    def append_to_cache(self, key_cache, value_cache, inputs, index):
        """Writes the keys/values of one new position into the caches.

        Args:
            key_cache, value_cache: `[N, heads, L, head_dim]`.
            inputs: `[N, 1, d]`, the layer input at the new position.
            index: int `[N]`, the position to write in each row (< L).

        Returns:
            The updated `(key_cache, value_cache)`, same shapes.
        """
        keys, values = self.project_key_value(inputs)  # [N, h, 1, hd]
        length = key_cache.shape[2] or ops.shape(key_cache)[2]
        # One-hot write: static shapes, no scatter/concat (XLA- and ONNX-friendly).
        one_hot = ops.one_hot(ops.cast(index, "int32"), length, dtype=key_cache.dtype)
        one_hot = one_hot[:, None, :, None]  # [N, 1, L, 1]
        key_cache = key_cache + one_hot * (ops.cast(keys, key_cache.dtype) - key_cache)
        value_cache = value_cache + one_hot * (
            ops.cast(values, value_cache.dtype) - value_cache
        )
        return key_cache, value_cache

    def compute_output_shape(self, query_shape, value_shape=None):
        return tuple(query_shape[:-1]) + (self.output_dim or query_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "head_dim": self.head_dim,
                "output_dim": self.output_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


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
