"""Recurrent layers: `SimpleRNN`, `LSTM` and `GRU` with per-row state resets.

The three layers subclass Keras's own `keras.layers.SimpleRNN`, `LSTM` and
`GRU`, so they keep the same weights (`kernel`, `recurrent_kernel`, `bias`, in
the same layout: `ours.set_weights(keras_layer.get_weights())` works), the same
cells, the same symbolic loop (`keras.ops`-level `backend.rnn`, a
`tf.while_loop`, no Python loop per timestep) and, for LSTM and GRU on a GPU,
the fused cuDNN kernel. What they add:

- `stateful=True` done right for truncated back-propagation through time:
  a per-row `reset` call argument (bool `[batch]`) that zeroes those rows'
  carried state *before* the chunk is processed, inside the compiled step, so
  documents can end at any row of any batch; `reset_state(mask)` to reset only
  some rows from Python; and a clear error when a batch of another size than
  the state's is fed (Keras silently broadcasts a batch of 1, keras issue 21183).
- `forward(...)`: a stateless full-sequence pass that never reads or writes the
  stateful variables (used to read prompts of any batch size).
- `step(x_t, states)`: one time step through `self.cell`, without dropout, for
  decoding; its batch size is independent of the stateful variables.
"""

import keras
import tensorflow as tf
from keras import ops
from keras.src import backend as keras_backend  # `rnn`: the loop of Keras's RNN layers

from keras_seq import utils

__all__ = ["SimpleRNN", "LSTM", "GRU"]


def _as_list(states):
    """States as a plain list (Keras cells return a list, or one tensor)."""
    if isinstance(states, (list, tuple)):
        return list(states)
    return [states]


