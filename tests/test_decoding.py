"""Tests for keras_seq.decoding: greedy, sampling and beam search in one loop.

Oracles: exhaustive search over every sequence (brute force through the same
step function), teacher-forced rescoring, NumPy top-k/top-p sets and the
softmax distribution, and the same decode run eagerly / in tf.function / under
XLA / in a reloaded SavedModel / in onnxruntime.
"""

import logging
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.decoding import BeamSearch
from keras_seq.decoding import DecodeResult
from keras_seq.decoding import RandomSampler
from keras_seq.decoding import decode
from keras_seq.decoding import length_penalty

BOS, EOS = 2, 3


# --------------------------------------------------------------------------
# Tiny deterministic step functions.


class TableModel:
    """Logits from a fixed random table indexed by (row, step, previous token).

    The state carries the batch row and the step count, so beam search must
    tile and reorder it correctly to get the right logits.
    """

    def __init__(self, batch=2, vocab=4, steps=4, scale=2.0, seed=0):
        rng = np.random.default_rng(seed)
        self.vocab, self.steps = vocab, steps
        # NumPy (not an eager tensor): becomes a constant inside traced graphs,
        # which tf2onnx can convert.
        self.table = (rng.normal(size=(batch, steps, vocab, vocab)) * scale).astype(
            np.float32
        )

    def initial_state(self, batch):
        return {
            "row": tf.range(batch, dtype=tf.int32),
            "step": tf.zeros([batch], tf.int32),
        }

    def step(self, tokens, state):
        row, t = state["row"], state["step"]
        index = tf.stack([row, tf.minimum(t, self.steps - 1), tokens], axis=1)
        return tf.gather_nd(self.table, index), {"row": row, "step": t + 1}


