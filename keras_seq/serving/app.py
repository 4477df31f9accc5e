"""The Starlette app: TF Serving's REST routes over a `ModelRegistry`.

`create_app` builds the app; the handlers below are module-level and read
what they share from `request.app.state`: `registry` (the `ModelRegistry`),
`limits` (the codec's `Limits`), `pools` (the threads running model calls and
loads), `admission` (the per-model queues and deadlines, `admission.py`),
`metrics` (the registry's `metrics.Metrics`) and `poll_interval`. See the
package docstring for the API.
"""

import asyncio
import contextlib
import logging
import math
import os
import re
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route

from keras_seq.serving import admission, codec
from keras_seq.serving.batching import BatchOptions
from keras_seq.serving.defaults import DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_POLL_INTERVAL
from keras_seq.serving.logs import _one_line, log_event
from keras_seq.serving.metrics import CONTENT_TYPE
from keras_seq.serving.registry import ModelRegistry
from keras_seq.serving.signatures import RequestError, parse_version


# NAME, NAME/versions/N or NAME/labels/L, then /metadata or :verb.
_PATH_RE = re.compile(
    r"^(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z_]+)?$"
)

# What a request's handlers record on `request.state` for its log line.
_LOGGED_FIELDS = ("model", "version", "signature", "format", "instances", "error")


class _AccessLog:
    """ASGI middleware: one JSON log line per HTTP request, and the predict metrics."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]  # if no response starts, the request failed
        fields = scope.setdefault("state", {})  # = request.state of the handlers

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
            for key in _LOGGED_FIELDS:
                if fields.get(key) is not None:
                    record[key] = fields[key]
            level = logging.INFO if code < 400 else logging.WARNING if code < 500 else logging.ERROR
            log_event(level, "request", **record)
            if fields.get("predict"):
                # Labels only from what the server resolved, never the client's text.
                scope["app"].state.metrics.observe_request(
                    fields.get("served_model"), fields.get("served_version"),
                    fields.get("served_signature"), code, time.perf_counter() - start, "rest")


class _Pools:
    """The app's threads: model calls (`requests`) and directory scans (`loader`)."""

    def __init__(self, workers):
        self.workers = workers
        self.renew()

    def renew(self):
        self.requests = ThreadPoolExecutor(self.workers, thread_name_prefix="keras-seq-serve")
        self.loader = ThreadPoolExecutor(1, thread_name_prefix="keras-seq-loader")

    def shutdown(self):
        self.requests.shutdown(wait=False, cancel_futures=True)
        self.loader.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------
# Responses


def _json_response(payload, status=200, headers=None):
    return Response(codec.dumps(payload), status_code=status, headers=headers,
                    media_type="application/json")


def _error_response(request, error):
    message = _one_line(error)
    request.state.error = message
    return _json_response({"error": message}, status=error.status,
                          headers=getattr(error, "headers", None))


async def _http_exception(request, exc):
    """Starlette's own errors (unknown path, wrong method) as JSON."""
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        message = f"unknown path {request.url.path}"
    request.state.error = message
    return _json_response({"error": message}, status=exc.status_code,
                          headers=getattr(exc, "headers", None))


async def _internal_error(request, exc):
    """A bug in the server: logged with its traceback, answered as JSON without it."""
    log_event(logging.ERROR, "internal_error", path=request.url.path,
              error=_one_line(f"{type(exc).__name__}: {exc}"),
              traceback="".join(traceback.format_exception(exc)))
    return _json_response({"error": f"internal server error ({type(exc).__name__})"},
                          status=500)


# --------------------------------------------------------------------------
# /v1/models/...


def _parse_path(request):
    """(model name, version or None, suffix or None) of a /v1/models/ path."""
    rest = request.path_params["rest"]
    match = _PATH_RE.match(rest)
    if match is None:
        raise RequestError(f"unknown path /v1/models/{rest}", status=404)
    name = match["name"]
    request.state.model = name
    if match["label"] is not None:
        raise RequestError(
            f"version labels are not supported (label '{match['label']}'); use /versions/N",
            status=404,
        )
    version = match["version"]
    if version is not None:
        number = parse_version(version)
        if number is None:
            shown = _one_line(version.encode("utf-8", "backslashreplace").decode(), 40)
            raise RequestError(
                f"version must be a non-negative integer in ASCII digits, got '{shown}'",
                status=404,
            )
        version = number
        request.state.version = version
    return name, version, match["suffix"]


