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
    GET  /monitoring/prometheus/metrics          Prometheus metrics (as TF Serving;
                                                 see `keras_seq.serving.metrics`)

Batching (on by default, as TF Serving's `--enable_batching`): concurrent
predict requests to one signature are merged into one model call of at most
`max_batch` rows, the first waiting `batch_timeout_ms` for the others, and
each gets its own rows back (`keras_seq.serving.batching`); `batching=False`
(`--no-batching`) calls the model once per request.

gRPC API (`create_app(..., grpc_port=P)`, `--grpc-port P`): TF Serving's
`PredictionService` (`Predict`, `GetModelMetadata`) and `ModelService`
(`GetModelStatus`) beside REST, over the same models, queue and limits; see
`keras_seq.serving.grpc_api`.

Strings travel as JSON strings (UTF-8); binary values may be sent as
`{"b64": "..."}` and an output string that is not valid UTF-8 (or whose output
name ends in `_bytes`, as in TF Serving) comes back as `{"b64": "..."}`.
JSON is strict both ways: `NaN`/`Infinity` and lone surrogates are refused in
requests, and a non-finite float output is written as the string `"NaN"`,
`"Infinity"` or `"-Infinity"` (the protobuf JSON mapping's rule). Predict
responses carry an `X-Model-Version` header naming the version that answered.

Errors come back as `{"error": "<one line>"}`, never with a traceback, and
never with the server's file paths (the log keeps them):

    400  malformed JSON or a body that is not UTF-8, NaN/Infinity or a number
         that overflows its dtype, a lone UTF-16 surrogate, a body that is not
         an object, neither or both of `instances`/`inputs`, a value of the
         wrong type or rank, ragged nested lists, inputs whose leading (batch)
         dimensions disagree, an empty string, a string longer than
         `max_string_length` bytes, more than `max_batch` instances, and any
         error raised inside the model (e.g. TensorFlow's InvalidArgumentError;
         the message's first useful line)
    404  unknown model, version or signature (and unknown URL paths); a
         version that is not ASCII decimal digits (`/versions/%C2%B2`)
    405  wrong HTTP method
    408  the request body did not arrive within `request_timeout_ms`
    413  a request body over `max_body_bytes` (TF Serving answers 400 there)
    503  overloaded: the model's queue already holds `max_queue` requests, or
         no model thread came free within `queue_timeout_ms` (with a
         `Retry-After` header; see `keras_seq.serving.admission`)
    504  no answer within `request_timeout_ms` of the request's arrival
    500  a bug in the server itself: logged with its traceback, answered as JSON

Versions and hot swap: a background poller rescans the base directory every
`poll_interval` seconds. Only directories named by ASCII decimal digits are
versions (`1`, `0042`); any other (`²`, `v2`, `1.5`) is logged once and
skipped without blocking the others, as is a model directory that cannot be
scanned. A version directory is considered once it holds `saved_model.pb`,
and is loaded after its file listing (names, sizes, mtimes) is unchanged
across two scans, so a directory still being copied is not loaded
half-written; at start-up the directory is scanned twice (`settle_seconds`,
0.25 s, apart) for the same reason. Exporters that write a temporary
directory and rename it into place (the recommended way; `keras-seq export`
does) are picked up on the scan after they appear; the server cannot tell
such a rename from a copy, so it waits that one scan either way. Loading runs
in a background thread and ends with a warm-up (every signature called once
on a tiny input, so the first requests do not wait for graph set-up); the
new version is then swapped in atomically and requests in flight finish on
the version they started with. A version that fails to load is logged,
reported in the model status as `state: "END"` with the error, and left out;
it is retried only when its files change. The highest AVAILABLE version
answers requests that name no version, so a broken new version never takes
the service down. A version directory that disappears is unloaded. A base
directory with no model is served (models may appear later) with one
`no_models` warning in the log.

Each request is logged as one JSON line on the `keras_seq.serving` logger
(model, version, signature, format, instances, status, latency_ms, error).

Example:

>>> from keras_seq import serving
>>> app = serving.create_app("exported/")                     # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8501)
>>> # or from a shell: python apps/serve.py exported/ --port 8501
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The package, by concern (each module's docstring says more):
#   signatures  RequestError and what a request addresses (versions, signatures)
#   admission   the bounded queue per model and the request deadline (503/504)
#   batching    BatchOptions, Batcher: concurrent calls of a signature as one call
#   metrics     Metrics: Prometheus counters and histograms, the text exposition
#   warmup      every signature called once while a version loads
#   backends    Backend: SavedModelBackend (TensorFlow), OnnxBackend (onnxruntime)
#   registry    ModelRegistry: scanning, loading and hot-swapping versions
#   codec       JSON request bodies <-> NumPy arrays
#   app         create_app: the Starlette app and its handlers
#   grpc_api    TF Serving's gRPC services beside REST (grpc.aio on the app's loop)
#   grpc_tensors  TensorProto <-> NumPy, checked as the codec checks JSON
#   logs        one JSON line per event (JsonFormatter, configure_logging)
#   defaults    the default limits and options (a light module)
#   cli         add_arguments, run_server, serve, main (python -m keras_seq.serving)
# Imported on first use, so that `keras_seq.serving.cli.add_arguments` (the
# `keras-seq serve` flags) costs no Starlette or NumPy import.
_EXPORTS = {
    "create_app": "app",
    "Backend": "backends",
    "OnnxBackend": "backends",
    "SavedModelBackend": "backends",
    "add_arguments": "cli",
    "main": "cli",
    "serve": "cli",
    "run_server": "cli",
    "JsonFormatter": "logs",
    "configure_logging": "logs",
    "logger": "logs",
    "ModelRegistry": "registry",
    "DEFAULT_SIGNATURE": "signatures",
    "PREDICT_METHOD": "signatures",
    "RequestError": "signatures",
}
_SUBMODULES = {"admission", "app", "backends", "batching", "cli", "codec", "defaults",
               "grpc_api", "grpc_tensors", "logs", "metrics", "registry", "signatures", "warmup"}

from keras_seq.serving.defaults import (  # noqa: E402,F401
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_STRING_LENGTH,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_QUEUE_TIMEOUT_MS,
    DEFAULT_REQUEST_TIMEOUT_MS,
)

__all__ = [
    "Backend",
    "JsonFormatter",
    "ModelRegistry",
    "OnnxBackend",
    "RequestError",
    "SavedModelBackend",
    "add_arguments",
    "configure_logging",
    "create_app",
    "main",
    "run_server",
    "serve",
]


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"keras_seq.serving.{_EXPORTS[name]}")
        return getattr(module, name)
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_seq.serving.{name}")
    raise AttributeError(f"module 'keras_seq.serving' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
