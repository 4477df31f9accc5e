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
        epoch-NNNN.weights.h5     with --average-last N: the model weights of the
                                  last N epochs (older ones deleted)
        averaged.weights.h5       with --average-last N: their element-wise mean,
                                  written when training ends; decoding, evaluation
                                  and export use it when present (`checkpoint()`)
        state.json                a readable copy of the training state
      logs/                       TensorBoard event files and history.csv

Every file is written atomically (a temporary file in the same directory, then
`os.replace`), so a run killed at any moment leaves the previous version intact.
Temporary files carry their owner in their name (`.tmp-<file>.p<pid>@<host>.*`);
`remove_stale_temporaries` removes those whose process is gone.

Overwriting a trained run (`RunDir.create(..., overwrite=True)`, `train-*
--overwrite`) never leaves neither run: the old run is renamed to a hidden
sibling `.<name>.old.p<pid>@<host>` (one atomic rename), the new run is created
in place (so its path stays the same for the rest of the code), and the old one
is deleted only once the new run has written its first checkpoint
(`discard_replaced_runs`, called by the checkpoint writer). If the process dies
before that, the next `load_run_config` / `RunDir.open` / `prepare_run_dir` /
`RunDir.create` of the path finds an in-place run without a checkpoint beside an
`.old` sibling whose process is gone, and moves the old run back
(`recover_interrupted_overwrite`). A sibling is only ever restored or deleted
when its owner process is gone (or is this process, for deletion): a running
overwrite is never undone by another process reading the run.

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
import re
import shutil
import socket
import sys
import tempfile
import time
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
AVERAGED_WEIGHTS = "averaged.weights.h5"
CHECKPOINT_CHOICES = ("auto", "averaged", "best", "last")
STATE_FILE = "state.json"

_TRAIN_HINT = "train one with `keras-seq train-lm` or `keras-seq train-translator`"

PROCESS_START = time.time()
"""When this process imported keras_seq.runs: any temporary file with no owner in
its name (written by an older keras_seq) and older than this is stale."""

OLD_RUN = "old"
_TRASH = "del"
_OWNER_RE = re.compile(r"\.p(\d+)@([A-Za-z0-9]*)(?=\.|$)")


# ----------------------------------------------------------------------------
# Owners of temporaries: the process (pid and host) named in a file name.


def _host():
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:40]


def owner_token(pid=None):
    """`p<pid>@<host>`: names this process (or `pid` on this host) in a file name."""
    return f"p{os.getpid() if pid is None else int(pid)}@{_host()}"


def temp_prefix(label):
    """Prefix of a temporary file or directory owned by this process:
    `.tmp-<label>.p<pid>@<host>.` (`remove_stale_temporaries` reads it back)."""
    return f".tmp-{label}.{owner_token()}."


def owner_state(name):
    """Whether the process named in `name` (see `owner_token`) still runs.

    Returns:
        "self" (this process), "alive", "dead", or "unknown" (no owner in the
        name, as written by an older keras_seq, or a process on another host).
    """
    match = _OWNER_RE.search(name)
    if match is None or match.group(2) != _host():
        return "unknown"
    pid = int(match.group(1))
    if pid == os.getpid():
        return "self"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"  # exists, another user's
    except OSError:
        return "unknown"
    return "alive"


def _log(message):
    print(f"keras-seq: {message}", file=sys.stderr, flush=True)


def remove_stale_temporaries(directory, pattern=".tmp-*", *, unknown_older_than=None, what="temporaries"):
    """Remove the temporary files and directories in `directory` whose writer is gone.

    The rule, safe with several processes writing the same directory at once:
    an entry named after its owner (`temp_prefix`) is removed when that process
    no longer runs on this host; an entry with no owner in its name (an older
    keras_seq) or one from another host is removed only when its modification
    time is older than `unknown_older_than` (a timestamp; default: the start
    of this process). Entries of this process and of live processes are kept.
    One line on stderr says what was removed.

    Args:
        directory: where to look (not recursive); a missing one is fine.
        pattern: glob of the temporaries' names.
        unknown_older_than: see above.
        what: how the log line calls them.

    Returns:
        The removed paths.
    """
    directory = Path(directory)
    cutoff = PROCESS_START if unknown_older_than is None else unknown_older_than
    removed = []
    try:
        candidates = sorted(directory.glob(pattern))
    except OSError:
        return removed
    for entry in candidates:
        state = owner_state(entry.name)
        if state in ("self", "alive"):
            continue
        if state == "unknown":
            try:
                if entry.lstat().st_mtime >= cutoff:
                    continue
            except OSError:
                continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except FileNotFoundError:
            pass  # another process cleaned it first
        except OSError:
            continue
        removed.append(entry)
    if removed:
        names = ", ".join(p.name for p in removed[:3]) + (", ..." if len(removed) > 3 else "")
        _log(f"removed {len(removed)} stale {what} left in {directory} by killed processes ({names})")
    return removed


