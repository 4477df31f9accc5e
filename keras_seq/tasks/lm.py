"""The language-model jobs behind `keras-seq train-lm`, `generate`, `evaluate`, `export`.

Each public function takes the `argparse.Namespace` built by `keras_seq.cli`
(see the attribute list in `keras_seq/cli.py`) and prints its result; errors a
user can fix are `keras_seq.errors.KerasSeqError` subclasses, which the command
prints as one line.

Data handling (the same in `train`, `evaluate` and the apps):

- The text is read with `keras_seq.data.load_text` (`bundled:anna-karenina` by
  default, or any UTF-8 file).
- Word and WordPiece tokenizers: paragraphs are blocks separated by blank
  lines; the hard line wraps inside a paragraph are joined with spaces and the
  paragraphs are joined with one "\\n". The word tokenizer keeps "\\n" as a
  token (`keep_newlines=True`), so generated text has paragraphs. The
  character tokenizer reads the text unchanged.
- Splits are contiguous, by position, cut at line boundaries: the first 90%
  of the characters train, the next 5% validate, the last 5% test (the valid
  and test splits are therefore later chapters of the book, not a random
  sample of sentences). Each split is one token stream ending with EOS.
- The tokenizer is fitted on the training split only, so validation and test
  words unseen in training count as `<unk>`.
- Training batches are truncated-BPTT windows (`keras_seq.data.make_lm_dataset`);
  the recurrent model is stateful, its state is reset at every epoch start
  and before every evaluation.
- `--sampled-softmax N` (both model families; the recipe's default is the
  full softmax, 0): training minimizes the sampled-softmax loss over N
  log-uniform negatives, while validation (`val_loss`, which picks the best
  checkpoint), the reported perplexities, `evaluate`, `generate` and
  `export` use the full softmax over the same weights. The weights do not
  depend on N, and `config.json` records it as `model.config.sampled_softmax`.

Run directory (`keras_seq.runs`): `config.json` holds

    {"task": "lm",
     "model": {"type": "rnn" | "transformer", "config": {...constructor kwargs}},
     "tokenizer": {"type": ..., "config": {...}, "vocab_size": V},
     "training": TrainConfig.to_dict(),
     "data": {"spec": ..., "seq_len": T, "preprocess": "paragraphs" | "raw",
              "val_fraction": 0.05, "test_fraction": 0.05, "tokens": {...}},
     "generation": {"max_length": ...}}

and `vocab/` the tokenizer files.
"""

import math
import re

from keras_seq import errors
from keras_seq import runs
from keras_seq.tasks.common import pick, sampled_softmax_from_args, say, transformer_width

VAL_FRACTION = 0.05
TEST_FRACTION = 0.05
# Most tokens `generate` produces per call for a recurrent model. The state is
# O(1), but the decoder keeps a [N, R, length] buffer of ids; this bounds it.
MAX_RNN_GENERATE_LENGTH = 5000
# Minimum stream tokens per row when evaluating: rows start from a zero state,
# so fewer, longer rows score more tokens with their full left context.
_EVAL_TOKENS_PER_ROW = 2000

# Defaults of the model flags, per tokenizer ("word" covers "wordpiece").
MODEL_DEFAULTS = {
    "word": dict(seq_len=35, units=256, embedding_dim=256, layers=2, dropout=0.3,
                 tie_embeddings=True, vocab_size=10000, min_frequency=1, sampled_softmax=0),
    "char": dict(seq_len=100, units=512, embedding_dim=64, layers=2, dropout=0.2,
                 tie_embeddings=False, vocab_size=None, min_frequency=1, sampled_softmax=0),
    "wordpiece": dict(seq_len=35, units=256, embedding_dim=256, layers=2, dropout=0.3,
                      tie_embeddings=True, vocab_size=8000, min_frequency=1, sampled_softmax=0),
}
TRANSFORMER_DEFAULTS = dict(seq_len=128, units=256, layers=2, dropout=0.1, num_heads=4,
                            tie_embeddings=True, sampled_softmax=0)
