"""Tests for keras_seq.text: word, char and WordPiece tokenizers."""

import collections
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_seq import data
from keras_seq import text
from keras_seq.errors import DataError
from keras_seq.errors import InputError
from keras_seq.errors import RunDirError
from keras_seq.text import BOS_ID
from keras_seq.text import EOS_ID
from keras_seq.text import PAD_ID
from keras_seq.text import UNK_ID


@pytest.fixture(scope="module")
def pairs():
    # The bundled file is ordered by length: take every 40th pair so the
    # sample spans short and long sentences.
    return data.load_pairs("bundled:fra-eng")[::40]


@pytest.fixture(scope="module")
def english(pairs):
    return [p[0] for p in pairs]


@pytest.fixture(scope="module")
def french(pairs):
    return [p[1] for p in pairs]


@pytest.fixture(scope="module")
def anna():
    return data.load_text("bundled:anna-karenina")[:8000]


@pytest.fixture(scope="module")
def word_tok(english, french):
    return text.WordTokenizer().fit(english + french)


@pytest.fixture(scope="module")
def char_tok(english, french, anna):
    return text.CharTokenizer().fit(english + french + [anna])


@pytest.fixture(scope="module")
def wordpiece_tok(english, french):
    return text.WordPieceTokenizer(vocab_size=400).fit(english[:400] + french[:400])


def test_reserved_ids_are_fixed(word_tok, char_tok, wordpiece_tok):
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert text.RESERVED_TOKENS == ["<pad>", "<unk>", "<s>", "</s>"]
    for tok in (word_tok, char_tok, wordpiece_tok):
        assert tok.vocabulary[:4] == text.RESERVED_TOKENS
        assert tok.vocab_size == len(tok.vocabulary)
        assert len(set(tok.vocabulary)) == tok.vocab_size
        plain = tok.encode(["Hi there."])[0]
        assert PAD_ID not in plain and BOS_ID not in plain and EOS_ID not in plain
        both = tok.encode(["Hi there."], add_bos=True, add_eos=True)[0]
        assert both == [BOS_ID] + plain + [EOS_ID]
        assert tok.encode(["Hi there."], add_eos=True)[0] == plain + [EOS_ID]


def test_word_split_rules():
    tok = text.WordTokenizer().fit(["x"])
    got = tok.tokenize([
        "Don't stop, L'HOMME! C’est-à-dire 3.5 and 12,000 at 10:30 a.m. on 9/11.",
        "the boys' club said 'hello' «Salut»\u202f!",
        "Oblonsky--Stiva (ok) _Il mio_",
        "   ",
    ])
    assert got[0] == [
        "don't", "stop", ",", "l'homme", "!", "c'est-à-dire", "3.5", "and",
        "12,000", "at", "10:30", "a.m", ".", "on", "9/11", ".",
    ]
    assert got[1] == [
        "the", "boys'", "club", "said", "'", "hello", "'", "«", "salut", "»", "!",
    ]
    assert got[2] == [
        "oblonsky", "-", "-", "stiva", "(", "ok", ")", "_", "il", "mio", "_",
    ]
    assert got[3] == []
    cased = text.WordTokenizer(lowercase=False).fit(["x"])
    assert cased.tokenize(["Ça ALORS"]) == [["Ça", "ALORS"]]


