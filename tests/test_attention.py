"""BahdanauAttention / LuongAttention against NumPy references with the same weights."""

import numpy as np
import pytest
import keras

from keras_seq.layers import BahdanauAttention, LuongAttention

B, S, TQ, DQ, DK, DV = 3, 6, 4, 5, 7, 3
LENGTHS = np.array([6, 4, 1])


def _inputs(seed=0, dk=DK):
    rng = np.random.default_rng(seed)
    query3 = rng.normal(size=(B, TQ, DQ)).astype("float32")
    keys = rng.normal(size=(B, S, dk)).astype("float32")
    values = rng.normal(size=(B, S, DV)).astype("float32")
    mask = np.arange(S)[None, :] < LENGTHS[:, None]
    return query3, keys, values, mask


def _np_softmax_masked(scores, mask):
    # scores [B, Tq, S], mask [B, S]: softmax over the real positions only.
    m = mask[:, None, :]
    shifted = np.where(m, scores, -np.inf)
    shifted = shifted - shifted.max(-1, keepdims=True)
    e = np.where(m, np.exp(shifted), 0.0)
    return e / e.sum(-1, keepdims=True)


def _np_attention(layer, query3, keys, values, mask):
    w = {v.path.split("/")[-1]: np.asarray(v, "float64") for v in layer.weights}
    q, k = query3.astype("float64"), keys.astype("float64")
    if isinstance(layer, BahdanauAttention) or layer.score == "concat":
        # v^T tanh(W1 q + W2 k)
        hidden = np.tanh(
            (q @ w["query_kernel"])[:, :, None, :] + (k @ w["key_kernel"])[:, None, :, :]
        )
        scores = hidden @ w["score_vector"]
    elif layer.score == "dot":
        scores = np.einsum("btd,bsd->bts", q, k)
    else:  # general: q^T W_a k
        scores = np.einsum("btd,bsd->bts", q, k @ w["kernel"])
    weights = _np_softmax_masked(scores, mask)
    return weights @ values.astype("float64"), weights


LAYERS = [
    lambda: BahdanauAttention(8),
    lambda: LuongAttention("general"),
    lambda: LuongAttention("concat", units=6),
    lambda: LuongAttention("concat"),
]


@pytest.mark.parametrize("make", LAYERS, ids=["bahdanau", "general", "concat6", "concat"])
@pytest.mark.parametrize("query_rank", [2, 3])
def test_matches_numpy_reference(make, query_rank):
    query3, keys, values, mask = _inputs()
    layer = make()
    query = query3 if query_rank == 3 else query3[:, 0]
    context, weights = layer(query, keys, values=values, mask=mask)
    ref_context, ref_weights = _np_attention(layer, query3, keys, values, mask)
    if query_rank == 2:
        ref_context, ref_weights = ref_context[:, 0], ref_weights[:, 0]
    assert context.shape == ref_context.shape and weights.shape == ref_weights.shape
    assert weights.dtype == "float32"
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, ref_context, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("query_rank", [2, 3])
def test_luong_dot_matches_numpy_and_values_default_to_keys(query_rank):
    query3, keys, _, mask = _inputs(dk=DQ)
    layer = LuongAttention("dot")
    query = query3 if query_rank == 3 else query3[:, 0]
    context, weights = layer(query, keys, mask=mask)
    ref_context, ref_weights = _np_attention(layer, query3, keys, keys, mask)
    if query_rank == 2:
        ref_context, ref_weights = ref_context[:, 0], ref_weights[:, 0]
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(context, ref_context, rtol=1e-5, atol=1e-5)
    assert context.shape[-1] == DQ


@pytest.mark.parametrize("make", LAYERS[:3], ids=["bahdanau", "general", "concat6"])
def test_masking_gives_exact_zeros_and_normalised_rows(make):
    query3, keys, values, mask = _inputs(1)
    layer = make()
    _, weights = layer(query3, keys, values=values, mask=mask)
    weights = np.asarray(weights)
    padded = np.broadcast_to(~mask[:, None, :], weights.shape)
    assert np.all(weights[padded] == 0.0)  # exactly zero, not just small
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert np.all(weights[~padded] > 0.0)


def test_padded_positions_do_not_influence_the_result():
    query3, keys, values, mask = _inputs(2)
    layer = BahdanauAttention(8)
    context, weights = layer(query3, keys, values=values, mask=mask)
    garbage_keys = np.where(mask[..., None], keys, 1e4).astype("float32")
    garbage_values = np.where(mask[..., None], values, -1e4).astype("float32")
    context2, weights2 = layer(query3, garbage_keys, values=garbage_values, mask=mask)
    np.testing.assert_array_equal(weights, weights2)
    np.testing.assert_array_equal(context, context2)


