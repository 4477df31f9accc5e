"""keras_seq.models.RNNLanguageModel: stateful training and the decoding contract."""

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_seq import decoding
from keras_seq.models import RNNLanguageModel
from keras_seq.text import BOS_ID, EOS_ID

VOCAB = 13
SMALL = dict(vocab_size=VOCAB, embedding_dim=8, units=8, num_layers=2)


def _tokens(batch, time, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(4, VOCAB, size=(batch, time)).astype("int32")


def _pair(cell="lstm", batch_size=4, **kwargs):
    """A stateful model and a stateless twin with the same weights."""
    stateful = RNNLanguageModel(
        **SMALL, cell=cell, batch_size=batch_size, stateful=True, **kwargs
    )
    stateless = RNNLanguageModel(**SMALL, cell=cell, stateful=False, **kwargs)
    stateless.set_weights(stateful.get_weights())
    return stateful, stateless


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


def _ce(logits, labels):
    return float(
        np.mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
        )
    )


def test_trains_on_a_tiny_stream_and_loss_decreases():
    batch, time = 4, 8
    # Four parallel streams of a repeating pattern; row r restarts at batch 3.
    pattern = np.array([4, 5, 6, 7, 8, 9, 10, 11, 12, 3] * 20, "int32")
    streams = np.stack([np.roll(pattern, r) for r in range(batch)])
    xs, ys, resets = [], [], []
    for i in range(6):
        xs.append(streams[:, i * time : (i + 1) * time])
        ys.append(streams[:, i * time + 1 : (i + 1) * time + 1])
        resets.append(np.array([i == 0 or (i == 3 and r == 1) for r in range(batch)]))
    ds = tf.data.Dataset.from_tensor_slices(
        ({"tokens": np.stack(xs), "reset": np.stack(resets)}, np.stack(ys))
    )
    model = RNNLanguageModel(
        VOCAB, embedding_dim=16, units=16, num_layers=1, batch_size=batch,
        dropout=0.1,
    )
    model.compile(
        keras.optimizers.Adam(0.02),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        ds,
        epochs=8,
        shuffle=False,
        verbose=0,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_epoch_begin=lambda epoch, logs: model.reset_states()
            )
        ],
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    assert np.isfinite(losses).all()


def test_stateful_training_across_two_batches_equals_one_long_batch():
    model, reference = _pair("gru")
    tokens = _tokens(4, 13, seed=1)
    x, y = tokens[:, :12], tokens[:, 1:]
    full = reference(x)
    # Compiled train steps with a zero learning rate: the weights stay fixed,
    # so the losses of the two chunks must average to the long batch's loss.
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    no_reset = np.zeros(4, bool)
    loss_a = model.train_on_batch({"tokens": x[:, :6], "reset": no_reset}, y[:, :6])
    loss_b = model.train_on_batch({"tokens": x[:, 6:], "reset": no_reset}, y[:, 6:])
    _close((loss_a + loss_b) / 2, _ce(full, y), tol=1e-4)
    # And the forward pass over two chunks equals one long pass.
    model.reset_states()
    chunks = [model(x[:, :5]), model({"tokens": x[:, 5:]})]
    _close(np.concatenate(chunks, axis=1), full)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_reset_restarts_only_the_flagged_rows(cell):
    model, reference = _pair(cell)
    tokens = _tokens(4, 10, seed=2)
    step = tf.function(lambda inputs: model(inputs, training=False))
    step({"tokens": tokens[:, :4], "reset": np.ones(4, bool)})
    reset = np.array([False, True, True, False])
    got = np.asarray(step({"tokens": tokens[:, 4:], "reset": reset}))
    fresh = np.asarray(reference(tokens[:, 4:]))
    continued = np.asarray(reference(tokens))[:, 4:]
    _close(got[reset], fresh[reset])
    _close(got[~reset], continued[~reset])

    # reset_states(mask) from Python, then reset_states() for all rows.
    model.reset_states()
    model(tokens[:, :4])
    model.reset_states(np.array([True, False, False, False]))
    got = np.asarray(model(tokens[:, 4:]))
    _close(got[:1], fresh[:1])
    _close(got[1:], continued[1:])
    model.reset_states()
    _close(model(tokens[:, 4:]), fresh)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_step_token_by_token_equals_full_forward(cell):
    model, reference = _pair(cell)
    model(_tokens(4, 3, seed=9))  # give the training state non-zero values
    carried = [np.asarray(v) for layer in model.rnn_layers for v in layer.states]
    tokens = _tokens(2, 7, seed=3)  # N=2: any batch size, unlike training
    full = reference(tokens)
    state = model.initial_state(tokens[:, :1])
    start = model.start_tokens(tokens[:, :1])
    np.testing.assert_array_equal(start, tokens[:, 0])
    logits = []
    inputs = start
    for t in range(7):
        step_logits, state = model.step(inputs, state)
        logits.append(step_logits)
        if t + 1 < 7:
            inputs = tokens[:, t + 1]
    _close(np.stack(logits, axis=1), full)
    assert all(v.dtype == tf.float32 for v in state.values())
    assert sorted(state) == (
        ["c_0", "c_1", "h_0", "h_1"] if cell == "lstm" else ["h_0", "h_1"]
    )
    # Decoding never touched the training state.
    after = [np.asarray(v) for layer in model.rnn_layers for v in layer.states]
    for a, b in zip(carried, after):
        np.testing.assert_array_equal(a, b)


