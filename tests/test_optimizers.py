"""The optimizers `make_optimizer` builds: the fused Adam step against Keras's own Adam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.training import TrainConfig, make_optimizer
from keras_seq.training.optimizers import _FusedAdamStep


def _gradients(rng, shape, steps):
    # Large, small and tiny gradients: Adam's update is sensitive to the last.
    return [rng.normal(size=shape).astype("float32") * scale for scale in (1.0, 1e-3, 1e-6, 3.0)][:steps]


def _train(optimizer, weights, gradients, sparse_rows=None):
    """Applies `gradients` to a copy of `weights`; rows given: as IndexedSlices."""
    variable = keras.Variable(weights.copy())

    @tf.function
    def apply(gradient):
        if sparse_rows is not None:
            rows = tf.constant(sparse_rows)
            gradient = tf.IndexedSlices(tf.gather(gradient, rows), rows, tf.shape(gradient, out_type=tf.int64))
        optimizer.apply_gradients([(gradient, variable)])

    for gradient in gradients:
        apply(tf.constant(gradient))
    return variable.numpy()


@pytest.mark.parametrize("name", ["adam", "adamw"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "indexed-slices"])
def test_fused_adam_step_equals_keras_adam(name, sparse):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(50, 8)).astype("float32")
    gradients = _gradients(rng, weights.shape, 4)
    config = TrainConfig(optimizer=name, learning_rate=1e-2, warmup_steps=0, clipnorm=1.0,
                         weight_decay=0.01 if name == "adamw" else None)
    fused = make_optimizer(config)
    assert isinstance(fused, _FusedAdamStep)
    oracle_class = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW}[name]
    oracle = oracle_class.from_config(fused.get_config())
    rows = [0, 3, 3, 7, 49] if sparse else None
    got = _train(fused, weights, gradients, rows)
    want = _train(oracle, weights, gradients, rows)
    assert not np.allclose(got, weights)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    if sparse:  # rows without a gradient never move (no weight decay on them for Adam)
        untouched = [i for i in range(50) if i not in rows]
        if name == "adam":
            np.testing.assert_array_equal(got[untouched], weights[untouched])


def test_fused_adam_keeps_keras_step_for_amsgrad():
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(6, 4)).astype("float32")
    gradients = _gradients(rng, weights.shape, 3)
    fused_class = type(make_optimizer(TrainConfig(warmup_steps=0)))
    got = _train(fused_class(learning_rate=1e-2, amsgrad=True), weights, gradients)
    want = _train(keras.optimizers.Adam(learning_rate=1e-2, amsgrad=True), weights, gradients)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_fused_adam_serializes_to_its_own_class():
    optimizer = make_optimizer(TrainConfig(learning_rate=3e-4, warmup_steps=0))
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is type(optimizer)
    assert float(restored.learning_rate) == pytest.approx(3e-4)


def test_fit_takes_the_fused_step_and_a_strategy_keeps_keras_step(monkeypatch):
    calls = []
    fused_kernel = tf.raw_ops.ResourceApplyAdam

    def counting(**kwargs):
        calls.append(1)
        return fused_kernel(**kwargs)

    monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", counting)

    def fit():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
        model.compile(optimizer=make_optimizer(TrainConfig(warmup_steps=0)), loss="mse")
        return model

    fit().fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0)
    assert calls  # traced into the train function, one per weight
    calls.clear()
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        model = fit()
    model.fit(np.ones((8, 4)), np.ones((8, 1)), verbose=0)
    assert not calls
