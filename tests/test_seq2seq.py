"""AttentionSeq2Seq: teacher forcing vs step-by-step decoding, masking, training,
decoding, saving."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.decoding import BeamSearch
from keras_seq.models import (
    AttentionSeq2Seq,
    MaskedTokenAccuracy,
    masked_loss,
    masked_sparse_categorical_crossentropy,
)

PAD, BOS, EOS = 0, 2, 3
SRC_VOCAB, TGT_VOCAB = 13, 11

SOURCE = np.array(
    [[5, 6, 7, EOS, 0, 0, 0], [4, 5, 6, 7, 8, 9, EOS], [12, EOS, 0, 0, 0, 0, 0]], "int32"
)
TARGET_IN = np.array([[BOS, 5, 6, 0, 0], [BOS, 4, 5, 6, 7], [BOS, 9, 0, 0, 0]], "int32")
TARGET_OUT = np.array([[5, 6, EOS, 0, 0], [4, 5, 6, 7, EOS], [9, EOS, 0, 0, 0]], "int32")

CONFIGS = {
    "bilstm-bahdanau": dict(),
    "bigru-2layer-luong-dot": dict(cell="gru", num_layers=2, attention="luong-dot"),
    "lstm-luong-general-uni": dict(bidirectional=False, attention="luong-general"),
    "bilstm-2layer-concat-feed": dict(
        num_layers=2, attention="luong-concat", input_feeding=True
    ),
    "gru-bahdanau-feed-uni": dict(cell="gru", bidirectional=False, input_feeding=True),
}


def _model(**kwargs):
    kwargs.setdefault("embedding_dim", 8)
    kwargs.setdefault("units", 12)
    return AttentionSeq2Seq(SRC_VOCAB, TGT_VOCAB, **kwargs)


def _np_masked_ce(labels, logits):
    logits = logits.astype("float64")
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    mask = labels != PAD
    return nll[mask].mean()


def _step_logits(model, source, target_in):
    """Runs `step` over target_in one token at a time -> [B, T, V]."""
    state = model.initial_state(source)
    outputs = []
    for t in range(target_in.shape[1]):
        logits, state = model.step(target_in[:, t], state)
        outputs.append(np.asarray(logits))
    return np.stack(outputs, 1), state


@pytest.mark.parametrize("name", list(CONFIGS))
def test_teacher_forced_loss_equals_step_by_step(name):
    keras.utils.set_random_seed(1)
    model = _model(**CONFIGS[name])
    logits = np.asarray(model({"source": SOURCE, "target_in": TARGET_IN}))
    assert logits.shape == (3, 5, TGT_VOCAB) and logits.dtype == np.float32
    stepped, state = _step_logits(model, SOURCE, TARGET_IN)
    mask = TARGET_OUT != PAD
    np.testing.assert_allclose(stepped[mask], logits[mask], rtol=1e-5, atol=1e-5)
    loss = float(masked_sparse_categorical_crossentropy(TARGET_OUT, logits))
    loss_steps = float(masked_sparse_categorical_crossentropy(TARGET_OUT, stepped))
    np.testing.assert_allclose(loss, loss_steps, rtol=1e-6)
    np.testing.assert_allclose(loss, _np_masked_ce(TARGET_OUT, logits), rtol=1e-5)
    # The state keeps its layout from step to step.
    assert set(state) == set(model.initial_state(SOURCE))


@pytest.mark.parametrize("name", ["bilstm-bahdanau", "bilstm-2layer-concat-feed"])
def test_source_padding_does_not_change_real_outputs(name):
    keras.utils.set_random_seed(2)
    model = _model(**CONFIGS[name])
    for row in (0, 2):
        length = int((SOURCE[row] != PAD).sum())
        alone = {"source": SOURCE[row : row + 1, :length], "target_in": TARGET_IN[row : row + 1]}
        # Extra padding columns too, beyond the batch's own padding.
        padded_source = np.pad(SOURCE, [(0, 0), (0, 3)])
        batch = {"source": padded_source, "target_in": TARGET_IN}
        real = TARGET_OUT[row] != PAD
        got_alone = np.asarray(model(alone))[0][real]
        got_batch = np.asarray(model(batch))[row][real]
        np.testing.assert_allclose(got_batch, got_alone, rtol=1e-5, atol=1e-5)
        attention = np.asarray(model.attention_map(padded_source, TARGET_IN))
        assert np.all(attention[row][:, length:] == 0.0)
        np.testing.assert_allclose(attention[row].sum(-1), 1.0, rtol=1e-5)


def test_masked_loss_and_accuracy_ignore_padding():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, TGT_VOCAB)).astype("float32")
    expected = _np_masked_ce(TARGET_OUT, logits)
    np.testing.assert_allclose(
        float(masked_sparse_categorical_crossentropy(TARGET_OUT, logits)), expected, rtol=1e-5
    )
    np.testing.assert_allclose(float(masked_loss()(TARGET_OUT, logits)), expected, rtol=1e-5)
    # Changing logits at padded positions changes nothing.
    noisy = logits + (TARGET_OUT == PAD)[..., None] * 100.0 * rng.normal(size=logits.shape)
    np.testing.assert_allclose(
        float(masked_sparse_categorical_crossentropy(TARGET_OUT, noisy.astype("float32"))),
        expected,
        rtol=1e-5,
    )
    metric = MaskedTokenAccuracy()
    metric.update_state(TARGET_OUT, logits)
    mask = TARGET_OUT != PAD
    hits = (logits.argmax(-1) == TARGET_OUT) & mask
    np.testing.assert_allclose(float(metric.result()), hits.sum() / mask.sum(), rtol=1e-6)
    perfect = MaskedTokenAccuracy()
    perfect.update_state(TARGET_OUT, np.eye(TGT_VOCAB, dtype="float32")[np.maximum(TARGET_OUT, 1)])
    assert float(perfect.result()) == 1.0  # padded positions predicted wrong: ignored
    all_padding = np.zeros((2, 3), "int32")
    assert float(masked_sparse_categorical_crossentropy(all_padding, logits[:2, :3])) == 0.0


def test_free_running_training_matches_greedy_steps():
    """teacher_forcing_ratio=0: in training every input is the previous prediction."""
    keras.utils.set_random_seed(3)
    model = _model(teacher_forcing_ratio=0.0, input_feeding=True)
    logits = np.asarray(model({"source": SOURCE, "target_in": TARGET_IN}, training=True))
    state = model.initial_state(SOURCE)
    tokens = np.full((3,), BOS, "int32")
    expected = []
    for _ in range(TARGET_IN.shape[1]):
        step_logits, state = model.step(tokens, state)
        expected.append(np.asarray(step_logits))
        tokens = np.asarray(step_logits).argmax(-1).astype("int32")
    np.testing.assert_allclose(logits, np.stack(expected, 1), rtol=1e-5, atol=1e-5)
    # In inference mode the same model is teacher forced.
    teacher = np.asarray(model({"source": SOURCE, "target_in": TARGET_IN}))
    stepped = _step_logits(model, SOURCE, TARGET_IN)[0]
    np.testing.assert_allclose(teacher, stepped, rtol=1e-5, atol=1e-5)


def test_loop_path_trains_with_dropout_and_scheduled_sampling():
    keras.utils.set_random_seed(4)
    model = _model(input_feeding=True, dropout=0.2, teacher_forcing_ratio=0.5, num_layers=2,
                   bidirectional=False)
    model.compile(keras.optimizers.Adam(0.01))
    data = {"source": SOURCE, "target_in": TARGET_IN}
    before = model.evaluate(data, TARGET_OUT, verbose=0, return_dict=True)["loss"]
    history = model.fit(data, TARGET_OUT, epochs=15, batch_size=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    after = model.evaluate(data, TARGET_OUT, verbose=0, return_dict=True)["loss"]
    assert after < before
    # Dropout makes training-mode outputs random, inference-mode ones not.
    a = np.asarray(model(data, training=True))
    b = np.asarray(model(data, training=True))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(model(data), model(data))


def _reverse_task(n, seed):
    rng = np.random.default_rng(seed)
    source = np.zeros((n, 7), "int32")
    target_in = np.zeros((n, 7), "int32")
    target_out = np.zeros((n, 7), "int32")
    for i in range(n):
        length = rng.integers(3, 7)
        tokens = rng.integers(4, 12, size=length)
        source[i, :length], source[i, length] = tokens, EOS
        target_in[i, 0], target_in[i, 1 : length + 1] = BOS, tokens[::-1]
        target_out[i, :length], target_out[i, length] = tokens[::-1], EOS
    return source, target_in, target_out


@pytest.fixture(scope="module")
def reverse_model():
    """A small model trained on the toy reverse task (shared: one fit trace)."""
    keras.utils.set_random_seed(0)
    source, target_in, target_out = _reverse_task(2000, seed=0)
    model = AttentionSeq2Seq(12, 12, embedding_dim=16, units=32, max_length=10)
    model.compile(keras.optimizers.Adam(0.01))
    start = time.time()
    model.fit(
        {"source": source, "target_in": target_in}, target_out,
        batch_size=64, epochs=6, verbose=0,
    )
    model.train_seconds = time.time() - start
    return model


def test_learns_to_reverse_sequences(reverse_model):
    """Toy reverse task (vocab 8 + specials, lengths 3-6): >= 95% exact match."""
    model, train_seconds = reverse_model, reverse_model.train_seconds
    test_source, _, test_out = _reverse_task(200, seed=1)
    result = model.generate(test_source, max_length=8)
    ids = np.asarray(result.ids)[:, 0]  # [200, 8]
    expected = np.pad(test_out, [(0, 0), (0, 1)])
    exact = np.mean(np.all(ids == expected, axis=1))
    assert exact >= 0.95, f"exact match {exact:.3f} after {train_seconds:.1f}s"
    lengths = (test_out != PAD).sum(1)  # tokens + EOS
    right = np.all(ids == expected, axis=1)
    np.testing.assert_array_equal(np.asarray(result.lengths)[right, 0], lengths[right])
    # Beam search finds the same translations, and attention looks at the
    # mirrored source position (the point of the task).
    beam = model.generate(test_source[:20], strategy=BeamSearch(3), max_length=8,
                               return_attention=True)
    assert np.mean(np.all(np.asarray(beam.ids)[:, 0] == expected[:20], axis=1)) >= 0.95
    attention = np.asarray(beam.attention)[:, 0]  # [20, 8, 7]
    peaks, hits = 0, 0
    for i in range(20):
        n = lengths[i] - 1  # output tokens before EOS
        for t in range(n):
            peaks += 1
            hits += attention[i, t].argmax() == n - 1 - t
    assert hits / peaks >= 0.8


@pytest.mark.parametrize("name", ["bilstm-bahdanau", "bilstm-2layer-concat-feed"])
def test_untrained_translation_shapes_and_attention(name):
    keras.utils.set_random_seed(5)
    model = _model(**CONFIGS[name])
    greedy = model.generate(SOURCE, max_length=6, return_attention=True)
    assert tuple(greedy.ids.shape) == (3, 1, 6) and greedy.ids.dtype == tf.int32
    assert tuple(greedy.lengths.shape) == (3, 1) and tuple(greedy.scores.shape) == (3, 1)
    assert tuple(greedy.attention.shape) == (3, 1, 6, 7)
    beam = model.generate(SOURCE, strategy=BeamSearch(3, num_return=2), max_length=6,
                               return_attention=True)
    assert tuple(beam.ids.shape) == (3, 2, 6) and tuple(beam.attention.shape) == (3, 2, 6, 7)
    for result in (greedy, beam):
        ids, lengths = np.asarray(result.ids), np.asarray(result.lengths)
        attention = np.asarray(result.attention)
        source_mask = SOURCE != PAD
        for b in range(3):
            for r in range(ids.shape[1]):
                n = lengths[b, r]
                if n == 0:  # padding entry of the n-best list
                    continue
                rows = attention[b, r]
                np.testing.assert_allclose(rows[:n].sum(-1), 1.0, rtol=1e-5)
                assert np.all(rows[n:] == 0.0)
                assert np.all(rows[:, ~source_mask[b]] == 0.0)
                # The weights recorded while decoding are those of a teacher-forced
                # pass over the chosen tokens.
                target_in = np.concatenate([[BOS], ids[b, r, : n - 1]])[None].astype("int32")
                forced = np.asarray(model.attention_map(SOURCE[b : b + 1], target_in))[0]
                np.testing.assert_allclose(rows[:n], forced, rtol=1e-4, atol=1e-6)


def test_compiled_decoding_matches_eager():
    """initial_state/step trace into tf.function (whole beam search) and XLA."""
    keras.utils.set_random_seed(6)
    model = _model(attention="luong-concat", input_feeding=True)
    # Spread the untrained logits so that no two candidates are near-ties that
    # float round-off between eager and graph kernels could flip.
    kernel = model.output_projection.kernel
    kernel.assign(kernel * 30.0)
    signature = [tf.TensorSpec([None, None], tf.int32)]
    strategy = BeamSearch(2, num_return=2)
    eager = model.generate(SOURCE, strategy=strategy, max_length=5, return_attention=True)
    fn = tf.function(
        lambda s: model.generate(s, strategy=strategy, max_length=5, return_attention=True),
        input_signature=signature,
    )
    compiled = fn(tf.constant(SOURCE))
    np.testing.assert_array_equal(compiled.ids, eager.ids)
    np.testing.assert_array_equal(compiled.lengths, eager.lengths)
    np.testing.assert_allclose(compiled.scores, eager.scores, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(compiled.attention, eager.attention, atol=1e-5)

    # XLA: the encoder (masked bidirectional LSTM) and one decoder step.
    state = model.initial_state(SOURCE)
    xla_state = tf.function(model.initial_state, jit_compile=True, input_signature=signature)(
        tf.constant(SOURCE)
    )
    for key in state:
        np.testing.assert_allclose(
            np.asarray(xla_state[key], "float32"), np.asarray(state[key], "float32"), atol=1e-5
        )
    logits, next_state = model.step(TARGET_IN[:, 0], state)
    xla_logits, xla_next = tf.function(model.step, jit_compile=True)(
        tf.constant(TARGET_IN[:, 0]), state
    )
    np.testing.assert_allclose(xla_logits, logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(xla_next["attention"], next_state["attention"], atol=1e-5)


def test_state_layout():
    model = _model(**CONFIGS["bilstm-2layer-concat-feed"])
    state = model.initial_state(SOURCE)
    shapes = {k: (tuple(v.shape), v.dtype.name) for k, v in state.items()}
    assert shapes == {
        "encoder_outputs": ((3, 7, 24), "float32"),
        "projected_keys": ((3, 7, 12), "float32"),
        "source_mask": ((3, 7), "bool"),
        "decoder_h_0": ((3, 12), "float32"),
        "decoder_c_0": ((3, 12), "float32"),
        "decoder_h_1": ((3, 12), "float32"),
        "decoder_c_1": ((3, 12), "float32"),
        "input_feed": ((3, 12), "float32"),
        "attention": ((3, 7), "float32"),
    }
    gru = _model(**CONFIGS["bigru-2layer-luong-dot"])
    # luong-dot with a bidirectional encoder projects the memory to `units`.
    assert set(gru.initial_state(SOURCE)) == {
        "encoder_outputs", "projected_keys", "source_mask", "decoder_h_0", "decoder_h_1",
        "attention",
    }
    assert tuple(gru.initial_state(SOURCE)["encoder_outputs"].shape) == (3, 7, 12)


def test_save_load_round_trip(reverse_model, tmp_path):
    model = reverse_model
    source, target_in, target_out = _reverse_task(8, seed=2)
    data = {"source": source, "target_in": target_in}
    path = str(tmp_path / "seq2seq.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AttentionSeq2Seq)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(data), model(data))
    np.testing.assert_array_equal(
        loaded.generate(data["source"], max_length=5).ids,
        model.generate(data["source"], max_length=5).ids,
    )
    # Compiled with the masked loss, with the optimizer state restored.
    np.testing.assert_allclose(
        loaded.evaluate(data, target_out, verbose=0, return_dict=True)["loss"],
        model.evaluate(data, target_out, verbose=0, return_dict=True)["loss"],
        rtol=1e-6,
    )
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a, b)


def test_untrained_deep_model_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(8)
    model = _model(cell="gru", num_layers=2, input_feeding=True, dropout=0.1,
                   attention="luong-general", max_length=20)
    data = {"source": SOURCE, "target_in": TARGET_IN}
    path = str(tmp_path / "deep.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded(data), model(data))
    state = loaded.initial_state(SOURCE)
    logits, _ = loaded.step(TARGET_IN[:, 0], state)
    expected, _ = model.step(TARGET_IN[:, 0], model.initial_state(SOURCE))
    np.testing.assert_array_equal(logits, expected)


def test_mixed_precision_logits_are_float32():
    model = _model(dtype="mixed_float16")
    logits = model({"source": SOURCE, "target_in": TARGET_IN})
    assert logits.dtype == "float32"
    state = model.initial_state(SOURCE)
    step_logits, state = model.step(TARGET_IN[:, 0], state)
    assert step_logits.dtype == "float32" and state["attention"].dtype == "float32"
    assert np.all(np.isfinite(np.asarray(logits)))


def test_bad_input_raises_clear_errors():
    model = _model(max_length=6)
    with pytest.raises(TypeError, match="integer"):
        model.initial_state(SOURCE[:, :6].astype("float32"))
    with pytest.raises(ValueError, match="max_length"):
        model.initial_state(SOURCE)  # length 7 > 6
    with pytest.raises(ValueError, match="'source'"):
        model({"src": SOURCE, "target_in": TARGET_IN})
    with pytest.raises(ValueError, match="tokens"):
        model.step(TARGET_IN[:, :1], model.initial_state(SOURCE[:, :6]))
    for bad in (
        dict(cell="rnn"), dict(attention="luong"), dict(num_layers=0),
        dict(dropout=1.0), dict(teacher_forcing_ratio=1.5), dict(units=0),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _model(**bad)
