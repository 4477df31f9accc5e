"""Backends: how a model's files are found and loaded into `Signature`s.

`SavedModelBackend` serves `NAME/VERSION/` SavedModels through TensorFlow;
`OnnxBackend` serves `NAME/onnx/<signature>.onnx` files (or a `NAME.onnx`)
through onnxruntime. Each imports its runtime only when it loads a model, so
serving ONNX never imports TensorFlow.

Both read a keras_seq export's per-request decoding settings (export.json's
`decoding.inputs`; for ONNX, the graph's `keras_seq.export` metadata) and
wrap each signature's call so that the settings a request leaves out get the
export's defaults, and the `nbest_*` outputs come back only when the request
sets `n_best` (so a request without settings gets the export's answer, as
before).
"""

import contextlib
import importlib
import json
import os
import re

import numpy as np

from keras_seq.serving import codec
from keras_seq.serving.logs import _one_line
from keras_seq.serving.signatures import (
    RequestError,
    Signature,
    TensorInfo,
    Version,
    parse_version,
)


# Directories a model's directory may hold besides its versions.
_NOT_VERSIONS = ("onnx",)


def numeric_versions(path, note=None):
    """{version: directory} of the version directories in `path`.

    Only ASCII decimal names are versions (see `signatures.parse_version`).
    Any other directory is skipped without blocking the others: one whose
    name holds a digit (`²`, `v2`, `1.5`, `-1`, a number too long for an
    int64) is reported once through `note`; the rest (`onnx/`, `drafts/`,
    hidden ones such as `.tmp-export-*`) silently. Two names for one number
    (`1` and `01`): the canonical `1` wins; with no canonical one, that
    number is skipped.

    Args:
        path: a model's directory (a `pathlib.Path`).
        note: `note(key, event, **fields)` logs a warning once per `key`;
            None reports nothing.

    Returns:
        {int: Path}; empty when `path` cannot be listed.
    """
    found = {}
    with contextlib.suppress(OSError):
        for child in sorted(path.iterdir()):
            if child.name.startswith((".", "_")) or child.name in _NOT_VERSIONS:
                continue
            if not child.is_dir():
                continue
            number = parse_version(child.name)
            if number is None:
                if any(c.isnumeric() for c in child.name):  # meant as a version?
                    _report(note, child, "version_dir_ignored",
                            "not a version: version directories are named by ASCII digits only")
                continue
            found.setdefault(number, []).append(child)
    versions = {}
    for number, children in found.items():
        canonical = [child for child in children if child.name == str(number)]
        if len(children) == 1 or canonical:
            versions[number] = (canonical or children)[0]
        else:
            _report(note, tuple(children), "version_dir_ignored",
                    f"several directories spell version {number}; name one of them {number}")
    return versions


def _report(note, key, event, reason):
    if note is not None:
        paths = key if isinstance(key, tuple) else (key,)
        note((key, event), event, model=paths[0].parent.name,
             directory=", ".join(p.name for p in paths), path=str(paths[0].parent),
             error=reason)


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


def _error_code(error):
    """TF Serving's error code name for a load failure ("NOT_FOUND", ...)."""
    code = getattr(error, "error_code", None)
    if code is not None:  # a TensorFlow OpError: TensorFlow is loaded already
        with contextlib.suppress(Exception):
            from tensorflow.core.protobuf import error_codes_pb2

            return error_codes_pb2.Code.Name(code)
    if isinstance(error, FileNotFoundError):
        return "NOT_FOUND"
    return "UNKNOWN"


class Backend:
    """Finds a model's versions in its files and loads them.

    A subclass sets `name` and implements `scan` and `load`; the
    `ModelRegistry` decides when to call them (see its docstring).

    Attributes:
        name: the backend's name in logs and `/healthz` ("savedmodel", "onnx").
        whole_set: True if a model's files form a single version, reloaded as
            a whole when they change (instead of one directory per version).
    """

    name = None
    whole_set = False

    def is_model_file(self, path):
        """Whether the file `path` is itself a model (served under its stem)."""
        return False

    def is_model_dir(self, path):
        """Whether `path` is one model's directory without version directories."""
        return False

    def scan(self, path, note):
        """The versions of the model at `path` that are ready to load.

        Args:
            path: the model's directory (or file).
            note: `note(key, event, **fields)` logs a warning once per `key`.

        Returns:
            {version: source to pass to `load`}, or None if `path` holds no
            model for this backend.
        """
        raise NotImplementedError

    def load(self, number, source, fingerprint):
        """Loads one version.

        Args:
            number: the version number.
            source: what `scan` returned for it.
            fingerprint: the files' fingerprint, kept on the version.

        Returns:
            A `Version`. Any exception means the version failed to load.
        """
        raise NotImplementedError

    def failure(self, error):
        """(error code, one-line message) for a version that failed to load."""
        if hasattr(error, "error_code"):
            message = _tf_error_message(error)
        else:
            message = _one_line(f"{type(error).__name__}: {error}")
        return _error_code(error), message


# --------------------------------------------------------------------------
# SavedModel through TensorFlow


