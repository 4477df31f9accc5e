"""keras_seq.export.onnx_rnn: translate_ids / generate_ids built for onnxruntime.

Oracle: the traced `ServingFunctions.id_level` (what the SavedModel's
`translate_ids` / `generate_ids` runs: `keras_seq.decoding`'s beam search over `model.step`
in TensorFlow). The ONNX graph must give the same ids and lengths and the
same scores up to float rounding (best hypothesis and n-best list), for every
encoder/attention variant it covers, with the decoding settings given per call
as the signature's scalar inputs: the export's defaults, beam 1 (greedy),
beam 3 and 5, n_best, max_length below the export's and another length
penalty. tests/test_export.py checks the written export (builder recorded,
parity through `check_parity`).
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_seq.decoding import BeamSearch
from keras_seq.export import onnx_rnn
from keras_seq.export.onnx import make_session
from keras_seq.export.onnx import op_summary
from keras_seq.export.onnx import run_session
from keras_seq.export.signatures import ServingFunctions
from keras_seq.decoding import Greedy
from keras_seq.decoding import RandomSampler
from keras_seq.models import AttentionSeq2Seq
from keras_seq.models import RNNLanguageModel
from keras_seq.models import Transformer
from keras_seq.text import EOS_ID

MAX_LENGTH = 9
# Rows of several lengths (source + EOS, right-padded): exercises sequence_lens.
SOURCES = np.array(
    [
        [4, 5, 6, 7, 8, 9, EOS_ID],
        [8, 9, EOS_ID, 0, 0, 0, 0],
        [10, EOS_ID, 0, 0, 0, 0, 0],
        [11, 12, 13, 14, EOS_ID, 0, 0],
        [15, 4, 16, 17, 18, EOS_ID, 0],
        [19, 20, 21, EOS_ID, 0, 0, 0],
    ],
    np.int32,
)
EOS_BIAS = 3.0
BEAMS = (BeamSearch(1), BeamSearch(5, length_penalty=0.6))
# Per-call settings (over the export's defaults): greedy, n-best lists, a
# shorter max_length, another length penalty.
SETTINGS = (
    {},
    dict(beam_size=1),
    dict(beam_size=3, n_best=3, length_penalty=1.0),
    dict(beam_size=5, n_best=2, max_length=5),
    dict(beam_size=5, n_best=5, length_penalty=0.0, max_length=MAX_LENGTH - 1),
)
OUTPUTS = ["ids", "lengths", "nbest_ids", "nbest_lengths", "nbest_scores", "scores"]


def _randomize(model, bias, seed):
    """Random weights peaked enough to end hypotheses at various lengths (an
    EOS bias), so finished and cut hypotheses both occur."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 1.0, weight.shape).astype("float32"))
    values = bias.numpy()
    values[EOS_ID] += EOS_BIAS
    bias.assign(values)
    return model


def _model(seed, **config):
    """A small translator (random weights)."""
    model = AttentionSeq2Seq(30, 25, embedding_dim=8, units=8, max_length=10, **config)
    return _randomize(model, model.output_projection.bias, seed)


def _compare(model, strategy, inputs=(SOURCES,), name="source_ids", settings=({},),
             aligned=False):
    """Checks the graph against the traced search on each batch of `inputs`
    and each dict of per-call `settings` (with `aligned`: the text graph's
    core, against `aligned_level`); returns the lengths seen."""
    fns = ServingFunctions(model, MAX_LENGTH, strategy)
    signature = [dict(fns.id_signature()[0], **fns.settings_signature())]
    traced = tf.function(fns.aligned_level if aligned else fns.id_level,
                         input_signature=signature)
    proto = onnx_rnn.build(fns, fns.names.ids, 17, aligned=aligned)
    outputs = sorted(OUTPUTS + (["alignment", "nbest_alignment"] if aligned else []))
    assert proto is not None
    session = make_session(proto.SerializeToString(), threads=1)
    defaults = {k: v["default"] for k, v in fns.settings().items()}
    lengths = set()
    for sources in inputs:
        for setting in settings:
            feed = {k: np.asarray(v, signature[0][k].dtype.as_numpy_dtype)
                    for k, v in dict(defaults, **setting).items()}
            want = traced({name: tf.constant(sources), **feed})
            got = run_session(session, {name: sources, **feed})
            assert sorted(got) == sorted(want) == outputs
            for key in outputs:
                expected = want[key].numpy()
                assert got[key].dtype == expected.dtype and got[key].shape == expected.shape
                if key.endswith("scores"):  # -inf marks n-best padding in both
                    np.testing.assert_allclose(got[key], expected, rtol=1e-5, atol=1e-5)
                else:
                    np.testing.assert_array_equal(got[key], expected, err_msg=f"{key} {setting}")
            lengths.update(got["lengths"].tolist())
    return lengths


