"""TF Serving's gRPC API beside REST, over the same registry, admission and threads.

`bind(state, host, port)` makes the `grpc.aio` server that the app's lifespan
starts on its event loop (and stops gracefully). It serves the services of
the `tensorflow-serving-api` protos, so that a client written for TF
Serving's gRPC works unchanged:

    tensorflow.serving.PredictionService/Predict           PredictRequest -> PredictResponse
    tensorflow.serving.PredictionService/GetModelMetadata  signature_def (a SignatureDefMap
                                                           packed in an Any, as TF Serving)
    tensorflow.serving.ModelService/GetModelStatus         the versions and their states

`Classify`, `Regress`, `MultiInference` and `HandleReloadConfigRequest`
answer UNIMPLEMENTED. A request's `model_spec` picks the model (`name`), the
version (`version`; the highest available one when unset; `version_label` is
refused as REST refuses `/labels/`) and the signature (`signature_name`,
`serving_default` when empty); `output_filter` picks outputs.

Predict requests go through the app's `admission.Admission`, like REST's,
onto the same model threads. Refusals are REST's, as gRPC status codes with
the same one-line message (never a server path): 400 -> INVALID_ARGUMENT
(inputs are checked by `grpc_tensors`, as the REST codec checks JSON),
404 -> NOT_FOUND, 503 -> RESOURCE_EXHAUSTED with the wait in seconds in the
`retry-after` trailing metadata (REST's `Retry-After` header), 504 ->
DEADLINE_EXCEEDED; a message over `max_body_bytes` is refused by gRPC itself
(RESOURCE_EXHAUSTED). The client's gRPC deadline is honoured: a request is
dropped once it is past, whichever of it and `request_timeout_ms` comes first.
Each RPC is logged as one JSON line (`event: "request"`, `protocol: "grpc"`),
and each Predict is counted in the app's `metrics` (where the app has them)
with transport "grpc" and its status code's name.

Importing this module imports TensorFlow (the protos are TensorFlow's), so
the app imports it only when a gRPC port is given (`--onnx --grpc-port`
therefore loads TensorFlow, which `--onnx` alone does not).
"""

import asyncio
import logging
import time
import traceback

import grpc
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keras_seq.serving import admission, grpc_tensors
from keras_seq.serving.logs import _one_line, log_event
from keras_seq.serving.signatures import DEFAULT_SIGNATURE, RequestError

GRACE_SECONDS = 5.0  # in-flight RPCs get this long to finish at shutdown

# REST's status -> the gRPC code of the same refusal.
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.RESOURCE_EXHAUSTED,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _model_spec(spec):
    """(model name, version or None) of a `ModelSpec`, or a `RequestError`."""
    if not spec.name:
        raise RequestError("model_spec.name is empty; name the model")
    choice = spec.WhichOneof("version_choice")
    if choice == "version_label":
        shown = _one_line(spec.version_label, 40)
        raise RequestError(f"version labels are not supported (label '{shown}'); use "
                           "model_spec.version", status=404)
    if choice == "version":
        if spec.version.value < 0:
            raise RequestError(f"version must be a non-negative integer, got "
                               f"{spec.version.value}", status=404)
        return spec.name, spec.version.value
    return spec.name, None


def _predict(served, signature, request, limits, fields, base_dir):
    """Decodes, runs and encodes one Predict (in a model thread); see `app._predict`."""
    arrays, batch = grpc_tensors.to_inputs(request.inputs, signature, limits)
    fields["instances"] = batch
    results = admission.call_signature(signature, arrays, base_dir)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = served.version
    response.model_spec.signature_name = signature.name
    wanted = set(request.output_filter)
    for name, array in results.items():
        if not wanted or name in wanted:
            response.outputs[name].CopyFrom(grpc_tensors.to_proto(array, name))
    return response


class _Service:
    """What both services share: the app's state and the RPC wrapper."""

    def __init__(self, state):
        self.state = state  # the app's state: registry, limits, pools, admission

    async def _rpc(self, method, context, handler, *args):
        """Runs `handler(fields, *args)`, logs the RPC, answers a refusal with its code."""
        start = time.perf_counter()
        fields = {}
        code, message, trailers = grpc.StatusCode.OK, None, ()
        try:
            return await handler(fields, *args)
        except RequestError as error:
            code = _CODES.get(error.status, grpc.StatusCode.UNKNOWN)
            message = _one_line(error)
            retry = (getattr(error, "headers", None) or {}).get("Retry-After")
            trailers = (("retry-after", retry),) if retry else ()
        except asyncio.CancelledError:  # the client went away or its deadline passed
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:  # a bug in the server: logged, answered without it
            code = grpc.StatusCode.INTERNAL
            message = f"internal server error ({type(error).__name__})"
            log_event(logging.ERROR, "internal_error", path=method,
                      error=_one_line(f"{type(error).__name__}: {error}"),
                      traceback="".join(traceback.format_exception(error)))
        finally:
            seconds = time.perf_counter() - start
            record = {"protocol": "grpc", "method": method, "status": code.name,
                      "latency_ms": round(seconds * 1000.0, 3),
                      **{key: value for key, value in fields.items()
                         if value is not None and not key.startswith("_")}}
            if message is not None:
                record["error"] = message
            level = (logging.INFO if code is grpc.StatusCode.OK else
                     logging.ERROR if code is grpc.StatusCode.INTERNAL else logging.WARNING)
            log_event(level, "request", **record)
            metrics = getattr(self.state, "metrics", None)  # the app's `metrics.Metrics`
            if "_answered_by" in fields and metrics is not None:  # a Predict, as REST's
                metrics.observe_request(*fields["_answered_by"], code.name, seconds, "grpc")
        await context.abort(code, message, trailing_metadata=trailers)

    async def _unimplemented(self, method, context, advice):
        async def refuse(fields):
            raise RequestError(f"'{method}' is not supported by this server; {advice}", 405)

        return await self._rpc(method, context, refuse)

    def _served(self, fields, spec):
        name, version = _model_spec(spec)
        fields["model"] = name
        served = self.state.registry.get(name, version)
        fields["version"] = served.version
        return name, served


