"""What every benchmark script shares: start-up, clocks, load average, JSON output.

Not a benchmark. Each script in benchmarks/ imports it first, before Keras or
TensorFlow (`python benchmarks/X.py` puts this folder on `sys.path`):

    import _common  # noqa: F401  (before keras: environment, sys.path)

Importing it

- sets `TF_CPP_MIN_LOG_LEVEL=2` and `KERAS_BACKEND=tensorflow` unless the
  environment already says otherwise (they must be set before TensorFlow or
  Keras is imported);
- puts the repository root (`ROOT`) on `sys.path`, so `keras_seq` imports
  from this checkout without being installed, and this folder (`HERE`), so
  one benchmark can import another's helpers (`import ptb`).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (HERE, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# Data that is not part of the repository (PTB, anki fra-eng, ...).
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
PTB_DATA = os.path.join(SHARED_DATA, "ptb")


def argument_parser(doc):
    """An `ArgumentParser` described by the first paragraph of a module docstring."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0])


# ---------------------------------------------------------------- machine load


def load_average():
    """`os.getloadavg()` rounded to 2 decimals, as a list (for JSON results)."""
    return [round(x, 2) for x in os.getloadavg()]


def load_average_line():
    """`load average: 1.23, 1.10, 0.98` (the closing line of a printed report)."""
    return f"load average: {', '.join(f'{v:.2f}' for v in os.getloadavg())}"


def environment(**versions):
    """The `environment` entry of a JSON result: TensorFlow's version, any
    other `versions` given (name=version), the number of CPUs."""
    import tensorflow as tf

    return {"tensorflow": tf.__version__, **versions, "cpus": os.cpu_count()}


# ---------------------------------------------------------------- clocks


class Stopwatch:
    """Wall-clock and process CPU seconds since it was made (or `restart`ed).

    Wall time is `time.perf_counter()`; CPU time is `time.process_time()`,
    the CPU time of all the process's threads, which on a shared machine
    measures the work done whatever the load (both are reported).
    """

    def __init__(self):
        self.restart()

    def restart(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    @property
    def wall(self):
        return time.perf_counter() - self._wall

    @property
    def cpu(self):
        return time.process_time() - self._cpu

    def elapsed(self):
        """(wall seconds, CPU seconds)."""
        return self.wall, self.cpu


def time_call(fn, *args):
    """(wall seconds, CPU seconds) of `fn(*args)`, waiting for its result
    (converted to a NumPy array, which waits for an eager or graph tensor)."""
    import numpy as np

    watch = Stopwatch()
    np.asarray(fn(*args))
    return watch.elapsed()


# ---------------------------------------------------------------- results


def write_json(path, obj, *, indent=1, ensure_ascii=True, end=""):
    """Writes `obj` as JSON to `path` atomically (a temporary file renamed over
    it, so a killed run never leaves half a file). `indent`, `ensure_ascii`
    and `end` (appended after the JSON text) keep each benchmark's committed
    files in the layout they have always had."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=ensure_ascii)
        f.write(end)
    os.replace(tmp, path)


def kernel_times(session):
    """Ends an onnxruntime profiling session and reads its trace (then deletes it).

    Args:
        session: an `onnxruntime.InferenceSession` opened with
            `SessionOptions.enable_profiling`.

    Returns:
        [(op type, node name, milliseconds)], one per kernel run.
    """
    trace = session.end_profiling()
    with open(trace) as f:
        events = json.load(f)
    os.remove(trace)
    suffix = "_kernel_time"
    return [(e["args"]["op_name"], e["name"][: -len(suffix)], e["dur"] / 1000.0)
            for e in events if e.get("cat") == "Node" and e["name"].endswith(suffix)]
