"""Every model family exports to ONNX, float and int8, and runs in onnxruntime.

For the Transformer translator, the Transformer language model and the
recurrent language model (the attention translator has its own tests in
test_onnx_fast.py and test_onnx_text.py), one export each with
`quantize="int8"` and the quality sample, then:

- the id-level graph in onnxruntime (float) gives the SavedModel's ids and
  lengths on the same inputs: per-request greedy (`beam_size=1`) and beam
  search for the translator, greedy generation for the language models (and
  beam search for an RNN language model exported with it); oracle: the
  SavedModel signature, itself checked against the Keras model elsewhere;
- the int8 graphs exist, run, and export.json's `"int8"` holds the BLEU /
  perplexity of both precisions on the quality sample;
- the string graphs (`translate.onnx` / `generate.onnx`, word tokenizers)
  exist and give the SavedModel's text.

Tiny models (width 16, one layer), module-scope exports.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import ENGLISH, FRENCH, SOURCES, pad

from keras_seq import export
from keras_seq.decoding import BeamSearch
from keras_seq.export.onnx import make_session, run_session
from keras_seq.models import RNNLanguageModel, Transformer, TransformerLanguageModel
from keras_seq.text import EOS_ID, WordTokenizer

MAX_LENGTH = 7
LM_TEXTS = ["the cat sat on the mat .", "the dog ate the bone .",
            "a bird flew over the old house .", "my sister ate an apple ."]
PROMPTS = ["the cat", "A bird flew over", "my sister", "zebra dog"]


def _bias_eos(bias, amount):
    values = bias.numpy()
    values[EOS_ID] += amount
    bias.assign(values)


def _saved(path, signature, inputs, **settings):
    """The SavedModel's `signature` on `inputs`, with the export's settings
    updated by `settings`."""
    feeds = dict(export.decoding_settings(path, settings), **inputs)
    function = tf.saved_model.load(path).signatures[signature]
    return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in feeds.items()}).items()}


def _onnx(to, name, precision="float", extensions=False, **feeds):
    folder = to / "onnx" if precision == "float" else to / "onnx" / "int8"
    session = make_session(folder / (name + ".onnx"), threads=1, extensions=extensions)
    return run_session(session, {k: np.asarray(v) for k, v in feeds.items()})


def _export_json(to):
    return json.loads((to / "onnx" / "export.json").read_text())


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    source, target = WordTokenizer().fit(FRENCH), WordTokenizer().fit(ENGLISH)
    keras.utils.set_random_seed(5)
    model = Transformer(source.vocab_size, target.vocab_size, d_model=16, num_heads=2,
                        ff_dim=32, num_layers=1, dropout=0.0, max_length=10)
    model.compile(keras.optimizers.Adam(0.02))
    model.fit({"source": pad(source.encode(FRENCH, add_eos=True)),
               "target_in": pad(target.encode(ENGLISH, add_bos=True))},
              pad(target.encode(ENGLISH, add_eos=True)), epochs=15, batch_size=5, verbose=0)
    to = tmp_path_factory.mktemp("families") / "transformer"
    path = export.export_translator(model, source, target, to, beam_size=3,
                                    max_length=MAX_LENGTH, quantize="int8",
                                    quality_pairs=(FRENCH, ENGLISH))
    return source, to, path


def _export_language_model(root, name, model, tokenizer, strategy):
    path = export.export_language_model(model, tokenizer, root / name, max_length=MAX_LENGTH,
                                        strategy=strategy, quantize="int8",
                                        quality_texts=LM_TEXTS)
    return root / name, path


@pytest.fixture(scope="module")
def lm_tokenizer():
    return WordTokenizer().fit(LM_TEXTS)


@pytest.fixture(scope="module")
def transformer_lm(tmp_path_factory, lm_tokenizer):
    """A Transformer LM exported greedy."""
    keras.utils.set_random_seed(3)
    model = TransformerLanguageModel(lm_tokenizer.vocab_size, d_model=16, num_heads=2,
                                     ff_dim=32, num_layers=1, dropout=0.0, max_length=14)
    _bias_eos(model.head.bias, 1.0)
    return _export_language_model(tmp_path_factory.mktemp("families"), "transformer_lm",
                                  model, lm_tokenizer, "greedy")


@pytest.fixture(scope="module")
def rnn_lm(tmp_path_factory, lm_tokenizer):
    """An RNN LM exported with beam search (the onnx_rnn graph)."""
    model = RNNLanguageModel(lm_tokenizer.vocab_size, embedding_dim=8, units=16, num_layers=1,
                             stateful=False)
    model(np.ones([1, 2], np.int32))
    rng = np.random.default_rng(4)
    for weight in model.output_layer.weights:
        weight.assign(rng.normal(0, 1.5, weight.shape).astype("float32"))
    return _export_language_model(tmp_path_factory.mktemp("families"), "rnn_lm", model,
                                  lm_tokenizer, BeamSearch(3))


@pytest.mark.slow  # a Transformer export with int8 and its text graphs: ~55 s
def test_transformer_translator_ids_text_and_int8_in_onnxruntime(transformer):
    source, to, path = transformer
    source_ids = pad(source.encode(SOURCES, add_eos=True))
    lengths = set()
    for beam in (1, 3):
        settings = dict(beam_size=np.int32(beam), n_best=np.int32(1))
        saved = _saved(path, "translate_ids", {"source_ids": source_ids}, **settings)
        onnx = _onnx(to, "translate_ids", source_ids=source_ids, **settings)
        for key in ("ids", "lengths"):
            np.testing.assert_array_equal(onnx[key], saved[key], err_msg=f"beam {beam} {key}")
        np.testing.assert_allclose(onnx["scores"], saved["scores"], atol=1e-4)
        lengths |= set(saved["lengths"].tolist())
        int8 = _onnx(to, "translate_ids", "int8", source_ids=source_ids, **settings)
        assert int8["ids"].shape == saved["ids"].shape
    assert min(lengths) < MAX_LENGTH  # some hypotheses end with EOS

    info = _export_json(to)
    assert info["onnx"]["translate_ids.onnx"]["builder"] == "tf2onnx"
    assert info["int8"]["metric"] == "BLEU" and info["int8"]["sentences"] == len(FRENCH)
    assert {"float", "int8", "delta"} <= set(info["int8"])
    assert "translate.onnx" in info["int8"]["files"]
    # The string graph, float and int8: the SavedModel's text (no <unk> here).
    text = _saved(path, "translate", {"sentences": np.array(SOURCES, dtype=object)})
    for precision in ("float", "int8"):
        out = _onnx(to, "translate", precision, extensions=True,
                    sentences=np.array(SOURCES, dtype=object))
        if precision == "float":
            assert [str(t) for t in out["translations"]] == [
                t.decode() for t in text["translations"]]
        assert len(out["translations"]) == len(SOURCES)


@pytest.mark.slow  # a Transformer export with int8 and its text graphs: ~20 s
def test_transformer_language_model_ids_text_and_int8_in_onnxruntime(transformer_lm,
                                                                     lm_tokenizer):
    _check_language_model(*transformer_lm, lm_tokenizer, "tf2onnx")


def test_rnn_language_model_ids_text_and_int8_in_onnxruntime(rnn_lm, lm_tokenizer):
    _check_language_model(*rnn_lm, lm_tokenizer, "keras_seq.export.onnx_rnn")


def _check_language_model(to, path, tokenizer, builder):
    prompt_ids = pad(tokenizer.encode(PROMPTS))
    saved = _saved(path, "generate_ids", {"prompt_ids": prompt_ids})
    onnx = _onnx(to, "generate_ids", prompt_ids=prompt_ids)
    for key in ("ids", "lengths"):
        np.testing.assert_array_equal(onnx[key], saved[key], err_msg=key)
    assert len({tuple(r) for r in saved["ids"]}) > 1  # outputs depend on the prompt
    int8 = _onnx(to, "generate_ids", "int8", prompt_ids=prompt_ids)
    assert int8["ids"].shape == saved["ids"].shape

    info = _export_json(to)
    assert info["onnx"]["generate_ids.onnx"]["builder"] == builder
    assert info["int8"]["metric"] == "perplexity" and info["int8"]["texts"] == len(LM_TEXTS)
    assert info["int8"]["float"] > 1 and "delta_percent" in info["int8"]
    text = _saved(path, "generate", {"prompts": np.array(PROMPTS, dtype=object)})
    out = _onnx(to, "generate", extensions=True, prompts=np.array(PROMPTS, dtype=object))
    assert [str(t) for t in out["generated"]] == [t.decode() for t in text["generated"]]
    assert _onnx(to, "generate", "int8", extensions=True,
                 prompts=np.array(PROMPTS, dtype=object))["generated"].shape == (len(PROMPTS),)


def test_hoisting_a_loop_invariant_transpose_keeps_the_outputs():
    """`hoist_loop_transposes` (run on every tf2onnx graph): a Loop whose body
    transposes a value it passes through unchanged (tf2onnx's captured tied
    embedding) gives the same outputs with the Transpose moved before the Loop;
    a Transpose of a value that changes per step stays."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    from keras_seq.export.onnx import hoist_loop_transposes, op_summary

    def value(name, shape):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    body = helper.make_graph(
        [helper.make_node("Transpose", ["w_in"], ["w_t"], perm=[1, 0]),
         helper.make_node("MatMul", ["x_in", "w_t"], ["y"]),
         helper.make_node("Identity", ["w_in"], ["w_out"]),
         helper.make_node("Transpose", ["x_in"], ["x_t"], perm=[1, 0]),  # x changes: stays
         helper.make_node("Transpose", ["x_t"], ["x_tt"], perm=[1, 0]),
         helper.make_node("Add", ["x_tt", "x_in"], ["x_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         value("w_in", [3, 2]), value("x_in", [1, 2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         value("w_out", [3, 2]), value("x_out", [1, 2]), value("y", [1, 3])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["steps", "cond", "w", "x"], ["w_final", "x_final", "ys"],
                          body=body)],
        "outer",
        [helper.make_tensor_value_info("steps", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         value("w", [3, 2]), value("x", [1, 2])],
        [value("w_final", [3, 2]), value("x_final", [1, 2]), value("ys", [None, 1, 3])])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"steps": np.array(3, np.int64), "cond": np.array(True),
             "w": np.arange(6, dtype=np.float32).reshape(3, 2),
             "x": np.array([[1.0, -2.0]], np.float32)}

    def run(proto):
        session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        return session.run(None, feeds)

    before = run(model)
    assert hoist_loop_transposes(model) == 1
    onnx.checker.check_model(model)
    body_ops = [n.op_type for n in model.graph.node[1].attribute[0].g.node]
    assert body_ops.count("Transpose") == 2 and model.graph.node[0].op_type == "Transpose"
    assert op_summary(model.graph)["Transpose"] == 3
    for got, expected in zip(run(model), before):
        np.testing.assert_array_equal(got, expected)
