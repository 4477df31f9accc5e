"""Export generative models to a SavedModel (TF Serving layout) and to ONNX.

Every generative model of keras_seq exposes `initial_state(inputs)` and
`step(tokens, state)`; the exporters below trace the serving functions from
those two methods and `keras_seq.decoding.decode`, so the SavedModel, the ONNX
graphs and the Keras model all run the very same computation.

    export_language_model(model, tokenizer, to)   # RNNLanguageModel, TransformerLanguageModel
    export_translator(model, src_tok, tgt_tok, to) # AttentionSeq2Seq, Transformer
    check_parity(model, path, inputs)             # Keras eager vs SavedModel vs onnxruntime

Layout written (TF Serving's, as `keras_seq.serving` and TF Serving read it):

    to/
      1/  saved_model.pb  variables/  assets/     one SavedModel per version
          assets.extra/export.json               what was exported (see below)
      2/  ...                                    the next export (version = max + 1)
      onnx/step.onnx                             ONNX graphs of the latest export,
      onnx/generate_ids.onnx | translate_ids.onnx    one per id-level signature
      onnx/initial_state.onnx | encode.onnx
      onnx/serving_default.onnx                  = the id-level generation graph
      onnx/export.json                           the export.json of that version

A version is written into a temporary sibling directory (`to/.tmp-export-*`)
and renamed into `to/<version>` only once complete, so a server polling `to/`
never sees a half-written version; a failed export leaves nothing behind. The
ONNX files are then moved into `to/onnx/` one by one with `os.replace`.

SavedModel signatures of a language model (`N` = batch, `T` = prompt length,
`L` = `max_length`, `V` = vocabulary size):

    generate (= serving_default)
        in:  prompts string [N]
        out: generated string [N] (the continuation), text string [N] (prompt +
             continuation, detokenized together), ids int32 [N, L],
             lengths int32 [N], scores float32 [N]
    generate_ids
        in:  prompt_ids int32 [N, T], right-padded with 0
        out: ids int32 [N, L] (EOS included, 0 after it), lengths int32 [N]
             (tokens generated, EOS included), scores float32 [N]
             (summed log-probabilities)
    initial_state
        in:  prompt_ids int32 [N, T]
        out: start_ids int32 [N] (the token to feed first) + state_* tensors
    step
        in:  tokens int32 [N] + state_<key> tensors
        out: logits float32 [N, V] + next_state_<key> tensors (the new state)

and of a translator (`S` = source length, `V` = target vocabulary size):

    translate (= serving_default)
        in:  sentences string [N]
        out: translations string [N], ids int32 [N, L], lengths int32 [N],
             scores float32 [N]
    translate_ids
        in:  source_ids int32 [N, S], right-padded with 0 (source + EOS)
        out: ids int32 [N, L], lengths int32 [N], scores float32 [N]
    encode
        in:  source_ids int32 [N, S]
        out: start_ids int32 [N] (BOS) + state_* tensors
    step
        in:  tokens int32 [N] + state_<key> tensors
        out: logits float32 [N, V] + next_state_<key> tensors (the new state)

The state tensors are the leaves of the model's state nest, named
`state_<key>` after their (joined) key: `state_h_0`, `state_c_0`, ... for the
RNN language model, `state_encoder_outputs`, `state_decoder_h_0`, ... for
`AttentionSeq2Seq`, `state_index`, `state_self_key_0`, ... for the
Transformer. `step` returns the new value of `state_<key>` as
`next_state_<key>` (an ONNX graph cannot have an input and an output of the
same name), so a streaming client feeds `next_state_<key>` back as
`state_<key>`; every state tensor is returned, changed or not. Their
dtypes and shapes are listed in `assets.extra/export.json` (`"state"`), next
to the decoding settings and every signature's inputs and outputs, and in each
ONNX file's metadata (`keras_seq.export`).

The text signatures tokenize inside the graph with the tokenizer's
`as_module()` (core TensorFlow ops for the word and character tokenizers), so
the SavedModel runs in stock TensorFlow / TF Serving without keras_seq. Empty
prompts or sources, ones made only of unknown tokens, ids outside the
vocabulary, rows that are not right-padded and sequences longer than the model
allows fail with a `tf.errors.InvalidArgumentError` whose message names the
problem and the batch rows at fault (`assertion failed: [generate: prompts at
batch index] [1] [are empty ...]`). The ONNX graphs carry no such checks
(tf2onnx drops assertions): validate before calling them.

ONNX (tf2onnx, opset 17 by default): the decoding `tf.while_loop` becomes one
ONNX `Loop` (the beam search included); masked recurrent layers (the prompt
reader of the RNN language model, the encoder of `AttentionSeq2Seq`, LSTM or
GRU, bidirectional or not) become `Loop`s too, not ONNX `LSTM`/`GRU` ops;
`step` has no loop. The op counts of every graph are recorded in
export.json (`"onnx"`). A tf2onnx optimizer bug that breaks the Transformer's
head split is worked around during conversion (see `_safe_reshape_merging`).

Example:

```python
path = export_translator(model, fr_tok, en_tok, "exported/fra-eng", beam_size=4)
report = check_parity(model, path, source_ids)   # raises ParityError on mismatch
```
"""

import contextlib
import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_seq import decoding
from keras_seq import errors
from keras_seq.text import BOS_ID
from keras_seq.text import EOS_ID
from keras_seq.text import PAD_ID
from keras_seq.text import UNK_ID

__all__ = [
    "EXPORT_INFO",
    "ParityError",
    "check_parity",
    "export_language_model",
    "export_translator",
]

EXPORT_INFO = os.path.join("assets.extra", "export.json")
"""Path of the export description inside a version directory."""

_FORMAT = 1
_STATE_PREFIX = "state_"
# `step` returns `next_state_<key>` for its input `state_<key>`: ONNX graphs
# cannot have an input and an output of the same name.
_NEXT_PREFIX = "next_"
_DEFAULT_OPSET = 17

_ID_SIGNATURE = {"language_model": "generate_ids", "translation": "translate_ids"}
_TEXT_SIGNATURE = {"language_model": "generate", "translation": "translate"}
_STATE_SIGNATURE = {"language_model": "initial_state", "translation": "encode"}
_INPUT_NAME = {"language_model": "prompt_ids", "translation": "source_ids"}


