"""Checkpoint averaging (issue 15, item 3): `TrainConfig.average_last`, `--average-last`,
`keras_seq.training.average_checkpoints`, and `averaged.weights.h5` picked by the run."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq import cli
from keras_seq import runs
from keras_seq.errors import InputError, RunDirError
from keras_seq.training import TrainConfig, average_checkpoints, epoch_checkpoints, train


def _build(units=8):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="tanh"),
                             keras.layers.BatchNormalization(), keras.layers.Dense(3)])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 3))).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _save_random(path, seed, units=8):
    model = _build(units)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in model.get_weights()])
    model.save_weights(str(path))
    return model.get_weights()


def test_average_equals_the_mean_of_the_weights(tmp_path):
    weights = [_save_random(tmp_path / f"c{i}.weights.h5", seed=i) for i in range(3)]
    paths = [tmp_path / f"c{i}.weights.h5" for i in range(3)]
    averaged = average_checkpoints(paths, to=tmp_path / "avg.weights.h5")
    model = _build()
    model.load_weights(str(tmp_path / "avg.weights.h5"))
    for got, *parts in zip(model.get_weights(), *weights):
        np.testing.assert_allclose(got, np.mean(parts, axis=0), rtol=1e-6, atol=1e-6)
    assert sum(a.size for a in averaged.values()) == sum(w.size for w in weights[0])


def test_average_refuses_bad_input(tmp_path):
    _save_random(tmp_path / "a.weights.h5", 0)
    _save_random(tmp_path / "b.weights.h5", 1, units=5)
    with pytest.raises(InputError, match="at least 2 checkpoints"):
        average_checkpoints([tmp_path / "a.weights.h5"])
    with pytest.raises(RunDirError, match="do not fit together: .* has shape"):
        average_checkpoints([tmp_path / "a.weights.h5", tmp_path / "b.weights.h5"])
    with pytest.raises(RunDirError, match="no checkpoint at"):
        average_checkpoints([tmp_path / "a.weights.h5", tmp_path / "missing.weights.h5"])


def _weights_of(path, build=_build):
    member = build()
    member.load_weights(str(path))
    return member.get_weights()


def _assert_weights_equal(got, expected):
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_train_without_validation_keeps_the_last_n_epochs_and_returns_their_average(tmp_path):
    run = runs.RunDir(tmp_path / "run")
    model, history = train(_build, _data(), None, run,
                           TrainConfig(epochs=4, average_last=2, verbose=0), loss="mse")
    kept = epoch_checkpoints(run.checkpoints_dir)
    assert [p.name for p in kept] == ["epoch-0003.weights.h5", "epoch-0004.weights.h5"]
    assert run.checkpoint() == run.averaged_weights == run.checkpoint("averaged")
    members = [_weights_of(path) for path in kept]
    _assert_weights_equal(model.get_weights(), [np.mean(parts, axis=0) for parts in zip(*members)])
    # Without averaging the run has no averaged weights: "auto" is "best".
    plain = runs.RunDir(tmp_path / "plain")
    train(_build, _data(), _data(), plain, TrainConfig(epochs=1, verbose=0), loss="mse")
    assert plain.checkpoint() == plain.best_weights
    with pytest.raises(RunDirError, match="no averaged weights"):
        plain.checkpoint("averaged")


def _linear():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def _regression(noise):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ np.array([[1.5], [-2.0], [0.5], [3.0]]) + noise * rng.normal(size=(256, 1))).astype("float32")
    return x, y


def _loss_of(weights, x, y):
    model = _linear()
    model.set_weights(weights)
    return float(np.mean((model.predict(x, verbose=0) - y) ** 2))


@pytest.mark.parametrize("learning_rate, averaged", [
    # Small steps: every epoch lowers the loss, so any mean of epochs is
    # behind the last (best) one and the run keeps its best weights.
    (0.01, False),
    # Steps too large for the curvature: the weights jump across the minimum
    # from epoch to epoch, and the mean of two neighbours is closer to it.
    (0.9, True),
])
def test_averaging_is_kept_only_when_it_lowers_the_validation_loss(tmp_path, learning_rate, averaged):
    x, y = _regression(noise=0.1)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(256)  # full batch: deterministic steps
    run = runs.RunDir(tmp_path / "run")
    config = TrainConfig(epochs=6, average_last=4, optimizer="sgd", learning_rate=learning_rate,
                         clipnorm=None, verbose=0)
    model, _ = train(_linear, data, data, run, config, loss="mse")
    kept = epoch_checkpoints(run.checkpoints_dir)
    assert len(kept) == 4
    # The oracle: the validation loss of the best epoch and of the mean of
    # each window of the last 2..4 epochs, computed here with numpy.
    members = [_weights_of(path, _linear) for path in kept]
    candidates = {"best": _weights_of(run.best_weights, _linear)}
    for k in range(2, 5):
        candidates[k] = [np.mean(parts, axis=0) for parts in zip(*members[-k:])]
    losses = {name: _loss_of(w, x, y) for name, w in candidates.items()}
    winner = min(losses, key=losses.get)
    assert (winner != "best") == averaged, losses
    _assert_weights_equal(model.get_weights(), candidates[winner])
    assert run.averaged_weights.is_file() == averaged
    assert not list(run.checkpoints_dir.glob(".tmp-*"))  # the candidates' scratch file is gone
    assert run.checkpoint() == (run.averaged_weights if averaged else run.best_weights)


def test_bad_average_last_is_refused():
    with pytest.raises(ValueError, match="average_last must be an integer >= 2"):
        TrainConfig(average_last=1)
    with pytest.raises(ValueError, match=r"average_last \(5\) is larger than the epoch checkpoints"):
        TrainConfig(epochs=3, average_last=5)


@pytest.mark.parametrize("argv, message", [
    (["--average-last", "1"], "argument --average-last: must be an integer >= 2"),
    (["--average-last", "12", "--epochs", "3"], "average_last (12) is larger than the epoch "
                                                 "checkpoints a run of 3 epochs keeps"),
])
def test_cli_refuses_bad_average_last_before_training(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    for command in ("train-translator", "train-lm"):
        status = cli.main([command, "--run-dir", str(run), *argv])
        err = capsys.readouterr().err
        assert status == 2
        assert message in err and len(err.strip().splitlines()) == 1
        assert not run.exists()
