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


def test_train_keeps_the_last_n_epochs_and_returns_their_average(tmp_path):
    run = runs.RunDir(tmp_path / "run")
    model, history = train(_build, _data(), _data(), run,
                           TrainConfig(epochs=4, average_last=2, verbose=0), loss="mse")
    kept = epoch_checkpoints(run.checkpoints_dir)
    assert [p.name for p in kept] == ["epoch-0003.weights.h5", "epoch-0004.weights.h5"]
    assert run.checkpoint() == run.averaged_weights == run.checkpoint("averaged")
    members = []
    for path in kept:
        member = _build()
        member.load_weights(str(path))
        members.append(member.get_weights())
    for got, *parts in zip(model.get_weights(), *members):
        np.testing.assert_allclose(got, np.mean(parts, axis=0), rtol=1e-5, atol=1e-6)
    # Without averaging the run has no averaged weights: "auto" is "best".
    plain = runs.RunDir(tmp_path / "plain")
    train(_build, _data(), _data(), plain, TrainConfig(epochs=1, verbose=0), loss="mse")
    assert plain.checkpoint() == plain.best_weights
    with pytest.raises(RunDirError, match="no averaged weights"):
        plain.checkpoint("averaged")


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
