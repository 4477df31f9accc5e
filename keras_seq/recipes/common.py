"""Pieces shared by the training recipes (`TranslatorRecipe`, `LanguageModelRecipe`).

Nothing here imports TensorFlow, so `keras-seq --help` can read the recipes'
defaults instantly.

    say(message)                      a progress or warning line on stderr
    check(ok, owner, message)         one-line `InputError` from `__post_init__`
    check_choice / check_int / check_rate / check_bool / check_layers
                                      the usual field checks, naming the field
    choose_sampled_softmax(...)       the sampled-softmax choice, checked
                                      against the output vocabulary
    transformer_width(...)            the Transformer's model width, checked
    Recipe                            the recipes' base (`with_training`)
    with_overrides(recipe, **values)  a copy with the given (non-None) fields
                                      replaced; TrainConfig fields go to `.train`
    training_config(stored, **overrides)
                                      the TrainConfig of a resumed run
    TRAIN_FIELDS                      the TrainConfig fields training commands
                                      expose as flags

Example:

>>> from keras_seq.recipes import common
>>> common.choose_sampled_softmax(None, default=512, vocab_size=8000, min_vocab=2048)
512
>>> common.choose_sampled_softmax(None, default=512, vocab_size=800, min_vocab=2048)
0
>>> common.transformer_width(256, num_heads=4)
256
"""

import dataclasses
import sys

from keras_seq import errors
from keras_seq.utils import is_int
from keras_seq.utils import is_number

__all__ = [
    "MAX_LAYERS",
    "Recipe",
    "TRAIN_FIELDS",
    "check",
    "check_bool",
    "check_choice",
    "check_int",
    "check_rate",
    "choose_sampled_softmax",
    "say",
    "training_config",
    "transformer_width",
    "with_overrides",
]

# The most layers a recipe stacks: the deepest published models of these
# families stay below it, and a deeper stack takes minutes just to build.
MAX_LAYERS = 64

# The TrainConfig fields the training commands accept as flags (see keras_seq.cli).
TRAIN_FIELDS = (
    "epochs", "batch_size", "max_minutes", "seed", "optimizer", "learning_rate",
    "lr_schedule", "decay_start_epoch", "decay_rate", "warmup_steps", "anneal_to_budget",
    "clipnorm", "patience", "mixed_precision", "strategy", "jit_compile", "average_last",
)


