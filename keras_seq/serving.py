"""HTTP model server for exported models, speaking TensorFlow Serving's REST API.

`create_app(model_base_dir)` returns a Starlette ASGI app that serves every model
found in a TF Serving model-base directory:

    MODEL_BASE_DIR/
      NAME/
        1/ saved_model.pb variables/ assets/    a SavedModel (any exporter)
        2/ ...                                  the highest complete version is the default
        onnx/<signature>.onnx                   optional, served with `onnx=True`
      NAME.onnx                                 also accepted with `onnx=True` (one signature)

`model_base_dir` may also be one model's directory (holding the `VERSION/`
directories itself, like TF Serving's `--model_base_path`), served under the
directory's name, or with `onnx=True` a single `.onnx` file.

The SavedModels are loaded with plain `tf.saved_model.load` and called through
their `signatures`; nothing here imports model code, so any SavedModel in TF
Serving layout works, and the server is generic over signature names, input
names, dtypes and shapes. With `onnx=True` the `.onnx` files beside each model
are served through onnxruntime behind the same API (signature name = file stem)
and TensorFlow is never imported.

REST API (the subset of TF Serving's that TF Serving clients use):

    GET  /v1/models/NAME[/versions/N]            model status
    GET  /v1/models/NAME[/versions/N]/metadata   signature defs
    POST /v1/models/NAME[/versions/N]:predict    {"signature_name": ..., "instances": [...]}
                                                 -> {"predictions": [...]} (row format), or
                                                 {"inputs": ...} -> {"outputs": ...} (columnar)
    GET  /v1/models                              every model and its versions (extension)
    GET  /healthz, /v1/health                    liveness

Strings travel as JSON strings (UTF-8); binary values may be sent as
`{"b64": "..."}` and an output string that is not valid UTF-8 (or whose output
name ends in `_bytes`, as in TF Serving) comes back as `{"b64": "..."}`.
Predict responses carry an `X-Model-Version` header naming the version that
answered.

Errors come back as `{"error": "<one line>"}`, never with a traceback:

    400  malformed JSON, a body that is not an object, neither or both of
         `instances`/`inputs`, a value of the wrong type or rank, ragged nested
         lists, an empty string, a string longer than `max_string_length` bytes,
         more than `max_batch` instances, and any error raised inside the model
         (e.g. TensorFlow's InvalidArgumentError; the message's first useful line)
    404  unknown model, version or signature (and unknown URL paths)
    405  wrong HTTP method
    413  a request body over `max_body_bytes` (TF Serving answers 400 there)
    500  a bug in the server itself: logged with its traceback, answered as JSON

Versions and hot swap: a background poller rescans the base directory every
`poll_interval` seconds. A version directory (numeric name) is considered once it
holds `saved_model.pb`, and is loaded after its file listing (names, sizes,
mtimes) is unchanged across two scans, so a directory still being copied is not
loaded half-written; exporters that write a temporary directory and rename it
into place (the recommended way) are picked up on the next scan. Loading runs in
a background thread; the new version is swapped in atomically and requests in
flight finish on the version they started with. A version that fails to load is
logged, reported in the model status as `state: "END"` with the error, and left
out; it is retried only when its files change. The highest AVAILABLE version
answers requests that name no version, so a broken new version never takes the
service down. A version directory that disappears is unloaded.

Each request is logged as one JSON line on the `keras_seq.serving` logger
(model, version, signature, format, instances, status, latency_ms, error).

Example:

>>> from keras_seq import serving
>>> app = serving.create_app("exported/")                     # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8501)
>>> # or from a shell: python apps/serve.py exported/ --port 8501
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import datetime
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from keras_seq import errors

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = [
    "ModelRegistry",
    "RequestError",
    "add_arguments",
    "create_app",
    "main",
    "serve",
]

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_BATCH = 256
DEFAULT_MAX_STRING_LENGTH = 8192
DEFAULT_POLL_INTERVAL = 1.0
PREDICT_METHOD = "tensorflow/serving/predict"

logger = logging.getLogger("keras_seq.serving")


class RequestError(errors.InputError):
    """A request the server refuses, with the HTTP status to answer.

    Args:
        message: one line naming the problem; sent to the client as
            `{"error": message}`.
        status: HTTP status code (400 bad request, 404 not found, 413 too large).
    """

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------
# Logging


class JsonFormatter(logging.Formatter):
    """Formats every record as one JSON line.

    Records logged by this module already carry their fields as a JSON line and
    pass through unchanged; any other record (uvicorn's startup messages, say)
    becomes `{"ts", "level", "logger", "message"}`.
    """

    def format(self, record):
        if getattr(record, "json_line", False):
            return record.getMessage()
        line = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def _timestamp(seconds=None):
    moment = datetime.datetime.fromtimestamp(
        time.time() if seconds is None else seconds, tz=datetime.timezone.utc
    )
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _log(level, event, **fields):
    """Logs one structured event as a single JSON line."""
    if not logger.isEnabledFor(level):
        return
    line = {"ts": _timestamp(), "level": logging.getLevelName(level).lower(), "event": event}
    line.update(fields)
    logger.log(level, json.dumps(line, ensure_ascii=False, default=str), extra={"json_line": True})


def _one_line(text, limit=1000):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------
# Tensors and signatures (backend-neutral)

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
_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
}


class _TensorInfo:
    """Name, dtype and shape of one signature input or output.

    `dtype` is a NumPy dtype name ("int32", "float32", "bool", ...) or "string";
    `shape` is a tuple with None for unknown dimensions, or None for unknown rank.
    """

    def __init__(self, name, dtype, shape, tensor_name=None):
        self.name = name
        self.dtype = dtype
        self.shape = None if shape is None else tuple(shape)
        self.tensor_name = tensor_name or name

    @property
    def kind(self):
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


class _Signature:
    """One callable signature: inputs/outputs and a function of NumPy arrays.

    Args:
        name: signature key.
        inputs: dict name -> `_TensorInfo`.
        outputs: dict name -> `_TensorInfo`.
        call: function(dict name -> np.ndarray) -> dict name -> np.ndarray.
        signature_def: the SignatureDef as JSON for the metadata endpoint.
    """

    def __init__(self, name, inputs, outputs, call, signature_def=None):
        self.name = name
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


class _Version:
    """A loaded, servable model version."""

    def __init__(self, version, signatures, *, path, backend, handle=None, fingerprint=None):
        self.version = version
        self.signatures = signatures
        self.path = path
        self.backend = backend
        self.fingerprint = fingerprint
        self._handle = handle  # keeps the loaded SavedModel (and its variables) alive

    def signature(self, name):
        """Returns the named signature or raises a 404 `RequestError`."""
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


# --------------------------------------------------------------------------
# Backends: SavedModel through TensorFlow, ONNX through onnxruntime


def _tf_error_message(error):
    """The first useful line of a TensorFlow error message."""
    text = getattr(error, "message", None) or str(error)
    lines = [line.rstrip() for line in text.splitlines()]
    skipping_trace = False
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped in ("Graph execution error:", "<stack traces unavailable>"):
            continue
        if stripped.startswith("Detected at node"):
            skipping_trace = True
            continue
        if skipping_trace and (line.startswith((" ", "\t")) or stripped.startswith("Node:")):
            continue
        if stripped.startswith("[[{{node") or stripped.startswith("[["):
            continue
        skipping_trace = False
        stripped = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", stripped)
        stripped = re.sub(r"\s*\[Op:[^\]]*\](\s*name:.*)?$", "", stripped)
        if stripped:
            return _one_line(stripped)
    return _one_line(type(error).__name__)


def _tf_dtype_name(tf_dtype):
    return "string" if tf_dtype.name == "string" else tf_dtype.name


def _signature_defs_from_file(path):
    """Reads the SignatureDefs of a SavedModel directory as TF Serving's JSON."""
    from google.protobuf import json_format, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    pb = path / "saved_model.pb"
    if pb.exists():
        saved_model.ParseFromString(pb.read_bytes())
    else:
        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags or len(saved_model.meta_graphs) == 1:
            return {
                key: json_format.MessageToDict(
                    value,
                    always_print_fields_with_no_presence=True,
                    preserving_proto_field_name=True,
                )
                for key, value in meta_graph.signature_def.items()
            }
    return {}


_custom_ops_imported = False


def _load_saved_model(path):
    """Loads one SavedModel version with plain `tf.saved_model.load`.

    Returns:
        (handle, dict signature name -> `_Signature`).
    """
    global _custom_ops_imported
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path), tags=["serve"])
    except tf.errors.NotFoundError as error:
        # A SavedModel that uses tensorflow-text ops needs them registered first.
        if "Op type not registered" not in str(error) or _custom_ops_imported:
            raise
        _custom_ops_imported = True
        try:
            import tensorflow_text  # noqa: F401
        except ImportError:
            raise error from None
        loaded = tf.saved_model.load(str(path), tags=["serve"])

    try:
        signature_defs = _signature_defs_from_file(path)
    except Exception:  # the metadata is a convenience; serve without it
        signature_defs = {}

    signatures = {}
    for key, function in loaded.signatures.items():
        _, specs = function.structured_input_signature
        inputs = {
            name: _TensorInfo(
                name,
                _tf_dtype_name(spec.dtype),
                None if spec.shape.rank is None else spec.shape.as_list(),
            )
            for name, spec in sorted(specs.items())
        }
        outputs = {}
        for name, spec in sorted(function.structured_outputs.items()):
            shape = getattr(spec, "shape", None)
            outputs[name] = _TensorInfo(
                name,
                _tf_dtype_name(spec.dtype),
                None if shape is None or shape.rank is None else shape.as_list(),
            )
        signatures[key] = _Signature(
            key,
            inputs,
            outputs,
            _make_tf_call(function, inputs),
            signature_defs.get(key),
        )
    return loaded, signatures


