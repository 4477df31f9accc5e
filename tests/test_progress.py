"""Tests for progress output: keras_seq.progress and training's RunProgress."""

import argparse
import re
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq import progress
from keras_seq.text import CharTokenizer
from keras_seq.text import WordTokenizer
from keras_seq.training import RunProgress
from keras_seq.training import TrainConfig
from keras_seq.training import train

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _data(n=160, batch=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = x @ rng.normal(size=(4, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _build():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


class _SlowBatches(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.seconds)


class _StopAfter(keras.callbacks.Callback):
    """Stops training after `batches` batches of epoch `epoch` (0-based)."""

    def __init__(self, epoch, batches):
        super().__init__()
        self.epoch, self.batches = epoch, batches

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == self.epoch and batch + 1 == self.batches:
            self.model.stop_training = True


class _CountBatches(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.batches = []

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1] += 1


def _lines(text):
    """Printed lines as a person sees them (colours and bar redraws removed)."""
    text = _ANSI.sub("", text)
    return [line.split("\r")[-1].strip("\b ") for line in text.split("\n") if line.strip()]


# ----------------------------------------------------------------------------
# keras_seq.progress
# ----------------------------------------------------------------------------


def test_verbosity_levels_and_flags():
    assert [progress.resolve_verbose(v) for v in (None, "auto", 0, 1, 2)] == [1, 1, 0, 1, 2]
    for bad in (True, False, 3, -1, "loud"):
        with pytest.raises(ValueError, match="verbose must be"):
            progress.resolve_verbose(bad)
    parser = argparse.ArgumentParser()
    progress.add_verbosity_arguments(parser)
    assert parser.parse_args([]).verbose is None
    assert parser.parse_args(["-q"]).verbose == 0
    assert parser.parse_args(["--verbose"]).verbose == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["-q", "-v"])
    # The CLI resolves the flags to one level for TrainConfig.
    quiet = progress.resolve_verbose(parser.parse_args(["--quiet"]).verbose)
    assert TrainConfig(verbose=quiet).verbose == 0
    assert TrainConfig(verbose=progress.resolve_verbose(parser.parse_args([]).verbose)).verbose == 1
    with pytest.raises(ValueError, match="verbose"):
        TrainConfig(verbose=True)
    assert TrainConfig(verbose="auto").verbose == "auto"  # older run configs still load
    assert progress.format_duration(5.4) == "5s"
    assert progress.format_duration(185) == "3:05"
    assert progress.format_duration(3725) == "1:02:05"


def test_echo_is_quiet_at_level_zero(capsys):
    progress.echo("resuming", verbose=0)
    progress.echo("detail", verbose=1, level=2)
    progress.echo("exported", verbose=1)
    assert capsys.readouterr().err == "keras-seq: exported\n"


def test_progress_bar_modes(capsys):
    # Off a terminal: nothing at level 1, one summary line at level 2.
    with progress.progress_bar(5, "translating", verbose=1, unit="line", terminal=False) as bar:
        bar.add(5)
    assert capsys.readouterr().out == ""
    with progress.progress_bar(5, "translating", verbose=2, unit="line", terminal=False) as bar:
        bar.add(3)
    assert re.fullmatch(r"translating: 3/5 lines in \d+s\n", capsys.readouterr().out)
    # On a terminal: the label, then Keras's bar, finished at the count reached.
    with progress.progress_bar(8, "evaluating", verbose=1, unit="batch", terminal=True) as bar:
        for _ in range(3):
            bar.add(1)
    lines = _lines(capsys.readouterr().out)
    assert lines[0] == "evaluating" and lines[-1].startswith("3/8 ")
    # Quiet: nothing, whatever the stream.
    with progress.progress_bar(8, "exporting", verbose=0, terminal=True) as bar:
        bar.add(8)
    assert capsys.readouterr().out == ""


def test_track_counts_items_or_sizes(capsys):
    batches = [["a", "b"], ["c"], ["d", "e", "f"]]
    seen = list(progress.track(batches, total=6, size=len, label="lines", unit="line",
                               verbose=2, terminal=False))
    assert seen == batches
    assert re.fullmatch(r"lines: 6/6 lines in \d+s\n", capsys.readouterr().out)
    # A loop that breaks closes the bar at what ran; no len(): no target.
    for item in progress.track(iter(range(10)), label="gen", verbose=2, terminal=False):
        if item == 3:
            break
    assert re.fullmatch(r"gen: 3 items in \d+s\n", capsys.readouterr().out)


def test_bar_on_stderr_keeps_stdout_clean(capsys):
    """`translate` writes results to stdout: its bar goes to stderr."""
    import sys

    for _ in progress.track(range(4), label="translating", unit="line", verbose=1,
                            terminal=True, stream=sys.stderr):
        print("a translation")
    captured = capsys.readouterr()
    assert captured.out == "a translation\n" * 4
    lines = _lines(captured.err)
    assert lines[0] == "translating" and lines[-1].startswith("4/4 ")


def test_keras_verbose_and_steps(capsys):
    assert [progress.keras_verbose(v, terminal=True) for v in (0, 1, 2)] == [0, 1, 1]
    assert [progress.keras_verbose(v, terminal=False) for v in (0, 1, 2)] == [0, 0, 2]
    with progress.Steps("exporting demo", 2, verbose=1, terminal=True) as steps:
        steps.step("writing the SavedModel")
        steps.step("converting to ONNX")
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        "exporting demo [1/2] writing the SavedModel",
        "exporting demo [2/2] converting to ONNX",
    ]
    assert re.fullmatch(r"exporting demo: done in \d+s", lines[2]) and len(lines) == 3
    with progress.Steps("exporting demo", 2, verbose=1, terminal=False) as steps:
        steps.step("writing the SavedModel")
    assert capsys.readouterr().out == ""  # level 1 off a terminal: nothing
    with pytest.raises(RuntimeError):
        with progress.Steps("exporting", None, verbose=2, terminal=False) as steps:
            steps.step("tracing")
            raise RuntimeError("boom")
    assert capsys.readouterr().out == "exporting [1] tracing\n"  # no "done" after an error


# ----------------------------------------------------------------------------
# Tokenizer fitting
# ----------------------------------------------------------------------------


def test_tokenizer_fit_is_silent_by_default_and_shows_a_bar_when_asked(capsys):
    texts = ["the cat sat .", "the dog ran !"] * 50
    reference = WordTokenizer().fit(texts)
    assert capsys.readouterr().out == ""
    assert WordTokenizer().fit(texts, verbose=1).vocabulary == reference.vocabulary
    assert capsys.readouterr().out == ""  # not a terminal under pytest: no bar
    CharTokenizer().fit(texts, verbose=2)
    assert re.fullmatch(r"fitting CharTokenizer: 100/100 texts in \d+s\n", capsys.readouterr().out)


def test_wordpiece_fit_says_when_it_learns_the_vocabulary(capsys):
    from keras_seq.text import WordPieceTokenizer

    WordPieceTokenizer(vocab_size=60).fit(["the cat sat on the mat ."] * 20, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"fitting WordPieceTokenizer: 20/20 texts in \d+s", lines[0])
    assert lines[1:] == ["learning the WordPiece vocabulary (60 tokens at most)"]


def test_tokenizer_fit_draws_keras_bar_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(progress, "is_terminal", lambda stream=None: True)
    WordTokenizer().fit(["a b c"] * 7, verbose=1)
    lines = _lines(capsys.readouterr().out)
    assert lines[0] == "fitting WordTokenizer"
    assert lines[-1].startswith("7/7 ") and "/text" in lines[-1]
    with pytest.raises(ValueError, match="verbose must be"):
        WordTokenizer().fit(["a"], verbose="loud")


# ----------------------------------------------------------------------------
# Training: the whole-run line and budget-stopped epochs
# ----------------------------------------------------------------------------


def test_one_line_per_epoch_off_a_terminal(tmp_path, capsys):
    train(_build, _data(), _data(), tmp_path, TrainConfig(epochs=3, verbose=1), loss="mse")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 3, out  # exactly one line per epoch, no bar characters
    assert "\r" not in out and "\b" not in out and "\x1b" not in out and "━" not in out
    for epoch, line in enumerate(lines, start=1):
        assert line.startswith(f"epoch {epoch}/3 - 10/10 batches - ")
        assert re.search(r"loss: \d\.\d{4} - val_loss: \d\.\d{4}", line)
        assert re.search(r"run: \d+s elapsed, ", line)
        assert re.search(r"best val_loss \d\.\d{4} \(epoch \d\)", line)
    assert re.search(r"~\d+s left \(2 epochs\)", lines[0])
    assert lines[-1].endswith(")") and "done (all epochs ran)" in lines[-1]


def test_quiet_prints_nothing(tmp_path, capsys):
    config = TrainConfig(epochs=2, verbose=0, patience=1, max_minutes=5)
    train(_build, _data(), _data(), tmp_path, config, loss="mse")
    train(_build, _data(), _data(), tmp_path, config, loss="mse", resume=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_adds_header_learning_rate_and_validation_time(tmp_path, capsys):
    config = TrainConfig(epochs=2, verbose=2, max_minutes=5)
    train(_build, _data(), _data(), tmp_path, config, loss="mse")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "run: training up to 2 epochs, 10 batches each, time budget 5 minutes, "
        "best by lowest val_loss"
    )
    assert len(lines) == 3
    assert all(re.search(r"; lr 0\.001, validation \d+s$", line) for line in lines[1:])


def test_budget_stopped_epoch_reports_the_batches_that_ran(tmp_path, capsys):
    """The issue's check: a budget-stopped epoch does not claim a full 10/10."""
    config = TrainConfig(epochs=20, verbose=1, max_minutes=1.2 / 60)
    counter = _CountBatches()
    _, history = train(
        _build, _data(), _data(), tmp_path, config, loss="mse",
        callbacks=[_SlowBatches(0.15), counter],
    )
    assert history.stop_reason == "time_budget"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(history.epoch) - history.initial_epoch
    last = lines[-1]
    match = re.search(r"stopped by the 1\.2-second budget after (\d+)/10 batch(es)?", last)
    assert match, last
    ran = int(match.group(1))
    assert 1 <= ran < 10
    assert "10/10" not in last
    assert "done (time budget spent)" in last
    # Keras ran exactly that many batches in the last epoch, all of the others.
    assert counter.batches == [10] * (len(lines) - 1) + [ran]
    assert history.state["epoch"] == len(lines)


def test_budget_stopped_epoch_on_a_terminal_finishes_the_bar_where_it_stopped(capsys):
    """The bar of a stopped epoch ends at 3/10, then says why; then the run line."""

    class Budget(_StopAfter):  # quacks like TimeBudget: `stopped`
        stopped = False

        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            self.stopped = self.stopped or self.model.stop_training

    budget = Budget(epoch=1, batches=3)
    model = _build()
    model.compile(optimizer="sgd", loss="mse")
    bar = RunProgress(max_minutes=10, time_budget=budget, terminal=True)
    model.fit(_data(), validation_data=_data(), epochs=5, callbacks=[budget, bar], verbose=1,
              shuffle=False)
    lines = _lines(capsys.readouterr().out)
    assert lines[0] == "Epoch 1/5" and lines[1].startswith("10/10 ")
    assert re.match(r"run: \d+s elapsed, ~\d+s left \(4 epochs\); best val_loss", lines[2])
    assert lines[3] == "Epoch 2/5"
    assert lines[4].startswith("3/10 ") and "val_loss" in lines[4]
    assert lines[5] == "stopped by the 10-minute budget after 3/10 batches"
    assert lines[6].startswith("run: ") and "done (time budget spent)" in lines[6]
    assert len(lines) == 7


def test_other_mid_epoch_stops_and_unknown_epoch_length(capsys):
    """A stop that is not the budget says "stopped"; a dataset of unknown length too."""
    data = _data().repeat(2).filter(lambda x, y: True)  # cardinality unknown
    model = _build()
    model.compile(optimizer="sgd", loss="mse")
    bar = RunProgress(monitor="loss", terminal=False)
    model.fit(data, epochs=3, callbacks=[_StopAfter(epoch=0, batches=4), bar], verbose=1,
              shuffle=False)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("epoch 1/3 - stopped after 4 batches - ")
    assert "done (stopped)" in line and "best loss" in line


def test_resumed_run_counts_earlier_sessions_and_keeps_best(tmp_path, capsys):
    train(_build, _data(), _data(), tmp_path, TrainConfig(epochs=2, verbose=1), loss="mse")
    first = capsys.readouterr().out.splitlines()
    best_first = re.search(r"best val_loss (\S+) \(epoch (\d)\)", first[-1]).groups()
    _, history = train(
        _build, _data(), _data(), tmp_path, TrainConfig(epochs=3, verbose=1), loss="mse",
        resume=True,
    )
    captured = capsys.readouterr()
    assert "resuming at epoch 3/3" in captured.err
    (line,) = captured.out.splitlines()
    assert line.startswith("epoch 3/3 - 10/10 batches")
    best = re.search(r"best val_loss (\S+) \(epoch (\d)\)", line).groups()
    assert float(best[0]) <= float(best_first[0])
    assert best[1] in ("1", "2", "3") and int(history.state["best_epoch"]) == int(best[1])


def test_a_caller_progbar_replaces_ours(tmp_path, capsys):
    logger = keras.callbacks.ProgbarLogger()
    train(_build, _data(), _data(), tmp_path, TrainConfig(epochs=1, verbose=1), loss="mse",
          callbacks=[logger])
    assert "run:" not in capsys.readouterr().out
