"""The end of a run with `TrainConfig.average_last`: which epochs' mean the model keeps.

The last N epoch checkpoints are on disk (`checkpoints/epoch-NNNN.weights.h5`,
see `keras_seq.training.checkpoints`). With validation data, the means of the
last 2, 3, ..., N of them are each scored on it, and the lowest-loss mean is
kept only if it is no worse than the weights the run keeps without averaging
(its best epoch, or its last without `restore_best`): averaging the epochs of
a run still far from converged (a short time budget) hurts, and the window
that helps most depends on how far training got. Without validation data (and
in multi-worker runs, whose workers may hold different epoch checkpoints) the
mean of all N is kept.
"""

import contextlib
import os
import tempfile

from keras_seq import runs
from keras_seq.training.checkpoints import EPOCH_PREFIX
from keras_seq.training.checkpoints import EPOCH_SUFFIX
from keras_seq.training.checkpoints import _load_model_weights
from keras_seq.training.checkpoints import average_checkpoints
from keras_seq.training.checkpoints import epoch_checkpoints


def average_last_epochs(model, run, config, fallback, val_data, validation_steps=None):
    """Loads the mean of the last epochs into `model` when it helps; says what it did.

    Args:
        model: the trained, compiled model, holding the weights the run keeps
            without averaging: those of `fallback`, or the last epoch's.
        run: the `keras_seq.runs.RunDir` (its epoch checkpoints).
        config: the `TrainConfig` (`average_last`, `restore_best`).
        fallback: the weights file the model holds, or None when it holds the
            last epoch's (the newest epoch checkpoint).
        val_data: the validation data `fit` used, or None.
        validation_steps: `fit`'s `validation_steps`.

    Returns:
        `(averaged, message)`: whether the model now holds a mean (written
        atomically to `checkpoints/averaged.weights.h5`, which is otherwise
        absent), and one line saying which epochs, or why none.
    """
    paths = epoch_checkpoints(run.checkpoints_dir)[-config.average_last:]
    kept = "best" if config.restore_best and run.best_weights.is_file() else "last"
    if len(paths) < 2:
        return False, (f"only {len(paths)} epoch checkpoint: nothing to average (--average-last "
                       f"{config.average_last}); the model keeps the {kept} weights")
    window, scores = paths, ""
    if val_data is not None:
        own = _validation_loss(model, val_data, validation_steps)
        losses = _window_losses(model, paths, val_data, validation_steps, run.checkpoints_dir)
        size = min(losses, key=losses.get)
        if losses[size] > own:
            run.averaged_weights.unlink(missing_ok=True)
            _load_model_weights(model, fallback if fallback is not None else paths[-1])
            return False, (f"averaging the last 2-{len(paths)} epochs did not lower val_loss "
                           f"({losses[size]:.4f} at best, {own:.4f} without): the model keeps "
                           f"the {kept} weights")
        window = paths[-size:]
        scores = (f" (val_loss {losses[size]:.4f}, {kept} epoch {own:.4f}; "
                  f"the last 2-{len(paths)} epochs tried)")
    average_checkpoints(window, to=run.averaged_weights)
    _load_model_weights(model, run.averaged_weights)
    names = ", ".join(str(int(p.name[len(EPOCH_PREFIX):-len(EPOCH_SUFFIX)])) for p in window)
    return True, (f"averaged the weights of epochs {names} into "
                  f"{runs.CHECKPOINTS_DIR}/{runs.AVERAGED_WEIGHTS}{scores}")


def _window_losses(model, paths, val_data, validation_steps, directory):
    """`{k: validation loss of the mean of the last k of paths}`, k = 2 .. len(paths).

    Each mean goes through a temporary file (removed after), so
    `averaged.weights.h5` only ever holds the chosen one.
    """
    fd, scratch = tempfile.mkstemp(prefix=runs.temp_prefix("averaging"), suffix=".weights.h5",
                                   dir=directory)
    os.close(fd)
    try:
        losses = {}
        for k in range(2, len(paths) + 1):
            average_checkpoints(paths[-k:], to=scratch)
            _load_model_weights(model, scratch)
            losses[k] = _validation_loss(model, val_data, validation_steps)
        return losses
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(scratch)


def _validation_loss(model, val_data, validation_steps):
    """The model's loss on the validation data (as `fit`'s val_loss)."""
    logs = model.evaluate(val_data, steps=validation_steps, verbose=0, return_dict=True)
    return float(logs["loss"])
