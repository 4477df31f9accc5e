"""The translation jobs behind `keras-seq train-translator`, `translate`, `evaluate`, `export`.

Each public job function takes the `argparse.Namespace` built by
`keras_seq.cli` (attribute names listed there) and prints its results on
stdout; progress and warnings go to stderr. Errors a user can fix are
`keras_seq.errors.KerasSeqError` subclasses (one line, no traceback).

The default recipe (what `keras-seq train-translator` does with no flags)
-----------------------------------------------------------------------
Chosen for quality per CPU-minute on corpora of 10k-200k sentence pairs
(measurements in benchmarks/RESULTS.md, "Attention translator (issue 4)"):

- Data: pairs `source<TAB>target` (`--reverse` swaps the columns). A seeded
  split keeps every translation of a source sentence in one split:
  validation and test get 5% of the pairs each, at most 2,500 pairs each
  (more adds little to the estimate and takes pairs from training). The test
  split is never used for training or model selection.
- Tokens: word level, vocabulary learned on the training split only, words
  seen at least twice, at most 16,000 source and 8,000 target words (the
  target vocabulary is the output softmax, the main cost of a training step
  on a CPU). The source is lower-cased; the target keeps its case, so
  translations come out capitalised like the references. Pairs with a side
  longer than 50 tokens are dropped from training.
- Model: `AttentionSeq2Seq`, embeddings 256, a bidirectional 1-layer LSTM
  encoder of 256 units per direction, a 1-layer LSTM decoder of 256 units
  initialised from the bridged encoder states, Bahdanau (additive)
  attention, no input feeding, dropout 0.3, full teacher forcing.
- Training: a sampled softmax over 512 negatives (log-uniform candidates;
  the target ids are sorted by frequency) when the target vocabulary has at
  least 2,048 words, the full softmax with label smoothing 0.1 below that;
  validation always scores the full softmax (cross-entropy over the real
  target tokens). Adam (learning rate 2e-3 after a linear warmup over the
  first 300 steps, which keeps the sampled softmax from stalling at the
  start; gradient clipping at global norm 5), batches of 64 pairs bucketed
  by length, the learning rate halved
  whenever the validation loss does not improve, early stopping after 3
  evaluations without improvement and the best weights kept. An "epoch" is one pass over
  the training pairs or 1,000 batches, whichever is less, so large corpora
  are still validated, checkpointed and scheduled every few minutes.
- Decoding: beam search, beam 5, GNMT length penalty 0.6; an `<unk>` in the
  output is replaced by the source word the model attended to most when it
  emitted it (Luong et al., 2015), so names and numbers outside the
  vocabulary are copied.

Run directory (`keras_seq.runs`):

    config.json   {"task": "translator",
                   "model": {"type": "rnn" | "transformer", "config": {...}},
                   "tokenizer": {"source": {"type", "config", "vocab_size"},
                                 "target": {...}},
                   "training": TrainConfig.to_dict(),
                   "recipe": {"label_smoothing", "steps_per_epoch_cap"},
                   (the sampled softmax is model.config.sampled_softmax)
                   "data": {"spec", "reverse", "max_pairs", "split_seed",
                            "val_fraction", "test_fraction", "max_length",
                            "pairs": {"train", "valid", "test"}},
                   "decoding": {"beam", "length_penalty", "unk_replace"}}
    vocab/source/, vocab/target/   the tokenizers
    checkpoints/, logs/            written by keras_seq.training

Bad input in `translate` (each reported on stderr with its line number; the
other lines are still translated, and the output keeps one line per input
line):

- an empty or blank line: an empty output line;
- a line that is not valid UTF-8 (when the reader passes it as bytes): an
  empty output line and exit status 1 once every line is done;
- a line made only of words outside the vocabulary: translated, with a
  warning (the result is a guess; unknown words are copied by the `<unk>`
  replacement). The exported SavedModel refuses such lines instead;
- a line longer than the model's maximum source length: its first tokens are
  translated, with a warning;
- `--beam 0` or `--n-best` above the beam: an error before anything runs.
"""

import dataclasses
import math
import os
import sys
import time

from keras_seq import errors
from keras_seq import runs
from keras_seq.tasks.common import pick
from keras_seq.tasks.common import sampled_softmax_from_args
from keras_seq.tasks.common import say
from keras_seq.tasks.common import transformer_width
from keras_seq.tasks.common import train_namespace

__all__ = [
    "RECIPE",
    "TRAIN_DEFAULTS",
    "TRANSFORMER_RECIPE",
    "TRANSFORMER_TRAIN_DEFAULTS",
    "Translation",
    "Translator",
    "evaluate",
    "export",
    "load_split",
    "train",
    "train_args",
    "translate",
]

VAL_FRACTION = 0.05
TEST_FRACTION = 0.05
# Most pairs in each of the validation and test splits.
MAX_HELD_OUT = 2500
DEFAULT_SPLIT_SEED = 1234
# Longest "epoch" in batches: validation, checkpoints, the plateau schedule
# and early stopping run at least this often.
STEPS_PER_EPOCH_CAP = 1000
# Validation sentences translated (greedy) for the BLEU printed after training.
VALID_BLEU_SENTENCES = 500
DECODE_BATCH = 64
# Calls translating at most this many sentences decode eagerly (decode_mode="auto").
EAGER_MAX_SENTENCES = 256