class _RecurrentMixin:
    """Per-row resets, batch checks, `forward` and `step` for Keras RNN layers.

    Mixed in *before* the Keras layer class, so `super().call` is the Keras
    layer's own call (which keeps the cuDNN fast path) and the weights are
    Keras's own.
    """

    # ------------------------------------------------------------------ call
    def call(
        self,
        sequences,
        initial_state=None,
        mask=None,
        training=False,
        reset=None,
    ):
        if self.stateful:
            if initial_state is None:
                initial_state = [ops.convert_to_tensor(s) for s in self.states]
            initial_state = self._check_batch_size(
                sequences, _as_list(initial_state)
            )
        if reset is not None and initial_state is not None:
            initial_state = self._apply_reset(_as_list(initial_state), reset)
        return super().call(
            sequences,
            initial_state=initial_state,
            mask=mask,
            training=training,
        )

    def _check_batch_size(self, sequences, states):
        """Error out when `sequences` has another batch size than the state.

        Statically when the batch dimension is known (`ValueError`).
        Otherwise a runtime assertion raises `InvalidArgumentError` with the
        same message, and the states are reshaped to the input's batch size:
        under XLA, where assertions are compiled out, that reshape fails to
        compile instead of letting Keras broadcast a batch of 1 over every
        state row (keras issue 21183).

        Returns:
            `states`, unchanged or reshaped to the (checked) batch size.
        """
        expected = int(self.states[0].shape[0])
        message = (
            f"Stateful layer '{self.name}' keeps state for a batch of "
            f"{expected} rows, but received a batch of a different size. "
            "Feed batches of exactly that size (e.g. `drop_remainder=True`), "
            "or use `forward()` / `step()` for stateless calls."
        )
        actual = sequences.shape[0]
        if actual is not None:
            if actual != expected:
                raise ValueError(f"{message} Received batch size: {actual}.")
            return states
        check = tf.debugging.assert_equal(
            tf.shape(sequences)[0], expected, message=message
        )
        with tf.control_dependencies([check]):
            batch = tf.identity(tf.shape(sequences)[0])
        return [
            tf.reshape(s, tf.concat([[batch], tf.shape(s)[1:]], 0))
            for s in states
        ]

    def _apply_reset(self, states, reset):
        """Zero the rows of `states` where `reset` (bool [batch]) is true."""
        reset = ops.convert_to_tensor(reset)
        if len(reset.shape) != 1:
            raise ValueError(
                f"`reset` must be a bool vector of shape [batch]; received "
                f"shape {tuple(reset.shape)} in layer '{self.name}'."
            )
        rows = states[0].shape[0]
        if reset.shape[0] is not None and rows is not None:
            if reset.shape[0] != rows:
                raise ValueError(
                    f"`reset` has {reset.shape[0]} rows but the state of "
                    f"layer '{self.name}' has {rows}."
                )
        else:
            # Never broadcast a [1] reset over every row: check at run time.
            rows = tf.shape(states[0])[0]
            check = tf.debugging.assert_equal(
                tf.shape(reset)[0],
                rows,
                message=f"`reset` and the state of layer '{self.name}' "
                "have different numbers of rows.",
            )
            with tf.control_dependencies([check]):
                rows = tf.identity(rows)
            reset = tf.reshape(reset, [rows])
        keep = ops.logical_not(ops.cast(reset, "bool"))[:, None]  # [B, 1]
        return [ops.where(keep, s, ops.zeros_like(s)) for s in states]

    # ------------------------------------------------------------ resetting
    def reset_state(self, mask=None):
        """Reset the carried state of a stateful layer to zeros.

        Args:
            mask: optional bool array `[batch]`; when given, only the rows
                where it is true are reset, the others keep their state.
                When omitted every row is reset.
        """
        if self.states is None:
            return
        if mask is None:
            super().reset_state()
            return
        mask = ops.convert_to_tensor(mask)
        expected = int(self.states[0].shape[0])
        if len(mask.shape) != 1 or (
            mask.shape[0] is not None and mask.shape[0] != expected
        ):
            raise ValueError(
                f"`reset_state(mask)` needs a bool vector of shape "
                f"[{expected}] for layer '{self.name}'; received shape "
                f"{tuple(mask.shape)}."
            )
        keep = ops.logical_not(ops.cast(mask, "bool"))[:, None]
        for variable in self.states:
            value = ops.convert_to_tensor(variable)
            variable.assign(ops.where(keep, value, ops.zeros_like(value)))

    def reset_states(self, mask=None):
        """Alias of `reset_state` (Keras 2 spelling)."""
        self.reset_state(mask)

    # ---------------------------------------------------- stateless helpers
    def _build_for(self, features_shape):
        if not self.built:
            # Build the cell only: building the layer itself would create the
            # stateful variables with whatever batch size is passed here.
            if not self.cell.built:
                self.cell.build(tuple(features_shape))
                self.cell.built = True

    def forward(self, sequences, initial_state=None, mask=None, training=False):
        """Run the whole sequence without touching the stateful variables.

        Always uses the portable symbolic loop (`tf.while_loop`), never the
        cuDNN kernel, so it traces into XLA, SavedModels and ONNX alike and
        accepts any mask, including rows that are fully masked.

        Args:
            sequences: float tensor `[N, T, features]`, any `N`.
            initial_state: optional list of `[N, units]` tensors (LSTM:
                `[h, c]`; GRU/SimpleRNN: `[h]`); zeros when omitted.
            mask: optional bool `[N, T]`; masked steps carry the state over.
            training: whether dropout is active.

        Returns:
            `(outputs, states)`: outputs `[N, T, units]` when
            `return_sequences` else `[N, units]` (last unmasked step); states
            the list of final state tensors `[N, units]`.
        """
        sequences = ops.convert_to_tensor(sequences)
        if len(sequences.shape) != 3:
            raise ValueError(
                f"`forward` expects a rank-3 tensor [batch, time, features]; "
                f"received shape {tuple(sequences.shape)}."
            )
        self._build_for((sequences.shape[0],) + tuple(sequences.shape[2:]))
        sequences = ops.cast(sequences, self.compute_dtype)
        if initial_state is None:
            initial_state = self.cell.get_initial_state(
                batch_size=ops.shape(sequences)[0]
            )
        initial_state = [
            ops.cast(s, self.cell.compute_dtype) for s in _as_list(initial_state)
        ]
        if mask is not None:
            mask = ops.cast(mask, "bool")
        if training:
            self._maybe_config_dropout_masks(
                self.cell, sequences[:, 0, :], initial_state
            )
        # keras.layers.RNN.inner_loop is the generic `backend.rnn` loop; the
        # LSTM/GRU override would pick cuDNN when a GPU is visible.
        last_output, outputs, states = keras.layers.RNN.inner_loop(
            self, sequences, initial_state, mask, training=training
        )
        self._maybe_reset_dropout_masks(self.cell)
        output = outputs if self.return_sequences else last_output
        output = ops.cast(output, self.compute_dtype)
        states = [ops.cast(s, self.compute_dtype) for s in _as_list(states)]
        return output, states

    def step(self, inputs, states):
        """One time step through the cell (no dropout), for decoding.

        Independent of the stateful variables: any batch size `N`.

        Args:
            inputs: float tensor `[N, features]`.
            states: list of state tensors `[N, units]` (LSTM: `[h, c]`;
                GRU/SimpleRNN: `[h]`), e.g. from `forward` or a previous step.

        Returns:
            `(output [N, units], new_states)` with `new_states` a list shaped
            like `states`.

        Example:

        >>> layer = keras_seq.layers.LSTM(8)
        >>> h = c = np.zeros((2, 8), "float32")
        >>> y, (h, c) = layer.step(np.ones((2, 4), "float32"), [h, c])
        """
        inputs = ops.convert_to_tensor(inputs)
        if len(inputs.shape) != 2:
            raise ValueError(
                f"`step` expects a rank-2 tensor [batch, features]; received "
                f"shape {tuple(inputs.shape)}."
            )
        self._build_for(tuple(inputs.shape))
        inputs = ops.cast(inputs, self.cell.compute_dtype)
        states = [
            ops.cast(s, self.cell.compute_dtype) for s in _as_list(states)
        ]
        if len(states) != len(self.state_size):
            raise ValueError(
                f"Layer '{self.name}' has {len(self.state_size)} state "
                f"tensor(s); `step` received {len(states)}."
            )
        output, new_states = self.cell(inputs, states, training=False)
        return output, _as_list(new_states)