def _make_tf_call(function, inputs):
    import tensorflow as tf

    dtypes = {name: tf.as_dtype(info.dtype) for name, info in inputs.items()}

    def call(arrays):
        tensors = {name: tf.constant(arrays[name], dtype=dtypes[name]) for name in dtypes}
        try:
            results = function(**tensors)
        except tf.errors.ResourceExhaustedError as error:
            raise RequestError(_tf_error_message(error), status=503) from None
        except tf.errors.OpError as error:
            raise RequestError(_tf_error_message(error)) from None
        except (ValueError, TypeError) as error:
            raise RequestError(_one_line(str(error).splitlines()[0] if str(error) else error))
        if not isinstance(results, dict):  # signatures always return dicts; be safe
            results = {"output_0": results}
        return {name: np.asarray(value.numpy()) for name, value in results.items()}

    return call


_ORT_TYPES = {
    "tensor(string)": "string",
    "tensor(bool)": "bool",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
}


def _ort_tensor_info(node):
    # tf2onnx keeps TensorFlow's ":0" suffixes; clients use the bare names.
    name = node.name[:-2] if node.name.endswith(":0") else node.name
    shape = node.shape
    if shape is not None:
        shape = [d if isinstance(d, int) and d >= 0 else None for d in shape]
    return _TensorInfo(name, _ORT_TYPES.get(node.type, node.type), shape, tensor_name=node.name)