# Model and data defaults of the recurrent translator (flags win).
RECIPE = dict(
    tokenizer="word",
    source_vocab_size=16000,
    target_vocab_size=8000,
    min_frequency=2,
    max_length=50,
    embedding_dim=256,
    units=256,
    layers=1,
    cell="lstm",
    bidirectional=True,
    attention="bahdanau",
    input_feeding=False,
    dropout=0.3,
    teacher_forcing_ratio=1.0,
    label_smoothing=0.1,
    sampled_softmax=512,
)
# Target vocabularies smaller than this train with the full softmax.
SAMPLED_SOFTMAX_MIN_VOCAB = 2048
TRAIN_DEFAULTS = dict(
    epochs=30, batch_size=64, optimizer="adam", learning_rate=2e-3, warmup_steps=300,
    clipnorm=5.0, lr_schedule="plateau", decay_rate=0.5, plateau_patience=1, patience=3,
)
TRANSFORMER_RECIPE = dict(RECIPE, units=256, layers=3, dropout=0.1, num_heads=4,
                          label_smoothing=0.0)
TRANSFORMER_TRAIN_DEFAULTS = dict(TRAIN_DEFAULTS, learning_rate=5e-4, warmup_steps=400)
DECODING_DEFAULTS = dict(beam=5, length_penalty=0.6, unk_replace=True)
# Character-level sentences are longer.
_CHAR_MAX_LENGTH = 200


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def held_out_fractions(num_pairs, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION,
                       max_held_out=MAX_HELD_OUT):
    """Validation and test fractions for a corpus of `num_pairs` pairs.

    5% each, but at most `max_held_out` pairs each.

    Returns:
        `(val_fraction, test_fraction)`.
    """
    if num_pairs <= 0:
        return val_fraction, test_fraction
    cap = max_held_out / num_pairs
    return min(val_fraction, cap), min(test_fraction, cap)


def load_corpus(spec, *, reverse=False, max_pairs=None):
    """Loads sentence pairs, optionally swapping the columns.

    Returns:
        list of `(source, target)`.
    """
    from keras_seq import data as data_lib

    pairs = data_lib.load_pairs(spec, max_pairs=max_pairs)
    if reverse:
        pairs = [(t, s) for s, t in pairs]
    return pairs


