"""Exports of the Transformer translator and language model (keras_seq.export).

Oracles: `keras_seq.export.check_parity` (Keras eager vs the SavedModel in a
fresh process where `import keras_seq` raises vs onnxruntime), the models'
own `generate`, and the teacher-forced full decoder: a client
that chains the exported `step` (SavedModel and ONNX), feeding each
`next_state_*` back as `state_*`, must reproduce the logits of the Keras model
run over the whole prefix, i.e. the key/value cache that travels through the
exported state is equivalent to recomputing everything.
"""

import json
import os

import keras
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from export_helpers import (ENGLISH, FRENCH, SOURCES, assert_generate_ids_matches_model,
                            assert_parity, assert_translate_matches_model, encode_sources,
                            export_with_beam, pad, translator_tokenizers)

from keras_seq import export
from keras_seq.models import Transformer, TransformerLanguageModel
from keras_seq.text import BOS_ID, EOS_ID, WordTokenizer

LM_TEXTS = ["the cat sat on the mat .", "the dog ate the bone .",
            "a bird flew over the old house .", "my sister ate an apple ."]
PROMPTS = ["the cat", "A bird flew over", "my sister", "zebra dog"]
MAX_LENGTH = 6


def _spread(model, seed, eos_bias):
    """Wider random weights and a raised EOS bias, so that the untrained
    model's outputs differ from row to row and some rows end early."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            w + rng.normal(scale=0.3, size=w.shape).astype("float32") if w.ndim > 1 else w
            for w in model.get_weights()
        ]
    )
    bias = model.head.bias.numpy()
    bias[EOS_ID] += eos_bias
    bias[0] -= 10.0  # PAD would be masked out as an input of the full decoder
    model.head.bias.assign(bias)


def _onnx_session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(
        path, sess_options=options, providers=["CPUExecutionProvider"]
    )


def _run_onnx(session, feeds):
    strip = lambda name: name[:-2] if name.endswith(":0") else name  # noqa: E731
    inputs = {n.name: np.asarray(feeds[strip(n.name)]) for n in session.get_inputs()}
    names = [n.name for n in session.get_outputs()]
    return {strip(n): v for n, v in zip(names, session.run(names, inputs))}


def _chain_steps(run_step, start, tokens_per_step):
    """Drives `step` over given input tokens: [(logits [N, V])] per position."""
    state = {k: v for k, v in start.items() if k != "start_ids"}
    logits = []
    for tokens in tokens_per_step:
        out = dict(run_step({"tokens": np.asarray(tokens, np.int32), **state}))
        logits.append(np.asarray(out.pop("logits")))
        state = {k[len("next_"):]: np.asarray(v) for k, v in out.items()}
    return np.stack(logits, axis=1)


@pytest.fixture(scope="module")
def translator(tmp_path_factory):
    source, target = translator_tokenizers()
    keras.utils.set_random_seed(7)
    # Trained briefly with a sampled softmax (so that the outputs depend on the
    # source and end at various lengths); exports and decodes full logits.
    model = Transformer(
        source.vocab_size, target.vocab_size, d_model=16, num_heads=2, ff_dim=32,
        num_layers=1, dropout=0.0, max_length=10, sampled_softmax=5,
    )
    model.compile(keras.optimizers.Adam(0.02))
    model.fit(
        {"source": pad(source.encode(FRENCH, add_eos=True)),
         "target_in": pad(target.encode(ENGLISH, add_bos=True))},
        pad(target.encode(ENGLISH, add_eos=True)),
        epochs=20, batch_size=5, verbose=0,
    )
    to = tmp_path_factory.mktemp("exported") / "transformer"
    return export_with_beam(model, source, target, to, MAX_LENGTH)


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    tokenizer = WordTokenizer().fit(LM_TEXTS)
    keras.utils.set_random_seed(3)
    model = TransformerLanguageModel(
        tokenizer.vocab_size, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
        dropout=0.0, max_length=14, tie_embeddings=True, positional_encoding="learned",
    )
    _spread(model, seed=2, eos_bias=0.5)
    to = tmp_path_factory.mktemp("exported") / "transformer_lm"
    path = export.export_language_model(model, tokenizer, to, max_length=MAX_LENGTH)
    return model, tokenizer, to, path


def test_translator_parity_keras_saved_model_onnx(translator):
    model, source, target, to, path = translator
    source_ids = encode_sources(source)
    report = export.check_parity(
        model, path, source_ids, texts=SOURCES, tokenizers=(source, target)
    )
    assert_parity(
        report,
        equal=("translate_ids/ids", "translate_ids/lengths", "encode/state_index",
               "step/next_state_index"),
        close=("step/logits", "translate_ids/scores", "encode/state_cross_key_0",
               "step/next_state_self_value_0"),
        strings="translate/translations",
    )

    # The model's own beam search, eagerly, and the state layout on disk.
    got = assert_translate_matches_model(model, path, source_ids, source, target, MAX_LENGTH)
    lengths = got["lengths"].numpy()
    assert len({tuple(r) for r in got["ids"].numpy()}) > 1
    assert lengths.min() < MAX_LENGTH  # some hypotheses end with EOS
    with open(os.path.join(path, export.EXPORT_INFO)) as f:
        state = {s["name"]: s["shape"] for s in json.load(f)["state"]}
    assert state["state_self_key_0"] == [None, 2, MAX_LENGTH, 8]  # cache = max_length
    # The beam search runs inside one ONNX Loop; `step` has no loop.
    import onnx

    ops = lambda name: {n.op_type for n in onnx.load(str(to / "onnx" / name)).graph.node}  # noqa: E731
    assert "Loop" in ops("translate_ids.onnx") and "Loop" not in ops("step.onnx")


def test_translator_exported_step_with_cache_equals_full_decoder(translator):
    model, source, _, to, path = translator
    source_ids = encode_sources(source)
    target_in = np.array(
        [[BOS_ID, 5, 6, 7, 8, 4], [BOS_ID, 9, 4, 0, 0, 0], [BOS_ID, 7, 7, 7, 0, 0],
         [BOS_ID, 10, 11, 0, 0, 0]], np.int32,
    )
    full = np.asarray(model({"source": source_ids, "target_in": target_in}, training=False))
    steps = [target_in[:, t] for t in range(MAX_LENGTH)]
    real = target_in != 0

    loaded = tf.saved_model.load(path)
    start = {k: v.numpy() for k, v in
             loaded.signatures["encode"](source_ids=tf.constant(source_ids)).items()}
    step = loaded.signatures["step"]
    saved = _chain_steps(
        lambda feeds: {k: v.numpy() for k, v in
                       step(**{k: tf.constant(v) for k, v in feeds.items()}).items()},
        start, steps,
    )
    assert saved.shape == full.shape  # full-vocabulary logits
    np.testing.assert_allclose(saved[real], full[real], atol=1e-4, rtol=1e-4)

    encode = _onnx_session(str(to / "onnx" / "encode.onnx"))
    onnx_step = _onnx_session(str(to / "onnx" / "step.onnx"))
    start = _run_onnx(encode, {"source_ids": source_ids})
    chained = _chain_steps(lambda feeds: _run_onnx(onnx_step, feeds), start, steps)
    np.testing.assert_allclose(chained[real], full[real], atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # a second full export (SavedModel + 4 ONNX graphs): ~30 s CPU
def test_language_model_parity_and_streaming_step(language_model):
    model, tokenizer, to, path = language_model
    prompt_ids = pad(tokenizer.encode(PROMPTS))
    report = export.check_parity(
        model, path, prompt_ids, texts=PROMPTS, tokenizers=tokenizer
    )
    assert_parity(
        report,
        equal=("generate_ids/ids", "generate_ids/lengths", "initial_state/start_ids",
               "initial_state/state_index"),
        close=("step/logits", "generate_ids/scores", "initial_state/state_self_key_0"),
        strings="generate/generated",
    )
    assert_generate_ids_matches_model(model, path, prompt_ids, MAX_LENGTH)

    # A streaming client over the ONNX graphs: prefill, then greedy steps,
    # each step's logits equal to the full decoder over the prefix so far.
    initial = _onnx_session(str(to / "onnx" / "initial_state.onnx"))
    onnx_step = _onnx_session(str(to / "onnx" / "step.onnx"))
    out = _run_onnx(initial, {"prompt_ids": prompt_ids})
    tokens = out.pop("start_ids")
    state = out
    prefixes = [[int(t) for t in row if t] for row in prompt_ids]
    for _ in range(3):
        out = _run_onnx(onnx_step, {"tokens": tokens, **state})
        logits = out.pop("logits")
        state = {k[len("next_"):]: v for k, v in out.items()}
        for row, prefix in enumerate(prefixes):
            full = np.asarray(model(np.array([prefix], np.int32)))[0, -1]
            np.testing.assert_allclose(logits[row], full, atol=1e-4, rtol=1e-4)
        tokens = logits.argmax(-1).astype(np.int32)
        for row, token in enumerate(tokens):
            prefixes[row].append(int(token))