class GRUAttentionModel(tf.Module):
    """Keras GRUCell with fixed random weights + dot attention over a memory.

    State: {"h": [N, H], "memory": [N, S, H] (encoder outputs, tiled by beam
    search), "attention": [N, S] (weights used for the returned logits)}.
    """

    def __init__(self, vocab=5, units=6, source_length=3, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.vocab, self.units, self.source_length = vocab, units, source_length
        self.cell = keras.layers.GRUCell(units)
        self.cell.build((None, units))
        self.cell.set_weights(
            [rng.normal(size=w.shape).astype(np.float32) for w in self.cell.get_weights()]
        )
        self.embedding = tf.Variable(
            rng.normal(size=(vocab, units)).astype(np.float32), trainable=False
        )
        self.projection = tf.Variable(
            2.0 * rng.normal(size=(2 * units, vocab)).astype(np.float32),
            trainable=False,
        )

    def initial_state(self, batch):
        rng = np.random.default_rng(123)
        h = rng.normal(size=(batch, self.units)).astype(np.float32)
        memory = rng.normal(size=(batch, self.source_length, self.units))
        return {
            "h": tf.constant(h),
            "memory": tf.constant(memory.astype(np.float32)),
            "attention": tf.zeros([batch, self.source_length], tf.float32),
        }

    def step(self, tokens, state):
        x = tf.gather(self.embedding, tokens)  # [N, H]
        h, _ = self.cell(x, [state["h"]])
        memory = state["memory"]  # [N, S, H]
        attention = tf.nn.softmax(tf.einsum("nsh,nh->ns", memory, h), axis=-1)
        context = tf.einsum("ns,nsh->nh", attention, memory)
        logits = tf.matmul(tf.concat([h, context], axis=-1), self.projection)
        return logits, {"h": h, "memory": memory, "attention": attention}


def _slice_state(state, rows):
    return tf.nest.map_structure(lambda x: tf.gather(x, rows), state)


def brute_force(step_fn, state, start_id, end_id, max_length, alpha, n_best):
    """Exhaustive search for one batch row (state leading dim 1).

    Complete sequences: those ending in `end_id` (length <= max_length) and
    those cut at max_length. Ranked by logp / length_penalty(len, alpha).
    Returns a list of (tokens tuple, logp) best first.
    """
    complete = []
    prefixes, logps = [()], [0.0]
    tokens = tf.constant([start_id], tf.int32)
    for t in range(max_length):
        logits, new_state = step_fn(tokens, state)
        logits = logits.numpy().astype(np.float64)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        next_prefixes, next_logps, rows, next_tokens = [], [], [], []
        for i, prefix in enumerate(prefixes):
            for v in range(logp.shape[1]):
                seq, score = prefix + (v,), logps[i] + logp[i, v]
                if v == end_id or t == max_length - 1:
                    complete.append((seq, score))
                else:
                    next_prefixes.append(seq)
                    next_logps.append(score)
                    rows.append(i)
                    next_tokens.append(v)
        if not next_prefixes:
            break
        prefixes, logps = next_prefixes, next_logps
        state = _slice_state(new_state, rows)
        tokens = tf.constant(next_tokens, tf.int32)
    ranked = sorted(
        complete, key=lambda c: -c[1] / ((5.0 + len(c[0])) / 6.0) ** alpha
    )
    return ranked[:n_best]


def rescore(model, state, start_ids, ids, lengths):
    """Teacher-forced log-probability and attention of given hypotheses.

    ids [B, R, L], lengths [B, R]; returns scores [B, R], attention [B, R, L, S].
    """
    batch, n_return, max_length = ids.shape
    rows = np.repeat(np.arange(batch), n_return)
    state = _slice_state(state, rows)
    tokens = tf.constant(np.repeat(start_ids, n_return), tf.int32)
    flat_ids = ids.reshape(-1, max_length)
    flat_len = lengths.reshape(-1)
    scores = np.zeros(len(rows))
    attention = []
    for t in range(max_length):
        logits, state = model.step(tokens, state)
        logp = tf.nn.log_softmax(logits).numpy()
        live = t < flat_len
        scores += np.where(live, logp[np.arange(len(rows)), flat_ids[:, t]], 0.0)
        attention.append(
            np.where(live[:, None], state["attention"].numpy(), 0.0)
            if isinstance(state, dict) and "attention" in state
            else np.zeros([len(rows), 0])
        )
        tokens = tf.constant(flat_ids[:, t], tf.int32)
    attention = np.stack(attention, 1).reshape(batch, n_return, max_length, -1)
    return scores.reshape(batch, n_return), attention


def assert_well_formed(result, end_id, max_length):
    """ids after the end are 0, the end token only at the last position."""
    ids, lengths = result.ids.numpy(), result.lengths.numpy()
    assert ids.shape[-1] == max_length
    for b in range(ids.shape[0]):
        for r in range(ids.shape[1]):
            n = lengths[b, r]
            assert 1 <= n <= max_length
            assert (ids[b, r, n:] == 0).all()
            assert end_id not in ids[b, r, : n - 1].tolist()
            if n < max_length:
                assert ids[b, r, n - 1] == end_id


# --------------------------------------------------------------------------
# Beam search.


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_beam_search_equals_exhaustive_search_table(alpha):
    batch, vocab, max_length, n_best = 2, 4, 4, 5
    model = TableModel(batch=batch, vocab=vocab, steps=max_length)
    state = model.initial_state(batch)
    # Wide enough to keep every candidate: at most 3**3 * 4 = 108 per step.
    beam = BeamSearch(108, length_penalty=alpha, num_return=n_best)
    result = decode(model.step, state, tf.fill([batch], BOS), end_id=EOS,
                    max_length=max_length, strategy=beam)
    assert result.ids.shape == (batch, n_best, max_length)
    assert result.ids.dtype == tf.int32 and result.lengths.dtype == tf.int32
    assert result.scores.dtype == tf.float32
    lengths_seen = set()
    for b in range(batch):
        expected = brute_force(model.step, _slice_state(state, [b]), BOS, EOS,
                               max_length, alpha, n_best)
        for r, (seq, score) in enumerate(expected):
            n = len(seq)
            lengths_seen.add(n)
            assert result.lengths[b, r] == n
            np.testing.assert_array_equal(result.ids[b, r, :n], seq)
            assert (result.ids[b, r, n:].numpy() == 0).all()
            np.testing.assert_allclose(result.scores[b, r], score, rtol=1e-5)
    # The n-best mixes finished and cut hypotheses, so both paths are tested.
    assert max_length in lengths_seen and len(lengths_seen) > 1


def test_beam_search_equals_exhaustive_search_gru():
    batch, max_length, n_best, alpha = 2, 3, 4, 0.7
    model = GRUAttentionModel(vocab=5)
    state = model.initial_state(batch)
    beam = BeamSearch(80, length_penalty=alpha, num_return=n_best)  # 4*4*5
    result = decode(model.step, state, tf.fill([batch], BOS), end_id=EOS,
                    max_length=max_length, strategy=beam)
    for b in range(batch):
        expected = brute_force(model.step, _slice_state(state, [b]), BOS, EOS,
                               max_length, alpha, n_best)
        got = [
            (tuple(result.ids[b, r, : result.lengths[b, r]].numpy()), float(result.scores[b, r]))
            for r in range(n_best)
        ]
        assert [g[0] for g in got] == [e[0] for e in expected]
        np.testing.assert_allclose([g[1] for g in got], [e[1] for e in expected], rtol=1e-5)


@pytest.mark.parametrize("model_cls", [TableModel, GRUAttentionModel])
def test_beam_width_one_equals_greedy(model_cls):
    batch, max_length = 3, 8
    model = model_cls() if model_cls is GRUAttentionModel else TableModel(
        batch=batch, vocab=6, steps=max_length, scale=1.0, seed=3
    )
    state = model.initial_state(batch)
    start = tf.fill([batch], BOS)
    greedy = decode(model.step, state, start, end_id=EOS, max_length=max_length)
    beam = decode(model.step, state, start, end_id=EOS, max_length=max_length,
                  strategy=BeamSearch(1))
    np.testing.assert_array_equal(beam.ids, greedy.ids)
    np.testing.assert_array_equal(beam.lengths, greedy.lengths)
    np.testing.assert_allclose(beam.scores, greedy.scores, rtol=1e-6)
    assert greedy.ids.shape == (batch, 1, max_length)


def test_length_penalty_formula_and_ranking():
    # GNMT: ((5 + len) / 6) ** alpha.
    np.testing.assert_allclose(length_penalty(7, 1.0), 2.0)
    np.testing.assert_allclose(length_penalty([1, 4], 0.5), [1.0, math.sqrt(1.5)])
    np.testing.assert_allclose(length_penalty(30, 0.0), 1.0)

    # Hand-made model: [EOS] has p = 0.5, [A, A, A, EOS] has p = 0.5 * 0.95**3.
    # alpha = 0: -0.693 > -0.847, the short one wins; alpha = 1:
    # -0.693 / 1 < -0.847 / 1.5 = -0.565, the long one wins.
    A = 1
    probs = np.full((4, 4), 1e-9)
    probs[0, [A, EOS]] = 0.5
    probs[1:3, A], probs[1:3, EOS] = 0.95, 0.05
    probs[3, EOS], probs[3, A] = 0.95, 0.05
    logits = np.log(probs).astype(np.float32)

    def step(tokens, state):
        return tf.gather(logits, tf.minimum(state, 3)), state + 1

    short, long_ = np.log(0.5), np.log(0.5 * 0.95**3)
    results = {}
    for alpha in (0.0, 1.0):
        res = decode(step, tf.zeros([1], tf.int32), [BOS], end_id=EOS,
                     max_length=4, strategy=BeamSearch(2, alpha, num_return=2))
        results[alpha] = res
        np.testing.assert_allclose(
            sorted(res.scores[0].numpy()), sorted([short, long_]), rtol=1e-5
        )
    np.testing.assert_array_equal(results[0.0].ids[0, 0], [EOS, 0, 0, 0])
    np.testing.assert_array_equal(results[0.0].lengths[0], [1, 4])
    np.testing.assert_array_equal(results[1.0].ids[0, 0], [A, A, A, EOS])
    np.testing.assert_array_equal(results[1.0].lengths[0], [4, 1])
    # Longer best hypotheses as alpha grows, on a random model too.
    model = TableModel(batch=4, vocab=5, steps=6, scale=1.0, seed=7)
    mean_len = [
        decode(model.step, model.initial_state(4), tf.fill([4], BOS), end_id=EOS,
               max_length=6, strategy=BeamSearch(6, alpha, 3)).lengths.numpy().mean()
        for alpha in (0.0, 3.0)
    ]
    assert mean_len[1] > mean_len[0]


def test_finished_hypotheses_are_not_extended_and_scores_match_rescoring():
    batch, max_length = 3, 7
    model = GRUAttentionModel(vocab=5, seed=1)
    state = model.initial_state(batch)
    start = np.full([batch], BOS, np.int32)
    for strategy in ("greedy", BeamSearch(4, 0.6, num_return=3)):
        res = decode(model.step, state, start, end_id=EOS, max_length=max_length,
                     strategy=strategy)
        assert_well_formed(res, EOS, max_length)
        scores, _ = rescore(model, state, start, res.ids.numpy(), res.lengths.numpy())
        np.testing.assert_allclose(res.scores, scores, rtol=1e-5, atol=1e-5)
        if isinstance(strategy, BeamSearch):
            # Distinct hypotheses, ranked by the penalized score.
            for b in range(batch):
                seqs = {tuple(res.ids[b, r].numpy()) for r in range(3)}
                assert len(seqs) == 3
            norm = res.scores / length_penalty(res.lengths, 0.6)
            assert (np.diff(norm.numpy(), axis=1) <= 1e-6).all()
    # Finished hypotheses exist (the test covers the end-token path).
    assert (res.lengths.numpy() < max_length).any()


def test_attention_is_recorded_for_the_chosen_hypotheses():
    batch, max_length = 2, 5
    model = GRUAttentionModel(vocab=5, seed=2)
    state = model.initial_state(batch)
    start = np.full([batch], BOS, np.int32)
    for strategy in ("greedy", BeamSearch(3, 0.0, num_return=2)):
        res = decode(model.step, state, start, end_id=EOS, max_length=max_length,
                     strategy=strategy, return_attention=True)
        n_return = res.ids.shape[1]
        assert res.attention.shape == (batch, n_return, max_length, model.source_length)
        _, expected = rescore(model, state, start, res.ids.numpy(), res.lengths.numpy())
        np.testing.assert_allclose(res.attention, expected, rtol=1e-5, atol=1e-6)
    assert decode(model.step, state, start, end_id=EOS, max_length=2).attention is None


def test_scalar_state_leaves_are_shared():
    # A rank-0 leaf (e.g. a step counter) is neither tiled nor gathered.
    logits = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)

    def step(tokens, state):
        return tf.gather(logits, tf.fill(tf.shape(tokens), state["t"])), {
            "t": state["t"] + 1, "x": state["x"]}

    state = {"t": tf.constant(0), "x": tf.zeros([2, 3])}
    res = decode(step, state, [BOS, BOS], end_id=EOS, max_length=4,
                 strategy=BeamSearch(3, num_return=2))
    assert res.ids.shape == (2, 2, 4)
    np.testing.assert_array_equal(res.ids[0], res.ids[1])


