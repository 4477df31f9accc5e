"""int8 vs float ONNX for a translator (issue 12 item 3): latency and BLEU.

    python benchmarks/onnx_int8.py RUN --export DIR [--sentences 60] [--json FILE]

Exports RUN with `Translator.export(..., quantize="int8")` into DIR (unless
DIR/onnx/int8/ exists; the export records the BLEU delta on the run's
validation pairs in DIR/onnx/export.json), then translates test sentences of
the run one at a time (batch 1, the export's beam search), calling the float
and the int8 graphs alternately in this process, one intra-op thread each:

- `translate.onnx` (string in, string out: tokenization, beam search,
  `<unk>` replacement, detokenization) and `translate_ids.onnx` (ids only);
- BLEU (sacrebleu) of both text graphs on those sentences.

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

    from keras_seq import metrics
    from keras_seq.export.onnx import make_session, run_session
    from keras_seq.pipelines import Translator

    translator = Translator.from_run(args.run)
    started = time.perf_counter()
    if not os.path.isdir(os.path.join(args.export, "onnx", "int8")):
        translator.export(args.export, max_length=args.max_length, parity_sentences=[],
                          quantize="int8")
    export_seconds = time.perf_counter() - started

    with open(os.path.join(args.export, "onnx", "export.json"), encoding="utf-8") as f:
        info = json.load(f)
    pairs = [(s, t) for s, t in translator.split("test")
             if 8 <= len(translator.source_tokenizer.encode([s])[0]) <= 18][: args.sentences]
    encoded = [translator.source_tokenizer.encode([s], add_eos=True)[0] for s, _ in pairs]
    sessions = {}
    for precision, folder in (("float", "onnx"), ("int8", "onnx/int8")):
        for graph in ("translate", "translate_ids"):
            path = os.path.join(args.export, folder, graph + ".onnx")
            sessions[precision, graph] = make_session(path, threads=1,
                                                      extensions=graph == "translate")
    for session in sessions.values():  # warm-up
        name = session.get_inputs()[0].name
        feed = (np.array([pairs[0][0]], object) if name == "sentences"
                else np.array([encoded[0]], np.int32))
        session.run(None, {name: feed})
    times = {key: [] for key in sessions}
    texts = {key: [] for key in sessions if key[1] == "translate"}
    loads = [load_average()]
    for (sentence, _), ids in zip(pairs, encoded):
        for key, session in sessions.items():
            feeds = ({"sentences": np.array([sentence], object)} if key[1] == "translate"
                     else {"source_ids": np.array([ids], np.int32)})
            start = time.perf_counter()
            out = run_session(session, feeds)
            times[key].append(time.perf_counter() - start)
            if key in texts:
                texts[key].append(str(out["translations"][0]))
    loads.append(load_average())
    references = [t for _, t in pairs]
    result = {
        "run": args.run,
        "sentences": len(pairs),
        "export_seconds": round(export_seconds, 1),
        "decoding": info["decoding"],
        "int8_export": info.get("int8"),
        "latency": {f"{p} {g}": _percentiles(t) for (p, g), t in times.items()},
        "speedup_int8": {
            g: round(float(np.median(times["float", g]) / np.median(times["int8", g])), 2)
            for g in ("translate", "translate_ids")},
        "bleu_test": {p: round(metrics.translation_scores(t, references).bleu, 2)
                      for (p, _), t in texts.items()},
        "same_text": sum(a == b for a, b in zip(texts["float", "translate"],
                                                texts["int8", "translate"])),
        "load_average": loads,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
