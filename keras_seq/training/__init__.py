"""Compiled training with checkpoints, resume, time budget and tf.distribute.

`train` wraps Keras `fit` with what a long sequence-model run needs:

- a compiled step (`tf.function`, optionally XLA via `jit_compile`), global-norm
  gradient clipping, learning-rate schedules (constant, cosine, step decay,
  halve-on-plateau, linear warmup) and mixed precision;
- a `tf.distribute` strategy around model building and `compile`;
- atomic checkpoints after every epoch in `run_dir/checkpoints/`:
  `last.weights.h5` (model + optimizer, the training state in its HDF5
  attributes), `best.weights.h5` (model weights with the lowest validation
  loss) and `state.json` (a readable copy of the state); with
  `average_last=N`, the weights of the last N epochs and, at the end, the
  mean of the last 2..N of them that scores best on validation,
  `averaged.weights.h5`, when it beats the best epoch (`average_checkpoints`
  averages any checkpoints);
- early stopping on the validation loss, a wall-clock budget that stops after
  the current batch, TensorBoard logs and a CSV history in `run_dir/logs/`,
  and `run_dir/training-curves.png` redrawn every epoch (with the `plot` extra);
- `resume=True`: model and optimizer come back from `last` and training goes on
  at the next epoch, carrying the elapsed time, the best validation loss, the
  early-stopping and plateau counters and the history;
- progress a person can read (`TrainConfig.verbose`: 0 quiet, 1, 2 verbose):
  Keras's epoch bar on a terminal, one line per epoch otherwise, and a
  whole-run line (elapsed, time left, best so far); an epoch the time budget
  cuts short reports the batches that ran ("3/29").

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

Multi-worker training (`TrainConfig(strategy="multi-worker")`) runs
`tf.distribute.MultiWorkerMirroredStrategy` over the workers named in
`TF_CONFIG`; every worker runs the same program. The batch of the dataset is
the global batch (per replica: global / workers) and the learning rate is not
scaled; only the chief (worker 0) writes `run_dir`, the others a scratch
directory removed on return; a killed worker: restart all of them with
`resume=True` and they continue from the chief's last checkpoint (the run
directory must be at the same path on every worker, e.g. a shared
filesystem). Two machines, the same script on both, only the index differs:

>>> # on 10.0.0.1:  index=0 (the chief);  on 10.0.0.2:  index=1
>>> strategy = multi_worker_strategy(["10.0.0.1:12345", "10.0.0.2:12345"],
...                                  index=0)     # first thing in the program  # doctest: +SKIP
>>> model, history = train(build, ds, None, "/shared/runs/tiny",
...     TrainConfig(epochs=4, strategy="multi-worker"), loss="mse")  # doctest: +SKIP

or, equivalently, set on each machine before starting the same command

    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
                "task": {"type": "worker", "index": 0}}'      # 1 on the second machine

(`write_tf_config(workers, index)` writes it). See `multi_worker` for details.

Modules: `config` (TrainConfig), `devices` (strategies, XLA), `multi_worker`
(TF_CONFIG, the multi-worker strategy, chief and scratch dirs), `optimizers`,
`state` (the state carried across sessions), `checkpoints` (checkpoint files),
`averaging` (which epochs' mean a run with `average_last` keeps),
`callbacks` (the callbacks `train` adds), `progress` (the epoch bar and
whole-run line, `RunProgress`) and `trainer` (`train`). Importing this package
stays light: `callbacks`, `progress` and `trainer` (which import Keras and
TensorFlow) load when one of their names is first used.
"""

import importlib

from keras_seq.training.averaging import average_last_epochs
from keras_seq.training.checkpoints import STATE_ATTR
from keras_seq.training.checkpoints import _load_model_weights
from keras_seq.training.checkpoints import _remove_stale_temporaries
from keras_seq.training.checkpoints import _save_checkpoint
from keras_seq.training.checkpoints import average_checkpoints
from keras_seq.training.checkpoints import epoch_checkpoints
from keras_seq.training.checkpoints import read_checkpoint_state
from keras_seq.training.config import DEFAULT_LEARNING_RATES
from keras_seq.training.config import LR_SCHEDULES
from keras_seq.training.config import OPTIMIZERS
from keras_seq.training.config import STRATEGIES
from keras_seq.training.config import TrainConfig
from keras_seq.training.config import _is_number
from keras_seq.training.devices import _has_gpu
from keras_seq.training.devices import cpu_has_bf16
from keras_seq.training.devices import get_strategy
from keras_seq.training.devices import precision_policy
from keras_seq.training.devices import resolve_jit_compile
from keras_seq.training.devices import use_logical_cpus
from keras_seq.training.multi_worker import is_chief
from keras_seq.training.multi_worker import multi_worker_config
from keras_seq.training.multi_worker import multi_worker_strategy
from keras_seq.training.multi_worker import per_replica_batch_size
from keras_seq.training.multi_worker import worker_scratch_dir
from keras_seq.training.multi_worker import write_tf_config
from keras_seq.training.optimizers import _OPTIMIZER_CLASSES
from keras_seq.training.optimizers import _ClipAfterAllReduce
from keras_seq.training.optimizers import _in_multi_replica_context
from keras_seq.training.optimizers import _optimizer_class
from keras_seq.training.optimizers import make_optimizer
from keras_seq.training.state import STOP_COMPLETED
from keras_seq.training.state import STOP_EARLY
from keras_seq.training.state import STOP_TIME
from keras_seq.training.state import _finished_reason
from keras_seq.training.state import _history
from keras_seq.training.state import _public_state
from keras_seq.training.state import _RunState
from keras_seq.training.state import _write_history_csv

# Names of the submodules that import Keras/TensorFlow, loaded on first use.
_LAZY = {
    **dict.fromkeys(
        (
            "EpochSummaries",
            "LearningRateController",
            "RunCheckpoint",
            "TimeBudget",
            "TrainingCurves",
            "_current_lr",
            "_make_callbacks",
            "_scalars_metadata",
            "_to_float",
        ),
        "callbacks",
    ),
    **dict.fromkeys(("RunProgress", "progress_callbacks"), "progress"),
    **dict.fromkeys(
        ("train", "_train", "_count_steps", "_ensure_built", "_is_tf_dataset", "_log"),
        "trainer",
    ),
}

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "STATE_ATTR",
    "STOP_COMPLETED",
    "STOP_EARLY",
    "STOP_TIME",
    "STRATEGIES",
    "EpochSummaries",
    "LearningRateController",
    "RunCheckpoint",
    "RunProgress",
    "TimeBudget",
    "TrainConfig",
    "TrainingCurves",
    "average_checkpoints",
    "average_last_epochs",
    "cpu_has_bf16",
    "epoch_checkpoints",
    "get_strategy",
    "is_chief",
    "make_optimizer",
    "multi_worker_config",
    "multi_worker_strategy",
    "per_replica_batch_size",
    "precision_policy",
    "read_checkpoint_state",
    "resolve_jit_compile",
    "train",
    "use_logical_cpus",
    "worker_scratch_dir",
    "write_tf_config",
]


def __getattr__(name):
    """Import `callbacks`, `progress` or `trainer` when one of their names is first used."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
