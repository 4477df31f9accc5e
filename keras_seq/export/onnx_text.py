"""String in, string out ONNX graphs: the text signatures of an export.

`write_text_graph` builds `translate.onnx` / `generate.onnx`: the word
tokenizer's splitting, lowercasing and vocabulary lookup, then the id-level
graph (any `.onnx` with the id-level signature's input and output names:
`translate_ids.onnx`, or a graph that also gives `alignment`), then the
detokenization, all in one graph that onnxruntime runs with the string ops
of onnxruntime-extensions (`StringRegexReplace`, `StringSplit`,
`StringRegexSplitWithOffsets`, `StringJoin`, `StringEqual`) and ONNX's own ops (`LabelEncoder`
for the vocabulary). It gives the text of the SavedModel's text signature:

- splitting: the regular expressions of `keras_seq.text.splitting.split_words`,
  run by the same RE2 library TensorFlow uses;
- lowercasing: per character, through a table built at export time with
  `tf.strings.lower` itself (so it is the same Unicode mapping), plus the
  Greek final sigma, the one context rule of Unicode lowercasing that
  `tf.strings.lower` applies;
- detokenization: `tokenizer.decode` (stop at EOS, drop PAD and BOS, join by
  the word rules), or for a translator with `unk_replace` the `<unk>`
  replacement of `keras_seq.Translator` (the most attended source token).

Word tokenizers only; `supports(tokenizer)` says whether a tokenizer's text
graph can be built. Sessions need the extensions library registered
(`onnx.make_session` does it when the graph's metadata says `"extensions"`).

Example:

```python
write_text_graph("onnx/translate_ids.onnx", "onnx/translate.onnx", "translation",
                 [fr_tokenizer, en_tokenizer], metadata={...})
```
"""

import functools
import json

import numpy as np

from keras_seq import extras
from keras_seq.text.splitting import _ELISION_SPLIT
from keras_seq.text.splitting import _JOINERS
from keras_seq.text.splitting import _NEWLINE_MARK
from keras_seq.text.splitting import _PLACEHOLDERS
from keras_seq.text.splitting import _WORD_DETOKENIZE_RULES
from keras_seq.text.vocabulary import BOS_ID
from keras_seq.text.vocabulary import EOS_ID
from keras_seq.text.vocabulary import PAD_ID
from keras_seq.text.vocabulary import UNK_ID

__all__ = ["CONTRIB", "refusal_messages", "supports", "write_text_graph"]

CONTRIB = "ai.onnx.contrib"  # the onnxruntime-extensions domain
_ML = "ai.onnx.ml"
# Greek capital sigma lowercases to final sigma at the end of a word.
_FINAL_SIGMA = (r"(\pL\pM*)\x{03A3}(\pM*)([^\pL\pM]|$)", "\\1\u03c2\\2\\3")


def supports(tokenizer):
    """Whether the text graph can tokenize with `tokenizer` (word tokenizers)."""
    return getattr(tokenizer, "type_name", None) == "word"


@functools.lru_cache(maxsize=1)
def lowercase_table():
    """`{character: lowercase}` for every code point `tf.strings.lower` changes."""
    import tensorflow as tf

    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    lowered = tf.strings.lower(tf.constant(chars), encoding="utf-8").numpy()
    return {c: low.decode("utf-8") for c, low in zip(chars, lowered) if low.decode("utf-8") != c}


