"""Compiled training with checkpoints, resume, time budget and tf.distribute.

`train` wraps Keras `fit` with what a long sequence-model run needs:

- a compiled step (`tf.function`, optionally XLA via `jit_compile`), global-norm
  gradient clipping, learning-rate schedules (constant, cosine, step decay,
  halve-on-plateau, linear warmup) and mixed precision;
- a `tf.distribute` strategy around model building and `compile`;
- atomic checkpoints after every epoch in `run_dir/checkpoints/`:
  `last.weights.h5` (model + optimizer, the training state in its HDF5
  attributes), `best.weights.h5` (model weights with the lowest validation
  loss) and `state.json` (a readable copy of the state);
- early stopping on the validation loss, a wall-clock budget that stops after
  the current batch, TensorBoard logs and a CSV history in `run_dir/logs/`;
- `resume=True`: model and optimizer come back from `last` and training goes on
  at the next epoch, carrying the elapsed time, the best validation loss, the
  early-stopping and plateau counters and the history.

A checkpoint is written to a temporary file in the same directory and moved
into place with `os.replace`, the state travelling inside the weights file, so
a run killed at any instant leaves the previous checkpoint whole and
consistent.

Example:

>>> import keras, numpy as np, tensorflow as tf
>>> def build():
...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
>>> x = np.ones((32, 4), "float32"); y = np.ones((32, 1), "float32")
>>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
>>> model, history = train(build, ds, ds, "runs/tiny",
...                        TrainConfig(epochs=2), loss="mse")    # doctest: +SKIP
>>> # killed, or more epochs wanted: continue from checkpoints/last
>>> model, history = train(build, ds, ds, "runs/tiny",
...                        TrainConfig(epochs=4, resume=True), loss="mse")  # doctest: +SKIP
>>> history.initial_epoch, history.stop_reason                   # doctest: +SKIP
(2, 'completed')
"""

import csv
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

