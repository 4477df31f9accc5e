"""int8 ONNX graphs: dynamic quantization and its quality cost, measured at export.

`write_int8` writes `onnx/int8/<name>.onnx` beside the float graphs
(`quantize_graph`: onnxruntime's `quantize_dynamic` with int8 weights,
per-tensor QInt8, on the ops it has integer kernels for, `MatMul`, `LSTM`,
`Attention`, Loop bodies included: a `MatMul` with constant weights becomes
`MatMulInteger` after a `DynamicQuantizeLinear` of its input, fused into
`DynamicQuantizeMatMul` when onnxruntime loads the graph, an `LSTM`
`DynamicQuantizeLSTM`), the text graph rebuilt around the int8 id-level
graph, and `serving_default.onnx` like the float one; `keras-seq serve --onnx
--precision int8` serves that directory.

On `keras_seq.export.onnx_rnn`'s beam search every weight product is
quantized, the decoder step's inside the search `Loop` included (output
projection, attention query and score, combination, `LSTM`): measured on the
default translator, each pays for the per-step quantization of its 5-row
input (leaving the small attention products float changed nothing
measurable; benchmarks/RESULTS.md, "int8").

The quality delta of the id-level graph is measured on a bounded sample:
BLEU (sacrebleu, detokenized) of the float and int8 translations of a
translator's validation sentences, or the perplexity of a language model's
validation texts through `step`, and recorded in export.json (`"int8"`).

Example:

```python
info = write_int8(fns, "tmp/onnx", data, tokenizers, quality=(sources, references))
info["delta"]   # BLEU int8 - float
```
"""

import json
import logging
import math
import os
import shutil

import numpy as np

from keras_seq import extras
from keras_seq.export import onnx as onnx_graphs
from keras_seq.export import onnx_text
from keras_seq.text import BOS_ID
from keras_seq.text import EOS_ID

__all__ = ["PRECISIONS", "QUALITY_SENTENCES", "check_quantize", "quantize_graph", "write_int8"]

PRECISIONS = ("int8",)
QUALITY_SENTENCES = 200  # the most sentences (or texts) the delta is measured on
# The ops onnxruntime's dynamic quantization has integer kernels for that
# these graphs hold (its IntegerOpsRegistry has no Gemm and no GRU).
OP_TYPES = ["MatMul", "LSTM", "Attention"]
_DIRECTORY = "int8"


def check_quantize(quantize):
    """Returns `quantize` (None or "int8") or raises a ValueError."""
    if quantize is not None and quantize not in PRECISIONS:
        raise ValueError(f"`quantize` must be None or one of {PRECISIONS}, got {quantize!r}.")
    return quantize


def quantize_graph(source, target):
    """Writes the float `.onnx` at `source` with int8 weights to `target`.

    onnxruntime's dynamic quantization (weights QInt8 per tensor, activations
    quantized per call) of the `OP_TYPES` nodes, in Loop bodies too; the
    keras_seq metadata is kept.

    Example:

    ```python
    quantize_graph("onnx/translate_ids.onnx", "onnx/int8/translate_ids.onnx")
    ```
    """
    quantization = extras.require("onnxruntime.quantization", "onnx", "int8 ONNX export")
    onnx = extras.require("onnx", "onnx", "int8 ONNX export")
    float_model = onnx.load(source, load_external_data=False)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process is for static quantization
    try:
        quantization.quantize_dynamic(
            source, target, op_types_to_quantize=OP_TYPES,
            weight_type=quantization.QuantType.QInt8,
            nodes_to_exclude=_outer_weight_lstms(float_model.graph),
            extra_options={"EnableSubgraph": True},
        )
    finally:
        root.setLevel(level)
    # quantize_dynamic drops the metadata: keep keras_seq's (signature, the
    # per-request settings' defaults the server and `run_session` feed).
    model = onnx.load(target)
    del model.metadata_props[:]
    model.metadata_props.extend(float_model.metadata_props)
    onnx.save(model, target)


def _outer_weight_lstms(graph, depth=0):
    """The names of the `LSTM` nodes of subgraphs whose weights live in an
    enclosing graph, which `quantize_dynamic`'s LSTM quantizer cannot read
    (tf2onnx's graphs; `onnx_rnn` keeps a Loop body's weights in the body)."""
    own = {i.name for i in graph.initializer}
    names = []
    for node in graph.node:
        if depth and node.op_type == "LSTM" and not {node.input[1], node.input[2]} <= own:
            names.append(node.name)
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                names.extend(_outer_weight_lstms(sub, depth + 1))
    return names


def _metadata(path):
    """The keras_seq metadata of the float graph at `path` (the signature, the
    per-request settings' defaults)."""
    onnx = extras.require("onnx", "onnx", "int8 ONNX export")
    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return json.loads(props.get("keras_seq.export", "{}"))


