"""Attention translator benchmarks (issue 4): quality, decoding speed, export latency, training.

Subcommands (each prints JSON, and with `--json FILE` writes it):

    quality RUN         BLEU/chrF (sacrebleu) of greedy decoding and beam search
                        (beam 5; length penalties 0, 0.6, 1.0), with and without
                        the <unk> replacement, on the run's held-out test split;
                        also "normalized" (the TF tutorial's lower-case, accent-
                        free standardization on both sides, as in
                        nmt_tutorial_baseline.py)
    decode RUN          sentences/s on 256 test sentences in batches of 64:
                        greedy and beam 5 with the in-graph decoding loop
                        (tf.function, XLA off and on) vs a plain Python loop
                        calling `model.step` eagerly (what tutorials do)
    latency RUN         one-sentence latency: exported SavedModel (`translate_ids`
                        and `translate`) vs onnxruntime (`translate_ids.onnx`)
    throughput RUN      training target tokens/s with bucketing on and off
                        (same model, same pairs, same number of batches)

RUN is a run directory written by `keras-seq train-translator`. Timings are
medians (latency) or totals over repeated runs after a warm-up call (the
first call's tracing/compilation is reported separately). The machine is
shared: say under what load the figures were taken (`os.getloadavg()` is
recorded).

Example:

    keras-seq train-translator --run-dir runs/translator --max-minutes 10
    python benchmarks/translation.py quality runs/translator
    python benchmarks/translation.py decode runs/translator
    python benchmarks/translation.py latency runs/translator --export exported/bench-fra-eng
    python benchmarks/translation.py throughput runs/translator
"""

import json
import os
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import argument_parser, load_average, write_json

import numpy as np


def _load(run_dir):
    from keras_seq import pipelines

    translator = pipelines.Translator.from_run(run_dir)
    return (pipelines.translation_training, translator.model, translator.source_tokenizer,
            translator.target_tokenizer, translator.run_config)


# ----------------------------------------------------------------------------
# quality
# ----------------------------------------------------------------------------


def quality(args):
    from keras_seq import metrics

    translation, model, src_tok, tgt_tok, config = _load(args.run)
    pairs = translation.load_split(config, "test")
    if args.limit:
        pairs = pairs[: args.limit]
    sources = [s for s, _ in pairs]
    refs = [t for _, t in pairs]
    # The TF tutorial's standardization (lower-case, no accents), to compare
    # with benchmarks/nmt_tutorial_baseline.py's "normalized" scores.
    from nmt_tutorial_baseline import standardize_py

    normalized_refs = [standardize_py(t) for t in refs]
    out = {"run": args.run, "test_pairs": len(pairs), "load_before": load_average(), "rows": []}
    from keras_seq.pipelines import Translator

    for unk in (True, False):
        translator = Translator(model, src_tok, tgt_tok, unk_replace=unk)
        settings = [("greedy", dict(greedy=True))]
        alphas = (0.0, 0.6, 1.0) if unk else (0.6,)
        settings += [(f"beam 5, lp {a:g}", dict(beam=5, length_penalty=a)) for a in alphas]
        for name, kwargs in settings:
            start = time.perf_counter()
            results = translator.translate(sources, **kwargs)
            seconds = time.perf_counter() - start
            hyps = [r.text for r in results]
            scores = metrics.translation_scores(hyps, refs)
            normalized = metrics.translation_scores([standardize_py(h) for h in hyps],
                                                    normalized_refs)
            ratio = sum(len(h.split()) for h in hyps) / max(1, sum(len(r.split()) for r in refs))
            out["rows"].append({"decoding": name, "unk_replace": unk, "bleu": round(scores.bleu, 2),
                                "chrf": round(scores.chrf, 2),
                                "bleu_normalized": round(normalized.bleu, 2),
                                "chrf_normalized": round(normalized.chrf, 2),
                                "length_ratio": round(ratio, 3), "seconds": round(seconds, 1)})
            print(json.dumps(out["rows"][-1]), flush=True)
    out["load_after"] = load_average()
    return out


