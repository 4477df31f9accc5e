"""Penn Treebank word-level language modelling with `RNNLanguageModel`.

Trains `keras_seq.models.RNNLanguageModel` on the Mikolov PTB split through
`keras_seq.training.train` (stateful truncated BPTT, checkpoints, time budget)
and reports train / valid / test perplexity per epoch, the wall time and a
PNG curve.

The data is NOT part of this repository (PTB is LDC-licensed text): point
`--data` at a directory holding `ptb.train.txt`, `ptb.valid.txt` and
`ptb.test.txt` (default `../shared/data/ptb`).

Setup (the standard one of Mikolov et al. / Zaremba et al.):

- The files are already tokenized: words are split on whitespace and `<eos>`
  is appended at the end of every line. The vocabulary is exactly the 10,000
  PTB word types: `<unk>` maps to keras_seq's UNK id (1), `<eos>` to EOS (3),
  the other 9,998 types follow the 4 reserved ids in order of decreasing
  training frequency (vocabulary size 10,002; `<pad>` and `<s>` never occur).
  A `keras_seq.text.WordTokenizer` carries that vocabulary (for decoding);
  encoding is the whitespace split, since PTB is pre-tokenized.
- Each split is one token stream, cut into `batch_size` rows and windows of
  `seq_len` (`keras_seq.data.make_lm_dataset`); the state is carried across
  windows and reset at the start of each epoch and of each evaluation.
- Per-epoch valid/test perplexities use the training shape (batch 20, as the
  TensorFlow `ptb_word_lm` tutorial does for validation). The final test
  perplexity is also computed on the whole test stream as one row (batch 1),
  where every token but the first is scored with its full left context, as
  in the published numbers.

Recipes:

  zaremba-small  Zaremba, Sutskever & Vinyals 2014, "small" non-regularized
                 LSTM: 2x200, no dropout, 13 epochs, SGD lr 1 halved every
                 epoch from epoch 5 on, gradient norm clipped at 5, all
                 weights uniform in [-0.1, 0.1], batch 20, 35 steps.
                 Published: valid 120.7, test 114.5.
                 Zaremba's loss *sums* the cross-entropy over the 35 steps
                 (mean over the batch); Keras's loss is the mean over all
                 B*T tokens, whose gradient is 35 times smaller. The same
                 update is therefore SGD with lr 35 and clip norm 5/35 on the
                 mean loss (clip(g/35, 5/35) * 35 == clip(g, 5)).
  cpu-60min      The best model found to train on this 2-core CPU within 60
                 minutes: 2x400 LSTM with tied input/output embeddings,
                 dropout 0.4, weights uniform in [-0.05, 0.05], batch 32 x 35,
                 SGD at Zaremba's medium settings (lr 35 / clip 5/35 on the
                 mean loss), learning rate on a cosine over the budget down to
                 2%. (A first attempt with Adam, lr 2e-3 and batch 64, learned
                 far more slowly per token: valid 204 after 3 epochs against
                 132 for the SGD small model; it was stopped.) The budget is
                 compute, not wall time: 60 minutes of the 2-core machine =
                 120 CPU-minutes of this process (`time.process_time()`), so
                 the result does not depend on how busy the shared machine
                 is; the wall time is reported next to it. `--max-minutes`
                 still caps the wall time (600 by default for this recipe).

Usage:

    python benchmarks/ptb.py --recipe zaremba-small
    python benchmarks/ptb.py --recipe cpu-60min
    python benchmarks/ptb.py --recipe zaremba-small --epochs 1 \\
        --max-train-tokens 50000 --run-dir runs/ptb-smoke   # smoke test

Outputs `benchmarks/ptb_<recipe>.json` (per-epoch figures, settings, wall
time), `benchmarks/ptb_<recipe>.png` (the curve) and the run directory
(`runs/ptb-<recipe>`, git-ignored) with the checkpoints; a killed run goes on
with `--resume`.
"""

import collections
import json
import math
import os
import sys
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import HERE, PTB_DATA, ROOT, argument_parser, write_json

import numpy as np