def test_fully_masked_row_is_zero_not_nan():
    query3, keys, values, mask = _inputs(3)
    mask[1] = False
    for layer in (BahdanauAttention(4), LuongAttention("general")):
        context, weights = layer(query3, keys, values=values, mask=mask)
        context, weights = np.asarray(context), np.asarray(weights)
        assert np.all(np.isfinite(context)) and np.all(np.isfinite(weights))
        assert np.all(weights[1] == 0.0) and np.all(context[1] == 0.0)
        np.testing.assert_allclose(weights[[0, 2]].sum(-1), 1.0, rtol=1e-6)


def test_no_mask_attends_everywhere():
    query3, keys, values, _ = _inputs(4)
    layer = LuongAttention("general")
    _, weights = layer(query3, keys, values=values)
    ref = _np_attention(layer, query3, keys, values, np.ones((B, S), bool))[1]
    np.testing.assert_allclose(weights, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", LAYERS[:3], ids=["bahdanau", "general", "concat6"])
def test_precomputed_key_projection_per_step(make):
    """Decoding: project the keys once, then attend step by step."""
    query3, keys, values, mask = _inputs(5)
    layer = make()
    full_context, full_weights = layer(query3, keys, values=values, mask=mask)
    projected = layer.project_keys(keys)
    for t in range(TQ):
        context, weights = layer(
            query3[:, t], keys, values=values, mask=mask, projected_keys=projected
        )
        np.testing.assert_allclose(weights, full_weights[:, t], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(context, full_context[:, t], rtol=1e-5, atol=1e-6)
    # The precomputed projection is what is used: a different one changes scores.
    _, other = layer(
        query3[:, 0], keys, values=values, mask=mask, projected_keys=projected * 2.0
    )
    assert not np.allclose(other, full_weights[:, 0])


def test_project_keys_shapes():
    _, keys, _, _ = _inputs()
    bahdanau = BahdanauAttention(8)
    bahdanau.build((None, DQ), (None, None, DK))
    assert tuple(bahdanau.project_keys(keys).shape) == (B, S, 8)
    general = LuongAttention("general")
    general.build((None, DQ), (None, None, DK))
    assert tuple(general.project_keys(keys).shape) == (B, S, DQ)
    dot = LuongAttention("dot")
    dot.build((None, DK), (None, None, DK))
    np.testing.assert_array_equal(dot.project_keys(keys), keys)


def test_bad_arguments_raise_clear_errors():
    query3, keys, values, mask = _inputs()
    with pytest.raises(ValueError, match="score"):
        LuongAttention("cosine")
    with pytest.raises(ValueError, match="units"):
        BahdanauAttention(0)
    with pytest.raises(ValueError, match="same size"):
        LuongAttention("dot")(query3, keys)
    with pytest.raises(ValueError, match="rank"):
        BahdanauAttention(4)(query3[:, :, :, None], keys)
    with pytest.raises(ValueError, match="keys"):
        BahdanauAttention(4)(query3, keys[:, 0])
    with pytest.raises(ValueError, match="not built"):
        BahdanauAttention(4).project_keys(keys)
    with pytest.raises(ValueError, match="mask"):
        BahdanauAttention(4)(query3, keys, mask=mask[:, None, :])


@pytest.mark.parametrize("make", LAYERS[:3], ids=["bahdanau", "general", "concat6"])
def test_config_round_trip(make):
    query3, keys, values, mask = _inputs(6)
    layer = make()
    expected = layer(query3, keys, values=values, mask=mask)
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    assert clone.built  # rebuilt from the serialized build config
    clone.set_weights(layer.get_weights())
    got = clone(query3, keys, values=values, mask=mask)
    for a, b in zip(expected, got):
        np.testing.assert_array_equal(a, b)


def test_in_a_functional_model_with_saving(tmp_path):
    query3, keys, values, mask = _inputs(7)
    q = keras.Input((TQ, DQ))
    k = keras.Input((S, DK))
    v = keras.Input((S, DV))
    m = keras.Input((S,), dtype="bool")
    context, weights = LuongAttention("concat", units=4)(q, k, values=v, mask=m)
    model = keras.Model([q, k, v, m], [context, weights])
    expected = model([query3, keys, values, mask])
    path = str(tmp_path / "attention.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(expected, loaded([query3, keys, values, mask])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