# --------------------------------------------------------------------------
# Sampling.


def _constant_logits_step(logits):
    """Context-free step: the same logits every step and row."""

    def step(tokens, state):
        return tf.tile(logits[None], [tf.shape(tokens)[0], 1]), state

    return step


def _sample_tokens(logits, sampler, batch=4000, steps=2):
    step = _constant_logits_step(logits)
    res = decode(step, tf.zeros([batch]), tf.fill([batch], BOS), end_id=len(logits),
                 max_length=steps, sampler=sampler)  # end_id out of vocab: no end
    return res.ids.numpy()[:, 0, :]  # [batch, steps]


LOGITS = np.array([1.0, 0.3, -0.5, 2.0, 0.9, -1.5, 0.0, 1.7], np.float32)


def test_ancestral_sampling_matches_softmax_distribution():
    tokens = _sample_tokens(LOGITS, RandomSampler(seed=11), batch=6000, steps=2)
    probs = np.exp(LOGITS) / np.exp(LOGITS).sum()
    for t in range(2):
        freq = np.bincount(tokens[:, t], minlength=len(LOGITS)) / len(tokens)
        # Binomial std <= 0.0065; 5 sigma.
        np.testing.assert_allclose(freq, probs, atol=0.03)
    # Steps draw independent noise: the joint frequency factorizes.
    joint = np.mean((tokens[:, 0] == 3) & (tokens[:, 1] == 3))
    np.testing.assert_allclose(joint, probs[3] ** 2, atol=0.03)
    # Temperature flattens/sharpens the distribution.
    hot = _sample_tokens(LOGITS, RandomSampler(temperature=2.0, seed=1), batch=6000, steps=1)
    hot_probs = np.exp(LOGITS / 2) / np.exp(LOGITS / 2).sum()
    np.testing.assert_allclose(
        np.bincount(hot[:, 0], minlength=len(LOGITS)) / len(hot), hot_probs, atol=0.03
    )


