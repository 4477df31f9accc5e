"""What the export tests share (tests/test_export.py, tests/test_transformer_export.py,
tests/test_serving_batching.py).

`tiny_exports(factory)`: one tiny recurrent language model and one tiny
attention translator, exported (SavedModel + ONNX) once per test session;
test_export.py checks them, test_serving_batching.py serves them.

The translator corpus and the sentences it is asked to translate, the beam
search the translators are exported with, padding of id rows, and the parity
checks every exported model goes through:

- `assert_parity`: the report of `keras_seq.export.check_parity` (Keras eager
  vs the SavedModel in a fresh process vs onnxruntime) says "equal" for the
  discrete outputs and a difference of at most 1e-5 for the floating ones;
- `assert_translate_matches_model` / `assert_generate_ids_matches_model`:
  the reloaded SavedModel gives what the Keras model's own (eager) beam search
  or `generate` gives, an oracle independent of `check_parity`.
"""

import numpy as np
import tensorflow as tf

from keras_seq import export
from keras_seq.decoding import BeamSearch
from keras_seq.decoding import DecodeOptions
from keras_seq.pipelines import Translator
from keras_seq.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from keras_seq.text import WordTokenizer

FRENCH = [
    "je suis un chat .",
    "il mange une pomme .",
    "nous sommes ici .",
    "elle a un chien .",
    "tu es mon ami !",
]
ENGLISH = [
    "i am a cat .",
    "he eats an apple .",
    "we are here .",
    "she has a dog .",
    "you are my friend !",
]
SOURCES = ["je suis ici .", "Il a un chien !", "tu es un chat", "nous sommes mon ami ."]
LM_TEXTS = [
    "the cat sat on the mat .",
    "the dog ate the bone .",
    "a bird flew over the old house .",
    "the cat saw a dog and a bird !",
    "my sister ate an apple in the garden .",
]
LM_MAX_LENGTH = 8
TR_MAX_LENGTH = 7
BEAM = BeamSearch(3, length_penalty=0.6)
TOLERANCE = 1e-5  # largest difference of a floating output that parity accepts


