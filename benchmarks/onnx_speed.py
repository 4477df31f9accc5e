"""ONNX speed (issue 12): SavedModel vs onnxruntime float and int8 (and tf2onnx's graph).

For a trained attention translator run, exports `translate_ids` several ways
for each decoding setting (greedy = beam 1, and beam 5; length penalty 0.6):

- `saved_model`: the SavedModel signature (`keras_seq.export.export_translator`,
  onnx=False);
- `onnx_rnn`: `keras_seq.export.onnx_rnn.build_ids_graph` (the float graph the
  export writes);
- `int8`: that graph through `keras_seq.export.quantize.quantize_graph` (what
  `keras-seq export --quantize int8` writes beside it);
- `tf2onnx` (with `--tf2onnx`): tf2onnx's conversion of the same traced
  function (the graph keras_seq exported before `onnx_rnn`).

All take the per-request decoding inputs (fed the export's defaults). It times
them in one process, calls alternating on the same inputs: batch 1 (one
sentence per call) and batch 32 (32 consecutive test sentences,
right-padded), median and p90 latency per call, sentences/s and the mean
process CPU time per call (the work done, which the machine's load changes
less than the wall clock), and counts the calls whose ids equal the
SavedModel's. BLEU (sacrebleu) of each backend's
batch-1 translations (ids decoded, no `<unk>` replacement) against the test
references. `--profile` also runs onnxruntime's profiler over the beam-5
batch-1 calls of each ONNX graph and prints the time per op type (Loop bodies
included) and the costliest nodes.

    python benchmarks/onnx_speed.py runs/translator --sentences 100 --profile \
        --json benchmarks/onnx_speed.json

`--threads` (default 1) sets onnxruntime's intra-op threads and TensorFlow's
intra- and inter-op threads alike.
"""

import collections
import glob
import json
import os
import tempfile
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import (argument_parser, kernel_times, load_average, load_average_line,
                     write_json)

import numpy as np

BACKENDS = ("saved_model", "tf2onnx", "onnx_rnn", "int8")


