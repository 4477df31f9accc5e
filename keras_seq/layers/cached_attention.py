"""Scaled dot-product attention and multi-head attention with a key/value cache.

- `scaled_dot_product_attention(q, k, v, mask)`: softmax(QK^T / sqrt(d_k)) V.
- `CachedMultiHeadAttention`: multi-head attention that can project keys and
  values once (encoder outputs for cross-attention) and append one position
  at a time to a fixed-size key/value cache (decoder self-attention).

The cache is preallocated at its final size `[N, num_heads, max_length,
head_dim]` and written with a one-hot update at the current index, so every
decoding step has the same static shapes (XLA compiles one step; tf2onnx
converts it without dynamic concatenation).
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

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