class ParityError(errors.KerasSeqError, AssertionError):
    """The exported SavedModel or ONNX graph disagrees with the Keras model."""


# --------------------------------------------------------------------------
# Argument checks.


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_contract(model, task, kind):
    from keras_seq.models.generative import GenerativeModel

    if not isinstance(model, GenerativeModel) or model.task != task:
        raise TypeError(
            f"{kind} export needs a keras_seq.models.GenerativeModel with "
            f"task={task!r}; got {type(model).__name__} "
            f"(task={getattr(model, 'task', None)!r})."
        )


def _model_int(model, attribute):
    value = getattr(model, attribute, None)
    if not _is_int(value) or value < 1:
        raise TypeError(
            f"{type(model).__name__} has no positive integer `{attribute}` "
            f"(got {value!r}); the exporter needs it to check token ids."
        )
    return int(value)


def _check_tokenizer(tokenizer, vocab_size, what):
    if not callable(getattr(tokenizer, "as_module", None)):
        raise TypeError(
            f"`{what}` must be a keras_seq.text tokenizer (with `as_module()`), "
            f"got {type(tokenizer).__name__}."
        )
    size = getattr(tokenizer, "vocab_size", None)
    if size != vocab_size:
        raise ValueError(
            f"vocabulary mismatch: `{what}` has {size} tokens but the model "
            f"expects {vocab_size}."
        )


def _check_max_length(max_length):
    if not _is_int(max_length) or max_length < 1:
        raise ValueError(f"`max_length` must be an integer >= 1, got {max_length!r}.")
    return int(max_length)


def _check_decoding(strategy, sampler):
    decoding.check_decoding(strategy, sampler)


def _decoding_config(strategy, sampler, max_length, start):
    return {
        "max_length": max_length,
        "strategy": (
            {"beam_search": strategy.get_config()}
            if isinstance(strategy, decoding.BeamSearch)
            else "greedy"
        ),
        "sampler": None if sampler is None else sampler.get_config(),
        "start": start,
        "end_id": EOS_ID,
    }


def _decoding_from_config(config):
    strategy = config["strategy"]
    if isinstance(strategy, dict):
        strategy = decoding.BeamSearch(**strategy["beam_search"])
    sampler = config.get("sampler")
    if sampler is not None:
        sampler = decoding.RandomSampler(**sampler)
    return strategy, sampler


# --------------------------------------------------------------------------
# In-graph input validation (tf.debugging assertions with readable messages).


def _assert_no_rows(bad_rows_mask, fn_name, what, problem):
    """An Assert op that fails, naming the rows, when any row is bad."""
    rows = tf.where(bad_rows_mask)[:, 0]
    return tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(bad_rows_mask)),
        [f"{fn_name}: {what} at batch index", rows, problem],
        summarize=20,
    )


def _validate_ids(
    ids,
    fn_name,
    what,
    vocab_size,
    *,
    from_text,
    max_tokens=None,
    max_note="",
    check_unknown=True,
):
    """Checks int32 ids [N, T] (right-padded with 0); returns them, guarded.

    Every check is a `tf.debugging.Assert` whose message names the signature,
    the rows at fault and the problem; they run before anything that depends
    on the returned tensor. Ids that come from text skip the range and
    padding checks (the tokenizer guarantees both). `[N, 0]` ids get one
    padding column, so an empty batch flows through the model (N = 0 gives
    empty outputs) and empty rows fail the emptiness check.
    """
    missing = tf.maximum(1 - tf.shape(ids)[1], 0)
    ids = tf.pad(ids, [[0, 0], [0, missing]])
    nonpad = tf.not_equal(ids, PAD_ID)
    lengths = tf.reduce_sum(tf.cast(nonpad, tf.int32), axis=1)  # [N]
    checks = []
    if from_text:
        empty = "are empty (no tokens after tokenization); send non-empty text"
    else:
        empty = (
            f"are empty (only padding, id {PAD_ID}); every row needs at least "
            "one token"
        )
        out_of_range = tf.reduce_any((ids < 0) | (ids >= vocab_size), axis=1)
        checks.append(
            _assert_no_rows(
                out_of_range, fn_name, what,
                f"hold token ids outside the vocabulary [0, {vocab_size})",
            )
        )
        positions = tf.range(tf.shape(ids)[1])
        expected = positions[None, :] < lengths[:, None]
        checks.append(
            _assert_no_rows(
                tf.reduce_any(tf.not_equal(nonpad, expected), axis=1),
                fn_name, what,
                f"are not right-padded (a padding id {PAD_ID} is followed by a token)",
            )
        )
    checks.append(_assert_no_rows(tf.equal(lengths, 0), fn_name, what, empty))
    if check_unknown:
        known = tf.reduce_any(nonpad & tf.not_equal(ids, UNK_ID), axis=1)
        checks.append(
            _assert_no_rows(
                (lengths > 0) & tf.logical_not(known), fn_name, what,
                f"contain only unknown tokens (<unk>, id {UNK_ID}: not in the "
                "vocabulary); the model cannot condition on them",
            )
        )
    if max_tokens is not None:
        checks.append(
            _assert_no_rows(
                lengths > max_tokens, fn_name, what,
                f"are longer than the {max_tokens} tokens the model accepts{max_note}",
            )
        )
    with tf.control_dependencies(checks):
        return tf.identity(ids)


def _validate_tokens(tokens, fn_name, vocab_size):
    bad = (tokens < 0) | (tokens >= vocab_size)
    check = _assert_no_rows(
        bad, fn_name, "tokens", f"are outside the vocabulary [0, {vocab_size})"
    )
    with tf.control_dependencies([check]):
        return tf.identity(tokens)


# --------------------------------------------------------------------------
# State flattening: nest <-> {"state_<key>": tensor}.


def _flatten_state(state):
    flat = keras.tree.flatten_with_path(state)
    names = [_STATE_PREFIX + "_".join(str(p) for p in path) for path, _ in flat]
    if len(set(names)) != len(names):
        raise ValueError(f"state keys do not give unique names: {names}")
    return dict(zip(names, (leaf for _, leaf in flat)))


