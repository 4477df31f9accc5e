"""`keras-seq train-lm --strategy multi-worker --workers ... --worker-index N`.

The flag checks (argparse: one line, exit 2), the values that reach the
pipeline (plain lists and ints, never a Namespace), and two real `keras-seq`
worker processes on loopback ports training a tiny language model.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_seq import cli

REPO = Path(__file__).resolve().parents[1]


def _run_main(capsys, argv):
    status = cli.main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


BAD_WORKER_FLAGS = [
    (["--workers", "127.0.0.1:1,127.0.0.1:2"], "argument --worker-index: required with --workers"),
    (["--worker-index", "0"], "argument --worker-index: only applies with --workers"),
    (["--workers", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "2"],
     "argument --worker-index: must be < 2 (the number of --workers), got 2"),
    (["--workers", "127.0.0.1:1", "--worker-index", "-1"],
     "argument --worker-index: must be an integer >= 0, got '-1'"),
    (["--workers", "127.0.0.1:1", "--worker-index", "x"], "argument --worker-index: expected an integer"),
    (["--workers", "localhost", "--worker-index", "0"],
     "argument --workers: worker address 'localhost' is not host:port"),
    (["--workers", "127.0.0.1:1,", "--worker-index", "0"], "worker address '' is not host:port"),
    (["--workers", "h:0", "--worker-index", "0"], "worker address 'h:0' is not host:port"),
    (["--workers", "h:70000", "--worker-index", "0"], "worker address 'h:70000' is not host:port"),
    (["--workers", "h:1,h:1", "--worker-index", "0"], "argument --workers: worker addresses must differ"),
    (["--workers", "", "--worker-index", "0"], "argument --workers: expected host:port,host:port"),
    (["--workers", "h:1", "--worker-index", "0", "--strategy", "mirrored"],
     "argument --workers: implies --strategy multi-worker, not mirrored"),
    (["--strategy", "ring"], "argument --strategy: invalid choice: 'ring'"),
]


@pytest.mark.parametrize("command", ["train-lm", "train-translator"])
@pytest.mark.parametrize("flags, message", BAD_WORKER_FLAGS,
                         ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_worker_flags_are_one_line_exit_2(capsys, tmp_path, command, flags, message):
    status, out, err = _run_main(capsys, [command, "--run-dir", str(tmp_path / "run"), *flags])
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-seq: error: ") and message in lines[0], lines[0]
    assert not (tmp_path / "run").exists()


def test_serve_keeps_its_own_workers_flag():
    args = cli.build_parser().parse_args(["serve", "models", "--workers", "3"])
    assert args.workers == 3


@pytest.mark.parametrize("command, job",
                         [("train-lm", "train_run"), ("train-translator", "train_translator")])
@pytest.mark.parametrize("flags, strategy, workers, index", [
    ([], None, None, None),
    (["--strategy", "multi-worker"], "multi-worker", None, None),
    (["--workers", "10.0.0.1:12345,10.0.0.2:12345", "--worker-index", "1"],
     "multi-worker", ["10.0.0.1:12345", "10.0.0.2:12345"], 1),
    (["--workers", "10.0.0.1:12345", "--worker-index", "0", "--strategy", "multi-worker"],
     "multi-worker", ["10.0.0.1:12345"], 0),
])
def test_worker_flags_reach_the_pipeline_as_plain_values(tmp_path, monkeypatch, command, job,
                                                         flags, strategy, workers, index):
    import keras_seq.pipelines as pipelines
    from keras_seq.pipelines import lm_commands

    calls = []

    def fake(recipe, run_dir, **kwargs):
        calls.append((recipe, kwargs))

    monkeypatch.setattr(lm_commands if job == "train_run" else pipelines, job, fake)
    args, (module, function) = cli.prepare([command, "--run-dir", str(tmp_path / "r"), *flags])
    assert args.strategy == ("multi-worker" if "--strategy" in flags else None)  # args as parsed
    import importlib

    getattr(importlib.import_module(module), function)(args)
    (recipe, kwargs), = calls
    assert kwargs["workers"] == workers and kwargs["worker_index"] == index
    assert recipe.train.strategy == (strategy or type(recipe.train)().strategy)
    assert not any(type(v).__name__ == "Namespace" for v in kwargs.values())


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _text(path):
    words = "the cat sat on a mat and the dog ran to the red barn while birds sang".split()
    lines = [" ".join(words[(i * 3) % len(words):] + words[:(i * 3) % len(words)]) for i in range(60)]
    path.write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_two_keras_seq_workers_train_a_language_model(tmp_path):
    """Two `keras-seq train-lm` processes, one CPU thread each; only the chief writes."""
    data = _text(tmp_path / "tiny.txt")
    workers = ",".join(f"127.0.0.1:{p}" for p in _free_ports(2))
    procs = []
    for index in range(2):
        tmp = tmp_path / f"tmp-{index}"
        tmp.mkdir()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=str(tmp), OMP_NUM_THREADS="1",
                   TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="2")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.pop("TF_CONFIG", None)
        command = [sys.executable, "-m", "keras_seq.cli", "train-lm", "--data", str(data),
                   "--run-dir", str(tmp_path / f"run-{index}"), "--model", "lstm",
                   "--tokenizer", "char", "--units", "8", "--layers", "1", "--embedding-dim", "8",
                   "--seq-len", "5", "--batch-size", "4", "--epochs", "2", "--seed", "1",
                   "--optimizer", "sgd", "--no-jit", "-q",
                   "--strategy", "multi-worker", "--workers", workers, "--worker-index", str(index)]
        out = open(tmp_path / f"out-{index}.txt", "w")
        err = open(tmp_path / f"err-{index}.txt", "w")
        procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=tmp_path))
    deadline = time.monotonic() + 300
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    logs = [(tmp_path / f"err-{i}.txt").read_text()[-3000:] for i in range(2)]
    assert [p.returncode for p in procs] == [0, 0], logs
    chief, other = tmp_path / "run-0", tmp_path / "run-1"
    assert (chief / "config.json").is_file()
    assert (chief / "checkpoints").is_dir() and any((chief / "checkpoints").iterdir())
    assert (chief / "vocab").is_dir()
    # Worker 1 wrote only its scratch directory, removed when it finished.
    assert not other.exists() or not any(other.iterdir()), sorted(other.rglob("*"))
    assert not list((tmp_path / "tmp-1").glob("keras_seq-worker-*"))
    # Only the chief prints the results.
    chief_out = (tmp_path / "out-0.txt").read_text()
    assert "validation perplexity:" in chief_out and f"run directory: {chief}" in chief_out
    assert (tmp_path / "out-1.txt").read_text() == ""