def test_initial_state_on_padded_prompts_equals_each_prompt_alone():
    model, _ = _pair("lstm")
    lengths = [5, 1, 3, 0]
    rows = [_tokens(1, n, seed=10 + i)[0] for i, n in enumerate(lengths)]
    padded = np.zeros((4, 6), "int32")
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
    state = model.initial_state(padded)
    start = model.start_tokens(padded)
    logits, _ = model.step(start, state)
    for i, row in enumerate(rows):
        if len(row) == 0:  # empty prompt: zero state, decoding starts at BOS
            assert int(start[i]) == BOS_ID
            for value in state.values():
                np.testing.assert_array_equal(np.asarray(value)[i], 0.0)
            continue
        alone = model.initial_state(row[None])
        for name in state:
            _close(np.asarray(state[name])[i], np.asarray(alone[name])[0])
        assert int(start[i]) == row[-1]
        # The first step's logits are the full forward pass's last position.
        stateless = RNNLanguageModel(**SMALL, stateful=False)
        stateless.set_weights(model.get_weights())
        _close(np.asarray(logits)[i], np.asarray(stateless(row[None]))[0, -1])


def test_greedy_generation_with_carried_state_equals_recomputing_prefix():
    model, reference = _pair("gru")
    prompts = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32")
    result = model.generate(prompts, max_length=6, end_id=EOS_ID)
    assert result.ids.shape == (2, 1, 6)
    for i, prompt in enumerate(prompts):
        prefix = [int(t) for t in prompt if t != 0]
        for t in range(int(result.lengths[i, 0])):
            logits = reference(np.array([prefix], "int32"))[0, -1]
            expected = int(np.argmax(logits))
            assert int(result.ids[i, 0, t]) == expected
            prefix.append(expected)
    # The same through decode() directly, and beam search of width 1.
    direct = decoding.decode(
        model.step,
        model.initial_state(prompts),
        model.start_tokens(prompts),
        end_id=EOS_ID,
        max_length=6,
    )
    np.testing.assert_array_equal(direct.ids, result.ids)
    beam = model.generate(prompts, 6, strategy=decoding.BeamSearch(1))
    np.testing.assert_array_equal(beam.ids, result.ids)


def test_initial_state_step_and_generate_trace_under_xla():
    model = RNNLanguageModel(**dict(SMALL, num_layers=1), stateful=False)
    prompts = np.array([[5, 6, 7], [8, 0, 0]], "int32")

    @tf.function(jit_compile=True)
    def prepare(p):
        return model.initial_state(p), model.start_tokens(p)

    state, start = prepare(prompts)
    eager_state = model.initial_state(prompts)
    for name in state:
        _close(state[name], eager_state[name])
    step = tf.function(model.step, jit_compile=True)
    _close(step(start, state)[0], model.step(start, eager_state)[0])
    generate = tf.function(
        lambda p: model.generate(p, max_length=4).ids, jit_compile=True
    )
    np.testing.assert_array_equal(
        generate(prompts), model.generate(prompts, max_length=4).ids
    )


@pytest.mark.parametrize("embedding_dim", [8, 6])
def test_tied_embeddings_share_one_variable(embedding_dim):
    config = dict(SMALL, embedding_dim=embedding_dim)
    model = RNNLanguageModel(**config, tie_embeddings=True, stateful=False)
    # Only the table [V, E] and the output bias [V] have a vocabulary axis.
    shapes = sorted(
        tuple(w.shape) for w in model.trainable_weights if w.shape[0] == VOCAB
    )
    assert shapes == [(VOCAB,), (VOCAB, embedding_dim)]
    untied = RNNLanguageModel(**config, stateful=False)
    assert model.count_params() < untied.count_params()
    # The table receives gradient from the softmax for tokens never input.
    tokens = np.full((2, 3), 5, "int32")
    with tf.GradientTape() as tape:
        logits = model(tokens)
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                np.full((2, 3), 7), logits, from_logits=True
            )
        )
    grad = tape.gradient(loss, model.embedding.embeddings)
    grad = tf.convert_to_tensor(grad)
    assert np.abs(np.asarray(grad)[7]).max() > 0
    # Step equals the full forward pass with the projection too.
    state = model.initial_state(tokens[:, :1])
    step_logits, _ = model.step(tokens[:, 0], state)
    _close(step_logits, logits[:, 0])


