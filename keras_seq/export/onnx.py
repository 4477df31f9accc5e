"""ONNX: tf2onnx conversion of the traced serving functions, and onnxruntime sessions.

`convert` turns one traced serving function into an `.onnx` file (opset 17 by
default) with the export's description in its metadata (`keras_seq.export`)
and returns the graph's op counts. `make_session` is keras_seq's one way to
open an `.onnx` file in onnxruntime (the parity check and `keras_seq.serving`
use it); `run_session` feeds it by the bare input names. This module imports
neither TensorFlow nor the ONNX packages until a function needs them, so
serving ONNX never imports TensorFlow.

Example:

```python
session = make_session("exported/fra-eng/onnx/translate_ids.onnx", threads=1)
outputs = run_session(session, {"source_ids": source_ids})
outputs["ids"]      # int32 [N, L]
```
"""

import contextlib
import json
import logging
import os
import warnings

import numpy as np

from keras_seq import extras
from keras_seq import utils

__all__ = [
    "DEFAULT_OPSET", "bare_name", "check_opset", "convert", "hoist_loop_transposes",
    "make_session", "run_session", "save",
]

DEFAULT_OPSET = 17


def check_opset(opset):
    """Returns `opset` or raises a ValueError (an integer >= 17 is needed)."""
    if not utils.is_int(opset) or opset < DEFAULT_OPSET:
        raise ValueError(f"`opset` must be an integer >= {DEFAULT_OPSET}, got {opset!r}.")
    return int(opset)


# --------------------------------------------------------------------------
# onnxruntime


