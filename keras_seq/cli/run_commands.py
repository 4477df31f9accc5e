"""evaluate and export: commands over a trained run of either task.

The handler reads the run's config.json (no TensorFlow) and names the job of
its task: `keras_seq.cli.language_model` (`_run_evaluate_lm`,
`_run_export_lm`) or `keras_seq.cli.translator` (`_run_evaluate_translator`,
`_run_export_translator`).
"""

from pathlib import Path

from keras_seq import errors
from keras_seq.cli import checks
from keras_seq.cli import translator
from keras_seq.cli.arguments import data_spec
from keras_seq.cli.arguments import positive_int
from keras_seq.cli.parser import PACKAGE
from keras_seq.cli.parser import subparser


def add_parsers(subparsers):
    """Adds the evaluate and export subcommands."""
    _add_evaluate(subparsers)
    _add_export(subparsers)


def _add_evaluate(subparsers):
    """The evaluate subcommand."""
    p = subparser(
        subparsers,
        "evaluate",
        "evaluate a trained run (perplexity or BLEU/chrF)",
        "Perplexity of a language model, or BLEU and chrF (sacrebleu) of a translator, on the "
        "run's held-out split or on --data.",
        [
            "keras-seq evaluate runs/lm",
            "keras-seq evaluate runs/translator --split test --beam 5",
            "keras-seq evaluate runs/translator --data newstest.tsv",
            "keras-seq evaluate runs/translator --ensemble runs/translator-2",
        ],
    )
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument(
        "--data",
        type=data_spec,
        help="text (LM) or pairs (translator) to evaluate on instead of the run's data",
    )
    p.add_argument(
        "--split", choices=("train", "valid", "test"), default="test", help="split of the run's data"
    )
    p.add_argument("--beam", type=positive_int, help="beam size for translators (default: the task's)")
    translator.add_ensemble_flag(p)
    p.set_defaults(handler=_cmd_evaluate)


def _add_export(subparsers):
    """The export subcommand."""
    p = subparser(
        subparsers,
        "export",
        "export a trained run to SavedModel and ONNX",
        "Write a SavedModel in the TF Serving layout (DIR/VERSION/) with string and token-id "
        "signatures and, unless --no-onnx, the token-id signatures as ONNX graphs in "
        "DIR/onnx/*.onnx (the string signatures too, word tokenizers); the exports are "
        "checked against the Keras model.",
        [
            "keras-seq export runs/translator --to exported/fra-eng",
            "keras-seq export runs/lm --to exported/anna --version 2 --no-onnx",
        ],
    )
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--to", metavar="DIR", help="export directory (default: exported/<run name>)")
    p.add_argument("--version", type=positive_int, help="model version (default: next free)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", default=True,
                   help="skip the ONNX export (DIR/onnx/*.onnx; needs the onnx extra)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="also write dynamically quantized ONNX graphs in DIR/onnx/int8/ "
                        "(served by `serve --onnx --precision int8`), with the BLEU or "
                        "perplexity cost measured on the run's validation data in export.json")
    p.set_defaults(handler=_cmd_export)


def _cmd_evaluate(args):
    """Names the evaluate job of the run's task."""
    task = checks.run_config(args.run)["task"]
    translator.ensemble_runs(args, task)
    if task == "translator":
        return PACKAGE, "_run_evaluate_translator"
    return PACKAGE, "_run_evaluate_lm"


def _cmd_export(args):
    """Checks --to (and the onnx extra); names the export job of the run's task."""
    config = checks.run_config(args.run)
    to = Path(checks.export_dir(args))
    if to.exists() and not to.is_dir():
        raise errors.InputError(f"--to {to} is a file, not a directory")
    if args.quantize and not args.onnx:
        raise errors.InputError("--quantize quantizes the ONNX graphs: drop --no-onnx")
    if args.onnx:
        from keras_seq import extras

        extras.check("onnx", "ONNX export")
    return PACKAGE, "_run_export_lm" if config["task"] == "lm" else "_run_export_translator"
