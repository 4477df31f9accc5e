"""The tokenizers: `Tokenizer` and its word, character and WordPiece kinds.

(The SentencePiece kind is `keras_seq.text.subword.SentencePieceTokenizer`.)

`TOKENIZERS` maps each saved `type` name to its class; `load_tokenizer` reads
what `Tokenizer.save` wrote.
"""

import json
import os

import tensorflow as tf

from keras_seq.errors import DataError
from keras_seq.errors import InputError
from keras_seq.errors import RunDirError
from keras_seq.progress import _write_line
from keras_seq.progress import progress_bar
from keras_seq.text.checks import _check_cap
from keras_seq.text.checks import _check_string_tensor
from keras_seq.text.checks import _check_texts
from keras_seq.text.checks import _ids_to_array
from keras_seq.text.checks import _to_str
from keras_seq.text.modules import _CharModule
from keras_seq.text.modules import _WordModule
from keras_seq.text.modules import _WordPieceModule
from keras_seq.text.modules import add_special_ids
from keras_seq.text.splitting import split_chars
from keras_seq.text.splitting import split_words
from keras_seq.text.vocabulary import _FORMAT_VERSION
from keras_seq.text.vocabulary import CONFIG_FILE
from keras_seq.text.vocabulary import RESERVED_TOKENS
from keras_seq.text.vocabulary import VOCAB_FILE
from keras_seq.text.vocabulary import _check_vocabulary
from keras_seq.text.vocabulary import _read_vocabulary_file
from keras_seq.text.vocabulary import _write_atomic
from keras_seq.text.vocabulary import _write_vocabulary_file

# Strings encoded per eager call in the Python API (bounds peak memory).
_CHUNK = 16384


