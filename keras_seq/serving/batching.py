"""Request batching: concurrent calls of one signature run as one model call.

Like TF Serving's `--enable_batching`: a request thread calling a batched
signature joins a queue; the first one in leads the batch, waits up to
`timeout` seconds (or until `max_rows` rows are waiting), merges the waiting
requests' inputs into one call, and hands every request its own rows of the
outputs. The batching sits below the transports, in the signature's call
(`install` wraps each signature of a version when it loads), so the REST app
and any other front end calling `version.signature(name)(arrays)` get it.

What is merged, and how (a `Plan` per signature):

- Inputs are concatenated along their first (batch) axis. Requests are
  merged only when every other dimension agrees, with one exception: the
  id input of a keras_seq export that its `export.json` documents as
  "right-padded with 0" (`source_ids`, `prompt_ids`) is right-padded with 0
  to the longest request's width. A rank-0 input must be equal in every
  merged request.
- Outputs are split back by row. An output dimension that follows the padded
  width (e.g. `encode`'s `state_encoder_outputs [N, S, H]`) is cut back to
  the request's own width; every other output must have the same shape as
  alone (`ids` are `[N, max_length]` whatever the batch). An output that
  cannot be split so makes the batch run again request by request and turns
  batching off for that signature (logged once).
- Not batched: a signature with an input of unknown rank, with a `seed`
  input that is not a per-request setting (a request that sets the
  per-request `seed` runs alone; one that leaves it out is batched), or one that samples with a fixed seed (a sampled row's random
  numbers depend on its row in the batch, so a seeded request would not
  reproduce), or an output whose width is unknown for a model not exported
  by keras_seq (it could depend on the other rows).
- A batch that fails (one request's bad input fails the whole call) is run
  again request by request, so every request gets the answer, or the error,
  it gets alone.

Each answer equals the request's answer alone in every discrete output (ids,
lengths, strings); a floating output may differ in its last bits, as the
runtimes' kernels round differently for another batch size (TF Serving's
batching has the same property). `--no-batching` keeps every call alone.

Example:

>>> options = BatchOptions(max_rows=32, timeout=0.002)
>>> install(version, "fra-eng", options, metrics)           # doctest: +SKIP
>>> version.signature("translate")({"sentences": array})    # doctest: +SKIP
"""

import collections
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from keras_seq.serving.defaults import DEFAULT_BATCH_TIMEOUT_MS, DEFAULT_MAX_BATCH
from keras_seq.serving.logs import _one_line, log_event
from keras_seq.serving.signatures import Signature


class BatchOptions(NamedTuple):
    """How requests are batched.

    Attributes:
        enabled: merge concurrent requests (False: every call alone).
        max_rows: the most rows in one model call.
        timeout: seconds the first request of a batch waits for others.
        concurrency: batched calls of one signature running at once
            (default: half the CPUs, at least 1); the next batch fills up
            while they run.
    """

    enabled: bool = True
    max_rows: int = DEFAULT_MAX_BATCH
    timeout: float = DEFAULT_BATCH_TIMEOUT_MS / 1000.0
    concurrency: Optional[int] = None


def export_info(version):
    """The `export.json` a keras_seq export wrote beside `version` (a dict), or None."""
    path = Path(version.path)
    for candidate in (path / "assets.extra" / "export.json", path / "export.json"):
        try:
            info = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        return info if isinstance(info, dict) else None
    return None


