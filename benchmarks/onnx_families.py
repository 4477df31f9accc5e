"""ONNX per model family (issue 12, item 5): SavedModel vs onnxruntime float vs int8, each family.

For each trained run given (attention translator, Transformer translator, RNN
and Transformer language models), reads (or writes, as `keras-seq export RUN
--to DIR --quantize int8` does) its export and times, in one process, calls
alternating, same inputs, one intra-op thread each:

- translators: the `translate_ids` signature, greedy (`beam_size=1`) and beam 5
  (length penalty 0.6), on held-out test sentences: one per call (batch 1) and
  32 consecutive ones per call (batch 32); BLEU (sacrebleu) of each backend's
  batch-1 outputs against the references (ids decoded by the target
  tokenizer, no `<unk>` replacement);
- language models: `generate_ids`, greedy generation of `--generate-length`
  tokens after a `--prompt-tokens` prompt taken from the test text, and
  scoring: `initial_state` + one `step` per token over `--score-length` test
  tokens (a client of the exported graphs computing log-probabilities);
  perplexity of each backend over the scored chunks.

Backends: `saved_model` (the SavedModel's signatures), `onnx` (`onnx/*.onnx`),
`onnx_int8` (`onnx/int8/*.onnx`) and, for a Transformer translator with
`--ctranslate2`, `ct2_float` / `ct2_int8` (the model converted by
`ctranslate2_anchor.py`). "same" counts the calls whose ids equal the
SavedModel's. `--profile` adds onnxruntime's per-op profile of each family's
float (and int8) id-level graph on its batch-1 beam-5 / generation inputs.

    python benchmarks/onnx_families.py /tmp/grid/rnn /tmp/grid/tr /tmp/grid/lm /tmp/grid/tlm \
        --exports /tmp/grid/exported --sentences 50 --profile --ctranslate2 \
        --json benchmarks/onnx_families.json
"""

import collections
import json
import math
import os
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import (argument_parser, kernel_times, load_average, load_average_line,
                     write_json)

import numpy as np


