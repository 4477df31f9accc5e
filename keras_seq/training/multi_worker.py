"""Multi-worker training: `TF_CONFIG`, the strategy, the chief and its scratch dirs.

`TrainConfig(strategy="multi-worker")` trains with
`tf.distribute.MultiWorkerMirroredStrategy`: synchronous data parallelism over
the workers named in the standard `TF_CONFIG` environment variable, one model
replica per worker (per local GPU when a worker has several), gradients
all-reduced every step. Every worker runs the *same* program with the same
arguments; only `TF_CONFIG`'s `task.index` differs.

What the library does for you:

- Batches: the dataset's batch is the **global** batch. Each step every worker
  takes its slice of each global batch (`tf.data` DATA auto-sharding, so the
  pipeline needs no files per worker and every worker must build the same
  dataset from the same data and seed); per-replica batch = global batch /
  replicas. A run on 2 workers with `batch_size=64` takes the same optimizer
  steps over the same examples as one worker with 64, not twice as many.
  Stateful models (the truncated-BPTT language model) must be built with
  `per_replica_batch_size(global_batch)` rows of state.
- Learning rate: **not** scaled with the number of workers. Since the global
  batch is unchanged, the configured rate keeps its meaning; if you raise the
  batch to use more workers, raise the rate yourself (linear scaling with a
  warmup is the usual rule for SGD).
- Files: only the chief (worker 0, or the task of type "chief") writes the run
  directory: checkpoints, `state.json`, TensorBoard logs, `history.csv`. The
  other workers write the same files into a private scratch directory that is
  removed when `train` returns (the pattern of the TensorFlow multi-worker
  guide's `write_filepath`: every worker must take part in saving, since
  reading some variables is itself a collective operation).
  A worker killed with SIGKILL cannot remove its scratch directory
  (`$TMPDIR/keras_seq-worker-*`); anything else removes it on exit.
- Resume: a killed worker brings the collective down (TensorFlow notices the
  lost heartbeat; the survivors stop with a KerasSeqError saying what to do);
  restart **every** worker with `resume=True`. Each worker then reads the chief's `last` checkpoint
  from the run directory, so the run directory must be visible at the same path
  on every worker (a shared filesystem, or copy the chief's `checkpoints/` to
  the workers before restarting). The workers check they agree on the epoch.
- Stopping decisions agree: the time budget (and `anneal_to_budget`'s rate)
  is all-reduced across the workers, so they stop at the same batch.
- Keras 3 needs two fixes to train under this strategy (keras-team/keras#20585);
  they are installed when the strategy is created and change nothing else.
- The strategy must exist before TensorFlow runs its first operation in the
  process (TensorFlow configures collective ops at start-up): call
  `multi_worker_strategy()` at the top of the program, before loading data.
  `train` creates it itself when nothing ran before it.

Example, two machines (`10.0.0.1` and `10.0.0.2`), port 12345 free on both.
On the first machine:

    export TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                       "task": {"type": "worker", "index": 0}}'
    python train.py --run-dir /shared/runs/lm

and on the second the same with `"index": 1`. Or, in Python, the same
script on both machines with only `index` differing:

>>> from keras_seq import training
>>> workers = ["10.0.0.1:12345", "10.0.0.2:12345"]
>>> strategy = training.multi_worker_strategy(workers, index=0)  # doctest: +SKIP
>>> ds = make_dataset(global_batch=64)       # the same on every worker  # doctest: +SKIP
>>> model, history = training.train(build, ds, val, "/shared/runs/lm",
...     training.TrainConfig(strategy="multi-worker", epochs=10))   # doctest: +SKIP

The chief writes `/shared/runs/lm`; worker 1 writes only a temporary scratch
directory. Kill either one, restart both with `resume=True`, and training goes
on from the chief's last checkpoint.
"""

import atexit
import contextlib
import json
import os
import shutil
import tempfile

from keras_seq.errors import KerasSeqError

TF_CONFIG = "TF_CONFIG"

_STRATEGY = None  # the process's MultiWorkerMirroredStrategy (TensorFlow allows one)
_SCRATCH_DIRS = []


def check_worker_addresses(workers):
    """Checks a list of `"host:port"` worker addresses; returns it as a list of str.

    Raises:
        ValueError: an empty list, an address without a host or an ASCII
            decimal port in 1..65535, or a duplicate address.
    """
    workers = [str(w) for w in (workers or [])]
    if not workers:
        raise ValueError("multi-worker training needs at least one worker address (host:port)")
    for address in workers:
        host, _, port = address.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(f"worker address {address!r} is not host:port (e.g. 10.0.0.1:12345)")
    if len(set(workers)) != len(workers):
        raise ValueError(f"worker addresses must differ, got {workers}")
    return workers


