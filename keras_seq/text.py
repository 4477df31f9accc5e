"""Tokenizers and vocabularies: word, character and WordPiece.

Three tokenizers share one API:

- `WordTokenizer`: lower-cased words with each punctuation mark as its own
  token, as in the word-level Anna Karenina (Udacity) example.
- `CharTokenizer`: one token per Unicode character (lossless).
- `WordPieceTokenizer`: sub-words learned with
  `keras_hub.tokenizers.compute_word_piece_vocabulary` and applied with
  `tensorflow_text.FastWordpieceTokenizer` on top of the word splitter.

Common API (`tok` is any of them):

    tok.fit(texts) -> tok               # learn the vocabulary
    tok.vocabulary -> list[str]         # RESERVED_TOKENS first
    tok.vocab_size -> int
    tok.tokenize(texts) -> list[list[str]]
    tok.encode(texts, add_bos=False, add_eos=False) -> list[list[int]]
    tok.decode(ids_batch) -> list[str]  # stops at EOS, drops PAD and BOS
    tok.tf_encode(strings, add_bos=False, add_eos=False) -> tf.RaggedTensor int32
    tok.tf_decode(ids) -> tf.string [N]
    tok.as_module() -> TokenizerModule  # a tf.Module to embed in a SavedModel
    tok.save(directory); load_tokenizer(directory)
    tok.get_config(); tok.type_name

The Python methods (`tokenize`, `encode`, `decode`) run the very same
TensorFlow functions as the in-graph ones (`TokenizerModule.tokenize/encode/
decode`), eagerly, so Python and exported tokenization cannot disagree.

The word and character tokenizers use only core TensorFlow ops
(`tf.strings.*`, `tf.lookup.StaticHashTable`, `tf.gather`): a SavedModel that
embeds their `as_module()` loads and runs in stock TensorFlow or TF Serving,
without tensorflow_text or keras_seq. The WordPiece tokenizer's *encode* needs
the tensorflow_text `FastWordpieceTokenizeWithOffsets` op (import
`tensorflow_text` before loading such a SavedModel; stock TF Serving does not
have it); its *decode* is core TF only.

Word splitting rules (`WordTokenizer` and the pre-split of `WordPieceTokenizer`):

1. `lowercase=True` lower-cases with Unicode rules (`tf.strings.lower(...,
   encoding="utf-8")`, so "ÇA" -> "ça"); accents are kept.
2. The typographic apostrophe "’" is replaced by "'". Control and
   format characters are removed, all Unicode spaces (no-break, narrow
   no-break, ...) count as spaces.
3. Every punctuation mark or symbol (Unicode categories P and S) is a token of
   its own, with these exceptions, which stay inside the word:
   an apostrophe, hyphen, "." or "/" between two letters/digits ("don't",
   "l'homme", "aujourd'hui", "arrête-toi", "c'est-à-dire", "a.m", "3.5",
   "9/11" are single tokens), "," and ":" between two digits ("12,000",
   "10:30"), and an apostrophe after a final "s" (possessive plural:
   "boys'"). Any other apostrophe ("'hello'") is a token of its own.
4. Words are separated by whitespace. With `keep_newlines=True` every "\\n"
   is a token of its own ("\\r\\n" and "\\r" count as "\\n"), so generated
   text keeps its paragraphs; otherwise newlines are ordinary spaces.

Word-level decoding joins tokens with spaces and then re-attaches punctuation:
no space before `. , ; : ! ? % ) ] } » ” … ‽`, none after `( [ { « “ ¿ ¡ $`,
paired straight quotes (double or single) and `_` hug their content
(`" yes "` -> `"yes"`), a run of hyphens hugs its neighbours
("a - - b" -> "a--b") and newlines take no spaces. So
`"hello , world ."` decodes to `"hello, world."`. Spacing the original had
around punctuation (French "Salut !") and stand-alone apostrophes are not
restored; `tokenize(decode(encode(t)))` equals
`tokenize(t)` whenever `t` has no unknown words.

Reserved ids (fixed for every tokenizer): `PAD_ID=0 "<pad>"`,
`UNK_ID=1 "<unk>"`, `BOS_ID=2 "<s>"`, `EOS_ID=3 "</s>"`.
"""