from keras_seq import runs
from keras_seq.errors import KerasSeqError, RunDirError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "cosine", "plateau", "step")
STRATEGIES = ("auto", "default", "mirrored")
# Learning rate used when `TrainConfig.learning_rate` is None. SGD's 1.0 is the
# classic recurrent-LM recipe (Zaremba et al. 2014), which relies on clipping.
DEFAULT_LEARNING_RATES = {"adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "sgd": 1.0}
STATE_ATTR = "keras_seq_training_state"
STOP_COMPLETED = "completed"
STOP_EARLY = "early_stopping"
STOP_TIME = "time_budget"


@dataclasses.dataclass
class TrainConfig:
    """Training hyper-parameters (stored in a run's config.json as "training").

    Args:
        epochs: number of epochs (the last epoch index when resuming).
        batch_size: global batch size; `train` takes batched datasets, so this
            is for the pipelines the caller builds (and the record).
        max_minutes: wall-clock budget in minutes over the whole run, resumes
            included, measured from each `train` call (data loading before it
            is not counted); training stops after the batch that spends it,
            then the (partial) epoch is validated and checkpointed as usual.
            None: no budget.
        seed: seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`).
        optimizer: "adam" | "adamw" | "sgd" | "rmsprop".
        learning_rate: peak learning rate; None uses the optimizer's default
            here (`DEFAULT_LEARNING_RATES`: 1e-3, SGD 1.0).
        lr_schedule: "constant"; "cosine" (to `min_learning_rate` over all
            steps); "plateau" (multiply by `decay_rate` when the monitored loss
            has not improved for `plateau_patience` epochs); "step" (multiply
            by `decay_rate` every epoch from `decay_start_epoch` on, 1-based:
            Zaremba's recipe is sgd, lr 1.0, decay_start_epoch=5, rate 0.5).
        decay_start_epoch: first (1-based) epoch with a decayed rate ("step").
        decay_rate: multiplier of the "step" and "plateau" schedules.
        plateau_patience: epochs without improvement before a "plateau" decay.
        min_learning_rate: floor of the "cosine" and "plateau" schedules.
        warmup_steps: linear warmup from 0 over this many optimizer steps.
        anneal_to_budget: with `max_minutes`, also scale the learning rate by
            a cosine over the time budget, from 1 at the start to 0 when it is
            spent (floored at `min_learning_rate`), on top of `lr_schedule`.
            A run on a fixed budget then ends annealed, whenever that is;
            without `max_minutes` it does nothing.
        clipnorm: clip the global norm of the gradient (after the cross-replica
            sum under a distribution strategy); None or 0 disables clipping.
        weight_decay: for "adamw" (and decoupled decay on the others); None
            keeps the Keras default.
        mixed_precision: compute in float16 on GPU / bfloat16 on CPU with
            float32 variables (and dynamic loss scaling for float16). Models
            should keep their logits in float32 (`dtype="float32"` on the last
            layer); Keras losses compute in float32.
        strategy: "auto" (mirrored over all GPUs when there are several, else
            default), "default" (one device) or "mirrored" (all GPUs, or all
            logical CPU devices when there is no GPU; see `use_logical_cpus`).
        jit_compile: "auto" (XLA on GPU when every layer supports it, off on
            CPU), True or False.
        patience: early stopping after this many epochs without improvement of
            the validation loss; None: no early stopping.
        restore_best: the returned model holds the best weights (lowest
            validation loss) rather than those of the last epoch.
        steps_per_execution: batches per compiled call (Keras); > 1 cuts the
            per-step Python overhead of small models.
        resume: continue the run in `run_dir` from its `last` checkpoint.
        verbose: Keras progress output; "auto" is a progress bar on a TTY and
            one line per epoch otherwise.
    """

    epochs: int = 10
    batch_size: int = 64
    max_minutes: float = None
    seed: int = 1337
    optimizer: str = "adam"
    learning_rate: float = None
    lr_schedule: str = "constant"
    decay_start_epoch: int = 5
    decay_rate: float = 0.5
    plateau_patience: int = 1
    min_learning_rate: float = 0.0
    warmup_steps: int = 0
    anneal_to_budget: bool = False
    clipnorm: float = 5.0
    weight_decay: float = None
    mixed_precision: bool = False
    strategy: str = "auto"
    jit_compile: object = "auto"
    patience: int = None
    restore_best: bool = True
    steps_per_execution: int = 1
    resume: bool = False
    verbose: object = "auto"

    def __post_init__(self):
        def check(ok, message):
            if not ok:
                raise ValueError(f"TrainConfig: {message}")

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        check(
            is_int(self.epochs) and self.epochs >= 1, f"epochs must be an integer >= 1, got {self.epochs!r}"
        )
        check(
            is_int(self.batch_size) and self.batch_size >= 1,
            f"batch_size must be an integer >= 1, got {self.batch_size!r}",
        )
        check(
            self.max_minutes is None or (_is_number(self.max_minutes) and self.max_minutes > 0),
            f"max_minutes must be > 0 or None, got {self.max_minutes!r}",
        )
        check(is_int(self.seed), f"seed must be an integer, got {self.seed!r}")
        check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        check(
            self.learning_rate is None or (_is_number(self.learning_rate) and self.learning_rate > 0),
            f"learning_rate must be > 0, got {self.learning_rate!r}",
        )
        check(
            self.lr_schedule in LR_SCHEDULES,
            f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}",
        )
        check(
            is_int(self.decay_start_epoch) and self.decay_start_epoch >= 1,
            f"decay_start_epoch must be an integer >= 1, got {self.decay_start_epoch!r}",
        )
        check(
            _is_number(self.decay_rate) and 0 < self.decay_rate <= 1,
            f"decay_rate must be in (0, 1], got {self.decay_rate!r}",
        )
        check(
            is_int(self.plateau_patience) and self.plateau_patience >= 1,
            f"plateau_patience must be an integer >= 1, got {self.plateau_patience!r}",
        )
        check(
            _is_number(self.min_learning_rate) and self.min_learning_rate >= 0,
            f"min_learning_rate must be >= 0, got {self.min_learning_rate!r}",
        )
        check(
            is_int(self.warmup_steps) and self.warmup_steps >= 0,
            f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}",
        )
        check(
            isinstance(self.anneal_to_budget, bool),
            f"anneal_to_budget must be True or False, got {self.anneal_to_budget!r}",
        )
        check(
            not (self.anneal_to_budget and self.lr_schedule == "cosine"),
            "anneal_to_budget already anneals over the time budget; use it with the "
            "constant, plateau or step schedule, not cosine",
        )
        check(
            self.clipnorm is None or (_is_number(self.clipnorm) and self.clipnorm >= 0),
            f"clipnorm must be >= 0 or None, got {self.clipnorm!r}",
        )
        check(
            self.weight_decay is None or (_is_number(self.weight_decay) and self.weight_decay >= 0),
            f"weight_decay must be >= 0 or None, got {self.weight_decay!r}",
        )
        check(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        check(
            self.jit_compile in ("auto", True, False),
            f"jit_compile must be 'auto', True or False, got {self.jit_compile!r}",
        )
        check(
            self.patience is None or (is_int(self.patience) and self.patience >= 1),
            f"patience must be an integer >= 1 or None, got {self.patience!r}",
        )
        check(
            is_int(self.steps_per_execution) and self.steps_per_execution >= 1,
            f"steps_per_execution must be an integer >= 1, got {self.steps_per_execution!r}",
        )
        check(self.verbose in ("auto", 0, 1, 2), f"verbose must be 'auto', 0, 1 or 2, got {self.verbose!r}")

    @property
    def peak_learning_rate(self):
        """`learning_rate`, or the optimizer's default when it is None."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES[self.optimizer]

    def to_dict(self):
        """A JSON-serializable dict (`from_dict` inverts it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config):
        """Build from `to_dict` output; unknown keys are an error."""
        if not isinstance(config, dict):
            raise ValueError(f"TrainConfig.from_dict expects a dict, got {type(config).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**config)

    @classmethod
    def from_namespace(cls, args, **defaults):
        """Build from a `keras-seq` argparse Namespace.

        Attributes of `args` named like a field and not None win; then
        `defaults` (the task's recipe, e.g. `epochs=20, optimizer="sgd"`);
        then the field defaults.

        Example:

        >>> config = TrainConfig.from_namespace(args, epochs=20)  # doctest: +SKIP
        """
        values = {}
        for field in dataclasses.fields(cls):
            value = getattr(args, field.name, None)
            if value is not None:
                values[field.name] = value
            elif field.name in defaults:
                values[field.name] = defaults[field.name]
        unknown = sorted(set(defaults) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"TrainConfig: unknown field(s) {', '.join(unknown)}")
        return cls(**values)


def _is_tf_dataset(data):
    import tensorflow as tf

    return isinstance(data, tf.data.Dataset)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ----------------------------------------------------------------------------
# Devices and strategies
# ----------------------------------------------------------------------------


def use_logical_cpus(n):
    """Split the physical CPU into `n` logical devices (for MirroredStrategy).

    Must run before TensorFlow initialises its devices, i.e. before the first
    tensor or model is created in the process. Calling it again with the same
    `n` is a no-op.

    Args:
        n: number of logical CPU devices (>= 1).

    Returns:
        The names of the logical CPU devices.

    Raises:
        KerasSeqError: TensorFlow's devices are already initialised with a
            different split.

    Example:

    >>> use_logical_cpus(2)                     # doctest: +SKIP
    ['/device:CPU:0', '/device:CPU:1']
    >>> strategy = get_strategy("mirrored")     # doctest: +SKIP
    """
    import tensorflow as tf

    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"use_logical_cpus: n must be an integer >= 1, got {n!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if (len(current) if current else 1) == n:  # already split this way (or n == 1 unsplit)
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as e:
        have = len(tf.config.list_logical_devices("CPU"))
        raise KerasSeqError(
            f"use_logical_cpus({n}) must run before TensorFlow initialises its devices "
            f"(it already has {have} logical CPU device(s)); call it at program start, "
            "before creating any tensor or model"
        ) from e
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def get_strategy(name="auto"):
    """The `tf.distribute` strategy named by `TrainConfig.strategy`.

    Args:
        name: "default": the default strategy (one local device); "mirrored":
            `MirroredStrategy` over all GPUs, or over all logical CPU devices
            when there is no GPU; "auto": mirrored when there is more than one
            GPU, else default.

    Returns:
        A `tf.distribute.Strategy`.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def resolve_jit_compile(jit_compile, strategy=None):
    """What `jit_compile` means here: a bool, or "auto" for Keras to decide.

    "auto" is XLA on GPU when every layer supports it (Keras checks
    `supports_jit`; e.g. the cuDNN LSTM path does not) and off on CPU, where
    XLA rarely pays for its compile time on recurrent models. Under a
    multi-replica strategy XLA is off: Keras 3 compiles the whole cross-device
    step (`strategy.run` included) with XLA, which fails on variables that
    live on other devices, so `jit_compile=True` there is an error.

    Args:
        jit_compile: "auto", True or False.
        strategy: the `tf.distribute.Strategy` in use, or None.

    Raises:
        ValueError: `jit_compile=True` with more than one replica.
    """
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if jit_compile == "auto":
        return "auto" if _has_gpu() and replicas == 1 else False
    if jit_compile and replicas > 1:
        raise ValueError(
            f"jit_compile=True does not work with {replicas} replicas (Keras XLA-compiles the "
            "cross-device step); use --no-jit or --strategy default"
        )
    return bool(jit_compile)


# ----------------------------------------------------------------------------
# Optimizer
# ----------------------------------------------------------------------------


def _in_multi_replica_context():
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return False
    return tf.distribute.get_replica_context().num_replicas_in_sync > 1


class _ClipAfterAllReduce:
    """Optimizer mixin: under tf.distribute, clip the *summed* gradient.

    Keras 3's TensorFlow optimizer clips each replica's partial gradient
    before the cross-replica sum, so `global_clipnorm` bounds the wrong
    vector and training under MirroredStrategy differs from one device. Here
    the sum comes first, then the clipping, then the update.
    """

    def _clip_gradients(self, grads):
        if self.global_clipnorm and _in_multi_replica_context():
            return grads  # clipped after the all-reduce, below
        return super()._clip_gradients(grads)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not (self.global_clipnorm and _in_multi_replica_context()):
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        import keras
        import tensorflow as tf

        trainable_variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, trainable_variables)))
        summed = [g for g, _ in grads_and_vars]
        clipped, _ = tf.clip_by_global_norm(summed, self.global_clipnorm)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step,
            self._distribution_strategy,
            list(zip(clipped, trainable_variables)),
            learning_rate,
        )


_OPTIMIZER_CLASSES = {}


def _optimizer_class(name):
    """The Keras optimizer class for `name`, with `_ClipAfterAllReduce` mixed in."""
    if name in _OPTIMIZER_CLASSES:
        return _OPTIMIZER_CLASSES[name]
    import keras

    base = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }[name]
    cls = type(base.__name__, (_ClipAfterAllReduce, base), {"__doc__": base.__doc__})
    cls.__module__ = __name__
    cls = keras.saving.register_keras_serializable(package="keras_seq")(cls)
    _OPTIMIZER_CLASSES[name] = cls
    return cls


def make_optimizer(config, total_steps=None):
    """The optimizer of `config`: learning rate / schedule, clipping, decay.

    Args:
        config: a `TrainConfig`.
        total_steps: optimizer steps of the whole run; required by "cosine".

    Returns:
        A Keras optimizer. Its `global_clipnorm` is `config.clipnorm`. The
        "cosine" schedule is a `keras.optimizers.schedules.CosineDecay`
        (warmup included); the other schedules use a learning-rate variable
        driven per epoch (and per step during warmup) by `train`.
    """
    import keras

    lr = config.peak_learning_rate
    if config.lr_schedule == "cosine":
        if not total_steps:
            raise ValueError("the cosine schedule needs the number of training steps")
        warmup = min(config.warmup_steps, max(total_steps - 1, 0))
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else lr,
            decay_steps=max(total_steps - warmup, 1),
            alpha=min(config.min_learning_rate / lr, 1.0),
            warmup_target=lr if warmup else None,
            warmup_steps=warmup,
        )
    else:
        learning_rate = 0.0 if config.warmup_steps else lr
    kwargs = {"learning_rate": learning_rate}
    if config.clipnorm:
        kwargs["global_clipnorm"] = float(config.clipnorm)
    if config.weight_decay is not None:
        kwargs["weight_decay"] = float(config.weight_decay)
    return _optimizer_class(config.optimizer)(**kwargs)


# ----------------------------------------------------------------------------
# Callbacks
# ----------------------------------------------------------------------------


class _RunState(dict):
    """The training state saved with every `last` checkpoint.

    Keys: epoch (completed epochs), elapsed_seconds, best (monitored value),
    best_epoch, monitor, wait (epochs since best), lr_scale, plateau_wait,
    stop_reason (None while running; "completed" | "early_stopping" |
    "time_budget"), history (one dict of logs per epoch), config.
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


def _make_callbacks(config, run, state, monitor, session_start):
    """The run's own callbacks: ([lr controller, time budget], run checkpoint)."""
    import keras

    Base = keras.callbacks.Callback

    class LearningRateController(Base):
        """Sets the learning-rate variable: warmup, step decay, plateau decay."""

        def _set(self, value):
            self.model.optimizer.learning_rate = value

        def _epoch_scale(self, epoch):
            if config.lr_schedule == "step":
                # epoch is 0-based; the decay starts at the 1-based decay_start_epoch.
                return config.decay_rate ** max(0, epoch + 1 - config.decay_start_epoch + 1)
            if config.lr_schedule == "plateau":
                return state["lr_scale"]
            return 1.0

        def _warm(self):
            if not config.warmup_steps:
                return 1.0
            step = int(self.model.optimizer.iterations.numpy())
            return min(1.0, (step + 1) / config.warmup_steps)

        def _budget(self):
            """Cosine factor of the time budget spent (1.0 without annealing)."""
            if not self._anneal:
                return 1.0
            elapsed = state["carried_seconds"] + (time.monotonic() - session_start)
            spent = min(1.0, elapsed / (config.max_minutes * 60.0))
            floor = config.min_learning_rate / config.peak_learning_rate
            return max(0.5 * (1.0 + math.cos(math.pi * spent)), floor)

        def _update(self):
            self._set(config.peak_learning_rate * self._scale * self._warm() * self._budget())

        def on_train_begin(self, logs=None):
            self._anneal = bool(config.anneal_to_budget and config.max_minutes)
            self._batches = 0

        def on_epoch_begin(self, epoch, logs=None):
            self._scale = self._epoch_scale(epoch)
            self._update()

        def on_train_batch_begin(self, batch, logs=None):
            self._batches += 1
            if config.warmup_steps:
                step = int(self.model.optimizer.iterations.numpy())
                if step < config.warmup_steps + config.steps_per_execution:
                    self._update()
                    return
            if self._anneal and self._batches % 10 == 0:  # the clock moves slowly
                self._update()

        def on_epoch_end(self, epoch, logs=None):
            if config.lr_schedule != "plateau":
                return
            value = (logs or {}).get(monitor)
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

    class TimeBudget(Base):
        """Stops training after the batch that spends `max_minutes`."""

        def __init__(self):
            super().__init__()
            self.stopped = False

        def _spent(self):
            elapsed = state["carried_seconds"] + (time.monotonic() - session_start)
            return elapsed >= config.max_minutes * 60.0

        def on_train_batch_end(self, batch, logs=None):
            if not self.stopped and self._spent():
                self.stopped = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            # Validation may have spent the rest of the budget.
            if not self.stopped and self._spent():
                self.stopped = True
                self.model.stop_training = True

    class RunCheckpoint(Base):
        """Best/last checkpoints, early stopping and the history, every epoch."""

        def __init__(self, time_budget):
            super().__init__()
            self.time_budget = time_budget

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: _to_float(v) for k, v in (logs or {}).items()}
            logs["learning_rate"] = _current_lr(self.model.optimizer)
            state["epoch"] = epoch + 1
            state["elapsed_seconds"] = state["carried_seconds"] + (time.monotonic() - session_start)
            state["history"].append({"epoch": epoch + 1, **logs, "elapsed_seconds": state["elapsed_seconds"]})
            value = logs.get(monitor)
            improved = (
                value is not None
                and math.isfinite(value)
                and (state["best"] is None or value < state["best"])
            )
            if improved:
                state["best"], state["best_epoch"], state["wait"] = float(value), epoch + 1, 0
                _save_checkpoint(self.model, run.best_weights, None)
            else:
                state["wait"] += 1
            if epoch + 1 >= config.epochs:
                state["stop_reason"] = STOP_COMPLETED
            elif config.patience is not None and state["wait"] >= config.patience:
                state["stop_reason"] = STOP_EARLY
                self.model.stop_training = True
            elif self.time_budget is not None and self.time_budget.stopped:
                state["stop_reason"] = STOP_TIME
            elif self.model.stop_training:
                state["stop_reason"] = "stopped"
            if not run.best_weights.is_file():
                # No finite monitored value yet: keep the current weights as best.
                _save_checkpoint(self.model, run.best_weights, None)
            _save_checkpoint(self.model, run.last_weights, _public_state(state))
            runs.write_json_atomic(run.state_path, _public_state(state))
            _write_history_csv(run.logs_dir / "history.csv", state["history"])

    callbacks = []
    if config.lr_schedule != "cosine":  # cosine is a schedule object in the optimizer
        callbacks.append(LearningRateController())
    budget = None
    if config.max_minutes is not None:
        budget = TimeBudget()
        callbacks.append(budget)
    return callbacks, RunCheckpoint(budget)


def _scalars_metadata():
    from tensorflow.core.framework import summary_pb2

    # What tensorboard's `summary_v2.scalar` writes: the "scalars" plugin, no content.
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )


def _epoch_summaries_base():
    import keras

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
        """

        def __init__(self, log_dir):
            super().__init__()
            self.log_dir = Path(log_dir)
            self._writers = {}

        def _writer(self, name):
            import tensorflow as tf

            if name not in self._writers:
                self._writers[name] = tf.summary.create_file_writer(str(self.log_dir / name))
            return self._writers[name]

        def on_epoch_end(self, epoch, logs=None):
            import tensorflow as tf

            logs = dict(logs or {})
            lr = _current_lr(self.model.optimizer)
            if lr is not None:
                logs.setdefault("learning_rate", lr)
            split = {"train": {}, "validation": {}}
            for key, value in logs.items():
                value = _to_float(value)
                if not isinstance(value, float):
                    continue
                if key.startswith("val_"):
                    split["validation"][key[4:]] = value
                else:
                    split["train"][key] = value
            metadata = _scalars_metadata()
            for name, scalars in split.items():
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

    return EpochSummaries


def EpochSummaries(log_dir):  # noqa: N802 - a callback class built lazily (keeps imports light)
    """Per-epoch TensorBoard scalars in `log_dir/train` and `log_dir/validation`."""
    return _epoch_summaries_base()(log_dir)


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _current_lr(optimizer):
    import keras as _keras

    lr = optimizer.learning_rate
    try:
        return float(_keras.ops.convert_to_numpy(lr))
    except Exception:  # pragma: no cover - exotic schedules
        return None


def _public_state(state):
    return {k: v for k, v in state.items() if k != "carried_seconds"}


def _write_history_csv(path, history):
    keys = []
    for row in history:
        keys += [k for k in row if k not in keys]
    with runs.atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)


# ----------------------------------------------------------------------------
# Checkpoint files
# ----------------------------------------------------------------------------


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
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=path.parent)
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


def read_checkpoint_state(path):
    """The training state stored in a `last.weights.h5` checkpoint.

    Raises:
        RunDirError: the file is missing, unreadable or carries no state.
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
    directory = Path(directory)
    if directory.is_dir():
        for tmp in directory.glob(".tmp-*"):
            try:
                tmp.unlink()
            except OSError:
                pass


