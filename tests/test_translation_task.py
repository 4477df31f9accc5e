"""The translation jobs (keras_seq.tasks.translation), metrics and attention plots.

One tiny translator is trained once (module fixture) through
`tasks.translation.train` on a slice of the bundled pairs; the tests then
translate with it (greedy, beam, n-best, a batch with bad lines), evaluate,
plot, and check every bad-input case of `keras-seq translate`.
"""

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import sacrebleu

from keras_seq import cli, metrics, plotting, runs
from keras_seq.errors import InputError, RunDirError
from keras_seq.tasks import translation
from keras_seq.text import EOS_ID, UNK_ID


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("translator") / "run"
    args = translation.train_args(
        run_dir=str(path), max_pairs=700, epochs=2, batch_size=32, units=16, embedding_dim=16,
        max_length=12, verbose=0,
    )
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        result = translation.train(args)
    result["stdout"] = out.getvalue()
    return str(path), result


@pytest.fixture(scope="module")
def translator(run_dir):
    return translation.Translator.from_run(run_dir[0])


def _translate_args(run, sentences, **kwargs):
    values = dict(run=run, sentences=sentences, text=[], input=None, greedy=False, beam=3,
                  length_penalty=0.6, n_best=1, plot=None, max_length=None)
    values.update(kwargs)
    return cli.argparse.Namespace(**values)


def _call(fn, args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = fn(args)
    return status, out.getvalue(), err.getvalue()


# ----------------------------------------------------------------------------
# Training and the run directory
# ----------------------------------------------------------------------------


def test_train_writes_a_complete_run_directory(run_dir):
    path, result = run_dir
    config = runs.load_run_config(path)
    assert config["task"] == "translator"
    assert config["model"]["type"] == "rnn"
    assert config["model"]["config"]["units"] == 16
    assert config["tokenizer"]["source"]["type"] == "word"
    assert config["tokenizer"]["target"]["config"]["lowercase"] is False  # cased output
    data = config["data"]
    assert data["spec"] == "bundled:fra-eng" and data["max_pairs"] == 700
    assert data["pairs"]["train"] + data["pairs"]["valid"] + data["pairs"]["test"] == 700
    for side in ("source", "target"):
        assert os.path.isfile(os.path.join(path, "vocab", side, "vocab.txt"))
    assert runs.RunDir(path).best_weights.is_file()
    assert "validation BLEU (greedy" in result["stdout"]
    assert result["stop_reason"] == "completed"
    history = runs.RunDir(path).training_state()["history"]
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]


def test_recipe_picks_the_sampled_softmax_for_large_vocabularies():
    args = translation.train_args()
    large = translation.model_config_from_args(args, 9000, 8000, 50)
    assert large["config"]["sampled_softmax"] == 512
    assert large["config"]["cell"] == "lstm" and large["config"]["attention"] == "bahdanau"
    assert large["config"]["max_length"] == 51
    small = translation.model_config_from_args(args, 900, 800, 50)
    assert "sampled_softmax" not in small["config"]
    explicit = translation.model_config_from_args(translation.train_args(sampled_softmax=0),
                                                  9000, 8000, 50)
    assert "sampled_softmax" not in explicit["config"]
    with pytest.raises(InputError, match="smaller than the target vocabulary"):
        translation.model_config_from_args(translation.train_args(sampled_softmax=900),
                                           900, 800, 50)


def test_sampled_softmax_training_run(tmp_path):
    args = translation.train_args(
        run_dir=str(tmp_path / "run"), max_pairs=300, epochs=1, batch_size=32, units=8,
        embedding_dim=8, max_length=10, sampled_softmax=32, verbose=0)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        result = translation.train(args)
    config = runs.load_run_config(result["run_dir"])
    assert config["model"]["config"]["sampled_softmax"] == 32
    assert config["recipe"]["label_smoothing"] == 0.0
    history = runs.RunDir(result["run_dir"]).training_state()["history"]
    assert np.isfinite(history[0]["val_loss"])  # scored with the full softmax
    outputs = translation.Translator.from_run(result["run_dir"]).translate(["Go!"], greedy=True)
    assert isinstance(outputs[0].text, str)


