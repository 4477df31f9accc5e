"""keras_seq.export.quantize.quantize_graph: int8 weights where they pay.

On `onnx_rnn`'s beam-search graph every weight product is quantized, the
decoder step's inside the search `Loop` included (its `LSTM` becomes
`DynamicQuantizeLSTM`, its constant-weight `MatMul`s `MatMulInteger`); the
int8 graph keeps the metadata and decodes like the float one up to the
rounding of the weights. Oracle for the structure: the graphs' op types; for
the values, the float graph (ids of most rows equal, scores close). An
`LSTM` whose weights sit outside its Loop body (tf2onnx's layout), which
onnxruntime's LSTM quantizer cannot read, stays float instead of failing.
tests/test_onnx_text.py checks a trained model's export (BLEU delta in
export.json).
"""

import numpy as np
import onnx
from onnx import helper

from keras_seq.decoding import BeamSearch
from keras_seq.export import onnx_rnn
from keras_seq.export import quantize
from keras_seq.export.onnx import make_session
from keras_seq.export.onnx import op_summary
from keras_seq.export.onnx import run_session
from keras_seq.export.onnx import save
from keras_seq.export.signatures import ServingFunctions
from keras_seq.models import AttentionSeq2Seq
from keras_seq.text import EOS_ID

SOURCES = np.array([[4, 5, 6, 7, 8, 9, EOS_ID], [8, 9, EOS_ID, 0, 0, 0, 0],
                    [11, 12, 13, 14, EOS_ID, 0, 0], [15, 4, 16, 17, 18, EOS_ID, 0],
                    [19, 20, 21, EOS_ID, 0, 0, 0], [10, EOS_ID, 0, 0, 0, 0, 0]], np.int32)


def _body_ops(model):
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    return op_summary(loop.attribute[0].g)


def test_the_search_loop_is_quantized_and_decodes_like_float(tmp_path):
    model = AttentionSeq2Seq(30, 25, embedding_dim=16, units=16, max_length=10)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.5, weight.shape).astype("float32"))
    fns = ServingFunctions(model, 9, BeamSearch(5, length_penalty=0.6))
    float_path, int8_path = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    save(onnx_rnn.build(fns, "translate_ids", 17), float_path, {"signature": "translate_ids"})
    quantize.quantize_graph(float_path, int8_path)
    quantized = onnx.load(int8_path)
    body, ops = _body_ops(quantized), op_summary(quantized.graph)
    # The decoder step: LSTM, attention query and score, combination, output
    # projection; the context product (attention weights x encoder outputs,
    # no constant) stays float. The encoder too.
    assert body["DynamicQuantizeLSTM"] == 1 and body["MatMulInteger"] == 4
    assert body["MatMul"] == 1 and "LSTM" not in ops and ops["DynamicQuantizeLSTM"] == 2
    assert {p.key: p.value for p in quantized.metadata_props}["keras_seq.export"] == \
        '{"signature": "translate_ids"}'
    feed = {k: np.asarray(v["default"], v["dtype"]) for k, v in fns.settings().items()}
    feed["source_ids"] = SOURCES
    want = run_session(make_session(float_path, threads=1), feed)
    got = run_session(make_session(int8_path, threads=1), feed)
    same = [np.array_equal(a, b) for a, b in zip(got["ids"], want["ids"])]
    assert sum(same) >= 4, same
    np.testing.assert_allclose(got["scores"][same], want["scores"][same], rtol=0.05, atol=0.05)


def test_an_lstm_reading_weights_from_outside_its_loop_stays_float(tmp_path):
    T = onnx.TensorProto
    rng = np.random.default_rng(1)
    weights = [onnx.numpy_helper.from_array(rng.normal(size=[1, 16, 4]).astype("float32"), "W"),
               onnx.numpy_helper.from_array(rng.normal(size=[1, 16, 4]).astype("float32"), "R"),
               onnx.numpy_helper.from_array(rng.normal(size=[4, 3]).astype("float32"), "P")]
    body = helper.make_graph(
        [helper.make_node("LSTM", ["x_in", "W", "R"], ["y", "h"], name="inner_lstm",
                          hidden_size=4),
         helper.make_node("Squeeze", ["h", "axis"], ["h2"]),
         helper.make_node("MatMul", ["h2", "P"], ["p"], name="inner_matmul"),
         helper.make_node("Identity", ["cond"], ["cond_out"]),
         helper.make_node("Identity", ["x_in"], ["x_out"])],
        "body", [helper.make_tensor_value_info("i", T.INT64, []),
                 helper.make_tensor_value_info("cond", T.BOOL, []),
                 helper.make_tensor_value_info("x_in", T.FLOAT, [2, 1, 4])],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []),
         helper.make_tensor_value_info("x_out", T.FLOAT, [2, 1, 4]),
         helper.make_tensor_value_info("p", T.FLOAT, [1, 3])],
        initializer=[onnx.numpy_helper.from_array(np.array([0], np.int64), "axis")])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["x_final", "ps"], body=body)], "outer",
        [helper.make_tensor_value_info("x", T.FLOAT, [2, 1, 4])],
        [helper.make_tensor_value_info("ps", T.FLOAT, [None, 1, 3])],
        initializer=weights + [onnx.numpy_helper.from_array(np.array(3, np.int64), "n")])
    source, target = tmp_path / "outer.onnx", tmp_path / "int8.onnx"
    onnx.save(helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)]),
              source)
    quantize.quantize_graph(source, target)
    body_ops = _body_ops(onnx.load(target))
    assert body_ops["LSTM"] == 1 and body_ops["MatMulInteger"] == 1
    x = rng.normal(size=[2, 1, 4]).astype("float32")
    want = make_session(source).run(None, {"x": x})[0]
    np.testing.assert_allclose(make_session(target).run(None, {"x": x})[0], want, atol=0.1)