# ----------------------------------------------------------------------------
# decode speed
# ----------------------------------------------------------------------------


def _batches(translator, sentences, batch_size, width=None):
    encoded, _ = translator.prepare(sentences)
    encoded = [e for e in encoded if e is not None]
    encoded.sort(key=len)
    batches = []
    for i in range(0, len(encoded), batch_size):
        rows = encoded[i:i + batch_size]
        w = width or max(len(r) for r in rows)
        b = np.zeros((len(rows), w), np.int32)
        for j, r in enumerate(rows):
            b[j, : len(r)] = r
        batches.append(b)
    return batches


def python_greedy(model, source, max_length):
    """Greedy decoding in a Python loop, one eager `model.step` per token."""
    import tensorflow as tf

    from keras_seq.text import BOS_ID, EOS_ID

    state = model.initial_state(tf.constant(source))
    n = source.shape[0]
    tokens = tf.fill([n], BOS_ID)
    done = np.zeros(n, bool)
    out = np.zeros((n, max_length), np.int32)
    for t in range(max_length):
        logits, state = model.step(tokens, state)
        chosen = tf.argmax(logits, axis=-1, output_type=tf.int32).numpy()
        chosen = np.where(done, 0, chosen)
        out[:, t] = chosen
        done |= chosen == EOS_ID
        if done.all():
            break
        tokens = tf.constant(np.where(done, EOS_ID, chosen).astype(np.int32))
    return out


def python_beam(model, source, max_length, beam=5, alpha=0.6):
    """Beam search in a Python loop (NumPy bookkeeping, eager `model.step`)."""
    import tensorflow as tf

    from keras_seq.text import BOS_ID, EOS_ID

    n = source.shape[0]
    state = model.initial_state(tf.constant(np.repeat(source, beam, axis=0)))
    tokens = np.full(n * beam, BOS_ID, np.int32)
    logp = np.tile(np.array([0.0] + [-np.inf] * (beam - 1)), (n, 1))  # [n, K]
    hyps = [[[] for _ in range(beam)] for _ in range(n)]
    finished = [[] for _ in range(n)]
    for t in range(max_length):
        logits, state = model.step(tf.constant(tokens), state)
        lp = tf.nn.log_softmax(logits).numpy().reshape(n, beam, -1)
        vocab = lp.shape[-1]
        cand = (lp + logp[:, :, None]).reshape(n, -1)
        top = np.argsort(-cand, axis=1)[:, : 2 * beam]
        new_tokens = np.full((n, beam), EOS_ID, np.int32)
        new_logp = np.full((n, beam), -np.inf)
        origin = np.zeros((n, beam), np.int64)
        new_hyps = [[[] for _ in range(beam)] for _ in range(n)]
        for b in range(n):
            k = 0
            for idx in top[b]:
                src_beam, tok = divmod(int(idx), vocab)
                score = cand[b, idx]
                if not np.isfinite(score):
                    continue
                if tok == EOS_ID:
                    length = t + 1
                    finished[b].append((score / (((5 + length) / 6) ** alpha), hyps[b][src_beam]))
                    continue
                if k < beam:
                    new_tokens[b, k] = tok
                    new_logp[b, k] = score
                    origin[b, k] = src_beam
                    new_hyps[b][k] = hyps[b][src_beam] + [tok]
                    k += 1
        flat = (origin + np.arange(n)[:, None] * beam).reshape(-1)
        state = {key: tf.gather(v, flat) if v.shape.rank else v for key, v in state.items()}
        tokens, logp, hyps = new_tokens.reshape(-1), new_logp, new_hyps
        best_alive = logp.max(axis=1) / (((5 + max_length) / 6) ** alpha)
        if all(len(f) >= 1 and max(s for s, _ in f) >= best_alive[b]
               for b, f in enumerate(finished)):
            break
    return [max(f)[1] if f else hyps[b][0] for b, f in enumerate(finished)]


