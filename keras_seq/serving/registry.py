"""The registry of models and versions: scanning, loading and hot swap.

`ModelRegistry.poll()` rescans the model base directory; what a version looks
like on disk and how it is loaded is the backend's business (`backends.py`),
when it is loaded is decided here: once its files are unchanged across two
scans (a fingerprint of names, sizes and mtimes), never again if it failed
with the same files, and unloaded when its files disappear.
"""

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

from keras_seq import errors
from keras_seq.serving.backends import OnnxBackend, SavedModelBackend, numeric_versions
from keras_seq.serving.logs import log_event
from keras_seq.serving.signatures import RequestError


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
        max_versions: serve at most this many of the highest versions of each
            model (None: all of them).

    `poll()` does one scan (call it from one thread at a time); `get()`,
    `status()` and `models()` may be called from any thread.

    Example:

    >>> registry = ModelRegistry("exported/")                    # doctest: +SKIP
    >>> registry.poll(initial=True)                              # doctest: +SKIP
    >>> registry.get("lm").signature("generate")                 # doctest: +SKIP
    """

    def __init__(self, model_base_dir, *, onnx=False, max_versions=None):
        self.base_dir = Path(model_base_dir)
        self.onnx = bool(onnx)
        self.backend = OnnxBackend() if self.onnx else SavedModelBackend()
        if not self.base_dir.is_dir() and not self.backend.is_model_file(self.base_dir):
            raise errors.RunDirError(
                f"model base directory {str(model_base_dir)!r} does not exist or is not a "
                "directory" + (" (or, with onnx=True, a .onnx file)" if onnx else "")
            )
        if max_versions is not None and max_versions < 1:
            raise ValueError(f"max_versions must be >= 1 or None, got {max_versions}")
        self.max_versions = max_versions
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
        """Scans the base directory once: loads new versions, unloads removed ones.

        Args:
            initial: load complete versions right away instead of waiting for
                their files to stay unchanged across two scans.
        """
        try:
            model_paths = self._model_paths()
        except OSError as error:
            log_event(logging.ERROR, "scan_failed", path=str(self.base_dir), error=str(error))
            return
        seen = set()
        for name, path in sorted(model_paths.items()):
            candidates = self.backend.scan(path, self._note)
            if candidates is None:
                continue
            if self.max_versions is not None:
                keep = sorted(candidates, reverse=True)[: self.max_versions]
                candidates = {number: candidates[number] for number in keep}
            seen.add(name)
            with self._lock:
                entry = self._models.setdefault(name, _ModelEntry(name, path))
            if self.backend.whole_set:
                self._update_set(entry, candidates, initial)
            else:
                self._update_versions(entry, candidates, initial)
        with self._lock:
            gone = [name for name in self._models if name not in seen]
            for name in gone:
                del self._models[name]
        for name in gone:
            log_event(logging.INFO, "model_removed", model=name)

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

    def _update_versions(self, entry, candidates, initial):
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
            log_event(logging.INFO, "version_unloaded", model=entry.name, version=number)

        for number in sorted(candidates, reverse=True):  # newest first
            if number in entry.versions:
                continue  # a loaded version is never reloaded in place
            path = candidates[number]
            fingerprint = _fingerprint(path)
            if self._ready(entry, number, fingerprint, initial):
                self._load(entry, number, path, fingerprint)

    def _update_set(self, entry, candidates, initial):
        """All files one version: reloaded as a whole when they change."""
        # Swapped in one step (in `_load`), the old set serving until then.
        (number, files), = candidates.items()
        fingerprint = _fingerprint(files)
        with self._lock:
            current = next(iter(entry.versions.values()), None)
        if current is not None and current.fingerprint == fingerprint:
            return
        if self._ready(entry, number, fingerprint, initial):
            self._load(entry, number, files, fingerprint)

    def _ready(self, entry, number, fingerprint, initial):
        """Whether to try loading now: not known broken, files settled."""
        failed = entry.failed.get(number)
        if failed is not None and failed[0] == fingerprint:
            return False  # still the same broken files
        if not initial and entry.pending.get(number) != fingerprint:
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
                entry.failed[number] = (fingerprint, code, message)
            log_event(logging.ERROR, "version_load_failed", model=entry.name, version=number,
                      path=str(source), error=message)
            return
        with self._lock:
            entry.loading.discard(number)
            entry.failed.pop(number, None)
            if self.backend.whole_set:
                entry.versions = {number: version}  # swap the whole set in one step
                entry.failed.clear()
            else:
                entry.versions[number] = version
        log_event(
            logging.INFO,
            "version_loaded",
            model=entry.name,
            version=number,
            backend=version.backend,
            signatures=sorted(version.signatures),
            seconds=round(time.perf_counter() - start, 3),
        )