def _load_onnx_signatures(files):
    """Opens `<signature>.onnx` files in onnxruntime: {file stem: `_Signature`}."""
    import onnxruntime

    signatures = {}
    for file in files:
        options = onnxruntime.SessionOptions()
        # Requests run concurrently from several threads: spinning intra-op
        # threads would burn the cores the other requests need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = {}
        feed_names = {}
        for node in session.get_inputs():
            info = _ort_tensor_info(node)
            inputs[info.name] = info
            feed_names[info.name] = node.name
        outputs = {}
        fetch_names = []
        for node in session.get_outputs():
            info = _ort_tensor_info(node)
            outputs[info.name] = info
            fetch_names.append((info.name, node.name))
        signatures[file.stem] = _Signature(
            file.stem, inputs, outputs, _make_ort_call(session, inputs, feed_names, fetch_names)
        )
    return signatures


def _make_ort_call(session, inputs, feed_names, fetch_names):
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    ort_errors = tuple(
        value
        for value in vars(ort_state).values()
        if isinstance(value, type) and issubclass(value, Exception)
    )

    def call(arrays):
        feed = {}
        for name, info in inputs.items():
            array = arrays[name]
            if info.dtype == "string":
                try:
                    flat = [value.decode("utf-8") for value in array.reshape(-1)]
                except UnicodeDecodeError:
                    raise RequestError(
                        f"input '{name}': the ONNX backend takes UTF-8 text, not binary strings"
                    ) from None
                array = np.array(flat, dtype=object).reshape(array.shape)
            feed[feed_names[name]] = array
        try:
            results = session.run([onnx_name for _, onnx_name in fetch_names], feed)
        except ort_errors as error:
            message = re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*", "", str(error))
            raise RequestError(_one_line(message.splitlines()[0] if message else error)) from None
        return {name: np.asarray(value) for (name, _), value in zip(fetch_names, results)}

    return call


# --------------------------------------------------------------------------
# The registry of models and versions


def _fingerprint(path):
    """(relative path, size, mtime) of every file under `path`, sorted.

    `path` may also be a list of files.
    """
    entries = []
    if isinstance(path, (list, tuple)):
        for file in path:
            with contextlib.suppress(OSError):
                stat = os.stat(file)
                entries.append((str(file), stat.st_size, stat.st_mtime_ns))
        return tuple(sorted(entries))
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def _error_code(error):
    code = getattr(error, "error_code", None)
    if code is not None:
        with contextlib.suppress(Exception):
            from tensorflow.core.protobuf import error_codes_pb2

            return error_codes_pb2.Code.Name(code)
    if isinstance(error, FileNotFoundError):
        return "NOT_FOUND"
    return "UNKNOWN"


class _ModelEntry:
    """Everything known about one model name."""

    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.versions = {}  # version -> _Version (AVAILABLE)
        self.failed = {}  # version -> (fingerprint, error_code, message)
        self.loading = set()
        self.pending = {}  # version -> fingerprint seen on the previous scan

    def default_version(self):
        return max(self.versions) if self.versions else None