_CALL_DOC = """
    Call arguments:
        sequences: float tensor `[batch, time, features]`.
        initial_state: optional list of state tensors `[batch, units]`. For a
            stateful layer it overrides the carried state for this call (the
            final state is still stored).
        mask: optional bool `[batch, time]` (e.g. from
            `Embedding(mask_zero=True)`); masked steps carry state and output
            over. With cuDNN the mask must be strictly right-padded.
        training: whether dropout / recurrent dropout are active.
        reset: optional bool `[batch]`. Rows where it is true start from a
            zero state: the carried state (stateful) or `initial_state` is
            zeroed for those rows *before* the sequence is processed. It is a
            tensor op, so it works inside a compiled training step.

    Stateful use (`stateful=True`): the batch size must be static when the
    layer is built (e.g. `keras.Input(..., batch_size=B)` or an eager call);
    the final state of one call is the initial state of the next; a batch of
    another size raises a `ValueError` (or, when the batch dimension is only
    known at run time, an `InvalidArgumentError` with the same message).
    `reset_state()` zeroes every row, `reset_state(mask)` only the rows where
    `mask` is true.

    Stateless helpers: `forward(sequences, initial_state, mask)` runs a
    sequence without reading or writing the stateful variables, and
    `step(x_t, states)` runs one time step (decoding).
"""


@keras.saving.register_keras_serializable(package="keras_seq")
class SimpleRNN(_RecurrentMixin, keras.layers.SimpleRNN):
    __doc__ = (
        """Fully-connected (Elman) RNN, `h_t = act(x_t W + h_{t-1} U + b)`.

    Same arguments, weights and outputs as `keras.layers.SimpleRNN`.

    IRNN (Le, Jaitly & Hinton, 2015): a plain tanh RNN struggles with long
    dependencies because gradients vanish through the recurrence. Using ReLU
    with an identity recurrent matrix (and zero bias) makes the initial
    recurrence an exact copy of the state, so gradients neither vanish nor
    explode at the start of training: pass `activation="relu"` and
    `recurrent_initializer="identity"`, or use `SimpleRNN.irnn(units)`. Clip
    gradients and keep the learning rate small when training an IRNN.

    Args:
        units: positive int, size of the state and output.
        **kwargs: every argument of `keras.layers.SimpleRNN` (`activation`,
            `dropout`, `recurrent_dropout`, `return_sequences`,
            `return_state`, `stateful`, ...).
"""
        + _CALL_DOC
        + """
    Example:

    >>> layer = keras_seq.layers.SimpleRNN(16, return_sequences=True)
    >>> y = layer(np.zeros((2, 5, 3), "float32"))   # [2, 5, 16]
    >>> irnn = keras_seq.layers.SimpleRNN.irnn(16)
"""
    )

    @classmethod
    def irnn(cls, units, **kwargs):
        """An IRNN: ReLU, identity recurrent kernel, small-normal input kernel.

        Args:
            units: positive int.
            **kwargs: any other `SimpleRNN` argument; `kernel_initializer`
                defaults to `RandomNormal(stddev=0.001)` as in Le et al.

        Returns:
            A `SimpleRNN` with `activation="relu"` and
            `recurrent_initializer="identity"`.
        """
        kwargs.setdefault(
            "kernel_initializer", keras.initializers.RandomNormal(stddev=0.001)
        )
        kwargs.setdefault("bias_initializer", "zeros")
        return cls(
            units, activation="relu", recurrent_initializer="identity", **kwargs
        )


