"""`sampled_softmax=N` on every generative model: RNNLanguageModel,
AttentionSeq2Seq and the Transformers (keras_seq.layers.SampledSoftmaxModel).

Oracles: the training loss of a compiled step is the NumPy sampled-softmax
loss of the model's own hidden states with the candidates the step drew; the
loss and accuracy `evaluate` reports are the NumPy full-softmax ones of the
`predict` logits; `step` gives the full-vocabulary logits of the teacher-forced
pass; the weights (and their saved layout) do not depend on N.
"""

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.data import make_lm_dataset
from keras_seq.layers.sampled_softmax import SampledSoftmax
from keras_seq.models import (
    AttentionSeq2Seq,
    MaskedTokenAccuracy,
    RNNLanguageModel,
    Transformer,
    TransformerLanguageModel,
)

PAD, BOS, EOS = 0, 2, 3
VOCAB = 40  # every output vocabulary below
SAMPLED = 8


# -- helpers -----------------------------------------------------------------


def _np_log_uniform(ids, vocab_size):
    ids = np.asarray(ids, "float64")
    return np.log((ids + 2) / (ids + 1)) / np.log(vocab_size + 1)


def _np_log_softmax(logits):
    logits = np.asarray(logits, "float64")
    top = logits.max(-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


def _np_full_loss(logits, labels, ignore_pad=True):
    """Mean token cross-entropy of full logits (over non-PAD labels)."""
    nll = -np.take_along_axis(_np_log_softmax(logits), labels[..., None], -1)[..., 0]
    return nll[labels != PAD].mean() if ignore_pad else nll.mean()


def _np_sampled_loss(hidden, labels, kernel, bias, candidates):
    """Masked mean sampled-softmax loss: logQ-corrected negatives, hits removed."""
    hidden = np.asarray(hidden, "float64").reshape(-1, kernel.shape[0])
    labels = np.asarray(labels).reshape(-1)
    logits = hidden @ kernel + bias
    true = logits[np.arange(len(labels)), labels]
    q = _np_log_uniform(candidates, kernel.shape[1])
    sampled = logits[:, candidates] - np.log(len(candidates) * q)
    sampled = np.where(labels[:, None] == candidates[None, :], -np.inf, sampled)
    both = np.concatenate([true[:, None], sampled], axis=1)
    top = both.max(1, keepdims=True)
    losses = np.log(np.exp(both - top).sum(1)) + top[:, 0] - true
    return losses[labels != PAD].mean()


def _reverse_pairs(n, seed, vocab=VOCAB, max_len=5):
    """Toy translation: target = reversed source; 0-padded contract batches."""
    rng = np.random.default_rng(seed)
    source = np.zeros((n, max_len + 1), "int32")
    target_in = np.zeros((n, max_len + 1), "int32")
    target_out = np.zeros((n, max_len + 1), "int32")
    for i in range(n):
        length = rng.integers(2, max_len + 1)
        tokens = rng.integers(4, vocab, size=length)
        source[i, :length], source[i, length] = tokens, EOS
        target_in[i, 0], target_in[i, 1 : length + 1] = BOS, tokens[::-1]
        target_out[i, :length], target_out[i, length] = tokens[::-1], EOS
    return {"source": source, "target_in": target_in}, target_out


def _counting_stream(n, vocab=VOCAB):
    """A stream that counts 4, 5, ..., vocab-1, 3 (EOS), 4, ... (learnable)."""
    cycle = np.concatenate([np.arange(4, vocab), [EOS]]).astype("int32")
    return np.resize(cycle, n)


def _translator(kind, sampled_softmax=SAMPLED, **kwargs):
    if kind == "attention":
        config = dict(embedding_dim=16, units=24, max_length=8)
        config.update(kwargs)
        return AttentionSeq2Seq(VOCAB, VOCAB, sampled_softmax=sampled_softmax, **config)
    config = dict(d_model=16, num_heads=2, ff_dim=32, num_layers=1, dropout=0.0, max_length=8)
    config.update(kwargs)
    return Transformer(VOCAB, VOCAB, sampled_softmax=sampled_softmax, **config)


def _head_weights(model):
    """(kernel [d, V], bias [V]) of a model's softmax as NumPy arrays."""
    head = model._output_head()
    return np.asarray(head.full_kernel(), "float64"), np.asarray(head.full_bias(), "float64")


def _h5_datasets(path):
    found = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: found.append((name, obj.shape))
            if isinstance(obj, h5py.Dataset)
            else None
        )
    return found


