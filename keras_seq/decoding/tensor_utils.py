"""Small tensor helpers of the decoding loop (plain Gather/Reshape ops, so
tf2onnx and XLA are happy)."""

import tensorflow as tf


def _shape_list(x):
    """Static dims where known, dynamic scalars otherwise."""
    static = x.shape.as_list()
    dynamic = tf.shape(x)
    return [dynamic[i] if d is None else d for i, d in enumerate(static)]


def _take_along(x, idx):
    """x [N, C], idx int32 [N] -> x[n, idx[n]] of shape [N]."""
    n, c = _shape_list(x)
    flat = tf.reshape(x, [-1])
    return tf.gather(flat, tf.range(n) * c + idx)


def _gather_rows(x, idx):
    """x [B, M, ...], idx int32 [B, M'] -> x[b, idx[b, m']] of shape [B, M', ...]."""
    shape = _shape_list(x)
    batch, m = shape[0], shape[1]
    flat_x = tf.reshape(x, [-1] + shape[2:])  # [B*M, ...]
    flat_idx = idx + tf.range(batch)[:, None] * m  # [B, M']
    return tf.gather(flat_x, flat_idx)


def _map_rows(fn, state):
    """Applies fn to every rank >= 1 leaf; scalars are shared, left alone."""
    return tf.nest.map_structure(
        lambda x: fn(x) if x.shape.rank != 0 else x, state
    )


def _keep_shape(new, old):
    """Sets the static shape of an internal loop variable to its initial one."""
    new.set_shape(old.shape)
    return new


def is_runtime(value):
    """Whether a decoding setting is a tensor (chosen at run time, e.g. per
    request in an export) rather than a Python value."""
    return tf.is_tensor(value)


def runtime_scalar(value, name, dtype, valid, requirement):
    """A scalar tensor setting cast to `dtype`, guarded by an in-graph check.

    Args:
        value: a scalar tensor (integer or, for a float `dtype`, any number).
        name: the setting's name, for messages.
        dtype: `tf.int32`, `tf.int64` or `tf.float32`.
        valid: `valid(value) -> bool tensor`, the range check.
        requirement: completes "`name` must be ...", e.g. `"an integer >= 1"`.

    Returns:
        The tensor, once a `tf.debugging.Assert` that names the setting and the
        value has passed (ONNX drops the assert; callers check first).

    Raises:
        TypeError / ValueError: a dtype or (static) shape that cannot work.
    """
    value = tf.convert_to_tensor(value)
    if value.shape.rank != 0:
        raise ValueError(f"`{name}` must be a scalar tensor, got shape {value.shape}.")
    if not (value.dtype.is_integer or (dtype.is_floating and value.dtype.is_floating)):
        raise TypeError(
            f"`{name}` must be {requirement}, got a tensor of dtype {value.dtype.name}."
        )
    value = tf.cast(value, dtype)
    check = tf.debugging.Assert(valid(value), [f"`{name}` must be {requirement}, got", value])
    with tf.control_dependencies([check]):
        return tf.identity(value)