def make_session(path, *, threads=None, spinning=True, feature="ONNX inference",
                 extensions=False):
    """Opens an `.onnx` file in onnxruntime on the CPU.

    Args:
        path: the `.onnx` file.
        threads: optional int, onnxruntime's intra-op threads (1 gives
            reproducible timings and leaves the other cores free).
        spinning: False stops idle intra-op threads from spinning (a server
            running sessions from several threads at once wants that).
        feature: what needs onnxruntime, for the message when it is missing.
        extensions: register onnxruntime-extensions' custom ops (the string
            ops of the text graphs; export.json marks the graphs that need them).

    Returns:
        An `onnxruntime.InferenceSession`.

    Raises:
        MissingExtraError: onnxruntime is not installed (one line naming
            `pip install "keras-seq[onnx]"`).
    """
    onnxruntime = extras.require("onnxruntime", "onnx", feature)
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if extensions:
        options.register_custom_ops_library(extensions_library(feature))
    return onnxruntime.InferenceSession(
        os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def extensions_library(feature="ONNX inference"):
    """The path of onnxruntime-extensions' custom-op library, loaded so that it
    works beside TensorFlow.

    TensorFlow and onnxruntime-extensions both bundle RE2; loaded after
    TensorFlow, the extensions' regular expressions bind to TensorFlow's copy
    and silently match nothing. On Linux the library is therefore loaded
    first with `RTLD_DEEPBIND` (its own symbols first); a self-check on one
    replacement raises a one-line error where that was not possible.
    """
    global _EXTENSIONS
    if _EXTENSIONS is None:
        import ctypes
        import importlib.util
        import sys

        spec = importlib.util.find_spec("onnxruntime_extensions")
        deepbind = getattr(os, "RTLD_DEEPBIND", None)
        if spec is not None and "onnxruntime_extensions" not in sys.modules and deepbind:
            for folder in spec.submodule_search_locations or ():
                for name in sorted(os.listdir(folder)):
                    if name.startswith("_extensions_pydll") and name.endswith(".so"):
                        ctypes.CDLL(os.path.join(folder, name), mode=deepbind | os.RTLD_NOW)
        library = extras.require("onnxruntime_extensions", "onnx", feature).get_library_path()
        _check_extensions(library)
        _EXTENSIONS = library
    return _EXTENSIONS


_EXTENSIONS = None


def _check_extensions(library):
    """Raises a RuntimeError unless the extensions' regex replacement works."""
    import onnx
    import onnxruntime
    from onnx import helper

    def const(name, value):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(
            name, onnx.TensorProto.STRING, [], [value]))

    text = helper.make_tensor_value_info("x", onnx.TensorProto.STRING, [None])
    graph = helper.make_graph(
        [const("p", b"b+$"), const("r", b"c"),
         helper.make_node("StringRegexReplace", ["x", "p", "r"], ["y"],
                          domain="ai.onnx.contrib")],
        "check", [text], [helper.make_tensor_value_info("y", onnx.TensorProto.STRING, [None])],
    )
    model = helper.make_model(graph, ir_version=8, opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.contrib", 1)])
    options = onnxruntime.SessionOptions()
    options.register_custom_ops_library(library)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": np.array(["abb"], dtype=object)})[0].tolist()
    if got != ["ac"]:
        raise RuntimeError(
            "onnxruntime-extensions' string ops give wrong results in this process (its "
            "RE2 is bound to TensorFlow's, imported first): open the text graphs in a "
            "process that loads onnxruntime-extensions before TensorFlow, or without it"
        )


def _setting_defaults(session):
    """{input: default} of a graph's per-request settings (none for other graphs)."""
    try:
        info = json.loads(session.get_modelmeta().custom_metadata_map["keras_seq.export"])
        entries = (info.get("decoding") or {}).get("inputs") or {}
        return {name: np.asarray(e["default"], dtype=e["dtype"]) for name, e in entries.items()}
    except (KeyError, ValueError, TypeError, AttributeError):
        return {}


def bare_name(name):
    """A graph input/output name without TensorFlow's `:0` suffix."""
    return name[:-2] if name.endswith(":0") else name


def run_session(session, feeds):
    """Runs `session` on `{bare input name: array}`; returns `{bare name: array}`.

    The per-request decoding settings that `feeds` leaves out take the
    export's defaults (the graph's `decoding.inputs` metadata)."""
    feeds = dict(_setting_defaults(session), **feeds)
    feed = {node.name: np.asarray(feeds[bare_name(node.name)]) for node in session.get_inputs()}
    names = [node.name for node in session.get_outputs()]
    values = session.run(names, feed)
    return {bare_name(name): np.asarray(value) for name, value in zip(names, values)}


# --------------------------------------------------------------------------
# tf2onnx


def op_summary(graph, counts=None):
    """Counts node op types in an ONNX graph, subgraphs (Loop bodies) included."""
    counts = {} if counts is None else counts
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
        for attribute in node.attribute:
            if attribute.g is not None and len(attribute.g.node):
                op_summary(attribute.g, counts)
            for subgraph in attribute.graphs:
                op_summary(subgraph, counts)
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


@contextlib.contextmanager
def _optimizers_in_place():
    """Runs tf2onnx's graph optimizers on the graph itself, not on a copy.

    By default tf2onnx deep-copies the whole graph before each optimizer (up to
    a dozen per round, several rounds), so that it can go on with the copy's
    original when one raises; for a decoding loop that copying is a third of
    the conversion time. The optimizers and the graph they produce are the
    same; `convert` converts again in the default mode if one raises.
    """
    name = "TF2ONNX_CATCH_ERRORS"
    before = os.environ.get(name)
    os.environ[name] = "FALSE"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def _quiet_converter():
    """Silences tf2onnx's rewriter log and TF's collection warnings (not actionable)."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # numpy >= 2 removed np.object, which tf2onnx 1.17 still uses.
            from keras.src.export.tf2onnx_lib import patch_tf2onnx

            patch_tf2onnx()
        except ImportError:  # pragma: no cover - other Keras layouts
            pass
    loggers = [logging.getLogger("tf2onnx"), tf.get_logger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def convert(fn, input_signature, path, opset, metadata):
    """Converts a traced serving function to an `.onnx` file with tf2onnx.

    Args:
        fn: the `tf.function` (with `input_signature`) of one signature.
        input_signature: its input signature.
        path: the `.onnx` file to write.
        opset: the ONNX opset.
        metadata: JSON-ready dict stored as the `keras_seq.export` metadata
            entry; its `"doc"` also becomes the graph's doc string.

    Returns:
        `{op type: count}` over the graph and its subgraphs, sorted by op type.
    """
    onnx = extras.require("onnx", "onnx", "ONNX export")
    tf2onnx = extras.require("tf2onnx", "onnx", "ONNX export")
    with _quiet_converter(), _safe_reshape_merging():
        try:
            with _optimizers_in_place():
                proto, _ = tf2onnx.convert.from_function(
                    fn, input_signature=input_signature, opset=opset
                )
        except Exception:  # an optimizer failed: convert again, skipping the one that fails
            proto, _ = tf2onnx.convert.from_function(
                fn, input_signature=input_signature, opset=opset
            )
    hoist_loop_transposes(proto)
    onnx.checker.check_model(proto)
    return save(proto, path, metadata)


def _rename_inputs(graph, old, new):
    """Makes every node of `graph` (subgraphs included) read `new` for `old`."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for subgraph in _subgraphs(node):
            _rename_inputs(subgraph, old, new)


def _subgraphs(node):
    """The graphs a node's attributes hold (a Loop's body, an If's branches)."""
    for attribute in node.attribute:
        if attribute.HasField("g"):
            yield attribute.g
        yield from attribute.graphs


def hoist_loop_transposes(proto):
    """Moves the `Transpose`s of loop-invariant `Loop` inputs out of the Loop body.

    tf2onnx passes the tensors a `tf.while_loop` captures (e.g. a tied
    embedding, the output projection of a language model) into the ONNX
    `Loop` as loop-carried values, and a `transpose` of one inside the loop
    body becomes a `Transpose` run at every step: a copy of the whole
    `[V, d]` table per generated token, most of a language model's generation
    time in onnxruntime (issue 12, benchmarks/RESULTS.md, "ONNX per model
    family"). Where the body passes the value through unchanged, the
    `Transpose` runs once before the Loop and the body reads its result as an
    outer-scope value (same outputs).

    Returns:
        The number of `Transpose` nodes moved (`proto` is changed in place).
    """
    moved = 0

    def visit(graph):
        nonlocal moved
        nodes = []
        for node in graph.node:
            for subgraph in _subgraphs(node):
                visit(subgraph)
            if node.op_type == "Loop":
                body = next(a.g for a in node.attribute if a.name == "body")
                inputs = [value.name for value in body.input]
                outputs = [value.name for value in body.output]
                producers = {name: n for n in body.node for name in n.output}
                for transpose in [n for n in body.node if n.op_type == "Transpose"]:
                    if transpose.input[0] not in inputs[2:] or transpose.output[0] in outputs:
                        continue
                    j = inputs.index(transpose.input[0])  # Loop input j feeds body input j
                    passed = producers.get(outputs[j - 1])
                    if not (outputs[j - 1] == inputs[j] or (
                            passed is not None and passed.op_type == "Identity"
                            and passed.input[0] == inputs[j])):
                        continue  # the value changes from step to step
                    outer = transpose.output[0] + "__hoisted"
                    hoisted = type(transpose)()
                    hoisted.CopyFrom(transpose)
                    hoisted.name = transpose.name + "__hoisted"
                    hoisted.input[0] = node.input[j]
                    hoisted.output[0] = outer
                    nodes.append(hoisted)
                    body.node.remove(transpose)
                    _rename_inputs(body, transpose.output[0], outer)
                    moved += 1
            nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)

    visit(proto.graph)
    return moved


def save(proto, path, metadata):
    """Writes an ONNX `proto` to `path` with `metadata` (see `convert`).

    Returns:
        `{op type: count}` over the graph and its subgraphs, sorted by op type.
    """
    proto.doc_string = metadata.get("doc", "")
    entry = proto.metadata_props.add()
    entry.key = "keras_seq.export"
    entry.value = json.dumps(metadata, sort_keys=True)
    data = proto.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    return dict(sorted(op_summary(proto.graph).items()))