@pytest.mark.parametrize(
    "seed,config",
    [
        (0, dict()),  # the default: bidirectional LSTM, Bahdanau; greedy, beam 1 and 5
        (1, dict(cell="gru", num_layers=2, attention="luong-dot")),  # projection 2U -> U
        (6, dict(bidirectional=False, attention="luong-general")),
        (2, dict(cell="gru", bidirectional=False, attention="luong-concat")),
    ],
    ids=["bilstm-bahdanau", "bigru-2layers-dot", "lstm-general", "gru-concat"],
)
def test_same_ids_as_the_traced_beam_search(seed, config):
    # (Seeds where hypotheses end by EOS at several lengths and some are cut.)
    model = _model(seed, **config)
    default = not config
    # The default model: every per-call setting, an export of beam 1 too, a
    # batch of one, a source shorter than the beam, and an empty batch
    # (onnxruntime's LSTM would crash on it).
    inputs = (SOURCES, SOURCES[2:3, :2], SOURCES[:0]) if default else (SOURCES,)
    lengths = _compare(model, BEAMS[1], inputs, settings=SETTINGS if default else SETTINGS[:2])
    if default:
        lengths.update(_compare(model, BEAMS[0], inputs[:1], settings=SETTINGS[:3]))
    # The text graph's core: the alignment of every hypothesis (<unk> replacement).
    lengths.update(_compare(model, BEAMS[1], inputs[:2], settings=SETTINGS[2:4] if default
                            else SETTINGS[:1], aligned=True))
    assert min(lengths) < MAX_LENGTH and max(lengths) == MAX_LENGTH and len(lengths) >= 3


# Prompts of several lengths, one of a single token (nothing read before the
# first step: a zero state) and one of two.
PROMPTS = np.array(
    [[4, 5, 6, 7, 8], [9, 10, 0, 0, 0], [11, 0, 0, 0, 0], [12, 13, 14, 15, 0]], np.int32
)


@pytest.mark.parametrize(
    "seed,config",
    [
        (0, dict(cell="lstm", num_layers=2)),
        (3, dict(cell="gru", tie_embeddings=True, embedding_dim=6)),
        (1, dict(cell="rnn")),
    ],
    ids=["lstm-2layers", "gru-tied-projection", "simple-rnn"],
)
def test_language_model_same_ids_as_the_traced_search(seed, config):
    # A language model exported with beam search (a greedy one falls back to
    # tf2onnx: its signature samples).
    model = RNNLanguageModel(30, **{**dict(embedding_dim=8, units=8, stateful=False), **config})
    bias = model.output_bias if model.tie_embeddings else model.output_layer.bias
    _randomize(model, bias, seed)
    lengths = _compare(model, BEAMS[1], (PROMPTS, PROMPTS[:0]), name="prompt_ids",
                       settings=SETTINGS[:2])
    assert min(lengths) < MAX_LENGTH and max(lengths) == MAX_LENGTH


def _value_names(graph):
    names = [value.name for value in graph.input] + [init.name for init in graph.initializer]
    for node in graph.node:
        names.extend(node.output)
        for attribute in node.attribute:
            if attribute.g is not None and len(attribute.g.node):
                names.extend(_value_names(attribute.g))
    return names


def test_graph_layout_and_what_falls_back_to_tf2onnx():
    model = _model(seed=0)
    fns = ServingFunctions(model, MAX_LENGTH, BEAMS[1])
    proto = onnx_rnn.build(fns, "translate_ids", 17)
    # Encoder and decoder step as ONNX LSTM ops, the search as one Loop (3
    # TopKs a step, 1 at the end).
    ops = op_summary(proto.graph)
    assert ops["LSTM"] == 2 and ops["Loop"] == 1 and ops["TopK"] == 4 and "If" not in ops
    # Every value has one name in the whole graph (subgraphs included), under
    # "rnn/" but for the signature's input and outputs (merging it with
    # another graph, e.g. tokenizers, cannot clash).
    names = _value_names(proto.graph)
    assert len(names) == len(set(names))
    assert {n for n in names if not n.startswith("rnn/")} == {
        "source_ids", "beam_size", "length_penalty", "n_best", "max_length", *OUTPUTS
    }
    assert proto.opset_import[0].version == 17
    # Other signatures and uncovered models keep tf2onnx (None).
    # Greedy exports take the sampling inputs per request: tf2onnx.
    lm = RNNLanguageModel(30, embedding_dim=8, units=8, stateful=False)
    for sampler in (None, RandomSampler(0.8, seed=1)):
        sampled = ServingFunctions(lm, MAX_LENGTH, "greedy", sampler)
        assert onnx_rnn.build(sampled, "generate_ids", 17) is None
        assert "per-request inputs temperature, top_k" in onnx_rnn.supports(sampled)
    assert onnx_rnn.supports(ServingFunctions(model, MAX_LENGTH, Greedy())) is not None
    assert onnx_rnn.build(fns, "encode", 17) is None
    # The aligned core (the text graph's) is a translator's only.
    lm_beam = ServingFunctions(lm, MAX_LENGTH, BEAMS[1])
    assert onnx_rnn.build(lm_beam, "generate_ids", 17) is not None
    assert onnx_rnn.build(lm_beam, "generate_ids", 17, aligned=True) is None
    assert onnx_rnn.build(fns, "step", 17) is None
    feeding = AttentionSeq2Seq(30, 25, embedding_dim=8, units=8, input_feeding=True)
    assert onnx_rnn.supports(ServingFunctions(feeding, MAX_LENGTH, BEAMS[1])) == "input feeding"
    relu = AttentionSeq2Seq(30, 25, embedding_dim=8, units=8, bidirectional=False)
    relu.decoder_layers[0].cell.activation = tf.nn.relu
    assert "activations relu/sigmoid" in onnx_rnn.supports(ServingFunctions(relu, 5, BEAMS[1]))
    transformer = Transformer(30, 25, d_model=8, num_heads=2, ff_dim=8, num_layers=1, max_length=10)
    assert "is not an AttentionSeq2Seq or RNNLanguageModel" in onnx_rnn.supports(
        ServingFunctions(transformer, 5, BEAMS[1])
    )