# TrainConfig defaults of the task (flags win).
TRAIN_DEFAULTS = dict(epochs=20, batch_size=32, optimizer="adam", learning_rate=2e-3,
                      clipnorm=5.0, patience=3, lr_schedule="plateau", decay_rate=0.5)
TRANSFORMER_TRAIN_DEFAULTS = dict(TRAIN_DEFAULTS, learning_rate=5e-4, warmup_steps=200,
                                  lr_schedule="plateau")


# ----------------------------------------------------------------------------
# Text -> splits -> token streams
# ----------------------------------------------------------------------------


def preprocess_text(text, tokenizer_type):
    """Normalizes a text for a tokenizer (see the module docstring).

    Args:
        text: str, the whole corpus.
        tokenizer_type: "word", "wordpiece" or "char".

    Returns:
        str: for word-level tokenizers one paragraph per line (hard wraps
        joined), for "char" the text unchanged.
    """
    if tokenizer_type == "char":
        return text
    paragraphs = re.split(r"\n[ \t]*\n", text)
    lines = [" ".join(line.strip() for line in p.split("\n") if line.strip()) for p in paragraphs]
    return "\n".join(line for line in lines if line)


def split_text(text, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION):
    """Cuts a text into contiguous train / valid / test parts at line ends.

    The first `1 - val_fraction - test_fraction` of the characters go to
    train, then valid, then test; each cut moves to the nearest following
    line end.

    Returns:
        `(train, valid, test)` strings.

    Raises:
        DataError: a part would be empty (text too short or a single line).
    """
    n = len(text)
    cuts = []
    for fraction in (1.0 - val_fraction - test_fraction, 1.0 - test_fraction):
        at = int(n * fraction)
        newline = text.find("\n", at)
        cuts.append(n if newline < 0 else newline + 1)
    train, valid, test = text[: cuts[0]], text[cuts[0] : cuts[1]], text[cuts[1] :]
    for name, part in (("training", train), ("validation", valid), ("test", test)):
        if not part.strip():
            raise errors.DataError(
                f"the text ({n} characters, {text.count(chr(10)) + 1} lines) is too short to "
                f"cut into train/valid/test parts by line ({int(100 * (1 - val_fraction - test_fraction))}"
                f"%/{int(100 * val_fraction)}%/{int(100 * test_fraction)}%): the {name} part is "
                "empty; give a longer text with more lines"
            )
    return train, valid, test


def make_tokenizer(tokenizer_type, vocab_size=None, min_frequency=1):
    """A fresh (unfitted) tokenizer for the task."""
    from keras_seq import text as text_lib

    if tokenizer_type == "word":
        return text_lib.WordTokenizer(lowercase=True, max_tokens=vocab_size,
                                      min_frequency=min_frequency, keep_newlines=True)
    if tokenizer_type == "char":
        return text_lib.CharTokenizer(max_tokens=vocab_size, min_frequency=min_frequency)
    if tokenizer_type == "wordpiece":
        return text_lib.WordPieceTokenizer(vocab_size=vocab_size or 8000)
    raise errors.InputError(f"unknown tokenizer {tokenizer_type!r}; use word, char or wordpiece")


def encode_stream(tokenizer, text):
    """Token ids of a text as one stream ending with EOS (int32 NumPy array)."""
    import numpy as np

    ids = tokenizer.encode([text], add_eos=True)[0]
    return np.asarray(ids, dtype=np.int32)


def load_streams(data_spec, tokenizer_type, tokenizer=None, vocab_size=None, min_frequency=1):
    """Loads, preprocesses and splits a text; fits the tokenizer on train.

    Args:
        data_spec: file path or "bundled:NAME".
        tokenizer_type: "word" | "char" | "wordpiece".
        tokenizer: an already fitted tokenizer (e.g. from a run directory), or
            None to fit a new one on the training part.
        vocab_size, min_frequency: for a new tokenizer.

    Returns:
        `(tokenizer, {"train": ids, "valid": ids, "test": ids})`.
    """
    from keras_seq import data as data_lib

    text = preprocess_text(data_lib.load_text(data_spec), tokenizer_type)
    parts = dict(zip(("train", "valid", "test"), split_text(text)))
    if tokenizer is None:
        tokenizer = make_tokenizer(tokenizer_type, vocab_size, min_frequency)
        tokenizer.fit([parts["train"]])
    return tokenizer, {name: encode_stream(tokenizer, part) for name, part in parts.items()}