def _tf_dtype_name(tf_dtype):
    return "string" if tf_dtype.name == "string" else tf_dtype.name


def _spec_shape(spec):
    shape = getattr(spec, "shape", None)
    return None if shape is None or shape.rank is None else shape.as_list()


def _import_tensorflow_text():
    """Imports tensorflow_text (registering its ops) once; whether it is importable."""
    SavedModelBackend._custom_ops_imported = True
    try:
        importlib.import_module("tensorflow_text")
    except ImportError:
        return False
    return True


def _required_packages(path):
    """export.json's `"requires"` of a SavedModel version (empty when absent or unreadable)."""
    try:
        with open(os.path.join(path, "assets.extra", "export.json"), encoding="utf-8") as f:
            requires = json.load(f).get("requires", [])
    except (OSError, ValueError, AttributeError):
        return []
    return list(requires) if isinstance(requires, list) else []


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


def _missing_saved_model_file(path):
    """The file a SavedModel directory still lacks (None when complete)."""
    if not ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()):
        return "saved_model.pb"
    variables = path / "variables"
    try:
        shards = variables.is_dir() and any(variables.glob("variables.data-*"))
    except OSError:
        shards = False
    if shards and not (variables / "variables.index").is_file():
        return "variables/variables.index"  # its data shards arrived first: still copying
    return None


class SavedModelBackend(Backend):
    """SavedModels in `NAME/VERSION/` directories, loaded with `tf.saved_model.load`.

    A version directory counts once it holds `saved_model.pb` (or `.pbtxt`)
    and, when `variables/` holds data shards, their `variables.index` (a
    copy in progress is waited for; the registry then loads it once its
    files are unchanged for one more scan); nothing here imports model code, so any SavedModel in TF Serving layout
    works.

    Example:

    >>> backend = SavedModelBackend()
    >>> version = backend.load(1, Path("exported/lm/1"), None)   # doctest: +SKIP
    >>> version.signature("generate")                            # doctest: +SKIP
    """

    name = "savedmodel"
    _custom_ops_imported = False  # tensorflow-text ops registered (once per process)

    def scan(self, path, note):
        versions = {}
        directories = numeric_versions(path, note)
        for number, child in directories.items():
            missing = _missing_saved_model_file(child)
            if missing is None:
                versions[number] = child
            else:
                note((child, "incomplete", missing), "version_incomplete", model=path.name,
                     version=number, path=str(child), error=f"no {missing} yet; waiting")
        if not directories:
            return None  # not a model directory
        return versions

    def load(self, number, source, fingerprint):
        handle = self._load_saved_model(source)
        try:
            signature_defs = _signature_defs_from_file(source)
        except Exception:  # the metadata is a convenience; serve without it
            signature_defs = {}
        decoding_info = _export_decoding(source / "assets.extra" / "export.json")
        signatures = {
            key: self._signature(key, function, signature_defs.get(key), decoding_info)
            for key, function in handle.signatures.items()
        }
        return Version(number, signatures, path=source, backend=self.name, handle=handle,
                       fingerprint=fingerprint)

    @staticmethod
    def _load_saved_model(path):
        import tensorflow as tf

        if "tensorflow_text" in _required_packages(path):
            # export.json says its tokenizer runs tensorflow-text ops: register them first.
            if not _import_tensorflow_text():
                raise RuntimeError(
                    f"{path} needs tensorflow-text ops (its export.json \"requires\" "
                    "tensorflow_text): pip install tensorflow-text")
        try:
            return tf.saved_model.load(str(path), tags=["serve"])
        except tf.errors.NotFoundError as error:
            # An export without "requires" (older keras_seq) may still use them.
            if "Op type not registered" not in str(error) or SavedModelBackend._custom_ops_imported:
                raise
            if not _import_tensorflow_text():
                raise error from None
            return tf.saved_model.load(str(path), tags=["serve"])

    @staticmethod
    def _signature(key, function, signature_def, decoding_info):
        _, specs = function.structured_input_signature
        inputs = {
            name: TensorInfo(name, _tf_dtype_name(spec.dtype), _spec_shape(spec))
            for name, spec in sorted(specs.items())
        }
        outputs = {
            name: TensorInfo(name, _tf_dtype_name(spec.dtype), _spec_shape(spec))
            for name, spec in sorted(function.structured_outputs.items())
        }
        optional = codec.optional_inputs(decoding_info, inputs)
        call = _with_defaults(_make_tf_call(function, inputs), optional)
        return Signature(key, inputs, outputs, call, signature_def, optional=optional)


