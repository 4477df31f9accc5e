"""Small helpers shared by the task modules (`keras_seq.tasks.*`)."""

import argparse
import sys

from keras_seq import errors

__all__ = [
    "pick", "say", "train_namespace", "sampled_softmax_from_args", "transformer_width",
    "TRAIN_CONFIG_FIELDS",
]

# The TrainConfig fields the training commands accept as flags (see keras_seq.cli).
TRAIN_CONFIG_FIELDS = (
    "epochs", "batch_size", "max_minutes", "seed", "optimizer", "learning_rate",
    "lr_schedule", "decay_start_epoch", "decay_rate", "warmup_steps", "anneal_to_budget",
    "clipnorm",
    "patience", "mixed_precision", "strategy", "jit_compile",
)


def say(message):
    """Prints a progress or warning line on stderr (stdout carries results)."""
    print(f"keras-seq: {message}", file=sys.stderr, flush=True)


def pick(value, default):
    """`value`, or `default` when `value` is None (an unset flag)."""
    return default if value is None else value


def sampled_softmax_from_args(args, default, vocab_size, vocabulary="vocabulary"):
    """`--sampled-softmax` (None: the recipe's `default`), checked against the vocabulary.

    Args:
        args: the command's namespace.
        default: the recipe's number of negatives (0: full softmax).
        vocab_size: the size of the output vocabulary.
        vocabulary: how the error names it, e.g. "target vocabulary".

    Raises:
        InputError: N is not smaller than the vocabulary.
    """
    sampled = int(pick(getattr(args, "sampled_softmax", None), default))
    if sampled >= vocab_size:
        raise errors.InputError(
            f"--sampled-softmax ({sampled}) must be smaller than the {vocabulary} "
            f"({vocab_size} tokens); 0 trains with the full softmax"
        )
    return sampled


def transformer_width(args, default_units, num_heads):
    """The Transformer's model width from `--units`, checked against the flags.

    Raises:
        InputError: `--embedding-dim` differs from the width, or the width is
            not a multiple of the attention heads.
    """
    units = pick(args.units, default_units)
    embedding_dim = getattr(args, "embedding_dim", None)
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


def train_namespace(command, **values):
    """An `argparse.Namespace` like the one `keras-seq <command>` builds.

    Every TrainConfig flag is None (unset) unless given, `resume`/`overwrite`
    are False, so code (the demo, the apps, tests) can call a task's
    `train(args)` without going through the command line.

    Args:
        command: the subcommand name, e.g. "train-translator".
        **values: attributes to set.

    Returns:
        An `argparse.Namespace`.
    """
    defaults = {name: None for name in TRAIN_CONFIG_FIELDS}
    defaults.update(command=command, debug=False, resume=False, overwrite=False,
                    sampled_softmax=None)
    defaults.update(values)
    return argparse.Namespace(**defaults)
