"""The serving functions of an export, traced from the generative contract.

`ServingFunctions(model, max_length, strategy, sampler)` holds the four
functions of one export: the text signature (`generate` / `translate`), the
id-level one (`generate_ids` / `translate_ids`), the state one
(`initial_state` / `encode`) and `step`. They are plain Python over TF ops,
written once against `keras_seq.models.GenerativeModel`: the exporter traces
them into the SavedModel and the ONNX graphs, and `check_parity` runs them
as the reference. What differs between a language model and a translator is
read from the model (`task`, `input_name`, `start`, `input_length_limit`,
`output_length_limit`, the vocabulary sizes, `end_id`); nothing probes
method signatures or attributes.

State tensors are the leaves of the model's state nest, named
`state_<joined key>`; `step` returns the new value of `state_<key>` as
`next_state_<key>` (ONNX graphs cannot have an input and an output of the same
name).

Example:

```python
fns = ServingFunctions(model, max_length=20)
outputs = fns.id_level({model.input_name: tf.constant(ids)})
outputs["ids"]      # int32 [N, 20]
```
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from keras_seq import decoding
from keras_seq.export import validation
from keras_seq.models.generative import GenerativeModel
from keras_seq.text import EOS_ID
from keras_seq.text import UNK_ID
from keras_seq.text.modules import _WordModule
from keras_seq.text.splitting import join_words
from keras_seq.text.splitting import split_words

__all__ = ["TASKS", "Endpoint", "ServingFunctions", "check_model", "flatten_state"]

STATE_PREFIX = "state_"
# `step` returns `next_state_<key>` for its input `state_<key>`: ONNX graphs
# cannot have an input and an output of the same name.
NEXT_PREFIX = "next_"

_STEP_DOC = (
    "tokens int32 [N] + state_<key> tensors -> logits float32 [N, V] "
    "+ next_state_<key> tensors (feed them back as state_<key>)"
)


class TaskSignatures(NamedTuple):
    """The signature names and texts of one `GenerativeModel.task`."""

    kind: str  # for messages: "language model" / "translator"
    text: str  # the text signature (= serving_default)
    ids: str  # the id-level signature
    state: str  # the state signature
    text_input: str  # the text signature's input
    start: str  # export.json's "decoding"/"start" ("" = the model's start_id)
    length_note: str  # completes "longer than the K tokens the model accepts..."
    text_doc: str
    ids_doc: str
    state_doc: str


TASKS = {
    "language_model": TaskSignatures(
        kind="language model",
        text="generate",
        ids="generate_ids",
        state="initial_state",
        text_input="prompts",
        start="last prompt token",
        length_note=" with max_length={max_length} generated tokens",
        text_doc=(
            "prompts string [N] -> generated string [N] (the continuation), "
            "text string [N] (prompt + continuation), ids int32 [N, L], "
            "lengths int32 [N], scores float32 [N]"
        ),
        ids_doc=(
            "prompt_ids int32 [N, T] (right-padded with 0) -> ids int32 [N, L] "
            "(EOS included, 0 after it), lengths int32 [N], scores float32 [N]"
        ),
        state_doc=(
            "prompt_ids int32 [N, T] (right-padded with 0) -> start_ids int32 "
            "[N] (the token to feed to step first) + state_* tensors"
        ),
    ),
    "translation": TaskSignatures(
        kind="translator",
        text="translate",
        ids="translate_ids",
        state="encode",
        text_input="sentences",
        start="",
        length_note=" (EOS included)",
        text_doc=(
            "sentences string [N] -> translations string [N], ids int32 "
            "[N, L], lengths int32 [N], scores float32 [N]"
        ),
        ids_doc=(
            "source_ids int32 [N, S] (source + EOS, right-padded with 0) -> "
            "ids int32 [N, L] (EOS included, 0 after it), lengths int32 [N], "
            "scores float32 [N] (summed log-probabilities)"
        ),
        state_doc=(
            "source_ids int32 [N, S] (source + EOS, right-padded with 0) -> "
            "start_ids int32 [N] (BOS) + state_* tensors"
        ),
    ),
}


class Endpoint(NamedTuple):
    """One signature: its name, function, input signature and description.

    `input_signature` is None for `step`: it is built from the traced state
    signature's outputs.
    """

    name: str
    fn: object
    input_signature: object
    doc: str


def check_model(model, task=None):
    """Raises a TypeError unless `model` is a `GenerativeModel` (of `task`)."""
    if not isinstance(model, GenerativeModel) or (task is not None and model.task != task):
        kind = f"{TASKS[task].kind} export" if task else "export"
        wanted = f" with task={task!r}" if task else ""
        raise TypeError(
            f"{kind} needs a keras_seq.models.GenerativeModel{wanted} "
            "(initial_state, step and the length limits); got "
            f"{type(model).__name__} (task={getattr(model, 'task', None)!r})."
        )
    if model.task not in TASKS:
        raise TypeError(
            f"{type(model).__name__}.task must be one of {sorted(TASKS)} to be "
            f"exported, got {model.task!r}."
        )


def spec(shape, dtype, name):
    """A named `tf.TensorSpec`."""
    return tf.TensorSpec(shape, dtype, name=name)


def flatten_state(state):
    """`{"state_<joined key>": leaf}` for the leaves of a state nest."""
    flat = keras.tree.flatten_with_path(state)
    names = [STATE_PREFIX + "_".join(str(p) for p in path) for path, _ in flat]
    if len(set(names)) != len(names):
        raise ValueError(f"state keys do not give unique names: {names}")
    return dict(zip(names, (leaf for _, leaf in flat)))


class StateLayout:
    """Remembers the structure of a model's state (recorded on first use)."""

    def __init__(self):
        self.structure = None
        self.names = None

    def record(self, state):
        """Flattens `state`; the first call records its structure and names."""
        flat = flatten_state(state)
        if self.structure is None:
            self.structure = keras.tree.map_structure(lambda _: 0, state)
            self.names = list(flat)
        return flat

    def pack(self, inputs):
        """The state nest from the `state_<key>` entries of `inputs`."""
        if self.structure is None:
            raise RuntimeError("the state layout is recorded by the state signature first")
        return keras.tree.pack_sequence_as(
            self.structure, [inputs[name] for name in self.names]
        )


