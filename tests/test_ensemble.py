"""Ensembles (issue 15, item 3): `keras_seq.models.Ensemble` through the generative contract,
`Translator.from_run([...])`, and `translate` / `evaluate --ensemble`."""

import io
import shutil
from contextlib import redirect_stderr, redirect_stdout

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import keras_seq as ks
from keras_seq import cli
from keras_seq.errors import InputError
from keras_seq.models import AttentionSeq2Seq, Ensemble, RNNLanguageModel, Transformer

SOURCE = np.array([[5, 6, 7, 8, 3], [4, 9, 3, 0, 0], [10, 3, 0, 0, 0]], "int32")
MAX_LENGTH = 6


@pytest.fixture(scope="module")
def members():
    keras.utils.set_random_seed(3)
    rnn = AttentionSeq2Seq(11, 13, embedding_dim=8, units=12, max_length=12)
    transformer = Transformer(11, 13, d_model=16, num_heads=2, ff_dim=32, num_layers=1,
                              dropout=0.0, max_length=12)
    return rnn, transformer


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _log_mean_probs(models, states, tokens):
    """numpy: log of the mean of the members' softmax, and their next states."""
    probs, new_states = [], []
    for model, state in zip(models, states):
        logits, state = model.step(tokens, state)
        logits = _np(logits).astype("float64")
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs.append(e / e.sum(-1, keepdims=True))
        new_states.append(state)
    return np.log(np.mean(probs, axis=0)), new_states


def _oracle_greedy(models, source, max_length, end_id=3):
    states = [m.decoding_state(source, max_length) for m in models]
    tokens = np.full([len(source)], 2, "int32")
    ids = np.zeros([len(source), max_length], "int32")
    scores = np.zeros(len(source))
    finished = np.zeros(len(source), bool)
    for t in range(max_length):
        logp, states = _log_mean_probs(models, states, tokens)
        chosen = logp.argmax(-1)
        scores += np.where(finished, 0.0, logp[np.arange(len(source)), chosen])
        ids[:, t] = np.where(finished, 0, chosen)
        finished |= chosen == end_id
        tokens = np.where(finished, end_id, chosen).astype("int32")
    return ids, scores


def _oracle_score(models, source, ids, end_id=3):
    """Summed log mean probability of given hypotheses (teacher-forced), up to EOS."""
    states = [m.decoding_state(source, ids.shape[1]) for m in models]
    tokens = np.full([len(source)], 2, "int32")
    scores = np.zeros(len(source))
    done = np.zeros(len(source), bool)
    for t in range(ids.shape[1]):
        logp, states = _log_mean_probs(models, states, tokens)
        scores += np.where(done, 0.0, logp[np.arange(len(source)), ids[:, t]])
        done |= ids[:, t] == end_id
        tokens = ids[:, t].astype("int32")
    return scores


