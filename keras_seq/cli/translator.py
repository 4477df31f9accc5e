"""The translator commands: train-translator, translate, demo; evaluate / export of its runs.

Flags map onto the library; no Namespace leaves this module:

    train-translator  `_translator_recipe(args)`: `TranslatorRecipe.for_model(
               --model)` with the given flags (--vocab-size sets both sides,
               --seed also seeds the data split; `-q`/`-v` set
               `TrainConfig.verbose`); the rnn-only flags are an error with
               --model transformer. Then `keras_seq.pipelines.train_translator(
               recipe, --run-dir, data=--data, valid_data=--valid-data,
               test_data=--test-data, reverse=, max_pairs=, overwrite=)`;
               with --resume, `train_translator(None, --run-dir, resume=True,
               train_overrides={given training flags})` (the run's own recipe).
    translate  `translation_commands.translate_lines([RUN, *--ensemble], sentences, beam=,
               length_penalty=, greedy=, n_best=, max_length=, plot=)`: sentences from
               TEXT, --input FILE or stdin (blank lines kept so outputs align);
               --beam and --length-penalty default to the run's (None);
               --plot checks the plot extra first.
    evaluate   `translation_commands.evaluate_run([RUN, *--ensemble], data=, split=, beam=)`:
               `Translator.from_run(RUN).evaluate(...)`, printed by `format_scores`.
    export     `translation_commands.export_run(RUN, --to, version=, onnx=)`:
               `Translator.export`; the onnx extra is checked first.
    demo       `keras_seq.pipelines.demo.run_demo(--minutes, --run-dir, passes=--passes,
               from_scratch=--from-scratch)`.

Each `_cmd_*` handler checks the flags without TensorFlow and names its job
(`_run_*`), which `keras_seq.cli.main` calls after importing TensorFlow.
"""

import argparse
import sys
from pathlib import Path

from keras_seq import errors
from keras_seq.cli import checks
from keras_seq.cli.arguments import (
    dropout_rate, nonnegative_float, positive_float, positive_int, unit_interval, utf8_argument,
)
from keras_seq.cli.parser import (
    PACKAGE, PROG, add_training_flags, show_defaults, subparser, training_values, verbosity,
    worker_values,
)
from keras_seq.utils import is_int


def add_parsers(subparsers):
    """Adds the train-translator and translate subcommands (`add_demo` adds demo)."""
    _add_train_translator(subparsers)
    _add_translate(subparsers)


def _add_train_translator(subparsers):
    """The train-translator subcommand."""
    p = subparser(
        subparsers,
        "train-translator",
        "train a translation model",
        "Train an attention encoder-decoder (Bahdanau/Luong) or a Transformer on sentence pairs "
        "(one `source<TAB>target` pair a line). Checkpoints after every epoch; --resume continues.",
        [
            "keras-seq train-translator --max-minutes 30",
            "keras-seq train-translator --data pairs.tsv --attention luong-general --input-feeding",
            "keras-seq train-translator --model transformer --tokenizer wordpiece --vocab-size 8000",
            "keras-seq train-translator --tokenizer bpe --shared-vocab --vocab-size 8000",
            "keras-seq train-translator --reverse   # French -> English on bundled:fra-eng",
        ],
    )
    add_training_flags(
        p,
        default_data="bundled:fra-eng",
        default_run_dir="runs/translator",
        models=("rnn", "transformer"),
        default_model="rnn",
    )
    g = p.add_argument_group("translator")
    g.add_argument("--tokenizer", choices=("word", "wordpiece", "char", "sentencepiece", "bpe"),
                   help="tokenizer (sentencepiece: a SentencePiece unigram model; bpe: "
                        "SentencePiece BPE)")
    g.add_argument("--shared-vocab", action=argparse.BooleanOptionalAction, default=None,
                   help="one vocabulary (of --vocab-size tokens) for both languages "
                        "(sentencepiece, bpe); the Transformer then ties its embeddings")
    g.add_argument("--split-elisions", action=argparse.BooleanOptionalAction, default=None,
                   help="word tokenizer: an elided word is a token of its own "
                        "(\"l'homme\" -> \"l'\", \"homme\")")
    g.add_argument("--vocab-size", type=positive_int, help="vocabulary size per language")
    g.add_argument("--max-length", type=positive_int, help="drop pairs with a side longer than this (tokens)")
    g.add_argument("--units", type=positive_int, help="hidden units")
    g.add_argument("--embedding-dim", type=positive_int, help="embedding size")
    g.add_argument("--layers", type=positive_int, help="number of layers")
    g.add_argument("--ff-dim", type=positive_int,
                   help="feed-forward width (transformer model)")
    g.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="one table for the target embedding and the output projection "
                        "(transformer model; always on with --shared-vocab)")
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
    g.add_argument("--label-smoothing", type=dropout_rate,
                   help="label smoothing of the full-softmax training loss, in [0, 1) (the "
                   "sampled softmax trains without it)")
    g.add_argument(
        "--teacher-forcing-ratio", type=unit_interval, help="probability of feeding the gold token, in [0, 1]"
    )
    g.add_argument(
        "--early-stop-on", choices=("loss", "bleu"),
        help="what picks the best checkpoint and early-stops: the validation loss, or the "
        "greedy validation BLEU of up to 200 validation sentences computed every epoch",
    )
    g.add_argument("--batch-tokens", type=positive_int, metavar="N",
                   help="train on batches of up to N tokens (the longer side, padding "
                        "included) instead of --batch-size pairs")
    g.add_argument("--max-pairs", type=positive_int, help="use at most this many pairs")
    g.add_argument("--reverse", action="store_true", help="swap the columns (translate target -> source)")
    show_defaults(p, _translator_help_defaults())
    p.set_defaults(handler=_cmd_train_translator)