def _check_stream(ids, name, batch_size, seq_len):
    need = batch_size * (seq_len + 1)
    if len(ids) < need:
        raise errors.DataError(
            f"the {name} split has {len(ids)} tokens, too few for one batch of "
            f"batch_size={batch_size} x seq_len={seq_len} (needs {need}); give a longer text or "
            "lower --batch-size / --seq-len"
        )


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------


def model_config_from_args(args, vocab_size, tokenizer_type):
    """`{"type", "config"}` of a new model from the train-lm flags.

    Raises:
        InputError: flags that do not fit together or the vocabulary (e.g.
            `--sampled-softmax` not below the vocabulary size).
    """
    family = args.model or "lstm"
    if family == "transformer":
        d = TRANSFORMER_DEFAULTS
        units = transformer_width(args, d["units"], d["num_heads"])
        seq_len = pick(args.seq_len, d["seq_len"])
        config = dict(
            vocab_size=vocab_size,
            d_model=units,
            num_heads=d["num_heads"],
            ff_dim=4 * units,
            num_layers=pick(args.layers, d["layers"]),
            dropout=pick(args.dropout, d["dropout"]),
            max_length=max(512, seq_len),
            tie_embeddings=pick(args.tie_embeddings, d["tie_embeddings"]),
            sampled_softmax=sampled_softmax_from_args(args, d["sampled_softmax"], vocab_size),
        )
        return {"type": "transformer", "config": config}, seq_len
    d = MODEL_DEFAULTS[tokenizer_type]
    config = dict(
        vocab_size=vocab_size,
        embedding_dim=pick(args.embedding_dim, d["embedding_dim"]),
        units=pick(args.units, d["units"]),
        num_layers=pick(args.layers, d["layers"]),
        cell=family,
        dropout=pick(args.dropout, d["dropout"]),
        tie_embeddings=pick(args.tie_embeddings, d["tie_embeddings"]),
        # Stateful TBPTT training on the sampled loss; evaluation, generation
        # and export use the full softmax (see the module docstring).
        sampled_softmax=sampled_softmax_from_args(args, d["sampled_softmax"], vocab_size),
    )
    return {"type": "rnn", "config": config}, pick(args.seq_len, d["seq_len"])


def build_model(model_info, *, batch_size=None, stateful=False):
    """Builds the model described by `config["model"]`.

    Args:
        model_info: `{"type": "rnn" | "transformer", "config": {...}}`.
        batch_size: rows of carried state (recurrent model, `stateful=True`).
        stateful: a recurrent model for truncated-BPTT training/evaluation
            (True) or for decoding (False, any batch size).

    Returns:
        An uncompiled `RNNLanguageModel` or `TransformerLanguageModel`.
    """
    from keras_seq import models

    kind = model_info.get("type")
    config = dict(model_info.get("config") or {})
    if kind == "rnn":
        return models.RNNLanguageModel(**config, batch_size=batch_size, stateful=stateful)
    if kind == "transformer":
        cls = getattr(models, "TransformerLanguageModel", None)
        if cls is None:
            raise errors.KerasSeqError(
                "this build of keras_seq has no TransformerLanguageModel; train with "
                "--model lstm, gru or rnn"
            )
        return cls(**config)
    raise errors.RunDirError(f"unknown language-model type {kind!r} in config.json")


def _compile_for_eval(model, model_info):
    import keras

    if model_info["type"] == "rnn":
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        model.compile(loss=None)


