"""Text -> splits -> token streams, and perplexity, for the language-model pipeline.

The same data handling serves training (`train_language_model`), evaluation
(`TextGenerator.evaluate`) and the apps:

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
- Or the validation and test text come from files of their own
  (`valid_data`, `test_data`; see `load_parts`): with a validation file the
  whole text trains, and there is a test split only with a test file.
- The tokenizer is fitted on the training split only, so validation and test
  words unseen in training count as `<unk>`.

Example:

>>> preprocess_text("Happy families are\\nall alike.\\n\\nEvery unhappy family.", "word")
'Happy families are all alike.\\nEvery unhappy family.'
"""

import math
import re

import numpy as np

from keras_seq import data as data_lib
from keras_seq import errors
from keras_seq import models
from keras_seq import progress
from keras_seq import text as text_lib

__all__ = [
    "check_stream",
    "compile_for_eval",
    "encode_stream",
    "held_out_parts",
    "load_parts",
    "load_streams",
    "make_tokenizer",
    "perplexity",
    "preprocess_text",
    "split_text",
]

# Minimum stream tokens per row when evaluating: rows start from a zero state,
# so fewer, longer rows score more tokens with their full left context.
_EVAL_TOKENS_PER_ROW = 2000


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


def split_text(text, val_fraction=0.05, test_fraction=0.05, *, held_out=("valid", "test")):
    """Cuts a text into contiguous train / valid / test parts at line ends.

    The first `1 - val_fraction - test_fraction` of the characters go to
    train, then valid, then test; each cut moves to the nearest following
    line end.

    Args:
        text: str.
        val_fraction: the validation share (the recipe's `val_fraction`).
        test_fraction: the test share (the recipe's `test_fraction`).
        held_out: the held-out parts that must not come out empty (a part
            read from a file of its own has a fraction of 0 and is left out).

    Returns:
        `(train, valid, test)` strings.

    Raises:
        DataError: the training part or one of `held_out` would be empty
            (text too short or a single line).
    """
    n = len(text)
    cuts = []
    for fraction in (1.0 - val_fraction - test_fraction, 1.0 - test_fraction):
        at = int(n * fraction)
        newline = text.find("\n", at)
        cuts.append(n if newline < 0 else newline + 1)
    train, valid, test = text[: cuts[0]], text[cuts[0] : cuts[1]], text[cuts[1] :]
    for name, key, part in (("training", "train", train), ("validation", "valid", valid),
                            ("test", "test", test)):
        if not part.strip() and (key == "train" or key in held_out):
            raise errors.DataError(
                f"the text ({n} characters, {text.count(chr(10)) + 1} lines) is too short to "
                f"cut into train/valid/test parts by line ({int(100 * (1 - val_fraction - test_fraction))}"
                f"%/{int(100 * val_fraction)}%/{int(100 * test_fraction)}%): the {name} part is "
                "empty; give a longer text with more lines"
            )
    return train, valid, test


def make_tokenizer(tokenizer_type, vocab_size=None, min_frequency=1):
    """A fresh (unfitted) tokenizer of the language-model pipeline.

    Args:
        tokenizer_type: "word" (lowercased, "\\n" kept as a token), "char" or
            "wordpiece".
        vocab_size: the most tokens (None: every token seen; WordPiece 8000).
        min_frequency: drop tokens seen fewer times (word and char).

    Returns:
        An unfitted `keras_seq.text` tokenizer.
    """
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
    ids = tokenizer.encode([text], add_eos=True)[0]
    return np.asarray(ids, dtype=np.int32)


def held_out_parts(valid_data=None, test_data=None):
    """The held-out parts cut off the training text (`split_text`'s `held_out`).

    Both without separate files; only the validation part with a test file
    alone; none with a validation file (all of the text trains, and the test
    part is the test file or absent).
    """
    if valid_data is not None:
        return ()
    return ("valid",) if test_data is not None else ("valid", "test")


def load_parts(data_spec, tokenizer_type, *, val_fraction=0.05, test_fraction=0.05,
               valid_data=None, test_data=None, only=None):
    """The preprocessed text of each split, from the data file or separate files.

    Args:
        data_spec: the training text, a file path or "bundled:NAME".
        tokenizer_type: "word" | "char" | "wordpiece" (see `preprocess_text`).
        val_fraction, test_fraction: the shares cut off `data_spec` for the
            parts that have no file (see `split_text`, `held_out_parts`).
        valid_data, test_data: separate validation / test text files, or
            None. With `valid_data`, all of `data_spec` is training text.
        only: a split name to read only that part (a file part reads only
            its file), or None for all.

    Returns:
        `{"train": str, "valid": str, "test": str}` (or `only`), without
        "test" when the run has no test part (`valid_data` alone).

    Raises:
        DataError: a file that is missing, empty or not UTF-8 (a separate
            file's message starts with "validation data:" / "test data:"),
            or a text too short to split.
        InputError: `only="test"` and there is no test part.
    """
    wanted = ("train", "valid", "test") if only is None else (only,)
    held_out = held_out_parts(valid_data, test_data)
    parts = {}
    for name, spec in (("valid", valid_data), ("test", test_data)):
        if spec is not None and name in wanted:
            raw = data_lib.load_split_file(spec, name, pairs=False)
            parts[name] = preprocess_text(raw, tokenizer_type)
    if only == "test" and "test" not in held_out and test_data is None:
        raise errors.InputError(
            f"the run has no test split: it trained on all of {data_spec} with the validation "
            f"file {valid_data} and no test file; evaluate a text file instead")
    if any(name not in parts for name in wanted):
        text = preprocess_text(data_lib.load_text(data_spec), tokenizer_type)
        cut = split_text(text, val_fraction if "valid" in held_out else 0.0,
                         test_fraction if "test" in held_out else 0.0, held_out=held_out)
        for name, part in zip(("train", "valid", "test"), cut):
            if name not in parts and (name == "train" or name in held_out):
                parts[name] = part
    return {name: parts[name] for name in wanted if name in parts}