def _add_translate(subparsers):
    """The translate subcommand."""
    p = subparser(
        subparsers,
        "translate",
        "translate sentences with a trained translator",
        "Translate TEXT arguments, the lines of --input FILE, or the lines of stdin "
        "(when neither is given). One output line per input line: a line that cannot be "
        "translated (blank, not UTF-8) gets an empty output line and a warning on stderr "
        "naming its number, and the others are translated.",
        [
            'keras-seq translate runs/translator "I am cold." "Where is the station?"',
            "keras-seq translate runs/translator --input sentences.txt --beam 8 --n-best 3",
            "echo 'I am cold.' | keras-seq translate runs/translator --greedy",
            'keras-seq translate runs/translator "I am cold." --plot attention.png',
        ],
    )
    p.add_argument("run", metavar="RUN", help="run directory written by `keras-seq train-translator`")
    p.add_argument("text", metavar="TEXT", nargs="*", help="sentences to translate")
    p.trailing_positionals = "text"  # `translate RUN --greedy "text"` too
    p.add_argument("--input", metavar="FILE", help="read sentences from FILE, one a line (- for stdin)")
    p.add_argument("--beam", type=positive_int,
                   help=f"beam size (default: the run's; {_translator_defaults().beam_size} "
                        "for runs of today's recipe)")
    p.add_argument(
        "--length-penalty", type=nonnegative_float,
        help=f"GNMT length penalty alpha, 0 = none (default: the run's; "
             f"{_translator_defaults().length_penalty:g} for runs of today's recipe)"
    )
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of beam search")
    p.add_argument("--n-best", type=positive_int, default=1, help="translations per sentence (<= beam size)")
    p.add_argument(
        "--plot", metavar="PNG", help="save the attention weights of the first sentence as an image"
    )
    p.add_argument("--max-length", type=positive_int, help="maximum output length in tokens (capped, with a warning, at "
                   "the model's limit: a Transformer's positions, twice the longest source "
                   "for a recurrent model)")
    add_ensemble_flag(p)
    p.set_defaults(handler=_cmd_translate)


def add_ensemble_flag(parser):
    """`--ensemble RUN` (repeatable) of translate and evaluate."""
    parser.add_argument(
        "--ensemble", metavar="RUN", action="append",
        help="also decode with the translator RUN (repeatable): the runs decode as one "
        "ensemble, averaging their probabilities (greedy and beam search); they must share "
        "RUN's vocabularies",
    )


def ensemble_runs(args, task):
    """`[RUN, *--ensemble]` of translate / evaluate, checked before TensorFlow loads."""
    extra = list(getattr(args, "ensemble", None) or [])
    if extra and task != "translator":
        raise errors.InputError("--ensemble applies to translator runs, not to language models")
    for run in extra:
        checks.run_config(run, task="translator", use="generate")
    return [args.run, *extra]