class Tokenizer:
    """Base class of the keras_seq tokenizers (see the `keras_seq.text` docstring).

    Subclasses set `type_name` and implement `_split_eager` (used by `fit`),
    `_make_module`, `_fit_vocabulary(texts, bar)` (`bar`: the fit's
    `keras_seq.progress.ProgressBar`, or None) and `get_config`; registering the class
    in `TOKENIZERS` under its `type_name` lets `load_tokenizer` read it back.

    Example:

    >>> tok = CharTokenizer().fit(["ab"])
    >>> isinstance(tok, Tokenizer), tok.type_name, tok.vocab_size
    (True, 'char', 6)
    """

    type_name = None
    # Python packages whose TensorFlow ops `as_module()` uses (import them
    # before loading a SavedModel that embeds it).
    requires = ()

    def __init__(self):
        self._vocabulary = None
        self._module = None

    # -- vocabulary ------------------------------------------------------

    @property
    def vocabulary(self):
        """The vocabulary, a list of str; `RESERVED_TOKENS` come first."""
        self._require_vocabulary()
        return list(self._vocabulary)

    @property
    def vocab_size(self):
        """Number of tokens in the vocabulary, reserved ones included."""
        self._require_vocabulary()
        return len(self._vocabulary)

    @property
    def fitted(self):
        """Whether the tokenizer has a vocabulary."""
        return self._vocabulary is not None

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary (a list of str starting with RESERVED_TOKENS).

        Returns:
            self.
        """
        self._vocabulary = _check_vocabulary(vocabulary)
        with tf.init_scope():
            self._module = self._make_module()
        return self

    def _require_vocabulary(self):
        if self._vocabulary is None:
            raise InputError(
                f"{type(self).__name__} has no vocabulary yet: call "
                f"fit(texts) or load_tokenizer(directory) first"
            )

    def fit(self, texts, verbose=0):
        """Learns the vocabulary from `texts`.

        Args:
            texts: an iterable of str (a list, a generator, ...).
            verbose: progress while counting (see `keras_seq.progress`):
                0 (the default) prints nothing; 1 draws Keras's progress bar
                over the texts when stdout is a terminal (nothing
                otherwise); 2 also prints one summary line when stdout is
                not a terminal.

        Returns:
            self, so `tok = WordTokenizer().fit(texts)` works.

        Raises:
            TypeError: `texts` is a single string or holds a non-string.
            DataError: `texts` contains no token at all.

        Example:

        >>> tok = WordTokenizer().fit(lines, verbose=1)  # doctest: +SKIP
        fitting WordTokenizer
        120000/120000 ━━━━━━━━━━━━━━━━━━━━ 3s 25us/text
        """
        texts = _check_texts(texts)
        label = f"fitting {type(self).__name__}"
        with progress_bar(len(texts), label, verbose=verbose, unit="text") as bar:
            vocabulary = self._fit_vocabulary(texts, bar)
        if len(vocabulary) <= len(RESERVED_TOKENS):
            min_frequency = getattr(self, "min_frequency", 1)
            reason = (
                f"no token occurs at least min_frequency={min_frequency} times"
                if min_frequency > 1 and any(t.strip() for t in texts)
                else "they contain no token"
            )
            raise DataError(
                f"cannot fit a {type(self).__name__} on the {len(texts)} "
                f"text(s) given: {reason}"
            )
        return self.set_vocabulary(vocabulary)

    def _count_tokens(self, texts, bar=None):
        """Token -> count over `texts`, with the same splitter as encode.

        `bar`: a `keras_seq.progress.ProgressBar` counting the texts, or None.
        """
        counts = {}
        for start in range(0, len(texts), _CHUNK):
            chunk = tf.constant(texts[start : start + _CHUNK], dtype=tf.string)
            tokens = self._split_eager(chunk).flat_values
            if bar is not None:
                bar.add(int(chunk.shape[0]))
            if tf.size(tokens) == 0:
                continue
            unique, _, count = tf.unique_with_counts(tokens)
            for token, n in zip(unique.numpy(), count.numpy()):
                counts[token] = counts.get(token, 0) + int(n)
        return {_to_str(t): n for t, n in counts.items()}

    def _vocabulary_from_counts(self, counts, max_tokens, min_frequency):
        reserved = set(RESERVED_TOKENS)
        items = [
            (token, n)
            for token, n in counts.items()
            if n >= min_frequency and token not in reserved
        ]
        # Most frequent first; ties broken by code-point order of the token.
        items.sort(key=lambda item: (-item[1], item[0]))
        if max_tokens is not None:
            items = items[: max_tokens - len(RESERVED_TOKENS)]
        return RESERVED_TOKENS + [token for token, _ in items]

    # -- Python API (runs the in-graph functions eagerly) -------------------

    def tokenize(self, texts):
        """Splits texts into tokens.

        Args:
            texts: list of str.

        Returns:
            list[list[str]]: the tokens of each text.
        """
        texts = _check_texts(texts)
        self._require_vocabulary()
        out = []
        for start in range(0, len(texts), _CHUNK):
            chunk = tf.constant(texts[start : start + _CHUNK], dtype=tf.string)
            for row in self._run_module("tokenize", chunk).to_list():
                out.append([_to_str(t) for t in row])
        return out

    def encode(self, texts, add_bos=False, add_eos=False):
        """Encodes texts into token ids (unknown tokens -> UNK_ID).

        Args:
            texts: list of str.
            add_bos: bool. Prepend BOS_ID to every sequence.
            add_eos: bool. Append EOS_ID to every sequence.

        Returns:
            list[list[int]].

        Example:

        >>> tok = WordTokenizer().fit(["the cat sat .", "the dog sat ."])
        >>> tok.vocabulary
        ['<pad>', '<unk>', '<s>', '</s>', '.', 'sat', 'the', 'cat', 'dog']
        >>> tok.encode(["The cat ran."], add_eos=True)
        [[6, 7, 1, 4, 3]]
        """
        texts = _check_texts(texts)
        self._require_vocabulary()
        out = []
        for start in range(0, len(texts), _CHUNK):
            chunk = tf.constant(texts[start : start + _CHUNK], dtype=tf.string)
            out.extend(self.tf_encode(chunk, add_bos, add_eos).to_list())
        return out

    def decode(self, ids_batch):
        """Turns id sequences back into text.

        Each sequence is cut at its first EOS_ID; PAD_ID and BOS_ID are
        dropped; word-level tokenizers re-attach punctuation.

        Args:
            ids_batch: a list of id lists (ragged is fine) or an int array
                [N, T].

        Returns:
            list[str], one per sequence.

        Raises:
            TypeError: the ids are not integers.
            ValueError: an id is negative or not below `vocab_size`.
        """
        self._require_vocabulary()
        ids = _ids_to_array(ids_batch)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self._vocabulary)):
            bad = ids[(ids < 0) | (ids >= len(self._vocabulary))][0]
            raise ValueError(
                f"token id {int(bad)} is outside the vocabulary "
                f"(vocab_size={len(self._vocabulary)})"
            )
        if ids.shape[0] == 0:
            return []
        return [_to_str(t) for t in self.tf_decode(tf.constant(ids)).numpy()]

    # -- In-graph API ------------------------------------------------------

    def tf_encode(self, strings, add_bos=False, add_eos=False):
        """Encodes a batch of strings with TF ops (eager or in a tf.function).

        The lookup table belongs to this tokenizer object. To export, attach
        `as_module()` to the SavedModel root and call its `encode` instead
        (then `add_special_ids` for BOS/EOS), so the table is tracked:

            root.tokenizer = tok.as_module()
            ids = add_special_ids(root.tokenizer.encode(s), add_eos=True)

        Args:
            strings: tf.string [N].
            add_bos, add_eos: Python bools.

        Returns:
            int32 `tf.RaggedTensor` [N, None].
        """
        self._require_vocabulary()
        strings = _check_string_tensor(strings, "strings")
        ids = self._run_module("encode", strings)
        return add_special_ids(ids, add_bos, add_eos)

    def tf_decode(self, ids):
        """Decodes int ids [N, T] to tf.string [N] with TF ops.

        Out-of-vocabulary ids decode as "<unk>" (no error in graph mode).
        """
        self._require_vocabulary()
        ids = tf.convert_to_tensor(ids)
        if not ids.dtype.is_integer:
            raise TypeError(f"`ids` must be an integer tensor, got {ids.dtype}")
        if ids.shape.rank is not None and ids.shape.rank != 2:
            raise ValueError(f"`ids` must have shape [N, T], got {ids.shape}")
        return self._run_module("decode", tf.cast(ids, tf.int32))

    def _run_module(self, function, *args):
        """Calls `function` ("tokenize", "encode", "decode") of this tokenizer's module."""
        return getattr(self._module, function)(*args)

    def as_module(self):
        """Returns a new `TokenizerModule` with this vocabulary, to export."""
        self._require_vocabulary()
        with tf.init_scope():
            return self._make_module()

    # -- Serialization -----------------------------------------------------

    def save(self, directory):
        """Writes `vocab.txt` and `tokenizer.json` into `directory`.

        `vocab.txt` has one token per line in id order; backslash, newline,
        carriage return, tab and other non-printable characters are escaped
        (`\\\\`, `\\n`, `\\r`, `\\t`, `\\uXXXXXX`). `tokenizer.json` holds
        `{"type", "config", "vocab_size", "format"}`. Both files are written
        atomically, the vocabulary first.
        """
        self._require_vocabulary()
        os.makedirs(directory, exist_ok=True)
        self._save_files(directory)
        _write_vocabulary_file(os.path.join(directory, VOCAB_FILE), self._vocabulary)
        meta = {
            "type": self.type_name,
            "config": self.get_config(),
            "vocab_size": len(self._vocabulary),
            "format": _FORMAT_VERSION,
        }
        _write_atomic(
            os.path.join(directory, CONFIG_FILE), json.dumps(meta, indent=2) + "\n"
        )

    def _save_files(self, directory):
        """Writes the files a subclass needs besides the vocabulary (none here)."""

    def _load_files(self, directory):
        """Reads what `_save_files` wrote, before `set_vocabulary` (none here).

        Raises:
            RunDirError: a file is missing or unreadable.
        """

    @classmethod
    def from_config(cls, config):
        """Builds an unfitted tokenizer from `get_config()` output."""
        return cls(**config)

    def __repr__(self):
        size = len(self._vocabulary) if self._vocabulary is not None else None
        return f"{type(self).__name__}({self.get_config()}, vocab_size={size})"


