"""Decoding settings chosen per request: export signatures, parity, serving.

One tiny translator (beam 5, length penalty 0.6, up to 7 tokens, beams up to
8) and one tiny greedy language model are exported once (SavedModel + ONNX)
and served over real HTTP by a SavedModel server and an ONNX server.
Oracles: the Keras models' own `generate` (eager `keras_seq.decoding.decode`)
with the same settings as Python values, and `check_parity`.
"""

import json

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import SOURCES, encode_sources, pad, settings, translator_tokenizers
from serving_helpers import assert_error, running_server

from keras_seq import export
from keras_seq import serving
from keras_seq.decoding import BeamSearch
from keras_seq.decoding import RandomSampler
from keras_seq.decoding import decode
from keras_seq.models import AttentionSeq2Seq
from keras_seq.models import RNNLanguageModel
from keras_seq.text import EOS_ID
from keras_seq.text import WordTokenizer

TR_LENGTH, LM_LENGTH, MAX_BEAM = 7, 8, 8
LM_TEXTS = [
    "the cat sat on the mat .",
    "the dog ate the bone .",
    "a bird flew over the old house .",
    "my sister ate an apple in the garden .",
]
PROMPTS = ["the cat", "a bird flew", "my sister ate an", "the dog"]


def _randomize(model, output_layer, seed):
    """Random weights and a raised EOS bias: rows differ and some end early."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    kernel, bias = output_layer.get_weights()
    bias[EOS_ID] += 1.0
    output_layer.set_weights([kernel, bias])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("perreq")
    source, target = translator_tokenizers()
    translator = AttentionSeq2Seq(
        source.vocab_size, target.vocab_size, embedding_dim=8, units=8, max_length=10
    )
    _randomize(translator, translator.output_projection, seed=0)
    tr_path = export.export_translator(
        translator, source, target, root / "fra", beam_size=5, length_penalty=0.6,
        max_length=TR_LENGTH, max_beam_size=MAX_BEAM,
        unk_replace=False,  # texts are the target tokenizer's decode (the oracle below)
    )
    tokenizer = WordTokenizer().fit(LM_TEXTS)
    lm = RNNLanguageModel(tokenizer.vocab_size, embedding_dim=8, units=16, num_layers=1,
                          stateful=False)
    _randomize(lm, lm.output_layer, seed=1)
    lm_path = export.export_language_model(lm, tokenizer, root / "lm", max_length=LM_LENGTH)
    return {
        "root": root, "translator": translator, "target": target, "tr_path": tr_path,
        "source_ids": encode_sources(source), "lm": lm, "tokenizer": tokenizer,
        "lm_path": lm_path, "prompt_ids": pad(tokenizer.encode(PROMPTS)),
    }


@pytest.fixture(scope="module", params=["savedmodel", "onnx"])
def server(request, exported):
    app = serving.create_app(exported["root"], onnx=request.param == "onnx", poll_interval=0,
                             warmup=False)
    with running_server(app) as client:
        def predict(model, body, status=200):
            response = client.post(f"/v1/models/{model}:predict", json=body)
            if status == 200:
                assert response.status_code == 200, response.text
                return response.json()
            return response

        yield request.param, predict


def _padded(ids, width):
    ids = np.asarray(ids)
    return np.pad(ids, [(0, 0)] * (ids.ndim - 1) + [(0, width - ids.shape[-1])])


def _ids_request(signature, ids, **chosen):
    return {"signature_name": signature, "inputs": {"source_ids" if signature.startswith(
        "translate") else "prompt_ids": ids.tolist(), **chosen}}


# --------------------------------------------------------------------------
# The library: runtime (tensor) settings decode as the Python ones.


def test_runtime_settings_decode_as_python_settings():
    rng = np.random.default_rng(0)
    table = tf.constant(rng.normal(size=(11, 11)).astype("float32") * 2)
    state = {"h": tf.constant(rng.normal(size=(3, 11)).astype("float32"))}

    def step(tokens, state):
        return tf.gather(table, tokens) + state["h"], {"h": state["h"] * 0.9}

    def run(**kwargs):
        return decode(step, state, tf.fill([3], 1), end_id=2, **kwargs)

    @tf.function
    def beam(k, alpha, r, length):
        result = run(strategy=BeamSearch(k, alpha, r), max_length=length, max_length_bound=9)
        return result.ids, result.lengths, result.scores

    for k, alpha, r, length in [(5, 0.6, 3, 9), (3, 1.0, 2, 4)]:
        expected = run(strategy=BeamSearch(k, alpha, r), max_length=length)
        ids, lengths, scores = beam(tf.constant(k), tf.constant(alpha), tf.constant(r),
                                    tf.constant(length))
        np.testing.assert_array_equal(ids, _padded(expected.ids, 9))
        np.testing.assert_array_equal(lengths, expected.lengths)
        np.testing.assert_array_equal(scores, expected.scores)

    @tf.function
    def sample(t, k, p, seed):
        return run(sampler=RandomSampler(t, k, p, seed), max_length=9, max_length_bound=9).ids

    for t, k, p, seed in [(0.8, 0, 1.0, 5), (0.5, 4, 0.8, 3)]:
        expected = run(sampler=RandomSampler(t, k or None, p if p < 1 else None, seed),
                       max_length=9)
        got = sample(tf.constant(t), tf.constant(k), tf.constant(p), tf.constant(seed, tf.int64))
        np.testing.assert_array_equal(got, expected.ids)
    # top_k 1 is greedy; seed -1 draws a fresh seed per call.
    greedy = sample(tf.constant(1.0), tf.constant(1), tf.constant(1.0), tf.constant(-1, tf.int64))
    np.testing.assert_array_equal(greedy, run(max_length=9).ids)
    with pytest.raises(tf.errors.InvalidArgumentError, match="top_p"):
        sample(tf.constant(1.0), tf.constant(0), tf.constant(1.5), tf.constant(1, tf.int64))


# --------------------------------------------------------------------------
# The export: signatures, export.json, raw SavedModel callers, parity.


def test_export_json_lists_each_setting(exported):
    with open(f"{exported['tr_path']}/{export.EXPORT_INFO}") as f:
        info = json.load(f)
    assert info["format"] == 3
    inputs = info["decoding"]["inputs"]
    assert inputs["beam_size"] == {"default": 5, "minimum": 1, "maximum": MAX_BEAM,
                                   "dtype": "int32", "description": inputs["beam_size"][
                                       "description"]}
    assert inputs["n_best"]["maximumInput"] == "beam_size"
    assert inputs["max_length"]["maximum"] == TR_LENGTH
    assert set(info["signatures"]["translate_ids"]["inputs"]) == {
        "source_ids", "beam_size", "length_penalty", "n_best", "max_length"}
    assert set(info["signatures"]["serving_default"]["inputs"]) == {"sentences"}
    lm_settings = export.decoding_settings(exported["lm_path"])
    assert {k: v.item() for k, v in lm_settings.items()} == {
        "temperature": 1.0, "top_k": 1, "top_p": 1.0, "seed": -1, "max_length": LM_LENGTH}
    with pytest.raises(ValueError, match="beam_size"):
        export.decoding_settings(exported["lm_path"], {"beam_size": 2})


def test_exports_without_settings_take_none():
    """Formats 1 and 2 (no `decoding.inputs`) and `serving_default`: nothing to fill."""
    old = {"decoding": {"max_length": 7, "strategy": "greedy", "sampler": None}}
    assert export.decoding_settings(old) == {}
    assert serving.codec.optional_inputs(old["decoding"], ["source_ids"]) == {}
    entries = {"beam_size": {"dtype": "int32", "default": 5, "minimum": 1, "maximum": 8}}
    assert serving.codec.optional_inputs({"inputs": entries}, ["sentences"]) == {}
    optional = serving.codec.optional_inputs({"inputs": entries}, ["source_ids", "beam_size"])
    filled = serving.codec.fill_defaults({"source_ids": np.ones((1, 2), np.int32)}, optional)
    assert filled["beam_size"].dtype == np.int32 and filled["beam_size"].shape == ()


def test_raw_saved_model_callers_get_named_asserts(exported):
    loaded = tf.saved_model.load(exported["tr_path"])
    call = loaded.signatures["translate_ids"]
    ids = tf.constant(exported["source_ids"])
    for chosen, message in [({"beam_size": 0}, "beam_size"), ({"beam_size": 9}, "beam_size"),
                            ({"n_best": 6}, "num_return"), ({"max_length": 8}, "max_length"),
                            ({"length_penalty": -1.0}, "length_penalty")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            call(source_ids=ids, **settings(exported["tr_path"], **chosen))
    lm = tf.saved_model.load(exported["lm_path"]).signatures["generate_ids"]
    prompts = tf.constant(exported["prompt_ids"])
    for chosen, message in [({"top_p": 1.5}, "top_p"), ({"temperature": 0.0}, "temperature"),
                            ({"top_k": -1}, "top_k"), ({"seed": -2}, "seed")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            lm(prompt_ids=prompts, **settings(exported["lm_path"], **chosen))


@pytest.mark.slow  # ~12 s; test_onnx_fast checks the same settings graph by graph
def test_parity_with_beam_1_and_5_per_call(exported):
    report = export.check_parity(
        exported["translator"], exported["tr_path"], exported["source_ids"],
        settings=[{"beam_size": 1}, {"beam_size": 5, "n_best": 3}],
    )
    for backend in ("saved_model", "onnx"):
        for label in ("beam_size=1", "beam_size=5,n_best=3"):
            for output in ("ids", "lengths", "nbest_ids"):
                assert report[backend][f"translate_ids@{label}/{output}"] == "equal"
            assert report[backend][f"translate_ids@{label}/nbest_scores"] <= 1e-5


# --------------------------------------------------------------------------
# Serving, both backends, over HTTP.


def test_translator_beam_settings_per_request(exported, server):
    backend, predict = server
    model, ids = exported["translator"], exported["source_ids"]

    def oracle(strategy, length=TR_LENGTH):
        return model.generate(ids, strategy=strategy, max_length=length)

    default = predict("fra", _ids_request("translate_ids", ids))["outputs"]
    assert sorted(default) == ["ids", "lengths", "scores"]  # unchanged by default
    expected = oracle(BeamSearch(5, 0.6))
    np.testing.assert_array_equal(default["ids"], expected.ids[:, 0])
    five = predict("fra", _ids_request("translate_ids", ids, beam_size=5))["outputs"]
    assert five == default

    greedy = predict("fra", _ids_request("translate_ids", ids, beam_size=1))["outputs"]
    np.testing.assert_array_equal(greedy["ids"], oracle("greedy").ids[:, 0])
    np.testing.assert_array_equal(greedy["lengths"], oracle("greedy").lengths[:, 0])

    out = predict("fra", _ids_request("translate_ids", ids, beam_size=3, n_best=3,
                                      length_penalty=0.0, max_length=5))["outputs"]
    expected = oracle(BeamSearch(3, 0.0, 3), length=5)
    np.testing.assert_array_equal(out["nbest_ids"], _padded(expected.ids, TR_LENGTH))
    np.testing.assert_array_equal(out["nbest_lengths"], expected.lengths)
    np.testing.assert_allclose(out["nbest_scores"], expected.scores, atol=1e-5)
    np.testing.assert_array_equal(out["ids"], _padded(expected.ids[:, 0], TR_LENGTH))
    assert max(out["lengths"]) <= 5

    if backend == "savedmodel":  # the text signature (ONNX has none)
        body = {"signature_name": "translate", "inputs": {"sentences": SOURCES, "n_best": 2}}
        text = predict("fra", body)["outputs"]
        target = exported["target"]
        assert text["translations"] == target.decode(oracle(BeamSearch(5, 0.6)).ids[:, 0])
        assert [row[0] for row in text["nbest_translations"]] == text["translations"]
        plain = predict("fra", {"instances": SOURCES})["predictions"]
        assert [p["translations"] for p in plain] == text["translations"]


def test_lm_sampling_settings_per_request(exported, server):
    backend, predict = server
    lm, prompts = exported["lm"], exported["prompt_ids"]

    def ask(**chosen):
        return predict("lm", _ids_request("generate_ids", prompts, **chosen))["outputs"]["ids"]

    greedy = lm.generate(prompts, max_length=LM_LENGTH).ids[:, 0]
    np.testing.assert_array_equal(ask(), greedy)
    chosen = {"temperature": 1.5, "top_k": 6, "seed": 3}
    first, again = ask(**chosen), ask(**chosen)
    assert first == again
    expected = lm.generate(prompts, max_length=LM_LENGTH, sampler=RandomSampler(1.5, 6, seed=3))
    np.testing.assert_array_equal(first, expected.ids[:, 0])
    assert ask(temperature=1.5, top_k=6, seed=4) != first
    # Sampling settings without top_k sample from every token (not greedy).
    unfiltered = ask(temperature=1.5, top_p=0.95, seed=3, max_length=4)
    expected = lm.generate(prompts, max_length=4, sampler=RandomSampler(1.5, top_p=0.95, seed=3))
    np.testing.assert_array_equal(unfiltered, _padded(expected.ids[:, 0], LM_LENGTH))
    if backend == "savedmodel":
        body = {"signature_name": "generate", "inputs": {"prompts": PROMPTS, **chosen}}
        text = predict("lm", body)["outputs"]["generated"]
        assert text == predict("lm", body)["outputs"]["generated"]
        assert text == exported["tokenizer"].decode(np.asarray(first))


TR_REFUSALS = [
    ({"beam_size": 0}, "input 'beam_size': 0 is out of range: must be in [1, 8]"),
    ({"beam_size": 9}, "input 'beam_size': 9 is out of range"),
    ({"n_best": 6}, "input 'n_best': 6 is out of range: must be at most beam_size (5)"),
    ({"beam_size": 2, "n_best": 3}, "input 'n_best'"),
    ({"length_penalty": -0.5}, "input 'length_penalty': -0.5 is out of range"),
    ({"max_length": 8}, "input 'max_length': 8 is out of range: must be in [1, 7]"),
    ({"max_length": 0}, "input 'max_length'"),
    ({"beam_size": 1.5}, "input 'beam_size': expected an integer"),
    ({"beam_size": [2]}, "input 'beam_size': expected a value of rank 0"),
    ({"beam_size": "2"}, "input 'beam_size': expected an integer"),
]
LM_REFUSALS = [
    ({"top_p": 1.5}, "input 'top_p': 1.5 is out of range: must be in (0.0, 1.0]"),
    ({"top_p": 0}, "input 'top_p'"),
    ({"top_k": -1}, "input 'top_k': -1 is out of range"),
    ({"temperature": 0}, "input 'temperature': 0.0 is out of range"),
    ({"temperature": -1.0}, "input 'temperature'"),
    ({"seed": -2}, "input 'seed'"),
    ({"max_length": 9}, "input 'max_length': 9 is out of range: must be in [1, 8]"),
    ({"seed": 2**64}, "input 'seed'"),
]


def test_bad_settings_refused_with_400(exported, server):
    _, predict = server
    for model, signature, ids, cases in [
        ("fra", "translate_ids", exported["source_ids"], TR_REFUSALS),
        ("lm", "generate_ids", exported["prompt_ids"], LM_REFUSALS),
    ]:
        for chosen, message in cases:
            response = predict(model, _ids_request(signature, ids, **chosen), status=400)
            assert_error(response, 400, message)
    row = {"signature_name": "translate_ids",
           "instances": [{"source_ids": [4, 3], "beam_size": 2}]}
    assert_error(predict("fra", row, status=400), 400, "input 'beam_size' is a per-request")


# --------------------------------------------------------------------------
# gRPC: the same settings as optional inputs of a TF Serving Predict.


def test_grpc_predict_takes_the_settings_as_optional_inputs(exported):
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    app = serving.create_app(exported["root"], poll_interval=0, warmup=False, grpc_port=0)
    with running_server(app) as client:
        channel = grpc.insecure_channel(f"127.0.0.1:{app.state.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def predict(**chosen):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "fra"
            request.model_spec.signature_name = "translate_ids"
            request.inputs["source_ids"].CopyFrom(tf.make_tensor_proto(exported["source_ids"]))
            for name, value in chosen.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            return stub.Predict(request, timeout=60)

        for chosen in ({}, {"beam_size": np.int32(1)}):  # omitted: the export's beam 5
            answer = predict(**chosen)
            rest = client.post("/v1/models/fra:predict", json=_ids_request(
                "translate_ids", exported["source_ids"],
                **{k: int(v) for k, v in chosen.items()})).json()["outputs"]
            np.testing.assert_array_equal(tf.make_ndarray(answer.outputs["ids"]), rest["ids"])
        with pytest.raises(grpc.RpcError) as caught:
            predict(beam_size=np.int32(0))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "beam_size" in caught.value.details()
        channel.close()
