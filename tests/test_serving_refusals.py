"""What the model server refuses, as tables: the documentation of every refusal.

Each row of `HTTP_REFUSALS` is one bad request a client (or a hostile one) can
send; each row of `OPTION_REFUSALS` one bad start-up option. For every row the
test asserts the clean refusal: the status (HTTP) or exit status 2 (options),
one line naming the problem, no traceback, none of the server's file paths,
and, over HTTP, the server still up and right afterwards. The overload rows
(503 with `Retry-After`, 504) run on a server with one model thread and a
queue of one, over a model whose call sleeps for as long as it is asked.

The server runs on a real loopback port (uvicorn in a thread) over SavedModels
built here from a small `tf.Module`, as in tests/test_serving.py.
"""

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import tensorflow as tf

from keras_seq import serving
from keras_seq.serving.signatures import Signature, TensorInfo, Version
from serving_helpers import assert_error, free_socket, running_server

REPO = Path(__file__).resolve().parents[1]
MAX_BATCH = 16
MAX_STRING = 64
MAX_BODY = 64 * 1024
IDS = "generate_ids"


class _Model(tf.Module):
    """A toy model with a string, an ids, a float and a streaming `step` signature."""

    def __init__(self):
        super().__init__()
        self.tag = tf.Variable(1, dtype=tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
    def generate(self, prompts):
        return {"outputs": tf.strings.join([tf.strings.upper(prompts), "|v1"])}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids"),
                                  tf.TensorSpec([None], tf.int32, name="lengths")])
    def generate_ids(self, ids, lengths):
        check = tf.debugging.assert_less(ids, 1000, message="token id out of range")
        with tf.control_dependencies([check]):
            mask = tf.sequence_mask(lengths, tf.shape(ids)[1], dtype=tf.int32)
        return {"ids": (ids + self.tag) * mask}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def invert(self, x):
        return {"inverse": 1.0 / x}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="tokens"),
                                  tf.TensorSpec([None, 4], tf.float32, name="state_h")])
    def step(self, tokens, state_h):
        # Broadcasts a state of batch 1 against any batch of tokens, as Keras's
        # stateful RNN does: only the server's batch check stops a wrong answer.
        new = state_h + tf.cast(tokens, tf.float32)[:, None]
        return {"logits": new, "next_state_h": new}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A model base directory: `toy` (versions 1, `²`, `v2`), `broken` (corrupt)."""
    root = tmp_path_factory.mktemp("refusals")
    module = _Model()
    signatures = {"serving_default": module.generate, "generate": module.generate,
                  IDS: module.generate_ids, "invert": module.invert, "step": module.step}
    tf.saved_model.save(module, str(root / "toy" / "1"), signatures=signatures)
    shutil.copytree(root / "toy" / "1", root / "toy" / "²")  # str.isdigit(), not a version
    (root / "toy" / "v2").mkdir()
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    return root


@pytest.fixture(scope="module")
def client(base):
    app = serving.create_app(base, poll_interval=0.1, max_batch=MAX_BATCH,
                             max_string_length=MAX_STRING, max_body_bytes=MAX_BODY)
    with running_server(app) as http:
        yield http


def _ids(inputs):
    return {"signature_name": IDS, "inputs": inputs}


def _step(tokens, state):
    return {"signature_name": "step", "inputs": {"tokens": tokens, "state_h": state}}


# (label, method, path under /v1/models/, body: JSON value, raw bytes or None,
#  status, a fragment of the one-line error)
HTTP_REFUSALS = [
    # -- the body is not (strict) JSON
    ("malformed JSON", "POST", "toy:predict", b'{"instances": [', 400, "malformed JSON"),
    ("not UTF-8", "POST", "toy:predict", b'{"instances": ["\xff\xfe"]}', 400, "UTF-8"),
    ("UTF-8-encoded surrogate", "POST", "toy:predict", b'{"instances": ["\xed\xa0\x80"]}',
     400, "UTF-8"),
    ("lone surrogate escape", "POST", "toy:predict", b'{"instances": ["\\ud800"]}', 400,
     "lone UTF-16 surrogate"),
    ("lone low surrogate", "POST", "toy:predict", b'{"inputs": ["a\\udfff"]}', 400,
     "surrogate"),
    ("surrogate in a key", "POST", "toy:predict", b'{"\\ud800": 1, "instances": ["a"]}', 400,
     "a key"),
    ("surrogate in signature_name", "POST", "toy:predict",
     b'{"signature_name": "\\udc00", "instances": ["a"]}', 400, "surrogate"),
    ("NaN", "POST", "toy:predict", b'{"signature_name": "invert", "inputs": [NaN]}', 400,
     "NaN is not valid JSON"),
    ("Infinity", "POST", "toy:predict", b'{"signature_name": "invert", "inputs": [Infinity]}',
     400, "Infinity"),
    ("-Infinity", "POST", "toy:predict",
     b'{"signature_name": "invert", "inputs": [-Infinity]}', 400, "-Infinity"),
    ("1e999 (a float overflow)", "POST", "toy:predict",
     b'{"signature_name": "invert", "inputs": [1e999]}', 400, "too large"),
    ("deeply nested JSON", "POST", "toy:predict", b"[" * 30_000 + b"]" * 30_000, 400,
     "malformed JSON"),
    ("not an object", "POST", "toy:predict", b"[1, 2]", 400, "JSON object"),
    # -- the request's shape
    ("neither instances nor inputs", "POST", "toy:predict", {"signature_name": "generate"},
     400, "neither"),
    ("both instances and inputs", "POST", "toy:predict", {"instances": ["a"], "inputs": ["a"]},
     400, "both"),
    ("instances not a list", "POST", "toy:predict", {"instances": "abc"}, 400,
     "must be a list"),
    ("empty instances", "POST", "toy:predict", {"instances": []}, 400, "empty"),
    ("too many instances", "POST", "toy:predict", {"instances": ["a"] * (MAX_BATCH + 1)}, 400,
     "too many instances"),
    ("columnar batch too big", "POST", "toy:predict", {"inputs": ["a"] * (MAX_BATCH + 1)},
     400, "limit"),
    ("signature_name not a string", "POST", "toy:predict",
     {"signature_name": 3, "instances": ["a"]}, 400, "signature_name"),
    ("bare value, two inputs", "POST", "toy:predict",
     {"signature_name": IDS, "instances": [[1, 2]]}, 400, "2 inputs"),
    ("missing input", "POST", "toy:predict", _ids({"ids": [[1]]}), 400,
     "missing input 'lengths'"),
    ("unknown input", "POST", "toy:predict", _ids({"ids": [[1]], "lengths": [1], "x": [1]}),
     400, "unknown input 'x'"),
    # -- values
    ("number for a string", "POST", "toy:predict", {"instances": ["ok", 3]}, 400,
     "expected a string"),
    ("null for a string", "POST", "toy:predict", {"inputs": [None]}, 400, "expected a string"),
    ("empty string", "POST", "toy:predict", {"instances": ["ok", ""]}, 400, "empty string"),
    ("string too long", "POST", "toy:predict", {"instances": ["x" * (MAX_STRING + 1)]}, 400,
     "over the limit"),
    ("bad base64", "POST", "toy:predict", {"instances": [{"b64": "***"}]}, 400, "base64"),
    ("wrong rank (scalar)", "POST", "toy:predict", {"inputs": "abc"}, 400, "rank 1"),
    ("wrong rank (nested)", "POST", "toy:predict", {"instances": [["a"]]}, 400, "rank 1"),
    ("ragged instances", "POST", "toy:predict",
     {"signature_name": IDS,
      "instances": [{"ids": [1, 2], "lengths": 2}, {"ids": [1], "lengths": 1}]},
     400, "ragged"),
    ("ragged columns", "POST", "toy:predict", _ids({"ids": [[1, 2], [3]], "lengths": [2, 1]}),
     400, "ragged"),
    ("float for an int", "POST", "toy:predict", _ids({"ids": [[1.5]], "lengths": [1]}), 400,
     "expected an integer"),
    ("bool for an int", "POST", "toy:predict", _ids({"ids": [[True]], "lengths": [1]}), 400,
     "expected an integer"),
    ("string for an int", "POST", "toy:predict", _ids({"ids": [["7"]], "lengths": [1]}), 400,
     "expected an integer"),
    ("int32 overflow", "POST", "toy:predict", _ids({"ids": [[2**40]], "lengths": [1]}), 400,
     "out of range"),
    ("float32 overflow", "POST", "toy:predict", {"signature_name": "invert", "inputs": [1e300]},
     400, "out of range for float32"),
    ("string 'NaN' for a float", "POST", "toy:predict",
     {"signature_name": "invert", "inputs": ["NaN"]}, 400, "expected a number"),
    ("batch dims disagree", "POST", "toy:predict", _ids({"ids": [[1], [2]], "lengths": [1]}),
     400, "disagree on the batch (leading) dimension: 'ids' has 2, 'lengths' has 1"),
    ("step: tokens batch 2, state batch 1", "POST", "toy:predict",
     _step([1, 2], [[0.0] * 4]), 400, "disagree on the batch"),
    ("step: state wrong width", "POST", "toy:predict", _step([1], [[0.0] * 3]), 400,
     "the signature expects [-1, 4]"),
    ("error inside the model", "POST", "toy:predict", _ids({"ids": [[5000]], "lengths": [1]}),
     400, "token id out of range"),
    # -- what the URL addresses
    ("unknown signature", "POST", "toy:predict", {"signature_name": "nope", "instances": ["a"]},
     404, "nope"),
    ("unknown model", "POST", "nope:predict", {"instances": ["a"]}, 404, "nope"),
    ("unknown version", "POST", "toy/versions/7:predict", {"instances": ["a"]}, 404, "7"),
    ("version ² (predict)", "POST", "toy/versions/%C2%B2:predict", {"instances": ["a"]}, 404,
     "ASCII digits, got '²'"),
    ("version ² (status)", "GET", "toy/versions/%C2%B2", None, 404, "ASCII digits"),
    ("version ² (metadata)", "GET", "toy/versions/%C2%B2/metadata", None, 404, "ASCII digits"),
    ("Arabic-Indic version ٣", "GET", "toy/versions/%D9%A3", None, 404, "ASCII digits"),
    ("negative version", "GET", "toy/versions/-1", None, 404, "ASCII digits"),
    ("version beyond int64", "GET", "toy/versions/" + "9" * 30, None, 404, "ASCII digits"),
    ("version 1e3", "GET", "toy/versions/1e3", None, 404, "ASCII digits"),
    ("non-numeric version", "POST", "toy/versions/latest:predict", {"instances": ["a"]}, 404,
     "latest"),
    ("version label", "POST", "toy/labels/stable:predict", {"instances": ["a"]}, 404, "label"),
    ("version dir ² is no version", "GET", "toy/versions/2", None, 404, "not known"),
    ("failed model, no version", "POST", "broken:predict", {"instances": ["a"]}, 404,
     "no available version"),
    ("path traversal", "GET", "..%2F..%2Fetc", None, 404, ""),
    ("unknown verb", "POST", "toy:explode", {"instances": ["a"]}, 404, "explode"),
    ("classify", "POST", "toy:classify", {"examples": []}, 400, ":predict"),
    ("POST on status", "POST", "toy", {"instances": ["a"]}, 405, "POST"),
    ("GET on predict", "GET", "toy:predict", None, 405, "POST"),
]


def _send(client, method, path, body):
    if isinstance(body, bytes) or body is None:
        content = body
    else:
        content = json.dumps(body).encode()
    return client.request(method, f"/v1/models/{path}", content=content)


def _assert_no_server_path(text, base):
    for path in {str(base), os.path.realpath(base), str(REPO)}:
        assert path not in text, (path, text)


def test_http_refusals(client, base):
    labels = [row[0] for row in HTTP_REFUSALS]
    assert len(set(labels)) == len(labels) >= 60
    for label, method, path, body, status, fragment in HTTP_REFUSALS:
        response = _send(client, method, path, body)
        try:
            assert_error(response, status, fragment)
            _assert_no_server_path(response.text, base)
            assert client.get("/healthz").status_code == 200  # still up
        except AssertionError as error:
            raise AssertionError(f"{label}: {error}") from None
    # ... and still right.
    answer = client.post("/v1/models/toy:predict", json={"instances": ["ok"]})
    assert answer.json() == {"predictions": ["OK|v1"]}


def test_oversized_bodies_refused(client):
    """413 for a body over the limit, declared or streamed without a length."""
    big = json.dumps({"instances": ["a" * 60] * 2000}).encode()
    assert len(big) > MAX_BODY
    assert_error(client.post("/v1/models/toy:predict", content=big), 413, "limit")

    def chunks():
        for _ in range(100):
            yield b" " * 1024

    assert_error(client.post("/v1/models/toy:predict", content=chunks()), 413, "limit")
    assert_error(client.get("/v2/anything"), 404, "unknown path")
    assert_error(client.delete("/v1/models/toy"), 405)


def test_strict_json_out_and_no_paths_in_status(client, base):
    """Non-finite outputs as "NaN"/"Infinity" strings; a failed version's path hidden."""
    response = client.post("/v1/models/toy:predict",
                           json={"signature_name": "invert", "inputs": [0.0, -0.0, 2.0]})
    assert response.status_code == 200
    assert json.loads(response.text, parse_constant=_no_constant) == {
        "outputs": ["Infinity", "-Infinity", 0.5]}
    status = client.get("/v1/models/broken").json()["model_version_status"]
    assert [(row["version"], row["state"]) for row in status] == [("1", "END")]
    message = status[0]["status"]["error_message"]
    assert message and "broken/1" in message
    _assert_no_server_path(json.dumps(status), base)
    # A well-formed step answers the batch it was given.
    answer = client.post("/v1/models/toy:predict", json=_step([1, 2], [[0.0] * 4] * 2))
    assert answer.status_code == 200 and len(answer.json()["outputs"]["logits"]) == 2