@pytest.mark.parametrize("top_k", [1, 3])
def test_top_k_never_leaves_the_top_k(top_k):
    tokens = _sample_tokens(LOGITS, RandomSampler(top_k=top_k, seed=3))
    allowed = set(np.argsort(-LOGITS)[:top_k].tolist())
    assert set(tokens.ravel().tolist()) == allowed  # all used, nothing else
    if top_k == 3:
        p = np.exp(LOGITS[sorted(allowed)]) / np.exp(LOGITS[sorted(allowed)]).sum()
        freq = np.bincount(tokens.ravel(), minlength=8)[sorted(allowed)] / tokens.size
        np.testing.assert_allclose(freq, p, atol=0.03)


@pytest.mark.parametrize(
    "top_p,temperature,top_k", [(0.5, 1.0, None), (0.9, 1.0, None), (0.9, 0.5, None),
                                (0.95, 1.0, 3), (1.0, 1.0, None)]
)
def test_top_p_never_leaves_the_nucleus(top_p, temperature, top_k):
    tokens = _sample_tokens(
        LOGITS, RandomSampler(temperature=temperature, top_p=top_p, top_k=top_k, seed=5)
    )
    order = np.argsort(-LOGITS)[: top_k or len(LOGITS)]
    z = LOGITS[order] / temperature
    probs = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    before = np.cumsum(probs) - probs
    allowed = set(order[before < top_p].tolist())
    assert set(tokens.ravel().tolist()) == allowed