import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from keras_seq.errors import DataError
from keras_seq.errors import InputError
from keras_seq.errors import RunDirError

PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
RESERVED_TOKENS = [PAD_TOKEN, UNK_TOKEN, BOS_TOKEN, EOS_TOKEN]

VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer.json"
_FORMAT_VERSION = 1
# Strings encoded per eager call in the Python API (bounds peak memory).
_CHUNK = 16384

# Private-use code points used as placeholders while splitting words. They are
# removed from the input first, so they can never clash with real text.
_PLACEHOLDERS = r"[\x{E000}-\x{E00F}]"
_NEWLINE_MARK = "\ue00f"
# (joiner character, placeholder, regex of the two neighbours that keep it).
_JOINERS = [
    ("'", "\ue000", r"([\pL\pN\pM])'([\pL\pN])"),
    ("-", "\ue001", r"([\pL\pN\pM])-([\pL\pN])"),
    # Possessive plural: "the boys' club".
    ("'", "\ue000", r"([sS])'([^\pL\pN\pM]|$)"),
    (".", "\ue002", r"([\pL\pN])\.([\pL\pN])"),
    (",", "\ue003", r"(\pN),(\pN)"),
    (":", "\ue004", r"(\pN):(\pN)"),
    ("/", "\ue005", r"([\pL\pN])/([\pL\pN])"),
]
_WORD_DETOKENIZE_RULES = [
    # Newlines take no spaces around them.
    (r" ?\n ?", "\n"),
    # Paired straight quotes and underscores (italics) hug their content.
    (r'" ([^"\n]*?) "', r'"\1"'),
    (r"' ([^'\n]*?) '", r"'\1'"),
    (r"_ ([^_\n]*?) _", r"_\1_"),
    # Runs of hyphens ("--" dashes) hug each other and their neighbours.
    (r"- -", "--"),
    (r"- -", "--"),
    (r" ?(--+) ?", r"\1"),
    # No space before closing punctuation, none after opening punctuation.
    (r" ([.,;:!?%)\]}»”…‽])", r"\1"),
    (r"([(\[{«“¿¡$]) ", r"\1"),
]


# ----------------------------------------------------------------------------
# Input validation shared by the Python API.