def _no_constant(name):
    raise AssertionError(f"bare {name} in a response")


def test_odd_version_dirs_block_nothing(client, base, caplog):
    """`²` and `v2` are skipped at start-up and while polling; new versions still load."""
    caplog.set_level(logging.INFO, logger="keras_seq.serving")
    assert client.get("/healthz").json()["models"]["toy"] == ["1"]
    (base / "toy" / "³").mkdir()  # appears while the server polls
    staging = base / "toy" / ".tmp-export-x"
    shutil.copytree(base / "toy" / "1", staging)
    os.rename(staging, base / "toy" / "3")  # the atomic way
    deadline = time.monotonic() + 30
    while client.get("/healthz").json()["models"]["toy"] != ["3", "1"]:
        assert time.monotonic() < deadline, "version 3 did not load"
        time.sleep(0.05)
    time.sleep(0.5)  # a few more scans
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "keras_seq.serving"]
    assert not [line for line in lines if line["event"] in ("poll_failed", "model_scan_failed")]
    ignored = [line["directory"] for line in lines if line["event"] == "version_dir_ignored"]
    assert ignored.count("³") == 1  # logged once, however many scans
    shutil.rmtree(base / "toy" / "3")


def test_registry_waits_for_settled_files(tmp_path, base, caplog, monkeypatch):
    """A version loads only once two scans agree, at start-up too; an empty base warns."""
    caplog.set_level(logging.INFO, logger="keras_seq.serving")
    empty = tmp_path / "empty"
    empty.mkdir()
    serving.ModelRegistry(empty, settle_seconds=0).poll(initial=True)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "keras_seq.serving"]
    about_empty = [line["event"] for line in lines if str(empty) in json.dumps(line)]
    assert about_empty == ["no_models"]

    models = tmp_path / "models"
    shutil.copytree(base / "toy" / "1", models / "toy" / "1")
    registry = serving.ModelRegistry(models, settle_seconds=0.3, warmup=False)
    extra = models / "toy" / "1" / "extra"

    def still_copying(seconds):  # the pause between the two start-up scans
        extra.write_bytes(b"x" * 1024)

    clock = types.SimpleNamespace(sleep=still_copying, perf_counter=time.perf_counter)
    monkeypatch.setattr(serving.registry, "time", clock)  # this module's clock only
    registry.poll(initial=True)
    assert registry.models() == {"toy": []}  # the listing changed between the scans
    registry.poll()  # the same listing as the second start-up scan
    assert registry.models() == {"toy": [1]}


