"""The `keras-seq` command: train, decode, evaluate, export and serve.

    keras-seq train-lm          train a recurrent/Transformer language model
    keras-seq generate          sample text from a trained language model
    keras-seq train-translator  train an attention encoder-decoder / Transformer
    keras-seq translate         translate sentences with a trained translator
    keras-seq evaluate          perplexity (LM) or BLEU/chrF (translator) of a run
    keras-seq export            SavedModel (TF Serving layout) + ONNX
    keras-seq serve             HTTP server over an exported model
    keras-seq demo              train, evaluate and export a small translator

This module parses and checks the arguments (with no TensorFlow import, so
`--help` and bad-argument errors are instant), validates run directories,
then runs the command's job over the library. Errors a user can
fix (`KerasSeqError`, `ValueError`, `OSError`, a missing dependency) are
printed as one line, `keras-seq: error: <message>`, with exit status 2;
`--debug` shows the traceback.

Each command's handler (`_cmd_*`) checks the flags and the run directory
without TensorFlow, then names a job (`_run_*`) that `main` calls with the
Namespace after importing TensorFlow quietly; the job maps the flags onto a
recipe, `DecodeOptions` or plain keyword arguments and calls the library.
Nothing below this module sees the Namespace, and nothing derived is written
back into it. Unset flags are None: the recipe's defaults, which `--help` shows.

Translator commands (train-translator, translate, demo, and evaluate / export
of a translator run):
    train-translator  `_translator_recipe(args)`: `TranslatorRecipe.for_model(
               --model)` with the given flags (--vocab-size sets both sides,
               --seed also seeds the data split); the rnn-only flags are an
               error with --model transformer. Then
               `keras_seq.pipelines.train_translator(recipe, --run-dir,
               data=--data, reverse=, max_pairs=, overwrite=)`; with --resume,
               `train_translator(None, --run-dir, resume=True,
               train_overrides={given training flags})` (the run's own recipe).
    translate  `translation_commands.translate_lines(RUN, sentences, beam=,
               length_penalty=, n_best=, max_length=, plot=)`: sentences from
               TEXT, --input FILE or stdin (blank lines kept so outputs align),
               beam None with --greedy; --plot checks the plot extra first.
    evaluate   `translation_commands.evaluate_run(RUN, data=, split=, beam=)`:
               `Translator.from_run(RUN).evaluate(...)`, printed by `format_scores`.
    export     `translation_commands.export_run(RUN, --to, version=, onnx=)`:
               `Translator.export`; the onnx extra is checked first.
    demo       `keras_seq.pipelines.demo.run_demo(--minutes, --run-dir)`.
    serve      `keras_seq.serving.create_app(DIR, onnx=--onnx)` on uvicorn; the
               serve extra (and onnx with --onnx) is checked first.

Language-model commands (train-lm, generate, and evaluate / export of an LM
run) map their flags onto the library and print its results; no Namespace
leaves this module:
    train-lm   `_lm_recipe(args)`: `LanguageModelRecipe.for_model(--model,
               --tokenizer, **flags)` (unset flags are None: the recipe's
               defaults, which `--help` shows); with --resume the run's own
               `LanguageModelRecipe.from_run` with the training flags applied.
               Then `keras_seq.pipelines.train_language_model(recipe, --run-dir,
               data=--data, resume=, overwrite=)`.
    generate   `_generate_options(args)` -> `keras_seq.decoding.DecodeOptions`
               (--greedy; --beam N with --num-samples as the n-best; otherwise
               sampling: --temperature (1.0), --top-k, --top-p, --seed), then
               `TextGenerator.from_run(RUN).generate([PROMPT], length=--length,
               options=..., num_samples=--num-samples)`.
    evaluate   `TextGenerator.from_run(RUN).evaluate(data=--data, split=--split)`.
    export     `TextGenerator.from_run(RUN).export(--to, version=--version,
               onnx=--onnx)` (the onnx extra is checked first).

A job returns None (exit status 0) or an int exit status.
`keras_seq.cli.prepare(argv)` returns the checked Namespace and the job
`(module, function)` without running it.

Example:

    keras-seq train-lm --epochs 5 --max-minutes 30
    keras-seq generate runs/lm "Happy families" --top-p 0.9 --length 300
"""

import argparse
import importlib
import os
import sys
import traceback
from pathlib import Path

from keras_seq import errors, runs

PROG = "keras-seq"


