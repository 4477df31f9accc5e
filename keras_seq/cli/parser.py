"""The parser pieces every `keras-seq` command shares.

    Parser            an ArgumentParser whose errors are one line, exit status 2
    Formatter         keeps example blocks as written, shows non-None defaults
    subparser(...)    a subcommand with its examples, `--debug`, `-q/--quiet`
                      and `-v/--verbose` (`keras_seq.progress`)
    add_training_flags(...)
                      the data, run-directory and `TrainConfig` flags of
                      train-lm and train-translator
    show_defaults(parser, texts)
                      "(recipe default: ...)" after the help of recipe fields

Nothing here imports TensorFlow, so `--help` and argument errors are instant.
"""

import argparse

from keras_seq import progress
from keras_seq.cli.arguments import at_least_two
from keras_seq.cli.arguments import bundled_names
from keras_seq.cli.arguments import data_spec
from keras_seq.cli.arguments import integer
from keras_seq.cli.arguments import nonnegative_float
from keras_seq.cli.arguments import nonnegative_int
from keras_seq.cli.arguments import positive_float
from keras_seq.cli.arguments import positive_int
from keras_seq.cli.arguments import precision_mode
from keras_seq.cli.arguments import probability
from keras_seq.cli.arguments import worker_addresses

PROG = "keras-seq"
# The module `main` imports a job from: the package re-exports every job.
PACKAGE = "keras_seq.cli"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit with status 2."""

    def error(self, message):
        """Prints `keras-seq: error: MESSAGE (see ...)` and exits with status 2."""
        hint = f"see `{self.prog} --help`"
        self.exit(2, f"{PROG}: error: {message} ({hint})\n")

    # The dest of a `nargs="*"` positional that may also come after options
    # (`translate RUN --greedy "text"`); None: argparse's rules.
    trailing_positionals = None

    def parse_known_args(self, args=None, namespace=None):
        """Parses, then checks the flags that depend on each other (`check_workers`).

        argparse fills a `nargs="*"` positional only from the words before
        the first option; with `trailing_positionals` set, the words left
        over after the options (not starting with "-") are appended to it.
        """
        namespace, extras = super().parse_known_args(args, namespace)
        dest = self.trailing_positionals
        if dest is not None and extras:
            words = [x for x in extras if not x.startswith("-")]
            if words and "--" not in extras:
                setattr(namespace, dest, list(getattr(namespace, dest) or []) + words)
                extras = [x for x in extras if x.startswith("-")]
        if "worker_index" in vars(namespace):  # train-lm, train-translator
            check_workers(self, namespace)
        return namespace, extras


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the example blocks as written and shows defaults that are not None.

    A help text that already names its default (the serve flags of
    `keras_seq.serving.cli`), and an `--no-X` switch, get no second one.
    """

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        if isinstance(action, argparse._StoreFalseAction) or "default " in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_debug(parser, *, top=False):
    """Adds `--debug` (on a subcommand it does not reset the top-level one)."""
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show the full traceback of an error",
    )


def subparser(subparsers, name, help, description, examples):
    """Adds a subcommand with its examples, `--debug`, `-q/--quiet` and `-v/--verbose`.

    Args:
        subparsers: the `add_subparsers()` object of the top-level parser.
        name: the command ("train-lm").
        help: one line for the command list of `keras-seq --help`.
        description: the paragraph at the top of `keras-seq NAME --help`.
        examples: command lines shown under "examples:".

    Returns:
        The subcommand's parser.
    """
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
        formatter_class=Formatter,
    )
    add_debug(parser)
    progress.add_verbosity_arguments(parser)
    return parser


def add_training_flags(parser, *, default_data, default_run_dir, models, default_model):
    """Adds the data, run-directory and training (`TrainConfig`) flags.

    Unset training flags are None: the task's recipe decides (see
    `keras_seq.recipes.common.TRAIN_FIELDS`).
    """
    _add_data_flags(parser, default_data, default_run_dir)
    group = _add_optimization_flags(parser, models, default_model)
    _add_execution_flags(group)


