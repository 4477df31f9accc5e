"""`RunProgress`: Keras's epoch bar plus a whole-run line, honest about early stops.

Keras's `ProgbarLogger` shows one epoch at a time, and when a callback stops
training in the middle of an epoch (the time budget) it still finishes the
bar at the epoch's full step count (`29/29`). `RunProgress` replaces it in
`fit` (Keras adds no bar of its own when one is in the callbacks):

- the epoch bar (on a terminal) or line (off one) shows the batches that
  really ran: `3/29`, with "stopped by the 10-minute budget after 3/29
  batches";
- after every epoch, a whole-run line: elapsed time (earlier sessions of a
  resumed run included), the estimated time left (from the epochs left at
  the pace so far, or the time budget left when that is smaller) and the
  best monitored value so far with its epoch;
- off a terminal (a log file, CI), exactly one line per epoch and no bar
  characters.

Terminal output (verbose 1):

    Epoch 3/20
    29/29 ━━━━━━━━━━━━━━━━━━━━ 2s 61ms/step - loss: 1.2034 - val_loss: 1.3112
    run: 0:07 elapsed, ~0:49 left (17 epochs); best val_loss 1.3112 (epoch 3)

Log output (verbose 1, stdout not a terminal):

    epoch 3/20 - 29/29 batches - 2s 61ms/batch - loss: 1.2034 - val_loss: 1.3112 - run: 0:07 elapsed, ~0:49 left (17 epochs); best val_loss 1.3112 (epoch 3)
"""

import time

import keras

from keras_seq.progress import _write_line
from keras_seq.progress import format_duration
from keras_seq.progress import is_terminal
from keras_seq.progress import resolve_verbose
from keras_seq.training.state import STOP_COMPLETED
from keras_seq.training.state import STOP_EARLY
from keras_seq.training.state import STOP_TIME
from keras_seq.training.state import higher_is_better
from keras_seq.training.state import improves

_REASONS = {
    STOP_COMPLETED: "all epochs ran",
    STOP_EARLY: "early stopping",
    STOP_TIME: "time budget spent",
}