# ----------------------------------------------------------------------------
# Argument types (each raises argparse.ArgumentTypeError with a clear message)
# ----------------------------------------------------------------------------


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text):
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def nonnegative_int(text):
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def positive_float(text):
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonnegative_float(text):
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def probability(text):
    """A number in (0, 1]."""
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def unit_interval(text):
    """A number in [0, 1]."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def dropout_rate(text):
    """A number in [0, 1)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def port_number(text):
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 1..65535, got {text!r}")
    return value


def bundled_names():
    """Names usable as `bundled:NAME` (files shipped in keras_seq/datasets)."""
    from keras_seq.datasets import BUNDLED_DATA

    return sorted(BUNDLED_DATA)


def data_spec(text):
    """`bundled:NAME` with a known NAME, or an existing file (as `keras_seq.data.resolve_data`)."""
    if not text:
        raise argparse.ArgumentTypeError("must be a file path or bundled:NAME, got an empty string")
    if text.startswith("bundled:"):
        name = text[len("bundled:") :]
        names = bundled_names()
        if name not in names:
            raise argparse.ArgumentTypeError(
                f"unknown bundled data set {name!r} (available: {', '.join(names) or 'none'})"
            )
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"data path {text} is a directory, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"data file {text} does not exist")
    return str(path)


# ----------------------------------------------------------------------------
# Parser
# ----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit with status 2."""

    def error(self, message):
        hint = f"see `{self.prog} --help`"
        self.exit(2, f"{PROG}: error: {message} ({hint})\n")


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the example blocks as written and shows defaults that are not None."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_debug(parser, *, top=False):
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show the full traceback of an error",
    )


def _subparser(subparsers, name, help, description, examples):
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=_Formatter,
    )
    _add_debug(parser)
    return parser


def _add_training_flags(parser, *, default_data, default_run_dir, models, default_model):
    group = parser.add_argument_group("data and run directory")
    group.add_argument(
        "--data",
        type=data_spec,
        default=default_data,
        help="training data: a file path or bundled:NAME " f"(bundled: {', '.join(bundled_names())})",
    )
    group.add_argument(
        "--run-dir", default=default_run_dir, help="where config, vocab, checkpoints and logs go"
    )
    group.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    group.add_argument(
        "--overwrite", action="store_true", help="start over in a --run-dir that already holds a trained run"
    )

    group = parser.add_argument_group("training (unset values use the task's recipe)")
    group.add_argument("--model", choices=models, default=default_model, help="model family")
    group.add_argument("--epochs", type=positive_int, help="number of epochs")
    group.add_argument("--batch-size", type=positive_int, help="global batch size")
    group.add_argument(
        "--max-minutes",
        type=positive_float,
        help="wall-clock budget over the whole run; stops after the batch that spends it",
    )
    group.add_argument("--seed", type=_int, help="random seed")
    group.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "rmsprop"), help="optimizer")
    group.add_argument("--learning-rate", type=positive_float, help="peak learning rate")
    group.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine", "plateau", "step"),
        help="constant; cosine decay; plateau (halve when val loss stalls); "
        "step (multiply by --decay-rate every epoch from --decay-start-epoch on)",
    )
    group.add_argument(
        "--decay-start-epoch", type=positive_int, help="first decayed epoch of --lr-schedule step (1-based)"
    )
    group.add_argument(
        "--decay-rate", type=probability, help="multiplier of the step/plateau schedules (0, 1]"
    )
    group.add_argument("--warmup-steps", type=nonnegative_int, help="linear learning-rate warmup steps")
    group.add_argument(
        "--anneal-to-budget",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --max-minutes, decay the learning rate on a cosine over the time budget "
        "(on top of --lr-schedule), so the run ends annealed (default: the task's recipe)",
    )
    group.add_argument(
        "--clipnorm", type=nonnegative_float, help="clip the gradient's global norm (0 = off; default 5)"
    )
    group.add_argument(
        "--patience", type=positive_int, help="early stopping after N epochs without val-loss improvement"
    )
    group.add_argument(
        "--mixed-precision", action="store_true", default=None, help="float16 (GPU) / bfloat16 (CPU) compute"
    )
    group.add_argument(
        "--strategy", choices=("auto", "default", "mirrored"), help="tf.distribute strategy (default auto)"
    )
    jit = group.add_mutually_exclusive_group()
    jit.add_argument(
        "--jit",
        dest="jit_compile",
        action="store_const",
        const=True,
        default=None,
        help="force XLA compilation",
    )
    jit.add_argument(
        "--no-jit", dest="jit_compile", action="store_const", const=False, help="disable XLA compilation"
    )
    group.add_argument(
        "--sampled-softmax",
        type=nonnegative_int,
        default=None,
        metavar="N",
        help="train with a sampled softmax over N negative classes; 0 = full softmax "
        "(default: the task's recipe)",
    )


