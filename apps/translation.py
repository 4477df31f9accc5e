"""Translation end to end: train, evaluate, translate, plot attention, export.

Runs the whole job through the library (the same functions as the
`keras-seq` subcommands) on the bundled English-French pairs or on your own
`source<TAB>target` file:

    python apps/translation.py                                  # bundled:fra-eng, 10 min
    python apps/translation.py --data pairs.tsv --max-minutes 30 --run-dir runs/mine
    python apps/translation.py --reverse                        # French -> English
    python apps/translation.py --skip-training --run-dir runs/translator "I am cold."

Steps:

1. `keras_seq.tasks.translation.train`: splits the pairs (the test split is
   held out), fits word vocabularies, trains the default attention recipe
   (bidirectional LSTM encoder, LSTM decoder, Bahdanau attention) with early
   stopping on validation loss within `--max-minutes`.
2. `evaluate`: BLEU and chrF (sacrebleu) of greedy decoding and beam search
   on the held-out test split.
3. `Translator.translate`: translates the given sentences with beam search
   (5, length penalty 0.6), prints the n-best list of the first one and
   saves its attention map as a PNG (`--plot`).
4. `keras_seq.export.export_translator`: SavedModel (TF Serving layout) and
   ONNX in `--export-dir`, checked against the Keras model.

The attention map needs the `plot` extra and ONNX the `onnx` extra
(`pip install "keras-seq[all]"`); without them those steps are skipped with
a note saying what to install.
"""

import argparse
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
    import numpy as np

    from keras_seq import export as export_lib
    from keras_seq import plotting, runs
    from keras_seq.tasks import translation

    args = parse_args(argv)
    # Optional steps whose extra is missing are skipped now, not after training.
    plot_note = extras.missing_message("plot", "the attention map")
    if args.plot and plot_note:
        print(f"skipped: {plot_note}")
        args.plot = None
    onnx_note = extras.missing_message("onnx", "ONNX export")
    if onnx_note and not args.no_export:
        print(f"skipped: {onnx_note}")

    # 1. Train.
    if not args.skip_training:
        translation.train(translation.train_args(
            data=args.data, reverse=args.reverse, run_dir=args.run_dir,
            max_minutes=args.max_minutes, max_pairs=args.max_pairs, model=args.model,
            attention=args.attention, overwrite=True,
        ))

    # 2. Evaluate on the held-out test split.
    config = runs.load_run_config(args.run_dir)
    translation.evaluate(argparse.Namespace(run=args.run_dir, run_config=config, data=None,
                                            split="test", beam=None))

    # 3. Translate, n-best, attention map.
    translator = translation.Translator.from_run(args.run_dir)
    results = translator.translate(args.sentences, beam=5, length_penalty=0.6, n_best=3,
                                   return_attention=True)
    for sentence, result in zip(args.sentences, results):
        print(f"{sentence}\n  -> {result.text}")
        for warning in result.warnings:
            print(f"     (warning: {warning})")
    first = results[0]
    if first.error is None:
        print(f"n-best of {args.sentences[0]!r}:")
        for text, score in first.hypotheses:
            print(f"  {score:8.3f}  {text}")
        if args.plot:
            plotting.plot_attention(first.attention, first.source_tokens, first.output_tokens,
                                    args.plot, title=first.text)
            print(f"attention map written to {args.plot}")

    # 4. Export and check the export.
    if not args.no_export:
        path = export_lib.export_translator(
            translator.model, translator.source_tokenizer, translator.target_tokenizer,
            args.export_dir, beam_size=5, length_penalty=0.6,
            max_length=min(int(translator.model.max_length), 64), onnx=onnx_note is None)
        encoded, _ = translator.prepare(args.sentences)
        encoded = [e for e in encoded if e is not None]
        batch = np.zeros((len(encoded), max(len(e) for e in encoded)), np.int32)
        for i, e in enumerate(encoded):
            batch[i, : len(e)] = e
        report = export_lib.check_parity(translator.model, path, batch)
        print(f"exported to {path}; parity checked with {', '.join(report)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except errors.KerasSeqError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
