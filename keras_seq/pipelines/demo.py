"""`keras-seq demo`: the translation job end to end, in a few minutes on a laptop CPU.

1. Trains an English -> French attention translator (the default
   `TranslatorRecipe`: bidirectional LSTM encoder, LSTM decoder with Bahdanau
   attention) on the 30,000 shortest bundled Tatoeba pairs for a fixed amount
   of work. It starts from the bundled start weights (`START_FILE`: the same
   recipe after `START_PASSES` passes over the same training pairs, stored in
   float16; `make_start` / `python apps/demo_start.py` writes them) and trains
   `DEMO_PASSES` more passes with the learning rate annealed to 0
   (`FINE_TUNING`; about 1.5 minutes on a quiet 2-core CPU, 3 beside a
   CPU-bound neighbour), so its quality does not follow the machine's load; `from_scratch=True` (`--from-scratch`) trains
   `SCRATCH_PASSES` passes from a random start instead. A time cap
   (`minutes`, default 5) stops training earlier only on a much slower
   machine. It says what it trained for: the start, the passes completed (a
   pass the cap interrupted counts as the batches it got), optimizer steps,
   minutes and whether the cap stopped it. It trains a translator only, no
   language model.
2. Scores it on held-out test pairs it never saw (BLEU and chrF by
   sacrebleu, greedy decoding and beam search) and shows a handful of
   translations with both. The start weights never saw them either: they were
   trained on the same seeded training split.
3. Exports it to `exported/fra-eng/<version>/` (SavedModel, TF Serving
   layout, strings in and out) and, when the `onnx` extra is installed,
   `exported/fra-eng/onnx/` (ONNX), and checks that the exports give the
   Keras model's translations.
4. Prints what to run next.

The figures are what a few CPU-minutes buy; `keras-seq train-translator`
without a time limit trains the same recipe on all the pairs to convergence.
"""

import os
import sys
import time

from keras_seq import errors
from keras_seq import extras
from keras_seq.datasets import DATASETS_DIR
from keras_seq.pipelines import warm_start
from keras_seq.pipelines.translation_training import train_translator
from keras_seq.recipes import TranslatorRecipe

__all__ = ["make_start", "run_demo"]

# The work the demo trains for: passes over DEMO_PAIRS pairs (an epoch is one
# pass: 30,000 pairs make about 420 batches of 64, under the recipe's cap of
# 1,000). About 30 s a pass on a quiet 2-core CPU, validation included; about
# 70 s beside a CPU-bound process.
DEMO_PASSES = 3
# The bundled start: the demo's recipe after START_PASSES passes over its training split.
START_FILE = os.path.join(DATASETS_DIR, "fra-eng-demo-start.weights.h5")
START_PASSES = 5
# Passes from a random start (`from_scratch`): about as many passes in all.
SCRATCH_PASSES = 8
# From the start, the learning rate warms up again (Adam's moments start anew) to 1e-3 and
# follows a cosine down to 0 over the passes: validation loss 1.338 after 3 passes, against
# 1.495 for the recipe's constant 2e-3 (benchmarks/RESULTS.md, "`keras-seq demo`").
FINE_TUNING = dict(learning_rate=1e-3, lr_schedule="cosine", warmup_steps=100)
# The time cap of training (minutes): generous, so it only stops a machine
# much slower than planned; scoring and export take about a minute more.
DEFAULT_MINUTES = 5.0
DEMO_PAIRS = 30000
# Held-out test pairs scored (beam search over all of them would take long).
DEMO_TEST_SENTENCES = 500
EXPORT_DIR = os.path.join("exported", "fra-eng")
# Most output tokens of the exported decoder.
EXPORT_MAX_LENGTH = 32
EXAMPLES = [
    "I am cold.",
    "Where is the station?",
    "Tom is my friend.",
    "We have to go now.",
    "She likes to read books.",
]


def _print(message=""):
    print(message, flush=True)