def _reset_states_callback():
    import keras

    class ResetStates(keras.callbacks.Callback):
        """Zeroes the carried state at each epoch start and before evaluating."""

        def on_epoch_begin(self, epoch, logs=None):
            self.model.reset_states()

        def on_test_begin(self, logs=None):
            self.model.reset_states()

    return ResetStates()


def load_weights(model, run):
    """Loads the run's best checkpoint (model weights only)."""
    path = run.checkpoint("best")
    try:
        model.load_weights(str(path), skip_mismatch=False)
    except (ValueError, OSError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise errors.RunDirError(
            f"checkpoint {path} does not fit the model described in {run.config_path}: {first}"
        ) from e
    return path


def perplexity(model_info, weights, ids, seq_len, batch_size=None):
    """Perplexity of one token stream (exp of the mean full-softmax cross-entropy).

    For a recurrent model the stream is cut into a few long rows read with a
    carried state (rows of at least 2,000 tokens when the stream allows, at
    most `batch_size` rows), so almost every token is scored with its full
    left context. For a Transformer each `seq_len` window is its own context.
    A model trained with a sampled softmax is scored on its full logits
    (`evaluate` runs with `training=False`).

    Args:
        model_info: `config["model"]`.
        weights: a model of the same architecture to copy the weights from.
        ids: int stream (NumPy array).
        seq_len: tokens per window.
        batch_size: most rows (default 32).

    Returns:
        `(perplexity, tokens_scored)`.
    """
    from keras_seq.data import make_lm_dataset

    n = len(ids)
    if n < 2:
        raise errors.DataError(f"need at least 2 tokens to measure perplexity, got {n}")
    rows = max(1, min(batch_size or 32, n // _EVAL_TOKENS_PER_ROW))
    seq_len = max(1, min(seq_len, n // rows - 1))
    if model_info["type"] == "rnn":
        model = build_model(model_info, batch_size=rows, stateful=True)
        model.set_weights(weights.get_weights())
        model.reset_states()
    else:
        model = weights
    _compile_for_eval(model, model_info)
    dataset = make_lm_dataset(ids, rows, seq_len)
    loss = float(model.evaluate(dataset, verbose=0, return_dict=True)["loss"])
    return math.exp(min(loss, 700.0)), dataset.num_batches * rows * seq_len


# ----------------------------------------------------------------------------
# train-lm
# ----------------------------------------------------------------------------


def _generation_limit(model_info):
    if model_info["type"] == "transformer":
        return int(model_info["config"]["max_length"])
    return MAX_RNN_GENERATE_LENGTH


def train(args):
    """`keras-seq train-lm`: fit a tokenizer, train, report perplexity.

    Args:
        args: the Namespace of `keras-seq train-lm` (see `keras_seq.cli`).

    Returns:
        None; prints the validation and test perplexity and the run directory.
    """
    import keras

    from keras_seq import text as text_lib
    from keras_seq import training
    from keras_seq.data import make_lm_dataset

    resume = bool(getattr(args, "resume", False))
    if resume:
        stored = runs.load_run_config(args.run_dir)
        run = runs.RunDir(args.run_dir)
        tokenizer = text_lib.load_tokenizer(str(run.vocab_dir))
        data_info = stored["data"]
        if args.data not in (None, data_info["spec"]) and args.data != "bundled:anna-karenina":
            say(f"--resume: training goes on with the run's own data {data_info['spec']} "
                 f"(ignoring --data {args.data})")
        tokenizer, streams = load_streams(data_info["spec"], stored["tokenizer"]["type"], tokenizer)
        model_info = stored["model"]
        stored_sampled = int(model_info["config"].get("sampled_softmax", 0) or 0)
        asked = getattr(args, "sampled_softmax", None)
        if asked is not None and int(asked) != stored_sampled:
            say(f"--resume: training goes on with the run's own --sampled-softmax "
                 f"{stored_sampled} (ignoring --sampled-softmax {asked})")
        seq_len = int(data_info["seq_len"])
        defaults = dict(stored["training"])
        defaults.pop("resume", None)
        config = training.TrainConfig.from_namespace(args, **defaults)
        run, run_config = runs.prepare_run_dir(args.run_dir, None, resume=True)
    else:
        tokenizer_type = args.tokenizer or "word"
        d = MODEL_DEFAULTS[tokenizer_type]
        vocab_size = pick(args.vocab_size, d["vocab_size"])
        if vocab_size is not None and tokenizer_type != "wordpiece" and vocab_size <= 4:
            raise errors.InputError(f"--vocab-size must be > 4 (the reserved tokens), got {vocab_size}")
        say(f"reading {args.data}")
        tokenizer, streams = load_streams(
            args.data, tokenizer_type, vocab_size=vocab_size,
            min_frequency=pick(args.min_frequency, d["min_frequency"]),
        )
        model_info, seq_len = model_config_from_args(args, tokenizer.vocab_size, tokenizer_type)
        defaults = TRANSFORMER_TRAIN_DEFAULTS if model_info["type"] == "transformer" else TRAIN_DEFAULTS
        config = training.TrainConfig.from_namespace(args, **defaults)
        run_config = {
            "task": "lm",
            "model": model_info,
            "tokenizer": {"type": tokenizer.type_name, "config": tokenizer.get_config(),
                          "vocab_size": tokenizer.vocab_size},
            "training": config.to_dict(),
            "data": {
                "spec": args.data,
                "seq_len": seq_len,
                "preprocess": "raw" if tokenizer_type == "char" else "paragraphs",
                "val_fraction": VAL_FRACTION,
                "test_fraction": TEST_FRACTION,
                "tokens": {name: int(len(ids)) for name, ids in streams.items()},
            },
            "generation": {"max_length": _generation_limit(model_info)},
        }
    batch_size = config.batch_size
    for name in ("train", "valid"):
        _check_stream(streams[name], name, batch_size, seq_len)
    if not resume:
        run, run_config = runs.prepare_run_dir(args.run_dir, run_config, overwrite=args.overwrite)
        tokenizer.save(str(run.vocab_dir))
    say(
        f"{tokenizer.type_name} tokenizer, vocabulary {tokenizer.vocab_size}; tokens: "
        + ", ".join(f"{k} {len(v)}" for k, v in streams.items())
        + f"; batches of {batch_size} x {seq_len}"
    )
    sampled = int(model_info["config"].get("sampled_softmax", 0) or 0)
    if sampled:
        say(f"training loss: sampled softmax over {sampled} negatives of "
             f"{tokenizer.vocab_size}; val_loss and perplexities: full softmax")
    train_ds = make_lm_dataset(streams["train"], batch_size, seq_len)
    valid_ds = make_lm_dataset(streams["valid"], batch_size, seq_len)
    is_rnn = model_info["type"] == "rnn"

    # The output bias starts at the log unigram frequencies of the training
    # stream (a resumed run then loads its checkpoint over it): with a zero
    # bias and Adam, the sampled softmax drifts (see
    # SampledSoftmax.set_unigram_bias) and the full softmax starts slowly.
    import numpy as np

    counts = np.bincount(np.asarray(streams["train"], dtype="int64"),
                         minlength=model_info["config"]["vocab_size"])

    def build():
        model = build_model(model_info, batch_size=batch_size, stateful=is_rnn)
        model.set_unigram_bias(counts)
        return model

    model, history = training.train(
        build,
        train_ds,
        valid_ds,
        run,
        config,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if is_rnn else None,
        callbacks=[_reset_states_callback()] if is_rnn else [],
        resume=resume,
    )
    valid_ppl, _ = perplexity(model_info, model, streams["valid"], seq_len, batch_size)
    test_ppl, n_test = perplexity(model_info, model, streams["test"], seq_len, batch_size)
    print(f"validation perplexity: {valid_ppl:.2f}")
    print(f"test perplexity: {test_ppl:.2f} ({n_test} tokens)")
    print(f"run directory: {run.path}")
    return None


# ----------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------


def load_run(run_dir, *, stateful=False, batch_size=None):
    """Model (best weights), tokenizer and config of a trained LM run.

    Returns:
        `(model, tokenizer, config, run)`.

    Raises:
        RunDirError: not a run directory, not a language-model run, no
            checkpoint, or files that do not fit together.
    """
    from keras_seq import text as text_lib

    run = runs.RunDir.open(run_dir, require_checkpoint=True)
    config = run.config
    if config["task"] != "lm":
        raise errors.RunDirError(f"{run.path} is a {config['task']} run, not a language-model run")
    for key in ("model", "tokenizer", "data"):
        if key not in config:
            raise errors.RunDirError(f"{run.config_path} has no {key!r} entry; retrain the run")
    model_info = config["model"]
    if not isinstance(model_info, dict) or not isinstance(model_info.get("config"), dict):
        raise errors.RunDirError(
            f"{run.config_path}: 'model' must be {{\"type\": ..., \"config\": {{...}}}} as "
            f"`keras-seq train-lm` writes it; retrain the run"
        )
    tokenizer = text_lib.load_tokenizer(str(run.vocab_dir))
    vocab = model_info["config"].get("vocab_size")
    if vocab != tokenizer.vocab_size:
        raise errors.RunDirError(
            f"{run.path}: the model's vocabulary ({vocab}) and {run.vocab_dir} "
            f"({tokenizer.vocab_size} tokens) do not match"
        )
    model = build_model(config["model"], batch_size=batch_size, stateful=stateful)
    load_weights(model, run)
    return model, tokenizer, config, run


def encode_prompt(tokenizer, prompt):
    """Prompt text -> list of ids, with clear errors for unusable prompts.

    Raises:
        InputError: the prompt is empty/blank, has no token, or only unknown
            words.
    """
    from keras_seq.text import UNK_ID

    if prompt is None or not prompt.strip():
        raise errors.InputError("the prompt is empty; give some text to continue, e.g. \"Anna said\"")
    ids = tokenizer.encode([prompt])[0]
    if not ids:
        raise errors.InputError(f"the prompt {prompt!r} has no token the tokenizer can read")
    unknown = [i for i in ids if i == UNK_ID]
    if len(unknown) == len(ids):
        raise errors.InputError(
            f"every word of the prompt {prompt!r} is unknown to the model's vocabulary "
            f"({tokenizer.vocab_size} tokens learned from its training text); use words from that text"
        )
    if unknown:
        say(f"{len(unknown)} of the {len(ids)} prompt tokens are unknown to the vocabulary "
             "and read as <unk>")
    return ids


def generate(args):
    """`keras-seq generate`: continue a prompt and print the text.

    Args:
        args: the Namespace of `keras-seq generate` (see `keras_seq.cli`):
            run, prompt, length, decoding ("sample" | "greedy" | "beam"),
            temperature, top_k, top_p, beam, seed, num_samples.

    Returns:
        None; prints the prompt followed by its continuation (prompt and
        continuation are detokenized together), one block per sample,
        separated by a line "----" when there are several.
    """
    import numpy as np

    from keras_seq import decoding

    model, tokenizer, config, run = load_run(args.run)
    ids = encode_prompt(tokenizer, args.prompt)
    length = int(args.length)
    limit = int(config.get("generation", {}).get("max_length", _generation_limit(config["model"])))
    if config["model"]["type"] == "transformer":
        limit = int(config["model"]["config"]["max_length"]) - (len(ids) - 1)
        if limit < 1:
            raise errors.InputError(
                f"the prompt has {len(ids)} tokens; this Transformer reads at most "
                f"{config['model']['config']['max_length']} positions"
            )
    if length > limit:
        raise errors.InputError(
            f"--length {length} is above this model's limit of {limit} tokens"
            + (" (its max_length minus the prompt)" if config["model"]["type"] == "transformer" else "")
        )
    num = int(getattr(args, "num_samples", 1) or 1)
    decoding_mode = getattr(args, "decoding", None) or (
        "greedy" if args.greedy else "beam" if args.beam else "sample")
    strategy, sampler, rows = "greedy", None, 1
    if decoding_mode == "beam":
        if num > args.beam:
            raise errors.InputError(f"--num-samples ({num}) cannot exceed --beam ({args.beam})")
        strategy = decoding.BeamSearch(args.beam, num_return=num)
    elif decoding_mode == "sample":
        sampler = decoding.RandomSampler(
            temperature=1.0 if args.temperature is None else args.temperature,
            top_k=args.top_k, top_p=args.top_p, seed=args.seed)
        rows = num
    prompt = np.asarray([ids] * rows, dtype=np.int32)
    result = model.generate(prompt, max_length=length, strategy=strategy, sampler=sampler)
    out_ids = result.ids.numpy()  # [rows, R, length]
    lengths = result.lengths.numpy()
    texts = []
    for row in range(out_ids.shape[0]):
        for r in range(out_ids.shape[1]):
            if decoding_mode == "beam" and not np.isfinite(result.scores.numpy()[row, r]):
                continue  # padding entry: fewer distinct hypotheses than asked
            continuation = out_ids[row, r, : lengths[row, r]].tolist()
            texts.append(tokenizer.decode([ids + continuation])[0])
    print("\n----\n".join(texts))
    return None


# ----------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------


def evaluate(args):
    """`keras-seq evaluate` for a language model: perplexity of a split or file.

    Args:
        args: run, data (None: the run's own data), split ("train" | "valid"
            | "test").

    Returns:
        None; prints `<split> perplexity: X (N tokens)`.
    """
    from keras_seq import data as data_lib

    model, tokenizer, config, run = load_run(args.run)
    data_info = config["data"]
    seq_len = int(data_info["seq_len"])
    batch_size = int(config.get("training", {}).get("batch_size", 32))
    if getattr(args, "data", None):
        text = preprocess_text(data_lib.load_text(args.data), config["tokenizer"]["type"])
        ids = encode_stream(tokenizer, text)
        where = args.data
    else:
        split = getattr(args, "split", None) or "test"
        _, streams = load_streams(data_info["spec"], config["tokenizer"]["type"], tokenizer)
        ids = streams[split]
        where = f"{split} split of {data_info['spec']}"
    ppl, scored = perplexity(config["model"], model, ids, seq_len, batch_size)
    label = "perplexity" if getattr(args, "data", None) else f"{args.split or 'test'} perplexity"
    print(f"{label}: {ppl:.2f} ({scored} tokens of the {where})")
    return None


# ----------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------


def export(args):
    """`keras-seq export` for a language model: SavedModel + ONNX, parity-checked.

    Writes `args.to/<version>/` (TF Serving layout, signatures `generate`,
    `generate_ids`, `initial_state`, `step`) and, unless `--no-onnx`, the ONNX
    graphs in `args.to/onnx/`; then runs the same prompts through the Keras
    model, the reloaded SavedModel and onnxruntime
    (`keras_seq.export.check_parity`).

    Returns:
        None; prints the version directory and the parity report.
    """
    import numpy as np

    from keras_seq import export as export_lib

    model, tokenizer, config, run = load_run(args.run)
    limit = _generation_limit(config["model"])
    max_length = min(100, limit)
    path = export_lib.export_language_model(
        model, tokenizer, args.to, version=args.version, max_length=max_length,
        onnx=bool(args.onnx),
    )
    print(f"exported {run.path} to {path}")
    # Parity prompts: two openings of the run's vocabulary (the first
    # non-reserved tokens), of different lengths, so padding is exercised.
    first = list(range(4, min(tokenizer.vocab_size, 9)))
    ids = [first[:1], first] if first else [[1]]
    width = max(len(r) for r in ids)
    batch = np.zeros((len(ids), width), np.int32)
    for i, row in enumerate(ids):
        batch[i, : len(row)] = row
    report = export_lib.check_parity(model, path, batch)
    for backend, outputs in report.items():
        worst = [v for v in outputs.values() if isinstance(v, float)]
        print(f"parity with {backend}: {len(outputs)} outputs agree"
              + (f" (max float difference {max(worst):.2e})" if worst else ""))
    return None
