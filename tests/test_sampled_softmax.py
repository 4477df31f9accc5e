"""Tests of keras_seq.layers.SampledSoftmax: oracles (Keras Dense, NumPy,
tf.nn.sampled_softmax_loss with the same candidates), the log-uniform sampler,
consistency with the full softmax, XLA, gradients, and Keras `fit` wiring."""

import numpy as np
import pytest
import tensorflow as tf

import keras

from keras_seq.layers.sampled_softmax import (
    LogUniformPrior,
    SampledSoftmax,
    log_uniform_probabilities,
    log_uniform_sample,
)
from keras_seq.models.seq2seq import MaskedTokenAccuracy
from keras_seq.models.transformer import TransformerLanguageModel


def _head(vocab_size=50, num_sampled=10, dim=8, seed=0, **kwargs):
    head = SampledSoftmax(vocab_size, num_sampled, seed=seed, **kwargs)
    head.build((None, dim))
    rng = np.random.default_rng(seed)
    head.kernel.assign(rng.normal(size=(dim, vocab_size)).astype("float32"))
    head.bias.assign(rng.normal(size=(vocab_size,)).astype("float32"))
    return head


def _np_log_uniform(ids, vocab_size):
    ids = np.asarray(ids, "float64")
    return np.log((ids + 2) / (ids + 1)) / np.log(vocab_size + 1)


def _np_sampled_loss(hidden, labels, kernel, bias, candidates, remove_hits=True):
    """Reference: true logit uncorrected, sampled logits minus log(m Q), hits removed."""
    m = len(candidates)
    logits = hidden @ kernel + bias  # [n, V]
    true = logits[np.arange(len(labels)), labels]
    sampled = logits[:, candidates] - np.log(m * _np_log_uniform(candidates, kernel.shape[1]))
    if remove_hits:
        sampled = np.where(labels[:, None] == candidates[None, :], -np.inf, sampled)
    all_logits = np.concatenate([true[:, None], sampled], axis=1)
    top = all_logits.max(1, keepdims=True)
    return np.log(np.exp(all_logits - top).sum(1)) + top[:, 0] - true


def test_construction_errors():
    with pytest.raises(ValueError, match="smaller than `vocab_size`"):
        SampledSoftmax(100, 100)
    with pytest.raises(ValueError, match="smaller than `vocab_size`"):
        SampledSoftmax(100, 150)
    with pytest.raises(ValueError, match=">= 0"):
        SampledSoftmax(100, -1)
    with pytest.raises(TypeError, match="int"):
        SampledSoftmax(100, 2.5)
    with pytest.raises(TypeError, match="Embedding"):
        SampledSoftmax(100, 5, tied_embedding=keras.layers.Dense(3))
    with pytest.raises(ValueError, match="num_sampled=0"):
        _head(num_sampled=0).sampled_token_loss(np.ones((2, 8), "float32"), np.ones(2, "int32"))


def test_full_logits_match_keras_dense():
    head = _head()
    dense = keras.layers.Dense(50)
    dense.build((None, 8))
    dense.set_weights([head.kernel.numpy(), head.bias.numpy()])
    hidden = np.random.default_rng(1).normal(size=(3, 4, 8)).astype("float32")
    logits = head(hidden)
    assert logits.shape == (3, 4, 50) and logits.dtype == tf.float32
    np.testing.assert_allclose(logits, dense(hidden), atol=1e-5)
    # Evaluation (training=False) and num_sampled=0 use the full cross-entropy.
    labels = np.random.default_rng(2).integers(0, 50, (3, 4))
    full = keras.losses.sparse_categorical_crossentropy(labels, dense(hidden), from_logits=True)
    np.testing.assert_allclose(head.loss(hidden, labels), np.mean(full), rtol=1e-5)
    config = head.get_config()
    assert SampledSoftmax.from_config(config).get_config() == config