class _StateLayout:
    """Remembers the structure of a model's state (recorded on first use)."""

    def __init__(self):
        self.structure = None
        self.names = None

    def record(self, state):
        flat = _flatten_state(state)
        if self.structure is None:
            self.structure = keras.tree.map_structure(lambda _: 0, state)
            self.names = list(flat)
        return flat

    def pack(self, inputs):
        if self.structure is None:
            raise RuntimeError("the state layout is recorded by initial_state first")
        return keras.tree.pack_sequence_as(
            self.structure, [inputs[name] for name in self.names]
        )


def _identity_outputs(outputs):
    # Distinct output tensors: no two signature outputs (or an output and an
    # input) share a tensor, which tf2onnx would otherwise merge or rename.
    return {name: tf.identity(value) for name, value in outputs.items()}


# --------------------------------------------------------------------------
# The serving functions (plain Python over TF ops: traced for the SavedModel
# and ONNX, run eagerly as the parity reference).


class _Functions:
    """Serving functions shared by the exporters and `check_parity`."""

    task = None

    def __init__(self, model, max_length, strategy, sampler):
        self.model = model
        self.max_length = max_length
        self.strategy = strategy
        self.sampler = sampler
        self.layout = _StateLayout()

    def _initial(self, ids):
        raise NotImplementedError

    def _decode(self, ids):
        state, start = self._initial(ids)
        result = decoding.decode(
            self.model.step,
            state,
            start,
            end_id=EOS_ID,
            max_length=self.max_length,
            strategy=self.strategy,
            sampler=self.sampler,
        )
        return {
            "ids": result.ids[:, 0],  # [N, L], the best hypothesis
            "lengths": result.lengths[:, 0],
            "scores": result.scores[:, 0],
        }

    def id_level(self, inputs):
        name = _ID_SIGNATURE[self.task]
        ids = self.validate(inputs[_INPUT_NAME[self.task]], name, from_text=False)
        return _identity_outputs(self._decode(ids))

    def state_level(self, inputs):
        name = _STATE_SIGNATURE[self.task]
        ids = self.validate(inputs[_INPUT_NAME[self.task]], name, from_text=False)
        state, start = self._initial(ids)
        outputs = {"start_ids": start}
        outputs.update(self.layout.record(state))
        return _identity_outputs(outputs)

    def step(self, inputs):
        tokens = _validate_tokens(inputs["tokens"], "step", self.output_vocab)
        logits, state = self.model.step(tokens, self.layout.pack(inputs))
        outputs = {"logits": tf.cast(logits, tf.float32)}
        for name, value in _flatten_state(state).items():
            outputs[_NEXT_PREFIX + name] = value
        return _identity_outputs(outputs)


class _LanguageModelFunctions(_Functions):
    task = "language_model"

    def __init__(self, model, max_length, strategy, sampler):
        super().__init__(model, max_length, strategy, sampler)
        self.vocab_size = self.output_vocab = _model_int(model, "vocab_size")
        # Models with a positional limit (Transformer LM): the cache holds the
        # prompt (but its last token) and the generated tokens.
        self.max_prompt = None
        positions = getattr(model, "max_length", None)
        if _is_int(positions):
            self.max_prompt = int(positions) - max_length + 1
            if self.max_prompt < 1:
                raise ValueError(
                    f"`max_length`={max_length} leaves no room for a prompt in "
                    f"the model's {positions} positions."
                )

    def validate(self, ids, fn_name, from_text):
        what = "prompts" if from_text else "prompt_ids rows"
        return _validate_ids(
            ids, fn_name, what, self.vocab_size,
            from_text=from_text, max_tokens=self.max_prompt,
            max_note=f" with max_length={self.max_length} generated tokens",
        )

    def _initial(self, ids):
        state = self.model.initial_state(ids)
        start = tf.cast(self.model.start_tokens(ids), tf.int32)
        return state, start

    def text_level(self, inputs, tokenizer):
        prompts = inputs["prompts"]
        ragged = tokenizer.encode(prompts)  # int32 [N, None]
        ids = self.validate(ragged.to_tensor(), "generate", from_text=True)
        out = self._decode(ids)
        generated = tf.RaggedTensor.from_tensor(out["ids"], lengths=out["lengths"])
        full = tf.concat([ragged, generated], axis=1).to_tensor()
        outputs = {
            "generated": tokenizer.decode(out["ids"]),
            "text": tokenizer.decode(full),
        }
        outputs.update(out)
        return _identity_outputs(outputs)


class _TranslatorFunctions(_Functions):
    task = "translation"

    def __init__(self, model, max_length, strategy, sampler):
        super().__init__(model, max_length, strategy, sampler)
        self.source_vocab = _model_int(model, "source_vocab_size")
        self.output_vocab = _model_int(model, "target_vocab_size")
        self.max_source = None
        positions = getattr(model, "max_length", None)
        if _is_int(positions):
            self.max_source = int(positions)
            if max_length > positions:
                raise ValueError(
                    f"`max_length`={max_length} exceeds the model's "
                    f"max_length={positions}."
                )
        params = inspect.signature(model.initial_state).parameters
        self.cache_kwargs = (
            {"cache_length": max_length} if "cache_length" in params else {}
        )

    def validate(self, ids, fn_name, from_text, check_length=True):
        what = "sentences" if from_text else "source_ids rows"
        return _validate_ids(
            ids, fn_name, what, self.source_vocab,
            from_text=from_text,
            max_tokens=self.max_source if check_length else None,
            max_note=" (EOS included)",
        )

    def _initial(self, ids):
        state = self.model.initial_state(ids, **self.cache_kwargs)
        start = tf.fill(tf.shape(ids)[:1], tf.constant(BOS_ID, tf.int32))
        return state, start

    def text_level(self, inputs, source_tokenizer, target_tokenizer):
        ragged = source_tokenizer.encode(inputs["sentences"])  # [N, None]
        # Emptiness is checked before EOS is appended, the length after.
        checked = self.validate(
            ragged.to_tensor(), "translate", from_text=True, check_length=False
        )
        eos = tf.fill([tf.shape(checked)[0], 1], tf.constant(EOS_ID, tf.int32))
        with tf.control_dependencies([checked]):
            ids = tf.concat([ragged, tf.RaggedTensor.from_tensor(eos)], axis=1)
        ids = ids.to_tensor()  # source + EOS, right-padded
        if self.max_source is not None:
            ids = _validate_ids(
                ids, "translate", "sentences", self.source_vocab, from_text=True,
                max_tokens=self.max_source, max_note=" (EOS included)",
                check_unknown=False,
            )
        out = self._decode(ids)
        outputs = {"translations": target_tokenizer.decode(out["ids"])}
        outputs.update(out)
        return _identity_outputs(outputs)