class WordTokenizer(Tokenizer):
    """Word-level tokenizer: words plus one token per punctuation mark.

    See the `keras_seq.text` docstring for the exact splitting and joining rules.
    Runs with core TF ops only, so its exported module needs no
    tensorflow_text.

    Args:
        lowercase: bool. Lower-case the text (Unicode rules). Default True.
        max_tokens: int or None. Maximum vocabulary size, the 4 reserved
            tokens included; the most frequent tokens are kept.
        min_frequency: int. Tokens seen fewer times are left out (-> UNK).
        keep_newlines: bool. Keep "\\n" as a token (for language models
            whose output should keep paragraphs). Default False.
        split_elisions: bool. An elided word is a token of its own
            ("l'homme" -> "l'", "homme"; French, Italian, Catalan): one
            entry "homme" instead of "homme", "l'homme", "d'homme"...
            Default False.

    Example:

    >>> tok = WordTokenizer().fit(["Hello, world.", "Hello there!"])
    >>> tok.vocabulary[:6]
    ['<pad>', '<unk>', '<s>', '</s>', 'hello', '!']
    >>> ids = tok.encode(["hello, world."])
    >>> tok.decode(ids)
    ['hello, world.']
    """

    type_name = "word"

    def __init__(self, lowercase=True, max_tokens=None, min_frequency=1,
                 keep_newlines=False, split_elisions=False):
        super().__init__()
        _check_cap(max_tokens, min_frequency)
        self.lowercase = bool(lowercase)
        self.max_tokens = max_tokens
        self.min_frequency = min_frequency
        self.keep_newlines = bool(keep_newlines)
        self.split_elisions = bool(split_elisions)

    def get_config(self):
        return {
            "lowercase": self.lowercase,
            "max_tokens": self.max_tokens,
            "min_frequency": self.min_frequency,
            "keep_newlines": self.keep_newlines,
            "split_elisions": self.split_elisions,
        }

    def _split_eager(self, strings):
        return self.split_surface(strings, self.lowercase)

    def split_surface(self, strings, lowercase=False):
        """The words of `strings` as this tokenizer splits them (eager).

        Args:
            strings: tf.string [N].
            lowercase: bool. Lower-case first (False: the words as written,
                what a translator copies for an unknown word).

        Returns:
            tf.string `tf.RaggedTensor` [N, None].
        """
        return split_words(strings, lowercase, self.keep_newlines, self.split_elisions)

    def _fit_vocabulary(self, texts, bar=None):
        counts = self._count_tokens(texts, bar)
        return self._vocabulary_from_counts(
            counts, self.max_tokens, self.min_frequency
        )

    def _make_module(self):
        return _WordModule(self._vocabulary, self.lowercase, self.keep_newlines,
                           self.split_elisions)


