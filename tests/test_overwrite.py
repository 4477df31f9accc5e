"""`--overwrite` never loses both runs; temporaries of killed processes are removed.

- `RunDir.create(..., overwrite=True)` moves the old run to a hidden sibling
  `.<name>.old.p<pid>@<host>` and deletes it once the new run has a checkpoint;
  a process killed before that leaves the old run, which the next open of the
  path moves back (a real training process is SIGKILLed here).
- Temporaries named after a process that is gone (checkpoints, run files,
  `.tmp-export-*` directories) are removed by the next run or export; those of
  live processes are kept.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq import runs
from keras_seq.errors import RunDirError
from keras_seq.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x @ rng.normal(size=(4, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


def _tiny_model():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def _train_run(path, marker, *, overwrite=False, epochs=1):
    run, _ = runs.prepare_run_dir(path, {"task": "lm", "marker": marker}, overwrite=overwrite)
    ds = _data()
    train(_tiny_model, ds, ds, run, TrainConfig(epochs=epochs, verbose=0), loss="mse")
    return run


def _hidden(parent):
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


def _fake_run(path, marker, *, weights=True):
    """A run directory with a config and (optionally) a stand-in weights file."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"task": "lm", "marker": marker}))
    (path / "checkpoints").mkdir()
    if weights:
        (path / "checkpoints" / "best.weights.h5").write_bytes(marker.encode())
    return path


def _aside(path, pid):
    return path.parent / f".{path.name}.old.{runs.owner_token(pid)}"


# ----------------------------------------------------------------------------
# A real process killed between the start of an overwrite and its first checkpoint.
# ----------------------------------------------------------------------------