def test_word_split_elisions():
    tok = text.WordTokenizer(lowercase=False, split_elisions=True).fit(["x"])
    sentences = [
        "L'homme qu'il voit, c'est-à-dire l'école, jusqu'à aujourd'hui.",
        "Don't say I'm Tom's d'Artagnan; s'il te plaît, j'ai dit: l'eau.",
        "L’été d'un homme -- lorsqu'on l'a vu.",
    ]
    got = tok.tokenize(sentences)
    assert got[0] == ["L'", "homme", "qu'", "il", "voit", ",", "c'", "est-à-dire", "l'",
                      "école", ",", "jusqu'", "à", "aujourd'hui", "."]
    # English contractions, "aujourd'hui" and possessives stay whole.
    assert got[1] == ["Don't", "say", "I'm", "Tom's", "d'", "Artagnan", ";", "s'", "il",
                      "te", "plaît", ",", "j'", "ai", "dit", ":", "l'", "eau", "."]
    assert got[2][:4] == ["L'", "été", "d'", "un"] and "lorsqu'" in got[2]
    # Joining re-attaches them: the text comes back as written (the typographic
    # apostrophe as the straight one).
    joined = text.join_words(tf.ragged.constant(got)).numpy()
    assert [s.decode() for s in joined] == [
        *sentences[:2], "L'été d'un homme--lorsqu'on l'a vu.",
    ]
    # Off by default, and the in-graph module splits as the tokenizer does.
    assert text.WordTokenizer(lowercase=False).fit(["x"]).tokenize(["l'homme"]) == [["l'homme"]]
    tok = text.WordTokenizer(lowercase=False, split_elisions=True).fit(sentences)
    assert tok.decode(tok.encode(sentences[:1])) == sentences[:1]
    module = tok.as_module()
    assert module.encode(tf.constant(sentences)).to_list() == tok.encode(sentences)


def test_word_detokenize_reattaches_punctuation():
    tok = text.WordTokenizer(keep_newlines=True).fit(["x"])
    cases = {
        "hello , world .": "hello, world.",
        '" yes , yes , how was it now ? " he thought': '"yes, yes, how was it now?" he thought',
        "oblonsky - - stiva": "oblonsky--stiva",
        "( ok ) and [ x ] : 50 % !": "(ok) and [x]: 50%!",
        "_ il mio tesoro _ - - not": "_il mio tesoro_--not",
        "« salut » , dit - il": "«salut», dit - il",
        "a ' present ' here": "a 'present' here",
        "first \n \n second": "first\n\nsecond",
    }
    for tokens, expected in cases.items():
        got = text.join_words(tf.ragged.constant([tokens.split(" ")]))
        assert got.numpy()[0].decode() == expected


def test_word_round_trip_on_bundled_sentences(word_tok, english, french):
    ids = word_tok.encode(english + french)
    decoded = word_tok.decode(ids)
    assert all(UNK_ID not in row for row in ids)  # fitted on these texts
    # Token-level round trip is exact for every sentence.
    assert word_tok.tokenize(decoded) == word_tok.tokenize(english + french)
    # Plain-ASCII English comes back character for character (lower-cased).
    ascii_english = [(d, s) for d, s in zip(decoded, english) if s.isascii()]
    assert len(ascii_english) > 1200
    for d, s in ascii_english:
        assert d == s.lower()
    # French accents are kept.
    assert "ça" in word_tok.vocabulary and "été" in word_tok.vocabulary


def test_word_round_trip_keeps_paragraphs(anna):
    tok = text.WordTokenizer(keep_newlines=True).fit([anna])
    paragraph = anna[: anna.index("\n", 600)]
    decoded = tok.decode(tok.encode([paragraph]))[0]
    assert decoded.count("\n") == paragraph.count("\n")
    assert decoded.split("\n") == [
        " ".join(line.lower().split()) for line in paragraph.split("\n")
    ]
    assert "\n" in tok.vocabulary


def test_char_round_trip_is_lossless(char_tok, english, french, anna):
    texts = english + french + [anna]
    ids = char_tok.encode(texts)
    assert char_tok.decode(ids) == texts
    assert [len(row) for row in ids] == [len(t) for t in texts]
    assert char_tok.tokenize(["Ça\n"]) == [["Ç", "a", "\n"]]
    lower = text.CharTokenizer(lowercase=True).fit(["ÇA va"])
    assert lower.decode(lower.encode(["Ça VA"])) == ["ça va"]


def test_wordpiece_round_trip(wordpiece_tok, english, french):
    texts = english[:400] + french[:400]
    ids = wordpiece_tok.encode(texts)
    decoded = wordpiece_tok.decode(ids)
    # Oracle: the word tokenizer's own split + join of the same text.
    words = text.split_words(tf.constant(texts))
    expected = [s.decode() for s in text.join_words(words).numpy()]
    assert all(UNK_ID not in row for row in ids)
    assert decoded == expected
    # Sub-words really are sub-words: pieces glue back into the words.
    pieces = wordpiece_tok.tokenize(texts[:200])
    for row, word_row in zip(pieces, words.to_list()[:200]):
        glued = []
        for piece in row:
            if piece.startswith("##"):
                glued[-1] += piece[2:]
            else:
                glued.append(piece)
        assert glued == [w.decode() for w in word_row]
    assert any(len(row) > len(w) for row, w in zip(pieces, words.to_list()))
    assert wordpiece_tok.vocab_size <= 400
    assert wordpiece_tok.get_config() == {"vocab_size": 400, "lowercase": True}


