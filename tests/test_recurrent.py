"""keras_seq.layers.{SimpleRNN, LSTM, GRU} against Keras's own layers."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_seq.layers import GRU, LSTM, SimpleRNN

UNITS = 5
FEATURES = 4

# (name, our class, Keras class, extra kwargs)
CASES = [
    ("lstm", LSTM, keras.layers.LSTM, {}),
    ("gru", GRU, keras.layers.GRU, {}),
    ("gru_reset_before", GRU, keras.layers.GRU, {"reset_after": False}),
    ("simple_rnn", SimpleRNN, keras.layers.SimpleRNN, {}),
]
IDS = [case[0] for case in CASES]


def _inputs(batch=3, time=6, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, time, FEATURES)).astype(
        "float32"
    )


def _right_padded_mask(lengths, time):
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def _pair(ours_cls, keras_cls, kwargs, batch=3, **layer_kwargs):
    """A Keras layer and ours with the same (copied) weights."""
    reference_kwargs = {k: v for k, v in layer_kwargs.items() if k != "stateful"}
    reference = keras_cls(UNITS, **kwargs, **reference_kwargs)  # stateless
    reference.build((None, None, FEATURES))
    ours = ours_cls(UNITS, **kwargs, **layer_kwargs)
    ours.build((batch if ours.stateful else None, None, FEATURES))
    ours.set_weights(reference.get_weights())
    return ours, reference


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,ours_cls,keras_cls,kwargs", CASES, ids=IDS)
def test_stateless_matches_keras_on_masked_right_padded_batch(
    name, ours_cls, keras_cls, kwargs
):
    x = _inputs()
    mask = _right_padded_mask([6, 3, 1], 6)
    for return_sequences in (True, False):
        ours, reference = _pair(
            ours_cls,
            keras_cls,
            kwargs,
            return_sequences=return_sequences,
            return_state=True,
        )
        expected = reference(x, mask=mask)
        got = ours(x, mask=mask)
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            _close(a, b)
        # `forward` (portable loop, no state variables) gives the same.
        output, states = ours.forward(x, mask=mask)
        _close(output, expected[0])
        for a, b in zip(states, expected[1:]):
            _close(a, b)
        # Explicit initial_state too.
        init = [np.full((3, UNITS), 0.3, "float32")] * (len(expected) - 1)
        _close(
            ours(x, initial_state=init, mask=mask)[0],
            reference(x, initial_state=init, mask=mask)[0],
        )


def test_weight_layout_is_keras_layout():
    for _, ours_cls, keras_cls, kwargs in CASES:
        ours, reference = _pair(ours_cls, keras_cls, kwargs)
        assert [w.shape for w in ours.weights] == [
            w.shape for w in reference.weights
        ]
        assert [w.name for w in ours.weights] == [w.name for w in reference.weights]


@pytest.mark.parametrize("name,ours_cls,keras_cls,kwargs", CASES, ids=IDS)
def test_stateful_chunks_equal_one_long_sequence(name, ours_cls, keras_cls, kwargs):
    x = _inputs(batch=3, time=8, seed=1)
    ours, reference = _pair(
        ours_cls, keras_cls, kwargs, return_sequences=True, stateful=True
    )
    expected = reference(x)
    chunks = [ours(x[:, :3]), ours(x[:, 3:5]), ours(x[:, 5:])]
    _close(np.concatenate(chunks, axis=1), expected)
    # reset_state() starts over.
    ours.reset_state()
    _close(ours(x[:, :3]), expected[:, :3])


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
@pytest.mark.parametrize(
    "name,ours_cls,keras_cls,kwargs", [CASES[0], CASES[1]], ids=IDS[:2]
)
def test_per_row_reset_inside_compiled_step(
    name, ours_cls, keras_cls, kwargs, jit_compile
):
    x = _inputs(batch=4, time=6, seed=2)
    ours, reference = _pair(
        ours_cls, keras_cls, kwargs, batch=4, return_sequences=True, stateful=True
    )

    @tf.function(jit_compile=jit_compile)
    def chunk(sequences, reset):
        return ours(sequences, reset=reset)

    first = chunk(x[:, :3], tf.constant([False] * 4))
    reset = np.array([True, False, True, False])
    second = chunk(x[:, 3:], tf.constant(reset))
    _close(first, reference(x[:, :3]))
    fresh = reference(x[:, 3:])  # reset rows: a fresh start on the chunk
    continued = reference(x)[:, 3:]  # other rows: the long sequence goes on
    _close(np.asarray(second)[reset], np.asarray(fresh)[reset])
    _close(np.asarray(second)[~reset], np.asarray(continued)[~reset])


def test_reset_applies_to_explicit_initial_state_of_stateless_layer():
    x = _inputs(batch=2, time=4)
    ours, reference = _pair(LSTM, keras.layers.LSTM, {}, return_sequences=True)
    init = [np.ones((2, UNITS), "float32"), np.ones((2, UNITS), "float32")]
    got = ours(x, initial_state=init, reset=np.array([True, False]))
    _close(got[:1], reference(x[:1]))  # reset row: zero initial state
    _close(got[1:], reference(x[1:], initial_state=[s[1:] for s in init]))


@pytest.mark.parametrize("name,ours_cls,keras_cls,kwargs", CASES, ids=IDS)
def test_reset_state_with_row_mask(name, ours_cls, keras_cls, kwargs):
    x = _inputs(batch=3, time=6, seed=3)
    ours, reference = _pair(
        ours_cls, keras_cls, kwargs, return_sequences=True, stateful=True
    )
    ours(x[:, :2])
    before = [np.asarray(v) for v in ours.states]
    mask = np.array([False, True, False])
    ours.reset_state(mask)
    after = [np.asarray(v) for v in ours.states]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a[mask], 0.0)
        np.testing.assert_array_equal(a[~mask], b[~mask])
        assert np.abs(b[mask]).max() > 0
    got = np.asarray(ours(x[:, 2:]))
    _close(got[mask], np.asarray(reference(x[:, 2:]))[mask])
    _close(got[~mask], np.asarray(reference(x))[~mask, 2:])
    with pytest.raises(ValueError, match="reset_state"):
        ours.reset_state(np.array([True, False]))


def test_batch_size_mismatch_raises_instead_of_broadcasting():
    x = _inputs(batch=3, time=4)
    layer = SimpleRNN(UNITS, stateful=True, return_sequences=True)
    layer(x)
    before = np.asarray(layer.states[0])
    # Static batch dimension: ValueError naming the sizes.
    with pytest.raises(ValueError, match="batch of 3 rows"):
        layer(x[:1])
    # Dynamic batch dimension (e.g. a dataset without drop_remainder): the
    # runtime assertion fires with the same message (keras issue 21183).
    run = tf.function(
        lambda s: layer(s),
        input_signature=[tf.TensorSpec([None, None, FEATURES], tf.float32)],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch of 3 rows"):
        run(x[:1])
    np.testing.assert_array_equal(np.asarray(layer.states[0]), before)
    assert run(x).shape == (3, 4, UNITS)
    # Under XLA (assertions compiled out) it still fails instead of
    # broadcasting the single row over all three state rows.
    run_xla = tf.function(
        lambda s: layer(s),
        input_signature=[tf.TensorSpec([None, None, FEATURES], tf.float32)],
        jit_compile=True,
    )
    with pytest.raises(tf.errors.InvalidArgumentError):
        run_xla(x[:1])
    # A `reset` vector of the wrong length is refused too.
    with pytest.raises(ValueError, match="reset"):
        layer(x, reset=np.array([True]))
    with pytest.raises(ValueError, match="reset"):
        layer(x, reset=np.ones((3, 1), bool))


@pytest.mark.parametrize("name,ours_cls,keras_cls,kwargs", CASES, ids=IDS)
def test_single_step_equals_full_layer(name, ours_cls, keras_cls, kwargs):
    x = _inputs(batch=2, time=5, seed=4)
    # A stateful layer (batch 4): `step` uses any N and leaves the state alone.
    ours, reference = _pair(
        ours_cls, keras_cls, kwargs, batch=4, return_sequences=True, stateful=True
    )
    reference_full = keras_cls(
        UNITS, return_sequences=True, return_state=True, **kwargs
    )
    reference_full.build((None, None, FEATURES))
    reference_full.set_weights(reference.get_weights())
    expected = reference_full(x)
    states = [np.zeros((2, UNITS), "float32") for _ in expected[1:]]
    outputs = []
    for t in range(x.shape[1]):
        y, states = ours.step(x[:, t], states)
        outputs.append(y)
    _close(np.stack(outputs, axis=1), expected[0])
    for a, b in zip(states, expected[1:]):
        _close(a, b)
    for variable in ours.states:
        np.testing.assert_array_equal(np.asarray(variable), 0.0)
    with pytest.raises(ValueError, match="state"):
        ours.step(x[:, 0], states + states)


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backward"])
def test_lstm_hoisted_loop_matches_keras_in_training_with_gradients(go_backwards):
    # Without a GPU our LSTM projects the inputs of all steps before the loop;
    # outputs, states and gradients must be Keras's own (masked batch, training).
    assert LSTM.hoist_input_projection
    x = _inputs(seed=5)
    mask = _right_padded_mask([6, 4, 2], 6)
    ours, reference = _pair(
        LSTM, keras.layers.LSTM, {}, return_sequences=True, return_state=True,
        go_backwards=go_backwards,
    )
    weights = np.random.default_rng(6).normal(size=(3, 6, UNITS)).astype("float32")

    def loss_and_grads(layer):
        with tf.GradientTape() as tape:
            y, h, c = layer(x, mask=mask, training=True)
            loss = tf.reduce_sum(y * weights) + tf.reduce_sum(h * c)
        return [y, h, c, *tape.gradient(loss, layer.trainable_weights)]

    for a, b in zip(loss_and_grads(ours), loss_and_grads(reference)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_step_traces_under_xla():
    layer = LSTM(UNITS)
    layer.build((None, None, FEATURES))
    step = tf.function(layer.step, jit_compile=True)
    x = _inputs(batch=2, time=1)[:, 0]
    zeros = [tf.zeros((2, UNITS))] * 2
    y, states = step(x, zeros)
    y_eager, _ = layer.step(x, zeros)
    _close(y, y_eager)


@pytest.mark.parametrize("name,ours_cls,keras_cls,kwargs", CASES, ids=IDS)
def test_dropout_only_in_training(name, ours_cls, keras_cls, kwargs):
    x = _inputs(batch=3, time=5, seed=5)
    ours, _ = _pair(
        ours_cls,
        keras_cls,
        kwargs,
        return_sequences=True,
        dropout=0.5,
        recurrent_dropout=0.3,
        seed=1,
    )
    plain = keras_cls(UNITS, return_sequences=True, **kwargs)
    plain.build((None, None, FEATURES))
    plain.set_weights(ours.get_weights())
    expected = plain(x)
    _close(ours(x), expected)
    _close(ours(x, training=False), expected)
    trained_a = np.asarray(ours(x, training=True))
    trained_b = np.asarray(ours(x, training=True))
    assert np.abs(trained_a - np.asarray(expected)).max() > 1e-3
    assert np.abs(trained_a - trained_b).max() > 1e-3  # fresh masks per call


def test_irnn():
    layer = SimpleRNN.irnn(UNITS, return_sequences=True)
    layer.build((None, None, FEATURES))
    assert layer.get_config()["activation"] == "relu"
    np.testing.assert_array_equal(
        np.asarray(layer.cell.recurrent_kernel), np.eye(UNITS, dtype="float32")
    )
    np.testing.assert_array_equal(np.asarray(layer.cell.bias), 0.0)
    # With a zero input the identity recurrence copies a non-negative state.
    h0 = np.abs(np.random.default_rng(0).normal(size=(2, UNITS))).astype("float32")
    y = layer(np.zeros((2, 3, FEATURES), "float32"), initial_state=[h0])
    _close(y[:, -1], h0)


def test_save_load_keras_round_trip(tmp_path):
    inputs = keras.Input((None, FEATURES))
    x = LSTM(UNITS, return_sequences=True, dropout=0.1, recurrent_dropout=0.1)(
        inputs
    )
    x = GRU(UNITS, return_sequences=True, reset_after=False)(x)
    x = SimpleRNN.irnn(UNITS)(x)
    model = keras.Model(inputs, x)
    path = str(tmp_path / "rnn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer_types = [type(layer) for layer in loaded.layers[1:]]
    assert layer_types == [LSTM, GRU, SimpleRNN]
    assert loaded.layers[1].dropout == 0.1
    assert loaded.layers[2].reset_after is False
    x = _inputs()
    _close(loaded(x), model(x))

    # A stateful model (static batch) round-trips as well; its carried state
    # is not a weight and starts at zero after loading.
    inputs = keras.Input((None, FEATURES), batch_size=3)
    stateful = keras.Model(
        inputs, GRU(UNITS, stateful=True, return_sequences=True)(inputs)
    )
    fresh = np.asarray(stateful(x))
    stateful(x)
    path = str(tmp_path / "stateful.keras")
    stateful.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[1].stateful
    _close(loaded(x), fresh)


def test_config_round_trip():
    for _, ours_cls, _, kwargs in CASES:
        layer = ours_cls(UNITS, return_state=True, stateful=True, **kwargs)
        clone = ours_cls.from_config(layer.get_config())
        assert type(clone) is ours_cls
        assert clone.get_config() == layer.get_config()
