"""The multi-worker start of the training pipelines (`--strategy multi-worker`).

`start(strategy, workers, worker_index)` runs FIRST in `train_language_model`
and `train_translator`, before any data is read or tokenizer built:
TensorFlow configures its collective ops when the strategy is created, which
must come before the process's first operation. It returns a `Workers`
telling the pipeline whether this process is the chief (prints results and
writes the run directory) and, for another worker, the scratch directory it
writes instead (`keras_seq.training.worker_scratch_dir()`).
"""

from typing import NamedTuple

MULTI_WORKER = "multi-worker"


class Workers(NamedTuple):
    """This process's part in training.

    Attributes:
        multi: training under `MultiWorkerMirroredStrategy`.
        chief: this process writes the run directory and prints results
            (always True off multi-worker).
        scratch: a non-chief worker's scratch directory, None otherwise.
    """

    multi: bool
    chief: bool
    scratch: object


def strategy_name(strategy, workers=None):
    """The strategy a run uses: "multi-worker" whenever `workers` are given."""
    return MULTI_WORKER if workers else strategy


def start(strategy, workers=None, worker_index=None):
    """Creates the multi-worker strategy (when asked) before anything else runs.

    Args:
        strategy: the `TrainConfig.strategy` of the run.
        workers: "host:port" addresses (a list or a comma-separated string):
            writes `TF_CONFIG` for worker `worker_index`. None: a
            "multi-worker" strategy reads the `TF_CONFIG` already set.
        worker_index: this worker's position in `workers`.

    Returns:
        A `Workers`.
    """
    if strategy_name(strategy, workers) != MULTI_WORKER:
        return Workers(False, True, None)
    from keras_seq import training

    if workers:
        training.multi_worker_strategy(workers, worker_index)
    else:
        training.multi_worker_strategy()
    chief = training.is_chief()
    return Workers(True, chief, None if chief else training.worker_scratch_dir())
