"""Run directories: what `keras-seq train-lm` / `train-translator` write.

A run directory holds everything needed to resume, decode, evaluate or export
one trained model:

    RUN/
      config.json                 {"task": "lm"|"translator", "model": {...},
                                   "tokenizer": {...}, "training": {...}, ...}
      vocab/                      tokenizer files (written by keras_seq.text)
      checkpoints/
        last.weights.h5           model + optimizer after the latest epoch, with the
                                  training state in its HDF5 attributes (for resume)
        best.weights.h5           model weights of the best epoch (lowest val loss)
        state.json                a readable copy of the training state
      logs/                       TensorBoard event files and history.csv

Every file is written atomically (a temporary file in the same directory, then
`os.replace`), so a run killed at any moment leaves the previous version intact.

Under multi-worker training only the chief writes the run directory; another
worker uses `RunDir(path, scratch=tmp)` (or `prepare_run_dir(..., scratch=tmp)`):
it reads the chief's files under `path` and writes its own into `tmp`.

This module imports no TensorFlow: the `keras-seq` command validates a run
directory before it loads anything heavy.

Example:

>>> run = RunDir.create("runs/lm", {"task": "lm", "model": {...}})   # doctest: +SKIP
>>> config = load_run_config("runs/lm")                              # doctest: +SKIP
>>> weights = RunDir.open("runs/lm").checkpoint()                    # doctest: +SKIP
"""

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from keras_seq.errors import RunDirError
from keras_seq.utils import one_line

TASKS = ("lm", "translator")
CONFIG_FILE = "config.json"
VOCAB_DIR = "vocab"
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"
LAST_WEIGHTS = "last.weights.h5"
BEST_WEIGHTS = "best.weights.h5"
STATE_FILE = "state.json"

_TRAIN_HINT = "train one with `keras-seq train-lm` or `keras-seq train-translator`"


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """Open a temporary file next to `path`; on success, move it onto `path`.

    The temporary file lives in the same directory (so `os.replace` is atomic),
    is flushed and fsync'ed before the rename, and is removed if the block
    raises. Readers see either the old file or the complete new one.

    Args:
        path: destination file.
        mode: "w" (text) or "wb" (binary).
        encoding: text encoding for mode "w".

    Example:

    >>> with atomic_write("out.json") as f:   # doctest: +SKIP
    ...     f.write("{}")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def fsync_dir(path):
    """fsync a directory so a completed rename survives a power loss (POSIX)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path, obj):
    """Write `obj` as pretty JSON to `path` atomically."""
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")


def _json_default(obj):
    # NumPy scalars and Paths show up in configs; store them as plain values.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def load_run_config(path):
    """Read and validate `path/config.json`.

    Args:
        path: a run directory.

    Returns:
        The config dict; `config["task"]` is "lm" or "translator".

    Raises:
        RunDirError: the directory is missing, is not a directory, has no
            config.json, or its config.json is unreadable, not JSON, not an
            object, or names no known task. The message is one line naming
            the path.
    """
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"run directory {path} does not exist; {_TRAIN_HINT}")
    if not path.is_dir():
        raise RunDirError(f"{path} is not a keras-seq run directory (it is a file); {_TRAIN_HINT}")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise RunDirError(f"{path} is not a keras-seq run directory (no {CONFIG_FILE}); {_TRAIN_HINT}")
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RunDirError(f"cannot read {config_path}: {one_line(e)}") from e
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise RunDirError(
            f"{config_path} is corrupt (not valid JSON: {e.msg} at line {e.lineno} "
            f"column {e.colno}); retrain or restore the run directory"
        ) from e
    if not isinstance(config, dict):
        raise RunDirError(f"{config_path} is corrupt (expected a JSON object, got {type(config).__name__})")
    task = config.get("task")
    if task not in TASKS:
        raise RunDirError(
            f"{config_path} names no known task (task={task!r}; expected one of " f"{', '.join(TASKS)})"
        )
    return config