def load_streams(data_spec, tokenizer_type, tokenizer=None, vocab_size=None, min_frequency=1,
                 val_fraction=0.05, test_fraction=0.05, verbose=0, *, valid_data=None,
                 test_data=None):
    """Loads, preprocesses and splits a text; fits the tokenizer on train.

    Args:
        data_spec: file path or "bundled:NAME".
        tokenizer_type: "word" | "char" | "wordpiece".
        tokenizer: an already fitted tokenizer (e.g. from a run directory), or
            None to fit a new one on the training part.
        vocab_size, min_frequency: for a new tokenizer.
        val_fraction, test_fraction: the split (see `split_text`).
        verbose: progress of fitting a new tokenizer (`keras_seq.progress`
            levels; 0, silent, by default).
        valid_data, test_data: separate validation / test files (see
            `load_parts`); they are read, and checked, before `data_spec`.

    Returns:
        `(tokenizer, {"train": ids, "valid": ids, "test": ids})`, without
        "test" when `valid_data` is given alone.
    """
    parts = load_parts(data_spec, tokenizer_type, val_fraction=val_fraction,
                       test_fraction=test_fraction, valid_data=valid_data, test_data=test_data)
    if tokenizer is None:
        tokenizer = make_tokenizer(tokenizer_type, vocab_size, min_frequency)
        tokenizer.fit([parts["train"]], verbose=verbose)
    return tokenizer, {name: encode_stream(tokenizer, part) for name, part in parts.items()}


def check_stream(ids, name, batch_size, seq_len, source=None):
    """Raises `DataError` unless `ids` fill one `batch_size x seq_len` batch.

    Args:
        ids: the token stream.
        name: the split ("train", "valid").
        batch_size, seq_len: the training batch.
        source: the split's own file, named in the message, or None.
    """
    need = batch_size * (seq_len + 1)
    if len(ids) < need:
        where = f"the {name} split" + (f" ({source})" if source else "")
        raise errors.DataError(
            f"{where} has {len(ids)} tokens, too few for one batch of "
            f"batch_size={batch_size} x seq_len={seq_len} (needs {need}); give a longer text or "
            "lower --batch-size / --seq-len"
        )


def compile_for_eval(model):
    """Compiles `model` for `evaluate` with the full-softmax cross-entropy."""
    import keras

    if isinstance(model, models.RNNLanguageModel):
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    else:
        model.compile(loss=None)  # the Transformer computes its own loss


def perplexity(model, ids, seq_len, batch_size=None, verbose=0):
    """Perplexity of one token stream (exp of the mean full-softmax cross-entropy).

    For a recurrent model the stream is cut into a few long rows read with a
    carried state (rows of at least 2,000 tokens when the stream allows, at
    most `batch_size` rows), so almost every token is scored with its full
    left context. For a Transformer each `seq_len` window is its own context.
    A model trained with a sampled softmax is scored on its full logits
    (`evaluate` runs with `training=False`).

    Args:
        model: a trained `RNNLanguageModel` (stateful or not: its weights are
            copied into a stateful twin) or `TransformerLanguageModel`.
        ids: int stream (NumPy array).
        seq_len: tokens per window.
        batch_size: most rows (default 32).
        verbose: Keras's evaluation bar at this `keras_seq.progress` level
            (0, silent, by default; see `progress.keras_verbose`).

    Returns:
        `(perplexity, tokens_scored)`.

    Raises:
        DataError: fewer than 2 tokens.
    """
    n = len(ids)
    if n < 2:
        raise errors.DataError(f"need at least 2 tokens to measure perplexity, got {n}")
    rows = max(1, min(batch_size or 32, n // _EVAL_TOKENS_PER_ROW))
    seq_len = max(1, min(seq_len, n // rows - 1))
    if isinstance(model, models.RNNLanguageModel):
        weights = model
        config = {k: v for k, v in weights.get_config().items() if k != "name"}
        model = models.RNNLanguageModel.from_config({**config, "batch_size": rows, "stateful": True})
        model.set_weights(weights.get_weights())
        model.reset_states()
    compile_for_eval(model)
    dataset = data_lib.make_lm_dataset(ids, rows, seq_len)
    loss = float(model.evaluate(dataset, verbose=progress.keras_verbose(verbose),
                                return_dict=True)["loss"])
    return math.exp(min(loss, 700.0)), dataset.num_batches * rows * seq_len