class RunProgress(keras.callbacks.ProgbarLogger):
    """Epoch progress with a whole-run line; shows what ran when stopped early.

    Put it last in the callbacks, after the ones that may stop training (the
    time budget, early stopping) and the one that updates the run state, so
    it reports their decisions of the same batch or epoch. `train` does this
    for you; with plain `fit` it works without a run state too.

    Args:
        verbose: 1 (normal) or 2 (adds the learning rate, the validation
            time and a header); "auto"/None mean 1. For 0, leave it out.
        monitor: the logged value whose best (lowest) is reported.
        max_minutes: the time budget of the whole run, or None.
        state: the run's `_RunState` (optional): the elapsed time of earlier
            sessions (`carried_seconds`), the best so far (`best`,
            `best_epoch`) and the stop reason `RunCheckpoint` records.
        session_start: `time.monotonic()` when this session started (default:
            when training begins).
        time_budget: the run's `TimeBudget` callback, to tell a budget stop
            from other stops.
        terminal: True for a live bar, False for one line per epoch; None
            detects whether stdout is a terminal.

    Example:

    >>> model.fit(ds, epochs=20, verbose=1,
    ...           callbacks=[RunProgress(monitor="val_loss")])  # doctest: +SKIP
    """

    def __init__(
        self,
        verbose=1,
        monitor="val_loss",
        max_minutes=None,
        state=None,
        session_start=None,
        time_budget=None,
        terminal=None,
    ):
        super().__init__()
        self.level = max(1, resolve_verbose(verbose))
        self.monitor = monitor
        self.max_minutes = max_minutes
        self.state = state
        self.session_start = session_start
        self.time_budget = time_budget
        self.terminal = is_terminal() if terminal is None else bool(terminal)
        self.stopped_after = None  # batches run in the epoch training stopped in
        self._epoch_seconds = []

    # -- Keras hooks ---------------------------------------------------------

    def set_params(self, params):
        super().set_params(params)
        self.params = params  # ProgbarLogger.set_params does not keep them
        # Our own level, whatever `fit` was given: Keras's bar only on a terminal.
        self.verbose = 1 if self.terminal else 0

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.session_start is None:
            self.session_start = time.monotonic()
        state = self.state or {}
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.stopped_after = None
        self._epoch_seconds = []
        if self.level >= 2:
            _write_line(self._header())

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()
        self._validation_seconds = 0.0
        self._test_start = None
        super().on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.model.stop_training and self.stopped_after is None:
            self.stopped_after = self.seen

    def on_test_begin(self, logs=None):
        super().on_test_begin(logs)
        self._test_start = time.monotonic()

    def on_test_end(self, logs=None):
        super().on_test_end(logs)
        if self._test_start is not None:
            self._validation_seconds += time.monotonic() - self._test_start
            self._test_start = None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        seconds = time.monotonic() - self._epoch_start
        self._epoch_seconds.append(seconds)
        self._update_best(epoch, logs)
        ran, target = self.seen, self.target
        partial = self.stopped_after is not None and (target is None or ran < target)
        if self.terminal:
            self._finish_bar(ran, target, logs)
            if partial:
                _write_line(self._stop_text(ran, target))
            _write_line(self._run_text(epoch))
        else:
            _write_line(self._epoch_line(epoch, seconds, ran, target, logs, partial))

    # -- what is printed -----------------------------------------------------

    def _finish_bar(self, ran, target, logs):
        """Finish Keras's bar at the batches that ran (not at the target)."""
        self._maybe_init_progbar()
        if target is None:
            self.target = self.progbar.target = ran
        self.progbar.update(ran, list(logs.items()), finalize=True)

    def _header(self):
        epochs = self.params.get("epochs")
        steps = self.params.get("steps")
        parts = [f"training up to {epochs} epochs"]
        parts.append(f"{steps} batches each" if steps else "batches per epoch unknown")
        if self.max_minutes:
            parts.append(f"time budget {_budget_text(self.max_minutes)}")
        parts.append(f"best by {'highest' if higher_is_better(self.monitor) else 'lowest'} "
                     f"{self.monitor}")
        return "run: " + ", ".join(parts)

    def _stop_text(self, ran, target):
        of = f"{ran}/{target}" if target is not None else f"{ran}"
        noun = "batch" if ran == 1 and target is None else "batches"  # "1/29 batches"
        budget = self.time_budget is not None and self.time_budget.stopped
        if budget and self.max_minutes:
            return f"stopped by the {_budget_text(self.max_minutes, '-')} budget after {of} {noun}"
        return f"stopped after {of} {noun}"

    def _epoch_line(self, epoch, seconds, ran, target, logs, partial):
        """The one line per epoch off a terminal."""
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        if partial:
            parts.append(self._stop_text(ran, target))
        else:
            parts.append(f"{ran}/{target if target is not None else ran} batches")
        train_seconds = max(0.0, seconds - self._validation_seconds)
        parts.append(f"{format_duration(seconds)} {_per_unit(train_seconds, ran, 'batch')}")
        parts.extend(f"{key}: {_format_value(value)}" for key, value in logs.items())
        parts.append(self._run_text(epoch))
        return " - ".join(parts)

    def _run_text(self, epoch):
        """The whole-run summary: elapsed, time left, best so far."""
        elapsed = self._elapsed()
        text = f"run: {format_duration(elapsed)} elapsed, {self._left_text(epoch, elapsed)}"
        if self.best is not None:
            text += f"; best {self.monitor} {_format_value(self.best)} (epoch {self.best_epoch})"
        if self.level >= 2:
            text += self._detail_text()
        return text

    def _left_text(self, epoch, elapsed):
        reason = self._finished(epoch)
        if reason is not None:
            return f"done ({reason})"
        epochs_left = self.epochs - (epoch + 1)
        estimate = epochs_left * self._pace()
        noun = "epoch" if epochs_left == 1 else "epochs"
        if self.max_minutes:
            budget_left = max(0.0, self.max_minutes * 60.0 - elapsed)
            if budget_left < estimate:
                left = format_duration(budget_left)
                return f"~{left} left (time budget; {epochs_left} {noun} to go)"
        return f"~{format_duration(estimate)} left ({epochs_left} {noun})"

    def _detail_text(self):
        parts = []
        lr = _learning_rate(self.model)
        if lr is not None:
            parts.append(f"lr {lr:.3g}")
        if self._validation_seconds:
            parts.append(f"validation {format_duration(self._validation_seconds)}")
        return "; " + ", ".join(parts) if parts else ""

    # -- bookkeeping ---------------------------------------------------------

    def _finished(self, epoch):
        """Why the run ends after this epoch, or None when it goes on."""
        if not self.model.stop_training and epoch + 1 < self.epochs:
            return None
        if self.time_budget is not None and self.time_budget.stopped:
            reason = STOP_TIME  # even in the last epoch, which the state calls completed
        else:
            reason = (self.state or {}).get("stop_reason")
        if reason is None and epoch + 1 >= self.epochs:
            reason = STOP_COMPLETED
        return _REASONS.get(reason, "stopped")

    def _pace(self):
        """Seconds per epoch so far; the first epoch (tracing) only if alone."""
        seconds = self._epoch_seconds[1:] or self._epoch_seconds
        return sum(seconds) / len(seconds)

    def _elapsed(self):
        carried = float((self.state or {}).get("carried_seconds") or 0.0)
        return carried + time.monotonic() - self.session_start

    def _update_best(self, epoch, logs):
        value = logs.get(self.monitor)
        if improves(self.monitor, value, self.best):
            self.best, self.best_epoch = float(value), epoch + 1


