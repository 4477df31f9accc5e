"""The export's SavedModel vs its float and int8 ONNX graphs (issue 12 item 3): latency and BLEU.

    python benchmarks/onnx_int8.py RUN --export DIR [--sentences 60] [--json FILE]

Exports RUN with `Translator.export(..., quantize="int8")` into DIR (unless
DIR/onnx/int8/ exists; the export records the BLEU delta on the run's
validation pairs in DIR/onnx/export.json), then translates test sentences of
the run one at a time (batch 1, the export's beam search), calling the
SavedModel and the float and int8 graphs alternately in this process, one
thread each (onnxruntime intra-op, TensorFlow intra and inter-op):

- `translate` (string in, string out: tokenization, beam search, `<unk>`
  replacement, detokenization: the SavedModel signature, `translate.onnx`)
  and `translate_ids` (ids only);
- BLEU (sacrebleu) of the three texts on those sentences, and how many
  ONNX texts equal the SavedModel's.

Prints JSON (and writes it with `--json FILE`), with the load average.
"""

import json
import os
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import argument_parser, load_average, write_json

import numpy as np


def _percentiles(seconds):
    ms = np.asarray(seconds) * 1000
    return {"median_ms": round(float(np.median(ms)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "sentences_per_s": round(float(len(ms) / (ms.sum() / 1000)), 2)}


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("run")
    parser.add_argument("--export", required=True)
    parser.add_argument("--sentences", type=int, default=60)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from keras_seq import export
    from keras_seq import metrics
    from keras_seq.export.onnx import make_session, run_session
    from keras_seq.pipelines import Translator

    translator = Translator.from_run(args.run)
    started = time.perf_counter()
    if not os.path.isdir(os.path.join(args.export, "onnx", "int8")):
        translator.export(args.export, max_length=args.max_length, parity_sentences=[],
                          quantize="int8")
    export_seconds = time.perf_counter() - started
    version = max((d for d in os.listdir(args.export) if d.isdigit()), key=int)
    saved = tf.saved_model.load(os.path.join(args.export, version))
    settings = export.decoding_settings(os.path.join(args.export, version))

    with open(os.path.join(args.export, "onnx", "export.json"), encoding="utf-8") as f:
        info = json.load(f)
    pairs = [(s, t) for s, t in translator.split("test")
             if 8 <= len(translator.source_tokenizer.encode([s])[0]) <= 18][: args.sentences]
    encoded = [translator.source_tokenizer.encode([s], add_eos=True)[0] for s, _ in pairs]

    def saved_call(graph):
        function = saved.signatures[graph]
        name = "sentences" if graph == "translate" else "source_ids"
        return lambda feed: {k: v.numpy() for k, v in function(
            **{name: tf.constant(feed[name])}, **settings).items()}

    sessions = {("saved_model", g): saved_call(g) for g in ("translate", "translate_ids")}
    for precision, folder in (("float", "onnx"), ("int8", "onnx/int8")):
        for graph in ("translate", "translate_ids"):
            path = os.path.join(args.export, folder, graph + ".onnx")
            session = make_session(path, threads=1, extensions=graph == "translate")
            sessions[precision, graph] = lambda feed, s=session: run_session(s, feed)

    def feeds(graph, sentence, ids):
        return ({"sentences": np.array([sentence], object)} if graph == "translate"
                else {"source_ids": np.array([ids], np.int32)})

    for (_, graph), call in sessions.items():  # warm-up
        call(feeds(graph, pairs[0][0], encoded[0]))
    times = {key: [] for key in sessions}
    cpu = {key: [] for key in sessions}
    texts = {key: [] for key in sessions if key[1] == "translate"}
    loads = [load_average()]
    for (sentence, _), ids in zip(pairs, encoded):
        for key, call in sessions.items():
            feed = feeds(key[1], sentence, ids)
            start, start_cpu = time.perf_counter(), time.process_time()
            out = call(feed)
            times[key].append(time.perf_counter() - start)
            cpu[key].append(time.process_time() - start_cpu)
            if key in texts:
                text = out["translations"][0]
                texts[key].append(text.decode() if isinstance(text, bytes) else str(text))
    loads.append(load_average())
    references = [t for _, t in pairs]
    result = {
        "run": args.run,
        "sentences": len(pairs),
        "export_seconds": round(export_seconds, 1),
        "decoding": info["decoding"],
        "int8_export": info.get("int8"),
        "latency": {f"{p} {g}": dict(_percentiles(t), cpu_ms=round(
            float(np.mean(cpu[p, g]) * 1000), 2)) for (p, g), t in times.items()},
        "speedup_vs_saved_model": {
            f"{p} {g}": round(float(np.median(times["saved_model", g]) / np.median(times[p, g])), 2)
            for p in ("float", "int8") for g in ("translate", "translate_ids")},
        "cpu_speedup_vs_saved_model": {
            f"{p} {g}": round(float(np.sum(cpu["saved_model", g]) / np.sum(cpu[p, g])), 2)
            for p in ("float", "int8") for g in ("translate", "translate_ids")},
        "speedup_int8": {
            g: round(float(np.median(times["float", g]) / np.median(times["int8", g])), 2)
            for g in ("translate", "translate_ids")},
        "bleu_test": {p: round(metrics.translation_scores(t, references).bleu, 2)
                      for (p, _), t in texts.items()},
        "same_text_as_saved_model": {
            p: sum(a == b for a, b in zip(texts["saved_model", "translate"], texts[p, "translate"]))
            for p in ("float", "int8")},
        "load_average": loads,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
