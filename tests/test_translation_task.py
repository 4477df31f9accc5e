"""The translator pipeline (keras_seq.pipelines, keras_seq.recipes), metrics and attention plots.

One tiny translator is trained once (module fixture) through the public API
(`ks.train_translator` with a `ks.TranslatorRecipe`) on a slice of the bundled
pairs; the tests then translate with it (greedy, beam, n-best, a batch with bad
lines), evaluate, plot, and check every bad-input case of `keras-seq translate`.
"""

import dataclasses
import io
import os
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import sacrebleu

import keras_seq as ks
from keras_seq import cli, metrics, plotting, runs
from keras_seq.errors import InputError, RunDirError
from keras_seq.pipelines import translation_training
from keras_seq.pipelines.translation_commands import translate_lines
from keras_seq.text import EOS_ID, UNK_ID


def _recipe(train=None, **values):
    """A tiny `TranslatorRecipe` (the recurrent recipe's other settings kept)."""
    return ks.TranslatorRecipe(**values).with_training(**(train or {}))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("translator") / "run"
    # 2 epochs of about 20 batches, without the recipe's 300-step warm-up, so the loss
    # falls from the unigram start within them (test_train_writes_a_complete_run_directory).
    recipe = _recipe(units=16, embedding_dim=16, max_length=12,
                     train=dict(epochs=2, batch_size=32, warmup_steps=0, verbose=0))
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        result = ks.train_translator(recipe, str(path), max_pairs=700)
    result["stdout"] = out.getvalue()
    return str(path), result


@pytest.fixture(scope="module")
def translator(run_dir):
    return ks.Translator.from_run(run_dir[0])


def _translate(run, sentences, **kwargs):
    """`keras-seq translate` on `sentences` (the job behind the command, plain values)."""
    values = dict(beam=3, length_penalty=0.6, n_best=1, plot=None, max_length=None)
    values.update(kwargs)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = translate_lines(run, sentences, **values)
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
    model_info_for = translation_training.model_info_for
    large = model_info_for(ks.TranslatorRecipe(), 9000, 8000, 50)
    assert large["config"]["sampled_softmax"] == 512
    assert large["config"]["cell"] == "lstm" and large["config"]["attention"] == "bahdanau"
    assert large["config"]["max_length"] == 51
    small = model_info_for(ks.TranslatorRecipe(), 900, 800, 50)
    assert "sampled_softmax" not in small["config"]
    explicit = model_info_for(ks.TranslatorRecipe(sampled_softmax=0), 9000, 8000, 50)
    assert "sampled_softmax" not in explicit["config"]
    with pytest.raises(InputError, match="smaller than the target vocabulary"):
        model_info_for(ks.TranslatorRecipe(sampled_softmax=900), 900, 800, 50)
    transformer = model_info_for(ks.TranslatorRecipe.transformer(), 9000, 8000, 50)
    assert transformer["type"] == "transformer" and transformer["config"]["sampled_softmax"] == 0
    assert transformer["config"]["ff_dim"] == 4 * 256
    shaped = model_info_for(ks.TranslatorRecipe.transformer(ff_dim=512, tie_embeddings=True),
                            9000, 8000, 50)
    assert shaped["config"]["ff_dim"] == 512 and shaped["config"]["tie_embeddings"]
    assert not shaped["config"].get("share_embeddings")
    for field in (dict(ff_dim=512), dict(tie_embeddings=True)):
        with pytest.raises(InputError, match="applies to the Transformer, not to the rnn"):
            ks.TranslatorRecipe(**field)


