"""The language-model commands: train-lm, generate, and evaluate / export of an LM run.

Flags map onto the library; no Namespace leaves this module:

    train-lm   `_lm_recipe(args)`: `LanguageModelRecipe.for_model(--model,
               --tokenizer, **flags)` (unset flags are None: the recipe's
               defaults, which `--help` shows; `-q`/`-v` set `TrainConfig.verbose`);
               with --resume the run's own `LanguageModelRecipe.from_run` with
               the training flags applied. Then
               `keras_seq.pipelines.lm_commands.train_run(recipe, --run-dir,
               data=--data, valid_data=--valid-data, test_data=--test-data,
               resume=, overwrite=, workers=--workers, worker_index=
               --worker-index)`; --workers means --strategy multi-worker.
    generate   `_generate_options(args)` -> `keras_seq.decoding.DecodeOptions`
               (--greedy; --beam N with --num-samples as the n-best; otherwise
               sampling: --temperature (1.0), --top-k, --top-p, --seed), then
               `TextGenerator.from_run(RUN).generate([PROMPT], length=--length,
               options=..., num_samples=--num-samples)`.
    evaluate   `TextGenerator.from_run(RUN).evaluate(data=--data, split=--split)`.
    export     `TextGenerator.from_run(RUN).export(--to, version=--version,
               onnx=--onnx)` (the onnx extra is checked first).

Each `_cmd_*` handler checks the flags without TensorFlow and names its job
(`_run_*`), which `keras_seq.cli.main` calls after importing TensorFlow.
"""

import argparse

from keras_seq import errors
from keras_seq.cli import checks
from keras_seq.cli.arguments import (
    dropout_rate, integer, positive_float, positive_int, probability, utf8_argument,
)
from keras_seq.cli.parser import (
    PACKAGE, add_training_flags, show_defaults, subparser, training_values, verbosity,
    worker_values,
)


def add_parsers(subparsers):
    """Adds the train-lm and generate subcommands."""
    _add_train_lm(subparsers)
    _add_generate(subparsers)


def _add_train_lm(subparsers):
    """The train-lm subcommand."""
    p = subparser(
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
            "keras-seq train-lm --workers 10.0.0.1:12345,10.0.0.2:12345 --worker-index 0 "
            "--run-dir /shared/runs/lm",
        ],
    )
    from keras_seq.recipes import language_model as lm_recipe

    add_training_flags(
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
    show_defaults(p, _lm_help_defaults())
    p.set_defaults(handler=_cmd_train_lm)


def _add_generate(subparsers):
    """The generate subcommand."""
    from keras_seq.recipes import language_model as lm_recipe

    p = subparser(
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
    p.add_argument("--seed", type=integer, help="sampling seed (reproducible output)")
    p.add_argument("--num-samples", type=positive_int, default=1, help="samples to draw (n-best with --beam)")
    p.set_defaults(handler=_cmd_generate)


# ----------------------------------------------------------------------------
# Handlers: flags checked without TensorFlow
# ----------------------------------------------------------------------------


def _cmd_train_lm(args):
    """Checks --run-dir and the flags (the recipe is built once here); names the job."""
    checks.check_train_dir(args, "lm")
    # A bad combination of flags, or sizes that cannot fit in memory, fail
    # here, before TensorFlow loads.
    _lm_recipe(args).check_memory()
    return PACKAGE, "_run_train_lm"


def _cmd_generate(args):
    """Checks the decoding flags and that RUN is a trained language model; names the job."""
    utf8_argument("PROMPT", args.prompt)
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
    checks.run_config(args.run, task="lm", use="translate")
    return PACKAGE, "_run_generate"


# ----------------------------------------------------------------------------
# Jobs: flags -> LanguageModelRecipe / DecodeOptions -> keras_seq.pipelines
# ----------------------------------------------------------------------------

# train-lm flags that are LanguageModelRecipe fields (the TrainConfig ones are
# keras_seq.recipes.common.TRAIN_FIELDS).
_LM_RECIPE_FLAGS = ("vocab_size", "min_frequency", "seq_len", "units", "layers",
                    "embedding_dim", "dropout", "tie_embeddings", "sampled_softmax")


def _lm_recipe(args):
    """The `LanguageModelRecipe` of the train-lm flags (unset flags: the recipe's).

    With --resume, the run's own recipe with the training flags applied.
    """
    from keras_seq.recipes.language_model import LanguageModelRecipe

    train = training_values(args)
    if args.resume:
        return LanguageModelRecipe.from_run(args.run_dir).with_training(**train)
    flags = {name: getattr(args, name) for name in _LM_RECIPE_FLAGS}
    return LanguageModelRecipe.for_model(args.model, args.tokenizer, **flags, **train)


def _lm_help_defaults():
    """`{dest: text}`: the train-lm defaults, read from `LanguageModelRecipe`."""
    from keras_seq.recipes.common import TRAIN_FIELDS
    from keras_seq.recipes.language_model import LanguageModelRecipe

    return LanguageModelRecipe.describe_defaults(_LM_RECIPE_FLAGS, TRAIN_FIELDS)


def _run_train_lm(args):
    """Trains a language model: `lm_commands.train_run(recipe, run_dir, ...)`."""
    from keras_seq.pipelines import lm_commands
    from keras_seq.recipes.language_model import DEFAULT_DATA

    # When resuming, the default --data means the run's own.
    data = None if args.resume and args.data == DEFAULT_DATA else args.data
    lm_commands.train_run(_lm_recipe(args), args.run_dir, data=data,
                          valid_data=args.valid_data, test_data=args.test_data,
                          resume=args.resume, overwrite=args.overwrite,
                          sampled_softmax=args.sampled_softmax, **worker_values(args))


def _generate_options(args):
    """The `DecodeOptions` keyword arguments of the generate flags (sampling by default)."""
    if args.greedy:
        return {}
    if args.beam is not None:
        return dict(beam_size=args.beam, num_return=args.num_samples)
    return dict(sample=True, temperature=1.0 if args.temperature is None else args.temperature,
                top_k=args.top_k, top_p=args.top_p, seed=args.seed)


def _run_generate(args):
    """Prints the continuation(s) of PROMPT: `lm_commands.generate_text`."""
    from keras_seq.decoding import DecodeOptions
    from keras_seq.pipelines import lm_commands

    lm_commands.generate_text(args.run, args.prompt, length=args.length,
                              options=DecodeOptions(**_generate_options(args)),
                              num_samples=args.num_samples)


def _run_evaluate_lm(args):
    """Prints the perplexity of the run: `lm_commands.evaluate_run`."""
    from keras_seq.pipelines import lm_commands

    lm_commands.evaluate_run(args.run, data=args.data, split=args.split,
                             verbose=verbosity(args))


def _run_export_lm(args):
    """Exports the run (SavedModel, ONNX): `lm_commands.export_run`."""
    from keras_seq.pipelines import lm_commands

    lm_commands.export_run(args.run, checks.export_dir(args), version=args.version, onnx=args.onnx,
                           quantize=args.quantize, verbose=verbosity(args))
