"""`keras-seq demo`: the main job end to end, in a few minutes on a laptop CPU.

1. Trains an English -> French attention translator (the default recipe of
   `keras-seq train-translator`: bidirectional LSTM encoder, LSTM decoder with
   Bahdanau attention) on the 30,000 shortest bundled Tatoeba pairs, for
   `--minutes` of training (default 4), with a progress bar.
2. Scores it on held-out test pairs it never saw (BLEU and chrF by
   sacrebleu, greedy decoding and beam search) and shows a handful of
   translations with both.
3. Exports it to `exported/fra-eng/<version>/` (SavedModel, TF Serving
   layout, strings in and out) and `exported/fra-eng/onnx/` (ONNX), and
   checks that the SavedModel and onnxruntime give the Keras model's
   translations.
4. Prints what to run next.

The figures are what a few CPU-minutes buy; `keras-seq train-translator`
without a time limit trains the same recipe on all the pairs to convergence.
"""

import os
import sys
import time

from keras_seq import errors
from keras_seq.tasks.common import say

DEFAULT_MINUTES = 4.0
DEMO_PAIRS = 30000
# Held-out test pairs scored (beam search over all of them would take long).
DEMO_TEST_SENTENCES = 500
EXPORT_DIR = os.path.join("exported", "fra-eng")
EXAMPLES = [
    "I am cold.",
    "Where is the station?",
    "Tom is my friend.",
    "We have to go now.",
    "She likes to read books.",
]


def _print(message=""):
    print(message, flush=True)


def run(args):
    """Runs the demo (see the module docstring).

    Args:
        args: `minutes` (float > 0 or None for the default 4) and `run_dir`
            (the translator's run directory, default "runs/demo"; an earlier
            demo run there is replaced).

    Returns:
        None (exit status 0); a step that fails raises a `KerasSeqError`.
    """
    import numpy as np

    from keras_seq import export as export_lib
    from keras_seq.tasks import translation

    minutes = float(getattr(args, "minutes", None) or DEFAULT_MINUTES)
    run_dir = getattr(args, "run_dir", None) or os.path.join("runs", "demo")
    started = time.monotonic()
    _print(f"keras-seq demo: an English -> French attention translator in about {minutes:g} "
           "minutes of training")
    _print(f"  data: the {DEMO_PAIRS} shortest bundled Tatoeba pairs (bundled:fra-eng); "
           f"run directory: {run_dir}")
    _print()

    # 1. Train -------------------------------------------------------------------
    _print(f"[1/4] training (time budget {minutes:g} min)")
    train_args = translation.train_args(
        data="bundled:fra-eng", run_dir=run_dir, max_pairs=DEMO_PAIRS, max_minutes=minutes,
        overwrite=True, verbose=1 if sys.stdout.isatty() else 2,
    )
    result = translation.train(train_args)
    _print()

    # 2. Score and show ------------------------------------------------------------
    model, source_tokenizer, target_tokenizer, config, run = translation.load_run(run_dir)
    translator = translation.Translator(model, source_tokenizer, target_tokenizer)
    test_pairs = translation.load_split(config, "test")[:DEMO_TEST_SENTENCES]
    _print(f"[2/4] scoring on {len(test_pairs)} held-out test pairs (never used in training)")
    scores = translation.score_pairs(translator, test_pairs)
    _print(f"  {'decoding':<30}{'BLEU':>7}{'chrF':>8}")
    _print(f"  {'greedy':<30}{scores['greedy']['bleu']:>7.2f}{scores['greedy']['chrf']:>8.2f}")
    _print(f"  {'beam 5, length penalty 0.6':<30}{scores['beam']['bleu']:>7.2f}"
           f"{scores['beam']['chrf']:>8.2f}")
    _print()
    greedy = translator.translate(EXAMPLES, greedy=True)
    beam = translator.translate(EXAMPLES, beam=5, length_penalty=0.6)
    for sentence, g, b in zip(EXAMPLES, greedy, beam):
        _print(f"  {sentence}")
        _print(f"    greedy: {g.text}")
        _print(f"    beam 5: {b.text}")
    for (source, reference), g, b in list(zip(test_pairs, scores["outputs"]["greedy"],
                                              scores["outputs"]["beam"]))[:3]:
        _print(f"  {source}   (held out; reference: {reference})")
        _print(f"    greedy: {g}")
        _print(f"    beam 5: {b}")
    _print()

    # 3. Export --------------------------------------------------------------------
    _print(f"[3/4] exporting to {EXPORT_DIR}/ (SavedModel + ONNX)")
    path = export_lib.export_translator(
        model, source_tokenizer, target_tokenizer, EXPORT_DIR, beam_size=5, length_penalty=0.6,
        max_length=min(int(model.max_length), 32),
    )
    encoded, _ = translator.prepare(EXAMPLES[:3])
    width = max(len(row) for row in encoded)
    batch = np.zeros((len(encoded), width), np.int32)
    for i, row in enumerate(encoded):
        batch[i, : len(row)] = row
    try:
        report = export_lib.check_parity(model, path, batch)
    except errors.KerasSeqError as e:
        raise errors.KerasSeqError(f"the export in {path} disagrees with the model: {e}") from e
    backends = " and ".join(report)
    _print(f"  SavedModel: {path}")
    onnx_dir = os.path.join(EXPORT_DIR, "onnx")
    if os.path.isdir(onnx_dir):
        _print(f"  ONNX:       {onnx_dir}/translate_ids.onnx (beam search inside), encode.onnx, "
               "step.onnx")
    _print(f"  parity: the Keras model, {backends} give the same translations")
    _print()

    # 4. Next steps ------------------------------------------------------------------
    elapsed = (time.monotonic() - started) / 60.0
    _print(f"[4/4] done in {elapsed:.1f} min. Next:")
    commands = [
        (f'keras-seq translate {run_dir} "How are you?"', "beam search (5)"),
        (f'keras-seq translate {run_dir} "I am cold." --greedy --plot attention.png',
         "attention map"),
        (f"keras-seq evaluate {run_dir}", "BLEU/chrF on the test split"),
        (f"keras-seq serve {os.path.dirname(EXPORT_DIR)}/", "TF Serving REST API on :8501"),
        ("curl -s localhost:8501/v1/models/fra-eng:predict "
         "-d '{\"instances\": [\"I am cold.\"]}'", ""),
        ("keras-seq train-translator --max-minutes 30", "all 60,000 pairs"),
    ]
    width = max(len(c) for c, _ in commands if len(c) < 70)
    for command, note in commands:
        _print(f"  {command:<{width}}  # {note}" if note else f"  {command}")
    return None