class _Graph:
    """Appends nodes with fresh names; `op` returns the output name(s)."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes = []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"text/{hint}_{self.count}"

    def const(self, value, hint="const"):
        array = np.asarray(value)
        if array.dtype.kind in "OUS":
            array = np.asarray(value, dtype=object)
        out = self.name(hint)
        tensor = self.onnx.numpy_helper.from_array(array, out)
        self.nodes.append(self.onnx.helper.make_node("Constant", [], [out], value=tensor))
        return out

    def op(self, op_type, inputs, outputs=1, domain="", hint=None, **attrs):
        names = [self.name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(
            self.onnx.helper.make_node(op_type, list(inputs), names, domain=domain, **attrs)
        )
        return names[0] if outputs == 1 else names

    def replace(self, strings, pattern, rewrite):
        return self.op("StringRegexReplace",
                       [strings, self.const(pattern.encode()), self.const(rewrite.encode())],
                       domain=CONTRIB, global_replace=1)

    def cast(self, x, to):
        return self.op("Cast", [x], to=to)


def _split_words(g, strings, keep_newlines, split_elisions):
    """`split_words(strings, lowercase=False, keep_newlines, split_elisions)` as
    sparse tokens: `(indices int64 [K, 2], tokens string [K], shape int64 [2])`."""
    s = g.replace(strings, _PLACEHOLDERS, "")
    s = g.replace(s, "\u2019", "'")
    s = g.replace(s, r"\r\n?", "\n")
    s = g.replace(s, r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]", " ")
    s = g.replace(s, r"\p{Cf}", "")
    if split_elisions:
        s = g.replace(s, *_ELISION_SPLIT)
    for _, mark, pattern in _JOINERS:
        for _ in range(2):
            s = g.replace(s, pattern, "\\1" + mark + "\\2")
    if keep_newlines:
        s = g.replace(s, "\n", " " + _NEWLINE_MARK + " ")
    s = g.replace(s, r"[\pP\pS]", " \\0 ")
    for char, mark, _ in _JOINERS:
        s = g.replace(s, mark, char)
    s = g.replace(s, r"[\s\p{Z}]+", " ")
    indices, tokens, shape = g.op(
        "StringSplit", [s, g.const(b" "), g.const(True)], outputs=3, domain=CONTRIB
    )
    if keep_newlines:
        tokens = g.replace(tokens, "^" + _NEWLINE_MARK + "$", "\n")
    return indices, tokens, shape


def _row_of(g, row_splits, count):
    """For each of `count` flat positions, its row under `row_splits` [R + 1]."""
    ends = g.op("Slice", [row_splits, g.const([1]), g.const([2**62])])
    position = g.op("Range", [g.const(0, ), count, g.const(1)])
    after = g.op("LessOrEqual", [g.op("Unsqueeze", [ends, g.const([0])]),
                                 g.op("Unsqueeze", [position, g.const([1])])])  # [C, R]
    return g.op("ReduceSum", [g.cast(after, 7), g.const([1])], keepdims=0)


def _lowercase(g, tokens):
    """Lowercases string [K] like `tf.strings.lower(encoding="utf-8")`."""
    table = lowercase_table()
    s = g.replace(tokens, *_FINAL_SIGMA)
    chars, _, _, splits = g.op(
        "StringRegexSplitWithOffsets", [s, g.const(b"(.)"), g.const(b"(.)")],
        outputs=4, domain=CONTRIB,
    )
    keys = sorted(table)
    mapped = g.op("LabelEncoder", [chars], domain=_ML, keys_strings=keys,
                  values_strings=[table[k] for k in keys], default_string="")
    changed = g.op("LabelEncoder", [chars], domain=_ML, keys_strings=keys,
                   values_int64s=[1] * len(keys), default_int64=0)
    chars = g.op("Where", [g.cast(changed, 9), mapped, chars])
    count = g.op("Shape", [chars])
    rows = _row_of(g, splits, g.op("Squeeze", [count, g.const([0])]))
    starts = g.op("Gather", [splits, rows])
    cols = g.op("Sub", [g.op("Range", [g.const(0), g.op("Squeeze", [count, g.const([0])]),
                                       g.const(1)]), starts])
    width = g.op("ReduceMax", [g.op("Concat", [g.op("Sub", [
        g.op("Slice", [splits, g.const([1]), g.const([2**62])]),
        g.op("Slice", [splits, g.const([0]), g.const([-1])])]), g.const([0])], axis=0)],
        keepdims=1)
    n = g.op("Sub", [g.op("Shape", [splits]), g.const([1])])
    dense = _scatter(g, g.op("Concat", [n, width], axis=0), "", rows, cols, chars)
    return g.op("StringJoin", [dense, g.const(b""), g.const(np.int64(1))], domain=CONTRIB)


def _scatter(g, shape, fill, rows, cols, values):
    """A [shape] tensor of `fill` with `values` at (`rows`, `cols`)."""
    base = g.op("Expand", [g.const(fill), shape])
    where = g.op("Concat", [g.op("Unsqueeze", [rows, g.const([1])]),
                            g.op("Unsqueeze", [cols, g.const([1])])], axis=1)
    return g.op("ScatterND", [base, where, values])


def _lookup(g, tokens, vocabulary):
    """int32 [K] ids of string [K] tokens (unknown ones: UNK_ID)."""
    ids = g.op("LabelEncoder", [tokens], domain=_ML, keys_strings=list(vocabulary),
               values_int64s=list(range(len(vocabulary))), default_int64=UNK_ID)
    return g.cast(ids, 6)


def _join(g, tokens, keep, word):
    """Joins the kept tokens of string [N, W] into string [N]: by the word
    rules (`join_words`) when `word`, else without separator."""
    positions = g.op("Sub", [g.op("CumSum", [g.cast(keep, 7), g.const(np.int64(1))]),
                             g.const(np.int64(1))])
    where = g.op("Transpose", [g.op("NonZero", [keep])], perm=[1, 0])  # [K, 2]
    values = g.op("GatherND", [tokens, where])
    cols = g.op("GatherND", [positions, where])
    rows = g.op("Squeeze", [g.op("Slice", [where, g.const([0]), g.const([1]), g.const([1])]),
                            g.const([1])])
    dense = _scatter(g, g.op("Shape", [tokens]), "", rows, cols, values)
    text = g.op("StringJoin", [dense, g.const(b" " if word else b""), g.const(np.int64(1))],
                domain=CONTRIB)
    if not word:
        return text
    text = g.replace(text, " +$", "")  # the separators of the empty tail
    for pattern, rewrite in _WORD_DETOKENIZE_RULES:
        text = g.replace(text, pattern, rewrite)
    return text


def _decode_keep(g, ids, lengths=None):
    """`tokenizer.decode`'s tokens to keep: before the first EOS, not PAD or BOS."""
    eos = g.cast(g.op("Equal", [ids, g.const(np.int32(EOS_ID))]), 6)
    before = g.op("Equal", [g.op("CumSum", [eos, g.const(np.int64(1))]), g.const(np.int32(0))])
    real = g.op("And", [g.op("Not", [g.op("Equal", [ids, g.const(np.int32(PAD_ID))])]),
                        g.op("Not", [g.op("Equal", [ids, g.const(np.int32(BOS_ID))])])])
    return g.op("And", [before, real])


