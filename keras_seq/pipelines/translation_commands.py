"""The translator jobs of `keras-seq` as functions of plain values.

`keras_seq.cli` maps the flags of `translate`, `evaluate` and `export` onto
these keyword arguments; each prints what the command prints (results on
stdout, progress and per-line warnings on stderr) and returns the exit
status. Use `Translator` directly for results as Python objects.
"""

import os
import sys

from keras_seq import errors
from keras_seq import extras
from keras_seq import progress
from keras_seq.pipelines.translator import Translator
from keras_seq.pipelines.translator import format_scores
from keras_seq.recipes.common import say

__all__ = ["check_plot_path", "evaluate_run", "export_run", "export_steps", "print_parity", "translate_lines"]


def translate_lines(run, sentences, *, beam=None, length_penalty=None, greedy=False, n_best=1,
                    max_length=None, plot=None, verbose=0):
    """`keras-seq translate`: one output line per input line.

    Args:
        run: a translator run directory, or a list of them (an ensemble,
            see `Translator.from_run`).
        sentences: list of str (a line may be bytes when it is not valid UTF-8).
        beam: beam size (None: the run's).
        length_penalty: GNMT alpha >= 0 (None: the run's).
        greedy: greedy decoding instead of beam search.
        n_best: translations per line (<= beam).
        max_length: most output tokens (None: 1.5 x the source + 10).
        plot: a PNG path for the attention map of the first translated line.
        verbose: a progress bar over the lines, on stderr, at this
            `keras_seq.progress` level (0, silent, by default).

    Output (stdout): with `n_best=1` one translation per input line (an empty
    line for a line that could not be translated); with `n_best > 1` the Moses
    n-best format, `LINE ||| translation ||| score`, N lines per input line
    (LINE counts from 0). Warnings and errors go to stderr with the line
    number (from 1).

    Returns:
        0 when every non-blank line was translated, 1 otherwise (the other
        lines' translations are printed all the same).
    """
    if not sentences:
        raise errors.InputError("no text to translate")
    if plot:
        extras.check("plot", "--plot")
        check_plot_path(plot)
    translator = Translator.from_run(run)
    results = translator.translate(
        sentences, greedy=greedy, beam=beam, length_penalty=length_penalty,
        n_best=n_best, max_length=max_length, return_attention=bool(plot), verbose=verbose,
    )
    failed = 0
    for number, result in enumerate(results, start=1):
        if result.error == "empty line":
            say(f"line {number}: empty line; nothing to translate")
        elif result.error:
            failed += 1
            say(f"line {number}: not translated: {result.error}")
        for warning in result.warnings:
            say(f"line {number}: warning: {warning}")
        if n_best > 1:
            for text, score in result.hypotheses:
                print(f"{number - 1} ||| {text} ||| {score:.4f}")
        else:
            print(result.text)
    sys.stdout.flush()
    if plot:
        _plot_first(results, plot)
    return 1 if failed else 0


def check_plot_path(plot):
    """Refuses a `--plot` path that cannot be written: a directory, or in a missing one."""
    if os.path.isdir(plot):
        raise errors.InputError(f"--plot {plot} is a directory; give the PNG file to write")
    directory = os.path.dirname(os.path.abspath(plot))
    if not os.path.isdir(directory):
        raise errors.InputError(f"--plot {plot}: directory {directory} does not exist")


def _plot_first(results, plot):
    first = next((r for r in results if r.attention is not None and r.output_tokens), None)
    if first is None:
        say("--plot: no sentence was translated; no attention map written")
        return
    from keras_seq import plotting

    try:
        plotting.plot_attention(first.attention, first.source_tokens, first.output_tokens, plot,
                                title=first.text)
    except OSError as e:  # name the file asked for, not the temporary one beside it
        raise errors.InputError(f"--plot {plot}: cannot write it ({e.strerror or e})") from e
    say(f"attention map of the first sentence written to {plot}")


def evaluate_run(run, *, data=None, split="test", beam=None, verbose=0):
    """`keras-seq evaluate` for a translator: BLEU and chrF, greedy vs beam search.

    Args:
        run: a translator run directory, or a list of them (an ensemble,
            see `Translator.from_run`; the data split is the first run's).
        data: a pairs file or "bundled:NAME" (read with the run's column
            order: `reverse` runs swap its columns too), or None for the run's
            own `split`.
        split: "train" | "valid" | "test" (the split held out from training
            and model selection).
        beam: beam size (None: the run's, 5).
        verbose: a progress bar per decoding, on stderr, at this
            `keras_seq.progress` level (0, silent, by default).

    Returns:
        0; prints a table of BLEU and chrF (sacrebleu, detokenized,
        case-sensitive) for greedy decoding and beam search.
    """
    import dataclasses

    translator = Translator.from_run(run)
    options = translator.options
    if beam:
        options = dataclasses.replace(options, beam_size=int(beam))
    if data:
        pairs, where = translator.load_pairs(data), data
    else:
        pairs = translator.split(split)
        where = translator.split_source(split)
    progress.echo(f"translating {len(pairs)} sentences of the {where}", verbose)
    print(format_scores(translator.evaluate(pairs, options, verbose=verbose), where))
    return 0


def export_run(run, to, *, version=None, onnx=True, verbose=0, quantize=None):
    """`keras-seq export` for a translator: SavedModel + ONNX, parity-checked.

    Writes `to/<version>/` (TF Serving layout: `translate` on strings,
    `translate_ids`, `encode`, `step`) with the run's decoding settings (beam
    5, length penalty 1.2 for new runs) fixed in the graph and, with `onnx`,
    the id-level graphs in `to/onnx/*.onnx` (the string signature too); then
    checks that the Keras model, the reloaded SavedModel and onnxruntime agree
    on a few validation sentences. With `verbose`, the steps are named as they
    start (`keras_seq.progress.Steps`).

    Returns:
        0; prints the version directory and the parity report.
    """
    if onnx:
        extras.check("onnx", "ONNX export")
    translator, (path, report) = export_steps(Translator.from_run, run, to, version=version,
                                              onnx=onnx, verbose=verbose, quantize=quantize)
    print(f"exported {translator.run_dir} to {path}")
    print_parity(report)
    return 0


def export_steps(load, run, to, *, version=None, onnx=True, verbose=0, quantize=None):
    """Loads a run with `load(run)` and exports it, naming the steps as they start.

    Shared by the translator and language-model `export` jobs.

    Args:
        load: `Translator.from_run` or `TextGenerator.from_run`.
        run: the run directory.
        to, version, onnx: see `Translator.export`.
        verbose: `keras_seq.progress.Steps` at this level (0: silent).

    Returns:
        `(pipeline, (path, report))`: the loaded pipeline and what its
        `export` returned.
    """
    what = "SavedModel and ONNX" if onnx else "SavedModel"
    with progress.Steps(f"exporting {run}", 2, verbose=verbose, stream=sys.stderr) as steps:
        steps.step("loading the run")
        pipeline = load(run)
        steps.step(f"writing the {what} to {to} and checking parity")
        return pipeline, pipeline.export(to, version=version, onnx=onnx, quantize=quantize)


def print_parity(report):
    """Prints one line per backend of an export's parity report."""
    for backend, outputs in report.items():
        worst = [v for v in outputs.values() if isinstance(v, float)]
        print(f"parity with {backend}: {len(outputs)} outputs agree"
              + (f" (max float difference {max(worst):.2e})" if worst else ""))
