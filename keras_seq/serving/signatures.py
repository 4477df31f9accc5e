"""What a request addresses, backend-neutral: versions, signatures, tensors.

A backend (`backends.py`) turns a version's files into `Signature`s: named
inputs and outputs (`TensorInfo`) and a call on NumPy arrays. The registry
wraps them in a `Version`; the codec (`codec.py`) converts JSON to and from the
arrays by the `TensorInfo`s. `RequestError` is how any of them refuses a
request.
"""

from keras_seq import errors

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"

# Versions are int64 in TF Serving: at most 19 ASCII digits, below 2**63.
_MAX_VERSION = 2**63 - 1

# NumPy dtype names (and "string") -> TensorFlow's DataType enum names.
_DT_NAMES = {
    "string": "DT_STRING",
    "bool": "DT_BOOL",
    "float16": "DT_HALF",
    "bfloat16": "DT_BFLOAT16",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
}


def parse_version(text):
    """The version number a directory name or URL segment spells, or None.

    Only ASCII decimal digits spell a version (`"7"`, `"0012"`), up to
    `2**63 - 1` as TF Serving's int64; anything else is None: `"²"` and
    `"٣"` (which `str.isdigit()` accepts but `int()` may not), signs, spaces,
    `"1e3"`, and numbers too long for an int64.

    Args:
        text: a directory name or URL path segment.

    Returns:
        An int, or None if `text` is not a version.

    Example:

    >>> parse_version("12"), parse_version("²"), parse_version("-1")
    (12, None, None)
    """
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    number = int(text)
    return number if number <= _MAX_VERSION else None


class RequestError(errors.InputError):
    """A request the server refuses, with the HTTP status to answer.

    Args:
        message: one line naming the problem; sent to the client as
            `{"error": message}`.
        status: HTTP status code (400 bad request, 404 not found, 413 too large).

    Example:

    >>> error = RequestError("'instances' is empty")
    >>> error.status
    400
    """

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class TensorInfo:
    """Name, dtype and shape of one signature input or output.

    Args:
        name: the name clients use.
        dtype: a NumPy dtype name ("int32", "float32", "bool", ...) or "string".
        shape: a sequence with None for unknown dimensions, or None for
            unknown rank.
        tensor_name: the backend's own name of the tensor (default `name`).

    Example:

    >>> TensorInfo("ids", "int32", [None, None]).shape_text()
    '[-1, -1]'
    """

    def __init__(self, name, dtype, shape, tensor_name=None):
        self.name = name
        self.dtype = dtype
        self.shape = None if shape is None else tuple(shape)
        self.tensor_name = tensor_name or name

    @property
    def kind(self):
        """The JSON kind of value: "string", "bool", "int", "float" or "unsupported"."""
        if self.dtype == "string":
            return "string"
        if self.dtype == "bool":
            return "bool"
        if self.dtype.startswith(("int", "uint")):
            return "int"
        if self.dtype.startswith(("float", "bfloat")):
            return "float"
        return "unsupported"

    def shape_text(self):
        """The shape as TF Serving writes it (`[-1, 3]`), or "unknown"."""
        if self.shape is None:
            return "unknown"
        return "[" + ", ".join("-1" if d is None else str(d) for d in self.shape) + "]"

    def to_json(self):
        """The TensorInfo JSON of a SignatureDef (as TF Serving's metadata shows it)."""
        if self.shape is None:
            shape = {"dim": [], "unknown_rank": True}
        else:
            dims = [{"size": str(-1 if d is None else d), "name": ""} for d in self.shape]
            shape = {"dim": dims, "unknown_rank": False}
        return {
            "name": self.tensor_name,
            "dtype": _DT_NAMES.get(self.dtype, "DT_INVALID"),
            "tensor_shape": shape,
        }


class Signature:
    """One callable signature: inputs/outputs and a function of NumPy arrays.

    Args:
        name: signature key.
        inputs: dict name -> `TensorInfo`.
        outputs: dict name -> `TensorInfo`.
        call: function(dict name -> np.ndarray) -> dict name -> np.ndarray;
            raises `RequestError` for inputs the model refuses.
        signature_def: the SignatureDef as JSON for the metadata endpoint
            (default: built from `inputs` and `outputs`).
        optional: {name: `codec.OptionalInput`}, the inputs a request may
            leave out (per-request decoding settings); `call` fills them in.
    """

    def __init__(self, name, inputs, outputs, call, signature_def=None, optional=None):
        self.name = name
        self.optional = dict(optional or {})
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self._call = call
        self.signature_def = signature_def or {
            "inputs": {k: v.to_json() for k, v in self.inputs.items()},
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
            "method_name": PREDICT_METHOD,
        }

    def __call__(self, arrays):
        return self._call(arrays)


class Version:
    """A loaded, servable model version.

    Args:
        version: the version number.
        signatures: dict name -> `Signature`.
        path: where it was loaded from (a directory).
        backend: the backend's name ("savedmodel" or "onnx").
        handle: the backend's loaded object, kept alive with the version.
        fingerprint: the files' fingerprint when loaded.
    """

    def __init__(self, version, signatures, *, path, backend, handle=None, fingerprint=None):
        self.version = version
        self.signatures = signatures
        self.path = path
        self.backend = backend
        self.fingerprint = fingerprint
        self._handle = handle  # keeps the loaded SavedModel (and its variables) alive

    def signature(self, name):
        """Returns the named `Signature` or raises a 404 `RequestError`."""
        signature = self.signatures.get(name)
        if signature is None and name == DEFAULT_SIGNATURE and len(self.signatures) == 1:
            # A model with a single signature and no `serving_default` (e.g. a
            # lone ONNX file) answers requests that name no signature.
            signature = next(iter(self.signatures.values()))
        if signature is None:
            known = ", ".join(sorted(self.signatures)) or "none"
            raise RequestError(
                f"Serving signature name: '{name}' not found in signature def "
                f"(available signatures: {known})",
                status=404,
            )
        return signature
