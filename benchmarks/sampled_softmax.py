"""Sampled vs full softmax on the same model and data (`RNNLanguageModel`).

Two measurements, each comparing `RNNLanguageModel(sampled_softmax=N)` with the
identical model at `sampled_softmax=0` (same weights, same batches, same
optimizer: the library's `make_optimizer`, Adam with global-norm clipping):

  timing      whole training step (`train_on_batch`: forward, loss, backward,
              clipping, Adam update of every weight) and output layer alone
              (softmax forward + backward from fixed hidden states to the loss,
              gradients of the kernel, bias and hidden states) at each
              vocabulary size. Full and sampled alternate in the same process
              (ABAB...), each block `--steps` steps; wall time and process CPU
              time are both reported, since the machine is shared.
  perplexity  train both models for the same number of epochs and report the
              full-softmax validation perplexity (`evaluate`, stateful, state
              carried across windows) after each epoch.

Data:

  ptb    Penn Treebank (Mikolov split, 10,002-type vocabulary), real text;
         `--data-dir` holds ptb.{train,valid}.txt.
  zipf   A synthetic Zipfian token stream over exactly `--vocab` ids (for the
         50k/100k vocabularies no bundled text has): 64 hidden classes
         following a random sparse Markov chain (Dirichlet(0.1) transition
         rows); word rank r belongs to class r mod 64 and is emitted with
         probability proportional to 1/(r+1) within its class. Ids are
         re-ranked by their stationary frequency (so the log-uniform sampler's
         assumption holds, as for a real frequency-sorted vocabulary). The
         entropy rate is known in closed form, so the best achievable
         perplexity is printed next to the results, with the unigram one.

The timing data is always the zipf stream (the step time does not depend on the
token values). Model: embedding 200 -> 2 x LSTM(200) -> softmax (PTB "small"
shape), batch 20 x 35, stateful truncated BPTT.

Usage:

    python benchmarks/sampled_softmax.py timing --vocab 10000 50000 100000
    python benchmarks/sampled_softmax.py perplexity --data ptb --epochs 1
    python benchmarks/sampled_softmax.py perplexity --data zipf --vocab 50000 \\
        --train-tokens 200000 --epochs 2

Results are printed and written to `benchmarks/sampled_softmax_<mode>.json`
(`--out` to change).
"""

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

NUM_CLASSES = 64
RESERVED = 4  # PAD, UNK, BOS, EOS


# ---------------------------------------------------------------- data


def zipf_source(vocab_size, seed=0):
    """The generator of the synthetic stream (see the module docstring).

    Returns:
        dict with `classes` (class of each id), `transitions` [C, C],
        `emission` (p(id | class of id)), `stationary` [C], `entropy_rate`
        (nats per token) and `unigram_entropy`.
    """
    rng = np.random.default_rng(seed)
    n = vocab_size - RESERVED
    rank = np.arange(n)
    classes = rank % NUM_CLASSES
    weights = 1.0 / (rank + 1.0)
    emission = np.zeros(n)
    for c in range(NUM_CLASSES):
        members = classes == c
        emission[members] = weights[members] / weights[members].sum()
    transitions = rng.dirichlet(np.full(NUM_CLASSES, 0.1), size=NUM_CLASSES)
    # Stationary distribution of the class chain.
    values, vectors = np.linalg.eig(transitions.T)
    stationary = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    stationary = stationary / stationary.sum()
    marginal = stationary[classes] * emission
    # Re-rank ids by decreasing marginal frequency.
    order = np.argsort(-marginal, kind="stable")
    classes, emission, marginal = classes[order], emission[order], marginal[order]

    def entropy(p):
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    class_word_entropy = np.array(
        [entropy(emission[classes == c]) for c in range(NUM_CLASSES)]
    )
    # H(next | current class) = H(next class | class) + E[H(word | next class)].
    per_class = np.array(
        [entropy(transitions[c]) + transitions[c] @ class_word_entropy for c in range(NUM_CLASSES)]
    )
    return {
        "classes": classes,
        "transitions": transitions,
        "emission": emission,
        "stationary": stationary,
        "entropy_rate": float(stationary @ per_class),
        "unigram_entropy": entropy(marginal),
    }


