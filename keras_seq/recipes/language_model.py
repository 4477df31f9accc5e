"""`LanguageModelRecipe`: how `keras-seq train-lm` trains a language model.

Every default lives in the class below: the class body holds the default
recipe (a word-level 2x256 LSTM), and the three factories hold what changes
with the model family and the tokenizer:

    LanguageModelRecipe()                      word LSTM: seq_len 35, 2x256, dropout 0.3
    LanguageModelRecipe.rnn("gru", "char")     character RNN: seq_len 100, 2x512, emb 64
    LanguageModelRecipe.transformer()          GPT-style: seq_len 128, width 256, 4 heads
    LanguageModelRecipe.for_model(model, tokenizer, **overrides)
                                               one of the above by name, then overrides

Nothing here imports TensorFlow, so `keras-seq --help` reads these defaults
instantly. `keras_seq.pipelines.train_language_model(recipe, run_dir)` trains
one into a run directory.

Example:

>>> from keras_seq.recipes import LanguageModelRecipe
>>> recipe = LanguageModelRecipe.for_model("transformer", units=128, epochs=5)
>>> recipe.seq_len, recipe.units, recipe.train.learning_rate, recipe.train.epochs
(128, 128, 0.0005, 5)
>>> LanguageModelRecipe.rnn("lstm", "char").units
512
"""

import dataclasses
from typing import Optional

from keras_seq import errors
from keras_seq import runs
from keras_seq.recipes import common
from keras_seq.training import TrainConfig

__all__ = ["LanguageModelRecipe"]

DEFAULT_DATA = "bundled:anna-karenina"
DEFAULT_RUN_DIR = "runs/lm"
# Tokens `keras-seq generate` (and `TextGenerator.generate`) produce by default.
GENERATE_LENGTH = 200

MODELS = ("lstm", "gru", "rnn", "transformer")
TOKENIZERS = ("word", "char", "wordpiece")
_OWNER = "LanguageModelRecipe"


def _smallest_vocab(tokenizer):
    """The fewest tokens a vocabulary of `tokenizer` holds (its reserved ones)."""
    return 1 if tokenizer == "wordpiece" else 5


