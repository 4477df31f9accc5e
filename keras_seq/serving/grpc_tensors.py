"""`TensorProto` <-> NumPy for the gRPC API, checked like the REST codec checks JSON.

`to_inputs` turns a `PredictRequest`'s `inputs` map into the arrays a
`Signature` takes, refusing with a 400 `RequestError` (INVALID_ARGUMENT over
gRPC) what REST's codec refuses: missing or unknown inputs, a dtype other than
the signature's (as TF Serving refuses it), a rank or fixed dimension the
signature does not accept, inputs whose batch (leading) dimensions disagree,
more than `max_batch` rows, empty strings, strings over `max_string_length`
bytes, strings that are not UTF-8 (unless the input's name ends in `_bytes`,
TF Serving's mark of binary data; REST takes those as `{"b64": ...}`), and
NaN or infinite floats. `to_proto` writes an output array back.

The conversion is NumPy only, by TensorFlow's `Tensor::FromProto` rules: the
values come from `tensor_content` (raw little-endian bytes) or the typed
`*_val` field, and fewer values than the shape holds are completed by
repeating the last one. `tf.make_tensor_proto` / `tf.make_ndarray` are the
client's side of it.
"""

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from keras_seq.serving import codec
from keras_seq.serving.signatures import RequestError

# dtype name (as `TensorInfo.dtype`) -> (DataType, the TensorProto field of its values).
_FIELDS = {
    "float16": (types_pb2.DT_HALF, "half_val"),
    "bfloat16": (types_pb2.DT_BFLOAT16, "half_val"),
    "float32": (types_pb2.DT_FLOAT, "float_val"),
    "float64": (types_pb2.DT_DOUBLE, "double_val"),
    "int8": (types_pb2.DT_INT8, "int_val"),
    "int16": (types_pb2.DT_INT16, "int_val"),
    "int32": (types_pb2.DT_INT32, "int_val"),
    "int64": (types_pb2.DT_INT64, "int64_val"),
    "uint8": (types_pb2.DT_UINT8, "int_val"),
    "uint16": (types_pb2.DT_UINT16, "int_val"),
    "uint32": (types_pb2.DT_UINT32, "uint32_val"),
    "uint64": (types_pb2.DT_UINT64, "uint64_val"),
    "bool": (types_pb2.DT_BOOL, "bool_val"),
    "string": (types_pb2.DT_STRING, "string_val"),
}


def _dtype_text(dtype):
    return types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else str(dtype)


def _numpy_dtype(name):
    if name == "bfloat16":
        import ml_dtypes  # a TensorFlow dependency

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _shape(proto, where):
    """The dimensions of a `TensorProto`, or a `RequestError`."""
    if proto.tensor_shape.unknown_rank:
        raise RequestError(f"{where}: the tensor's shape has unknown rank")
    dims = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise RequestError(f"{where}: negative dimension in shape {dims}")
    return dims


def _values(proto, name, shape, where):
    """The tensor's values as a flat NumPy array of dtype `name`."""
    count = int(np.prod(shape, dtype=np.int64))
    if name == "string":
        raw = list(proto.string_val)
        if proto.tensor_content:
            raise RequestError(f"{where}: a string tensor cannot use tensor_content")
    elif proto.tensor_content:
        dtype = _numpy_dtype(name).newbyteorder("<")
        if len(proto.tensor_content) != count * dtype.itemsize:
            raise RequestError(
                f"{where}: tensor_content holds {len(proto.tensor_content)} bytes, shape "
                f"{shape} of {name} needs {count * dtype.itemsize}")
        return np.frombuffer(proto.tensor_content, dtype=dtype).astype(dtype.newbyteorder("="))
    else:
        field = _FIELDS[name][1]
        raw = getattr(proto, field)
        if field == "half_val":  # the float16 / bfloat16 bit patterns
            raw = np.asarray(raw, dtype=np.uint16).view(_numpy_dtype(name))
    if len(raw) > count:
        raise RequestError(f"{where}: {len(raw)} values do not fit shape {shape}")
    if name == "string":
        array = np.empty(len(raw), dtype=object)
        array[:] = raw
    else:
        array = np.asarray(raw)
        if name != "bool" and array.size:
            bounds = np.iinfo(name) if name.startswith(("int", "uint")) else None
            if bounds is not None and (array.min() < bounds.min or array.max() > bounds.max):
                raise RequestError(f"{where}: a value is out of range for {name}")
        array = array.astype(_numpy_dtype(name))
    if 0 < len(array) < count:  # TensorFlow's rule: repeat the last value
        array = np.concatenate([array, np.repeat(array[-1:], count - len(array))])
    elif not len(array) and count:
        array = np.full(count, b"" if name == "string" else 0, dtype=array.dtype)
    return array


