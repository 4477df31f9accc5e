"""`TranslatorRecipe`: every default of `keras-seq train-translator`, in one place.

Chosen for quality per CPU-minute on corpora of 10k-200k sentence pairs
(measurements in benchmarks/RESULTS.md, "Attention translator (issue 4)"):

- Data: pairs `source<TAB>target`. A seeded split keeps every translation of
  a source sentence in one split: validation and test get 5% of the pairs
  each, at most 2,500 pairs each (more adds little to the estimate and takes
  pairs from training). The test split is never used for training or model
  selection.
- Tokens: word level, vocabulary learned on the training split only, words
  seen at least twice, at most 16,000 source and 8,000 target words (the
  target vocabulary is the output softmax, the main cost of a training step
  on a CPU). The source is lower-cased; the target keeps its case, so
  translations come out capitalised like the references. `tokenizer=
  "sentencepiece"` / `"bpe"` learns cased SentencePiece subwords instead
  (the vocabulary sizes are then upper bounds), per language or, with
  `shared_vocab`, one vocabulary for both (the Transformer then ties its
  embeddings). Pairs with a side
  longer than 50 tokens (200 characters for the char tokenizer) are dropped
  from training.
- Model (`TranslatorRecipe.rnn()`, the default): `AttentionSeq2Seq`,
  embeddings 256, a bidirectional 1-layer LSTM encoder of 256 units per
  direction, a 1-layer LSTM decoder of 256 units initialised from the bridged
  encoder states, Bahdanau (additive) attention, no input feeding, dropout
  0.3, full teacher forcing. `TranslatorRecipe.transformer()`: 3 layers,
  width 256, 4 heads, feed-forward 4 x width (`ff_dim`), dropout 0.1, the
  target embedding and the output projection separate (`tie_embeddings`
  ties them: behind at every pass measured, benchmarks/RESULTS.md); 3 layers
  were level with 2 at 20 minutes on pairs of 6 words, ahead on pairs of 10.
- Training: a sampled softmax over 512 negatives (log-uniform candidates; the
  target ids are sorted by frequency) when the target vocabulary has at least
  2,048 words, the full softmax with label smoothing 0.1 below that;
  validation always scores the full softmax. Adam (learning rate 2e-3 after a
  linear warmup over the first 300 steps; gradient clipping at global norm 5),
  batches of 64 pairs bucketed by length (`batch_tokens` batches by tokens
  instead: 2.5 BLEU behind the Transformer default at 20 minutes on pairs of
  10 words), the learning rate halved whenever
  the validation loss does not improve, early stopping after 3 evaluations
  without improvement and the best weights kept. An "epoch" is one pass over
  the training pairs or 1,000 batches, whichever is less. The Transformer
  trains with the full softmax and label smoothing 0.1, learning rate 5e-4
  after 400 warmup steps, in mixed precision where the hardware has it, and
  ends with the mean of its last 2-5 epochs' weights that scores best on
  validation, when it beats the best epoch (`average_last`), on batches of
  32 pairs: label smoothing 0.1 with dropout 0.2 was +0.6 BLEU over neither
  at 20 minutes, the average of the last 5 +0.9 over the best epoch, and with
  both kept dropout 0.1 then beat 0.2 by +0.8 BLEU on pairs of 10 words and
  was level on pairs of 6; batches of 32 then beat 64 by +0.8 BLEU (beam)
  on pairs of 10 words, two runs each (benchmarks/RESULTS.md,
  "Transformer recipe chosen on validation").
- Output bias: a new model's starts at the log unigram frequencies of the
  training targets (`unigram_bias`), not at zeros: the model then learns
  word frequency before anything else has to (validation loss 1.60 after 4
  passes of the demo's data instead of 1.72, the Transformer's 1.94 after 2
  instead of 2.06; benchmarks/RESULTS.md, "Output bias").
- Decoding: beam search, beam 5, GNMT length penalty 1.2 (0.6 until session
  13: beam outputs ran 5% short of the references; 1.2 was ahead of 0.6 on
  all 7 runs scored, +0.48 BLEU on the mean of 6 Transformer runs, level
  from 1.2 to 1.6, and at 2.0 outputs overshoot, down to -1.8 BLEU;
  benchmarks/RESULTS.md, "Length penalty chosen on validation"); an `<unk>` in the
  output is replaced by the source word the model attended to most when it
  emitted it (Luong et al., 2015), so names and numbers are copied.

Nothing here imports TensorFlow (`decode_options()` imports
`keras_seq.decoding` when called).
"""