def test_log_uniform_sampler_matches_distribution():
    vocab_size = 20
    ids = np.asarray(log_uniform_sample(200_000, vocab_size, seed=3))
    assert ids.dtype == np.int32 and ids.min() >= 0 and ids.max() < vocab_size
    frequencies = np.bincount(ids, minlength=vocab_size) / len(ids)
    expected = _np_log_uniform(np.arange(vocab_size), vocab_size)
    np.testing.assert_allclose(expected.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(frequencies, expected, atol=4e-3)
    np.testing.assert_allclose(
        log_uniform_probabilities(np.arange(vocab_size), vocab_size), expected, rtol=1e-5
    )


def test_sampled_loss_matches_numpy_and_tf_reference_with_accidental_hits():
    head = _head(vocab_size=50, num_sampled=8)
    rng = np.random.default_rng(4)
    hidden = rng.normal(size=(6, 8)).astype("float32")
    labels = np.array([3, 0, 17, 3, 42, 9], "int32")
    # Candidates hit the labels of rows 0, 3 (twice: duplicates allowed) and 5.
    candidates = np.array([3, 1, 0, 3, 25, 9, 2, 7], "int32")
    kernel, bias = head.kernel.numpy(), head.bias.numpy()

    loss = np.asarray(head.sampled_token_loss(hidden, labels, candidates))
    removed = _np_sampled_loss(hidden, labels, kernel, bias, candidates)
    np.testing.assert_allclose(loss, removed, rtol=1e-5)
    # Keeping the hits changes only the rows that had one (and clearly so for
    # several of them here, so the comparison above tells the two apart).
    kept = _np_sampled_loss(hidden, labels, kernel, bias, candidates, remove_hits=False)
    hit_rows = np.isin(labels, candidates)
    assert np.sum(np.abs(kept - removed) > 1e-2) >= 2
    np.testing.assert_allclose(kept[~hit_rows], removed[~hit_rows], rtol=1e-12)
    no_removal = _head(vocab_size=50, num_sampled=8, remove_accidental_hits=False)
    np.testing.assert_allclose(
        no_removal.sampled_token_loss(hidden, labels, candidates), kept, rtol=1e-5
    )

    # tf.nn.sampled_softmax_loss with the same candidates, the true class's
    # expected count set to 1 (it is always a candidate) and m*Q(k) for samples.
    # (Its accidental-hit removal assumes unique candidates, so use unique ones.)
    candidates = np.array([3, 1, 0, 11, 25, 9, 2, 7], "int32")
    loss = np.asarray(head.sampled_token_loss(hidden, labels, candidates))
    hidden_var = tf.Variable(hidden)
    reference_vars = [tf.Variable(kernel), tf.Variable(bias), hidden_var]
    with tf.GradientTape() as tape:
        reference = tf.nn.sampled_softmax_loss(
            weights=tf.transpose(reference_vars[0]),
            biases=reference_vars[1],
            labels=labels[:, None].astype("int64"),
            inputs=hidden_var,
            num_sampled=8,
            num_classes=50,
            sampled_values=(
                candidates.astype("int64"),
                tf.ones((6, 1)),
                tf.constant(8 * _np_log_uniform(candidates, 50), tf.float32),
            ),
            remove_accidental_hits=True,
        )
        reference = tf.reduce_sum(reference)
    np.testing.assert_allclose(loss.sum(), reference, rtol=1e-5)
    expected_grads = tape.gradient(reference, reference_vars)
    with tf.GradientTape() as tape:
        mine = tf.reduce_sum(head.sampled_token_loss(hidden_var, labels, candidates))
    grads = tape.gradient(mine, [head.kernel, head.bias, hidden_var])
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(got), tf.convert_to_tensor(want), atol=1e-5)


def test_sampled_loss_approaches_full_cross_entropy():
    vocab_size, dim, n = 200, 16, 256
    rng = np.random.default_rng(5)
    hidden = rng.normal(size=(n, dim)).astype("float32")
    labels = rng.integers(0, vocab_size, n).astype("int32")
    errors = []
    for num_sampled in (10, 50, 199):
        head = SampledSoftmax(vocab_size, num_sampled, seed=7)
        head.build((None, dim))
        head.kernel.assign(0.25 * rng.normal(size=(dim, vocab_size)).astype("float32"))
        full = float(head.loss(hidden, labels, training=False))
        means = [float(head.loss(hidden, labels, training=True)) for _ in range(30)]
        errors.append(abs(np.mean(means) - full) / full)
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.01, errors