RECIPES = {
    "zaremba-small": dict(
        description="Zaremba et al. 2014 small: 2x200 LSTM, no dropout, SGD",
        model=dict(embedding_dim=200, units=200, num_layers=2, cell="lstm", dropout=0.0,
                   tie_embeddings=False),
        init_scale=0.1,
        batch_size=20,
        seq_len=35,
        # lr 1 and clip 5 on the time-summed loss == lr 35, clip 5/35 on the mean loss.
        training=dict(epochs=13, optimizer="sgd", learning_rate=35.0, clipnorm=5.0 / 35.0,
                      lr_schedule="step", decay_start_epoch=5, decay_rate=0.5),
        published={"valid": 120.7, "test": 114.5,
                   "source": "Zaremba et al. 2014, Table 1, non-regularized LSTM"},
    ),
    "cpu-60min": dict(
        description="2x400 LSTM, tied embeddings, dropout 0.4, SGD with a cosine schedule "
                    "over a budget of 60 minutes of the 2-core machine (120 CPU-minutes)",
        model=dict(embedding_dim=400, units=400, num_layers=2, cell="lstm", dropout=0.4,
                   tie_embeddings=True),
        init_scale=0.05,
        batch_size=32,
        seq_len=35,
        # SGD as in Zaremba et al.'s medium model (lr 1, clip 5 on the time-summed
        # loss == lr 35, clip 5/35 on the mean loss); the learning rate follows
        # the budget (see BudgetSchedule): cosine from 35 to 2% of it.
        budget_schedule=dict(warmup=0.0, floor=0.02),
        max_cpu_minutes=120.0,
        training=dict(epochs=100, optimizer="sgd", learning_rate=35.0, clipnorm=5.0 / 35.0,
                      lr_schedule="constant", max_minutes=600.0),
        published=None,
    ),
}


def read_ptb(path):
    """Whitespace tokens of a PTB file, with `<eos>` at every line end."""
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words.extend(line.split())
            words.append("<eos>")
    return words


def build_vocabulary(train_words):
    """keras_seq vocabulary: reserved tokens, then PTB types by frequency."""
    from keras_seq import text

    counts = collections.Counter(train_words)
    for special in ("<unk>", "<eos>"):
        counts.pop(special, None)
    ordered = sorted(counts, key=lambda w: (-counts[w], w))
    vocabulary = list(text.RESERVED_TOKENS) + ordered
    lookup = {w: i for i, w in enumerate(vocabulary)}
    lookup["<unk>"] = text.UNK_ID
    lookup["<eos>"] = text.EOS_ID
    return vocabulary, lookup


def encode(words, lookup, name):
    from keras_seq import text

    ids = np.fromiter((lookup.get(w, -1) for w in words), dtype=np.int64, count=len(words))
    missing = int(np.sum(ids < 0))
    if missing:
        # PTB's valid/test words are all in the train vocabulary; anything
        # else means the files are not the standard split.
        print(f"warning: {missing} {name} tokens outside the training vocabulary -> <unk>",
              file=sys.stderr)
        ids[ids < 0] = text.UNK_ID
    return ids.astype(np.int32)


