"""`train_language_model`: a `LanguageModelRecipe` -> a trained run directory.

The run directory (`keras_seq.runs`) is the one `keras-seq train-lm` writes;
its `config.json` holds

    {"task": "lm",
     "model": {"type": "rnn" | "transformer", "config": {...constructor kwargs}},
     "tokenizer": {"type": ..., "config": {...}, "vocab_size": V},
     "training": TrainConfig.to_dict(),
     "data": {"spec": ..., "seq_len": T, "preprocess": "paragraphs" | "raw",
              "val_fraction": 0.05, "test_fraction": 0.05, "tokens": {...},
              ("valid_spec", "test_spec": separate files, only when given;
               the fraction of a split read from a file is then 0)},
     "generation": {"max_length": ...}}

and `vocab/` the tokenizer files, `checkpoints/` the weights, `logs/` the
history. Training batches are truncated-BPTT windows
(`keras_seq.data.make_lm_dataset`); the recurrent model is stateful, its
state reset at every epoch start and before every evaluation.

With `sampled_softmax=N` (both model families; the recipe's default is the
full softmax, 0) training minimizes the sampled-softmax loss over N
log-uniform negatives, while validation (`val_loss`, which picks the best
checkpoint), the reported perplexities, evaluation, generation and export use
the full softmax over the same weights. The weights do not depend on N, and
`config.json` records it as `model.config.sampled_softmax`.
"""

import dataclasses
import os
from typing import NamedTuple

import keras
import numpy as np

from keras_seq import data as data_lib
from keras_seq import models
from keras_seq import progress
from keras_seq import runs
from keras_seq import text as text_lib
from keras_seq import training
from keras_seq.pipelines import lm_data
from keras_seq.pipelines import workers as workers_lib
from keras_seq.recipes.common import say
from keras_seq.recipes.language_model import DEFAULT_DATA
from keras_seq.recipes.language_model import DEFAULT_RUN_DIR
from keras_seq.recipes.language_model import LanguageModelRecipe

__all__ = ["MAX_RNN_GENERATE_LENGTH", "MAX_RNN_PROMPT_LENGTH", "TrainedLanguageModel", "train_language_model"]

# Most tokens one `generate` call produces with a recurrent model (whose
# contract sets no limit). The state is O(1), but the decoder keeps a
# [N, R, length] buffer of ids; this bounds it.
MAX_RNN_GENERATE_LENGTH = 5000
# Most prompt tokens a recurrent model reads in one `generate` call (one
# step a token; the library refuses longer prompts rather than run minutes).
MAX_RNN_PROMPT_LENGTH = 5000


class TrainedLanguageModel(NamedTuple):
    """What `train_language_model` returns.

    Attributes:
        run_dir: the run directory (a `pathlib.Path`).
        valid_perplexity: full-softmax perplexity of the validation split.
        test_perplexity: full-softmax perplexity of the test split (None
            for a run with a validation file and no test file).
        test_tokens: the number of test tokens scored (0 without a test
            split).
        history: the `keras.callbacks.History` of this session.
        chief: whether this process wrote the run directory (False only on
            the other workers of a multi-worker run).
    """

    run_dir: object
    valid_perplexity: float
    test_perplexity: float
    test_tokens: int
    history: object
    chief: bool = True