def test_recipe_defaults_and_checks():
    rnn, transformer = ks.TranslatorRecipe(), ks.TranslatorRecipe.transformer()
    assert (rnn.units, rnn.layers, rnn.dropout, rnn.label_smoothing) == (256, 1, 0.3, 0.1)
    assert (rnn.train.epochs, rnn.train.learning_rate, rnn.train.warmup_steps) == (30, 2e-3, 300)
    assert (rnn.train.lr_schedule, rnn.train.patience, rnn.steps_per_epoch_cap) == ("plateau", 3, 1000)
    assert (transformer.layers, transformer.dropout, transformer.num_heads) == (3, 0.1, 4)
    assert (transformer.train.learning_rate, transformer.train.warmup_steps) == (5e-4, 400)
    assert (rnn.train.batch_size, transformer.train.batch_size) == (64, 32)
    assert (rnn.train.mixed_precision, transformer.train.mixed_precision) == (False, "auto")
    assert transformer.cell is None and transformer.label_smoothing == 0.1
    assert (rnn.unigram_bias, transformer.unigram_bias) == (True, True)
    # The Transformer averages its last 5 epochs, or all of a shorter run's (none below 2).
    assert (rnn.train.average_last, transformer.train.average_last) == (None, 5)
    assert transformer.with_training(epochs=3).train.average_last == 3
    assert transformer.with_training(epochs=1).train.average_last is None
    assert transformer.with_training(epochs=3, average_last=2).train.average_last == 2
    with pytest.raises(ValueError, match=r"average_last \(4\) is larger"):
        transformer.with_training(epochs=3, average_last=4)
    assert rnn.decode_options() == ks.decoding.DecodeOptions(beam_size=5, length_penalty=1.2)
    assert rnn.decoding_info() == {"beam": 5, "length_penalty": 1.2, "unk_replace": True}
    assert rnn.source_max_length == 50 and ks.TranslatorRecipe(tokenizer="char").source_max_length == 200
    with pytest.raises(InputError, match="^TranslatorRecipe: dropout must be in"):
        ks.TranslatorRecipe(dropout=1.0)
    with pytest.raises(InputError, match="attention must be one of"):
        ks.TranslatorRecipe(attention="dot")
    with pytest.raises(InputError, match="cell applies to the rnn model"):
        ks.TranslatorRecipe.transformer(cell="gru")
    with pytest.raises(InputError, match="multiple of the 4 attention heads"):
        ks.TranslatorRecipe.transformer(units=30)


def test_sampled_softmax_training_run(tmp_path):
    recipe = _recipe(units=8, embedding_dim=8, max_length=10, sampled_softmax=32,
                     train=dict(epochs=1, batch_size=32, verbose=0))
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        result = ks.train_translator(recipe, str(tmp_path / "run"), max_pairs=300)
    config = runs.load_run_config(result["run_dir"])
    assert config["model"]["config"]["sampled_softmax"] == 32
    assert config["recipe"]["label_smoothing"] == 0.0
    history = runs.RunDir(result["run_dir"]).training_state()["history"]
    assert np.isfinite(history[0]["val_loss"])  # scored with the full softmax
    outputs = ks.Translator.from_run(result["run_dir"]).translate(["Go!"], greedy=True)
    assert isinstance(outputs[0].text, str)


def test_a_run_batched_by_tokens(tmp_path):
    recipe = _recipe(units=8, embedding_dim=8, max_length=10, batch_tokens=96,
                     train=dict(epochs=1, verbose=1))
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        result = ks.train_translator(recipe, str(tmp_path / "run"), max_pairs=300)
    assert "batches of up to 96 tokens per pass" in err.getvalue()
    config = runs.load_run_config(result["run_dir"])
    assert config["recipe"]["batch_tokens"] == 96
    assert ks.TranslatorRecipe.from_run_config(config).batch_tokens == 96
    history = runs.RunDir(result["run_dir"]).training_state()["history"]
    assert np.isfinite(history[0]["val_loss"])
    # Memory: a batch of 96 tokens instead of 64 pairs of up to 11.
    by_pairs = dataclasses.replace(recipe, batch_tokens=None)
    assert recipe.tokens_per_batch == 96 and by_pairs.tokens_per_batch == 64 * 11
    assert (recipe.memory_estimate(100, 100).activation_bytes
            < by_pairs.memory_estimate(100, 100).activation_bytes)
    with pytest.raises(InputError, match=r"batch_tokens must hold the longest pair \(max_length "
                                         r"\+ 1 = 11 tokens\), got 10"):
        dataclasses.replace(recipe, batch_tokens=10)


def test_a_label_smoothed_transformer_run_that_splits_elisions(tmp_path):
    # One tiny run for both options (each training run costs the suite seconds).
    recipe = ks.TranslatorRecipe.transformer(
        units=8, layers=1, num_heads=2, max_length=12, label_smoothing=0.1, split_elisions=True,
    ).with_training(epochs=1, batch_size=32, verbose=0)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        result = ks.train_translator(recipe, str(tmp_path / "run"), max_pairs=300)
    config = runs.load_run_config(result["run_dir"])
    assert config["model"]["type"] == "transformer"
    assert config["recipe"]["label_smoothing"] == 0.1
    history = runs.RunDir(result["run_dir"]).training_state()["history"]
    assert np.isfinite(history[0]["val_loss"])
    for side in ("source", "target"):
        assert config["tokenizer"][side]["config"]["split_elisions"] is True
    assert ks.TranslatorRecipe.from_run_config(config).split_elisions is True
    translator = ks.Translator.from_run(result["run_dir"])
    target = translator.target_tokenizer
    assert {"J'", "ai"} <= set(target.vocabulary) and "J'ai" not in target.vocabulary
    assert target.tokenize(["J'ai froid."]) == [["J'", "ai", "froid", "."]]
    assert target.decode(target.encode(["J'ai."])) == ["J'ai."]
    # An unknown source word is copied as written, elision split like the encoder's tokens.
    assert translator._surface_words(["l'Himalaya"]) == [["l'", "Himalaya"]]
    assert translator.translate(["I'm cold."], greedy=True)[0].error is None


