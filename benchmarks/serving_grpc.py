"""REST vs gRPC: throughput and latency of one-sentence translation on `keras-seq serve`.

Starts `python -m keras_seq.serving DIR --grpc-port P` once (`serving.ServerProcess`)
and, at each concurrency level (`--clients`), sends the same one-sentence request
to the same signature over REST (httpx, `serving._drive`: TF Serving's columnar
JSON) and over gRPC (grpc.aio on one channel, TF Serving's `PredictionService`
stub, a `PredictRequest` built with `tf.make_tensor_proto`), for `--duration`
seconds each. REST and gRPC alternate, `--rounds` times per level (the order
flips every round), so that both see the same machine load; the table gives
every round, and the summary line the gRPC/REST ratios over all rounds. On a
shared machine the CPU time per answered request, of the server process and of
this client process, is the steadier measure of what each protocol costs; the
server's own `latency_ms` log fields (in-server p50/p99) tell its share of the
latency from the client's.
Before measuring, one request over each protocol checks that both answer the
same translation.

Usage:

    keras-seq export RUN --to /tmp/bench/fra-eng
    python benchmarks/serving_grpc.py /tmp/bench --model fra-eng --clients 1,32

Everything stays on 127.0.0.1.
"""

import asyncio
import json
import os
import shlex
import sys
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import argument_parser, load_average_line, write_json

import grpc
import httpx
import numpy as np
import tensorflow as tf
from serving import ServerProcess, _drive, _fmt, _free_port
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def _cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_latencies(server, offset):
    """The `latency_ms` of the predicts the server answered, from its log past byte
    `offset` (the REST and the gRPC lines alike); and the log's new end."""
    with open(server.log.name, "rb") as log:
        log.seek(offset)
        data = log.read()
    latencies = []
    for line in data.decode("utf-8", "replace").splitlines():
        if '"event": "request"' in line:
            record = json.loads(line)
            if record.get("status") in (200, "OK") and (
                    record.get("method") == "Predict" or ":predict" in record.get("path", "")):
                latencies.append(record["latency_ms"])
    return latencies, offset + len(data)


def _grpc_request(args, input_name):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    request.model_spec.signature_name = args.signature
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto([args.text]))
    return request