def test_resume_continues_with_the_stored_recipe(tmp_path):
    run = str(tmp_path / "run")
    common = dict(run_dir=run, batch_size=32, verbose=0)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        translation.train(translation.train_args(
            max_pairs=300, epochs=1, units=8, embedding_dim=8, max_length=10, **common))
        before = runs.load_run_config(run)
        # Model flags are ignored on resume: the stored config wins.
        translation.train(translation.train_args(resume=True, epochs=2, units=64, **common))
    after = runs.load_run_config(run)
    assert after["model"] == before["model"] and after["data"] == before["data"]
    assert after["training"]["epochs"] == 2
    history = runs.RunDir(run).training_state()["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_test_split_is_rebuilt_and_held_out(run_dir):
    path, _ = run_dir
    config = runs.load_run_config(path)
    train_pairs = translation.load_split(config, "train")
    test_pairs = translation.load_split(config, "test")
    assert len(test_pairs) == config["data"]["pairs"]["test"]
    assert len(train_pairs) == config["data"]["pairs"]["train"]
    # No test source sentence is seen in training (all its translations are held out).
    assert not {s for s, _ in test_pairs} & {s for s, _ in train_pairs}
    # Deterministic: the same split twice.
    assert translation.load_split(config, "test") == test_pairs


def test_held_out_fractions_are_capped():
    assert translation.held_out_fractions(10_000) == (0.05, 0.05)
    val, test = translation.held_out_fractions(200_000)
    assert round(val * 200_000) == translation.MAX_HELD_OUT == round(test * 200_000)


def test_label_smoothed_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[1, 4, 0], [2, 0, 0]], "int32")
    eps = 0.1
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    mask = labels != 0
    nll = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    expected = (((1 - eps) * nll - eps * logp.mean(-1)) * mask).sum() / mask.sum()
    loss = translation.label_smoothed_loss(eps)(labels, logits)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # Without smoothing: the plain masked cross-entropy.
    plain = translation.label_smoothed_loss(0.0)(labels, logits)
    np.testing.assert_allclose(float(plain), (nll * mask).sum() / mask.sum(), rtol=1e-5)


# ----------------------------------------------------------------------------
# Translating
# ----------------------------------------------------------------------------


def test_greedy_beam_and_n_best(translator):
    sentences = ["I am cold.", "Tom is here.", "Go!"]
    greedy = translator.translate(sentences, greedy=True)
    beam = translator.translate(sentences, beam=3, n_best=3)
    assert len(greedy) == len(beam) == 3
    for g, b in zip(greedy, beam):
        assert g.error is None and b.error is None
        assert isinstance(g.text, str) and len(g.hypotheses) == 1
        assert 1 <= len(b.hypotheses) <= 3
        assert b.text == b.hypotheses[0][0]
        assert g.source_tokens[-1] == "</s>"
    # Beam search of width 1 is greedy search.
    beam1 = translator.translate(sentences, beam=1)
    assert [r.text for r in beam1] == [r.text for r in greedy]
    np.testing.assert_allclose([r.hypotheses[0][1] for r in beam1],
                               [r.hypotheses[0][1] for r in greedy], rtol=1e-5)


def test_graph_and_eager_decoding_agree(translator):
    sentences = ["I am cold.", "Tom is here.", "Go!", "Who are you?"]
    graph = translation.Translator(translator.model, translator.source_tokenizer,
                                   translator.target_tokenizer, decode_mode="graph")
    eager = translation.Translator(translator.model, translator.source_tokenizer,
                                   translator.target_tokenizer, decode_mode="eager")
    for kwargs in (dict(greedy=True), dict(beam=3, n_best=2)):
        a = graph.translate(sentences, batch_size=3, **kwargs)
        b = eager.translate(sentences, batch_size=3, **kwargs)
        assert [r.hypotheses[0][0] for r in a] == [r.hypotheses[0][0] for r in b]
        np.testing.assert_allclose([h[1] for r in a for h in r.hypotheses],
                                   [h[1] for r in b for h in r.hypotheses], rtol=1e-4)