def _pad(rows):
    out = np.zeros((len(rows), max(len(r) for r in rows)), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _latest(export):
    from keras_seq.export import writer

    return os.path.join(export, str(writer.versions(export)[-1]))


def _export(pipeline, run, to):
    """The export of `run` in `to` (written with int8 graphs when missing);
    returns (version directory, seconds spent exporting)."""
    from keras_seq.export import writer

    if writer.versions(to) and os.path.isdir(os.path.join(to, "onnx", "int8")):
        return _latest(to), 0.0
    start = time.perf_counter()
    path, _ = pipeline.export(to, quantize="int8")
    return path, time.perf_counter() - start


def _family(model):
    return {"AttentionSeq2Seq": "attention RNN", "Transformer": "Transformer translator",
            "RNNLanguageModel": "RNN LM", "TransformerLanguageModel": "Transformer LM"}[
                type(model).__name__]


# ---------------------------------------------------------------- backends


class _Graphs:
    """One backend's id-level, state and step functions over NumPy feeds."""

    def __init__(self, name, ids, state=None, step=None):
        self.name, self.ids, self.state, self.step = name, ids, state, step


def _saved_model_graphs(path, names):
    import tensorflow as tf

    from keras_seq.export import decoding_settings

    signatures = tf.saved_model.load(path).signatures
    defaults = decoding_settings(path)  # the settings a request leaves out, as in serving

    def wrap(signature):
        function = signatures[signature]
        inputs = function.structured_input_signature[1]
        fill = {k: v for k, v in defaults.items() if k in inputs}
        return lambda feeds: {k: v.numpy() for k, v in function(
            **{k: tf.constant(v) for k, v in dict(fill, **feeds).items()}).items()}

    return _Graphs("saved_model", *(wrap(n) for n in names))


def _onnx_graphs(name, folder, names, threads):
    from keras_seq.export.onnx import make_session, run_session

    def wrap(signature):
        session = make_session(os.path.join(folder, signature + ".onnx"), threads=threads)
        return lambda feeds: run_session(session, feeds)

    return _Graphs(name, *(wrap(n) for n in names))


def _backends(path, to, names, threads):
    return [_saved_model_graphs(path, names),
            _onnx_graphs("onnx", os.path.join(to, "onnx"), names, threads),
            _onnx_graphs("onnx_int8", os.path.join(to, "onnx", "int8"), names, threads)]


# ---------------------------------------------------------------- timing


def _alternate(calls, inputs, repeat=1):
    """Calls each backend on each input in turn; returns ({name: [s]}, {name:
    [outputs]}, {name: calls with the first backend's ids})."""
    times = {name: [] for name in calls}
    outputs = {name: [] for name in calls}
    same = collections.Counter()
    for name, call in calls.items():  # warm-up
        call(inputs[0])
    for _ in range(repeat):
        for x in inputs:
            reference = None
            for name, call in calls.items():
                start = time.perf_counter()
                ids = np.asarray(call(x))
                times[name].append(time.perf_counter() - start)
                outputs[name].append(ids)
                reference = ids if reference is None else reference
                same[name] += int(ids.shape == reference.shape and np.array_equal(ids, reference))
    return times, outputs, same


def _rows(family, task, batch, times, same, quality, metric):
    base = float(np.median(times["saved_model"]))
    rows = []
    for name, seconds in times.items():
        ms = np.asarray(seconds) * 1000
        row = {
            "family": family, "task": task, "batch": batch, "backend": name,
            "median_ms": round(float(np.median(ms)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "sentences_per_s": round(batch * len(ms) / (ms.sum() / 1000), 1),
            "speedup_vs_saved_model": round(base / float(np.median(seconds)), 2),
            "same_ids": f"{same[name]}/{len(ms)}",
            metric: quality.get(name), "load": load_average(),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# ---------------------------------------------------------------- translators


def _translator(run, to, args):
    from keras_seq import metrics, pipelines

    translator = pipelines.Translator.from_run(run)
    path, export_seconds = _export(translator, run, to)
    pairs = translator.split("test")
    count = max(args.sentences, 32)  # batch 32: the first 32 sentences
    encoded, _ = translator.prepare([s for s, _ in pairs[: 4 * count]])
    kept = [(e, t) for e, (_, t) in zip(encoded, pairs) if e is not None][:count]
    rows, references = [e for e, _ in kept], [t for _, t in kept]
    singles = [np.array([r], np.int32) for r in rows[: args.sentences]]
    references = references[: args.sentences]
    batches = [_pad(rows[i : i + 32]) for i in range(0, len(rows) - 31, 32)]
    backends = _backends(path, to, ("translate_ids", "encode", "step"), args.threads)
    if args.ctranslate2 and type(translator.model).__name__ == "Transformer":
        backends += _ctranslate2_backends(translator, to, args.threads)
    family = _family(translator.model)
    decode = translator.target_tokenizer.decode
    results = []
    for task, beam in (("greedy", 1), ("beam 5", 5)):
        settings = {"beam_size": np.int32(beam), "n_best": np.int32(1)}
        calls = {b.name: (lambda x, b=b: b.ids(dict(settings, source_ids=x))["ids"])
                 for b in backends}
        times, outputs, same = _alternate(calls, singles)
        bleu = {name: round(metrics.translation_scores(
            [decode(ids.tolist())[0] for ids in outs], references).bleu, 2)
            for name, outs in outputs.items()}
        results += _rows(family, task, 1, times, same, bleu, "bleu")
        if batches:
            times, _, same = _alternate(calls, batches, args.repeat32)
            results += _rows(family, task, 32, times, same, bleu, "bleu")
    profile = {}
    if args.profile:
        feeds = [dict(source_ids=x, beam_size=np.int32(5), n_best=np.int32(1)) for x in singles]
        profile = _profiles(to, "translate_ids", feeds, args.threads)
    return {"run": run, "family": family, "export": path, "export_seconds": export_seconds,
            "sentences": len(rows), "rows": results, "profile": profile,
            "int8_export_json": _int8_info(to)}


def _ctranslate2_backends(translator, to, threads):
    """CTranslate2 float32 and int8 translators of the model (ctranslate2_anchor)."""
    import ctranslate2_anchor

    folder = to.rstrip(os.sep) + "-ctranslate2"
    if not os.path.isdir(folder):
        ctranslate2_anchor.convert(translator.model, folder)
    backends = []
    with open(os.path.join(to, "onnx", "export.json"), encoding="utf-8") as f:
        max_length = json.load(f)["decoding"]["max_length"]
    for compute_type in ("float32", "int8"):
        anchor = ctranslate2_anchor.Anchor(folder, compute_type, threads, max_length)
        name = "ct2_float" if compute_type == "float32" else "ct2_int8"
        backends.append(_Graphs(name, anchor.translate_ids))
    return backends


# ---------------------------------------------------------------- language models


def _score(graphs, chunk):
    """Summed negative log-likelihood of `chunk` [N, T] through state + step."""
    state = graphs.state({"prompt_ids": np.full([len(chunk), 1], 2, np.int32)})  # BOS
    previous = state.pop("start_ids")
    total = 0.0
    for t in range(chunk.shape[1]):
        out = graphs.step(dict(state, tokens=previous))
        logits = out["logits"].astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        total -= float(log_probs[np.arange(len(chunk)), chunk[:, t]].sum())
        state = {k[len("next_"):]: v for k, v in out.items() if k.startswith("next_")}
        previous = chunk[:, t]
    return total


def _language_model(run, to, args):
    from keras_seq import pipelines
    from keras_seq.pipelines import lm_data

    generator = pipelines.TextGenerator.from_run(run)
    path, export_seconds = _export(generator, run, to)
    parts = lm_data.load_parts(
        generator.data, generator.tokenizer.type_name, val_fraction=generator.val_fraction,
        test_fraction=generator.test_fraction, valid_data=generator.valid_data,
        test_data=generator.test_data, only="test")
    stream = lm_data.encode_stream(generator.tokenizer, parts["test"])
    backends = _backends(path, to, ("generate_ids", "initial_state", "step"), args.threads)
    family = _family(generator.model)
    results = []
    # Generation: prompts of `prompt_tokens` test tokens, `generate_length` new tokens.
    width = args.prompt_tokens
    prompts = [stream[i * width : (i + 1) * width] for i in range(max(args.sentences, 32))]
    settings = {"max_length": np.int32(args.generate_length)}
    calls = {b.name: (lambda x, b=b: b.ids(dict(settings, prompt_ids=x))["ids"])
             for b in backends}
    prompt_rows = [np.array([p], np.int32) for p in prompts[: args.sentences]]
    batches = [np.stack(prompts[i : i + 32]) for i in range(0, len(prompts) - 31, 32)]
    times, outputs, same = _alternate(calls, prompt_rows)
    generated = np.mean([(o[0] != 0).sum() for o in outputs["saved_model"]])
    results += _rows(family, f"generate {args.generate_length}", 1, times, same, {}, "perplexity")
    if batches:
        times, _, same = _alternate(calls, batches, args.repeat32)
        results += _rows(family, f"generate {args.generate_length}", 32, times, same, {},
                         "perplexity")
    # Scoring: chunks of `score_length` test tokens.
    length = args.score_length
    chunks = [stream[i * length : (i + 1) * length] for i in range(len(stream) // length)]
    chunks = chunks[: max(32, args.sentences)]
    calls = {b.name: (lambda x, b=b: np.float64(_score(b, x))) for b in backends}
    singles = [np.array([c], np.int32) for c in chunks[: args.sentences]]
    times, outputs, same = _alternate(calls, singles)
    scored = len(singles) * length
    perplexity = {n: round(math.exp(sum(map(float, o)) / scored), 3) for n, o in outputs.items()}
    # Same ids for scoring: the summed log-likelihoods within 1e-3 of the SavedModel's.
    same = collections.Counter({n: sum(abs(float(a) - float(b)) < 1e-3 * max(1.0, abs(float(b)))
                                       for a, b in zip(o, outputs["saved_model"]))
                                for n, o in outputs.items()})
    results += _rows(family, f"score {length}", 1, times, same, perplexity, "perplexity")
    batch = [np.stack(chunks[:32])] if len(chunks) >= 32 else []
    if batch:
        times, outputs, same = _alternate(calls, batch, args.repeat32)
        same = collections.Counter({n: sum(abs(float(a) - float(b)) < 1e-3 * abs(float(b))
                                           for a, b in zip(o, outputs["saved_model"]))
                                    for n, o in outputs.items()})
        results += _rows(family, f"score {length}", 32, times, same, perplexity, "perplexity")
    profile = {}
    if args.profile:
        feeds = [dict(prompt_ids=x, max_length=np.int32(args.generate_length))
                 for x in prompt_rows]
        profile = _profiles(to, "generate_ids", feeds, args.threads)
    return {"run": run, "family": family, "export": path, "export_seconds": export_seconds,
            "prompts": len(prompt_rows), "mean_generated_tokens": round(float(generated), 1),
            "scored_tokens": scored, "rows": results, "profile": profile,
            "int8_export_json": _int8_info(to)}


# ---------------------------------------------------------------- profile


def _profile(path, feeds, threads, prefix):
    """{op type: ms per call} of onnxruntime's profiler over `feeds` (the
    nodes inside Loop bodies included; the Loop nodes' own time, which
    contains their bodies', listed as "Loop")."""
    import onnxruntime as ort

    from keras_seq.export.onnx import run_session

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = prefix
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for feed in feeds:
        run_session(session, feed)
    totals, counts = collections.Counter(), collections.Counter()
    for op, _, ms in kernel_times(session):
        totals[op] += ms
        counts[op] += 1
    return {op: {"ms_per_call": round(ms / len(feeds), 3),
                 "runs_per_call": round(counts[op] / len(feeds), 1)}
            for op, ms in totals.most_common()}


def _profiles(to, signature, feeds, threads):
    out = {}
    for precision, folder in (("float", "onnx"), ("int8", os.path.join("onnx", "int8"))):
        path = os.path.join(to, folder, signature + ".onnx")
        profile = _profile(path, feeds, threads, os.path.join(to, f"profile_{precision}"))
        total = sum(v["ms_per_call"] for op, v in profile.items() if op not in ("Loop", "If"))
        top = ", ".join(f"{op} {v['ms_per_call']:.2f} ({v['runs_per_call']:.0f}x)"
                        for op, v in list(profile.items())[:12])
        print(f"profile {signature} {precision}: {total:.2f} ms of node kernels per call "
              f"(Loop/If excluded); top ops (ms/call, runs/call): {top}", flush=True)
        out[precision] = {"kernels_ms_per_call": round(total, 2), "ops": profile}
    return out


def _int8_info(to):
    with open(os.path.join(to, "onnx", "export.json"), encoding="utf-8") as f:
        data = json.load(f)
    info = dict(data.get("int8", {}))
    info["onnx_files"] = sorted(name for name in data.get("onnx", {}))
    return info


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="trained run directories")
    parser.add_argument("--exports", required=True,
                        help="DIR/<run name> holds each run's export (written when missing)")
    parser.add_argument("--sentences", type=int, default=50,
                        help="sentences / prompts / scored chunks at batch 1")
    parser.add_argument("--repeat32", type=int, default=2, help="passes over the batches of 32")
    parser.add_argument("--prompt-tokens", type=int, default=8)
    parser.add_argument("--generate-length", type=int, default=32)
    parser.add_argument("--score-length", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--ctranslate2", action="store_true",
                        help="add CTranslate2 float and int8 for a Transformer translator")
    parser.add_argument("--json", help="write the results there")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from keras_seq import runs as runs_lib

    out = {"load_before": load_average(), "threads": args.threads, "families": []}
    for run in args.runs:
        to = os.path.join(args.exports, os.path.basename(os.path.normpath(run)))
        task = runs_lib.RunDir.open(run).config["task"]
        measure = _translator if task == "translator" else _language_model
        out["families"].append(measure(run, to, args))
        if args.json:
            write_json(args.json, dict(out, load_after=load_average()))
    out["load_after"] = load_average()
    print(load_average_line())
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
