"""`train`: Keras `fit` with checkpoints, resume, a time budget and a strategy."""

import sys
import time

import keras
import tensorflow as tf

from keras_seq import runs
from keras_seq.errors import RunDirError
from keras_seq.progress import resolve_verbose
from keras_seq.training.averaging import average_last_epochs
from keras_seq.training.callbacks import TRAINING_CURVES
from keras_seq.training.callbacks import EpochSummaries
from keras_seq.training.callbacks import TrainingCurves
from keras_seq.training.callbacks import _make_callbacks
from keras_seq.training.checkpoints import _load_model_weights
from keras_seq.training.checkpoints import _remove_stale_temporaries
from keras_seq.training.checkpoints import read_checkpoint_state
from keras_seq.training.config import TrainConfig
from keras_seq.training.devices import precision_policy
from keras_seq.training.devices import get_strategy
from keras_seq.training.devices import resolve_jit_compile
from keras_seq.training import multi_worker
from keras_seq.training.optimizers import make_optimizer
from keras_seq.training.progress import progress_callbacks
from keras_seq.training.state import STOP_EARLY
from keras_seq.training.state import STOP_TIME
from keras_seq.training.state import _finished_reason
from keras_seq.training.state import _history
from keras_seq.training.state import _RunState


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
    monitor=None,
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
        monitor: the logged value that picks the best checkpoint and
            early-stops (`config.patience`): default "val_loss" ("loss"
            without `val_data`). A name ending in "loss" is minimized, any
            other (e.g. "val_bleu", set by a callback in `callbacks` in its
            `on_epoch_end`) maximized. The "plateau" schedule always
            follows the loss.

    With `config.strategy="multi-worker"` every worker calls `train` with the
    same arguments (see `keras_seq.training.multi_worker`): the dataset's batch
    is the global batch, only the chief writes `run_dir`, the other workers
    write a scratch directory removed on return, and a resume reads the
    chief's `checkpoints/last` on every worker.

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

    Example:

    >>> model, history = train(build, ds, ds, "runs/tiny",
    ...                        TrainConfig(epochs=2), loss="mse")  # doctest: +SKIP
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    resume = config.resume if resume is None else bool(resume)
    session_start = time.monotonic()
    # A multi-worker strategy must exist before the first TensorFlow op.
    strategy = get_strategy(config.strategy) if config.strategy == "multi-worker" else None
    run = _worker_run_dir(run_dir, strategy)
    try:
        return _train_session(
            build_model, train_data, val_data, run, config, session_start,
            resume=resume, loss=loss, metrics=metrics, callbacks=callbacks,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps, monitor=monitor,
        )
    finally:
        if not run.is_chief:
            multi_worker.remove_scratch_dir(run.scratch)


def _worker_run_dir(run_dir, strategy):
    """The `RunDir` this process writes: the run itself, or a worker's scratch."""
    run = run_dir if isinstance(run_dir, runs.RunDir) else runs.RunDir(run_dir)
    if strategy is None or multi_worker.strategy_is_chief(strategy):
        return runs.RunDir(run.path)
    if run.scratch is None:
        run = runs.RunDir(run.path, scratch=multi_worker.worker_scratch_dir())
    return run