# ----------------------------------------------------------------------------
# train()
# ----------------------------------------------------------------------------


def _count_steps(dataset):
    import tensorflow as tf

    cardinality = int(dataset.cardinality()) if isinstance(dataset, tf.data.Dataset) else -2
    if cardinality >= 0:
        return cardinality
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return None
    return sum(1 for _ in dataset)


def _ensure_built(model, train_data):
    """Create the model's and optimizer's variables so a checkpoint can load."""
    import tensorflow as tf

    if not model.built or not model.variables:
        if isinstance(train_data, tf.data.Dataset):
            x = next(iter(train_data))[0]
        else:  # (x, y[, sample_weight]) arrays
            x = train_data[0]
        model(x, training=False)
    model.optimizer.build(model.trainable_variables)


def _load_model_weights(model, path):
    """Load model weights only (a `best` checkpoint carries no optimizer)."""
    skip = [model.optimizer] if model.optimizer is not None else None
    model.load_weights(path, objects_to_skip=skip)


def _history(state, stop_reason, initial_epoch):
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


def _log(message):
    print(f"keras-seq: {message}", file=sys.stderr, flush=True)


def train(
    build_model,
    train_data,
    val_data,
    run_dir,
    config,
    *,
    loss=None,
    metrics=None,
    callbacks=(),
    steps_per_epoch=None,
    validation_steps=None,
    resume=None,
):
    """Train a model with checkpoints, resume, a time budget and a strategy.

    Args:
        build_model: a function with no arguments returning an uncompiled Keras
            model; called inside the strategy scope and the mixed-precision
            policy. A model with an overridden `compile` or `train_step` is
            fine (`compile` receives `optimizer`, `loss`, `metrics`,
            `jit_compile`, `steps_per_execution`).
        train_data: a batched `tf.data.Dataset` (or anything `fit` takes) of
            `(inputs, targets)`.
        val_data: the validation data, or None (the monitored value is then
            the training loss).
        run_dir: a run directory path or `keras_seq.runs.RunDir`;
            `checkpoints/` and `logs/` are created in it.
        config: a `TrainConfig`.
        loss: the Keras loss (None when the model computes its own).
        metrics: Keras metrics.
        callbacks: extra Keras callbacks.
        steps_per_epoch: batches per epoch (needed for infinite datasets).
        validation_steps: validation batches per epoch.
        resume: overrides `config.resume`: continue from `checkpoints/last`.

    Returns:
        `(model, history)`. `history` is a `keras.callbacks.History` over the
        whole run (earlier sessions included), with `history.epoch` 0-based,
        `history.stop_reason` ("completed" | "early_stopping" |
        "time_budget" | "stopped" | None), `history.initial_epoch` (the epoch
        this call started at) and `history.state`. With
        `config.restore_best`, the model holds the best weights.

    Raises:
        RunDirError: resuming with no checkpoint.
        ValueError: a bad config.
    """
    import keras as _keras

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    resume = config.resume if resume is None else bool(resume)
    session_start = time.monotonic()
    run = run_dir if isinstance(run_dir, runs.RunDir) else runs.RunDir(run_dir)
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    run.logs_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(run.checkpoints_dir)
    _remove_stale_temporaries(run.logs_dir)
    monitor = "val_loss" if val_data is not None else "loss"

    if resume:
        if not run.last_weights.is_file():
            raise RunDirError(
                f"nothing to resume in {run.path}: no checkpoints/{runs.LAST_WEIGHTS} "
                "(the run stopped before its first epoch ended); train without --resume"
            )
        state = _RunState(read_checkpoint_state(run.last_weights))
        saved = state.get("config") or {}
        if saved.get("optimizer", config.optimizer) != config.optimizer:
            _log(
                f"the optimizer changed from {saved['optimizer']} to {config.optimizer} since the "
                "checkpoint; its state (moments) does not carry over"
            )
        state["config"] = config.to_dict()
        state.setdefault("monitor", monitor)
    else:
        state = _RunState.fresh(config, monitor)
    initial_epoch = int(state["epoch"])
    state["carried_seconds"] = float(state["elapsed_seconds"])

    # Seeds: a resumed session gets a different (still deterministic) stream so
    # it does not replay the data order and dropout masks of epoch 1.
    _keras.utils.set_random_seed((config.seed + 1_000_003 * initial_epoch) % (2**31))

    # The policy stays set while the model is built and trained (layers that a
    # model creates lazily in `build` pick it up too), then is restored.
    previous_policy = _keras.mixed_precision.global_policy()
    if config.mixed_precision:
        _keras.mixed_precision.set_global_policy("mixed_float16" if _has_gpu() else "mixed_bfloat16")
    try:
        return _train(
            build_model,
            train_data,
            val_data,
            run,
            config,
            state,
            monitor,
            session_start,
            resume=resume,
            loss=loss,
            metrics=metrics,
            callbacks=callbacks,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
        )
    finally:
        _keras.mixed_precision.set_global_policy(previous_policy)


