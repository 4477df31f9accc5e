"""The predict codec: JSON request bodies to NumPy arrays, and outputs back to JSON.

Requests come in TF Serving's two formats: row (`{"instances": [...]}`, one
entry per example) or columnar (`{"inputs": ...}`, one value per input). Every
value is checked against the signature's `TensorInfo` (JSON type, rank, ragged
lists, empty or too long strings, integer range, batch size) and refused with
a 400 `RequestError` naming where the problem is. Strings travel as UTF-8 JSON
strings or `{"b64": ...}`.

JSON is strict both ways. In a request, `NaN`, `Infinity` and `-Infinity`
(which Python's `json` accepts), a number too large for a float (`1e999`), a
float input that overflows its dtype (`1e300` for float32), and a lone UTF-16
surrogate (`"\\ud800"`, not text in any encoding) are refused with 400. In a
response, a non-finite float output is written as the JSON string `"NaN"`,
`"Infinity"` or `"-Infinity"` (the protobuf JSON mapping's rule, which TF
Serving's gRPC-to-JSON clients read back), never as a bare token that strict
parsers reject.

Per-request decoding settings (`OptionalInput`, from export.json's
`decoding.inputs`: `beam_size`, `temperature`, ...) are scalar inputs a
request may leave out; sent, they go in the columnar format (`"inputs":
{"sentences": [...], "beam_size": 1}`), and a value outside its range is
refused with a 400 naming the input before the model runs. The backend
fills in the export's defaults for those left out (`fill_defaults`).
"""

import base64
import binascii
import json
import math
import re

import numpy as np

from keras_seq.serving.defaults import (  # noqa: F401  (re-exported)
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_STRING_LENGTH,
)
from keras_seq.serving.logs import _one_line
from keras_seq.serving.signatures import DEFAULT_SIGNATURE, RequestError


_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


