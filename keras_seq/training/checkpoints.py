"""Checkpoint files: atomic save, the training state inside them, leftovers.

A checkpoint is written to a temporary file in the same directory and moved
into place with `os.replace`, the state travelling inside the weights file (an
HDF5 root attribute), so a run killed at any instant leaves the previous
checkpoint whole and consistent.

Temporary files are named after their process (`runs.temp_prefix`). At the
start of a run, `_remove_stale_temporaries` removes those of processes that are
gone (and unnamed ones older than this process), never those of a live one.
Once a run's first checkpoint is in place, the old run an `--overwrite` kept
aside is deleted (`runs.discard_replaced_runs`).
"""

import json
import os
import tempfile
from pathlib import Path

from keras_seq import runs
from keras_seq.errors import RunDirError

STATE_ATTR = "keras_seq_training_state"


def _save_checkpoint(model, path, state):
    """Save weights atomically; with `state`, also the optimizer and the state.

    `state` (a JSON-serializable dict) goes into the HDF5 root attributes of the
    same file, so weights, optimizer variables and training state are replaced
    together by one `os.replace`.
    """
    import h5py
    import keras as _keras

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=runs.temp_prefix(path.name), suffix=".weights.h5", dir=path.parent)
    runs.follow_umask(fd)  # mkstemp's 0600 -> what the umask gives
    os.close(fd)
    try:
        skip = [model.optimizer] if state is None and model.optimizer is not None else None
        if skip:
            _keras.saving.save_weights(model, tmp, overwrite=True, objects_to_skip=skip)
        else:
            _keras.saving.save_weights(model, tmp, overwrite=True)
        with h5py.File(tmp, "a") as f:
            if state is not None:
                f.attrs[STATE_ATTR] = json.dumps(state)
            f.flush()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        runs.fsync_dir(path.parent)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    if path.parent.name == runs.CHECKPOINTS_DIR:
        # The new run has a checkpoint: an overwritten old run is not needed any more.
        runs.discard_replaced_runs(path.parent.parent)


def read_checkpoint_state(path):
    """The training state stored in a `last.weights.h5` checkpoint.

    Args:
        path: the checkpoint file.

    Returns:
        The state dict (epoch, elapsed_seconds, best, history, config, ...).

    Raises:
        RunDirError: the file is missing, unreadable or carries no state.

    Example:

    >>> read_checkpoint_state("runs/tiny/checkpoints/last.weights.h5")["epoch"]  # doctest: +SKIP
    2
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"no checkpoint at {path}")
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(STATE_ATTR)
    except OSError as e:
        raise RunDirError(f"checkpoint {path} is unreadable: {str(e).splitlines()[0]}") from e
    if raw is None:
        raise RunDirError(f"checkpoint {path} carries no training state (not written by keras_seq.training)")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def _remove_stale_temporaries(directory):
    """Remove the `.tmp-*` files in `directory` that no live process writes.

    See `runs.remove_stale_temporaries`: named after a process that is gone, or
    (unnamed, from an older keras_seq) older than this process. A concurrent
    writer's temporaries are kept. One line on stderr when any is removed.
    """
    return runs.remove_stale_temporaries(directory, ".tmp-*", what="checkpoint temporaries")


def _load_model_weights(model, path):
    """Load model weights only (a `best` checkpoint carries no optimizer)."""
    skip = [model.optimizer] if model.optimizer is not None else None
    model.load_weights(path, objects_to_skip=skip)