def load_ptb(data_dir, max_train_tokens=None):
    files = {split: os.path.join(data_dir, f"ptb.{split}.txt") for split in ("train", "valid", "test")}
    for split, path in files.items():
        if not os.path.isfile(path):
            sys.exit(f"error: {path} not found (--data must hold ptb.train.txt, ptb.valid.txt, "
                     "ptb.test.txt)")
    words = {split: read_ptb(path) for split, path in files.items()}
    vocabulary, lookup = build_vocabulary(words["train"])
    ids = {split: encode(w, lookup, split) for split, w in words.items()}
    if max_train_tokens:
        ids["train"] = ids["train"][:max_train_tokens]
        ids["valid"] = ids["valid"][: max(max_train_tokens // 10, 5000)]
        ids["test"] = ids["test"][: max(max_train_tokens // 10, 5000)]
    return vocabulary, ids


class ResetStates:
    """Keras callback factory: zero the carried state at epoch and eval start."""

    @staticmethod
    def make():
        import keras

        class _Reset(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.model.reset_states()

            def on_test_begin(self, logs=None):
                self.model.reset_states()

        return _Reset()


def make_test_callback(test_ds):
    """Adds `test_loss` / `test_perplexity` to each epoch's logs (and history)."""
    import keras

    class _Test(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is None:
                return
            self.model.reset_states()
            loss = self.model.evaluate(test_ds, verbose=0, return_dict=True)["loss"]
            logs["test_loss"] = float(loss)
            logs["test_perplexity"] = math.exp(float(loss))
            self.model.reset_states()
            line = (f"epoch {epoch + 1}: train ppl {math.exp(logs['loss']):.2f}"
                    + (f"  valid ppl {math.exp(logs['val_loss']):.2f}" if "val_loss" in logs else "")
                    + f"  test ppl {logs['test_perplexity']:.2f}")
            print(line, flush=True)

    return _Test()


class BudgetSchedule:
    """Keras callback factory: a compute budget and a learning rate that follows it.

    The budget is counted in process CPU seconds (`time.process_time()`, all
    threads), so a run on a machine shared with other jobs gets the same
    compute as on an idle one: 60 minutes of this 2-core machine are 120
    CPU-minutes. Training stops after the batch that spends it. With
    `schedule`, the learning rate is `peak * warmup(f) * cosine(f)` where `f`
    is the spent fraction of the budget (linear warmup over `warmup`, cosine
    from 1 to `floor` over the rest).
    """

    @staticmethod
    def make(cpu_seconds, peak, schedule=None, carried=0.0):
        import keras

        class _Budget(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                # `carried`: CPU seconds spent by earlier sessions of a resumed run.
                self.start = time.process_time() - carried
                self.spent_fraction = carried / cpu_seconds

            def _rate(self, f):
                warmup, floor = schedule["warmup"], schedule["floor"]
                if f < warmup:
                    return peak * max(f / warmup, 0.01)
                g = min(1.0, (f - warmup) / max(1e-9, 1.0 - warmup))
                return peak * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * g)))

            def on_train_batch_begin(self, batch, logs=None):
                if schedule is not None:
                    self.model.optimizer.learning_rate = self._rate(self.spent_fraction)

            def on_train_batch_end(self, batch, logs=None):
                self.spent_fraction = (time.process_time() - self.start) / cpu_seconds
                if self.spent_fraction >= 1.0:
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                if logs is not None:
                    logs["cpu_seconds"] = time.process_time() - self.start
                    logs["budget_fraction"] = self.spent_fraction
                    if schedule is not None:
                        logs["scheduled_lr"] = self._rate(min(1.0, self.spent_fraction))
                if self.spent_fraction >= 1.0:
                    self.model.stop_training = True

        return _Budget()


def stream_perplexity(model_config, weights_model, ids, seq_len=35):
    """Perplexity of one stream read as a single row (batch 1, full context)."""
    import keras

    from keras_seq.data import make_lm_dataset
    from keras_seq.models import RNNLanguageModel

    config = dict(model_config, batch_size=1, stateful=True)
    model = RNNLanguageModel(**config)
    model.set_weights(weights_model.get_weights())
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ds = make_lm_dataset(ids, batch_size=1, seq_len=seq_len)
    model.reset_states()
    loss = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    scored = ds.num_batches * seq_len
    return math.exp(float(loss)), scored


def init_uniform(model, scale, seed):
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(rng.uniform(-scale, scale, size=tuple(v.shape)).astype("float32"))


def plot(history, path, title, published=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, label in (("loss", "train"), ("val_loss", "valid"), ("test_loss", "test")):
        values = [math.exp(row[key]) if row.get(key) is not None else np.nan for row in history]
        ax.plot(epochs, values, marker="o", label=label)
    if published:
        ax.axhline(published["test"], color="gray", linestyle="--",
                   label=f"published test {published['test']}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def markdown_report(path):
    """A RESULTS.md section (markdown) from a `ptb_<recipe>.json` summary."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    lines = [f"Recipe `{d['recipe']}`: {d['description']}; {d['parameters']:,} parameters.", "",
             f"    {d['command']}", "",
             "| epoch | learning rate | train ppl | valid ppl | test ppl | wall time (min) | CPU time (min) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in d["per_epoch"]:
        best = r["epoch"] == d["best_epoch"]
        cpu = f"{r['cpu_seconds'] / 60:.1f}" if r.get("cpu_seconds") is not None else ""
        lines.append(
            f"| {'**%d**' % r['epoch'] if best else r['epoch']} | {r['learning_rate']:.4g} | "
            f"{r['train_ppl']:.1f} | {r['valid_ppl']:.1f} | {r['test_ppl']:.1f} | "
            f"{r['elapsed_seconds'] / 60:.1f} | {cpu} |")
    b = d["best"]
    lines += ["", f"Best epoch {d['best_epoch']} of {d['epochs_run']} (stop: {d['stop_reason']}); "
              f"whole-stream evaluation: **valid {b['valid_ppl_stream']:.1f}, test "
              f"{b['test_ppl_stream']:.1f}** (in the 20/32-row training shape: valid "
              f"{b['valid_ppl_batch']:.1f}, test {b['test_ppl_batch']:.1f}). Training wall time "
              f"{d['train_seconds'] / 60:.1f} min"
              + (f", {d['cpu_seconds_training'] / 60:.1f} CPU-min" if "cpu_seconds_training" in d else "")
              + f"; load average at the end {', '.join(f'{v:.1f}' for v in d['load_average_at_end'])}."]
    return "\n".join(lines)


def main(argv=None):
    parser = argument_parser(__doc__)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="zaremba-small")
    parser.add_argument("--data", default=PTB_DATA,
                        help="directory with ptb.{train,valid,test}.txt")
    parser.add_argument("--run-dir", help="run directory (default runs/ptb-<recipe>)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget (overrides the recipe)")
    parser.add_argument("--max-cpu-minutes", type=float,
                        help="compute budget in process CPU-minutes (overrides the recipe)")
    parser.add_argument("--max-train-tokens", type=int,
                        help="use only this many training tokens (smoke tests)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--overwrite", action="store_true", help="start over in --run-dir")
    parser.add_argument("--out", help="output prefix (default benchmarks/ptb_<recipe>)")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field: model.units=256, training.learning_rate=2e-3, "
                             "batch_size=32 (values parsed as JSON)")
    parser.add_argument("--report", action="store_true",
                        help="print a markdown summary of --out's .json (no training)")
    args = parser.parse_args(argv)
    if args.report:
        print(markdown_report((args.out or os.path.join(HERE, f"ptb_{args.recipe}")) + ".json"))
        return 0

    import copy

    recipe = copy.deepcopy(RECIPES[args.recipe])
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
        target = recipe
        *path, last = key.split(".")
        for part in path:
            target = target[part]
        target[last] = value
    if args.epochs is not None:
        recipe["training"]["epochs"] = args.epochs
    if args.max_minutes is not None:
        recipe["training"]["max_minutes"] = args.max_minutes
    if args.max_cpu_minutes is not None:
        recipe["max_cpu_minutes"] = args.max_cpu_minutes

    import keras

    from keras_seq import text
    from keras_seq import training
    from keras_seq.data import make_lm_dataset
    from keras_seq.models import RNNLanguageModel
    from keras_seq.runs import RunDir

    t_start = time.time()
    vocabulary, ids = load_ptb(args.data, args.max_train_tokens)
    tokenizer = text.WordTokenizer(lowercase=False).set_vocabulary(vocabulary)
    batch_size, seq_len = recipe["batch_size"], recipe["seq_len"]
    datasets = {split: make_lm_dataset(ids[split], batch_size, seq_len)
                for split in ("train", "valid", "test")}
    print(f"PTB: vocabulary {len(vocabulary)}, tokens "
          + ", ".join(f"{s} {len(v)}" for s, v in ids.items())
          + f"; {datasets['train'].num_batches} batches/epoch of {batch_size}x{seq_len}", flush=True)

    model_config = dict(recipe["model"], vocab_size=len(vocabulary), batch_size=batch_size,
                        stateful=True)
    run_dir = args.run_dir or os.path.join(ROOT, "runs", f"ptb-{args.recipe}")
    out = args.out or os.path.join(HERE, f"ptb_{args.recipe}")
    config = training.TrainConfig(batch_size=batch_size, seed=args.seed, resume=args.resume,
                                  verbose=2, **recipe["training"])
    # The `keras-seq train-lm` run layout, so `keras-seq generate/export` work on it.
    run_config = {"task": "lm", "model": {"type": "rnn", "config": dict(recipe["model"],
                                                                        vocab_size=len(vocabulary))},
                  "tokenizer": {"type": tokenizer.type_name, "config": tokenizer.get_config()},
                  "training": config.to_dict(), "data": {"path": os.path.abspath(args.data),
                                                         "seq_len": seq_len},
                  "benchmark": {"recipe": args.recipe}}
    if args.resume:
        run = RunDir.open(run_dir)
    else:
        run = RunDir.create(run_dir, run_config, overwrite=args.overwrite)
        tokenizer.save(str(run.vocab_dir))

    def build():
        model = RNNLanguageModel(**model_config)
        if recipe.get("init_scale"):
            init_uniform(model, recipe["init_scale"], args.seed)
        return model

    extra_callbacks = []
    if recipe.get("max_cpu_minutes"):
        carried = 0.0
        if args.resume:
            previous = (run.training_state() or {}).get("history") or [{}]
            carried = float(previous[-1].get("cpu_seconds") or 0.0)
        extra_callbacks.append(BudgetSchedule.make(
            recipe["max_cpu_minutes"] * 60.0, config.peak_learning_rate,
            recipe.get("budget_schedule"), carried))
    cpu_start = time.process_time()
    model, history = training.train(
        build,
        datasets["train"],
        datasets["valid"],
        run,
        config,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        callbacks=extra_callbacks + [ResetStates.make(), make_test_callback(datasets["test"])],
    )
    train_cpu = time.process_time() - cpu_start
    rows = history.state["history"]
    # `model` holds the best (lowest valid loss) weights.
    best = min(rows, key=lambda r: r.get("val_loss", math.inf))
    test_stream_ppl, scored = stream_perplexity(model_config, model, ids["test"])
    valid_stream_ppl, _ = stream_perplexity(model_config, model, ids["valid"])
    wall = time.time() - t_start
    summary = {
        "recipe": args.recipe,
        "description": recipe["description"],
        "settings": recipe,
        "vocab_size": len(vocabulary),
        "tokens": {s: int(len(v)) for s, v in ids.items()},
        "parameters": int(model.count_params()),
        "epochs_run": len(rows),
        "stop_reason": history.stop_reason,
        "train_seconds": history.state["elapsed_seconds"],
        "wall_seconds_this_session": wall,
        "cpu_seconds_training": train_cpu,
        "cpu_seconds_this_session": time.process_time(),
        "best_epoch": best["epoch"],
        "per_epoch": [
            {
                "epoch": r["epoch"],
                "learning_rate": r.get("learning_rate"),
                "train_ppl": math.exp(r["loss"]),
                "valid_ppl": math.exp(r["val_loss"]) if "val_loss" in r else None,
                "test_ppl": r.get("test_perplexity"),
                "elapsed_seconds": r.get("elapsed_seconds"),
                "cpu_seconds": r.get("cpu_seconds"),
            }
            for r in rows
        ],
        "best": {
            "valid_ppl_batch": math.exp(best["val_loss"]),
            "test_ppl_batch": best.get("test_perplexity"),
            "valid_ppl_stream": valid_stream_ppl,
            "test_ppl_stream": test_stream_ppl,
            "test_tokens_scored_stream": scored,
        },
        "published": recipe.get("published"),
        "load_average_at_end": os.getloadavg(),
        "command": "python benchmarks/ptb.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    write_json(out + ".json", summary, indent=2, end="\n")
    title = f"PTB {args.recipe}: best test ppl {test_stream_ppl:.1f}"
    plot(rows, out + ".png", title, recipe.get("published"))
    print(json.dumps(summary["best"], indent=2))
    print(f"best epoch {best['epoch']}, train time {summary['train_seconds'] / 60:.1f} min "
          f"({train_cpu / 60:.1f} CPU-min), "
          f"wall {wall / 60:.1f} min; wrote {out}.json and {out}.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
