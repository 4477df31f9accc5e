"""Building models from a run directory's `config.json` and loading its weights.

A run directory (`keras_seq.runs.RunDir`) records its model as
`{"task": "lm" | "translator", "model": {"type": "rnn" | "transformer",
"config": {...}}}`; `load_run` rebuilds that model and loads a checkpoint, so
one call opens any run.

Example:

```python
import keras_seq as ks

model = ks.models.load_run("runs/translator")        # averaged, else best weights
result = model.generate(source_ids, strategy=ks.decoding.BeamSearch(5))
```
"""

from keras_seq import errors
from keras_seq import runs
from keras_seq.models.language_model import RNNLanguageModel
from keras_seq.models.seq2seq import AttentionSeq2Seq
from keras_seq.models.transformer import Transformer
from keras_seq.models.transformer import TransformerLanguageModel
from keras_seq.utils import one_line

__all__ = ["MODEL_CLASSES", "build_model", "load_run", "model_info"]

# (run task, model type) -> the Keras model class.
MODEL_CLASSES = {
    ("lm", "rnn"): RNNLanguageModel,
    ("lm", "transformer"): TransformerLanguageModel,
    ("translator", "rnn"): AttentionSeq2Seq,
    ("translator", "transformer"): Transformer,
}
_TASK_LABELS = {"lm": "language-model", "translator": "translator"}


def model_info(config, where="config.json"):
    """Returns the checked `config["model"]` entry of a run configuration.

    Raises:
        RunDirError: the entry is missing or not `{"type": ..., "config": {...}}`.
    """
    info = config.get("model") if isinstance(config, dict) else None
    if info is None:
        raise errors.RunDirError(f"{where} has no 'model' entry; retrain the run")
    if (
        not isinstance(info, dict)
        or not isinstance(info.get("config"), dict)
        or not isinstance(info.get("type"), str)
    ):
        raise errors.RunDirError(
            f"{where}: 'model' must be {{\"type\": ..., \"config\": {{...}}}} as the "
            "training commands write it; retrain the run"
        )
    return info


def build_model(task, info, *, stateful=False, batch_size=None):
    """An uncompiled model from a run's task and `config["model"]` entry.

    Args:
        task: `"lm"` or `"translator"`.
        info: `{"type": "rnn" | "transformer", "config": {...}}`.
        stateful: recurrent language models only: carry state across batches
            (truncated-BPTT training and evaluation) with `batch_size` rows.
        batch_size: rows of carried state when `stateful`.

    Returns:
        A `keras.Model` implementing `keras_seq.models.GenerativeModel`.
    """
    cls = MODEL_CLASSES.get((task, info.get("type")))
    if cls is None:
        label = _TASK_LABELS.get(task, task)
        raise errors.RunDirError(f"unknown {label} type {info.get('type')!r} in config.json")
    kwargs = dict(info["config"])
    if cls is RNNLanguageModel:
        kwargs.update(batch_size=batch_size, stateful=stateful)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise errors.RunDirError(
            f"config.json describes a model this version cannot build: {one_line(e)}"
        ) from e


def load_weights(model, run, which="auto"):
    """Loads checkpoint `which` of `run` into `model` (see `RunDir.checkpoint`).

    Returns:
        The checkpoint's path.

    Raises:
        RunDirError: the checkpoint is missing or does not fit the model.
    """
    path = run.checkpoint(which)
    try:
        model.load_weights(str(path))
    except (ValueError, OSError, KeyError) as e:
        raise errors.RunDirError(
            f"checkpoint {path} does not fit the model described in "
            f"{run.config_path}: {one_line(e)}"
        ) from e
    return path


def load_run(run_dir, *, which="auto", task=None, stateful=False, batch_size=None):
    """Rebuilds the model of a run directory and loads its weights.

    Args:
        run_dir: a directory written by `keras-seq train-lm` /
            `train-translator` (or the library's training pipelines).
        which: `"auto"` (the averaged weights of `--average-last` when the
            run has them, else `"best"`), `"averaged"`, `"best"` (lowest
            validation loss) or `"last"` checkpoint.
        task: optional `"lm"` or `"translator"` the run must be.
        stateful: see `build_model` (recurrent language models).
        batch_size: see `build_model`.

    Returns:
        The Keras model with the checkpoint's weights (uncompiled).

    Raises:
        RunDirError: not a run directory, the wrong task, no checkpoint, or a
            config and checkpoint that do not fit together.

    Example:

    ```python
    lm = keras_seq.models.load_run("runs/lm")
    lm.generate(prompt_ids, max_length=20)
    ```
    """
    run = runs.RunDir.open(run_dir, require_checkpoint=True)
    config = run.config
    if task is not None and config.get("task") != task:
        raise errors.RunDirError(
            f"{run.path} is a {config.get('task')} run, not a "
            f"{_TASK_LABELS.get(task, task)} run"
        )
    config = run.checked_config
    info = model_info(config, str(run.config_path))
    model = build_model(config["task"], info, stateful=stateful, batch_size=batch_size)
    load_weights(model, run, which)
    return model
