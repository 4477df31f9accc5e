"""`check_parity`: the Keras model vs its SavedModel (in a fresh process) vs ONNX.

The reference is the Keras model run through the same `ServingFunctions` that
were exported; the SavedModel runs in a fresh Python process in which
`import keras_seq` (and `import keras`, unless tensorflow_text ops need it)
raises, so it is proven self-contained; the ONNX graphs run in onnxruntime.

Example:

```python
path = export_translator(model, fr_tok, en_tok, "exported/fra-eng")
report = check_parity(model, path, source_ids)   # raises ParityError on mismatch
report["onnx"]["step/logits"]                    # e.g. 2.4e-07
```
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from keras_seq import errors
from keras_seq import utils
from keras_seq.export import onnx as onnx_graphs
from keras_seq.export.signatures import ServingFunctions
from keras_seq.export.writer import EXPORT_INFO
from keras_seq.export.writer import decoding_settings
from keras_seq.export.writer import read_decoding

__all__ = ["ParityError", "check_parity"]


class ParityError(errors.KerasSeqError, AssertionError):
    """The exported SavedModel or ONNX graph disagrees with the Keras model."""


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
    for name, value in loaded.signatures[signature.split("@")[0]](**kwargs).items():
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


def _write_requests(requests, request_file):
    """Writes `requests` as the subprocess reads them: a plan (json) + arrays (npz)."""
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
    with open(request_file, "w", encoding="utf-8") as f:
        json.dump(plan, f)
    np.savez(request_file + ".npz", **arrays)


def _read_outputs(out_prefix):
    """`{signature: {output: array or list of str}}` the subprocess wrote."""
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
    return result


def _run_saved_model_subprocess(path, requests, timeout):
    """Runs `requests` through the SavedModel in a fresh Python process.

    Returns:
        `({signature: {output: array or list of str}}, {"keras_seq_importable":
        False, "keras_needed": bool})`; the second dict describes the process
        (Keras is importable there only for tensorflow_text ops).
    """
    with tempfile.TemporaryDirectory(prefix="keras_seq_parity_") as tmp:
        request_file = os.path.join(tmp, "requests.json")
        _write_requests(requests, request_file)
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
        result = _read_outputs(out_prefix)
    return result, {"keras_seq_importable": False, "keras_needed": keras_needed}


def _run_onnx(onnx_dir, requests, graphs):
    """Runs `requests` through `onnx_dir/<signature>.onnx` with onnxruntime
    (`graphs`: export.json's `"onnx"`, which marks the text graphs)."""
    result = {}
    for signature, feeds in requests.items():
        session = onnx_graphs.make_session(
            os.path.join(onnx_dir, signature.split("@")[0] + ".onnx"),
            threads=1,
            feature="the ONNX parity check",
            extensions=graphs.get(signature + ".onnx", {}).get("extensions", False),
        )
        result[signature] = onnx_graphs.run_session(session, feeds)
    return result


def _compare_one(key, expected, actual, atol, rtol, report):
    """Compares one output; records it in `report`; returns a failure or None."""
    if isinstance(expected, list) or np.asarray(expected).dtype == object:
        same = list(expected) == list(actual)
        report[key] = "equal" if same else "DIFFERENT"
        return None if same else f"{key}: {list(actual)!r} != {list(expected)!r}"
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return f"{key}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "biu":
        mismatches = int(np.sum(expected != actual))
        report[key] = "equal" if not mismatches else f"{mismatches} different"
        return f"{key}: {mismatches} of {expected.size} values differ" if mismatches else None
    finite = np.isfinite(expected)
    if not np.array_equal(finite, np.isfinite(actual)) or not np.array_equal(
        expected[~finite], actual[~finite]
    ):
        return f"{key}: non-finite values differ"
    diff = float(np.max(np.abs(expected[finite] - actual[finite]), initial=0.0))
    report[key] = diff
    if not np.allclose(expected, actual, atol=atol, rtol=rtol):
        return f"{key}: max abs diff {diff:.3g} > atol {atol:g}"
    return None


def _compare(reference, got, where, atol, rtol, report, failures, backend):
    """Compares one signature's outputs; fills `report`, appends to `failures`."""
    for name, expected in sorted(reference.items()):
        key = f"{where}/{name}"
        failure = (
            f"{key}: missing" if name not in got
            else _compare_one(key, expected, got[name], atol, rtol, report)
        )
        if failure:
            failures.append(f"{backend} {failure}")


def _compare_backend(reference, got, signatures, backend, atol, rtol, failures):
    """Compares a backend's outputs `got` with `reference`.

    Args:
        signatures: `{signature run by the backend: its reference signature}`.

    Returns:
        The backend's report; the disagreements are appended to `failures`.
    """
    report = {}
    for signature, expected in signatures.items():
        _compare(
            reference[expected], got.get(signature, {}), signature, atol, rtol,
            report, failures, backend,
        )
    return report


def _read_export(path, onnx):
    """export.json of the version at `path`, and whether (and where) to check ONNX."""
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
    return info, (onnx_dir if onnx else None)


def _reference_functions(model, info):
    """The `ServingFunctions` of the export, over `model`."""
    settings = info["decoding"]
    strategy, sampler = read_decoding(settings)
    if sampler is not None and sampler.seed is None:
        raise ValueError(
            "parity needs reproducible outputs; this export samples without a seed"
        )
    return ServingFunctions(
        model, settings["max_length"], strategy, sampler, task=info["task"],
        max_beam_size=settings.get("max_beam_size"),
        unk_replace=settings.get("unk_replace", False),
    )


def _settings_label(settings):
    return ",".join(f"{name}={value}" for name, value in sorted(settings.items()))


def _reference(fns, ids, info, settings):
    """The Keras model's outputs of the id-level (with the export's settings,
    then each of `settings`), state and step signatures, and the requests that
    ask the export for the same (`"<signature>@<settings>"` for the id-level
    one with settings)."""
    names, feed = fns.names, {fns.model.input_name: ids}
    # The state signature runs as served, on ids of unknown length: a model
    # may size its state from a known input length (the Transformer language
    # model's cache), which a served input does not have.
    state_fn = tf.function(fns.state_level, input_signature=fns.id_signature())
    reference = {
        names.ids: _numpy_outputs(fns.id_level({k: tf.constant(v) for k, v in feed.items()})),
        names.state: _numpy_outputs(state_fn({k: tf.constant(v) for k, v in feed.items()})),
    }
    step_feed = {"tokens": reference[names.state]["start_ids"]}
    for name in fns.layout.names:
        step_feed[name] = reference[names.state][name]
    reference["step"] = _numpy_outputs(
        fns.step({k: tf.constant(v) for k, v in step_feed.items()})
    )
    requests = {
        names.ids: dict(feed, **decoding_settings(info, {})), names.state: feed, "step": step_feed,
    }
    for chosen in settings:
        key = f"{names.ids}@{_settings_label(chosen)}"
        requests[key] = dict(feed, **decoding_settings(info, chosen))
        reference[key] = _numpy_outputs(
            fns.id_level({k: tf.constant(v) for k, v in requests[key].items()})
        )
    return reference, requests


def _text_reference(fns, texts, tokenizers):
    """The text signature's reference: the Python tokenizers around the model."""
    if tokenizers is None:
        raise ValueError("`texts` needs `tokenizers` (the Python reference).")
    texts = list(texts)
    if fns.task == "language_model":
        text_ids = utils.right_pad(tokenizers.encode(texts))
        target_tokenizer, output = tokenizers, "generated"
    else:
        source_tokenizer, target_tokenizer = tokenizers
        text_ids = utils.right_pad(source_tokenizer.encode(texts, add_eos=True))
        output = "translations"
    out = _numpy_outputs(fns.id_level({fns.model.input_name: tf.constant(text_ids)}))
    out[output] = target_tokenizer.decode(out["ids"])
    if fns.unk_replace:
        # keras_seq.Translator's text: <unk> replaced by the attended source word.
        from keras_seq.decoding import DecodeOptions
        from keras_seq.pipelines.translator import Translator

        options = DecodeOptions(beam_size=getattr(fns.strategy, "beam_size", 1),
                                length_penalty=getattr(fns.strategy, "length_penalty", 0.0))
        translator = Translator(fns.model, source_tokenizer, target_tokenizer, options=options)
        out[output] = [r.text for r in translator.translate(texts, max_length=fns.max_length)]
    return out, {fns.names.text_input: texts}


def check_parity(
    model,
    path,
    inputs,
    *,
    texts=None,
    tokenizers=None,
    settings=(),
    onnx=None,
    atol=1e-5,
    rtol=1e-5,
    timeout=600,
):
    """Checks an export against the Keras model on the same inputs.

    Runs the id-level signature (`generate_ids` / `translate_ids`), the state
    signature (`initial_state` / `encode`) and one `step` (fed with the start
    tokens and the state of the Keras model) through

    a. the Keras model and `keras_seq.decoding`, eagerly (the state
       signature as a `tf.function` over ids of unknown length, as served);
    b. the reloaded SavedModel, in a fresh Python process in which
       `import keras_seq` raises, and `import keras` too unless the
       SavedModel needs tensorflow_text ops (WordPiece tokenizer; importing
       tensorflow_text imports Keras), so the SavedModel is self-contained;
    c. onnxruntime on `to/onnx/<signature>.onnx` (and `serving_default.onnx`).

    Token ids and lengths must be identical; scores, logits and float state
    must agree within `atol`/`rtol`. With `texts`, the text signature
    (`generate` / `translate`: the SavedModel's, and the ONNX text graph when
    the export has one) must also give the same strings as the Python
    tokenizers around the eager model (a translator exported with
    `unk_replace`: the text of `keras_seq.Translator`).

    Args:
        model: the Keras model that was exported (a `GenerativeModel` of the
            export's task).
        path: the version directory returned by the exporter.
        inputs: int ids `[N, T]`, right-padded with 0 (prompts for a language
            model, sources with their EOS for a translator); every row
            non-empty.
        texts: optional list of strings for the text signature.
        tokenizers: with `texts`: the tokenizer (language model) or
            `(source_tokenizer, target_tokenizer)` (translator).
        settings: per-request decoding settings to check too, e.g.
            `[{"beam_size": 1}, {"beam_size": 5, "n_best": 2}]`: for each,
            the id-level signature runs with those inputs (the export's
            defaults for the others) on every backend, the reference being
            the Keras model with the same settings; reported as
            `"<signature>@beam_size=1/ids"`.
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
        TypeError: `model` is not a `GenerativeModel` of the export's task.
        MissingExtraError: ONNX is checked and onnxruntime is not installed.

    Example:

    ```python
    path = export_translator(model, fr_tok, en_tok, "exported/fra-eng")
    report = check_parity(model, path, source_ids)
    report["onnx"]["step/logits"]      # e.g. 2.4e-07
    ```
    """
    info, onnx_dir = _read_export(path, onnx)
    fns = _reference_functions(model, info)
    ids = np.asarray(inputs)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`inputs` must be int ids [N, T], got {ids.dtype} {ids.shape}.")
    reference, requests = _reference(fns, ids.astype(np.int32), info, list(settings))
    names = fns.names
    if texts is not None:
        reference[names.text], requests[names.text] = _text_reference(fns, texts, tokenizers)
        requests[names.text].update(decoding_settings(info, {}))

    failures = []
    # (b) The SavedModel, in a fresh process that cannot import keras_seq.
    saved, _ = _run_saved_model_subprocess(path, requests, timeout)
    report = {
        "saved_model": _compare_backend(
            reference, saved, {s: s for s in reference}, "SavedModel", atol, rtol, failures
        )
    }
    # (c) onnxruntime: the id-level, state and step graphs, and the text graph
    # when the export has one (word tokenizers) and `texts` are given.
    if onnx_dir is not None:
        with open(os.path.join(onnx_dir, "export.json"), encoding="utf-8") as f:
            graphs = json.load(f)["onnx"]
        text_graph = names.text + ".onnx" in graphs
        default = names.text if text_graph else names.ids
        onnx_requests = {k: v for k, v in requests.items() if k != names.text or text_graph}
        if default in requests:
            onnx_requests["serving_default"] = requests[default]
        got = _run_onnx(onnx_dir, onnx_requests, graphs)
        expected = {s: default if s == "serving_default" else s for s in onnx_requests}
        report["onnx"] = _compare_backend(reference, got, expected, "ONNX", atol, rtol, failures)
    if failures:
        raise ParityError("export parity failed: " + "; ".join(failures))
    return report