def decode_speed(args):
    import tensorflow as tf

    from keras_seq import decoding

    translation, model, src_tok, tgt_tok, config = _load(args.run)
    pairs = translation.load_split(config, "test")[: args.sentences]
    sentences = [s for s, _ in pairs]
    from keras_seq.pipelines import Translator

    translator = Translator(model, src_tok, tgt_tok, unk_replace=False)
    batches = _batches(translator, sentences, args.batch_size)
    width = max(b.shape[1] for b in batches)
    max_length = translator.output_limit(width)
    out = {"run": args.run, "sentences": len(sentences), "batch_size": args.batch_size,
           "max_length": max_length, "load_before": load_average(), "rows": []}

    def record(name, seconds, first=None):
        row = {"method": name, "sentences_per_s": round(len(sentences) / seconds, 1),
               "seconds": round(seconds, 2)}
        if first is not None:
            row["first_call_seconds"] = round(first, 1)
        out["rows"].append(row)
        print(json.dumps(row), flush=True)

    strategies = {"greedy": "greedy", "beam5": decoding.BeamSearch(5, length_penalty=0.6)}
    for name, strategy in strategies.items():
        for jit in (False, True):
            fn = tf.function(
                lambda s, strategy=strategy: model.generate(
                    s, strategy=strategy, max_length=max_length).ids,
                input_signature=[tf.TensorSpec([None, None], tf.int32)], jit_compile=jit)
            data = batches
            start = time.perf_counter()
            fn(data[0]).numpy()
            first = time.perf_counter() - start
            for b in data:  # warm-up: XLA compiles once per input shape
                fn(b).numpy()
            start = time.perf_counter()
            for _ in range(args.repeats):
                for b in data:
                    fn(b).numpy()
            record(f"{name}, in-graph loop, XLA {'on' if jit else 'off'}",
                   (time.perf_counter() - start) / args.repeats, first)
        start = time.perf_counter()
        for b in batches:
            if name == "greedy":
                python_greedy(model, b, max_length)
            else:
                python_beam(model, b, max_length)
        record(f"{name}, Python loop over eager model.step", time.perf_counter() - start)
    out["load_after"] = load_average()
    return out


# ----------------------------------------------------------------------------
# export latency
# ----------------------------------------------------------------------------


def latency(args):
    import tensorflow as tf

    from keras_seq import export as export_lib

    translation, model, src_tok, tgt_tok, config = _load(args.run)
    start = time.perf_counter()
    path = export_lib.export_translator(model, src_tok, tgt_tok, args.export, beam_size=5,
                                        length_penalty=0.6, max_length=args.max_length)
    export_seconds = time.perf_counter() - start
    pairs = translation.load_split(config, "test")[: args.sentences]
    sentences = [s for s, _ in pairs]
    from keras_seq.pipelines import Translator

    translator = Translator(model, src_tok, tgt_tok, unk_replace=False)
    encoded, _ = translator.prepare(sentences)
    rows = [np.array([e], np.int32) for e in encoded if e is not None]
    out = {"run": args.run, "export": path, "export_seconds": round(export_seconds, 1),
           "sentences": len(rows), "load_before": load_average(), "rows": []}

    loaded = tf.saved_model.load(path)
    ids_fn = loaded.signatures["translate_ids"]
    text_fn = loaded.signatures["translate"]
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(os.path.join(args.export, "onnx", "translate_ids.onnx"),
                                   options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def time_each(name, call, inputs):
        call(inputs[0])  # warm-up
        times = []
        for x in inputs:
            start = time.perf_counter()
            call(x)
            times.append(time.perf_counter() - start)
        times = np.array(times) * 1000
        row = {"backend": name, "median_ms": round(float(np.median(times)), 1),
               "p90_ms": round(float(np.percentile(times, 90)), 1)}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)

    agree = 0
    for x in rows:
        a = ids_fn(source_ids=tf.constant(x))["ids"].numpy()
        b = session.run(None, {input_name: x})
        names = [o.name for o in session.get_outputs()]
        b = dict(zip(names, b))["ids"]
        agree += int(np.array_equal(a, b))
    out["onnx_equal_ids"] = f"{agree}/{len(rows)}"
    time_each("SavedModel translate_ids (beam 5)", lambda x: ids_fn(source_ids=tf.constant(x)),
              rows)
    time_each("onnxruntime translate_ids.onnx (beam 5)",
              lambda x: session.run(None, {input_name: x}), rows)
    time_each("SavedModel translate (strings, beam 5)",
              lambda s: text_fn(sentences=tf.constant([s])), sentences)
    out["load_after"] = load_average()
    return out


