"""Checks of run and export directories, made before TensorFlow loads.

    run_config(run, task=, use=)    the config of a trained run (of `task`)
    check_train_dir(args, task)     --run-dir, --resume and --overwrite agree
    export_dir(args)                `--to`, or exported/<run directory name>
"""

import os
from pathlib import Path

from keras_seq import errors
from keras_seq import runs
from keras_seq.cli.parser import PROG

__all__ = ["TASK_LABELS", "TRAIN_COMMANDS", "check_train_dir", "export_dir", "run_config"]

TRAIN_COMMANDS = {"lm": "train-lm", "translator": "train-translator"}
TASK_LABELS = {"lm": "language-model", "translator": "translator"}


def run_config(run, *, task=None, use=None):
    """The config of a trained run directory, checked (of `task` when given); `args` untouched."""
    config = runs.RunDir.open(run, require_checkpoint=True).config
    if task is not None and config["task"] != task:
        raise errors.RunDirError(
            f"{run} is a {TASK_LABELS[config['task']]} run, not a {TASK_LABELS[task]} run; "
            f"use `{PROG} {use}` (or train one with `{PROG} {TRAIN_COMMANDS[task]}`)"
        )
    return config


def check_train_dir(args, task):
    """Checks --run-dir against --resume / --overwrite for a `task` ("lm" or "translator")."""
    if args.resume and args.overwrite:
        raise errors.InputError("--resume and --overwrite cannot be combined")
    path = Path(args.run_dir)
    if path.exists() and not path.is_dir():
        raise errors.RunDirError(f"--run-dir {path} is a file, not a directory")
    # A run left half-overwritten by a killed `--overwrite` gets its old run back first.
    runs.recover_interrupted_overwrite(path)
    if args.resume:
        found = runs.load_run_config(path)["task"]  # must be a run directory
        if found != task:
            raise errors.RunDirError(
                f"{path} holds a {TASK_LABELS[found]} run; resume it with "
                f"`{PROG} {TRAIN_COMMANDS[found]} --resume --run-dir {path}`"
            )
        if not runs.RunDir(path).last_weights.is_file():
            raise errors.RunDirError(
                f"nothing to resume in {path}: no checkpoints/{runs.LAST_WEIGHTS} "
                "(the run stopped before its first epoch ended); train without --resume"
            )
        runs.load_checked_config(path)  # the stored recipe the run goes on with
    elif runs.RunDir(path).has_checkpoint() and not args.overwrite:
        raise errors.RunDirError(
            f"{path} already holds a trained run; pass --resume to continue it, --overwrite "
            "to start over, or choose another --run-dir"
        )


def export_dir(args):
    """`--to`, or `exported/<run directory name>`."""
    return args.to or str(Path("exported") / Path(os.path.abspath(args.run)).name)
