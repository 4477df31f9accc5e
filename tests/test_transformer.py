"""Tests of the Transformer layers and models (keras_seq.layers.transformer,
keras_seq.models.transformer): NumPy and Keras oracles, cached decoding equal to
the full decoder, causality, serialization, errors, and a toy reverse task."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from keras_seq import decoding, errors
from keras_seq.layers import (
    CachedMultiHeadAttention,
    PositionalEncoding,
    TransformerDecoderLayer,
    TransformerEncoderLayer,
    scaled_dot_product_attention,
)
from keras_seq.models.transformer import Transformer, TransformerLanguageModel

ATOL = 2e-5


def _np_softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def _np_attention(q, k, v, mask):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = np.where(mask, scores, -np.inf)
    # A fully masked row attends uniformly (the layer's documented behaviour).
    all_masked = ~mask.any(-1, keepdims=True)
    scores = np.where(all_masked, 0.0, scores)
    return _np_softmax(scores) @ v


def _small_translator(**kwargs):
    config = dict(d_model=16, num_heads=2, ff_dim=32, num_layers=2, dropout=0.0, max_length=12)
    config.update(kwargs)
    return Transformer(11, 13, **config)


SOURCE = np.array([[5, 6, 7, 8, 3], [4, 9, 3, 0, 0], [10, 3, 0, 0, 0]], "int32")
TARGET_IN = np.array([[2, 8, 7, 6, 5], [2, 9, 4, 0, 0], [2, 10, 12, 11, 0]], "int32")


# -- scaled dot-product attention ------------------------------------------------


def test_scaled_dot_product_attention_matches_numpy():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 4, 8)).astype("float32")
    k = rng.normal(size=(2, 3, 6, 8)).astype("float32")
    v = rng.normal(size=(2, 3, 6, 5)).astype("float32")
    mask = rng.random((2, 1, 4, 6)) > 0.4
    mask[0, 0, 1] = False  # a fully masked row
    out, weights = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    expected = _np_attention(q, k, v, np.broadcast_to(mask, (2, 3, 4, 6)))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    masked_out = np.broadcast_to(~mask & mask.any(-1, keepdims=True), weights.shape)
    assert np.all(weights[masked_out] == 0)
    # Without a mask: plain softmax(QK^T / sqrt(d_k)) V.
    np.testing.assert_allclose(
        scaled_dot_product_attention(q, k, v),
        _np_attention(q, k, v, np.ones((4, 6), bool)),
        atol=1e-5,
    )


def test_cached_attention_matches_keras_multi_head_attention():
    rng = np.random.default_rng(1)
    query = rng.normal(size=(2, 4, 12)).astype("float32")
    value = rng.normal(size=(2, 6, 10)).astype("float32")
    mask = rng.random((2, 4, 6)) > 0.3
    reference = keras.layers.MultiHeadAttention(num_heads=3, key_dim=5, output_shape=12)
    expected = reference(query, value, attention_mask=mask)
    layer = CachedMultiHeadAttention(num_heads=3, head_dim=5)
    layer(query, value)
    for mine, theirs in (
        (layer.query_dense, reference.query_dense),
        (layer.key_dense, reference.key_dense),
        (layer.value_dense, reference.value_dense),
        (layer.output_dense, reference.output_dense),
    ):
        mine.kernel.assign(np.reshape(theirs.kernel.numpy(), mine.kernel.shape))
        mine.bias.assign(np.reshape(theirs.bias.numpy(), mine.bias.shape))
    np.testing.assert_allclose(layer(query, value, attention_mask=mask), expected, atol=1e-5)


# -- positional encoding -----------------------------------------------------------


def test_sinusoidal_positional_encoding_matches_formula_and_offsets():
    layer = PositionalEncoding(max_length=20, d_model=6)
    x = np.zeros((2, 5, 6), "float32")
    pos = np.arange(5)[:, None]
    i = np.arange(3)[None, :]
    expected = np.zeros((5, 6))
    expected[:, 0::2] = np.sin(pos / 10000 ** (2 * i / 6))
    expected[:, 1::2] = np.cos(pos / 10000 ** (2 * i / 6))
    out = np.asarray(layer(x))
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    # offset / explicit positions give the encoding of later positions alone.
    np.testing.assert_allclose(layer(x[:, :2], offset=3)[0], out[0, 3:5], atol=1e-6)
    per_row = np.array([[4], [1]])
    got = np.asarray(layer(x[:, :1], positions=per_row))
    np.testing.assert_allclose(got[:, 0], out[0, [4, 1]], atol=1e-6)


def test_learned_positional_encoding_and_length_errors():
    layer = PositionalEncoding(max_length=4, d_model=3, kind="learned")
    x = np.ones((1, 3, 3), "float32")
    out = layer(x)
    np.testing.assert_allclose(out[0], 1.0 + layer.position_embeddings.numpy()[:3], atol=1e-6)
    with pytest.raises(errors.InputError, match="longer than max_length=4"):
        layer(np.ones((1, 5, 3), "float32"))
    with pytest.raises(errors.InputError, match="out of range"):
        layer(x[:, :1], positions=np.array([[4]]))

    # Dynamic length: checked at run time by a tf.debugging assertion.
    fn = tf.function(lambda t: layer(t), input_signature=[tf.TensorSpec([1, None, 3])])
    fn(tf.ones((1, 4, 3)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at most 4 positions"):
        fn(tf.ones((1, 6, 3)))
    with pytest.raises(ValueError, match="even"):
        PositionalEncoding(8, 5)
    with pytest.raises(ValueError, match="kind"):
        PositionalEncoding(8, 4, kind="rotary")


def test_layer_configs_round_trip():
    layers = [
        PositionalEncoding(8, 4, kind="learned", name="pe"),
        CachedMultiHeadAttention(2, 3, output_dim=5, dropout=0.2),
        TransformerEncoderLayer(8, 2, 16, dropout=0.2, norm_first=False, activation="gelu"),
        TransformerDecoderLayer(8, 4, 16, cross_attention=False, layer_norm_epsilon=1e-6),
    ]
    for layer in layers:
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
        assert type(restored) is type(layer)


def test_heads_must_divide_d_model():
    for cls in (TransformerEncoderLayer, TransformerDecoderLayer):
        with pytest.raises(ValueError, match="must divide"):
            cls(d_model=10, num_heads=3, ff_dim=8)
    with pytest.raises(ValueError, match="must divide"):
        Transformer(10, 10, d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="must divide"):
        TransformerLanguageModel(10, d_model=10, num_heads=4)


# -- layers ------------------------------------------------------------------------


def test_encoder_layer_ignores_padding_and_uses_dropout_only_in_training():
    layer = TransformerEncoderLayer(d_model=8, num_heads=2, ff_dim=16, dropout=0.3)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    y = np.asarray(layer(x, padding_mask=mask))
    x2 = x.copy()
    x2[0, 3:] = rng.normal(size=(2, 8))  # change only padded positions
    y2 = np.asarray(layer(x2, padding_mask=mask))
    np.testing.assert_allclose(y[0, :3], y2[0, :3], atol=1e-5)
    np.testing.assert_allclose(y[1], y2[1], atol=1e-6)
    np.testing.assert_allclose(layer(x, padding_mask=mask), y, atol=1e-6)  # deterministic
    assert not np.allclose(layer(x, padding_mask=mask, training=True), y, atol=1e-3)


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_layer_step_matches_full_call(norm_first):
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.1, norm_first=norm_first)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 8)).astype("float32")
    enc = rng.normal(size=(2, 4, 8)).astype("float32")
    enc_mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)
    full = np.asarray(layer(x, enc, encoder_padding_mask=enc_mask))
    cross_key, cross_value = layer.project_encoder_outputs(enc)
    self_key, self_value = layer.empty_cache(2, 7)
    cache = {"self_key": self_key, "self_value": self_value,
             "cross_key": cross_key, "cross_value": cross_value}
    for t in range(5):
        y, cache = layer.step(x[:, t : t + 1], cache, np.full(2, t, "int32"), enc_mask)
        np.testing.assert_allclose(y[:, 0], full[:, t], atol=ATOL)
    assert cache["self_key"].shape == (2, 2, 7, 4)
    # Positions 5, 6 of the cache were never written.
    assert np.all(np.asarray(cache["self_key"])[:, :, 5:] == 0)


def test_decoder_layer_is_causal():
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.0, cross_attention=False)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 6, 8)).astype("float32")
    y = np.asarray(layer(x))
    for t in range(5):
        changed = x.copy()
        changed[:, t + 1 :] = rng.normal(size=changed[:, t + 1 :].shape)
        y2 = np.asarray(layer(changed))
        np.testing.assert_allclose(y2[:, : t + 1], y[:, : t + 1], atol=1e-5)
        assert not np.allclose(y2[:, t + 1 :], y[:, t + 1 :], atol=1e-3)
    with pytest.raises(ValueError, match="encoder_outputs"):
        TransformerDecoderLayer(8, 2, 16)(x)


# -- models: cached decoding equals the full decoder ------------------------------------


@pytest.mark.parametrize("norm_first", [True, False])
def test_translator_cached_steps_match_full_decoder(norm_first):
    model = _small_translator(norm_first=norm_first, positional_encoding="learned")
    full = np.asarray(model({"source": SOURCE, "target_in": TARGET_IN}))
    assert full.shape == (3, 5, 13) and full.dtype == np.float32
    state = model.initial_state(SOURCE)
    assert state["self_key_0"].shape == (3, 2, 12, 8)
    assert state["cross_key_1"].shape == (3, 2, 5, 8)
    for t in range(TARGET_IN.shape[1]):
        logits, state = model.step(TARGET_IN[:, t], state)
        real = TARGET_IN[:, t] != 0
        np.testing.assert_allclose(np.asarray(logits)[real], full[real, t], atol=ATOL)
    np.testing.assert_array_equal(state["index"], [5, 5, 5])
    # Cross-attention weights never look at source padding.
    attention = np.asarray(state["attention"])
    np.testing.assert_allclose(attention.sum(-1), 1.0, atol=1e-5)
    assert np.all(attention[SOURCE == 0] == 0)


def test_translator_output_is_causal_in_the_target():
    model = _small_translator()
    full = np.asarray(model({"source": SOURCE, "target_in": TARGET_IN}))
    changed = TARGET_IN.copy()
    changed[:, 3:] = 12
    other = np.asarray(model({"source": SOURCE, "target_in": changed}))
    np.testing.assert_allclose(other[:, :3], full[:, :3], atol=1e-5)


def test_language_model_prefill_then_steps_match_full_decoder():
    model = TransformerLanguageModel(
        17, d_model=16, num_heads=4, ff_dim=32, num_layers=2, dropout=0.0, max_length=10
    )
    tokens = np.array([[2, 5, 6, 7, 8, 9, 10], [2, 4, 4, 11, 12, 13, 14], [4, 5, 6, 7, 8, 9, 10]])
    full = np.asarray(model({"tokens": tokens, "reset": np.zeros(3, bool)}))
    prompt = np.array([[2, 5, 6, 0], [2, 0, 0, 0], [0, 0, 0, 0]], "int32")  # lengths 3, 1, 0
    state = model.initial_state(prompt)
    np.testing.assert_array_equal(state["index"], [2, 0, 0])
    start = np.asarray(model.start_tokens(prompt))
    np.testing.assert_array_equal(start, [6, 2, 2])  # empty prompt -> BOS
    logits, state = model.step(start, state)
    np.testing.assert_allclose(logits[0], full[0, 2], atol=ATOL)
    np.testing.assert_allclose(logits[1], full[1, 0], atol=ATOL)
    # Row 2 (empty prompt, BOS at position 0) = the LM on [BOS, ...].
    bos_full = np.asarray(model(np.array([[2, 9]])))
    np.testing.assert_allclose(logits[2], bos_full[0, 0], atol=ATOL)
    logits, state = model.step(np.array([7, 4, 9]), state)
    np.testing.assert_allclose(logits[0], full[0, 3], atol=ATOL)
    np.testing.assert_allclose(logits[1], full[1, 1], atol=ATOL)
    np.testing.assert_allclose(logits[2], bos_full[0, 1], atol=ATOL)


def test_step_compiles_with_xla_and_decoding_runs_in_graph():
    model = _small_translator(num_layers=1)
    state = model.initial_state(SOURCE, cache_length=4)
    eager_logits, eager_state = model.step(TARGET_IN[:, 0], state)
    logits, xla_state = tf.function(model.step, jit_compile=True)(
        tf.constant(TARGET_IN[:, 0]), state
    )
    np.testing.assert_allclose(logits, eager_logits, atol=1e-5)
    for key in eager_state:
        np.testing.assert_allclose(xla_state[key], eager_state[key], atol=1e-5)

    # The whole decoding loop traces in a tf.function (as exports do).
    eager = model.generate(SOURCE, max_length=6)
    graph = tf.function(lambda s: model.generate(s, max_length=6).ids)
    np.testing.assert_array_equal(graph(tf.constant(SOURCE)), eager.ids)
    beam = model.generate(SOURCE, strategy=decoding.BeamSearch(3, num_return=2), max_length=6)
    assert beam.ids.shape == (3, 2, 6)

    lm = TransformerLanguageModel(
        15, d_model=8, num_heads=2, ff_dim=16, num_layers=1, max_length=12
    )
    prompt = np.array([[2, 5, 6], [2, 7, 0]])
    result = lm.generate(prompt, max_length=5)
    assert result.ids.shape == (2, 1, 5)
    graph_ids = tf.function(lambda p: lm.generate(p, max_length=5).ids)(tf.constant(prompt))
    np.testing.assert_array_equal(graph_ids, result.ids)


# -- serialization, errors, loss ---------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"tie_embeddings": True, "sampled_softmax": 5}])
def test_translator_keras_round_trip(tmp_path, kwargs):
    model = _small_translator(**kwargs)
    path = tmp_path / "transformer.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is Transformer
    assert loaded.get_config() == model.get_config()
    assert len(loaded.weights) == len(model.weights)
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)
    if kwargs.get("tie_embeddings"):
        assert model.head.kernel is None  # the kernel is the embedding table


def test_language_model_keras_round_trip(tmp_path):
    model = TransformerLanguageModel(
        19, d_model=8, num_heads=2, ff_dim=16, num_layers=1, max_length=8,
        positional_encoding="learned", norm_first=False,
    )
    path = tmp_path / "lm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    tokens = np.array([[2, 5, 6, 7]])
    np.testing.assert_allclose(loaded(tokens), model(tokens), atol=1e-6)


def test_bad_inputs_raise_clear_errors():
    model = _small_translator()
    with pytest.raises(errors.InputError, match="longer than max_length=12"):
        model({"source": np.ones((1, 13), "int32"), "target_in": TARGET_IN})
    with pytest.raises(TypeError, match="integer token ids"):
        model({"source": SOURCE.astype("float32"), "target_in": TARGET_IN})
    with pytest.raises(ValueError, match="'target_in'"):
        model({"source": SOURCE})
    with pytest.raises(ValueError, match=r"shape \[batch\]"):
        model.step(SOURCE, model.initial_state(SOURCE))
    with pytest.raises(ValueError, match="missing"):
        model.step(SOURCE[:, 0], {"index": np.zeros(3, "int32")})
    with pytest.raises(errors.InputError, match="exceeds"):
        model.generate(SOURCE, max_length=20)
    with pytest.raises(tf.errors.InvalidArgumentError, match="past the key/value cache"):
        state = model.initial_state(SOURCE, cache_length=1)
        for _ in range(2):
            _, state = model.step(SOURCE[:, 0], state)
    with pytest.raises(ValueError, match="computes its own masked loss"):
        model.compile("adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="smaller than"):
        Transformer(10, 10, sampled_softmax=10)
    with pytest.raises(ValueError, match="num_layers"):
        TransformerLanguageModel(10, num_layers=0)


def test_loss_is_masked_mean_over_non_pad_tokens():
    model = _small_translator()
    model.compile("adam")
    target_out = np.array([[8, 7, 6, 5, 3], [9, 4, 3, 0, 0], [10, 12, 11, 3, 0]], "int32")
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    logits = np.asarray(model(inputs), "float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, target_out[..., None], -1)[..., 0]
    expected = nll[target_out != 0].mean()
    loss = model.evaluate(inputs, target_out, batch_size=3, verbose=0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_a_label_smoothed_loss_replaces_the_full_softmax_loss():
    from keras_seq.pipelines.translation_training import label_smoothed_loss

    model = _small_translator()
    model.compile("adam", loss=label_smoothed_loss(0.1))
    target_out = np.array([[8, 7, 6, 5, 3], [9, 4, 3, 0, 0], [10, 12, 11, 3, 0]], "int32")
    inputs = {"source": SOURCE, "target_in": TARGET_IN}
    logits = np.asarray(model(inputs), "float64")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, target_out[..., None], -1)[..., 0]
    smoothed = 0.9 * nll - 0.1 * log_probs.mean(-1)  # (1 - e) NLL + e * uniform cross-entropy
    expected = smoothed[target_out != 0].mean()
    loss = model.evaluate(inputs, target_out, batch_size=3, verbose=0)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    history = model.fit(inputs, target_out, batch_size=3, epochs=1, verbose=0)  # trains on it
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


# -- learning ---------------------------------------------------------------------------


def _reverse_data(rng, n, min_len=3, max_len=6):
    """Toy task: reverse 3-6 symbols from 10 (ids 4..13) -> EOS-terminated."""
    width = max_len + 1
    source = np.zeros((n, width), "int32")
    target_in = np.zeros((n, width), "int32")
    target_out = np.zeros((n, width), "int32")
    for i in range(n):
        length = rng.integers(min_len, max_len + 1)
        seq = rng.integers(4, 14, length)
        source[i, :length], source[i, length] = seq, 3
        target_in[i, 0], target_in[i, 1 : length + 1] = 2, seq[::-1]
        target_out[i, :length], target_out[i, length] = seq[::-1], 3
    return source, target_in, target_out


def test_transformer_learns_to_reverse_sequences():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    source, target_in, target_out = _reverse_data(rng, 6000)
    model = Transformer(
        14, 14, d_model=64, num_heads=4, ff_dim=128, num_layers=1, dropout=0.0, max_length=8
    )
    model.compile(keras.optimizers.Adam(3e-3))
    model.fit({"source": source, "target_in": target_in}, target_out,
              batch_size=64, epochs=5, verbose=0)
    test_source, _, test_out = _reverse_data(rng, 500)
    ids = np.asarray(model.generate(test_source, max_length=8).ids[:, 0])
    expected = np.pad(test_out, [(0, 0), (0, ids.shape[1] - test_out.shape[1])])
    exact = np.all(ids == expected, axis=1)
    assert np.mean(exact) >= 0.95, np.mean(exact)


@pytest.mark.slow
def test_decoding_converts_to_onnx_and_matches_tensorflow():
    import onnxruntime
    import tf2onnx

    keras.utils.set_random_seed(3)
    model = _small_translator()
    lm = TransformerLanguageModel(
        15, d_model=8, num_heads=2, ff_dim=16, num_layers=2, max_length=12
    )
    prompt = np.array([[2, 5, 6], [2, 7, 0]], "int32")
    for fn, inputs in (
        (tf.function(lambda s: model.generate(s, max_length=8).ids), SOURCE),
        (tf.function(lambda p: lm.generate(p, max_length=5).ids), prompt),
    ):
        proto, _ = tf2onnx.convert.from_function(
            fn, input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids")], opset=17
        )
        session = onnxruntime.InferenceSession(proto.SerializeToString())
        (onnx_ids,) = session.run(None, {session.get_inputs()[0].name: inputs})
        np.testing.assert_array_equal(onnx_ids, fn(tf.constant(inputs)))