# --------------------------------------------------------------------------
# Writing: versions, atomic rename, ONNX.


def _versions(to):
    if not os.path.isdir(to):
        return []
    return sorted(
        int(name)
        for name in os.listdir(to)
        if name.isdigit() and os.path.isdir(os.path.join(to, name))
    )


def _resolve_version(to, version):
    if version is None:
        existing = _versions(to)
        return (existing[-1] + 1) if existing else 1
    if not _is_int(version) or version < 1:
        raise ValueError(f"`version` must be an integer >= 1 or None, got {version!r}.")
    if os.path.exists(os.path.join(to, str(version))):
        raise FileExistsError(
            f"version {version} already exists in {to}; pick another version or "
            "pass version=None for the next one"
        )
    return int(version)


def _spec_json(spec):
    return {
        "dtype": spec.dtype.name,
        "shape": None if spec.shape.rank is None else spec.shape.as_list(),
    }


def _signature_json(fn, input_signature, doc):
    concrete = fn.get_concrete_function(*input_signature)
    inputs = tf.nest.flatten(input_signature)
    return {
        "doc": doc,
        "inputs": {spec.name: _spec_json(spec) for spec in inputs},
        "outputs": {
            name: _spec_json(spec)
            for name, spec in sorted(concrete.structured_outputs.items())
        },
    }


def _op_summary(graph, counts=None):
    """Counts node op types in an ONNX graph, subgraphs (Loop bodies) included."""
    counts = {} if counts is None else counts
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
        for attribute in node.attribute:
            if attribute.g is not None and len(attribute.g.node):
                _op_summary(attribute.g, counts)
            for subgraph in attribute.graphs:
                _op_summary(subgraph, counts)
    return counts


@contextlib.contextmanager
def _safe_reshape_merging():
    """Works around a tf2onnx 1.17 optimizer bug while converting.

    tf2onnx's back-to-back optimizer folds `Reshape(Reshape(x, s1), s2)` into
    `Reshape(x, s2)` even when `s2` holds 0s, which ONNX reads as "copy this
    dimension from the input": after folding they copy the dimensions of `x`
    instead of those of `Reshape(x, s1)`. tf2onnx's own reshape optimizer
    writes such 0s for `reshape(dense(x), (shape[0], shape[1], heads,
    head_dim))` (the Transformer's head split), so the converted graph fails
    in onnxruntime ("cannot reshape {12,8} to {12,8,2,4}"). Only fold when
    `s2` is a constant without 0s.
    """
    try:
        from tf2onnx.optimizer import back_to_back_optimizer as b2b

        key = ("Reshape",)
        original = b2b._func_map[key]
    except (ImportError, AttributeError, KeyError):  # pragma: no cover
        yield
        return

    def guarded(g, node, consumer_nodes):
        if len(consumer_nodes) == 1 and consumer_nodes[0].type == "Reshape":
            shape = consumer_nodes[0].inputs[1]
            if not shape.is_const() or 0 in np.asarray(shape.get_tensor_value(as_list=False)):
                return []
        return original(g, node, consumer_nodes)

    b2b._func_map[key] = guarded
    try:
        yield
    finally:
        b2b._func_map[key] = original


def _convert_onnx(fn, input_signature, path, opset, metadata):
    """tf2onnx: converts a traced serving function to `path`; returns op counts."""
    import onnx
    import tf2onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # numpy >= 2 removed np.object, which tf2onnx 1.17 still uses.
            from keras.src.export.tf2onnx_lib import patch_tf2onnx

            patch_tf2onnx()
        except ImportError:  # pragma: no cover - other Keras layouts
            pass
    # tf2onnx logs every rewriter it tries and TF's graph optimizer warns
    # about collections; neither is actionable.
    loggers = [logging.getLogger("tf2onnx"), tf.get_logger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with _safe_reshape_merging():
            proto, _ = tf2onnx.convert.from_function(
                fn, input_signature=input_signature, opset=opset
            )
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
    onnx.checker.check_model(proto)
    proto.doc_string = metadata.get("doc", "")
    entry = proto.metadata_props.add()
    entry.key = "keras_seq.export"
    entry.value = json.dumps(metadata, sort_keys=True)
    data = proto.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    return dict(sorted(_op_summary(proto.graph).items()))


def _write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


def _tokenizer_json(tokenizer):
    return {
        "type": getattr(tokenizer, "type_name", type(tokenizer).__name__),
        "config": tokenizer.get_config() if hasattr(tokenizer, "get_config") else {},
        "vocab_size": tokenizer.vocab_size,
    }


def _keras_seq_version():
    import keras_seq

    return keras_seq.__version__


def _spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)


def _step_input_signature(fns, state_fn, state_signature):
    """`step`'s input signature: tokens + the state the state signature returns."""
    outputs = state_fn.get_concrete_function(*state_signature).structured_outputs
    spec = {"tokens": _spec([None], tf.int32, "tokens")}
    for name in fns.layout.names:
        shape = outputs[name].shape.as_list()
        if shape:
            shape[0] = None  # any batch size
        spec[name] = _spec(shape, outputs[name].dtype, name)
    return [spec]


