"""Overload of the model server: answered, refused and p50/p99 at 32 and 64 clients.

Starts `python -m keras_seq.serving DIR` on a free loopback port with the
overload options given here (`--workers`, `--max-queue`, `--queue-timeout-ms`,
`--request-timeout-ms`), then for each concurrency level runs that many
clients at once, each sending `--requests` translation requests one after
the other (a closed loop, one sentence per request, cycling through a few
English sentences). A client refused with 503 waits as its `Retry-After`
header says (capped by `--max-backoff`) before its next request; a refused
request is counted, not retried. Every request ends as exactly one of:
answered (200), refused (503, overloaded), timed out (504), another HTTP
error, or lost (no HTTP answer at all: must stay 0).

The first level runs on a cold server (just started: models loaded and
warmed up, no request served yet), as a new replica would see it; the table
says so. Prints a markdown table (with the machine's load average) to paste
into benchmarks/RESULTS.md.

Usage:

    python benchmarks/serving_overload.py exported/ --model fra
    python benchmarks/serving_overload.py /tmp/exp --model fra --clients 32,64 \\
        --requests 10 --max-queue 16 --queue-timeout-ms 2000

Bounded: at most clients x `--requests` requests per level, each client stops
after `--duration` seconds, all on 127.0.0.1. The clients are spread over
`--client-processes` processes (4): one Python process driving 64 connections
on a busy machine measures its own scheduling delays more than the server's.
"""

import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import ROOT, argument_parser, load_average_line, write_json
from serving import ServerProcess

import httpx
import numpy as np

SENTENCES = ["I am cold.", "Where is the station?", "He likes to read books.",
             "We will go home tomorrow.", "She is my sister.", "Open the window, please."]
OUTCOMES = ("answered", "refused", "timed_out", "other_error", "lost")
# The 503s by cause (see keras_seq.serving.admission), counted besides "refused".
REFUSALS = {"already waiting": "queue_full", "of work": "predicted_wait",
            "came free within": "waited_too_long"}


def _refusal_kind(message):
    return next((kind for text, kind in REFUSALS.items() if text in message), "other_503")


async def _client(http, path, args, index, deadline, record):
    for i in range(args.requests):
        if time.perf_counter() > deadline:
            return
        sentence = SENTENCES[(index + i) % len(SENTENCES)]
        body = {"signature_name": args.signature, "instances": [sentence]}
        start = time.perf_counter()
        try:
            response = await http.post(path, json=body)
        except httpx.HTTPError as error:
            record("lost", time.perf_counter() - start, repr(error)[:120])
            continue
        seconds = time.perf_counter() - start
        status = response.status_code
        if status == 200:
            record("answered", seconds)
        elif status == 503:
            message = response.json().get("error", "")
            record("refused", seconds, message[:120])
            record(_refusal_kind(message), seconds)
            retry = float(response.headers.get("retry-after", "1"))
            await asyncio.sleep(min(retry, args.max_backoff))
        elif status == 504:
            record("timed_out", seconds, response.json().get("error", "")[:120])
        else:
            record("other_error", seconds, f"{status} {response.text[:120]}")


async def _clients(url, path, indices, args):
    """Runs the clients `indices` in this process: ({outcome: [seconds]}, samples)."""
    seconds = {outcome: [] for outcome in (*OUTCOMES, *REFUSALS.values(), "other_503")}
    samples = {}

    def record(outcome, elapsed, message=None):
        seconds[outcome].append(elapsed)
        if message and outcome not in samples:
            samples[outcome] = message

    count = len(indices)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(args.client_timeout),
                                 limits=limits) as http:
        deadline = time.perf_counter() + args.duration
        await asyncio.gather(*(_client(http, path, args, i, deadline, record)
                               for i in indices))
    return seconds, samples


def _process(job):
    url, path, indices, args = job
    return asyncio.run(_clients(url, path, indices, args))


