"""Request batching, Prometheus metrics and graceful drain of keras_seq.serving.

Oracles: a request's answer alone (the same signature called with only its
inputs, or a server started with `batching=False`); `prometheus_client`'s
parser for the metrics text; a real server process for the drain. The
models are tiny real exports (an RNN language model and an attention
translator with beam search), exported once per session and shared with
test_export.py (`export_helpers.tiny_exports`); the ONNX graphs are checked
in a slow test. Each batched answer must equal the answer alone exactly in its
discrete outputs (ids, lengths, strings) and to float32 rounding in its
floating ones (other batch sizes round differently; see
`keras_seq.serving.batching`).
"""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import FRENCH, SOURCES, TOLERANCE, pad, tiny_exports
from prometheus_client.parser import text_string_to_metric_families
from serving_helpers import assert_error, free_socket, running_server

from keras_seq import serving
from keras_seq.serving import batching
from keras_seq.serving.backends import OnnxBackend, SavedModelBackend
from keras_seq.serving.metrics import Metrics
from keras_seq.serving.signatures import RequestError, Signature, TensorInfo

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["the cat", "a bird flew over the", "the dog ate", "mat", "the house . the cat sat on"]
# Sentences of different lengths, with words the tokenizer does not know.
SENTENCES = SOURCES + FRENCH + ["je", "nous sommes un chat . il mange", "ici zut"]
UNKNOWN = "zut alors"  # only unknown words: the model refuses it (400)
METRICS_PATH = "/monitoring/prometheus/metrics"


# --------------------------------------------------------------------------
# Unit: the Batcher over a NumPy signature (no model, no server)


def _numpy_signature(calls, reads_width=False):
    """`ids int32 [N, T]` (right-padded with 0) -> total [N], doubled [N, T], fixed [N, 2].

    Rows holding a negative id are refused, as a model refuses bad input.
    With `reads_width`, `fixed` holds the width T: a model that treats the
    pad as input.
    """
    inputs = {"ids": TensorInfo("ids", "int32", [None, None])}
    outputs = {"total": TensorInfo("total", "int32", [None]),
               "doubled": TensorInfo("doubled", "int32", [None, None]),
               "fixed": TensorInfo("fixed", "float32", [None, 2])}

    def call(arrays):
        ids = arrays["ids"]
        calls.append(ids.shape[0])
        if (ids < 0).any():
            raise RequestError(f"negative id at batch index {np.argwhere(ids < 0)[0, 0]}")
        return {"total": ids.sum(axis=1), "doubled": ids * 2,
                "fixed": np.stack([ids.sum(axis=1), (ids.shape[1] if reads_width else 1)
                                   + 0 * ids[:, 0]], 1) * 0.5}

    info = {"doc": "ids int32 [N, T] (right-padded with 0) -> ...",
            "outputs": {"total": {"shape": [None]}, "doubled": {"shape": [None, None]},
                        "fixed": {"shape": [None, 2]}}}
    return Signature("numbers", inputs, outputs, call), info


def _concurrently(function, items, threads=None):
    """[function(item)] called from one thread per item, released together."""
    barrier = threading.Barrier(len(items))

    def run(item):
        barrier.wait()
        try:
            return function(item)
        except Exception as error:  # returned, to be compared
            return error

    with concurrent.futures.ThreadPoolExecutor(threads or len(items)) as pool:
        return list(pool.map(run, items))


def test_batcher_pads_merges_splits_and_trims_back():
    calls = []
    signature, info = _numpy_signature(calls)
    plan = batching.Plan(signature, info)
    assert plan.padded == "ids" and plan.trim == {"doubled": [1]}
    batched = batching.Batcher(signature, plan, batching.BatchOptions(max_rows=8, timeout=0.2))
    rng = np.random.default_rng(0)
    requests = [rng.integers(1, 9, size=(rows, width)).astype(np.int32)
                for rows, width in [(1, 3), (2, 5), (1, 1), (3, 2), (1, 4), (2, 6)]]
    alone = [signature({"ids": ids}) for ids in requests]
    calls.clear()
    answers = _concurrently(lambda ids: batched({"ids": ids}), requests)
    for one, answer in zip(alone, answers):
        assert set(answer) == set(one)
        for name in one:
            np.testing.assert_array_equal(answer[name], one[name])
    assert sum(calls) == sum(len(r) for r in requests) and all(rows <= 8 for rows in calls)
    assert len(calls) < len(requests)  # merged


