"""Tests for keras_seq.serving: a real uvicorn server over real SavedModels.

The SavedModels are built here from a small `tf.Module` (a string -> string
signature made of core `tf.strings` ops, an int-ids signature with three
outputs), so the server is exercised exactly as TF Serving clients use it: over
HTTP on a loopback port, with httpx. Oracles are plain Python/NumPy
re-computations of what each version must answer.
"""

import base64
import concurrent.futures
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf

from keras_seq import errors, serving
from serving_helpers import assert_error, free_socket, running_server

REPO = Path(__file__).resolve().parents[1]
MAX_BATCH = 16
MAX_STRING = 64
MAX_BODY = 64 * 1024


class _Echo(tf.Module):
    """Version `tag` of a toy model: its answers name the version."""

    def __init__(self, tag):
        super().__init__()
        self.tag = tf.Variable(tag, dtype=tf.int32)  # gives the export a variables/ dir

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
    def generate(self, prompts):
        text = tf.strings.join(
            [tf.strings.upper(prompts), tf.strings.as_string(self.tag)], separator="|v"
        )
        return {"outputs": text}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32, name="ids"),
            tf.TensorSpec([None], tf.int32, name="lengths"),
        ]
    )
    def generate_ids(self, ids, lengths):
        check = tf.debugging.assert_less(ids, 1000, message="token id out of range")
        with tf.control_dependencies([check]):
            mask = tf.sequence_mask(lengths, tf.shape(ids)[1], dtype=tf.int32)
        return {
            "ids": (ids + self.tag) * mask,
            "total": tf.reduce_sum(ids * mask, axis=1),
            "half": tf.cast(lengths, tf.float32) / 2.0,
        }


def _expected_text(prompt, tag):
    upper = "".join(c.upper() if c.isascii() else c for c in prompt)  # tf.strings.upper: ASCII
    return f"{upper}|v{tag}"