def _source_words(sentences, ragged, source_tokenizer):
    """The source tokens a `<unk>` output may copy, string [N, S] padded with
    "": the vocabulary's token, or the word as written where it is unknown
    (word-level sources whose surface split has as many words), as
    `keras_seq.Translator._encode_line` builds them."""
    tokens = tf.gather(source_tokenizer.vocabulary(), ragged).to_tensor("")  # [N, S]
    if not isinstance(source_tokenizer, _WordModule):
        return tokens
    ids = ragged.to_tensor(0)
    surface = split_words(sentences, lowercase=False)
    same = tf.equal(surface.row_lengths(), ragged.row_lengths())[:, None]  # [N, 1]
    surface = surface.to_tensor("", shape=tf.shape(ids, out_type=tf.int64))
    return tf.where(tf.equal(ids, UNK_ID) & same, surface, tokens)


def _replace_unknown(out, copied, target_tokenizer):
    """The translations with each `<unk>` replaced by the source token it
    attends to most, detokenized like `keras_seq.Translator`: every token of
    the hypothesis but EOS, joined by the word rules."""
    ids = out["ids"]  # [N, L]
    vocab = target_tokenizer.vocabulary()
    size = tf.shape(vocab)[0]
    tokens = tf.gather(vocab, tf.where((ids >= 0) & (ids < size), ids, UNK_ID))
    alignment = tf.minimum(out["alignment"], tf.maximum(tf.shape(copied)[1] - 1, 0))
    source = tf.gather(copied, alignment, batch_dims=1)  # [N, L]
    tokens = tf.where(tf.equal(ids, UNK_ID), source, tokens)
    positions = tf.range(tf.shape(ids)[1])[None, :]
    keep = (positions < out["lengths"][:, None]) & tf.not_equal(ids, EOS_ID)
    return join_words(tf.ragged.boolean_mask(tokens, keep))


def _identity_outputs(outputs):
    # Distinct output tensors: no two signature outputs (or an output and an
    # input) share a tensor, which tf2onnx would otherwise merge or rename.
    return {name: tf.identity(value) for name, value in outputs.items()}