# -- overload ---------------------------------------------------------------


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


@contextlib.contextmanager
def _sleepy_server(tmp_path):
    (tmp_path / "slow" / "1").mkdir(parents=True)
    (tmp_path / "slow" / "1" / "saved_model.pb").write_bytes(b"")
    app = serving.create_app(tmp_path, workers=1, max_queue=1, queue_timeout_ms=400,
                             request_timeout_ms=1500, poll_interval=0)
    app.state.registry.backend = _SleepBackend()
    with running_server(app) as http:
        yield http


def _sleep(client, seconds, responses, key):
    responses[key] = client.post("/v1/models/slow:predict", json={"inputs": [seconds]})


def test_overload_refusals(tmp_path):
    """A full queue: 503 at once; a long wait: 503; past the deadline: 504."""
    with _sleepy_server(tmp_path) as client:
        responses = {}
        busy = threading.Thread(target=_sleep, args=(client, 1.0, responses, "busy"))
        busy.start()  # holds the one model thread for 1 s
        time.sleep(0.2)
        waiting = threading.Thread(target=_sleep, args=(client, 0.0, responses, "waiting"))
        waiting.start()  # fills the queue of one; refused after the 400 ms queue timeout
        time.sleep(0.1)
        start = time.monotonic()
        full = client.post("/v1/models/slow:predict", json={"inputs": [0.0]})
        assert time.monotonic() - start < 0.3  # answered at once, not queued
        assert_error(full, 503, "--max-queue")
        assert full.headers["retry-after"] == "1"
        waiting.join()
        assert_error(responses["waiting"], 503, "queue timeout of 400 ms")
        assert responses["waiting"].headers["retry-after"] == "1"
        busy.join()
        assert responses["busy"].status_code == 200
        late = client.post("/v1/models/slow:predict", json={"inputs": [2.0]})
        assert_error(late, 504, "request timeout of 1500 ms")
        # The late call still holds the thread until it ends; then all is well.
        time.sleep(0.6)
        assert client.post("/v1/models/slow:predict", json={"inputs": [0.0]}).status_code == 200
        # A body that never arrives (a slow client): 408 at the request deadline.
        head, body = _raw_request(client, b"POST /v1/models/slow:predict HTTP/1.1\r\n"
                                  b"Host: x\r\nContent-Length: 100\r\n\r\n{\"inputs\"")
        assert head.startswith(b"HTTP/1.1 408") and b"did not arrive" in body, (head, body)
        assert client.get("/healthz").status_code == 200