def _train_session(build_model, train_data, val_data, run, config, session_start, *, resume,
                   monitor=None, **kwargs):
    """`train` once the run directory (or a worker's scratch) is known."""
    run, state, monitor = _open_run(run, config, val_data, resume, monitor)
    initial_epoch = int(state["epoch"])
    state["carried_seconds"] = float(state["elapsed_seconds"])

    # Seeds: a resumed session gets a different (still deterministic) stream so
    # it does not replay the data order and dropout masks of epoch 1.
    keras.utils.set_random_seed((config.seed + 1_000_003 * initial_epoch) % (2**31))

    # The policy stays set while the model is built and trained (layers that a
    # model creates lazily in `build` pick it up too), then is restored.
    previous_policy = keras.mixed_precision.global_policy()
    policy = precision_policy(config.mixed_precision)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(policy)
    state["precision"] = policy
    try:
        return _train(
            build_model, train_data, val_data, run, config, state, monitor, session_start,
            resume=resume, **kwargs,
        )
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def _open_run(run_dir, config, val_data, resume, monitor=None):
    """Prepare the run directory; returns `(run, state, monitor)`.

    The state is fresh, or that of `checkpoints/last` when resuming (the
    chief's, on every worker of a multi-worker run).
    """
    run = run_dir if isinstance(run_dir, runs.RunDir) else runs.RunDir(run_dir)
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    run.logs_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(run.checkpoints_dir)
    _remove_stale_temporaries(run.logs_dir)
    monitor = monitor or ("val_loss" if val_data is not None else "loss")
    if not resume:
        return run, _RunState.fresh(config, monitor), monitor
    if not run.chief.last_weights.is_file():
        raise RunDirError(
            f"nothing to resume in {run.path}: no checkpoints/{runs.LAST_WEIGHTS} "
            "(the run stopped before its first epoch ended); train without --resume"
        )
    state = _RunState(read_checkpoint_state(run.chief.last_weights))
    saved = state.get("config") or {}
    if saved.get("optimizer", config.optimizer) != config.optimizer:
        _log(
            f"the optimizer changed from {saved['optimizer']} to {config.optimizer} since the "
            "checkpoint; its state (moments) does not carry over"
        )
    state["config"] = config.to_dict()
    state.setdefault("monitor", monitor)
    return run, state, monitor


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
    """`train` once the state is known and the precision policy set."""
    initial_epoch = int(state["epoch"])
    strategy = get_strategy(config.strategy)
    if multi_worker.is_multi_worker(strategy):
        with multi_worker.lost_worker_errors(strategy):
            multi_worker.check_workers_agree(strategy, initial_epoch, "epoch to start at")
        train_data, val_data = _shard_by_data(train_data), _shard_by_data(val_data)
    total_steps = _total_steps(config, train_data, steps_per_epoch)
    model = _build_and_compile(
        build_model, strategy, train_data, run, config, total_steps, loss, metrics, resume
    )

    if resume:
        reason = _finished_reason(state, config)
        if reason:
            if resolve_verbose(config.verbose):
                _log(f"{run.path}: {reason}; nothing to resume")
            if config.average_last and run.averaged_weights.is_file():
                _load_model_weights(model, run.averaged_weights)
            elif config.restore_best and run.best_weights.is_file():
                _load_model_weights(model, run.best_weights)
            return model, _history(state, state.get("stop_reason"), initial_epoch)
        if resolve_verbose(config.verbose):
            _log(f"{run.path}: resuming at epoch {initial_epoch + 1}/{config.epochs}")
        state["stop_reason"] = None
    if run.averaged_weights.is_file():  # an average of earlier epochs: stale once training goes on
        run.averaged_weights.unlink()

    own, checkpoint = _make_callbacks(config, run, state, monitor, session_start,
                                      "val_loss" if val_data is not None else "loss")
    all_callbacks = [*own, *callbacks, checkpoint, EpochSummaries(run.logs_dir),
                     TrainingCurves(state, run.root / TRAINING_CURVES, config.verbose)]
    # Last, so it reports what the callbacks above decided (budget, best, stop).
    all_callbacks += progress_callbacks(
        config, state, monitor, session_start, checkpoint.time_budget, callbacks
    )
    verbose = resolve_verbose(config.verbose)
    with multi_worker.lost_worker_errors(strategy):
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
        if multi_worker.is_multi_worker(strategy):  # a barrier: no worker leaves early
            multi_worker.check_workers_agree(strategy, state["epoch"], "last epoch trained")
    fallback = _fallback_weights(run, config, state)
    if fallback is not None:
        _load_model_weights(model, fallback)
    if config.average_last:
        # Workers may hold different epoch checkpoints (a resumed worker's
        # scratch is new), so a collective validation pass per window could
        # hang: multi-worker runs average all N unscored.
        scored_on = None if multi_worker.is_multi_worker(strategy) else val_data
        _, message = average_last_epochs(model, run, config, fallback, scored_on, validation_steps)
        if verbose:
            _log(message)
    if verbose:
        _log_stop(state, config, monitor)
    return model, _history(state, state.get("stop_reason"), initial_epoch)


def _fallback_weights(run, config, state):
    """The weights file the run keeps without averaging when the model does not hold them yet.

    `best` with `config.restore_best` (unless the last epoch was the best),
    else None: the model already holds the last epoch's weights.
    """
    if config.restore_best and run.best_weights.is_file() and state.get("best_epoch") != state["epoch"]:
        return run.best_weights
    return None


def _total_steps(config, train_data, steps_per_epoch):
    """Optimizer steps of the whole run for the "cosine" schedule, else None."""
    if config.lr_schedule != "cosine":
        return None
    per_epoch = steps_per_epoch or _count_steps(train_data)
    if not per_epoch:
        raise ValueError("the cosine schedule needs steps_per_epoch for an infinite dataset")
    return per_epoch * config.epochs


def _build_and_compile(build_model, strategy, train_data, run, config, total_steps, loss, metrics, resume):
    """Build and compile the model in the strategy scope; load `last` when resuming."""
    with strategy.scope():
        model = build_model()
        if not isinstance(model, keras.Model):
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
                model.load_weights(run.chief.last_weights)
            except ValueError as e:
                raise RunDirError(
                    f"checkpoint {run.chief.last_weights} does not fit the model built for this run: "
                    f"{str(e).strip().splitlines()[0]}"
                ) from e
    return model


def _log_stop(state, config, monitor):
    """Say why training stopped early (early stopping or the time budget)."""
    if state.get("stop_reason") == STOP_EARLY:
        best = "none" if state["best"] is None else f"{state['best']:.4f}"
        _log(
            f"early stopping after epoch {state['epoch']}: best {monitor} {best} at epoch {state['best_epoch']}"
        )
    elif state.get("stop_reason") == STOP_TIME:
        _log(f"time budget of {config.max_minutes:g} min spent after epoch {state['epoch']}")


def _shard_by_data(data):
    """Multi-worker: each worker takes its slice of every global batch (DATA sharding).

    The default (AUTO) tries to shard by input file first and warns when the
    pipeline has none; keras_seq pipelines are built from tensors in memory.
    """
    if not isinstance(data, tf.data.Dataset):
        return data
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def _is_tf_dataset(data):
    return isinstance(data, tf.data.Dataset)


def _count_steps(dataset):
    cardinality = int(dataset.cardinality()) if isinstance(dataset, tf.data.Dataset) else -2
    if cardinality >= 0:
        return cardinality
    if cardinality == tf.data.INFINITE_CARDINALITY:
        return None
    return sum(1 for _ in dataset)


def _ensure_built(model, train_data):
    """Create the model's and optimizer's variables so a checkpoint can load."""
    if not model.built or not model.variables:
        if isinstance(train_data, tf.data.Dataset):
            x = next(iter(train_data))[0]
        else:  # (x, y[, sample_weight]) arrays
            x = train_data[0]
        model(x, training=False)
    model.optimizer.build(model.trainable_variables)


def _log(message):
    print(f"keras-seq: {message}", file=sys.stderr, flush=True)