def add_demo(subparsers):
    """The demo subcommand."""
    p = subparser(
        subparsers,
        "demo",
        "train, evaluate and export a small translator end to end",
        "Train a small English -> French attention translator on the bundled pairs for a fixed "
        "number of passes, starting from the bundled start weights (the same recipe after 5 "
        "passes over the same training pairs; about 1.5 minutes on a quiet 2-core CPU; a time "
        "cap stops it earlier only on a much slower machine), score it on held-out pairs, "
        "translate with it and export it (SavedModel, and ONNX when the onnx extra is "
        "installed). It trains a translator only, no language model.",
        ["keras-seq demo", "keras-seq demo --from-scratch --minutes 10",
         "keras-seq demo --passes 12 --minutes 10 --run-dir runs/demo"],
    )
    p.add_argument("--passes", type=positive_int,
                   help="passes over the pairs to train for (default 3 from the bundled start, "
                   "8 --from-scratch)")
    p.add_argument("--from-scratch", action="store_true",
                   help="start from random weights instead of the bundled start weights")
    p.add_argument("--minutes", type=positive_float,
                   help="time cap of training in minutes (default 5): stops earlier than "
                   "--passes only on a slow machine")
    p.add_argument("--run-dir", default="runs/demo", help="the translator's run directory")
    p.set_defaults(handler=_cmd_demo)


# ----------------------------------------------------------------------------
# Handlers: flags checked without TensorFlow
# ----------------------------------------------------------------------------


def _cmd_train_translator(args):
    """Checks --run-dir and the flags (the recipe is built once here); names the job."""
    checks.check_train_dir(args, "translator")
    if not args.resume:
        # A bad combination of flags, or sizes that cannot fit in memory, fail
        # here, before TensorFlow loads.
        _translator_recipe(args).check_memory()
    return PACKAGE, "_run_train_translator"


def _cmd_translate(args):
    """Checks the decoding flags, --input, --plot and RUN; names the job."""
    if args.greedy and args.beam is not None:
        raise errors.InputError("--greedy and --beam cannot be combined")
    if args.text and args.input is not None:
        raise errors.InputError("give sentences as TEXT arguments or with --input, not both")
    for number, text in enumerate(args.text, start=1):
        utf8_argument(f"TEXT argument {number}", text)
    if args.input not in (None, "-") and not Path(args.input).is_file():
        raise errors.InputError(f"--input file {args.input} does not exist")
    if args.plot:
        from keras_seq import extras

        extras.check("plot", "--plot")
    config = checks.run_config(args.run, task="translator", use="generate")
    beam = 1 if args.greedy else args.beam or _run_beam(config)
    if beam is not None and args.n_best > beam:
        raise errors.InputError(
            f"--n-best ({args.n_best}) cannot exceed the beam size ({beam}"
            f"{' with --greedy' if args.greedy else ''})"
        )
    ensemble_runs(args, "translator")
    return PACKAGE, "_run_translate"


def _run_beam(config):
    """The beam size a run decodes with (config.json "decoding"), or None when that
    entry is damaged: the run's loader then names the problem."""
    decoding = config.get("decoding", {})
    beam = decoding.get("beam", _translator_defaults().beam_size) if isinstance(decoding, dict) else None
    return beam if is_int(beam) and beam >= 1 else None


def _cmd_demo(args):
    """Checks --run-dir; names the job."""
    path = Path(args.run_dir)
    if path.exists() and not path.is_dir():
        raise errors.RunDirError(f"--run-dir {path} is a file, not a directory")
    return PACKAGE, "_run_demo"


# ----------------------------------------------------------------------------
# Jobs: flags -> TranslatorRecipe / decoding settings -> keras_seq.pipelines
# ----------------------------------------------------------------------------


# train-translator flags that are TranslatorRecipe fields (the TrainConfig ones
# are keras_seq.recipes.common.TRAIN_FIELDS; --seed also seeds the data split).
_TRANSLATOR_RECIPE_FLAGS = ("tokenizer", "shared_vocab", "split_elisions", "max_length", "units", "embedding_dim",
                            "layers", "dropout", "cell", "bidirectional", "attention", "input_feeding",
                            "teacher_forcing_ratio", "sampled_softmax", "early_stop_on",
                            "label_smoothing", "ff_dim", "tie_embeddings", "batch_tokens")


