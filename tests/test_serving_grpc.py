"""Tests for keras_seq.serving's gRPC API (TF Serving's PredictionService and ModelService).

Real servers on loopback ports (uvicorn for REST, grpc.aio beside it), one
per backend, serve a small `tf.Module` SavedModel (a text signature, an
id-level one, a `step` with float and bool state) and ONNX graphs beside it;
the client is the one TF Serving users write, built from
`tensorflow_serving.apis` and `tf.make_tensor_proto` / `tf.make_ndarray`.
Oracles: NumPy re-computations, the SavedModel called directly through
`tf.saved_model.load`, and the REST API answering the same request. A slow
test does the same with a tiny exported attention translator.
"""

import argparse
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
from keras_seq.serving import cli
from keras_seq.serving.signatures import Signature, TensorInfo, Version
from serving_helpers import running_server

MODEL = "toy"
MAX_BATCH = 8
MAX_STRING = 64
CODE = grpc.StatusCode
PROMPTS = ["hello world", "é ok", "a"]


class _Toy(tf.Module):
    """A text signature, an id-level one and a `step` with float and bool state."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
    def generate(self, prompts):
        return {"outputs": tf.strings.join([tf.strings.upper(prompts), "|v1"])}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids"),
                                  tf.TensorSpec([None], tf.int32, name="lengths")])
    def generate_ids(self, ids, lengths):
        check = tf.debugging.assert_less(ids, 1000, message="token id out of range")
        with tf.control_dependencies([check]):
            mask = tf.sequence_mask(lengths, tf.shape(ids)[1], dtype=tf.int32)
        return {"ids": (ids + 1) * mask, "total": tf.reduce_sum(ids * mask, axis=1),
                "half": tf.cast(lengths, tf.float32) / 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="tokens"),
                                  tf.TensorSpec([None, 4], tf.float32, name="state"),
                                  tf.TensorSpec([None], tf.bool, name="done")])
    def step(self, tokens, state, done):
        new = state * 0.5 + tf.cast(tokens, tf.float32)[:, None]
        return {"state": tf.where(done[:, None], state, new), "logits": tf.reduce_sum(new, 1)}


def _expected_ids(ids, lengths):
    """NumPy's answer of `generate_ids`."""
    mask = np.arange(ids.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return {"ids": ((ids + 1) * mask).astype(np.int32),
            "total": (ids * mask).sum(axis=1).astype(np.int32),
            "half": np.asarray(lengths, np.float32) / 2}


def _onnx_graphs(directory):
    """`generate.onnx` (text + "|v1") and `generate_ids.onnx` (ids + 1)."""
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True)
    suffix = helper.make_tensor("suffix", TensorProto.STRING, [], [b"|v1"])
    text = helper.make_graph(
        [helper.make_node("Constant", [], ["suffix"], value=suffix),
         helper.make_node("StringConcat", ["prompts:0", "suffix"], ["outputs:0"])],
        "generate", [helper.make_tensor_value_info("prompts:0", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("outputs:0", TensorProto.STRING, ["N"])])
    one = helper.make_tensor("one", TensorProto.INT32, [], [1])
    ids = helper.make_graph(
        [helper.make_node("Constant", [], ["one"], value=one),
         helper.make_node("Add", ["ids:0", "one"], ["ids"])],
        "generate_ids", [helper.make_tensor_value_info("ids:0", TensorProto.INT32, ["N", "T"])],
        [helper.make_tensor_value_info("ids", TensorProto.INT32, ["N", "T"])])
    for graph in (text, ids):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
        model.ir_version = 9
        onnx.checker.check_model(model)
        (directory / f"{graph.name}.onnx").write_bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(base directory, version path): the toy SavedModel and its ONNX graphs."""
    base = tmp_path_factory.mktemp("grpc-models")
    module = _Toy()
    path = base / MODEL / "1"
    tf.saved_model.save(module, str(path), signatures={
        "serving_default": module.generate, "generate": module.generate,
        "generate_ids": module.generate_ids, "step": module.step})
    _onnx_graphs(base / MODEL / "onnx")
    return base, path


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
        response = self.predictions.Predict(predict_request(signature, model, version, **inputs),
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


def predict_request(signature=None, model=MODEL, version=None, output_filter=(), **inputs):
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
    """gRPC outputs == REST outputs == `expected` ({name: array}, the oracle)."""
    if not isinstance(rest_outputs, dict):  # REST's columnar answer names no lone output
        rest_outputs = dict.fromkeys(expected, rest_outputs)
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


def _strings(texts):
    return np.array([t.encode() for t in texts], dtype=object)


def test_predict_equals_rest_numpy_and_the_model(exported, saved):
    loaded = tf.saved_model.load(str(exported[1])).signatures
    expected = {"outputs": _strings([p.upper() if p.isascii() else p.replace("ok", "OK")
                                     for p in PROMPTS])}
    expected["outputs"] += b"|v1"
    direct = loaded["generate"](prompts=tf.constant(PROMPTS))["outputs"].numpy()
    assert direct.tolist() == expected["outputs"].tolist()
    outputs, spec = saved.predict("generate", prompts=_strings(PROMPTS))
    _assert_same(outputs, saved.rest("generate", prompts=PROMPTS), expected)
    assert (spec.name, spec.version.value, spec.signature_name) == (MODEL, 1, "generate")
    # No signature name: serving_default, as TF Serving; an explicit version.
    outputs, spec = saved.predict(version=1, prompts=_strings(PROMPTS[:1]))
    assert spec.signature_name == "serving_default"
    assert outputs["outputs"].tolist() == expected["outputs"][:1].tolist()

    ids = np.array([[5, 6, 7], [8, 9, 0]], np.int32)
    lengths = np.array([3, 2], np.int32)
    outputs, _ = saved.predict("generate_ids", ids=ids, lengths=lengths)
    _assert_same(outputs, saved.rest("generate_ids", ids=ids, lengths=lengths),
                 _expected_ids(ids, lengths))
    state = np.arange(8, dtype=np.float32).reshape(2, 4)
    outputs, _ = saved.predict("step", tokens=np.array([1, 2], np.int32), state=state,
                               done=np.array([False, True]))
    np.testing.assert_array_equal(outputs["state"], [state[0] * 0.5 + 1, state[1]])
    np.testing.assert_array_equal(outputs["logits"], [(state[0] * 0.5 + 1).sum(),
                                                      (state[1] * 0.5 + 2).sum()])

    # output_filter picks outputs; an unknown one is refused.
    message = predict_request("generate_ids", output_filter=["total"], ids=ids, lengths=lengths)
    response = saved.predictions.Predict(message, timeout=30)
    assert list(response.outputs) == ["total"]
    message.output_filter.append("nope")
    saved.refused(lambda: saved.predictions.Predict(message), CODE.INVALID_ARGUMENT,
                  "output_filter", "'nope'")


def test_onnx_backend_equals_rest_and_numpy(onnx):
    outputs, spec = onnx.predict("generate", prompts=_strings(PROMPTS))
    expected = {"outputs": _strings([p + "|v1" for p in PROMPTS])}
    _assert_same(outputs, onnx.rest("generate", prompts=PROMPTS), expected)
    assert (spec.name, spec.version.value) == (MODEL, 1)
    ids = np.array([[5, 6, 7], [8, 9, 0]], np.int32)
    outputs, _ = onnx.predict("generate_ids", ids=ids)
    _assert_same(outputs, onnx.rest("generate_ids", ids=ids), {"ids": ids + 1})
    onnx.refused(lambda: onnx.predict("generate_ids", ids=ids.astype(np.int64)),
                 CODE.INVALID_ARGUMENT, "input 'ids'", "DT_INT32", "DT_INT64")
    onnx.refused(lambda: onnx.predict("step"), CODE.NOT_FOUND, "'step' not found")
    onnx.refused(lambda: onnx.predict("generate", prompts=_strings(["a", ""])),
                 CODE.INVALID_ARGUMENT, "empty string at index [1]")


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
    assert got == want and "generate_ids" in got["signature_def"]
    ids = signature_defs.signature_def["generate_ids"].inputs["ids"]
    assert ids.dtype == tf.int32.as_datatype_enum
    assert [d.size for d in ids.tensor_shape.dim] == [-1, -1]

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = MODEL
    answer = server.models.GetModelStatus(status, timeout=30)
    assert json_format.MessageToDict(answer, preserving_proto_field_name=True) == {
        "model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {}}]}
    rest = server.http.get(f"/v1/models/{MODEL}").json()["model_version_status"]
    assert [(r["version"], r["state"]) for r in rest] == [("1", "AVAILABLE")]
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


def test_refusals(saved):
    """Each bad request: its gRPC code and a one-line message naming the problem."""
    text = _strings(["hello"])
    ids = np.array([[5, 6]], np.int32)
    lengths = np.array([2], np.int32)

    def refused(code, *fragments, **kwargs):
        return saved.refused(lambda: saved.predict(**kwargs), code, *fragments)

    refused(CODE.NOT_FOUND, "model 'nope' is not served", model="nope", prompts=text)
    refused(CODE.NOT_FOUND, "version 9", version=9, prompts=text)
    refused(CODE.NOT_FOUND, "'nope' not found", signature="nope", prompts=text)
    label = predict_request(prompts=text)
    label.model_spec.version_label = "stable"
    saved.refused(lambda: saved.predictions.Predict(label), CODE.NOT_FOUND, "label 'stable'")
    refused(CODE.INVALID_ARGUMENT, "model_spec.name is empty", model="", prompts=text)
    refused(CODE.INVALID_ARGUMENT, "missing input 'prompts'")
    refused(CODE.INVALID_ARGUMENT, "unknown input 'ids'", ids=ids, prompts=text)
    refused(CODE.INVALID_ARGUMENT, "input 'ids'", "DT_INT32", "DT_FLOAT",
            signature="generate_ids", ids=ids.astype(np.float32), lengths=lengths)
    refused(CODE.INVALID_ARGUMENT, "input 'ids'", "rank 2", signature="generate_ids",
            ids=ids[0], lengths=lengths)
    refused(CODE.INVALID_ARGUMENT, "empty string at index [1]", prompts=_strings(["a", ""]))
    refused(CODE.INVALID_ARGUMENT, "string at index [0] is not UTF-8 text (byte 1",
            prompts=np.array([b"a\xff"], dtype=object))
    refused(CODE.INVALID_ARGUMENT, f"over the limit of {MAX_STRING}",
            prompts=_strings(["a" * (MAX_STRING + 1)]))
    refused(CODE.INVALID_ARGUMENT, f"batch of {MAX_BATCH + 1} > the limit of {MAX_BATCH}",
            prompts=_strings(["a"] * (MAX_BATCH + 1)))
    refused(CODE.INVALID_ARGUMENT, "disagree on the batch", signature="generate_ids",
            ids=ids, lengths=np.array([2, 2], np.int32))
    short = tf.make_tensor_proto(ids)
    short.tensor_content = short.tensor_content[:-1]
    refused(CODE.INVALID_ARGUMENT, "tensor_content holds", signature="generate_ids", ids=short,
            lengths=lengths)
    huge = tensor_pb2.TensorProto(dtype=tf.int32.as_datatype_enum, int_val=[1])
    huge.tensor_shape.dim.add(size=1)
    huge.tensor_shape.dim.add(size=10**12)
    refused(CODE.INVALID_ARGUMENT, "over the limit", signature="generate_ids", ids=huge,
            lengths=lengths)
    # TensorFlow's rule: fewer values than the shape holds repeat the last one.
    fill = tensor_pb2.TensorProto(dtype=tf.int32.as_datatype_enum, int_val=[4, 7])
    fill.tensor_shape.dim.add(size=1)
    fill.tensor_shape.dim.add(size=3)
    outputs, _ = saved.predict("generate_ids", ids=fill, lengths=np.array([3], np.int32))
    assert outputs["ids"].tolist() == [[5, 8, 8]]

    state = np.zeros((2, 4), np.float32)
    tokens, done = np.array([1, 2], np.int32), np.array([False, False])
    refused(CODE.INVALID_ARGUMENT, "input 'state'", "[-1, 4]", signature="step",
            tokens=tokens, state=state[:, :3], done=done)
    state[1, 3] = np.nan
    refused(CODE.INVALID_ARGUMENT, "input 'state'", "NaN", signature="step", tokens=tokens,
            state=state, done=done)
    # An error raised inside the model: its first line, without the server's paths.
    refused(CODE.INVALID_ARGUMENT, "token id out of range", signature="generate_ids",
            ids=np.array([[10_000]], np.int32), lengths=np.array([1], np.int32))

    # What TF Serving has and this server does not.
    for call, message in (
        (saved.predictions.Classify, classification_pb2.ClassificationRequest()),
        (saved.predictions.Regress, regression_pb2.RegressionRequest()),
        (saved.predictions.MultiInference, inference_pb2.MultiInferenceRequest()),
        (saved.models.HandleReloadConfigRequest, model_management_pb2.ReloadConfigRequest()),
    ):
        saved.refused(lambda: call(message), CODE.UNIMPLEMENTED, "is not supported")
    assert saved.predict(prompts=text)[0]["outputs"].tolist() == [b"HELLO|v1"]


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
    """A full queue: RESOURCE_EXHAUSTED with retry-after; deadlines: DEADLINE_EXCEEDED;
    shutdown waits for the RPC in flight."""
    (tmp_path / "slow" / "1").mkdir(parents=True)
    (tmp_path / "slow" / "1" / "saved_model.pb").write_bytes(b"")
    app = serving.create_app(tmp_path, workers=1, max_queue=1, queue_timeout_ms=400,
                             request_timeout_ms=1500, poll_interval=0, grpc_port=0)
    app.state.registry.backend = _SleepBackend()
    recorded = []

    class Metrics:  # what the RPCs tell the app's metrics (keras_seq.serving.metrics)
        def observe_request(self, *args):
            if args[-1] == "grpc":
                recorded.append(args[:4])

    app.state.metrics = Metrics()
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
        server.refused(lambda: server.predict(model="nope"), CODE.NOT_FOUND)
        counts = {}
        for key in recorded:
            if key[3] == "CANCELLED":  # past the client's deadline: whichever side saw it first
                key = key[:3] + ("DEADLINE_EXCEEDED",)
            counts[key] = counts.get(key, 0) + 1
        assert counts == {
            ("slow", 1, "serving_default", "OK"): 2,
            ("slow", 1, "serving_default", "RESOURCE_EXHAUSTED"): 2,
            ("slow", 1, "serving_default", "DEADLINE_EXCEEDED"): 2,  # the server's, the client's
            ("slow", 1, "serving_default", "INVALID_ARGUMENT"): 1,
            (None, None, None, "NOT_FOUND"): 1,
        }, counts
        # Shutting down lets the RPC in flight finish.
        last = threading.Thread(target=lambda: answers.setdefault("last", sleep(0.5)))
        last.start()
        time.sleep(0.2)
    last.join()
    assert answers["last"].tolist() == [0.5]
    with pytest.raises(grpc.RpcError) as stopped:  # and then stops the gRPC server
        sleep(0.0, timeout=5)
    assert stopped.value.code() == CODE.UNAVAILABLE
    server.channel.close()


def test_grpc_port_option(tmp_path, capsys, monkeypatch):
    parser = cli.add_arguments(argparse.ArgumentParser())
    assert parser.parse_args([str(tmp_path)]).grpc_port is None
    assert parser.parse_args([str(tmp_path), "--grpc-port", "8500"]).grpc_port == 8500
    for bad in ("0", "65536", "x"):
        assert cli.main([str(tmp_path), "--grpc-port", bad], prog="serve") == 2
        assert "--grpc-port" in capsys.readouterr().err
    assert cli.main([str(tmp_path), "--port", "8600", "--grpc-port", "8600"], prog="serve") == 2
    assert "must differ" in capsys.readouterr().err
    with pytest.raises(ValueError, match="grpc_port"):
        serving.create_app(tmp_path, grpc_port=-1)

    # run_server hands the port and --host to the app.
    from keras_seq.serving import app as app_module, logs

    class Built(Exception):
        pass

    def create_app(base_dir, **options):
        raise Built(options["grpc_port"], options["grpc_host"])

    monkeypatch.setattr(app_module, "create_app", create_app)
    monkeypatch.setattr(logs, "configure_logging", lambda: None)  # keep pytest's log capture
    with pytest.raises(Built) as built:
        cli.main([str(tmp_path), "--host", "::1", "--grpc-port", "8500"])
    assert built.value.args == (8500, "::1")


# -- a real translator --------------------------------------------------------------


@pytest.mark.slow
def test_translator_equals_rest_and_the_model(tmp_path):
    """A tiny exported attention translator, SavedModel and ONNX: text and id signatures."""
    from export_helpers import SOURCES, encode_sources, export_with_beam, translator_tokenizers
    from keras_seq.models import AttentionSeq2Seq

    source, target = translator_tokenizers()
    model = AttentionSeq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, units=8,
                             max_length=10)
    *_, path = export_with_beam(model, source, target, tmp_path / "fra-eng", 8)
    loaded = tf.saved_model.load(path).signatures
    ids = encode_sources(source)
    calls = {"translate": {"sentences": SOURCES}, "translate_ids": {"source_ids": ids}}
    for onnx_backend, signatures in ((False, ("translate", "translate_ids")),
                                     (True, ("translate_ids",))):
        with serve(tmp_path, onnx=onnx_backend) as server:
            for signature in signatures:
                inputs = calls[signature]
                expected = {k: v.numpy() for k, v in loaded[signature](
                    **{k: tf.constant(v) for k, v in inputs.items()}).items()}
                grpc_inputs = {k: np.array(v, dtype=object) if k == "sentences" else v
                               for k, v in inputs.items()}
                outputs, spec = server.predict(signature, model="fra-eng", **grpc_inputs)
                body = {"signature_name": signature,
                        "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
                rest = server.http.post("/v1/models/fra-eng:predict", json=body).json()["outputs"]
                assert spec.signature_name == signature and spec.version.value == 1
                assert sorted(outputs) == sorted(rest) == sorted(expected)
                for name, value in expected.items():
                    if value.dtype == object:
                        assert outputs[name].tolist() == value.tolist()
                        assert rest[name] == [s.decode() for s in value.tolist()]
                    elif name == "scores" and onnx_backend:
                        np.testing.assert_allclose(outputs[name], value, atol=1e-4)
                        np.testing.assert_array_equal(rest[name], outputs[name])
                    else:
                        np.testing.assert_array_equal(outputs[name], value)
                        np.testing.assert_array_equal(rest[name], value)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int8", "int16",
                                   "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                                   "bool", "string"])
def test_tensor_protos_round_trip_as_tensorflow_reads_them(dtype):
    """grpc_tensors reads what `tf.make_tensor_proto` writes (typed fields for one value,
    tensor_content for more) and writes what `tf.make_ndarray` reads."""
    from keras_seq.serving import codec, grpc_tensors

    tf_dtype = tf.string if dtype == "string" else tf.as_dtype(dtype)
    for shape in ([1], [2, 3]):
        size = int(np.prod(shape))
        if dtype == "string":
            value = np.array([f"é{i}".encode() for i in range(size)], dtype=object)
        elif dtype == "bool":
            value = np.arange(size) % 2 == 0
        else:
            value = tf.constant(np.arange(1, size + 1) * 3, dtype=tf_dtype).numpy()
        value = value.reshape(shape)
        signature = Signature("s", {"x": TensorInfo("x", dtype, [None] * len(shape))}, {}, None)
        proto = tf.make_tensor_proto(value, dtype=tf_dtype)
        arrays, batch = grpc_tensors.to_inputs({"x": proto}, signature, codec.Limits())
        assert batch == shape[0] and arrays["x"].shape == tuple(shape)
        assert arrays["x"].tolist() == value.tolist()
        back = tf.make_ndarray(grpc_tensors.to_proto(arrays["x"], "x"))
        assert back.dtype == value.dtype and back.tolist() == value.tolist()
