"""`SentencePieceTokenizer`: subword vocabularies (unigram or BPE) learned with SentencePiece.

Training uses the `sentencepiece` package; encoding and decoding, in Python
and in an exported SavedModel alike, run `tensorflow_text.SentencepieceTokenizer`
over the same model proto, so the two cannot disagree.
"""

import io
import os
import re

import tensorflow as tf

from keras_seq.errors import DataError
from keras_seq.errors import RunDirError
from keras_seq.text.modules import _SentencePieceModule
from keras_seq.text.tokenizers import Tokenizer
from keras_seq.text.vocabulary import BOS_ID
from keras_seq.text.vocabulary import BOS_TOKEN
from keras_seq.text.vocabulary import EOS_ID
from keras_seq.text.vocabulary import EOS_TOKEN
from keras_seq.text.vocabulary import PAD_ID
from keras_seq.text.vocabulary import PAD_TOKEN
from keras_seq.text.vocabulary import RESERVED_TOKENS
from keras_seq.text.vocabulary import UNK_ID
from keras_seq.text.vocabulary import UNK_TOKEN

__all__ = ["MODEL_FILE", "SentencePieceTokenizer"]

MODEL_FILE = "sentencepiece.model"
"""The SentencePiece model proto, next to `vocab.txt` and `tokenizer.json`."""

MODEL_TYPES = ("unigram", "bpe")
# SentencePiece's message when vocab_size < distinct characters + reserved pieces.
_TOO_SMALL = re.compile(r"smaller than required_chars\. (\d+) vs (\d+)")


class SentencePieceTokenizer(Tokenizer):
    """Subword tokenizer: a SentencePiece unigram or BPE model (Kudo & Richardson, 2018).

    Learned on raw sentences (no pre-tokenization; spaces are kept as the
    "▁" prefix of pieces), cased, with every character of the training text
    in the vocabulary (`character_coverage=1.0`). Text is normalized with
    SentencePiece's `nmt_nfkc` rule first: Unicode NFKC (so "…" becomes
    "...", "ﬁ" becomes "fi"; accented letters such as é, ç, œ are kept),
    every kind of space (no-break, narrow no-break, ...) becomes a space,
    control characters are removed and runs of spaces collapse. Decoding
    gives that normalized text back: `decode(encode([t]))` equals `t` for
    text made of characters seen in training, up to this normalization.

    Unknown characters (a script or an emoji absent from the training text)
    encode as `UNK_ID` (a run of them as one UNK) and decode as the text
    "<unk>", like an unknown word of `WordTokenizer`: "I ♥ 東京" decodes as
    "I <unk> <unk>" when neither ♥ nor 東京 was seen.

    The reserved ids are those of every keras_seq tokenizer (`PAD_ID=0`,
    `UNK_ID=1`, `BOS_ID=2`, `EOS_ID=3`): the SentencePiece model is trained
    with them, so its ids are the vocabulary's ids.

    Encoding and decoding need tensorflow_text (`SentencepieceOp`,
    `SentencepieceTokenizeOp`, `SentencepieceDetokenizeOp`); so does a
    SavedModel that embeds `as_module()` (import `tensorflow_text` before
    loading it). `save` writes `sentencepiece.model` (the model proto) next
    to `vocab.txt` and `tokenizer.json`.

    Args:
        vocab_size: int. Most tokens, the 4 reserved ones included (a soft
            limit: a small corpus may give fewer). It must leave room for
            every distinct character of the training text.
        model_type: "unigram" (SentencePiece's default) or "bpe".

    Example:

    >>> tok = SentencePieceTokenizer(200, "bpe").fit(sentences)  # doctest: +SKIP
    >>> tok.tokenize(["Ça va très bien."])  # doctest: +SKIP
    [['▁Ça', '▁va', '▁très', '▁bien', '.']]
    >>> tok.decode(tok.encode(["Ça va très bien."]))  # doctest: +SKIP
    ['Ça va très bien.']
    """

    type_name = "sentencepiece"
    requires = ("tensorflow_text",)

    def __init__(self, vocab_size=8000, model_type="unigram"):
        super().__init__()
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
        if vocab_size <= len(RESERVED_TOKENS):
            raise ValueError(
                f"vocab_size counts the {len(RESERVED_TOKENS)} reserved tokens "
                f"and must be > {len(RESERVED_TOKENS)}, got {vocab_size}"
            )
        if model_type not in MODEL_TYPES:
            raise ValueError(
                f"model_type must be one of {', '.join(MODEL_TYPES)}; got {model_type!r}"
            )
        self.target_vocab_size = vocab_size
        self.model_type = model_type
        self._model_proto = None

    def get_config(self):
        return {"vocab_size": self.target_vocab_size, "model_type": self.model_type}

    @property
    def model_proto(self):
        """The serialized SentencePiece model (bytes)."""
        self._require_vocabulary()
        return self._model_proto

    def _fit_vocabulary(self, texts, bar=None):
        import sentencepiece

        if not any(t.strip() for t in texts):
            return list(RESERVED_TOKENS)  # Tokenizer.fit says there is no token
        out = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=out,
                vocab_size=self.target_vocab_size, model_type=self.model_type,
                hard_vocab_limit=False, character_coverage=1.0,
                normalization_rule_name="nmt_nfkc",
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
                pad_piece=PAD_TOKEN, unk_piece=UNK_TOKEN, bos_piece=BOS_TOKEN,
                eos_piece=EOS_TOKEN, unk_surface=UNK_TOKEN,
                num_threads=max(1, min(4, os.cpu_count() or 1)), minloglevel=2,
            )
        except RuntimeError as e:
            raise DataError(self._training_error(str(e), len(texts))) from None
        if bar is not None:
            bar.add(len(texts))
        self._model_proto = _by_frequency(out.getvalue(), texts)
        return _pieces(self._model_proto)

    def _training_error(self, message, num_texts):
        too_small = _TOO_SMALL.search(message)
        if too_small:
            need = int(too_small.group(2))
            return (
                f"vocabulary size {self.target_vocab_size} is too small for the data: its "
                f"{need - len(RESERVED_TOKENS)} distinct characters and the "
                f"{len(RESERVED_TOKENS)} reserved tokens need at least {need}; raise the "
                "vocabulary size"
            )
        last = message.strip().splitlines()[-1] if message.strip() else "unknown error"
        return f"SentencePiece could not learn a vocabulary from {num_texts} text(s): {last}"

    def set_vocabulary(self, vocabulary):
        """Sets the vocabulary; it must be the pieces of the loaded model proto."""
        if self._model_proto is None:
            raise ValueError(
                "a SentencePieceTokenizer takes its vocabulary from its model: "
                "use fit(texts) or load_tokenizer(directory)"
            )
        if list(vocabulary) != _pieces(self._model_proto):
            raise ValueError(f"the vocabulary does not match the pieces of {MODEL_FILE}")
        return super().set_vocabulary(vocabulary)

    def _make_module(self):
        return _SentencePieceModule(self._vocabulary, self._model_proto)

    def _run_module(self, function, *args):
        try:
            return super()._run_module(function, *args)
        except tf.errors.NotFoundError:
            # The SentencepieceOp resource belongs to its eager kernel
            # (tensorflow_text's TODO b/318839908), which `tf.random.set_seed`
            # (Keras seeding, training) drops with TF's kernel cache: rebuild it.
            with tf.init_scope():
                self._module = self._make_module()
            return super()._run_module(function, *args)

    def _save_files(self, directory):
        _write_bytes_atomic(os.path.join(directory, MODEL_FILE), self._model_proto)

    def _load_files(self, directory):
        path = os.path.join(directory, MODEL_FILE)
        if not os.path.isfile(path):
            raise RunDirError(f"not a tokenizer directory: {directory} (missing {MODEL_FILE})")
        with open(path, "rb") as f:
            proto = f.read()
        try:
            _pieces(proto)
        except Exception as e:  # sentencepiece raises RuntimeError or OSError
            raise RunDirError(f"{path}: not a SentencePiece model ({e})") from None
        self._model_proto = proto