async def _read_body(request, max_body_bytes):
    """The request body; a 413 `RequestError` once it is over `max_body_bytes`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and (
        len(declared) > 18 or int(declared) > max_body_bytes
    ):
        raise RequestError(
            f"request body of {declared} bytes is over the limit of {max_body_bytes}",
            status=413,
        )
    chunks, size = [], 0
    async for chunk in request.stream():  # a body without Content-Length is checked too
        size += len(chunk)
        if size > max_body_bytes:
            raise RequestError(
                f"request body is over the limit of {max_body_bytes} bytes", status=413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _predict(served, body, limits, fields, base_dir):
    """Parses, validates, runs and serializes one predict (in a worker thread).

    Records `signature`, `format` and `instances` in `fields` as they become
    known, for the request's log line. Errors the model raises reach the
    client without the server's file paths.
    """
    request, signature_name = codec.parse_request(body)
    fields["signature"] = signature_name
    signature = served.signature(signature_name)
    fields["served_signature"] = signature_name
    fmt = codec.request_format(request)
    fields["format"] = fmt
    arrays, batch = codec.decode_inputs(request, fmt, signature, limits)
    fields["instances"] = batch
    results = admission.call_signature(signature, arrays, base_dir)
    return codec.encode_outputs(results, fmt, batch)


async def _predict_response(request, name, version):
    state = request.app.state
    gate = state.admission
    deadline = gate.deadline()
    request.state.predict = True
    served = state.registry.get(name, version)
    request.state.version = served.version
    request.state.served_model, request.state.served_version = name, served.version
    try:
        body = await asyncio.wait_for(_read_body(request, state.limits.max_body_bytes),
                                      max(0.0, gate.remaining(deadline)))
    except asyncio.TimeoutError:
        raise RequestError("request timed out: the body did not arrive within the request "
                           f"timeout of {round(gate.request_timeout * 1000)} ms", 408) from None
    fields = {}
    try:
        content = await gate.call(name, state.pools.requests, deadline, _predict, served, body,
                                  state.limits, fields, state.registry.base_dir)
    finally:
        for key, value in fields.items():
            setattr(request.state, key, value)
    return Response(content, media_type="application/json",
                    headers={"X-Model-Version": str(served.version)})


def _metadata(request, name, version):
    served = request.app.state.registry.get(name, version)
    request.state.version = served.version
    signature_defs = {
        key: signature.signature_def for key, signature in sorted(served.signatures.items())
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
        "metadata": {"signature_def": {"signature_def": signature_defs}},
    }


async def models_endpoint(request):
    """GET (status, metadata) and POST (:predict) under /v1/models/NAME."""
    try:
        name, version, suffix = _parse_path(request)
        if request.method == "POST":
            if suffix == ":predict":
                return await _predict_response(request, name, version)
            if suffix in (":classify", ":regress"):
                raise RequestError(f"'{suffix}' is not supported by this server; use ':predict'")
            if suffix in (None, "/metadata"):
                raise RequestError(f"method POST is not allowed on {request.url.path}; "
                                   "use GET (or POST .../NAME:predict)", status=405)
            raise RequestError(f"unknown method '{suffix}'; use ':predict'", status=404)
        if suffix is None:
            status = request.app.state.registry.status(name, version)
            return _json_response({"model_version_status": status})
        if suffix == "/metadata":
            return _json_response(_metadata(request, name, version))
        raise RequestError(f"method GET is not allowed on {request.url.path}; use POST",
                           status=405)
    except RequestError as error:
        return _error_response(request, error)


async def list_models(request):
    """GET /v1/models: every model and its versions' status."""
    registry = request.app.state.registry
    return _json_response({
        "models": [
            {"name": name, "model_version_status": registry.status(name)}
            for name in registry.models()
        ]
    })


async def prometheus_metrics(request):
    """GET /monitoring/prometheus/metrics: the Prometheus text exposition."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


async def health(request):
    """GET /healthz: liveness, the backend and each model's available versions."""
    registry = request.app.state.registry
    return _json_response({
        "status": "ok",
        "backend": registry.backend.name,
        "models": {
            name: [str(v) for v in versions] for name, versions in registry.models().items()
        },
    })