def _expected_ids(ids, lengths, tag):
    ids = np.asarray(ids)
    mask = (np.arange(ids.shape[1])[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    return {
        "ids": ((ids + tag) * mask).tolist(),
        "total": (ids * mask).sum(axis=1).tolist(),
        "half": [n / 2.0 for n in lengths],
    }


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """SavedModels of versions tagged 1, 2, 3: {tag: path}."""
    root = tmp_path_factory.mktemp("exports")
    paths = {}
    for tag in (1, 2, 3):
        module = _Echo(tag)
        paths[tag] = root / f"tag{tag}"
        tf.saved_model.save(
            module,
            str(paths[tag]),
            signatures={
                "serving_default": module.generate,
                "generate": module.generate,
                "generate_ids": module.generate_ids,
            },
        )
    return paths


class _Server:
    def __init__(self, base, url, client):
        self.base = base
        self.url = url
        self.client = client

    def predict(self, model, body, version=None, **kwargs):
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
        return self.client.post(path, json=body, **kwargs)

    def wait_for(self, condition, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError("condition not met before the timeout")


@pytest.fixture(scope="module")
def server(tmp_path_factory, exports):
    """The real server (uvicorn on a free loopback port) over `echo` and `swap`."""
    base = tmp_path_factory.mktemp("models")
    shutil.copytree(exports[1], base / "echo" / "1")
    shutil.copytree(exports[2], base / "echo" / "2")
    shutil.copytree(exports[1], base / "swap" / "1")  # the hot-swap test changes this one
    (base / "README.md").write_text("not a model")
    app = serving.create_app(
        base,
        poll_interval=0.1,
        max_batch=MAX_BATCH,
        max_string_length=MAX_STRING,
        max_body_bytes=MAX_BODY,
        workers=8,
    )
    with running_server(app) as client:
        yield _Server(base, str(client.base_url), client)


def test_model_status(server):
    available = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    response = server.client.get("/v1/models/echo")
    assert response.status_code == 200
    assert response.json() == {
        "model_version_status": [{"version": "2", **available}, {"version": "1", **available}]
    }
    response = server.client.get("/v1/models/echo/versions/1")
    assert response.json() == {"model_version_status": [{"version": "1", **available}]}
    assert_error(server.client.get("/v1/models/echo/versions/9"), 404, "9")
    assert_error(server.client.get("/v1/models/nope"), 404, "nope")
    health = server.client.get("/healthz").json()
    assert health["status"] == "ok" and health["models"]["echo"] == ["2", "1"]
    assert "README.md" not in health["models"]
    assert server.client.get("/v1/health").status_code == 200
    listing = server.client.get("/v1/models").json()
    assert {m["name"] for m in listing["models"]} == {"echo", "swap"}


def test_metadata(server):
    response = server.client.get("/v1/models/echo/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": "echo", "signature_name": "", "version": "2"}
    defs = body["metadata"]["signature_def"]["signature_def"]
    assert set(defs) == {"serving_default", "generate", "generate_ids"}
    prompts = defs["generate"]["inputs"]["prompts"]
    assert prompts["dtype"] == "DT_STRING"
    assert prompts["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    ids_def = defs["generate_ids"]
    assert {k: v["dtype"] for k, v in ids_def["inputs"].items()} == {
        "ids": "DT_INT32",
        "lengths": "DT_INT32",
    }
    assert [d["size"] for d in ids_def["inputs"]["ids"]["tensor_shape"]["dim"]] == ["-1", "-1"]
    assert {k: v["dtype"] for k, v in ids_def["outputs"].items()} == {
        "ids": "DT_INT32",
        "total": "DT_INT32",
        "half": "DT_FLOAT",
    }
    assert ids_def["method_name"] == "tensorflow/serving/predict"
    v1 = server.client.get("/v1/models/echo/versions/1/metadata").json()
    assert v1["model_spec"]["version"] == "1"


def test_predict_string_signature(server):
    prompts = ["hello", "héllo wörld", "a b c"]
    expected = [_expected_text(p, 2) for p in prompts]
    # Row format, default signature (serving_default), bare and named instances.
    response = server.predict("echo", {"instances": prompts})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}
    assert response.headers["x-model-version"] == "2"
    named = server.predict("echo", {"instances": [{"prompts": p} for p in prompts]})
    assert named.json() == {"predictions": expected}
    # Columnar format, explicit signature, bare and named inputs.
    response = server.predict("echo", {"signature_name": "generate", "inputs": prompts})
    assert response.json() == {"outputs": expected}
    response = server.predict("echo", {"signature_name": "generate", "inputs": {"prompts": prompts}})
    assert response.json() == {"outputs": expected}
    # Binary-safe strings as {"b64": ...}.
    encoded = {"b64": base64.b64encode("hi".encode()).decode()}
    response = server.predict("echo", {"instances": [encoded]})
    assert response.json() == {"predictions": [_expected_text("hi", 2)]}


def test_predict_ids_signature(server):
    ids = [[5, 6, 7], [8, 9, 0]]
    lengths = [3, 2]
    expected = _expected_ids(ids, lengths, 2)
    rows = server.predict(
        "echo",
        {
            "signature_name": "generate_ids",
            "instances": [{"ids": i, "lengths": n} for i, n in zip(ids, lengths)],
        },
    )
    assert rows.status_code == 200, rows.text
    assert rows.json() == {
        "predictions": [
            {name: expected[name][row] for name in ("ids", "total", "half")} for row in range(2)
        ]
    }
    columns = server.predict(
        "echo", {"signature_name": "generate_ids", "inputs": {"ids": ids, "lengths": lengths}}
    )
    assert columns.status_code == 200, columns.text
    assert columns.json() == {"outputs": expected}


def test_version_routing(server):
    body = {"instances": ["abc"]}
    v1 = server.predict("echo", body, version=1)
    assert v1.json() == {"predictions": ["ABC|v1"]} and v1.headers["x-model-version"] == "1"
    v2 = server.predict("echo", body, version=2)
    assert v2.json() == {"predictions": ["ABC|v2"]}
    default = server.predict("echo", body)
    assert default.json() == {"predictions": ["ABC|v2"]}
    ids = server.predict(
        "echo",
        {"signature_name": "generate_ids", "inputs": {"ids": [[1, 2]], "lengths": [2]}},
        version=1,
    )
    assert ids.json()["outputs"] == _expected_ids([[1, 2]], [2], 1)
    assert_error(server.predict("echo", body, version=3), 404, "version 3")


def _served(server, model="swap"):
    response = server.predict(model, {"instances": ["x"]})
    assert response.status_code == 200, response.text  # never down during swaps
    return response.headers["x-model-version"], response.json()["predictions"][0]


def _status(server, model="swap"):
    return {
        row["version"]: row
        for row in server.client.get(f"/v1/models/{model}").json()["model_version_status"]
    }


def test_hot_swap_and_failed_versions(server, exports, caplog):
    caplog.set_level(logging.INFO, logger="keras_seq.serving")
    swap = server.base / "swap"
    assert _served(server) == ("1", "X|v1")

    # An exporter's atomic write: temporary directory, then rename into place.
    shutil.copytree(exports[3], swap / ".tmp-3")
    os.rename(swap / ".tmp-3", swap / "3")
    server.wait_for(lambda: _served(server) == ("3", "X|v3"))
    assert server.predict("swap", {"instances": ["x"]}, version=1).json()["predictions"] == [
        "X|v1"
    ]

    # A corrupt version (garbage saved_model.pb) is reported and left out.
    (swap / ".tmp-5" / "variables").mkdir(parents=True)
    (swap / ".tmp-5" / "saved_model.pb").write_bytes(b"\x00garbage, not a protobuf\xff" * 8)
    os.rename(swap / ".tmp-5", swap / "5")
    row = server.wait_for(lambda: _status(server).get("5"))
    assert row["state"] == "END"
    assert row["status"]["error_code"] != "OK" and row["status"]["error_message"]
    assert _status(server)["3"]["state"] == "AVAILABLE"
    assert _served(server) == ("3", "X|v3")  # the previous version keeps serving
    assert_error(server.predict("swap", {"instances": ["x"]}, version=5), 404, "5")
    assert server.client.get("/v1/models/swap/versions/5").json()["model_version_status"][0][
        "state"
    ] == "END"

    # A version directory without saved_model.pb is not complete: ignored.
    (swap / "6" / "variables").mkdir(parents=True)
    time.sleep(0.5)
    assert "6" not in _status(server) and _served(server) == ("3", "X|v3")

    # A plain (non-atomic) copy is loaded only once its files have settled.
    shutil.copytree(exports[2], swap / "4")
    server.wait_for(lambda: _served(server) == ("4", "X|v2"))

    # Removing a version directory unloads it; the next highest takes over.
    shutil.rmtree(swap / "4")
    server.wait_for(lambda: _served(server) == ("3", "X|v3"))
    assert "4" not in _status(server)

    # The load failure was logged as one JSON line naming model and version.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "keras_seq.serving"]
    failures = [line for line in lines if line["event"] == "version_load_failed"]
    assert any(line["model"] == "swap" and line["version"] == 5 for line in failures)
    loads = [line for line in lines if line["event"] == "version_loaded"]
    assert {(line["model"], line["version"]) for line in loads} >= {("swap", 3), ("swap", 4)}


def test_concurrent_requests(server, caplog):
    caplog.set_level(logging.INFO, logger="keras_seq.serving")
    rng = np.random.default_rng(0)

    def one(i):
        if i % 3 == 0:
            prompt = f"prompt {i}"
            version = 1 if i % 2 else None
            response = server.predict("echo", {"instances": [prompt]}, version=version)
            expected = {"predictions": [_expected_text(prompt, 1 if version else 2)]}
        elif i % 3 == 1:
            prompts = [f"p{i}-{j}" for j in range(1 + i % 4)]
            response = server.predict("echo", {"signature_name": "generate", "inputs": prompts})
            expected = {"outputs": [_expected_text(p, 2) for p in prompts]}
        else:
            ids = rng.integers(1, 900, size=(2, 5)).tolist()
            lengths = [5, 1 + i % 5]
            response = server.predict(
                "echo",
                {"signature_name": "generate_ids", "inputs": {"ids": ids, "lengths": lengths}},
            )
            expected = {"outputs": _expected_ids(ids, lengths, 2)}
        return response.status_code, response.json() == expected

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(200)))
    assert [r for r in results if r != (200, True)] == []

    # One JSON log line per request, with model, version, signature, status, latency.
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "keras_seq.serving"]
    requests = [line for line in lines if line["event"] == "request"]
    assert len(requests) == 200
    for line in requests:
        assert line["model"] == "echo" and line["status"] == 200
        assert line["version"] in (1, 2) and line["latency_ms"] >= 0
        assert line["signature"] in ("serving_default", "generate", "generate_ids")


