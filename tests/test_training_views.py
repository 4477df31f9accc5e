"""Seeing training (issue 15, item 5): sample translations every epoch, `--early-stop-on
bleu`, a monitor that is maximized, and `training-curves.png` in the run directory."""

import io
import sys
from contextlib import redirect_stderr, redirect_stdout

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_seq as ks
from keras_seq import cli
from keras_seq import extras
from keras_seq import plotting
from keras_seq import runs
from keras_seq.pipelines.translation_monitor import TranslationMonitor
from keras_seq.training import TrainConfig, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _quiet(fn, *args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = fn(*args, **kwargs)
    return result, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bleu_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("views") / "run")
    recipe = ks.TranslatorRecipe(units=8, embedding_dim=8, max_length=10,
                                 early_stop_on="bleu").with_training(epochs=2, batch_size=32)
    result, out, err = _quiet(ks.train_translator, recipe, run, max_pairs=300)
    return {"run": run, "result": result, "out": out, "err": err}


def test_sample_translations_are_printed_every_epoch(bleu_run):
    err = bleu_run["err"]
    for epoch in (1, 2):
        assert f"epoch {epoch} sample translations (validation BLEU" in err
    valid = ks.Translator.from_run(bleu_run["run"]).split("valid")
    first = valid[0]
    assert f"  {first[0]}\n    -> " in err and f"(reference: {first[1]})" in err


def test_early_stop_on_bleu_selects_the_best_bleu(bleu_run):
    run = runs.RunDir(bleu_run["run"])
    assert run.config["recipe"]["early_stop_on"] == "bleu"
    state = run.training_state()
    bleus = [row["val_bleu"] for row in state["history"]]
    assert state["monitor"] == "val_bleu" and len(bleus) == 2
    assert state["best"] == max(bleus)
    assert state["best_epoch"] == 1 + int(np.argmax(bleus))  # the first of equal maxima
    assert f"best epoch {state['best_epoch']} (val_bleu {state['best']:.4f})" in bleu_run["err"]


def test_training_curves_png_is_written(bleu_run):
    path = runs.RunDir(bleu_run["run"]).path / "training-curves.png"
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_monitor_is_quiet_at_verbose_0_and_still_logs_bleu(bleu_run):
    translator = ks.Translator.from_run(bleu_run["run"])
    pairs = translator.split("valid")
    monitor = TranslationMonitor(translator.source_tokenizer, translator.target_tokenizer,
                                 pairs, bleu_sentences=5, verbose=0)
    monitor.set_model(translator.model)
    logs = {}
    _, out, err = _quiet(monitor.on_epoch_end, 0, logs)
    assert out == err == ""
    outputs = [r.text for r in translator.translate([s for s, _ in pairs[:5]], greedy=True)]
    expected = ks.metrics.translation_scores(outputs, [t for _, t in pairs[:5]])["bleu"]
    assert logs["val_bleu"] == pytest.approx(expected)


# ----------------------------------------------------------------------------
# The trainer: a monitor to maximize; the curves without matplotlib
# ----------------------------------------------------------------------------


def _build():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, x[:, :3])).batch(16)


class _Score(keras.callbacks.Callback):
    """Logs a given `val_score` per epoch and keeps each epoch's weights."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights = scores, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = self.scores[epoch]
        self.weights.append(self.model.get_weights())


def test_a_monitor_not_named_loss_is_maximized(tmp_path):
    score = _Score([1.0, 3.0, 2.0, 2.5, 9.0])
    model, history = train(_build, _data(), _data(), tmp_path / "run",
                           TrainConfig(epochs=5, patience=2, verbose=0), loss="mse",
                           callbacks=[score], monitor="val_score")
    assert history.stop_reason == "early_stopping" and history.state["epoch"] == 4
    assert (history.state["best"], history.state["best_epoch"]) == (3.0, 2)
    for got, want in zip(model.get_weights(), score.weights[1]):  # the best epoch's weights
        np.testing.assert_array_equal(got, want)


def test_training_curves_without_matplotlib_say_so_once(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setattr(extras, "_find_spec", lambda name: None)
    _, _, err = _quiet(train, _build, _data(), _data(), tmp_path / "run",
                       TrainConfig(epochs=2, verbose=1), loss="mse")
    assert err.count("no training-curves.png") == 1
    assert 'pip install "keras-seq[plot]"' in err or "plot" in err
    assert not (tmp_path / "run" / "training-curves.png").exists()


def test_training_curves_figure_panels(tmp_path):
    history = [{"epoch": e, "loss": 3.0 / e, "val_loss": 3.5 / e, "learning_rate": 1e-3 / e}
               for e in (1, 2, 3)]
    fig = plotting.training_curves_figure(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "learning rate"]
    (training, validation) = fig.axes[0].get_lines()
    np.testing.assert_allclose(validation.get_ydata(), [3.5, 1.75, 3.5 / 3])
    history[1]["val_bleu"] = 12.5
    fig = plotting.training_curves_figure(history)
    assert [ax.get_title() for ax in fig.axes] == ["loss", "validation BLEU", "learning rate"]
    path = plotting.plot_training_curves(history, tmp_path / "curves.png")
    assert open(path, "rb").read(8) == PNG_MAGIC
    with pytest.raises(ValueError, match="at least one row"):
        plotting.training_curves_figure([])


def test_cli_early_stop_on_maps_onto_the_recipe(capsys):
    args, _ = cli.prepare(["train-translator", "--early-stop-on", "bleu", "--run-dir",
                           "/nonexistent/never-written"])
    assert cli._translator_recipe(args).early_stop_on == "bleu"
    assert cli.main(["train-translator", "--early-stop-on", "chrf"]) == 2
    assert "argument --early-stop-on: invalid choice: 'chrf'" in capsys.readouterr().err


def test_training_curves_redraw_at_epoch_ends_and_at_the_end(tmp_path):
    from keras_seq.training import TrainingCurves

    state = {"history": [{"epoch": 1, "loss": 2.0, "val_loss": 2.5}]}
    every, later = tmp_path / "every.png", tmp_path / "later.png"
    eager, lazy = TrainingCurves(state, every, min_seconds=0), TrainingCurves(state, later)
    for callback in (eager, lazy):
        callback.on_train_begin()
        callback.on_epoch_end(0)
    assert every.read_bytes()[:8] == PNG_MAGIC and not later.exists()
    lazy.on_train_end()
    assert later.read_bytes()[:8] == PNG_MAGIC