def test_low_temperature_approaches_greedy_and_seeds_reproduce():
    batch, max_length = 4, 8
    model = GRUAttentionModel(vocab=5, seed=4)
    state = model.initial_state(batch)
    start = tf.fill([batch], BOS)
    greedy = decode(model.step, state, start, end_id=EOS, max_length=max_length)
    cold = decode(model.step, state, start, end_id=EOS, max_length=max_length,
                  sampler=RandomSampler(temperature=1e-3, seed=0))
    np.testing.assert_array_equal(cold.ids, greedy.ids)
    np.testing.assert_allclose(cold.scores, greedy.scores, rtol=1e-6)

    sampler = RandomSampler(temperature=1.5, seed=42)
    first = decode(model.step, state, start, end_id=EOS, max_length=max_length, sampler=sampler)
    again = decode(model.step, state, start, end_id=EOS, max_length=max_length, sampler=sampler)
    np.testing.assert_array_equal(first.ids, again.ids)
    assert_well_formed(first, EOS, max_length)
    scores, _ = rescore(model, state, start.numpy(), first.ids.numpy(), first.lengths.numpy())
    np.testing.assert_allclose(first.scores, scores, rtol=1e-5, atol=1e-5)
    others = [
        decode(model.step, state, start, end_id=EOS, max_length=max_length,
               sampler=RandomSampler(temperature=1.5, seed=s)).ids.numpy()
        for s in (43, None)
    ]
    assert not all(np.array_equal(o, first.ids.numpy()) for o in others)


# --------------------------------------------------------------------------
# Execution modes and export.


def _run_all(model, state, start, max_length, **kwargs):
    def fn():
        return decode(model.step, state, start, end_id=EOS, max_length=max_length, **kwargs)

    return fn(), tf.function(fn)(), tf.function(fn, jit_compile=True)()