def test_unknown_tokens_map_to_unk(word_tok, char_tok, wordpiece_tok):
    assert word_tok.encode(["zyzzyva hello"])[0][0] == UNK_ID
    assert word_tok.decode([[word_tok.encode(["zyzzyva"])[0][0]]]) == ["<unk>"]
    assert char_tok.encode(["aΩb"])[0][1] == UNK_ID
    assert char_tok.decode(char_tok.encode(["aΩb"])) == ["a<unk>b"]
    assert wordpiece_tok.encode(["Ω"]) == [[UNK_ID]]


def _brute_force_vocabulary(tokenized, max_tokens=None, min_frequency=1):
    counts = collections.Counter(t for row in tokenized for t in row)
    items = sorted(
        ((t, n) for t, n in counts.items() if n >= min_frequency),
        key=lambda item: (-item[1], item[0]),
    )
    if max_tokens is not None:
        items = items[: max_tokens - 4]
    return text.RESERVED_TOKENS + [t for t, _ in items]


def test_vocabulary_cap_min_frequency_and_tie_break(english, word_tok):
    tokenized = word_tok.tokenize(english)
    capped = text.WordTokenizer(max_tokens=50).fit(english)
    assert capped.vocab_size == 50
    assert capped.vocabulary == _brute_force_vocabulary(tokenized, max_tokens=50)
    frequent = text.WordTokenizer(min_frequency=5).fit(english)
    assert frequent.vocabulary == _brute_force_vocabulary(tokenized, min_frequency=5)
    full = text.WordTokenizer().fit(english)
    assert full.vocabulary == _brute_force_vocabulary(tokenized)
    # Deterministic: the order of the texts does not matter.
    assert text.WordTokenizer().fit(english[::-1]).vocabulary == full.vocabulary
    # Words left out by the cap become UNK.
    rare = [w for w in full.vocabulary if w not in capped.vocabulary][0]
    assert capped.encode([rare]) == [[UNK_ID]]
    chars = text.CharTokenizer(max_tokens=10).fit(["aaabbc d"])
    assert chars.vocabulary == text.RESERVED_TOKENS + ["a", "b", " ", "c", "d"]
    with pytest.raises(ValueError, match="must be > 4"):
        text.WordTokenizer(max_tokens=4)
    with pytest.raises(ValueError, match="min_frequency must be >= 1"):
        text.CharTokenizer(min_frequency=0)


def test_save_load_round_trip(tmp_path, word_tok, char_tok, wordpiece_tok):
    tricky = text.CharTokenizer().fit(["a\\b\tc\nd\re \u2028f\u00a0g"])
    newline_words = text.WordTokenizer(keep_newlines=True, max_tokens=100).fit(
        ["one\ntwo, three"]
    )
    sample = ["Hi there.\nIt's a\\b\tc café « ok »", "Tom lives here."]
    for i, tok in enumerate(
        [word_tok, char_tok, wordpiece_tok, tricky, newline_words]
    ):
        directory = tmp_path / f"tok{i}"
        tok.save(str(directory))
        assert sorted(os.listdir(directory)) == ["tokenizer.json", "vocab.txt"]
        meta = json.loads((directory / "tokenizer.json").read_text())
        assert meta["type"] == tok.type_name
        assert meta["config"] == tok.get_config()
        lines = (directory / "vocab.txt").read_text(encoding="utf-8").split("\n")
        assert lines[-1] == "" and len(lines) - 1 == tok.vocab_size
        loaded = text.load_tokenizer(str(directory))
        assert type(loaded) is type(tok)
        assert loaded.vocabulary == tok.vocabulary
        assert loaded.get_config() == tok.get_config()
        assert loaded.encode(sample) == tok.encode(sample)
        assert loaded.decode(tok.encode(sample)) == tok.decode(tok.encode(sample))


