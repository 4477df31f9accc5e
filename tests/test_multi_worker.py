"""Multi-worker training: two real worker processes on loopback ports.

Each worker is `tests/multi_worker_worker.py` in its own process, one CPU
thread each, with its own TMPDIR (where a non-chief keeps its scratch files).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_seq import runs
from keras_seq.errors import KerasSeqError
from keras_seq.training import (
    TrainConfig,
    is_chief,
    multi_worker_config,
    multi_worker_strategy,
    write_tf_config,
)

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "multi_worker_worker.py"


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(tmp_path, tag, index, workers, run_dir, *extra):
    tmp = tmp_path / f"tmp-{tag}-{index}"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmp))
    env.pop("TF_CONFIG", None)
    out = tmp_path / f"{tag}-{index}.json"
    command = [sys.executable, str(WORKER), "--run-dir", str(run_dir), "--out", str(out), *extra]
    if workers:
        command += ["--workers", ",".join(workers), "--index", str(index)]
    log = open(tmp_path / f"{tag}-{index}.log", "w")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.out, proc.tmp, proc.log_path = out, tmp, tmp_path / f"{tag}-{index}.log"
    return proc


def _cluster(tmp_path, tag, run_dir, *extra, n=2):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(n)]
    return [_start(tmp_path, tag, i, workers, run_dir, *extra) for i in range(n)]


def _finish(procs, timeout=240):
    deadline = time.monotonic() + timeout
    results = []
    for proc in procs:
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        assert proc.returncode == 0, proc.log_path.read_text()[-3000:]
        results.append(json.loads(proc.out.read_text()))
    return results


def _under(paths, root):
    root = str(Path(root).resolve())
    return [p for p in paths if str(Path(p).resolve()).startswith(root + os.sep)]


def _event_file_pids(run_dir):
    # TensorFlow names event files events.out.tfevents.<time>.<host>.<pid>.<n>.v2
    return {int(p.name.split(".")[-3]) for p in Path(run_dir, "logs").rglob("events.out.tfevents.*")}


def test_tf_config_helpers(monkeypatch):
    config = multi_worker_config(["10.0.0.1:12345", "10.0.0.2:12345"], 1)
    assert config == {
        "cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
        "task": {"type": "worker", "index": 1},
    }
    assert multi_worker_config("a:1, b:2", 0)["cluster"]["worker"] == ["a:1", "b:2"]
    for workers, index, message in [
        ([], 0, "at least one"),
        (["10.0.0.1"], 0, "host:port"),
        (["a:1", "a:1"], 0, "differ"),
        (["a:1", "b:2"], 2, "0..1"),
    ]:
        with pytest.raises(ValueError, match=message):
            multi_worker_config(workers, index)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief()
    write_tf_config(["a:1", "b:2"], 1)
    assert json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1 and not is_chief()
    write_tf_config(["a:1", "b:2"], 0)
    assert is_chief()
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(KerasSeqError, match="TF_CONFIG"):
        is_chief()
    assert TrainConfig(strategy="multi-worker").strategy == "multi-worker"
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(KerasSeqError, match="needs the cluster: set TF_CONFIG"):
        multi_worker_strategy()


def test_worker_run_dir_writes_scratch_and_reads_the_chief(tmp_path):
    chief, _ = runs.prepare_run_dir(tmp_path / "run", {"task": "lm"})
    assert chief.is_chief and chief.config_path.is_file()
    worker, _ = runs.prepare_run_dir(tmp_path / "other", {"task": "lm"}, scratch=tmp_path / "scratch")
    assert not (tmp_path / "other").exists()
    assert (tmp_path / "scratch" / "config.json").is_file() and worker.vocab_dir.parent == tmp_path / "scratch"
    chief.last_weights.write_bytes(b"x")
    resumed, config = runs.prepare_run_dir(tmp_path / "run", None, resume=True, scratch=tmp_path / "s2")
    assert config == {"task": "lm"} and resumed.checkpoint("last") == chief.last_weights
    assert resumed.chief.last_weights == chief.last_weights != resumed.last_weights


def _train_alone(run_dir, epochs):
    """The reference: the same problem in this process on one device."""
    sys.path.insert(0, str(WORKER.parent))
    try:
        from multi_worker_worker import _problem
    finally:
        sys.path.pop(0)
    from keras_seq.training import train

    build, data, loss = _problem("dense")
    config = TrainConfig(epochs=epochs, verbose=0, strategy="default", optimizer="sgd",
                         learning_rate=0.1, clipnorm=1.0)
    model, history = train(build, data, None, run_dir, config, loss=loss)
    return history.history["loss"], model.get_weights()


def test_two_workers_killed_and_resumed_train_like_one_process_and_only_the_chief_writes(tmp_path):
    run_dir = tmp_path / "run"
    state_path = run_dir / "checkpoints" / "state.json"
    # 1. Two workers towards 40 epochs, slowly; SIGKILL worker 1 once the chief checkpointed epoch 2.
    procs = _cluster(tmp_path, "a", run_dir, "--epochs", "40", "--batch-sleep", "0.2")
    deadline = time.monotonic() + 180
    while not state_path.is_file() or json.loads(state_path.read_text())["epoch"] < 2:
        alive = all(p.poll() is None for p in procs)
        assert time.monotonic() < deadline and alive, procs[0].log_path.read_text()[-3000:]
        time.sleep(0.1)
    first_pids = [p.pid for p in procs]
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    # The chief cannot go on without its peer (TensorFlow reports the lost
    # heartbeat as a collective error); whatever it does, both are restarted.
    try:
        procs[0].wait(timeout=10)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].wait()
    killed_at = json.loads(state_path.read_text())["epoch"]
    assert 2 <= killed_at < 40

    # 2. Restart both with resume: they continue from the chief's last checkpoint.
    procs = _cluster(tmp_path, "b", run_dir, "--epochs", str(killed_at + 2), "--resume")
    chief, worker = _finish(procs)
    assert chief["chief"] and not worker["chief"] and chief["replicas"] == worker["replicas"] == 2
    assert chief["initial_epoch"] == worker["initial_epoch"] == killed_at
    assert chief["epochs"] == list(range(1, killed_at + 3))  # the whole run's history
    assert chief["weights"] == worker["weights"]  # bit-identical replicas
    assert json.loads(state_path.read_text())["epoch"] == killed_at + 2

    # Global batch 16 split 8 + 8, gradients summed then clipped, resumed from
    # the epoch-`killed_at` checkpoint: the same as one uninterrupted process.
    loss, weights = _train_alone(tmp_path / "alone", killed_at + 2)
    np.testing.assert_allclose(chief["loss"], loss, rtol=1e-5)
    for a, b in zip(chief["weights"], weights):
        np.testing.assert_allclose(a, b, atol=1e-5)

    # Only the chief wrote the run directory; the worker wrote its scratch, since removed.
    assert _under(chief["written"], run_dir) and not _under(worker["written"], run_dir)
    assert _under(worker["written"], worker_tmp := tmp_path / "tmp-b-1")
    assert any(p.endswith("last.weights.h5") for p in worker["scratch_seen"])
    assert not any(worker_tmp.iterdir()), "the worker's scratch directory was left behind"
    assert _event_file_pids(run_dir) == {first_pids[0], chief["pid"]}  # the two chiefs' TensorBoard files
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best.weights.h5", "last.weights.h5", "state.json"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lm", "translator", "transformer"])
def test_model_families_train_on_two_workers(tmp_path, model):
    procs = _cluster(tmp_path, "t", tmp_path / "run", "--epochs", "2", "--model", model)
    chief, worker = _finish(procs)
    assert chief["weights"] == worker["weights"] and np.isfinite(chief["loss"]).all()


@pytest.mark.slow
def test_time_budget_stops_every_worker_at_the_same_batch(tmp_path):
    # Only worker 1 is slow, and the rate anneals over the budget: the workers
    # must still agree on when to stop and on every learning rate they set.
    procs = _cluster(tmp_path, "budget", tmp_path / "run", "--epochs", "1000", "--max-minutes", "0.1",
                     "--anneal", "--batch-sleep", "0.05", "--sleep-index", "1")
    chief, worker = _finish(procs)
    assert chief["stop_reason"] == worker["stop_reason"] == "time_budget"
    assert chief["epochs"] == worker["epochs"] and chief["weights"] == worker["weights"]
