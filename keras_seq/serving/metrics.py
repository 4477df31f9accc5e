"""Prometheus metrics of the model server, served at `/monitoring/prometheus/metrics`.

One `Metrics` object per server holds every counter, gauge and histogram;
the front ends (REST here, gRPC beside it) and the model calls record into
it, and `render()` writes the Prometheus text exposition format (version
0.0.4), the format TF Serving's `/monitoring/prometheus/metrics` answers in.

    keras_seq_serving_requests_total{model,version,signature,status,transport}
    keras_seq_serving_request_latency_seconds{model,version,signature,transport}  histogram
    keras_seq_serving_model_calls_total{model,version,signature}
    keras_seq_serving_batch_size{model,version,signature}     histogram of rows per model call
    keras_seq_serving_batch_queue_rows{model,version,signature}  gauge: rows waiting for a batch
    keras_seq_serving_queue_depth{model}                      gauge: requests waiting for a thread
    keras_seq_serving_model_loads_total{model,version,event}  event: loaded, failed, unloaded

Label values come from the server, never verbatim from a client: a request
for an unknown model, version or signature is counted with that label
empty, so a client cannot grow the set of series.

Example:

>>> metrics = Metrics()
>>> metrics.observe_request("fra-eng", 1, "translate", 200, 0.012, "rest")
>>> metrics.observe_model_call("fra-eng", 1, "translate", rows=4)
>>> "keras_seq_serving_requests_total" in metrics.render()
True
"""

import math
import threading

PREFIX = "keras_seq_serving_"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

# name -> (type, help, label names)
_FAMILIES = {
    "requests_total": ("counter", "Predict requests answered, by HTTP (or gRPC) status.",
                       ("model", "version", "signature", "status", "transport")),
    "request_latency_seconds": ("histogram", "Predict request latency, arrival to answer.",
                                ("model", "version", "signature", "transport")),
    "model_calls_total": ("counter", "Calls of a model signature (a batch counts once).",
                          ("model", "version", "signature")),
    "batch_size": ("histogram", "Rows per model call (requests merged by batching).",
                   ("model", "version", "signature")),
    "batch_queue_rows": ("gauge", "Rows waiting to be merged into a batched model call.",
                         ("model", "version", "signature")),
    "queue_depth": ("gauge", "Predict requests waiting for a model thread.", ("model",)),
    "model_loads_total": ("counter", "Model version events: loaded, failed, unloaded.",
                          ("model", "version", "event")),
}
_BUCKETS = {"request_latency_seconds": LATENCY_BUCKETS, "batch_size": BATCH_BUCKETS}


def _label(value):
    text = "" if value is None else str(value)
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value):
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Histogram:
    __slots__ = ("counts", "sum", "count")

    def __init__(self, buckets):
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0


class Metrics:
    """The server's metrics: thread-safe recorders and the text exposition.

    Every `observe_*` method may be called from any thread (request threads,
    the event loop, the loader, a gRPC server's threads).

    Example:

    >>> metrics = Metrics()
    >>> metrics.observe_load("lm", 2, "loaded")
    >>> print(metrics.render().splitlines()[-1])
    keras_seq_serving_model_loads_total{model="lm",version="2",event="loaded"} 1
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._values = {name: {} for name in _FAMILIES}  # name -> {labels tuple: value}
        self._collectors = []

    # -- recording -----------------------------------------------------------

    def observe_request(self, model, version, signature, status, seconds, transport="rest"):
        """Counts one predict request and its latency.

        Args:
            model, version, signature: what answered; None or "" when the
                request named something not served (never the client's text).
            status: the HTTP status code (REST), or the gRPC status code name
                (`"OK"`, `"INVALID_ARGUMENT"`, ...) for gRPC.
            seconds: from the request's arrival to its answer.
            transport: `"rest"` or `"grpc"`.
        """
        with self._lock:
            self._add("requests_total", (model, version, signature, status, transport), 1)
            self._observe("request_latency_seconds", (model, version, signature, transport),
                          seconds)

    def observe_model_call(self, model, version, signature, rows):
        """Counts one call of a signature over `rows` rows (a batch, or one request)."""
        with self._lock:
            self._add("model_calls_total", (model, version, signature), 1)
            self._observe("batch_size", (model, version, signature), rows)

    def add_batch_queue_rows(self, model, version, signature, rows):
        """Adds `rows` (negative to remove) to the rows waiting for a batch."""
        with self._lock:
            self._add("batch_queue_rows", (model, version, signature), rows)

    def observe_load(self, model, version, event):
        """Counts a version `event`: `"loaded"`, `"failed"` or `"unloaded"`."""
        with self._lock:
            self._add("model_loads_total", (model, version, event), 1)

    def add_collector(self, collect):
        """Registers `collect() -> {model: depth}`, read for `queue_depth` at each render."""
        with self._lock:
            self._collectors.append(collect)

    def _add(self, name, labels, amount):
        key = tuple(_label(v) for v in labels)
        values = self._values[name]
        values[key] = values.get(key, 0) + amount

    def _observe(self, name, labels, value):
        key = tuple(_label(v) for v in labels)
        buckets = _BUCKETS[name]
        histogram = self._values[name].get(key)
        if histogram is None:
            histogram = self._values[name][key] = _Histogram(buckets)
        for i, bound in enumerate(buckets):
            if value <= bound:
                histogram.counts[i] += 1
        histogram.sum += value
        histogram.count += 1

    # -- exposition ----------------------------------------------------------

    def render(self):
        """The Prometheus text exposition of every metric (a str ending in a newline)."""
        with self._lock:
            collectors = list(self._collectors)
        depths = {}
        for collect in collectors:
            for model, depth in collect().items():
                depths[model] = depths.get(model, 0) + depth
        lines = []
        with self._lock:
            self._values["queue_depth"] = {(_label(m),): d for m, d in sorted(depths.items())}
            for name, (kind, help_text, label_names) in _FAMILIES.items():
                full = PREFIX + name
                lines.append(f"# HELP {full} {help_text}")
                lines.append(f"# TYPE {full} {kind}")
                for key, value in sorted(self._values[name].items()):
                    labels = ",".join(f'{n}="{v}"' for n, v in zip(label_names, key))
                    if kind != "histogram":
                        lines.append(f"{full}{{{labels}}} {_number(value)}")
                        continue
                    for bound, count in zip(_BUCKETS[name], value.counts):
                        lines.append(f'{full}_bucket{{{labels},le="{_number(float(bound))}"}} '
                                     f"{count}")
                    lines.append(f'{full}_bucket{{{labels},le="+Inf"}} {value.count}')
                    lines.append(f"{full}_sum{{{labels}}} {_number(float(value.sum))}")
                    lines.append(f"{full}_count{{{labels}}} {value.count}")
        return "\n".join(lines) + "\n"