def multi_worker_config(workers, index, task_type="worker"):
    """The `TF_CONFIG` dict of worker `index` in a cluster of `workers`.

    Args:
        workers: "host:port" addresses of all workers, the same list in the
            same order on every worker; worker 0 is the chief. A
            comma-separated string is accepted too.
        index: this worker's position in `workers` (0-based).
        task_type: "worker" (the only type MultiWorkerMirroredStrategy needs).

    Returns:
        `{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": N}}`.

    Raises:
        ValueError: an empty list, an address without a port, a duplicate
            address, or an index outside the list.

    Example:

    >>> multi_worker_config("127.0.0.1:2222,127.0.0.1:2223", 1)["task"]
    {'type': 'worker', 'index': 1}
    """
    if isinstance(workers, str):
        workers = [w.strip() for w in workers.split(",") if w.strip()]
    workers = check_worker_addresses(workers)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(workers):
        raise ValueError(f"worker index must be in 0..{len(workers) - 1} for {len(workers)} workers, got {index!r}")
    return {"cluster": {task_type: [str(w) for w in workers]}, "task": {"type": task_type, "index": index}}


def write_tf_config(workers, index):
    """Set the `TF_CONFIG` environment variable for worker `index`.

    Must run before `multi_worker_strategy()` (TensorFlow reads `TF_CONFIG`
    when the strategy is created).

    Args:
        workers: see `multi_worker_config`.
        index: see `multi_worker_config`.

    Returns:
        The `TF_CONFIG` dict written.

    Example:

    >>> write_tf_config(["10.0.0.1:12345", "10.0.0.2:12345"], 0)  # doctest: +SKIP
    """
    config = multi_worker_config(workers, index)
    os.environ[TF_CONFIG] = json.dumps(config)
    return config


