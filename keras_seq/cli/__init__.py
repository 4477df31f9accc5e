"""The `keras-seq` command: train, decode, evaluate, export and serve.

    keras-seq train-lm          train a recurrent/Transformer language model
    keras-seq generate          sample text from a trained language model
    keras-seq train-translator  train an attention encoder-decoder / Transformer
    keras-seq translate         translate sentences with a trained translator
    keras-seq evaluate          perplexity (LM) or BLEU/chrF (translator) of a run
    keras-seq export            SavedModel (TF Serving layout) + ONNX
    keras-seq serve             HTTP server over an exported model
    keras-seq demo              train, evaluate and export a small translator

The package, by concern (nothing here imports TensorFlow, so `--help` and
bad-argument errors are instant):

    arguments       argparse types: positive_int, probability, data_spec, ...
    parser          Parser, Formatter, subparser, the training flags
    checks          run and export directories, checked before TensorFlow loads
    language_model  train-lm, generate; evaluate / export of an LM run
    translator      train-translator, translate, demo; evaluate / export of a
                    translator run
    run_commands    evaluate and export: pick the job of the run's task
    serve           serve (flags from `keras_seq.serving.cli.add_arguments`)
    runner          quiet TensorFlow import, lazy job import, one-line errors

Each command's handler (`_cmd_*`) checks the flags and the run directory
without TensorFlow, then names a job (`_run_*`, re-exported here) that `main`
calls with the Namespace after importing TensorFlow quietly; the job maps the
flags onto a recipe, `DecodeOptions` or plain keyword arguments and calls the
library. Nothing below this package sees the Namespace, and nothing derived is
written back into it. Unset flags are None: the recipe's defaults, which
`--help` shows. Every command takes `-q/--quiet` and `-v/--verbose`
(`keras_seq.progress`), resolved to one level passed to the library.

Errors a user can fix (`KerasSeqError`, `ValueError`, `OSError`, a missing
dependency) are printed as one line, `keras-seq: error: <message>`, with exit
status 2; `--debug` shows the traceback. A job returns None (exit status 0)
or an int exit status. `keras_seq.cli.prepare(argv)` returns the checked
Namespace and the job `(module, function)` without running it.

Example:

    keras-seq train-lm --epochs 5 --max-minutes 30
    keras-seq generate runs/lm "Happy families" --top-p 0.9 --length 300
"""

import sys
import traceback

from keras_seq import errors
from keras_seq.cli import language_model
from keras_seq.cli import run_commands
from keras_seq.cli import serve
from keras_seq.cli import translator
from keras_seq.cli.parser import PROG
from keras_seq.cli.parser import Formatter
from keras_seq.cli.parser import Parser
from keras_seq.cli.parser import add_debug
from keras_seq.cli.parser import version
from keras_seq.cli.runner import call_task as _call_task
from keras_seq.cli.runner import describe as _describe

# Re-exported: the argument types, and the jobs `main` imports from this
# package by name (`prepare` returns `("keras_seq.cli", "_run_...")`). `main`
# calls `_call_task` through this module, so a test can replace it here.
from keras_seq.cli.arguments import (  # noqa: E402,F401
    bundled_names, data_spec, dropout_rate, nonnegative_float, nonnegative_int,
    positive_float, positive_int, probability, unit_interval,
)
from keras_seq.cli.checks import export_dir as _export_dir  # noqa: E402,F401
from keras_seq.cli.language_model import (  # noqa: E402,F401
    _generate_options, _lm_recipe, _run_evaluate_lm, _run_export_lm, _run_generate, _run_train_lm,
)
from keras_seq.cli.runner import import_tensorflow_quietly as _import_tensorflow_quietly  # noqa: E402,F401
from keras_seq.cli.serve import _run_serve  # noqa: E402,F401
from keras_seq.cli.translator import (  # noqa: E402,F401
    _read_sentences, _run_demo, _run_evaluate_translator, _run_export_translator,
    _run_train_translator, _run_translate, _translator_recipe,
)

__all__ = ["PROG", "build_parser", "main", "prepare"]


def build_parser():
    """The `keras-seq` argument parser (no TensorFlow import)."""
    parser = Parser(
        prog=PROG,
        description="Train, decode, evaluate, export and serve recurrent and attention sequence models "
        "(Keras 3).",
        epilog="examples:\n"
        "  keras-seq train-lm --epochs 5 --max-minutes 30\n"
        '  keras-seq generate runs/lm "Happy families" --top-p 0.9\n'
        "  keras-seq train-translator --data bundled:fra-eng --attention luong-general\n"
        '  keras-seq translate runs/translator "I am cold." --beam 5\n'
        "  keras-seq export runs/translator --to exported/fra-eng\n"
        "  keras-seq serve exported/ --port 8501\n\n"
        "Run `keras-seq COMMAND --help` for the options of a command.",
        formatter_class=Formatter,
    )
    add_debug(parser, top=True)
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    language_model.add_parsers(subparsers)
    translator.add_parsers(subparsers)
    run_commands.add_parsers(subparsers)
    serve.add_parsers(subparsers)
    translator.add_demo(subparsers)
    return parser


def prepare(argv):
    """Parse and check `argv` and resolve it for its task, without running it.

    Validates arguments and run directories exactly as `main` does; the
    Namespace is returned as parsed (nothing derived is written into it).

    Args:
        argv: the arguments, without the program name.

    Returns:
        `(args, (module_name, function_name))`: the Namespace and the task
        function `main` would call with it.

    Raises:
        SystemExit: a usage error (printed) or --help.
        KerasSeqError, ValueError, OSError: a user error.
    """
    args = build_parser().parse_args(argv)
    if args.command is None:
        raise errors.InputError(f"no command given; run `{PROG} --help`")
    return args, args.handler(args)


def main(argv=None):
    """Run the `keras-seq` command; returns the exit status.

    Args:
        argv: the arguments (without the program name); default `sys.argv[1:]`.

    Returns:
        0 on success, 2 for a usage or user error, 130 when interrupted, or
        the status a task returned.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error already printed
        return e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        module_name, function_name = args.handler(args)
        status = _call_task(module_name, function_name, args)
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except (errors.KerasSeqError, ValueError, OSError, ImportError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"{PROG}: error: {_describe(e)}", file=sys.stderr)
        return 2
    return status if isinstance(status, int) else 0