class ModelRegistry:
    """Finds, loads and hot-swaps model versions under a model base directory.

    Args:
        model_base_dir: directory holding `NAME/VERSION/` SavedModels. A single
            model's directory (holding `VERSION/` directories itself, as TF
            Serving's `--model_base_path`) is served too, under its own name.
        onnx: serve ONNX files through onnxruntime instead of the SavedModels:
            `NAME/onnx/<signature>.onnx`, or else a `NAME.onnx` file beside
            `NAME/` (one signature named NAME, which also answers requests
            naming no signature); `model_base_dir` may then be a `.onnx` file.
            The ONNX files of a model form one version, numbered after the
            highest SavedModel version beside them (1 if none), and are
            reloaded when they change.
        max_versions: serve at most this many of the highest versions of each
            model (None: all of them).

    `poll()` does one scan (call it from one thread at a time); `get()`,
    `status()` and `models()` may be called from any thread.

    Example:

    >>> registry = ModelRegistry("exported/")                    # doctest: +SKIP
    >>> registry.poll(initial=True)                              # doctest: +SKIP
    >>> registry.get("lm").signature("generate")                 # doctest: +SKIP
    """

    def __init__(self, model_base_dir, *, onnx=False, max_versions=None):
        self.base_dir = Path(model_base_dir)
        single_onnx = onnx and self.base_dir.suffix == ".onnx" and self.base_dir.is_file()
        if not self.base_dir.is_dir() and not single_onnx:
            raise errors.RunDirError(
                f"model base directory {str(model_base_dir)!r} does not exist or is not a "
                "directory" + (" (or, with onnx=True, a .onnx file)" if onnx else "")
            )
        if max_versions is not None and max_versions < 1:
            raise ValueError(f"max_versions must be >= 1 or None, got {max_versions}")
        self.onnx = bool(onnx)
        self.max_versions = max_versions
        self._models = {}
        self._lock = threading.Lock()
        self._noted = set()  # one-time log notes (incomplete directories, ...)

    # -- queries (any thread) ------------------------------------------------

    def models(self):
        """dict name -> sorted list of AVAILABLE versions (highest first)."""
        with self._lock:
            return {
                name: sorted(entry.versions, reverse=True)
                for name, entry in sorted(self._models.items())
            }

    def get(self, name, version=None):
        """Returns the `_Version` to serve, or raises a 404 `RequestError`.

        Args:
            name: model name.
            version: an int, or None for the highest AVAILABLE version.
        """
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                raise RequestError(
                    f"Servable not found for request: model '{name}' is not served", status=404
                )
            if version is None:
                version = entry.default_version()
                if version is None:
                    raise RequestError(
                        f"Servable not found for request: model '{name}' has no available version",
                        status=404,
                    )
            served = entry.versions.get(version)
        if served is None:
            raise RequestError(
                f"Servable not found for request: version {version} of model '{name}' "
                "is not available",
                status=404,
            )
        return served

    def status(self, name, version=None):
        """TF Serving's `model_version_status` list for a model (or one version)."""
        with self._lock:
            entry = self._models.get(name)
            if entry is None:
                raise RequestError(
                    f"Servable not found for request: model '{name}' is not served", status=404
                )
            rows = {}
            for number in entry.versions:
                rows[number] = ("AVAILABLE", "OK", "")
            for number in entry.loading:
                rows.setdefault(number, ("LOADING", "OK", ""))
            for number, (_, code, message) in entry.failed.items():
                rows.setdefault(number, ("END", code, message))
        if not rows:
            raise RequestError(
                f"Servable not found for request: model '{name}' has no version yet", status=404
            )
        if version is not None:
            if version not in rows:
                raise RequestError(
                    f"Servable not found for request: version {version} of model '{name}' "
                    "is not known",
                    status=404,
                )
            rows = {version: rows[version]}
        return [
            {
                "version": str(number),
                "state": state,
                "status": {"error_code": code, "error_message": message},
            }
            for number, (state, code, message) in sorted(rows.items(), reverse=True)
        ]

    # -- scanning (one thread) -----------------------------------------------

    def poll(self, initial=False):
        """Scans the base directory once: loads new versions, unloads removed ones.

        Args:
            initial: load complete versions right away instead of waiting for
                their files to stay unchanged across two scans.
        """
        try:
            model_paths = self._model_paths()
        except OSError as error:
            _log(logging.ERROR, "scan_failed", path=str(self.base_dir), error=str(error))
            return
        seen = set()
        for name, path in sorted(model_paths.items()):
            candidates = self._scan_onnx(path) if self.onnx else self._scan_versions(path)
            if candidates is None:
                continue
            seen.add(name)
            with self._lock:
                entry = self._models.setdefault(name, _ModelEntry(name, path))
            self._update(entry, candidates, initial)
        with self._lock:
            gone = [name for name in self._models if name not in seen]
            for name in gone:
                del self._models[name]
        for name in gone:
            _log(logging.INFO, "model_removed", model=name)

    def _model_paths(self):
        """{model name: path}: a base directory, one model's directory, or a .onnx file."""
        base = self.base_dir
        if base.is_file():
            return {base.stem: base}
        if self._numeric_versions(base) or (self.onnx and (base / "onnx").is_dir()):
            return {base.resolve().name: base}  # a single model's directory
        paths = {}
        for child in base.iterdir():
            if child.name.startswith((".", "_")):
                continue
            if child.is_dir():
                paths[child.name] = child
            elif self.onnx and child.suffix == ".onnx" and child.is_file():
                paths.setdefault(child.stem, child)
        return paths

    def _numeric_versions(self, path):
        versions = {}
        with contextlib.suppress(OSError):
            for child in path.iterdir():
                if child.is_dir() and child.name.isdigit():
                    versions[int(child.name)] = child
        return versions

    def _scan_versions(self, path):
        """Complete SavedModel version directories of one model: {version: path}."""
        versions = {}
        for number, child in self._numeric_versions(path).items():
            if (child / "saved_model.pb").is_file() or (child / "saved_model.pbtxt").is_file():
                versions[number] = child
            elif (child, "incomplete") not in self._noted:
                self._noted.add((child, "incomplete"))
                _log(
                    logging.WARNING,
                    "version_incomplete",
                    model=path.name,
                    version=number,
                    path=str(child),
                    error="no saved_model.pb yet; waiting",
                )
        if not versions and not self._numeric_versions(path):
            return None  # not a model directory
        if self.max_versions is not None:
            keep = sorted(versions, reverse=True)[: self.max_versions]
            versions = {number: versions[number] for number in keep}
        return versions

    def _scan_onnx(self, path):
        """{version: [onnx files]} for one model, or None if it has none."""
        if path.is_file():
            return {1: [path]}
        files = sorted((path / "onnx").glob("*.onnx"))
        if not files and path.with_name(path.name + ".onnx").is_file():
            files = [path.with_name(path.name + ".onnx")]
        if not files:
            if (path, "no-onnx") not in self._noted and self._numeric_versions(path):
                self._noted.add((path, "no-onnx"))
                _log(logging.WARNING, "onnx_missing", model=path.name,
                     path=str(path / "onnx"))
            return None
        complete = [
            number
            for number, child in self._numeric_versions(path).items()
            if (child / "saved_model.pb").is_file()
        ]
        return {max(complete, default=1): files}

    def _update(self, entry, candidates, initial):
        if self.onnx:
            self._update_onnx(entry, candidates, initial)
            return
        # Unload versions whose directories disappeared (or fell out of max_versions).
        with self._lock:
            removed = [v for v in entry.versions if v not in candidates]
            for number in removed:
                del entry.versions[number]
            for number in [v for v in entry.failed if v not in candidates]:
                del entry.failed[number]
            for number in [v for v in entry.pending if v not in candidates]:
                del entry.pending[number]
        for number in removed:
            _log(logging.INFO, "version_unloaded", model=entry.name, version=number)

        for number in sorted(candidates, reverse=True):  # newest first
            if number in entry.versions:
                continue  # a loaded version is never reloaded in place
            path = candidates[number]
            fingerprint = _fingerprint(path)
            if self._ready(entry, number, fingerprint, initial):
                self._load(entry, number, path, fingerprint)

    def _update_onnx(self, entry, candidates, initial):
        # The ONNX files of a model are one version: reloaded as a whole when
        # they change, swapped in one step, the old set serving until then.
        (number, files), = candidates.items()
        fingerprint = _fingerprint(files)
        with self._lock:
            current = next(iter(entry.versions.values()), None)
        if current is not None and current.fingerprint == fingerprint:
            return
        if self._ready(entry, number, fingerprint, initial):
            self._load(entry, number, files, fingerprint)

    def _ready(self, entry, number, fingerprint, initial):
        """Whether to try loading now: not known broken, files settled."""
        failed = entry.failed.get(number)
        if failed is not None and failed[0] == fingerprint:
            return False  # still the same broken files
        if not initial and entry.pending.get(number) != fingerprint:
            entry.pending[number] = fingerprint  # wait one scan for the files to settle
            return False
        entry.pending.pop(number, None)
        return True

    def _load(self, entry, number, path, fingerprint):
        with self._lock:
            entry.loading.add(number)
        start = time.perf_counter()
        try:
            if self.onnx:
                signatures = _load_onnx_signatures(path)
                version = _Version(
                    number, signatures, path=path[0].parent, backend="onnx",
                    fingerprint=fingerprint,
                )
            else:
                handle, signatures = _load_saved_model(path)
                version = _Version(
                    number,
                    signatures,
                    path=path,
                    backend="savedmodel",
                    handle=handle,
                    fingerprint=fingerprint,
                )
        except Exception as error:  # any load failure is reported, never fatal
            message = _tf_error_message(error) if hasattr(error, "error_code") else _one_line(
                f"{type(error).__name__}: {error}"
            )
            with self._lock:
                entry.loading.discard(number)
                entry.failed[number] = (fingerprint, _error_code(error), message)
            _log(
                logging.ERROR,
                "version_load_failed",
                model=entry.name,
                version=number,
                path=str(path),
                error=message,
            )
            return
        with self._lock:
            entry.loading.discard(number)
            entry.failed.pop(number, None)
            if self.onnx:
                entry.versions = {number: version}  # swap the ONNX set in one step
                entry.failed.clear()
            else:
                entry.versions[number] = version
        _log(
            logging.INFO,
            "version_loaded",
            model=entry.name,
            version=number,
            backend=version.backend,
            signatures=sorted(signatures),
            seconds=round(time.perf_counter() - start, 3),
        )