def read_tf_config():
    """The parsed `TF_CONFIG`, or None when it is unset or empty.

    Raises:
        KerasSeqError: `TF_CONFIG` is not a JSON object with a "cluster".
    """
    raw = os.environ.get(TF_CONFIG, "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise KerasSeqError(f"TF_CONFIG is not valid JSON ({e.msg} at column {e.colno})") from e
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise KerasSeqError('TF_CONFIG must be a JSON object with "cluster" and "task"')
    return config


def worker_role():
    """`(task_type, task_index, num_workers)` from `TF_CONFIG`.

    Without `TF_CONFIG` this process is a cluster of one: `("worker", 0, 1)`.
    """
    config = read_tf_config()
    if config is None:
        return "worker", 0, 1
    task = config.get("task") or {}
    cluster = config["cluster"]
    num = sum(len(cluster.get(kind) or []) for kind in ("chief", "worker"))
    return str(task.get("type", "worker")), int(task.get("index", 0)), max(num, 1)


def is_chief():
    """Whether this process is the chief: task "chief", or worker 0 when there is none.

    The chief writes the run directory; the others write scratch directories.

    Example:

    >>> is_chief()    # no TF_CONFIG: a cluster of one
    True
    """
    config = read_tf_config()
    task_type, index, _ = worker_role()
    if task_type == "chief":
        return True
    has_chief = bool(config and config["cluster"].get("chief"))
    return task_type == "worker" and index == 0 and not has_chief


def multi_worker_strategy(workers=None, index=None):
    """The process's `tf.distribute.MultiWorkerMirroredStrategy` (created once).

    Call it at the start of the program, before TensorFlow runs anything
    (TensorFlow configures collective ops once, at start-up). Blocks until
    every worker in the cluster has started.

    Args:
        workers: optional "host:port" list; with `index`, `TF_CONFIG` is
            written from them (see `write_tf_config`). None: use the
            `TF_CONFIG` already set.
        index: this worker's index in `workers`.

    Returns:
        The strategy; later calls return the same one.

    Raises:
        KerasSeqError: no `TF_CONFIG` (and no `workers`), a malformed one,
            or TensorFlow already ran operations in this process.

    Example:

    >>> strategy = multi_worker_strategy(["127.0.0.1:2222", "127.0.0.1:2223"],
    ...                                  index=0)                 # doctest: +SKIP
    >>> strategy.num_replicas_in_sync                            # doctest: +SKIP
    2
    """
    global _STRATEGY
    if workers is not None:
        if index is None:
            raise ValueError("multi_worker_strategy: pass index= with workers=")
        write_tf_config(workers, index)
    if _STRATEGY is not None:
        return _STRATEGY
    if read_tf_config() is None:  # (a malformed TF_CONFIG is a clear error there too)
        raise KerasSeqError(
            "multi-worker training needs the cluster: set TF_CONFIG on every worker, or pass "
            "the worker list and this worker's index (--workers host:port,host:port "
            "--worker-index N; in Python multi_worker_strategy(workers, index))"
        )
    import tensorflow as tf

    _install_keras_fixes()
    try:
        _STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:
        if "program startup" not in str(e):
            raise
        raise KerasSeqError(
            "the multi-worker strategy must be created before TensorFlow runs its first "
            "operation in this process: call keras_seq.training.multi_worker_strategy() "
            "at the start of the program, before loading data or building models"
        ) from e
    return _STRATEGY


def is_multi_worker(strategy):
    """Whether `strategy` spans several worker processes."""
    extended = getattr(strategy, "extended", None)
    return bool(getattr(extended, "_in_multi_worker_mode", lambda: False)())


def strategy_is_chief(strategy):
    """Whether this process is the chief of `strategy` (True off multi-worker)."""
    if not is_multi_worker(strategy):
        return True
    return bool(strategy.extended.should_checkpoint)


def per_replica_batch_size(global_batch_size, strategy=None):
    """Rows each replica gets of a global batch (for stateful models).

    Args:
        global_batch_size: the dataset's batch size.
        strategy: a `tf.distribute.Strategy`; None: the current one
            (inside `strategy.scope()`, e.g. in `build_model`).

    Raises:
        ValueError: the global batch does not split evenly.

    Example:

    >>> per_replica_batch_size(64)     # doctest: +SKIP
    32
    """
    if strategy is None:
        import tensorflow as tf

        strategy = tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(
            f"the global batch size {global_batch_size} does not split over {replicas} replicas; "
            f"use a multiple of {replicas}"
        )
    return global_batch_size // replicas


def worker_scratch_dir():
    """A new private directory for a non-chief worker's files, removed at exit."""
    path = tempfile.mkdtemp(prefix="keras_seq-worker-")
    _SCRATCH_DIRS.append(path)
    return path


def remove_scratch_dir(path):
    """Remove a directory made by `worker_scratch_dir` (idempotent)."""
    shutil.rmtree(path, ignore_errors=True)
    if str(path) in _SCRATCH_DIRS:
        _SCRATCH_DIRS.remove(str(path))


@atexit.register
def _remove_all_scratch_dirs():
    for path in list(_SCRATCH_DIRS):
        remove_scratch_dir(path)


def check_workers_agree(strategy, value, what):
    """Raise unless every worker passes the same number `value`.

    One all-reduce of `[value, value**2]`: the values are all equal exactly
    when `n * sum(value**2) == sum(value)**2`.

    Raises:
        KerasSeqError: the workers disagree (e.g. one did not see the chief's
            checkpoint and would start from scratch).
    """
    value = float(value)
    total, squares = (float(v) for v in _sum_over_replicas(strategy, [value, value * value]).numpy())
    n = strategy.num_replicas_in_sync
    if abs(n * squares - total * total) > 1e-6 * max(1.0, n * squares):
        raise KerasSeqError(
            f"the workers disagree on the {what} (this worker: {value:g}, mean: {total / n:g}); "
            "every worker must read the chief's checkpoint at the same run-directory path (a "
            "shared filesystem, or copy the chief's checkpoints/ to each worker) and all of them "
            "must be restarted with resume"
        )


@contextlib.contextmanager
def lost_worker_errors(strategy):
    """Report a lost worker (a failed collective) as what to do about it.

    TensorFlow aborts the collective ops of every worker when one stops
    sending heartbeats; this turns that error into a one-line KerasSeqError.
    Off multi-worker it does nothing.
    """
    if not is_multi_worker(strategy):
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError) as e:
        raise KerasSeqError(
            "a worker of this multi-worker run stopped or cannot be reached "
            f"({str(e).strip().splitlines()[0][:200]}); restart every worker with resume "
            "(--resume): they continue from the chief's last checkpoint"
        ) from e


def any_worker(strategy, flag):
    """Whether `flag` is true on any worker (one all-reduce; every worker must call it)."""
    return float(_sum_over_replicas(strategy, [1.0 if flag else 0.0])[0]) > 0.0


def mean_over_workers(strategy, value):
    """The mean of `value` over all replicas (one all-reduce; every worker must call it)."""
    return float(_sum_over_replicas(strategy, [float(value)])[0]) / strategy.num_replicas_in_sync


def _sum_over_replicas(strategy, values):
    """Sum of a small float64 vector over all replicas (one compiled all-reduce)."""
    import tensorflow as tf

    local = tf.constant(values, tf.float64)

    @tf.function
    def reduce():
        per_replica = strategy.run(lambda: tf.identity(local))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return reduce()


def _install_keras_fixes():
    """Work around two Keras 3 bugs under MultiWorkerMirroredStrategy (idempotent).

    keras-team/keras#20585 (tensorflow/tensorflow#72388): `fit` fails before
    its first step, reducing the first batch across workers to learn its
    shapes; here the local replica's batch is used. And the per-step logs are
    reduced with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalar
    metrics; here the mean across replicas (`axis=None`), as on one worker.
    Both only change what happens under a multi-worker strategy.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if getattr(tf_trainer, "_keras_seq_multi_worker_fixes", False):
        return
    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            import tensorflow as tf

            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not is_multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        import tensorflow as tf

        for _, _, it in iterator:
            batch = next(it)
            data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], batch)
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer._keras_seq_multi_worker_fixes = True