def _check_texts(texts, what="texts"):
    """Returns `texts` as a list of str, or raises TypeError."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"`{what}` must be a list of strings, got a single "
            f"{type(texts).__name__}; wrap it in a list: [{texts!r:.40}]"
        )
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(
            f"`{what}` must be a list of strings, got {type(texts).__name__}"
        ) from None
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"`{what}[{i}]` must be a str, got {type(text).__name__}: "
                f"{text!r:.40}"
            )
    return texts


def _check_string_tensor(strings, name):
    strings = tf.convert_to_tensor(strings)
    if strings.dtype != tf.string:
        raise TypeError(f"`{name}` must be a tf.string tensor, got {strings.dtype}")
    if strings.shape.rank is not None and strings.shape.rank != 1:
        raise ValueError(
            f"`{name}` must have shape [N] (a batch of strings), got {strings.shape}"
        )
    return strings


def _to_str(value):
    return value.decode("utf-8")


# ----------------------------------------------------------------------------
# Core-TF splitting and joining (no tensorflow_text).


def split_words(strings, lowercase=True, keep_newlines=False):
    """Splits strings into word and punctuation tokens with core TF ops.

    The rules are those of the module docstring. Runs eagerly or inside a
    `tf.function`.

    Args:
        strings: tf.string tensor of shape [N].
        lowercase: bool. Lower-case with Unicode rules first.
        keep_newlines: bool. Keep each "\\n" as a token.

    Returns:
        A tf.string `tf.RaggedTensor` of shape [N, None].

    Example:

    >>> split_words(tf.constant(["Don't stop, L'homme!"])).to_list()
    [[b"don't", b'stop', b',', b"l'homme", b'!']]
    """
    s = tf.strings.regex_replace(strings, _PLACEHOLDERS, "")
    if lowercase:
        s = tf.strings.lower(s, encoding="utf-8")
    s = tf.strings.regex_replace(s, "\u2019", "'")
    s = tf.strings.regex_replace(s, r"\r\n?", "\n")
    # Control characters other than whitespace become spaces; format
    # characters (zero-width space, soft hyphen, BOM) vanish.
    s = tf.strings.regex_replace(s, r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]", " ")
    s = tf.strings.regex_replace(s, r"\p{Cf}", "")
    # Protect joiners inside words; two passes cover chains of one-letter
    # parts ("c'est-à-dire"), because matches of one pass cannot overlap.
    for _, mark, pattern in _JOINERS:
        for _ in range(2):
            s = tf.strings.regex_replace(s, pattern, "\\1" + mark + "\\2")
    if keep_newlines:
        s = tf.strings.regex_replace(s, "\n", " " + _NEWLINE_MARK + " ")
    s = tf.strings.regex_replace(s, r"[\pP\pS]", " \\0 ")
    for char, mark, _ in _JOINERS:
        s = tf.strings.regex_replace(s, mark, char)
    s = tf.strings.regex_replace(s, r"[\s\p{Z}]+", " ")
    words = tf.strings.split(s)  # splits on whitespace, drops empty strings
    if keep_newlines:
        words = tf.ragged.map_flat_values(
            lambda w: tf.where(tf.equal(w, _NEWLINE_MARK), "\n", w), words
        )
    return words


def join_words(tokens):
    """Joins word tokens into text, re-attaching punctuation (core TF ops).

    Args:
        tokens: tf.string `tf.RaggedTensor` [N, None].

    Returns:
        tf.string [N].

    Example:

    >>> join_words(tf.ragged.constant([["hello", ",", "world", "."]])).numpy()
    array([b'hello, world.'], dtype=object)
    """
    text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
    for pattern, rewrite in _WORD_DETOKENIZE_RULES:
        text = tf.strings.regex_replace(text, pattern, rewrite)
    return text


def split_chars(strings, lowercase=False):
    """Splits strings into Unicode characters (core TF ops).

    Args:
        strings: tf.string [N].
        lowercase: bool. Lower-case with Unicode rules first.

    Returns:
        A tf.string `tf.RaggedTensor` [N, None] of single characters.
    """
    if lowercase:
        strings = tf.strings.lower(strings, encoding="utf-8")
    return tf.strings.unicode_split(strings, "UTF-8")


# ----------------------------------------------------------------------------
# The tf.Module carrying a vocabulary (what gets exported).


class TokenizerModule(tf.Module):
    """In-graph tokenizer: a `tf.Module` to embed in a SavedModel.

    Built by `tokenizer.as_module()`. The vocabulary is a constant captured by
    the functions and the string -> id table a tracked
    `tf.lookup.StaticHashTable`, so attaching the module to a SavedModel root
    (`root.tokenizer = tok.as_module()`) or saving it on its own exports both.

    Functions (all `tf.function`s with fixed input signatures):

    - `tokenize(strings: tf.string [N]) -> tf.RaggedTensor tf.string [N, None]`
    - `encode(strings: tf.string [N]) -> tf.RaggedTensor int32 [N, None]`
      (no BOS/EOS; unknown tokens -> UNK_ID)
    - `decode(ids: int32 [N, T]) -> tf.string [N]`: stops at the first EOS,
      drops PAD and BOS; ids outside the vocabulary decode as "<unk>".
    - `vocabulary() -> tf.string [V]`

    Example:

    >>> tok = WordTokenizer().fit(["a cat .", "a dog ."])
    >>> module = tok.as_module()
    >>> module.encode(tf.constant(["A cat!"])).to_list()
    [[5, 6, 1]]
    """

    def __init__(self, vocabulary, name=None):
        super().__init__(name=name)
        vocabulary = list(vocabulary)
        self._vocab = tf.constant(vocabulary, dtype=tf.string)
        self._vocab_size = len(vocabulary)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self._vocab,
                tf.range(len(vocabulary), dtype=tf.int32),
                key_dtype=tf.string,
                value_dtype=tf.int32,
            ),
            default_value=UNK_ID,
        )

    # Subclasses implement these two (plain Python, traced inside the
    # tf.functions below).
    def _split(self, strings):
        raise NotImplementedError

    def _join(self, tokens):
        raise NotImplementedError

    def _encode(self, strings):
        return self._table.lookup(self._split(strings))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, strings):
        return self._split(strings)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def encode(self, strings):
        return self._encode(strings)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def decode(self, ids):
        # ids: int32 [N, T]
        vocab_size = tf.shape(self._vocab)[0]
        ids = tf.where((ids >= 0) & (ids < vocab_size), ids, UNK_ID)
        eos_seen = tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=1)
        keep = tf.equal(eos_seen, 0) & (ids != PAD_ID) & (ids != BOS_ID)
        kept = tf.ragged.boolean_mask(ids, keep)  # [N, None]
        tokens = tf.gather(self._vocab, kept)
        return self._join(tokens)

    @tf.function(input_signature=[])
    def vocabulary(self):
        return tf.identity(self._vocab)


class _WordModule(TokenizerModule):
    def __init__(self, vocabulary, lowercase, keep_newlines, name=None):
        super().__init__(vocabulary, name=name)
        self._lowercase = lowercase
        self._keep_newlines = keep_newlines

    def _split(self, strings):
        return split_words(strings, self._lowercase, self._keep_newlines)

    def _join(self, tokens):
        return join_words(tokens)


class _CharModule(TokenizerModule):
    def __init__(self, vocabulary, lowercase, name=None):
        super().__init__(vocabulary, name=name)
        self._lowercase = lowercase

    def _split(self, strings):
        return split_chars(strings, self._lowercase)

    def _join(self, tokens):
        return tf.strings.reduce_join(tokens, axis=-1)


class _WordPieceModule(TokenizerModule):
    def __init__(self, vocabulary, lowercase, name=None):
        import tensorflow_text as tf_text

        super().__init__(vocabulary, name=name)
        self._lowercase = lowercase
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=list(vocabulary),
            suffix_indicator="##",
            max_bytes_per_word=100,
            token_out_type=tf.int32,
            unknown_token=UNK_TOKEN,
            no_pretokenization=True,
        )

    def _split(self, strings):
        return tf.gather(self._vocab, self._encode(strings))

    def _encode(self, strings):
        words = split_words(strings, self._lowercase, keep_newlines=False)
        pieces = self._wordpiece.tokenize(words)  # [N, words, pieces]
        return pieces.merge_dims(1, 2)

    def _join(self, tokens):
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        text = tf.strings.regex_replace(text, " ##", "")
        for pattern, rewrite in _WORD_DETOKENIZE_RULES:
            text = tf.strings.regex_replace(text, pattern, rewrite)
        return text


# ----------------------------------------------------------------------------
# Vocabulary files.


def _escape_token(token):
    out = []
    for ch in token:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif not ch.isprintable() or (ch.isspace() and ch != " "):
            out.append(f"\\u{ord(ch):06x}")
        else:
            out.append(ch)
    return "".join(out)


def _unescape_token(line, where):
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = line[i + 1 : i + 2]
        if nxt in ("\\", "n", "r", "t"):
            out.append({"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[nxt])
            i += 2
        elif nxt == "u" and len(line) >= i + 8:
            try:
                out.append(chr(int(line[i + 2 : i + 8], 16)))
            except ValueError:
                raise RunDirError(f"{where}: bad escape {line[i:i + 8]!r}") from None
            i += 8
        else:
            raise RunDirError(f"{where}: bad escape {line[i:i + 2]!r}")
    return "".join(out)


def _write_atomic(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


# ----------------------------------------------------------------------------
# Tokenizers.


def _check_vocabulary(vocabulary):
    vocabulary = list(vocabulary)
    for i, token in enumerate(vocabulary):
        if not isinstance(token, str) or not token:
            raise ValueError(
                f"vocabulary[{i}] must be a non-empty str, got {token!r}"
            )
    if vocabulary[: len(RESERVED_TOKENS)] != RESERVED_TOKENS:
        raise ValueError(
            f"the vocabulary must start with the reserved tokens "
            f"{RESERVED_TOKENS}, got {vocabulary[:len(RESERVED_TOKENS)]}"
        )
    seen = set()
    for token in vocabulary:
        if token in seen:
            raise ValueError(f"duplicate token in the vocabulary: {token!r}")
        seen.add(token)
    return vocabulary


class Tokenizer:
    """Base class of the keras_seq tokenizers (see the module docstring).

    Subclasses set `type_name` and implement `_split_eager` (used by `fit`),
    `_make_module`, `_fit_vocabulary` and `get_config`.
    """

    type_name = None

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

    def fit(self, texts):
        """Learns the vocabulary from `texts`.

        Args:
            texts: an iterable of str (a list, a generator, ...).

        Returns:
            self, so `tok = WordTokenizer().fit(texts)` works.

        Raises:
            TypeError: `texts` is a single string or holds a non-string.
            DataError: `texts` contains no token at all.
        """
        texts = _check_texts(texts)
        vocabulary = self._fit_vocabulary(texts)
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

    def _count_tokens(self, texts):
        """Token -> count over `texts`, with the same splitter as encode."""
        counts = {}
        for start in range(0, len(texts), _CHUNK):
            chunk = tf.constant(texts[start : start + _CHUNK], dtype=tf.string)
            tokens = self._split_eager(chunk).flat_values
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
            for row in self._module.tokenize(chunk).to_list():
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
        ids = self._module.encode(strings)
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
        return self._module.decode(tf.cast(ids, tf.int32))

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
        lines = "".join(_escape_token(t) + "\n" for t in self._vocabulary)
        _write_atomic(os.path.join(directory, VOCAB_FILE), lines)
        meta = {
            "type": self.type_name,
            "config": self.get_config(),
            "vocab_size": len(self._vocabulary),
            "format": _FORMAT_VERSION,
        }
        _write_atomic(
            os.path.join(directory, CONFIG_FILE), json.dumps(meta, indent=2) + "\n"
        )

    @classmethod
    def from_config(cls, config):
        """Builds an unfitted tokenizer from `get_config()` output."""
        return cls(**config)

    def __repr__(self):
        size = len(self._vocabulary) if self._vocabulary is not None else None
        return f"{type(self).__name__}({self.get_config()}, vocab_size={size})"


def add_special_ids(ids, add_bos=False, add_eos=False):
    """Prepends BOS_ID and/or appends EOS_ID to every row of ragged ids.

    Args:
        ids: int32 `tf.RaggedTensor` [N, None].
        add_bos, add_eos: Python bools.

    Returns:
        int32 `tf.RaggedTensor` [N, None].
    """
    parts = []
    n = ids.nrows()
    if add_bos:
        parts.append(tf.RaggedTensor.from_tensor(tf.fill([n, 1], BOS_ID)))
    parts.append(ids)
    if add_eos:
        parts.append(tf.RaggedTensor.from_tensor(tf.fill([n, 1], EOS_ID)))
    if len(parts) == 1:
        return ids
    return tf.concat(parts, axis=1)


def _ids_to_array(ids_batch):
    """A list of id lists or an int array -> int32 numpy [N, T], 0-padded."""
    if isinstance(ids_batch, (tf.Tensor, tf.RaggedTensor)):
        if isinstance(ids_batch, tf.RaggedTensor):
            ids_batch = ids_batch.to_tensor()
        ids_batch = ids_batch.numpy()
    if isinstance(ids_batch, np.ndarray):
        if ids_batch.ndim != 2:
            raise ValueError(f"ids must have shape [N, T], got {ids_batch.shape}")
        if not np.issubdtype(ids_batch.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {ids_batch.dtype}")
        return ids_batch.astype(np.int64)
    if isinstance(ids_batch, (str, bytes)) or not hasattr(ids_batch, "__iter__"):
        raise TypeError(
            f"ids_batch must be a list of id lists, got {type(ids_batch).__name__}"
        )
    rows = list(ids_batch)
    width = 0
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
            raise TypeError(
                f"ids_batch[{i}] must be a list of ints, got {type(row).__name__}"
            )
        row = list(row)
        for v in row:
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise TypeError(
                    f"ids_batch[{i}] holds a non-integer: {v!r} "
                    f"({type(v).__name__})"
                )
        rows[i] = row
        width = max(width, len(row))
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _check_cap(max_tokens, min_frequency):
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise TypeError(f"max_tokens must be an int or None, got {max_tokens!r}")
        if max_tokens <= len(RESERVED_TOKENS):
            raise ValueError(
                f"max_tokens counts the {len(RESERVED_TOKENS)} reserved tokens "
                f"and must be > {len(RESERVED_TOKENS)}, got {max_tokens}"
            )
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int):
        raise TypeError(f"min_frequency must be an int, got {min_frequency!r}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")


class WordTokenizer(Tokenizer):
    """Word-level tokenizer: words plus one token per punctuation mark.

    See the module docstring for the exact splitting and joining rules.
    Runs with core TF ops only, so its exported module needs no
    tensorflow_text.

    Args:
        lowercase: bool. Lower-case the text (Unicode rules). Default True.
        max_tokens: int or None. Maximum vocabulary size, the 4 reserved
            tokens included; the most frequent tokens are kept.
        min_frequency: int. Tokens seen fewer times are left out (-> UNK).
        keep_newlines: bool. Keep "\\n" as a token (for language models
            whose output should keep paragraphs). Default False.

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
                 keep_newlines=False):
        super().__init__()
        _check_cap(max_tokens, min_frequency)
        self.lowercase = bool(lowercase)
        self.max_tokens = max_tokens
        self.min_frequency = min_frequency
        self.keep_newlines = bool(keep_newlines)

    def get_config(self):
        return {
            "lowercase": self.lowercase,
            "max_tokens": self.max_tokens,
            "min_frequency": self.min_frequency,
            "keep_newlines": self.keep_newlines,
        }

    def _split_eager(self, strings):
        return split_words(strings, self.lowercase, self.keep_newlines)

    def _fit_vocabulary(self, texts):
        counts = self._count_tokens(texts)
        return self._vocabulary_from_counts(
            counts, self.max_tokens, self.min_frequency
        )

    def _make_module(self):
        return _WordModule(self._vocabulary, self.lowercase, self.keep_newlines)


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

    def _fit_vocabulary(self, texts):
        counts = self._count_tokens(texts)
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
    loading a SavedModel that contains it; stock TF Serving does not ship
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

    def _fit_vocabulary(self, texts):
        import keras_hub

        word_batches = []
        for start in range(0, len(texts), _CHUNK):
            chunk = tf.constant(texts[start : start + _CHUNK], dtype=tf.string)
            words = self._split_eager(chunk).flat_values
            if tf.size(words) > 0:
                word_batches.append(words)
        if not word_batches:
            return list(RESERVED_TOKENS)
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