def _export(fns, to, version, onnx, opset, tracked, endpoints, info, verbose):
    """Writes one version atomically (temporary sibling dir, then rename).

    Args:
        fns: the `_Functions` whose methods the endpoints call.
        to: the model's export directory.
        version: int or None.
        onnx: bool, also convert the id-level, state and step signatures.
        opset: ONNX opset.
        tracked: the tokenizer modules, for `ExportArchive.track`.
        endpoints: list of `(name, fn, input_signature, doc)`; the first one
            is `serving_default`; `input_signature=None` for `step` (built
            from the traced state signature).
        info: dict merged into export.json.
        verbose: passed to `ExportArchive.write_out`.

    Returns:
        The path of the version directory.
    """
    to = os.fspath(to)
    os.makedirs(to, exist_ok=True)
    version = _resolve_version(to, version)
    state_name = _STATE_SIGNATURE[fns.task]
    id_name = _ID_SIGNATURE[fns.task]
    tmp = tempfile.mkdtemp(prefix=f".tmp-export-{version}-", dir=to)
    try:
        saved_model_dir = os.path.join(tmp, "saved_model")
        onnx_dir = os.path.join(tmp, "onnx")
        archive = keras.export.ExportArchive()
        # The tokenizer modules hold lookup tables, which must be tracked. The
        # model is not: the archive saves every variable its endpoints use,
        # and tracking a Keras model makes `write_out` trace the model's own
        # default call, which fails for models whose `call` takes a dict
        # (Transformer).
        for resource in tracked:
            archive.track(resource)
        archive.add_variable_collection("model_variables", list(fns.model.variables))
        functions, signatures = {}, {}
        for name, fn, input_signature, doc in endpoints:
            if input_signature is None:
                input_signature = _step_input_signature(fns, *functions[state_name])
            # Traced here (a tf.function with its input signature, autograph
            # on as everywhere else in keras_seq) and handed to the archive
            # as is: the SavedModel signature and the ONNX graph are the same
            # concrete function.
            decorated = tf.function(fn, input_signature=input_signature)
            signatures[name] = _signature_json(decorated, input_signature, doc)
            archive.add_endpoint(name, decorated)
            functions[name] = (decorated, input_signature)
        default = endpoints[0][0]
        signatures["serving_default"] = dict(signatures[default], doc=f"alias of {default}")
        archive.write_out(saved_model_dir, verbose=verbose)

        data = {
            "format": _FORMAT,
            "task": fns.task,
            "version": version,
            "model": {
                "class": type(fns.model).__name__,
                "config": fns.model.get_config() if hasattr(fns.model, "get_config") else {},
            },
            "token_ids": {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID},
            "versions": {
                "keras_seq": _keras_seq_version(),
                "keras": keras.__version__,
                "tensorflow": tf.__version__,
            },
            "signatures": signatures,
            "state": [
                {"name": n, **signatures["step"]["inputs"][n]} for n in fns.layout.names
            ],
            "onnx": {},
        }
        data.update(info)
        if onnx:
            os.makedirs(onnx_dir)
            for name in (id_name, state_name, "step"):
                fn, input_signature = functions[name]
                metadata = {
                    "signature": name,
                    "task": fns.task,
                    "version": version,
                    "doc": signatures[name]["doc"],
                    "inputs": signatures[name]["inputs"],
                    "outputs": signatures[name]["outputs"],
                    "state": data["state"],
                    "decoding": data.get("decoding"),
                }
                ops = _convert_onnx(
                    fn, input_signature, os.path.join(onnx_dir, name + ".onnx"),
                    opset, metadata,
                )
                data["onnx"][name + ".onnx"] = {"opset": opset, "ops": ops}
            shutil.copyfile(
                os.path.join(onnx_dir, id_name + ".onnx"),
                os.path.join(onnx_dir, "serving_default.onnx"),
            )
            data["onnx"]["serving_default.onnx"] = dict(
                data["onnx"][id_name + ".onnx"], copy_of=id_name + ".onnx"
            )
            _write_json(os.path.join(onnx_dir, "export.json"), data)
        _write_json(os.path.join(saved_model_dir, EXPORT_INFO), data)

        final = os.path.join(to, str(version))
        os.rename(saved_model_dir, final)  # the version appears complete, at once
        if onnx:
            target = os.path.join(to, "onnx")
            os.makedirs(target, exist_ok=True)
            written = sorted(os.listdir(onnx_dir))
            for name in written:  # each file replaced atomically
                os.replace(os.path.join(onnx_dir, name), os.path.join(target, name))
            for name in os.listdir(target):  # graphs left by an earlier, other export
                if name.endswith(".onnx") and name not in written:
                    os.remove(os.path.join(target, name))
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_opset(opset):
    if not _is_int(opset) or opset < _DEFAULT_OPSET:
        raise ValueError(f"`opset` must be an integer >= {_DEFAULT_OPSET}, got {opset!r}.")


def export_language_model(
    model,
    tokenizer,
    to,
    *,
    version=None,
    max_length=50,
    strategy="greedy",
    sampler=None,
    onnx=True,
    opset=_DEFAULT_OPSET,
    verbose=False,
):
    """Exports a language model: SavedModel (TF Serving layout) + ONNX.

    Writes `to/<version>/` with the signatures `generate` (=
    `serving_default`), `generate_ids`, `initial_state` and `step` (see the
    module docstring for their inputs and outputs) and, with `onnx=True`,
    `to/onnx/{generate_ids,initial_state,step,serving_default}.onnx`. The
    generation settings are fixed at export.

    Args:
        model: a model with `initial_state(prompt_ids)`, `step(tokens,
            state)`, `start_tokens(prompt_ids)` and `vocab_size`
            (`RNNLanguageModel`, `TransformerLanguageModel`).
        tokenizer: the model's fitted `keras_seq.text` tokenizer (same
            vocabulary size as the model).
        to: the model's export directory (e.g. `"exported/anna"`).
        version: int >= 1, or None for the next free integer.
        max_length: int, the most tokens generated (EOS included).
        strategy: `"greedy"` or a `keras_seq.decoding.BeamSearch` (the best
            hypothesis is returned).
        sampler: None (most likely token) or a `keras_seq.decoding.RandomSampler`
            (temperature, top_k, top_p, seed). With `seed=None` every call
            draws fresh randomness; with a seed every call of the same batch
            gives the same text.
        onnx: also write the ONNX graphs (tf2onnx).
        opset: ONNX opset, >= 17.
        verbose: print Keras's listing of the endpoints.

    Returns:
        The path of the version directory written (`to/<version>`).

    Raises:
        ValueError: bad settings, or the tokenizer's vocabulary size differs
            from the model's.
        FileExistsError: `version` already exists.

    Example:

    ```python
    path = export_language_model(lm, tokenizer, "exported/anna", max_length=40,
                                 sampler=RandomSampler(0.8, top_p=0.9, seed=1))
    generate = tf.saved_model.load(path).signatures["generate"]
    generate(prompts=tf.constant(["It was"]))["text"]
    ```
    """
    _check_contract(model, "language_model", "language model")
    max_length = _check_max_length(max_length)
    _check_decoding(strategy, sampler)
    _check_opset(opset)
    fns = _LanguageModelFunctions(model, max_length, strategy, sampler)
    _check_tokenizer(tokenizer, fns.vocab_size, "tokenizer")
    module = tokenizer.as_module()
    ids_signature = [{"prompt_ids": _spec([None, None], tf.int32, "prompt_ids")}]
    endpoints = [
        (
            "generate",
            lambda inputs: fns.text_level(inputs, module),
            [{"prompts": _spec([None], tf.string, "prompts")}],
            "prompts string [N] -> generated string [N] (the continuation), "
            "text string [N] (prompt + continuation), ids int32 [N, L], "
            "lengths int32 [N], scores float32 [N]",
        ),
        (
            "initial_state",
            fns.state_level,
            ids_signature,
            "prompt_ids int32 [N, T] (right-padded with 0) -> start_ids int32 "
            "[N] (the token to feed to step first) + state_* tensors",
        ),
        (
            "step",
            fns.step,
            None,
            "tokens int32 [N] + state_<key> tensors -> logits float32 [N, V] "
            "+ next_state_<key> tensors (feed them back as state_<key>)",
        ),
        (
            "generate_ids",
            fns.id_level,
            ids_signature,
            "prompt_ids int32 [N, T] (right-padded with 0) -> ids int32 [N, L] "
            "(EOS included, 0 after it), lengths int32 [N], scores float32 [N]",
        ),
    ]
    info = {
        "decoding": _decoding_config(strategy, sampler, max_length, "last prompt token"),
        "tokenizer": _tokenizer_json(tokenizer),
    }
    return _export(fns, to, version, onnx, opset, [module], endpoints, info, verbose)