def test_output_is_the_tokenizers_detokenization(translator):
    # Without <unk> replacement, the text is exactly target_tokenizer.decode(ids).
    plain = translation.Translator(translator.model, translator.source_tokenizer,
                                   translator.target_tokenizer, unk_replace=False)
    source = translator.source_tokenizer.encode(["I am cold."])[0] + [EOS_ID]
    result = translator.model.generate(np.array([source], "int32"))
    expected = translator.target_tokenizer.decode(result.ids[:, 0].numpy())[0]
    assert plain.translate(["I am cold."], greedy=True)[0].text == expected


def test_unknown_output_words_are_copied_from_the_source(translator):
    # Output position 1 is <unk>; it attends most to source position 2.
    attention = np.array([[0.9, 0.05, 0.05, 0.0], [0.1, 0.1, 0.7, 0.1]])
    tokens = translator._replace_unknown(
        ["Je", "<unk>"], [5, UNK_ID], attention, ["I", "saw", "Zbigniew", "</s>"], 4)
    assert tokens == ["Je", "Zbigniew"]


def test_bad_lines_do_not_lose_the_others(run_dir):
    path, _ = run_dir
    long_line = " ".join(["cold"] * 40)
    sentences = ["I am cold.", "", "   ", b"caf\xe9 au lait", "qwzx vbnm", long_line, "Go!"]
    status, out, err = _call(translation.translate, _translate_args(path, sentences))
    lines = out.split("\n")
    assert lines[-1] == ""  # trailing newline
    lines = lines[:-1]
    assert len(lines) == len(sentences)  # one output line per input line
    assert lines[1] == lines[2] == lines[3] == ""
    assert status == 1  # the non-UTF-8 line could not be translated
    assert "line 2: empty line" in err and "line 3: empty line" in err
    assert "line 4: not translated: not valid UTF-8" in err
    assert "line 5: warning: every word is unknown" in err
    assert "line 6: warning: 40 tokens, longer than the model's maximum of 12" in err
    # The good lines match a batch without the bad ones.
    status2, out2, _ = _call(translation.translate,
                             _translate_args(path, ["I am cold.", "Go!"]))
    assert status2 == 0
    assert out2.split("\n")[:2] == [lines[0], lines[6]]


def test_n_best_output_format(run_dir):
    path, _ = run_dir
    status, out, _ = _call(translation.translate,
                           _translate_args(path, ["I am cold.", "Go!"], beam=3, n_best=2))
    assert status == 0
    rows = [line.split(" ||| ") for line in out.strip().split("\n")]
    assert {r[0] for r in rows} == {"0", "1"}
    for r in rows:
        assert len(r) == 3 and float(r[2]) <= 0.0


def test_bad_decoding_settings(translator, run_dir, capsys):
    with pytest.raises(InputError, match="beam size must be an integer >= 1"):
        translator.translate(["Hi."], beam=0)
    with pytest.raises(InputError, match="n_best"):
        translator.translate(["Hi."], beam=2, n_best=3)
    # On the command line: one line, exit status 2, before loading anything.
    assert cli.main(["translate", run_dir[0], "Hi.", "--beam", "0"]) == 2
    assert "--beam: must be an integer >= 1" in capsys.readouterr().err