def write_int8(fns, directory, data, tokenizers, text_core=None, quality=None):
    """Writes the int8 graphs into `directory/int8` and measures their cost.

    Args:
        fns: the export's `ServingFunctions`.
        directory: the directory of the float graphs (and their export.json
            data, `data`).
        data: the export.json dict; `data["int8"]` is set.
        tokenizers: the tokenizers (for the text graph and the measurement).
        text_core: the float core the text graph was built around (None: no
            text graph), and `data["onnx"]` says which file that is.
        quality: None (not measured), `(sources, references)` for a
            translator or a list of texts for a language model.

    Returns:
        The `data["int8"]` entry.
    """
    target = os.path.join(directory, _DIRECTORY)
    os.makedirs(target)
    names = [fns.names.ids, fns.names.state, "step"]
    for name in names:
        quantize_graph(os.path.join(directory, name + ".onnx"), os.path.join(target, name + ".onnx"))
    default = fns.names.ids
    if text_core is not None:
        default = fns.names.text
        core, aligned = text_core
        quantized_core = os.path.join(target, ".core.onnx")
        quantize_graph(core, quantized_core)
        onnx_text.write_text_graph(
            quantized_core, os.path.join(target, default + ".onnx"), fns.task, tokenizers,
            dict(_metadata(os.path.join(directory, default + ".onnx")), precision="int8"),
            unk_replace=aligned,
            max_tokens=fns.max_input,
        )
        os.remove(quantized_core)
    shutil.copyfile(os.path.join(target, default + ".onnx"),
                    os.path.join(target, "serving_default.onnx"))
    info = {
        "weights": "int8 (onnxruntime.quantization.quantize_dynamic, QInt8)",
        "ops": OP_TYPES,
        "files": sorted(os.listdir(target)),
        "extensions": [n + ".onnx" for n in (default, "serving_default")] if text_core else [],
        "refusals": data["onnx"].get(default + ".onnx", {}).get("refusals", {}),
    }
    if quality:
        if fns.task == "translation":
            info.update(_bleu_delta(fns, directory, target, tokenizers, quality))
        else:
            info.update(_perplexity_delta(fns, directory, target, tokenizers[0], quality))
    data["int8"] = info
    return info


def _bleu_delta(fns, directory, target, tokenizers, pairs):
    """BLEU of the float and int8 id-level graphs on `pairs` (bounded)."""
    from keras_seq import metrics

    source, target_tokenizer = tokenizers
    pairs = list(zip(*pairs))[:QUALITY_SENTENCES]
    limit = fns.max_input or 10**9
    rows, references = [], []
    for text, reference in pairs:
        ids = source.encode([text])[0][: limit - 1] + [EOS_ID]
        if len(ids) > 1:
            rows.append(ids)
            references.append(reference)
    if not rows:
        return {}
    scores = {}
    for precision, folder in (("float", directory), ("int8", target)):
        session = onnx_graphs.make_session(os.path.join(folder, fns.names.ids + ".onnx"))
        outputs = []
        for start in range(0, len(rows), 32):
            batch = _pad(rows[start:start + 32])
            ids = onnx_graphs.run_session(session, {fns.model.input_name: batch})["ids"]
            outputs.extend(target_tokenizer.decode(ids.tolist()))
        scores[precision] = metrics.translation_scores(outputs, references).bleu
    return {
        "metric": "BLEU",
        "sentences": len(rows),
        "float": round(scores["float"], 2),
        "int8": round(scores["int8"], 2),
        "delta": round(scores["int8"] - scores["float"], 2),
    }


def _perplexity_delta(fns, directory, target, tokenizer, texts):
    """Perplexity of the float and int8 `initial_state` + `step` graphs."""
    length = fns.max_length - 1
    rows = [ids[:length] for ids in tokenizer.encode(list(texts)[:QUALITY_SENTENCES]) if ids]
    if not rows:
        return {}
    tokens = _pad(rows)
    real = tokens != 0
    values = {}
    for precision, folder in (("float", directory), ("int8", target)):
        init = onnx_graphs.make_session(os.path.join(folder, fns.names.state + ".onnx"))
        step = onnx_graphs.make_session(os.path.join(folder, "step.onnx"))
        state = onnx_graphs.run_session(
            init, {fns.model.input_name: np.full([len(rows), 1], BOS_ID, np.int32)})
        previous = state.pop("start_ids")
        total = 0.0
        for t in range(tokens.shape[1]):
            out = onnx_graphs.run_session(step, dict(state, tokens=previous))
            logits = out["logits"].astype(np.float64)
            logits -= logits.max(axis=1, keepdims=True)
            log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            picked = log_probs[np.arange(len(rows)), tokens[:, t]]
            total -= float(picked[real[:, t]].sum())
            state = {k[len("next_"):]: v for k, v in out.items() if k.startswith("next_")}
            previous = tokens[:, t]
        values[precision] = math.exp(total / int(real.sum()))
    return {
        "metric": "perplexity",
        "texts": len(rows),
        "tokens": int(real.sum()),
        "float": round(values["float"], 3),
        "int8": round(values["int8"], 3),
        "delta_percent": round(100 * (values["int8"] / values["float"] - 1), 2),
    }


def _pad(rows):
    out = np.zeros([len(rows), max(len(r) for r in rows)], np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out