def test_training_step_compiles_with_xla_and_gradients_flow():
    head = _head(vocab_size=60, num_sampled=12, dim=8, seed=8)
    rng = np.random.default_rng(8)
    hidden = tf.constant(rng.normal(size=(4, 5, 8)).astype("float32"))
    labels = tf.constant(rng.integers(0, 60, (4, 5)).astype("int32"))
    mask = tf.constant(rng.random((4, 5)) > 0.2)

    @tf.function(jit_compile=True)
    def loss_and_grads(hidden, labels, mask):
        candidates = head.sample_candidates()
        with tf.GradientTape() as tape:
            tape.watch(hidden)
            loss = head.loss(hidden, labels, mask, training=True)
        grads = tape.gradient(loss, [head.kernel, head.bias, hidden])
        return loss, grads, candidates

    loss, grads, _ = loss_and_grads(hidden, labels, mask)
    assert np.isfinite(loss) and loss > 0
    for grad in grads:
        grad = tf.convert_to_tensor(grad).numpy()
        assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0

    @tf.function(jit_compile=True)
    def with_candidates(hidden, labels, candidates):
        return head.sampled_token_loss(hidden, labels, candidates)

    candidates = tf.constant([5, 0, 7, 7, 33, 2, 59, 1, 8, 4, 11, 12])
    np.testing.assert_allclose(
        with_candidates(hidden, labels, candidates),
        head.sampled_token_loss(hidden, labels, candidates),
        rtol=1e-5,
        atol=1e-5,
    )
    # Only the columns of labels and candidates receive gradient.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head.sampled_token_loss(hidden, labels, candidates))
    kernel_grad = tf.convert_to_tensor(tape.gradient(loss, head.kernel)).numpy()
    touched = np.zeros(60, bool)
    touched[np.asarray(labels).ravel()] = True
    touched[np.asarray(candidates)] = True
    assert np.all(kernel_grad[:, ~touched] == 0)
    assert np.all(np.abs(kernel_grad[:, touched]).sum(0) > 0)


def test_tied_embedding_head_uses_and_trains_the_embedding():
    embedding = keras.layers.Embedding(30, 6)
    embedding.build((None,))
    head = SampledSoftmax(30, 5, tied_embedding=embedding, seed=1)
    head.build((None, 6))
    assert head.kernel is None and len(head.trainable_weights) == 1  # the bias only
    hidden = np.random.default_rng(9).normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(head(hidden), hidden @ embedding.embeddings.numpy().T, atol=1e-5)
    with tf.GradientTape() as tape:
        loss = head.loss(hidden, np.array([1, 2, 3, 4]), training=True)
    grad = tf.convert_to_tensor(tape.gradient(loss, embedding.embeddings)).numpy()
    assert np.abs(grad[[1, 2, 3, 4]]).sum() > 0


def _counting_data(rng, n, length=12, low=4, high=40):
    """Sequences that count upwards (mod the range): next token = token + 1."""
    starts = rng.integers(low, high, n)
    span = high - low
    tokens = (low + (starts[:, None] - low + np.arange(length + 1)) % span).astype("int32")
    tokens[: n // 4, -3:] = 0  # some right padding
    return tokens[:, :-1], np.where(tokens[:, :-1] == 0, 0, tokens[:, 1:]).astype("int32")


def test_language_model_trains_with_sampled_softmax_and_evaluates_full_softmax():
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    tokens, labels = _counting_data(rng, 512)
    model = TransformerLanguageModel(
        48, d_model=32, num_heads=2, ff_dim=64, num_layers=1, dropout=0.0,
        max_length=16, sampled_softmax=12,
    )
    model.compile(keras.optimizers.Adam(3e-3), metrics=[MaskedTokenAccuracy()], jit_compile=True)
    inputs = {"tokens": tokens, "reset": np.zeros(len(tokens), bool)}
    before = model.evaluate(inputs, labels, batch_size=512, verbose=0, return_dict=True)
    history = model.fit(inputs, labels, batch_size=32, epochs=3, verbose=0)
    after = model.evaluate(inputs, labels, batch_size=512, verbose=0, return_dict=True)

    # In training the model returns hidden states (no full logits computed) ...
    assert model(inputs, training=True).shape == (512, 12, 32)
    # ... and in evaluation full logits; `evaluate` reports their masked CE.
    logits = np.asarray(model(inputs, training=False), "float64")
    assert logits.shape == (512, 12, 48)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], -1)[..., 0]
    np.testing.assert_allclose(after["loss"], nll[labels != 0].mean(), rtol=1e-4)
    accuracy = (logits.argmax(-1) == labels)[labels != 0].mean()
    np.testing.assert_allclose(after["masked_accuracy"], accuracy, rtol=1e-5)

    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.exp(after["loss"]) < 0.25 * np.exp(before["loss"])  # full perplexity
    assert after["masked_accuracy"] > 0.8