# -- fit trains on the sampled loss (replayed oracle) ------------------------------


def _lm(stateful=False, **kwargs):
    config = dict(embedding_dim=16, units=16, num_layers=1, dropout=0.0)
    config.update(kwargs)
    return RNNLanguageModel(
        VOCAB, sampled_softmax=SAMPLED, stateful=stateful,
        batch_size=4 if stateful else None, **config,
    )


CASES = {
    "rnn-lm": lambda: _lm(),
    "rnn-lm-tied-projected": lambda: _lm(tie_embeddings=True, embedding_dim=12),
    "attention-seq2seq": lambda: _translator("attention"),
    "attention-seq2seq-input-feeding": lambda: _translator(
        "attention", input_feeding=True, cell="gru"
    ),
    "transformer": lambda: _translator("transformer"),
    "transformer-lm": lambda: TransformerLanguageModel(
        VOCAB, d_model=16, num_heads=2, ff_dim=32, num_layers=1, dropout=0.0,
        max_length=8, sampled_softmax=SAMPLED,
    ),
}


def _batch(name):
    if name.endswith("lm") or "-lm-" in name:
        stream = _counting_stream(4 * 7 + 1)
        tokens = np.stack([stream[i * 7 : i * 7 + 6] for i in range(4)])
        labels = np.stack([stream[i * 7 + 1 : i * 7 + 7] for i in range(4)])
        return {"tokens": tokens, "reset": np.ones(4, bool)}, labels
    inputs, target_out = _reverse_pairs(4, seed=3)
    return inputs, target_out


# One XLA-compiled case per family (the rest as tf.function graphs).
JIT_CASES = ("rnn-lm", "attention-seq2seq", "transformer")


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_train_step_loss_is_the_sampled_softmax_of_the_hidden_states(name):
    keras.utils.set_random_seed(11)
    model = CASES[name]()
    jit = name in JIT_CASES
    # Keras's own masked loss for the translators, none for the LMs: the
    # training loss must be the sampled one either way.
    model.compile(keras.optimizers.SGD(0.0), jit_compile=jit)
    x, y = _batch(name)
    head = model._output_head()
    seed_state = np.asarray(head.seed_generator.state)
    loss = float(model.train_on_batch(x, y))

    # Replay the step's draw of candidates from the same generator state
    # (compiled the same way: XLA's counter-based generator differs from TF's).
    head.seed_generator.state.assign(seed_state)
    candidates = np.asarray(tf.function(head.sample_candidates, jit_compile=jit)())
    assert candidates.shape == (SAMPLED,)
    hidden = np.asarray(model(x, training=True), "float64")
    kernel, bias = _head_weights(model)
    assert hidden.shape == y.shape + (kernel.shape[0],)  # hidden states, not logits
    expected = _np_sampled_loss(hidden, y, kernel, bias, candidates)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    # ... and clearly not the full softmax loss of the same weights.
    full = _np_full_loss(np.asarray(model(x, training=False)), y)
    assert abs(loss - full) > 1e-3