def pad(rows):
    """Right-padded int32 matrix of the id lists `rows`."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def encode_sources(source):
    """SOURCES as source ids (EOS appended, right-padded)."""
    return pad(source.encode(SOURCES, add_eos=True))


def translator_tokenizers():
    """(source, target) word tokenizers fitted on FRENCH -> ENGLISH."""
    return WordTokenizer().fit(FRENCH), WordTokenizer().fit(ENGLISH)


def export_with_beam(model, source, target, to, max_length):
    """Exports `model` to `to` (decoding with BEAM) as the translator fixtures
    do; returns what they return: (model, source, target, to, version path)."""
    path = export.export_translator(
        model, source, target, to, beam_size=BEAM.beam_size,
        length_penalty=BEAM.length_penalty, max_length=max_length,
    )
    return model, source, target, to, path


def settings(path, **chosen):
    """The export's per-request decoding inputs as tensors (its defaults,
    updated with `chosen`), for calling a text or id-level signature."""
    return {k: tf.constant(v) for k, v in export.decoding_settings(path, chosen).items()}


def assert_parity(report, equal, close, strings):
    """Checks a `check_parity` report: for both the SavedModel and ONNX, the
    outputs `equal` ("signature/output") are identical and those in `close`
    differ by at most TOLERANCE; the string output `strings` (a signature of
    the SavedModel only) is identical."""
    for backend in ("saved_model", "onnx"):
        for key in equal:
            assert report[backend][key] == "equal", (backend, key)
        for key in close:
            assert report[backend][key] <= TOLERANCE, (backend, key)
    assert report["saved_model"][strings] == "equal"


def assert_translate_matches_model(model, path, source_ids, source, target, max_length):
    """The exported `translate` signature, given SOURCES as strings, returns
    the ids and lengths of the model's own beam search (BEAM, eager) over
    `source_ids` (SOURCES encoded), and the text `keras_seq.Translator` makes
    of them (`<unk>` replaced by the attended source word; without `<unk>`,
    the target tokenizer's decoding). Returns the signature's outputs."""
    expected = model.generate(source_ids, strategy=BEAM, max_length=max_length)
    got = tf.saved_model.load(path).signatures["translate"](
        sentences=tf.constant(SOURCES), **settings(path)
    )
    np.testing.assert_array_equal(got["ids"], expected.ids[:, 0])
    np.testing.assert_array_equal(got["lengths"], expected.lengths[:, 0])
    translations = [s.decode() for s in got["translations"].numpy()]
    options = DecodeOptions(beam_size=BEAM.beam_size, length_penalty=BEAM.length_penalty)
    library = Translator(model, source, target, options=options)
    assert translations == [r.text for r in library.translate(SOURCES, max_length=max_length)]
    # Without <unk> (nor PAD/BOS, which Translator writes as text), the
    # target tokenizer's decoding.
    plain = target.decode(expected.ids[:, 0].numpy())
    rows = zip(expected.ids[:, 0].numpy(), expected.lengths[:, 0].numpy(), translations, plain)
    for row, length, text, decoded in rows:
        if not {PAD_ID, UNK_ID, BOS_ID} & set(row[:length].tolist()):
            assert text == decoded
    return got


def assert_generate_ids_matches_model(model, path, prompt_ids, max_length, **generate_kwargs):
    """The exported `generate_ids` signature returns the ids of the model's own
    `generate` (eager) over `prompt_ids`. Returns (outputs, expected)."""
    expected = model.generate(prompt_ids, max_length=max_length, **generate_kwargs)
    got = tf.saved_model.load(path).signatures["generate_ids"](
        prompt_ids=tf.constant(prompt_ids), **settings(path)
    )
    np.testing.assert_array_equal(got["ids"], expected.ids[:, 0])
    return got, expected


def _randomize(model, output_layer, seed, scale, eos_bias):
    """N(0, scale) weights and a raised EOS bias: an untrained model whose
    continuations differ from row to row and end early in some rows (checked
    by the parity tests), so ids, lengths and EOS handling are all exercised."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(scale=scale, size=w.shape).astype("float32") for w in model.get_weights()]
    )
    kernel, bias = output_layer.get_weights()
    bias[EOS_ID] += eos_bias
    output_layer.set_weights([kernel, bias])


_EXPORTS = {}


def tiny_exports(factory):
    """The session's tiny exports, made on first use (`factory`: pytest's
    `tmp_path_factory`): a dict with `dir` (the base directory: `lm/` and
    `fra-eng/`), `lm` = (model, tokenizer, to, version path) of a greedy
    LSTM language model (up to LM_MAX_LENGTH tokens) and `translator` =
    (model, source, target, to, version path) of a bidirectional LSTM +
    Bahdanau translator decoding with BEAM (up to TR_MAX_LENGTH tokens).

    Users must not write under `dir` except what test_export.py checks there
    (it adds version 2 of `lm`); copy a model elsewhere to change it.
    """
    if not _EXPORTS:
        from keras_seq.models import AttentionSeq2Seq, RNNLanguageModel

        base = factory.mktemp("exported")
        tokenizer = WordTokenizer().fit(LM_TEXTS)
        lm = RNNLanguageModel(
            tokenizer.vocab_size, embedding_dim=8, units=16, num_layers=1, stateful=False
        )
        _randomize(lm, lm.output_layer, seed=1, scale=0.5, eos_bias=1.0)
        path = export.export_language_model(lm, tokenizer, base / "lm", max_length=LM_MAX_LENGTH)
        source, target = translator_tokenizers()
        # Bidirectional masked LSTM encoder + Bahdanau attention (the defaults).
        translator = AttentionSeq2Seq(
            source.vocab_size, target.vocab_size, embedding_dim=8, units=8, max_length=10
        )
        _randomize(translator, translator.output_projection, seed=0, scale=1.0, eos_bias=1.0)
        _EXPORTS.update(
            dir=base, lm=(lm, tokenizer, base / "lm", path),
            translator=export_with_beam(translator, source, target, base / "fra-eng",
                                        TR_MAX_LENGTH),
        )
    return _EXPORTS