def _vocab_tokens(g, ids, vocabulary):
    """The vocabulary's text of int32 ids; ids outside it read "<unk>"."""
    size = np.int32(len(vocabulary))
    inside = g.op("And", [g.op("GreaterOrEqual", [ids, g.const(np.int32(0))]),
                          g.op("Less", [ids, g.const(size)])])
    ids = g.op("Where", [inside, ids, g.const(np.int32(UNK_ID))])
    return g.op("Gather", [g.const(np.asarray(vocabulary, dtype=object)), ids])


def _tokenize(g, strings, tokenizer):
    """Sparse tokens of `strings`: `(rows, cols, surface, lowered, ids, n, width)`."""
    config = tokenizer.get_config()
    indices, surface, shape = _split_words(g, strings, config.get("keep_newlines", False),
                                           config.get("split_elisions", False))
    lowered = _lowercase(g, surface) if config.get("lowercase", True) else surface
    ids = _lookup(g, lowered, tokenizer.vocabulary)
    rows = g.op("Squeeze", [g.op("Slice", [indices, g.const([0]), g.const([1]), g.const([1])]),
                            g.const([1])])
    cols = g.op("Squeeze", [g.op("Slice", [indices, g.const([1]), g.const([2]), g.const([1])]),
                            g.const([1])])
    n = g.op("Slice", [shape, g.const([0]), g.const([1])])
    width = g.op("Slice", [shape, g.const([1]), g.const([2])])
    return rows, cols, surface, ids, n, width


def _row_lengths(g, rows, n):
    """int64 [N]: how many of the flat `rows` fall in each row."""
    every = g.op("Range", [g.const(np.int64(0)), g.op("Squeeze", [n, g.const([0])]),
                           g.const(np.int64(1))])
    hits = g.op("Equal", [g.op("Unsqueeze", [rows, g.const([1])]),
                          g.op("Unsqueeze", [every, g.const([0])])])  # [K, N]
    return g.op("ReduceSum", [g.cast(hits, 7), g.const([0])], keepdims=0)


def refusal_messages(fn_name, what, max_tokens, note=""):
    """`{code: message}` of the text graph's `refusals` output, worded as the
    SavedModel's assertions (`keras_seq.export.validation`)."""
    return {
        "1": f"{fn_name}: {what} at batch index {{rows}} are empty (no tokens after "
             "tokenization); send non-empty text",
        "2": f"{fn_name}: {what} at batch index {{rows}} contain only unknown tokens "
             f"(<unk>, id {UNK_ID}: not in the vocabulary); the model cannot condition on them",
        "3": f"{fn_name}: {what} at batch index {{rows}} are longer than the {max_tokens} "
             f"tokens the model accepts{note}",
    }