def test_word_tokenizer_saved_before_split_elisions_loads_without_it(tmp_path):
    elided = text.WordTokenizer(lowercase=False, split_elisions=True).fit(["l'homme est là"])
    elided.save(str(tmp_path / "new"))
    assert text.load_tokenizer(str(tmp_path / "new")).tokenize(["l'eau"]) == [["l'", "eau"]]
    # A tokenizer.json written before the option existed has no such key.
    old = text.WordTokenizer(lowercase=False).fit(["l'homme est là"])
    old.save(str(tmp_path / "old"))
    meta_path = tmp_path / "old" / "tokenizer.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["split_elisions"]
    meta_path.write_text(json.dumps(meta))
    loaded = text.load_tokenizer(str(tmp_path / "old"))
    assert loaded.split_elisions is False
    assert loaded.tokenize(["l'homme est là"]) == [["l'homme", "est", "là"]]


def test_load_tokenizer_errors(tmp_path, word_tok):
    with pytest.raises(RunDirError, match="tokenizer directory not found"):
        text.load_tokenizer(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunDirError, match="missing tokenizer.json"):
        text.load_tokenizer(str(empty))
    good = tmp_path / "good"
    word_tok.save(str(good))
    vocab = (good / "vocab.txt").read_text(encoding="utf-8")
    (good / "vocab.txt").write_text(vocab + "extra\n", encoding="utf-8")
    with pytest.raises(RunDirError, match="says vocab_size="):
        text.load_tokenizer(str(good))
    (good / "vocab.txt").write_text(vocab, encoding="utf-8")
    meta = json.loads((good / "tokenizer.json").read_text())
    meta["type"] = "bpe"
    (good / "tokenizer.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match="unknown tokenizer type 'bpe'"):
        text.load_tokenizer(str(good))


def test_python_and_tf_function_agree(word_tok, char_tok, wordpiece_tok, english):
    texts = english[:300] + ["", "Zyzzyva!"]
    for tok in (word_tok, char_tok, wordpiece_tok):

        @tf.function
        def encode_decode(strings, tok=tok):
            ids = tok.tf_encode(strings, add_bos=True, add_eos=True)
            return ids.to_tensor(), tok.tf_decode(ids.to_tensor())

        ids, strings = encode_decode(tf.constant(texts))
        expected = tok.encode(texts, add_bos=True, add_eos=True)
        assert tf.RaggedTensor.from_tensor(ids, padding=PAD_ID).to_list() == expected
        assert [s.decode() for s in strings.numpy()] == tok.decode(expected)


def test_decode_semantics():
    word_tok = text.WordTokenizer().fit(["hello , world ."])
    hello, comma, world, period = word_tok.encode(["hello , world ."])[0]
    assert UNK_ID not in (hello, comma, world, period)
    batch = [
        [BOS_ID, hello, comma, world, period, EOS_ID, hello, hello],
        [hello, PAD_ID, world, EOS_ID],
        [EOS_ID, hello],
        [],
    ]
    assert word_tok.decode(batch) == ["hello, world.", "hello world", "", ""]
    padded = np.array([[hello, world, EOS_ID, 0], [world, 0, 0, 0]], np.int32)
    assert word_tok.decode(padded) == ["hello world", "world"]
    assert word_tok.decode([]) == []
    # In graph mode an out-of-range id cannot raise: it decodes as <unk>.
    graph = word_tok.tf_decode(tf.constant([[hello, word_tok.vocab_size + 5]]))
    assert graph.numpy()[0].decode() == "hello <unk>"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        word_tok.decode([[hello, word_tok.vocab_size]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        word_tok.decode([[-1]])


def test_bad_input_errors(word_tok):
    with pytest.raises(TypeError, match="got a single str"):
        word_tok.encode("hello")
    with pytest.raises(TypeError, match=r"texts\[1\]` must be a str, got int"):
        word_tok.encode(["hello", 3])
    with pytest.raises(TypeError, match=r"must be a str, got NoneType"):
        word_tok.tokenize([None])
    with pytest.raises(TypeError, match="non-integer"):
        word_tok.decode([[1.5]])
    with pytest.raises(TypeError, match="must be integers"):
        word_tok.decode(np.zeros((1, 2), np.float32))
    with pytest.raises(TypeError, match="tf.string tensor"):
        word_tok.tf_encode(tf.constant([1, 2]))
    with pytest.raises(ValueError, match=r"shape \[N\]"):
        word_tok.tf_encode(tf.constant([["a"]]))
    with pytest.raises(ValueError, match=r"shape \[N, T\]"):
        word_tok.tf_decode(tf.constant([1, 2]))
    with pytest.raises(InputError, match="has no vocabulary yet"):
        text.WordTokenizer().encode(["hello"])
    # Empty strings are fine to encode (an empty sequence)...
    assert word_tok.encode(["", "  "], add_eos=True) == [[EOS_ID], [EOS_ID]]
    assert word_tok.encode([]) == []
    # ... but there must be something to learn from.
    for tok_class in (text.WordTokenizer, text.CharTokenizer, text.WordPieceTokenizer):
        with pytest.raises(DataError, match="contain no token"):
            tok_class().fit([])
        with pytest.raises(DataError, match="contain no token"):
            tok_class().fit([""])
        if tok_class is not text.CharTokenizer:  # spaces are characters
            with pytest.raises(DataError, match="contain no token"):
                tok_class().fit(["", "  \n"])
        with pytest.raises(TypeError, match="got a single str"):
            tok_class().fit("some text")
    with pytest.raises(DataError, match="min_frequency=3"):
        text.WordTokenizer(min_frequency=3).fit(["a b", "c"])


_FRESH_PROCESS_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def __init__(self, names):
            self.names = names
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ImportError(f"{name} is blocked in this process")
            return None

    # keras_seq must not be importable at all; the word/char SavedModels must
    # not need tensorflow_text (or keras_hub) either.
    blocker = Block({"keras_seq", "tensorflow_text", "keras_hub"})
    sys.meta_path.insert(0, blocker)
    try:
        import keras_seq
    except ImportError:
        pass
    else:
        raise SystemExit("keras_seq is importable in the fresh process")

    import tensorflow as tf

    args = json.loads(sys.argv[1])
    out = {}
    for name in ("word", "char"):
        module = tf.saved_model.load(args["dirs"][name])
        ids = module.encode(tf.constant(args["texts"]))
        out[name] = {
            "ids": ids.to_list(),
            "decoded": [s.decode() for s in module.decode(ids.to_tensor()).numpy()],
        }
    assert "tensorflow_text" not in sys.modules
    print("RESULT " + json.dumps(out))
    """
)


def test_saved_model_runs_without_keras_seq(tmp_path, word_tok, char_tok,
                                           english, french):
    """Word/char modules run in a fresh process with only stock TensorFlow."""
    toks = {"word": word_tok, "char": char_tok}
    dirs = {}
    for name, tok in toks.items():
        dirs[name] = str(tmp_path / name)
        tf.saved_model.save(tok.as_module(), dirs[name])
    texts = english[:40] + french[:40] + ["Zyzzyva Ω!", ""]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run(
        [sys.executable, "-I", "-c", _FRESH_PROCESS_SCRIPT,
         json.dumps({"dirs": dirs, "texts": texts})],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT ")][0]
    out = json.loads(line[len("RESULT "):])
    for name, tok in toks.items():
        assert out[name]["ids"] == tok.encode(texts), name
        assert out[name]["decoded"] == tok.decode(tok.encode(texts)), name


def test_wordpiece_saved_model_round_trip(tmp_path, wordpiece_tok, english):
    # Needs the tensorflow_text ops, which this process has (documented
    # limitation: not for stock TF Serving).
    path = str(tmp_path / "wordpiece")
    tf.saved_model.save(wordpiece_tok.as_module(), path)
    module = tf.saved_model.load(path)
    texts = english[:50] + ["Zyzzyva Ω!", ""]
    ids = module.encode(tf.constant(texts))
    assert ids.to_list() == wordpiece_tok.encode(texts)
    decoded = [s.decode() for s in module.decode(ids.to_tensor()).numpy()]
    assert decoded == wordpiece_tok.decode(ids.to_list())
    assert [t.decode() for t in module.vocabulary().numpy()] == wordpiece_tok.vocabulary
