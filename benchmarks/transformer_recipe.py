"""Transformer recipes vs the attention RNN at equal process-CPU budgets, on validation (issue 15, item 4).

Each candidate is a `TranslatorRecipe` trained by the library's own
`keras_seq.train_translator` on the files of `benchmarks/make_splits.py`
(`--data train.tsv --valid-data valid.tsv`, no test file: the test file is
never read here), exactly as `keras-seq train-translator` trains it, except
the budget: training stops after the batch that spends `--cpu-minutes` of
*process CPU time* (user + system of all threads; the machine is shared, so a
wall-clock budget would measure the load), with validation, checkpoints, the
plateau schedule and early stopping as usual. Then the best checkpoint is
scored on the whole validation file: BLEU (sacrebleu 13a, cased, detokenized
output against the raw references) and chrF, greedy and beam 5 (length
penalty 0.6, the run's decoding defaults).

    python benchmarks/make_splits.py --out runs/splits
    nice python benchmarks/transformer_recipe.py train t-today --cpu-minutes 15
    python benchmarks/transformer_recipe.py collect     # -> benchmarks/transformer_recipe.json

`train` writes `RUN/bench.json` (runs go to `runs/trecipe-NAME`, git-ignored);
`collect` gathers the runs' files into one JSON. The candidates are spelled
out in `CANDIDATES` (field by field where they depart from a recipe, so they
stay reproducible when the library's defaults change).
"""

import dataclasses
import glob
import json
import os
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import HERE, ROOT, Stopwatch, argument_parser, environment, load_average, write_json


def _today(**changes):
    """`TranslatorRecipe.transformer()` as it was before issue 15, item 4, with `changes`."""
    from keras_seq.recipes.translator import TranslatorRecipe
    from keras_seq.training import TrainConfig

    train = TrainConfig(epochs=30, batch_size=64, optimizer="adam", learning_rate=5e-4,
                        warmup_steps=400, clipnorm=5.0, lr_schedule="plateau", decay_rate=0.5,
                        plateau_patience=1, patience=3)
    train = dataclasses.replace(train, **changes.pop("train", {}))
    values = dict(tokenizer="word", source_vocab_size=16000, target_vocab_size=8000,
                  shared_vocab=False, units=256, layers=3, num_heads=4, dropout=0.1,
                  label_smoothing=0.0, sampled_softmax=0, train=train)
    values.update(changes)
    return TranslatorRecipe.transformer(**values)


_SHARED_SP = dict(tokenizer="sentencepiece", shared_vocab=True, source_vocab_size=8000,
                  target_vocab_size=8000)
_REGULARIZED = dict(dropout=0.3, label_smoothing=0.1)


def _rnn():
    from keras_seq.recipes.translator import TranslatorRecipe

    return TranslatorRecipe.rnn()


CANDIDATES = {
    # The attention-RNN default, the reference.
    "rnn": _rnn,
    # Today's Transformer default.
    "t-today": _today,
    # Regularized: dropout 0.3 (embeddings, residual branches, attention
    # weights), label smoothing 0.1.
    "t-reg": lambda: _today(**_REGULARIZED),
    # ... and one SentencePiece unigram vocabulary of 8,000 pieces for both
    # languages, with the embeddings and output projection tied (one table).
    "t-reg-sp": lambda: _today(**_REGULARIZED, **_SHARED_SP),
    # ... with a peak learning rate of 1e-3.
    "t-reg-sp-lr1e-3": lambda: _today(**_REGULARIZED, **_SHARED_SP,
                                      train=dict(learning_rate=1e-3)),
    # ... with the sampled softmax (512 negatives; it trains without label smoothing).
    "t-drop-sp-sampled": lambda: _today(dropout=0.3, **_SHARED_SP, sampled_softmax=512),
}


def cpu_budget(seconds, record):
    """A Keras callback: stops after the batch that spends `seconds` of process CPU time.

    Fills `record` with the batches, the CPU and wall seconds of training
    (validation included), the load average at each epoch's end and the
    CPU/wall ratio of the first minute.
    """
    import keras

    class CpuBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.watch = Stopwatch()
            record.update(batches=0, loads=[], batches_per_pass=self.params.get("steps"))

        def on_train_batch_end(self, batch, logs=None):
            record["batches"] += 1
            wall, cpu = self.watch.elapsed()
            if "first_minute_cpu_per_wall" not in record and wall >= 60:
                record["first_minute_cpu_per_wall"] = round(cpu / wall, 3)
            if cpu >= seconds:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            record["loads"].append(load_average())
            if record["batches_per_pass"] is None and not self.model.stop_training:
                record["batches_per_pass"] = record["batches"]  # an epoch is a pass here
            if self.watch.cpu >= seconds:  # validation may have spent the rest
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            wall, cpu = self.watch.elapsed()
            record.update(train_wall_s=round(wall, 1), train_cpu_s=round(cpu, 1))

    return CpuBudget()