class RunDir:
    """A keras-seq run directory (see the module docstring for the layout).

    Args:
        path: the directory. `RunDir(path)` validates nothing; use
            `RunDir.create` to make one and `RunDir.open` to open an existing
            one with validation.
        scratch: None for the process that owns the run directory (the chief
            of a multi-worker run, or the only process). A directory for any
            other worker of a multi-worker run: the layout paths (config,
            vocab, checkpoints, logs) then point into `scratch`, so whatever
            this worker writes lands there; `config` and `chief` still read
            the run directory itself.

    Example:

    >>> run = RunDir.create("runs/lm", {"task": "lm"})   # doctest: +SKIP
    >>> run.checkpoints_dir                               # doctest: +SKIP
    PosixPath('runs/lm/checkpoints')
    """

    def __init__(self, path, *, scratch=None):
        self.path = Path(path)
        self.scratch = None if scratch is None else Path(scratch)

    def __repr__(self):
        if self.scratch is not None:
            return f"RunDir({str(self.path)!r}, scratch={str(self.scratch)!r})"
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    # Layout -----------------------------------------------------------------
    @property
    def root(self):
        """Where this process writes: `path`, or `scratch` for a non-chief worker."""
        return self.path if self.scratch is None else self.scratch

    @property
    def is_chief(self):
        """Whether this process writes the run directory itself."""
        return self.scratch is None

    @property
    def chief(self):
        """The run directory as the chief sees it (for reading its files)."""
        return self if self.scratch is None else RunDir(self.path)

    @property
    def config_path(self):
        return self.root / CONFIG_FILE

    @property
    def vocab_dir(self):
        return self.root / VOCAB_DIR

    @property
    def checkpoints_dir(self):
        return self.root / CHECKPOINTS_DIR

    @property
    def logs_dir(self):
        return self.root / LOGS_DIR

    @property
    def last_weights(self):
        return self.checkpoints_dir / LAST_WEIGHTS

    @property
    def best_weights(self):
        return self.checkpoints_dir / BEST_WEIGHTS

    @property
    def state_path(self):
        return self.checkpoints_dir / STATE_FILE

    # Construction -----------------------------------------------------------
    @classmethod
    def create(cls, path, config, *, overwrite=False, scratch=None):
        """Create (or reuse) a run directory and write its config.json.

        Args:
            path: the directory; parents are created.
            config: a JSON-serializable dict with "task" ("lm" | "translator").
            overwrite: an existing run with checkpoints is refused unless this
                is True, in which case its checkpoints and logs are removed.
            scratch: a non-chief worker's scratch directory: the same checks
                against `path` (so every worker refuses alike), but the files
                are written under `scratch` and `path` is left alone.

        Returns:
            The `RunDir`.

        Raises:
            RunDirError: `path` is a file, or holds a trained run and
                `overwrite` is False.
            ValueError: `config` has no valid "task".
        """
        run = cls(path, scratch=scratch)
        if not isinstance(config, dict) or config.get("task") not in TASKS:
            raise ValueError(
                f"a run config needs 'task' in {TASKS}; got "
                f"{config.get('task') if isinstance(config, dict) else type(config).__name__!r}"
            )
        if run.path.exists() and not run.path.is_dir():
            raise RunDirError(f"cannot create run directory {run.path}: it is a file")
        if run.has_checkpoint():
            if not overwrite:
                raise RunDirError(
                    f"{run.path} already holds a trained run ({CHECKPOINTS_DIR}/ has "
                    "weights); pass --resume to continue it, --overwrite to start over, "
                    "or choose another --run-dir"
                )
            shutil.rmtree(run.checkpoints_dir, ignore_errors=True)
            shutil.rmtree(run.logs_dir, ignore_errors=True)
        for d in (run.root, run.vocab_dir, run.checkpoints_dir, run.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
        return run

    @classmethod
    def open(cls, path, *, require_checkpoint=False):
        """Open an existing run directory, validating its config.json.

        Args:
            path: the directory.
            require_checkpoint: also require trained weights (see `checkpoint`).

        Raises:
            RunDirError: see `load_run_config` and `checkpoint`.
        """
        run = cls(path)
        run.config  # validates  # noqa: B018
        if require_checkpoint:
            run.checkpoint()
        return run

    # Contents ---------------------------------------------------------------
    @property
    def config(self):
        """The validated config dict (read from disk each time)."""
        return load_run_config(self.path)

    @property
    def task(self):
        """ "lm" or "translator"."""
        return self.config["task"]

    def write_config(self, config):
        """Write config.json atomically."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.config_path, config)

    def has_checkpoint(self):
        """Whether the run directory (the chief's) holds weights."""
        chief = self.chief
        return chief.best_weights.is_file() or chief.last_weights.is_file()

    def checkpoint(self, which="best"):
        """Path of a weights checkpoint, falling back to the other one.

        Reads the run directory itself (the chief's files) on every worker.

        Args:
            which: "best" (lowest validation loss; for decoding and export) or
                "last" (latest epoch, with optimizer state; for resuming).

        Raises:
            RunDirError: the run has no checkpoint yet.
        """
        if which not in ("best", "last"):
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        chief = self.chief
        order = (
            (chief.best_weights, chief.last_weights)
            if which == "best"
            else (chief.last_weights, chief.best_weights)
        )
        for candidate in order:
            if candidate.is_file():
                return candidate
        raise RunDirError(
            f"{self.path} has no checkpoint yet (no {CHECKPOINTS_DIR}/{BEST_WEIGHTS} or "
            f"{CHECKPOINTS_DIR}/{LAST_WEIGHTS}); training is still running or stopped "
            "before its first epoch ended"
        )

    def training_state(self):
        """The training state of the last checkpoint (state.json), or None."""
        path = self.chief.state_path
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunDirError(f"{path} is corrupt: {one_line(e)}") from e


def prepare_run_dir(path, config, *, resume=False, overwrite=False, scratch=None):
    """The run directory a training command should use.

    Args:
        path: the `--run-dir`.
        config: the config of a new run (ignored when resuming).
        resume: continue an existing run: its config.json is validated and
            kept, and it must have a `last` checkpoint.
        overwrite: see `RunDir.create`.
        scratch: for a non-chief worker of a multi-worker run, its scratch
            directory (`keras_seq.training.worker_scratch_dir()`): the checks
            read `path`, anything written goes to `scratch`. None: write `path`.

    Returns:
        `(run, config)`: the `RunDir` and the config that the run uses (the
        stored one when resuming; the caller rebuilds tokenizer and model
        from it).

    Raises:
        RunDirError: nothing to resume, or a new run would clobber a trained one.
    """
    if resume:
        run = RunDir.open(path)
        if not run.last_weights.is_file():
            raise RunDirError(
                f"nothing to resume in {run.path}: no {CHECKPOINTS_DIR}/{LAST_WEIGHTS} "
                "(the run stopped before its first epoch ended); train without --resume"
            )
        return RunDir(path, scratch=scratch), run.config
    run = RunDir.create(path, config, overwrite=overwrite, scratch=scratch)
    return run, config