# ----------------------------------------------------------------------------
# Overwriting a run: the old one aside until the new one has a checkpoint.


def _normal(path):
    path = Path(path)
    return Path(os.path.abspath(path)) if path.name in ("", ".", "..") else path


def _siblings(path, kind):
    """The hidden siblings `.<name>.<kind>.p<pid>@<host>` of a run directory."""
    prefix = f".{path.name}.{kind}."
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return [
        path.parent / n for n in sorted(names) if n.startswith(prefix) and _OWNER_RE.fullmatch(n, len(prefix) - 1)
    ]


def _has_weights(path):
    checkpoints = Path(path) / CHECKPOINTS_DIR
    return (checkpoints / BEST_WEIGHTS).is_file() or (checkpoints / LAST_WEIGHTS).is_file()


def _discard(directory, run_path):
    """Delete a directory so that a kill midway never leaves a partial copy
    under its old name: renamed to the `.del` sibling of `run_path` first."""
    directory = Path(directory)
    trash = run_path.parent / f".{run_path.name}.{_TRASH}.{owner_token()}"
    shutil.rmtree(trash, ignore_errors=True)
    try:
        os.rename(directory, trash)
    except FileNotFoundError:
        return
    fsync_dir(directory.parent)
    shutil.rmtree(trash, ignore_errors=True)


def _aside_path(path):
    return path.parent / f".{path.name}.{OLD_RUN}.{owner_token()}"


def recover_interrupted_overwrite(path):
    """Finish or undo an overwrite whose process was killed; see the module docstring.

    If `path` holds a run with a checkpoint, the `.old` siblings left by gone
    processes are deleted. If it holds no checkpoint (or does not exist) and
    such a sibling exists, the newest sibling moves back to `path` (the
    checkpoint-less run in place is deleted): the old run is back, as if the
    overwrite had never started. Siblings of live processes are left alone.
    Leftover `.del` siblings (a deletion that was killed) are removed.

    Returns:
        The path of the restored run's former sibling, or None.
    """
    path = _normal(path)
    for trash in _siblings(path, _TRASH):
        if owner_state(trash.name) != "alive":
            shutil.rmtree(trash, ignore_errors=True)
    stale = [d for d in _siblings(path, OLD_RUN) if owner_state(d.name) == "dead"]
    if not stale:
        return None
    if _has_weights(path):
        for old in stale:
            _discard(old, path)
        return None
    stale.sort(key=lambda d: d.stat().st_ctime if d.exists() else 0.0)
    newest = stale.pop()
    if path.exists() or path.is_symlink():
        _discard(path, path)
    try:
        os.rename(newest, path)
    except OSError as e:
        raise RunDirError(
            f"cannot restore the run that an interrupted --overwrite moved to {newest}: {one_line(e)}; "
            f"move it back to {path} by hand"
        ) from e
    fsync_dir(path.parent)
    for old in stale:
        _discard(old, path)
    _log(f"{path}: restored the previous run (an --overwrite was killed before the new run's first checkpoint)")
    return newest


def discard_replaced_runs(path):
    """Delete the old runs an overwrite of `path` kept aside, once `path` has a
    checkpoint (the checkpoint writer calls this after each save; cheap when
    there is nothing to do). Siblings of live other processes are kept.

    Returns:
        The number of old runs deleted.
    """
    path = _normal(path)
    if not _has_weights(path):
        return 0
    done = 0
    for old in _siblings(path, OLD_RUN):
        if owner_state(old.name) in ("self", "dead"):
            _discard(old, path)
            done += 1
    return done