def build_parser():
    """The `keras-seq` argument parser (no TensorFlow import)."""
    parser = _Parser(
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
        formatter_class=_Formatter,
    )
    _add_debug(parser, top=True)
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}",
                        help="print the version and exit")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # train-lm ---------------------------------------------------------------
    p = _subparser(
        subparsers,
        "train-lm",
        "train a language model",
        "Train a recurrent (LSTM/GRU/SimpleRNN) or Transformer language model with truncated "
        "backpropagation through time. Checkpoints after every epoch; --resume continues.",
        [
            "keras-seq train-lm --epochs 5 --max-minutes 30",
            "keras-seq train-lm --data book.txt --tokenizer char --seq-len 100 --units 512",
            "keras-seq train-lm --optimizer sgd --learning-rate 1 --lr-schedule step --decay-start-epoch 5",
            "keras-seq train-lm --resume",
        ],
    )
    from keras_seq.recipes import language_model as lm_recipe

    _add_training_flags(
        p,
        default_data=lm_recipe.DEFAULT_DATA,
        default_run_dir=lm_recipe.DEFAULT_RUN_DIR,
        models=lm_recipe.MODELS,
        default_model=lm_recipe.LanguageModelRecipe.model,
    )
    g = p.add_argument_group("language model (unset values use the recipe of --model and --tokenizer)")
    g.add_argument("--tokenizer", choices=lm_recipe.TOKENIZERS,
                   default=lm_recipe.LanguageModelRecipe.tokenizer, help="tokenizer")
    g.add_argument("--vocab-size", type=positive_int, help="vocabulary size (word/wordpiece)")
    g.add_argument("--min-frequency", type=positive_int, help="drop tokens seen fewer times")
    g.add_argument("--seq-len", type=positive_int, help="BPTT length (tokens per training chunk)")
    g.add_argument("--units", type=positive_int, help="hidden units per layer")
    g.add_argument("--layers", type=positive_int, help="number of layers")
    g.add_argument("--embedding-dim", type=positive_int, help="embedding size")
    g.add_argument("--dropout", type=dropout_rate, help="dropout rate in [0, 1)")
    g.add_argument(
        "--tie-embeddings",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="share the input embedding and output projection",
    )
    _show_defaults(p, _lm_help_defaults())
    p.set_defaults(handler=_cmd_train_lm)

    # generate ---------------------------------------------------------------
    p = _subparser(
        subparsers,
        "generate",
        "generate text from a trained language model",
        "Continue PROMPT with a trained language model: random sampling (temperature, top-k, "
        "top-p), greedy decoding or beam search.",
        [
            'keras-seq generate runs/lm "Happy families are"',
            'keras-seq generate runs/lm "Anna" --temperature 0.7 --top-k 40 --length 300',
            'keras-seq generate runs/lm "Anna" --beam 4 --num-samples 2',
        ],
    )
    p.add_argument("run", metavar="RUN", help="run directory written by `keras-seq train-lm`")
    p.add_argument("prompt", metavar="PROMPT", help="text to continue")
    p.add_argument("--length", type=positive_int, default=lm_recipe.GENERATE_LENGTH, help="tokens to generate")
    p.add_argument("--temperature", type=positive_float, help="sampling temperature > 0 (default 1.0)")
    p.add_argument("--top-k", type=positive_int, help="sample from the K most likely tokens")
    p.add_argument(
        "--top-p", type=probability, help="nucleus sampling: smallest set with probability >= P, in (0, 1]"
    )
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--beam", type=positive_int, help="beam search with this beam size")
    p.add_argument("--seed", type=_int, help="sampling seed (reproducible output)")
    p.add_argument("--num-samples", type=positive_int, default=1, help="samples to draw (n-best with --beam)")
    p.set_defaults(handler=_cmd_generate)

    _add_train_translator(subparsers)
    _add_translate(subparsers)
    _add_evaluate_and_export(subparsers)
    _add_serve_and_demo(subparsers)
    return parser