class CharTokenizer(Tokenizer):
    """Character-level tokenizer: one token per Unicode code point.

    Lossless: `decode(encode(t)) == t` (lower-cased if `lowercase`) when
    every character is in the vocabulary. Core TF ops only.

    Args:
        lowercase: bool. Lower-case the text first. Default False.
        max_tokens: int or None. Maximum vocabulary size, reserved included.
        min_frequency: int. Characters seen fewer times map to UNK.

    Example:

    >>> tok = CharTokenizer().fit(["abba"])
    >>> tok.vocabulary
    ['<pad>', '<unk>', '<s>', '</s>', 'a', 'b']
    >>> tok.decode(tok.encode(["baa"], add_eos=True))
    ['baa']
    """

    type_name = "char"

    def __init__(self, lowercase=False, max_tokens=None, min_frequency=1):
        super().__init__()
        _check_cap(max_tokens, min_frequency)
        self.lowercase = bool(lowercase)
        self.max_tokens = max_tokens
        self.min_frequency = min_frequency

    def get_config(self):
        return {
            "lowercase": self.lowercase,
            "max_tokens": self.max_tokens,
            "min_frequency": self.min_frequency,
        }

    def _split_eager(self, strings):
        return split_chars(strings, self.lowercase)

    def _fit_vocabulary(self, texts, bar=None):
        counts = self._count_tokens(texts, bar)
        return self._vocabulary_from_counts(
            counts, self.max_tokens, self.min_frequency
        )

    def _make_module(self):
        return _CharModule(self._vocabulary, self.lowercase)


