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

  anna   Anna Karenina, word level, full training vocabulary (13,009 types),
         90/5/5 contiguous split (see `load_real_text`).
  mix    PTB + Anna Karenina + French side of anki fra-eng (42,272 types).

Investigation options (issue 5): `--bias-init zeros|unigram|loguniform` (output
bias of both models: zeros = the models' own initializer, log unigram frequency
of the training data = what `keras-seq train-lm` sets with
`model.set_unigram_bias`, or the sampler's log-uniform prior `LogUniformPrior`),
`--warmup-steps`, `--beta1/--beta2`, `--optimizer lazyadam` (Adam that skips
entries whose gradient is zero), `--candidates batch` (prototype: the batch's
labels are candidates too), `--diag-batches K` (predicted full-softmax mass by
training frequency of the class, per epoch). Log of the runs:
benchmarks/sampled_softmax_investigation.md.

The timing data is always the zipf stream (the step time does not depend on the
token values). Model: embedding 200 -> 2 x LSTM(200) -> softmax (PTB "small"
shape), batch 20 x 35, stateful truncated BPTT.

Usage:

    python benchmarks/sampled_softmax.py timing --vocab 10000 50000 100000
    python benchmarks/sampled_softmax.py perplexity --data anna --epochs 2 \\
        --bias-init unigram --out benchmarks/sampled_softmax_perplexity_anna_unigram.json

(the commands behind every committed JSON are listed in benchmarks/RESULTS.md).
Results are printed and written to `benchmarks/sampled_softmax_<mode>.json`
(`--out` to change).
"""

import math
import os

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import (HERE, PTB_DATA, SHARED_DATA, Stopwatch, argument_parser, environment,
                     load_average, write_json)

import numpy as np

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


def _split_text(text, fractions=(0.9, 0.05, 0.05)):
    """Contiguous train/valid/test parts of `text`, cut at line boundaries."""
    lines = text.split("\n")
    cuts = np.cumsum([0] + [int(round(f * len(lines))) for f in fractions[:-1]] + [len(lines)])
    cuts[-1] = len(lines)
    return ["\n".join(lines[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def _interleave(line_lists, chunks=200):
    """Lines of each source cut into `chunks` contiguous pieces, the pieces of
    the sources alternating, so any prefix (`--train-tokens`) mixes them."""
    pieces = []
    for lines in line_lists:
        bounds = np.linspace(0, len(lines), chunks + 1).astype(int)
        pieces.append([lines[a:b] for a, b in zip(bounds[:-1], bounds[1:])])
    return [line for i in range(chunks) for p in pieces for line in p[i]]


def load_real_text(data, shared_dir):
    """Word-level real text with its full (training) vocabulary, frequency sorted.

    anna  Anna Karenina (keras_seq's bundled copy), split 90/5/5 contiguous
          by lines.
    mix   PTB (train+valid+test text) + Anna Karenina + the French side of
          anki fra-eng, each split 90/5/5 contiguous by lines; each source's
          part cut into 200 contiguous pieces, the sources' pieces alternating
          (so a `--train-tokens` prefix holds all three).

    The vocabulary is every token of the training part (WordTokenizer,
    lower-cased, min_frequency 1), sorted by decreasing frequency, so the
    log-uniform sampler's assumption holds; validation tokens not in it are
    UNK (id 1).

    Returns:
        (vocab_size, train_ids, valid_ids, info dict)
    """
    from keras_seq.data import load_text
    from keras_seq.text import WordTokenizer

    sources = []
    if data in ("anna", "mix"):
        sources.append(("anna", load_text("bundled:anna-karenina")))
    if data == "mix":
        ptb = "\n".join(
            open(os.path.join(shared_dir, "ptb", f"ptb.{s}.txt"), encoding="utf-8").read()
            for s in ("train", "valid", "test")
        ).replace("<unk>", "unk")
        with open(os.path.join(shared_dir, "anki-fra-eng", "fra.txt"), encoding="utf-8") as f:
            french = "\n".join(line.split("\t")[1] for line in f if "\t" in line)
        sources = [("ptb", ptb), sources[0], ("fra", french)]
    parts = [_split_text(t) for _, t in sources]
    train_lines = _interleave([p[0].split("\n") for p in parts])
    valid_lines = _interleave([p[1].split("\n") for p in parts])
    tokenizer = WordTokenizer().fit(train_lines)

    def encode(lines):
        ids = tokenizer.encode(lines, add_eos=True)
        return np.concatenate([np.asarray(x, np.int32) for x in ids])

    train, valid = encode(train_lines), encode(valid_lines)
    info = {"sources": [n for n, _ in sources],
            "valid_unk_fraction": float(np.mean(valid == 1))}
    return tokenizer.vocab_size, train, valid, info


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


def build_pair(vocab_size, num_sampled, args, learning_rate=None, counts=None):
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
        lr = learning_rate or args.learning_rate
        if args.optimizer == "lazyadam":
            optimizer = _lazy_adam_class()(
                lr, beta_1=0.9 if args.beta1 is None else args.beta1,
                beta_2=0.999 if args.beta2 is None else args.beta2,
                global_clipnorm=args.clipnorm or None)
        elif args.warmup_steps or args.beta1 is not None or args.beta2 is not None:
            # Linear warm-up and/or non-default Adam betas (investigation
            # options; the default path is the library's make_optimizer).
            schedule = lr
            if args.warmup_steps:
                schedule = _warmup_class()(lr, args.warmup_steps)
            if args.optimizer == "adam":
                optimizer = keras.optimizers.Adam(
                    schedule, beta_1=0.9 if args.beta1 is None else args.beta1,
                    beta_2=0.999 if args.beta2 is None else args.beta2,
                    global_clipnorm=args.clipnorm or None)
            else:
                optimizer = keras.optimizers.SGD(schedule, global_clipnorm=args.clipnorm or None)
        else:
            optimizer = make_optimizer(
                TrainConfig(optimizer=args.optimizer, learning_rate=lr,
                            clipnorm=args.clipnorm)
            )
        model.compile(
            optimizer,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=args.jit,
        )
        models.append(model)
    models[1].set_weights(models[0].get_weights())
    if args.bias_init == "loguniform":
        # Output bias = log Q(j), the sampler's log-uniform (Zipf) prior
        # (keras_seq.layers.sampled_softmax.LogUniformPrior): needs no counts,
        # only a frequency-sorted vocabulary.
        from keras_seq.layers.sampled_softmax import LogUniformPrior

        prior = np.asarray(LogUniformPrior()((vocab_size,)), "float32")
        for model in models:
            model.output_layer.bias.assign(prior)
    if args.bias_init == "unigram" and counts is not None:
        # Output bias = log unigram frequency (add-0.5 smoothed), both models:
        # what `keras-seq train-lm` does.
        for model in models:
            model.set_unigram_bias(counts)
    return models


def _lazy_adam_class():
    """Adam that leaves m, v and the weight alone wherever the gradient is
    exactly zero (as tf.compat.v1 LazyAdam does for sparse rows): a class the
    sampled softmax did not touch this step is not moved by stale momentum."""
    import keras
    from keras import ops

    class LazyAdam(keras.optimizers.Adam):
        def update_step(self, gradient, variable, learning_rate):
            lr = ops.cast(learning_rate, variable.dtype)
            gradient = ops.cast(ops.convert_to_tensor(gradient), variable.dtype)
            step = ops.cast(self.iterations + 1, variable.dtype)
            b1 = ops.cast(self.beta_1, variable.dtype)
            b2 = ops.cast(self.beta_2, variable.dtype)
            alpha = lr * ops.sqrt(1 - ops.power(b2, step)) / (1 - ops.power(b1, step))
            m = self._momentums[self._get_variable_index(variable)]
            v = self._velocities[self._get_variable_index(variable)]
            active = ops.not_equal(gradient, 0)
            new_m = ops.where(active, b1 * m + (1 - b1) * gradient, m)
            new_v = ops.where(active, b2 * v + (1 - b2) * ops.square(gradient), v)
            self.assign(m, new_m)
            self.assign(v, new_v)
            update = alpha * new_m / (ops.sqrt(new_v) + self.epsilon)
            self.assign_sub(variable, ops.where(active, update, ops.zeros_like(update)))

    return LazyAdam


def _warmup_class():
    """Linear warm-up over `steps` optimizer steps, then constant `lr`."""
    import keras

    class WarmupConstant(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, lr, steps):
            self.lr, self.steps = float(lr), int(steps)

        def __call__(self, step):
            step = keras.ops.cast(step, "float32")
            return self.lr * keras.ops.minimum(1.0, (step + 1.0) / self.steps)

        def get_config(self):
            return {"lr": self.lr, "steps": self.steps}

    return WarmupConstant


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
            for part, block in (("step", lambda: train_block(models[name], args.steps)),
                                ("head", lambda: head_block(name, args.steps))):
                watch = Stopwatch()
                block()
                wall, cpu = watch.elapsed()
                results[name][f"{part}_wall"].append(wall / args.steps)
                results[name][f"{part}_cpu"].append(cpu / args.steps)
    summary = {"vocab_size": vocab_size, "num_sampled": args.num_sampled, "load": load_average()}
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
    elif args.data in ("anna", "mix"):
        vocab_size, train_ids, valid_ids, info = load_real_text(args.data, SHARED_DATA)
        if args.train_tokens:
            train_ids = train_ids[: args.train_tokens]
        if args.valid_tokens:
            valid_ids = valid_ids[: args.valid_tokens]
        print(f"{args.data}: vocabulary {vocab_size}, train {len(train_ids)}, valid "
              f"{len(valid_ids)} tokens, {info}", flush=True)
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
    counts = np.bincount(train_ids, minlength=vocab_size).astype("float64")
    full, sampled = build_pair(vocab_size, args.num_sampled, args, counts=counts)
    diag_batches = list(valid.take(args.diag_batches).as_numpy_iterator())

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
            watch = Stopwatch()
            fit = model.fit(train, epochs=1, shuffle=False, verbose=0, callbacks=[Reset()])
            epoch_wall, epoch_cpu = watch.elapsed()
            wall += epoch_wall
            cpu += epoch_cpu
            model.reset_states()
            loss = model.evaluate(valid, verbose=0, callbacks=[Reset()])
            loss = loss[0] if isinstance(loss, list) else loss
            history.append({"epoch": epoch + 1, "train_loss": float(fit.history["loss"][0]),
                            "valid_perplexity": math.exp(loss), "train_wall_s": wall,
                            "train_cpu_s": cpu, "load": load_average()})
            if args.diag_batches:
                history[-1]["diagnostics"] = diagnose(model, diag_batches, counts)
                print(f"{name:>7}   {history[-1]['diagnostics']['text']}", flush=True)
            print(f"{name:>7} epoch {epoch + 1}: valid perplexity (full softmax) "
                  f"{math.exp(loss):9.2f}   train wall {wall:7.0f} s  CPU {cpu:7.0f} s  "
                  f"load {load_average()}", flush=True)
        out["runs"][name] = history
    final = {k: v[-1]["valid_perplexity"] for k, v in out["runs"].items()}
    if len(final) == 2:
        out["perplexity_ratio"] = final["sampled"] / final["full"]
        print(f"sampled / full perplexity after {args.epochs} epoch(s): "
              f"{out['perplexity_ratio']:.3f}")
    return out


def batch_candidates_token_loss(self, hidden, labels, candidates=None):
    """Prototype: sampled softmax whose candidates are the batch's labels plus
    the sampled negatives (samples equal to any batch label are dropped).

    Z_i = sum_{j in L} e^{s_ij} + sum_{j not in L} e^{s_ij}: the first sum is
    exact over the distinct labels L of the batch, the second estimated by the
    samples not in L, each weighted 1 / (m Q(j)) -- unbiased, like the
    original estimator (which has L = {y_i}). Every class that is a label in a
    step thus also gets the negative gradient of the other tokens in it.
    """
    from keras import ops

    from keras_seq.layers.cached_attention import _large_negative

    if candidates is None:
        candidates = self.sample_candidates()
    candidates = ops.cast(candidates, "int32")
    labels = ops.cast(labels, "int32")
    depth = hidden.shape[-1]
    flat_hidden = ops.reshape(ops.cast(hidden, self.compute_dtype), (-1, depth))
    flat_labels = ops.reshape(labels, (-1,))
    neg = _large_negative("float32")
    true_logits = ops.sum(
        ops.cast(flat_hidden * self._rows(flat_labels), "float32"), axis=-1
    ) + self._biases(flat_labels)
    # Batch labels as candidates [n, n]; duplicates (not first occurrence) masked.
    label_logits = ops.cast(
        ops.matmul(flat_hidden, ops.transpose(self._rows(flat_labels))), "float32"
    ) + self._biases(flat_labels)[None, :]
    n = ops.shape(flat_labels)[0]
    index = ops.arange(n)
    same = ops.equal(flat_labels[:, None], flat_labels[None, :])
    duplicate = ops.any(ops.logical_and(same, index[None, :] < index[:, None]), axis=1)
    label_logits = ops.where(duplicate[None, :], neg, label_logits)
    sampled_logits = ops.cast(
        ops.matmul(flat_hidden, ops.transpose(self._rows(candidates))), "float32"
    ) + self._biases(candidates)[None, :]
    sampled_logits = sampled_logits - ops.log(self.expected_counts(candidates))[None, :]
    in_batch = ops.any(ops.equal(candidates[:, None], flat_labels[None, :]), axis=1)
    sampled_logits = ops.where(in_batch[None, :], neg, sampled_logits)
    logits = ops.concatenate([label_logits, sampled_logits], axis=-1)
    losses = ops.logsumexp(logits, axis=-1) - true_logits
    return ops.reshape(losses, ops.shape(labels))


BUCKETS = ((1, 1), (2, 4), (5, 19), (20, 99), (100, 999), (1000, None))


def diagnose(model, batches, counts):
    """Where the full softmax puts its mass, by training frequency of the class.

    On the first validation batches (state reset first): the mean predicted
    probability mass on the classes whose training count falls in each bucket,
    next to the validation tokens' share of those classes; the mean output bias
    and mean logit (relative to each token's mean logit) per bucket.
    """
    model.reset_states()
    mass = np.zeros(len(BUCKETS))
    share = np.zeros(len(BUCKETS))
    logit_sum = np.zeros(len(BUCKETS))
    tokens = 0
    bucket_of = np.full(len(counts), -1)
    for b, (lo, hi) in enumerate(BUCKETS):
        bucket_of[(counts >= lo) & (counts <= (hi or np.inf))] = b
    for x, y in batches:
        logits = np.asarray(model(x, training=False), "float64").reshape(-1, len(counts))
        logits = logits - logits.max(-1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(-1, keepdims=True)
        centred = logits - logits.mean(-1, keepdims=True)
        for b in range(len(BUCKETS)):
            sel = bucket_of == b
            mass[b] += p[:, sel].sum()
            logit_sum[b] += centred[:, sel].mean(-1).sum() if sel.any() else 0.0
        labels = y.reshape(-1)
        for b in range(len(BUCKETS)):
            share[b] += np.sum(bucket_of[labels] == b)
        tokens += len(labels)
    model.reset_states()
    bias = np.asarray(model.output_layer.bias)
    out = {"buckets": [f"{lo}-{hi or 'inf'}" for lo, hi in BUCKETS],
           "classes": [int(np.sum(bucket_of == b)) for b in range(len(BUCKETS))],
           "pred_mass": (mass / tokens).tolist(), "valid_share": (share / tokens).tolist(),
           "mean_bias": [float(bias[bucket_of == b].mean()) for b in range(len(BUCKETS))],
           "mean_centred_logit": (logit_sum / tokens).tolist()}
    out["text"] = "mass/share/bias by train count " + "  ".join(
        f"[{k}] {m:.3f}/{v:.3f}/{bb:+.2f}" for k, m, v, bb in
        zip(out["buckets"], out["pred_mass"], out["valid_share"], out["mean_bias"]))
    return out


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("mode", choices=["timing", "perplexity"])
    parser.add_argument("--vocab", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--num-sampled", type=int, default=512)
    parser.add_argument("--data", choices=["ptb", "zipf", "anna", "mix"], default="zipf")
    parser.add_argument("--data-dir", default=PTB_DATA)
    parser.add_argument("--train-tokens", type=int, default=None)
    parser.add_argument("--valid-tokens", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=35)
    parser.add_argument("--optimizer", choices=["adam", "lazyadam", "sgd", "rmsprop"], default="adam")
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--clipnorm", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per block")
    parser.add_argument("--repeats", type=int, default=3, help="alternating blocks per model")
    parser.add_argument("--jit", action="store_true", help="XLA-compile the steps")
    parser.add_argument("--only", choices=["sampled", "full"], default=None,
                        help="perplexity: train only this one of the two models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bias-init", choices=["zeros", "unigram", "loguniform"], default="zeros",
                        help="output bias of both models: zeros (the models' initializer), log unigram, or the log-uniform prior")
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--candidates", choices=["sampled", "batch"], default="sampled",
                        help="batch: prototype, the batch's labels are candidates too")
    parser.add_argument("--beta1", type=float, default=None)
    parser.add_argument("--beta2", type=float, default=None)
    parser.add_argument("--diag-batches", type=int, default=0,
                        help="perplexity: per-epoch mass-by-frequency diagnostics on this many valid batches")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    if args.candidates == "batch":
        from keras_seq.layers.sampled_softmax import SampledSoftmax

        SampledSoftmax.sampled_token_loss = batch_candidates_token_loss
    result = run_timing(args) if args.mode == "timing" else run_perplexity(args)
    result["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    result["environment"] = environment()
    out = args.out or os.path.join(HERE, f"sampled_softmax_{args.mode}.json")
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
