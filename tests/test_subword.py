"""SentencePiece subword vocabularies (keras_seq.text.SentencePieceTokenizer, issue 15).

Oracles: the `sentencepiece` package's own processor over the same model proto
(encode and decode, independent of the tensorflow_text ops our tokenizer runs),
the tokenizer's in-graph module inside a `tf.function`, numpy for the tied
output projection, and the exported SavedModel in a fresh Python process in
which `import keras_seq` fails.
"""

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import sentencepiece
import tensorflow as tf

import keras_seq as ks
from keras_seq import cli
from keras_seq import text
from keras_seq.errors import DataError, InputError, RunDirError
from keras_seq.models import Transformer
from keras_seq.serving import backends

# Sentences with the accents and ligatures the tests round-trip, added to the
# bundled pairs so that every character is in the vocabulary.
EXTRA = [
    "Ça m'étonne : l'œuf du garçon est déjà cuit.",
    "Le cœur a ses raisons ; où est la forêt ?",
    "Élodie aime les crêpes, le maïs et les œufs.",
]
ROUND_TRIP = [
    "Ça m'étonne : l'œuf du garçon est déjà cuit.",
    "Où est le cœur de la forêt ?",
    "Tom loves crêpes.",
    "",
]


def _call(argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def texts():
    pairs = ks.data.load_pairs("bundled:fra-eng", max_pairs=600)
    return [s for s, _ in pairs] + [t for _, t in pairs] + EXTRA


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def tokenizer(request, texts):
    return text.SentencePieceTokenizer(400, request.param).fit(texts)


def _oracle(tokenizer):
    return sentencepiece.SentencePieceProcessor(model_proto=tokenizer.model_proto)


# ----------------------------------------------------------------------------
# The tokenizer contract
# ----------------------------------------------------------------------------


def test_reserved_ids_and_vocabulary(tokenizer):
    assert tokenizer.vocabulary[:4] == text.RESERVED_TOKENS
    assert 100 < tokenizer.vocab_size <= 400
    sp = _oracle(tokenizer)
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (
        text.PAD_ID, text.UNK_ID, text.BOS_ID, text.EOS_ID)
    assert tokenizer.vocabulary == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert tokenizer.requires == ("tensorflow_text",)
    ids = tokenizer.encode(["Tom loves crêpes."], add_bos=True, add_eos=True)[0]
    assert ids[0] == text.BOS_ID and ids[-1] == text.EOS_ID and text.UNK_ID not in ids


def test_ids_are_in_decreasing_frequency_order(tokenizer, texts):
    """The sampled softmax's log-uniform negatives assume frequent pieces have low ids."""
    counts = np.bincount(np.concatenate([np.asarray(r, np.int64) for r in tokenizer.encode(texts)]),
                         minlength=tokenizer.vocab_size)[len(text.RESERVED_TOKENS):]
    assert (np.diff(counts) <= 0).all()


def test_renumbering_keeps_every_segmentation(tokenizer, texts):
    """SentencePiece's own model and the renumbered one cut every text into the same pieces."""
    from keras_seq.text.subword import _by_frequency

    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=out, vocab_size=400,
        model_type=tokenizer.model_type, hard_vocab_limit=False, character_coverage=1.0,
        pad_id=0, unk_id=1, bos_id=2, eos_id=3, num_threads=1, minloglevel=2)
    original = sentencepiece.SentencePieceProcessor(model_proto=out.getvalue())
    renumbered = sentencepiece.SentencePieceProcessor(
        model_proto=_by_frequency(out.getvalue(), texts))
    sample = texts[::7] + ROUND_TRIP + ["Tom aime 東京🙂 et ♥."]
    assert renumbered.encode(sample, out_type=str) == original.encode(sample, out_type=str)
    assert renumbered.encode(sample) != original.encode(sample)  # the ids did move
    assert [renumbered.id_to_piece(i) for i in range(4)] == [
        original.id_to_piece(i) for i in range(4)]


def test_round_trip_keeps_accents_case_and_punctuation(tokenizer):
    ids = tokenizer.encode(ROUND_TRIP, add_eos=True)
    assert tokenizer.decode(ids) == ROUND_TRIP
    assert tokenizer.decode(ids) == [_oracle(tokenizer).decode(row[:-1]) for row in ids]
    # nmt_nfkc normalization: odd spaces are spaces, "…" is "...", runs collapse.
    assert tokenizer.decode(tokenizer.encode(["  Tom\u202f!\u00a0Où…  "])) == ["Tom ! Où..."]


