"""Train a word-level LSTM on Anna Karenina and sample from it.

Trains `keras_seq.models.RNNLanguageModel` (2x256 LSTM, tied embeddings,
dropout 0.3, truncated BPTT over 35 words, Adam: the default
`ks.LanguageModelRecipe`) on the bundled Anna Karenina with
`ks.train_language_model` (the job behind `keras-seq train-lm`) for
`--minutes` of wall-clock time, then prints the continuation of a few prompts
with `ks.TextGenerator`: greedy decoding, beam search and random sampling at
several temperatures and top-k / top-p values.

A run directory that already holds a trained model is reused (pass
`--retrain` to start over, or `--resume` to train it for `--minutes` more).

Usage:

    python apps/text_generation.py                    # ~5 minutes of training
    python apps/text_generation.py --minutes 30 --run-dir runs/anna
    python apps/text_generation.py --prompt "Levin was" --length 80 --seed 7

The same with the command line:

    keras-seq train-lm --run-dir runs/anna --max-minutes 30
    keras-seq generate runs/anna "Anna and the prince" --length 200 \\
        --temperature 0.6 --top-k 10 --seed 42
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

try:
    import keras_seq as ks
except ModuleNotFoundError:  # running from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import keras_seq as ks

# (label, decoding settings; the sampling ones get --seed)
SETTINGS = [
    ("greedy", dict()),
    ("beam 4", dict(beam_size=4)),
    ("temperature 0.5", dict(temperature=0.5)),
    ("temperature 0.8, top-k 10", dict(temperature=0.8, top_k=10)),
    ("temperature 1.0, top-k 40", dict(temperature=1.0, top_k=40)),
    ("temperature 1.0, top-p 0.9", dict(temperature=1.0, top_p=0.9)),
]


def train(args):
    """Trains (or resumes) the run in `args.run_dir` for `args.minutes`."""
    if args.resume:
        # The time budget counts over the whole run: extend it.
        state = ks.runs.RunDir(args.run_dir).training_state() or {}
        spent = float(state.get("elapsed_seconds", 0.0)) / 60.0
        recipe = ks.LanguageModelRecipe.from_run(args.run_dir)
        recipe = recipe.with_training(epochs=100, max_minutes=spent + args.minutes)
    else:
        recipe = ks.LanguageModelRecipe().with_training(epochs=100, max_minutes=args.minutes)
    print(f"training for {args.minutes:g} min into {args.run_dir} ...", flush=True)
    result = ks.train_language_model(recipe, args.run_dir,
                                     data=None if args.resume else args.data,
                                     resume=args.resume, overwrite=args.retrain)
    print(f"validation perplexity: {result.valid_perplexity:.2f}")
    print(f"test perplexity: {result.test_perplexity:.2f} ({result.test_tokens} tokens)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training time budget (wall clock)")
    parser.add_argument("--run-dir", default="runs/anna-lm", help="run directory")
    parser.add_argument("--data", default=ks.recipes.language_model.DEFAULT_DATA,
                        help="text to train on")
    parser.add_argument("--retrain", action="store_true", help="start over in --run-dir")
    parser.add_argument("--resume", action="store_true", help="train the existing run for --minutes more")
    parser.add_argument("--prompt", action="append",
                        help="prompt to continue (repeatable; default: three openings)")
    parser.add_argument("--length", type=int, default=60, help="words to generate per sample")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.length < 1:
        parser.error("--minutes must be > 0 and --length >= 1")
    prompts = args.prompt or ["Anna and the prince", "Levin was", "Happy families are"]

    try:
        run = ks.runs.RunDir(args.run_dir)
        trained = run.path.is_dir() and run.has_checkpoint()
        if args.retrain or args.resume or not trained:
            train(args)
        else:
            print(f"reusing the trained model in {args.run_dir} (--retrain to start over)")

        generator = ks.TextGenerator.from_run(args.run_dir)
        for prompt in prompts:
            print(f"\n=== {prompt!r}")
            for label, settings in SETTINGS:
                seed = {"seed": args.seed} if "temperature" in settings else {}
                options = ks.DecodeOptions(**settings, **seed)
                text = generator.generate(prompt, length=args.length, options=options)
                print(f"--- {label}:\n{text}")
    except (ks.KerasSeqError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