def zipf_stream(source, num_tokens, seed=1):
    """Samples `num_tokens` ids (int32, in [4, V)) from `zipf_source`."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(source["transitions"], axis=1)
    u = rng.random(num_tokens)
    states = np.empty(num_tokens, np.int64)
    state = int(rng.choice(NUM_CLASSES, p=source["stationary"]))
    for t in range(num_tokens):
        state = min(int(np.searchsorted(cumulative[state], u[t])), NUM_CLASSES - 1)
        states[t] = state
    ids = np.empty(num_tokens, np.int64)
    for c in range(NUM_CLASSES):
        positions = np.flatnonzero(states == c)
        members = np.flatnonzero(source["classes"] == c)
        cdf = np.cumsum(source["emission"][members])
        pick = np.searchsorted(cdf, rng.random(len(positions)) * cdf[-1])
        ids[positions] = members[np.minimum(pick, len(members) - 1)]
    return (ids + RESERVED).astype(np.int32)


def load_ptb(data_dir):
    """PTB train/valid ids with a frequency-sorted keras_seq vocabulary."""
    import collections

    from keras_seq import text

    def read(split):
        words = []
        with open(os.path.join(data_dir, f"ptb.{split}.txt"), encoding="utf-8") as f:
            for line in f:
                words.extend(line.split())
                words.append("<eos>")
        return words

    train, valid = read("train"), read("valid")
    counts = collections.Counter(train)
    for special in ("<unk>", "<eos>"):
        counts.pop(special, None)
    vocabulary = list(text.RESERVED_TOKENS) + sorted(counts, key=lambda w: (-counts[w], w))
    lookup = {w: i for i, w in enumerate(vocabulary)}
    lookup["<unk>"], lookup["<eos>"] = text.UNK_ID, text.EOS_ID

    def encode(words):
        return np.array([lookup.get(w, text.UNK_ID) for w in words], np.int32)

    return len(vocabulary), encode(train), encode(valid)


# ---------------------------------------------------------------- models


def build_pair(vocab_size, num_sampled, args, learning_rate=None):
    """(full, sampled) RNNLanguageModels with identical weights, compiled alike."""
    import keras

    from keras_seq.models import RNNLanguageModel
    from keras_seq.training import TrainConfig, make_optimizer

    config = dict(
        vocab_size=vocab_size,
        embedding_dim=args.units,
        units=args.units,
        num_layers=args.layers,
        batch_size=args.batch_size,
        dropout=0.0,
    )
    models = []
    for n in (0, num_sampled):
        keras.utils.set_random_seed(args.seed)
        model = RNNLanguageModel(**config, sampled_softmax=n)
        optimizer = make_optimizer(
            TrainConfig(optimizer=args.optimizer,
                        learning_rate=learning_rate or args.learning_rate,
                        clipnorm=args.clipnorm)
        )
        model.compile(
            optimizer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=args.jit,
        )
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    return models


def _load():
    load = os.getloadavg()
    return [round(x, 2) for x in load]


# ---------------------------------------------------------------- timing


def time_vocabulary(vocab_size, args):
    import tensorflow as tf

    from keras_seq.data import make_lm_dataset

    full, sampled = build_pair(vocab_size, args.num_sampled, args)
    tokens_needed = args.batch_size * args.seq_len * (args.steps + 2) + args.batch_size
    stream = zipf_stream(zipf_source(vocab_size), tokens_needed)
    batches = list(make_lm_dataset(stream, args.batch_size, args.seq_len).as_numpy_iterator())

    def train_block(model, n):
        for i in range(n):
            x, y = batches[i % len(batches)]
            model.train_on_batch(x, y)

    # Output layer alone: hidden [B, T, d] -> loss, gradients of kernel, bias, hidden.
    rng = np.random.default_rng(0)
    hidden = tf.constant(rng.normal(size=(args.batch_size, args.seq_len, args.units)).astype("float32"))
    labels = tf.constant(batches[0][1])

    def head_fn(model):
        head = model.output_head
        weights = [model.output_layer.kernel, model.output_layer.bias]

        @tf.function(jit_compile=args.jit)
        def fn(hidden, labels):
            with tf.GradientTape() as tape:
                tape.watch(hidden)
                loss = head.loss(hidden, labels, training=True)  # full when N = 0
            return loss, tape.gradient(loss, weights + [hidden])

        return fn

    head_fns = {"full": head_fn(full), "sampled": head_fn(sampled)}

    def head_block(name, n):
        for _ in range(n):
            loss, grads = head_fns[name](hidden, labels)
        float(loss)  # wait for the result

    models = {"full": full, "sampled": sampled}
    for name in ("full", "sampled"):  # warm-up: tracing, optimizer slots
        train_block(models[name], 2)
        head_block(name, 2)
    results = {k: {"step_wall": [], "step_cpu": [], "head_wall": [], "head_cpu": []} for k in models}
    for _ in range(args.repeats):
        for name in ("full", "sampled"):
            start, cpu = time.perf_counter(), time.process_time()
            train_block(models[name], args.steps)
            results[name]["step_wall"].append((time.perf_counter() - start) / args.steps)
            results[name]["step_cpu"].append((time.process_time() - cpu) / args.steps)
            start, cpu = time.perf_counter(), time.process_time()
            head_block(name, args.steps)
            results[name]["head_wall"].append((time.perf_counter() - start) / args.steps)
            results[name]["head_cpu"].append((time.process_time() - cpu) / args.steps)
    summary = {"vocab_size": vocab_size, "num_sampled": args.num_sampled, "load": _load()}
    for key in ("step_wall", "step_cpu", "head_wall", "head_cpu"):
        f = float(np.median(results["full"][key]))
        s = float(np.median(results["sampled"][key]))
        summary[key] = {"full": f, "sampled": s, "speedup": f / s}
    summary["raw"] = results
    return summary


def run_timing(args):
    rows = []
    for vocab_size in args.vocab:
        row = time_vocabulary(vocab_size, args)
        rows.append(row)
        print(
            f"V={vocab_size:>6}  step full {row['step_wall']['full']*1e3:8.1f} ms  sampled "
            f"{row['step_wall']['sampled']*1e3:7.1f} ms  x{row['step_wall']['speedup']:.2f} "
            f"(CPU x{row['step_cpu']['speedup']:.2f})  |  output layer full "
            f"{row['head_wall']['full']*1e3:8.1f} ms  sampled {row['head_wall']['sampled']*1e3:7.1f} ms "
            f"x{row['head_wall']['speedup']:.2f} (CPU x{row['head_cpu']['speedup']:.2f})  load {row['load']}",
            flush=True,
        )
    return {"rows": rows}


# ---------------------------------------------------------------- perplexity


def run_perplexity(args):
    import keras

    from keras_seq.data import make_lm_dataset

    info = {}
    if args.data == "ptb":
        vocab_size, train_ids, valid_ids = load_ptb(args.data_dir)
        if args.train_tokens:
            train_ids = train_ids[: args.train_tokens]
    else:
        vocab_size = args.vocab[0]
        source = zipf_source(vocab_size)
        train_ids = zipf_stream(source, args.train_tokens or 200_000, seed=1)
        valid_ids = zipf_stream(source, args.valid_tokens, seed=2)
        info = {
            "best_possible_perplexity": math.exp(source["entropy_rate"]),
            "unigram_perplexity": math.exp(source["unigram_entropy"]),
            "train_types_seen": int(len(np.unique(train_ids))),
        }
        print(f"zipf V={vocab_size}: best possible perplexity {info['best_possible_perplexity']:.1f}, "
              f"unigram {info['unigram_perplexity']:.1f}, types seen in train "
              f"{info['train_types_seen']}", flush=True)
    train = make_lm_dataset(train_ids, args.batch_size, args.seq_len)
    valid = make_lm_dataset(valid_ids, args.batch_size, args.seq_len)
    full, sampled = build_pair(vocab_size, args.num_sampled, args)

    class Reset(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.reset_states()

        def on_test_begin(self, logs=None):
            self.model.reset_states()

    out = {"vocab_size": vocab_size, "num_sampled": args.num_sampled, "data": args.data,
           "train_tokens": int(len(train_ids)), "valid_tokens": int(len(valid_ids)), **info,
           "runs": {}}
    for name, model in (("sampled", sampled), ("full", full)):
        if args.only and name != args.only:
            continue
        history = []
        wall = cpu = 0.0
        for epoch in range(args.epochs):
            start, cpu0 = time.perf_counter(), time.process_time()
            fit = model.fit(train, epochs=1, shuffle=False, verbose=0, callbacks=[Reset()])
            wall += time.perf_counter() - start
            cpu += time.process_time() - cpu0
            model.reset_states()
            loss = model.evaluate(valid, verbose=0, callbacks=[Reset()])
            loss = loss[0] if isinstance(loss, list) else loss
            history.append({"epoch": epoch + 1, "train_loss": float(fit.history["loss"][0]),
                            "valid_perplexity": math.exp(loss), "train_wall_s": wall,
                            "train_cpu_s": cpu, "load": _load()})
            print(f"{name:>7} epoch {epoch + 1}: valid perplexity (full softmax) "
                  f"{math.exp(loss):9.2f}   train wall {wall:7.0f} s  CPU {cpu:7.0f} s  "
                  f"load {_load()}", flush=True)
        out["runs"][name] = history
    final = {k: v[-1]["valid_perplexity"] for k, v in out["runs"].items()}
    if len(final) == 2:
        out["perplexity_ratio"] = final["sampled"] / final["full"]
        print(f"sampled / full perplexity after {args.epochs} epoch(s): "
              f"{out['perplexity_ratio']:.3f}")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["timing", "perplexity"])
    parser.add_argument("--vocab", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--num-sampled", type=int, default=512)
    parser.add_argument("--data", choices=["ptb", "zipf"], default="zipf")
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data", "ptb"))
    parser.add_argument("--train-tokens", type=int, default=None)
    parser.add_argument("--valid-tokens", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=35)
    parser.add_argument("--optimizer", choices=["adam", "sgd", "rmsprop"], default="adam")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--clipnorm", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per block")
    parser.add_argument("--repeats", type=int, default=3, help="alternating blocks per model")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the steps")
    parser.add_argument("--only", choices=["sampled", "full"], default=None,
                        help="perplexity: train only this one of the two models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import tensorflow as tf

    result = run_timing(args) if args.mode == "timing" else run_perplexity(args)
    result["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    result["environment"] = {"tensorflow": tf.__version__, "cpus": os.cpu_count()}
    out = args.out or os.path.join(HERE, f"sampled_softmax_{args.mode}.json")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