@pytest.mark.parametrize("jit", [False, True])
def test_stateful_train_step_carries_state_and_resets_rows_under_sampled_loss(jit):
    # The `keras-seq train-lm` setup: a stateful model (truncated BPTT), the
    # per-row `reset` input and Keras's loss compiled for evaluation; the
    # training loss of the second batch must be the sampled softmax of the
    # hidden states that continue batch 1 in the kept rows and start afresh
    # in the reset rows.
    keras.utils.set_random_seed(5)
    config = dict(embedding_dim=12, units=16, num_layers=2, dropout=0.0, tie_embeddings=True)
    model = RNNLanguageModel(VOCAB, sampled_softmax=SAMPLED, batch_size=4, **config)
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    rng = np.random.default_rng(0)
    for variable in model.trainable_weights:  # large enough for the state to matter
        variable.assign(rng.normal(0.0, 0.5, variable.shape))
    tokens = rng.integers(4, VOCAB, size=(4, 13)).astype("int32")
    first, second = tokens[:, :6], tokens[:, 6:12]
    labels = tokens[:, 7:13]
    reset = np.array([False, True, False, True])
    model.reset_states()
    model.train_on_batch({"tokens": first, "reset": np.ones(4, bool)}, tokens[:, 1:7])
    head = model._output_head()
    seed_state = np.asarray(head.seed_generator.state)
    loss = float(model.train_on_batch({"tokens": second, "reset": reset}, labels))

    head.seed_generator.state.assign(seed_state)
    candidates = np.asarray(tf.function(head.sample_candidates, jit_compile=jit)())
    # Hidden states from a stateless twin: whole prefix for the kept rows,
    # the second chunk alone for the reset ones.
    stateless = RNNLanguageModel(VOCAB, sampled_softmax=SAMPLED, stateful=False, **config)
    stateless.set_weights(model.get_weights())
    carried = np.asarray(stateless(tokens[:, :12], training=True), "float64")[:, 6:]
    fresh = np.asarray(stateless(second, training=True), "float64")
    hidden = np.where(reset[:, None, None], fresh, carried)
    assert not np.allclose(carried[~reset], fresh[~reset], atol=1e-3)  # state matters
    kernel, bias = _head_weights(model)
    expected = _np_sampled_loss(hidden, labels, kernel, bias, candidates)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    # ... which tells apart a dropped state and an ignored reset.
    for wrong in (fresh, carried):
        wrong = _np_sampled_loss(wrong, labels, kernel, bias, candidates)
        assert abs(expected - wrong) > 100 * 1e-4 * expected

    # `evaluate` through the same state variables: the full softmax.
    model.reset_states()
    model.test_on_batch({"tokens": first, "reset": np.ones(4, bool)}, tokens[:, 1:7])
    full = float(model.test_on_batch({"tokens": second, "reset": reset}, labels))
    logits = np.asarray(stateless(tokens[:, :12]), "float64")[:, 6:]
    logits = np.where(reset[:, None, None], np.asarray(stateless(second), "float64"), logits)
    np.testing.assert_allclose(full, _np_full_loss(logits, labels), rtol=1e-4)


# -- training, full-softmax evaluation, full step logits --------------------------------


def _reset_callback(model):
    return keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, l: model.reset_states())


def test_rnn_language_model_trains_sampled_and_evaluates_full_softmax():
    keras.utils.set_random_seed(1)
    batch, seq_len = 4, 10
    train = make_lm_dataset(_counting_stream(4 * 400), batch, seq_len)
    valid = make_lm_dataset(_counting_stream(4 * 60)[7:], batch, seq_len)
    model = RNNLanguageModel(
        VOCAB, embedding_dim=24, units=32, num_layers=1, batch_size=batch,
        sampled_softmax=SAMPLED,
    )
    # The task's compile: Keras's SparseCategoricalCrossentropy (used by
    # `evaluate`; XLA steps are covered by the replay test above).
    model.compile(
        keras.optimizers.Adam(0.02),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[MaskedTokenAccuracy()],
    )
    model.reset_states()
    before = model.evaluate(valid, verbose=0, return_dict=True)["loss"]
    history = model.fit(
        train, epochs=8, shuffle=False, verbose=0, callbacks=[_reset_callback(model)]
    )
    assert np.all(np.isfinite(history.history["loss"]))
    model.reset_states()
    after = model.evaluate(valid, verbose=0, return_dict=True)

    # The full-softmax oracle: predict's logits over the same stream.
    model.reset_states()
    logits = model.predict(valid, verbose=0)
    labels = np.concatenate([y for _, y in valid.as_numpy_iterator()])
    assert logits.shape == labels.shape + (VOCAB,)
    np.testing.assert_allclose(after["loss"], _np_full_loss(logits, labels), rtol=1e-4)
    accuracy = (logits.argmax(-1) == labels).mean()
    np.testing.assert_allclose(after["masked_accuracy"], accuracy, rtol=1e-5)
    assert np.exp(after["loss"]) < 0.2 * np.exp(before)  # full perplexity
    assert after["masked_accuracy"] > 0.9

    # Decoding: full-vocabulary logits from `step`, equal to the full pass.
    prompts = np.array([[4, 5, 6], [20, 21, 0]], "int32")
    state = model.initial_state(prompts)
    step_logits, _ = model.step(model.start_tokens(prompts), state)
    assert step_logits.shape == (2, VOCAB) and step_logits.dtype == tf.float32
    stateless = RNNLanguageModel(
        VOCAB, embedding_dim=24, units=32, num_layers=1, stateful=False,
        sampled_softmax=SAMPLED,
    )
    stateless.set_weights(model.get_weights())
    np.testing.assert_allclose(step_logits[0], stateless(prompts[:1])[0, -1], atol=1e-5)
    np.testing.assert_allclose(step_logits[1], stateless(prompts[1:, :2])[0, -1], atol=1e-5)
    ids = np.asarray(model.generate(prompts, max_length=4).ids)[:, 0]
    np.testing.assert_array_equal(ids[0], [7, 8, 9, 10])  # it learned to count


