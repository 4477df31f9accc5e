"""keras_seq.export: SavedModel (TF Serving layout) + ONNX exports and parity.

Oracles: the Keras models' own `generate` (eager, through
keras_seq.decoding), the reloaded SavedModel in a fresh process where
keras_seq cannot be imported, onnxruntime, the Python tokenizers, and a
streaming client that drives `step` by hand.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import (BEAM, LM_MAX_LENGTH, LM_TEXTS, SOURCES, TR_MAX_LENGTH,
                            assert_generate_ids_matches_model, assert_parity,
                            assert_translate_matches_model, encode_sources, pad, settings,
                            tiny_exports, translator_tokenizers)

from keras_seq import export
from keras_seq import serving
from keras_seq.decoding import BeamSearch
from keras_seq.decoding import DecodeOptions
from keras_seq.decoding import Greedy
from keras_seq.decoding import RandomSampler
from keras_seq.decoding import serialize
from keras_seq.models import RNNLanguageModel
from keras_seq.pipelines import Translator
from keras_seq.text import WordTokenizer

PROMPTS = ["the cat", "A bird flew over", "my sister ate an", "zebra dog"]


def _signature_specs(function):
    _, inputs = function.structured_input_signature
    return (
        {k: (v.dtype, v.shape.as_list()) for k, v in inputs.items()},
        {k: (v.dtype, v.shape.as_list()) for k, v in function.structured_outputs.items()},
    )


def _spy_on_subprocess(monkeypatch):
    """Records what the parity subprocess reports about itself."""
    seen = []
    run = export._run_saved_model_subprocess

    def spy(*args, **kwargs):
        outputs, process = run(*args, **kwargs)
        seen.append(process)
        return outputs, process

    monkeypatch.setattr(export.parity, "_run_saved_model_subprocess", spy)
    return seen


# --------------------------------------------------------------------------
# Fixtures: one tiny model of each kind, exported once per session
# (export_helpers.tiny_exports; test_serving_batching.py serves them too).


@pytest.fixture(scope="module")
def exports_dir(tmp_path_factory):
    return tiny_exports(tmp_path_factory)["dir"]


@pytest.fixture(scope="module")
def lm_setup(tmp_path_factory):
    return tiny_exports(tmp_path_factory)["lm"]


@pytest.fixture(scope="module")
def lm_loaded(lm_setup):
    return tf.saved_model.load(lm_setup[3])


@pytest.fixture(scope="module")
def translator_setup(tmp_path_factory):
    return tiny_exports(tmp_path_factory)["translator"]


@pytest.fixture(scope="module")
def translator_loaded(translator_setup):
    return tf.saved_model.load(translator_setup[4])


# --------------------------------------------------------------------------
# Language model.


def test_lm_layout_signatures_and_onnx_graphs(lm_setup, lm_loaded):
    import onnx

    model, tokenizer, to, path = lm_setup
    assert path == os.path.join(to, "1")
    assert os.path.isfile(to / "1" / "saved_model.pb")
    assert os.path.isdir(to / "1" / "variables")
    assert not [n for n in os.listdir(to) if not (n.isdigit() or n == "onnx")]
    assert sorted(lm_loaded.signatures) == [
        "generate", "generate_ids", "initial_state", "serving_default", "step"
    ]
    V, U, L = tokenizer.vocab_size, 16, LM_MAX_LENGTH
    state = {"state_c_0": (tf.float32, [None, U]), "state_h_0": (tf.float32, [None, U])}
    lm_settings = {"temperature": (tf.float32, []), "top_k": (tf.int32, []),
                   "top_p": (tf.float32, []), "seed": (tf.int64, []),
                   "max_length": (tf.int32, [])}
    expected = {
        "generate": (
            {"prompts": (tf.string, [None]), **lm_settings},
            {"generated": (tf.string, [None]), "text": (tf.string, [None]),
             "ids": (tf.int32, [None, L]), "lengths": (tf.int32, [None]),
             "scores": (tf.float32, [None])},
        ),
        "generate_ids": (
            {"prompt_ids": (tf.int32, [None, None]), **lm_settings},
            {"ids": (tf.int32, [None, L]), "lengths": (tf.int32, [None]),
             "scores": (tf.float32, [None])},
        ),
        "initial_state": (
            {"prompt_ids": (tf.int32, [None, None])},
            {"start_ids": (tf.int32, [None]), **state},
        ),
        "step": (
            {"tokens": (tf.int32, [None]), **state},
            {"logits": (tf.float32, [None, V]),
             **{"next_" + k: v for k, v in state.items()}},
        ),
    }
    for name, specs in expected.items():
        assert _signature_specs(lm_loaded.signatures[name]) == specs, name
    inputs, outputs = expected["generate"]
    assert _signature_specs(lm_loaded.signatures["serving_default"]) == (
        {"prompts": inputs["prompts"]}, outputs
    )

    with open(to / "1" / export.EXPORT_INFO) as f:
        info = json.load(f)
    assert info["task"] == "language_model"
    assert info["state"] == [
        {"name": "state_c_0", "dtype": "float32", "shape": [None, U]},
        {"name": "state_h_0", "dtype": "float32", "shape": [None, U]},
    ]
    assert info["decoding"]["max_length"] == L
    assert info["decoding"]["strategy"] == serialize(Greedy())
    assert info["tokenizer"]["vocab_size"] == V

    # ONNX: one graph per signature, serving_default = generate (the text
    # graph, with onnxruntime-extensions string ops).
    files = sorted(os.listdir(to / "onnx"))
    assert files == [
        "export.json", "generate.onnx", "generate_ids.onnx", "initial_state.onnx",
        "serving_default.onnx", "step.onnx",
    ]
    assert (to / "onnx" / "serving_default.onnx").read_bytes() == (
        to / "onnx" / "generate.onnx"
    ).read_bytes()
    ops = info["onnx"]
    # tf2onnx: the masked LSTM prompt reader is a Loop.
    assert ops["initial_state.onnx"]["ops"]["Loop"] == 1
    assert ops["initial_state.onnx"]["builder"] == "tf2onnx"
    # A greedy export samples per request (temperature, top_k, ...), which
    # onnx_rnn does not build: tf2onnx converts generate_ids too.
    assert ops["generate_ids.onnx"]["builder"] == "tf2onnx"
    assert "Loop" not in ops["step.onnx"]["ops"]
    proto = onnx.load(str(to / "onnx" / "step.onnx"))
    assert proto.opset_import[0].version >= 17
    assert sorted(i.name for i in proto.graph.input) == ["state_c_0", "state_h_0", "tokens"]
    assert sorted(o.name for o in proto.graph.output) == [
        "logits", "next_state_c_0", "next_state_h_0"
    ]
    meta = {p.key: json.loads(p.value) for p in proto.metadata_props}
    assert meta["keras_seq.export"]["signature"] == "step"
    assert meta["keras_seq.export"]["state"] == info["state"]


def test_lm_parity_keras_saved_model_onnx(lm_setup, monkeypatch):
    model, tokenizer, to, path = lm_setup
    prompt_ids = pad(tokenizer.encode(PROMPTS[:3]))
    process = _spy_on_subprocess(monkeypatch)
    report = export.check_parity(
        model, path, prompt_ids, texts=PROMPTS, tokenizers=tokenizer
    )
    # Stock TensorFlow only: keras_seq and Keras were not importable there.
    assert process == [{"keras_seq_importable": False, "keras_needed": False}]
    assert sorted(report) == ["onnx", "saved_model"]
    assert_parity(
        report,
        equal=("generate_ids/ids", "generate_ids/lengths", "initial_state/start_ids"),
        close=("step/logits", "generate_ids/scores"),
        strings="generate/generated",
    )
    assert report["onnx"]["serving_default/ids"] == "equal"

    # Independent oracle: the model's own generate(), eagerly.
    got, expected = assert_generate_ids_matches_model(model, path, prompt_ids, LM_MAX_LENGTH)
    np.testing.assert_array_equal(got["lengths"], expected.lengths[:, 0])
    np.testing.assert_allclose(got["scores"], expected.scores[:, 0], rtol=1e-5, atol=1e-5)
    lengths = got["lengths"].numpy()
    # Non-trivial continuations: rows differ, one ends with EOS before the cut.
    assert len({tuple(r) for r in got["ids"].numpy()}) == len(prompt_ids)
    assert lengths.min() < LM_MAX_LENGTH and lengths.max() > 1


def test_lm_string_signature_round_trip(lm_setup, lm_loaded):
    model, tokenizer, _, path = lm_setup
    out = lm_loaded.signatures["generate"](prompts=tf.constant(PROMPTS), **settings(path))
    prompt_ids = tokenizer.encode(PROMPTS)  # "zebra" -> <unk>, "A" lower-cased
    expected = model.generate(pad(prompt_ids), max_length=LM_MAX_LENGTH)
    np.testing.assert_array_equal(out["ids"], expected.ids[:, 0])
    generated = [s.decode() for s in out["generated"].numpy()]
    assert generated == tokenizer.decode(expected.ids[:, 0].numpy())
    texts = [s.decode() for s in out["text"].numpy()]
    full = [p + list(g[:n]) for p, g, n in zip(
        prompt_ids, expected.ids[:, 0].numpy(), expected.lengths[:, 0].numpy())]
    assert texts == tokenizer.decode(full)
    assert texts[1].startswith("a bird flew over") and texts[3].startswith("<unk> dog")
    # serving_default is generate with the export's settings.
    default = lm_loaded.signatures["serving_default"](prompts=tf.constant(PROMPTS))
    assert default["generated"].numpy().tolist() == out["generated"].numpy().tolist()
    # An empty batch gives empty outputs.
    empty = lm_loaded.signatures["generate"](prompts=tf.constant([], tf.string), **settings(path))
    assert empty["ids"].shape == (0, LM_MAX_LENGTH) and empty["text"].shape == (0,)


def test_lm_streaming_client_over_step_matches_generate_ids(lm_loaded, lm_setup):
    """A client carrying the state: initial_state, then step, feeding
    next_state_* back as state_*, with greedy argmax in NumPy."""
    tokenizer = lm_setup[1]
    prompt_ids = pad(tokenizer.encode(PROMPTS[:3]))
    expected = lm_loaded.signatures["generate_ids"](
        prompt_ids=tf.constant(prompt_ids), **settings(lm_setup[3])
    )
    out = lm_loaded.signatures["initial_state"](prompt_ids=tf.constant(prompt_ids))
    tokens = out.pop("start_ids").numpy()
    state = {k: v.numpy() for k, v in out.items()}
    generated = []
    for _ in range(LM_MAX_LENGTH):
        out = lm_loaded.signatures["step"](tokens=tf.constant(tokens), **state)
        tokens = np.argmax(out.pop("logits").numpy(), axis=-1).astype(np.int32)
        state = {k[len("next_"):]: v.numpy() for k, v in out.items()}
        generated.append(tokens)
    generated = np.stack(generated, axis=1)
    for row, n in enumerate(expected["lengths"].numpy()):
        np.testing.assert_array_equal(generated[row, :n], expected["ids"].numpy()[row, :n])


@pytest.mark.parametrize(
    "signature,inputs,message",
    [
        ("generate", {"prompts": ["the cat", ""]},
         r"generate: prompts at batch index\] \[1\] \[are empty"),
        ("generate", {"prompts": ["   \t "]}, r"\[0\] \[are empty \(no tokens"),
        ("generate", {"prompts": ["the dog", "zebra xylophone ?"]},
         r"\[1\] \[contain only unknown tokens"),
        ("generate_ids", {"prompt_ids": [[5, 6], [0, 0]]},
         r"generate_ids: prompt_ids rows at batch index\] \[1\] \[are empty"),
        ("generate_ids", {"prompt_ids": [[1, 1, 0]]}, r"contain only unknown tokens"),
        ("generate_ids", {"prompt_ids": [[5, 999]]}, r"outside the vocabulary \[0, \d+\)"),
        ("generate_ids", {"prompt_ids": [[5, 0, 6]]}, r"are not right-padded"),
        ("initial_state", {"prompt_ids": [[0, 0]]}, r"initial_state: .*are empty"),
        ("generate_ids", {"prompt_ids": np.zeros((2, 0), np.int32)}, r"are empty"),
    ],
)
def test_lm_saved_model_rejects_bad_prompts_clearly(
    lm_setup, lm_loaded, signature, inputs, message
):
    kwargs = {
        k: tf.constant(v, tf.string if signature == "generate" else tf.int32)
        for k, v in inputs.items()
    }
    if signature != "initial_state":
        kwargs.update(settings(lm_setup[3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        lm_loaded.signatures[signature](**kwargs)


def test_lm_step_rejects_tokens_outside_vocabulary(lm_loaded):
    state = {"state_c_0": tf.zeros([1, 16]), "state_h_0": tf.zeros([1, 16])}
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"step: tokens .* outside"):
        lm_loaded.signatures["step"](tokens=tf.constant([-1]), **state)


def test_versions_and_atomic_export(lm_setup, monkeypatch):
    model, tokenizer, to, _ = lm_setup
    before = sorted(os.listdir(to))
    onnx_before = {n: (to / "onnx" / n).read_bytes() for n in os.listdir(to / "onnx")}

    # A failure after the SavedModel is written, while converting to ONNX.
    def fail(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(export.onnx, "convert", fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        export.export_language_model(model, tokenizer, to, max_length=LM_MAX_LENGTH)
    assert sorted(os.listdir(to)) == before  # no version, no temporary directory
    monkeypatch.undo()

    # The next export is version 2 (no ONNX: to/onnx/ is left alone).
    path = export.export_language_model(
        model, tokenizer, to, max_length=LM_MAX_LENGTH, onnx=False
    )
    assert path == os.path.join(to, "2")
    assert os.path.isfile(to / "2" / "saved_model.pb")
    assert sorted(os.listdir(to)) == sorted(before + ["2"])
    assert {n: (to / "onnx" / n).read_bytes() for n in os.listdir(to / "onnx")} == onnx_before
    with open(to / "2" / export.EXPORT_INFO) as f:
        info = json.load(f)
    assert info["version"] == 2 and info["onnx"] == {}
    with pytest.raises(FileExistsError, match="version 2 already exists"):
        export.export_language_model(model, tokenizer, to, version=2, onnx=False)
    # to/onnx/ still holds version 1's graphs: parity refuses to mix them up.
    with pytest.raises(ValueError, match="ONNX graphs of version 1, not of version 2"):
        export.check_parity(model, path, [[5, 6]], onnx=True)


def test_bad_export_arguments(lm_setup, translator_setup, tmp_path):
    model, tokenizer = lm_setup[:2]
    other = WordTokenizer().fit(["completely different words here"])
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        export.export_language_model(model, other, tmp_path)
    with pytest.raises(ValueError, match="max_length"):
        export.export_language_model(model, tokenizer, tmp_path, max_length=0)
    with pytest.raises(ValueError, match="version"):
        export.export_language_model(model, tokenizer, tmp_path, version=0)
    with pytest.raises(ValueError, match="sampler"):
        export.export_language_model(
            model, tokenizer, tmp_path, strategy=BeamSearch(2), sampler=RandomSampler()
        )
    with pytest.raises(TypeError, match="GenerativeModel"):
        export.export_language_model(translator_setup[0], tokenizer, tmp_path)
    translator, source, target = translator_setup[:3]
    # The contract's output limit (AttentionSeq2Seq has none; a Transformer's
    # cache holds max_length positions).
    from keras_seq.models import Transformer

    limited = Transformer(source.vocab_size, target.vocab_size, d_model=8, num_heads=1,
                          ff_dim=8, num_layers=1, max_length=10)
    with pytest.raises(ValueError, match="max_length=11 exceeds the model's limit of 10"):
        export.export_translator(limited, source, target, tmp_path, max_length=11)
    with pytest.raises(ValueError, match="vocabulary mismatch: `target_tokenizer`"):
        export.export_translator(translator, source, source, tmp_path)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------
# Translator.


def test_translator_layout_and_signatures(translator_setup, translator_loaded):
    model, source, target, to, path = translator_setup
    assert path == os.path.join(to, "1")
    assert sorted(translator_loaded.signatures) == [
        "encode", "serving_default", "step", "translate", "translate_ids"
    ]
    L, V = TR_MAX_LENGTH, target.vocab_size
    state = {
        "state_attention": (tf.float32, [None, None]),
        "state_decoder_c_0": (tf.float32, [None, 8]),
        "state_decoder_h_0": (tf.float32, [None, 8]),
        "state_encoder_outputs": (tf.float32, [None, None, 16]),
        "state_projected_keys": (tf.float32, [None, None, 8]),
        "state_source_mask": (tf.bool, [None, None]),
    }
    ids_out = {"ids": (tf.int32, [None, L]), "lengths": (tf.int32, [None]),
               "scores": (tf.float32, [None]), "nbest_ids": (tf.int32, [None, None, L]),
               "nbest_lengths": (tf.int32, [None, None]),
               "nbest_scores": (tf.float32, [None, None])}
    tr_settings = {"beam_size": (tf.int32, []), "length_penalty": (tf.float32, []),
                   "n_best": (tf.int32, []), "max_length": (tf.int32, [])}
    expected = {
        "translate": ({"sentences": (tf.string, [None]), **tr_settings},
                      {"translations": (tf.string, [None]),
                       "nbest_translations": (tf.string, [None, None]), **ids_out}),
        "translate_ids": ({"source_ids": (tf.int32, [None, None]), **tr_settings}, ids_out),
        "encode": ({"source_ids": (tf.int32, [None, None])},
                   {"start_ids": (tf.int32, [None]), **state}),
        "step": ({"tokens": (tf.int32, [None]), **state},
                 {"logits": (tf.float32, [None, V]),
                  **{"next_" + k: v for k, v in state.items()}}),
    }
    for name, specs in expected.items():
        assert _signature_specs(translator_loaded.signatures[name]) == specs, name
    default = translator_loaded.signatures["serving_default"]
    inputs, outputs = expected["translate"]
    outputs = {k: v for k, v in outputs.items() if not k.startswith("nbest_")}
    assert _signature_specs(default) == ({"sentences": inputs["sentences"]}, outputs)
    with open(to / "1" / export.EXPORT_INFO) as f:
        info = json.load(f)
    assert info["task"] == "translation"
    assert info["decoding"]["strategy"] == serialize(BEAM)
    assert [s["name"] for s in info["state"]] == sorted(state)
    assert sorted(os.listdir(to / "onnx")) == [
        "encode.onnx", "export.json", "serving_default.onnx", "step.onnx", "translate.onnx",
        "translate_ids.onnx",
    ]
    ops = info["onnx"]
    # tf2onnx: the masked bidirectional LSTM as two Loops (no ONNX LSTM op).
    assert ops["encode.onnx"]["ops"]["Loop"] == 2
    assert ops["encode.onnx"]["builder"] == "tf2onnx"
    # onnx_rnn: ONNX LSTM ops (encoder, decoder step); the beam search: one Loop.
    assert ops["translate_ids.onnx"]["builder"] == "keras_seq.export.onnx_rnn"
    assert ops["translate_ids.onnx"]["ops"]["Loop"] == 1
    assert ops["translate_ids.onnx"]["ops"]["LSTM"] == 2
    assert "Loop" not in ops["step.onnx"]["ops"]


def test_translator_parity_keras_saved_model_onnx(translator_setup, monkeypatch):
    model, source, target, to, path = translator_setup
    source_ids = encode_sources(source)
    process = _spy_on_subprocess(monkeypatch)
    report = export.check_parity(
        model, path, source_ids, texts=SOURCES, tokenizers=(source, target)
    )
    assert process == [{"keras_seq_importable": False, "keras_needed": False}]
    assert_parity(
        report,
        equal=("translate_ids/ids", "translate_ids/lengths", "encode/state_source_mask"),
        close=("step/logits", "translate_ids/scores", "encode/state_encoder_outputs"),
        strings="translate/translations",
    )
    assert report["onnx"]["serving_default/ids"] == "equal"

    # Independent oracle: the model's own beam search, eagerly.
    got = assert_translate_matches_model(model, path, source_ids, source, target,
                                         TR_MAX_LENGTH)
    assert len({tuple(r) for r in got["ids"].numpy()}) == len(SOURCES)
    lengths = got["lengths"].numpy()
    assert lengths.min() < TR_MAX_LENGTH and lengths.max() == TR_MAX_LENGTH


@pytest.mark.parametrize(
    "signature,inputs,message",
    [
        ("translate", ["je suis ici .", ""],
         r"translate: sentences at batch index\] \[1\] \[are empty"),
        ("translate", ["xyz qwerty"], r"\[0\] \[contain only unknown tokens"),
        ("translate", ["je suis ici " * 4],
         r"longer than the 10 tokens the model accepts \(EOS included\)"),
        ("translate_ids", [[4, 3], [0, 0]],
         r"source_ids rows at batch index\] \[1\] \[are empty"),
        ("encode", [[4, 3, 0, 5]], r"encode: .* not right-padded"),
    ],
)
def test_translator_saved_model_rejects_bad_sources_clearly(
    translator_setup, translator_loaded, signature, inputs, message
):
    if signature == "translate":
        kwargs = {"sentences": tf.constant(inputs)}
    else:
        kwargs = {"source_ids": tf.constant(inputs, tf.int32)}
    if signature != "encode":
        kwargs.update(settings(translator_setup[4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        translator_loaded.signatures[signature](**kwargs)


def test_keras_seq_serving_reads_both_backends(exports_dir, translator_setup, lm_setup):
    """The exports load in keras_seq.serving (SavedModel and ONNX modes)."""
    _, source, target = translator_setup[:3]
    registry = serving.ModelRegistry(exports_dir)
    registry.poll(initial=True)
    assert set(registry.models()) == {"lm", "fra-eng"}
    out = registry.get("fra-eng").signature("serving_default")(
        {"sentences": np.array([s.encode() for s in SOURCES], object)}
    )
    source_ids = encode_sources(source)
    onnx_registry = serving.ModelRegistry(exports_dir, onnx=True)
    onnx_registry.poll(initial=True)
    onnx_out = onnx_registry.get("fra-eng").signature("translate_ids")(
        {"source_ids": source_ids}
    )
    np.testing.assert_array_equal(onnx_out["ids"], out["ids"])
    # The text of keras_seq.Translator (<unk> replaced, every token but EOS).
    options = DecodeOptions(beam_size=BEAM.beam_size, length_penalty=BEAM.length_penalty)
    library = Translator(translator_setup[0], source, target, options=options)
    assert [t.decode() for t in out["translations"]] == [
        r.text for r in library.translate(SOURCES, max_length=TR_MAX_LENGTH)]
    # serving_default.onnx is the text graph, as the SavedModel's serving_default.
    onnx_text = onnx_registry.get("fra-eng").signature("serving_default")(
        {"sentences": np.array([s.encode() for s in SOURCES], object)}
    )
    assert [str(t) for t in onnx_text["translations"]] == [t.decode() for t in out["translations"]]
    with pytest.raises(serving.RequestError, match="are empty"):
        registry.get("lm").signature("generate")({"prompts": np.array([b""], object)})


# --------------------------------------------------------------------------
# Heavier variants (pytest -m slow).


@pytest.mark.slow
def test_transformer_translator_exports_with_kv_cache_state(tmp_path):
    from keras_seq.models.transformer import Transformer

    source, target = translator_tokenizers()
    keras.utils.set_random_seed(5)
    model = Transformer(
        source.vocab_size, target.vocab_size, d_model=16, num_heads=2, ff_dim=32,
        num_layers=2, dropout=0.0, max_length=12,
    )
    path = export.export_translator(
        model, source, target, tmp_path / "tf", beam_size=3, max_length=TR_MAX_LENGTH
    )
    with open(os.path.join(path, export.EXPORT_INFO)) as f:
        info = json.load(f)
    state = {s["name"]: s["shape"] for s in info["state"]}
    assert state["state_self_key_1"] == [None, 2, TR_MAX_LENGTH, 8]  # cache = max_length
    assert state["state_cross_value_0"] == [None, 2, None, 8]
    assert state["state_index"] == [None]
    source_ids = encode_sources(source)
    report = export.check_parity(
        model, path, source_ids, texts=SOURCES, tokenizers=(source, target)
    )
    assert report["onnx"]["translate_ids/ids"] == "equal"
    assert report["onnx"]["step/next_state_self_key_1"] <= 1e-5
    expected = model.generate(
        source_ids, strategy=BeamSearch(3, 0.6), max_length=TR_MAX_LENGTH
    )
    got = tf.saved_model.load(path).signatures["translate_ids"](
        source_ids=tf.constant(source_ids), **settings(path)
    )
    np.testing.assert_array_equal(got["ids"], expected.ids[:, 0])


@pytest.mark.slow
def test_seeded_sampling_gru_lm_matches_in_every_runtime(tmp_path):
    tokenizer = WordTokenizer().fit(LM_TEXTS)
    keras.utils.set_random_seed(11)
    model = RNNLanguageModel(
        tokenizer.vocab_size, embedding_dim=8, units=8, num_layers=2, cell="gru",
        stateful=False,
    )
    sampler = RandomSampler(temperature=0.8, top_k=8, top_p=0.9, seed=5)
    path = export.export_language_model(
        model, tokenizer, tmp_path / "lm", max_length=LM_MAX_LENGTH, sampler=sampler
    )
    prompt_ids = pad(tokenizer.encode(PROMPTS))
    report = export.check_parity(model, path, prompt_ids, texts=PROMPTS, tokenizers=tokenizer)
    assert report["onnx"]["generate_ids/ids"] == "equal"
    assert_generate_ids_matches_model(model, path, prompt_ids, LM_MAX_LENGTH, sampler=sampler)


@pytest.mark.slow
def test_transformer_language_model_exports(tmp_path):
    from keras_seq.models.transformer import TransformerLanguageModel

    tokenizer = WordTokenizer().fit(LM_TEXTS)
    keras.utils.set_random_seed(2)
    model = TransformerLanguageModel(
        tokenizer.vocab_size, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
        dropout=0.0, max_length=16,
    )
    path = export.export_language_model(model, tokenizer, tmp_path / "tlm", max_length=6)
    prompt_ids = pad(tokenizer.encode(PROMPTS))
    report = export.check_parity(model, path, prompt_ids)
    assert report["onnx"]["generate_ids/ids"] == "equal"
    loaded = tf.saved_model.load(path)
    # 16 positions - 6 generated + 1: prompts of at most 11 tokens.
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="longer than the 11 tokens the model accepts with max_length=6",
    ):
        loaded.signatures["serving_default"](prompts=tf.constant(["the cat " * 6]))