class ServingFunctions:
    """The serving functions of one `GenerativeModel`, for export and parity.

    Args:
        model: a `keras_seq.models.GenerativeModel`.
        max_length: int, the most tokens generated (EOS included); checked
            against `model.output_length_limit()`.
        strategy: `"greedy"`, a `keras_seq.decoding.Greedy` or `BeamSearch`.
        sampler: None or a `keras_seq.decoding.RandomSampler` (greedy only).
        task: optional, the task the caller expects (`"language_model"` /
            `"translation"`); another model is a TypeError.
        unk_replace: bool, the text signature of a translator with a
            word-level target tokenizer replaces each `<unk>` output by the
            source token it attends to most, as `keras_seq.Translator` does.

    Attributes:
        names: the `TaskSignatures` of the model's task.
        max_input: the longest input accepted (`model.input_length_limit`),
            or None.
        layout: the `StateLayout`, recorded when the state signature runs.

    Raises:
        TypeError: `model` is not a `GenerativeModel` (of `task`).
        ValueError: bad `max_length`, strategy or sampler.
    """

    def __init__(self, model, max_length, strategy="greedy", sampler=None, task=None,
                 unk_replace=False):
        check_model(model, task)
        self.unk_replace = bool(unk_replace) and model.supports_attention
        self.model = model
        self.task = model.task
        self.names = TASKS[model.task]
        self.max_length = model.check_output_length(max_length)
        self.strategy, self.sampler = decoding.check_decoding(strategy, sampler)
        self.max_input = model.input_length_limit(self.max_length)
        if self.max_input is not None and self.max_input < 1:
            raise ValueError(
                f"`max_length`={self.max_length} leaves no room for an input in "
                f"{type(model).__name__}."
            )
        self.layout = StateLayout()

    # -- pieces ---------------------------------------------------------------
    def validate(self, ids, fn_name, from_text, check_length=True, check_unknown=True):
        """`validation.validate_ids` with the model's vocabulary and limits."""
        what = self.names.text_input if from_text else f"{self.model.input_name} rows"
        return validation.validate_ids(
            ids, fn_name, what, self.model.input_vocab_size,
            from_text=from_text,
            max_tokens=self.max_input if check_length else None,
            max_note=self.names.length_note.format(max_length=self.max_length),
            check_unknown=check_unknown,
        )

    def start(self, ids):
        """`(state, start_ids int32 [N])` for `max_length` generated tokens."""
        state, start = self.model.start(ids, self.max_length)
        return state, tf.cast(start, tf.int32)

    def decode(self, ids):
        """The best hypothesis of `keras_seq.decoding.decode` over `model.step`."""
        state, start = self.start(ids)
        result = decoding.decode(
            self.model.step,
            state,
            start,
            end_id=self.model.end_id,
            max_length=self.max_length,
            strategy=self.strategy,
            sampler=self.sampler,
        )
        return {
            "ids": result.ids[:, 0],  # [N, L], the best hypothesis
            "lengths": result.lengths[:, 0],
            "scores": result.scores[:, 0],
        }

    def decode_aligned(self, ids):
        """`decode` plus `alignment` int32 [N, L]: for each output token, the
        source position it attends to most (the final EOS and padding
        excluded), as `keras_seq.Translator` picks the word to copy for `<unk>`."""
        state, start = self.start(ids)
        result = decoding.decode(
            self.model.step, state, start, end_id=self.model.end_id,
            max_length=self.max_length, strategy=self.strategy, sampler=self.sampler,
            return_attention=True,
        )
        attention = tf.cast(result.attention[:, 0], tf.float32)  # [N, L, S]
        real = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), axis=1) - 1  # [N]
        words = tf.range(tf.shape(attention)[2])[None, None, :] < real[:, None, None]
        attention = tf.where(words, attention, tf.constant(-1.0, tf.float32))
        return {
            "ids": result.ids[:, 0],
            "lengths": result.lengths[:, 0],
            "scores": result.scores[:, 0],
            "alignment": tf.argmax(attention, axis=-1, output_type=tf.int32),
        }

    def aligned_level(self, inputs):
        """The id-level signature plus `alignment` (not exported as a
        signature; the core of the ONNX text graph when `unk_replace`)."""
        ids = self.validate(inputs[self.model.input_name], self.names.ids, from_text=False)
        return _identity_outputs(self.decode_aligned(ids))

    # -- the signatures -------------------------------------------------------
    def id_level(self, inputs):
        """`generate_ids` / `translate_ids`: ids in, decoded ids out."""
        ids = self.validate(inputs[self.model.input_name], self.names.ids, from_text=False)
        return _identity_outputs(self.decode(ids))

    def state_level(self, inputs):
        """`initial_state` / `encode`: ids in, start ids and state tensors out."""
        ids = self.validate(inputs[self.model.input_name], self.names.state, from_text=False)
        state, start = self.start(ids)
        outputs = {"start_ids": start}
        outputs.update(self.layout.record(state))
        return _identity_outputs(outputs)

    def step(self, inputs):
        """`step`: tokens and state tensors in, logits and next state out."""
        tokens = validation.validate_tokens(
            inputs["tokens"], "step", self.model.output_vocab_size
        )
        logits, state = self.model.step(tokens, self.layout.pack(inputs))
        outputs = {"logits": tf.cast(logits, tf.float32)}
        for name, value in flatten_state(state).items():
            outputs[NEXT_PREFIX + name] = value
        return _identity_outputs(outputs)

    def text_level(self, inputs, modules):
        """`generate` / `translate`, tokenizing with the in-graph `modules`
        (the tokenizer, or the source and target tokenizers)."""
        if self.task == "translation":
            return self._translate_text(inputs, *modules)
        return self._generate_text(inputs, *modules)

    def _generate_text(self, inputs, tokenizer):
        ragged = tokenizer.encode(inputs["prompts"])  # int32 [N, None]
        ids = self.validate(ragged.to_tensor(), self.names.text, from_text=True)
        out = self.decode(ids)
        generated = tf.RaggedTensor.from_tensor(out["ids"], lengths=out["lengths"])
        full = tf.concat([ragged, generated], axis=1).to_tensor()
        outputs = {
            "generated": tokenizer.decode(out["ids"]),
            "text": tokenizer.decode(full),
        }
        outputs.update(out)
        return _identity_outputs(outputs)

    def _translate_text(self, inputs, source_tokenizer, target_tokenizer):
        ragged = source_tokenizer.encode(inputs["sentences"])  # [N, None]
        # Emptiness is checked before EOS is appended, the length after.
        checked = self.validate(
            ragged.to_tensor(), self.names.text, from_text=True, check_length=False
        )
        eos = tf.fill([tf.shape(checked)[0], 1], tf.constant(EOS_ID, tf.int32))
        with tf.control_dependencies([checked]):
            ids = tf.concat([ragged, tf.RaggedTensor.from_tensor(eos)], axis=1)
        ids = ids.to_tensor()  # source + EOS, right-padded
        if self.max_input is not None:
            ids = self.validate(ids, self.names.text, from_text=True, check_unknown=False)
        if not self.unk_replace or not isinstance(target_tokenizer, _WordModule):
            out = self.decode(ids)
            outputs = {"translations": target_tokenizer.decode(out["ids"])}
            outputs.update(out)
            return _identity_outputs(outputs)
        out = self.decode_aligned(ids)
        copied = _source_words(inputs["sentences"], ragged, source_tokenizer)
        outputs = {"translations": _replace_unknown(out, copied, target_tokenizer)}
        outputs.update({k: out[k] for k in ("ids", "lengths", "scores")})
        return _identity_outputs(outputs)

    def id_signature(self):
        """The input signature of the id-level and state signatures."""
        name = self.model.input_name
        return [{name: spec([None, None], tf.int32, name)}]

    def endpoints(self, modules):
        """The signatures to export, `serving_default` (the text one) first.

        Args:
            modules: the in-graph tokenizer modules (`tokenizer.as_module()`):
                one for a language model, source and target for a translator.

        Returns:
            A list of `Endpoint`s, in the order they are traced.
        """
        names = self.names
        text_signature = [{names.text_input: spec([None], tf.string, names.text_input)}]
        return [
            Endpoint(
                names.text, lambda inputs: self.text_level(inputs, modules),
                text_signature, names.text_doc,
            ),
            Endpoint(names.state, self.state_level, self.id_signature(), names.state_doc),
            Endpoint("step", self.step, None, _STEP_DOC),
            Endpoint(names.ids, self.id_level, self.id_signature(), names.ids_doc),
        ]