_CHILD = r"""
import importlib.abc, json, sys
base, exports = sys.argv[1], json.loads(sys.argv[2])
# Phase 1: a stock TensorFlow consumer; keras_seq and Keras are not importable.
for blocked in ("keras_seq", "keras", "keras_hub", "tensorflow_text"):
    sys.modules[blocked] = None
import tensorflow as tf
out = {}
for tag, path in exports.items():
    loaded = tf.saved_model.load(path)
    text = loaded.signatures["generate"](prompts=tf.constant(["ab"]))["outputs"].numpy()
    ids = loaded.signatures["generate_ids"](
        ids=tf.constant([[1, 2]]), lengths=tf.constant([1]))["ids"].numpy()
    out[tag] = [text[0].decode(), ids.tolist()]
# Phase 2: the server package may import keras_seq.serving (its modules, and
# errors) but no model code: every other keras_seq module stays blocked.
del sys.modules["keras_seq"]
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith("keras_seq.") and name not in ("keras_seq.serving", "keras_seq.errors") \
                and not name.startswith("keras_seq.serving."):
            raise ImportError("blocked: " + name)
        return None
sys.meta_path.insert(0, Block())
from keras_seq import serving
registry = serving.ModelRegistry(base)
registry.poll(initial=True)
result = registry.get("echo").signature("generate")(
    {"prompts": __import__("numpy").array([b"ab"], dtype=object)})
out["server"] = result["outputs"][0].decode()
out["modules"] = sorted(m for m in sys.modules if m.startswith("keras_seq") and sys.modules[m])
print(json.dumps(out))
"""