class WordPieceTokenizer(Tokenizer):
    """Sub-word tokenizer (WordPiece) on top of the word splitter.

    Text is split into words exactly like `WordTokenizer` (with
    `keep_newlines=False`), then every word into WordPiece units ("##" marks
    a continuation). The vocabulary is learned with
    `keras_hub.tokenizers.compute_word_piece_vocabulary`; encoding uses
    `tensorflow_text.FastWordpieceTokenizer`. A word that cannot be built
    from the vocabulary (or is longer than 100 bytes) becomes one UNK.

    In-graph limitation: `encode`/`tf_encode` and the exported module's
    `encode`/`tokenize` need the tensorflow_text op
    `FastWordpieceTokenizeWithOffsets` (`import tensorflow_text` before
    loading a SavedModel that contains it; TF Serving's model server links
    it). `decode` is core TF only.

    Args:
        vocab_size: int. Target vocabulary size (an upper bound; the learned
            vocabulary, reported by the `vocab_size` property once fitted,
            can be smaller on a small corpus). `get_config()["vocab_size"]`
            is this target.
        lowercase: bool. Lower-case the text first. Default True.

    Example:

    >>> tok = WordPieceTokenizer(vocab_size=200).fit(texts)  # doctest: +SKIP
    >>> tok.tokenize(["unhappiness"])  # doctest: +SKIP
    [['un', '##happ', '##iness']]
    """

    type_name = "wordpiece"
    requires = ("tensorflow_text",)

    def __init__(self, vocab_size=8000, lowercase=True):
        super().__init__()
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
        if vocab_size <= len(RESERVED_TOKENS):
            raise ValueError(
                f"vocab_size counts the {len(RESERVED_TOKENS)} reserved tokens "
                f"and must be > {len(RESERVED_TOKENS)}, got {vocab_size}"
            )
        self.target_vocab_size = vocab_size
        self.lowercase = bool(lowercase)

    def get_config(self):
        return {"vocab_size": self.target_vocab_size, "lowercase": self.lowercase}

    def _split_eager(self, strings):
        return split_words(strings, self.lowercase, keep_newlines=False)

    def _fit_vocabulary(self, texts, bar=None):
        import keras_hub

        word_batches = []
        for start in range(0, len(texts), _CHUNK):
            chunk = tf.constant(texts[start : start + _CHUNK], dtype=tf.string)
            words = self._split_eager(chunk).flat_values
            if bar is not None:
                bar.add(int(chunk.shape[0]))
            if tf.size(words) > 0:
                word_batches.append(words)
        if not word_batches:
            return list(RESERVED_TOKENS)
        if bar is not None and bar.mode != "off":
            # keras_hub's WordPiece learner reports no progress of its own.
            bar.close()
            _write_line(
                "learning the WordPiece vocabulary "
                f"({self.target_vocab_size} tokens at most)"
            )
        data = tf.data.Dataset.from_tensor_slices(
            tf.ragged.stack(word_batches)
        )
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            data,
            vocabulary_size=self.target_vocab_size,
            lowercase=False,
            strip_accents=False,
            split=False,
            suffix_indicator="##",
            reserved_tokens=list(RESERVED_TOKENS),
        )
        return list(vocabulary)

    def _make_module(self):
        return _WordPieceModule(self._vocabulary, self.lowercase)