def test_unknown_scripts_decode_as_unk_text(tokenizer):
    """Characters never seen in training (CJK, emoji): one UNK per run, decoded as "<unk>"."""
    ids = tokenizer.encode(["Tom aime 東京🙂 et ♥."])[0]
    assert ids.count(text.UNK_ID) == 2
    assert tokenizer.decode([ids]) == ["Tom aime <unk> et <unk>."]
    assert tokenizer.decode([ids]) == [_oracle(tokenizer).decode(ids)]


def test_python_encode_equals_in_graph_and_sentencepiece(tokenizer):
    sentences = ROUND_TRIP + ["Tom aime 東京🙂 et ♥.", "Il fait froid, n'est-ce pas ?"]
    module = tokenizer.as_module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(strings):
        return module.encode(strings)

    expected = _oracle(tokenizer).encode(sentences)
    assert tokenizer.encode(sentences) == expected
    assert encode(tf.constant(sentences)).to_list() == expected
    pieces = module.tokenize(tf.constant(sentences)).to_list()  # vocabulary tokens
    assert [[p.decode() for p in row] for row in pieces] == [
        [_oracle(tokenizer).id_to_piece(i) for i in row] for row in expected]
    padded = tf.ragged.constant(expected, dtype=tf.int32).to_tensor()
    assert [s.decode() for s in module.decode(padded).numpy()] == tokenizer.decode(expected)


def test_encoding_survives_tf_random_set_seed(tokenizer):
    """Seeding clears TF's kernel cache, which held the SentencepieceOp resource."""
    before = tokenizer.encode(ROUND_TRIP)
    tf.random.set_seed(1)
    assert tokenizer.encode(ROUND_TRIP) == before
    tf.random.set_seed(2)
    assert tokenizer.decode(before) == ROUND_TRIP


def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["sentencepiece.model", "tokenizer.json", "vocab.txt"]
    loaded = text.load_tokenizer(str(tmp_path))
    assert isinstance(loaded, text.SentencePieceTokenizer)
    assert loaded.get_config() == tokenizer.get_config()
    assert loaded.encode(ROUND_TRIP) == tokenizer.encode(ROUND_TRIP)
    (tmp_path / "sentencepiece.model").write_bytes(b"not a model")
    with pytest.raises(RunDirError, match="not a SentencePiece model"):
        text.load_tokenizer(str(tmp_path))
    (tmp_path / "sentencepiece.model").unlink()
    with pytest.raises(RunDirError, match="missing sentencepiece.model"):
        text.load_tokenizer(str(tmp_path))


def test_bad_input_is_one_clear_line(texts):
    with pytest.raises(DataError, match=r"vocabulary size 40 is too small for the data: its \d+ "
                                        r"distinct characters .* need at least \d+") as e:
        text.SentencePieceTokenizer(40, "bpe").fit(texts)
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="contain no token"):
        text.SentencePieceTokenizer(100).fit(["", "  "])
    with pytest.raises(ValueError, match="must be > 4"):
        text.SentencePieceTokenizer(4)
    with pytest.raises(ValueError, match="model_type must be one of unigram, bpe"):
        text.SentencePieceTokenizer(100, "wordpiece")
    with pytest.raises(ValueError, match="takes its vocabulary from its model"):
        text.SentencePieceTokenizer(100).set_vocabulary(text.RESERVED_TOKENS + ["a"])
    with pytest.raises(InputError, match="shared_vocab needs a SentencePiece tokenizer"):
        ks.TranslatorRecipe(shared_vocab=True)


@pytest.mark.parametrize("argv, message", [
    (["--shared-vocab"], "shared_vocab needs a SentencePiece tokenizer"),
    (["--tokenizer", "bpe", "--vocab-size", "30"], "vocabulary size 30 is too small for the data"),
])
def test_cli_refuses_bad_vocabularies(tmp_path, argv, message):
    status, _, err = _call(["train-translator", "--run-dir", str(tmp_path / "run"),
                            "--max-pairs", "200", "-q"] + argv)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-seq: error: ") and message in lines[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