def test_save_load_round_trip(tmp_path):
    model = RNNLanguageModel(
        **SMALL, cell="gru", tie_embeddings=True, dropout=0.2, batch_size=2
    )
    tokens = _tokens(2, 5, seed=4)
    expected = model(tokens)
    path = str(tmp_path / "lm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, RNNLanguageModel)
    assert loaded.get_config() == model.get_config()
    _close(loaded(tokens), expected)  # fresh state after loading
    prompts = np.array([[5, 6, 0], [7, 0, 0]], "int32")
    np.testing.assert_array_equal(
        loaded.generate(prompts, 4).ids, model.generate(prompts, 4).ids
    )


def test_initial_state_and_step_export_as_saved_model_signatures(tmp_path):
    model = RNNLanguageModel(**SMALL, batch_size=3, tie_embeddings=True)
    names = ["c_0", "c_1", "h_0", "h_1"]

    class Exported(tf.Module):
        def __init__(self, lm):
            super().__init__()
            self.lm = lm

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def initial_state(self, prompt_ids):
            state = dict(self.lm.initial_state(prompt_ids))
            state["start_ids"] = self.lm.start_tokens(prompt_ids)
            return state

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.int32),
                {n: tf.TensorSpec([None, 8], tf.float32) for n in names},
            ]
        )
        def step(self, tokens, state):
            logits, state = self.lm.step(tokens, state)
            return {"logits": logits, **state}

    module = Exported(model)
    path = str(tmp_path / "lm_savedmodel")
    tf.saved_model.save(module, path)
    restored = tf.saved_model.load(path)
    prompts = np.array([[5, 6, 7], [8, 0, 0]], "int32")
    state = restored.initial_state(prompts)
    start = state.pop("start_ids")
    out = restored.step(start, state)
    logits, expected_state = model.step(
        model.start_tokens(prompts), model.initial_state(prompts)
    )
    _close(out["logits"], logits)
    for n in names:
        _close(out[n], expected_state[n])


def test_logits_stay_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        for tie in (False, True):
            model = RNNLanguageModel(
                **SMALL, tie_embeddings=tie, batch_size=2, dropout=0.1
            )
            tokens = _tokens(2, 4)
            assert model(tokens, training=True).dtype == "float32"
            state = model.initial_state(tokens)
            logits, state = model.step(model.start_tokens(tokens), state)
            assert logits.dtype == "float32"
            assert all(v.dtype == tf.float32 for v in state.values())
    finally:
        keras.config.set_dtype_policy(previous)


def test_bad_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="batch_size"):
        RNNLanguageModel(**SMALL)  # stateful without a batch size
    with pytest.raises(ValueError, match="cell"):
        RNNLanguageModel(**SMALL, cell="transformer", stateful=False)
    with pytest.raises(ValueError, match="dropout"):
        RNNLanguageModel(**SMALL, dropout=1.0, stateful=False)
    model = RNNLanguageModel(**SMALL, batch_size=2)
    with pytest.raises(ValueError, match="batch of 2 rows"):
        model(_tokens(3, 4))
    with pytest.raises(TypeError, match="integer"):
        model.initial_state(np.zeros((2, 4), "float32"))
    with pytest.raises(TypeError, match="integer"):
        model.step(np.zeros((2,), "float32"), model.initial_state(_tokens(2, 3)))
    with pytest.raises(ValueError, match="shape"):
        model(np.zeros((2,), "int32"))
    with pytest.raises(ValueError, match="keys"):
        model({"tokens": _tokens(2, 4), "resets": np.zeros(2, bool)})
    with pytest.raises(ValueError, match="reset"):
        model({"tokens": _tokens(2, 4), "reset": np.zeros((2, 1), bool)})
    with pytest.raises(ValueError, match="missing"):
        model.step(np.array([4, 5]), {"h_0": np.zeros((2, 8), "float32")})
    with pytest.raises(ValueError, match="prompt_ids"):
        model.initial_state(np.array([4, 5]))


def test_fit_refuses_a_short_last_batch_instead_of_broadcasting():
    model = RNNLanguageModel(**dict(SMALL, num_layers=1), batch_size=4)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tokens = _tokens(5, 6)
    # 5 rows batched by 4 without drop_remainder: the batch dimension is
    # dynamic in the compiled step and the last batch has 1 row.
    ds = tf.data.Dataset.from_tensor_slices(
        ({"tokens": tokens, "reset": np.zeros(5, bool)}, tokens)
    ).batch(4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="batch of 4 rows"):
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