_OVERWRITE_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np, tensorflow as tf, keras
    from keras_seq import runs
    from keras_seq.training import TrainConfig, train

    class Stall(keras.callbacks.Callback):  # the first checkpoint never comes
        def on_train_begin(self, logs=None):
            Path(sys.argv[2]).write_text("training")
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(600)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, x @ rng.normal(size=(4, 3)).astype("float32"))).batch(16)
    run, _ = runs.prepare_run_dir(sys.argv[1], {"task": "lm", "marker": "new"}, overwrite=True)
    model = lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    train(model, ds, ds, run, TrainConfig(epochs=3, verbose=0), loss="mse", callbacks=[Stall()])
    """)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def test_overwrite_killed_before_first_checkpoint_keeps_the_old_run(tmp_path):
    path = tmp_path / "runs" / "r"
    old = _train_run(path, "old", epochs=2)
    old_best = old.best_weights.read_bytes()
    old_state = old.state_path.read_bytes()
    script, started = tmp_path / "overwrite.py", tmp_path / "started"
    script.write_text(_OVERWRITE_SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(path), str(started)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while not started.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "training did not start within 180 s"
            time.sleep(0.05)
        # Mid-overwrite: the new run is in place, without a checkpoint; the old one is aside.
        assert json.loads((path / "config.json").read_text())["marker"] == "new"
        assert not runs.RunDir(path).has_checkpoint()
        assert _hidden(path.parent) == [_aside(path, proc.pid).name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # The next open finds the old run intact, and in place.
    run = runs.RunDir.open(path, require_checkpoint=True)
    assert run.config["marker"] == "old"
    assert run.best_weights.read_bytes() == old_best
    assert run.state_path.read_bytes() == old_state
    model = _tiny_model()
    model.load_weights(run.checkpoint())
    assert _hidden(path.parent) == []
    # ...and it resumes.
    ds = _data()
    _, history = train(_tiny_model, ds, ds, run, TrainConfig(epochs=3, verbose=0, resume=True), loss="mse")
    assert history.initial_epoch == 2


def test_finished_overwrite_leaves_only_the_new_run(tmp_path, capsys):
    path = tmp_path / "runs" / "r"
    _train_run(path, "old")
    run, _ = runs.prepare_run_dir(path, {"task": "lm", "marker": "new"}, overwrite=True)
    assert "kept as" in capsys.readouterr().err
    assert run.path == path and not run.has_checkpoint()
    aside = _aside(path, os.getpid())
    assert _hidden(path.parent) == [aside.name]
    # This process's own overwrite in progress is not undone by reading the run.
    assert runs.load_run_config(path)["marker"] == "new"
    assert aside.is_dir()
    ds = _data()
    train(_tiny_model, ds, ds, run, TrainConfig(epochs=1, verbose=0), loss="mse")
    assert os.listdir(path.parent) == ["r"]
    assert runs.RunDir.open(path, require_checkpoint=True).config["marker"] == "new"


def test_overwrite_without_flag_is_refused_and_moves_nothing(tmp_path):
    path = _fake_run(tmp_path / "r", "old")
    with pytest.raises(RunDirError, match="already holds a trained run"):
        runs.RunDir.create(path, {"task": "lm"})
    assert os.listdir(tmp_path) == ["r"]


# ----------------------------------------------------------------------------
# Recovery, for a kill at each step of an overwrite.
# ----------------------------------------------------------------------------


def test_kill_after_the_move_before_the_new_run_exists(tmp_path):
    path = tmp_path / "r"
    _fake_run(tmp_path / "x", "old").rename(_aside(path, _dead_pid()))
    assert runs.RunDir.open(path, require_checkpoint=True).config["marker"] == "old"
    assert os.listdir(tmp_path) == ["r"]


def test_kill_with_the_new_run_in_place_without_checkpoint(tmp_path, capsys):
    path = tmp_path / "r"
    _fake_run(tmp_path / "x", "old").rename(_aside(path, _dead_pid()))
    _fake_run(path, "new", weights=False)
    assert runs.load_run_config(path)["marker"] == "old"
    assert "restored the previous run" in capsys.readouterr().err
    assert (path / "checkpoints" / "best.weights.h5").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["r"]


def test_kill_after_the_first_checkpoint_keeps_the_new_run(tmp_path):
    path = tmp_path / "r"
    _fake_run(tmp_path / "x", "old").rename(_aside(path, _dead_pid()))
    _fake_run(path, "new")
    assert runs.RunDir.open(path).config["marker"] == "new"
    assert os.listdir(tmp_path) == ["r"]


def test_kill_while_deleting_the_old_run(tmp_path):
    path = tmp_path / "r"
    _fake_run(path, "new")
    trash = tmp_path / f".r.del.{runs.owner_token(_dead_pid())}"
    _fake_run(trash, "old", weights=False)
    assert runs.RunDir.open(path).config["marker"] == "new"
    assert os.listdir(tmp_path) == ["r"]


def test_a_live_overwrite_is_not_undone_by_a_reader(tmp_path):
    path = tmp_path / "r"
    live = _aside(path, os.getppid())  # another process that still runs
    _fake_run(tmp_path / "x", "old").rename(live)
    _fake_run(path, "new", weights=False)
    assert runs.RunDir.open(path).config["marker"] == "new"
    assert live.is_dir()


def test_create_after_a_killed_overwrite_restores_then_refuses(tmp_path):
    path = tmp_path / "r"
    _fake_run(tmp_path / "x", "old").rename(_aside(path, _dead_pid()))
    _fake_run(path, "new", weights=False)
    with pytest.raises(RunDirError, match="already holds a trained run"):
        runs.RunDir.create(path, {"task": "lm", "marker": "newer"})
    assert runs.load_run_config(path)["marker"] == "old"
    # With --overwrite it starts over, the restored old run kept aside again.
    runs.RunDir.create(path, {"task": "lm", "marker": "newer"}, overwrite=True)
    assert runs.load_run_config(path)["marker"] == "newer"
    assert _hidden(tmp_path) == [_aside(path, os.getpid()).name]


# ----------------------------------------------------------------------------
# Stale temporaries.
# ----------------------------------------------------------------------------


def test_stale_temporaries_rule(tmp_path, capsys):
    dead, live = _dead_pid(), os.getppid()
    names = {
        "dead": f".tmp-last.weights.h5.{runs.owner_token(dead)}.abc.weights.h5",
        "live": f".tmp-last.weights.h5.{runs.owner_token(live)}.abc.weights.h5",
        "self": f".tmp-last.weights.h5.{runs.owner_token()}.abc.weights.h5",
        "unnamed_old": ".tmp-xyz.weights.h5",
        "unnamed_new": ".tmp-uvw.weights.h5",
        "other_host": ".tmp-state.json.p1@someotherhost.abc",
    }
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(tmp_path / names["unnamed_old"], (an_hour_ago, an_hour_ago))
    os.utime(tmp_path / names["unnamed_new"], (runs.PROCESS_START + 1, runs.PROCESS_START + 1))
    os.utime(tmp_path / names["other_host"], (runs.PROCESS_START + 1, runs.PROCESS_START + 1))
    from keras_seq.training.checkpoints import _remove_stale_temporaries

    removed = _remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted([names["dead"], names["unnamed_old"]])
    assert sorted(os.listdir(tmp_path)) == sorted(
        names[k] for k in ("live", "self", "unnamed_new", "other_host")
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "removed 2 stale checkpoint temporaries" in err[0]


def test_temporaries_are_named_after_their_process(tmp_path):
    with runs.atomic_write(tmp_path / "a.json") as f:
        (tmp,) = os.listdir(tmp_path)
        assert tmp.startswith(".tmp-a.json.") and runs.owner_state(tmp) == "self"
        f.write("{}")
    assert os.listdir(tmp_path) == ["a.json"]


def test_new_run_removes_temporaries_of_killed_processes(tmp_path):
    path = tmp_path / "r"
    (path / "checkpoints").mkdir(parents=True)
    stale = [
        path / f".tmp-config.json.{runs.owner_token(_dead_pid())}.q1",
        path / "checkpoints" / f".tmp-best.weights.h5.{runs.owner_token(_dead_pid())}.q2.weights.h5",
    ]
    for p in stale:
        p.write_bytes(b"half")
    runs.RunDir.create(path, {"task": "lm"})
    assert not any(p.exists() for p in stale)


def test_export_removes_export_directories_of_killed_exporters(tmp_path, capsys):
    from keras_seq import export
    from keras_seq.export import writer
    from keras_seq.models import RNNLanguageModel
    from keras_seq.text import WordTokenizer

    to = tmp_path / "lm"
    to.mkdir()
    dead = to / f".tmp-export-1.{runs.owner_token(_dead_pid())}.k2"
    live = to / f".tmp-export-1.{runs.owner_token(os.getppid())}.k3"
    legacy_old = to / ".tmp-export-1-abcd"
    legacy_new = to / ".tmp-export-2-efgh"
    for d in (dead, live, legacy_old, legacy_new):
        (d / "saved_model" / "variables").mkdir(parents=True)
        (d / "saved_model" / "saved_model.pb").write_bytes(b"partial")
    old = time.time() - writer.STALE_UNOWNED_SECONDS - 60
    os.utime(legacy_old, (old, old))

    tokenizer = WordTokenizer().fit(["a b c .", "c b a ."])
    model = RNNLanguageModel(tokenizer.vocab_size, embedding_dim=4, units=4, num_layers=1, stateful=False)
    path = export.export_language_model(model, tokenizer, to, max_length=4, onnx=False)
    assert path == os.path.join(to, "1")
    assert sorted(os.listdir(to)) == sorted(["1", live.name, legacy_new.name])
    lines = [line for line in capsys.readouterr().err.splitlines() if "stale" in line]
    assert len(lines) == 1 and "removed 2 stale export directories" in lines[0]