async def _drive_grpc(target, request, clients, duration, max_requests):
    """`serving._drive` over gRPC: `clients` concurrent loops for `duration` seconds."""
    latencies, failed, errors = [], 0, []
    async with grpc.aio.insecure_channel(target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        for _ in range(2):  # warm-up, as `_drive`
            await predict(request, timeout=120.0)
        start = time.perf_counter()
        deadline = start + duration
        budget = [max_requests]

        async def loop():
            nonlocal failed
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    await predict(request, timeout=120.0)
                    latencies.append(time.perf_counter() - t0)
                except grpc.RpcError as error:
                    failed += 1
                    if len(errors) < 3:
                        errors.append(f"{error.code().name} {error.details()[:160]}")

        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000.0
    return {
        "requests": len(latencies) + failed,
        "ok": len(latencies),
        "failed": failed,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "errors": errors,
    }


def _same_answer(server, target, path, body, request):
    """One request over each protocol: both give the same translation (a list of str)."""
    rest = httpx.post(server.url + path, json=body, timeout=120.0).json()["outputs"]

    async def one():
        async with grpc.aio.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            return await stub.Predict(request, timeout=120.0)

    response = asyncio.run(one())
    over_grpc = {name: tf.make_ndarray(proto).tolist() for name, proto in response.outputs.items()}
    over_grpc = {name: [v.decode() if isinstance(v, bytes) else v for v in value]
                 for name, value in over_grpc.items()}
    if over_grpc != rest:
        raise RuntimeError(f"REST and gRPC disagree: {rest} vs {over_grpc}")
    return rest


def run(args):
    grpc_port = _free_port()
    # What is measured is the protocol, not the admission: no request waits long enough
    # to be refused (`--max-queue`, `--queue-timeout-ms`), unless `--server-args` says so.
    server = ServerProcess(args.dir, False, args.startup_timeout,
                           extra_args=["--grpc-port", str(grpc_port)] + args.server_args.split())
    target = f"127.0.0.1:{grpc_port}"
    rows = []
    try:
        meta = httpx.get(f"{server.url}/v1/models/{args.model}/metadata", timeout=60.0).json()
        inputs = meta["metadata"]["signature_def"]["signature_def"][args.signature]["inputs"]
        (input_name,) = inputs  # a one-input (sentences) signature
        path = f"/v1/models/{args.model}:predict"
        body = {"signature_name": args.signature, "inputs": {input_name: [args.text]}}
        request = _grpc_request(args, input_name)
        answer = _same_answer(server, target, path, body, request)
        print(f"  both answer: {json.dumps(answer, ensure_ascii=False)[:200]}", file=sys.stderr)
        offset = _server_latencies(server, 0)[1]
        for clients in args.clients:
            for round_index in range(args.rounds):
                order = ("rest", "grpc") if round_index % 2 == 0 else ("grpc", "rest")
                for protocol in order:
                    if protocol == "rest":
                        coro = _drive(server.url, path, body, clients, args.duration,
                                      args.max_requests)
                    else:
                        coro = _drive_grpc(target, request, clients, args.duration,
                                           args.max_requests)
                    server_cpu, client_cpu = _cpu_seconds(server.proc.pid), time.process_time()
                    stats = asyncio.run(coro)
                    # CPU per answered request, of the server and of this (client) process:
                    # what each protocol costs, whatever share of the cores it got.
                    answered = max(stats["ok"], 1)
                    stats["server_cpu_ms"] = 1000 * (
                        _cpu_seconds(server.proc.pid) - server_cpu) / answered
                    stats["client_cpu_ms"] = 1000 * (time.process_time() - client_cpu) / answered
                    time.sleep(0.5)  # the server's last log lines
                    inside, offset = _server_latencies(server, offset)
                    stats["server_p50_ms"] = float(np.percentile(inside, 50)) if inside else None
                    stats["server_p99_ms"] = float(np.percentile(inside, 99)) if inside else None
                    rows.append((protocol, clients, round_index + 1, stats))
                    print(f"  {protocol:4s} x{clients} round {round_index + 1}: "
                          f"{stats['rps']:.1f} req/s p50 {stats['p50_ms']:.1f} ms "
                          f"p99 {stats['p99_ms']:.1f} ms failed {stats['failed']} CPU/req "
                          f"server {stats['server_cpu_ms']:.1f} client {stats['client_cpu_ms']:.1f} ms "
                          f"{stats['errors'][:1]}", file=sys.stderr)
    finally:
        server.stop()
    return rows, answer


def markdown(rows, args, loads):
    lines = [
        f"`python benchmarks/serving_grpc.py {shlex.join(args.argv)}`".rstrip(),
        "",
        f"model {args.model}, signature {args.signature}, one sentence per request "
        f"({args.text!r}), {args.duration:g} s per cell; {loads[0]} before, {loads[1]} after.",
        "",
        "| clients | round | protocol | requests | req/s | p50 ms | p99 ms | failed "
        "| in-server p50 / p99 ms | server CPU ms/req | client CPU ms/req |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for protocol, clients, round_index, s in rows:
        lines.append(f"| {clients} | {round_index} | {protocol} | {s['requests']} | "
                     f"{_fmt(s['rps'])} | {_fmt(s['p50_ms'])} | {_fmt(s['p99_ms'])} | "
                     f"{s['failed']} | {_fmt(s['server_p50_ms'])} / {_fmt(s['server_p99_ms'])} | "
                     f"{_fmt(s['server_cpu_ms'])} | {_fmt(s['client_cpu_ms'])} |")
    lines.append("")
    for clients in args.clients:
        def total(protocol, key):
            cells = [s for p, c, _, s in rows if p == protocol and c == clients]
            return sum(s[key] for s in cells), float(np.median([s["p50_ms"] for s in cells]))

        def cpu(protocol, key):
            cells = [s for p, c, _, s in rows if p == protocol and c == clients]
            return sum(s[key] * s["ok"] for s in cells) / max(sum(s["ok"] for s in cells), 1)

        (grpc_ok, grpc_p50), (rest_ok, rest_p50) = total("grpc", "ok"), total("rest", "ok")
        lines.append(
            f"- {clients} client(s): gRPC/REST throughput {grpc_ok / max(rest_ok, 1):.2f}x, "
            f"median p50 {grpc_p50:.1f} vs {rest_p50:.1f} ms ({grpc_p50 / rest_p50:.2f}x); "
            f"server CPU per request {cpu('grpc', 'server_cpu_ms'):.1f} vs "
            f"{cpu('rest', 'server_cpu_ms'):.1f} ms, client {cpu('grpc', 'client_cpu_ms'):.1f} "
            f"vs {cpu('rest', 'client_cpu_ms'):.1f} ms")
    return "\n".join(lines)


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("dir", help="model base directory holding the translator")
    parser.add_argument("--model", default="fra-eng", help="model name (default fra-eng)")
    parser.add_argument("--signature", default="translate",
                        help="a signature with one string input (default translate)")
    parser.add_argument("--text", default="i am a cat .", help="the sentence sent")
    parser.add_argument("--clients", default="1,32", help="comma-separated concurrency levels")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per cell")
    parser.add_argument("--rounds", type=int, default=2, help="REST/gRPC alternations per level")
    parser.add_argument("--max-requests", type=int, default=100_000,
                        help="upper bound of requests per cell")
    parser.add_argument("--server-args", default="--max-queue 1024 --queue-timeout-ms 60000 "
                        "--request-timeout-ms 120000", help="more flags for the server")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--json", default=None, help="also write the raw results here")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    args.clients = [int(c) for c in args.clients.split(",")]
    before = load_average_line()
    rows, answer = run(args)
    loads = (before, load_average_line())
    print(markdown(rows, args, loads))
    if args.json:
        write_json(args.json, {
            "rows": [dict(protocol=p, clients=c, round=r, **s) for p, c, r, s in rows],
            "answer": answer, "load": loads})


if __name__ == "__main__":
    main()