# --------------------------------------------------------------------------
# Startup, polling and shutdown


async def _poll_forever(state):
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(state.poll_interval)
        try:
            await loop.run_in_executor(state.pools.loader, state.registry.poll)
        except Exception as error:  # keep polling whatever happens
            log_event(logging.ERROR, "poll_failed", error=_one_line(error))


@contextlib.asynccontextmanager
async def _lifespan(app):
    """Loads the models, polls for new versions while serving, stops the threads."""
    state = app.state
    if state.pools.requests._shutdown:  # a second lifespan (e.g. a restarted test client)
        state.pools.renew()
    state.admission = admission.Admission(*state.admission_limits)  # bound to this loop
    grpc_server = _bind_grpc(state)  # gRPC beside REST (grpc_api.py); a port in use fails here
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(state.pools.loader, lambda: state.registry.poll(initial=True))
    if grpc_server is not None:
        await grpc_server.start()
    log_event(logging.INFO, "server_ready", base_dir=str(state.registry.base_dir),
              backend=state.registry.backend.name, models=state.registry.models())
    poller = asyncio.create_task(_poll_forever(state)) if state.poll_interval else None
    try:
        yield
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        if grpc_server is not None:  # in-flight RPCs finish first
            from keras_seq.serving import grpc_api

            await grpc_server.stop(grpc_api.GRACE_SECONDS)
        state.pools.shutdown()


def _bind_grpc(state):
    """TF Serving's gRPC API bound to `state.grpc_address` (None: off), not yet started."""
    if state.grpc_address is None:
        return None
    from keras_seq.serving import grpc_api  # imports TensorFlow (its protos)

    host, port = state.grpc_address
    try:
        server, state.grpc_port = grpc_api.bind(state, host, port)
    except OSError as error:
        log_event(logging.ERROR, "grpc_failed", error=_one_line(error))
        raise
    log_event(logging.INFO, "grpc_bound", host=host, port=state.grpc_port)
    return server


def _queue_depths(state):
    """{model: requests waiting for a thread} for every served model."""
    gate = getattr(state, "admission", None)  # made by the lifespan
    return {name: gate.queued(name) if gate else 0 for name in state.registry.models()}


def _is_number(value, low, high):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and low <= value <= high)


def _check_options(poll_interval, batch_timeout_ms, **positive):
    """Raises `ValueError` naming an option out of range."""
    if poll_interval is not None and not _is_number(poll_interval, 0, math.inf):
        raise ValueError(f"poll_interval must be a finite number of seconds >= 0 or None, "
                         f"got {poll_interval!r}")
    if not _is_number(batch_timeout_ms, 0, 60000):
        raise ValueError(f"batch_timeout_ms must be a number of milliseconds in 0..60000, "
                         f"got {batch_timeout_ms!r}")
    for label, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1, got {value!r}")


