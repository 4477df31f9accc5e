"""Training a translator into a run directory from a `TranslatorRecipe`.

`train_translator` is the library behind `keras-seq train-translator`: it
splits the pairs (the test split is held out) or reads separate validation
and test files, fits the tokenizers on the training split, builds the
recipe's model, trains it with `keras_seq.training.train` and reports a
validation BLEU (and the test file's, when given).

Run directory (`keras_seq.runs`):

    config.json   {"task": "translator",
                   "model": {"type": "rnn" | "transformer", "config": {...}},
                   "tokenizer": {"source": {"type", "config", "vocab_size"},
                                 "target": {...}, "shared": bool},
                   "training": TrainConfig.to_dict(),
                   "recipe": {"label_smoothing", "steps_per_epoch_cap",
                              "early_stop_on", "unigram_bias", "batch_tokens"},
                   (the sampled softmax is model.config.sampled_softmax)
                   "data": {"spec", "reverse", "max_pairs",
                            ("valid_spec", "test_spec": separate files,
                             only when given),
                            "split_seed", "val_fraction", "test_fraction"
                            (0 for a split read from a file), "max_length",
                            "pairs": {"train", "valid", "test"}, "filtered"},
                   "decoding": {"beam", "length_penalty", "unk_replace"}}
    vocab/source/, vocab/target/   the tokenizers (a shared vocabulary is
                                   written to both)
    checkpoints/, logs/            written by keras_seq.training
    training-curves.png            loss, validation loss, BLEU, learning rate
                                   per epoch (with the `plot` extra)

Every epoch prints a few validation translations (`TranslationMonitor`; not
with `verbose=0`); with `early_stop_on="bleu"` it also scores the validation
BLEU that selects the best checkpoint and early-stops.
"""

import os
import time

from keras_seq import errors
from keras_seq import progress
from keras_seq import runs
from keras_seq.pipelines import warm_start as warm_lib
from keras_seq.pipelines import workers as workers_lib
from keras_seq.recipes import TranslatorRecipe
from keras_seq.recipes.common import choose_sampled_softmax
from keras_seq.recipes.common import say
from keras_seq.recipes.common import training_config

__all__ = [
    "corpus_held_out",
    "label_smoothed_loss",
    "load_corpus",
    "load_split",
    "load_splits",
    "make_tokenizer",
    "model_info_for",
    "split_corpus",
    "split_files",
    "train_translator",
]

DEFAULT_DATA = "bundled:fra-eng"
# Validation sentences translated (greedy) for the BLEU printed after training.
VALID_BLEU_SENTENCES = 500


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


def load_corpus(spec, *, reverse=False, max_pairs=None):
    """Loads sentence pairs, optionally swapping the columns.

    Args:
        spec: a `source<TAB>target` file path or "bundled:NAME".
        reverse: swap the columns (translate target -> source).
        max_pairs: read at most this many pairs.

    Returns:
        list of `(source, target)`.
    """
    from keras_seq import data as data_lib

    pairs = data_lib.load_pairs(spec, max_pairs=max_pairs)
    if reverse:
        pairs = [(t, s) for s, t in pairs]
    return pairs