def _add_train_translator(subparsers):
    """The train-translator subcommand."""
    # train-translator -------------------------------------------------------
    p = _subparser(
        subparsers,
        "train-translator",
        "train a translation model",
        "Train an attention encoder-decoder (Bahdanau/Luong) or a Transformer on sentence pairs "
        "(one `source<TAB>target` pair a line). Checkpoints after every epoch; --resume continues.",
        [
            "keras-seq train-translator --max-minutes 30",
            "keras-seq train-translator --data pairs.tsv --attention luong-general --input-feeding",
            "keras-seq train-translator --model transformer --tokenizer wordpiece --vocab-size 8000",
            "keras-seq train-translator --reverse   # French -> English on bundled:fra-eng",
        ],
    )
    _add_training_flags(
        p,
        default_data="bundled:fra-eng",
        default_run_dir="runs/translator",
        models=("rnn", "transformer"),
        default_model="rnn",
    )
    g = p.add_argument_group("translator")
    g.add_argument("--tokenizer", choices=("word", "wordpiece", "char"), help="tokenizer")
    g.add_argument("--vocab-size", type=positive_int, help="vocabulary size per language")
    g.add_argument("--max-length", type=positive_int, help="drop pairs with a side longer than this (tokens)")
    g.add_argument("--units", type=positive_int, help="hidden units")
    g.add_argument("--embedding-dim", type=positive_int, help="embedding size")
    g.add_argument("--layers", type=positive_int, help="number of layers")
    g.add_argument("--cell", choices=("lstm", "gru"), help="recurrent cell (rnn model)")
    g.add_argument(
        "--bidirectional", action=argparse.BooleanOptionalAction, default=None, help="bidirectional encoder"
    )
    g.add_argument(
        "--attention",
        choices=("bahdanau", "luong-dot", "luong-general", "luong-concat"),
        help="attention mechanism (rnn model)",
    )
    g.add_argument(
        "--input-feeding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="feed the attentional vector to the next decoder step (Luong)",
    )
    g.add_argument("--dropout", type=dropout_rate, help="dropout rate in [0, 1)")
    g.add_argument(
        "--teacher-forcing-ratio", type=unit_interval, help="probability of feeding the gold token, in [0, 1]"
    )
    g.add_argument("--max-pairs", type=positive_int, help="use at most this many pairs")
    g.add_argument("--reverse", action="store_true", help="swap the columns (translate target -> source)")
    _show_defaults(p, _translator_help_defaults())
    p.set_defaults(handler=_cmd_train_translator)


def _add_translate(subparsers):
    """The translate subcommand."""
    # translate --------------------------------------------------------------
    p = _subparser(
        subparsers,
        "translate",
        "translate sentences with a trained translator",
        "Translate TEXT arguments, the lines of --input FILE, or the lines of stdin "
        "(when neither is given). One output line per input line.",
        [
            'keras-seq translate runs/translator "I am cold." "Where is the station?"',
            "keras-seq translate runs/translator --input sentences.txt --beam 8 --n-best 3",
            "echo 'I am cold.' | keras-seq translate runs/translator --greedy",
            'keras-seq translate runs/translator "I am cold." --plot attention.png',
        ],
    )
    p.add_argument("run", metavar="RUN", help="run directory written by `keras-seq train-translator`")
    p.add_argument("text", metavar="TEXT", nargs="*", help="sentences to translate")
    p.add_argument("--input", metavar="FILE", help="read sentences from FILE, one a line (- for stdin)")
    p.add_argument("--beam", type=positive_int,
                   help=f"beam size (default {_translator_defaults().beam_size})")
    p.add_argument(
        "--length-penalty", type=nonnegative_float, default=_translator_defaults().length_penalty,
        help="GNMT length penalty alpha (0 = none)"
    )
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of beam search")
    p.add_argument("--n-best", type=positive_int, default=1, help="translations per sentence (<= beam size)")
    p.add_argument(
        "--plot", metavar="PNG", help="save the attention weights of the first sentence as an image"
    )
    p.add_argument("--max-length", type=positive_int, help="maximum output length in tokens")
    p.set_defaults(handler=_cmd_translate)