def _add_data_flags(parser, default_data, default_run_dir):
    """--data, --valid-data, --test-data, --run-dir, --resume, --overwrite."""
    group = parser.add_argument_group("data and run directory")
    group.add_argument(
        "--data",
        type=data_spec,
        default=default_data,
        help="training data: a file path or bundled:NAME " f"(bundled: {', '.join(bundled_names())})",
    )
    group.add_argument(
        "--valid-data",
        type=data_spec,
        help="a validation file: train on all of --data and select, schedule and early-stop "
        "on this file (default: a seeded 5%% split of --data)",
    )
    group.add_argument(
        "--test-data",
        type=data_spec,
        help="a test file, scored at the end and by `evaluate` (default: a seeded 5%% split "
        "of --data, or no test split with --valid-data alone)",
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


def _add_optimization_flags(parser, models, default_model):
    """--model and the TrainConfig flags of the run's length and optimizer; returns the group."""
    group = parser.add_argument_group("training (unset values use the task's recipe)")
    group.add_argument("--model", choices=models, default=default_model, help="model family")
    group.add_argument("--epochs", type=positive_int, help="number of epochs")
    group.add_argument("--batch-size", type=positive_int, help="global batch size")
    group.add_argument(
        "--max-minutes",
        type=positive_float,
        help="wall-clock budget over the whole run; stops after the batch that spends it",
    )
    group.add_argument("--seed", type=integer, help="random seed")
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
        "--anneal-to-budget", nargs="?", const=True, type=probability, metavar="FRACTION",
        help="with --max-minutes, decay the learning rate on a cosine over the time budget "
        "(on top of --lr-schedule), so the run ends annealed; with FRACTION in (0, 1], over "
        "the last FRACTION of the budget only",
    )
    group.add_argument(
        "--no-anneal-to-budget", dest="anneal_to_budget", action="store_const", const=False,
        help="do not anneal to the time budget",
    )
    group.add_argument(
        "--clipnorm", type=nonnegative_float, help="clip the gradient's global norm (0 = off; default 5)"
    )
    group.add_argument(
        "--patience", type=positive_int, help="early stopping after N epochs without val-loss improvement"
    )
    group.add_argument(
        "--average-last", type=at_least_two, metavar="N",
        help="keep the weights of the last N epochs (N >= 2, at most --epochs); at the end, "
        "the mean of the last 2..N of them with the lowest validation loss goes to "
        "checkpoints/averaged.weights.h5 if it beats the best epoch, and translate, evaluate "
        "and export then use it",
    )
    return group


def _add_execution_flags(group):
    """The TrainConfig flags of how training runs (precision, devices, XLA, loss), in `group`."""
    group.add_argument(
        "--mixed-precision", nargs="?", const=True, type=precision_mode, metavar="{on,off,auto}",
        help="float16 (GPU) / bfloat16 (CPU) compute with float32 weights; bare: on; auto: on "
        "a GPU or a CPU with AMX / AVX512-BF16 only; checkpoints and exports stay float32",
    )
    group.add_argument(
        "--strategy",
        choices=("auto", "default", "mirrored", "multi-worker"),
        help="tf.distribute strategy (default auto); multi-worker: MultiWorkerMirroredStrategy "
        "over the cluster of TF_CONFIG (or --workers); --batch-size is the global batch, "
        "the learning rate is not scaled, only worker 0 (the chief) writes --run-dir",
    )
    group.add_argument(
        "--workers",
        type=worker_addresses,
        metavar="HOST:PORT,...",
        help="the workers of a multi-worker run, the same list on every worker (worker 0 is "
        "the chief); writes TF_CONFIG and implies --strategy multi-worker",
    )
    group.add_argument(
        "--worker-index",
        type=nonnegative_int,
        metavar="N",
        help="this worker's position in --workers (0-based; required with --workers)",
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


def check_workers(parser, args):
    """--workers, --worker-index and --strategy agree (argparse errors: one line, exit 2)."""
    workers = getattr(args, "workers", None)
    index = getattr(args, "worker_index", None)
    if workers is None:
        if index is not None:
            parser.error("argument --worker-index: only applies with --workers")
        return
    if index is None:
        parser.error("argument --worker-index: required with --workers")
    if index >= len(workers):
        parser.error(f"argument --worker-index: must be < {len(workers)} (the number of --workers), "
                     f"got {index}")
    if args.strategy not in (None, "multi-worker"):
        parser.error(f"argument --workers: implies --strategy multi-worker, not {args.strategy}")


def strategy(args):
    """The `TrainConfig.strategy` of the flags: "multi-worker" with --workers, else --strategy."""
    return "multi-worker" if getattr(args, "workers", None) else args.strategy


def worker_values(args):
    """`{"workers": [...] | None, "worker_index": N | None}`: the pipelines' keyword arguments."""
    return {"workers": getattr(args, "workers", None), "worker_index": getattr(args, "worker_index", None)}


def verbosity(args):
    """The level of `-q`/`-v` (0, 1 or 2; 1 when neither is given)."""
    return progress.resolve_verbose(args.verbose)


def training_values(args):
    """`{field: value}`: the `TrainConfig` fields of the training flags.

    Unset flags are None (the recipe's value stays); `verbose` is always the
    resolved `-q`/`-v` level, so a resumed run follows this command's.
    """
    from keras_seq.recipes.common import TRAIN_FIELDS

    values = {name: getattr(args, name) for name in TRAIN_FIELDS}
    values["strategy"] = strategy(args)
    values["verbose"] = verbosity(args)
    return values


def show_defaults(parser, texts):
    """Appends `(recipe default: TEXT)` to the help of the options in `texts`.

    Args:
        parser: a subcommand's parser.
        texts: `{dest: text}`, e.g. from `TranslatorRecipe.describe_defaults`.
    """
    for action in parser._actions:
        if action.dest in texts and action.help not in (None, argparse.SUPPRESS):
            action.help += f" (recipe default: {texts[action.dest]})"


def version():
    """`keras_seq.__version__`."""
    from keras_seq import __version__

    return __version__