def test_batcher_answers_each_request_its_own_error_and_respects_max_rows():
    calls = []
    signature, info = _numpy_signature(calls)
    batched = batching.Batcher(signature, batching.Plan(signature, info),
                               batching.BatchOptions(max_rows=3, timeout=0.2))
    requests = [np.array([[1, 2]], np.int32), np.array([[3, -1]], np.int32),
                np.array([[4, 0]], np.int32), np.array([[5, 6], [7, 8]], np.int32),
                np.array([[1, 1, 1, 1]], np.int32)]
    answers = _concurrently(lambda ids: batched({"ids": ids}), requests)
    assert isinstance(answers[1], RequestError)
    assert str(answers[1]) == "negative id at batch index 0"  # its own row, as alone
    for ids, answer in zip(requests, answers):
        if ids.min() >= 0:
            np.testing.assert_array_equal(answer["total"], ids.sum(axis=1))
            np.testing.assert_array_equal(answer["doubled"], ids * 2)
    assert max(calls) <= 3


def test_batcher_keeps_unmergeable_requests_apart():
    calls = []
    signature, info = _numpy_signature(calls, reads_width=True)
    # Without an export.json saying the ids are padding (a model may read the
    # pad, as this one does), widths are not padded: only equal widths merge.
    plan = batching.Plan(signature, dict(info, doc="ids int32 [N, T]"))
    assert plan.padded is None and plan.reason is None
    assert "unknown size" in batching.Plan(signature, None).reason  # 'doubled' [N, ?]
    batched = batching.Batcher(signature, plan,
                               batching.BatchOptions(max_rows=16, timeout=0.2))
    requests = [np.full((1, 2 + i % 2), i + 1, np.int32) for i in range(8)]
    answers = _concurrently(lambda ids: batched({"ids": ids}), requests)
    for ids, answer in zip(requests, answers):
        np.testing.assert_array_equal(answer["fixed"][:, 1], [ids.shape[1] * 0.5])
    assert sorted(calls) == [4, 4]


@pytest.mark.parametrize("name, shape, seeded, reason", [
    ("seed", [None], False, "a seed input"),
    ("ids", None, False, "unknown rank"),
    ("ids", [None, None], True, "fixed seed"),
])
def test_plan_refuses_what_batching_would_change(name, shape, seeded, reason):
    signature = Signature("s", {name: TensorInfo(name, "int32", shape)},
                          {"lengths": TensorInfo("lengths", "int32", [None]),
                           "scores": TensorInfo("scores", "float32", [None])}, None)
    assert reason in batching.Plan(signature, None, seeded=seeded).reason