def create_app(
    model_base_dir,
    *,
    onnx=False,
    precision="float",
    max_body_bytes=codec.DEFAULT_MAX_BODY_BYTES,
    max_batch=codec.DEFAULT_MAX_BATCH,
    max_string_length=codec.DEFAULT_MAX_STRING_LENGTH,
    poll_interval=DEFAULT_POLL_INTERVAL,
    max_versions=None,
    workers=None,
    max_queue=admission.DEFAULT_MAX_QUEUE,
    queue_timeout_ms=admission.DEFAULT_QUEUE_TIMEOUT_MS,
    request_timeout_ms=admission.DEFAULT_REQUEST_TIMEOUT_MS,
    warmup=True,
    batching=True,
    batch_timeout_ms=DEFAULT_BATCH_TIMEOUT_MS,
    grpc_port=None,
    grpc_host="127.0.0.1",
):
    """Builds the ASGI app serving every model under `model_base_dir`.

    Models are loaded when the app starts (ASGI lifespan), and a background task
    rescans the directory every `poll_interval` seconds to hot-swap new
    versions (see the `keras_seq.serving` docstring).

    Args:
        model_base_dir: TF Serving model base directory (`NAME/VERSION/`).
        onnx: serve `NAME/onnx/*.onnx` through onnxruntime instead of the
            SavedModels (TensorFlow is then not imported).
        precision: with `onnx`, `"float"` (`NAME/onnx/*.onnx`) or `"int8"`
            (`NAME/onnx/int8/*.onnx`, written by `keras-seq export --quantize int8`).
        max_body_bytes: largest request body accepted; larger ones get 413.
        max_batch: most rows in one model call: the instances (or rows of a
            columnar input) of a request, and the rows batching merges.
        max_string_length: longest input string, in UTF-8 bytes.
        poll_interval: seconds between directory scans; 0 or None disables
            hot swap (models are loaded once at startup).
        max_versions: serve only the highest N versions of each model
            (None: every complete version).
        workers: threads running requests (parsing, the model call); a
            request waiting for its batch holds one, so they also bound how
            many requests one batch merges (default: 4 per CPU, at most 32;
            32 with batching).
        max_queue: most predict requests waiting for a thread, per model;
            past it they get 503 at once (see `keras_seq.serving.admission`).
        queue_timeout_ms: longest wait for a thread; then 503.
        request_timeout_ms: longest time from a predict request's arrival to
            its answer; then 504 (408 if its body had not arrived).
        warmup: call every signature once on a tiny input while a version
            loads, so that the first requests do not wait for graph set-up.
        batching: merge concurrent requests to a signature into one model
            call (see `keras_seq.serving.batching`); False calls each alone.
        batch_timeout_ms: how long the first request of a batch waits for
            others, 0..60000 ms.
        grpc_port: also serve TF Serving's gRPC API (`grpc_api.py`) on this
            port while the app runs, 0 for a free one (`app.state.grpc_port`
            says which once started); None (the default) serves REST only.
        grpc_host: the interface the gRPC API listens on.

    Raises `ValueError` naming the argument for a value out of range.

    Returns:
        A `starlette.applications.Starlette` app; `app.state.registry` is its
        `ModelRegistry`, `app.state.metrics` its `metrics.Metrics` (served at
        `/monitoring/prometheus/metrics`).

    Example:

    >>> import uvicorn                                             # doctest: +SKIP
    >>> app = create_app("exported/", poll_interval=2.0)           # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8501)             # doctest: +SKIP
    """
    limits = codec.Limits(max_batch, max_string_length, max_body_bytes)
    if workers is None:
        workers = 32 if batching else min(32, 4 * (os.cpu_count() or 1))
    _check_options(poll_interval, batch_timeout_ms, workers=workers, max_queue=max_queue,
                   queue_timeout_ms=queue_timeout_ms, request_timeout_ms=request_timeout_ms)
    if grpc_port is not None and not (isinstance(grpc_port, int) and not isinstance(
            grpc_port, bool) and 0 <= grpc_port <= 65535):
        raise ValueError(f"grpc_port must be an integer in 0..65535 or None, got {grpc_port!r}")
    options = BatchOptions(bool(batching), max_batch, batch_timeout_ms / 1000.0)
    registry = ModelRegistry(model_base_dir, onnx=onnx, precision=precision,
                             max_versions=max_versions, warmup=warmup, batching=options)

    app = Starlette(
        routes=[
            Route("/v1/models", list_models, methods=["GET"]),
            Route("/v1/models/{rest:path}", models_endpoint, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/v1/health", health, methods=["GET"]),
            Route("/monitoring/prometheus/metrics", prometheus_metrics, methods=["GET"]),
        ],
        middleware=[Middleware(_AccessLog)],
        exception_handlers={HTTPException: _http_exception, Exception: _internal_error},
        lifespan=_lifespan,
    )
    app.state.registry = registry
    app.state.metrics = registry.metrics
    registry.metrics.add_collector(lambda: _queue_depths(app.state))
    app.state.limits = limits
    app.state.poll_interval = poll_interval
    app.state.grpc_address = None if grpc_port is None else (grpc_host, grpc_port)
    app.state.grpc_port = None
    app.state.pools = _Pools(workers)
    app.state.admission_limits = (workers, max_queue, queue_timeout_ms / 1000.0,
                                  request_timeout_ms / 1000.0)
    return app