def export_translator(
    model,
    source_tokenizer,
    target_tokenizer,
    to,
    *,
    version=None,
    beam_size=5,
    length_penalty=0.6,
    max_length=None,
    onnx=True,
    opset=_DEFAULT_OPSET,
    verbose=False,
):
    """Exports a translator: SavedModel (TF Serving layout) + ONNX.

    Writes `to/<version>/` with the signatures `translate` (=
    `serving_default`), `translate_ids`, `encode` and `step` (see the module
    docstring) and, with `onnx=True`,
    `to/onnx/{translate_ids,encode,step,serving_default}.onnx`, the beam
    search running inside one ONNX `Loop`. Written only against the
    `initial_state(source_ids)` / `step(tokens, state)` contract, so any
    encoder-decoder exports: `AttentionSeq2Seq` (recurrent state, encoder
    outputs) as well as `Transformer` (per-layer key/value caches, allocated
    for `max_length` positions through `initial_state(..., cache_length=)`).

    Args:
        model: a model with `initial_state`, `step`, `source_vocab_size` and
            `target_vocab_size` (and optionally `max_length`, the longest
            source it accepts).
        source_tokenizer: the fitted source tokenizer.
        target_tokenizer: the fitted target tokenizer.
        to: the model's export directory (e.g. `"exported/fra-eng"`).
        version: int >= 1, or None for the next free integer.
        beam_size: int >= 1; 1 is greedy search.
        length_penalty: float >= 0, the GNMT alpha.
        max_length: int, the most target tokens (EOS included); defaults to the
            model's `max_length` (or 100).
        onnx: also write the ONNX graphs (tf2onnx).
        opset: ONNX opset, >= 17.
        verbose: print Keras's listing of the endpoints.

    Returns:
        The path of the version directory written (`to/<version>`).

    Example:

    ```python
    path = export_translator(model, fr_tok, en_tok, "exported/fra-eng", beam_size=4)
    translate = tf.saved_model.load(path).signatures["translate"]
    translate(sentences=tf.constant(["Je t'aime."]))["translations"]
    ```
    """
    _check_contract(model, "translation", "translator")
    if max_length is None:
        positions = getattr(model, "max_length", None)
        max_length = int(positions) if _is_int(positions) else 100
    max_length = _check_max_length(max_length)
    strategy = decoding.BeamSearch(beam_size, length_penalty=length_penalty)
    _check_opset(opset)
    fns = _TranslatorFunctions(model, max_length, strategy, None)
    _check_tokenizer(source_tokenizer, fns.source_vocab, "source_tokenizer")
    _check_tokenizer(target_tokenizer, fns.output_vocab, "target_tokenizer")
    source_module = source_tokenizer.as_module()
    target_module = target_tokenizer.as_module()
    ids_signature = [{"source_ids": _spec([None, None], tf.int32, "source_ids")}]
    endpoints = [
        (
            "translate",
            lambda inputs: fns.text_level(inputs, source_module, target_module),
            [{"sentences": _spec([None], tf.string, "sentences")}],
            "sentences string [N] -> translations string [N], ids int32 "
            "[N, L], lengths int32 [N], scores float32 [N]",
        ),
        (
            "encode",
            fns.state_level,
            ids_signature,
            "source_ids int32 [N, S] (source + EOS, right-padded with 0) -> "
            "start_ids int32 [N] (BOS) + state_* tensors",
        ),
        (
            "step",
            fns.step,
            None,
            "tokens int32 [N] + state_<key> tensors -> logits float32 [N, V] "
            "+ next_state_<key> tensors (feed them back as state_<key>)",
        ),
        (
            "translate_ids",
            fns.id_level,
            ids_signature,
            "source_ids int32 [N, S] (source + EOS, right-padded with 0) -> "
            "ids int32 [N, L] (EOS included, 0 after it), lengths int32 [N], "
            "scores float32 [N] (summed log-probabilities)",
        ),
    ]
    info = {
        "decoding": _decoding_config(strategy, None, max_length, BOS_ID),
        "source_tokenizer": _tokenizer_json(source_tokenizer),
        "target_tokenizer": _tokenizer_json(target_tokenizer),
    }
    return _export(
        fns, to, version, onnx, opset, [source_module, target_module],
        endpoints, info, verbose,
    )


# --------------------------------------------------------------------------
# Parity: Keras eager vs the SavedModel (fresh process, no keras_seq) vs ONNX.

