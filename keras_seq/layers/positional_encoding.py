"""`PositionalEncoding`: sinusoidal or learned positions, addable at an offset
(or at explicit per-row positions) so that one decoding step can add the
encoding of position `t` alone."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_seq import errors

from keras_seq.layers.cached_attention import _check_positive_int

_PACKAGE = "keras_seq"


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