class ResetStates(keras.callbacks.Callback):
    """Zeroes a stateful model's carried state at each epoch start and before evaluating."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_states()

    def on_test_begin(self, logs=None):
        self.model.reset_states()


def generation_limit(model):
    """The most tokens one `generate` call may produce with `model`.

    The model's contract (`output_length_limit`, the Transformer's positions)
    or, for a recurrent model, `MAX_RNN_GENERATE_LENGTH`.
    """
    limit = model.output_length_limit()
    return MAX_RNN_GENERATE_LENGTH if limit is None else int(limit)


def _split_specs(valid_data, test_data):
    """`{"valid_spec": str, "test_spec": str}` of the files given (None ones left out)."""
    return {f"{name}_spec": data_lib.split_file_spec(spec, name)
            for name, spec in (("valid", valid_data), ("test", test_data)) if spec is not None}


def _new_run(recipe, data, valid_data=None, test_data=None):
    """Fits the tokenizer and describes a new run: `(tokenizer, streams, run_config)`."""
    specs = _split_specs(valid_data, test_data)
    held_out = lm_data.held_out_parts(valid_data, test_data)
    fractions = {"val_fraction": recipe.val_fraction if "valid" in held_out else 0.0,
                 "test_fraction": recipe.test_fraction if "test" in held_out else 0.0}
    progress.echo(f"reading {data}", recipe.train.verbose)
    tokenizer, streams = lm_data.load_streams(
        data, recipe.tokenizer, vocab_size=recipe.vocab_size,
        min_frequency=recipe.min_frequency, verbose=recipe.train.verbose,
        valid_data=specs.get("valid_spec"), test_data=specs.get("test_spec"), **fractions,
    )
    recipe.check_memory(vocab_size=tokenizer.vocab_size)
    info = recipe.model_info(tokenizer.vocab_size)
    run_config = {
        "task": "lm",
        "model": info,
        "tokenizer": {"type": tokenizer.type_name, "config": tokenizer.get_config(),
                      "vocab_size": tokenizer.vocab_size},
        "training": recipe.train.to_dict(),
        "data": {
            "spec": data,
            "seq_len": recipe.seq_len,
            "preprocess": "raw" if recipe.tokenizer == "char" else "paragraphs",
            **fractions,
            "tokens": {name: int(len(ids)) for name, ids in streams.items()},
            **specs,
        },
        "generation": {"max_length": generation_limit(models.build_model("lm", info))},
    }
    return tokenizer, streams, run_config


def _stored_run(run_dir, data, valid_data=None, test_data=None):
    """The tokenizer, streams and config of a run to resume (its own data files).

    The vocabulary is the chief's (`RunDir.chief`), on every worker.
    """
    stored = runs.load_checked_config(run_dir)
    info = stored["data"]
    spec = info["spec"]
    if data is not None and data != spec:
        say(f"resume: training goes on with the run's own data {spec} (ignoring {data})")
    for name, given in (("valid", valid_data), ("test", test_data)):
        own = info.get(f"{name}_spec")
        if given is not None and os.fspath(given) != own:
            say(f"resume: training goes on with the run's own {name} data "
                f"{own or 'split off ' + spec} (ignoring {os.fspath(given)})")
    tokenizer = text_lib.load_tokenizer(str(runs.RunDir(run_dir).chief.vocab_dir))
    tokenizer, streams = lm_data.load_streams(
        spec, stored["tokenizer"]["type"], tokenizer,
        val_fraction=info.get("val_fraction", 0.05),
        test_fraction=info.get("test_fraction", 0.05),
        valid_data=info.get("valid_spec"), test_data=info.get("test_spec"),
    )
    return tokenizer, streams, stored


def train_language_model(recipe=None, run_dir=DEFAULT_RUN_DIR, *, data=None, valid_data=None,
                         test_data=None, resume=False, overwrite=False, workers=None,
                         worker_index=None):
    """Trains a language model into a run directory and reports its perplexity.

    Fits the tokenizer on the training split, writes `config.json` and
    `vocab/`, trains with `keras_seq.training.train` (checkpoints after every
    epoch) starting the output bias at the log unigram frequencies of the
    training stream, then measures the full-softmax perplexity of the
    validation and test splits with the best weights.

    Args:
        recipe: a `LanguageModelRecipe` (None: the default word LSTM; when
            resuming, the run's own `LanguageModelRecipe.from_run`).
        run_dir: the run directory.
        data: the text: a UTF-8 file or `"bundled:NAME"` (None:
            `bundled:anna-karenina`; when resuming, the run's own data).
            Without `valid_data`, its later 5% validate and its last 5% test.
        valid_data: a separate validation text file (or "bundled:NAME"):
            all of `data` then trains, and the best checkpoint, learning-rate
            schedule and early stopping follow this file.
        test_data: a separate test text file, scored at the end and by
            `TextGenerator.evaluate(split="test")`. With `test_data` alone
            only the validation part is cut off `data`; with `valid_data`
            alone the run has no test split. Both files are checked
            (present, non-empty, UTF-8, and the validation file long enough
            for one batch) before anything is trained or written, and are
            recorded in config.json (`data.valid_spec`, `data.test_spec`) so
            evaluation and `resume` read the same files.
        resume: continue the run in `run_dir` from its last checkpoint. Its
            model, tokenizer, data (and validation / test files) and window
            length are the stored ones;
            training follows `recipe.train` (e.g. more epochs).
        overwrite: start over in a `run_dir` that already holds a trained run.
        workers: "host:port" addresses of the workers of a multi-worker run
            (a list or comma-separated string; worker 0 is the chief): trains
            with `strategy="multi-worker"` as worker `worker_index`. None with
            `recipe.train.strategy == "multi-worker"`: the cluster of
            `TF_CONFIG`. The strategy is created before anything is read;
            only the chief writes `run_dir` (the others a scratch directory),
            and the batch size is the global batch.
        worker_index: this process's position in `workers`.

    Returns:
        A `TrainedLanguageModel` (run directory, perplexities, history).

    Raises:
        DataError: the text is too short for the split or for one batch; a
            validation or test file that is missing, empty or not UTF-8.
        InputError: a recipe that does not fit the vocabulary (e.g.
            `sampled_softmax` not below the vocabulary size).
        RunDirError: an unusable run directory.

    Example:

    ```python
    import keras_seq as ks

    recipe = ks.LanguageModelRecipe.for_model("lstm", epochs=1, units=64)
    result = ks.train_language_model(recipe, "runs/tiny-lm", data="book.txt")
    result.test_perplexity
    ```
    """
    if resume:
        recipe = recipe or LanguageModelRecipe.from_run(run_dir)
    else:
        recipe = recipe or LanguageModelRecipe()
    if not isinstance(recipe, LanguageModelRecipe):
        raise TypeError(f"recipe must be a LanguageModelRecipe, got {type(recipe).__name__}")
    recipe.check_memory()  # what cannot fit with any data, before reading it
    strategy = workers_lib.strategy_name(recipe.train.strategy, workers)
    if strategy != recipe.train.strategy:
        recipe = recipe.with_training(strategy=strategy)
    # First of all: TensorFlow needs the multi-worker strategy before any op.
    role = workers_lib.start(strategy, workers, worker_index)
    if resume:
        tokenizer, streams, run_config = _stored_run(run_dir, data, valid_data, test_data)
        config = dataclasses.replace(recipe.train, resume=True)
        run, run_config = runs.prepare_run_dir(run_dir, None, resume=True, scratch=role.scratch)
    else:
        tokenizer, streams, run_config = _new_run(recipe, data or DEFAULT_DATA, valid_data,
                                                  test_data)
        config = recipe.train
    info = run_config["model"]
    seq_len = int(run_config["data"]["seq_len"])
    for name in ("train", "valid"):
        lm_data.check_stream(streams[name], name, config.batch_size, seq_len,
                             source=run_config["data"].get(f"{name}_spec"))
    if not resume:
        run, run_config = runs.prepare_run_dir(run_dir, run_config, overwrite=overwrite,
                                               scratch=role.scratch)
        tokenizer.save(str(run.vocab_dir))
    progress.echo(
        f"{tokenizer.type_name} tokenizer, vocabulary {tokenizer.vocab_size}; tokens: "
        + ", ".join(f"{k} {len(v)}" for k, v in streams.items())
        + f"; batches of {config.batch_size} x {seq_len}", config.verbose)
    sampled = int(info["config"].get("sampled_softmax", 0) or 0)
    if sampled:
        progress.echo(f"training loss: sampled softmax over {sampled} negatives of "
                      f"{tokenizer.vocab_size}; val_loss and perplexities: full softmax",
                      config.verbose)
    model, history = _fit(info, streams, run, config, seq_len, resume)
    valid_ppl, _ = lm_data.perplexity(model, streams["valid"], seq_len, config.batch_size)
    test_ppl, n_test = None, 0
    if "test" in streams:
        test_ppl, n_test = lm_data.perplexity(model, streams["test"], seq_len, config.batch_size)
    return TrainedLanguageModel(run.path, valid_ppl, test_ppl, n_test, history, role.chief)


def _fit(info, streams, run, config, seq_len, resume):
    """Builds the model (unigram output bias) and trains it: `(model, history)`."""
    is_rnn = info["type"] == "rnn"
    # The output bias starts at the log unigram frequencies of the training
    # stream (a resumed run then loads its checkpoint over it): with a zero
    # bias and Adam, the sampled softmax drifts (see
    # SampledSoftmax.set_unigram_bias) and the full softmax starts slowly.
    counts = np.bincount(np.asarray(streams["train"], dtype="int64"),
                         minlength=info["config"]["vocab_size"])

    def build():
        # Under a strategy the state holds one replica's rows of the global batch.
        rows = training.per_replica_batch_size(config.batch_size) if is_rnn else config.batch_size
        model = models.build_model("lm", info, batch_size=rows, stateful=is_rnn)
        model.set_unigram_bias(counts)
        return model

    return training.train(
        build,
        data_lib.make_lm_dataset(streams["train"], config.batch_size, seq_len),
        data_lib.make_lm_dataset(streams["valid"], config.batch_size, seq_len),
        run,
        config,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if is_rnn else None,
        callbacks=[ResetStates()] if is_rnn else [],
        resume=resume,
    )