def _check_shape(shape, info, where, limits):
    """Refuses a shape the signature does not accept, before any value is read."""
    if info.shape is not None:
        if len(shape) != len(info.shape):
            raise RequestError(f"{where}: expected a value of rank {len(info.shape)} (shape "
                               f"{info.shape_text()}), got shape {shape}")
        if any(d is not None and d != got for d, got in zip(info.shape, shape)):
            raise RequestError(f"{where}: got shape {shape}, the signature expects "
                               f"{info.shape_text()}")
    if shape and shape[0] > limits.max_batch:
        raise RequestError(f"{where}: batch of {shape[0]} > the limit of {limits.max_batch}")
    count = int(np.prod(shape, dtype=np.float64))
    if count > limits.max_body_bytes:  # as many values as a request of the largest size
        raise RequestError(f"{where}: shape {shape} holds {count} values, over the limit of "
                           f"{limits.max_body_bytes} (max_body_bytes)")


def _check_values(array, info, where, limits):
    """Refuses the values REST's codec refuses (see the module docstring)."""
    if info.kind == "string":
        for position, item in enumerate(array.reshape(-1)):
            index = [int(i) for i in np.unravel_index(position, array.shape)]
            if not item:
                raise RequestError(f"{where}: empty string at index {index}")
            if len(item) > limits.max_string_length:
                raise RequestError(
                    f"{where}: string at index {index} is {len(item)} bytes long, over the "
                    f"limit of {limits.max_string_length}")
            if not info.name.endswith("_bytes"):  # text, as REST's JSON strings always are
                try:
                    item.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise RequestError(
                        f"{where}: string at index {index} is not UTF-8 text (byte "
                        f"{error.start}: {error.reason}); binary inputs are named *_bytes, "
                        "as in TF Serving") from None
    elif info.kind == "float" and not np.isfinite(
            array if array.dtype.kind == "f" else array.astype(np.float32)).all():  # bfloat16
        raise RequestError(f"{where}: NaN and infinite values are not accepted")


def to_inputs(inputs, signature, limits):
    """A `PredictRequest.inputs` map as the signature's input arrays.

    Args:
        inputs: the map of input name -> `TensorProto`.
        signature: the `Signature` to feed.
        limits: the request `Limits` (`codec.Limits`).

    Returns:
        ({input name: np.ndarray}, batch size or None).

    Raises a 400 `RequestError` naming the input for anything REST would
    refuse (see the module docstring).

    Example:

    >>> arrays, batch = to_inputs(request.inputs, signature, Limits())  # doctest: +SKIP
    """
    names = list(signature.inputs)
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise RequestError(f"unknown input {unknown[0]!r} for signature '{signature.name}' "
                           f"(inputs: {', '.join(names) or 'none'})")
    optional = codec.optional_settings(signature)  # per-request decoding settings
    missing = [name for name in names if name not in inputs and name not in optional]
    if missing:
        raise RequestError(f"missing input {missing[0]!r} for signature '{signature.name}'")
    arrays, batch, first = {}, None, None
    for name in (name for name in names if name in inputs):
        info, proto, where = signature.inputs[name], inputs[name], f"input '{name}'"
        expected = _FIELDS.get(info.dtype)
        if expected is None:
            raise RequestError(f"{where}: dtype {info.dtype} is not supported")
        if proto.dtype != expected[0]:
            raise RequestError(f"{where}: expects dtype {_dtype_text(expected[0])}, got "
                               f"{_dtype_text(proto.dtype)}")
        shape = _shape(proto, where)
        _check_shape(shape, info, where, limits)
        array = _values(proto, info.dtype, shape, where).reshape(shape)
        _check_values(array, info, where, limits)
        if array.ndim and (info.shape is None or info.shape[0] is None):
            if batch is not None and array.shape[0] != batch:
                raise RequestError(
                    f"inputs disagree on the batch (leading) dimension: '{first}' has {batch}, "
                    f"'{name}' has {array.shape[0]}; send the same batch for each")
            batch, first = array.shape[0], name
        arrays[name] = array
    codec.check_settings(arrays, optional)  # ranges, as REST checks them
    return arrays, batch


def to_proto(array, name):
    """An output array as a `TensorProto` (numbers in `tensor_content`).

    Args:
        array: a NumPy array (strings as an object array of bytes or str).
        name: the output's name, for the error message.

    Raises a 400 `RequestError` for a dtype `TensorProto` cannot carry here.
    """
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto(tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape]))
    if array.dtype == object or array.dtype.kind in "SU":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(
            item if isinstance(item, bytes) else str(item).encode("utf-8")
            for item in array.reshape(-1).tolist())
        return proto
    dtype_name = "bfloat16" if array.dtype.name == "bfloat16" else array.dtype.name
    if dtype_name not in _FIELDS:
        raise RequestError(f"output '{name}': dtype {array.dtype} cannot be sent")
    proto.dtype = _FIELDS[dtype_name][0]
    proto.tensor_content = np.ascontiguousarray(array).astype(
        array.dtype.newbyteorder("<")).tobytes()
    return proto