def test_log_uniform_prior_bias_is_the_samplers_distribution():
    # NumPy oracle; exp(bias) is the log-uniform distribution, which sums to 1,
    # so with a zero kernel the full softmax is exactly Q for every input.
    bias = np.asarray(LogUniformPrior()((50,)), "float64")
    np.testing.assert_allclose(bias, np.log(_np_log_uniform(np.arange(50), 50)), rtol=1e-5)
    np.testing.assert_allclose(np.exp(bias).sum(), 1.0, rtol=1e-5)
    assert np.all(np.diff(bias) < 0)  # frequency-sorted: id 0 most likely
    head = SampledSoftmax(50, 10, bias_initializer=LogUniformPrior(), kernel_initializer="zeros")
    hidden = np.random.default_rng(9).normal(size=(3, 4, 8)).astype("float32")
    probs = np.asarray(keras.ops.softmax(head(hidden)), "float64")
    np.testing.assert_allclose(probs, np.broadcast_to(np.exp(bias), probs.shape), rtol=1e-4)
    # Usable as a Dense bias (the language models' output layer); serialisable.
    dense = keras.layers.Dense(50, bias_initializer=LogUniformPrior())
    dense.build((None, 8))
    np.testing.assert_allclose(dense.bias.numpy(), bias, rtol=1e-5)
    clone = SampledSoftmax.from_config(head.get_config())
    assert isinstance(clone.bias_initializer, LogUniformPrior)
    with pytest.raises(ValueError, match="shape"):
        LogUniformPrior()((8, 50))


def test_set_unigram_bias_on_every_model_family():
    from keras_seq.models import AttentionSeq2Seq, RNNLanguageModel, Transformer, TransformerLanguageModel

    counts = np.array([0, 7, 0, 3, 50, 20, 10, 5, 2, 1, 1, 1])
    expected = np.log((counts + 0.5) / (counts + 0.5).sum())
    models = [
        RNNLanguageModel(12, embedding_dim=8, units=8, num_layers=1, stateful=False,
                         sampled_softmax=4),
        RNNLanguageModel(12, embedding_dim=8, units=8, num_layers=1, batch_size=2,
                         tie_embeddings=True),
        AttentionSeq2Seq(10, 12, embedding_dim=8, units=8, sampled_softmax=4),
        Transformer(10, 12, d_model=8, num_heads=2, ff_dim=16, num_layers=1),
        TransformerLanguageModel(12, d_model=8, num_heads=2, ff_dim=16, num_layers=1),
    ]
    for model in models:
        model.set_unigram_bias(counts)
        head = model._output_head()
        np.testing.assert_allclose(np.asarray(head.full_bias()), expected, rtol=1e-5)
    # With a zero kernel the softmax is the (smoothed) unigram distribution.
    head = SampledSoftmax(vocab_size=12, num_sampled=4)
    head.build((None, 3))
    head.kernel.assign(np.zeros((3, 12), "float32"))
    head.set_unigram_bias(counts)
    probs = np.asarray(keras.ops.softmax(head(np.ones((1, 3), "float32"))))[0]
    np.testing.assert_allclose(probs, (counts + 0.5) / (counts + 0.5).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="counts must be 12"):
        head.set_unigram_bias(counts[:5])