def test_saved_models_load_without_keras_seq(server, exports):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    paths = json.dumps({str(tag): str(path) for tag, path in exports.items()})
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(server.base), paths],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(server.base),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for tag in (1, 2, 3):
        assert out[str(tag)] == [f"AB|v{tag}", [[1 + tag, 0]]]
    assert out["server"] == "AB|v2"
    modules = {m for m in out["modules"] if not m.startswith("keras_seq.serving.")}
    assert modules <= {"keras_seq", "keras_seq.serving", "keras_seq.errors"}


def _onnx_files(directory, suffix):
    """`generate.onnx` (strings) and `generate_ids.onnx` (ids + 1), tf2onnx-style names."""
    import onnx
    from onnx import TensorProto, helper

    directory.mkdir(parents=True, exist_ok=True)
    constant = helper.make_tensor("suffix", TensorProto.STRING, [], [suffix.encode()])
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["suffix"], value=constant),
            helper.make_node("StringConcat", ["prompts:0", "suffix"], ["outputs:0"]),
        ],
        "generate",
        [helper.make_tensor_value_info("prompts:0", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("outputs:0", TensorProto.STRING, ["N"])],
    )
    one = helper.make_tensor("one", TensorProto.INT32, [], [1])
    ids_graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["one"], value=one),
            helper.make_node("Add", ["ids:0", "one"], ["ids_out"]),
        ],
        "generate_ids",
        [helper.make_tensor_value_info("ids:0", TensorProto.INT32, ["N", "T"])],
        [helper.make_tensor_value_info("ids_out", TensorProto.INT32, ["N", "T"])],
    )
    for name, g in (("generate", graph), ("generate_ids", ids_graph)):
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
        model.ir_version = 9
        onnx.checker.check_model(model)
        tmp = directory / f".{name}.onnx.tmp"
        tmp.write_bytes(model.SerializeToString())
        os.replace(tmp, directory / f"{name}.onnx")