import dataclasses
from typing import Optional

from keras_seq import errors
from keras_seq.recipes import common
from keras_seq.training import TrainConfig
from keras_seq.utils import is_int

__all__ = ["TranslatorRecipe"]

_OWNER = "TranslatorRecipe"
MODELS = ("rnn", "transformer")
TOKENIZERS = ("word", "wordpiece", "char", "sentencepiece", "bpe")
# SentencePiece models (unigram, BPE): raw cased text, one vocabulary may serve both sides.
SUBWORD_TOKENIZERS = ("sentencepiece", "bpe")
CELLS = ("lstm", "gru")
EARLY_STOP_ON = ("loss", "bleu")
ATTENTIONS = ("bahdanau", "luong-dot", "luong-general", "luong-concat")
# The fields of the recurrent model only; None in a Transformer recipe.
RNN_ONLY = ("cell", "bidirectional", "attention", "input_feeding", "teacher_forcing_ratio")
# The fields of the Transformer only, with their value in a recurrent recipe.
TRANSFORMER_ONLY = {"ff_dim": None, "tie_embeddings": False}
# Character-level sentences are longer.
CHAR_MAX_LENGTH = 200


def _rnn_training():
    return TrainConfig(
        epochs=30, batch_size=64, optimizer="adam", learning_rate=2e-3, warmup_steps=300,
        clipnorm=5.0, lr_schedule="plateau", decay_rate=0.5, plateau_patience=1, patience=3,
    )


def _transformer_training():
    # bfloat16 where the CPU multiplies it natively (AMX / AVX512-BF16), float16 on a GPU:
    # 1.3x the batches per CPU-second at the same validation loss per pass on an AMX CPU; the
    # RNN stays float32 (1.1x, and it learns less per pass). benchmarks/RESULTS.md, "Training
    # speed on this CPU". The mean of the last 5 epochs' weights: +0.9 BLEU (beam) over the
    # best epoch at 20 minutes; batches of 32 pairs (twice the updates a pass): +0.8 BLEU
    # (beam) over 64 at 20 minutes, two runs each ("Transformer recipe chosen on validation").
    return dataclasses.replace(_rnn_training(), batch_size=32, learning_rate=5e-4,
                               warmup_steps=400, mixed_precision="auto", average_last=5)


