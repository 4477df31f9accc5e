"""Translation end to end: train, evaluate, translate, plot attention, export.

Runs the whole job through the library (the same functions as the
`keras-seq` subcommands) on the bundled English-French pairs or on your own
`source<TAB>target` file:

    python apps/translation.py                                  # bundled:fra-eng, 10 min
    python apps/translation.py --data pairs.tsv --max-minutes 30 --run-dir runs/mine
    python apps/translation.py --reverse                        # French -> English
    python apps/translation.py --skip-training --run-dir runs/translator "I am cold."

Steps, all through the public API (`import keras_seq as ks`):

1. `ks.train_translator(ks.TranslatorRecipe(...), run_dir, data=...)`: splits
   the pairs (the test split is held out), fits word vocabularies, trains the
   default attention recipe (bidirectional LSTM encoder, LSTM decoder,
   Bahdanau attention) with early stopping on validation loss within
   `--max-minutes`.
2. `ks.Translator.from_run(run_dir).evaluate()`: BLEU and chrF (sacrebleu) of
   greedy decoding and beam search on the held-out test split.
3. `translator.translate(...)`: translates the given sentences with the
   run's beam search (5, length penalty 1.2), prints the n-best list of the
   first one and saves its attention map as a PNG (`--plot`).
4. `translator.export(...)`: SavedModel (TF Serving layout) and ONNX in
   `--export-dir`, checked against the Keras model.

The attention map needs the `plot` extra and ONNX the `onnx` extra
(`pip install "keras-seq[all]"`); without them those steps are skipped with
a note saying what to install.
"""

import argparse
import dataclasses
import os
import sys

from keras_seq import errors, extras

DEFAULT_SENTENCES = ["I am cold.", "Where is the train station?", "Tom doesn't like cheese."]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Train, evaluate, use and export a translator.")
    parser.add_argument("sentences", nargs="*", default=DEFAULT_SENTENCES,
                        help="sentences to translate after training")
    parser.add_argument("--data", default="bundled:fra-eng", help="pairs file or bundled:NAME")
    parser.add_argument("--reverse", action="store_true", help="swap the pair columns")
    parser.add_argument("--run-dir", default=os.path.join("runs", "translator"))
    parser.add_argument("--max-minutes", type=float, default=10.0, help="training time budget")
    parser.add_argument("--max-pairs", type=int, help="use only the first N pairs")
    parser.add_argument("--model", choices=("rnn", "transformer"), default="rnn")
    parser.add_argument("--attention", choices=("bahdanau", "luong-dot", "luong-general",
                                                "luong-concat"))
    parser.add_argument("--skip-training", action="store_true",
                        help="use the trained run in --run-dir as it is")
    parser.add_argument("--plot", default="attention.png", help="attention map of the first sentence")
    parser.add_argument("--export-dir", default=os.path.join("exported", "translator"))
    parser.add_argument("--no-export", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    import keras_seq as ks

    args = parse_args(argv)
    # Optional steps whose extra is missing are skipped now, not after training.
    plot = args.plot
    plot_note = extras.missing_message("plot", "the attention map")
    if plot and plot_note:
        print(f"skipped: {plot_note}")
        plot = None
    onnx_note = extras.missing_message("onnx", "ONNX export")
    if onnx_note and not args.no_export:
        print(f"skipped: {onnx_note}")

    # 1. Train.
    if not args.skip_training:
        recipe = ks.TranslatorRecipe.for_model(args.model).with_training(
            max_minutes=args.max_minutes)
        if args.attention:
            recipe = dataclasses.replace(recipe, attention=args.attention)
        ks.train_translator(recipe, args.run_dir, data=args.data, reverse=args.reverse,
                            max_pairs=args.max_pairs, overwrite=True)

    # 2. Evaluate on the held-out test split.
    translator = ks.Translator.from_run(args.run_dir)
    scores = translator.evaluate(split="test")
    print(ks.pipelines.format_scores(scores, "test split"))

    # 3. Translate, n-best, attention map.
    results = translator.translate(args.sentences, n_best=3, return_attention=True)
    for sentence, result in zip(args.sentences, results):
        print(f"{sentence}\n  -> {result.text}")
        for warning in result.warnings:
            print(f"     (warning: {warning})")
    first = results[0]
    if first.error is None:
        print(f"n-best of {args.sentences[0]!r}:")
        for text, score in first.hypotheses:
            print(f"  {score:8.3f}  {text}")
        if plot:
            from keras_seq import plotting

            plotting.plot_attention(first.attention, first.source_tokens, first.output_tokens,
                                    plot, title=first.text)
            print(f"attention map written to {plot}")

    # 4. Export and check the export.
    if not args.no_export:
        path, report = translator.export(args.export_dir, onnx=onnx_note is None,
                                         parity_sentences=args.sentences)
        print(f"exported to {path}; parity checked with {', '.join(report)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except errors.KerasSeqError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
