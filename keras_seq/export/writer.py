"""Writing an export: versions, the atomic rename, export.json, the ONNX files.

`write_version(fns, to, ...)` traces the `ServingFunctions`' endpoints once,
writes them as a SavedModel in TF Serving's layout (`to/<version>/`) and,
optionally, converts the id-level, state and step functions to
`to/onnx/*.onnx`. A version is written into a temporary sibling directory
(`to/.tmp-export-*`) and renamed into place only once complete; the ONNX files
then replace those in `to/onnx/` one by one with `os.replace`.

A killed export leaves its temporary directory behind; the next export into the
same `to` removes it (`remove_stale_exports`). The rule is safe with several
exporters at once: the directory's name carries its process
(`.tmp-export-<version>.p<pid>@<host>.*`) and is removed only once that process
is gone; a name without one (older keras_seq) or from another host is removed
once it is older than `STALE_UNOWNED_SECONDS`.

`assets.extra/export.json` (also `to/onnx/export.json`) describes the export:
`format`, `task`, `version`, `model` (class and config), `token_ids`,
`versions` (keras_seq, Keras, TensorFlow), `signatures` (inputs, outputs,
description), `state` (the state tensors' names, dtypes and shapes),
`decoding`, the tokenizers, `onnx` (opset, op counts and `builder` per file:
`"tf2onnx"`, or `keras_seq.export.onnx_rnn` for the graphs it builds; a text
graph's `core_builder`: the builder of the id-level graph inside it),
`requires` (Python packages whose ops the graph uses, e.g.
`["tensorflow_text"]` for SentencePiece and WordPiece tokenizers: import them
before `tf.saved_model.load`) and, with such ops, `unsupported` (what the
export leaves out, e.g. ONNX string signatures).
Format 2 stores the decoding strategy and sampler as
`keras_seq.decoding.serialize` configs; format 1 wrote `"greedy"` /
`{"beam_search": {...}}` and a bare sampler config. `read_decoding` reads all.
Format 3 adds the per-request decoding inputs of the text and id-level
signatures: `decoding.inputs` (each input's dtype, default and range, see
`ServingFunctions.settings`) and, for beam search, `decoding.max_beam_size`;
`serving_default` is then its own signature (the text one without those
inputs). Readers of formats 1 and 2 find no `decoding.inputs`: those exports
take no per-request settings.

Example:

```python
fns = ServingFunctions(model, max_length=20)
path = write_version(fns, "exported/lm", version=None, onnx=False,
                     opset=17, tracked=[module], endpoints=fns.endpoints([module]),
                     info={"decoding": decoding_info(fns)})
```
"""

import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_seq import decoding
from keras_seq import runs
from keras_seq import utils
from keras_seq.export import onnx as onnx_graphs
from keras_seq.export import onnx_rnn
from keras_seq.export import onnx_text
from keras_seq.export import quantize as quantize_lib
from keras_seq.export.signatures import spec
from keras_seq.serving.signatures import parse_version  # TF Serving's version rule
from keras_seq.text import BOS_ID
from keras_seq.text import EOS_ID
from keras_seq.text import PAD_ID
from keras_seq.text import UNK_ID

__all__ = [
    "EXPORT_INFO", "FORMAT", "decoding_info", "decoding_settings", "read_decoding",
    "write_version",
]

EXPORT_INFO = os.path.join("assets.extra", "export.json")
"""Path of the export description inside a version directory."""

FORMAT = 3
"""export.json's format: 3 adds the per-request decoding inputs (`decoding.inputs`)."""

STALE_UNOWNED_SECONDS = 3600
"""Age after which a `.tmp-export-*` directory naming no live local process is removed."""


# --------------------------------------------------------------------------
# Versions.


def remove_stale_exports(to):
    """Remove the `.tmp-export-*` directories in `to` left by killed exports.

    Removed: those named after a process of this host that no longer runs, and
    those naming no process (or another host's) not modified for
    `STALE_UNOWNED_SECONDS`. A running exporter's directory is never removed.
    One line on stderr says what was removed.

    Returns:
        The removed paths.
    """
    return runs.remove_stale_temporaries(
        to, ".tmp-export-*", unknown_older_than=time.time() - STALE_UNOWNED_SECONDS,
        what="export directories",
    )