def _get(mapping, *keys):
    """`mapping[k1][k2]...`, or None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _signature_info(info, name, backend):
    """The export.json entry describing signature `name` (None if none)."""
    if backend == "onnx":  # serving_default.onnx is a copy of the id-level graph
        copy = _get(info, "onnx", f"{name}.onnx", "copy_of")
        if isinstance(copy, str) and copy.endswith(".onnx"):
            name = copy[: -len(".onnx")]
    entry = _get(info, "signatures", name)
    outputs = _get(entry, "outputs")
    if not isinstance(outputs, dict) or not all(
            isinstance(_get(o, "shape"), list) for o in outputs.values()):
        return None
    return entry


def _is_padded(doc, name):
    return re.search(rf"(?<!\w){re.escape(name)} int32 \[N, \w+\] \([^)]*right-padded with 0",
                     doc or "") is not None


class _Unsplittable(Exception):
    """The outputs of a batched call cannot be split back per request."""


class Plan:
    """How one signature's requests are merged and its outputs split.

    Args:
        signature: the `Signature`.
        info: its export.json entry (`signatures[name]`), or None.
        seeded: whether the export samples with a fixed seed.

    Attributes:
        reason: why the signature is not batched, or None.
        padded: the input right-padded with 0 when widths differ, or None.
        trim: {output: axes that follow the padded width}.
    """

    def __init__(self, signature, info=None, seeded=False):
        self.inputs = signature.inputs
        optional = getattr(signature, "optional", None) or {}  # per-request settings
        self.reason = None
        self.padded = None
        self.trim = {}
        declared = {}
        if info is not None:
            declared = {k: _get(v, "shape") for k, v in info["outputs"].items()}
        if any(info_.shape is None for info_ in self.inputs.values()):
            self.reason = "an input of unknown rank"
        elif any("seed" in name for name in self.inputs) and "seed" not in optional:
            self.reason = "a seed input (a sampled row depends on its row in the batch)"
        elif seeded and {"lengths", "scores"} <= set(signature.outputs):
            self.reason = "sampling with a fixed seed (a row depends on its row in the batch)"
        if self.reason:
            return
        if info is not None:
            padded = [name for name, tensor in self.inputs.items()
                      if tensor.dtype == "int32" and len(tensor.shape) == 2
                      and _is_padded(str(info.get("doc", "")), name)]
            self.padded = padded[0] if len(padded) == 1 else None
        for name, tensor in signature.outputs.items():
            shape = declared.get(name, tensor.shape)
            if shape is None or len(shape) == 0:
                self.reason = f"output '{name}' has no batch dimension"
                return
            dynamic = [axis for axis in range(1, len(shape)) if shape[axis] is None]
            if dynamic and self.padded is not None:
                self.trim[name] = dynamic
            elif dynamic and info is None:
                self.reason = f"output '{name}' has a dimension of unknown size"
                return

    def key(self, arrays):
        """(group key, rows, padded width) of a request; key None: run it alone."""
        parts, rows = [], None
        if "seed" in arrays:  # a seeded request samples as it would alone: run alone
            return None, 0, None
        for name in sorted(self.inputs):
            if name not in arrays:  # an optional setting left out: grouped apart
                parts.append((name, None))
                continue
            array = np.asarray(arrays[name])
            if array.ndim == 0:
                parts.append((name, array.dtype.str, array.tobytes()))
                continue
            if rows is not None and array.shape[0] != rows:
                return None, 0, None
            rows = array.shape[0]
            tail = array.shape[2:] if name == self.padded else array.shape[1:]
            parts.append((name, array.dtype.str, array.ndim, tail))
        if not rows:
            return None, 0, None
        width = np.shape(arrays[self.padded])[1] if self.padded else None
        return tuple(parts), rows, width

    def merge(self, requests):
        """One call's inputs from the requests' (`_Request`s) inputs."""
        merged = {}
        for name in self.inputs:
            if name not in requests[0].arrays:  # left out by all (see `key`)
                continue
            arrays = [np.asarray(request.arrays[name]) for request in requests]
            if arrays[0].ndim == 0:
                merged[name] = arrays[0]
                continue
            if name == self.padded:
                width = max(a.shape[1] for a in arrays)
                arrays = [np.pad(a, ((0, 0), (0, width - a.shape[1]))) if a.shape[1] < width
                          else a for a in arrays]
            merged[name] = np.concatenate(arrays, axis=0)
        return merged

    def split(self, outputs, requests):
        """Each request's outputs, its rows of `outputs` (cut back to its width)."""
        total = sum(request.rows for request in requests)
        width = max((r.width for r in requests), default=None) if self.padded else None
        parts = [{} for _ in requests]
        for name, value in outputs.items():
            value = np.asarray(value)
            if value.ndim == 0 or value.shape[0] != total:
                raise _Unsplittable(f"output '{name}' has shape {value.shape}, not {total} rows")
            start = 0
            for part, request in zip(parts, requests):
                piece = value[start:start + request.rows]
                start += request.rows
                for axis in self.trim.get(name, ()):
                    if piece.shape[axis] == request.width:
                        continue
                    if piece.shape[axis] != width:
                        raise _Unsplittable(f"output '{name}' axis {axis} does not follow the "
                                            f"padded width")
                    piece = np.take(piece, np.arange(request.width), axis=axis)
                part[name] = piece
        return parts


class _Request:
    __slots__ = ("arrays", "rows", "width", "wake", "finished", "result", "error")

    def __init__(self, arrays, rows, width):
        self.arrays = arrays
        self.rows = rows
        self.width = width
        self.wake = threading.Event()  # set to lead the batch, and when finished
        self.finished = False
        self.result = None
        self.error = None


class _Queue:
    __slots__ = ("items", "rows")

    def __init__(self):
        self.items = collections.deque()
        self.rows = 0