def split_corpus(pairs, seed, val_fraction, test_fraction):
    """`keras_seq.data.split_pairs` with a clear error for tiny corpora.

    Returns:
        `{"train": [...], "valid": [...], "test": [...]}`.
    """
    from keras_seq import data as data_lib

    train_pairs, valid_pairs, test_pairs = data_lib.split_pairs(
        pairs, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    splits = {"train": train_pairs, "valid": valid_pairs, "test": test_pairs}
    for name, part in splits.items():
        if not part:
            raise errors.DataError(
                f"{len(pairs)} sentence pairs are too few to split into train/valid/test "
                f"({val_fraction:.1%} validation, {test_fraction:.1%} test): the {name} split "
                "is empty; give more pairs"
            )
    return splits


def load_split(run_config, split):
    """Rebuilds one split of a run's data exactly as training made it.

    Args:
        run_config: the run's config.json dict.
        split: "train", "valid" or "test".

    Returns:
        list of `(source, target)` pairs.
    """
    info = run_config.get("data")
    if not isinstance(info, dict) or "spec" not in info:
        raise errors.RunDirError("the run's config.json has no 'data' entry; retrain the run")
    pairs = load_corpus(info["spec"], reverse=info.get("reverse", False),
                        max_pairs=info.get("max_pairs"))
    splits = split_corpus(pairs, info["split_seed"], info["val_fraction"], info["test_fraction"])
    return splits[split]


def make_tokenizer(tokenizer_type, vocab_size, min_frequency, *, lowercase):
    """A fresh (unfitted) tokenizer of one side of the translator."""
    from keras_seq import text as text_lib

    if tokenizer_type == "word":
        return text_lib.WordTokenizer(lowercase=lowercase, max_tokens=vocab_size,
                                      min_frequency=min_frequency)
    if tokenizer_type == "wordpiece":
        return text_lib.WordPieceTokenizer(vocab_size=vocab_size or 8000, lowercase=lowercase)
    if tokenizer_type == "char":
        return text_lib.CharTokenizer(lowercase=lowercase, max_tokens=vocab_size,
                                      min_frequency=min_frequency)
    raise errors.InputError(f"unknown tokenizer {tokenizer_type!r}; use word, wordpiece or char")


def _tokenizer_info(tokenizer):
    return {"type": tokenizer.type_name, "config": tokenizer.get_config(),
            "vocab_size": tokenizer.vocab_size}


def _encode_pairs(source_tokenizer, target_tokenizer, pairs):
    sources = source_tokenizer.encode([s for s, _ in pairs])
    targets = target_tokenizer.encode([t for _, t in pairs])
    # A side that tokenizes to nothing (e.g. only control characters) cannot
    # be learned from; the pipeline needs >= 1 token per side.
    kept = [(s, t) for s, t in zip(sources, targets) if s and t]
    return [s for s, _ in kept], [t for _, t in kept]


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------


def model_config_from_args(args, source_vocab, target_vocab, max_length):
    """`{"type", "config"}` of a new translator from the train-translator flags."""
    family = getattr(args, "model", None) or "rnn"
    if family == "transformer":
        d = TRANSFORMER_RECIPE
        units = transformer_width(args, d["units"], d["num_heads"])
        for flag, value in (("--cell", args.cell), ("--attention", args.attention),
                            ("--input-feeding", args.input_feeding),
                            ("--bidirectional", args.bidirectional),
                            ("--teacher-forcing-ratio", args.teacher_forcing_ratio)):
            if value is not None:
                raise errors.InputError(f"{flag} applies to --model rnn, not to the Transformer")
        # The Transformer recipe trains with the full softmax unless asked.
        sampled = sampled_softmax_from_args(args, 0, target_vocab, "target vocabulary")
        config = dict(
            source_vocab_size=source_vocab, target_vocab_size=target_vocab, d_model=units,
            num_heads=d["num_heads"], ff_dim=4 * units, num_layers=pick(args.layers, d["layers"]),
            dropout=pick(args.dropout, d["dropout"]), max_length=max_length + 1,
            sampled_softmax=sampled,
        )
        return {"type": "transformer", "config": config}
    d = RECIPE
    # The recipe's sampled softmax pays off on vocabularies well above its
    # sample; small ones train with the full softmax.
    default = d["sampled_softmax"] if target_vocab >= SAMPLED_SOFTMAX_MIN_VOCAB else 0
    sampled = sampled_softmax_from_args(args, default, target_vocab, "target vocabulary")
    config = dict(
        source_vocab_size=source_vocab,
        target_vocab_size=target_vocab,
        embedding_dim=pick(args.embedding_dim, d["embedding_dim"]),
        units=pick(args.units, d["units"]),
        num_layers=pick(args.layers, d["layers"]),
        cell=pick(args.cell, d["cell"]),
        bidirectional=pick(args.bidirectional, d["bidirectional"]),
        attention=pick(args.attention, d["attention"]),
        input_feeding=pick(args.input_feeding, d["input_feeding"]),
        dropout=pick(args.dropout, d["dropout"]),
        teacher_forcing_ratio=pick(args.teacher_forcing_ratio, d["teacher_forcing_ratio"]),
        max_length=max_length + 1,  # + EOS
    )
    if sampled:
        config["sampled_softmax"] = sampled
    return {"type": "rnn", "config": config}


def build_model(model_info):
    """An uncompiled `AttentionSeq2Seq` or `Transformer` from `config["model"]`."""
    from keras_seq import models

    kind = model_info.get("type")
    config = dict(model_info.get("config") or {})
    try:
        if kind == "rnn":
            return models.AttentionSeq2Seq(**config)
        if kind == "transformer":
            return models.Transformer(**config)
    except TypeError as e:
        raise errors.RunDirError(f"config.json describes a model this version cannot build: {e}") from e
    raise errors.RunDirError(f"unknown translator type {kind!r} in config.json")


def label_smoothed_loss(smoothing, pad_id=0):
    """Masked cross-entropy with label smoothing, as a Keras loss function.

    `(1 - smoothing) * NLL(target) + smoothing * mean_v(-log p_v)` averaged
    over the non-padded target tokens (with `smoothing=0` exactly
    `keras_seq.models.masked_loss()`).

    Args:
        smoothing: float in [0, 1).
        pad_id: the padding id, ignored.

    Returns:
        A function `loss(y_true [B, T] int, y_pred [B, T, V] logits) -> scalar`.
    """
    import keras
    from keras import ops

    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing!r}")
    if smoothing == 0.0:
        from keras_seq.models import masked_loss

        return masked_loss(pad_id)

    def masked_smoothed_cross_entropy(y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        logp = ops.log_softmax(logits, axis=-1)  # [B, T, V]
        mask = ops.cast(ops.not_equal(y_true, pad_id), "float32")
        labels = ops.where(ops.not_equal(y_true, pad_id), y_true, ops.zeros_like(y_true))
        nll = -ops.squeeze(ops.take_along_axis(logp, ops.expand_dims(labels, -1), axis=-1), -1)
        uniform = -ops.mean(logp, axis=-1)
        per_token = (1.0 - smoothing) * nll + smoothing * uniform
        return ops.divide_no_nan(ops.sum(per_token * mask), ops.sum(mask))

    masked_smoothed_cross_entropy.__name__ = "masked_smoothed_cross_entropy"
    return keras.losses.get(masked_smoothed_cross_entropy)


# ----------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class Translation:
    """The translation of one input line.

    Attributes:
        text: the best translation ("" when the line could not be translated).
        hypotheses: `[(text, score), ...]` best first (n-best), score = summed
            log-probability.
        warnings: problems that did not stop the translation (truncated,
            unknown words).
        error: why the line was not translated, or None.
        source_tokens: the source tokens read (EOS included).
        output_tokens: the best hypothesis' tokens (EOS included).
        attention: float `[len(output_tokens), len(source_tokens)]` of the
            best hypothesis, when requested.
    """

    text: str = ""
    hypotheses: list = dataclasses.field(default_factory=list)
    warnings: list = dataclasses.field(default_factory=list)
    error: str = None
    source_tokens: list = None
    output_tokens: list = None
    attention: object = None


def _round_up(value, multiple):
    return int(math.ceil(value / multiple) * multiple)


class Translator:
    """A trained translator ready to decode: model, tokenizers and settings.

    Wraps `model.translate_ids` (the in-graph `keras_seq.decoding` loop) in a
    `tf.function` per decoding setting, batches sentences of similar length,
    and turns ids back into text, replacing `<unk>` outputs by the most
    attended source word when `unk_replace` is on.

    Args:
        model: an `AttentionSeq2Seq` or `Transformer` (with weights).
        source_tokenizer, target_tokenizer: fitted `keras_seq.text` tokenizers.
        unk_replace: replace `<unk>` in outputs by source words (word-level
            target tokenizers only).
        jit_compile: XLA-compile the decoding loop (slower to start; see
            benchmarks/RESULTS.md for when it pays).
        decode_mode: "graph" (a `tf.function` per setting, traced once),
            "eager" (the same loop run op by op), or "auto": eager for at
            most `EAGER_MAX_SENTENCES` sentences per call, where tracing
            would take longer than decoding.

    Example:

    ```python
    translator = Translator.from_run("runs/translator")
    [t.text for t in translator.translate(["I am cold."], beam=5)]
    ```
    """

    def __init__(self, model, source_tokenizer, target_tokenizer, *, unk_replace=True,
                 jit_compile=False, decode_mode="auto"):
        for name, tok, size in (("source", source_tokenizer, model.source_vocab_size),
                                ("target", target_tokenizer, model.target_vocab_size)):
            if tok.vocab_size != size:
                raise errors.RunDirError(
                    f"vocabulary mismatch: the {name} tokenizer has {tok.vocab_size} tokens but "
                    f"the model expects {size}"
                )
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.unk_replace = bool(unk_replace) and target_tokenizer.type_name == "word"
        self.jit_compile = bool(jit_compile)
        if decode_mode not in ("auto", "graph", "eager"):
            raise ValueError(f"decode_mode must be 'auto', 'graph' or 'eager', got {decode_mode!r}")
        self.decode_mode = decode_mode
        self.max_source_length = int(getattr(model, "max_length", 128))
        self._functions = {}
        self._target_vocab = list(target_tokenizer.vocabulary)
        self._source_vocab = list(source_tokenizer.vocabulary)

    @classmethod
    def from_run(cls, run_dir, **kwargs):
        """Loads a trained run (best checkpoint).

        Raises:
            RunDirError: not a translator run directory, no checkpoint, or
                files that do not fit together.
        """
        model, source_tokenizer, target_tokenizer, config, _ = load_run(run_dir)
        kwargs.setdefault("unk_replace", config.get("decoding", {}).get("unk_replace", True))
        return cls(model, source_tokenizer, target_tokenizer, **kwargs)

    # -- decoding function -------------------------------------------------

    def _decoder(self, beam, length_penalty, n_best, max_length, with_attention, eager=False):
        import tensorflow as tf

        from keras_seq import decoding

        key = (beam, float(length_penalty), n_best, max_length, with_attention, eager)
        fn = self._functions.get(key)
        if fn is not None:
            return fn
        strategy = "greedy" if beam is None else decoding.BeamSearch(
            beam, length_penalty=length_penalty, num_return=n_best)
        model = self.model

        def run_eagerly(source_ids):
            result = model.generate(tf.constant(source_ids), strategy=strategy,
                                         max_length=max_length, return_attention=with_attention)
            attention = result.attention if with_attention else tf.zeros([0], tf.float32)
            return result.ids, result.lengths, result.scores, attention

        if eager:
            self._functions[key] = run_eagerly
            return run_eagerly

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)],
                     jit_compile=self.jit_compile, reduce_retracing=True)
        def run(source_ids):
            result = model.generate(source_ids, strategy=strategy, max_length=max_length,
                                         return_attention=with_attention)
            attention = result.attention if with_attention else tf.zeros([0], tf.float32)
            return result.ids, result.lengths, result.scores, attention

        self._functions[key] = run
        return run

    def output_limit(self, source_length):
        """Most output tokens for a source of `source_length` tokens (EOS incl.)."""
        limit = _round_up(int(1.5 * source_length) + 10, 16)
        return max(1, min(limit, self.max_source_length))

    # -- text in, text out -------------------------------------------------

    def prepare(self, sentences):
        """Tokenizes lines; returns per-line `(ids or None, Translation)`."""
        from keras_seq import text as text_lib

        results = [Translation() for _ in sentences]
        texts, where = [], []
        for i, line in enumerate(sentences):
            if isinstance(line, (bytes, bytearray)):
                try:
                    line = bytes(line).decode("utf-8")
                except UnicodeDecodeError as e:
                    results[i].error = f"not valid UTF-8 text ({e.reason} at byte {e.start})"
                    continue
            if not isinstance(line, str):
                raise TypeError(f"sentences[{i}] must be a str, got {type(line).__name__}")
            if not line.strip():
                results[i].error = "empty line"
                continue
            texts.append(line)
            where.append(i)
        ids = self.source_tokenizer.encode(texts) if texts else []
        surface = None
        if self.unk_replace and texts and self.source_tokenizer.type_name == "word":
            import tensorflow as tf

            surface = [
                [w.decode("utf-8") for w in row]
                for row in text_lib.split_words(tf.constant(texts), lowercase=False).to_list()
            ]
        limit = self.max_source_length - 1  # room for EOS
        encoded = [None] * len(sentences)
        for k, (i, row) in enumerate(zip(where, ids)):
            if not row:
                results[i].error = "no token the source tokenizer can read"
                continue
            tokens = [self._source_vocab[t] for t in row]
            if surface is not None and len(surface[k]) == len(row):
                tokens = [s if t == text_lib.UNK_ID else tok
                          for s, t, tok in zip(surface[k], row, tokens)]
            if all(t == text_lib.UNK_ID for t in row):
                results[i].warnings.append(
                    "every word is unknown to the model's vocabulary; the translation is a guess")
            if len(row) > limit:
                results[i].warnings.append(
                    f"{len(row)} tokens, longer than the model's maximum of {limit}: only the "
                    f"first {limit} are translated")
                row, tokens = row[:limit], tokens[:limit]
            encoded[i] = list(row) + [text_lib.EOS_ID]
            results[i].source_tokens = tokens + [text_lib.EOS_TOKEN]
        return encoded, results

    def translate(self, sentences, *, beam=DECODING_DEFAULTS["beam"],
                  length_penalty=DECODING_DEFAULTS["length_penalty"], n_best=1,
                  greedy=False, max_length=None, batch_size=DECODE_BATCH,
                  return_attention=False):
        """Translates lines of text.

        Args:
            sentences: list of str (or bytes, decoded as UTF-8 per line).
            beam: beam size >= 1 (ignored with `greedy=True`).
            length_penalty: GNMT alpha >= 0.
            n_best: hypotheses per line, <= beam.
            greedy: greedy decoding instead of beam search.
            max_length: most output tokens (default: 1.5 x the source + 10,
                within the model's maximum).
            batch_size: sentences decoded together.
            return_attention: fill `Translation.attention`.

        Returns:
            list of `Translation`, one per input line, in order.

        Raises:
            InputError: bad decoding settings (beam < 1, n_best > beam).
        """
        import numpy as np

        if isinstance(sentences, (str, bytes)):
            raise TypeError("`sentences` must be a list of strings; wrap a single one in a list")
        sentences = list(sentences)
        if greedy:
            beam, n_best = None, 1 if n_best in (None, 1) else n_best
            if n_best != 1:
                raise errors.InputError("greedy decoding gives one translation; n_best must be 1")
        else:
            if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
                raise errors.InputError(f"the beam size must be an integer >= 1, got {beam!r}")
            if isinstance(n_best, bool) or not isinstance(n_best, int) or not 1 <= n_best <= beam:
                raise errors.InputError(f"n_best must be in [1, beam={beam}], got {n_best!r}")
        if not (isinstance(length_penalty, (int, float)) and 0 <= length_penalty < float("inf")):
            raise errors.InputError(f"the length penalty must be >= 0, got {length_penalty!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise errors.InputError(f"max_length must be an integer >= 1, got {max_length!r}")
        encoded, results = self.prepare(sentences)
        with_attention = bool(return_attention) or self.unk_replace
        order = sorted((i for i, ids in enumerate(encoded) if ids is not None),
                       key=lambda i: len(encoded[i]))
        # A few sentences decode faster eagerly than the decoding loop takes
        # to trace (seconds); many sentences amortize the tracing.
        eager = (self.decode_mode == "eager" or (
            self.decode_mode == "auto" and not self.jit_compile
            and len(order) <= EAGER_MAX_SENTENCES))
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            batch = np.zeros((len(rows), width), np.int32)
            for r, i in enumerate(rows):
                batch[r, : len(encoded[i])] = encoded[i]
            limit = max_length if max_length is not None else self.output_limit(width)
            fn = self._decoder(beam, length_penalty, n_best, limit, with_attention, eager)
            ids, lengths, scores, attention = (x.numpy() for x in fn(batch))
            for r, i in enumerate(rows):
                self._fill(results[i], ids[r], lengths[r], scores[r],
                           attention[r] if with_attention else None,
                           len(encoded[i]), return_attention)
        return results

    def _fill(self, result, ids, lengths, scores, attention, source_length, keep_attention):
        import numpy as np

        from keras_seq import text as text_lib

        hypotheses = []
        for k in range(ids.shape[0]):
            if not np.isfinite(scores[k]):
                continue  # fewer distinct hypotheses than asked
            n = int(lengths[k])
            row = [int(t) for t in ids[k, :n]]
            words = [t for t in row if t != text_lib.EOS_ID]
            tokens = [self._target_vocab[t] if 0 <= t < len(self._target_vocab)
                      else text_lib.UNK_TOKEN for t in words]
            if self.unk_replace and text_lib.UNK_ID in words and attention is not None:
                tokens = self._replace_unknown(tokens, words, attention[k], result.source_tokens,
                                               source_length)
            hypotheses.append((self._detokenize(tokens, words), float(scores[k])))
            if k == 0:
                result.output_tokens = tokens + ([text_lib.EOS_TOKEN] if text_lib.EOS_ID in row else [])
                if keep_attention and attention is not None:
                    result.attention = np.asarray(attention[0, :n, :source_length])
        result.hypotheses = hypotheses
        result.text = hypotheses[0][0] if hypotheses else ""

    def _replace_unknown(self, tokens, words, attention, source_tokens, source_length):
        from keras_seq import text as text_lib

        out = []
        for position, (token, word) in enumerate(zip(tokens, words)):
            if word != text_lib.UNK_ID:
                out.append(token)
                continue
            # Attention of this output position over the real source tokens
            # (the final EOS excluded: it is no word to copy).
            weights = attention[position, : max(source_length - 1, 0)]
            if weights.size == 0 or source_tokens is None:
                continue
            out.append(source_tokens[int(weights.argmax())])
        return out

    def _detokenize(self, tokens, words):
        import tensorflow as tf

        from keras_seq import text as text_lib

        if self.target_tokenizer.type_name == "word":
            if not tokens:
                return ""
            joined = text_lib.join_words(tf.ragged.constant([tokens], dtype=tf.string))
            return joined.numpy()[0].decode("utf-8")
        return self.target_tokenizer.decode([words])[0]


def load_run(run_dir):
    """Model (best weights), tokenizers and config of a trained translator run.

    Returns:
        `(model, source_tokenizer, target_tokenizer, config, run)`.

    Raises:
        RunDirError: not a run directory, not a translator run, no checkpoint,
            or files that do not fit together.
    """
    from keras_seq import text as text_lib

    run = runs.RunDir.open(run_dir, require_checkpoint=True)
    config = run.config
    if config["task"] != "translator":
        raise errors.RunDirError(
            f"{run.path} is a {config['task']} run, not a translator run "
            "(use `keras-seq generate` for language models)")
    for key in ("model", "tokenizer"):
        if key not in config:
            raise errors.RunDirError(f"{run.config_path} has no {key!r} entry; retrain the run")
    source_tokenizer = text_lib.load_tokenizer(str(run.vocab_dir / "source"))
    target_tokenizer = text_lib.load_tokenizer(str(run.vocab_dir / "target"))
    model = build_model(config["model"])
    path = run.checkpoint("best")
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise errors.RunDirError(
            f"checkpoint {path} does not fit the model described in {run.config_path}: {first}"
        ) from e
    return model, source_tokenizer, target_tokenizer, config, run


# ----------------------------------------------------------------------------
# train-translator
# ----------------------------------------------------------------------------


def train_args(**values):
    """The Namespace of `keras-seq train-translator` with every flag unset.

    For calling `train` from Python (the demo, apps, tests):

    >>> args = train_args(run_dir="runs/tiny", max_pairs=2000, epochs=1)  # doctest: +SKIP
    >>> train(args)                                                         # doctest: +SKIP
    """
    defaults = dict(
        data="bundled:fra-eng", run_dir="runs/translator", model="rnn", tokenizer=None,
        vocab_size=None, max_length=None, units=None, embedding_dim=None, layers=None,
        cell=None, bidirectional=None, attention=None, input_feeding=None, dropout=None,
        teacher_forcing_ratio=None, max_pairs=None, reverse=False,
    )
    defaults.update(values)
    return train_namespace("train-translator", **defaults)


def train(args):
    """`keras-seq train-translator`: data, tokenizers, model, training, report.

    Args:
        args: the Namespace of `keras-seq train-translator` (see
            `keras_seq.cli`; `train_args(...)` builds one from Python).

    Returns:
        A dict with the run directory, the training history's stop reason,
        and the validation BLEU (greedy) of the sample printed.
    """
    import keras

    from keras_seq import data as data_lib
    from keras_seq import text as text_lib
    from keras_seq import training

    resume = bool(getattr(args, "resume", False))
    started = time.monotonic()
    if resume:
        stored = runs.load_run_config(args.run_dir)
        if stored.get("task") != "translator":
            raise errors.RunDirError(f"{args.run_dir} is not a translator run")
        run = runs.RunDir(args.run_dir)
        data_info = stored["data"]
        spec = getattr(args, "data", None)
        if spec not in (None, data_info["spec"], "bundled:fra-eng"):
            say(f"--resume: training goes on with the run's own data {data_info['spec']} "
                f"(ignoring --data {spec})")
        source_tokenizer = text_lib.load_tokenizer(str(run.vocab_dir / "source"))
        target_tokenizer = text_lib.load_tokenizer(str(run.vocab_dir / "target"))
        pairs = load_corpus(data_info["spec"], reverse=data_info.get("reverse", False),
                            max_pairs=data_info.get("max_pairs"))
        splits = split_corpus(pairs, data_info["split_seed"], data_info["val_fraction"],
                              data_info["test_fraction"])
        model_info = stored["model"]
        max_length = int(data_info["max_length"])
        recipe = stored.get("recipe", {})
        defaults = dict(stored["training"])
        defaults.pop("resume", None)
        config = training.TrainConfig.from_namespace(args, **defaults)
        run_config = dict(stored, training=config.to_dict())
    else:
        family = getattr(args, "model", None) or "rnn"
        recipe_defaults = TRANSFORMER_RECIPE if family == "transformer" else RECIPE
        tokenizer_type = args.tokenizer or recipe_defaults["tokenizer"]
        max_length = pick(args.max_length,
                          _CHAR_MAX_LENGTH if tokenizer_type == "char" else recipe_defaults["max_length"])
        if args.vocab_size is not None and tokenizer_type != "wordpiece" and args.vocab_size <= 4:
            raise errors.InputError(
                f"--vocab-size must be > 4 (the reserved tokens), got {args.vocab_size}")
        say(f"reading {args.data}")
        pairs = load_corpus(args.data, reverse=bool(args.reverse), max_pairs=args.max_pairs)
        seed = pick(args.seed, DEFAULT_SPLIT_SEED)
        val_fraction, test_fraction = held_out_fractions(len(pairs))
        splits = split_corpus(pairs, seed, val_fraction, test_fraction)
        min_frequency = recipe_defaults["min_frequency"]
        train_sources = [s for s, _ in splits["train"]]
        train_targets = [t for _, t in splits["train"]]
        source_tokenizer = make_tokenizer(
            tokenizer_type, pick(args.vocab_size, recipe_defaults["source_vocab_size"]),
            min_frequency, lowercase=tokenizer_type != "char").fit(train_sources)
        target_tokenizer = make_tokenizer(
            tokenizer_type, pick(args.vocab_size, recipe_defaults["target_vocab_size"]),
            min_frequency, lowercase=False).fit(train_targets)
        model_info = model_config_from_args(args, source_tokenizer.vocab_size,
                                            target_tokenizer.vocab_size, max_length)
        smoothing = getattr(args, "label_smoothing", None)
        if smoothing is None:
            smoothing = recipe_defaults["label_smoothing"]
        if model_info["type"] != "rnn" or model_info["config"].get("sampled_softmax"):
            smoothing = 0.0  # the sampled softmax trains without it
        recipe = {
            "label_smoothing": float(smoothing),
            "steps_per_epoch_cap": STEPS_PER_EPOCH_CAP,
        }
        defaults = TRANSFORMER_TRAIN_DEFAULTS if model_info["type"] == "transformer" else TRAIN_DEFAULTS
        config = training.TrainConfig.from_namespace(args, **defaults)
        run_config = {
            "task": "translator",
            "model": model_info,
            "tokenizer": {"source": _tokenizer_info(source_tokenizer),
                          "target": _tokenizer_info(target_tokenizer)},
            "training": config.to_dict(),
            "recipe": recipe,
            "data": {
                "spec": args.data,
                "reverse": bool(args.reverse),
                "max_pairs": args.max_pairs,
                "split_seed": seed,
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
                "max_length": max_length,
                "pairs": {name: len(part) for name, part in splits.items()},
            },
            "decoding": dict(DECODING_DEFAULTS),
        }

    batch_size = config.batch_size
    train_src, train_tgt = _encode_pairs(source_tokenizer, target_tokenizer, splits["train"])
    valid_src, valid_tgt = _encode_pairs(source_tokenizer, target_tokenizer, splits["valid"])
    limits = dict(max_source_length=max_length + 1, max_target_length=max_length + 1)
    train_ds = data_lib.make_pair_dataset(train_src, train_tgt, batch_size, seed=config.seed,
                                          **limits)
    valid_ds = data_lib.make_pair_dataset(valid_src, valid_tgt, batch_size, shuffle=False,
                                          **limits)
    if not resume:
        run_config["data"]["filtered"] = int(train_ds.num_filtered)
        run, run_config = runs.prepare_run_dir(args.run_dir, run_config,
                                               overwrite=bool(getattr(args, "overwrite", False)))
        source_tokenizer.save(str(run.vocab_dir / "source"))
        target_tokenizer.save(str(run.vocab_dir / "target"))
    else:
        run, _ = runs.prepare_run_dir(args.run_dir, None, resume=True)
        runs.RunDir(run.path).write_config(run_config)
    num_examples = train_ds.num_examples
    num_batches = int(train_ds.cardinality())
    cap = int(recipe.get("steps_per_epoch_cap", STEPS_PER_EPOCH_CAP))
    steps_per_epoch = None
    if num_batches > cap:
        train_ds = train_ds.repeat()
        steps_per_epoch = cap
    say(
        f"{len(splits['train'])} training pairs ({num_examples} within {max_length} "
        f"tokens), {len(splits['valid'])} validation, {len(splits['test'])} "
        f"test (held out); vocabularies {source_tokenizer.vocab_size} source / "
        f"{target_tokenizer.vocab_size} target ({source_tokenizer.type_name}); "
        f"{num_batches} batches of {batch_size} per pass"
        + (f", epochs of {cap} batches" if steps_per_epoch else "")
    )
    say(f"model: {model_info['type']} {_describe_model(model_info)}; run directory {run.path}")

    is_rnn = model_info["type"] == "rnn"
    # A sampled-softmax training pass has no logits to score: Keras then
    # fails on metrics that were never updated, so none are compiled; the
    # compiled loss then only scores validation (full softmax).
    sampled = int(model_info["config"].get("sampled_softmax", 0) or 0)
    loss = label_smoothed_loss(float(recipe.get("label_smoothing", 0.0))) if is_rnn else None

    def build():
        return build_model(model_info)

    from keras_seq.models import MaskedTokenAccuracy

    model, history = training.train(
        build, train_ds, valid_ds, run, config,
        loss=loss, metrics=None if sampled else [MaskedTokenAccuracy()],
        steps_per_epoch=steps_per_epoch,
        resume=resume,
    )
    minutes = (time.monotonic() - started) / 60.0
    say(f"training stopped ({history.stop_reason}) after {minutes:.1f} min; best epoch "
        f"{history.state.get('best_epoch')} (val_loss {history.state.get('best') or float('nan'):.4f})")

    translator = Translator(model, source_tokenizer, target_tokenizer,
                            unk_replace=run_config.get("decoding", {}).get("unk_replace", True))
    sample = splits["valid"][:VALID_BLEU_SENTENCES]
    outputs = translator.translate([s for s, _ in sample], greedy=True)
    from keras_seq import metrics

    scores = metrics.translation_scores([o.text for o in outputs], [t for _, t in sample])
    print(f"validation BLEU (greedy, {scores['sentences']} sentences): {scores['bleu']:.2f}  "
          f"chrF: {scores['chrf']:.2f}")
    for (source, reference), output in list(zip(sample, outputs))[:5]:
        print(f"  {source}\n    -> {output.text}\n       (reference: {reference})")
    print(f"run directory: {run.path}")
    return {"run_dir": str(run.path), "stop_reason": history.stop_reason,
            "valid_bleu": scores["bleu"], "valid_chrf": scores["chrf"],
            "minutes": minutes}


def _describe_model(model_info):
    c = model_info["config"]
    if model_info["type"] == "transformer":
        return f"{c['num_layers']} layers, d_model {c['d_model']}, {c['num_heads']} heads"
    return (f"{'bi' if c['bidirectional'] else ''}{c['cell']} {c['units']} units x "
            f"{c['num_layers']} layer(s), {c['attention']} attention"
            + (", input feeding" if c["input_feeding"] else "")
            + f", dropout {c['dropout']}")


# ----------------------------------------------------------------------------
# translate
# ----------------------------------------------------------------------------


def translate(args):
    """`keras-seq translate`: translate lines, one output line per input line.

    Args:
        args: run, sentences (list of str; a line may be bytes when it is not
            valid UTF-8), beam (int or None with --greedy), greedy,
            length_penalty, n_best, plot (PNG path or None), max_length.

    Output (stdout): with `--n-best 1` one translation per input line (an
    empty line for a line that could not be translated); with `--n-best N`
    the Moses n-best format, `LINE ||| translation ||| score`, N lines per
    input line (LINE counts from 0). Warnings and errors go to stderr with
    the line number (from 1).

    Returns:
        0 when every non-blank line was translated, 1 otherwise (the other
        lines' translations are printed all the same).
    """
    sentences = getattr(args, "sentences", None)
    if sentences is None:
        sentences = list(getattr(args, "text", None) or [])
    if not sentences:
        raise errors.InputError("no text to translate")
    greedy = bool(getattr(args, "greedy", False))
    beam = getattr(args, "beam", None)
    if not greedy:
        beam = DECODING_DEFAULTS["beam"] if beam is None else beam
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 1:
            raise errors.InputError(f"--beam must be an integer >= 1, got {beam!r}")
    n_best = int(getattr(args, "n_best", 1) or 1)
    length_penalty = getattr(args, "length_penalty", None)
    length_penalty = DECODING_DEFAULTS["length_penalty"] if length_penalty is None else length_penalty
    plot = getattr(args, "plot", None)
    if plot:
        directory = os.path.dirname(os.path.abspath(plot))
        if not os.path.isdir(directory):
            raise errors.InputError(f"--plot {plot}: directory {directory} does not exist")
    translator = Translator.from_run(args.run)
    results = translator.translate(
        sentences, beam=beam, greedy=greedy, length_penalty=length_penalty, n_best=n_best,
        max_length=getattr(args, "max_length", None), return_attention=bool(plot),
    )
    failed = 0
    for number, result in enumerate(results, start=1):
        if result.error == "empty line":
            say(f"line {number}: empty line; nothing to translate")
        elif result.error:
            failed += 1
            say(f"line {number}: not translated: {result.error}")
        for warning in result.warnings:
            say(f"line {number}: warning: {warning}")
        if n_best > 1:
            for text, score in result.hypotheses:
                print(f"{number - 1} ||| {text} ||| {score:.4f}")
        else:
            print(result.text)
    sys.stdout.flush()
    if plot:
        first = next((r for r in results if r.attention is not None and r.output_tokens), None)
        if first is None:
            say("--plot: no sentence was translated; no attention map written")
        else:
            from keras_seq import plotting

            plotting.plot_attention(first.attention, first.source_tokens, first.output_tokens, plot,
                                    title=first.text)
            say(f"attention map of the first sentence written to {plot}")
    return 1 if failed else 0


# ----------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------


def score_pairs(translator, pairs, *, beam=DECODING_DEFAULTS["beam"],
                length_penalty=DECODING_DEFAULTS["length_penalty"]):
    """BLEU and chrF of greedy decoding and of beam search on `pairs`.

    Returns:
        `{"greedy": TranslationScores, "beam": TranslationScores, "seconds":
        {"greedy": s, "beam": s}, "outputs": {"greedy": [...], "beam": [...]}}`.
    """
    from keras_seq import metrics

    sources = [s for s, _ in pairs]
    references = [t for _, t in pairs]
    out = {"seconds": {}, "outputs": {}}
    for name, kwargs in (("greedy", dict(greedy=True)),
                         ("beam", dict(beam=beam, length_penalty=length_penalty))):
        start = time.perf_counter()
        results = translator.translate(sources, **kwargs)
        out["seconds"][name] = time.perf_counter() - start
        hypotheses = [r.text for r in results]
        out["outputs"][name] = hypotheses
        out[name] = metrics.translation_scores(hypotheses, references)
    return out


def evaluate(args):
    """`keras-seq evaluate` for a translator: BLEU and chrF, greedy vs beam search.

    Args:
        args: run, data (a pairs file, or None for the run's own split),
            split ("train" | "valid" | "test"; default "test", the split
            held out from training and model selection), beam (int or None:
            the run's default, 5).

    A `--data` file is read with the same column order as the run's
    training data (`--reverse` runs swap its columns too).

    Returns:
        None; prints a table of BLEU and chrF (sacrebleu, detokenized,
        case-sensitive) for greedy decoding and beam search.
    """
    translator = Translator.from_run(args.run)
    config = args.run_config if getattr(args, "run_config", None) else runs.load_run_config(args.run)
    decoding_info = config.get("decoding", {})
    beam = getattr(args, "beam", None) or decoding_info.get("beam", DECODING_DEFAULTS["beam"])
    length_penalty = decoding_info.get("length_penalty", DECODING_DEFAULTS["length_penalty"])
    if getattr(args, "data", None):
        pairs = load_corpus(args.data, reverse=config.get("data", {}).get("reverse", False))
        where = args.data
    else:
        split = getattr(args, "split", None) or "test"
        pairs = load_split(config, split)
        where = f"{split} split of {config['data']['spec']}"
    say(f"translating {len(pairs)} sentences of the {where}")
    result = score_pairs(translator, pairs, beam=beam, length_penalty=length_penalty)
    print(f"{where}: {len(pairs)} sentence pairs (BLEU and chrF by sacrebleu, detokenized, cased)")
    print(f"{'decoding':<28}{'BLEU':>7}{'chrF':>8}{'seconds':>9}")
    for name, label in (("greedy", "greedy"),
                        ("beam", f"beam {beam}, length penalty {length_penalty:g}")):
        s = result[name]
        print(f"{label:<28}{s['bleu']:>7.2f}{s['chrf']:>8.2f}{result['seconds'][name]:>9.1f}")
    return None


# ----------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------


def export(args):
    """`keras-seq export` for a translator: SavedModel + ONNX, parity-checked.

    Writes `args.to/<version>/` (TF Serving layout: `translate` on strings,
    `translate_ids`, `encode`, `step`) with the run's decoding settings (beam
    5, length penalty 0.6) fixed in the graph and, unless `--no-onnx`, the
    ONNX graphs in `args.to/onnx/`; then checks that the Keras model, the
    reloaded SavedModel and onnxruntime agree on a few validation sentences.

    Returns:
        None; prints the version directory and the parity report.
    """
    import numpy as np

    from keras_seq import export as export_lib

    model, source_tokenizer, target_tokenizer, config, run = load_run(args.run)
    decoding_info = config.get("decoding", {})
    max_length = min(int(getattr(model, "max_length", 64)), 64)
    path = export_lib.export_translator(
        model, source_tokenizer, target_tokenizer, args.to,
        version=getattr(args, "version", None),
        beam_size=int(decoding_info.get("beam", DECODING_DEFAULTS["beam"])),
        length_penalty=float(decoding_info.get("length_penalty", DECODING_DEFAULTS["length_penalty"])),
        max_length=max_length, onnx=bool(getattr(args, "onnx", True)),
    )
    print(f"exported {run.path} to {path}")
    try:
        sentences = [s for s, _ in load_split(config, "valid")[:4]]
    except errors.KerasSeqError:
        sentences = []
    translator = Translator(model, source_tokenizer, target_tokenizer, unk_replace=False)
    encoded, _ = translator.prepare(sentences)
    rows = [r for r in encoded if r is not None and any(t != 1 for t in r[:-1])]
    if rows:
        width = max(len(r) for r in rows)
        batch = np.zeros((len(rows), width), np.int32)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = r
        report = export_lib.check_parity(model, path, batch)
        for backend, outputs in report.items():
            worst = [v for v in outputs.values() if isinstance(v, float)]
            print(f"parity with {backend}: {len(outputs)} outputs agree"
                  + (f" (max float difference {max(worst):.2e})" if worst else ""))
    return None