def _level(url, path, clients, args):
    """Runs `clients` concurrent clients over `--client-processes` processes."""
    processes = max(1, min(args.client_processes, clients))
    jobs = [(url, path, list(range(clients))[i::processes], args) for i in range(processes)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.map(_process, jobs)
    elapsed = time.perf_counter() - start
    seconds = {outcome: sum((part[0][outcome] for part in parts), []) for outcome in parts[0][0]}
    samples = {}
    for _, part_samples in parts:
        for outcome, message in part_samples.items():
            samples.setdefault(outcome, message)
    answered = np.array(seconds["answered"]) * 1000.0
    refused = np.array(seconds["refused"]) * 1000.0
    return {
        "clients": clients,
        "client_processes": processes,
        **{outcome: len(values) for outcome, values in seconds.items()},
        "seconds": round(elapsed, 2),
        "p50_ms": _percentile(answered, 50),
        "p99_ms": _percentile(answered, 99),
        "max_ms": _percentile(answered, 100),
        "refusal_p99_ms": _percentile(refused, 99),
        "samples": samples,
    }


def _percentile(values, q):
    return round(float(np.percentile(values, q)), 1) if values.size else None


def _server_args(args):
    flags = ["--max-queue", args.max_queue, "--queue-timeout-ms", args.queue_timeout_ms,
             "--request-timeout-ms", args.request_timeout_ms]
    if args.workers is not None:
        flags += ["--workers", args.workers]
    if args.no_warmup:
        flags.append("--no-warmup")
    return [str(flag) for flag in flags]


def _server_latencies(server):
    """The `latency_ms` of every predict answered 200, from the server's own log."""
    server.log.flush()
    latencies = []
    for line in Path(server.log.name).read_text().splitlines():
        if '"event": "request"' in line and ":predict" in line:
            record = json.loads(line)
            if record.get("status") == 200:
                latencies.append(record["latency_ms"])
    return latencies


def run(args):
    loads = [load_average_line()]
    server = ServerProcess(args.dir, False, args.startup_timeout, _server_args(args))
    rows = []
    try:
        path = f"/v1/models/{args.model}:predict"
        for index, clients in enumerate(args.clients):
            before = len(_server_latencies(server))
            row = _level(server.url, path, clients, args)
            inside = np.array(_server_latencies(server)[before:])
            row["server_p50_ms"] = _percentile(inside, 50)  # as the server's log saw them
            row["server_p99_ms"] = _percentile(inside, 99)
            row["server"] = "cold" if index == 0 else "warm"
            rows.append(row)
            print(f"  x{clients} ({row['server']}): " + json.dumps(row), file=sys.stderr)
        loads.append(load_average_line())
    finally:
        server.stop()
    return {"startup_seconds": round(server.startup_seconds, 1), "rows": rows, "loads": loads}


def markdown(result, args):
    def cell(value):
        return "n/a" if value is None else f"{value:g}"

    lines = [
        f"Overload: `python benchmarks/serving_overload.py {' '.join(args.argv)}`".rstrip(),
        "",
        f"Server flags: `{' '.join(_server_args(args))}` (workers: "
        f"{args.workers or 'default, 4 per CPU'}); {os.cpu_count()} CPU cores; the server "
        f"answered /healthz {result['startup_seconds']} s after it started (models loaded"
        f"{'' if args.no_warmup else ' and warmed up'}). Each client sends {args.requests} "
        f"requests in a closed loop, honouring Retry-After (capped at {args.max_backoff:g} s) "
        f"after a 503; the clients run in {args.client_processes} processes.",
        "",
        "| clients | server | answered | refused 503 | timed out 504 | other | lost "
        "| p50 ms | p99 ms | max ms | p99 of refusals ms | in-server p50 / p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['clients']} | {r['server']} | {r['answered']} | {r['refused']} | "
            f"{r['timed_out']} | {r['other_error']} | {r['lost']} | {cell(r['p50_ms'])} | "
            f"{cell(r['p99_ms'])} | {cell(r['max_ms'])} | {cell(r['refusal_p99_ms'])} | "
            f"{cell(r['server_p50_ms'])} / {cell(r['server_p99_ms'])} |")
    lines += ["", "Refusals by cause (queue full / predicted wait past the queue timeout / waited "
              "the whole queue timeout): " + "; ".join(
                  f"{r['clients']} clients: {r['queue_full']} / {r['predicted_wait']} / "
                  f"{r['waited_too_long']}" for r in result["rows"]) + "."]
    lines += ["", f"Machine load before / after: {result['loads'][0]} / {result['loads'][-1]}."]
    return "\n".join(lines)


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("dir", nargs="?", default=str(Path(ROOT) / "exported"),
                        help="model base directory (default: exported/)")
    parser.add_argument("--model", default="fra", help="the translator's model name")
    parser.add_argument("--signature", default="translate")
    parser.add_argument("--clients", default="32,64", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--duration", type=float, default=120.0,
                        help="a client sends nothing more after this many seconds")
    parser.add_argument("--max-backoff", type=float, default=2.0,
                        help="longest Retry-After a client honours, in seconds")
    parser.add_argument("--client-timeout", type=float, default=120.0)
    parser.add_argument("--client-processes", type=int, default=4,
                        help="spread the clients over this many processes (one Python "
                             "process driving 64 connections measures its own delays)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--queue-timeout-ms", type=int, default=2000)
    parser.add_argument("--request-timeout-ms", type=int, default=30000)
    parser.add_argument("--no-warmup", action="store_true",
                        help="start the server with --no-warmup (to see a cold server's first "
                             "requests wait for graph set-up)")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--json", default=None, help="also write the raw results here")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    args.clients = [int(c) for c in args.clients.split(",")]
    if not Path(args.dir).is_dir():
        parser.error(f"model directory {args.dir!r} does not exist")
    result = run(args)
    print(markdown(result, args))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
