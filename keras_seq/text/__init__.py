"""Tokenizers and vocabularies: word, character, WordPiece and SentencePiece.

Four tokenizers share one API:

- `WordTokenizer`: lower-cased words with each punctuation mark as its own
  token, as in the word-level Anna Karenina (Udacity) example.
- `CharTokenizer`: one token per Unicode character (lossless).
- `WordPieceTokenizer`: sub-words learned with
  `keras_hub.tokenizers.compute_word_piece_vocabulary` and applied with
  `tensorflow_text.FastWordpieceTokenizer` on top of the word splitter.
- `SentencePieceTokenizer`: cased sub-words of raw text (unigram or BPE),
  learned with the `sentencepiece` package and applied with
  `tensorflow_text.SentencepieceTokenizer` (see `keras_seq.text.subword`
  for its normalization and its unknown characters).

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
    tok.requires -> tuple[str]          # packages whose ops as_module() needs

The Python methods (`tokenize`, `encode`, `decode`) run the very same
TensorFlow functions as the in-graph ones (`TokenizerModule.tokenize/encode/
decode`), eagerly, so Python and exported tokenization cannot disagree.

The word and character tokenizers use only core TensorFlow ops
(`tf.strings.*`, `tf.lookup.StaticHashTable`, `tf.gather`): a SavedModel that
embeds their `as_module()` loads and runs in stock TensorFlow or TF Serving,
without tensorflow_text or keras_seq. The WordPiece tokenizer's *encode* needs
the tensorflow_text `FastWordpieceTokenizeWithOffsets` op (import
`tensorflow_text` before loading such a SavedModel); its *decode* is core TF
only. The SentencePiece tokenizer needs tensorflow_text both ways. TF
Serving's model server links tensorflow_text's kernels
(`@org_tensorflow_text//tensorflow_text:ops_lib`, which holds the
SentencePiece and fast WordPiece ops, in `SUPPORTED_TENSORFLOW_OPS` of
tensorflow_serving/model_servers/BUILD), so it serves both; runtimes with
core TensorFlow ops only (TF Lite without the tf-text ops, TF.js, ONNX) do not.

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
   With `split_elisions=True`, an elided word at the start of a word
   ("c' d' j' l' m' n' s' t' qu' jusqu' lorsqu' puisqu'", either case) is a
   token of its own: "l'homme" -> "l'", "homme"; "qu'il" -> "qu'", "il"
   ("aujourd'hui", "don't" and "Tom's" stay whole).
4. Words are separated by whitespace. With `keep_newlines=True` every "\\n"
   is a token of its own ("\\r\\n" and "\\r" count as "\\n"), so generated
   text keeps its paragraphs; otherwise newlines are ordinary spaces.

Word-level decoding joins tokens with spaces and then re-attaches punctuation:
no space before `. , ; : ! ? % ) ] } » ” … ‽`, none after `( [ { « “ ¿ ¡ $`,
paired straight quotes (double or single) and `_` hug their content
(`" yes "` -> `"yes"`), a run of hyphens hugs its neighbours
("a - - b" -> "a--b"), an elided word hugs the next ("l' homme" ->
"l'homme") and newlines take no spaces. So
`"hello , world ."` decodes to `"hello, world."`. Spacing the original had
around punctuation (French "Salut !") and stand-alone apostrophes are not
restored; `tokenize(decode(encode(t)))` equals
`tokenize(t)` whenever `t` has no unknown words.

Reserved ids (fixed for every tokenizer): `PAD_ID=0 "<pad>"`,
`UNK_ID=1 "<unk>"`, `BOS_ID=2 "<s>"`, `EOS_ID=3 "</s>"`.

Modules: `vocabulary` (reserved ids, vocabulary files), `splitting` (the word
and character splitters), `modules` (the in-graph `tf.Module`s), `checks`
(input checks) and `tokenizers` (the tokenizers, `load_tokenizer`).
"""

from keras_seq.text.checks import _check_cap
from keras_seq.text.checks import _check_string_tensor
from keras_seq.text.checks import _check_texts
from keras_seq.text.checks import _ids_to_array
from keras_seq.text.checks import _to_str
from keras_seq.text.modules import TokenizerModule
from keras_seq.text.modules import _CharModule
from keras_seq.text.modules import _SentencePieceModule
from keras_seq.text.modules import _WordModule
from keras_seq.text.modules import _WordPieceModule
from keras_seq.text.modules import add_special_ids
from keras_seq.text.splitting import _JOINERS
from keras_seq.text.splitting import _NEWLINE_MARK
from keras_seq.text.splitting import _PLACEHOLDERS
from keras_seq.text.splitting import _WORD_DETOKENIZE_RULES
from keras_seq.text.splitting import join_words
from keras_seq.text.splitting import split_chars
from keras_seq.text.splitting import split_words
from keras_seq.text.tokenizers import TOKENIZERS
from keras_seq.text.tokenizers import _CHUNK
from keras_seq.text.tokenizers import CharTokenizer
from keras_seq.text.tokenizers import Tokenizer
from keras_seq.text.tokenizers import WordPieceTokenizer
from keras_seq.text.tokenizers import WordTokenizer
from keras_seq.text.tokenizers import load_tokenizer
from keras_seq.text.subword import MODEL_FILE
from keras_seq.text.subword import SentencePieceTokenizer
from keras_seq.text.tokenizers import tokenizer_from_config
from keras_seq.text.vocabulary import BOS_ID
from keras_seq.text.vocabulary import BOS_TOKEN
from keras_seq.text.vocabulary import CONFIG_FILE
from keras_seq.text.vocabulary import EOS_ID
from keras_seq.text.vocabulary import EOS_TOKEN
from keras_seq.text.vocabulary import PAD_ID
from keras_seq.text.vocabulary import PAD_TOKEN
from keras_seq.text.vocabulary import RESERVED_TOKENS
from keras_seq.text.vocabulary import UNK_ID
from keras_seq.text.vocabulary import UNK_TOKEN
from keras_seq.text.vocabulary import VOCAB_FILE
from keras_seq.text.vocabulary import _FORMAT_VERSION
from keras_seq.text.vocabulary import _check_vocabulary
from keras_seq.text.vocabulary import _escape_token
from keras_seq.text.vocabulary import _read_vocabulary_file
from keras_seq.text.vocabulary import _unescape_token
from keras_seq.text.vocabulary import _write_atomic
from keras_seq.text.vocabulary import _write_vocabulary_file