# ----------------------------------------------------------------------------
# Tied embeddings
# ----------------------------------------------------------------------------


def test_shared_embeddings_are_one_variable():
    model = Transformer(30, 30, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
                        max_length=10, tie_embeddings=True, share_embeddings=True)
    tables = [w for w in model.weights if tuple(w.shape) == (30, 16)]
    assert len(tables) == 1
    assert model.source_embedding is model.target_embedding and model.head.tied
    table = np.random.default_rng(0).normal(size=(30, 16)).astype("float32")
    tables[0].assign(table)
    hidden = np.random.default_rng(1).normal(size=(2, 3, 16)).astype("float32")
    logits = model.head.model_outputs(hidden, training=False)
    bias = model.head.bias.numpy() if model.head.use_bias else 0.0
    np.testing.assert_allclose(logits, hidden @ table.T + bias, rtol=1e-5, atol=1e-5)
    assert model.get_config()["share_embeddings"] is True
    with pytest.raises(ValueError, match="share_embeddings` needs one vocabulary"):
        Transformer(30, 31, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
                    share_embeddings=True)


# ----------------------------------------------------------------------------
# End to end: train (bpe, shared vocabulary, Transformer with tied weights),
# export, answer in a fresh process
# ----------------------------------------------------------------------------

_FRESH = r"""
import json, sys
sys.modules["keras_seq"] = None  # `import keras_seq` raises
import tensorflow as tf
import tensorflow_text  # the export says it requires it
path, sentences = sys.argv[1], json.loads(sys.argv[2])
translate = tf.saved_model.load(path).signatures["translate"]
out = translate(sentences=tf.constant(sentences))["translations"].numpy()
print(json.dumps([s.decode("utf-8") for s in out.reshape(len(sentences), -1)[:, 0]]))
"""


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("subword") / "run"
    status, out, err = _call([
        "train-translator", "--run-dir", str(run), "--model", "transformer",
        "--tokenizer", "bpe", "--shared-vocab", "--vocab-size", "300", "--max-pairs", "400",
        "--epochs", "1", "--units", "32", "--layers", "1", "--batch-size", "32",
        "--sampled-softmax", "64", "--no-jit", "-q"])
    assert status == 0, err
    return run


def test_shared_bpe_run_directory(bpe_run):
    config = json.loads((bpe_run / "config.json").read_text())
    assert config["tokenizer"]["shared"] is True
    assert config["tokenizer"]["source"] == config["tokenizer"]["target"]
    assert config["tokenizer"]["source"]["config"] == {"vocab_size": 300, "model_type": "bpe"}
    model_config = config["model"]["config"]
    assert model_config["share_embeddings"] and model_config["tie_embeddings"]
    assert model_config["sampled_softmax"] == 64
    vocab = bpe_run / "vocab"
    assert ((vocab / "source" / "sentencepiece.model").read_bytes()
            == (vocab / "target" / "sentencepiece.model").read_bytes())
    translator = ks.Translator.from_run(str(bpe_run))
    size = translator.source_tokenizer.vocab_size
    model = translator.model
    assert model.source_embedding.embeddings is model.target_embedding.embeddings
    assert len([w for w in model.weights if tuple(w.shape) == (size, 32)]) == 1


@pytest.mark.slow  # ~20 s on a quiet 2-core machine: export trace + a fresh TensorFlow process
def test_export_answers_in_a_fresh_process(bpe_run, tmp_path):
    translator = ks.Translator.from_run(str(bpe_run))
    sentences = ["I am cold.", "Où est la gare ?", "Tom aime 東京🙂."]
    path, _ = translator.export(str(tmp_path / "fra-eng"), onnx=False, max_length=12,
                                parity_sentences=[])
    info = json.loads((tmp_path / "fra-eng" / "1" / "assets.extra" / "export.json").read_text())
    assert info["requires"] == ["tensorflow_text"]
    assert "onnx_string_signatures" in info["unsupported"]
    assert backends._required_packages(path) == ["tensorflow_text"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _FRESH, str(path), json.dumps(sentences)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = tf.saved_model.load(str(path)).signatures["translate"]
    here = loaded(sentences=tf.constant(sentences))["translations"].numpy()
    assert answers == [s.decode("utf-8") for s in here.reshape(len(sentences), -1)[:, 0]]
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
