"""Throughput and latency of the model server (keras_seq.serving).

Starts the server as a subprocess on a free loopback port, once for the
SavedModels and once with `--onnx` for the ONNX files (when there are any),
then for every model and signature drives it with 1, 8 and 32 concurrent
clients for a fixed duration each, and prints a markdown table to paste into
benchmarks/RESULTS.md: requests/s, p50/p99 latency, failed requests, and the
server's resident memory (RSS) at start and after each pass over all cells
(`--passes`, 2 by default: the first pass warms every model up, the second
shows whether memory keeps growing; the table shows the last pass).

Request bodies are synthesized from each signature's metadata (columnar
`inputs` format): strings get `--text`, integer tensors small token ids
(4, 5, ...), floats zeros, booleans false; a dimension of unknown size is
`--batch` for the leading (batch) one and `--seq-len` for the others. Give real
bodies with `--requests FILE.json`, a JSON object mapping "MODEL/SIGNATURE" to
a request body (e.g. a `step` signature whose state must be consistent).
`serving_default` is skipped when it only aliases another signature.

Usage:

    python benchmarks/serving.py                     # exported/, 5 s per cell
    python benchmarks/serving.py exported/ --duration 10 --clients 1,8,32
    python benchmarks/serving.py exported/ --backends onnx --requests bodies.json

Everything stays on 127.0.0.1; each cell is bounded by `--duration` and
`--max-requests`.
"""

import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import ROOT, argument_parser, write_json

import httpx
import numpy as np