def test_install_reads_export_json_and_counts_every_call(tmp_path):
    """A seeded sampler's decoding signatures stay unbatched; the rest batch;
    every call is counted, batched or not."""
    import json

    from keras_seq.serving.signatures import Version

    calls = []
    numbers, info = _numpy_signature(calls)
    decode = Signature("generate_ids", {"prompt_ids": TensorInfo("prompt_ids", "int32",
                                                                 [None, None])},
                       {"lengths": TensorInfo("lengths", "int32", [None]),
                        "scores": TensorInfo("scores", "float32", [None])},
                       lambda a: {"lengths": a["prompt_ids"].sum(1), "scores": a["prompt_ids"]
                                  .sum(1).astype("float32")})
    (tmp_path / "assets.extra").mkdir()
    export_json = {"decoding": {"sampler": {"class_name": "RandomSampler", "config": {"seed": 7}}},
                   "signatures": {"numbers": info, "generate_ids": {
                       "doc": "prompt_ids int32 [N, T] (right-padded with 0) -> ...",
                       "outputs": {"lengths": {"shape": [None]}, "scores": {"shape": [None]}}}}}
    (tmp_path / "assets.extra" / "export.json").write_text(json.dumps(export_json))
    version = Version(3, {"numbers": numbers, "generate_ids": decode}, path=tmp_path,
                      backend="savedmodel")
    metrics = Metrics()
    unbatched = batching.install(version, "m", batching.BatchOptions(timeout=0.2), metrics)
    assert list(unbatched) == ["generate_ids"] and "fixed seed" in unbatched["generate_ids"]
    assert isinstance(version.signatures["numbers"]._call, batching.Batcher)
    ids = [np.full((1, 1 + i), 2, np.int32) for i in range(4)]
    _concurrently(lambda a: version.signature("numbers")({"ids": a}), ids)
    _concurrently(lambda a: version.signature("generate_ids")({"prompt_ids": a}), ids)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    counted = {s.labels["signature"]: s.value
               for s in families["keras_seq_serving_model_calls"].samples}
    assert counted["generate_ids"] == 4 and counted["numbers"] == len(calls) < 4
    assert {s.labels["version"] for s in families["keras_seq_serving_model_calls"].samples} == {"3"}


@pytest.mark.parametrize("text", ["[1, 2]", '{"decoding": "x", "signatures": {"numbers": 3}}',
                                  '{"signatures": {"numbers": {"outputs": {"total": 5}}}}', "{"])
def test_install_ignores_an_export_json_it_does_not_understand(tmp_path, text):
    from keras_seq.serving.signatures import Version

    signature, _ = _numpy_signature([])
    (tmp_path / "export.json").write_text(text)
    version = Version(1, {"numbers": signature}, path=tmp_path, backend="onnx")
    unbatched = batching.install(version, "m", batching.BatchOptions(), Metrics())
    assert "unknown size" in unbatched["numbers"]  # as with no export.json: not padded
    np.testing.assert_array_equal(version.signature("numbers")({"ids": np.ones((1, 2), np.int32)})
                                  ["total"], [2])