# --------------------------------------------------------------------------
# JSON <-> arrays


def _describe(value):
    kind = _JSON_TYPE_NAMES.get(type(value), type(value).__name__)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{kind} ({_one_line(text, 40)})" if kind not in ("a list", "an object") else kind


def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


class _Limits:
    def __init__(self, max_batch, max_string_length):
        self.max_batch = max_batch
        self.max_string_length = max_string_length


def _to_array(value, info, where, limits):
    """Converts nested JSON lists to a NumPy array of `info`'s dtype and rank.

    Raises a 400 `RequestError` naming `where` and the offending index for
    ragged lists, values of the wrong JSON type, empty or too-long strings,
    integers out of range and shapes the signature does not accept.
    """
    kind = info.kind
    if kind == "unsupported":
        raise RequestError(f"{where}: dtype {info.dtype} is not supported over JSON")
    rank = None if info.shape is None else len(info.shape)

    # The shape is read off the first element at every depth, then checked everywhere.
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

    def index_of(position):
        if not shape:
            return []
        return [int(i) for i in np.unravel_index(position, shape)]

    if kind == "string":
        items = []
        for position, item in enumerate(flat):
            if isinstance(item, str):
                data = item.encode("utf-8")
            elif _is_b64(item) and isinstance(item["b64"], str):
                try:
                    data = base64.b64decode(item["b64"], validate=True)
                except (binascii.Error, ValueError):
                    raise RequestError(
                        f"{where}: invalid base64 at index {index_of(position)}"
                    ) from None
            else:
                raise RequestError(
                    f"{where}: expected a string at index {index_of(position)}, "
                    f"got {_describe(item)}"
                )
            if not data:
                raise RequestError(f"{where}: empty string at index {index_of(position)}")
            if len(data) > limits.max_string_length:
                raise RequestError(
                    f"{where}: string at index {index_of(position)} is {len(data)} bytes long, "
                    f"over the limit of {limits.max_string_length}"
                )
            items.append(data)
        array = np.empty(len(items), dtype=object)
        array[:] = items
    else:
        if kind == "int":
            accepted = (int,)
            expected = "an integer"
        elif kind == "float":
            accepted = (int, float)
            expected = "a number"
        else:
            accepted = (bool,)
            expected = "a boolean"
        for position, item in enumerate(flat):
            # bool is a subclass of int: check the exact type.
            if type(item) not in accepted:
                raise RequestError(
                    f"{where}: expected {expected} at index {index_of(position)}, "
                    f"got {_describe(item)}"
                )
        dtype = np.dtype(info.dtype) if info.dtype != "bfloat16" else np.dtype("float32")
        try:
            if kind == "int":
                wide = np.array(flat, dtype=np.uint64 if info.dtype == "uint64" else np.int64)
                bounds = np.iinfo(dtype)
                if wide.size and (wide.min() < bounds.min or wide.max() > bounds.max):
                    raise OverflowError
                array = wide.astype(dtype)
            else:
                array = np.array(flat, dtype=dtype)
        except OverflowError:
            raise RequestError(f"{where}: a value is out of range for {info.dtype}") from None
    array = array.reshape(shape)

    if info.shape is not None:
        for expected_dim, got in zip(info.shape, shape):
            if expected_dim is not None and expected_dim != got:
                raise RequestError(
                    f"{where}: got shape {list(shape)}, the signature expects "
                    f"{info.shape_text()}"
                )
    return array


