"""The registry of models and versions: scanning, loading and hot swap.

`ModelRegistry.poll()` rescans the model base directory; what a version looks
like on disk and how it is loaded is the backend's business (`backends.py`),
when it is loaded is decided here: once its files are unchanged across two
scans (a fingerprint of names, sizes and mtimes), at start-up too, never
again if it failed with the same files, and unloaded when its files
disappear. With `warmup=True` (as `create_app` sets it) a loaded version is
warmed up (`warmup.py`) before it serves.
"""

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from keras_seq import errors
from keras_seq.serving.backends import OnnxBackend, SavedModelBackend, numeric_versions
from keras_seq.serving.batching import BatchOptions, install
from keras_seq.serving.logs import _one_line, log_event, scrub_paths
from keras_seq.serving.metrics import Metrics
from keras_seq.serving.signatures import RequestError
from keras_seq.serving.warmup import warm_up


def _fingerprint(path):
    """(relative path, size, mtime) of every file under `path`, sorted.

    `path` may also be a list of files (then the paths are kept as given).
    """
    entries = []
    if isinstance(path, (list, tuple)):
        for file in path:
            with contextlib.suppress(OSError):
                stat = os.stat(file)
                entries.append((str(file), stat.st_size, stat.st_mtime_ns))
        return tuple(sorted(entries))
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def _not_found(detail):
    return RequestError(f"Servable not found for request: {detail}", status=404)


class _ModelEntry:
    """Everything known about one model name."""

    def __init__(self, name, path):
        self.name = name
        self.path = path
        self.versions = {}  # version -> Version (AVAILABLE)
        self.failed = {}  # version -> (fingerprint, error_code, message)
        self.loading = set()
        self.pending = {}  # version -> fingerprint seen on the previous scan

    def default_version(self):
        return max(self.versions) if self.versions else None

    def status_rows(self):
        """{version: (state, error code, message)}, AVAILABLE before LOADING before END."""
        rows = {number: ("AVAILABLE", "OK", "") for number in self.versions}
        for number in self.loading:
            rows.setdefault(number, ("LOADING", "OK", ""))
        for number, (_, code, message) in self.failed.items():
            rows.setdefault(number, ("END", code, message))
        return rows