# A subclass of Tokenizer, so imported once Tokenizer exists.
from keras_seq.text.subword import SentencePieceTokenizer  # noqa: E402

TOKENIZERS = {
    WordTokenizer.type_name: WordTokenizer,
    CharTokenizer.type_name: CharTokenizer,
    WordPieceTokenizer.type_name: WordPieceTokenizer,
    SentencePieceTokenizer.type_name: SentencePieceTokenizer,
}


def tokenizer_from_config(type_name, config):
    """Builds an unfitted tokenizer from its `type_name` and `get_config()`.

    Args:
        type_name: a key of `TOKENIZERS` ("word", "char" or "wordpiece").
        config: the tokenizer's `get_config()` dict.

    Returns:
        An unfitted tokenizer of that type.

    Raises:
        ValueError: unknown `type_name` (the message lists the known ones).

    Example:

    >>> tokenizer_from_config("char", {"lowercase": True})
    CharTokenizer({'lowercase': True, 'max_tokens': None, 'min_frequency': 1}, vocab_size=None)
    """
    if type_name not in TOKENIZERS:
        raise ValueError(
            f"unknown tokenizer type {type_name!r}; known: {sorted(TOKENIZERS)}"
        )
    return TOKENIZERS[type_name].from_config(dict(config))


def load_tokenizer(directory):
    """Loads a tokenizer written by `tokenizer.save(directory)`.

    Args:
        directory: path of a directory holding `tokenizer.json` and
            `vocab.txt`.

    Returns:
        A fitted `WordTokenizer`, `CharTokenizer`, `WordPieceTokenizer` or
        `SentencePieceTokenizer`.

    Raises:
        RunDirError: the directory or a file is missing, unreadable or
            inconsistent (unknown type, vocabulary size mismatch, reserved
            tokens missing).

    Example:

    >>> WordTokenizer().fit(["a cat ."]).save("/tmp/vocab")  # doctest: +SKIP
    >>> load_tokenizer("/tmp/vocab").vocab_size             # doctest: +SKIP
    7
    """
    config_path = os.path.join(directory, CONFIG_FILE)
    vocab_path = os.path.join(directory, VOCAB_FILE)
    if not os.path.isdir(directory):
        raise RunDirError(f"tokenizer directory not found: {directory}")
    for path in (config_path, vocab_path):
        if not os.path.isfile(path):
            raise RunDirError(
                f"not a tokenizer directory: {directory} (missing "
                f"{os.path.basename(path)})"
            )
    try:
        with open(config_path, encoding="utf-8") as f:
            meta = json.load(f)
        type_name = meta["type"]
        config = meta["config"]
        expected_size = int(meta["vocab_size"])
    except (ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"{config_path}: unreadable tokenizer config ({e})") from None
    if type_name not in TOKENIZERS:
        raise RunDirError(
            f"{config_path}: unknown tokenizer type {type_name!r}; "
            f"known: {sorted(TOKENIZERS)}"
        )
    vocabulary = _read_vocabulary_file(vocab_path)
    if len(vocabulary) != expected_size:
        raise RunDirError(
            f"{vocab_path} has {len(vocabulary)} tokens but {CONFIG_FILE} "
            f"says vocab_size={expected_size}"
        )
    try:
        tokenizer = tokenizer_from_config(type_name, config)
        tokenizer._load_files(directory)
        tokenizer.set_vocabulary(vocabulary)
    except (TypeError, ValueError) as e:
        raise RunDirError(f"{directory}: invalid tokenizer ({e})") from None
    return tokenizer