@keras.saving.register_keras_serializable(package="keras_seq")
class LSTM(_RecurrentMixin, keras.layers.LSTM):
    __doc__ = (
        """Long Short-Term Memory layer (Hochreiter & Schmidhuber, 1997).

    Same arguments, weights (`kernel [F, 4U]`, `recurrent_kernel [U, 4U]`,
    `bias [4U]`, gate order i, f, c, o) and outputs as `keras.layers.LSTM`.
    States are `[h, c]`. On a GPU with the default tanh/sigmoid activations,
    `use_bias=True`, no recurrent dropout and no unroll, the fused cuDNN kernel
    is used (Keras then disables XLA for the model, `supports_jit=False`).

    Args:
        units: positive int, size of `h` and `c`.
        **kwargs: every argument of `keras.layers.LSTM`.
"""
        + _CALL_DOC
        + """
    Example:

    >>> layer = keras_seq.layers.LSTM(16, return_sequences=True,
    ...                               return_state=True)
    >>> y, h, c = layer(np.zeros((2, 5, 3), "float32"))
"""
    )

    # Without cuDNN (no GPU), `call` computes the input projection `x W + b`
    # of every step in one matmul before the loop, and the loop body only
    # `h U`: Keras's cell does both per step (small matmuls, and under a
    # mixed policy a cast of both kernels per step). Same weights and results.
    hoist_input_projection = True

    def inner_loop(self, sequences, initial_state, mask, training=False):
        cell = self.cell
        if (
            not self.hoist_input_projection
            or self.unroll
            or utils.has_gpu()
            or (training and (cell.dropout or cell.recurrent_dropout))
        ):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        # Read once: under a mixed policy each read is a cast to the compute dtype.
        recurrent_kernel = ops.convert_to_tensor(cell.recurrent_kernel)
        projected = ops.matmul(ops.cast(sequences, cell.compute_dtype), cell.kernel)
        if cell.use_bias:
            projected = projected + cell.bias  # [B, T, 4U]

        def step(z_x, states):
            h, c = states
            z = ops.split(z_x + ops.matmul(h, recurrent_kernel), 4, axis=-1)
            c, o = cell._compute_carry_and_output_fused(z, c)
            h = o * cell.activation(c)
            return h, [h, c]

        return keras_backend.rnn(  # the loop Keras's own `RNN.inner_loop` runs
            step,
            projected,
            list(initial_state),
            go_backwards=self.go_backwards,
            mask=mask,
            unroll=False,
            input_length=sequences.shape[1],
            zero_output_for_mask=self.zero_output_for_mask,
            return_all_outputs=self.return_sequences,
        )


@keras.saving.register_keras_serializable(package="keras_seq")
class GRU(_RecurrentMixin, keras.layers.GRU):
    __doc__ = (
        """Gated Recurrent Unit (Cho et al., 2014).

    Same arguments, weights and outputs as `keras.layers.GRU`, both
    `reset_after=True` (default; cuDNN-compatible, bias `[2, 3U]`) and
    `reset_after=False` (original formulation, bias `[3U]`). States are `[h]`.

    Args:
        units: positive int, size of the state and output.
        **kwargs: every argument of `keras.layers.GRU`.
"""
        + _CALL_DOC
        + """
    Example:

    >>> layer = keras_seq.layers.GRU(16, stateful=True, return_sequences=True)
    >>> y = layer(np.zeros((4, 5, 3), "float32"))
    >>> y = layer(np.zeros((4, 5, 3), "float32"), reset=[True, False] * 2)
"""
    )