def test_an_ensemble_of_a_model_with_itself_is_that_model(members):
    for model in members:
        ensemble = Ensemble([model, model])
        for strategy in ("greedy", ks.decoding.BeamSearch(3, num_return=2)):
            alone = model.generate(SOURCE, max_length=MAX_LENGTH, strategy=strategy,
                                   return_attention=True)
            both = ensemble.generate(SOURCE, max_length=MAX_LENGTH, strategy=strategy,
                                     return_attention=True)
            np.testing.assert_array_equal(_np(both.ids), _np(alone.ids))
            np.testing.assert_array_equal(_np(both.lengths), _np(alone.lengths))
            np.testing.assert_allclose(_np(both.scores), _np(alone.scores), rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(_np(both.attention), _np(alone.attention), atol=1e-6)


def test_greedy_ensemble_matches_the_averaged_probabilities_oracle(members):
    result = Ensemble(members).generate(SOURCE, max_length=MAX_LENGTH)
    ids, scores = _oracle_greedy(members, SOURCE, MAX_LENGTH)
    with_attention = Ensemble(members).generate(SOURCE, max_length=MAX_LENGTH,
                                                return_attention=True)
    np.testing.assert_array_equal(_np(with_attention.ids), _np(result.ids))
    attention = _np(with_attention.attention)[:, 0]  # [N, L, S]: the members' mean, a distribution
    np.testing.assert_allclose(attention[:, 0].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(_np(result.ids)[:, 0], ids)
    np.testing.assert_allclose(_np(result.scores)[:, 0], scores, rtol=1e-5, atol=1e-4)
    # The two members alone decode differently: the oracle is not trivially one of them.
    alone = [_np(m.generate(SOURCE, max_length=MAX_LENGTH).ids)[:, 0] for m in members]
    assert not all(np.array_equal(ids, a) for a in alone)


def test_beam_search_scores_are_the_ensembles_log_probabilities(members):
    result = Ensemble(members).generate(SOURCE, max_length=MAX_LENGTH,
                                        strategy=ks.decoding.BeamSearch(4, num_return=2))
    ids, scores = _np(result.ids), _np(result.scores)
    for r in range(2):
        np.testing.assert_allclose(scores[:, r], _oracle_score(members, SOURCE, ids[:, r]),
                                   rtol=1e-5, atol=1e-4)
    greedy = _oracle_greedy(members, SOURCE, MAX_LENGTH)[1]
    assert np.all(scores[:, 0] >= greedy - 1e-4)  # the beam finds at least the greedy path


def test_members_that_do_not_agree_are_refused(members):
    rnn, _ = members
    with pytest.raises(InputError, match="at least 2 members"):
        Ensemble([rnn])
    other = AttentionSeq2Seq(11, 14, embedding_dim=8, units=12, max_length=12)
    with pytest.raises(InputError, match="member 1 has output vocabulary size 14, member 0 has 13"):
        Ensemble([rnn, other])
    with pytest.raises(InputError, match="member 1 has task 'language_model'"):
        Ensemble([rnn, RNNLanguageModel(vocab_size=13, stateful=False)])


# ----------------------------------------------------------------------------
# Translator runs as an ensemble: library and CLI
# ----------------------------------------------------------------------------


def _quiet(fn, *args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = fn(*args, **kwargs)
    return result, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def translator_runs(tmp_path_factory):
    """Run "a" (trained); "b": a copy with other weights; "other": a copy reading other ids."""
    root = tmp_path_factory.mktemp("ensemble")
    a, b, other = (str(root / name) for name in ("a", "b", "other"))
    recipe = ks.TranslatorRecipe(units=8, embedding_dim=8, max_length=10).with_training(
        epochs=1, batch_size=32, verbose=0)
    _quiet(ks.train_translator, recipe, a, max_pairs=300)
    shutil.copytree(a, b)
    rng = np.random.default_rng(0)
    with h5py.File(Path(b) / "checkpoints" / "best.weights.h5", "a") as f:
        f.visititems(lambda name, obj: obj.write_direct(
            (obj[()] + rng.normal(0, 0.3, obj.shape)).astype(obj.dtype))
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" else None)
    shutil.copytree(a, other)
    vocab = Path(other) / "vocab" / "source" / "vocab.txt"
    words = vocab.read_text(encoding="utf-8").split("\n")
    words[5], words[6] = words[6], words[5]  # same size, two words swapped
    vocab.write_text("\n".join(words), encoding="utf-8")
    # A language-model run directory (refused by its config, before anything loads).
    lm = root / "lm"
    (lm / "checkpoints").mkdir(parents=True)
    shutil.copy(Path(a) / "checkpoints" / "best.weights.h5", lm / "checkpoints")
    (lm / "config.json").write_text('{"task": "lm", "model": {"type": "rnn", "config": {}}}')
    return {"a": a, "b": b, "other": other, "lm": str(lm)}


SENTENCES = ["I am cold.", "Go.", "Who is it?"]


def test_translator_ensemble_of_a_run_with_itself_translates_like_the_run(translator_runs):
    run = translator_runs["a"]
    alone = ks.Translator.from_run(run).translate(SENTENCES, beam=2, n_best=2)
    both_translator = ks.Translator.from_run([run, run])
    assert isinstance(both_translator.model, Ensemble)
    both = both_translator.translate(SENTENCES, beam=2, n_best=2)
    for x, y in zip(alone, both):
        assert [t for t, _ in x.hypotheses] == [t for t, _ in y.hypotheses]
        np.testing.assert_allclose([s for _, s in x.hypotheses], [s for _, s in y.hypotheses],
                                   rtol=1e-5, atol=1e-4)


def test_translator_ensemble_of_two_runs(translator_runs):
    translator = ks.Translator.from_run([translator_runs["a"], translator_runs["b"]])
    results = translator.translate(SENTENCES, greedy=True)
    assert all(r.error is None and r.text for r in results)
    alone = [ks.Translator.from_run(translator_runs[n]).translate(SENTENCES, greedy=True)
             for n in ("a", "b")]
    assert [r.hypotheses for r in alone[0]] != [r.hypotheses for r in alone[1]]
    with pytest.raises(InputError, match="an ensemble cannot be exported"):
        translator.export("unused")


def test_members_with_other_vocabularies_are_refused_before_decoding(translator_runs):
    with pytest.raises(InputError, match="have different source vocabularies .token 5 is"):
        ks.Translator.from_run([translator_runs["a"], translator_runs["other"]])


def test_cli_translate_and_evaluate_with_an_ensemble(translator_runs, capsys):
    a, b, other = translator_runs["a"], translator_runs["b"], translator_runs["other"]
    assert cli.main(["translate", a, *SENTENCES, "--ensemble", b, "--greedy"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(SENTENCES)
    assert cli.main(["evaluate", a, "--ensemble", b, "--beam", "2", "-q"]) == 0
    assert "beam 2" in capsys.readouterr().out
    lm = translator_runs["lm"]
    assert cli.main(["translate", a, "Go.", "--ensemble", lm]) == 2
    assert f"{lm} is a language-model run, not a translator run" in capsys.readouterr().err
    for argv in (["translate", a, "Go.", "--ensemble", other], ["evaluate", a, "--ensemble", other]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert "error: ensemble members" in err and "different source vocabularies" in err
        assert len(err.strip().splitlines()) == 1