def _umask():
    """This process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, brief)
    os.umask(mask)
    return mask


def follow_umask(target):
    """Give a temporary file from `tempfile.mkstemp` (always 0600) the mode
    `open()` would have given it: `0o666 & ~umask`.

    Args:
        target: the file's path or an open file descriptor.
    """
    mode = 0o666 & ~_umask()
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """Open a temporary file next to `path`; on success, move it onto `path`.

    The temporary file lives in the same directory (so `os.replace` is atomic),
    is flushed and fsync'ed before the rename, and is removed if the block
    raises. Readers see either the old file or the complete new one, with
    the mode the umask gives (`follow_umask`).

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
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), dir=path.parent)
    try:
        follow_umask(fd)  # the mode a plain open() gives, not mkstemp's 0600
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

    An overwrite of `path` killed before its first checkpoint is undone first
    (`recover_interrupted_overwrite`).
    """
    path = Path(path)
    recover_interrupted_overwrite(path)
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


def load_checked_config(path):
    """`load_run_config(path)` checked against the full schema (`keras_seq.run_schema`).

    What the loaders and the resume of a run read: every section the code
    uses has the shape the training commands write.

    Raises:
        RunDirError: see `load_run_config`, and a section or field of the
            wrong shape (one line naming the file and the field).
    """
    from keras_seq import run_schema

    config = load_run_config(path)
    return run_schema.validate(config, Path(path) / CONFIG_FILE)


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
    def averaged_weights(self):
        return self.checkpoints_dir / AVERAGED_WEIGHTS

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
                is True. Then the old run is renamed to the hidden sibling
                `.<name>.old.p<pid>@<host>` and the new run is created in its
                place; the old one is deleted once the new run writes its first
                checkpoint. A kill before that leaves the old run, which the
                next open of `path` moves back (see the module docstring). For
                a `scratch` worker only its scratch checkpoints and logs are
                cleared.
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
        if run.is_chief:
            recover_interrupted_overwrite(run.path)
        if run.has_checkpoint():
            if not overwrite:
                raise RunDirError(
                    f"{run.path} already holds a trained run ({CHECKPOINTS_DIR}/ has "
                    "weights); pass --resume to continue it, --overwrite to start over, "
                    "or choose another --run-dir"
                )
            if run.is_chief:
                run._move_aside()
            else:
                shutil.rmtree(run.checkpoints_dir, ignore_errors=True)
                shutil.rmtree(run.logs_dir, ignore_errors=True)
        for d in (run.root, run.vocab_dir, run.checkpoints_dir, run.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        if run.is_chief:
            for d in (run.root, run.checkpoints_dir, run.logs_dir):
                remove_stale_temporaries(d)
        run.write_config(config)
        return run

    def _move_aside(self):
        """Rename this (trained) run to its `.old` sibling; see `create`."""
        path = _normal(self.path)
        discard_replaced_runs(path)  # an earlier overwrite's old run, if any
        aside = _aside_path(path)
        if aside.exists():
            _discard(aside, path)
        try:
            os.rename(path, aside)
        except OSError as e:
            raise RunDirError(f"cannot move the previous run {path} aside to overwrite it: {one_line(e)}") from e
        fsync_dir(path.parent)
        _log(f"{path}: the previous run is kept as {aside.name} until the new run writes its first checkpoint")

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
    def checked_config(self):
        """The config dict checked against the full schema (`load_checked_config`)."""
        return load_checked_config(self.path)

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

    def checkpoint(self, which="auto"):
        """Path of a weights checkpoint, falling back to another one.

        Reads the run directory itself (the chief's files) on every worker.

        Args:
            which: "auto" (the averaged weights when the run has them, else
                "best"; what decoding, evaluation and export use), "averaged"
                (the mean of the last epochs, `--average-last`), "best"
                (lowest validation loss) or "last" (latest epoch, with
                optimizer state; for resuming).

        Raises:
            RunDirError: the run has no checkpoint yet, or no averaged
                weights when "averaged" is asked for.
        """
        if which not in CHECKPOINT_CHOICES:
            raise ValueError(f"which must be one of {', '.join(CHECKPOINT_CHOICES)}; got {which!r}")
        chief = self.chief
        order = {
            "auto": (chief.averaged_weights, chief.best_weights, chief.last_weights),
            "averaged": (chief.averaged_weights,),
            "best": (chief.best_weights, chief.last_weights),
            "last": (chief.last_weights, chief.best_weights),
        }[which]
        for candidate in order:
            if candidate.is_file():
                return candidate
        if which == "averaged":
            raise RunDirError(
                f"{self.path} has no averaged weights ({CHECKPOINTS_DIR}/{AVERAGED_WEIGHTS}); "
                "train it with --average-last N"
            )
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
        overwrite: see `RunDir.create`: the old run survives until the new
            one has its first checkpoint.
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
