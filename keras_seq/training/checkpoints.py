"""Checkpoint files: atomic save, the training state inside them, leftovers, averaging.

A checkpoint is written to a temporary file in the same directory and moved
into place with `os.replace`, the state travelling inside the weights file (an
HDF5 root attribute), so a run killed at any instant leaves the previous
checkpoint whole and consistent.

Temporary files are named after their process (`runs.temp_prefix`). At the
start of a run, `_remove_stale_temporaries` removes those of processes that are
gone (and unnamed ones older than this process), never those of a live one.
Once a run's first checkpoint is in place, the old run an `--overwrite` kept
aside is deleted (`runs.discard_replaced_runs`).

With `TrainConfig.average_last = N`, each epoch's model weights are also kept
(`epoch-NNNN.weights.h5`, the newest N; `save_epoch_checkpoint`), and
`average_checkpoints` writes their element-wise mean (`averaged.weights.h5`).
"""

import contextlib
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
    with _published_as(tmp, path):
        skip = [model.optimizer] if state is None and model.optimizer is not None else None
        if skip:
            _keras.saving.save_weights(model, tmp, overwrite=True, objects_to_skip=skip)
        else:
            _keras.saving.save_weights(model, tmp, overwrite=True)
        with h5py.File(tmp, "a") as f:
            if state is not None:
                f.attrs[STATE_ATTR] = json.dumps(state)
            f.flush()
    if path.parent.name == runs.CHECKPOINTS_DIR:
        # The new run has a checkpoint: an overwritten old run is not needed any more.
        runs.discard_replaced_runs(path.parent.parent)



@contextlib.contextmanager
def _published_as(tmp, path):
    """Publishes the file `tmp` the block writes as `path` (fsync, atomic rename,
    fsync of the directory); removes `tmp` if the block or the rename fails."""
    try:
        yield
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


# ----------------------------------------------------------------------------
# Epoch checkpoints and their average (TrainConfig.average_last)
# ----------------------------------------------------------------------------

EPOCH_PREFIX = "epoch-"
EPOCH_SUFFIX = ".weights.h5"
# Top-level groups of a weights file that are not the model's weights.
_NOT_WEIGHTS = ("optimizer",)


def epoch_checkpoint_path(directory, epoch):
    """`directory/epoch-0007.weights.h5`: the model weights after (1-based) `epoch`."""
    return Path(directory) / f"{EPOCH_PREFIX}{int(epoch):04d}{EPOCH_SUFFIX}"


def epoch_checkpoints(directory):
    """The epoch checkpoints in `directory`, oldest first (temporaries excluded)."""
    found = []
    for path in Path(directory).glob(f"{EPOCH_PREFIX}*{EPOCH_SUFFIX}"):
        number = path.name[len(EPOCH_PREFIX):-len(EPOCH_SUFFIX)]
        if number.isascii() and number.isdigit():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


def save_epoch_checkpoint(model, directory, epoch, keep):
    """Writes the model weights of `epoch` and keeps only the newest `keep` of them.

    The new file is moved into place (atomically) before older ones are
    deleted, so at any instant the newest `keep` complete checkpoints are on
    disk (one more, briefly, between the two steps).

    Args:
        model: the Keras model.
        directory: the run's checkpoints directory.
        epoch: the 1-based epoch just finished.
        keep: how many epoch checkpoints to keep (>= 1).

    Returns:
        The path written.
    """
    path = epoch_checkpoint_path(directory, epoch)
    _save_checkpoint(model, path, None)
    for old in epoch_checkpoints(directory)[:-keep]:
        try:
            os.remove(old)
        except FileNotFoundError:
            pass
    return path


def _weight_arrays(path):
    """`{name: array}` of the model weights in a Keras weights file (optimizer excluded)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"no checkpoint at {path}")
    arrays = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/", 1)[0] not in _NOT_WEIGHTS:
            arrays[name] = obj[()]

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as e:
        raise RunDirError(f"checkpoint {path} is unreadable: {str(e).splitlines()[0]}") from e
    if not arrays:
        raise RunDirError(f"checkpoint {path} holds no weights")
    return arrays


def average_checkpoints(paths, to=None):
    """The element-wise mean of the weights of several checkpoints of one model.

    Floating-point weights are averaged (in float64, then cast back); other
    variables (integer counters, seeds) are taken from the last checkpoint.
    The optimizer's variables are left out. Works on the weights files of any
    run (`checkpoints/epoch-*.weights.h5`, `best`, `last`) without building
    the model.

    Args:
        paths: two or more Keras `.weights.h5` files of the same model.
        to: optional path: also write the average there (atomically) as a
            weights file `model.load_weights` reads.

    Returns:
        `{name: numpy array}`, the averaged weights keyed by their place in
        the file (e.g. "layers/dense/vars/0").

    Raises:
        InputError: fewer than two paths.
        RunDirError: a file is missing or unreadable, or the checkpoints do
            not hold the same variables with the same shapes.

    Example:

    >>> import keras_seq as ks
    >>> paths = ks.training.epoch_checkpoints("runs/tiny/checkpoints")[-3:]  # doctest: +SKIP
    >>> ks.training.average_checkpoints(paths, to="averaged.weights.h5")    # doctest: +SKIP
    >>> model.load_weights("averaged.weights.h5")                           # doctest: +SKIP
    """
    import numpy as np

    from keras_seq.errors import InputError

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise InputError(f"averaging needs at least 2 checkpoints, got {len(paths)}")
    first = _weight_arrays(paths[0])
    sums = {k: v.astype(np.float64) if _is_float(v) else v for k, v in first.items()}
    last = first
    for path in paths[1:]:
        arrays = _weight_arrays(path)
        if set(arrays) != set(first):
            extra = sorted(set(arrays) ^ set(first))[0]
            raise RunDirError(
                f"checkpoints {paths[0]} and {path} do not fit together: only one holds {extra}")
        for name, value in arrays.items():
            if value.shape != first[name].shape:
                raise RunDirError(
                    f"checkpoints {paths[0]} and {path} do not fit together: {name} has shape "
                    f"{first[name].shape} in one and {value.shape} in the other")
            if _is_float(value):
                sums[name] = sums[name] + value
        last = arrays
    averaged = {name: (sums[name] / len(paths)).astype(first[name].dtype)
                if _is_float(first[name]) else last[name] for name in first}
    if to is not None:
        _write_weights_like(paths[-1], averaged, to)
    return averaged


def _is_float(array):
    import numpy as np

    return np.issubdtype(array.dtype, np.floating)


def _write_weights_like(template, arrays, path):
    """Writes `arrays` into a copy of the weights file `template` (atomically), optimizer dropped."""
    import shutil

    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=runs.temp_prefix(path.name), suffix=".weights.h5",
                               dir=path.parent)
    os.close(fd)
    with _published_as(tmp, path):
        shutil.copyfile(template, tmp)
        with h5py.File(tmp, "a") as f:
            for group in _NOT_WEIGHTS:
                if group in f:
                    del f[group]
            if STATE_ATTR in f.attrs:
                del f.attrs[STATE_ATTR]
            for name, value in arrays.items():
                f[name][...] = value
            f.flush()
    return path