def test_resume_continues_with_the_stored_recipe(tmp_path):
    run = str(tmp_path / "run")
    recipe = _recipe(units=8, embedding_dim=8, max_length=10,
                     train=dict(epochs=1, batch_size=32, verbose=0))
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        ks.train_translator(recipe, run, max_pairs=300)
        before = runs.load_run_config(run)
        # The recipe is ignored on resume: the stored config wins.
        ks.train_translator(dataclasses.replace(recipe, units=64), run, resume=True,
                            train_overrides={"epochs": 2})
    after = runs.load_run_config(run)
    assert after["model"] == before["model"] and after["data"] == before["data"]
    assert after["training"]["epochs"] == 2
    history = runs.RunDir(run).training_state()["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_the_commands_drive_the_same_pipeline(tmp_path, monkeypatch):
    """train-translator, translate and resume through `keras-seq` (flags -> TranslatorRecipe)."""
    run = str(tmp_path / "run")
    flags = ["--run-dir", run, "--max-pairs", "300", "--epochs", "1", "--batch-size", "32",
             "--units", "8", "--embedding-dim", "8", "--max-length", "10", "--attention",
             "luong-dot", "--seed", "5"]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert cli.main(["train-translator", *flags]) == 0
    assert "validation BLEU (greedy" in out.getvalue() and f"run directory: {run}" in out.getvalue()
    config = runs.load_run_config(run)
    assert config["model"]["config"]["attention"] == "luong-dot"
    assert config["data"]["split_seed"] == config["training"]["seed"] == 5
    assert config["training"]["learning_rate"] == ks.TranslatorRecipe().train.learning_rate
    assert config["decoding"] == ks.TranslatorRecipe().decoding_info()
    assert config["recipe"] == {"label_smoothing": 0.1, "steps_per_epoch_cap": 1000,
                                "early_stop_on": "loss", "unigram_bias": True,
                                "batch_tokens": None}
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        assert cli.main(["translate", run, "I am cold.", "", "Go!", "--greedy"]) == 0
    assert len(out.getvalue().split("\n")) == 4  # one line per input line
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        assert cli.main(["train-translator", "--resume", "--run-dir", run, "--epochs", "2",
                         "--units", "64"]) == 0
    after = runs.load_run_config(run)
    assert after["model"] == config["model"] and after["training"]["epochs"] == 2


def test_test_split_is_rebuilt_and_held_out(run_dir):
    path, _ = run_dir
    config = runs.load_run_config(path)
    train_pairs = translation_training.load_split(config, "train")
    test_pairs = translation_training.load_split(config, "test")
    assert len(test_pairs) == config["data"]["pairs"]["test"]
    assert len(train_pairs) == config["data"]["pairs"]["train"]
    # No test source sentence is seen in training (all its translations are held out).
    assert not {s for s, _ in test_pairs} & {s for s, _ in train_pairs}
    # Deterministic: the same split twice.
    assert ks.Translator.from_run(path).split("test") == test_pairs


def test_held_out_fractions_are_capped():
    recipe = ks.TranslatorRecipe()
    assert recipe.held_out_fractions(10_000) == (0.05, 0.05)
    val, test = recipe.held_out_fractions(200_000)
    assert round(val * 200_000) == recipe.max_held_out == 2500 == round(test * 200_000)


def test_label_smoothed_loss_matches_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    labels = np.array([[1, 4, 0], [2, 0, 0]], "int32")
    eps = 0.1
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    mask = labels != 0
    nll = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    expected = (((1 - eps) * nll - eps * logp.mean(-1)) * mask).sum() / mask.sum()
    loss = translation_training.label_smoothed_loss(eps)(labels, logits)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    # Without smoothing: the plain masked cross-entropy.
    plain = translation_training.label_smoothed_loss(0.0)(labels, logits)
    np.testing.assert_allclose(float(plain), (nll * mask).sum() / mask.sum(), rtol=1e-5)


def test_the_pipeline_from_the_public_api_only(run_dir):
    """Train (the module fixture: `ks.train_translator`), `from_run`, translate, evaluate."""
    path, result = run_dir
    assert isinstance(result["translator"], ks.Translator)
    translator = ks.Translator.from_run(path)
    assert translator.options == ks.TranslatorRecipe().decode_options()
    options = ks.decoding.DecodeOptions(beam_size=3, length_penalty=0.6, num_return=2)
    [result] = translator.translate(["I am cold."], options)
    assert isinstance(result, ks.pipelines.Translation) and result.error is None
    assert 1 <= len(result.hypotheses) <= 2 and result.text == result.hypotheses[0][0]
    assert translator.translate(["I am cold."], greedy=True)[0].text == (
        translator.translate(["I am cold."], ks.decoding.DecodeOptions())[0].text)
    scores = translator.evaluate()  # the held-out test split
    assert scores["sentences"] == runs.load_run_config(path)["data"]["pairs"]["test"]
    for name in ("greedy", "beam"):
        assert 0.0 <= scores[name]["bleu"] <= 100.0 and 0.0 <= scores[name]["chrf"] <= 100.0
        assert len(scores["outputs"][name]) == scores["sentences"]
    table = ks.pipelines.format_scores(scores, "test split")
    assert table.startswith("test split: ") and "beam 5, length penalty 1.2" in table


def test_apps_use_the_public_api_only():
    root = os.path.join(os.path.dirname(__file__), os.pardir, "apps")
    for name in sorted(os.listdir(root)):
        if name.endswith(".py"):
            with open(os.path.join(root, name), encoding="utf-8") as f:
                source = f.read()
            assert "keras_seq.tasks" not in source and "Namespace(" not in source, name


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
    graph = ks.Translator(translator.model, translator.source_tokenizer,
                                   translator.target_tokenizer, decode_mode="graph")
    eager = ks.Translator(translator.model, translator.source_tokenizer,
                                   translator.target_tokenizer, decode_mode="eager")
    for kwargs in (dict(greedy=True), dict(beam=3, n_best=2)):
        a = graph.translate(sentences, batch_size=3, **kwargs)
        b = eager.translate(sentences, batch_size=3, **kwargs)
        assert [r.hypotheses[0][0] for r in a] == [r.hypotheses[0][0] for r in b]
        np.testing.assert_allclose([h[1] for r in a for h in r.hypotheses],
                                   [h[1] for r in b for h in r.hypotheses], rtol=1e-4)


def test_output_is_the_tokenizers_detokenization(translator):
    # Without <unk> replacement, the text is exactly target_tokenizer.decode(ids).
    plain = ks.Translator(translator.model, translator.source_tokenizer,
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
    status, out, err = _translate(path, sentences)
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
    status2, out2, _ = _translate(path, ["I am cold.", "Go!"])
    assert status2 == 0
    assert out2.split("\n")[:2] == [lines[0], lines[6]]


def test_n_best_output_format(run_dir):
    path, _ = run_dir
    status, out, _ = _translate(path, ["I am cold.", "Go!"], beam=3, n_best=2)
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
        ks.Translator.from_run(str(tmp_path / "missing"))
    run = runs.RunDir.create(tmp_path / "empty", {"task": "translator"})
    with pytest.raises(RunDirError, match="no checkpoint"):
        ks.Translator.from_run(str(run.path))
    lm = runs.RunDir.create(tmp_path / "lm", {"task": "lm"})
    lm.best_weights.write_bytes(b"x")
    with pytest.raises(RunDirError, match="not a translator run"):
        ks.Translator.from_run(str(lm.path))


def test_plot_writes_the_attention_map(run_dir, tmp_path):
    import matplotlib.image

    path, _ = run_dir
    png = tmp_path / "attention.png"
    status, _, err = _translate(path, ["", "I am cold.", "Go!"], plot=str(png))
    assert status == 0 and png.is_file() and "attention map" in err
    image = matplotlib.image.imread(str(png))
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    # The figure's axes: source tokens across, output tokens down.
    result = ks.Translator.from_run(path).translate(
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
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main(["evaluate", path, "--data", str(pairs), "--beam", "2"])
    out = out.getvalue()
    assert status == 0
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


@pytest.mark.slow
def test_export_and_the_demo_without_the_onnx_extra(translator, tmp_path, monkeypatch, capsys):
    """`Translator.export` (SavedModel, parity-checked); the demo's export step skips ONNX."""
    from keras_seq import extras
    from keras_seq.pipelines import demo

    note = 'ONNX export needs tf2onnx: pip install "keras-seq[onnx]"'
    monkeypatch.setattr(extras, "missing_message",
                        lambda extra, feature: note if extra == "onnx" else None)
    demo._export(translator, str(tmp_path / "exported"))
    out = capsys.readouterr().out
    assert f"skipped: {note}" in out and "SavedModel: " in out
    assert "parity: the Keras model, saved_model give the same translations" in out
    assert (tmp_path / "exported" / "1").is_dir() and not (tmp_path / "exported" / "onnx").exists()
    path, report = translator.export(str(tmp_path / "exported"), onnx=False, parity_sentences=[])
    assert path.endswith("2") and report == {}