# --------------------------------------------------------------------------
# Real exports


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The session's tiny exports (export_helpers.tiny_exports, also checked by
    test_export.py): an LSTM language model and a beam-search translator."""
    shared = tiny_exports(tmp_path_factory)
    return shared["dir"], shared["lm"][1], shared["translator"][1]


def _assert_same_answer(batched, alone, where):
    """Discrete outputs identical; floating ones equal to float32 rounding."""
    assert set(batched) == set(alone), where
    for name, value in alone.items():
        got = np.asarray(batched[name])
        assert got.shape == value.shape and got.dtype == value.dtype, (where, name)
        if value.dtype.kind == "f":
            np.testing.assert_allclose(got, value, rtol=0, atol=TOLERANCE, err_msg=f"{where} {name}")
        else:
            np.testing.assert_array_equal(got, value, err_msg=f"{where} {name}")


def _id_requests(tokenizer, texts, **kwargs):
    """One request per text, and two two-row requests: right-padded id arrays."""
    rows = [tokenizer.encode([text], **kwargs)[0] for text in texts]
    return [pad([row]) for row in rows] + [pad(rows[:2]), pad(rows[-2:])]


def _call(signature, arrays):
    try:
        return signature(arrays)
    except RequestError as error:
        return error


def _check_version(version, model, requests):
    """Calls every signature with its requests, alone and then concurrently
    through the batched signatures; asserts equal answers (or errors) and
    fewer calls."""
    alone = {name: [_call(version.signatures[name], r) for r in rs]
             for name, rs in requests.items()}
    metrics = Metrics()
    batching.install(version, model, batching.BatchOptions(max_rows=64, timeout=0.25), metrics)
    for name, rs in requests.items():
        answers = _concurrently(version.signatures[name], rs)
        for i, (answer, one) in enumerate(zip(answers, alone[name])):
            if isinstance(one, Exception):  # refused alone: refused the same in a batch
                assert isinstance(answer, RequestError) and str(answer) == str(one), answer
                continue
            assert not isinstance(answer, Exception), (name, answer)
            _assert_same_answer(answer, one, f"{model}/{name} request {i}")
    calls = {s.labels["signature"]: s.value for f in text_string_to_metric_families(
        metrics.render()) for s in f.samples if s.name.endswith("model_calls_total")}
    for name, rs in requests.items():
        assert calls[name] < len(rs), (name, calls[name], len(rs))


def _step_requests(version, id_requests, state_signature):
    """`step` requests: tokens and state from the state signature, one per request."""
    requests = []
    signature = version.signatures[state_signature]
    for ids in id_requests:
        out = _call(signature, {next(iter(signature.inputs)): ids})
        if isinstance(out, Exception):
            continue
        request = {k: v for k, v in out.items() if k.startswith("state_")}
        request["tokens"] = out["start_ids"]
        requests.append(request)
    return requests


def _requests(lm, translator, tokenizer, source, text=True):
    prompts = _id_requests(tokenizer, PROMPTS)
    sources = _id_requests(source, SENTENCES + [UNKNOWN], add_eos=True)
    lm_requests = {"generate_ids": [{"prompt_ids": p} for p in prompts],
                   "initial_state": [{"prompt_ids": p} for p in prompts],
                   "step": _step_requests(lm, prompts, "initial_state")}
    tr_requests = {"translate_ids": [{"source_ids": s} for s in sources],
                   "encode": [{"source_ids": s} for s in sources],
                   # step states are [N, S, ...]: the same S merge (two widths here)
                   "step": _step_requests(translator, [s for s in sources if s.shape[1] in (5, 6)],
                                          "encode")}
    if text:
        lm_requests["generate"] = [{"prompts": np.array([p.encode()], object)} for p in PROMPTS]
        tr_requests["translate"] = [{"sentences": np.array([s.encode()], object)}
                                    for s in SENTENCES + [UNKNOWN]]
    return lm_requests, tr_requests


def test_batched_signatures_answer_as_alone_savedmodel(exports):
    base, tokenizer, source = exports
    backend = SavedModelBackend()
    lm = backend.load(1, base / "lm" / "1", None)
    translator = backend.load(1, base / "fra-eng" / "1", None)
    lm_requests, tr_requests = _requests(lm, translator, tokenizer, source)
    _check_version(lm, "lm", lm_requests)
    _check_version(translator, "fra-eng", tr_requests)


@pytest.mark.slow
def test_batched_signatures_answer_as_alone_onnx(exports):
    base, tokenizer, source = exports
    backend = OnnxBackend()
    lm = backend.load(1, sorted((base / "lm" / "onnx").glob("*.onnx")), None)
    translator = backend.load(1, sorted((base / "fra-eng" / "onnx").glob("*.onnx")), None)
    lm_requests, tr_requests = _requests(lm, translator, tokenizer, source)
    lm_requests["serving_default"] = lm_requests["generate"]  # the text graph, as on the SavedModel
    _check_version(lm, "lm", lm_requests)
    _check_version(translator, "fra-eng", tr_requests)


# --------------------------------------------------------------------------
# The server: batched vs not, metrics


@pytest.fixture(scope="module")
def servers(exports, tmp_path_factory):
    """(batched client, unbatched client) over the same exports."""
    base = tmp_path_factory.mktemp("served")  # the shared exports stay as they are
    shutil.copytree(exports[0] / "fra-eng" / "1", base / "fra-eng" / "1")
    batched = serving.create_app(base, poll_interval=0, batch_timeout_ms=50, workers=32)
    alone = serving.create_app(base, poll_interval=0, batching=False, workers=8)
    with running_server(batched) as client, running_server(alone) as client_alone:
        yield client, client_alone


def _metrics(client):
    response = client.get(METRICS_PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def _sample(metrics, name, **labels):
    return sum(value for (n, key), value in metrics.items()
               if n == name and all(dict(key).get(k) == str(v) for k, v in labels.items()))


def _translate_concurrently(client, sentences):
    def post(sentence):
        return client.post("/v1/models/fra-eng:predict",
                           json={"signature_name": "translate", "instances": [sentence]})

    return _concurrently(post, sentences)


def test_32_concurrent_requests_take_fewer_model_calls_with_alone_answers(servers):
    client, client_alone = servers
    sentences = [SENTENCES[i % len(SENTENCES)] for i in range(32)]
    labels = dict(model="fra-eng", version=1, signature="translate")
    before = _metrics(client), _metrics(client_alone)
    answers = _translate_concurrently(client, sentences)
    answers_alone = _translate_concurrently(client_alone, sentences)
    after = _metrics(client), _metrics(client_alone)
    for answer, alone in zip(answers, answers_alone):
        assert answer.status_code == 200 and alone.status_code == 200, answer.text
        (got,), (want,) = answer.json()["predictions"], alone.json()["predictions"]
        assert set(got) == set(want) == {"translations", "ids", "lengths", "scores"}
        assert [got[k] for k in ("translations", "ids", "lengths")] == \
               [want[k] for k in ("translations", "ids", "lengths")]
        assert abs(got["scores"] - want["scores"]) <= TOLERANCE
    calls, rows, requests = [
        [_sample(after[i], name, **labels) - _sample(before[i], name, **labels) for i in (0, 1)]
        for name in ("keras_seq_serving_model_calls_total", "keras_seq_serving_batch_size_sum",
                     "keras_seq_serving_requests_total")]
    assert requests == [32, 32] and rows == [32, 32]
    assert calls[1] == 32  # --no-batching: one call per request
    assert calls[0] < 32, calls  # batched
    ok = _sample(after[0], "keras_seq_serving_requests_total", status=200, transport="rest",
                 **labels)
    assert ok >= 32


def test_metrics_text_counts_errors_loads_and_queues_without_client_labels(servers):
    client, _ = servers
    assert_error(client.post("/v1/models/fra-eng:predict", json={"signature_name": "nope",
                                                                   "instances": ["a"]}), 404)
    assert_error(client.post('/v1/models/no"such:predict', json={"instances": ["a"]}), 404)
    assert_error(client.post("/v1/models/fra-eng:predict",
                             json={"signature_name": "translate", "instances": [""]}), 400)
    metrics = _metrics(client)
    names = {name for name, _ in metrics}
    for family in ("requests_total", "request_latency_seconds_bucket", "model_calls_total",
                   "batch_size_bucket", "queue_depth", "model_loads_total"):
        assert f"keras_seq_serving_{family}" in names, family
    assert _sample(metrics, "keras_seq_serving_requests_total", model="fra-eng",
                   signature="translate", status=400) >= 1
    # An unknown signature or model is counted, but under an empty label.
    assert _sample(metrics, "keras_seq_serving_requests_total", model="fra-eng", signature="",
                   status=404) >= 1
    assert _sample(metrics, "keras_seq_serving_requests_total", model="", status=404) >= 1
    assert not any('no"such' in str(key) or "nope" in str(key) for _, key in metrics)
    assert _sample(metrics, "keras_seq_serving_model_loads_total", model="fra-eng",
                   event="loaded") == 1
    assert _sample(metrics, "keras_seq_serving_queue_depth", model="fra-eng") == 0
    assert _sample(metrics, "keras_seq_serving_batch_queue_rows", model="fra-eng") == 0


def test_metrics_text_escapes_label_values():
    metrics = Metrics()
    metrics.observe_request('a"b\\c\nd', 1, "s", 200, 0.5, "grpc")
    metrics.observe_model_call("m", 2, "s", rows=3)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    (sample,) = families["keras_seq_serving_requests"].samples
    assert sample.labels["model"] == 'a"b\\c\nd' and sample.labels["transport"] == "grpc"
    buckets = {s.labels["le"]: s.value for s in families["keras_seq_serving_batch_size"].samples
               if s.name.endswith("_bucket")}
    assert buckets["2.0"] == 0 and buckets["4.0"] == 1 and buckets["+Inf"] == 1


# --------------------------------------------------------------------------
# Flags and graceful drain


@pytest.mark.parametrize("argv, message", [
    (["--batch-timeout-ms", "-1"], "argument --batch-timeout-ms: must be a number of milliseconds"),
    (["--batch-timeout-ms", "nan"], "argument --batch-timeout-ms"),
    (["--drain-timeout-ms", "1.5"], "argument --drain-timeout-ms: must be an integer"),
    (["--workers", "0"], "argument --workers"),
])
def test_operations_flags_are_range_checked_on_both_entry_points(tmp_path, argv, message):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for command in ([sys.executable, "-m", "keras_seq.serving"],
                    [sys.executable, "-m", "keras_seq.cli", "serve"]):
        result = subprocess.run(command + [str(tmp_path)] + argv, capture_output=True, text=True,
                                env=env, timeout=120)
        assert result.returncode == 2, (command, result.stderr)
        assert message in result.stderr.strip().splitlines()[-1], result.stderr


def test_serve_flags_reach_the_server():
    from keras_seq.cli import build_parser

    args = build_parser().parse_args(["serve", "d", "--no-batching", "--batch-timeout-ms", "5",
                                      "--drain-timeout-ms", "100", "--workers", "4",
                                      "--max-batch", "16", "--poll-interval", "0"])
    assert (args.batching, args.batch_timeout_ms, args.drain_timeout_ms, args.workers,
            args.max_batch, args.poll_interval, args.host) == (False, 5.0, 100, 4, 16, 0.0,
                                                               "127.0.0.1")
    with pytest.raises(ValueError, match="batch_timeout_ms"):
        serving.create_app(".", batch_timeout_ms=-1)


class _Upper(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="prompts")])
    def generate(self, prompts):
        return {"outputs": tf.strings.upper(prompts)}


@pytest.fixture(scope="module")
def upper(tmp_path_factory):
    """A base directory serving `upper`: a string signature any batch can merge."""
    base = tmp_path_factory.mktemp("upper")
    module = _Upper()
    tf.saved_model.save(module, str(base / "upper" / "1"), signatures={"generate": module.generate})
    return base


def test_a_request_waiting_for_its_batch_counts_against_its_deadline(upper):
    app = serving.create_app(upper, poll_interval=0, batch_timeout_ms=3000,
                             request_timeout_ms=300)
    with running_server(app) as client:
        started = time.monotonic()
        response = client.post("/v1/models/upper:predict",
                               json={"signature_name": "generate", "instances": ["a"]})
        assert_error(response, 504, "request timed out", "300 ms")
        assert time.monotonic() - started < 2.5


def test_sigterm_drains_the_request_in_flight(upper, tmp_path):
    base = upper
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    # A batch timeout of 1.5 s keeps a lone request in flight that long.
    command = [sys.executable, "-m", "keras_seq.serving", str(base), "--port", str(port),
               "--poll-interval", "0", "--batch-timeout-ms", "1500",
               "--drain-timeout-ms", "20000"]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(url + "/healthz").json()["models"].get("upper"):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = {"signature_name": "generate", "instances": ["the cat"]}
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, url + "/v1/models/upper:predict", json=body,
                                    timeout=60)
            with httpx.Client(base_url=url) as client:  # until it waits for its batch
                while _sample(_metrics(client), "keras_seq_serving_batch_queue_rows",
                              model="upper") < 1:
                    assert not in_flight.done(), in_flight.result().text
                    time.sleep(0.05)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(httpx.TransportError):  # no new connections
                httpx.get(url + "/healthz", timeout=5)
            response = in_flight.result()
        assert response.status_code == 200 and response.json() == {"predictions": ["THE CAT"]}
        # Drained, the server exits by the signal it got (uvicorn re-raises it).
        assert process.wait(timeout=60) == -signal.SIGTERM
        assert time.monotonic() - started < 20
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
