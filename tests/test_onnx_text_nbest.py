"""The ONNX text graph over `onnx_rnn`'s aligned core, n-best lists included.

Oracle: `ServingFunctions.text_level` run by TensorFlow (what the SavedModel's
`translate` signature runs: tokenization, `keras_seq.decoding`'s beam search
with the attention history, `<unk>` replacement by the most attended source
word, detokenization). The ONNX text graph (`onnx_text.write_text_graph`
around `onnx_rnn.build(..., aligned=True)`, what the export writes for a
covered translator) must give the same `translations` and, for a call with
`n_best`, the same `nbest_translations` (each hypothesis with its own
alignment) and `nbest_*` ids, for several per-call settings. A random-weight
model biased towards `<unk>` and EOS, so replaced words and hypotheses of
several lengths occur. (tests/test_onnx_text.py checks a trained model's
export end to end.)
"""

import numpy as np
import pytest
import tensorflow as tf

from keras_seq.decoding import BeamSearch
from keras_seq.export import onnx_rnn
from keras_seq.export import onnx_text
from keras_seq.export.onnx import make_session
from keras_seq.export.onnx import run_session
from keras_seq.export.signatures import ServingFunctions
from keras_seq.models import AttentionSeq2Seq
from keras_seq.text import EOS_ID
from keras_seq.text import UNK_ID
from keras_seq.text import WordTokenizer

SOURCES = ["le chat est là .", "un chien noir court vite", "la maison est grande !",
           "il fait froid ce matin", "nous aimons le pain frais ."]
TARGETS = ["the cat is there .", "a black dog runs fast", "the house is big !",
           "it is cold this morning", "we like fresh bread ."]
# Unknown source words (copied as written where the output is <unk>), rows of
# several lengths.
SENTENCES = ["Le Zèbre est là .", "un chien Gris court", "il fait froid", "nous aimons le "
             "pain frais ce matin", "la Maison Bleue est grande", "Bonjour chat"]
TARGET_WORDS = " ".join(TARGETS).split()
MAX_LENGTH = 9
SETTINGS = (
    {},
    dict(n_best=3),
    dict(beam_size=4, n_best=2, length_penalty=1.0, max_length=6),
)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """(ServingFunctions, its TensorFlow text function, the ONNX text session)."""
    tmp = tmp_path_factory.mktemp("nbest")
    source = WordTokenizer().fit(SOURCES)
    target = WordTokenizer(lowercase=False).fit(TARGETS)
    model = AttentionSeq2Seq(source.vocab_size, target.vocab_size, embedding_dim=8, units=8,
                             max_length=12)
    rng = np.random.default_rng(4)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 1.0, weight.shape).astype("float32"))
    bias = model.output_projection.bias
    values = bias.numpy()
    values[EOS_ID] += 2.0
    values[UNK_ID] += 3.0
    bias.assign(values)
    fns = ServingFunctions(model, MAX_LENGTH, BeamSearch(3, length_penalty=0.6),
                           unk_replace=True)
    core = tmp / "core.onnx"
    import onnx

    onnx.save(onnx_rnn.build(fns, "translate_ids", 17, aligned=True), core)
    onnx_text.write_text_graph(core, tmp / "translate.onnx", "translation", [source, target],
                               {}, unk_replace=True, max_tokens=fns.max_input)
    modules = [source.as_module(), target.as_module()]
    signature = [dict({"sentences": tf.TensorSpec([None], tf.string)},
                      **fns.settings_signature())]
    text = tf.function(lambda inputs: fns.text_level(inputs, modules), input_signature=signature)
    return fns, text, make_session(tmp / "translate.onnx", extensions=True)


def test_text_and_nbest_texts_as_the_saved_model_signature(graphs):
    fns, text, session = graphs
    defaults = {k: v["default"] for k, v in fns.settings().items()}
    dtypes = {k: v.dtype.as_numpy_dtype for k, v in fns.settings_signature().items()}
    replaced = 0
    for setting in SETTINGS:
        feed = {k: np.asarray(v, dtypes[k]) for k, v in dict(defaults, **setting).items()}
        want = text({"sentences": tf.constant(SENTENCES), **feed})
        got = run_session(session, {"sentences": np.array(SENTENCES, dtype=object), **feed})
        assert got["refusals"].tolist() == [0] * len(SENTENCES)
        texts = [t.decode() for t in want["translations"].numpy()]
        assert [str(t) for t in got["translations"]] == texts, setting
        nbest = [[t.decode() for t in row] for row in want["nbest_translations"].numpy()]
        assert got["nbest_translations"].shape == (len(SENTENCES), feed["n_best"])
        assert [[str(t) for t in row] for row in got["nbest_translations"]] == nbest, setting
        for key in ("ids", "lengths", "nbest_ids", "nbest_lengths"):
            np.testing.assert_array_equal(got[key], want[key].numpy(), err_msg=key)
        np.testing.assert_allclose(got["nbest_scores"], want["nbest_scores"].numpy(),
                                   rtol=1e-5, atol=1e-5)
        replaced += int((got["nbest_ids"] == UNK_ID).sum())
        assert "<unk>" not in " ".join(str(t) for t in got["nbest_translations"].ravel())
    # Non-trivial: <unk> outputs were replaced by source words (French, as written).
    assert replaced >= 5
    copied = {w for s in SENTENCES for w in s.split()} - set(TARGET_WORDS)
    assert copied & {w for t in texts + sum(nbest, []) for w in t.split()}