def _by_frequency(model_proto, texts):
    """The model with its pieces renumbered by decreasing frequency in `texts`.

    SentencePiece numbers BPE pieces in merge order (single characters last)
    and unigram pieces by score, but keras_seq's sampled softmax draws its
    negatives log-uniformly over the ids, which assumes id order is frequency
    order (`keras_seq.layers.sampled_softmax`); so do `LogUniformPrior` output
    biases. Only the ids change: segmentation uses each piece's score, which
    moves with it, so every text encodes to the same pieces. The reserved
    pieces keep their ids; ties keep SentencePiece's order.
    """
    import numpy as np
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
    size = processor.get_piece_size()
    counts = np.zeros(size, np.int64)
    for ids in processor.encode(list(texts)):
        counts += np.bincount(np.asarray(ids, np.int64), minlength=size)
    reserved = len(RESERVED_TOKENS)
    order = reserved + np.argsort(-counts[reserved:], kind="stable")
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(model_proto)
    pieces = [model.pieces[i] for i in range(size)]
    kept = [pieces[i] for i in range(reserved)] + [pieces[i] for i in order]
    copies = [type(p)() for p in kept]
    for copy, piece in zip(copies, kept):
        copy.CopyFrom(piece)
    del model.pieces[:]
    model.pieces.extend(copies)
    return model.SerializeToString()


def _pieces(model_proto):
    """The pieces of a SentencePiece model, in id order."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _write_bytes_atomic(path, data):
    from keras_seq.runs import atomic_write  # fsync, rename, the umask's mode

    with atomic_write(path, "wb") as f:
        f.write(data)