def say(message):
    """Prints a progress or warning line on stderr (stdout carries results)."""
    print(f"keras-seq: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Field checks for __post_init__ (one-line InputError naming the field)
# ----------------------------------------------------------------------------


def check(ok, owner, message):
    """Raises `InputError(f"{owner}: {message}")` unless `ok`."""
    if not ok:
        raise errors.InputError(f"{owner}: {message}")


def check_choice(owner, name, value, choices):
    """`value` must be one of `choices`."""
    check(value in choices, owner, f"{name} must be one of {', '.join(map(str, choices))}; "
          f"got {value!r}")


def check_int(owner, name, value, minimum=1, *, optional=False):
    """`value` must be an integer >= `minimum` (or None when `optional`)."""
    if optional and value is None:
        return
    check(is_int(value) and value >= minimum, owner,
          f"{name} must be an integer >= {minimum}{' or None' if optional else ''}; got {value!r}")


def check_layers(owner, value):
    """`value` must be an integer in [1, MAX_LAYERS]."""
    check(is_int(value) and 1 <= value <= MAX_LAYERS, owner,
          f"layers must be an integer in 1..{MAX_LAYERS}; got {value!r}")


def check_rate(owner, name, value, *, high=1.0, high_inclusive=False):
    """`value` must be a number in [0, high) (or [0, high] when `high_inclusive`)."""
    ok = is_number(value) and 0 <= value and (value <= high if high_inclusive else value < high)
    check(ok, owner, f"{name} must be in [0, {high:g}{']' if high_inclusive else ')'}; got {value!r}")


def check_bool(owner, name, value):
    """`value` must be True or False."""
    check(isinstance(value, bool), owner, f"{name} must be True or False; got {value!r}")


# ----------------------------------------------------------------------------
# Model choices shared by the recipes
# ----------------------------------------------------------------------------


def choose_sampled_softmax(requested, *, default, vocab_size, min_vocab=0,
                           vocabulary="vocabulary"):
    """The number of sampled negatives a new model trains with (0: full softmax).

    Args:
        requested: int >= 0 asked for (`--sampled-softmax N`), or None for the
            recipe's choice.
        default: the recipe's number of negatives.
        vocab_size: the size of the output vocabulary.
        min_vocab: vocabularies smaller than this train with the full softmax
            when nothing is requested (the sampled softmax pays off on
            vocabularies well above its sample).
        vocabulary: how the error names the vocabulary, e.g. "target vocabulary".

    Returns:
        int >= 0.

    Raises:
        InputError: the number is not smaller than the vocabulary.
    """
    if requested is None:
        requested = default if vocab_size >= min_vocab else 0
    sampled = int(requested)
    if sampled >= vocab_size:
        raise errors.InputError(
            f"--sampled-softmax ({sampled}) must be smaller than the {vocabulary} "
            f"({vocab_size} tokens); 0 trains with the full softmax"
        )
    return sampled


def transformer_width(units, num_heads, embedding_dim=None):
    """The Transformer's model width (`units`), checked against the other settings.

    Args:
        units: the model width (`--units`).
        num_heads: attention heads; the width must be a multiple of them.
        embedding_dim: `--embedding-dim` when given; it must equal the width.

    Returns:
        `units`.

    Raises:
        InputError: the embedding size differs from the width, or the width is
            not a multiple of the heads.
    """
    if embedding_dim is not None and embedding_dim != units:
        raise errors.InputError(
            "--embedding-dim must equal --units for the Transformer (its model width); "
            f"got {embedding_dim} and {units}"
        )
    if units % num_heads:
        raise errors.InputError(
            f"--units ({units}) must be a multiple of the {num_heads} attention heads"
        )
    return units


# ----------------------------------------------------------------------------
# Building recipes from flags, resuming runs
# ----------------------------------------------------------------------------


def with_overrides(recipe, **values):
    """A copy of `recipe` with the given fields replaced; None values are skipped.

    Names of `TrainConfig` fields (e.g. `epochs`, `learning_rate`) replace
    fields of `recipe.train`; the others replace fields of the recipe. This is
    how the CLI maps flags (None: not given) onto a recipe.

    Args:
        recipe: a recipe dataclass with a `train` field holding a `TrainConfig`.
        **values: field values; None means "keep the recipe's".

    Returns:
        A new recipe (validated by its `__post_init__`).

    Raises:
        InputError / ValueError: an unknown field or a bad value.
    """
    own = {f.name for f in dataclasses.fields(recipe)}
    train_names = {f.name for f in dataclasses.fields(recipe.train)}
    given = {k: v for k, v in values.items() if v is not None}
    unknown = sorted(set(given) - own - train_names)
    if unknown:
        raise errors.InputError(
            f"{type(recipe).__name__}: unknown field(s) {', '.join(unknown)}")
    train = {k: v for k, v in given.items() if k in train_names and k not in own}
    fields = {k: v for k, v in given.items() if k in own}
    if train:
        fields["train"] = replace_train(fields.get("train", recipe.train), train)
    return dataclasses.replace(recipe, **fields)


class Recipe:
    """Base of the recipe dataclasses: the methods every recipe shares.

    Subclasses are dataclasses with a `train` field holding a `TrainConfig`.
    """

    def check_memory(self, **vocab_sizes):
        """Raises `InputError` when `memory_estimate(**vocab_sizes)` exceeds
        the machine's memory (`keras_seq.recipes.memory.check_fits`), with the
        estimate in the message. Returns the estimate."""
        from keras_seq.recipes import memory

        estimate = self.memory_estimate(**vocab_sizes)
        memory.check_fits(estimate, self._memory_label(**vocab_sizes), self._MEMORY_HINT)
        return estimate

    def with_training(self, **changes):
        """A copy with `TrainConfig` fields changed (None values are skipped).

        Example:

        >>> from keras_seq.recipes import TranslatorRecipe
        >>> TranslatorRecipe().with_training(epochs=2, max_minutes=5).train.epochs
        2
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, train=replace_train(self.train, changes))


def replace_train(train, changes):
    """`dataclasses.replace(train, **changes)`, where a recipe's `average_last` follows `epochs`.

    A recipe that averages its last N epochs (the Transformer's) averages the
    last `epochs` of a shorter run (none below 2) unless `changes` sets
    `average_last` itself; an explicit value larger than `epochs` is refused
    by `TrainConfig`.
    """
    epochs = changes.get("epochs")
    if (epochs is not None and "average_last" not in changes and train.average_last
            and epochs < train.average_last):
        changes = dict(changes, average_last=epochs if epochs >= 2 else None)
    return dataclasses.replace(train, **changes)


def training_config(stored, **overrides):
    """The `TrainConfig` of a resumed run: its stored one, with `overrides` applied.

    Args:
        stored: the run's config.json "training" dict.
        **overrides: TrainConfig fields to change (None values are skipped),
            e.g. `epochs=30` to train a finished run further.

    Returns:
        A `TrainConfig` with `resume=True`.
    """
    from keras_seq.training import TrainConfig

    values = dict(stored)
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["resume"] = True
    return TrainConfig.from_dict(values)