class Limits:
    """The size limits on a request.

    Args:
        max_batch: most instances (or rows of a columnar input) per request.
        max_string_length: longest input string, in UTF-8 bytes.
        max_body_bytes: largest request body, in bytes.

    Raises `ValueError` unless every limit is a positive integer.
    """

    def __init__(self, max_batch=DEFAULT_MAX_BATCH, max_string_length=DEFAULT_MAX_STRING_LENGTH,
                 max_body_bytes=DEFAULT_MAX_BODY_BYTES):
        for label, value in (
            ("max_body_bytes", max_body_bytes),
            ("max_batch", max_batch),
            ("max_string_length", max_string_length),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.max_batch = max_batch
        self.max_string_length = max_string_length
        self.max_body_bytes = max_body_bytes


def _describe(value):
    """A JSON value's type for error messages (`a string ("abc")`, `a list`)."""
    kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{kind} ({_one_line(text, 40)})" if kind not in ("a list", "an object") else kind


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


# --------------------------------------------------------------------------
# JSON -> arrays


def _shape_of(value, info, where):
    """The shape of nested lists, read off the first element at every depth."""
    rank = None if info.shape is None else len(info.shape)
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if rank is not None and len(shape) > rank:
            break
        if not probe:
            break
        probe = probe[0]
    if rank is not None and len(shape) != rank:
        raise RequestError(
            f"{where}: expected a value of rank {rank} (shape {info.shape_text()}), "
            f"got nested lists of depth {len(shape)}"
            + (" or more" if len(shape) > rank else "")
        )
    if rank is None and len(shape) > 32:
        raise RequestError(f"{where}: nested lists deeper than 32 levels")
    return shape


def _flatten(value, shape, where):
    """The leaves of nested lists in row-major order, checked to fill `shape` exactly."""
    flat = []
    depth_count = len(shape)

    def walk(node, depth, index):
        if depth == depth_count:
            if isinstance(node, list):
                raise RequestError(f"{where}: ragged nested lists at index {list(index)}")
            flat.append(node)
            return
        if not isinstance(node, list) or len(node) != shape[depth]:
            got = f"length {len(node)}" if isinstance(node, list) else _describe(node)
            raise RequestError(
                f"{where}: ragged nested lists: element at index {list(index)} has {got}, "
                f"expected a list of length {shape[depth]}"
            )
        if depth == depth_count - 1:
            if any(isinstance(item, list) for item in node):
                bad = next(i for i, item in enumerate(node) if isinstance(item, list))
                raise RequestError(
                    f"{where}: ragged nested lists at index {list(index) + [bad]}"
                )
            flat.extend(node)
            return
        for i, item in enumerate(node):
            walk(item, depth + 1, index + (i,))

    walk(value, 0, ())
    return flat


def _index_of(position, shape):
    """The nested-list index of the `position`-th leaf."""
    if not shape:
        return []
    return [int(i) for i in np.unravel_index(position, shape)]


def _string_array(flat, shape, where, limits):
    """Strings (or `{"b64": ...}`) -> a 1-D object array of bytes."""
    items = []
    for position, item in enumerate(flat):
        if isinstance(item, str):
            data = item.encode("utf-8")
        elif _is_b64(item) and isinstance(item["b64"], str):
            try:
                data = base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise RequestError(
                    f"{where}: invalid base64 at index {_index_of(position, shape)}"
                ) from None
        else:
            raise RequestError(
                f"{where}: expected a string at index {_index_of(position, shape)}, "
                f"got {_describe(item)}"
            )
        if not data:
            raise RequestError(f"{where}: empty string at index {_index_of(position, shape)}")
        if len(data) > limits.max_string_length:
            raise RequestError(
                f"{where}: string at index {_index_of(position, shape)} is {len(data)} bytes "
                f"long, over the limit of {limits.max_string_length}"
            )
        items.append(data)
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _number_array(flat, shape, info, where):
    """Numbers or booleans -> a 1-D array of `info.dtype` (bfloat16 as float32)."""
    kind = info.kind
    if kind == "int":
        accepted, expected = (int,), "an integer"
    elif kind == "float":
        accepted, expected = (int, float), "a number"
    else:
        accepted, expected = (bool,), "a boolean"
    for position, item in enumerate(flat):
        # bool is a subclass of int: check the exact type.
        if type(item) not in accepted:
            raise RequestError(
                f"{where}: expected {expected} at index {_index_of(position, shape)}, "
                f"got {_describe(item)}"
            )
    dtype = np.dtype(info.dtype) if info.dtype != "bfloat16" else np.dtype("float32")
    try:
        if kind == "float":
            with np.errstate(over="ignore"):
                array = np.array(flat, dtype=dtype)
            if not np.isfinite(array).all():  # finite JSON numbers only: it overflowed
                raise OverflowError
            return array
        if kind != "int":
            return np.array(flat, dtype=dtype)
        wide = np.array(flat, dtype=np.uint64 if info.dtype == "uint64" else np.int64)
        bounds = np.iinfo(dtype)
        if wide.size and (wide.min() < bounds.min or wide.max() > bounds.max):
            raise OverflowError
        return wide.astype(dtype)
    except OverflowError:
        raise RequestError(f"{where}: a value is out of range for {info.dtype}") from None


def _to_array(value, info, where, limits):
    """Converts nested JSON lists to a NumPy array of `info`'s dtype and rank.

    Args:
        value: the JSON value (nested lists, or a scalar).
        info: the input's `TensorInfo`.
        where: names the value in error messages (`input 'ids'`).
        limits: the request's `Limits`.

    Returns:
        An `np.ndarray` (strings as an object array of bytes).

    Raises a 400 `RequestError` naming `where` and the offending index for
    ragged lists, values of the wrong JSON type, empty or too-long strings,
    integers out of range and shapes the signature does not accept.
    """
    if info.kind == "unsupported":
        raise RequestError(f"{where}: dtype {info.dtype} is not supported over JSON")
    shape = _shape_of(value, info, where)
    flat = _flatten(value, shape, where)
    if info.kind == "string":
        array = _string_array(flat, shape, where, limits)
    else:
        array = _number_array(flat, shape, info, where)
    array = array.reshape(shape)

    if info.shape is not None:
        for expected_dim, got in zip(info.shape, shape):
            if expected_dim is not None and expected_dim != got:
                raise RequestError(
                    f"{where}: got shape {list(shape)}, the signature expects "
                    f"{info.shape_text()}"
                )
    return array


def optional_settings(signature):
    """{name: `OptionalInput`}: the per-request decoding settings a request may leave out."""
    return getattr(signature, "optional", None) or {}



def _split_named(value, signature, where):
    """Maps a request value to {input name: value} (named object or bare value)."""
    optional = optional_settings(signature)
    names = [name for name in signature.inputs if name not in optional]
    bare_b64 = _is_b64(value) and "b64" not in signature.inputs
    if isinstance(value, dict) and not bare_b64:
        missing = [name for name in names if name not in value]
        unknown = [key for key in value if key not in signature.inputs]
        if unknown:
            raise RequestError(
                f"{where}: unknown input {unknown[0]!r} for signature '{signature.name}' "
                f"(inputs: {', '.join(signature.inputs) or 'none'})"
            )
        if missing:
            raise RequestError(
                f"{where}: missing input {missing[0]!r} for signature '{signature.name}'"
            )
        return value
    if len(names) != 1:
        raise RequestError(
            f"{where}: signature '{signature.name}' has {len(names)} inputs "
            f"({', '.join(names) or 'none'}); send an object keyed by input name"
        )
    return {names[0]: value}


def _inputs_from_instances(instances, signature, limits):
    """Row format: a list of instances -> ({input name: array}, batch size)."""
    if not isinstance(instances, list):
        raise RequestError(f"'instances' must be a list, got {_describe(instances)}")
    if not instances:
        raise RequestError("'instances' is empty")
    if len(instances) > limits.max_batch:
        raise RequestError(
            f"too many instances: {len(instances)} > the limit of {limits.max_batch}"
        )
    if not signature.inputs:
        raise RequestError(
            f"signature '{signature.name}' takes no inputs; use the 'inputs' format"
        )
    optional = optional_settings(signature)
    columns = {name: [] for name in signature.inputs if name not in optional}
    for i, instance in enumerate(instances):
        named = _split_named(instance, signature, f"instance {i}")
        setting = next((name for name in named if name in optional), None)
        if setting is not None:
            raise RequestError(
                f"instance {i}: input '{setting}' is a per-request setting (one value for "
                "the whole request); send it in the columnar 'inputs' format"
            )
        for name in columns:
            columns[name].append(named[name])
    arrays = {}
    for name, column in columns.items():
        info = signature.inputs[name]
        if info.shape is not None and not info.shape:
            raise RequestError(
                f"input '{name}' of signature '{signature.name}' is a scalar with no batch "
                "dimension; use the 'inputs' format"
            )
        arrays[name] = _to_array(column, info, f"instances (input '{name}')", limits)
    return arrays, len(instances)


def _inputs_from_columns(inputs, signature, limits):
    """Columnar format: one value per input -> ({input name: array}, batch or None).

    Every input whose signature leaves its leading (batch) dimension open must
    bring the same batch as the others: a model may broadcast a batch of one
    against another size and answer wrong rows (Keras's stateful RNN does).
    """
    named = _split_named(inputs, signature, "'inputs'")
    arrays = {}
    batch, first = None, None
    for name, value in named.items():
        info = signature.inputs[name]
        array = _to_array(value, info, f"input '{name}'", limits)
        if array.ndim >= 1:
            if array.shape[0] > limits.max_batch:
                raise RequestError(
                    f"input '{name}': batch of {array.shape[0]} > the limit of {limits.max_batch}"
                )
            if info.shape is None or info.shape[0] is None:  # a batch dimension
                if batch is not None and array.shape[0] != batch:
                    raise RequestError(
                        f"inputs disagree on the batch (leading) dimension: '{first}' has "
                        f"{batch}, '{name}' has {array.shape[0]}; send the same batch for each"
                    )
                batch, first = array.shape[0], name
        arrays[name] = array
    if batch is None:
        batch = max((a.shape[0] for a in arrays.values() if a.ndim >= 1), default=None)
    return arrays, batch


def _refuse_constant(name):
    raise RequestError(f"{name} is not valid JSON (only finite numbers are accepted)")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(f"the number {_one_line(text, 40)} is too large for a float")
    return value


# A \uD800-\uDFFF escape: the only way a lone surrogate gets into a parsed body.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_no_surrogates(value):
    """Refuses strings (and keys) holding a lone UTF-16 surrogate, with where."""
    stack = [(value, "the request")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                stack.append((key, f"a key in {where}"))
                stack.append((item, f"'{key}'"))
        elif isinstance(node, list):
            stack.extend((item, where) for item in node)
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as error:
                code = ord(node[error.start])
                raise RequestError(
                    f"{where.encode('ascii', 'backslashreplace').decode()} holds a lone UTF-16 "
                    f"surrogate (\\u{code:04x}), which is not text; send UTF-8 "
                    "text or {\"b64\": ...} bytes"
                ) from None


def parse_request(body):
    """Parses a predict body: (the request object, its signature name).

    Strict JSON: `NaN`/`Infinity`, numbers that overflow a float and lone
    surrogates are refused (see the module docstring).

    Args:
        body: the raw request body (bytes).

    Returns:
        (dict, str): the JSON object and the signature it names
        (`serving_default` when it names none).
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as error:
        raise RequestError(
            f"malformed JSON request body: not valid UTF-8 (byte {error.start}: {error.reason})"
        ) from None
    try:
        request = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RequestError:
        raise
    except (ValueError, RecursionError) as error:
        raise RequestError(f"malformed JSON request body: {_one_line(error, 200)}") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_no_surrogates(request)
    if not isinstance(request, dict):
        raise RequestError(f"the request body must be a JSON object, got {_describe(request)}")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if signature_name in (None, ""):
        signature_name = DEFAULT_SIGNATURE
    if not isinstance(signature_name, str):
        raise RequestError(f"'signature_name' must be a string, got {_describe(signature_name)}")
    return request, signature_name


def request_format(request):
    """"row" (`instances`) or "columnar" (`inputs`); refuses neither and both."""
    has_instances = "instances" in request
    has_inputs = "inputs" in request
    if has_instances and has_inputs:
        raise RequestError("the request has both 'instances' and 'inputs'; send only one")
    if not has_instances and not has_inputs:
        raise RequestError("the request has neither 'instances' (row format) nor 'inputs' "
                           "(columnar format)")
    return "row" if has_instances else "columnar"


def decode_inputs(request, fmt, signature, limits):
    """The signature's input arrays from a parsed request.

    Args:
        request: the request object (see `parse_request`).
        fmt: "row" or "columnar" (see `request_format`).
        signature: the `Signature` to feed.
        limits: the `Limits` to enforce.

    Returns:
        ({input name: np.ndarray}, batch size or None).

    Example:

    >>> arrays, batch = decode_inputs(                          # doctest: +SKIP
    ...     {"instances": ["hi"]}, "row", signature, Limits())
    """
    if fmt == "row":
        return _inputs_from_instances(request["instances"], signature, limits)
    arrays, batch = _inputs_from_columns(request["inputs"], signature, limits)
    check_settings(arrays, optional_settings(signature))
    return arrays, batch


# --------------------------------------------------------------------------
# Per-request decoding settings


class OptionalInput:
    """A scalar input a request may leave out: its default and range.

    Args:
        name: the input's name.
        entry: its export.json `decoding.inputs` entry: `dtype`, `default`
            and JSON Schema's `minimum`, `maximum`, `exclusiveMinimum`, plus
            `maximumInput` (another input it may not exceed) and
            `samplingDefault` (the default when the request sets another
            sampling input).

    Example:

    >>> beam = OptionalInput("beam_size", {"dtype": "int32", "default": 5,
    ...                                    "minimum": 1, "maximum": 8})
    >>> beam.check(np.int32(9))
    Traceback (most recent call last):
    ...
    keras_seq.serving.signatures.RequestError: input 'beam_size': 9 is out of range: must be in [1, 8]
    """

    def __init__(self, name, entry):
        self.name = name
        self.dtype = entry["dtype"]
        self.default = entry["default"]
        self.minimum = entry.get("minimum")
        self.maximum = entry.get("maximum")
        self.exclusive_minimum = entry.get("exclusiveMinimum")
        self.maximum_input = entry.get("maximumInput")
        self.sampling_default = entry.get("samplingDefault")

    def range_text(self):
        """The accepted range, as a message states it."""
        low = (f"({self.exclusive_minimum}" if self.exclusive_minimum is not None
               else f"[{self.minimum}" if self.minimum is not None else "(-inf")
        high = f"{self.maximum}]" if self.maximum is not None else "inf)"
        text = f"in {low}, {high}"
        if self.maximum_input:
            text += f" and at most {self.maximum_input}"
        return text

    def check(self, value):
        """Raises a 400 `RequestError` unless the scalar `value` is in range."""
        number = value.item()
        if not (
            (self.minimum is None or number >= self.minimum)
            and (self.exclusive_minimum is None or number > self.exclusive_minimum)
            and (self.maximum is None or number <= self.maximum)
        ):
            raise RequestError(
                f"input '{self.name}': {number} is out of range: must be {self.range_text()}"
            )


def optional_inputs(decoding_info, inputs):
    """{name: OptionalInput} of a signature's per-request settings.

    Args:
        decoding_info: export.json's `"decoding"` section (None or one
            without `"inputs"`, as in formats 1 and 2: none).
        inputs: the signature's input names; only those listed in both count
            (a SavedModel's `serving_default` takes none).
    """
    entries = (decoding_info or {}).get("inputs") or {}
    return {name: OptionalInput(name, entry) for name, entry in entries.items() if name in inputs}


def check_settings(arrays, optional):
    """Refuses (400) a per-request setting outside its range, or above the
    input its `maximumInput` names (sent, or else that input's default)."""
    for name, item in optional.items():
        if name not in arrays:
            continue
        item.check(arrays[name])
        other = optional.get(item.maximum_input)
        if other is not None:
            bound = arrays[other.name].item() if other.name in arrays else other.default
            if arrays[name].item() > bound:
                raise RequestError(
                    f"input '{name}': {arrays[name].item()} is out of range: must be at "
                    f"most {other.name} ({bound})"
                )


def fill_defaults(arrays, optional):
    """`arrays` with the defaults of the settings a request left out.

    `top_k` of a greedy export defaults to 1 (greedy), but to its
    `samplingDefault` (0, every token) when the request sets another sampling
    input (`temperature`, `top_p`, `seed`), as `keras_seq.decoding.DecodeOptions`
    samples once any of them is set.
    """
    filled = dict(arrays)
    sampling = any(name in arrays for name in ("temperature", "top_p", "seed"))
    for name, item in optional.items():
        if name not in filled:
            default = item.default
            if sampling and item.sampling_default is not None:
                default = item.sampling_default
            filled[name] = np.asarray(default, dtype=item.dtype)
    return filled


# --------------------------------------------------------------------------
# arrays -> JSON


def _strings_to_json(array, as_b64):
    def convert(item):
        if isinstance(item, bytes):
            if not as_b64:
                try:
                    return item.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(item).decode("ascii")}
        if isinstance(item, str) and as_b64:
            return {"b64": base64.b64encode(item.encode("utf-8")).decode("ascii")}
        return item if isinstance(item, str) else str(item)

    flat = [convert(item) for item in array.reshape(-1).tolist()]
    if array.ndim == 0:
        return flat[0]
    nested = np.empty(len(flat), dtype=object)
    nested[:] = flat
    return nested.reshape(array.shape).tolist()


def _array_to_json(array, name):
    """A NumPy output as JSON-ready nested lists (strings decoded as UTF-8)."""
    if array.dtype == object or array.dtype.kind in "SU":
        return _strings_to_json(array, as_b64=name.endswith("_bytes"))
    if array.dtype.kind == "c":
        raise RequestError(f"output '{name}': complex values cannot be sent as JSON")
    if array.dtype.kind == "V" or array.dtype.name == "bfloat16":
        array = array.astype(np.float32)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        # Strict JSON has no NaN/Infinity: the protobuf JSON mapping's strings.
        nested = array.astype(object)
        nested[np.isnan(array)] = "NaN"
        nested[np.isposinf(array)] = "Infinity"
        nested[np.isneginf(array)] = "-Infinity"
        return nested.tolist()
    return array.tolist()


def _row_predictions(results, batch):
    """TF Serving's row format: one entry per instance."""
    for name, array in results.items():
        if array.ndim == 0 or array.shape[0] != batch:
            raise RequestError(
                f"output '{name}' has shape {list(array.shape)}, which does not start with the "
                f"batch size {batch}; use the columnar 'inputs' format for this signature"
            )
    if len(results) == 1:
        (name, array), = results.items()
        return _array_to_json(array, name)
    columns = {name: _array_to_json(array, name) for name, array in results.items()}
    return [{name: column[i] for name, column in columns.items()} for i in range(batch)]


def encode_outputs(results, fmt, batch):
    """The predict response for a signature's outputs, as bytes.

    Args:
        results: {output name: np.ndarray}.
        fmt: the request's format, "row" or "columnar".
        batch: the number of instances (row format).

    Returns:
        `{"predictions": ...}` (row format) or `{"outputs": ...}` (columnar;
        a lone output unnamed), serialized by `dumps`.
    """
    if fmt == "row":
        payload = {"predictions": _row_predictions(results, batch)}
    elif len(results) == 1:
        (name, array), = results.items()
        payload = {"outputs": _array_to_json(array, name)}
    else:
        payload = {"outputs": {name: _array_to_json(a, name) for name, a in results.items()}}
    return dumps(payload)


def dumps(payload):
    """Compact UTF-8 JSON bytes; strict (no NaN/Infinity tokens, valid UTF-8)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape it as JSON allows
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("ascii")