@dataclasses.dataclass(frozen=True)
class LanguageModelRecipe(common.Recipe):
    """A language-model training recipe: model, tokenizer, data split, training.

    The defaults of the fields are the word-level LSTM recipe; build the other
    families with `rnn`, `transformer` or `for_model`, which hold the defaults
    that depend on the model family and the tokenizer.

    Args:
        model: "lstm" | "gru" | "rnn" (recurrent, stateful truncated BPTT) or
            "transformer" (decoder-only, causal).
        tokenizer: "word" (lowercased words, "\\n" kept as a token), "char" or
            "wordpiece".
        vocab_size: the most tokens in the vocabulary (None: every token seen,
            "char"); > 4 (the reserved tokens) for word and char.
        min_frequency: drop tokens seen fewer times in the training text.
        seq_len: tokens per training window (the BPTT length).
        units: hidden units per recurrent layer, or the Transformer's width.
        embedding_dim: the embedding size (recurrent models); for the
            Transformer None or equal to `units`.
        layers: number of recurrent or Transformer layers.
        dropout: dropout rate in [0, 1).
        tie_embeddings: share the input embedding and the output projection.
        num_heads: attention heads of the Transformer (`units` must be a
            multiple of it).
        sampled_softmax: train on a sampled softmax over this many negatives
            (0: the full softmax); evaluation always uses the full softmax.
        val_fraction: the validation part of the text (its later chapters).
        test_fraction: the test part of the text (its end).
        train: the `keras_seq.training.TrainConfig` of the run.

    Raises:
        InputError: a field is out of range (the message names it).

    Example:

    ```python
    import keras_seq as ks

    recipe = ks.LanguageModelRecipe.for_model("gru", "char", epochs=5)
    ks.train_language_model(recipe, "runs/char-gru", data="book.txt")
    ```
    """

    model: str = "lstm"
    tokenizer: str = "word"
    vocab_size: Optional[int] = 10000
    min_frequency: int = 1
    seq_len: int = 35
    units: int = 256
    embedding_dim: Optional[int] = 256
    layers: int = 2
    dropout: float = 0.3
    tie_embeddings: bool = True
    num_heads: int = 4
    sampled_softmax: int = 0
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    train: TrainConfig = dataclasses.field(
        default_factory=lambda: TrainConfig(
            epochs=20, batch_size=32, optimizer="adam", learning_rate=2e-3, clipnorm=5.0,
            patience=3, lr_schedule="plateau", decay_rate=0.5,
        )
    )

    # ------------------------------------------------------------- factories
    @classmethod
    def rnn(cls, cell="lstm", tokenizer="word", **overrides):
        """The recurrent recipe for `cell` ("lstm" | "gru" | "rnn") and `tokenizer`.

        Character models read longer windows with wider layers, a small
        embedding, untied weights and less dropout; WordPiece vocabularies
        default to 8,000 pieces.

        Args:
            cell: the recurrent cell.
            tokenizer: "word" | "char" | "wordpiece".
            **overrides: recipe or `TrainConfig` fields (None: keep).

        Returns:
            A `LanguageModelRecipe`.
        """
        per_tokenizer = {
            "char": dict(seq_len=100, units=512, embedding_dim=64, dropout=0.2,
                         tie_embeddings=False, vocab_size=None),
            "wordpiece": dict(vocab_size=8000),
        }
        return cls._make(dict(model=cell, tokenizer=tokenizer,
                              **per_tokenizer.get(tokenizer, {})), overrides)

    @classmethod
    def transformer(cls, tokenizer="word", **overrides):
        """The decoder-only Transformer recipe for `tokenizer`.

        Windows of 128 tokens, width 256 (`embedding_dim` follows `units`), 4
        heads, dropout 0.1, and a lower peak learning rate with 200 warmup
        steps.

        Args:
            tokenizer: "word" | "char" | "wordpiece" (the vocabulary defaults
                are those of `rnn`).
            **overrides: recipe or `TrainConfig` fields (None: keep).

        Returns:
            A `LanguageModelRecipe`.
        """
        base = cls()
        values = dict(
            model="transformer", tokenizer=tokenizer, seq_len=128, units=256,
            embedding_dim=None, dropout=0.1, num_heads=4, tie_embeddings=True,
            vocab_size=cls.rnn(tokenizer=tokenizer).vocab_size,
            train=dataclasses.replace(base.train, learning_rate=5e-4, warmup_steps=200),
        )
        return cls._make(values, overrides)

    @classmethod
    def for_model(cls, model="lstm", tokenizer="word", **overrides):
        """`rnn(model, tokenizer)` or `transformer(tokenizer)`, then `overrides`.

        This is how `keras-seq train-lm` maps its flags onto a recipe: unset
        flags are None and keep the family's default.

        Args:
            model: "lstm" | "gru" | "rnn" | "transformer" (None: "lstm").
            tokenizer: "word" | "char" | "wordpiece" (None: "word").
            **overrides: recipe fields and `TrainConfig` fields (e.g.
                `epochs`, `learning_rate`); None values are skipped.

        Returns:
            A `LanguageModelRecipe`.

        Raises:
            InputError: an unknown family, tokenizer or field, or a bad value.
        """
        model = model or "lstm"
        tokenizer = tokenizer or "word"
        common.check_choice(_OWNER, "model", model, MODELS)
        common.check_choice(_OWNER, "tokenizer", tokenizer, TOKENIZERS)
        if model == "transformer":
            return cls.transformer(tokenizer, **overrides)
        return cls.rnn(model, tokenizer, **overrides)

    @classmethod
    def _make(cls, values, overrides):
        """The default recipe with the factory's `values`, then the `overrides`."""
        try:
            recipe = dataclasses.replace(cls(), **values)
        except TypeError as e:  # an unknown field
            raise errors.InputError(f"{_OWNER}: {e}") from None
        return common.with_overrides(recipe, **overrides)

    @classmethod
    def from_run(cls, run_dir):
        """The recipe a run directory was trained with (from its config.json).

        Used to resume a run: its model, tokenizer and data settings are the
        stored ones, and `train` is the stored `TrainConfig`.

        Args:
            run_dir: a language-model run directory.

        Returns:
            A `LanguageModelRecipe`.

        Raises:
            RunDirError: not a run directory or not a language-model run.
        """
        config = runs.load_run_config(run_dir)
        if config.get("task") == "lm":
            config = runs.load_checked_config(run_dir)
        if config.get("task") != "lm":
            raise errors.RunDirError(
                f"{run_dir} is a {config.get('task')} run, not a language-model run")
        model = config.get("model") or {}
        m = model.get("config") or {}
        data = config.get("data") or {}
        values = dict(
            tokenizer=(config.get("tokenizer") or {}).get("type", "word"),
            seq_len=data.get("seq_len"), val_fraction=data.get("val_fraction"),
            test_fraction=data.get("test_fraction"), layers=m.get("num_layers"),
            dropout=m.get("dropout"), tie_embeddings=m.get("tie_embeddings"),
            sampled_softmax=m.get("sampled_softmax"),
        )
        if model.get("type") == "transformer":
            values.update(model="transformer", units=m.get("d_model"), embedding_dim=None,
                          num_heads=m.get("num_heads"))
        else:
            values.update(model=m.get("cell", "lstm"), units=m.get("units"),
                          embedding_dim=m.get("embedding_dim"))
        stored = {k: v for k, v in (config.get("training") or {}).items() if k != "resume"}
        values = {k: v for k, v in values.items() if v is not None or k == "embedding_dim"}
        return dataclasses.replace(cls(), train=TrainConfig.from_dict(stored), **values)

    @classmethod
    def describe_defaults(cls, names, train_names=()):
        """`{name: text}`: each field's default and how the other recipes differ.

        For `--help`: e.g. `"35; char: 100, transformer: 128"` for `seq_len`.

        Args:
            names: recipe fields.
            train_names: `TrainConfig` fields (of `train`).

        Returns:
            dict of str.
        """
        base = cls()
        variants = {"char": cls.rnn("lstm", "char"), "wordpiece": cls.rnn("lstm", "wordpiece"),
                    "transformer": cls.transformer()}

        def shown(value, name):
            if isinstance(value, bool):
                return "on" if value else "off"
            if value is None:  # what None means for the two fields that allow it
                return {"vocab_size": "every token", "embedding_dim": "= --units"}.get(name, "none")
            return str(value)

        def describe(name, read):
            value = read(base)
            others = [f"{label}: {shown(read(r), name)}" for label, r in variants.items()
                      if read(r) != value]
            return shown(value, name) + (f"; {', '.join(others)}" if others else "")

        texts = {name: describe(name, lambda r, name=name: getattr(r, name)) for name in names}
        texts.update({name: describe(name, lambda r, name=name: getattr(r.train, name))
                      for name in train_names})
        return texts

    # ------------------------------------------------------------ derived
    @property
    def family(self):
        """`"rnn"` or `"transformer"`: the run directory's model type."""
        return "transformer" if self.model == "transformer" else "rnn"

    def model_info(self, vocab_size):
        """The run's `{"type", "config"}` model entry for a fitted vocabulary.

        Args:
            vocab_size: the tokenizer's vocabulary size.

        Returns:
            `{"type": "rnn" | "transformer", "config": {...constructor kwargs}}`.

        Raises:
            InputError: `sampled_softmax` is not below the vocabulary size.
        """
        sampled = common.choose_sampled_softmax(
            self.sampled_softmax, default=0, vocab_size=vocab_size)
        if self.family == "transformer":
            config = dict(
                vocab_size=vocab_size, d_model=self.units, num_heads=self.num_heads,
                ff_dim=4 * self.units, num_layers=self.layers, dropout=self.dropout,
                max_length=max(512, self.seq_len), tie_embeddings=self.tie_embeddings,
                sampled_softmax=sampled,
            )
        else:
            config = dict(
                vocab_size=vocab_size, embedding_dim=self.embedding_dim, units=self.units,
                num_layers=self.layers, cell=self.model, dropout=self.dropout,
                tie_embeddings=self.tie_embeddings,
                # Stateful TBPTT training on the sampled loss; evaluation,
                # generation and export use the full softmax.
                sampled_softmax=sampled,
            )
        return {"type": self.family, "config": config}

    # ------------------------------------------------------------ memory
    _MEMORY_HINT = "units, embedding_dim, layers, vocab_size, batch_size or seq_len"

    def memory_estimate(self, vocab_size=None):
        """Peak memory of training this recipe (`keras_seq.recipes.memory`).

        Args:
            vocab_size: the fitted vocabulary; None: the smallest this recipe
                can have (its reserved tokens), so what is refused before the
                data is read could not fit with any data.

        Returns:
            A `keras_seq.recipes.memory.MemoryEstimate`.

        Example:

        >>> LanguageModelRecipe().memory_estimate(10000).total_bytes < 10**9
        True
        """
        from keras_seq.recipes import memory

        vocab = _smallest_vocab(self.tokenizer) if vocab_size is None else int(vocab_size)
        batch, length, units, layers = self.train.batch_size, self.seq_len, self.units, self.layers
        classes = self.sampled_softmax + 1 if self.sampled_softmax else vocab
        if self.family == "transformer":
            params = (vocab * units + vocab  # sinusoidal positions: no weights
                      + layers * memory.transformer_layer(units, 4 * units)
                      + (0 if self.tie_embeddings else units * vocab))
            per_token = units + layers * memory.transformer_activations(
                units, 4 * units, self.num_heads, length)
        else:
            embedding = self.embedding_dim
            params = vocab * embedding + sum(
                memory.recurrent_layer(self.model, embedding if i == 0 else units, units)
                for i in range(layers))
            if self.tie_embeddings:
                params += vocab + (units * embedding if units != embedding else 0)
            else:
                params += units * vocab + vocab
            per_token = embedding + layers * (memory.GATES[self.model] + 2) * units
        return memory.MemoryEstimate(
            parameters=int(params), optimizer_slots=memory.optimizer_slots(self.train.optimizer),
            activations=int(batch * length * (per_token + 3 * classes)))

    def _memory_label(self, vocab_size=None):
        return (f"{_OWNER}({self.model}, units={self.units}, layers={self.layers}, "
                f"embedding_dim={self.embedding_dim}, batch_size={self.train.batch_size}, "
                f"seq_len={self.seq_len}, "
                + (f"vocabulary of {vocab_size})" if vocab_size else "the smallest vocabulary)"))

    # ------------------------------------------------------------ checks
    def __post_init__(self):
        common.check_choice(_OWNER, "model", self.model, MODELS)
        common.check_choice(_OWNER, "tokenizer", self.tokenizer, TOKENIZERS)
        common.check_int(_OWNER, "vocab_size", self.vocab_size, optional=True)
        if self.vocab_size is not None and self.tokenizer != "wordpiece":
            common.check(self.vocab_size > 4, _OWNER,
                         f"vocab_size must be > 4 (the reserved tokens), got {self.vocab_size}")
        for name in ("min_frequency", "seq_len", "units", "num_heads"):
            common.check_int(_OWNER, name, getattr(self, name))
        common.check_layers(_OWNER, self.layers)
        common.check_int(_OWNER, "embedding_dim", self.embedding_dim,
                         optional=self.model == "transformer")
        common.check_int(_OWNER, "sampled_softmax", self.sampled_softmax, minimum=0)
        common.check_rate(_OWNER, "dropout", self.dropout)
        common.check_bool(_OWNER, "tie_embeddings", self.tie_embeddings)
        for name in ("val_fraction", "test_fraction"):
            common.check_rate(_OWNER, name, getattr(self, name), high=0.5)
        common.check(isinstance(self.train, TrainConfig), _OWNER,
                     f"train must be a TrainConfig; got {type(self.train).__name__}")
        if self.model == "transformer":
            common.transformer_width(self.units, self.num_heads, self.embedding_dim)