def versions(to):
    """The version directories in `to` (ASCII decimal names, as TF Serving), ascending."""
    if not os.path.isdir(to):
        return []
    numbers = ((parse_version(name), name) for name in os.listdir(to))
    return sorted(
        number
        for number, name in numbers
        if number is not None and os.path.isdir(os.path.join(to, name))
    )


def resolve_version(to, version):
    """The version to write: `version`, or the next free one when None."""
    if version is None:
        existing = versions(to)
        return (existing[-1] + 1) if existing else 1
    if not utils.is_int(version) or version < 1:
        raise ValueError(f"`version` must be an integer >= 1 or None, got {version!r}.")
    if os.path.exists(os.path.join(to, str(version))):
        raise FileExistsError(
            f"version {version} already exists in {to}; pick another version or "
            "pass version=None for the next one"
        )
    return int(version)


# --------------------------------------------------------------------------
# export.json pieces.


def _spec_json(tensor_spec):
    return {
        "dtype": tensor_spec.dtype.name,
        "shape": None if tensor_spec.shape.rank is None else tensor_spec.shape.as_list(),
    }


def _signature_json(fn, input_signature, doc):
    concrete = fn.get_concrete_function(*input_signature)
    inputs = tf.nest.flatten(input_signature)
    return {
        "doc": doc,
        "inputs": {s.name: _spec_json(s) for s in inputs},
        "outputs": {
            name: _spec_json(s) for name, s in sorted(concrete.structured_outputs.items())
        },
    }


def tokenizer_json(tokenizer):
    """export.json's description of a tokenizer."""
    return {
        "type": getattr(tokenizer, "type_name", type(tokenizer).__name__),
        "config": tokenizer.get_config() if hasattr(tokenizer, "get_config") else {},
        "vocab_size": tokenizer.vocab_size,
    }


def decoding_info(fns):
    """export.json's `"decoding"`: the export's settings, and the inputs
    (with their defaults and ranges) that change them per request."""
    info = {
        "max_length": fns.max_length,
        "strategy": decoding.serialize(fns.strategy),
        "sampler": decoding.serialize(fns.sampler),
        "start": fns.names.start or fns.model.start_id,
        "end_id": fns.model.end_id,
        # The text signature replaces <unk> by the attended source token.
        "unk_replace": fns.unk_replace,
        "inputs": fns.settings(),
    }
    if fns.max_beam_size is not None:
        info["max_beam_size"] = fns.max_beam_size
    return info


def decoding_settings(export, settings=None):
    """The per-request decoding inputs of an export, ready to feed.

    Args:
        export: a version directory, or its export.json as a dict.
        settings: optional {input name: value} replacing the defaults.

    Returns:
        {name: NumPy scalar of the input's dtype}: the export's defaults
        (export.json's `decoding.inputs`), updated with `settings`; empty for
        an export older than format 3.

    Raises:
        ValueError: `settings` names an input the export does not take.

    Example:

    ```python
    translate = tf.saved_model.load(path).signatures["translate"]
    inputs = decoding_settings(path, {"beam_size": 1})
    translate(sentences=tf.constant(["je suis ici ."]), **inputs)
    ```
    """
    if not isinstance(export, dict):
        with open(os.path.join(export, EXPORT_INFO), encoding="utf-8") as f:
            export = json.load(f)
    entries = export.get("decoding", {}).get("inputs") or {}
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(entries))
    if unknown:
        raise ValueError(
            f"{unknown} are not per-request inputs of this export "
            f"(those are: {sorted(entries) or 'none'})."
        )
    return {
        name: np.asarray(settings.get(name, entry["default"]), dtype=entry["dtype"])
        for name, entry in entries.items()
    }


def read_decoding(config):
    """`(strategy, sampler)` from export.json's `"decoding"` (format 1 or 2)."""
    strategy = decoding.get_strategy(config.get("strategy"))
    sampler = config.get("sampler")
    if sampler is not None:
        if "class_name" in sampler:
            sampler = decoding.deserialize(sampler)
        else:  # format 1: the sampler's bare config
            sampler = decoding.RandomSampler.from_config(sampler)
    return strategy, sampler


