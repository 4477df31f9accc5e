"""Word vs SentencePiece vs BPE vocabularies at equal training steps (issue 15).

Trains the attention-RNN default recipe (`TranslatorRecipe()`) with one
tokenizer setting for a fixed number of batches (not wall clock: the machine
is shared), then scores greedy and beam-5 decoding (BLEU and chrF, sacrebleu
13a on the raw references) on the run's validation split. The test split is
never read.

    python benchmarks/subword.py word --run-dir runs/sw-word --json benchmarks/subword_word.json
    python benchmarks/subword.py bpe-shared --vocab-size 8000 --epochs 2 --steps 500

Settings: `word` (the recipe's word vocabularies, 16,000 source / 8,000
target), `sentencepiece` / `bpe` (one SentencePiece model per language, at
most `--vocab-size` tokens each), `sentencepiece-shared` / `bpe-shared` (one
model of `--vocab-size` tokens for both languages).

    python benchmarks/subword.py id-order --run-dir RUN [--run-dir RUN ...]

prints how far a run's target ids are from frequency order (what the sampled
softmax's log-uniform negatives assume): the median id of the 100 most
frequent target tokens and the share of target tokens whose id is in the upper
half of the vocabulary, over the first 20,000 bundled pairs.
"""

import json
import time

# First: environment and sys.path for TensorFlow and keras_seq (see _common).
from _common import argument_parser, environment, load_average, write_json

SETTINGS = ("word", "sentencepiece", "bpe", "sentencepiece-shared", "bpe-shared")


def _recipe(setting, vocab_size, epochs, steps):
    import keras_seq as ks

    values = dict(steps_per_epoch_cap=steps)
    if setting != "word":
        values.update(tokenizer=setting.split("-")[0], shared_vocab=setting.endswith("-shared"),
                      source_vocab_size=vocab_size, target_vocab_size=vocab_size)
    # No early stop and no time budget: every setting trains the same batches.
    return ks.TranslatorRecipe(**values).with_training(epochs=epochs, patience=epochs + 1,
                                                       verbose=1)


def _scores(translator, pairs, beam):
    from keras_seq import metrics

    started = time.monotonic()
    if beam:
        outputs = translator.translate([s for s, _ in pairs])  # the run's beam 5, alpha 0.6
    else:
        outputs = translator.translate([s for s, _ in pairs], greedy=True)
    scores = metrics.translation_scores([o.text for o in outputs], [t for _, t in pairs])
    return {"bleu": round(scores["bleu"], 2), "chrf": round(scores["chrf"], 2),
            "seconds": round(time.monotonic() - started, 1)}


def _epochs_trained(run_dir):
    """Epochs in the run's training state (checkpoints/state.json)."""
    import os

    with open(os.path.join(run_dir, "checkpoints", "state.json"), encoding="utf-8") as f:
        return json.load(f)["epoch"]


def id_order(run_dirs):
    """Prints, per run, how far its target ids are from frequency order."""
    import numpy as np

    import keras_seq as ks
    from keras_seq import text

    pairs = ks.data.load_pairs("bundled:fra-eng", max_pairs=20000)
    for run_dir in run_dirs:
        tokenizer = text.load_tokenizer(f"{run_dir}/vocab/target")
        ids = np.concatenate([row for row in tokenizer.encode([t for _, t in pairs]) if row])
        counts = np.bincount(ids, minlength=tokenizer.vocab_size)[len(text.RESERVED_TOKENS):]
        top = np.argsort(-counts)[:100] + len(text.RESERVED_TOKENS)
        upper = counts[len(counts) // 2:].sum() / counts.sum()
        print(json.dumps({"run": run_dir, "median_id_of_top100": int(np.median(top)),
                          "share_in_upper_half": round(float(upper), 3)}))


def main():
    parser = argument_parser(__doc__)
    parser.add_argument("setting", choices=SETTINGS + ("id-order",))
    parser.add_argument("--run-dir", default=None, action="append")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=500, help="batches per epoch")
    parser.add_argument("--valid-sentences", type=int, default=1000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--resume-to", type=int, default=None, metavar="EPOCHS",
                        help="continue the run in --run-dir up to this many epochs, then score")
    args = parser.parse_args()

    if args.setting == "id-order":
        return id_order(args.run_dir or [])
    import keras_seq as ks

    run_dir = args.run_dir[-1] if args.run_dir else f"runs/subword-{args.setting}"
    load_before = load_average()
    started = time.monotonic()
    if args.resume_to:
        result = ks.train_translator(None, run_dir, resume=True, train_overrides=dict(
            epochs=args.resume_to, patience=args.resume_to + 1))
    else:
        result = ks.train_translator(
            _recipe(args.setting, args.vocab_size, args.epochs, args.steps), run_dir,
            overwrite=True)
    train_minutes = (time.monotonic() - started) / 60
    translator = ks.Translator.from_run(run_dir)
    pairs = translator.split("valid")[: args.valid_sentences]
    target = translator.target_tokenizer
    lengths = [len(ids) for ids in target.encode([t for _, t in pairs])]
    report = {
        "setting": args.setting,
        "vocab": {"source": translator.source_tokenizer.vocab_size, "target": target.vocab_size,
                  "type": target.type_name},
        # Batches: an epoch is --steps batches, or fewer when the pass runs out
        # (Keras then ends the epoch early: 860 batches a pass give 500 + 360).
        "epochs": _epochs_trained(run_dir),
        "steps_per_epoch_cap": args.steps,
        "stop_reason": result["stop_reason"],
        "mean_target_tokens": round(sum(lengths) / len(lengths), 2),
        "valid_sentences": len(pairs),
        "greedy": _scores(translator, pairs, beam=False),
        "beam5": _scores(translator, pairs, beam=True),
        "train_minutes": round(train_minutes, 1),
        "load_average": {"before": load_before, "after": load_average()},
        "environment": environment(),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