def _refusals(g, rows, ids, n, lengths, extra, max_tokens):
    """int32 [N]: 0, or why the row is refused (1 empty, 2 only unknown
    tokens, 3 longer than `max_tokens` with `extra` more tokens)."""
    known = g.cast(g.op("Not", [g.op("Equal", [ids, g.const(np.int32(UNK_ID))])]), 7)
    every = g.op("Range", [g.const(np.int64(0)), g.op("Squeeze", [n, g.const([0])]),
                           g.const(np.int64(1))])
    hits = g.cast(g.op("Equal", [g.op("Unsqueeze", [rows, g.const([1])]),
                                 g.op("Unsqueeze", [every, g.const([0])])]), 7)  # [K, N]
    known = g.op("ReduceSum", [g.op("Mul", [hits, g.op("Unsqueeze", [known, g.const([1])])]),
                               g.const([0])], keepdims=0)
    code = g.const(np.int32(0))
    if max_tokens is not None:
        long = g.op("Greater", [g.op("Add", [lengths, g.const(np.int64(extra))]),
                                g.const(np.int64(max_tokens))])
        code = g.op("Where", [long, g.const(np.int32(3)), code])
    code = g.op("Where", [g.op("Equal", [known, g.const(np.int64(0))]), g.const(np.int32(2)), code])
    empty = g.op("Equal", [lengths, g.const(np.int64(0))])
    return g.op("Where", [empty, g.const(np.int32(1)), code])


def _translation_graph(g, tokenizers, aligned, unk_replace, max_tokens):
    """Pre and post nodes of `translate`: returns (core feeds, post function)."""
    source, target = tokenizers
    rows, cols, surface, ids, n, width = _tokenize(g, "sentences", source)
    lengths = _row_lengths(g, rows, n)
    refusals = _refusals(g, rows, ids, n, lengths, 1, max_tokens)
    shape = g.op("Concat", [n, g.op("Add", [width, g.const([1])])], axis=0)
    source_ids = _scatter(g, shape, np.int32(0), rows, cols, ids)
    every = g.op("Range", [g.const(np.int64(0)), g.op("Squeeze", [n, g.const([0])]),
                           g.const(np.int64(1))])
    eos = g.op("Expand", [g.const(np.int32(EOS_ID)), n])
    source_ids = g.op("ScatterND", [source_ids, g.op("Concat", [
        g.op("Unsqueeze", [every, g.const([1])]), g.op("Unsqueeze", [lengths, g.const([1])])],
        axis=1), eos])
    copied = None
    if aligned:
        # The tokens `Translator` copies: the word as written where unknown,
        # else the vocabulary's token.
        text = _vocab_tokens(g, ids, source.vocabulary)
        unknown = g.op("Equal", [ids, g.const(np.int32(UNK_ID))])
        if source.get_config().get("keep_newlines", False):
            # Translator splits the surface without newlines: rows holding
            # one have other lengths there, and copy no surface word.
            newline = g.cast(g.op("StringEqual", [surface, g.const(b"\n")], domain=CONTRIB), 7)
            per_row = _scatter(g, shape, np.int64(0), rows, cols, newline)
            clean = g.op("Equal", [g.op("ReduceMax", [per_row], axes=[1], keepdims=0),
                                   g.const(np.int64(0))])
            unknown = g.op("And", [unknown, g.op("Gather", [clean, rows])])
        text = g.op("Where", [unknown, surface, text])
        copied = _scatter(g, shape, "", rows, cols, text)  # [N, S + 1]

    replace = aligned and unk_replace

    def texts(ids_out, lengths, alignment, copied):
        """string [M] of the hypotheses ids_out [M, L] (copied: [M, S + 1])."""
        tokens = _vocab_tokens(g, ids_out, target.vocabulary)
        if not replace:
            return _join(g, tokens, _decode_keep(g, ids_out), supports(target))
        last = g.op("Sub", [g.op("Slice", [g.op("Shape", [copied]), g.const([1]), g.const([2])]),
                            g.const([1])])
        alignment = g.op("Min", [g.cast(alignment, 7), last])
        picked = g.op("GatherElements", [copied, alignment], axis=1)
        unk = g.op("Equal", [ids_out, g.const(np.int32(UNK_ID))])
        tokens = g.op("Where", [unk, picked, tokens])
        length = g.op("Shape", [ids_out], start=1, end=2)
        positions = g.op("Range", [g.const(np.int32(0)),
                                   g.cast(g.op("Squeeze", [length, g.const([0])]), 6),
                                   g.const(np.int32(1))])
        within = g.op("Less", [g.op("Unsqueeze", [positions, g.const([0])]),
                               g.op("Unsqueeze", [lengths, g.const([1])])])
        keep = g.op("And", [within, g.op("Not", [
            g.op("Equal", [ids_out, g.const(np.int32(EOS_ID))])])])
        return _join(g, tokens, keep, True)

    def post(out):
        if "nbest_ids" not in out:
            return {"translations": texts(out["ids"], out["lengths"], out.get("alignment"),
                                          copied)}
        # The N * R hypotheses of the n-best lists, each with its alignment,
        # detokenized once: the best (the `ids`) is the first of each row.
        shape = g.op("Shape", [out["nbest_ids"]])
        rows = g.op("Slice", [shape, g.const([0]), g.const([2])])  # [N, R]
        flat = g.op("Concat", [g.const([-1]), g.op("Slice", [shape, g.const([2]),
                                                             g.const([3])])], axis=0)
        alignment = copies = None
        if replace:
            alignment = g.op("Reshape", [out["nbest_alignment"], flat])
            width = g.op("Shape", [copied], start=1, end=2)
            copies = g.op("Reshape", [
                g.op("Expand", [g.op("Unsqueeze", [copied, g.const([1])]),
                                g.op("Concat", [rows, width], axis=0)]),
                g.op("Concat", [g.const([-1]), width], axis=0)])
        nbest = g.op("Reshape", [texts(g.op("Reshape", [out["nbest_ids"], flat]),
                                       g.op("Reshape", [out["nbest_lengths"], g.const([-1])]),
                                       alignment, copies), rows])
        return {"translations": g.op("Gather", [nbest, g.const(np.int64(0))], axis=1),
                "nbest_translations": nbest}

    return {"source_ids": source_ids}, post, refusals