@pytest.mark.parametrize("kind", ["attention", "transformer"])
def test_translators_train_sampled_and_evaluate_full_softmax(kind):
    keras.utils.set_random_seed(2)
    inputs, target_out = _reverse_pairs(768, seed=0)
    valid_inputs, valid_out = _reverse_pairs(128, seed=1)
    model = _translator(kind)
    kwargs = {"metrics": [MaskedTokenAccuracy()]} if kind == "transformer" else {}
    model.compile(keras.optimizers.Adam(0.01), **kwargs)
    before = _np_full_loss(model.predict(valid_inputs, batch_size=128, verbose=0), valid_out)
    # `fit` before any `evaluate`: the compiled accuracy is first built by the
    # validation at the end (training passes have no logits to score).
    history = model.fit(
        inputs, target_out, batch_size=64, epochs=25, verbose=0,
        validation_data=(valid_inputs, valid_out), validation_batch_size=128,
        validation_freq=25,
    )
    assert np.all(np.isfinite(history.history["loss"]))
    assert "masked_accuracy" not in history.history  # not measured in training
    after = model.evaluate(
        valid_inputs, valid_out, batch_size=128, verbose=0, return_dict=True
    )
    np.testing.assert_allclose(history.history["val_loss"][-1], after["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        history.history["val_masked_accuracy"][-1], after["masked_accuracy"], rtol=1e-5
    )

    logits = model.predict(valid_inputs, batch_size=128, verbose=0)
    assert logits.shape == valid_out.shape + (VOCAB,)
    np.testing.assert_allclose(after["loss"], _np_full_loss(logits, valid_out), rtol=1e-4)
    mask = valid_out != PAD
    accuracy = (logits.argmax(-1) == valid_out)[mask].mean()
    np.testing.assert_allclose(after["masked_accuracy"], accuracy, rtol=1e-5)
    # Full perplexity falls to a fraction (measured: attention 40 -> 1.1,
    # transformer 60 -> 7.4); accuracy far above chance (1/36).
    assert np.exp(after["loss"]) < 0.25 * np.exp(before)
    assert after["masked_accuracy"] > 0.4

    # step: full-vocabulary logits equal to the teacher-forced full pass.
    source, target_in = valid_inputs["source"][:3], valid_inputs["target_in"][:3]
    state = model.initial_state(source)
    stepped = []
    for t in range(target_in.shape[1]):
        step_logits, state = model.step(target_in[:, t], state)
        assert step_logits.shape == (3, VOCAB) and step_logits.dtype == tf.float32
        stepped.append(np.asarray(step_logits))
    forced = np.asarray(model({"source": source, "target_in": target_in}, training=False))
    real = valid_out[:3] != PAD
    np.testing.assert_allclose(np.stack(stepped, 1)[real], forced[real], atol=1e-4)
    result = model.generate(source, max_length=7)
    assert tuple(result.ids.shape) == (3, 1, 7)


def test_attention_loop_path_trains_with_sampled_softmax_and_scheduled_sampling():
    """Input feeding + scheduled sampling: the in-graph loop emits hidden states."""
    keras.utils.set_random_seed(4)
    inputs, target_out = _reverse_pairs(64, seed=4)
    model = _translator(
        "attention", input_feeding=True, teacher_forcing_ratio=0.5, dropout=0.1
    )
    model.compile(keras.optimizers.Adam(0.01))
    assert model(inputs, training=True).shape == target_out.shape + (24,)
    before = model.evaluate(inputs, target_out, batch_size=64, verbose=0, return_dict=True)
    model.fit(inputs, target_out, batch_size=32, epochs=6, verbose=0)
    after = model.evaluate(inputs, target_out, batch_size=64, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"]
    logits = model.predict(inputs, batch_size=64, verbose=0)
    np.testing.assert_allclose(after["loss"], _np_full_loss(logits, target_out), rtol=1e-4)


# -- weights layout, serialization, errors -------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda n: RNNLanguageModel(VOCAB, embedding_dim=8, units=8, stateful=False,
                                   sampled_softmax=n),
        lambda n: RNNLanguageModel(VOCAB, embedding_dim=6, units=8, stateful=False,
                                   tie_embeddings=True, sampled_softmax=n),
        lambda n: AttentionSeq2Seq(VOCAB, VOCAB, embedding_dim=8, units=8, num_layers=2,
                                   sampled_softmax=n),
    ],
    ids=["rnn-lm", "rnn-lm-tied", "attention-seq2seq"],
)
def test_weights_and_saved_layout_do_not_depend_on_sampled_softmax(build, tmp_path):
    full, sampled = build(0), build(SAMPLED)
    assert [(w.name, w.shape) for w in full.weights] == [
        (w.name, w.shape) for w in sampled.weights
    ]
    # The softmax layer owns no weight of its own for any N.
    assert full._output_head().weights == [] and sampled._output_head().weights == []
    full.save_weights(tmp_path / "full.weights.h5")
    sampled.save_weights(tmp_path / "sampled.weights.h5")
    assert _h5_datasets(tmp_path / "full.weights.h5") == _h5_datasets(
        tmp_path / "sampled.weights.h5"
    )
    sampled.load_weights(tmp_path / "full.weights.h5")
    for a, b in zip(sampled.get_weights(), full.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A .keras round trip keeps N.
    path = tmp_path / "model.keras"
    sampled.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.sampled_softmax == SAMPLED
    assert loaded.get_config() == sampled.get_config()
    assert loaded._output_head().num_sampled == SAMPLED


def test_sampled_softmax_not_smaller_than_vocabulary_is_a_clear_error():
    builders = {
        "RNNLanguageModel": lambda n: RNNLanguageModel(VOCAB, stateful=False, sampled_softmax=n),
        "AttentionSeq2Seq": lambda n: AttentionSeq2Seq(50, VOCAB, sampled_softmax=n),
        "Transformer": lambda n: Transformer(50, VOCAB, sampled_softmax=n),
        "TransformerLanguageModel": lambda n: TransformerLanguageModel(
            VOCAB, sampled_softmax=n
        ),
    }
    for owner, build in builders.items():
        for n in (VOCAB, VOCAB + 10):
            with pytest.raises(ValueError, match=rf"{owner}: `sampled_softmax` \({n}\) "
                                                 rf"must be smaller than the output "
                                                 rf"vocabulary \({VOCAB}\)"):
                build(n)
        for bad in (-1, 2.5, True):
            with pytest.raises(ValueError, match=rf"{owner}: `sampled_softmax` must be an int"):
                build(bad)
    with pytest.raises(TypeError, match="tied_dense"):
        SampledSoftmax(VOCAB, 4, tied_dense=keras.layers.Embedding(VOCAB, 4))
    with pytest.raises(ValueError, match="units"):
        SampledSoftmax(VOCAB, 4, tied_dense=keras.layers.Dense(VOCAB + 1))