def _assert_same(a, b):
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)
    if a.attention is not None:
        np.testing.assert_allclose(a.attention, b.attention, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"strategy": BeamSearch(3, 0.6, num_return=2), "return_attention": True},
        {"sampler": RandomSampler(temperature=0.9, top_k=4, top_p=0.9, seed=7)},
    ],
    ids=["greedy", "beam", "sampling"],
)
def test_eager_function_and_xla_agree(kwargs):
    model = GRUAttentionModel(vocab=5, seed=5)
    state = model.initial_state(3)
    eager, graph, xla = _run_all(model, state, tf.fill([3], BOS), 6, **kwargs)
    _assert_same(eager, graph)
    _assert_same(eager, xla)
    assert isinstance(graph, DecodeResult)


def test_saved_model_round_trip(tmp_path):
    model = GRUAttentionModel(vocab=5, seed=6)
    sampler = RandomSampler(top_p=0.9, seed=9)

    class Exported(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
        def beam(self, start_ids):
            state = self.model.initial_state(2)
            res = decode(self.model.step, state, start_ids, end_id=EOS, max_length=6,
                         strategy=BeamSearch(3, 0.6, num_return=2))
            return {"ids": res.ids, "lengths": res.lengths, "scores": res.scores}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
        def sample(self, start_ids):
            state = self.model.initial_state(2)
            res = decode(self.model.step, state, start_ids, end_id=EOS, max_length=6,
                         sampler=sampler)
            return {"ids": res.ids, "lengths": res.lengths, "scores": res.scores}

    module = Exported()
    start = tf.fill([2], BOS)
    expected = {"beam": module.beam(start), "sample": module.sample(start)}
    tf.saved_model.save(module, str(tmp_path / "decoder"))
    del module
    loaded = tf.saved_model.load(str(tmp_path / "decoder"))
    for name, fn in (("beam", loaded.beam), ("sample", loaded.sample)):
        got = fn(start)
        for key in ("ids", "lengths"):
            np.testing.assert_array_equal(got[key], expected[name][key])
        np.testing.assert_allclose(got["scores"], expected[name]["scores"], rtol=1e-6)
    eager = decode(model.step, model.initial_state(2), start, end_id=EOS, max_length=6,
                   sampler=sampler)
    np.testing.assert_array_equal(eager.ids, expected["sample"]["ids"])


def _onnx_parity(model, batch, max_length, strategy="greedy", sampler=None):
    import onnxruntime as ort
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def fn(start_ids):
        state = model.initial_state(tf.shape(start_ids)[0])
        res = decode(model.step, state, start_ids, end_id=EOS, max_length=max_length,
                     strategy=strategy, sampler=sampler)
        return res.ids, res.lengths, res.scores

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature,
                                             opset=17)
    assert "Loop" in {node.op_type for node in proto.graph.node}
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    start = np.full([batch], BOS, np.int32)
    ids, lengths, scores = session.run(None, {session.get_inputs()[0].name: start})
    expected = fn(tf.constant(start))
    np.testing.assert_array_equal(ids, expected[0])
    np.testing.assert_array_equal(lengths, expected[1])
    np.testing.assert_allclose(scores, expected[2], rtol=1e-5, atol=1e-5)
    return ids


def test_onnx_beam_search_matches_tensorflow():
    model = TableModel(batch=3, vocab=6, steps=6, scale=1.0, seed=8)
    ids = _onnx_parity(model, 3, 6, strategy=BeamSearch(4, 0.6, num_return=3))
    assert ids.shape == (3, 3, 6)


@pytest.mark.slow
def test_onnx_greedy_gru_beam_and_sampling_match_tensorflow():
    _onnx_parity(TableModel(batch=3, vocab=6, steps=6, scale=1.0, seed=8), 3, 6)
    model = GRUAttentionModel(vocab=5, seed=9)

    class Fixed(tf.Module):  # initial_state with a dynamic batch for tracing
        def initial_state(self, batch):
            full = model.initial_state(4)
            return tf.nest.map_structure(lambda x: x[:batch], full)

        def step(self, tokens, state):
            return model.step(tokens, state)

    _onnx_parity(Fixed(), 4, 7, strategy=BeamSearch(3, 0.6, num_return=2))
    _onnx_parity(Fixed(), 4, 7, sampler=RandomSampler(top_k=4, top_p=0.9, seed=1))


