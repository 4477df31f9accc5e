"""Cached vs uncached Transformer decoding speed (tokens/s) at several lengths.

Model: `keras_seq.models.TransformerLanguageModel` with the layer sizes of
`keras-seq train-lm --model transformer` (d_model 256, 4 heads, feed-forward
1024, 2 layers), but untied embeddings, a vocabulary of 8,000 and
`max_length` 640 so that 512 new tokens fit,
seeded random weights, greedy decoding of `--batch` prompts of 8 tokens.

- cached: `model.generate(prompts, max_length=L)`, i.e. `initial_state`
  (one pass over the prompt into a per-layer key/value cache) then one
  `step` per token inside `keras_seq.decoding.decode`'s `tf.while_loop`: each
  step projects one position and attends over the cache.
- uncached: the same greedy loop (a `tf.while_loop` in the same kind of
  `tf.function`) re-running the whole decoder stack over the prefix so far
  (prompt + generated tokens) at every step; only the last position is
  projected to the vocabulary (the cheapest uncached variant).

End of sequence is disabled (`end_id` outside the vocabulary) and PAD's logit is
pushed down, so both generate exactly L tokens per row; the two must produce
the same tokens (checked; near-ties of float rounding are reported). Both are
traced before timing; the two alternate, median of `--repeats` (uncached at
512 tokens: `--uncached-repeats-512` calls, 1 by default). Wall and
process-CPU time are reported (the machine is shared).

Usage:

    python benchmarks/transformer_decoding.py --lengths 32 128 512

Writes `benchmarks/transformer_decoding.json`.
"""

import os

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import HERE, argument_parser, environment, load_average, time_call, write_json

import numpy as np


def build_model(args):
    import keras

    from keras_seq.models import TransformerLanguageModel

    keras.utils.set_random_seed(args.seed)
    model = TransformerLanguageModel(
        args.vocab, d_model=args.d_model, num_heads=args.heads, ff_dim=4 * args.d_model,
        num_layers=args.layers, dropout=0.0, max_length=args.max_length,
    )
    bias = model.head.bias.numpy()
    bias[0] = -1e4  # never emit PAD (it would be masked in the uncached prefix)
    model.head.bias.assign(bias)
    return model


def make_decoders(model, length, args):
    import tensorflow as tf

    end_id = args.vocab  # outside the vocabulary: rows run to `length`

    @tf.function(jit_compile=args.jit)
    def cached(prompts):
        return model.generate(prompts, max_length=length, end_id=end_id).ids[:, 0]

    @tf.function(jit_compile=False)
    def uncached(prompts):
        prompt_length = tf.shape(prompts)[1]

        def body(t, sequence):
            hidden = model._decoder_hidden(sequence, None, None, False)  # [B, t, d]
            logits = model.head(hidden[:, -1])  # [B, V]: the last position only
            next_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
            return t + 1, tf.concat([sequence, next_ids[:, None]], axis=1)

        _, sequence = tf.while_loop(
            lambda t, _: t < length,
            body,
            (tf.constant(0), prompts),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None])),
        )
        return sequence[:, prompt_length:]

    return cached, uncached


def near_tie_check(model, prompts, cached_ids, uncached_ids):
    """Rows where the two decoders part: is it at a near-tie of the two best logits?"""
    import tensorflow as tf

    report = []
    for row in np.flatnonzero((cached_ids != uncached_ids).any(1)):
        t = int(np.argmax(cached_ids[row] != uncached_ids[row]))
        prefix = np.concatenate([prompts[row], cached_ids[row, :t]])[None].astype("int32")
        hidden = model._decoder_hidden(tf.constant(prefix), None, None, False)
        logits = np.sort(np.asarray(model.head(hidden[:, -1]))[0])
        report.append({"row": int(row), "position": t, "top2_gap": float(logits[-1] - logits[-2])})
    return report


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt-length", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--uncached-repeats-512", type=int, default=1,
                        help="repeats of the uncached decoder at lengths >= 512 (slow)")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the cached decoder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(HERE, "transformer_decoding.json"))
    args = parser.parse_args(argv)

    import tensorflow as tf

    model = build_model(args)
    rng = np.random.default_rng(args.seed)
    prompts = rng.integers(4, args.vocab, (args.batch, args.prompt_length)).astype("int32")
    prompts_t = tf.constant(prompts)
    rows = []
    for length in args.lengths:
        cached, uncached = make_decoders(model, length, args)
        cached_ids = cached(prompts_t).numpy()  # traces
        uncached_ids = uncached(prompts_t).numpy()
        assert cached_ids.shape == uncached_ids.shape == (args.batch, length)
        ties = near_tie_check(model, prompts, cached_ids, uncached_ids)
        times = {"cached": [], "uncached": []}
        cpu = {"cached": [], "uncached": []}
        for r in range(args.repeats):
            for name, fn in (("cached", cached), ("uncached", uncached)):
                if name == "uncached" and length >= 512 and r >= args.uncached_repeats_512:
                    continue
                wall, cpu_seconds = time_call(fn, prompts_t)
                times[name].append(wall)
                cpu[name].append(cpu_seconds)
        tokens = args.batch * length
        row = {"length": length, "tokens": tokens, "load": load_average(),
               "mismatched_rows": ties, "raw_seconds": times, "raw_cpu_seconds": cpu}
        for name in times:
            row[name] = {
                "tokens_per_s": tokens / float(np.median(times[name])),
                "tokens_per_cpu_s": tokens / float(np.median(cpu[name])),
            }
        row["speedup"] = row["cached"]["tokens_per_s"] / row["uncached"]["tokens_per_s"]
        row["speedup_cpu"] = row["cached"]["tokens_per_cpu_s"] / row["uncached"]["tokens_per_cpu_s"]
        rows.append(row)
        print(f"L={length:4d}: cached {row['cached']['tokens_per_s']:8.1f} tok/s   uncached "
              f"{row['uncached']['tokens_per_s']:8.1f} tok/s   x{row['speedup']:.1f} "
              f"(CPU x{row['speedup_cpu']:.1f})   mismatched rows {len(ties)} "
              f"{[round(t['top2_gap'], 5) for t in ties]}   load {row['load']}", flush=True)
    result = {"rows": rows, "settings": vars(args), "environment": environment()}
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
