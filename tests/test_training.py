"""Tests for keras_seq.training: checkpoints, resume, budget, stopping, clipping, strategies."""

import inspect
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq import runs
from keras_seq.errors import KerasSeqError, RunDirError
from keras_seq.training import (
    TrainConfig,
    get_strategy,
    make_optimizer,
    read_checkpoint_state,
    resolve_jit_compile,
    train,
    use_logical_cpus,
)

REPO = Path(__file__).resolve().parents[1]


def _data(n=64, batch=16, seed=0, sign=1.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    w = np.random.default_rng(99).normal(size=(4, 3)).astype("float32")
    y = sign * (x @ w)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _build():
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)]
    )


def _config(**kwargs):
    kwargs.setdefault("verbose", 0)
    return TrainConfig(**kwargs)


def _h5_arrays(path, group):
    out = {}
    with h5py.File(path, "r") as f:
        if group not in f:
            return out

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        f[group].visititems(visit)
    return out


class _Capture(keras.callbacks.Callback):
    """Records the model/optimizer state when fit starts."""

    def on_train_begin(self, logs=None):
        self.weights = [w.copy() for w in self.model.get_weights()]
        self.optimizer_values = [np.array(v.numpy()) for v in self.model.optimizer.variables]
        self.iterations = int(self.model.optimizer.iterations.numpy())


# ----------------------------------------------------------------------------
# TrainConfig
# ----------------------------------------------------------------------------


def test_train_config_round_trip_and_validation():
    config = TrainConfig(epochs=3, optimizer="sgd", lr_schedule="step", max_minutes=1.5, jit_compile=False)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.peak_learning_rate == 1.0  # SGD default: the Zaremba recipe
    assert TrainConfig().peak_learning_rate == 1e-3
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="adagrad")
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="max_minutes"):
        TrainConfig(max_minutes=0)
    with pytest.raises(ValueError, match="unknown field.*bogus"):
        TrainConfig.from_dict({"epochs": 2, "bogus": 1})
    assert not hasattr(TrainConfig, "from_namespace")  # no Namespace below the CLI


# ----------------------------------------------------------------------------
# Checkpoints and resume
# ----------------------------------------------------------------------------


