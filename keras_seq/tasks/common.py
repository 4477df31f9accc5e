"""Small helpers shared by the task modules (`keras_seq.tasks.*`)."""

import argparse
import sys

__all__ = ["pick", "say", "train_namespace", "TRAIN_CONFIG_FIELDS"]

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