def _translator_recipe(args):
    """The `TranslatorRecipe` of the train-translator flags (unset flags: the recipe's)."""
    from keras_seq.recipes import common
    from keras_seq.recipes.translator import RNN_ONLY
    from keras_seq.recipes.translator import TRANSFORMER_ONLY
    from keras_seq.recipes.translator import TranslatorRecipe

    recipe = TranslatorRecipe.for_model(args.model)
    flags = {name: getattr(args, name) for name in _TRANSLATOR_RECIPE_FLAGS}
    model_only, applies = ((RNN_ONLY, "--model rnn, not to the Transformer")
                           if args.model == "transformer"
                           else (TRANSFORMER_ONLY, "--model transformer, not to the rnn"))
    for name in model_only:
        if flags[name] is not None:
            raise errors.InputError(f"--{name.replace('_', '-')} applies to {applies}")
    if args.model == "transformer":
        units = recipe.units if args.units is None else args.units
        common.transformer_width(units, recipe.num_heads, flags.pop("embedding_dim"))
    if args.batch_tokens is not None and args.batch_size is not None:
        raise errors.InputError("give --batch-size (pairs) or --batch-tokens (tokens), not both")
    tokenizer = args.tokenizer or recipe.tokenizer
    if args.vocab_size is not None and tokenizer != "wordpiece" and args.vocab_size <= 4:
        raise errors.InputError(f"--vocab-size must be > 4 (the reserved tokens), got {args.vocab_size}")
    train = training_values(args)
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


def _run_train_translator(args):
    """Trains a translator (or resumes one): `keras_seq.pipelines.train_translator`."""
    from keras_seq.pipelines import train_translator

    if args.resume:
        train_translator(None, args.run_dir, data=args.data, resume=True,
                         valid_data=args.valid_data, test_data=args.test_data,
                         train_overrides=training_values(args), **worker_values(args))
    else:
        train_translator(_translator_recipe(args), args.run_dir, data=args.data,
                         valid_data=args.valid_data, test_data=args.test_data,
                         reverse=args.reverse, max_pairs=args.max_pairs, overwrite=args.overwrite,
                         **worker_values(args))


def _run_translate(args):
    """Translates the sentences: `translation_commands.translate_lines`; returns its status."""
    from keras_seq.pipelines.translation_commands import translate_lines

    return translate_lines(ensemble_runs(args, "translator"), _read_sentences(args), beam=args.beam,
                           length_penalty=args.length_penalty, greedy=args.greedy, n_best=args.n_best,
                           max_length=args.max_length, plot=args.plot,
                           # a bar for lines read from a file or stdin, not for TEXT arguments
                           verbose=0 if args.text else verbosity(args))


def _run_evaluate_translator(args):
    """Prints BLEU and chrF of the run: `translation_commands.evaluate_run`."""
    from keras_seq.pipelines.translation_commands import evaluate_run

    return evaluate_run(ensemble_runs(args, "translator"), data=args.data, split=args.split, beam=args.beam,
                        verbose=verbosity(args))


def _run_export_translator(args):
    """Exports the run (SavedModel, ONNX): `translation_commands.export_run`."""
    from keras_seq.pipelines.translation_commands import export_run

    return export_run(args.run, checks.export_dir(args), version=args.version, onnx=args.onnx,
                      quantize=args.quantize, verbose=verbosity(args))


def _run_demo(args):
    """Runs the demo: `keras_seq.pipelines.demo.run_demo`."""
    from keras_seq.pipelines.demo import run_demo

    # Without -q/-v the demo picks its own level (a line per epoch off a terminal).
    return run_demo(args.minutes, args.run_dir, passes=args.passes,
                    from_scratch=args.from_scratch,
                    verbose=None if args.verbose is None else verbosity(args))


def _read_sentences(args):
    """The sentences of TEXT, --input FILE or stdin, one a line (blank lines kept).

    Files and stdin are read as bytes and decoded line by line: a line that
    is not UTF-8 stays bytes, and `translate_lines` prints an empty line for
    it (with a warning naming the line) while the others are translated.
    """
    if args.text:
        sentences = list(args.text)
    elif args.input not in (None, "-"):
        sentences = _decode_lines(Path(args.input).read_bytes())
    else:
        if sys.stdin is None:
            raise errors.InputError("no text to translate: give TEXT, --input FILE, or pipe text on stdin")
        if sys.stdin.isatty():
            print(f"{PROG}: reading sentences from stdin, one a line (end with Ctrl-D)", file=sys.stderr)
        stream = getattr(sys.stdin, "buffer", None)
        sentences = _decode_lines(stream.read()) if stream is not None else sys.stdin.read().splitlines()
    if not any(s.strip() for s in sentences):
        raise errors.InputError("no text to translate: give TEXT, --input FILE, or pipe text on stdin")
    return sentences


def _decode_lines(data):
    """Lines of `data` (bytes): str where UTF-8, the raw bytes where not."""
    lines = []
    for line in data.splitlines():
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(line)
    return lines