def split_corpus(pairs, seed, val_fraction, test_fraction, *, held_out=("valid", "test")):
    """`keras_seq.data.split_pairs` with a clear error for tiny corpora.

    Args:
        pairs: list of `(source, target)`.
        seed, val_fraction, test_fraction: see `keras_seq.data.split_pairs`.
        held_out: the held-out splits that must not come out empty (a split
            read from a file of its own has a fraction of 0 and is left out).

    Returns:
        `{"train": [...], "valid": [...], "test": [...]}`.

    Raises:
        DataError: the training split or one of `held_out` would be empty.
    """
    from keras_seq import data as data_lib

    train_pairs, valid_pairs, test_pairs = data_lib.split_pairs(
        pairs, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    splits = {"train": train_pairs, "valid": valid_pairs, "test": test_pairs}
    for name, part in splits.items():
        if not part and (name == "train" or name in held_out):
            raise errors.DataError(
                f"{len(pairs)} sentence pairs are too few to split into train/valid/test "
                f"({val_fraction:.1%} validation, {test_fraction:.1%} test): the {name} split "
                "is empty; give more pairs"
            )
    return splits


def split_files(info, only=None):
    """The pairs of a run's separate validation and test files.

    Args:
        info: the run's config.json "data" entry (or the one being built);
            `info["valid_spec"]` / `info["test_spec"]` name the files (absent
            in runs split off one file), read with the columns swapped when
            `info["reverse"]`.
        only: "valid" or "test" to read that file only, None for both.

    Returns:
        `{split: [(source, target), ...]}` for each file the run has.

    Raises:
        DataError: a file that is missing, empty, not UTF-8 or has a line
            without a tab or with an empty side (the message starts with
            "validation data:" / "test data:" and names the file and line).
    """
    from keras_seq import data as data_lib

    out = {}
    for name in ("valid", "test"):
        spec = info.get(f"{name}_spec")
        if spec and only in (None, name):
            pairs = data_lib.load_split_file(spec, name)
            out[name] = [(t, s) for s, t in pairs] if info.get("reverse") else pairs
    return out


def corpus_held_out(info):
    """The held-out splits a run cuts off its training data (`split_corpus`'s `held_out`).

    Both without separate files; only the validation split with a test file
    alone; none with a validation file (all of the data trains, and the test
    split is the test file or absent).
    """
    if info.get("valid_spec"):
        return ()
    return ("valid",) if info.get("test_spec") else ("valid", "test")


def load_splits(info, only=None):
    """Rebuilds a run's splits exactly as training made them.

    Splits with a file of their own (`valid_spec`, `test_spec`) are read from
    it; the others are the seeded split of `info["spec"]` (`split_seed`,
    `val_fraction`, `test_fraction`). A run trained with a validation file
    and no test file has an empty test split.

    Args:
        info: the run's config.json "data" entry.
        only: one split name to build (a file split then reads only its
            file), or None for all three.

    Returns:
        `{name: [(source, target), ...]}` for "train", "valid", "test" (or
        `only`).
    """
    wanted = ("train", "valid", "test") if only is None else (only,)
    splits = split_files(info, only)
    if any(name not in splits for name in wanted):
        corpus = load_corpus(info["spec"], reverse=info.get("reverse", False),
                             max_pairs=info.get("max_pairs"))
        splits = dict(split_corpus(corpus, info["split_seed"], info["val_fraction"],
                                   info["test_fraction"], held_out=corpus_held_out(info)),
                      **splits)
    return {name: splits[name] for name in wanted}


def load_split(run_config, split):
    """Rebuilds one split of a run's data exactly as training made it.

    Args:
        run_config: the run's config.json dict.
        split: "train", "valid" or "test".

    Returns:
        list of `(source, target)` pairs.

    Raises:
        RunDirError: the config has no "data" entry.
        InputError: an unknown split, or "test" of a run trained with a
            validation file and no test file.
        DataError: the data or split file can no longer be read.
    """
    info = run_config.get("data")
    if not isinstance(info, dict) or "spec" not in info:
        raise errors.RunDirError("the run's config.json has no 'data' entry; retrain the run")
    if split not in ("train", "valid", "test"):
        raise errors.InputError(f"split must be train, valid or test; got {split!r}")
    if split == "test" and "test" not in corpus_held_out(info) and not info.get("test_spec"):
        raise errors.InputError(
            f"the run has no test split: it trained on all of {info['spec']} with the "
            f"validation file {info['valid_spec']} and no test file; evaluate a pairs file "
            "instead")
    return load_splits(info, only=split)[split]


def make_tokenizer(tokenizer_type, vocab_size, min_frequency, *, lowercase,
                   split_elisions=False):
    """A fresh (unfitted) tokenizer of one side (or both) of the translator.

    Args:
        tokenizer_type: "word", "wordpiece", "char", "sentencepiece" or "bpe".
        vocab_size: most tokens (None: no limit; 8000 for the subword ones).
        min_frequency: rarer tokens are `<unk>` (word and char).
        lowercase: lower-case the text (word, wordpiece, char; SentencePiece
            vocabularies are cased).
        split_elisions: an elided word ("l'", "qu'") is a token of its own
            (word only).
    """
    from keras_seq import text as text_lib

    if tokenizer_type == "word":
        return text_lib.WordTokenizer(lowercase=lowercase, max_tokens=vocab_size,
                                      min_frequency=min_frequency, split_elisions=split_elisions)
    if tokenizer_type == "wordpiece":
        return text_lib.WordPieceTokenizer(vocab_size=vocab_size or 8000, lowercase=lowercase)
    if tokenizer_type == "char":
        return text_lib.CharTokenizer(lowercase=lowercase, max_tokens=vocab_size,
                                      min_frequency=min_frequency)
    if tokenizer_type in ("sentencepiece", "bpe"):
        # Cased raw text; the vocabulary size is an upper bound (no min_frequency).
        return text_lib.SentencePieceTokenizer(
            vocab_size=vocab_size or 8000,
            model_type="bpe" if tokenizer_type == "bpe" else "unigram")
    raise errors.InputError(f"unknown tokenizer {tokenizer_type!r}; use word, wordpiece, char, "
                            "sentencepiece or bpe")


def _tokenizer_info(tokenizer):
    return {"type": tokenizer.type_name, "config": tokenizer.get_config(),
            "vocab_size": tokenizer.vocab_size}


def encode_pairs(source_tokenizer, target_tokenizer, pairs):
    """Token ids of both sides, dropping pairs with a side that has no token.

    Returns:
        `(source_ids, target_ids)`: two lists of int lists.
    """
    sources = source_tokenizer.encode([s for s, _ in pairs])
    targets = target_tokenizer.encode([t for _, t in pairs])
    # A side that tokenizes to nothing (e.g. only control characters) cannot
    # be learned from; the pipeline needs >= 1 token per side.
    kept = [(s, t) for s, t in zip(sources, targets) if s and t]
    return [s for s, _ in kept], [t for _, t in kept]


def target_counts(setup, vocab_size):
    """`[vocab_size]` occurrences of each id among the training labels (EOS once a pair)."""
    import numpy as np

    from keras_seq.text import EOS_ID

    _, targets = encode_pairs(setup.source_tokenizer, setup.target_tokenizer,
                              setup.splits["train"])
    counts = np.bincount(np.fromiter((i for t in targets for i in t), dtype="int64"),
                         minlength=vocab_size)[:vocab_size]
    counts[EOS_ID] += len(targets)
    return counts


# ----------------------------------------------------------------------------
# Model and loss
# ----------------------------------------------------------------------------


def model_info_for(recipe, source_vocab, target_vocab, max_length):
    """The config.json "model" entry of a new translator.

    Args:
        recipe: a `TranslatorRecipe`.
        source_vocab, target_vocab: the tokenizers' vocabulary sizes.
        max_length: the longest training side in tokens (the model takes one
            more, for EOS).

    Returns:
        `{"type": "rnn" | "transformer", "config": {...}}`.

    Raises:
        InputError: `sampled_softmax` not below the target vocabulary.
    """
    r = recipe
    sampled = choose_sampled_softmax(
        r.sampled_softmax, default=r.sampled_negatives, vocab_size=target_vocab,
        min_vocab=r.sampled_softmax_min_vocab, vocabulary="target vocabulary")
    if r.model == "transformer":
        config = dict(
            source_vocab_size=source_vocab, target_vocab_size=target_vocab, d_model=r.units,
            num_heads=r.num_heads, ff_dim=r.feed_forward_dim, num_layers=r.layers,
            dropout=r.dropout, max_length=max_length + 1, sampled_softmax=sampled,
        )
        if r.tie_embeddings:  # one table: target embedding and output kernel
            config.update(tie_embeddings=True)
        if r.shared_vocab:  # ... and the source embedding too
            config.update(share_embeddings=True, tie_embeddings=True)
        return {"type": "transformer", "config": config}
    config = dict(
        source_vocab_size=source_vocab, target_vocab_size=target_vocab,
        embedding_dim=r.embedding_dim, units=r.units, num_layers=r.layers, cell=r.cell,
        bidirectional=r.bidirectional, attention=r.attention, input_feeding=r.input_feeding,
        dropout=r.dropout, teacher_forcing_ratio=r.teacher_forcing_ratio,
        max_length=max_length + 1,  # + EOS
    )
    if sampled:
        config["sampled_softmax"] = sampled
    return {"type": "rnn", "config": config}


def label_smoothed_loss(smoothing, pad_id=0):
    """Masked cross-entropy with label smoothing, as a Keras loss function.

    `(1 - smoothing) * NLL(target) + smoothing * mean_v(-log p_v)` averaged
    over the non-padded target tokens (with `smoothing=0` exactly
    `keras_seq.models.masked_loss()`).

    Args:
        smoothing: float in [0, 1).
        pad_id: the padding id, ignored.

    Returns:
        A function `loss(y_true [B, T] int, y_pred [B, T, V] logits) -> scalar`.
    """
    import keras
    from keras import ops

    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing!r}")
    if smoothing == 0.0:
        from keras_seq.models import masked_loss

        return masked_loss(pad_id)

    def masked_smoothed_cross_entropy(y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        logits = ops.cast(y_pred, "float32")
        logp = ops.log_softmax(logits, axis=-1)  # [B, T, V]
        mask = ops.cast(ops.not_equal(y_true, pad_id), "float32")
        labels = ops.where(ops.not_equal(y_true, pad_id), y_true, ops.zeros_like(y_true))
        nll = -ops.squeeze(ops.take_along_axis(logp, ops.expand_dims(labels, -1), axis=-1), -1)
        uniform = -ops.mean(logp, axis=-1)
        per_token = (1.0 - smoothing) * nll + smoothing * uniform
        return ops.divide_no_nan(ops.sum(per_token * mask), ops.sum(mask))

    masked_smoothed_cross_entropy.__name__ = "masked_smoothed_cross_entropy"
    return keras.losses.get(masked_smoothed_cross_entropy)


def _describe_model(model_info):
    c = model_info["config"]
    if model_info["type"] == "transformer":
        return f"{c['num_layers']} layers, d_model {c['d_model']}, {c['num_heads']} heads"
    return (f"{'bi' if c['bidirectional'] else ''}{c['cell']} {c['units']} units x "
            f"{c['num_layers']} layer(s), {c['attention']} attention"
            + (", input feeding" if c["input_feeding"] else "")
            + f", dropout {c['dropout']}")


# ----------------------------------------------------------------------------
# train_translator
# ----------------------------------------------------------------------------


class _Setup:
    """What training needs: tokenizers, splits, model entry, configs (new or resumed)."""

    def __init__(self, **values):
        self.__dict__.update(values)


def _data_info(data, reverse, max_pairs, valid_data, test_data):
    """The config.json "data" entry of a new run, before the corpus is read.

    The keys `valid_spec` / `test_spec` are only there when the files are
    given, so a run split off one file has the same entry as before they
    existed.
    """
    from keras_seq import data as data_lib

    info = {"spec": data, "reverse": bool(reverse), "max_pairs": max_pairs}
    for name, spec in (("valid", valid_data), ("test", test_data)):
        if spec is not None:
            info[f"{name}_spec"] = data_lib.split_file_spec(spec, name)
    return info


def _held_out_fractions(recipe, info, files, num_pairs):
    """Says where the held-out splits come from; `(val_fraction, test_fraction)` of the corpus."""
    for name, pairs in files.items():
        progress.echo(f"{len(pairs)} {'validation' if name == 'valid' else 'test'} pairs from "
                      f"{info[name + '_spec']}", recipe.train.verbose)
        if _same_file(info["spec"], info[f"{name}_spec"]):
            say(f"warning: the {'validation' if name == 'valid' else 'test'} file is the "
                "training data file; its scores will be optimistic")
    val_fraction, test_fraction = recipe.held_out_fractions(num_pairs)
    held_out = corpus_held_out(info)
    return (val_fraction if "valid" in held_out else 0.0,
            test_fraction if "test" in held_out else 0.0)


def _same_file(a, b):
    from keras_seq import data as data_lib

    try:
        return os.path.samefile(data_lib.resolve_data(a), data_lib.resolve_data(b))
    except (OSError, errors.KerasSeqError):
        return False


def _new_setup(recipe, data, reverse, max_pairs, valid_data=None, test_data=None):
    """Reads and splits the data, fits the tokenizers, picks the model (a new run)."""
    max_length = recipe.source_max_length
    info = _data_info(data, reverse, max_pairs, valid_data, test_data)
    files = split_files(info)  # bad validation / test files fail before the corpus is read
    progress.echo(f"reading {data}", recipe.train.verbose)
    pairs = load_corpus(data, reverse=reverse, max_pairs=max_pairs)
    val_fraction, test_fraction = _held_out_fractions(recipe, info, files, len(pairs))
    splits = dict(split_corpus(pairs, recipe.split_seed, val_fraction, test_fraction,
                               held_out=corpus_held_out(info)), **files)
    source_tokenizer, target_tokenizer = _fit_tokenizers(recipe, splits["train"])
    recipe.check_memory(source_vocab_size=source_tokenizer.vocab_size,
                        target_vocab_size=target_tokenizer.vocab_size)
    model_info = model_info_for(recipe, source_tokenizer.vocab_size,
                                target_tokenizer.vocab_size, max_length)
    smoothing = recipe.label_smoothing
    if model_info["config"].get("sampled_softmax"):
        smoothing = 0.0  # the sampled softmax trains without it
    run_config = {
        "task": "translator",
        "model": model_info,
        "tokenizer": {"source": _tokenizer_info(source_tokenizer),
                      "target": _tokenizer_info(target_tokenizer),
                      "shared": bool(recipe.shared_vocab)},
        "training": recipe.train.to_dict(),
        "recipe": {"label_smoothing": float(smoothing),
                   "steps_per_epoch_cap": recipe.steps_per_epoch_cap,
                   "batch_tokens": recipe.batch_tokens,
                   "early_stop_on": recipe.early_stop_on,
                   "unigram_bias": bool(recipe.unigram_bias)},
        "data": dict(
            info, split_seed=recipe.split_seed, val_fraction=val_fraction,
            test_fraction=test_fraction, max_length=max_length,
            pairs={name: len(part) for name, part in splits.items()},
        ),
        "decoding": recipe.decoding_info(),
    }
    return _Setup(source_tokenizer=source_tokenizer, target_tokenizer=target_tokenizer,
                  splits=splits, run_config=run_config, config=recipe.train)


def _fit_tokenizers(recipe, train_pairs):
    """`(source_tokenizer, target_tokenizer)` fitted on the training pairs.

    With `recipe.shared_vocab`, one tokenizer of `target_vocab_size` tokens
    fitted on both sides (the same object twice).
    """
    kind, verbose = recipe.tokenizer, recipe.train.verbose
    sources, targets = [s for s, _ in train_pairs], [t for _, t in train_pairs]
    if recipe.shared_vocab:
        shared = make_tokenizer(kind, recipe.target_vocab_size, recipe.min_frequency,
                                lowercase=False).fit(sources + targets, verbose=verbose)
        return shared, shared
    elisions = recipe.split_elisions
    source = make_tokenizer(kind, recipe.source_vocab_size, recipe.min_frequency,
                            lowercase=kind != "char",
                            split_elisions=elisions).fit(sources, verbose=verbose)
    target = make_tokenizer(kind, recipe.target_vocab_size, recipe.min_frequency,
                            lowercase=False, split_elisions=elisions).fit(targets, verbose=verbose)
    return source, target


def _resumed_setup(run_dir, data, train_overrides, valid_data=None, test_data=None):
    """The stored tokenizers, data and model of a run; its TrainConfig with overrides."""
    from keras_seq import text as text_lib

    stored = runs.load_checked_config(run_dir)
    if stored.get("task") != "translator":
        raise errors.RunDirError(f"{run_dir} is not a translator run")
    run = runs.RunDir(run_dir).chief  # every worker reads the chief's vocabulary
    info = stored["data"]
    if data not in (None, info["spec"], DEFAULT_DATA):
        say(f"--resume: training goes on with the run's own data {info['spec']} "
            f"(ignoring --data {data})")
    _say_stored_files(info, valid_data, test_data)
    config = training_config({k: v for k, v in stored["training"].items() if k != "resume"},
                             **dict(train_overrides or {}))
    sizes = stored["model"]["config"]
    TranslatorRecipe.from_run_config(dict(stored, training=config.to_dict())).check_memory(
        source_vocab_size=sizes["source_vocab_size"], target_vocab_size=sizes["target_vocab_size"])
    splits = load_splits(info)
    return _Setup(source_tokenizer=text_lib.load_tokenizer(str(run.vocab_dir / "source")),
                  target_tokenizer=text_lib.load_tokenizer(str(run.vocab_dir / "target")),
                  splits=splits, run_config=dict(stored, training=config.to_dict()),
                  config=config)


def _say_stored_files(info, valid_data, test_data):
    """Says that a resumed run keeps its own validation / test files."""
    for name, given in (("valid", valid_data), ("test", test_data)):
        stored = info.get(f"{name}_spec")
        if given is not None and os.fspath(given) != stored:
            say(f"--resume: training goes on with the run's own {name} data "
                f"{stored or 'split off ' + info['spec']} (ignoring {os.fspath(given)})")


def _datasets(setup, max_length):
    from keras_seq import data as data_lib

    s = setup
    train_src, train_tgt = encode_pairs(s.source_tokenizer, s.target_tokenizer, s.splits["train"])
    valid_src, valid_tgt = encode_pairs(s.source_tokenizer, s.target_tokenizer, s.splits["valid"])
    limits = dict(max_source_length=max_length + 1, max_target_length=max_length + 1)
    batch_tokens = _recipe_entry(s.run_config, "batch_tokens")
    batching = (dict(batch_tokens=batch_tokens) if batch_tokens
                else dict(batch_size=s.config.batch_size))
    train_ds = data_lib.make_pair_dataset(train_src, train_tgt, seed=s.config.seed, **batching,
                                          **limits)
    try:
        valid_ds = data_lib.make_pair_dataset(valid_src, valid_tgt, s.config.batch_size,
                                              shuffle=False, **limits)
    except errors.DataError as e:
        raise errors.DataError(f"validation data: {e}") from None
    return train_ds, valid_ds


def train_translator(recipe=None, run_dir="runs/translator", *, data=DEFAULT_DATA,
                     valid_data=None, test_data=None, reverse=False, max_pairs=None,
                     resume=False, overwrite=False, train_overrides=None, workers=None,
                     worker_index=None, warm_start=None):
    """Trains a translator into `run_dir`: data, tokenizers, model, training, report.

    Prints a validation BLEU (greedy) and a few translations on stdout, and
    progress on stderr.

    Args:
        recipe: a `TranslatorRecipe` (default `TranslatorRecipe()`, the
            recurrent recipe). Ignored with `resume=True`.
        run_dir: the run directory (created; see the module docstring).
        data: a `source<TAB>target` file or "bundled:NAME". Without
            `valid_data`, a seeded 5% validation and 5% test split (at most
            `recipe.max_held_out` pairs each) is held out of it.
        valid_data: a separate `source<TAB>target` validation file (or
            "bundled:NAME"): all of `data` then trains, and checkpoints, the
            learning-rate schedule and early stopping follow this file.
        test_data: a separate test file, scored (greedy BLEU/chrF) at the end
            and read by `Translator.split("test")` / `keras-seq evaluate`.
            With `test_data` alone only the validation split is held out of
            `data`; with `valid_data` alone the run has no test split. Both
            files are checked (present, non-empty, UTF-8,
            a tab on every line) before anything is trained or written, and
            are recorded in config.json (`data.valid_spec`, `data.test_spec`)
            so evaluation and `resume` read the same files; both use the
            column order of `data` (`reverse`).
        reverse: swap the columns (translate target -> source).
        max_pairs: use at most this many pairs.
        resume: continue the run in `run_dir` from its last checkpoint, with
            its stored data (and validation / test files), tokenizers, model
            and TrainConfig.
        overwrite: start over in a `run_dir` that holds a trained run.
        train_overrides: with `resume`, TrainConfig fields to change (e.g.
            `{"epochs": 40}` to train a finished run further).
        workers: "host:port" addresses of the workers of a multi-worker run
            (a list or comma-separated string; worker 0 is the chief): trains
            with `strategy="multi-worker"` as worker `worker_index`. None with
            a "multi-worker" strategy: the cluster of `TF_CONFIG`. The
            strategy is created before anything is read; only the chief
            writes `run_dir` (the others a scratch directory) and prints.
        worker_index: this process's position in `workers`.
        warm_start: a `.weights.h5` file to start the new run's model from
            instead of a random initialization (`keras_seq.pipelines.
            warm_start`): a checkpoint of a run with this recipe and the
            same vocabularies, or a file written by `warm_start.write_start`
            (its sidecar's vocabulary fingerprints are checked against this
            run's tokenizers). Recorded in config.json ("warm_start").

    Returns:
        A dict: "run_dir", "stop_reason", "valid_bleu", "valid_chrf",
        "test_bleu", "test_chrf" (greedy, on the whole `test_data`; None
        without it), "minutes", "batches_per_pass" (training batches in one
        pass over the training pairs), and "translator" (a `Translator` over the
        trained model).

    Raises:
        KerasSeqError: bad data, a run directory that does not fit, bad
            settings.

    Example:

    ```python
    import keras_seq as ks

    recipe = ks.TranslatorRecipe(units=128).with_training(epochs=2)
    result = ks.train_translator(recipe, "runs/tiny", max_pairs=2000)
    result["translator"].translate(["I am cold."])
    ```
    """
    from keras_seq import training
    from keras_seq.models import MaskedTokenAccuracy
    from keras_seq.models import build_model
    from keras_seq.pipelines.translation_monitor import BLEU_SENTENCES
    from keras_seq.pipelines.translation_monitor import TranslationMonitor

    started = time.monotonic()
    if warm_start is not None:
        if resume:
            raise errors.InputError("warm_start starts a new run; resume continues one: "
                                    "pass one of them")
        warm_lib.check_start(warm_start)  # before the data is read
    if resume:
        train_overrides = dict(train_overrides or {})
        if workers:
            train_overrides["strategy"] = workers_lib.MULTI_WORKER
        strategy = (train_overrides.get("strategy")
                    or runs.load_checked_config(run_dir)["training"].get("strategy"))
    else:
        recipe = TranslatorRecipe() if recipe is None else recipe
        if not isinstance(recipe, TranslatorRecipe):
            raise TypeError(f"recipe must be a TranslatorRecipe, got {type(recipe).__name__}")
        recipe.check_memory()  # what cannot fit with any data, before reading it
        if workers:
            recipe = recipe.with_training(strategy=workers_lib.MULTI_WORKER)
        strategy = recipe.train.strategy
    # First of all: TensorFlow needs the multi-worker strategy before any op.
    role = workers_lib.start(strategy, workers, worker_index)
    if resume:
        setup = _resumed_setup(run_dir, data, train_overrides, valid_data, test_data)
    else:
        setup = _new_setup(recipe, data, reverse, max_pairs, valid_data, test_data)
    run_config = setup.run_config
    if warm_start is not None:
        about = warm_lib.check_start(warm_start, setup.source_tokenizer, setup.target_tokenizer)
        run_config["warm_start"] = dict(about, path=os.path.abspath(warm_start))
    model_info = run_config["model"]
    max_length = int(run_config["data"]["max_length"])
    train_ds, valid_ds = _datasets(setup, max_length)
    if not resume:
        run_config["data"]["filtered"] = int(train_ds.num_filtered)
        run, run_config = runs.prepare_run_dir(run_dir, run_config, overwrite=bool(overwrite),
                                               scratch=role.scratch)
        setup.source_tokenizer.save(str(run.vocab_dir / "source"))
        setup.target_tokenizer.save(str(run.vocab_dir / "target"))
    else:
        run, _ = runs.prepare_run_dir(run_dir, None, resume=True, scratch=role.scratch)
        run.write_config(run_config)
    steps_per_epoch = _report_data(setup, train_ds, model_info, run, max_length)

    # A sampled-softmax training pass has no logits to score: Keras then
    # fails on metrics that were never updated, so none are compiled; the
    # compiled loss then only scores validation (full softmax).
    sampled = int(model_info["config"].get("sampled_softmax", 0) or 0)
    smoothing = float(_recipe_entry(run_config, "label_smoothing", 0.0))
    # The Transformer computes its own loss unless it is label-smoothed.
    loss = label_smoothed_loss(smoothing) if model_info["type"] == "rnn" or smoothing else None
    on_bleu = _recipe_entry(run_config, "early_stop_on", "loss") == "bleu"
    monitor = TranslationMonitor(
        setup.source_tokenizer, setup.target_tokenizer, setup.splits["valid"],
        bleu_sentences=BLEU_SENTENCES if on_bleu else 0,
        unk_replace=run_config.get("decoding", {}).get("unk_replace", True),
        verbose=setup.config.verbose if role.chief else 0)
    counts = (target_counts(setup, model_info["config"]["target_vocab_size"])
              if _recipe_entry(run_config, "unigram_bias") and not resume
              and warm_start is None else None)

    def build():
        model = build_model("translator", model_info)
        if counts is not None:
            model.set_unigram_bias(counts)
        if warm_start is not None:
            warm_lib.load_start(model, warm_start)
        return model

    model, history = training.train(
        build, train_ds, valid_ds, run, setup.config,
        loss=loss, metrics=None if sampled else [MaskedTokenAccuracy()],
        steps_per_epoch=steps_per_epoch, resume=resume, callbacks=[monitor],
        monitor="val_bleu" if on_bleu else None,
    )
    minutes = (time.monotonic() - started) / 60.0
    best = history.state.get("best")
    progress.echo(f"training stopped ({history.stop_reason}) after {minutes:.1f} min; best epoch "
                  f"{history.state.get('best_epoch')} ({history.state.get('monitor')} "
                  f"{float('nan') if best is None else best:.4f})", setup.config.verbose)
    return dict(_report_validation(model, setup, run, history, minutes, chief=role.chief),
                batches_per_pass=int(train_ds.cardinality()))


def _report_data(setup, train_ds, model_info, run, max_length):
    """Says what is trained on; returns the steps per epoch (None: full passes)."""
    splits, s = setup.splits, setup
    num_batches = int(train_ds.cardinality())
    cap = int(_recipe_entry(s.run_config, "steps_per_epoch_cap",
                            TranslatorRecipe.steps_per_epoch_cap))
    steps_per_epoch = cap if num_batches > cap else None
    progress.echo(
        f"{len(splits['train'])} training pairs ({train_ds.num_examples} within {max_length} "
        f"tokens), {len(splits['valid'])} validation, {len(splits['test'])} "
        f"test (held out); vocabularies {s.source_tokenizer.vocab_size} source / "
        f"{s.target_tokenizer.vocab_size} target ({s.source_tokenizer.type_name}); "
        f"{num_batches} batches of {_batch_text(s)} per pass"
        + (f", epochs of {cap} batches" if steps_per_epoch else ""), s.config.verbose)
    progress.echo(f"model: {model_info['type']} {_describe_model(model_info)}; "
                  f"run directory {run.path}", s.config.verbose)
    return steps_per_epoch


def _batch_text(setup):
    """What a training batch holds: "64" (pairs) or "up to 700 tokens"."""
    batch_tokens = _recipe_entry(setup.run_config, "batch_tokens")
    return f"up to {batch_tokens} tokens" if batch_tokens else str(setup.config.batch_size)


def _recipe_entry(run_config, name, default=None):
    """A value of the run's config.json "recipe" entry (older runs may lack it, or the name)."""
    return run_config.get("recipe", {}).get(name, default)


def _report_validation(model, setup, run, history, minutes, chief=True):
    """Prints the validation BLEU (greedy) and a few translations; the run summary.

    Every worker of a multi-worker run scores; only the chief (`chief`) prints.
    """
    say_result = print if chief else _silent
    from keras_seq import metrics
    from keras_seq.pipelines.translator import Translator
    from keras_seq.pipelines.translator import options_from_run

    translator = Translator(model, setup.source_tokenizer, setup.target_tokenizer,
                            options=options_from_run(setup.run_config),
                            unk_replace=setup.run_config.get("decoding", {}).get("unk_replace", True),
                            run_dir=str(run.path), run_config=setup.run_config)
    sample = setup.splits["valid"][:VALID_BLEU_SENTENCES]
    outputs = translator.translate([s for s, _ in sample], greedy=True)
    scores = metrics.translation_scores([o.text for o in outputs], [t for _, t in sample])
    say_result(f"validation BLEU (greedy, {scores['sentences']} sentences): {scores['bleu']:.2f}  "
          f"chrF: {scores['chrf']:.2f}")
    for (source, reference), output in list(zip(sample, outputs))[:5]:
        say_result(f"  {source}\n    -> {output.text}\n       (reference: {reference})")
    test = _report_test(translator, setup, say_result)
    say_result(f"run directory: {run.path}")
    return {"run_dir": str(run.path), "stop_reason": history.stop_reason,
            "valid_bleu": scores["bleu"], "valid_chrf": scores["chrf"],
            "test_bleu": test and test["bleu"], "test_chrf": test and test["chrf"],
            "minutes": minutes, "translator": translator}


def _silent(*args, **kwargs):
    """Prints nothing (the results of a worker that is not the chief)."""


def _report_test(translator, setup, say_result=print):
    """Prints the greedy BLEU/chrF of a run's test file; its scores (None without one)."""
    from keras_seq import metrics

    spec = setup.run_config["data"].get("test_spec")
    pairs = setup.splits.get("test")
    if not spec or not pairs:
        return None
    outputs = translator.translate([s for s, _ in pairs], greedy=True)
    scores = metrics.translation_scores([o.text for o in outputs], [t for _, t in pairs])
    say_result(f"test BLEU (greedy, {scores['sentences']} sentences of {spec}): "
          f"{scores['bleu']:.2f}  chrF: {scores['chrf']:.2f}")
    return scores