def _split_named(value, signature, where):
    """Maps a request value to {input name: value} (named object or bare value)."""
    names = list(signature.inputs)
    bare_b64 = _is_b64(value) and "b64" not in signature.inputs
    if isinstance(value, dict) and not bare_b64:
        missing = [name for name in names if name not in value]
        unknown = [key for key in value if key not in signature.inputs]
        if unknown:
            raise RequestError(
                f"{where}: unknown input {unknown[0]!r} for signature '{signature.name}' "
                f"(inputs: {', '.join(names) or 'none'})"
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
    columns = {name: [] for name in signature.inputs}
    for i, instance in enumerate(instances):
        named = _split_named(instance, signature, f"instance {i}")
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
    named = _split_named(inputs, signature, "'inputs'")
    arrays = {}
    batch = None
    for name, value in named.items():
        array = _to_array(value, signature.inputs[name], f"input '{name}'", limits)
        if array.ndim >= 1:
            if array.shape[0] > limits.max_batch:
                raise RequestError(
                    f"input '{name}': batch of {array.shape[0]} > the limit of {limits.max_batch}"
                )
            batch = array.shape[0] if batch is None else max(batch, array.shape[0])
        arrays[name] = array
    return arrays, batch


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


def _dumps(payload):
    # allow_nan: TF Serving writes NaN/Infinity tokens for non-finite floats too.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------
# The ASGI app

_PATH_RE = re.compile(
    r"^(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z_]+)?$"
)


class _AccessLog:
    """ASGI middleware: one JSON log line per HTTP request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]
        fields = scope.setdefault("state", {})

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            code = status[0]
            record = {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": code,
                "latency_ms": round((time.perf_counter() - start) * 1000.0, 3),
            }
            for key in ("model", "version", "signature", "format", "instances", "error"):
                if fields.get(key) is not None:
                    record[key] = fields[key]
            level = logging.INFO if code < 400 else logging.WARNING if code < 500 else logging.ERROR
            _log(level, "request", **record)


def create_app(
    model_base_dir,
    *,
    onnx=False,
    max_body_bytes=DEFAULT_MAX_BODY_BYTES,
    max_batch=DEFAULT_MAX_BATCH,
    max_string_length=DEFAULT_MAX_STRING_LENGTH,
    poll_interval=DEFAULT_POLL_INTERVAL,
    max_versions=None,
    workers=None,
):
    """Builds the ASGI app serving every model under `model_base_dir`.

    Models are loaded when the app starts (ASGI lifespan), and a background task
    rescans the directory every `poll_interval` seconds to hot-swap new
    versions (see the module docstring).

    Args:
        model_base_dir: TF Serving model base directory (`NAME/VERSION/`).
        onnx: serve `NAME/onnx/*.onnx` through onnxruntime instead of the
            SavedModels (TensorFlow is then not imported).
        max_body_bytes: largest request body accepted; larger ones get 413.
        max_batch: most instances (or rows of a columnar input) per request.
        max_string_length: longest input string, in UTF-8 bytes.
        poll_interval: seconds between directory scans; 0 or None disables
            hot swap (models are loaded once at startup).
        max_versions: serve only the highest N versions of each model
            (None: every complete version).
        workers: threads running model calls (default: 4 per CPU, at most 32).

    Returns:
        A `starlette.applications.Starlette` app; `app.state.registry` is its
        `ModelRegistry`.

    Example:

    >>> import uvicorn                                             # doctest: +SKIP
    >>> app = create_app("exported/", poll_interval=2.0)           # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8501)             # doctest: +SKIP
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import Response
    from starlette.routing import Route

    for label, value in (
        ("max_body_bytes", max_body_bytes),
        ("max_batch", max_batch),
        ("max_string_length", max_string_length),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if poll_interval is not None and (
        not isinstance(poll_interval, (int, float)) or poll_interval < 0
    ):
        raise ValueError(f"poll_interval must be >= 0 seconds or None, got {poll_interval!r}")
    if workers is None:
        workers = min(32, 4 * (os.cpu_count() or 1))

    registry = ModelRegistry(model_base_dir, onnx=onnx, max_versions=max_versions)
    limits = _Limits(max_batch, max_string_length)

    def new_pools():
        return {
            "requests": ThreadPoolExecutor(workers, thread_name_prefix="keras-seq-serve"),
            "loader": ThreadPoolExecutor(1, thread_name_prefix="keras-seq-loader"),
        }

    pools = new_pools()

    def json_response(payload, status=200, headers=None):
        return Response(_dumps(payload), status_code=status, headers=headers,
                        media_type="application/json")

    def error_response(request, error):
        request.state.error = str(error)
        return json_response({"error": str(error)}, status=error.status)

    async def run_blocking(function, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pools["requests"], function, *args)

    def parse_path(request):
        rest = request.path_params["rest"]
        match = _PATH_RE.match(rest)
        if match is None:
            raise RequestError(f"unknown path /v1/models/{rest}", status=404)
        name = match["name"]
        request.state.model = name
        if match["label"] is not None:
            raise RequestError(
                f"version labels are not supported (label '{match['label']}'); "
                "use /versions/N",
                status=404,
            )
        version = match["version"]
        if version is not None:
            if not version.isdigit():
                raise RequestError(f"version must be a non-negative integer, got '{version}'",
                                   status=404)
            version = int(version)
            request.state.version = version
        return name, version, match["suffix"]

    async def read_body(request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise RequestError(
                f"request body of {declared} bytes is over the limit of {max_body_bytes}",
                status=413,
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise RequestError(
                    f"request body is over the limit of {max_body_bytes} bytes", status=413
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def predict(served, body, fields):
        """Parses, validates, runs and serializes one predict (in a worker thread)."""
        try:
            request = json.loads(body)
        except (ValueError, RecursionError) as error:
            raise RequestError(f"malformed JSON request body: {_one_line(error, 200)}") from None
        if not isinstance(request, dict):
            raise RequestError(f"the request body must be a JSON object, got {_describe(request)}")
        signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
        if signature_name in (None, ""):
            signature_name = DEFAULT_SIGNATURE
        if not isinstance(signature_name, str):
            raise RequestError(f"'signature_name' must be a string, got {_describe(signature_name)}")
        fields["signature"] = signature_name
        signature = served.signature(signature_name)
        has_instances = "instances" in request
        has_inputs = "inputs" in request
        if has_instances and has_inputs:
            raise RequestError("the request has both 'instances' and 'inputs'; send only one")
        if not has_instances and not has_inputs:
            raise RequestError("the request has neither 'instances' (row format) nor 'inputs' "
                               "(columnar format)")
        if has_instances:
            fields["format"] = "row"
            arrays, batch = _inputs_from_instances(request["instances"], signature, limits)
        else:
            fields["format"] = "columnar"
            arrays, batch = _inputs_from_columns(request["inputs"], signature, limits)
        fields["instances"] = batch
        results = signature(arrays)
        if has_instances:
            payload = {"predictions": _row_predictions(results, batch)}
        elif len(results) == 1:
            (name, array), = results.items()
            payload = {"outputs": _array_to_json(array, name)}
        else:
            payload = {"outputs": {name: _array_to_json(a, name) for name, a in results.items()}}
        return _dumps(payload)

    async def models_endpoint(request):
        try:
            name, version, suffix = parse_path(request)
            if request.method == "POST":
                if suffix == ":predict":
                    served = registry.get(name, version)
                    request.state.version = served.version
                    body = await read_body(request)
                    fields = {}
                    try:
                        content = await run_blocking(predict, served, body, fields)
                    finally:
                        for key, value in fields.items():
                            setattr(request.state, key, value)
                    return Response(content, media_type="application/json",
                                    headers={"X-Model-Version": str(served.version)})
                if suffix in (":classify", ":regress"):
                    raise RequestError(f"'{suffix}' is not supported by this server; use ':predict'")
                if suffix in (None, "/metadata"):
                    raise RequestError(f"method POST is not allowed on {request.url.path}; "
                                       "use GET (or POST .../NAME:predict)", status=405)
                raise RequestError(f"unknown method '{suffix}'; use ':predict'", status=404)
            # GET
            if suffix is None:
                return json_response({"model_version_status": registry.status(name, version)})
            if suffix == "/metadata":
                served = registry.get(name, version)
                request.state.version = served.version
                return json_response({
                    "model_spec": {"name": name, "signature_name": "",
                                   "version": str(served.version)},
                    "metadata": {"signature_def": {"signature_def": {
                        key: signature.signature_def
                        for key, signature in sorted(served.signatures.items())
                    }}},
                })
            raise RequestError(f"method GET is not allowed on {request.url.path}; use POST",
                               status=405)
        except RequestError as error:
            return error_response(request, error)

    async def list_models(request):
        return json_response({
            "models": [
                {"name": name, "model_version_status": registry.status(name)}
                for name in registry.models()
            ]
        })

    async def health(request):
        models = registry.models()
        return json_response({
            "status": "ok",
            "backend": "onnx" if onnx else "savedmodel",
            "models": {name: [str(v) for v in versions] for name, versions in models.items()},
        })

    async def http_exception(request, exc):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"unknown path {request.url.path}"
        request.state.error = message
        return json_response({"error": message}, status=exc.status_code,
                             headers=getattr(exc, "headers", None))

    async def internal_error(request, exc):
        # Never leaks a traceback to the client; the log line keeps it.
        _log(logging.ERROR, "internal_error", path=request.url.path,
             error=_one_line(f"{type(exc).__name__}: {exc}"),
             traceback="".join(traceback.format_exception(exc)))
        return json_response({"error": f"internal server error ({type(exc).__name__})"},
                             status=500)

    async def poll_forever():
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(poll_interval)
            try:
                await loop.run_in_executor(pools["loader"], registry.poll)
            except Exception as error:  # keep polling whatever happens
                _log(logging.ERROR, "poll_failed", error=_one_line(error))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if pools["requests"]._shutdown:  # a second lifespan (e.g. a restarted test client)
            pools.update(new_pools())
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pools["loader"], lambda: registry.poll(initial=True))
        _log(logging.INFO, "server_ready", base_dir=str(registry.base_dir),
             backend="onnx" if onnx else "savedmodel", models=registry.models())
        poller = asyncio.create_task(poll_forever()) if poll_interval else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            pools["requests"].shutdown(wait=False, cancel_futures=True)
            pools["loader"].shutdown(wait=False, cancel_futures=True)

    app = Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{rest:path}", models_endpoint, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/v1/health", health, methods=["GET"]),
        ],
        middleware=[Middleware(_AccessLog)],
        exception_handlers={HTTPException: http_exception, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.registry = registry
    return app


# --------------------------------------------------------------------------
# Command line


def add_arguments(parser):
    """Adds the server's command-line options to an `argparse` parser."""
    parser.add_argument("dir", help="model base directory (NAME/VERSION/saved_model.pb)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8501, help="port (default 8501, as TF Serving)")
    parser.add_argument("--onnx", action="store_true",
                        help="serve NAME/onnx/*.onnx through onnxruntime instead of SavedModels")
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL,
                        help="seconds between scans for new versions (0 disables hot swap)")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                        help="most instances per request")
    parser.add_argument("--max-string-length", type=int, default=DEFAULT_MAX_STRING_LENGTH,
                        help="longest input string in UTF-8 bytes")
    parser.add_argument("--max-versions", type=int, default=None,
                        help="serve only the highest N versions of each model")
    parser.add_argument("--workers", type=int, default=None, help="model-call threads")
    return parser


def configure_logging(level=logging.INFO):
    """Sends this module's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("keras_seq.serving", "uvicorn", "uvicorn.error"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler] if name != "uvicorn.error" else []
        log.setLevel(level)
        log.propagate = name == "uvicorn.error"


def serve(args):
    """Runs the server on uvicorn until interrupted.

    Args:
        args: an `argparse.Namespace` with `dir`, and optionally `host`
            (default "127.0.0.1"), `port` (8501), `onnx` (False),
            `poll_interval`, `max_body_bytes`, `max_batch`,
            `max_string_length`, `max_versions` and `workers`.
    """
    import uvicorn

    configure_logging()
    app = create_app(
        args.dir,
        onnx=bool(getattr(args, "onnx", False)),
        max_body_bytes=getattr(args, "max_body_bytes", None) or DEFAULT_MAX_BODY_BYTES,
        max_batch=getattr(args, "max_batch", None) or DEFAULT_MAX_BATCH,
        max_string_length=getattr(args, "max_string_length", None) or DEFAULT_MAX_STRING_LENGTH,
        poll_interval=getattr(args, "poll_interval", DEFAULT_POLL_INTERVAL),
        max_versions=getattr(args, "max_versions", None),
        workers=getattr(args, "workers", None),
    )
    uvicorn.run(
        app,
        host=getattr(args, "host", None) or "127.0.0.1",
        port=getattr(args, "port", None) or 8501,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
    )


def main(argv=None):
    """`python -m keras_seq.serving DIR [--port P] [--onnx]`."""
    parser = add_arguments(argparse.ArgumentParser(
        description="Serve exported models over TensorFlow Serving's REST API."))
    args = parser.parse_args(argv)
    try:
        serve(args)
    except errors.KerasSeqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