TOKENIZERS = {
    WordTokenizer.type_name: WordTokenizer,
    CharTokenizer.type_name: CharTokenizer,
    WordPieceTokenizer.type_name: WordPieceTokenizer,
}


def tokenizer_from_config(type_name, config):
    """Builds an unfitted tokenizer from its `type_name` and `get_config()`.

    Raises:
        ValueError: unknown `type_name` (the message lists the known ones).
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
        A fitted `WordTokenizer`, `CharTokenizer` or `WordPieceTokenizer`.

    Raises:
        RunDirError: the directory or a file is missing, unreadable or
            inconsistent (unknown type, vocabulary size mismatch, reserved
            tokens missing).
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
    try:
        with open(vocab_path, encoding="utf-8", newline="") as f:
            raw = f.read()
    except UnicodeDecodeError as e:
        raise RunDirError(f"{vocab_path}: not UTF-8 ({e.reason})") from None
    lines = raw.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # A "\r" in a token is escaped, so a raw one is a CRLF line end.
    vocabulary = [
        _unescape_token(line[:-1] if line.endswith("\r") else line, f"{vocab_path}:{i + 1}")
        for i, line in enumerate(lines)
    ]
    if len(vocabulary) != expected_size:
        raise RunDirError(
            f"{vocab_path} has {len(vocabulary)} tokens but {CONFIG_FILE} "
            f"says vocab_size={expected_size}"
        )
    try:
        tokenizer = tokenizer_from_config(type_name, config)
        tokenizer.set_vocabulary(vocabulary)
    except (TypeError, ValueError) as e:
        raise RunDirError(f"{directory}: invalid tokenizer ({e})") from None
    return tokenizer