def test_not_a_run_directory(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        translation.Translator.from_run(str(tmp_path / "missing"))
    run = runs.RunDir.create(tmp_path / "empty", {"task": "translator"})
    with pytest.raises(RunDirError, match="no checkpoint"):
        translation.Translator.from_run(str(run.path))
    lm = runs.RunDir.create(tmp_path / "lm", {"task": "lm"})
    lm.best_weights.write_bytes(b"x")
    with pytest.raises(RunDirError, match="not a translator run"):
        translation.Translator.from_run(str(lm.path))


def test_plot_writes_the_attention_map(run_dir, tmp_path):
    import matplotlib.image

    path, _ = run_dir
    png = tmp_path / "attention.png"
    status, _, err = _call(translation.translate,
                           _translate_args(path, ["", "I am cold.", "Go!"], plot=str(png)))
    assert status == 0 and png.is_file() and "attention map" in err
    image = matplotlib.image.imread(str(png))
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    # The figure's axes: source tokens across, output tokens down.
    result = translation.Translator.from_run(path).translate(
        ["I am cold."], beam=3, return_attention=True)[0]
    assert result.source_tokens == ["i", "am", "cold", ".", "</s>"]
    assert result.attention.shape == (len(result.output_tokens), 5)
    np.testing.assert_allclose(result.attention.sum(-1), 1.0, rtol=1e-5)
    fig = plotting.attention_figure(result.attention, result.source_tokens, result.output_tokens)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == result.source_tokens
    assert [t.get_text() for t in ax.get_yticklabels()] == result.output_tokens
    assert ax.get_xlabel() == "source" and ax.get_ylabel() == "output"


def test_plot_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        plotting.plot_attention(np.ones((1, 2)), ["a", "b"], ["x", "y"], tmp_path / "a.png")
    with pytest.raises(ValueError, match="does not exist"):
        plotting.plot_attention(np.ones((1, 1)), ["a"], ["x"], tmp_path / "no" / "a.png")


# ----------------------------------------------------------------------------
# Evaluation and metrics
# ----------------------------------------------------------------------------


def test_evaluate_prints_bleu_and_chrf(run_dir, tmp_path):
    path, _ = run_dir
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("I am cold.\tJ'ai froid.\nGo!\tVa !\nTom is here.\tTom est ici.\n",
                     encoding="utf-8")
    args = cli.argparse.Namespace(run=path, run_config=runs.load_run_config(path),
                                  data=str(pairs), split="test", beam=2)
    status, out, _ = _call(translation.evaluate, args)
    assert status is None
    assert "3 sentence pairs" in out and "BLEU" in out and "chrF" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(rows) == {"greedy", "beam"}
    for row in rows.values():
        bleu, chrf = float(row[-3]), float(row[-2])
        assert 0.0 <= bleu <= 100.0 and 0.0 <= chrf <= 100.0


def test_metrics_are_sacrebleus():
    hyps = ["Le chat est assis sur le tapis.", "Il fait froid !"]
    refs = ["Le chat est sur le tapis.", "Il fait très froid !"]
    assert metrics.corpus_bleu(hyps, refs) == sacrebleu.corpus_bleu(hyps, [refs]).score
    assert metrics.corpus_chrf(hyps, refs) == sacrebleu.corpus_chrf(hyps, [refs]).score
    scores = metrics.translation_scores(hyps, refs)
    assert scores.sentences == 2 and scores.bleu == scores["bleu"]
    assert metrics.corpus_bleu(["a b c d"], ["a b c d"]) == pytest.approx(100.0)
    # Punctuation spacing does not matter to the 13a tokenizer.
    assert metrics.corpus_bleu(["Salut les amis !"], ["Salut les amis!"]) == pytest.approx(100.0)
    assert metrics.perplexity(0.0) == 1.0
    np.testing.assert_allclose(metrics.perplexity(np.log(50.0)), 50.0)


def test_metrics_bad_input():
    with pytest.raises(ValueError, match="parallel"):
        metrics.corpus_bleu(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="list of strings"):
        metrics.corpus_bleu("a", "a")
    with pytest.raises(ValueError, match="empty"):
        metrics.corpus_chrf([], [])
    with pytest.raises(ValueError, match="NaN"):
        metrics.perplexity(float("nan"))