def _add_evaluate_and_export(subparsers):
    """The evaluate and export subcommands."""
    # evaluate ---------------------------------------------------------------
    p = _subparser(
        subparsers,
        "evaluate",
        "evaluate a trained run (perplexity or BLEU/chrF)",
        "Perplexity of a language model, or BLEU and chrF (sacrebleu) of a translator, on the "
        "run's held-out split or on --data.",
        [
            "keras-seq evaluate runs/lm",
            "keras-seq evaluate runs/translator --split test --beam 5",
            "keras-seq evaluate runs/translator --data newstest.tsv",
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
    p.set_defaults(handler=_cmd_evaluate)

    # export -----------------------------------------------------------------
    p = _subparser(
        subparsers,
        "export",
        "export a trained run to SavedModel and ONNX",
        "Write a SavedModel in the TF Serving layout (DIR/VERSION/) with string and token-id "
        "signatures and, unless --no-onnx, the token-id signatures as ONNX graphs in "
        "DIR/onnx/*.onnx (the string signatures are not converted to ONNX); the exports are "
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
    p.set_defaults(handler=_cmd_export)


def _add_serve_and_demo(subparsers):
    """The serve and demo subcommands."""
    # serve ------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "serve",
        "serve an exported model over HTTP",
        "Serve exported models over HTTP with TF Serving's REST API: every "
        "`NAME/VERSION/` under DIR, or one model's directory.",
        [
            "keras-seq serve exported/                  # every exported/NAME/VERSION/",
            "keras-seq serve exported/fra-eng --onnx --port 9000",
        ],
    )
    p.add_argument("dir", metavar="DIR", help="export directory (from `keras-seq export`)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=port_number, default=8501, help="TCP port")
    p.add_argument(
        "--onnx", action="store_true", help="run the ONNX graph with onnxruntime instead of TensorFlow"
    )
    p.set_defaults(handler=_cmd_serve)

    # demo -------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "demo",
        "train, evaluate and export a small translator end to end",
        "Train a small English -> French attention translator on the bundled pairs within a "
        "time budget, score it on held-out pairs, translate with it and export it (SavedModel, "
        "and ONNX when the onnx extra is installed). It trains a translator only, no language "
        "model.",
        ["keras-seq demo", "keras-seq demo --minutes 10 --run-dir runs/demo"],
    )
    p.add_argument("--minutes", type=positive_float, help="training time budget in minutes (default 4)")
    p.add_argument("--run-dir", default="runs/demo", help="the translator's run directory")
    p.set_defaults(handler=_cmd_demo)


# ----------------------------------------------------------------------------
# Handlers
# ----------------------------------------------------------------------------


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up chatter hidden.

    TensorFlow's native code prints lines before its logging is configured
    (oneDNN notices, CUDA probing on machines without a GPU) that
    `TF_CPP_MIN_LOG_LEVEL` does not silence. They go to a temporary file while
    TensorFlow loads and probes its devices, and are replayed if that fails.
    """
    if "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # the CUDA probe logs here
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _call_task(module_name, function_name, args):
    """Import `module_name` lazily and call `function_name(args)`."""
    if not getattr(args, "debug", False):
        _import_tensorflow_quietly()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (e.name == module_name or module_name.startswith(e.name + ".")):
            raise errors.KerasSeqError(
                f"`{PROG} {args.command}` is not available in this build ({module_name} is missing)"
            ) from e
        raise
    function = getattr(module, function_name, None)
    if function is None:
        raise errors.KerasSeqError(
            f"`{PROG} {args.command}` is not available in this build "
            f"({module_name}.{function_name} is missing)"
        )
    return function(args)


_TRAIN_COMMANDS = {"lm": "train-lm", "translator": "train-translator"}
_TASK_LABELS = {"lm": "language-model", "translator": "translator"}


def _check_train_dir(args, task):
    if args.resume and args.overwrite:
        raise errors.InputError("--resume and --overwrite cannot be combined")
    path = Path(args.run_dir)
    if path.exists() and not path.is_dir():
        raise errors.RunDirError(f"--run-dir {path} is a file, not a directory")
    if args.resume:
        found = runs.load_run_config(path)["task"]  # must be a run directory
        if found != task:
            raise errors.RunDirError(
                f"{path} holds a {_TASK_LABELS[found]} run; resume it with "
                f"`{PROG} {_TRAIN_COMMANDS[found]} --resume --run-dir {path}`"
            )
        if not runs.RunDir(path).last_weights.is_file():
            raise errors.RunDirError(
                f"nothing to resume in {path}: no checkpoints/{runs.LAST_WEIGHTS} "
                "(the run stopped before its first epoch ended); train without --resume"
            )
    elif runs.RunDir(path).has_checkpoint() and not args.overwrite:
        raise errors.RunDirError(
            f"{path} already holds a trained run; pass --resume to continue it, --overwrite "
            "to start over, or choose another --run-dir"
        )


def _cmd_train_lm(args):
    _check_train_dir(args, "lm")
    _lm_recipe(args)  # a bad combination of flags fails here, before TensorFlow loads
    return __name__, "_run_train_lm"


def _cmd_train_translator(args):
    _check_train_dir(args, "translator")
    if not args.resume:
        _translator_recipe(args)  # a bad combination of flags fails here, before TensorFlow loads
    return __name__, "_run_train_translator"


def _cmd_generate(args):
    if args.greedy and args.beam is not None:
        raise errors.InputError("--greedy and --beam cannot be combined")
    sampling_flags = [
        flag
        for flag, value in (
            ("--temperature", args.temperature),
            ("--top-k", args.top_k),
            ("--top-p", args.top_p),
        )
        if value is not None
    ]
    if (args.greedy or args.beam is not None) and sampling_flags:
        raise errors.InputError(
            f"{', '.join(sampling_flags)} only apply to random sampling; drop "
            f"{'--greedy' if args.greedy else '--beam'}"
        )
    if args.greedy and args.num_samples > 1:
        raise errors.InputError("--greedy gives a single output; drop --num-samples or --greedy")
    if args.beam is not None and args.num_samples > args.beam:
        raise errors.InputError(f"--num-samples ({args.num_samples}) cannot exceed --beam ({args.beam})")
    _run_config(args.run, task="lm", use="translate")
    return __name__, "_run_generate"


def _cmd_translate(args):
    if args.greedy and args.beam is not None:
        raise errors.InputError("--greedy and --beam cannot be combined")
    if args.text and args.input is not None:
        raise errors.InputError("give sentences as TEXT arguments or with --input, not both")
    beam = _translate_beam(args)
    if args.n_best > (beam or 1):
        raise errors.InputError(
            f"--n-best ({args.n_best}) cannot exceed the beam size ({beam or 1}"
            f"{' with --greedy' if args.greedy else ''})"
        )
    if args.input not in (None, "-") and not Path(args.input).is_file():
        raise errors.InputError(f"--input file {args.input} does not exist")
    if args.plot:
        from keras_seq import extras

        extras.check("plot", "--plot")
    _run_config(args.run, task="translator", use="generate")
    return __name__, "_run_translate"


def _read_sentences(args):
    if args.text:
        sentences = list(args.text)
    elif args.input not in (None, "-"):
        try:
            text = Path(args.input).read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise errors.InputError(
                f"--input file {args.input} is not UTF-8 text ({e.reason} at byte {e.start})"
            ) from e
        sentences = text.splitlines()
    else:
        if sys.stdin is None:
            raise errors.InputError("no text to translate: give TEXT, --input FILE, or pipe text on stdin")
        if sys.stdin.isatty():
            print(f"{PROG}: reading sentences from stdin, one a line (end with Ctrl-D)", file=sys.stderr)
        sentences = sys.stdin.read().splitlines()
    if not any(s.strip() for s in sentences):
        raise errors.InputError("no text to translate: give TEXT, --input FILE, or pipe text on stdin")
    return sentences


def _cmd_evaluate(args):
    if _run_config(args.run)["task"] == "translator":
        return __name__, "_run_evaluate_translator"
    return __name__, "_run_evaluate_lm"


def _export_dir(args):
    """`--to`, or `exported/<run directory name>`."""
    return args.to or str(Path("exported") / Path(os.path.abspath(args.run)).name)


def _cmd_export(args):
    config = _run_config(args.run)
    to = Path(_export_dir(args))
    if to.exists() and not to.is_dir():
        raise errors.InputError(f"--to {to} is a file, not a directory")
    if config["task"] == "lm":
        if args.onnx:
            from keras_seq import extras

            extras.check("onnx", "ONNX export")
        return __name__, "_run_export_lm"
    if args.onnx:
        from keras_seq import extras

        extras.check("onnx", "ONNX export")
    return __name__, "_run_export_translator"


def _cmd_serve(args):
    from keras_seq import extras

    if not Path(args.dir).exists():
        raise errors.RunDirError(
            f"export directory {args.dir} does not exist; create one with `{PROG} export RUN --to {args.dir}`"
        )
    extras.check("serve", f"`{PROG} serve`")
    if args.onnx:
        extras.check("onnx", f"`{PROG} serve --onnx`")
    return __name__, "_run_serve"


def _cmd_demo(args):
    path = Path(args.run_dir)
    if path.exists() and not path.is_dir():
        raise errors.RunDirError(f"--run-dir {path} is a file, not a directory")
    return __name__, "_run_demo"


# ----------------------------------------------------------------------------
# Language-model jobs: flags -> LanguageModelRecipe / DecodeOptions -> keras_seq.pipelines
# ----------------------------------------------------------------------------

# train-lm flags that are LanguageModelRecipe fields (the TrainConfig ones are
# keras_seq.recipes.common.TRAIN_FIELDS).
_LM_RECIPE_FLAGS = ("vocab_size", "min_frequency", "seq_len", "units", "layers",
                    "embedding_dim", "dropout", "tie_embeddings", "sampled_softmax")


def _lm_recipe(args):
    """The `LanguageModelRecipe` of the train-lm flags (unset flags: the recipe's).

    With --resume, the run's own recipe with the training flags applied.
    """
    from keras_seq.recipes.common import TRAIN_FIELDS
    from keras_seq.recipes.language_model import LanguageModelRecipe

    train = {name: getattr(args, name) for name in TRAIN_FIELDS}
    if args.resume:
        return LanguageModelRecipe.from_run(args.run_dir).with_training(**train)
    flags = {name: getattr(args, name) for name in _LM_RECIPE_FLAGS}
    return LanguageModelRecipe.for_model(args.model, args.tokenizer, **flags, **train)


def _lm_help_defaults():
    """`{dest: text}`: the train-lm defaults, read from `LanguageModelRecipe`."""
    from keras_seq.recipes.common import TRAIN_FIELDS
    from keras_seq.recipes.language_model import LanguageModelRecipe

    return LanguageModelRecipe.describe_defaults(_LM_RECIPE_FLAGS, TRAIN_FIELDS)


def _show_defaults(parser, texts):
    """Appends `(recipe default: TEXT)` to the help of the options in `texts`."""
    for action in parser._actions:
        if action.dest in texts and action.help not in (None, argparse.SUPPRESS):
            action.help += f" (recipe default: {texts[action.dest]})"


def _run_train_lm(args):
    from keras_seq.pipelines import lm_commands
    from keras_seq.recipes.language_model import DEFAULT_DATA

    # When resuming, the default --data means the run's own.
    data = None if args.resume and args.data == DEFAULT_DATA else args.data
    lm_commands.train_run(_lm_recipe(args), args.run_dir, data=data, resume=args.resume,
                          overwrite=args.overwrite, sampled_softmax=args.sampled_softmax)


def _generate_options(args):
    """The `DecodeOptions` keyword arguments of the generate flags (sampling by default)."""
    if args.greedy:
        return {}
    if args.beam is not None:
        return dict(beam_size=args.beam, num_return=args.num_samples)
    return dict(sample=True, temperature=1.0 if args.temperature is None else args.temperature,
                top_k=args.top_k, top_p=args.top_p, seed=args.seed)


def _run_generate(args):
    from keras_seq.decoding import DecodeOptions
    from keras_seq.pipelines import lm_commands

    lm_commands.generate_text(args.run, args.prompt, length=args.length,
                              options=DecodeOptions(**_generate_options(args)),
                              num_samples=args.num_samples)


def _run_evaluate_lm(args):
    from keras_seq.pipelines import lm_commands

    lm_commands.evaluate_run(args.run, data=args.data, split=args.split)


def _run_export_lm(args):
    from keras_seq.pipelines import lm_commands

    lm_commands.export_run(args.run, _export_dir(args), version=args.version, onnx=args.onnx)


# ----------------------------------------------------------------------------
# Translator jobs: flags -> TranslatorRecipe / decoding settings -> keras_seq.pipelines
# ----------------------------------------------------------------------------

# train-translator flags that are TranslatorRecipe fields (the TrainConfig ones
# are keras_seq.recipes.common.TRAIN_FIELDS; --seed also seeds the data split).
_TRANSLATOR_RECIPE_FLAGS = ("tokenizer", "max_length", "units", "embedding_dim", "layers",
                            "dropout", "cell", "bidirectional", "attention", "input_feeding",
                            "teacher_forcing_ratio", "sampled_softmax")
_RNN_ONLY_FLAGS = ("cell", "attention", "input_feeding", "bidirectional", "teacher_forcing_ratio")


def _run_config(run, *, task=None, use=None):
    """The config of a trained run directory, checked (of `task` when given); `args` untouched."""
    config = runs.RunDir.open(run, require_checkpoint=True).config
    if task is not None and config["task"] != task:
        raise errors.RunDirError(
            f"{run} is a {_TASK_LABELS[config['task']]} run, not a {_TASK_LABELS[task]} run; "
            f"use `{PROG} {use}` (or train one with `{PROG} {_TRAIN_COMMANDS[task]}`)"
        )
    return config


def _translator_recipe(args):
    """The `TranslatorRecipe` of the train-translator flags (unset flags: the recipe's)."""
    from keras_seq.recipes import common
    from keras_seq.recipes.translator import TranslatorRecipe

    recipe = TranslatorRecipe.for_model(args.model)
    flags = {name: getattr(args, name) for name in _TRANSLATOR_RECIPE_FLAGS}
    if args.model == "transformer":
        for name in _RNN_ONLY_FLAGS:
            if flags[name] is not None:
                flag = "--" + name.replace("_", "-")
                raise errors.InputError(f"{flag} applies to --model rnn, not to the Transformer")
        units = recipe.units if args.units is None else args.units
        common.transformer_width(units, recipe.num_heads, flags.pop("embedding_dim"))
    tokenizer = args.tokenizer or recipe.tokenizer
    if args.vocab_size is not None and tokenizer != "wordpiece" and args.vocab_size <= 4:
        raise errors.InputError(f"--vocab-size must be > 4 (the reserved tokens), got {args.vocab_size}")
    train = {name: getattr(args, name) for name in common.TRAIN_FIELDS}
    return common.with_overrides(recipe, source_vocab_size=args.vocab_size,
                                 target_vocab_size=args.vocab_size, split_seed=args.seed,
                                 **flags, **train)


def _translator_help_defaults():
    """`{dest: text}`: the train-translator defaults, read from `TranslatorRecipe`."""
    from keras_seq.recipes.common import TRAIN_FIELDS
    from keras_seq.recipes.translator import TranslatorRecipe

    return TranslatorRecipe.describe_defaults(_TRANSLATOR_RECIPE_FLAGS + ("vocab_size",),
                                              TRAIN_FIELDS)


def _translator_defaults():
    """`TranslatorRecipe()`: the defaults `--help` shows (no TensorFlow import)."""
    from keras_seq.recipes.translator import TranslatorRecipe

    return TranslatorRecipe()


def _version():
    from keras_seq import __version__

    return __version__


def _translate_beam(args):
    """The beam size of the translate flags, None for --greedy."""
    if args.greedy:
        return None
    from keras_seq.recipes.translator import TranslatorRecipe

    return args.beam or TranslatorRecipe.beam_size


def _run_train_translator(args):
    from keras_seq.pipelines import train_translator
    from keras_seq.recipes.common import TRAIN_FIELDS

    if args.resume:
        train = {name: getattr(args, name) for name in TRAIN_FIELDS}
        train_translator(None, args.run_dir, data=args.data, resume=True, train_overrides=train)
    else:
        train_translator(_translator_recipe(args), args.run_dir, data=args.data,
                         reverse=args.reverse, max_pairs=args.max_pairs, overwrite=args.overwrite)


def _run_translate(args):
    from keras_seq.pipelines.translation_commands import translate_lines

    return translate_lines(args.run, _read_sentences(args), beam=_translate_beam(args),
                           length_penalty=args.length_penalty, n_best=args.n_best,
                           max_length=args.max_length, plot=args.plot)


def _run_evaluate_translator(args):
    from keras_seq.pipelines.translation_commands import evaluate_run

    return evaluate_run(args.run, data=args.data, split=args.split, beam=args.beam)


def _run_export_translator(args):
    from keras_seq.pipelines.translation_commands import export_run

    return export_run(args.run, _export_dir(args), version=args.version, onnx=args.onnx)


def _run_demo(args):
    from keras_seq.pipelines.demo import run_demo

    return run_demo(args.minutes, args.run_dir)


def _run_serve(args):
    import uvicorn

    from keras_seq import serving

    serving.configure_logging()
    app = serving.create_app(args.dir, onnx=args.onnx)
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_config=None,
                timeout_graceful_shutdown=5)


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------


def _one_line(error):
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    message = lines[0]
    if len(lines) > 1:
        message += " [...] (run with --debug for details)"
    return message


def _describe(error):
    from keras_seq import extras

    hint = extras.hint(error)  # a module of an optional extra: how to install it
    if hint is not None:
        return hint
    if isinstance(error, ModuleNotFoundError):
        return f"missing dependency: {error} (install it, or reinstall keras-seq)"
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.strerror}: {error.filename}"
    return _one_line(error)


def prepare(argv):
    """Parse and check `argv` and resolve it for its task, without running it.

    Validates arguments and run directories exactly as `main` does and fills
    in the derived attributes (`decoding`, `sentences`, `run_config`, ...).

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


if __name__ == "__main__":
    sys.exit(main())