@dataclasses.dataclass(frozen=True)
class TranslatorRecipe(common.Recipe):
    """How to train a translator: data split, tokenizers, model, loss, training, decoding.

    The defaults are the recurrent recipe (`TranslatorRecipe.rnn()`);
    `TranslatorRecipe.transformer()` gives the Transformer's. Change fields
    with `dataclasses.replace` (or build one with keywords); every value is
    checked here, and a bad one raises a one-line `InputError` naming it.

    Args:
        model: "rnn" (`AttentionSeq2Seq`) or "transformer".
        tokenizer: "word", "wordpiece", "char", "sentencepiece" (a
            SentencePiece unigram model) or "bpe" (a SentencePiece BPE
            model), both sides.
        source_vocab_size: most source tokens (None: no limit, char only).
        target_vocab_size: most target tokens (the output softmax).
        shared_vocab: one vocabulary of `target_vocab_size` tokens learned
            on both languages ("sentencepiece" and "bpe" only); the
            Transformer then ties its source embedding, target embedding
            and output projection (one table).
        min_frequency: tokens seen fewer times in training are `<unk>`.
        split_elisions: an elided word is a token of its own on both sides
            ("l'homme" -> "l'", "homme"; French, Italian, Catalan), so one
            entry "homme" serves "l'homme", "d'homme"...; outputs are joined
            back ("l'homme"). The word tokenizer's; the others ignore it.
        max_length: pairs with a side longer than this (tokens) are dropped
            from training; None: 50, or 200 for the char tokenizer.
        val_fraction, test_fraction: held-out shares of the pairs...
        max_held_out: ...but at most this many pairs each.
        split_seed: seed of the train/valid/test split.
        embedding_dim: embedding size (rnn; the Transformer's is `units`).
        units: hidden units (rnn, per direction) or model width (transformer).
        layers: encoder and decoder layers.
        dropout: dropout rate in [0, 1).
        num_heads: attention heads (transformer).
        ff_dim: feed-forward width (transformer only; None: 4 x `units`).
        tie_embeddings: one table for the target embedding and the output
            projection (transformer only; always on with `shared_vocab`,
            where the source embedding is that table too).
        cell: "lstm" or "gru" (rnn only).
        bidirectional: bidirectional encoder (rnn only).
        attention: "bahdanau", "luong-dot", "luong-general" or "luong-concat"
            (rnn only).
        input_feeding: feed the attentional vector to the next step (rnn only).
        teacher_forcing_ratio: probability of feeding the gold token (rnn only).
        sampled_softmax: negatives of a sampled-softmax loss, 0 for the full
            softmax; None: `sampled_negatives` when the target vocabulary has
            at least `sampled_softmax_min_vocab` tokens, else 0.
        sampled_negatives: the recipe's number of negatives.
        sampled_softmax_min_vocab: smaller target vocabularies train with the
            full softmax unless `sampled_softmax` asks otherwise.
        unigram_bias: start the output bias of a new model at the log
            frequencies of the training targets (as `train-lm` does) instead
            of zeros: about one pass ahead in the first passes, both families.
        label_smoothing: label smoothing of the full-softmax loss (the
            sampled softmax trains without it).
        batch_tokens: train on batches of about this many tokens (the
            longer side, padding included) instead of `train.batch_size`
            pairs: short pairs then come in larger batches (validation
            keeps batches of `train.batch_size` pairs). At least
            `max_length + 1`, so the longest pair fits; None: by pairs.
        steps_per_epoch_cap: most batches per "epoch" (validation,
            checkpoints, schedule and early stopping run at least this often).
        early_stop_on: "loss" (the validation loss picks the best checkpoint
            and early-stops) or "bleu" (the greedy validation BLEU of up to
            200 validation sentences, computed every epoch, does; the
            learning-rate schedule still follows the loss).
        beam_size, length_penalty: the run's decoding defaults (beam search,
            GNMT alpha), used by `Translator`, `evaluate` and `export`.
        unk_replace: replace `<unk>` outputs by the most attended source word.
        train: the `TrainConfig` (optimizer, schedule, epochs, batch size...).

    Example:

    >>> recipe = TranslatorRecipe(units=512, attention="luong-general")
    >>> recipe.train.learning_rate, recipe.decode_options().beam_size  # doctest: +SKIP
    (0.002, 5)
    >>> TranslatorRecipe.transformer().layers
    3
    """

    model: str = "rnn"
    # Tokens.
    tokenizer: str = "word"
    source_vocab_size: Optional[int] = 16000
    target_vocab_size: Optional[int] = 8000
    min_frequency: int = 2
    shared_vocab: bool = False
    split_elisions: bool = False
    max_length: Optional[int] = None
    # Data split.
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    max_held_out: int = 2500
    split_seed: int = 1234
    # Model (both families).
    embedding_dim: int = 256
    units: int = 256
    layers: int = 1
    dropout: float = 0.3
    num_heads: int = 4
    # Model (transformer only).
    ff_dim: Optional[int] = None
    tie_embeddings: bool = False
    # Model (rnn only).
    cell: Optional[str] = "lstm"
    bidirectional: Optional[bool] = True
    attention: Optional[str] = "bahdanau"
    input_feeding: Optional[bool] = False
    teacher_forcing_ratio: Optional[float] = 1.0
    # Loss.
    sampled_softmax: Optional[int] = None
    sampled_negatives: int = 512
    sampled_softmax_min_vocab: int = 2048
    unigram_bias: bool = True
    label_smoothing: float = 0.1
    # Training.
    batch_tokens: Optional[int] = None
    steps_per_epoch_cap: int = 1000
    early_stop_on: str = "loss"
    train: TrainConfig = dataclasses.field(default_factory=_rnn_training)
    # Decoding.
    beam_size: int = 5
    length_penalty: float = 1.2
    unk_replace: bool = True

    @classmethod
    def rnn(cls, **overrides):
        """The attention encoder-decoder recipe (the default), with `overrides`."""
        return cls(**overrides)

    @classmethod
    def transformer(cls, **overrides):
        """The Transformer recipe, with `overrides` (fields of this class)."""
        values = dict(model="transformer", layers=3, dropout=0.1, num_heads=4,
                      label_smoothing=0.1, sampled_negatives=0,
                      train=_transformer_training(), **{name: None for name in RNN_ONLY})
        values.update(overrides)
        return cls(**values)

    @classmethod
    def for_model(cls, model, **overrides):
        """`rnn(**overrides)` or `transformer(**overrides)` by name."""
        common.check_choice(_OWNER, "model", model, MODELS)
        return cls.transformer(**overrides) if model == "transformer" else cls.rnn(**overrides)

    @classmethod
    def from_run_config(cls, config):
        """The recipe of a translator run, as far as its config.json records it.

        The model's sizes, the data's length limit and the training; the
        rest keeps the defaults. What a resumed run checks its memory with.

        Args:
            config: a translator run's config dict, checked by
                `keras_seq.run_schema.validate`.

        Returns:
            A `TranslatorRecipe`.
        """
        m = config["model"]["config"]
        source = config.get("tokenizer", {}).get("source", {})
        values = dict(max_length=config["data"]["max_length"],
                      split_elisions=bool(source.get("config", {}).get("split_elisions", False)),
                      train=TrainConfig.from_dict(dict(config["training"])),
                      batch_tokens=config.get("recipe", {}).get("batch_tokens"),
                      sampled_softmax=m.get("sampled_softmax") or 0)
        if config["model"]["type"] == "transformer":
            shared = bool(config.get("tokenizer", {}).get("shared", False))
            vocab = dict(tokenizer="sentencepiece" if shared else "word", shared_vocab=shared)
            return cls.transformer(units=m["d_model"], layers=m.get("num_layers", 3),
                                   num_heads=m.get("num_heads", 4), ff_dim=m.get("ff_dim"),
                                   tie_embeddings=bool(m.get("tie_embeddings", False)),
                                   **vocab, **values)
        rnn = cls()
        return cls.rnn(units=m["units"], embedding_dim=m.get("embedding_dim", rnn.embedding_dim),
                       layers=m.get("num_layers", rnn.layers), cell=m.get("cell", rnn.cell),
                       bidirectional=m.get("bidirectional", rnn.bidirectional),
                       input_feeding=m.get("input_feeding", rnn.input_feeding), **values)

    @classmethod
    def describe_defaults(cls, names, train_names=()):
        """`{name: text}`: each field's default, and the Transformer's where it differs.

        For `--help`: e.g. `"1; transformer: 3"` for `layers`.

        Args:
            names: recipe fields (plus `vocab_size`, both vocabularies).
            train_names: `TrainConfig` fields (of `train`).

        Returns:
            dict of str.
        """
        rnn, transformer = cls.rnn(), cls.transformer()

        def shown(value):
            if isinstance(value, bool):
                return "on" if value else "off"
            return "none" if value is None else str(value)

        def describe(read):
            value, other = read(rnn), read(transformer)
            same = other is None or (other == value and type(other) is type(value))
            return shown(value) + ("" if same else f"; transformer: {shown(other)}")

        texts = {name: describe(lambda r, name=name: getattr(r, name))
                 for name in names if name != "vocab_size"}
        texts.update({name: describe(lambda r, name=name: getattr(r.train, name))
                      for name in train_names})
        special = {
            "vocab_size": f"{rnn.source_vocab_size} source, {rnn.target_vocab_size} target",
            "max_length": f"{rnn.source_max_length} tokens, char: {CHAR_MAX_LENGTH}",
            "embedding_dim": f"{rnn.embedding_dim}; transformer: = --units",
            "ff_dim": "transformer: 4 x --units",
            "sampled_softmax": (f"{rnn.sampled_negatives} for target vocabularies of "
                                f"{rnn.sampled_softmax_min_vocab}+ tokens, else 0; transformer: 0"),
            "seed": f"{rnn.train.seed}; data split: {rnn.split_seed}",
            "batch_tokens": "none, batches of --batch-size pairs",
        }
        texts.update({name: text for name, text in special.items()
                      if name in names or name in train_names})
        return texts

    def __post_init__(self):
        self._check_data()
        self._check_model()
        self._check_training()

    # -- derived values -------------------------------------------------------

    @property
    def source_max_length(self):
        """`max_length`, or the tokenizer's default when it is None."""
        if self.max_length is not None:
            return self.max_length
        return CHAR_MAX_LENGTH if self.tokenizer == "char" else 50

    @property
    def tokens_per_batch(self):
        """The most tokens a training batch holds (a side, padding included).

        `batch_tokens`, or `train.batch_size` pairs of the longest length.
        """
        return self.batch_tokens or self.train.batch_size * (self.source_max_length + 1)

    @property
    def feed_forward_dim(self):
        """The Transformer's feed-forward width: `ff_dim`, or 4 x `units` when it is None."""
        return self.ff_dim or 4 * self.units

    def held_out_fractions(self, num_pairs):
        """Validation and test fractions for `num_pairs` pairs (capped at `max_held_out`)."""
        if num_pairs <= 0:
            return self.val_fraction, self.test_fraction
        cap = self.max_held_out / num_pairs
        return min(self.val_fraction, cap), min(self.test_fraction, cap)

    def decode_options(self, **overrides):
        """The `keras_seq.decoding.DecodeOptions` of the recipe's decoding defaults."""
        from keras_seq.decoding import DecodeOptions

        values = dict(beam_size=self.beam_size, length_penalty=self.length_penalty)
        values.update(overrides)
        return DecodeOptions(**values)

    def decoding_info(self):
        """The run's config.json "decoding" entry."""
        return {"beam": self.beam_size, "length_penalty": self.length_penalty,
                "unk_replace": self.unk_replace}

    # -- memory ---------------------------------------------------------------

    _MEMORY_HINT = "units, embedding_dim, layers, vocab_size, batch_size/batch_tokens or max_length"

    def memory_estimate(self, source_vocab_size=None, target_vocab_size=None):
        """Peak memory of training this recipe (`keras_seq.recipes.memory`).

        Args:
            source_vocab_size, target_vocab_size: the fitted vocabularies;
                None: the smallest this recipe can have (its reserved
                tokens), so what is refused before the data is read could not
                fit with any data.

        Returns:
            A `keras_seq.recipes.memory.MemoryEstimate`.

        Example:

        >>> TranslatorRecipe().memory_estimate(16000, 8000).total_bytes < 10**9
        True
        """
        from keras_seq.recipes import memory

        smallest = 1 if self.tokenizer == "wordpiece" else 5
        vs = smallest if source_vocab_size is None else int(source_vocab_size)
        vt = smallest if target_vocab_size is None else int(target_vocab_size)
        length = self.source_max_length + 1
        units, layers = self.units, self.layers
        sampled = self.sampled_softmax or 0
        if target_vocab_size is not None:
            try:
                sampled = common.choose_sampled_softmax(
                    self.sampled_softmax, default=self.sampled_negatives, vocab_size=vt,
                    min_vocab=self.sampled_softmax_min_vocab)
            except errors.InputError:
                pass  # refused later, with its own message
        classes = sampled + 1 if sampled else vt
        if self.model == "transformer":
            ff = self.feed_forward_dim
            # Sinusoidal positions: no weights. A shared vocabulary: one tied table; tied
            # embeddings: the target table is the output kernel.
            if self.shared_vocab:
                tables = vt * units
            else:
                tables = (vs + vt) * units + (0 if self.tie_embeddings else units * vt)
            params = (tables + vt
                      + layers * memory.transformer_layer(units, ff)
                      + layers * memory.transformer_layer(units, ff, cross_attention=True))
            per_token = 2 * units + layers * (
                memory.transformer_activations(units, ff, self.num_heads, length)
                + memory.transformer_activations(units, ff, self.num_heads, length, True))
        else:
            cell, dirs, emb = self.cell, 2 if self.bidirectional else 1, self.embedding_dim
            encoder = sum(dirs * memory.recurrent_layer(cell, emb if i == 0 else dirs * units, units)
                          for i in range(layers))
            feed = units if self.input_feeding else 0
            decoder = sum(memory.recurrent_layer(cell, emb + feed if i == 0 else units, units)
                          for i in range(layers))
            bridge = 2 * (dirs * units * units + units)
            attention = 2 * dirs * units * units + 2 * units * units + (dirs + 1) * units * units
            params = ((vs + vt) * emb + encoder + decoder + bridge + attention
                      + units * vt + vt)
            gates = memory.GATES[cell] + 2
            per_token = 2 * emb + layers * gates * units * (dirs + 1) + 3 * units + length
        return memory.MemoryEstimate(
            parameters=int(params), optimizer_slots=memory.optimizer_slots(self.train.optimizer),
            activations=int(self.tokens_per_batch * (per_token + 3 * classes)))

    @property
    def _batch_label(self):
        if self.batch_tokens:
            return f"batch_tokens={self.batch_tokens}"
        return f"batch_size={self.train.batch_size}"

    def _memory_label(self, source_vocab_size=None, target_vocab_size=None):
        vocab = (f"vocabularies of {source_vocab_size} and {target_vocab_size}"
                 if source_vocab_size else "the smallest vocabulary")
        return (f"{_OWNER}({self.model}, units={self.units}, layers={self.layers}, "
                f"embedding_dim={self.embedding_dim}, {self._batch_label}, "
                f"max_length={self.source_max_length}, {vocab})")

    # -- checks ---------------------------------------------------------------

    def _check_data(self):
        common.check_choice(_OWNER, "model", self.model, MODELS)
        common.check_choice(_OWNER, "tokenizer", self.tokenizer, TOKENIZERS)
        # Word, char and SentencePiece vocabularies need more than the 4 reserved tokens.
        smallest = 1 if self.tokenizer == "wordpiece" else 5
        for name in ("source_vocab_size", "target_vocab_size"):
            common.check_int(_OWNER, name, getattr(self, name), smallest, optional=True)
        common.check_int(_OWNER, "min_frequency", self.min_frequency)
        common.check_bool(_OWNER, "shared_vocab", self.shared_vocab)
        common.check_bool(_OWNER, "split_elisions", self.split_elisions)
        common.check(not self.shared_vocab or self.tokenizer in SUBWORD_TOKENIZERS, _OWNER,
                      f"shared_vocab needs a SentencePiece tokenizer (sentencepiece or bpe), "
                      f"not {self.tokenizer!r}: word-level vocabularies are per language "
                      "(the source is lower-cased, the target keeps its case)")
        common.check_int(_OWNER, "max_length", self.max_length, optional=True)
        for name in ("val_fraction", "test_fraction"):
            common.check_rate(_OWNER, name, getattr(self, name), high=0.5)
        common.check_int(_OWNER, "max_held_out", self.max_held_out)
        common.check(is_int(self.split_seed), _OWNER,
                     f"split_seed must be an integer, got {self.split_seed!r}")

    def _check_model(self):
        for name in ("embedding_dim", "units", "num_heads"):
            common.check_int(_OWNER, name, getattr(self, name))
        common.check_layers(_OWNER, self.layers)
        common.check_rate(_OWNER, "dropout", self.dropout)
        if self.model == "transformer":
            for name in RNN_ONLY:
                common.check(getattr(self, name) is None, _OWNER,
                             f"{name} applies to the rnn model, not to the Transformer")
            common.transformer_width(self.units, self.num_heads)
            common.check_int(_OWNER, "ff_dim", self.ff_dim, optional=True)
            common.check_bool(_OWNER, "tie_embeddings", self.tie_embeddings)
            return
        for name, unset in TRANSFORMER_ONLY.items():
            common.check(getattr(self, name) == unset, _OWNER,
                         f"{name} applies to the Transformer, not to the rnn model")
        common.check_choice(_OWNER, "cell", self.cell, CELLS)
        common.check_bool(_OWNER, "bidirectional", self.bidirectional)
        common.check_choice(_OWNER, "attention", self.attention, ATTENTIONS)
        common.check_bool(_OWNER, "input_feeding", self.input_feeding)
        common.check_rate(_OWNER, "teacher_forcing_ratio", self.teacher_forcing_ratio,
                          high_inclusive=True)

    def _check_training(self):
        common.check_int(_OWNER, "sampled_softmax", self.sampled_softmax, 0, optional=True)
        common.check_int(_OWNER, "sampled_negatives", self.sampled_negatives, 0)
        common.check_int(_OWNER, "sampled_softmax_min_vocab", self.sampled_softmax_min_vocab, 0)
        common.check_bool(_OWNER, "unigram_bias", self.unigram_bias)
        common.check_rate(_OWNER, "label_smoothing", self.label_smoothing)
        common.check_int(_OWNER, "batch_tokens", self.batch_tokens, optional=True)
        common.check(self.batch_tokens is None or self.batch_tokens > self.source_max_length,
                     _OWNER, f"batch_tokens must hold the longest pair (max_length + 1 = "
                     f"{self.source_max_length + 1} tokens), got {self.batch_tokens!r}")
        common.check_int(_OWNER, "steps_per_epoch_cap", self.steps_per_epoch_cap)
        common.check_choice(_OWNER, "early_stop_on", self.early_stop_on, EARLY_STOP_ON)
        common.check(isinstance(self.train, TrainConfig), _OWNER,
                     f"train must be a TrainConfig, got {type(self.train).__name__}")
        common.check_int(_OWNER, "beam_size", self.beam_size)
        common.check(isinstance(self.length_penalty, (int, float))
                     and not isinstance(self.length_penalty, bool)
                     and 0 <= self.length_penalty < float("inf"), _OWNER,
                     f"length_penalty must be >= 0, got {self.length_penalty!r}")
        common.check_bool(_OWNER, "unk_replace", self.unk_replace)