def _with_budget(seconds, record):
    """Makes `keras_seq.training.train` (what `train_translator` calls) add the CPU budget."""
    from keras_seq import training

    train = training.train

    def budgeted(*args, callbacks=(), **kwargs):
        return train(*args, callbacks=[*callbacks, cpu_budget(seconds, record)], **kwargs)

    training.train = budgeted


def _score(run_dir):
    """BLEU / chrF of greedy and beam-5 decoding on the run's validation file."""
    import keras_seq as ks

    translator = ks.Translator.from_run(run_dir)
    result = translator.evaluate(split="valid")
    scores = {}
    for name in ("greedy", "beam"):
        s = result[name]
        scores[name] = {"bleu": round(s.bleu, 2), "chrf": round(s.chrf, 2),
                        "seconds": round(result["seconds"][name], 1)}
    scores["sentences"] = result["sentences"]
    scores["examples"] = [[src, out] for (src, _), out in
                          zip(translator.split("valid")[:5], result["outputs"]["beam"][:5])]
    return scores


def train(args):
    import keras_seq as ks
    from keras_seq import runs

    recipe = CANDIDATES[args.name]().with_training(max_minutes=args.max_wall_minutes)
    run_dir = args.run_dir or os.path.join(ROOT, "runs", f"trecipe-{args.name}")
    record = {}
    _with_budget(args.cpu_minutes * 60.0, record)
    load_before = load_average()
    result = ks.train_translator(recipe, run_dir, data=os.path.join(args.splits, "train.tsv"),
                                 valid_data=os.path.join(args.splits, "valid.tsv"),
                                 overwrite=True)
    load_after_training = load_average()
    state = runs.RunDir(run_dir).training_state()
    history = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()}
               for h in state["history"]]
    val_losses = [h["val_loss"] for h in history if "val_loss" in h]
    config = runs.load_run_config(run_dir)
    per_pass = record.get("batches_per_pass")
    entry = {
        "name": args.name,
        "recipe": dataclasses.asdict(recipe),
        "model": config["model"],
        "label_smoothing": config["recipe"]["label_smoothing"],
        "vocab": {side: config["tokenizer"][side] for side in ("source", "target")},
        "cpu_minutes_budget": args.cpu_minutes,
        **record,
        "passes": round(record["batches"] / per_pass, 2) if per_pass else None,
        "epochs": state["epoch"],
        "best_epoch": state.get("best_epoch"),
        "best_val_loss": min(val_losses) if val_losses else None,
        "stop_reason": result["stop_reason"],
        "history": history,
        "load": {"before": load_before, "after_training": load_after_training},
    }
    started = time.monotonic()
    entry["valid"] = _score(run_dir)
    entry["valid"]["scoring_wall_s"] = round(time.monotonic() - started, 1)
    entry["load"]["after_scoring"] = load_average()
    entry["environment"] = environment()
    write_json(os.path.join(run_dir, "bench.json"), entry)
    print(json.dumps({k: v for k, v in entry.items() if k not in ("history", "recipe")},
                     indent=1))


def collect(args):
    entries = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "runs", "trecipe-*", "bench.json"))):
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
        entries[entry["name"]] = entry
    write_json(args.out, {"splits": os.path.relpath(args.splits, ROOT), "runs": entries})
    for name, e in entries.items():
        v = e["valid"]
        print(f"{name:20s} cpu {e['train_cpu_s'] / 60:5.1f} min  wall {e['train_wall_s'] / 60:5.1f} "
              f"min  passes {e['passes']}  best val loss {e['best_val_loss']:.3f}  BLEU "
              f"{v['greedy']['bleu']:.2f} / {v['beam']['bleu']:.2f}  chrF "
              f"{v['greedy']['chrf']:.2f} / {v['beam']['chrf']:.2f}")
    print(f"wrote {args.out}")


def main(argv=None):
    parser = argument_parser(__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one candidate and score it on the validation file")
    p.add_argument("name", choices=sorted(CANDIDATES))
    p.add_argument("--cpu-minutes", type=float, default=15.0)
    p.add_argument("--max-wall-minutes", type=float, default=90.0,
                   help="a wall-clock cap as well (a safety net, not the budget)")
    p.add_argument("--run-dir", default=None)
    p.set_defaults(run=train)
    p = sub.add_parser("collect", help="gather the runs' bench.json files")
    p.add_argument("--out", default=os.path.join(HERE, "transformer_recipe.json"))
    p.set_defaults(run=collect)
    for p in sub.choices.values():
        p.add_argument("--splits", default=os.path.join(ROOT, "runs", "splits"))
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