def test_onnx_server_via_app_script(tmp_path):
    base = tmp_path / "models"
    _onnx_files(base / "echo" / "onnx", "|onnx1")
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "apps" / "serve.py"), str(base), "--port", str(port),
         "--onnx", "--poll-interval", "0.1", "--max-batch", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=10.0) as client:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, proc.stderr.read()[-3000:]
                assert time.monotonic() < deadline, "ONNX server did not start"
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)

            status = client.get("/v1/models/echo").json()["model_version_status"]
            assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]
            meta = client.get("/v1/models/echo/metadata").json()
            defs = meta["metadata"]["signature_def"]["signature_def"]
            assert set(defs) == {"generate", "generate_ids"}
            assert defs["generate"]["inputs"]["prompts"]["dtype"] == "DT_STRING"
            assert defs["generate_ids"]["inputs"]["ids"]["dtype"] == "DT_INT32"

            def generate(body):
                return client.post("/v1/models/echo:predict",
                                   json={"signature_name": "generate", **body})

            assert generate({"instances": ["ab", "é"]}).json() == {
                "predictions": ["ab|onnx1", "é|onnx1"]
            }
            assert generate({"inputs": {"prompts": ["x"]}}).json() == {"outputs": ["x|onnx1"]}
            ids = client.post("/v1/models/echo:predict", json={
                "signature_name": "generate_ids", "inputs": [[1, 2], [3, 4]]})
            assert ids.json() == {"outputs": [[2, 3], [4, 5]]}
            assert_error(generate({"instances": [7]}), 400, "expected a string")
            assert_error(generate({"instances": ["a"] * 5}), 400, "too many instances")
            assert_error(client.post("/v1/models/echo:predict", json={
                "signature_name": "generate_ids", "inputs": [[1, 2]] * 2 + [[1]]}), 400, "ragged")
            assert_error(client.post("/v1/models/echo:predict", json={"instances": ["a"]}),
                          404, "serving_default")

            # New ONNX files replace the old set without a restart.
            _onnx_files(base / "echo" / "onnx", "|onnx2")
            deadline = time.monotonic() + 30
            while generate({"instances": ["ab"]}).json()["predictions"] != ["ab|onnx2"]:
                assert time.monotonic() < deadline, "ONNX files were not reloaded"
                time.sleep(0.05)
            # ONNX serving never loads TensorFlow.
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            assert "libtensorflow" not in maps
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    # Every log line is JSON; one per request.
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert any(
        line["path"] == "/v1/models/echo:predict" and line["signature"] == "generate"
        and line["status"] == 200 and line["version"] == 1 and "latency_ms" in line
        for line in requests
    )


def test_create_app_rejects_bad_arguments(tmp_path):
    with pytest.raises(errors.KerasSeqError, match="does not exist"):
        serving.create_app(tmp_path / "missing")
    with pytest.raises(ValueError, match="max_batch"):
        serving.create_app(tmp_path, max_batch=0)
    with pytest.raises(ValueError, match="poll_interval"):
        serving.create_app(tmp_path, poll_interval=-1)


def test_registry_layouts(tmp_path, exports):
    """A single model's directory, and ONNX as NAME/onnx/*.onnx, NAME.onnx or one file."""
    model = tmp_path / "single" / "echo"
    shutil.copytree(exports[1], model / "1")
    shutil.copytree(exports[3], model / "3")
    registry = serving.ModelRegistry(model)
    registry.poll(initial=True)
    assert registry.models() == {"echo": [3, 1]}
    out = registry.get("echo").signature("generate")({"prompts": np.array([b"q"], dtype=object)})
    assert out["outputs"].tolist() == [b"Q|v3"]

    base = tmp_path / "onnx"
    _onnx_files(base / "a" / "onnx", "|a")
    _onnx_files(tmp_path / "scratch", "|b")
    (base / "b").mkdir()
    shutil.copytree(exports[2], base / "b" / "2")
    os.replace(tmp_path / "scratch" / "generate.onnx", base / "b.onnx")
    registry = serving.ModelRegistry(base, onnx=True)
    registry.poll(initial=True)
    assert registry.models() == {"a": [1], "b": [2]}  # b numbered after its SavedModel
    b = registry.get("b")
    assert set(b.signatures) == {"b"}
    prompts = {"prompts": np.array([b"x"], dtype=object)}
    # A lone graph also answers requests that name no signature.
    assert b.signature("serving_default")(prompts)["outputs"].tolist() == ["x|b"]
    assert set(registry.get("a").signatures) == {"generate", "generate_ids"}

    single = serving.ModelRegistry(base / "b.onnx", onnx=True)
    single.poll(initial=True)
    assert single.models() == {"b": [1]}
    with pytest.raises(errors.KerasSeqError, match="onnx"):
        serving.ModelRegistry(base / "b.onnx")  # a file needs onnx=True