class ModelRegistry:
    """Finds, loads and hot-swaps model versions under a model base directory.

    Args:
        model_base_dir: directory holding `NAME/VERSION/` SavedModels. A single
            model's directory (holding `VERSION/` directories itself, as TF
            Serving's `--model_base_path`) is served too, under its own name.
        onnx: serve ONNX files through onnxruntime instead of the SavedModels:
            `NAME/onnx/<signature>.onnx`, or else a `NAME.onnx` file beside
            `NAME/` (one signature named NAME, which also answers requests
            naming no signature); `model_base_dir` may then be a `.onnx` file.
            The ONNX files of a model form one version, numbered after the
            highest SavedModel version beside them (1 if none), and are
            reloaded when they change.
        precision: with `onnx`, `"float"` or `"int8"` (the graphs of
            `NAME/onnx/int8/`).
        max_versions: serve at most this many of the highest versions of each
            model (None: all of them).
        settle_seconds: at start-up (`poll(initial=True)`), the pause between
            the two scans whose file listings must agree before a version
            loads.
        warmup: call every signature once on a tiny input before a version
            serves (see `warmup.warm_up`); `create_app` turns it on.
        batching: `batching.BatchOptions` for the signatures of every
            version loaded (default: no batching).
        metrics: the `metrics.Metrics` that model calls and version events
            are counted in (default: a new one, `registry.metrics`).

    `poll()` does one scan (call it from one thread at a time); `get()`,
    `status()` and `models()` may be called from any thread.

    Example:

    >>> registry = ModelRegistry("exported/")                    # doctest: +SKIP
    >>> registry.poll(initial=True)                              # doctest: +SKIP
    >>> registry.get("lm").signature("generate")                 # doctest: +SKIP
    """

    def __init__(self, model_base_dir, *, onnx=False, precision="float", max_versions=None,
                 settle_seconds=0.25, warmup=False, batching=None, metrics=None):
        self.base_dir = Path(model_base_dir)
        self.onnx = bool(onnx)
        if precision not in OnnxBackend.PRECISIONS or (precision != "float" and not self.onnx):
            raise ValueError(
                f"precision must be one of {OnnxBackend.PRECISIONS} (other than 'float' only "
                f"with onnx=True), got {precision!r}")
        self.backend = OnnxBackend(precision) if self.onnx else SavedModelBackend()
        if not self.base_dir.is_dir() and not self.backend.is_model_file(self.base_dir):
            raise errors.RunDirError(
                f"model base directory {str(model_base_dir)!r} does not exist or is not a "
                "directory" + (" (or, with onnx=True, a .onnx file)" if onnx else "")
            )
        if max_versions is not None and (
            not isinstance(max_versions, int) or isinstance(max_versions, bool) or max_versions < 1
        ):
            raise ValueError(f"max_versions must be an integer >= 1 or None, got {max_versions!r}")
        self.max_versions = max_versions
        self.settle_seconds = float(settle_seconds)
        self.warmup = bool(warmup)
        self.batching = batching or BatchOptions(enabled=False)
        self.metrics = metrics or Metrics()
        self._models = {}
        self._lock = threading.Lock()
        self._noted = set()  # one-time log notes (incomplete directories, ...)

    # -- queries (any thread) ------------------------------------------------

    def models(self):
        """dict name -> sorted list of AVAILABLE versions (highest first)."""
        with self._lock:
            return {
                name: sorted(entry.versions, reverse=True)
                for name, entry in sorted(self._models.items())
            }

    def get(self, name, version=None):
        """Returns the `Version` to serve, or raises a 404 `RequestError`.

        Args:
            name: model name.
            version: an int, or None for the highest AVAILABLE version.
        """
        with self._lock:
            entry = self._entry(name)
            if version is None:
                version = entry.default_version()
                if version is None:
                    raise _not_found(f"model '{name}' has no available version")
            served = entry.versions.get(version)
        if served is None:
            raise _not_found(f"version {version} of model '{name}' is not available")
        return served

    def status(self, name, version=None):
        """TF Serving's `model_version_status` list for a model (or one version).

        Args:
            name: model name.
            version: an int, or None for every known version (highest first).

        Returns:
            A list of `{"version", "state", "status": {"error_code",
            "error_message"}}`; raises a 404 `RequestError` for an unknown
            model or version.
        """
        with self._lock:
            rows = self._entry(name).status_rows()
        if not rows:
            raise _not_found(f"model '{name}' has no version yet")
        if version is not None:
            if version not in rows:
                raise _not_found(f"version {version} of model '{name}' is not known")
            rows = {version: rows[version]}
        return [
            {
                "version": str(number),
                "state": state,
                "status": {"error_code": code, "error_message": message},
            }
            for number, (state, code, message) in sorted(rows.items(), reverse=True)
        ]

    def _entry(self, name):
        """The model's `_ModelEntry` (call with the lock held), or a 404 `RequestError`."""
        entry = self._models.get(name)
        if entry is None:
            raise _not_found(f"model '{name}' is not served")
        return entry

    # -- scanning (one thread) -----------------------------------------------

    def poll(self, initial=False):
        """Scans the base directory: loads new versions, unloads removed ones.

        A version loads once its file listing is the same on two scans in a
        row, so a directory still being copied is not loaded half-written; one
        renamed into place complete (as `keras-seq export` does) loads on the
        scan after it appears.

        Args:
            initial: the start-up scan: scans twice, `settle_seconds` apart,
                so that the versions already complete load now; warns when
                no model was found.
        """
        if initial:
            self._scan()
            time.sleep(self.settle_seconds)
        self._scan()
        if not initial:
            return
        with self._lock:
            found = bool(self._models)
            unsettled = {name: sorted(e.pending) for name, e in self._models.items() if e.pending}
        if not found:
            log_event(logging.WARNING, "no_models", path=str(self.base_dir),
                      error="no models found; serving none until one appears "
                            "(NAME/VERSION/saved_model.pb)")
        for name, numbers in unsettled.items():
            log_event(logging.WARNING, "version_unsettled", model=name, versions=numbers,
                      error="files still changing at start-up; loaded once they settle")

    def _scan(self):
        """One scan of the base directory; a model that fails blocks no other."""
        try:
            model_paths = self._model_paths()
        except OSError as error:
            log_event(logging.ERROR, "scan_failed", path=str(self.base_dir), error=str(error))
            return
        seen = set()
        for name, path in sorted(model_paths.items()):
            try:
                if self._scan_model(name, path):
                    seen.add(name)
            except Exception as error:  # a bug or an odd file: log once, keep the rest
                with self._lock:
                    if name in self._models:
                        seen.add(name)  # keep serving what was loaded
                self._note((name, "scan", str(error)), "model_scan_failed", model=name,
                           path=str(path), error=_one_line(f"{type(error).__name__}: {error}"))
        with self._lock:
            gone = [name for name in self._models if name not in seen]
            for name in gone:
                del self._models[name]
        for name in gone:
            log_event(logging.INFO, "model_removed", model=name)

    def _scan_model(self, name, path):
        """Scans one model; returns whether `path` holds a model."""
        candidates = self.backend.scan(path, self._note)
        if candidates is None:
            return False
        if self.max_versions is not None:
            keep = sorted(candidates, reverse=True)[: self.max_versions]
            candidates = {number: candidates[number] for number in keep}
        with self._lock:
            entry = self._models.setdefault(name, _ModelEntry(name, path))
        if self.backend.whole_set:
            self._update_set(entry, candidates)
        else:
            self._update_versions(entry, candidates)
        return True

    def _note(self, key, event, **fields):
        """Logs a warning once per `key` (a directory that is not ready, ...)."""
        if key not in self._noted:
            self._noted.add(key)
            log_event(logging.WARNING, event, **fields)

    def _model_paths(self):
        """{model name: path}: a base directory, one model's directory, or a model file."""
        base = self.base_dir
        if base.is_file():
            return {base.stem: base}
        if numeric_versions(base) or self.backend.is_model_dir(base):
            return {base.resolve().name: base}  # a single model's directory
        paths = {}
        for child in base.iterdir():
            if child.name.startswith((".", "_")):
                continue
            if child.is_dir():
                paths[child.name] = child
            elif self.backend.is_model_file(child):
                paths.setdefault(child.stem, child)
        return paths

    def _update_versions(self, entry, candidates):
        """One directory per version: unload the gone ones, load the new ones."""
        # Unload versions whose directories disappeared (or fell out of max_versions).
        with self._lock:
            removed = [v for v in entry.versions if v not in candidates]
            for number in removed:
                del entry.versions[number]
            for number in [v for v in entry.failed if v not in candidates]:
                del entry.failed[number]
            for number in [v for v in entry.pending if v not in candidates]:
                del entry.pending[number]
        for number in removed:
            self.metrics.observe_load(entry.name, number, "unloaded")
            log_event(logging.INFO, "version_unloaded", model=entry.name, version=number)

        for number in sorted(candidates, reverse=True):  # newest first
            if number in entry.versions:
                continue  # a loaded version is never reloaded in place
            path = candidates[number]
            fingerprint = _fingerprint(path)
            if self._ready(entry, number, fingerprint):
                self._load(entry, number, path, fingerprint)

    def _update_set(self, entry, candidates):
        """All files one version: reloaded as a whole when they change."""
        # Swapped in one step (in `_load`), the old set serving until then.
        (number, files), = candidates.items()
        fingerprint = _fingerprint(files)
        with self._lock:
            current = next(iter(entry.versions.values()), None)
        if current is not None and current.fingerprint == fingerprint:
            return
        if self._ready(entry, number, fingerprint):
            self._load(entry, number, files, fingerprint)

    def _ready(self, entry, number, fingerprint):
        """Whether to try loading now: not known broken, files settled."""
        failed = entry.failed.get(number)
        if failed is not None and failed[0] == fingerprint:
            return False  # still the same broken files
        if entry.pending.get(number) != fingerprint:
            entry.pending[number] = fingerprint  # wait one scan for the files to settle
            return False
        entry.pending.pop(number, None)
        return True

    def _load(self, entry, number, source, fingerprint):
        with self._lock:
            entry.loading.add(number)
        start = time.perf_counter()
        try:
            version = self.backend.load(number, source, fingerprint)
        except Exception as error:  # any load failure is reported, never fatal
            code, message = self.backend.failure(error)
            with self._lock:
                entry.loading.discard(number)
                # Clients see the message without the server's file paths.
                entry.failed[number] = (fingerprint, code, scrub_paths(message, self.base_dir))
            self.metrics.observe_load(entry.name, number, "failed")
            log_event(logging.ERROR, "version_load_failed", model=entry.name, version=number,
                      path=str(source), error=message)
            return
        warmed = warm_up(version) if self.warmup else None
        unbatched = install(version, entry.name, self.batching, self.metrics)
        with self._lock:
            entry.loading.discard(number)
            entry.failed.pop(number, None)
            if self.backend.whole_set:
                entry.versions = {number: version}  # swap the whole set in one step
                entry.failed.clear()
            else:
                entry.versions[number] = version
        self.metrics.observe_load(entry.name, number, "loaded")
        log_event(
            logging.INFO,
            "version_loaded",
            model=entry.name,
            version=number,
            backend=version.backend,
            signatures=sorted(version.signatures),
            warmed_up=warmed,
            **({"unbatched": unbatched} if unbatched else {}),
            seconds=round(time.perf_counter() - start, 3),
        )