def _train(
    build_model,
    train_data,
    val_data,
    run,
    config,
    state,
    monitor,
    session_start,
    *,
    resume,
    loss,
    metrics,
    callbacks,
    steps_per_epoch,
    validation_steps,
):
    import keras as _keras

    initial_epoch = int(state["epoch"])
    strategy = get_strategy(config.strategy)
    total_steps = None
    if config.lr_schedule == "cosine":
        per_epoch = steps_per_epoch or _count_steps(train_data)
        if not per_epoch:
            raise ValueError("the cosine schedule needs steps_per_epoch for an infinite dataset")
        total_steps = per_epoch * config.epochs
    with strategy.scope():
        model = build_model()
        if not isinstance(model, _keras.Model):
            raise TypeError(f"build_model must return a keras.Model, got {type(model).__name__}")
        model.compile(
            optimizer=make_optimizer(config, total_steps),
            loss=loss,
            metrics=metrics,
            jit_compile=resolve_jit_compile(config.jit_compile, strategy),
            steps_per_execution=config.steps_per_execution,
        )
        if resume:
            _ensure_built(model, train_data)
            try:
                model.load_weights(run.last_weights)
            except ValueError as e:
                raise RunDirError(
                    f"checkpoint {run.last_weights} does not fit the model built for this run: "
                    f"{str(e).strip().splitlines()[0]}"
                ) from e

    if resume:
        reason = _finished_reason(state, config)
        if reason:
            _log(f"{run.path}: {reason}; nothing to resume")
            if config.restore_best and run.best_weights.is_file():
                _load_model_weights(model, run.best_weights)
            return model, _history(state, state.get("stop_reason"), initial_epoch)
        _log(f"{run.path}: resuming at epoch {initial_epoch + 1}/{config.epochs}")
        state["stop_reason"] = None

    own, checkpoint = _make_callbacks(config, run, state, monitor, session_start)
    all_callbacks = [*own, *callbacks, checkpoint, EpochSummaries(run.logs_dir)]
    verbose = config.verbose
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=steps_per_epoch,
        validation_steps=validation_steps,
        callbacks=all_callbacks,
        verbose=verbose,
        # A tf.data pipeline shuffles itself (Keras ignores `shuffle` for one, with a warning).
        shuffle=not _is_tf_dataset(train_data),
    )
    if config.restore_best and run.best_weights.is_file() and state.get("best_epoch") != state["epoch"]:
        _load_model_weights(model, run.best_weights)
    if state.get("stop_reason") == STOP_EARLY:
        best = "none" if state["best"] is None else f"{state['best']:.4f}"
        _log(
            f"early stopping after epoch {state['epoch']}: best {monitor} {best} at epoch {state['best_epoch']}"
        )
    elif state.get("stop_reason") == STOP_TIME:
        _log(f"time budget of {config.max_minutes:g} min spent after epoch {state['epoch']}")
    return model, _history(state, state.get("stop_reason"), initial_epoch)


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