class Batcher:
    """A signature's call that merges concurrent requests into one call.

    Args:
        call: the signature's own call (dict of arrays -> dict of arrays).
        plan: the signature's `Plan` (its `reason` must be None).
        options: `BatchOptions`.
        observe: `observe(rows)` after every model call, or None.
        queued: `queued(rows)` as rows join (+) and leave (-) the queue, or None.
        label: names the signature in the log.

    Calling it from several threads at once is the point: each caller blocks
    until its own answer is ready, and raises its own error.
    """

    def __init__(self, call, plan, options, observe=None, queued=None, label=""):
        self._call = call
        self.plan = plan
        self.max_rows = options.max_rows
        self.timeout = options.timeout
        concurrency = options.concurrency or max(1, (os.cpu_count() or 2) // 2)
        self._running = threading.BoundedSemaphore(concurrency)
        self._observe = observe or (lambda rows: None)
        self._queued = queued or (lambda rows: None)
        self._label = label
        self._cond = threading.Condition()
        self._queues = {}  # group key -> _Queue

    def __call__(self, arrays):
        key, rows, width = (None, 0, None) if self.plan.reason else self.plan.key(arrays)
        if key is None or rows >= self.max_rows:
            return self._alone(arrays, rows or _rows(arrays))
        request = _Request(arrays, rows, width)
        with self._cond:
            queue = self._queues.setdefault(key, _Queue())
            queue.items.append(request)
            queue.rows += rows
            if len(queue.items) == 1:
                request.wake.set()  # first in: lead
            elif queue.rows >= self.max_rows:
                self._cond.notify_all()
        self._queued(rows)
        while True:
            request.wake.wait()
            if request.finished:
                break
            request.wake.clear()
            self._lead(key)
        if request.error is not None:
            raise request.error
        return request.result

    def _alone(self, arrays, rows):
        result = self._call(arrays)
        self._observe(rows)
        return result

    def _lead(self, key):
        """Waits for the batch to fill, takes it from the queue and runs it."""
        deadline = time.monotonic() + self.timeout
        with self._cond:
            queue = self._queues[key]
            while queue.rows < self.max_rows:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        with self._running:  # the next batch fills while the previous ones run
            with self._cond:
                queue = self._queues[key]
                batch, rows = [], 0
                while queue.items and (not batch or rows + queue.items[0].rows <= self.max_rows):
                    item = queue.items.popleft()
                    batch.append(item)
                    rows += item.rows
                queue.rows -= rows
                if queue.items:
                    queue.items[0].wake.set()  # the next one leads the next batch
                else:
                    del self._queues[key]
            self._queued(-rows)
            self._run(batch)

    def _run(self, batch):
        """Runs `batch` as one call (or each alone if that fails); finishes each request."""
        try:
            parts = None
            if len(batch) > 1:
                try:
                    outputs = self._call(self.plan.merge(batch))
                    self._observe(sum(request.rows for request in batch))
                    parts = self.plan.split(outputs, batch)
                except _Unsplittable as error:
                    self.plan.reason = str(error)
                    log_event(logging.WARNING, "batching_off", signature=self._label,
                              error=_one_line(error))
                except Exception:  # one request's bad input: each alone says which
                    parts = None
            for i, request in enumerate(batch):
                if parts is not None:
                    request.result = parts[i]
                    continue
                try:
                    request.result = self._alone(request.arrays, request.rows)
                except Exception as error:
                    request.error = error
        except BaseException as error:  # never leave a request waiting
            for request in batch:
                if request.result is None and request.error is None:
                    request.error = error
            raise
        finally:
            for request in batch:
                request.finished = True
                request.wake.set()


def _counted(call, observe):
    def counted(arrays):
        result = call(arrays)
        observe(_rows(arrays))
        return result

    return counted


def _rows(arrays):
    for array in arrays.values():
        shape = np.shape(array)
        if shape:
            return shape[0]
    return 1


def install(version, model, options, metrics):
    """Wraps every signature of `version`: batched (per `options`) and counted.

    With batching off (or for a signature that cannot be batched), each call
    still counts in `metrics` as one model call of its rows.

    Args:
        version: a loaded `signatures.Version`; its `signatures` are replaced.
        model: the model's name (for the metrics' labels).
        options: `BatchOptions`.
        metrics: a `metrics.Metrics`.

    Returns:
        {signature name: why it is not batched} for the unbatched ones.
    """
    info = export_info(version) if options.enabled else None
    seeded = _get(info, "decoding", "sampler", "config", "seed") is not None
    wrapped, unbatched = {}, {}
    for name, signature in version.signatures.items():
        labels = (model, version.version, name)

        def observe(rows, labels=labels):
            metrics.observe_model_call(*labels, rows=rows)

        plan = None
        if options.enabled:
            plan = Plan(signature, _signature_info(info, name, version.backend), seeded)
            if plan.reason:
                unbatched[name] = plan.reason
        if plan is None or plan.reason:
            call = _counted(signature, observe)
        else:
            call = Batcher(
                signature, plan, options, observe,
                lambda rows, labels=labels: metrics.add_batch_queue_rows(*labels, rows),
                label=f"{model}/{version.version}/{name}")
        wrapped[name] = Signature(name, signature.inputs, signature.outputs, call,
                                  signature.signature_def, optional=signature.optional)
    version.signatures = wrapped
    return unbatched
