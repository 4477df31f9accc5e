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

The text and id-level signatures also take the decoding settings that may
vary per request as scalar inputs (shape `[]`, one value per call): a
beam-search export (every translator) `beam_size`, `length_penalty`,
`n_best` and `max_length`; a greedy or sampling export (language models)
`temperature`, `top_k`, `top_p`, `seed` and `max_length`. A SavedModel
signature has no optional inputs, so a raw caller sends them all (with the
values export.json's `decoding.inputs` lists as defaults and ranges), or
calls `serving_default`: the text signature without them, decoding with the
export's settings. `keras_seq.serving` fills in the defaults a request
leaves out. Each value is checked in the graph (`tf.debugging.Assert`,
naming the input); the ONNX graphs, which drop asserts, rely on the server's
checks. `beam_size` is dynamic up to `max_beam_size`, fixed at export; 1 is
greedy search (as in `keras_seq.decoding.DecodeOptions`: no length
penalty). Beam-search signatures return the best hypothesis as before plus
the n-best list: `nbest_ids` `[N, n_best, L]`, `nbest_lengths`,
`nbest_scores` `[N, n_best]` (and `nbest_translations` `[N, n_best]`);
`-inf` scores mark padding entries. Sampling: `top_k` 0 keeps every token,
`top_p` 1 disables nucleus filtering, `seed` -1 draws a fresh seed per call;
a greedy export defaults to `top_k` 1, which is greedy decoding.

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
from keras_seq.decoding.tensor_utils import is_runtime
from keras_seq.decoding.tensor_utils import runtime_scalar
from keras_seq.export import validation
from keras_seq.models.generative import GenerativeModel
from keras_seq.text import EOS_ID
from keras_seq.utils import check_positive_int
from keras_seq.text import UNK_ID
from keras_seq.text.modules import _WordModule
from keras_seq.text.splitting import join_words

__all__ = ["TASKS", "Endpoint", "ServingFunctions", "check_model", "flatten_state"]

STATE_PREFIX = "state_"
# `step` returns `next_state_<key>` for its input `state_<key>`: ONNX graphs
# cannot have an input and an output of the same name.
NEXT_PREFIX = "next_"

DEFAULT_MAX_BEAM_SIZE = 16
"""The largest beam a request may ask for, unless the export sets another."""

# The per-request decoding inputs: name -> (dtype, description).
SETTINGS = {
    "beam_size": (tf.int32, "hypotheses kept per input; 1 is greedy search"),
    "length_penalty": (tf.float32, "the GNMT length penalty alpha of beam search"),
    "n_best": (tf.int32, "hypotheses returned per input (nbest_* outputs), <= beam_size"),
    "temperature": (tf.float32, "sampling temperature"),
    "top_k": (tf.int32, "sample among the k most likely tokens; 0: all; 1: greedy"),
    "top_p": (tf.float32, "nucleus sampling mass; 1: no filter"),
    "seed": (tf.int64, "random seed; -1: a fresh one per call"),
    "max_length": (tf.int32, "the most tokens generated"),
}
SAMPLING_SETTINGS = ("temperature", "top_k", "top_p", "seed")

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


def _decode_nbest(tokenizer, nbest_ids):
    """Texts `[N, n]` of the n-best ids `[N, n, L]`."""
    shape = tf.shape(nbest_ids)
    texts = tokenizer.decode(tf.reshape(nbest_ids, [-1, shape[2]]))
    return tf.reshape(texts, shape[:2])
def _source_words(sentences, ragged, source_tokenizer):
    """The source tokens a `<unk>` output may copy, string [N, S] padded with
    "": the vocabulary's token, or the word as written where it is unknown
    (word-level sources whose surface split has as many words), as
    `keras_seq.Translator._encode_line` builds them."""
    tokens = tf.gather(source_tokenizer.vocabulary(), ragged).to_tensor("")  # [N, S]
    if not isinstance(source_tokenizer, _WordModule):
        return tokens
    ids = ragged.to_tensor(0)
    surface = source_tokenizer.split_surface(sentences)
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
        max_beam_size: beam search only: the largest `beam_size` a call may
            ask for (default `max(16, strategy.beam_size)`).
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
                 max_beam_size=None, unk_replace=False):
        check_model(model, task)
        self.unk_replace = bool(unk_replace) and model.supports_attention
        self.model = model
        self.task = model.task
        self.names = TASKS[model.task]
        self.max_length = model.check_output_length(max_length)
        self.strategy, self.sampler = decoding.check_decoding(strategy, sampler)
        self.beam = isinstance(self.strategy, decoding.BeamSearch)
        self.max_beam_size = None
        if self.beam:
            if max_beam_size is None:
                max_beam_size = max(DEFAULT_MAX_BEAM_SIZE, self.strategy.beam_size)
            self.max_beam_size = check_positive_int("max_beam_size", max_beam_size)
            if self.max_beam_size < self.strategy.beam_size:
                raise ValueError(
                    f"`max_beam_size` ({self.max_beam_size}) is below the export's "
                    f"beam size ({self.strategy.beam_size})."
                )
        elif max_beam_size is not None:
            raise ValueError("`max_beam_size` needs a beam-search export.")
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

    def settings(self):
        """export.json's `decoding.inputs`: each per-request input's dtype,
        default and range (JSON Schema's keywords; `maximumInput` names the
        input it may not exceed)."""
        info = {}
        if self.beam:
            strategy = self.strategy
            info["beam_size"] = {
                "default": strategy.beam_size, "minimum": 1, "maximum": self.max_beam_size,
            }
            info["length_penalty"] = {"default": strategy.length_penalty, "minimum": 0.0}
            info["n_best"] = {
                "default": strategy.num_return, "minimum": 1,
                "maximum": self.max_beam_size, "maximumInput": "beam_size",
            }
        else:
            sampler = self.sampler or decoding.RandomSampler(top_k=1)
            info["temperature"] = {"default": sampler.temperature, "exclusiveMinimum": 0.0}
            info["top_k"] = {"default": sampler.top_k or 0, "minimum": 0}
            if self.sampler is None:
                # A request that sets another sampling input samples from all tokens.
                info["top_k"]["samplingDefault"] = 0
            info["top_p"] = {
                "default": 1.0 if sampler.top_p is None else sampler.top_p,
                "exclusiveMinimum": 0.0, "maximum": 1.0,
            }
            seed = -1 if sampler.seed is None else sampler.seed
            info["seed"] = {"default": seed, "minimum": -1, "maximum": 2**63 - 1}
        info["max_length"] = {"default": self.max_length, "minimum": 1, "maximum": self.max_length}
        for name, entry in info.items():
            dtype, description = SETTINGS[name]
            entry.update(dtype=dtype.name, description=description)
        return info

    def id_level_signature(self):
        """The input signature of the id-level signature (and `aligned_level`): ids and the settings."""
        return [dict(self.id_signature()[0], **self.settings_signature())]

    def settings_signature(self):
        """The per-request inputs of the text and id-level signatures."""
        return {name: spec([], SETTINGS[name][0], name) for name in self.settings()}

    def decoding(self, inputs):
        """`(strategy, sampler, max_length)` of one call: the export's settings,
        replaced by the per-request scalars `inputs` holds."""
        max_length = inputs.get("max_length", self.max_length)
        if self.beam:
            beam_size = inputs.get("beam_size", self.strategy.beam_size)
            if is_runtime(beam_size):
                beam_size = runtime_scalar(
                    beam_size, "beam_size", tf.int32,
                    lambda v: (v >= 1) & (v <= self.max_beam_size),
                    f"an integer in [1, {self.max_beam_size}]",
                )
            strategy = decoding.BeamSearch(
                beam_size,
                inputs.get("length_penalty", self.strategy.length_penalty),
                inputs.get("n_best", self.strategy.num_return),
            )
            # Beam size 1 is greedy search, as in `DecodeOptions`.
            if is_runtime(strategy.beam_size) or is_runtime(strategy.length_penalty):
                strategy.length_penalty = tf.where(
                    tf.equal(strategy.beam_size, 1), 0.0, strategy.length_penalty
                )
            elif strategy.beam_size == 1:
                strategy.length_penalty = 0.0
            return strategy, None, max_length
        if not any(name in inputs for name in SAMPLING_SETTINGS):
            return self.strategy, self.sampler, max_length
        defaults = self.settings()

        def get(name, off):  # Python sentinels for "off" become None
            value = inputs.get(name, defaults[name]["default"])
            return None if not is_runtime(value) and value == off else value

        sampler = decoding.RandomSampler(
            inputs.get("temperature", defaults["temperature"]["default"]),
            get("top_k", 0), get("top_p", 1.0), get("seed", -1),
        )
        return self.strategy, sampler, max_length

    def decode(self, ids, inputs=None, aligned=False):
        """The best hypothesis of `keras_seq.decoding.decode` over `model.step`
        (and, for beam search with an `n_best` input, the n-best list), with
        the settings of `decoding(inputs)`.

        With `aligned`, also `alignment` int32 [N, L] (and `nbest_alignment`
        [N, n, L]): for each output token, the source position it attends to
        most (the final EOS and padding excluded), as `keras_seq.Translator`
        picks the word to copy for `<unk>`.
        """
        strategy, sampler, max_length = self.decoding(inputs or {})
        state, start = self.start(ids)
        result = decoding.decode(
            self.model.step,
            state,
            start,
            end_id=self.model.end_id,
            max_length=max_length,
            max_length_bound=self.max_length,
            strategy=strategy,
            sampler=sampler,
            return_attention=aligned,
        )
        out = {
            "ids": result.ids[:, 0],  # [N, L], the best hypothesis
            "lengths": result.lengths[:, 0],
            "scores": result.scores[:, 0],
        }
        nbest = self.beam and "n_best" in (inputs or {})  # a signature taking n_best
        if nbest:
            out.update(
                nbest_ids=result.ids,  # [N, n_best, L]
                nbest_lengths=result.lengths,
                nbest_scores=result.scores,
            )
        if aligned:
            attention = tf.cast(result.attention, tf.float32)  # [N, R, L, S]
            real = tf.reduce_sum(tf.cast(tf.not_equal(ids, 0), tf.int32), axis=1) - 1  # [N]
            words = tf.range(tf.shape(attention)[3])[None, None, None, :] < real[:, None, None, None]
            attention = tf.where(words, attention, tf.constant(-1.0, tf.float32))
            alignment = tf.argmax(attention, axis=-1, output_type=tf.int32)  # [N, R, L]
            out["alignment"] = alignment[:, 0]
            if nbest:
                out["nbest_alignment"] = alignment
        return out

    def decode_aligned(self, ids, inputs=None):
        """`decode(ids, inputs, aligned=True)`: with `alignment` [N, L]."""
        return self.decode(ids, inputs, aligned=True)

    def aligned_level(self, inputs):
        """The id-level signature plus `alignment` (not exported as a
        signature; the core of the ONNX text graph when `unk_replace`), with
        the same per-request inputs (`id_level_signature`)."""
        ids = self.validate(inputs[self.model.input_name], self.names.ids, from_text=False)
        return _identity_outputs(self.decode_aligned(ids, inputs))

    # -- the signatures -------------------------------------------------------
    def id_level(self, inputs):
        """`generate_ids` / `translate_ids`: ids in, decoded ids out."""
        ids = self.validate(inputs[self.model.input_name], self.names.ids, from_text=False)
        return _identity_outputs(self.decode(ids, inputs))

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
        out = self.decode(ids, inputs)
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
            out = self.decode(ids, inputs)
            outputs = {"translations": target_tokenizer.decode(out["ids"])}
            if "nbest_ids" in out:
                outputs["nbest_translations"] = _decode_nbest(target_tokenizer, out["nbest_ids"])
            outputs.update(out)
            return _identity_outputs(outputs)
        out = self.decode_aligned(ids, inputs)
        copied = _source_words(inputs["sentences"], ragged, source_tokenizer)
        outputs = {"translations": _replace_unknown(out, copied, target_tokenizer)}
        if "nbest_ids" in out:  # each hypothesis with its own alignment: [N * n] -> [N, n]
            shape = tf.shape(out["nbest_ids"])
            flat = {"ids": tf.reshape(out["nbest_ids"], [-1, shape[2]]),
                    "lengths": tf.reshape(out["nbest_lengths"], [-1]),
                    "alignment": tf.reshape(out.pop("nbest_alignment"), [-1, shape[2]])}
            texts = _replace_unknown(flat, tf.repeat(copied, shape[1], axis=0), target_tokenizer)
            outputs["nbest_translations"] = tf.reshape(texts, shape[:2])
        outputs.update({k: v for k, v in out.items() if k != "alignment"})
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
        text_input = {names.text_input: spec([None], tf.string, names.text_input)}
        settings = self.settings_signature()
        settings_doc = "; per-request scalars: " + ", ".join(settings)
        if self.beam:
            settings_doc += " (+ nbest_* outputs)"

        def text_fn(inputs):
            return self.text_level(inputs, modules)

        return [
            Endpoint(
                "serving_default", text_fn, [text_input],
                f"{names.text} with the export's decoding settings: {names.text_doc}",
            ),
            Endpoint(names.text, text_fn, [dict(text_input, **settings)],
                     names.text_doc + settings_doc),
            Endpoint(names.state, self.state_level, self.id_signature(), names.state_doc),
            Endpoint("step", self.step, None, _STEP_DOC),
            Endpoint(names.ids, self.id_level, self.id_level_signature(),
                     names.ids_doc + settings_doc),
        ]
