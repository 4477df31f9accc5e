"""One text wherever a translator is served: `ks.Translator` (= `keras-seq
translate`), the SavedModel's `translate` and the ONNX text graph
(`onnx/translate.onnx`, onnxruntime-extensions string ops), on held-out
sentences of the bundled pairs, with a tiny trained translator whose small
target vocabulary makes it write `<unk>` (replaced by the attended source
word). Also `keras-seq serve --onnx` answering the README's string request,
and the word-level language model's `generate.onnx`.
"""

import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import tensorflow as tf

import keras_seq as ks
from keras_seq import export, serving
from keras_seq.export import onnx_text
from keras_seq.export.onnx import make_session, run_session
from keras_seq.models import RNNLanguageModel
from keras_seq.text import UNK_ID, WordTokenizer

from serving_helpers import running_server

MAX_LENGTH = 16
SENTENCES = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny translator run and its export (SavedModel + ONNX)."""
    base = tmp_path_factory.mktemp("onnxstr")
    recipe = ks.TranslatorRecipe(units=32, embedding_dim=32, max_length=12,
                                 target_vocab_size=60, beam_size=3).with_training(
        epochs=10, batch_size=32, verbose=0)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        ks.train_translator(recipe, str(base / "run"), max_pairs=700)
    translator = ks.Translator.from_run(str(base / "run"))
    path, _ = translator.export(base / "exported" / "fra-eng", max_length=MAX_LENGTH,
                                parity_sentences=[], quantize="int8")
    encoded, _ = translator.prepare([s for s, _ in translator.split("test")])
    sentences = [s for (s, _), row in zip(translator.split("test"), encoded)
                 if row is not None and any(t != UNK_ID for t in row[:-1])][:SENTENCES]
    return translator, base / "exported" / "fra-eng", path, sentences


def _onnx_text(path, sentences, output="translations"):
    session = make_session(path, extensions=True)
    out = run_session(session, {"sentences" if output == "translations" else "prompts":
                                np.array(sentences, dtype=object)})
    return [str(t) for t in out[output]], out


def _echo_text_graph(tmp_path, tokenizer, prompts):
    """The outputs of the generation text graph of `tokenizer` over a stand-in
    core that echoes the prompt ids as the generated ids."""
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["prompt_ids"], ["ids"]),
         helper.make_node("ReduceSum", ["one"], ["lengths"], keepdims=0),
         helper.make_node("Cast", ["prompt_ids"], ["scores"], to=1)],
        "echo", [helper.make_tensor_value_info("prompt_ids", onnx.TensorProto.INT32, [None, None])],
        [helper.make_tensor_value_info("ids", onnx.TensorProto.INT32, [None, None]),
         helper.make_tensor_value_info("lengths", onnx.TensorProto.INT32, [None]),
         helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [None, None])],
        initializer=[onnx.numpy_helper.from_array(np.ones([1], np.int32), "one")],
    )
    core = str(tmp_path / "core.onnx")
    onnx.save(helper.make_model(graph, ir_version=8,
                                opset_imports=[helper.make_opsetid("", 17)]), core)
    onnx_text.write_text_graph(core, str(tmp_path / "g.onnx"), "language_model",
                               [tokenizer], {"doc": ""})
    session = make_session(str(tmp_path / "g.onnx"), extensions=True)
    return run_session(session, {"prompts": np.array(prompts, dtype=object)})


def test_text_graph_splits_elisions_as_the_tokenizer_does(tmp_path):
    sentences = ["L'homme qu'il voit, c'est-à-dire l'école jusqu'à aujourd'hui.",
                 "Don't say I'm Tom's d'Artagnan."]
    tokenizer = WordTokenizer(lowercase=False, split_elisions=True).fit(sentences)
    out = _echo_text_graph(tmp_path, tokenizer, sentences)
    expected = tokenizer.encode(sentences)
    assert [[i for i in row if i] for row in out["ids"].tolist()] == expected
    generated = [t.decode() if isinstance(t, bytes) else str(t) for t in out["generated"]]
    assert generated == sentences == tokenizer.decode(expected)


@pytest.mark.slow
def test_translator_text_is_one_text_in_every_runtime(trained):
    translator, to, path, sentences = trained
    assert len(sentences) >= 30
    results = translator.translate(sentences, max_length=MAX_LENGTH)
    library = [r.text for r in results]
    translate = tf.saved_model.load(path).signatures["translate"]
    settings = export.decoding_settings(path)  # the export's defaults, fed explicitly
    saved = [t.decode() for t in translate(sentences=tf.constant(sentences),
                                           **settings)["translations"].numpy()]
    onnx, out = _onnx_text(to / "onnx" / "translate.onnx", sentences)
    assert saved == library
    assert onnx == saved
    # Non-trivial: the model writes <unk>, replaced by source words.
    assert (out["ids"] == UNK_ID).any()
    assert "<unk>" not in " ".join(onnx)
    # n-best lists: each hypothesis with its own <unk> replacement, in both.
    nbest = export.decoding_settings(path, {"n_best": 3})
    want = translate(sentences=tf.constant(sentences), **nbest)["nbest_translations"].numpy()
    session = make_session(to / "onnx" / "translate.onnx", extensions=True)
    got = run_session(session, {"sentences": np.array(sentences, dtype=object), **nbest})
    assert got["nbest_translations"].shape == (len(sentences), 3)
    assert [[str(t) for t in row] for row in got["nbest_translations"]] == \
        [[t.decode() for t in row] for row in want]
    assert [str(row[0]) for row in got["nbest_translations"]] == \
        [str(t) for t in got["translations"]]
    plain = ks.Translator(translator.model, translator.source_tokenizer,
                          translator.target_tokenizer, options=translator.options,
                          unk_replace=False)
    unreplaced = [r.text for r in plain.translate(sentences, max_length=MAX_LENGTH)]
    assert any("<unk>" in t for t in unreplaced) and unreplaced != library


@pytest.mark.slow
def test_export_json_marks_the_text_graph_and_the_int8_cost(trained):
    translator, to, _, sentences = trained
    data = json.loads((to / "onnx" / "export.json").read_text())
    assert data["onnx"]["translate.onnx"]["extensions"] is True
    # The text graph runs onnx_rnn's search (with the alignment), not tf2onnx's.
    assert data["onnx"]["translate.onnx"]["core_builder"] == "keras_seq.export.onnx_rnn"
    assert data["onnx"]["serving_default.onnx"]["copy_of"] == "translate.onnx"
    assert "translate_ids.onnx" in data["onnx"] and "extensions" not in data["onnx"]["translate_ids.onnx"]
    int8 = data["int8"]
    assert int8["metric"] == "BLEU" and int8["sentences"] == min(200, len(translator.split("valid")))
    assert int8["delta"] == pytest.approx(int8["int8"] - int8["float"], abs=0.011)
    assert sorted(int8["files"]) == sorted(
        ["encode.onnx", "serving_default.onnx", "step.onnx", "translate.onnx", "translate_ids.onnx"])
    # The int8 text graph answers, and quantized MatMuls are in it.
    texts, _ = _onnx_text(to / "onnx" / "int8" / "translate.onnx", sentences[:5])
    assert len(texts) == 5 and all(isinstance(t, str) for t in texts)
    import onnx

    ops = {n.op_type for n in onnx.load(to / "onnx" / "int8" / "translate_ids.onnx").graph.node}
    assert "DynamicQuantizeLinear" in ops or "DynamicQuantizeMatMul" in ops or "MatMulInteger" in ops


@pytest.mark.slow
def test_serve_onnx_answers_the_readme_request(trained):
    translator, to, path, sentences = trained
    app = serving.create_app(to.parent, onnx=True)
    with running_server(app) as client:
        response = client.post("/v1/models/fra-eng:predict",
                               json={"signature_name": "translate", "instances": ["How are you?"]})
        assert response.status_code == 200, response.text
        got = response.json()["predictions"][0]["translations"]
        response = client.post("/v1/models/fra-eng:predict",
                               json={"instances": sentences[:3]})
        assert response.status_code == 200, response.text
        default = [p["translations"] for p in response.json()["predictions"]]
    expected = [r.text for r in translator.translate(["How are you?"] + sentences[:3],
                                                     max_length=MAX_LENGTH)]
    assert [got] + default == expected
    int8 = _onnx_text(to / "onnx" / "int8" / "translate.onnx", ["How are you?"])[0]
    app = serving.create_app(to.parent, onnx=True, precision="int8")
    with running_server(app) as client:
        response = client.post("/v1/models/fra-eng:predict",
                               json={"signature_name": "translate", "instances": ["How are you?"]})
        assert response.status_code == 200, response.text
        assert [response.json()["predictions"][0]["translations"]] == int8


def test_lowercasing_follows_tensorflow(tmp_path):
    words = ["Ça", "ÉTÉ", "İstanbul", "ΣΑΣ", "ΟΔΟΣ.", "ǅemal", "ÀÉÎÕÜ", "Straße", "ǈ", "ＡＢＣ"]
    lowered = [w.decode() for w in tf.strings.lower(words, encoding="utf-8").numpy()]
    tokenizer = WordTokenizer().fit(lowered)
    out = _echo_text_graph(tmp_path, tokenizer, [" ".join(words)])
    expected = tokenizer.encode([" ".join(words)])[0]
    assert out["ids"][0].tolist() == expected
    assert UNK_ID not in expected


@pytest.mark.slow
def test_language_model_generate_graph_matches_saved_model(tmp_path):
    texts = ["The cat sat on the mat .", "A dog ran to the cat !", "It was a cold day ."]
    tokenizer = WordTokenizer().fit(texts)
    model = RNNLanguageModel(tokenizer.vocab_size, embedding_dim=8, units=16, num_layers=1,
                             stateful=False)
    model(np.ones([1, 2], np.int32))
    rng = np.random.RandomState(3)
    for weight in model.output_layer.weights:
        weight.assign(rng.normal(0, 1.5, weight.shape))
    path = export.export_language_model(model, tokenizer, tmp_path / "lm", max_length=8,
                                        quantize="int8", quality_texts=texts)
    prompts = ["The Cat", "a DOG ran", "It was a zebra", "cold !"]
    got = tf.saved_model.load(path).signatures["generate"](prompts=tf.constant(prompts),
                                                           **export.decoding_settings(path))
    onnx, out = _onnx_text(tmp_path / "lm" / "onnx" / "generate.onnx", prompts, "generated")
    assert onnx == [t.decode() for t in got["generated"].numpy()]
    assert [str(t) for t in out["text"]] == [t.decode() for t in got["text"].numpy()]
    np.testing.assert_array_equal(out["ids"], got["ids"])
    int8 = json.loads((tmp_path / "lm" / "onnx" / "export.json").read_text())["int8"]
    rows = tokenizer.encode(texts)
    assert int8["metric"] == "perplexity" and int8["texts"] == 3
    assert int8["tokens"] == sum(len(r) for r in rows)
    # The float perplexity is the Keras model's own, stepping from BOS.
    nll = 0.0
    for row in rows:
        state, start = model.start(np.full([1, 1], 2, np.int32), 8)
        previous = start
        for token in row:
            logits, state = model.step(previous, state)
            nll -= float(tf.nn.log_softmax(logits)[0, token])
            previous = tf.constant([token], tf.int32)
    assert int8["float"] == pytest.approx(np.exp(nll / int8["tokens"]), rel=1e-3)
    assert abs(int8["delta_percent"]) < 50
    assert _onnx_text(tmp_path / "lm" / "onnx" / "int8" / "generate.onnx", prompts, "generated")[0]


def test_precision_and_quantize_flags_are_checked(tmp_path, capsys):
    from keras_seq import cli

    assert cli.main(["serve", str(tmp_path), "--precision", "int8"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "keras-seq: error: --precision int8 serves ONNX graphs: add --onnx")
    with pytest.raises(ValueError, match="precision must be one of"):
        serving.ModelRegistry(tmp_path, precision="int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        serving.ModelRegistry(tmp_path, onnx=True, precision="int4")
    assert cli.main(["serve", str(tmp_path), "--onnx", "--precision", "int4"]) == 2
    assert "invalid choice: 'int4'" in capsys.readouterr().err


def _copy_core(path):
    """A stand-in translation core: ids = source_ids, alignment = position."""
    import onnx
    from onnx import helper

    T = onnx.TensorProto
    ints = {"one": [1], "two": [2], "zero": [0]}
    init = [onnx.numpy_helper.from_array(np.array(v, np.int64), k) for k, v in ints.items()]
    init += [onnx.numpy_helper.from_array(np.array(v, np.int64), k)
             for k, v in (("z", 0), ("o", 1))]
    node = helper.make_node
    graph = helper.make_graph(
        [node("Identity", ["source_ids"], ["ids"]), node("Shape", ["source_ids"], ["shape"]),
         node("Slice", ["shape", "one", "two"], ["w"]), node("Slice", ["shape", "zero", "one"], ["n"]),
         node("Cast", ["w"], ["w32"], to=6), node("Squeeze", ["w32", "zero"], ["width"]),
         node("Expand", ["width", "n"], ["lengths"]),
         node("Cast", ["source_ids"], ["scores"], to=1),
         node("Squeeze", ["w", "zero"], ["ws"]), node("Range", ["z", "ws", "o"], ["r"]),
         node("Cast", ["r"], ["r32"], to=6), node("Unsqueeze", ["r32", "zero"], ["row"]),
         node("Concat", ["n", "one"], ["tiles"], axis=0),
         node("Tile", ["row", "tiles"], ["alignment"])],
        "copy", [helper.make_tensor_value_info("source_ids", T.INT32, [None, None])],
        [helper.make_tensor_value_info("ids", T.INT32, [None, None]),
         helper.make_tensor_value_info("lengths", T.INT32, [None]),
         helper.make_tensor_value_info("scores", T.FLOAT, [None, None]),
         helper.make_tensor_value_info("alignment", T.INT32, [None, None])],
        initializer=init,
    )
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]),
              path)


def test_text_graph_refuses_what_the_saved_model_refuses(tmp_path):
    """Rows the SavedModel's assertions refuse come out in `refusals`, and the
    ONNX server answers them with the same message (a 400)."""
    source = WordTokenizer().fit(["le chat est là ."])
    target = WordTokenizer().fit(["the cat is there ."])
    _copy_core(tmp_path / "core.onnx")
    graphs = tmp_path / "m" / "onnx"
    graphs.mkdir(parents=True)
    onnx_text.write_text_graph(tmp_path / "core.onnx", graphs / "translate.onnx", "translation",
                               [source, target], {}, unk_replace=True, max_tokens=5)
    session = make_session(graphs / "translate.onnx", extensions=True)
    sentences = ["Le Zèbre est là", "  ", "xyz qwerty", "le chat est là . .", "le chat"]
    out = run_session(session, {"sentences": np.array(sentences, dtype=object)})
    assert out["refusals"].tolist() == [0, 1, 2, 3, 0]
    # The copy core writes the source ids: <unk> takes the source word as written.
    assert str(out["translations"][0]).split()[1] == "Zèbre"
    messages = onnx_text.refusal_messages("translate", "sentences", 5)
    (graphs / "export.json").write_text(json.dumps(
        {"onnx": {"translate.onnx": {"extensions": True, "refusals": messages}}}))
    registry = serving.ModelRegistry(tmp_path, onnx=True)
    registry.poll(initial=True)
    translate = registry.get("m").signature("translate")
    assert "refusals" not in translate.outputs
    with pytest.raises(serving.RequestError, match=r"translate: sentences at batch index "
                                                   r"\[0\] are empty"):
        translate({"sentences": np.array([b"", b"le chat"], dtype=object)})
    with pytest.raises(serving.RequestError, match=r"\[1\] contain only unknown tokens"):
        translate({"sentences": np.array([b"le chat", b"xyz"], dtype=object)})
    assert set(translate({"sentences": np.array([b"le chat"], dtype=object)})) == {
        "translations", "ids", "lengths", "scores"}
