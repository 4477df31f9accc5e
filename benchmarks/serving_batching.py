"""Serving throughput and latency with request batching on vs off (issue 11).

Exports a language model and a translator (random weights, LSTM units 256 and
vocabularies of 5,000 words by default, beam 5, at most 20 tokens; SavedModel
and ONNX) unless DIR already holds them, then for each backend
starts the server twice as a subprocess (`--no-batching`, then batching with
the default bounds), and drives each model with 1, 8, 32 and 64 concurrent
clients sending one sentence each (`generate` / `translate` on the
SavedModels, `generate_ids` / `translate_ids` on the ONNX graphs, which take
ids). Prints a markdown table: requests/s, p50/p99 latency, failed requests,
rows per model call (from the server's /monitoring/prometheus/metrics), and
the server's RSS at start and at the end; then the issue's goal per
model and backend: throughput at 32 clients batched / unbatched (>= 3x), and
batched p99 at 32 clients against 2x the unbatched p50 at 1 client.

A second table (`--in-process`, on by default) leaves HTTP out: the same
signatures loaded in this process and called from 1, 8 and 32 threads, each
call one sentence, through the batched signature and the plain one, side by
side: what batching itself gains, apart from the HTTP server's per-request
cost.

Reuses benchmarks/serving.py's server process and client loop.

Usage:

    python benchmarks/serving_batching.py                       # temp dir, 3 s per cell
    python benchmarks/serving_batching.py /tmp/bexp --duration 5 --clients 1,8,32,64
"""

import asyncio
import os
import platform
import sys
import tempfile
from pathlib import Path

from _common import argument_parser, load_average_line, write_json

import httpx
import numpy as np
import serving as bench  # benchmarks/serving.py

WORDS = ("the a cat dog bird house garden apple man woman old young red green sat ate saw "
         "flew ran over under near on in with and but . !").split()
FRENCH = ("le la un une chat chien oiseau maison jardin pomme homme femme vieux jeune rouge "
          "vert mange voit court sur sous avec et mais . !").split()
SENTENCE_EN = "the old man saw a red bird"
SENTENCE_FR = "le vieux homme voit un oiseau rouge"


def _corpus(words, seed, vocab):
    """Sentences of `words` and of `vocab` made-up words (`w0`, `w1`, ...)."""
    rng = np.random.default_rng(seed)
    made_up = [f"w{i}" for i in range(vocab)]
    return ([" ".join(rng.choice(words, size=rng.integers(4, 12))) for _ in range(200)]
            + [" ".join(made_up[i:i + 10]) for i in range(0, vocab, 10)])


def _randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.3, size=w.shape).astype("float32")
                       for w in model.get_weights()])


def export_models(base, args):
    """Exports the LM (`lm`) and the translator (`fra-eng`) under `base`."""
    from keras_seq import export
    from keras_seq.models import AttentionSeq2Seq, RNNLanguageModel
    from keras_seq.text import WordTokenizer

    tokenizer = WordTokenizer().fit(_corpus(WORDS, 0, args.vocab))
    lm = RNNLanguageModel(tokenizer.vocab_size, embedding_dim=args.units // 2, units=args.units,
                          num_layers=1, stateful=False)
    _randomize(lm, 1)
    export.export_language_model(lm, tokenizer, base / "lm", max_length=args.max_length)
    source = WordTokenizer().fit(_corpus(FRENCH, 2, args.vocab))
    target = WordTokenizer().fit(_corpus(WORDS, 3, args.vocab))
    translator = AttentionSeq2Seq(source.vocab_size, target.vocab_size,
                                  embedding_dim=args.units // 2, units=args.units // 2,
                                  max_length=40)
    _randomize(translator, 4)
    export.export_translator(translator, source, target, base / "fra-eng", beam_size=args.beam,
                             length_penalty=0.6, max_length=args.max_length)
    print(f"exported: vocabularies {tokenizer.vocab_size} (LM), {source.vocab_size} -> "
          f"{target.vocab_size} (translator)", file=sys.stderr)
    return {"lm": tokenizer.encode([SENTENCE_EN])[0],
            "fra-eng": source.encode([SENTENCE_FR], add_eos=True)[0]}