class PredictionService(_Service, prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensorflow.serving.PredictionService`: Predict and GetModelMetadata.

    Args:
        state: the app's `state` (`registry`, `limits`, `pools`, `admission`).
    """

    async def Predict(self, request, context):
        return await self._rpc("Predict", context, self._predict, request, context)

    async def _predict(self, fields, request, context):
        state = self.state
        gate = state.admission
        loop = asyncio.get_running_loop()
        deadline = gate.deadline()
        left = context.time_remaining()  # the client's deadline, if it set one
        client_first = left is not None and loop.time() + left < deadline
        if client_first:
            deadline = loop.time() + left
        # What answered (model, version, signature) for the metrics: labels only from
        # what the server resolved, never the client's text.
        answered_by = fields["_answered_by"] = [None, None, None]
        name, served = self._served(fields, request.model_spec)
        answered_by[:2] = name, served.version
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        fields["signature"] = signature_name
        signature = served.signature(signature_name)
        answered_by[2] = signature_name
        unknown = sorted(set(request.output_filter) - set(signature.outputs))
        if unknown:
            raise RequestError(f"output_filter names unknown output {unknown[0]!r} of signature "
                               f"'{signature.name}' (outputs: {', '.join(signature.outputs)})")
        try:
            return await gate.call(name, state.pools.requests, deadline, _predict, served,
                                   signature, request, state.limits, fields,
                                   state.registry.base_dir)
        except RequestError as error:
            if error.status == 504 and client_first:
                raise RequestError("request timed out: the client's deadline passed",
                                   504) from None
            raise

    async def GetModelMetadata(self, request, context):
        return await self._rpc("GetModelMetadata", context, self._metadata, request)

    async def _metadata(self, fields, request):
        requested = list(request.metadata_field)
        if requested != ["signature_def"]:
            raise RequestError("metadata_field must be ['signature_def'] (the only metadata "
                               f"served), got {requested}")
        name, served = self._served(fields, request.model_spec)
        signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in sorted(served.signatures.items()):
            json_format.ParseDict(signature.signature_def, signature_defs.signature_def[key],
                                  ignore_unknown_fields=True)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = name
        response.model_spec.version.value = served.version
        response.metadata["signature_def"].Pack(signature_defs)
        return response

    async def Classify(self, request, context):
        return await self._unimplemented("Classify", context, "use Predict")

    async def Regress(self, request, context):
        return await self._unimplemented("Regress", context, "use Predict")

    async def MultiInference(self, request, context):
        return await self._unimplemented("MultiInference", context, "use Predict")


class ModelService(_Service, model_service_pb2_grpc.ModelServiceServicer):
    """`tensorflow.serving.ModelService`: GetModelStatus.

    Args:
        state: the app's `state` (`registry`).
    """

    async def GetModelStatus(self, request, context):
        return await self._rpc("GetModelStatus", context, self._status, request)

    async def _status(self, fields, request):
        name, version = _model_spec(request.model_spec)
        fields["model"] = name
        rows = self.state.registry.status(name, version)
        return json_format.ParseDict({"model_version_status": rows},
                                     get_model_status_pb2.GetModelStatusResponse())

    async def HandleReloadConfigRequest(self, request, context):
        return await self._unimplemented(
            "HandleReloadConfigRequest", context,
            "models are loaded from the model base directory as they appear (--poll-interval)")


def bind(state, host, port):
    """The gRPC services bound to `host:port`, to start in the app's event loop.

    Binding first (before the models load) refuses a port in use at once;
    clients that connect before `await server.start()` wait for it.

    Args:
        state: the app's `state` (`registry`, `limits`, `pools`, `admission`).
        host: the interface (as `--host`; an IPv6 address without brackets).
        port: the TCP port; 0 picks a free one.

    Returns:
        (a `grpc.aio.Server`, the port it is bound to); run it with
        `await server.start()`, stop it with `await server.stop(GRACE_SECONDS)`.

    Raises:
        OSError: the address cannot be bound (e.g. the port is in use).

    Example:

    >>> server, port = bind(app.state, "127.0.0.1", 8500)  # doctest: +SKIP
    >>> await server.start()                               # doctest: +SKIP
    """
    server = grpc.aio.server(options=[
        ("grpc.so_reuseport", 0),  # a port in use is an error, not shared
        ("grpc.max_receive_message_length", state.limits.max_body_bytes),
    ])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(state), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(state), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise OSError(f"cannot listen for gRPC on {address} (in use, or not an address of "
                      "this machine)")
    return server, bound
