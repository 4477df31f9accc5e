"""The schema of a run directory's `config.json`, checked wherever a run is loaded.

One function, `validate(config, where)`, checks a config dict (as
`keras_seq.runs.load_run_config` returns it) against the layout the training
commands write, for both tasks:

    task        "lm" | "translator"
    model       {"type": "rnn" | "transformer", "config": {constructor arguments}}
    tokenizer   lm: {"type": str, ...}; translator: {"source": {...}, "target": {...}}
    training    a `keras_seq.training.TrainConfig` as `to_dict` writes it
    data        lm: {"seq_len": int, ...}; translator: {"max_length": int, ...}
    decoding    (optional) {"beam": int, "length_penalty": float, "unk_replace": bool}
    recipe      (optional) {"label_smoothing": float, "steps_per_epoch_cap": int,
                            "batch_tokens": int or null}
    generation  (optional) {"max_length": int}

Only the fields the code reads are checked (their type and range); unknown
fields are kept for newer versions. A config of the wrong shape (a hand-edited
file, another program's JSON) raises `RunDirError` with one line naming the
file and the field, before any model is built.

`load_run_config` itself checks only the task, so that the run-directory
machinery (create, resume, overwrite) works on any run; the loaders
(`keras_seq.models.load_run`, `Translator.from_run`, `TextGenerator.from_run`,
`LanguageModelRecipe.from_run` and the resume of both training pipelines)
call `validate`. Nothing here imports TensorFlow.

Example:

>>> validate({"task": "lm", "model": "lstm"}, "runs/lm/config.json")
Traceback (most recent call last):
...
keras_seq.errors.RunDirError: runs/lm/config.json: 'model' must be an object {"type": "rnn" | \
"transformer", "config": {...}}, got a string ('lstm'); the file is damaged: retrain the run or restore \
its config.json
"""

import math

from keras_seq import errors

__all__ = ["validate"]

_FIX = "the file is damaged: retrain the run or restore its config.json"
_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
          int: "an integer", float: "a number", type(None): "null"}


def _kind(value):
    return _TYPES.get(type(value), type(value).__name__)