def _pad(rows):
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _session(path, threads, profile_prefix=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _export(model, src_tok, tgt_tok, beam, max_length, to, tf2onnx):
    """The SavedModel's `translate_ids`, the ONNX files, their build times and
    the per-request settings fed to all (the export's defaults)."""
    import onnx
    import tensorflow as tf

    from keras_seq import decoding
    from keras_seq import export as export_lib
    from keras_seq.export import onnx as onnx_graphs
    from keras_seq.export import onnx_rnn
    from keras_seq.export import quantize
    from keras_seq.export.signatures import ServingFunctions

    path = export_lib.export_translator(
        model, src_tok, tgt_tok, os.path.join(to, f"beam{beam}"), beam_size=beam,
        length_penalty=0.6, max_length=max_length, onnx=False,
    )
    fns = ServingFunctions(model, max_length, decoding.BeamSearch(beam, length_penalty=0.6))
    settings = {name: np.asarray(entry["default"], entry["dtype"])
                for name, entry in fns.settings().items()}
    signature = [dict(fns.id_signature()[0], **fns.settings_signature())]
    files = {name: os.path.join(to, f"beam{beam}_{name}.onnx")
             for name in BACKENDS[1:] if tf2onnx or name != "tf2onnx"}
    seconds = {}
    if tf2onnx:
        start = time.perf_counter()
        onnx_graphs.convert(tf.function(fns.id_level, input_signature=signature), signature,
                            files["tf2onnx"], 17, {})
        seconds["tf2onnx"] = time.perf_counter() - start
    start = time.perf_counter()
    onnx.save(onnx_rnn.build_ids_graph(fns, 17), files["onnx_rnn"])
    seconds["onnx_rnn"] = time.perf_counter() - start
    start = time.perf_counter()
    quantize.quantize_graph(files["onnx_rnn"], files["int8"])
    seconds["int8"] = time.perf_counter() - start
    return tf.saved_model.load(path).signatures["translate_ids"], files, seconds, settings


def _ort_call(session, settings):
    """ids of `session` on source ids `x`, with the scalar `settings` fed too."""
    names = [i.name for i in session.get_inputs()]
    feed = {n: settings[n.split(":")[0]] for n in names if n.split(":")[0] in settings}
    source = next(n for n in names if n.split(":")[0] not in settings)
    outputs = [o.name for o in session.get_outputs()]
    ids_at = [o.split(":")[0] for o in outputs].index("ids")
    return lambda x: session.run(outputs, {source: x, **feed})[ids_at]


def _time(calls, inputs, repeat):
    """Alternating calls; returns ({backend: [seconds]}, {backend: [process CPU
    seconds]}, {backend: equal-ids count}, {backend: [ids of each input]} of
    the first pass)."""
    times = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    equal = {name: 0 for name in calls}
    outputs = {name: [] for name in calls}
    for name, call in calls.items():  # warm-up
        call(inputs[0])
    for r in range(repeat):
        for x in inputs:
            reference = None
            for name, call in calls.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                ids = np.asarray(call(x))
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
                reference = ids if reference is None else reference
                equal[name] += int(np.array_equal(ids, reference))
                if r == 0:
                    outputs[name].append(ids)
    return times, cpu, equal, outputs


def _profile(path, inputs, settings, threads, prefix):
    """Runs `inputs` through a profiling session; returns ({op type: ms per
    call}, {the 10 costliest nodes: ms per call})."""
    session = _session(path, threads, prefix)
    call = _ort_call(session, settings)
    for x in inputs:
        call(x)
    totals, nodes = collections.Counter(), collections.Counter()
    for op, node, ms in kernel_times(session):
        totals[op] += ms
        nodes[node] += ms
    per_call = {op: round(ms / len(inputs), 3) for op, ms in totals.most_common()}
    return per_call, {n: round(ms / len(inputs), 3) for n, ms in nodes.most_common(10)}


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("run", help="a trained translator run directory")
    parser.add_argument("--sentences", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat32", type=int, default=3, help="passes over the batches of 32")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--tf2onnx", action="store_true", help="also time tf2onnx's graph")
    parser.add_argument("--json", help="write the results there")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from keras_seq import metrics
    from keras_seq import pipelines

    translator = pipelines.Translator.from_run(args.run)
    model = translator.model
    pairs = pipelines.translation_training.load_split(translator.run_config, "test")
    encoded, _ = translator.prepare([s for s, _ in pairs[: args.sentences]])
    rows = [e for e in encoded if e is not None]
    references = [t for (_, t), e in zip(pairs, encoded) if e is not None]
    singles = [np.array([r], np.int32) for r in rows]
    batches = [_pad(rows[i : i + 32]) for i in range(0, len(rows) - 31, 32)]
    out = {"run": args.run, "sentences": len(rows), "threads": args.threads,
           "max_length": args.max_length, "load_before": load_average(), "results": [],
           "profiles": {}, "top_nodes": {}, "bleu": {}}
    with tempfile.TemporaryDirectory() as to:
        for beam in (1, 5):
            saved, files, seconds, settings = _export(model, translator.source_tokenizer,
                                            translator.target_tokenizer, beam,
                                            args.max_length, to, args.tf2onnx)
            feed = {k: tf.constant(v) for k, v in settings.items()}
            calls = {"saved_model": lambda x: saved(source_ids=tf.constant(x), **feed)["ids"]}
            for name in files:
                calls[name] = _ort_call(_session(files[name], args.threads), settings)
            for batch, inputs, repeat in ((1, singles, 1), (32, batches, args.repeat32)):
                times, cpu, equal, outputs = _time(calls, inputs, repeat)
                base = np.median(times["saved_model"])
                base_cpu = np.sum(cpu["saved_model"])
                if batch == 1:
                    out["bleu"][f"beam {beam}"] = bleu = {
                        name: round(metrics.translation_scores(
                            [translator.target_tokenizer.decode(ids.tolist())[0]
                             for ids in outputs[name]], references).bleu, 2)
                        for name in calls}
                    print(f"BLEU beam {beam}, {len(references)} test sentences: {bleu}",
                          flush=True)
                for name in calls:
                    ms = np.array(times[name]) * 1000
                    row = {
                        "beam": beam, "batch": batch, "backend": name,
                        "median_ms": round(float(np.median(ms)), 2),
                        "p90_ms": round(float(np.percentile(ms, 90)), 2),
                        "sentences_per_s": round(batch * len(ms) / (ms.sum() / 1000), 1),
                        "speedup_vs_saved_model": round(float(base / np.median(times[name])), 2),
                        # Process CPU time (all threads): the work, whatever the load.
                        "cpu_ms": round(float(np.mean(cpu[name]) * 1000), 2),
                        "cpu_speedup_vs_saved_model": round(float(base_cpu / np.sum(cpu[name])),
                                                            2),
                        "same_ids": f"{equal[name]}/{len(ms)}",
                        "build_s": round(seconds.get(name, 0.0), 1),
                        "load": load_average(),
                    }
                    out["results"].append(row)
                    print(json.dumps(row), flush=True)
            if args.profile and beam == 5:
                for name in files:
                    profile, top_nodes = _profile(files[name], singles, settings, args.threads,
                                                  os.path.join(to, f"profile_{name}"))
                    out["profiles"][name], out["top_nodes"][name] = profile, top_nodes
                    # A Loop's own time includes its body's nodes, listed too.
                    total = sum(ms for op, ms in profile.items() if op != "Loop")
                    top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(profile.items())[:12])
                    print(f"profile {name} beam 5 batch 1: {total:.2f} ms of node kernels "
                          f"per call (Loops excluded); top ops (ms/call): {top}", flush=True)
                    print("  top nodes: " + ", ".join(
                        f"{n} {ms:.2f}" for n, ms in top_nodes.items()), flush=True)
            for path in glob.glob(os.path.join(to, "*.onnx")):
                os.remove(path)
    out["load_after"] = load_average()
    print(load_average_line())
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