def _generation_graph(g, tokenizers, max_tokens):
    """Pre and post nodes of `generate`."""
    (tokenizer,) = tokenizers
    rows, cols, _, ids, n, width = _tokenize(g, "prompts", tokenizer)
    refusals = _refusals(g, rows, ids, n, _row_lengths(g, rows, n), 0, max_tokens)
    shape = g.op("Concat", [n, width], axis=0)
    prompt_ids = _scatter(g, shape, np.int32(0), rows, cols, ids)
    word = supports(tokenizer)

    def post(out):
        ids_out = out["ids"]
        keep = _decode_keep(g, ids_out)
        tokens = _vocab_tokens(g, ids_out, tokenizer.vocabulary)
        prompt_keep = g.op("Not", [g.op("Equal", [prompt_ids, g.const(np.int32(PAD_ID))])])
        both = g.op("Concat", [prompt_ids, ids_out], axis=1)
        all_keep = g.op("And", [g.op("Concat", [prompt_keep, keep], axis=1),
                                _decode_keep(g, both)])
        return {
            "generated": _join(g, tokens, keep, word),
            "text": _join(g, _vocab_tokens(g, both, tokenizer.vocabulary), all_keep, word),
        }

    return {"prompt_ids": prompt_ids}, post, refusals


def write_text_graph(core_path, path, task, tokenizers, metadata, *, unk_replace=False,
                     max_tokens=None):
    """Writes the string-in, string-out graph of an export.

    Args:
        core_path: the id-level `.onnx` (input `source_ids` / `prompt_ids`;
            outputs `ids`, `lengths`, `scores`, and `alignment` for a
            translator's `<unk>` replacement).
        path: the `.onnx` file to write.
        task: `"translation"` or `"language_model"`.
        tokenizers: `[source, target]` or `[tokenizer]`, fitted word tokenizers.
        metadata: JSON-ready dict stored as the `keras_seq.export` metadata
            entry (`"extensions": true` is added).
        unk_replace: replace `<unk>` outputs by the most attended source
            token (needs `alignment` from the core).
        max_tokens: the longest input the model accepts (EOS included), or None.

    The graph also outputs `refusals` int32 [N]: 0, or why the SavedModel's
    text signature would refuse the row (the codes of `refusal_messages`;
    the ONNX server answers them with a 400), the core's `ids`, `lengths`,
    `scores` and, where the core has them (a beam search's `n_best` input),
    `nbest_ids`, `nbest_lengths`, `nbest_scores` and for a translator
    `nbest_translations` string [N, n_best] (each hypothesis with its own
    `<unk>` replacement), as the SavedModel's text signature.

    Returns:
        `{op type: count}` of the graph written.
    """
    onnx = extras.require("onnx", "onnx", "ONNX export")
    from keras_seq.export.onnx import op_summary

    core = onnx.load(core_path)
    core_outputs = {_bare(o.name): o.name for o in core.graph.output}
    aligned = task == "translation" and unk_replace and "alignment" in core_outputs
    g = _Graph(onnx)
    if task == "translation":
        feeds, post, refusals = _translation_graph(g, tokenizers, aligned, unk_replace,
                                                   max_tokens)
        text_input, text_outputs = "sentences", ["translations"]
    else:
        feeds, post, refusals = _generation_graph(g, tokenizers, max_tokens)
        text_input, text_outputs = "prompts", ["generated", "text"]
    core = onnx.compose.add_prefix(core, "core/")
    _prefix_outer_references(core.graph, "core/")
    nodes = list(g.nodes)
    passed = []  # the core's other inputs (per-request decoding settings): the graph's too
    for node_input in core.graph.input:
        name = _bare(node_input.name[len("core/"):])
        if name not in feeds:
            passed.append(onnx.helper.make_value_info(name, node_input.type))
            feeds[name] = name
        nodes.append(onnx.helper.make_node("Identity", [feeds[name]], [node_input.name]))
    nodes.extend(core.graph.node)
    out = {}
    for name, full in core_outputs.items():
        out[name] = "core/" + full
    g.nodes = []
    results = post(out)
    nodes.extend(g.nodes)
    outputs = []
    tensor = onnx.helper.make_tensor_value_info
    for name in text_outputs + [n for n in ("nbest_translations",) if n in results]:
        nodes.append(onnx.helper.make_node("Identity", [results[name]], [name]))
        rank = 2 if name.startswith("nbest_") else 1
        outputs.append(tensor(name, onnx.TensorProto.STRING, [None] * rank))
    nodes.append(onnx.helper.make_node("Identity", [refusals], ["refusals"]))
    outputs.append(tensor("refusals", onnx.TensorProto.INT32, [None]))
    for name in ("ids", "lengths", "scores", "nbest_ids", "nbest_lengths", "nbest_scores"):
        if name not in out:
            continue
        nodes.append(onnx.helper.make_node("Identity", [out[name]], [name]))
        source = next(o for o in core.graph.output if o.name == out[name])
        outputs.append(onnx.helper.make_value_info(name, source.type))
    graph = onnx.helper.make_graph(
        nodes, f"keras_seq_{task}_text",
        [tensor(text_input, onnx.TensorProto.STRING, [None])] + passed, outputs,
        initializer=list(core.graph.initializer),
    )
    graph.value_info.extend(core.graph.value_info)
    opsets = {o.domain: o.version for o in core.opset_import}
    opsets[""] = max(opsets.get("", 17), 17)
    opsets[_ML] = max(opsets.get(_ML, 2), 2)
    opsets[CONTRIB] = 1
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        ir_version=core.ir_version, producer_name="keras_seq",
    )
    model.functions.extend(core.functions)
    model.doc_string = metadata.get("doc", "")
    entry = model.metadata_props.add()
    entry.key = "keras_seq.export"
    entry.value = json.dumps(dict(metadata, extensions=True), sort_keys=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return dict(sorted(op_summary(model.graph).items()))


def _prefix_outer_references(graph, prefix):
    """Renames what `onnx.compose.add_prefix` leaves behind: the names a
    `Loop`/`If` body reads from the enclosing graphs (onnx_rnn's search loop
    reads its weights so), which must follow their prefixed producers."""
    outer = {v.name for v in graph.input} | {i.name for i in graph.initializer}
    outer |= {out for node in graph.node for out in node.output}

    def visit(body, known):
        local = {v.name for v in body.input} | {i.name for i in body.initializer}
        local |= {out for node in body.node for out in node.output}
        for node in body.node:
            for i, name in enumerate(node.input):
                if name and name not in local and prefix + name in known:
                    node.input[i] = prefix + name
            for attribute in node.attribute:
                for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                    visit(sub, known | local)
        for value in body.output:
            if value.name not in local and prefix + value.name in known:
                value.name = prefix + value.name

    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                visit(sub, outer)


def _bare(name):
    return name[:-2] if name.endswith(":0") else name