def _shown(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Checker:
    """Field checks that raise one `RunDirError` naming `where` and the field."""

    def __init__(self, where):
        self.where = where

    def fail(self, field, expected, value, *, part=None):
        got = "nothing" if value is _MISSING else f"{_kind(value)} ({_shown(value)})"
        if value is None or isinstance(value, (dict, list)):
            got = _kind(value)
        got = f'its "{part}" is {got}' if part else f"got {got}"
        raise errors.RunDirError(f"{self.where}: '{field}' must be {expected}, {got}; {_FIX}")

    def section(self, config, name, expected="an object", *, required=True):
        value = config.get(name, _MISSING)
        if value is _MISSING and not required:
            return None
        if value is _MISSING:
            raise errors.RunDirError(f"{self.where} has no '{name}' entry; {_FIX}")
        if not isinstance(value, dict):
            self.fail(name, expected, value)
        return value

    def field(self, section, prefix, name, kind, *, required=False, nullable=False):
        value = section.get(name, _MISSING)
        if value is _MISSING and not required:
            return
        if value is None and nullable:
            return
        ok, expected = _KINDS[kind]
        if value is _MISSING or not ok(value):
            self.fail(f"{prefix}.{name}", expected + (" or null" if nullable else ""), value)


_MISSING = object()


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_KINDS = {
    "positive": (lambda v: _is_int(v) and v >= 1, "an integer >= 1"),
    "count": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "int": (_is_int, "an integer"),
    "rate": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "fraction": (lambda v: _is_number(v) and 0 <= v < 0.5, "a number in [0, 0.5)"),
    "unit": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "nonnegative": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}

# Fields of `model.config` the models take, by kind (checked when present).
_MODEL_FIELDS = {
    "positive": ("vocab_size", "source_vocab_size", "target_vocab_size", "units", "num_layers",
                 "d_model", "num_heads", "ff_dim", "max_length"),
    "count": ("sampled_softmax",),
    "rate": ("dropout",),
    "unit": ("teacher_forcing_ratio",),
    "bool": ("tie_embeddings", "bidirectional", "input_feeding"),
    "str": ("cell", "attention"),
}
# Fields every model of a (task, type) needs.
_MODEL_REQUIRED = {
    ("lm", "rnn"): ("vocab_size", "units"),
    ("lm", "transformer"): ("vocab_size", "d_model"),
    ("translator", "rnn"): ("source_vocab_size", "target_vocab_size", "units"),
    ("translator", "transformer"): ("source_vocab_size", "target_vocab_size", "d_model"),
}
_MODEL_TYPES = ("rnn", "transformer")


def _check_model(c, config, task):
    shape = 'an object {"type": "rnn" | "transformer", "config": {...}}'
    model = c.section(config, "model", shape)
    kind = model.get("type", _MISSING)
    if kind not in _MODEL_TYPES:
        c.fail("model", shape, kind, part="type")
    fields = model.get("config", _MISSING)
    if not isinstance(fields, dict):
        c.fail("model", shape, fields, part="config")
    for kind_name, names in _MODEL_FIELDS.items():
        for name in names:
            c.field(fields, "model.config", name, kind_name,
                    required=name in _MODEL_REQUIRED[(task, model["type"])])
    c.field(fields, "model.config", "embedding_dim", "positive", nullable=True)


def _check_tokenizer(c, config, task):
    tokenizer = c.section(config, "tokenizer")
    sides = ("source", "target") if task == "translator" else (None,)
    for side in sides:
        entry, prefix = tokenizer, "tokenizer"
        if side is not None:
            entry, prefix = tokenizer.get(side, _MISSING), f"tokenizer.{side}"
            if not isinstance(entry, dict):
                c.fail(prefix, "an object", entry)
        c.field(entry, prefix, "type", "str", required=True)
        c.field(entry, prefix, "config", "object")
        c.field(entry, prefix, "vocab_size", "positive")


def _check_training(c, config):
    training = c.section(config, "training")
    from keras_seq.training.config import TrainConfig  # no TensorFlow

    try:
        TrainConfig.from_dict(training)
    except (ValueError, TypeError) as e:
        message = str(e).replace("TrainConfig: ", "").replace("TrainConfig.__init__() ", "")
        raise errors.RunDirError(f"{c.where}: 'training' is not a training configuration "
                                 f"({message}); {_FIX}") from None


def _check_data(c, config, task):
    data = c.section(config, "data")
    if task == "lm":
        c.field(data, "data", "seq_len", "positive", required=True)
    else:
        c.field(data, "data", "max_length", "positive", required=True)
        c.field(data, "data", "reverse", "bool")
        c.field(data, "data", "max_pairs", "positive", nullable=True)
        c.field(data, "data", "split_seed", "int")
    for name in ("spec", "valid_spec", "test_spec"):
        c.field(data, "data", name, "str", nullable=True)
    for name in ("val_fraction", "test_fraction"):
        c.field(data, "data", name, "fraction")


def _check_optional(c, config):
    decoding = c.section(config, "decoding", required=False)
    if decoding is not None:
        c.field(decoding, "decoding", "beam", "positive")
        c.field(decoding, "decoding", "length_penalty", "nonnegative")
        c.field(decoding, "decoding", "unk_replace", "bool")
    recipe = c.section(config, "recipe", required=False)
    if recipe is not None:
        c.field(recipe, "recipe", "label_smoothing", "rate")
        c.field(recipe, "recipe", "steps_per_epoch_cap", "positive")
        c.field(recipe, "recipe", "batch_tokens", "positive", nullable=True)
    generation = c.section(config, "generation", required=False)
    if generation is not None:
        c.field(generation, "generation", "max_length", "positive")


def validate(config, where="config.json"):
    """Checks a run's config dict against the schema; returns it unchanged.

    Args:
        config: the dict of `keras_seq.runs.load_run_config` (its task
            already checked).
        where: the file, for the message (e.g. `run.config_path`).

    Returns:
        `config`.

    Raises:
        RunDirError: a section is missing or of the wrong shape, or a field
            has the wrong type or range; one line naming `where` and the field.
    """
    where = str(where)
    c = _Checker(where)
    if not isinstance(config, dict):
        raise errors.RunDirError(f"{where}: expected a JSON object, got {_kind(config)}; {_FIX}")
    task = config.get("task")
    if task not in ("lm", "translator"):
        c.fail("task", '"lm" or "translator"', config.get("task", _MISSING))
    _check_model(c, config, task)
    _check_tokenizer(c, config, task)
    _check_training(c, config)
    _check_data(c, config, task)
    _check_optional(c, config)
    return config