# Runs in a fresh interpreter where keras_seq (and Keras) cannot be imported:
# proves the SavedModel is self-contained. argv: saved model path, request
# json, outputs prefix. Requests: {signature: {input: npz key | [strings]}}.
_SUBPROCESS_SCRIPT = r"""
import importlib
import sys
# A stock TensorFlow consumer: `import keras_seq` (and `import keras`) raises
# ImportError from here on.
for blocked in ("keras_seq", "keras", "keras_hub"):
    sys.modules[blocked] = None
    try:
        importlib.import_module(blocked)
    except ImportError:
        pass
    else:
        raise SystemExit(blocked + " is importable in the parity subprocess")
import json
import numpy as np
import tensorflow as tf

path, request_file, out_prefix = sys.argv[1:4]
with open(request_file, encoding="utf-8") as f:
    requests = json.load(f)
arrays = np.load(request_file + ".npz")
keras_needed = False
try:
    loaded = tf.saved_model.load(path)
except Exception as error:  # NotFoundError or RuntimeError, by TF version
    if "Op type not registered" not in str(error):
        raise
    # tensorflow_text ops (WordPiece tokenizer); tensorflow_text imports Keras.
    keras_needed = True
    del sys.modules["keras"], sys.modules["keras_hub"]
    import tensorflow_text  # noqa: F401
    loaded = tf.saved_model.load(path)
numeric, strings = {}, {}
for signature, feeds in requests.items():
    kwargs = {
        name: tf.constant(ref, tf.string) if isinstance(ref, list) else tf.constant(arrays[ref])
        for name, ref in feeds.items()
    }
    for name, value in loaded.signatures[signature](**kwargs).items():
        value = value.numpy()
        key = signature + "/" + name
        if value.dtype == object:
            strings[key] = [v.decode("utf-8") for v in value.reshape(-1)]
        else:
            numeric[key] = value
np.savez(out_prefix + ".npz", **numeric)
with open(out_prefix + ".json", "w", encoding="utf-8") as f:
    json.dump(strings, f)
print("keras_seq importable: False")
print("keras needed:", keras_needed)
"""


def _numpy_outputs(outputs):
    return {name: np.asarray(value) for name, value in outputs.items()}