REPO = Path(ROOT)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mib(pid):
    """Resident set size of a process in MiB (Linux /proc), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _has_backend(model_dir, backend):
    for model in Path(model_dir).iterdir():
        if not model.is_dir():
            continue
        if backend == "onnx" and any((model / "onnx").glob("*.onnx")):
            return True
        if backend == "savedmodel" and any(
            (v / "saved_model.pb").is_file() for v in model.iterdir() if v.name.isdigit()
        ):
            return True
    return False


class ServerProcess:
    """`python -m keras_seq.serving DIR [EXTRA_ARGS]` on a free loopback port.

    `startup_seconds` is how long it took to answer `/healthz` (models loaded
    and warmed up).
    """

    def __init__(self, model_dir, onnx, startup_timeout, extra_args=()):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        command = [
            sys.executable, "-m", "keras_seq.serving", str(model_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--poll-interval", "0",
        ]
        if onnx:
            command.append("--onnx")
        command += list(extra_args)
        start = time.monotonic()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=self.log, env=env)
        deadline = time.monotonic() + startup_timeout
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited:\n{self.tail()}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"server did not start in {startup_timeout}s:\n{self.tail()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        self.startup_seconds = time.monotonic() - start

    def tail(self, n=3000):
        self.log.flush()
        return Path(self.log.name).read_text()[-n:]

    def rss(self):
        return _rss_mib(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def _synthetic_value(info, args):
    dims = info["tensor_shape"].get("dim", [])
    if info["tensor_shape"].get("unknown_rank"):
        dims = [{"size": "-1"}]
    shape = []
    for i, dim in enumerate(dims):
        size = int(dim.get("size", -1))
        shape.append(size if size >= 0 else (args.batch if i == 0 else args.seq_len))
    count = int(np.prod(shape)) if shape else 1
    dtype = info["dtype"]
    if dtype == "DT_STRING":
        flat = [args.text] * count
    elif dtype == "DT_BOOL":
        flat = [False] * count
    elif dtype in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16"):
        flat = [0.0] * count
    else:
        flat = [4 + (i % 16) for i in range(count)]
    array = np.empty(count, dtype=object)
    array[:] = flat
    return array.reshape(shape).tolist() if shape else flat[0]


def _io_key(signature_def):
    def side(tensors):
        return sorted(
            (name, t["dtype"], json.dumps(t["tensor_shape"], sort_keys=True))
            for name, t in tensors.items()
        )

    return json.dumps([side(signature_def["inputs"]), side(signature_def["outputs"])])


def _plan(client, args, overrides):
    """[(model, signature, body)] for every served model and signature."""
    plan = []
    models = client.get("/healthz").json()["models"]
    for model in sorted(models):
        if args.models and model not in args.models:
            continue
        meta = client.get(f"/v1/models/{model}/metadata")
        if meta.status_code != 200:
            plan.append((model, "-", None, f"metadata: {meta.text[:120]}"))
            continue
        defs = meta.json()["metadata"]["signature_def"]["signature_def"]
        keys = {name: _io_key(d) for name, d in defs.items()}
        for name in sorted(defs):
            if name == "serving_default" and any(
                keys[other] == keys[name] for other in defs if other != name
            ):
                continue  # an alias of another signature
            override = overrides.get(f"{model}/{name}")
            if override is not None:
                body = dict(override)
                body.setdefault("signature_name", name)
            else:
                inputs = {k: _synthetic_value(v, args) for k, v in defs[name]["inputs"].items()}
                body = {"signature_name": name, "inputs": inputs}
            plan.append((model, name, body, None))
    return plan


async def _drive(url, path, body, clients, duration, max_requests, keep_latencies=False):
    """Runs `clients` concurrent loops for `duration` seconds; returns stats
    (with every latency, `latencies_ms`, if `keep_latencies`)."""
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    latencies, failed, errors = [], 0, []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120.0, limits=limits) as client:
        for _ in range(2):  # warm-up (first calls trace/optimize graphs)
            await client.post(path, content=content, headers=headers)
        start = time.perf_counter()
        deadline = start + duration
        budget = [max_requests]

        async def loop():
            nonlocal failed
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    response = await client.post(path, content=content, headers=headers)
                    ok = response.status_code == 200
                    if not ok and len(errors) < 3:
                        errors.append(f"{response.status_code} {response.text[:160]}")
                except httpx.HTTPError as error:
                    ok = False
                    if len(errors) < 3:
                        errors.append(repr(error)[:160])
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    failed += 1

        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000.0
    kept = {"latencies_ms": lat.tolist()} if keep_latencies else {}
    return {
        **kept,
        "requests": len(latencies) + failed,
        "ok": len(latencies),
        "failed": failed,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "errors": errors,
    }


def run(args):
    overrides = json.loads(Path(args.requests).read_text()) if args.requests else {}
    rows, memory, notes = [], [], []
    for backend in args.backends:
        if not _has_backend(args.dir, backend):
            notes.append(f"{backend}: nothing to serve under {args.dir}")
            continue
        server = ServerProcess(args.dir, backend == "onnx", args.startup_timeout)
        try:
            rss = [server.rss()]  # at start, then after every pass
            with httpx.Client(base_url=server.url, timeout=120.0) as client:
                plan = _plan(client, args, overrides)
                for pass_index in range(args.passes):
                    last = pass_index == args.passes - 1
                    for model, signature, body, problem in plan:
                        path = f"/v1/models/{model}:predict"
                        if problem is None:
                            probe = client.post(path, json=body)
                            if probe.status_code != 200:
                                problem = f"{probe.status_code} {probe.text[:160]}"
                        if problem is not None:
                            if last:
                                notes.append(f"{backend} {model}/{signature}: skipped ({problem})")
                            continue
                        for clients in args.clients:
                            stats = asyncio.run(
                                _drive(server.url, path, body, clients, args.duration,
                                       args.max_requests)
                            )
                            # Every pass must be error-free; the table shows the last one.
                            for error in stats["errors"]:
                                notes.append(f"{backend} {model}/{signature} x{clients} "
                                             f"(pass {pass_index + 1}): {error}")
                            if stats["failed"] and not last:
                                notes.append(f"{backend} {model}/{signature} x{clients}: "
                                             f"{stats['failed']} failed in pass {pass_index + 1}")
                            if last:
                                rows.append((backend, model, signature, clients, stats))
                            print(f"  pass {pass_index + 1} {backend:10s} {model}/{signature} "
                                  f"x{clients}: {stats['rps']:.1f} req/s p50 "
                                  f"{stats['p50_ms']:.1f} ms p99 {stats['p99_ms']:.1f} ms "
                                  f"failed {stats['failed']}", file=sys.stderr)
                    rss.append(server.rss())
            memory.append((backend, rss))
        finally:
            server.stop()
    return rows, memory, notes


def _fmt(value, digits=1):
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def markdown(rows, memory, notes, args):
    lines = [
        f"Server benchmark: `python benchmarks/serving.py {' '.join(args.argv)}`".rstrip(),
        "",
        f"{args.duration:g} s per cell, batch {args.batch} per request, loopback HTTP, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}.",
        "",
        "| backend | model | signature | clients | requests | req/s | p50 ms | p99 ms | failed |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, model, signature, clients, s in rows:
        lines.append(
            f"| {backend} | {model} | {signature} | {clients} | {s['requests']} | "
            f"{_fmt(s['rps'])} | {_fmt(s['p50_ms'])} | {_fmt(s['p99_ms'])} | {s['failed']} |"
        )
    passes = max((len(r) - 1 for _, r in memory), default=0)
    lines += ["", "| backend | server RSS at start (MiB) | "
              + " | ".join(f"after pass {i + 1}" for i in range(passes)) + " |",
              "|---|---:|" + "---:|" * passes]
    for backend, rss in memory:
        lines.append(f"| {backend} | " + " | ".join(_fmt(v, 0) for v in rss) + " |")
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("dir", nargs="?", default=str(REPO / "exported"),
                        help="model base directory (default: exported/)")
    parser.add_argument("--backends", default="savedmodel,onnx",
                        help="comma-separated: savedmodel, onnx")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--passes", type=int, default=2,
                        help="run every cell this many times (the table shows the last pass; "
                             "server memory is read after each, to show it levels off)")
    parser.add_argument("--max-requests", type=int, default=100_000,
                        help="upper bound of requests per cell")
    parser.add_argument("--models", default="", help="comma-separated model names (default all)")
    parser.add_argument("--batch", type=int, default=1, help="rows per synthetic request")
    parser.add_argument("--seq-len", type=int, default=8, help="size of other unknown dims")
    parser.add_argument("--text", default="the old man", help="string for string inputs")
    parser.add_argument("--requests", default=None,
                        help='JSON file {"MODEL/SIGNATURE": request body} overriding synthesis')
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--json", default=None, help="also write the raw results here")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.clients = [int(c) for c in args.clients.split(",")]
    args.models = [m for m in args.models.split(",") if m]
    if not Path(args.dir).is_dir():
        parser.error(f"model directory {args.dir!r} does not exist")
    rows, memory, notes = run(args)
    print(markdown(rows, memory, notes, args))
    if args.json:
        write_json(args.json, {
            "rows": [dict(backend=b, model=m, signature=s, clients=c, **st)
                     for b, m, s, c, st in rows],
            "memory": [dict(backend=b, rss_mib_start_then_after_each_pass=r) for b, r in memory],
            "notes": notes})


if __name__ == "__main__":
    main()