def run_demo(minutes=None, run_dir=os.path.join("runs", "demo"), *, export_dir=EXPORT_DIR,
             verbose=None, passes=None, from_scratch=False):
    """Runs the demo (see the module docstring).

    Args:
        minutes: the time cap of training (float > 0; None: 5); training
            stops at the cap only if `passes` take longer.
        run_dir: the translator's run directory (an earlier demo run there is
            replaced).
        export_dir: where the export goes.
        verbose: the training's progress level (`TrainConfig.verbose`; 0
            quiet); None: 1 on a terminal, else 2 (a line per epoch with
            the learning rate and timings).
        passes: passes over the pairs to train for (int >= 1; None: 3 from
            the bundled start, 8 from scratch).
        from_scratch: start from random weights, not the bundled start.

    Returns:
        0; a step that fails raises a `KerasSeqError`.

    Example:

    >>> run_demo(minutes=5)  # doctest: +SKIP
    0
    """
    minutes = float(minutes or DEFAULT_MINUTES)
    passes = int(passes or (SCRATCH_PASSES if from_scratch else DEMO_PASSES))
    start = None if from_scratch else START_FILE
    if start is not None:
        warm_start.check_start(start)  # a broken install fails before the data is read
    started = time.monotonic()
    origin = ("from random weights" if start is None else
              f"from the bundled start weights ({START_PASSES} passes over the same pairs; "
              "learning rate annealed to 0)")
    _print(f"keras-seq demo: an English -> French attention translator, trained for {passes} "
           f"passes over its pairs {origin} (time cap {minutes:g} min)")
    _print(f"  data: the {DEMO_PAIRS} shortest bundled Tatoeba pairs (bundled:fra-eng); "
           f"run directory: {run_dir}")
    _print()

    _print(f"[1/4] training ({passes} passes, time cap {minutes:g} min)")
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    recipe = TranslatorRecipe().with_training(epochs=passes, max_minutes=minutes,
                                              verbose=verbose,
                                              **({} if start is None else FINE_TUNING))
    result = train_translator(recipe, run_dir, data="bundled:fra-eng", max_pairs=DEMO_PAIRS,
                              overwrite=True, warm_start=start)
    translator = result["translator"]
    _print(_trained_for(translator, result, passes, minutes, start))
    _print()
    _score_and_show(translator)
    _export(translator, export_dir)
    _next_steps(run_dir, export_dir, (time.monotonic() - started) / 60.0)
    return 0


def make_start(path=START_FILE, passes=START_PASSES, run_dir=os.path.join("runs", "demo-start"),
               verbose=2):
    """Trains the demo's recipe from scratch for `passes` passes and writes its start file.

    The same data, split and tokenizers as `run_demo` (the test pairs are
    never seen); no time cap, so the file does not depend on the machine.

    Args:
        path: the `.weights.h5` file to write (float16, with its `.json` sidecar).
        passes: passes over the demo's training pairs.
        run_dir: the run directory of that training.
        verbose: the training's progress level.

    Returns:
        `path`.
    """
    recipe = TranslatorRecipe().with_training(epochs=passes, verbose=verbose)
    result = train_translator(recipe, run_dir, data="bundled:fra-eng", max_pairs=DEMO_PAIRS,
                              overwrite=True)
    translator = result["translator"]
    return warm_start.write_start(
        translator.model, path, translator.source_tokenizer, translator.target_tokenizer,
        passes=passes, data=f"bundled:fra-eng, the {DEMO_PAIRS} shortest pairs, seeded split "
        "(training pairs only)", valid_bleu=round(float(result["valid_bleu"]), 2),
        made_by="python apps/demo_start.py")


def _trained_for(translator, result, passes, minutes, start=None):
    """One line: the passes completed, optimizer steps and minutes trained, and why it stopped.

    A pass the time cap interrupted is counted as the batches it got, not as a pass.
    """
    from keras_seq import runs

    state = runs.RunDir(translator.run_dir).training_state() or {}
    steps = int(translator.model.optimizer.iterations.numpy()) if translator.model.optimizer else 0
    per_pass = max(int(result["batches_per_pass"]), 1)
    done, extra = divmod(steps, per_pass)
    trained = f"{done} pass{'' if done == 1 else 'es'}"
    if extra:
        trained += f" and {extra} of the {per_pass} batches of pass {done + 1}"
    why = {"completed": f"all {passes} passes",
           "early_stopping": "early-stopped: the validation loss stopped improving",
           "time_budget": f"the {minutes:g}-minute time cap stopped it before {passes} passes"}.get(
               result["stop_reason"], result["stop_reason"])
    best = state.get("best_epoch")
    used = ("the final weights are used" if best == state.get("epoch")
            else f"the weights after pass {best} (lowest validation loss) are used")
    batch = translator.run_config["training"]["batch_size"]
    origin = "" if start is None else f" on top of the {START_PASSES} passes of the bundled start"
    return (f"  trained for {trained}{origin} ({steps} steps of {batch} pairs) in "
            f"{float(state.get('elapsed_seconds', 0.0)) / 60.0:.1f} min ({why}); {used}")