def _run_saved_model_subprocess(path, requests, timeout):
    """Runs `requests` through the SavedModel in a fresh Python process.

    Returns:
        `({signature: {output: array or list of str}}, {"keras_seq_importable":
        False, "keras_needed": bool})`; the second dict describes the process
        (Keras is importable there only for tensorflow_text ops).
    """
    with tempfile.TemporaryDirectory(prefix="keras_seq_parity_") as tmp:
        arrays, plan = {}, {}
        for signature, feeds in requests.items():
            plan[signature] = {}
            for name, value in feeds.items():
                if isinstance(value, list):  # strings
                    plan[signature][name] = value
                else:
                    key = f"{signature}/{name}"
                    arrays[key] = np.asarray(value)
                    plan[signature][name] = key
        request_file = os.path.join(tmp, "requests.json")
        with open(request_file, "w", encoding="utf-8") as f:
            json.dump(plan, f)
        np.savez(request_file + ".npz", **arrays)
        out_prefix = os.path.join(tmp, "outputs")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run(
            [sys.executable, "-c", _SUBPROCESS_SCRIPT, os.path.abspath(path),
             request_file, out_prefix],
            cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise ParityError(
                "the SavedModel failed in a fresh process without keras_seq: "
                + (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            )
        if "keras_seq importable: False" not in proc.stdout:  # pragma: no cover
            raise ParityError("the parity subprocess did not report its checks")
        keras_needed = "keras needed: True" in proc.stdout
        outputs = {}
        with np.load(out_prefix + ".npz") as data:
            for key in data.files:
                outputs[key] = data[key]
        with open(out_prefix + ".json", encoding="utf-8") as f:
            outputs.update(json.load(f))
    result = {}
    for key, value in outputs.items():
        signature, name = key.split("/", 1)
        result.setdefault(signature, {})[name] = value
    return result, {"keras_seq_importable": False, "keras_needed": keras_needed}


def _run_onnx(onnx_dir, requests):
    """Runs `requests` through `onnx_dir/<signature>.onnx` with onnxruntime."""
    import onnxruntime

    result = {}
    for signature, feeds in requests.items():
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            os.path.join(onnx_dir, signature + ".onnx"),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        strip = lambda name: name[:-2] if name.endswith(":0") else name  # noqa: E731
        feed = {node.name: np.asarray(feeds[strip(node.name)]) for node in session.get_inputs()}
        names = [node.name for node in session.get_outputs()]
        values = session.run(names, feed)
        result[signature] = {strip(n): np.asarray(v) for n, v in zip(names, values)}
    return result


def _compare(reference, got, where, atol, rtol, report, failures, backend):
    """Compares one signature's outputs; fills `report`, appends to `failures`."""
    failed = []
    for name, expected in sorted(reference.items()):
        key = f"{where}/{name}"
        if name not in got:
            failed.append(f"{key}: missing")
            continue
        actual = got[name]
        if isinstance(expected, list) or np.asarray(expected).dtype == object:
            same = list(expected) == list(actual)
            report[key] = "equal" if same else "DIFFERENT"
            if not same:
                failed.append(f"{key}: {list(actual)!r} != {list(expected)!r}")
            continue
        expected, actual = np.asarray(expected), np.asarray(actual)
        if expected.shape != actual.shape:
            failed.append(f"{key}: shape {actual.shape} != {expected.shape}")
            continue
        if expected.dtype.kind in "biu":
            mismatches = int(np.sum(expected != actual))
            report[key] = "equal" if not mismatches else f"{mismatches} different"
            if mismatches:
                failed.append(f"{key}: {mismatches} of {expected.size} values differ")
        else:
            finite = np.isfinite(expected)
            if not np.array_equal(finite, np.isfinite(actual)) or not np.array_equal(
                expected[~finite], actual[~finite]
            ):
                failed.append(f"{key}: non-finite values differ")
                continue
            diff = float(np.max(np.abs(expected[finite] - actual[finite]), initial=0.0))
            report[key] = diff
            if not np.allclose(expected, actual, atol=atol, rtol=rtol):
                failed.append(f"{key}: max abs diff {diff:.3g} > atol {atol:g}")
    failures.extend(f"{backend} {message}" for message in failed)


def _pad(rows):
    width = max([len(r) for r in rows] + [1])
    out = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def check_parity(
    model,
    path,
    inputs,
    *,
    texts=None,
    tokenizers=None,
    onnx=None,
    atol=1e-5,
    rtol=1e-5,
    timeout=600,
):
    """Checks an export against the Keras model on the same inputs.

    Runs the id-level signature (`generate_ids` / `translate_ids`), the state
    signature (`initial_state` / `encode`) and one `step` (fed with the start
    tokens and the state of the Keras model) through

    a. the Keras model and `keras_seq.decoding`, eagerly;
    b. the reloaded SavedModel, in a fresh Python process in which
       `import keras_seq` raises, and `import keras` too unless the
       SavedModel needs tensorflow_text ops (WordPiece tokenizer; importing
       tensorflow_text imports Keras), so the SavedModel is self-contained;
    c. onnxruntime on `to/onnx/<signature>.onnx` (and `serving_default.onnx`).

    Token ids and lengths must be identical; scores, logits and float state
    must agree within `atol`/`rtol`. With `texts`, the text signature
    (`generate` / `translate`, SavedModel only) must also give the same
    strings as the Python tokenizers around the eager model.

    Args:
        model: the Keras model that was exported.
        path: the version directory returned by the exporter.
        inputs: int ids `[N, T]`, right-padded with 0 (prompts for a language
            model, sources with their EOS for a translator); every row
            non-empty.
        texts: optional list of strings for the text signature.
        tokenizers: with `texts`: the tokenizer (language model) or
            `(source_tokenizer, target_tokenizer)` (translator).
        onnx: check the ONNX graphs; default: when `to/onnx/` holds those of
            this version (its `export.json` names the version).
        atol, rtol: tolerances for float outputs.
        timeout: seconds allowed to the SavedModel subprocess.

    Returns:
        A dict `{"saved_model": {...}, "onnx": {...}}` mapping
        `"<signature>/<output>"` to `"equal"` (ids, lengths, strings) or the
        max absolute difference (floats); `"onnx"` only when ONNX was
        checked.

    Raises:
        ParityError: listing every output that disagrees, or when the
            SavedModel fails in the subprocess (or keras_seq is importable
            there).

    Example:

    ```python
    path = export_translator(model, fr_tok, en_tok, "exported/fra-eng")
    report = check_parity(model, path, source_ids)
    report["onnx"]["step/logits"]      # e.g. 2.4e-07
    ```
    """
    info_path = os.path.join(path, EXPORT_INFO)
    if not os.path.isfile(info_path):
        raise errors.RunDirError(
            f"{path} is not a keras_seq export version directory (no {EXPORT_INFO})"
        )
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    onnx_dir = os.path.join(os.path.dirname(os.path.abspath(path)), "onnx")
    onnx_info = os.path.join(onnx_dir, "export.json")
    onnx_version = None
    if os.path.isfile(onnx_info):
        with open(onnx_info, encoding="utf-8") as f:
            onnx_version = json.load(f).get("version")
    if onnx is None:
        onnx = onnx_version == info["version"]
    elif onnx and onnx_version != info["version"]:
        raise ValueError(
            f"{onnx_dir} holds the ONNX graphs of version {onnx_version}, not of "
            f"version {info['version']}; pass onnx=False"
        )
    task = info["task"]
    settings = info["decoding"]
    strategy, sampler = _decoding_from_config(settings)
    if sampler is not None and sampler.seed is None:
        raise ValueError(
            "parity needs reproducible outputs; this export samples without a seed"
        )
    cls = _LanguageModelFunctions if task == "language_model" else _TranslatorFunctions
    fns = cls(model, settings["max_length"], strategy, sampler)
    ids = np.asarray(inputs)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`inputs` must be int ids [N, T], got {ids.dtype} {ids.shape}.")
    ids = ids.astype(np.int32)
    id_name, state_name = _ID_SIGNATURE[task], _STATE_SIGNATURE[task]
    input_name = _INPUT_NAME[task]

    # (a) Keras + keras_seq.decoding, eagerly.
    reference = {
        id_name: _numpy_outputs(fns.id_level({input_name: tf.constant(ids)})),
        state_name: _numpy_outputs(fns.state_level({input_name: tf.constant(ids)})),
    }
    step_feed = {"tokens": reference[state_name]["start_ids"]}
    for name in fns.layout.names:
        step_feed[name] = reference[state_name][name]
    reference["step"] = _numpy_outputs(
        fns.step({k: tf.constant(v) for k, v in step_feed.items()})
    )
    requests = {id_name: {input_name: ids}, state_name: {input_name: ids}, "step": step_feed}
    if texts is not None:
        if tokenizers is None:
            raise ValueError("`texts` needs `tokenizers` (the Python reference).")
        texts = list(texts)
        text_name = _TEXT_SIGNATURE[task]
        if task == "language_model":
            text_ids = _pad(tokenizers.encode(texts))
            out = _numpy_outputs(fns.id_level({input_name: tf.constant(text_ids)}))
            strings = {"generated": tokenizers.decode(out["ids"])}
            requests[text_name] = {"prompts": texts}
        else:
            source_tokenizer, target_tokenizer = tokenizers
            text_ids = _pad(source_tokenizer.encode(texts, add_eos=True))
            out = _numpy_outputs(fns.id_level({input_name: tf.constant(text_ids)}))
            strings = {"translations": target_tokenizer.decode(out["ids"])}
            requests[text_name] = {"sentences": texts}
        reference[text_name] = dict(out, **strings)

    report, failures = {"saved_model": {}}, []
    # (b) The SavedModel, in a fresh process that cannot import keras_seq.
    saved, _ = _run_saved_model_subprocess(path, requests, timeout)
    for signature, expected in reference.items():
        _compare(
            expected, saved.get(signature, {}), signature, atol, rtol,
            report["saved_model"], failures, "SavedModel",
        )
    # (c) onnxruntime.
    if onnx:
        onnx_requests = {k: v for k, v in requests.items() if k != _TEXT_SIGNATURE[task]}
        onnx_requests["serving_default"] = requests[id_name]
        got = _run_onnx(onnx_dir, onnx_requests)
        report["onnx"] = {}
        for signature in onnx_requests:
            expected = reference[id_name if signature == "serving_default" else signature]
            _compare(
                expected, got[signature], signature, atol, rtol, report["onnx"],
                failures, "ONNX",
            )
    if failures:
        raise ParityError("export parity failed: " + "; ".join(failures))
    return report