def _budget_text(max_minutes, joiner=" "):
    """ "10 minutes", or with `joiner="-"` "10-minute"; seconds under a minute."""
    seconds = max_minutes * 60.0
    if seconds >= 60:
        amount, unit = f"{max_minutes:.3g}", "minute"
    else:
        amount, unit = f"{seconds:.3g}", "second"
    if joiner == "-":
        return f"{amount}-{unit}"
    return f"{amount} {unit}" + ("" if amount == "1" else "s")


def _format_value(value):
    """Like Keras's bar: 4 decimals, or scientific for tiny values."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4f}" if abs(value) > 1e-3 or value == 0 else f"{value:.4e}"


def _per_unit(seconds, count, unit):
    if not count:
        return f"-/{unit}"
    each = seconds / count
    if each >= 1:
        return f"{each:.0f}s/{unit}"
    if each >= 1e-3:
        return f"{each * 1e3:.0f}ms/{unit}"
    return f"{each * 1e6:.0f}us/{unit}"


def _learning_rate(model):
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # no optimizer, or an exotic schedule
        return None


def progress_callbacks(config, state, monitor, session_start, time_budget=None, callbacks=()):
    """The progress callbacks `train` adds: `[RunProgress]`, or `[]` when quiet.

    Also `[]` when `callbacks` (the caller's) already hold a
    `keras.callbacks.ProgbarLogger`, which then prints instead.

    Args:
        config: the run's `TrainConfig` (`verbose`, `max_minutes`).
        state: the run's `_RunState`.
        monitor: the monitored value.
        session_start: `time.monotonic()` at the start of this `train` call.
        time_budget: the run's `TimeBudget`, or None.
        callbacks: the caller's callbacks.

    Example:

    >>> progress_callbacks(TrainConfig(verbose=0), state, "val_loss",
    ...                    time.monotonic())  # doctest: +SKIP
    []
    """
    level = resolve_verbose(config.verbose)
    if level == 0 or any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks):
        return []
    return [
        RunProgress(
            verbose=level,
            monitor=monitor,
            max_minutes=config.max_minutes,
            state=state,
            session_start=session_start,
            time_budget=time_budget,
        )
    ]