def _score_and_show(translator):
    test_pairs = translator.split("test")[:DEMO_TEST_SENTENCES]
    _print(f"[2/4] scoring on {len(test_pairs)} held-out test pairs (never used in training)")
    scores = translator.evaluate(test_pairs)
    options = translator.options
    beam_label = f"beam {options.beam_size}, length penalty {options.length_penalty:g}"
    _print(f"  {'decoding':<30}{'BLEU':>7}{'chrF':>8}")
    _print(f"  {'greedy':<30}{scores['greedy']['bleu']:>7.2f}{scores['greedy']['chrf']:>8.2f}")
    _print(f"  {beam_label:<30}{scores['beam']['bleu']:>7.2f}{scores['beam']['chrf']:>8.2f}")
    _print()
    greedy = translator.translate(EXAMPLES, greedy=True)
    beam = translator.translate(EXAMPLES)
    for sentence, g, b in zip(EXAMPLES, greedy, beam):
        _print(f"  {sentence}")
        _print(f"    greedy: {g.text}")
        _print(f"    beam {options.beam_size}: {b.text}")
    for (source, reference), g, b in list(zip(test_pairs, scores["outputs"]["greedy"],
                                              scores["outputs"]["beam"]))[:3]:
        _print(f"  {source}   (held out; reference: {reference})")
        _print(f"    greedy: {g}")
        _print(f"    beam {options.beam_size}: {b}")
    _print()


def _export(translator, export_dir):
    onnx_note = extras.missing_message("onnx", "ONNX export")
    _print(f"[3/4] exporting to {export_dir}/ (SavedModel{'' if onnx_note else ' + ONNX'})")
    if onnx_note:
        _print(f"  skipped: {onnx_note}")
    try:
        path, report = translator.export(export_dir, onnx=onnx_note is None,
                                         max_length=EXPORT_MAX_LENGTH,
                                         parity_sentences=EXAMPLES[:3])
    except errors.KerasSeqError as e:
        if isinstance(e, errors.MissingExtraError):
            raise
        raise errors.KerasSeqError(f"the export in {export_dir} disagrees with the model: {e}") from e
    _print(f"  SavedModel: {path}")
    onnx_dir = os.path.join(export_dir, "onnx")
    if onnx_note is None and os.path.isdir(onnx_dir):
        _print(f"  ONNX:       {onnx_dir}/translate_ids.onnx (beam search inside), encode.onnx, "
               "step.onnx")
    _print(f"  parity: the Keras model, {' and '.join(report)} give the same translations")
    _print()


def _next_steps(run_dir, export_dir, elapsed):
    _print(f"[4/4] done in {elapsed:.1f} min. Next:")
    commands = [
        (f'keras-seq translate {run_dir} "How are you?"', "beam search (5)"),
        (f'keras-seq translate {run_dir} "I am cold." --greedy --plot attention.png',
         "attention map"),
        (f"keras-seq evaluate {run_dir}", "BLEU/chrF on the test split"),
        (f"keras-seq serve {os.path.dirname(export_dir)}/", "TF Serving REST API on :8501"),
        ("curl -s localhost:8501/v1/models/fra-eng:predict "
         "-d '{\"instances\": [\"I am cold.\"]}'", ""),
        ("keras-seq train-translator --max-minutes 30", "all 60,000 pairs"),
    ]
    width = max(len(c) for c, _ in commands if len(c) < 70)
    for command, note in commands:
        _print(f"  {command:<{width}}  # {note}" if note else f"  {command}")
