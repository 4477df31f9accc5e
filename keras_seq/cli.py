"""The `keras-seq` command: train, decode, evaluate, export and serve.

    keras-seq train-lm          train a recurrent/Transformer language model
    keras-seq generate          sample text from a trained language model
    keras-seq train-translator  train an attention encoder-decoder / Transformer
    keras-seq translate         translate sentences with a trained translator
    keras-seq evaluate          perplexity (LM) or BLEU/chrF (translator) of a run
    keras-seq export            SavedModel (TF Serving layout) + ONNX
    keras-seq serve             HTTP server over an exported model
    keras-seq demo              train a small translator and LM end to end

This module parses and checks the arguments (with no TensorFlow import, so
`--help` and bad-argument errors are instant), validates run directories,
then hands the `argparse.Namespace` to the task function. Errors a user can
fix (`KerasSeqError`, `ValueError`, `OSError`, a missing dependency) are
printed as one line, `keras-seq: error: <message>`, with exit status 2;
`--debug` shows the traceback.

Task functions and the `args` attributes they receive
-----------------------------------------------------
Every Namespace has `command` (the subcommand name) and `debug` (bool).
Values shown as None mean "not given: use the task's own default".

`keras_seq.tasks.lm.train(args)` (train-lm) and
`keras_seq.tasks.translation.train(args)` (train-translator), shared:
    data (str: an existing file path or "bundled:NAME"; default "bundled:anna-karenina" /
    "bundled:fra-eng"), run_dir (str; default "runs/lm" / "runs/translator"),
    resume (bool), overwrite (bool), model (str),
    sampled_softmax (int or None: None = the task's recipe, 0 = full softmax),
    and the TrainConfig fields, each None unless given (build the config with
    `keras_seq.training.TrainConfig.from_namespace(args, **task_defaults)`):
    epochs, batch_size, max_minutes, seed, optimizer, learning_rate,
    lr_schedule, decay_start_epoch, decay_rate, warmup_steps, anneal_to_budget, clipnorm,
    patience, mixed_precision (True or None), strategy, jit_compile
    (True | False | None).
  Prepare the run directory with `keras_seq.runs.prepare_run_dir(args.run_dir,
    config, resume=args.resume, overwrite=args.overwrite)`; when resuming it
    returns the stored config, which wins over the model flags.
  train-lm model flags: model ("lstm"|"gru"|"rnn"|"transformer", default
    "lstm"), tokenizer ("word"|"char"|"wordpiece", default "word"),
    vocab_size, min_frequency, seq_len, units, layers, embedding_dim, dropout,
    tie_embeddings (True | False | None).
  train-translator model flags: model ("rnn"|"transformer", default "rnn"),
    tokenizer ("word"|"wordpiece"|"char" or None), vocab_size, max_length,
    units, embedding_dim, layers, cell ("lstm"|"gru" or None), bidirectional
    (True | False | None), attention ("bahdanau"|"luong-dot"|"luong-general"|
    "luong-concat" or None), input_feeding (True | False | None), dropout,
    teacher_forcing_ratio, max_pairs, reverse (bool: swap the two columns).

`keras_seq.tasks.lm.generate(args)` (generate):
    run (str, a validated LM run directory with a checkpoint), run_config
    (dict, its config.json), task ("lm"), prompt (str), length (int >= 1, default 200),
    decoding ("sample" | "greedy" | "beam"), temperature (float > 0, default
    1.0), top_k (int >= 1 or None), top_p (float in (0, 1] or None), greedy
    (bool), beam (int >= 1 or None), seed (int or None), num_samples (int >= 1,
    default 1; with beam search the n-best).

`keras_seq.tasks.translation.translate(args)` (translate):
    run, run_config, task ("translator"), text (list of str from the command line), input (str path,
    "-" or None), sentences (list of str: the lines to translate, resolved from
    TEXT, --input or stdin; blank lines kept so outputs align with inputs),
    decoding ("beam" | "greedy"), beam (int >= 1, default 5; None with
    --greedy), greedy (bool), length_penalty (float >= 0, default 0.6), n_best
    (int >= 1, default 1), plot (str path or None), max_length (int or None).

`keras_seq.tasks.lm.evaluate(args)` / `keras_seq.tasks.translation.evaluate(args)`
(evaluate, chosen by the run's task): run, run_config, task ("lm" |
    "translator"), data (path / "bundled:NAME" or None: the run's own data),
    split ("train" | "valid" | "test", default "test"), beam (int or None).

`keras_seq.tasks.lm.export(args)` / `keras_seq.tasks.translation.export(args)`
(export, chosen by the run's task): run, run_config, task, to (str, default
    "exported/<run directory name>"), version (int >= 1 or None: the next free
    version), onnx (bool, False with --no-onnx).

`keras_seq.serving.serve(args)` (serve): dir (str, an existing export
    directory or .onnx file), host (str, default "127.0.0.1"), port (int,
    default 8501), onnx (bool).

`keras_seq.tasks.demo.run(args)` (demo): minutes (float > 0 or None),
    run_dir (str, default "runs/demo").

A task function returns None (exit status 0) or an int exit status. The
Namespace also carries `handler` (the CLI's own dispatch; ignore it).
`keras_seq.cli.prepare(argv)` returns the resolved Namespace and the target
without running it.

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
    _add_training_flags(
        p,
        default_data="bundled:anna-karenina",
        default_run_dir="runs/lm",
        models=("lstm", "gru", "rnn", "transformer"),
        default_model="lstm",
    )
    g = p.add_argument_group("language model")
    g.add_argument("--tokenizer", choices=("word", "char", "wordpiece"), default="word", help="tokenizer")
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
    p.add_argument("--length", type=positive_int, default=200, help="tokens to generate")
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
    p.set_defaults(handler=_cmd_train_translator)

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
    p.add_argument("--beam", type=positive_int, help="beam size (default 5)")
    p.add_argument(
        "--length-penalty", type=nonnegative_float, default=0.6, help="GNMT length penalty alpha (0 = none)"
    )
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of beam search")
    p.add_argument("--n-best", type=positive_int, default=1, help="translations per sentence (<= beam size)")
    p.add_argument(
        "--plot", metavar="PNG", help="save the attention weights of the first sentence as an image"
    )
    p.add_argument("--max-length", type=positive_int, help="maximum output length in tokens")
    p.set_defaults(handler=_cmd_translate)

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
        "signatures, and an ONNX graph (DIR.onnx) checked against TensorFlow.",
        [
            "keras-seq export runs/translator --to exported/fra-eng",
            "keras-seq export runs/lm --to exported/anna --version 2 --no-onnx",
        ],
    )
    p.add_argument("run", metavar="RUN", help="run directory")
    p.add_argument("--to", metavar="DIR", help="export directory (default: exported/<run name>)")
    p.add_argument("--version", type=positive_int, help="model version (default: next free)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", default=True, help="skip the ONNX export")
    p.set_defaults(handler=_cmd_export)

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
        "train, decode and export small models end to end",
        "Train a small translator and language model on the bundled data within a time budget, "
        "then translate, generate and export with them.",
        ["keras-seq demo", "keras-seq demo --minutes 10 --run-dir runs/demo"],
    )
    p.add_argument("--minutes", type=positive_float, help="training time budget (default: the demo's)")
    p.add_argument("--run-dir", default="runs/demo", help="where the demo's runs go")
    p.set_defaults(handler=_cmd_demo)
    return parser


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


_TASK_MODULES = {"lm": "keras_seq.tasks.lm", "translator": "keras_seq.tasks.translation"}
_TRAIN_COMMANDS = {"lm": "train-lm", "translator": "train-translator"}
_TASK_LABELS = {"lm": "language-model", "translator": "translator"}


def _open_run(args, *, task=None, use=None):
    """Validate args.run (config + checkpoint), set args.run_config and args.task."""
    run = runs.RunDir.open(args.run, require_checkpoint=True)
    config = run.config
    if task is not None and config["task"] != task:
        raise errors.RunDirError(
            f"{args.run} is a {_TASK_LABELS[config['task']]} run, not a {_TASK_LABELS[task]} run; "
            f"use `{PROG} {use}` (or train one with `{PROG} {_TRAIN_COMMANDS[task]}`)"
        )
    args.run_config = config
    args.task = config["task"]
    return config


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
    return "keras_seq.tasks.lm", "train"


def _cmd_train_translator(args):
    _check_train_dir(args, "translator")
    return "keras_seq.tasks.translation", "train"


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
    args.decoding = "greedy" if args.greedy else "beam" if args.beam is not None else "sample"
    if args.temperature is None:
        args.temperature = 1.0
    _open_run(args, task="lm", use="translate")
    return "keras_seq.tasks.lm", "generate"


def _cmd_translate(args):
    if args.greedy and args.beam is not None:
        raise errors.InputError("--greedy and --beam cannot be combined")
    if args.text and args.input is not None:
        raise errors.InputError("give sentences as TEXT arguments or with --input, not both")
    beam = None if args.greedy else (args.beam or 5)
    if args.n_best > (beam or 1):
        raise errors.InputError(
            f"--n-best ({args.n_best}) cannot exceed the beam size ({beam or 1}"
            f"{' with --greedy' if args.greedy else ''})"
        )
    if args.input not in (None, "-") and not Path(args.input).is_file():
        raise errors.InputError(f"--input file {args.input} does not exist")
    args.beam = beam
    args.decoding = "greedy" if args.greedy else "beam"
    _open_run(args, task="translator", use="generate")
    args.sentences = _read_sentences(args)
    return "keras_seq.tasks.translation", "translate"


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
    config = _open_run(args)
    return _TASK_MODULES[config["task"]], "evaluate"


def _cmd_export(args):
    config = _open_run(args)
    if args.to is None:
        args.to = str(Path("exported") / Path(os.path.abspath(args.run)).name)
    to = Path(args.to)
    if to.exists() and not to.is_dir():
        raise errors.InputError(f"--to {to} is a file, not a directory")
    return _TASK_MODULES[config["task"]], "export"


def _cmd_serve(args):
    if not Path(args.dir).exists():
        raise errors.RunDirError(
            f"export directory {args.dir} does not exist; create one with `{PROG} export RUN --to {args.dir}`"
        )
    return "keras_seq.serving", "serve"


def _cmd_demo(args):
    path = Path(args.run_dir)
    if path.exists() and not path.is_dir():
        raise errors.RunDirError(f"--run-dir {path} is a file, not a directory")
    return "keras_seq.tasks.demo", "run"


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
