"""Tests for keras_seq.serving's gRPC API (TF Serving's PredictionService and ModelService).

A tiny attention translator is exported once (SavedModel and ONNX) and served
by real servers on loopback ports (uvicorn for REST, grpc.aio beside it),
one per backend; the client is the one TF Serving users write, built from
`tensorflow_serving.apis` and `tf.make_tensor_proto` / `tf.make_ndarray`.
Oracles: the SavedModel called directly through `tf.saved_model.load`, and
the REST API answering the same request.
"""

import contextlib
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from keras_seq import serving
from keras_seq.models import AttentionSeq2Seq
from keras_seq.serving.signatures import Signature, TensorInfo, Version
from export_helpers import SOURCES, encode_sources, export_with_beam, translator_tokenizers
from serving_helpers import running_server

MODEL = "fra-eng"
MAX_LENGTH = 8
MAX_BATCH = 8
MAX_STRING = 64
CODE = grpc.StatusCode


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(base directory, version path, source tokenizer) of a tiny translator (+ ONNX)."""
    base = tmp_path_factory.mktemp("grpc-models")
    source, target = translator_tokenizers()
    model = AttentionSeq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, units=8,
                             max_length=10)
    *_, path = export_with_beam(model, source, target, base / MODEL, MAX_LENGTH)
    return base, path, source


class Server:
    """A running app: `http` (an httpx client), gRPC stubs on its `grpc_port`."""

    def __init__(self, app, http, base):
        self.base = str(base)
        self.http = http
        self.channel = grpc.insecure_channel(f"127.0.0.1:{app.state.grpc_port}")
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def predict(self, signature=None, model=MODEL, version=None, timeout=60, **inputs):
        """Predict over gRPC: {output name: array}, and the response's model spec."""
        response = self.predictions.Predict(request(signature, model, version, **inputs),
                                            timeout=timeout)
        outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
        return outputs, response.model_spec

    def rest(self, signature, **inputs):
        """Predict over REST (columnar): {output name: list}."""
        body = {"signature_name": signature,
                "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
        response = self.http.post(f"/v1/models/{MODEL}:predict", json=body)
        assert response.status_code == 200, response.text
        return response.json()["outputs"]

    def refused(self, call, code, *fragments):
        """Asserts that `call()` fails with `code` and a clean one-line message."""
        with pytest.raises(grpc.RpcError) as info:
            call()
        error = info.value
        details = error.details()
        assert error.code() == code, (error.code(), details)
        assert details and "\n" not in details and "Traceback" not in details
        assert self.base not in details and 'File "' not in details
        for fragment in fragments:
            assert fragment in details, (fragment, details)
        return error


def request(signature=None, model=MODEL, version=None, output_filter=(), **inputs):
    """A `PredictRequest`; inputs are arrays (through `tf.make_tensor_proto`) or TensorProtos."""
    message = predict_pb2.PredictRequest()
    message.model_spec.name = model
    if signature is not None:
        message.model_spec.signature_name = signature
    if version is not None:
        message.model_spec.version.value = version
    message.output_filter.extend(output_filter)
    for name, value in inputs.items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else (
            tf.make_tensor_proto(value))
        message.inputs[name].CopyFrom(proto)
    return message


@contextlib.contextmanager
def serve(base, **options):
    app = serving.create_app(base, grpc_port=0, poll_interval=0, **options)
    with running_server(app) as http:
        server = Server(app, http, base)
        try:
            yield server
        finally:
            server.channel.close()


@pytest.fixture(scope="module")
def saved(exported):
    with serve(exported[0], max_batch=MAX_BATCH, max_string_length=MAX_STRING) as server:
        yield server


@pytest.fixture(scope="module")
def onnx(exported):
    with serve(exported[0], onnx=True) as server:
        yield server


def _assert_same(grpc_outputs, rest_outputs, expected):
    """gRPC outputs == REST outputs == `expected` (the SavedModel's own answer)."""
    assert sorted(grpc_outputs) == sorted(rest_outputs) == sorted(expected)
    for name, value in expected.items():
        value = np.asarray(value)
        got = grpc_outputs[name]
        if value.dtype == object:
            assert got.tolist() == value.tolist(), name
            assert [s.encode() for s in rest_outputs[name]] == value.tolist(), name
        else:
            assert got.dtype == value.dtype, name
            np.testing.assert_array_equal(got, value, err_msg=name)
            np.testing.assert_array_equal(rest_outputs[name], value, err_msg=name)


def test_predict_text_and_ids_equal_rest_and_the_model(exported, saved):
    base, path, source = exported
    loaded = tf.saved_model.load(path).signatures
    expected = {k: v.numpy() for k, v in loaded["translate"](sentences=tf.constant(SOURCES)).items()}
    outputs, spec = saved.predict("translate", sentences=np.array(SOURCES, dtype=object))
    _assert_same(outputs, saved.rest("translate", sentences=SOURCES), expected)
    assert (spec.name, spec.version.value, spec.signature_name) == (MODEL, 1, "translate")

    # No signature name: serving_default (the text signature), as TF Serving.
    outputs, spec = saved.predict(sentences=np.array(SOURCES[:1], dtype=object))
    assert spec.signature_name == "serving_default"
    assert outputs["translations"].tolist() == expected["translations"][:1].tolist()

    ids = encode_sources(source)
    expected = {k: v.numpy() for k, v in loaded["translate_ids"](source_ids=tf.constant(ids)).items()}
    outputs, _ = saved.predict("translate_ids", version=1, source_ids=ids)
    _assert_same(outputs, saved.rest("translate_ids", source_ids=ids), expected)

    # output_filter picks outputs; an unknown one is refused.
    message = request("translate", output_filter=["translations"],
                      sentences=np.array(SOURCES, dtype=object))
    response = saved.predictions.Predict(message, timeout=60)
    assert list(response.outputs) == ["translations"]
    message.output_filter.append("nope")
    saved.refused(lambda: saved.predictions.Predict(message), CODE.INVALID_ARGUMENT,
                  "output_filter", "'nope'")


def test_onnx_backend_equals_rest_and_the_saved_model(exported, saved, onnx):
    _, path, source = exported
    ids = encode_sources(source)
    expected = tf.saved_model.load(path).signatures["translate_ids"](source_ids=tf.constant(ids))
    outputs, spec = onnx.predict("translate_ids", source_ids=ids)
    rest = onnx.rest("translate_ids", source_ids=ids)
    assert sorted(outputs) == sorted(rest) == ["ids", "lengths", "scores"]
    for name in ("ids", "lengths"):
        np.testing.assert_array_equal(outputs[name], expected[name].numpy())
        np.testing.assert_array_equal(rest[name], outputs[name])
    np.testing.assert_allclose(outputs["scores"], expected["scores"].numpy(), atol=1e-4)
    np.testing.assert_array_equal(rest["scores"], outputs["scores"])
    onnx.refused(lambda: onnx.predict("translate_ids", source_ids=ids.astype(np.int64)),
                 CODE.INVALID_ARGUMENT, "input 'source_ids'", "DT_INT32", "DT_INT64")
    onnx.refused(lambda: onnx.predict("translate"), CODE.NOT_FOUND, "'translate' not found")


@pytest.mark.parametrize("backend", ["saved", "onnx"])
def test_metadata_and_status_equal_rest(backend, request):
    server = request.getfixturevalue(backend)
    meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta.model_spec.name = MODEL
    response = server.predictions.GetModelMetadata(meta, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == (MODEL, 1)
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    rest = server.http.get(f"/v1/models/{MODEL}/metadata").json()
    got = json_format.MessageToDict(signature_defs, preserving_proto_field_name=True)
    want = json_format.MessageToDict(json_format.ParseDict(
        rest["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap(),
        ignore_unknown_fields=True), preserving_proto_field_name=True)
    assert got == want and "translate_ids" in got["signature_def"]
    source_ids = signature_defs.signature_def["translate_ids"].inputs["source_ids"]
    assert source_ids.dtype == tf.int32.as_datatype_enum

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = MODEL
    answer = server.models.GetModelStatus(status, timeout=30)
    assert json_format.MessageToDict(answer, preserving_proto_field_name=True) == {
        "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {}}]}
    rest = server.http.get(f"/v1/models/{MODEL}").json()["model_version_status"]
    assert rest[0]["version"] == "1" and rest[0]["state"] == "AVAILABLE"
    status.model_spec.version.value = 1
    assert len(server.models.GetModelStatus(status).model_version_status) == 1

    status.model_spec.version.value = 7
    server.refused(lambda: server.models.GetModelStatus(status), CODE.NOT_FOUND, "version 7")
    meta.model_spec.name = "nope"
    server.refused(lambda: server.predictions.GetModelMetadata(meta), CODE.NOT_FOUND, "'nope'")
    meta.model_spec.name = MODEL
    del meta.metadata_field[:]
    server.refused(lambda: server.predictions.GetModelMetadata(meta), CODE.INVALID_ARGUMENT,
                   "metadata_field")


def test_refusals(exported, saved):
    """Each bad request: its gRPC code and a one-line message naming the problem."""
    source = exported[2]
    ids = encode_sources(source)
    text = np.array(["je suis ici ."], dtype=object)
    predict = saved.predict

    def refused(code, *fragments, **kwargs):
        return saved.refused(lambda: predict(**kwargs), code, *fragments)

    refused(CODE.NOT_FOUND, "model 'nope' is not served", model="nope", sentences=text)
    refused(CODE.NOT_FOUND, "version 9", version=9, sentences=text)
    refused(CODE.NOT_FOUND, "'nope' not found", signature="nope", sentences=text)
    label = request(sentences=text)
    label.model_spec.version_label = "stable"
    saved.refused(lambda: saved.predictions.Predict(label), CODE.NOT_FOUND, "label 'stable'")
    refused(CODE.INVALID_ARGUMENT, "model_spec.name is empty", model="", sentences=text)
    refused(CODE.INVALID_ARGUMENT, "missing input 'sentences'")
    refused(CODE.INVALID_ARGUMENT, "unknown input 'ids'", ids=ids, sentences=text)
    refused(CODE.INVALID_ARGUMENT, "input 'source_ids'", "DT_INT32", "DT_FLOAT",
            signature="translate_ids", source_ids=ids.astype(np.float32))
    refused(CODE.INVALID_ARGUMENT, "input 'source_ids'", "rank 2", signature="translate_ids",
            source_ids=ids[0])
    refused(CODE.INVALID_ARGUMENT, "empty string at index [1]",
            sentences=np.array([b"a", b""], dtype=object))
    refused(CODE.INVALID_ARGUMENT, f"over the limit of {MAX_STRING}",
            sentences=np.array([b"a" * (MAX_STRING + 1)], dtype=object))
    refused(CODE.INVALID_ARGUMENT, f"batch of {MAX_BATCH + 1} > the limit of {MAX_BATCH}",
            sentences=np.array(["a"] * (MAX_BATCH + 1), dtype=object))
    short = tf.make_tensor_proto(ids)
    short.tensor_content = short.tensor_content[:-1]
    refused(CODE.INVALID_ARGUMENT, "tensor_content holds", signature="translate_ids",
            source_ids=short)

    # The step signature: fixed dimensions, float and bool states, one batch.
    state = predict("encode", source_ids=ids[:2])[0]
    state.pop("start_ids")
    tokens = np.array([2, 2], np.int32)
    assert set(predict("step", tokens=tokens, **state)[0]) >= {"logits"}
    bad = dict(state, state_decoder_h_0=state["state_decoder_h_0"][:, :5])
    refused(CODE.INVALID_ARGUMENT, "input 'state_decoder_h_0'", "[-1, 8]", signature="step",
            tokens=tokens, **bad)
    nan = state["state_decoder_c_0"].copy()
    nan[1, 3] = np.nan
    refused(CODE.INVALID_ARGUMENT, "input 'state_decoder_c_0'", "NaN", signature="step",
            tokens=tokens, **dict(state, state_decoder_c_0=nan))
    refused(CODE.INVALID_ARGUMENT, "disagree on the batch", signature="step",
            tokens=np.array([2], np.int32), **state)
    # An error raised inside the model: its first line, without the server's paths.
    refused(CODE.INVALID_ARGUMENT, signature="translate_ids",
            source_ids=np.array([[10_000]], np.int32))

    # What TF Serving has and this server does not.
    for call, message in (
        (saved.predictions.Classify, classification_pb2.ClassificationRequest()),
        (saved.predictions.Regress, regression_pb2.RegressionRequest()),
        (saved.predictions.MultiInference, inference_pb2.MultiInferenceRequest()),
        (saved.models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest()),
    ):
        saved.refused(lambda: call(message), CODE.UNIMPLEMENTED, "is not supported")
    assert saved.http.get("/healthz").status_code == 200


# -- overload and deadlines --------------------------------------------------------


class _SleepBackend(serving.SavedModelBackend):
    """Serves every version as one signature that sleeps `seconds[0]` seconds."""

    def load(self, number, source, fingerprint):
        seconds = TensorInfo("seconds", "float32", [None])

        def call(arrays):
            time.sleep(float(arrays["seconds"][0]))
            return {"slept": arrays["seconds"]}

        signature = Signature("serving_default", {"seconds": seconds}, {"slept": seconds}, call)
        return Version(number, {"serving_default": signature}, path=source, backend="sleep",
                       fingerprint=fingerprint)


def test_overload_and_deadlines(tmp_path):
    """A full queue: RESOURCE_EXHAUSTED with retry-after; deadlines: DEADLINE_EXCEEDED."""
    (tmp_path / "slow" / "1").mkdir(parents=True)
    (tmp_path / "slow" / "1" / "saved_model.pb").write_bytes(b"")
    app = serving.create_app(tmp_path, workers=1, max_queue=1, queue_timeout_ms=400,
                             request_timeout_ms=1500, poll_interval=0, grpc_port=0)
    app.state.registry.backend = _SleepBackend()
    with running_server(app) as http:
        server = Server(app, http, tmp_path)

        def sleep(seconds, timeout=30):
            return server.predict(model="slow", seconds=np.array([seconds], np.float32),
                                  timeout=timeout)[0]["slept"]

        answers = {}
        busy = threading.Thread(target=lambda: answers.setdefault("busy", sleep(1.0)))
        busy.start()  # holds the one model thread for 1 s
        time.sleep(0.2)
        waiting = threading.Thread(target=lambda: answers.setdefault(
            "waiting", server.refused(lambda: sleep(0.0), CODE.RESOURCE_EXHAUSTED,
                                      "queue timeout of 400 ms")))
        waiting.start()  # fills the queue of one
        time.sleep(0.1)
        start = time.monotonic()
        full = server.refused(lambda: sleep(0.0), CODE.RESOURCE_EXHAUSTED, "--max-queue")
        assert time.monotonic() - start < 0.3  # answered at once, not queued
        assert ("retry-after", "1") in full.trailing_metadata()
        waiting.join()
        busy.join()
        assert answers["busy"].tolist() == [1.0]
        assert ("retry-after", "1") in answers["waiting"].trailing_metadata()

        server.refused(lambda: sleep(2.0), CODE.DEADLINE_EXCEEDED, "request timeout of 1500 ms")
        time.sleep(0.6)  # the late call frees the thread
        # The client's own deadline, shorter than the server's.
        start = time.monotonic()
        server.refused(lambda: sleep(1.0, timeout=0.3), CODE.DEADLINE_EXCEEDED)
        assert time.monotonic() - start < 0.9
        time.sleep(0.8)
        assert sleep(0.0).tolist() == [0.0]
        server.refused(lambda: sleep(float("nan")), CODE.INVALID_ARGUMENT, "NaN")
        server.channel.close()


def test_grpc_port_option(tmp_path, capsys):
    from keras_seq.serving import cli

    parser = cli.add_arguments(__import__("argparse").ArgumentParser())
    assert parser.parse_args([str(tmp_path)]).grpc_port is None
    assert parser.parse_args([str(tmp_path), "--grpc-port", "8500"]).grpc_port == 8500
    for bad in ("0", "65536", "x"):
        assert cli.main([str(tmp_path), "--grpc-port", bad], prog="serve") == 2
        assert "--grpc-port" in capsys.readouterr().err
    assert cli.main([str(tmp_path), "--port", "8600", "--grpc-port", "8600"], prog="serve") == 2
    assert "must differ" in capsys.readouterr().err
    with pytest.raises(ValueError, match="grpc_port"):
        serving.create_app(tmp_path, grpc_port=-1)