def _bodies(backend, ids):
    """{model: (request body)}: one sentence (or its ids) per request."""
    if backend == "savedmodel":
        return {"lm": {"signature_name": "generate", "instances": [SENTENCE_EN]},
                "fra-eng": {"signature_name": "translate", "instances": [SENTENCE_FR]}}
    return {"lm": {"signature_name": "generate_ids",
                   "inputs": {"prompt_ids": [list(map(int, ids["lm"]))]}},
            "fra-eng": {"signature_name": "translate_ids",
                        "inputs": {"source_ids": [list(map(int, ids["fra-eng"]))]}}}


def _calls(url):
    """{model: (model calls, rows)} from the server's metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/monitoring/prometheus/metrics", timeout=30).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("keras_seq_serving_model_calls_total", "keras_seq_serving_batch_size_sum"):
                calls, rows = out.get(s.labels["model"], (0, 0))
                if s.name.endswith("calls_total"):
                    calls += s.value
                else:
                    rows += s.value
                out[s.labels["model"]] = (calls, rows)
    return out


def _hammer(call, arrays, threads, seconds):
    """Calls per second of `call(arrays)` from `threads` threads for `seconds`."""
    import threading
    import time

    counts = [0] * threads
    stop = time.monotonic() + seconds

    def loop(i):
        while time.monotonic() < stop:
            call(arrays)
            counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / seconds


def in_process(args, ids):
    """[(backend, model, signature, threads, alone/s, batched/s, rows per call)]."""
    from keras_seq.serving import batching
    from keras_seq.serving.backends import OnnxBackend, SavedModelBackend
    from keras_seq.serving.metrics import Metrics

    rows = []
    for backend in args.backends:
        for model, bodies in _bodies(backend, ids).items():
            path = args.dir / model
            if backend == "onnx":
                version = OnnxBackend().load(1, sorted((path / "onnx").glob("*.onnx")), None)
            else:
                version = SavedModelBackend().load(1, path / "1", None)
            name = bodies["signature_name"]
            if "instances" in bodies:
                # The one string input (the others are optional decoding settings).
                text = next(k for k, v in version.signatures[name].inputs.items()
                            if v.dtype == "string")
                arrays = {text: np.array([bodies["instances"][0].encode()], dtype=object)}
            else:
                arrays = {k: np.array(v, np.int32) for k, v in bodies["inputs"].items()}
            plain = version.signatures[name]
            metrics = Metrics()
            batching.install(version, model, batching.BatchOptions(), metrics)
            batched = version.signatures[name]
            for _ in range(3):
                plain(arrays)
            for threads in (1, 8, 32):
                before = _model_calls(metrics)
                alone = _hammer(plain, arrays, threads, args.duration)
                merged = _hammer(batched, arrays, threads, args.duration)
                calls, total = (a - b for a, b in zip(_model_calls(metrics), before))
                rows.append((backend, model, name, threads, alone, merged,
                             total / calls if calls else 0.0, os.getloadavg()[0]))
                print(f"  in-process {backend} {model}/{name} x{threads}: alone {alone:.1f}/s "
                      f"batched {merged:.1f}/s", file=sys.stderr)
    return rows


def _model_calls(metrics):
    from prometheus_client.parser import text_string_to_metric_families

    calls = rows = 0
    for family in text_string_to_metric_families(metrics.render()):
        for s in family.samples:
            calls += s.value if s.name == "keras_seq_serving_model_calls_total" else 0
            rows += s.value if s.name == "keras_seq_serving_batch_size_sum" else 0
    return calls, rows


def _drive_share(job):
    url, path, body, clients, duration, max_requests = job
    return asyncio.run(bench._drive(url, path, body, clients, duration, max_requests,
                                    keep_latencies=True))


def drive(url, path, body, clients, args):
    """`serving._drive` spread over up to `--client-processes` processes; merged stats.

    One Python process driving 64 connections on a busy machine measures its
    own scheduling delays more than the server's (as benchmarks/serving_overload.py).
    """
    import multiprocessing

    processes = max(1, min(args.client_processes, clients))
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    jobs = [(url, path, body, share, args.duration, args.max_requests // processes)
            for share in shares]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.map(_drive_share, jobs)
    latencies = np.array([ms for part in parts for ms in part["latencies_ms"]])
    seconds = max(part["seconds"] for part in parts)
    ok = len(latencies)
    return {
        "requests": sum(part["requests"] for part in parts),
        "ok": ok,
        "failed": sum(part["failed"] for part in parts),
        "seconds": seconds,
        "rps": ok / seconds if seconds > 0 else 0.0,
        "p50_ms": float(np.percentile(latencies, 50)) if ok else float("nan"),
        "p99_ms": float(np.percentile(latencies, 99)) if ok else float("nan"),
        "errors": [error for part in parts for error in part["errors"]][:3],
    }


def run(args, ids):
    rows, memory = [], []
    for backend in args.backends:
        bodies = _bodies(backend, ids)
        for batching in (False, True):
            extra = (["--batch-timeout-ms", str(args.batch_timeout_ms)] if batching
                     else ["--no-batching"])
            server = bench.ServerProcess(args.dir, backend == "onnx", args.startup_timeout, extra)
            try:
                start_rss = server.rss()
                for model, body in bodies.items():
                    path = f"/v1/models/{model}:predict"
                    probe = httpx.post(server.url + path, json=body, timeout=120)
                    if probe.status_code != 200:
                        raise RuntimeError(f"{backend} {model}: {probe.text[:300]}")
                    for clients in args.clients:
                        before = _calls(server.url).get(model, (0, 0))
                        stats = drive(server.url, path, body, clients, args)
                        after = _calls(server.url).get(model, (0, 0))
                        calls = after[0] - before[0]
                        stats["rows_per_call"] = (after[1] - before[1]) / calls if calls else 0.0
                        stats["load"] = os.getloadavg()[0]
                        rows.append((backend, model, batching, clients, stats))
                        print(f"  {backend:10s} {model:8s} batching={'on ' if batching else 'off'} "
                              f"x{clients}: {stats['rps']:.1f} req/s p50 {stats['p50_ms']:.1f} "
                              f"p99 {stats['p99_ms']:.1f} ms failed {stats['failed']} "
                              f"rows/call {stats['rows_per_call']:.1f} {stats['errors'][:1]}",
                              file=sys.stderr)
                memory.append((backend, batching, start_rss, server.rss()))
            finally:
                server.stop()
    return rows, memory


def markdown(rows, memory, local, args):
    fmt = bench._fmt
    lines = [
        f"`python benchmarks/serving_batching.py {' '.join(args.argv)}`".rstrip(),
        "",
        f"{args.duration:g} s per cell, one sentence per request, loopback HTTP, clients "
        f"spread over {args.client_processes} processes, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}; "
        "load = 1-minute load average at the end of the cell.",
        "",
        "| backend | model | batching | clients | requests | req/s | p50 ms | p99 ms | failed "
        "| rows/call | load |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, model, batching, clients, s in rows:
        lines.append(
            f"| {backend} | {model} | {'on' if batching else 'off'} | {clients} | "
            f"{s['requests']} | {fmt(s['rps'])} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | "
            f"{s['failed']} | {fmt(s['rows_per_call'])} | {fmt(s['load'], 2)} |")
    lines += ["", "| backend | batching | server RSS at start (MiB) | at the end |",
              "|---|---|---:|---:|"]
    for backend, batching, start, end in memory:
        lines.append(f"| {backend} | {'on' if batching else 'off'} | {fmt(start, 0)} | "
                     f"{fmt(end, 0)} |")
    cell = {(b, m, on, c): s for b, m, on, c, s in rows}
    lines += ["", "| backend | model | req/s at 32, on / off (goal >= 3) | p99 at 32 on, ms | "
              "2x p50 at 1 off, ms | p99 goal met |", "|---|---|---:|---:|---:|---|"]
    for backend, model in sorted({(b, m) for b, m, *_ in rows}):
        on, off, one = (cell.get((backend, model, True, 32)), cell.get((backend, model, False, 32)),
                        cell.get((backend, model, False, 1)))
        if not (on and off and one):
            continue
        ratio = on["rps"] / off["rps"] if off["rps"] else float("nan")
        bound = 2 * one["p50_ms"]
        lines.append(f"| {backend} | {model} | {fmt(ratio, 2)} | {fmt(on['p99_ms'])} | "
                     f"{fmt(bound)} | {'yes' if on['p99_ms'] <= bound else 'no'} |")
    if local:
        lines += ["", "In-process (no HTTP): calls per second from N threads, one sentence per "
                  "call, batching's default bounds:", "",
                  "| backend | model | signature | threads | alone /s | batched /s | ratio "
                  "| rows/call | load |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for backend, model, name, threads, alone, merged, per_call, load in local:
            lines.append(f"| {backend} | {model} | {name} | {threads} | {fmt(alone)} | "
                         f"{fmt(merged)} | {fmt(merged / alone if alone else float('nan'), 2)} "
                         f"| {fmt(per_call)} | {fmt(load, 2)} |")
    lines += ["", load_average_line()]
    return "\n".join(lines)


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("dir", nargs="?", default=None,
                        help="where the models are (exported there if missing; default: a "
                             "temporary directory)")
    parser.add_argument("--backends", default="savedmodel,onnx")
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per cell")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--max-length", type=int, default=20, help="tokens generated at most")
    parser.add_argument("--units", type=int, default=256,
                        help="LSTM units of the LM (the translator's encoder: half, "
                             "bidirectional)")
    parser.add_argument("--vocab", type=int, default=5000, help="made-up words in the vocabularies")
    parser.add_argument("--beam", type=int, default=5, help="the translator's beam size")
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--batch-timeout-ms", type=float, default=2.0,
                        help="the server's --batch-timeout-ms when batching (default: its default)")
    parser.add_argument("--client-processes", type=int, default=4,
                        help="client processes the concurrent clients are spread over")
    parser.add_argument("--no-in-process", dest="in_process", action="store_false",
                        help="skip the in-process table")
    parser.add_argument("--no-http", dest="http", action="store_false",
                        help="skip the HTTP table")
    parser.add_argument("--json", default=None, help="also write the raw results here")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        args.dir = Path(args.dir or tmp)
        ids_file = args.dir / "bench_ids.json"
        if ids_file.is_file():
            import json

            ids = json.loads(ids_file.read_text())
        else:
            ids = {k: list(map(int, v)) for k, v in export_models(args.dir, args).items()}
            write_json(ids_file, ids)
        rows, memory = run(args, ids) if args.http else ([], [])
        local = in_process(args, ids) if args.in_process else []
    print(markdown(rows, memory, local, args))
    if args.json:
        write_json(args.json, {
            "rows": [dict(backend=b, model=m, batching=on, clients=c, **s)
                     for b, m, on, c, s in rows],
            "memory": [dict(backend=b, batching=on, rss_start=s, rss_end=e)
                       for b, on, s, e in memory],
            "in_process": [dict(backend=b, model=m, signature=n, threads=t, alone_per_s=a,
                                batched_per_s=r, rows_per_call=c, load=load)
                           for b, m, n, t, a, r, c, load in local]})


if __name__ == "__main__":
    main()
