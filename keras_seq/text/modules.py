"""In-graph tokenizers: the `tf.Module`s that tokenizers export.

`TokenizerModule` holds the vocabulary and its lookup table; the subclasses
add the splitting and joining of each tokenizer type. The word and character
modules use core TensorFlow ops only; the WordPiece module's encoding and
the SentencePiece module need tensorflow_text.
"""

import tensorflow as tf

from keras_seq.text.splitting import _WORD_DETOKENIZE_RULES
from keras_seq.text.splitting import join_words
from keras_seq.text.splitting import split_chars
from keras_seq.text.splitting import split_words
from keras_seq.text.vocabulary import BOS_ID
from keras_seq.text.vocabulary import EOS_ID
from keras_seq.text.vocabulary import PAD_ID
from keras_seq.text.vocabulary import UNK_ID
from keras_seq.text.vocabulary import UNK_TOKEN


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

    def _join_ids(self, ids):
        # ids: int32 ragged [N, None], specials removed -> tf.string [N]
        return self._join(tf.gather(self._vocab, ids))

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
        return self._join_ids(kept)

    @tf.function(input_signature=[])
    def vocabulary(self):
        return tf.identity(self._vocab)


class _WordModule(TokenizerModule):
    def __init__(self, vocabulary, lowercase, keep_newlines, split_elisions=False, name=None):
        super().__init__(vocabulary, name=name)
        self._lowercase = lowercase
        self._keep_newlines = keep_newlines
        self._split_elisions = split_elisions

    def _split(self, strings):
        return self.split_surface(strings, self._lowercase)

    def split_surface(self, strings, lowercase=False):
        """The words of `strings` as `_split` cuts them, cased as written by default."""
        return split_words(strings, lowercase, self._keep_newlines, self._split_elisions)

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


class _SentencePieceModule(TokenizerModule):
    """SentencePiece (`tensorflow_text.SentencepieceTokenizer`) over a model proto.

    The model proto is a constant of the exported graph; the SentencePiece
    ids are the vocabulary's ids (the model was trained with our reserved
    ids), so no remapping is needed.
    """

    def __init__(self, vocabulary, model_proto, name=None):
        import tensorflow_text as tf_text

        super().__init__(vocabulary, name=name)
        self._sentencepiece = tf_text.SentencepieceTokenizer(
            model=model_proto, out_type=tf.int32, add_bos=False, add_eos=False
        )

    def _encode(self, strings):
        return self._sentencepiece.tokenize(strings)  # int32 ragged [N, None]

    def _split(self, strings):
        return tf.gather(self._vocab, self._encode(strings))

    def _join_ids(self, ids):
        return self._sentencepiece.detokenize(ids)


def add_special_ids(ids, add_bos=False, add_eos=False):
    """Prepends BOS_ID and/or appends EOS_ID to every row of ragged ids.

    Args:
        ids: int32 `tf.RaggedTensor` [N, None].
        add_bos, add_eos: Python bools.

    Returns:
        int32 `tf.RaggedTensor` [N, None].

    Example:

    >>> add_special_ids(tf.ragged.constant([[7, 8], [9]]), add_eos=True).to_list()
    [[7, 8, 3], [9, 3]]
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