def _export_decoding(path):
    """export.json's `"decoding"` at `path` (a keras_seq export), or None."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("decoding")
    except (OSError, ValueError, AttributeError):
        return None


def _with_defaults(call, optional):
    """`call` with the defaults of the settings a request leaves out filled in
    (`codec.fill_defaults`) and the `nbest_*` outputs dropped unless it sets
    `n_best`."""
    if not optional:
        return call

    def call_with_defaults(arrays):
        results = call(codec.fill_defaults(arrays, optional))
        if "n_best" not in arrays:
            results = {k: v for k, v in results.items() if not k.startswith("nbest_")}
        return results

    return call_with_defaults


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


# --------------------------------------------------------------------------
# ONNX through onnxruntime

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
    return TensorInfo(name, _ORT_TYPES.get(node.type, node.type), shape, tensor_name=node.name)


class OnnxBackend(Backend):
    """`.onnx` files served through onnxruntime (signature name = file stem).

    A model's graphs are `NAME/onnx/<signature>.onnx`, or else one `NAME.onnx`
    beside `NAME/` (or given alone). They form one version, numbered after the
    highest SavedModel version beside them (1 if none), and are reloaded as a
    whole when they change. TensorFlow is never imported.

    Example:

    >>> backend = OnnxBackend()
    >>> files = sorted(Path("exported/lm/onnx").glob("*.onnx"))  # doctest: +SKIP
    >>> version = backend.load(1, files, None)                   # doctest: +SKIP
    """

    name = "onnx"
    whole_set = True
    PRECISIONS = ("float", "int8")

    def __init__(self, precision="float"):
        self.precision = precision
        # The graphs of one precision: NAME/onnx/ or NAME/onnx/int8/.
        self.folder = "onnx" if precision == "float" else f"onnx/{precision}"

    def is_model_file(self, path):
        return path.suffix == ".onnx" and path.is_file()

    def is_model_dir(self, path):
        return (path / "onnx").is_dir()

    def scan(self, path, note):
        if path.is_file():
            return {1: [path]}
        files = sorted((path / self.folder).glob("*.onnx"))
        if not files and path.with_name(path.name + ".onnx").is_file():
            files = [path.with_name(path.name + ".onnx")]
        directories = numeric_versions(path, note)
        if not files:
            if directories:
                note((path, "no-onnx"), "onnx_missing", model=path.name,
                     path=str(path / self.folder))
            return None
        complete = [n for n, child in directories.items() if (child / "saved_model.pb").is_file()]
        return {max(complete, default=1): files}

    def load(self, number, source, fingerprint):
        needs, refusals = _text_graphs(source[0].parent)
        signatures = {file.stem: self._signature(file, file.name in needs, refusals)
                      for file in source}
        return Version(number, signatures, path=source[0].parent, backend=self.name,
                       fingerprint=fingerprint)

    @staticmethod
    def _signature(file, extensions=False, refusals=None):
        """Opens one `<signature>.onnx` file in onnxruntime (with the
        onnxruntime-extensions string ops when `extensions`; a text graph's
        `refusals` output becomes a 400 with the message of `refusals`)."""
        from keras_seq.export.onnx import make_session  # imports no TensorFlow

        # Requests run concurrently from several threads: spinning intra-op
        # threads would burn the cores the other requests need.
        session = make_session(file, spinning=False, feature="serving ONNX",
                               extensions=extensions)
        inputs, feed_names = {}, {}
        for node in session.get_inputs():
            info = _ort_tensor_info(node)
            inputs[info.name] = info
            feed_names[info.name] = node.name
        outputs, fetch_names = {}, []
        for node in session.get_outputs():
            info = _ort_tensor_info(node)
            fetch_names.append((info.name, node.name))
            if info.name != "refusals":
                outputs[info.name] = info
        try:
            metadata = json.loads(session.get_modelmeta().custom_metadata_map["keras_seq.export"])
        except (KeyError, ValueError):
            metadata = {}
        optional = codec.optional_inputs(metadata.get("decoding"), inputs)
        call = _with_defaults(
            _make_ort_call(session, inputs, feed_names, fetch_names, refusals or {}), optional)
        return Signature(file.stem, inputs, outputs, call, optional=optional)


def _text_graphs(directory):
    """`(names, refusals)`: the graphs export.json marks as needing
    onnxruntime-extensions (the text graphs; `onnx/export.json`'s `"onnx"`
    entries, or for `onnx/int8/` its `"int8"` entry) and the messages of their
    `refusals` codes."""
    import json

    int8 = directory.name == "int8"
    try:
        data = json.loads(((directory.parent if int8 else directory) / "export.json")
                          .read_text(encoding="utf-8"))
        if int8:
            entry = data.get("int8", {})
            return set(entry.get("extensions", [])), entry.get("refusals", {})
        graphs = data.get("onnx", {})
        names = {name for name, entry in graphs.items() if entry.get("extensions")}
        refusals = next((graphs[n]["refusals"] for n in sorted(names) if "refusals" in graphs[n]),
                        {})
        return names, refusals
    except (OSError, ValueError, AttributeError, TypeError, KeyError):
        return set(), {}


def _make_ort_call(session, inputs, feed_names, fetch_names, refusals):
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
            if info.dtype == "string":  # onnxruntime takes str, not bytes
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
        out = {name: np.asarray(value) for (name, _), value in zip(fetch_names, results)}
        codes = out.pop("refusals", None)
        if codes is not None and codes.any():
            code = int(codes[codes != 0][0])
            rows = [int(i) for i in np.flatnonzero(codes == code)]
            message = refusals.get(str(code), "{rows}: refused (code %d)" % code)
            raise RequestError(message.format(rows=rows))
        return out

    return call