def test_checkpoints_and_resume_restore_model_and_optimizer(tmp_path):
    run = runs.RunDir(tmp_path / "run")
    ds = _data()
    _, history = train(_build, ds, ds, run.path, _config(epochs=2, seed=3), loss="mse")
    assert history.epoch == [0, 1] and history.stop_reason == "completed"
    for path in (run.last_weights, run.best_weights, run.state_path, run.logs_dir / "history.csv"):
        assert path.is_file(), path
    assert not list(run.checkpoints_dir.glob(".tmp-*"))

    state = read_checkpoint_state(run.last_weights)
    assert state == json.loads(run.state_path.read_text())
    assert state["epoch"] == 2 and state["stop_reason"] == "completed"
    assert [row["epoch"] for row in state["history"]] == [1, 2]
    assert state["best"] == min(row["val_loss"] for row in state["history"])
    saved_model = _h5_arrays(run.last_weights, "layers")
    saved_optimizer = _h5_arrays(run.last_weights, "optimizer")
    assert len(saved_optimizer) == 2 + 2 * 4  # iterations, lr, Adam m and v of 4 variables
    assert _h5_arrays(run.best_weights, "optimizer") == {}  # best: model weights only

    capture = _Capture()
    model, history = train(
        _build, ds, ds, run.path, _config(epochs=4, seed=3), loss="mse", callbacks=[capture], resume=True
    )
    assert history.initial_epoch == 2
    assert history.epoch == [0, 1, 2, 3]  # the whole run, the first session included
    assert capture.iterations == 2 * 4  # 2 epochs x 4 batches
    # The model and every optimizer variable start where the checkpoint left them.
    assert sorted(saved_model) == ["dense/vars/0", "dense/vars/1", "dense_1/vars/0", "dense_1/vars/1"]
    for key, got in zip(sorted(saved_model), capture.weights):
        np.testing.assert_array_equal(got, saved_model[key])
    opt = [saved_optimizer[k] for k in sorted(saved_optimizer, key=lambda k: int(k.split("/")[-1]))]
    assert len(opt) == len(capture.optimizer_values)
    for a, b in zip(opt, capture.optimizer_values):
        np.testing.assert_array_equal(a, b)
    state = read_checkpoint_state(run.last_weights)
    assert state["epoch"] == 4 and [row["epoch"] for row in state["history"]] == [1, 2, 3, 4]
    csv_lines = (run.logs_dir / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,loss,val_loss") and len(csv_lines) == 5
    assert state["elapsed_seconds"] >= state["history"][1]["elapsed_seconds"]


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    ds = _data()
    train(_build, ds, ds, tmp_path, _config(epochs=1), loss="mse")
    before = (tmp_path / "checkpoints" / "last.weights.h5").read_bytes()
    model, history = train(_build, ds, ds, tmp_path, _config(epochs=1, verbose=1), loss="mse", resume=True)
    assert "all 1 epochs are done" in capsys.readouterr().err
    assert history.epoch == [0] and history.stop_reason == "completed"
    assert (tmp_path / "checkpoints" / "last.weights.h5").read_bytes() == before
    with pytest.raises(RunDirError, match="nothing to resume"):
        train(_build, ds, ds, tmp_path / "empty", _config(epochs=1), loss="mse", resume=True)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    run = runs.RunDir(tmp_path)
    ds = _data()
    train(_build, ds, ds, tmp_path, _config(epochs=1), loss="mse")
    last, state = run.last_weights.read_bytes(), run.state_path.read_bytes()
    # A temporary file left by a killed run is cleaned up by the next one.
    stale = run.checkpoints_dir / ".tmp-stale.weights.h5"
    stale.write_bytes(b"half a file")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))  # as a killed earlier process left it

    real_save = keras.saving.save_weights
    calls = []

    def crash_midway(model, filepath, *args, **kwargs):
        calls.append(Path(filepath))
        real_save(model, filepath, *args, **kwargs)
        with open(filepath, "r+b") as f:  # a torn write, then the crash
            f.truncate(100)
        raise OSError("simulated crash while writing the checkpoint")

    monkeypatch.setattr(keras.saving, "save_weights", crash_midway)
    with pytest.raises(OSError, match="simulated crash"):
        train(_build, ds, ds, tmp_path, _config(epochs=2), loss="mse", resume=True)
    # It wrote to a temporary file in the same directory, never to the real name...
    assert calls and all(p.parent == run.checkpoints_dir and p.name.startswith(".tmp-") for p in calls)
    # ...so the previous checkpoint and state are intact and nothing is left behind.
    assert run.last_weights.read_bytes() == last
    assert run.state_path.read_bytes() == state
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == [
        "best.weights.h5",
        "last.weights.h5",
        "state.json",
    ]
    monkeypatch.undo()
    _, history = train(_build, ds, ds, tmp_path, _config(epochs=2), loss="mse", resume=True)
    assert history.epoch == [0, 1]


_KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np, tensorflow as tf, keras
    from keras_seq.training import TrainConfig, train

    class Slow(keras.callbacks.Callback):  # makes the kill land mid-run
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.25)

    x, y = _tiny_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    config = TrainConfig(epochs=int(sys.argv[2]), verbose=0, resume="--resume" in sys.argv)
    model, history = train(_tiny_model, ds, ds, sys.argv[1], config, loss="mse", callbacks=[Slow()])
    print("initial_epoch", history.initial_epoch, "epochs", len(history.epoch), history.stop_reason)
    """)


def _tiny_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    return x, x @ rng.normal(size=(4, 3)).astype("float32")


def _tiny_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def test_sigkill_then_resume_finishes(tmp_path, capsys):
    """A real training process is SIGKILLed after its first checkpoint; resume finishes it.

    The resume runs in this (already warm) process: the same `train` call a
    `--resume` command makes, on the checkpoint the killed process left.
    """
    script = tmp_path / "train_tiny.py"
    # The killed process builds the same data and model as this one (same source).
    script.write_text(
        "import numpy as np, keras\n"
        + inspect.getsource(_tiny_data)
        + inspect.getsource(_tiny_model)
        + _KILL_SCRIPT
    )
    run = runs.RunDir(tmp_path / "run")
    epochs = 8
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run.path), str(epochs)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not run.state_path.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_state = read_checkpoint_state(run.last_weights)
    killed_at = killed_state["epoch"]
    assert 1 <= killed_at < epochs and killed_state["stop_reason"] is None
    saved = _h5_arrays(run.last_weights, "layers")

    x, y = _tiny_data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    capture = _Capture()
    _, history = train(
        _tiny_model, ds, ds, run.path, _config(epochs=epochs, resume=True, verbose=1), loss="mse", callbacks=[capture]
    )
    assert f"resuming at epoch {killed_at + 1}/{epochs}" in capsys.readouterr().err
    assert history.initial_epoch == killed_at
    assert capture.iterations == killed_at * 4
    for key, got in zip(sorted(saved), capture.weights):
        np.testing.assert_array_equal(got, saved[key])
    state = read_checkpoint_state(run.last_weights)
    assert state["epoch"] == epochs and state["stop_reason"] == "completed"
    assert [row["epoch"] for row in state["history"]] == list(range(1, epochs + 1))
    assert history.epoch == list(range(epochs))
    assert json.loads(run.state_path.read_text())["epoch"] == epochs
    assert state["elapsed_seconds"] > killed_state["elapsed_seconds"]


# ----------------------------------------------------------------------------
# Time budget, early stopping, schedules, clipping, logs
# ----------------------------------------------------------------------------


class _SlowBatches(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.15)


def test_time_budget_stops_after_the_batch_and_keeps_best(tmp_path):
    run = runs.RunDir(tmp_path)
    ds = _data(n=160)  # 10 batches an epoch
    budget_s = 1.0
    start = time.monotonic()
    model, history = train(
        _build,
        ds,
        ds,
        tmp_path,
        _config(epochs=50, max_minutes=budget_s / 60),
        loss="mse",
        callbacks=[_SlowBatches()],
    )
    took = time.monotonic() - start
    assert history.stop_reason == "time_budget"
    state = read_checkpoint_state(run.last_weights)
    assert state["stop_reason"] == "time_budget" and state["epoch"] == len(history.epoch) < 50
    assert state["elapsed_seconds"] >= budget_s
    assert took < budget_s + 15  # stopped soon after the budget, not after 50 epochs
    # The best checkpoint is kept and is what the returned model holds.
    best = _h5_arrays(run.best_weights, "layers")
    for key, got in zip(sorted(best), model.get_weights()):
        np.testing.assert_array_equal(got, best[key])
    # Resuming with the same budget: nothing left to spend.
    _, again = train(
        _build, ds, ds, tmp_path, _config(epochs=50, max_minutes=budget_s / 60), loss="mse", resume=True
    )
    assert again.epoch == history.epoch


def test_early_stopping_restores_best(tmp_path):
    run = runs.RunDir(tmp_path)

    def build():
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, use_bias=False, kernel_initializer="zeros")]
        )

    # Fitting y = xW makes the loss on y = -xW grow every epoch: the best epoch is the first.
    model, history = train(
        build,
        _data(sign=1.0),
        _data(seed=1, sign=-1.0),
        tmp_path,
        _config(epochs=20, patience=2, optimizer="sgd", learning_rate=0.05),
        loss="mse",
    )
    val = history.history["val_loss"]
    assert history.stop_reason == "early_stopping"
    assert len(val) == 3 and val[0] < val[1] < val[2]
    state = read_checkpoint_state(run.last_weights)
    assert state["best_epoch"] == 1 and state["wait"] == 2
    best = _h5_arrays(run.best_weights, "layers")
    last = _h5_arrays(run.last_weights, "layers")
    (key,) = best
    np.testing.assert_array_equal(model.get_weights()[0], best[key])
    assert not np.array_equal(best[key], last[key])


def test_learning_rate_schedules(tmp_path):
    ds = _data()
    _, step = train(
        _build,
        ds,
        ds,
        tmp_path / "step",
        _config(
            epochs=5,
            optimizer="sgd",
            learning_rate=0.2,
            lr_schedule="step",
            decay_start_epoch=3,
            decay_rate=0.5,
        ),
        loss="mse",
    )
    np.testing.assert_allclose(step.history["learning_rate"], [0.2, 0.2, 0.1, 0.05, 0.025], rtol=1e-6)

    _, cosine = train(
        _build,
        ds,
        ds,
        tmp_path / "cosine",
        _config(epochs=2, learning_rate=0.01, lr_schedule="cosine", warmup_steps=2),
        loss="mse",
    )
    # 8 steps: 2 of warmup to 0.01, then cosine to 0 over the remaining 6.
    assert cosine.history["learning_rate"][-1] == pytest.approx(0.0, abs=1e-9)
    assert 0 < cosine.history["learning_rate"][0] < 0.01

    def build():
        return keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3, use_bias=False, kernel_initializer="zeros")]
        )

    _, plateau = train(
        build,
        _data(sign=1.0),
        _data(seed=1, sign=-1.0),
        tmp_path / "plateau",
        _config(epochs=4, optimizer="sgd", learning_rate=0.05, lr_schedule="plateau"),
        loss="mse",
    )
    # The val loss never improves after epoch 1: halved after epochs 2 and 3 (patience 1),
    # each new rate used from the next epoch on.
    np.testing.assert_allclose(plateau.history["learning_rate"], [0.05, 0.05, 0.025, 0.0125], rtol=1e-6)


def test_anneal_to_budget_decays_the_rate_over_the_time_budget(tmp_path):
    ds = _data(n=160)  # 10 batches an epoch, 0.15 s each
    # 8 s: at least 2 epochs even when the first one's tracing takes seconds on a busy machine.
    budget_s = 8.0
    _, annealed = train(
        _build, ds, ds, tmp_path / "annealed",
        _config(epochs=50, optimizer="sgd", learning_rate=0.1, max_minutes=budget_s / 60,
                anneal_to_budget=True),
        loss="mse", callbacks=[_SlowBatches()],
    )
    rates = annealed.history["learning_rate"]
    assert annealed.stop_reason == "time_budget" and len(rates) >= 2
    # A cosine of the time spent: falling every epoch, from below the peak to
    # near 0 at the end of the budget.
    assert all(0.0 <= b < a for a, b in zip(rates, rates[1:]))
    assert rates[0] < 0.1 and rates[-1] < 0.1 * 0.5 * (1 + math.cos(math.pi * 0.5))
    # Without a budget the flag changes nothing.
    _, plain = train(
        _build, ds, ds, tmp_path / "plain",
        _config(epochs=2, optimizer="sgd", learning_rate=0.1, anneal_to_budget=True),
        loss="mse",
    )
    np.testing.assert_allclose(plain.history["learning_rate"], [0.1, 0.1], rtol=1e-6)
    with pytest.raises(ValueError, match="anneal_to_budget"):
        TrainConfig(anneal_to_budget=True, lr_schedule="cosine", max_minutes=1.0)


def test_anneal_to_budget_fraction_keeps_the_rate_until_the_last_part_of_the_budget(tmp_path):
    ds = _data(n=160)  # 10 batches an epoch, 0.15 s each
    _, annealed = train(
        _build, ds, ds, tmp_path / "late",
        _config(epochs=50, optimizer="sgd", learning_rate=0.1, max_minutes=8.0 / 60,
                anneal_to_budget=0.4),
        loss="mse", callbacks=[_SlowBatches()],
    )
    rates = annealed.history["learning_rate"]
    assert annealed.stop_reason == "time_budget" and len(rates) >= 3
    # The first 60% of the budget (4.8 s; an epoch takes 1.5 s) at the peak, then a cosine.
    assert rates[0] == pytest.approx(0.1)
    assert all(0.0 <= b <= a for a, b in zip(rates, rates[1:])) and rates[-1] < 0.1
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="anneal_to_budget"):
            TrainConfig(anneal_to_budget=bad)


def test_gradient_clipping_bounds_the_update(tmp_path):
    optimizer = make_optimizer(TrainConfig(clipnorm=2.0))
    assert optimizer.global_clipnorm == 2.0 and optimizer.clipnorm is None
    assert make_optimizer(TrainConfig(clipnorm=0)).global_clipnorm is None
    assert make_optimizer(TrainConfig(clipnorm=None)).global_clipnorm is None

    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    y = 100.0 * rng.normal(size=(8, 3)).astype("float32")  # huge loss, huge gradient
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    keras.utils.set_random_seed(5)
    reference = _build()
    initial = [w.copy() for w in reference.get_weights()]
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, reference(x))
    grads = tape.gradient(loss, reference.trainable_variables)
    norm = float(tf.linalg.global_norm(grads))
    assert norm > 10 * 0.5
    expected = [w - 1.0 * g.numpy() * (0.5 / norm) for w, g in zip(initial, grads)]

    def build():
        model = _build()
        model.set_weights(initial)
        return model

    model, _ = train(
        build,
        ds,
        None,
        tmp_path,
        _config(epochs=1, optimizer="sgd", learning_rate=1.0, clipnorm=0.5),
        loss="mse",
    )
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    delta = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(model.get_weights(), initial)))
    assert delta == pytest.approx(0.5, rel=1e-4)


def test_tensorboard_scalars_match_history(tmp_path):
    ds = _data()
    _, history = train(_build, ds, ds, tmp_path, _config(epochs=2), loss="mse")
    found = {}
    for split in ("train", "validation"):
        for event_file in (tmp_path / "logs" / split).glob("events.out.tfevents.*"):
            for event in tf.compat.v1.train.summary_iterator(str(event_file)):
                for value in event.summary.value:
                    assert value.metadata.plugin_data.plugin_name == "scalars"
                    found[(split, value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    for epoch in (0, 1):
        assert found[("train", "epoch_loss", epoch)] == pytest.approx(
            history.history["loss"][epoch], rel=1e-6
        )
        assert found[("validation", "epoch_loss", epoch)] == pytest.approx(
            history.history["val_loss"][epoch], rel=1e-6
        )
        assert ("train", "epoch_learning_rate", epoch) in found


def test_mixed_precision_and_xla(tmp_path):
    class Model(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="tanh")
            self.logits = keras.layers.Dense(3, dtype="float32")  # keep the outputs in float32

        def call(self, x):
            return self.logits(self.hidden(x))

    ds = _data()
    assert resolve_jit_compile("auto") is False  # no GPU here: XLA off unless asked
    model, history = train(
        Model, ds, None, tmp_path, _config(epochs=1, mixed_precision=True, jit_compile=True), loss="mse"
    )
    assert model.jit_compile is True
    assert model.hidden.dtype_policy.name == "mixed_bfloat16"  # bfloat16 on CPU (float16 on GPU)
    assert model.hidden.compute_dtype == "bfloat16" and model.hidden.kernel.dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after building
    assert np.isfinite(history.history["loss"][0])
    model, history = train(
        Model, ds, None, tmp_path, _config(epochs=2, mixed_precision=True), loss="mse", resume=True
    )
    assert history.epoch == [0, 1] and int(model.optimizer.iterations.numpy()) == 8
    assert model.hidden.compute_dtype == "bfloat16"


def test_strategy_names():
    assert get_strategy("default") is tf.distribute.get_strategy()
    assert get_strategy("auto") is tf.distribute.get_strategy()  # no GPU here
    with pytest.raises(ValueError, match="strategy"):
        get_strategy("tpu")


_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    from keras_seq.training import TrainConfig, train, use_logical_cpus, get_strategy, resolve_jit_compile
    print(json.dumps(use_logical_cpus(2)))
    import numpy as np, tensorflow as tf, keras
    from keras_seq.errors import KerasSeqError
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 3))).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    build = lambda: keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])
    out = {}
    for name in ("default", "mirrored"):
        # clipnorm=1.0 is active on every step: this is where per-replica clipping would differ.
        config = TrainConfig(
            epochs=2, verbose=0, strategy=name, optimizer="sgd", learning_rate=0.1, clipnorm=1.0
        )
        model, history = train(build, ds, None, sys.argv[1] + "/" + name, config, loss="mse")
        out[name] = {"replicas": model.distribute_strategy.num_replicas_in_sync,
                     "loss": history.history["loss"],
                     "weights": [w.tolist() for w in model.get_weights()]}
    try:
        use_logical_cpus(3)
    except KerasSeqError as e:
        out["late_split_error"] = str(e)
    try:
        resolve_jit_compile(True, get_strategy("mirrored"))
    except ValueError as e:
        out["jit_error"] = str(e)
    out["auto_jit"] = resolve_jit_compile("auto", get_strategy("mirrored"))
    print(json.dumps(out))
    """)


def test_mirrored_strategy_on_two_logical_cpus_matches_default(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(_MIRRORED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    devices_line, result_line = done.stdout.strip().splitlines()[-2:]
    assert len(json.loads(devices_line)) == 2
    out = json.loads(result_line)
    assert out["default"]["replicas"] == 1 and out["mirrored"]["replicas"] == 2
    np.testing.assert_allclose(out["mirrored"]["loss"], out["default"]["loss"], rtol=1e-5)
    for a, b in zip(out["mirrored"]["weights"], out["default"]["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert "must run before TensorFlow initialises its devices" in out["late_split_error"]
    assert "jit_compile=True does not work with 2 replicas" in out["jit_error"]
    assert out["auto_jit"] is False


def test_use_logical_cpus_after_initialisation_is_a_clear_error():
    tf.constant(1.0)  # devices are initialised in this process
    n = len(tf.config.list_logical_devices("CPU"))
    assert use_logical_cpus(n)  # the current split: a no-op
    with pytest.raises(KerasSeqError, match="before TensorFlow initialises"):
        use_logical_cpus(n + 1)
