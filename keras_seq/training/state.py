"""The training state a run carries across epochs and sessions.

`_RunState` is saved with every `last` checkpoint (and as `state.json`); a
resumed run picks it up and the `History` that `train` returns is built from it.
"""

import csv
import math

from keras_seq import runs

STOP_COMPLETED = "completed"
STOP_EARLY = "early_stopping"
STOP_TIME = "time_budget"


class _RunState(dict):
    """The training state saved with every `last` checkpoint.

    Keys: epoch (completed epochs), elapsed_seconds, best (monitored value),
    best_epoch, monitor, wait (epochs since best), lr_scale, plateau_wait,
    stop_reason (None while running; "completed" | "early_stopping" |
    "time_budget"), history (one dict of logs per epoch), config, precision
    (the Keras dtype policy the last session trained in, e.g. "mixed_bfloat16").
    """

    @classmethod
    def fresh(cls, config, monitor):
        return cls(
            epoch=0,
            elapsed_seconds=0.0,
            best=None,
            best_epoch=None,
            monitor=monitor,
            wait=0,
            lr_scale=1.0,
            plateau_best=None,
            plateau_wait=0,
            stop_reason=None,
            history=[],
            config=config.to_dict(),
        )


def higher_is_better(monitor):
    """Whether a larger value of `monitor` is better: names ending in "loss" are minimized.

    Example:

    >>> higher_is_better("val_loss"), higher_is_better("val_bleu")
    (False, True)
    """
    return not str(monitor).endswith("loss")


def improves(monitor, value, best):
    """Whether `value` of `monitor` beats `best` (None: nothing yet); NaN never does."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return False
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if higher_is_better(monitor) else value < best


def _public_state(state):
    """`state` without `carried_seconds` (the current session's bookkeeping)."""
    return {k: v for k, v in state.items() if k != "carried_seconds"}


def _write_history_csv(path, history):
    """Write the per-epoch rows atomically; the columns are every key seen, in order."""
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with runs.atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)


def _history(state, stop_reason, initial_epoch):
    """The `keras.callbacks.History` of the whole run (earlier sessions included)."""
    import keras as _keras

    history = _keras.callbacks.History()
    history.epoch = [row["epoch"] - 1 for row in state["history"]]
    keys = []
    for row in state["history"]:
        keys += [k for k in row if k not in ("epoch",) and k not in keys]
    history.history = {k: [row.get(k) for row in state["history"]] for k in keys}
    history.stop_reason = stop_reason
    history.initial_epoch = initial_epoch
    history.state = _public_state(state)
    return history


def _finished_reason(state, config):
    """Why a run in `state` cannot continue under `config`, or None."""
    if state["epoch"] >= config.epochs:
        return f"all {config.epochs} epochs are done (pass a larger --epochs to train further)"
    if (
        state.get("stop_reason") == STOP_EARLY
        and config.patience is not None
        and state.get("wait", 0) >= config.patience
    ):
        return (
            f"it stopped early at epoch {state['epoch']} (no {state.get('monitor')} improvement "
            f"in {config.patience} epochs)"
        )
    if config.max_minutes is not None and state["elapsed_seconds"] >= config.max_minutes * 60.0:
        return f"its time budget of {config.max_minutes:g} min is spent (pass a larger --max-minutes)"
    return None