def _raw_request(client, data):
    """Sends `data` on a raw socket; returns the response's (status line, body)."""
    with socket.create_connection((client.base_url.host, client.base_url.port), 10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


def test_overload_predicted_wait_refused_at_once():
    """With no thread free and more queued work than the queue timeout: 503 at once."""
    from concurrent.futures import ThreadPoolExecutor

    from keras_seq.serving.admission import Admission, Overloaded

    async def scenario(pool):
        gate = Admission(workers=1, max_queue=10, queue_timeout=0.1, request_timeout=5.0)
        busy = asyncio.ensure_future(gate.call("m", pool, gate.deadline(), time.sleep, 0.3))
        await asyncio.sleep(0.05)
        gate._call_seconds = 1.0  # calls have been taking a second lately
        start = time.monotonic()
        with pytest.raises(Overloaded, match="of work, past the queue timeout") as refused:
            await gate.call("m", pool, gate.deadline(), time.sleep, 0.0)
        assert time.monotonic() - start < 0.05 and refused.value.status == 503
        assert refused.value.headers == {"Retry-After": "1"}
        await busy

    with ThreadPoolExecutor(1) as pool:
        asyncio.run(scenario(pool))


# -- start-up options -------------------------------------------------------

# (label, extra argv after DIR, a fragment of the one-line error)
OPTION_REFUSALS = [
    ("--max-body-bytes -1", ["--max-body-bytes", "-1"], "argument --max-body-bytes"),
    ("--max-body-bytes 0", ["--max-body-bytes", "0"], "argument --max-body-bytes"),
    ("--max-body-bytes 1e6", ["--max-body-bytes", "1e6"], "must be an integer"),
    ("--poll-interval -1", ["--poll-interval", "-1"], "argument --poll-interval"),
    ("--poll-interval nan", ["--poll-interval", "nan"], "argument --poll-interval"),
    ("--poll-interval inf", ["--poll-interval", "inf"], "argument --poll-interval"),
    ("--max-versions 0", ["--max-versions", "0"], "argument --max-versions"),
    ("--workers 0", ["--workers", "0"], "argument --workers"),
    ("--workers 100000", ["--workers", "100000"], "argument --workers"),
    ("--port 99999", ["--port", "99999"], "argument --port"),
    ("--port 0", ["--port", "0"], "argument --port"),
    ("--port http", ["--port", "http"], "argument --port"),
    ("--max-batch 0", ["--max-batch", "0"], "argument --max-batch"),
    ("--max-string-length 0", ["--max-string-length", "0"], "argument --max-string-length"),
    ("--max-queue 0", ["--max-queue", "0"], "argument --max-queue"),
    ("--queue-timeout-ms 0", ["--queue-timeout-ms", "0"], "argument --queue-timeout-ms"),
    ("--request-timeout-ms -5", ["--request-timeout-ms", "-5"], "argument --request-timeout-ms"),
    ("--host ''", ["--host", ""], "argument --host"),
    ("unknown option", ["--max-bach", "3"], "unrecognized arguments"),
]


@pytest.mark.parametrize("label, argv, fragment", OPTION_REFUSALS,
                         ids=[row[0] for row in OPTION_REFUSALS])
def test_option_refusals(tmp_path, capsys, label, argv, fragment):
    assert serving.main([str(tmp_path), *argv], prog="keras-seq serve") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("keras-seq serve: error: ") and fragment in err[-1], err
    assert not [line for line in err if "Traceback" in line]


def test_missing_directory_refused(tmp_path, capsys):
    assert serving.main([str(tmp_path / "nope")], prog="keras-seq serve") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0], err


def _run_server(argv, seconds):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(REPO / "apps" / "serve.py"), *argv],
                          capture_output=True, text=True, env=env, timeout=seconds)


def test_startup_refusals_in_a_process(tmp_path):
    """Through apps/serve.py: a bad option, and a port already taken: exit 2, one line."""
    proc = _run_server([str(tmp_path), "--workers", "0"], 60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("apps/serve.py: error: argument")
    with free_socket() as taken:
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = _run_server([str(tmp_path), "--port", port, "--poll-interval", "0"], 60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "did not start" in lines[-1]
    events = [json.loads(line).get("event") for line in lines[:-1] if line.startswith("{")]
    assert "no_models" in events  # an empty directory starts, with one warning


def test_warm_up_calls_every_signature(base):
    registry = serving.ModelRegistry(base, settle_seconds=0)
    registry.poll(initial=True)
    version = registry.get("toy")
    assert serving.warmup.warm_up(version) == sorted(
        ["serving_default", "generate", IDS, "invert", "step"])
