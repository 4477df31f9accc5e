"""Training throughput of `RNNLanguageModel` against the same network in plain Keras.

Penn Treebank "small" shape: vocabulary 10,000 (10,002 with keras_seq's
reserved ids), embedding 200, 2 x LSTM(200), batch 20, 35 steps, stateful
truncated BPTT, SGD with global-norm clipping 5. The anchor is the identical
network built from `keras.layers.Embedding` / `keras.layers.LSTM(stateful=True)`
/ `keras.layers.Dense`, with the same weights (copied), the same batches and
the same optimizer, in the same process. Our model also receives the per-row
`reset` input (all False after the first batch) that truncated BPTT over
documents needs; the Keras anchor has no such input.

Each repetition trains `--steps` batches with `fit` (one compiled step, no
validation); a first call per model compiles and warms up and is not timed.
The two models alternate, repetition by repetition, so a change of load on
the shared machine hits both; the reported ratio is the median of the
per-repetition ratios (ours / Keras, >= 0.95 is the target).

Data: the PTB training stream when `--data` holds `ptb.train.txt`, else a
synthetic Zipf-distributed stream of the same vocabulary.

Usage:

    python benchmarks/lm_throughput.py
    python benchmarks/lm_throughput.py --steps 50 --repeats 7
"""

import os
import statistics
import sys

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import PTB_DATA, Stopwatch, argument_parser, load_average_line

import numpy as np

VOCAB, UNITS, LAYERS, BATCH, STEPS = 10002, 200, 2, 20, 35


def token_stream(data_dir, n_tokens):
    path = os.path.join(data_dir, "ptb.train.txt")
    if os.path.isfile(path):
        import ptb

        vocabulary, ids = ptb.load_ptb(data_dir)
        return ids["train"][:n_tokens], "PTB train"
    rng = np.random.default_rng(0)
    ranks = rng.zipf(1.2, size=n_tokens * 2)
    ids = ranks[ranks < VOCAB - 4][:n_tokens] + 3
    return ids.astype(np.int32), "synthetic Zipf(1.2)"


def keras_anchor():
    import keras

    tokens = keras.Input((STEPS,), batch_size=BATCH, dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, UNITS, name="embedding")(tokens)
    for i in range(LAYERS):
        x = keras.layers.LSTM(UNITS, return_sequences=True, stateful=True, name=f"lstm_{i}")(x)
    logits = keras.layers.Dense(VOCAB, name="logits")(x)
    return keras.Model(tokens, logits, name="keras_lstm_lm")


def reset(model):
    """Zero the carried state (Keras 3 functional models have no reset_states)."""
    if hasattr(model, "reset_states"):
        model.reset_states()
        return
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def compile_model(model):
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(1.0, global_clipnorm=5.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--data", default=PTB_DATA)
    parser.add_argument("--steps", type=int, default=40, help="timed batches per repetition")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow intra-op and inter-op threads (0: TensorFlow's default)")
    args = parser.parse_args(argv)
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import keras
    import tensorflow as tf

    from keras_seq.data import make_lm_dataset
    from keras_seq.models import RNNLanguageModel

    n_batches = args.warmup + args.steps
    ids, source = token_stream(args.data, BATCH * (STEPS * n_batches + 1))
    ours_ds = make_lm_dataset(ids, BATCH, STEPS).cache()
    keras_ds = ours_ds.map(lambda x, y: (x["tokens"], y)).cache()
    warm = {"ours": ours_ds.take(args.warmup), "keras": keras_ds.take(args.warmup)}
    timed = {"ours": ours_ds.skip(args.warmup), "keras": keras_ds.skip(args.warmup)}

    keras.utils.set_random_seed(0)
    models = {
        "ours": RNNLanguageModel(VOCAB, UNITS, UNITS, num_layers=LAYERS, batch_size=BATCH),
        "keras": keras_anchor(),
    }
    models["keras"].set_weights(models["ours"].get_weights())  # same layout, same weights
    # Sanity check: the same network (same logits on the first batch).
    x, _ = next(iter(ours_ds))
    diff = float(np.max(np.abs(models["ours"](x).numpy() - models["keras"](x["tokens"]).numpy())))
    for model in models.values():
        reset(model)
        compile_model(model)
        model.fit(warm["ours"] if model is models["ours"] else warm["keras"], verbose=0)

    tokens_per_rep = args.steps * BATCH * STEPS
    rates = {"ours": [], "keras": []}
    cpu_rates = {"ours": [], "keras": []}
    for rep in range(args.repeats):
        for name in ("ours", "keras") if rep % 2 == 0 else ("keras", "ours"):
            model = models[name]
            reset(model)
            watch = Stopwatch()
            model.fit(timed[name], verbose=0)
            wall, cpu = watch.elapsed()
            rates[name].append(tokens_per_rep / wall)
            cpu_rates[name].append(tokens_per_rep / cpu)
    ratios = [o / k for o, k in zip(rates["ours"], rates["keras"])]
    total = {name: len(r) / sum(1.0 / x for x in r) for name, r in rates.items()}
    cpu_total = {name: len(r) / sum(1.0 / x for x in r) for name, r in cpu_rates.items()}

    print(f"data: {source}; batch {BATCH} x {STEPS} steps, {LAYERS}x LSTM({UNITS}), vocab {VOCAB}, "
          f"SGD + clip 5; {args.repeats} repetitions of {args.steps} batches ({tokens_per_rep} tokens), "
          f"{args.warmup} warm-up batches untimed; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"max |logits ours - logits keras| on the first batch (same weights): {diff:.2e}")
    for name in ("ours", "keras"):
        r = rates[name]
        print(f"{name:>5}: median {statistics.median(r):8.0f} tokens/s  "
              f"(min {min(r):.0f}, max {max(r):.0f})")
    print(f"ratio ours/keras per repetition: {', '.join(f'{x:.3f}' for x in ratios)}")
    print(f"median ratio ours/keras: {statistics.median(ratios):.3f} (target >= 0.95)")
    print(f"ratio of total throughputs (all tokens / all time): {total['ours'] / total['keras']:.3f}")
    print(f"per CPU-second (process CPU time, all threads): ours {cpu_total['ours']:.0f}, keras "
          f"{cpu_total['keras']:.0f} tokens/CPU-s, ratio {cpu_total['ours'] / cpu_total['keras']:.3f}")
    print("CPU cores used on average (CPU time / wall time): "
          + ", ".join(f"{n} {total[n] and cpu_total[n] and total[n] / cpu_total[n]:.2f}"
                      for n in ("ours", "keras")))
    print(load_average_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