# --------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: BeamSearch(0), "beam_size"),
        (lambda: BeamSearch(2.5), "beam_size"),
        (lambda: BeamSearch(2, length_penalty=-0.1), "length_penalty"),
        (lambda: BeamSearch(2, num_return=3), "num_return"),
        (lambda: BeamSearch(2, num_return=0), "num_return"),
        (lambda: RandomSampler(temperature=0.0), "temperature"),
        (lambda: RandomSampler(temperature=-1.0), "temperature"),
        (lambda: RandomSampler(top_k=0), "top_k"),
        (lambda: RandomSampler(top_p=0.0), "top_p"),
        (lambda: RandomSampler(top_p=1.5), "top_p"),
        (lambda: RandomSampler(seed=-1), "seed"),
    ],
)
def test_bad_arguments_raise_value_error(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_decode_argument_errors():
    model = TableModel()
    state = model.initial_state(2)
    start = tf.fill([2], BOS)
    ok = dict(end_id=EOS, max_length=4)
    with pytest.raises(ValueError, match="max_length"):
        decode(model.step, state, start, end_id=EOS, max_length=0)
    with pytest.raises(ValueError, match="end_id"):
        decode(model.step, state, start, end_id=-1, max_length=4)
    with pytest.raises(ValueError, match="strategy"):
        decode(model.step, state, start, strategy="beam", **ok)
    with pytest.raises(TypeError, match="strategy"):
        decode(model.step, state, start, strategy=3, **ok)
    with pytest.raises(ValueError, match="sampler"):
        decode(model.step, state, start, strategy=BeamSearch(2),
               sampler=RandomSampler(), **ok)
    with pytest.raises(TypeError, match="sampler"):
        decode(model.step, state, start, sampler="top_k", **ok)
    with pytest.raises(TypeError, match="start_ids"):
        decode(model.step, state, tf.zeros([2]), **ok)
    with pytest.raises(ValueError, match="start_ids"):
        decode(model.step, state, tf.zeros([2, 1], tf.int32), **ok)
    with pytest.raises(ValueError, match="leading dimension"):
        decode(model.step, state, tf.fill([3], BOS), **ok)
    with pytest.raises(ValueError, match="attention"):
        decode(model.step, state, start, return_attention=True, **ok)


def test_step_fn_contract_errors():
    model = TableModel()
    state = model.initial_state(2)
    start = tf.fill([2], BOS)

    def grows(tokens, state):  # a cache that grows: not a fixed-shape state
        logits, _ = model.step(tokens, {"row": state["row"][:, 0], "step": state["step"]})
        return logits, {"row": tf.concat([state["row"], state["row"]], 1), "step": state["step"]}

    grow_state = {"row": state["row"][:, None], "step": state["step"]}
    with pytest.raises(ValueError, match="fixed shape"):
        decode(grows, grow_state, start, end_id=EOS, max_length=3)
    with pytest.raises(ValueError, match="structure"):
        decode(lambda t, s: (model.step(t, s)[0], s["row"]), state, start,
               end_id=EOS, max_length=3)
    with pytest.raises(TypeError, match="dtype"):
        decode(lambda t, s: (model.step(t, s)[0], {"row": s["row"], "step": tf.cast(s["step"], tf.int64)}),
               state, start, end_id=EOS, max_length=3)
    with pytest.raises(ValueError, match="logits"):
        decode(lambda t, s: (model.step(t, s)[0][:, None], s), state, start,
               end_id=EOS, max_length=3)


def test_configs_round_trip():
    beam = BeamSearch(4, 0.6, num_return=2)
    assert BeamSearch.from_config(beam.get_config()).get_config() == beam.get_config()
    sampler = RandomSampler(0.7, top_k=5, top_p=0.9, seed=3)
    assert RandomSampler.from_config(sampler.get_config()).get_config() == sampler.get_config()
