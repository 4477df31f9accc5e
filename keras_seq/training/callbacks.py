"""The callbacks `train` adds to `fit`: learning rate, time budget, checkpoints, logs, curves.

They share the run's `_RunState` (a dict saved with every checkpoint) and read
and update it in place, so a resumed run continues their counters. Time is the
elapsed time carried over from earlier sessions (`state["carried_seconds"]`)
plus `time.monotonic() - session_start`.
"""

import math
import time
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from keras_seq import runs
from keras_seq.training import multi_worker
from keras_seq.training.checkpoints import _save_checkpoint
from keras_seq.training.checkpoints import save_epoch_checkpoint
from keras_seq.training.state import STOP_COMPLETED
from keras_seq.training.state import STOP_EARLY
from keras_seq.training.state import STOP_TIME
from keras_seq.training.state import _public_state
from keras_seq.training.state import improves
from keras_seq.training.state import _write_history_csv


def _elapsed_seconds(state, session_start):
    """Seconds of the whole run: earlier sessions plus this one."""
    return state["carried_seconds"] + (time.monotonic() - session_start)


class LearningRateController(keras.callbacks.Callback):
    """Sets the learning-rate variable: warmup, step decay, plateau decay.

    Used for every schedule but "cosine" (a schedule object inside the
    optimizer). The rate is `peak * epoch scale * warmup * budget annealing`.

    Args:
        config: the run's `TrainConfig`.
        state: the run's `_RunState`; the plateau counters and `lr_scale`
            live there, so a resume keeps them.
        monitor: the logged value the "plateau" schedule watches.
        session_start: `time.monotonic()` at the start of this `train` call.

    Example:

    >>> controller = LearningRateController(config, state, "val_loss",
    ...                                     time.monotonic())  # doctest: +SKIP
    """

    def __init__(self, config, state, monitor, session_start):
        super().__init__()
        self.config = config
        self.state = state
        self.monitor = monitor
        self.session_start = session_start

    def _set(self, value):
        self.model.optimizer.learning_rate = value

    def _epoch_scale(self, epoch):
        config = self.config
        if config.lr_schedule == "step":
            # epoch is 0-based; the decay starts at the 1-based decay_start_epoch.
            return config.decay_rate ** max(0, epoch + 1 - config.decay_start_epoch + 1)
        if config.lr_schedule == "plateau":
            return self.state["lr_scale"]
        return 1.0

    def _warm(self):
        if not self.config.warmup_steps:
            return 1.0
        step = int(self.model.optimizer.iterations.numpy())
        return min(1.0, (step + 1) / self.config.warmup_steps)

    def _budget(self):
        """Cosine factor of the time budget spent (1.0 without annealing)."""
        if not self._anneal:
            return 1.0
        config = self.config
        elapsed = _elapsed_seconds(self.state, self.session_start)
        strategy = self.model.distribute_strategy
        if multi_worker.is_multi_worker(strategy):  # every worker must set the same rate
            elapsed = multi_worker.mean_over_workers(strategy, elapsed)
        spent = min(1.0, elapsed / (config.max_minutes * 60.0))
        # Annealed over the last `fraction` of the budget (all of it for True).
        fraction = 1.0 if config.anneal_to_budget is True else float(config.anneal_to_budget)
        into = (spent - (1.0 - fraction)) / fraction
        if into <= 0.0:
            return 1.0
        floor = config.min_learning_rate / config.peak_learning_rate
        return max(0.5 * (1.0 + math.cos(math.pi * into)), floor)

    def _update(self):
        self._set(self.config.peak_learning_rate * self._scale * self._warm() * self._budget())

    def on_train_begin(self, logs=None):
        self._anneal = bool(self.config.anneal_to_budget and self.config.max_minutes)
        self._batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._scale = self._epoch_scale(epoch)
        self._update()

    def on_train_batch_begin(self, batch, logs=None):
        config = self.config
        self._batches += 1
        if config.warmup_steps:
            step = int(self.model.optimizer.iterations.numpy())
            if step < config.warmup_steps + config.steps_per_execution:
                self._update()
                return
        if self._anneal and self._batches % 10 == 0:  # the clock moves slowly
            self._update()

    def on_epoch_end(self, epoch, logs=None):
        config, state = self.config, self.state
        if config.lr_schedule != "plateau":
            return
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if state["plateau_best"] is None or value < state["plateau_best"]:
            state["plateau_best"] = float(value)
            state["plateau_wait"] = 0
            return
        state["plateau_wait"] += 1
        if state["plateau_wait"] >= config.plateau_patience:
            # Takes effect at the next epoch (so the logged rate is the one
            # this epoch used); saved in the state, so a resume keeps it.
            floor = config.min_learning_rate / config.peak_learning_rate
            state["lr_scale"] = max(state["lr_scale"] * config.decay_rate, floor)
            state["plateau_wait"] = 0


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the batch that spends `config.max_minutes`.

    Args:
        config: the run's `TrainConfig` (with `max_minutes` set).
        state: the run's `_RunState` (for the time of earlier sessions).
        session_start: `time.monotonic()` at the start of this `train` call.

    Example:

    >>> budget = TimeBudget(config, state, time.monotonic())  # doctest: +SKIP
    >>> budget.stopped                                        # doctest: +SKIP
    False
    """

    def __init__(self, config, state, session_start):
        super().__init__()
        self.config = config
        self.state = state
        self.session_start = session_start
        self.stopped = False

    # Under a multi-worker strategy the workers must stop at the same batch:
    # the decision is all-reduced (one small collective every this many batches).
    multi_worker_check_every = 10

    def _spent(self):
        spent = _elapsed_seconds(self.state, self.session_start) >= self.config.max_minutes * 60.0
        strategy = self.model.distribute_strategy
        if multi_worker.is_multi_worker(strategy):
            spent = multi_worker.any_worker(strategy, spent)
        return spent

    def on_train_batch_end(self, batch, logs=None):
        if (
            multi_worker.is_multi_worker(self.model.distribute_strategy)
            and (batch + 1) % self.multi_worker_check_every
        ):
            return
        if not self.stopped and self._spent():
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        # Validation may have spent the rest of the budget.
        if not self.stopped and self._spent():
            self.stopped = True
            self.model.stop_training = True


class RunCheckpoint(keras.callbacks.Callback):
    """Best/last checkpoints, early stopping and the history, every epoch.

    Updates `state` (epoch, elapsed time, best value, stop reason, history),
    then writes `best` (when the monitored value improved), `last` (with the
    state), the epoch's own weights (with `config.average_last`, keeping the
    newest N), `state.json` and `logs/history.csv`.

    Args:
        config: the run's `TrainConfig`.
        run: the `keras_seq.runs.RunDir`.
        state: the run's `_RunState`.
        monitor: the logged value that picks the best epoch and early-stops
            (a name ending in "loss" is minimized, others maximized).
        session_start: `time.monotonic()` at the start of this `train` call.
        time_budget: the run's `TimeBudget` callback, or None.

    Example:

    >>> checkpoint = RunCheckpoint(config, run, state, "val_loss",
    ...                            time.monotonic(), None)  # doctest: +SKIP
    """

    def __init__(self, config, run, state, monitor, session_start, time_budget=None):
        super().__init__()
        self.config = config
        self.run = run
        self.state = state
        self.monitor = monitor
        self.session_start = session_start
        self.time_budget = time_budget

    def on_epoch_end(self, epoch, logs=None):
        state, run = self.state, self.run
        logs = {k: _to_float(v) for k, v in (logs or {}).items()}
        logs["learning_rate"] = _current_lr(self.model.optimizer)
        state["epoch"] = epoch + 1
        state["elapsed_seconds"] = _elapsed_seconds(state, self.session_start)
        state["history"].append({"epoch": epoch + 1, **logs, "elapsed_seconds": state["elapsed_seconds"]})
        value = logs.get(self.monitor)
        if improves(self.monitor, value, state["best"]):
            state["best"], state["best_epoch"], state["wait"] = float(value), epoch + 1, 0
            _save_checkpoint(self.model, run.best_weights, None)
        else:
            state["wait"] += 1
        self._set_stop_reason(epoch)
        if not run.best_weights.is_file():
            # No finite monitored value yet: keep the current weights as best.
            _save_checkpoint(self.model, run.best_weights, None)
        _save_checkpoint(self.model, run.last_weights, _public_state(state))
        if self.config.average_last:
            save_epoch_checkpoint(self.model, run.checkpoints_dir, epoch + 1,
                                  self.config.average_last)
        runs.write_json_atomic(run.state_path, _public_state(state))
        _write_history_csv(run.logs_dir / "history.csv", state["history"])

    def _set_stop_reason(self, epoch):
        """Record why training stops after `epoch` (early stopping stops it here)."""
        config, state = self.config, self.state
        if epoch + 1 >= config.epochs:
            state["stop_reason"] = STOP_COMPLETED
        elif config.patience is not None and state["wait"] >= config.patience:
            state["stop_reason"] = STOP_EARLY
            self.model.stop_training = True
        elif self.time_budget is not None and self.time_budget.stopped:
            state["stop_reason"] = STOP_TIME
        elif self.model.stop_training:
            state["stop_reason"] = "stopped"


def _make_callbacks(config, run, state, monitor, session_start, schedule_monitor=None):
    """The run's own callbacks: ([lr controller, time budget], run checkpoint).

    `schedule_monitor` (default `monitor`) is the loss the "plateau" schedule watches.
    """
    callbacks = []
    if config.lr_schedule != "cosine":  # cosine is a schedule object in the optimizer
        callbacks.append(LearningRateController(config, state, schedule_monitor or monitor,
                                                session_start))
    budget = None
    if config.max_minutes is not None:
        budget = TimeBudget(config, state, session_start)
        callbacks.append(budget)
    return callbacks, RunCheckpoint(config, run, state, monitor, session_start, budget)


TRAINING_CURVES = "training-curves.png"


class TrainingCurves(keras.callbacks.Callback):
    """Redraws `RUN/training-curves.png` as epochs end (`keras_seq.plotting`).

    Loss, validation loss, validation BLEU (when a callback logs `val_bleu`)
    and learning rate per epoch, from the run's history (earlier sessions
    included). It redraws at the end of an epoch when `min_seconds` have
    passed since the last drawing (every epoch of a real run; short epochs
    are not slowed down by drawing), and always when training ends. Place it
    after `RunCheckpoint`, which appends the epoch to the history. Without
    matplotlib (the `plot` extra) nothing is drawn and, when `verbose`, one
    note says so.

    Args:
        state: the run's `_RunState` (its "history").
        path: the PNG to write.
        verbose: the run's verbosity (the note is shown at 1 and above).
        min_seconds: the least time between two drawings at epoch ends.

    Example:

    >>> curves = TrainingCurves(state, "runs/tiny/training-curves.png")  # doctest: +SKIP
    """

    def __init__(self, state, path, verbose=1, min_seconds=10.0):
        super().__init__()
        self.state = state
        self.path = Path(path)
        self.verbose = verbose
        self.min_seconds = float(min_seconds)
        self.disabled = False
        self._drawn_at = None
        self._drawn_rows = 0

    def on_train_begin(self, logs=None):
        self._drawn_at = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() - self._drawn_at >= self.min_seconds:
            self._draw()

    def on_train_end(self, logs=None):
        if len(self.state.get("history") or ()) != self._drawn_rows:
            self._draw()

    def _draw(self):
        from keras_seq import errors
        from keras_seq import plotting
        from keras_seq import progress

        history = self.state.get("history")
        if self.disabled or not history:
            return
        try:
            plotting.plot_training_curves(history, self.path)
        except errors.MissingExtraError as e:
            self.disabled = True
            progress.echo(f"no {self.path.name}: {e}", self.verbose)
        self._drawn_at, self._drawn_rows = time.monotonic(), len(history)


def _scalars_metadata():
    # What tensorboard's `summary_v2.scalar` writes: the "scalars" plugin, no content.
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )


class EpochSummaries(keras.callbacks.Callback):
    """Per-epoch scalars as TensorBoard event files.

    Writes `logs/train` (tags `epoch_loss`, `epoch_<metric>`,
    `epoch_learning_rate`) and `logs/validation` (`epoch_loss`, ...), the
    layout of `keras.callbacks.TensorBoard`, using only core TensorFlow ops
    (`tf.summary.write` with the "scalars" plugin metadata), so no
    `tensorboard` package is needed to write them. View with
    `tensorboard --logdir RUN/logs`.

    Args:
        log_dir: the run's logs directory.

    Example:

    >>> model.fit(ds, epochs=2, callbacks=[EpochSummaries("runs/x/logs")])  # doctest: +SKIP
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writers = {}

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        lr = _current_lr(self.model.optimizer)
        if lr is not None:
            logs.setdefault("learning_rate", lr)
        metadata = _scalars_metadata()
        for name, scalars in _split_logs(logs).items():
            if not scalars:
                continue
            writer = self._writer(name)
            with writer.as_default():
                for key, value in scalars.items():
                    tf.summary.write(
                        f"epoch_{key}", tf.constant(value, tf.float32), step=epoch, metadata=metadata
                    )
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _split_logs(logs):
    """{"train": {...}, "validation": {...}}: the float logs, "val_" prefix removed."""
    split = {"train": {}, "validation": {}}
    for key, value in logs.items():
        value = _to_float(value)
        if not isinstance(value, float):
            continue
        if key.startswith("val_"):
            split["validation"][key[4:]] = value
        else:
            split["train"][key] = value
    return split


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _current_lr(optimizer):
    lr = optimizer.learning_rate
    try:
        return float(keras.ops.convert_to_numpy(lr))
    except Exception:  # pragma: no cover - exotic schedules
        return None