# ----------------------------------------------------------------------------
# training throughput
# ----------------------------------------------------------------------------


def throughput(args):
    import keras
    import tensorflow as tf

    from keras_seq import data as data_lib

    translation, model, src_tok, tgt_tok, config = _load(args.run)
    pairs = translation.load_split(config, "train")
    src, tgt = translation.encode_pairs(src_tok, tgt_tok, pairs)
    max_length = int(config["data"]["max_length"]) + 1
    out = {"run": args.run, "steps": args.steps, "batch_size": args.batch_size,
           "mixed_precision": args.mixed_precision, "load_before": load_average(), "rows": []}
    policy = keras.mixed_precision.global_policy()
    for bucket in (True, False):
        if args.mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        ds = data_lib.make_pair_dataset(src, tgt, args.batch_size, max_source_length=max_length,
                                        max_target_length=max_length, seed=0, bucket=bucket)
        pad = data_lib.padding_fraction(ds, max_batches=200)
        batches = list(ds.repeat().take(args.steps + 5))
        tokens = sum(int(np.count_nonzero(y.numpy())) for _, y in batches[5:])
        from keras_seq.models import build_model

        m = build_model("translator", config["model"])
        m.compile(keras.optimizers.Adam(1e-3, global_clipnorm=5.0),
                  loss=translation.label_smoothed_loss(0.1), metrics=None)
        warm = tf.data.Dataset.from_generator(lambda: iter(batches[:5]),
                                              output_signature=ds.element_spec)
        m.fit(warm, epochs=1, verbose=0)
        timed = tf.data.Dataset.from_generator(lambda: iter(batches[5:]),
                                               output_signature=ds.element_spec)
        start = time.perf_counter()
        m.fit(timed, epochs=1, verbose=0)
        seconds = time.perf_counter() - start
        keras.mixed_precision.set_global_policy(policy)
        row = {"bucketing": bucket, "padding_fraction": round(pad, 3),
               "target_tokens_per_s": round(tokens / seconds), "steps_per_s": round(args.steps / seconds, 2)}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    out["load_after"] = load_average()
    return out


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--json", help="also write the results to this file")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("quality")
    p.add_argument("run")
    p.add_argument("--limit", type=int, help="only the first N test pairs")
    p.set_defaults(fn=quality)
    p = sub.add_parser("decode")
    p.add_argument("run")
    p.add_argument("--sentences", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1)
    p.set_defaults(fn=decode_speed)
    p = sub.add_parser("latency")
    p.add_argument("run")
    p.add_argument("--export", default=os.path.join("exported", "bench-fra-eng"))
    p.add_argument("--sentences", type=int, default=50)
    p.add_argument("--max-length", type=int, default=32)
    p.set_defaults(fn=latency)
    p = sub.add_parser("throughput")
    p.add_argument("run")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--mixed-precision", action="store_true")
    p.set_defaults(fn=throughput)
    args = parser.parse_args(argv)
    result = args.fn(args)
    if args.json:
        write_json(args.json, result, indent=2, ensure_ascii=False)
    return result


if __name__ == "__main__":
    main()