def write_json(path, data):
    """Writes `data` as JSON atomically (a temporary file, then a rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


def _keras_seq_version():
    import keras_seq

    return keras_seq.__version__


def _export_json(fns, version, signatures, info):
    data = {
        "format": FORMAT,
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
    return data


# --------------------------------------------------------------------------
# The SavedModel and the ONNX graphs.


def _step_input_signature(fns, state_fn, state_signature):
    """`step`'s input signature: tokens + the state the state signature returns."""
    outputs = state_fn.get_concrete_function(*state_signature).structured_outputs
    signature = {"tokens": spec([None], tf.int32, "tokens")}
    for name in fns.layout.names:
        shape = outputs[name].shape.as_list()
        if shape:
            shape[0] = None  # any batch size
        signature[name] = spec(shape, outputs[name].dtype, name)
    return [signature]


def _write_saved_model(fns, endpoints, tracked, directory, verbose):
    """Traces the endpoints and writes the SavedModel.

    Returns:
        `(functions, signatures)`: `{name: (tf.function, input_signature)}`
        and `{name: export.json description}` (`serving_default` included).
    """
    archive = keras.export.ExportArchive()
    # The tokenizer modules hold lookup tables, which must be tracked. The
    # model is not: the archive saves every variable its endpoints use, and
    # tracking a Keras model makes `write_out` trace the model's own default
    # call, which fails for models whose `call` takes a dict (Transformer).
    for resource in tracked:
        archive.track(resource)
    archive.add_variable_collection("model_variables", list(fns.model.variables))
    functions, signatures = {}, {}
    for name, fn, input_signature, doc in endpoints:
        if input_signature is None:
            input_signature = _step_input_signature(fns, *functions[fns.names.state])
        # Traced here (a tf.function with its input signature, autograph on as
        # everywhere else in keras_seq) and handed to the archive as is: the
        # SavedModel signature and the ONNX graph are the same concrete function.
        decorated = tf.function(fn, input_signature=input_signature)
        signatures[name] = _signature_json(decorated, input_signature, doc)
        archive.add_endpoint(name, decorated)
        functions[name] = (decorated, input_signature)
    default = endpoints[0].name
    if default != "serving_default":  # the archive serves the first endpoint as default
        signatures["serving_default"] = dict(signatures[default], doc=f"alias of {default}")
    archive.write_out(directory, verbose=verbose)
    return functions, signatures


def _onnx_metadata(fns, data, name):
    signature = data["signatures"][name]
    return {
        "signature": name,
        "task": fns.task,
        "version": data["version"],
        "doc": signature["doc"],
        "inputs": signature["inputs"],
        "outputs": signature["outputs"],
        "state": data["state"],
        "decoding": data.get("decoding"),
    }


def _write_onnx(fns, functions, data, directory, opset, tokenizers=(), quantize=None,
                quality=None):
    """Converts the id-level, state and step functions into `directory` and
    builds the text graph around the id-level one (word tokenizers; it is
    `serving_default.onnx`, else the id-level graph is); records their opset
    and op counts in `data["onnx"]`. With `quantize="int8"`, also the int8
    graphs in `directory/int8` (`keras_seq.export.quantize`)."""
    os.makedirs(directory)
    ids_name = fns.names.ids
    for name in (ids_name, fns.names.state, "step"):
        fn, input_signature = functions[name]
        metadata = _onnx_metadata(fns, data, name)
        path = os.path.join(directory, name + ".onnx")
        # onnx_rnn hook: a graph built for onnxruntime where the model is
        # covered (None: tf2onnx converts the traced function).
        proto = onnx_rnn.build(fns, name, opset)
        if proto is None:
            metadata["builder"] = "tf2onnx"
            ops = onnx_graphs.convert(fn, input_signature, path, opset, metadata)
        else:
            metadata["builder"] = onnx_rnn.BUILDER
            ops = onnx_graphs.save(proto, path, metadata)
        data["onnx"][name + ".onnx"] = {
            "opset": opset, "ops": ops, "builder": metadata["builder"]
        }
    default, text_core = ids_name, None
    if tokenizers and all(onnx_text.supports(t) for t in tokenizers):
        default = fns.names.text
        core = os.path.join(directory, ids_name + ".onnx")
        core_builder = data["onnx"][ids_name + ".onnx"]["builder"]
        aligned = fns.unk_replace and onnx_text.supports(tokenizers[-1])
        if aligned:  # the id-level graph plus the alignment <unk> replacement reads
            core = os.path.join(directory, ".aligned.onnx")
            proto = onnx_rnn.build(fns, ids_name, opset, aligned=True)
            if proto is not None:
                onnx_graphs.save(proto, core, {"signature": "aligned"})
            else:
                core_builder = "tf2onnx"
                signature = fns.id_level_signature()
                fn = tf.function(fns.aligned_level, input_signature=signature)
                onnx_graphs.convert(fn, signature, core, opset, {"signature": "aligned"})
        ops = onnx_text.write_text_graph(
            core, os.path.join(directory, default + ".onnx"), fns.task, tokenizers,
            _onnx_metadata(fns, data, default), unk_replace=aligned, max_tokens=fns.max_input,
        )
        data["onnx"][default + ".onnx"] = {
            "opset": opset, "ops": ops, "extensions": True, "core_builder": core_builder,
            "refusals": onnx_text.refusal_messages(
                default, fns.names.text_input, fns.max_input,
                fns.names.length_note.format(max_length=fns.max_length)),
        }
        text_core = (core, aligned)
    shutil.copyfile(
        os.path.join(directory, default + ".onnx"),
        os.path.join(directory, "serving_default.onnx"),
    )
    data["onnx"]["serving_default.onnx"] = dict(
        data["onnx"][default + ".onnx"], copy_of=default + ".onnx"
    )
    if quantize == "int8":
        quantize_lib.write_int8(fns, directory, data, tokenizers, text_core, quality)
    if text_core is not None and text_core[1]:
        os.remove(text_core[0])
    write_json(os.path.join(directory, "export.json"), data)


def _publish_onnx(directory, to):
    """Moves the new graphs into `to/onnx/`, each file replaced atomically,
    and removes graphs an earlier, other export left there."""
    target = os.path.join(to, "onnx")
    os.makedirs(target, exist_ok=True)
    written = sorted(os.listdir(directory))
    for name in written:
        if os.path.isdir(os.path.join(target, name)):  # int8/: replaced as a whole
            shutil.rmtree(os.path.join(target, name))
        os.replace(os.path.join(directory, name), os.path.join(target, name))
    for name in os.listdir(target):
        if name.endswith(".onnx") and name not in written:
            os.remove(os.path.join(target, name))
        elif name == "int8" and name not in written:
            shutil.rmtree(os.path.join(target, name))


def write_version(fns, to, *, version, onnx, opset, tracked, endpoints, info, verbose=False,
                  tokenizers=(), quantize=None, quality=None):
    """Writes one version atomically (temporary sibling dir, then rename).

    Args:
        fns: the `ServingFunctions` whose methods the endpoints call.
        to: the model's export directory.
        version: int or None (the next free version).
        onnx: bool, also convert the id-level, state and step signatures.
        opset: ONNX opset.
        tracked: the tokenizer modules, for `ExportArchive.track`.
        endpoints: the `Endpoint`s; the first one is `serving_default`.
        info: dict merged into export.json (decoding settings, tokenizers).
        verbose: passed to `ExportArchive.write_out`.
        tokenizers: the tokenizers (`[tokenizer]` or `[source, target]`),
            for the ONNX text graph.
        quantize: None or `"int8"` (also `onnx/int8/*.onnx`).
        quality: what the int8 delta is measured on (see
            `keras_seq.export.quantize.write_int8`), or None.

    Returns:
        The path of the version directory.
    """
    to = os.fspath(to)
    os.makedirs(to, exist_ok=True)
    remove_stale_exports(to)
    version = resolve_version(to, version)
    tmp = tempfile.mkdtemp(prefix=runs.temp_prefix(f"export-{version}"), dir=to)
    try:
        saved_model_dir = os.path.join(tmp, "saved_model")
        onnx_dir = os.path.join(tmp, "onnx")
        functions, signatures = _write_saved_model(
            fns, endpoints, tracked, saved_model_dir, verbose
        )
        data = _export_json(fns, version, signatures, info)
        if onnx:
            _write_onnx(fns, functions, data, onnx_dir, opset, tokenizers, quantize, quality)
        write_json(os.path.join(saved_model_dir, EXPORT_INFO), data)
        final = os.path.join(to, str(version))
        os.rename(saved_model_dir, final)  # the version appears complete, at once
        if onnx:
            _publish_onnx(onnx_dir, to)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
