"""`keras-seq demo` trains a fixed amount of work (passes) under a time cap and says so."""

import re

import pytest

from keras_seq import cli
from keras_seq.pipelines import demo


@pytest.mark.slow  # ~15 s on a quiet machine, much more under load: the full recipe's model
def test_demo_trains_its_passes_and_says_what_it_trained_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEMO_PAIRS", 300)
    monkeypatch.setattr(demo, "DEMO_TEST_SENTENCES", 5)
    exported = []
    monkeypatch.setattr(demo, "_export", lambda translator, to: exported.append(to))
    assert demo.run_demo(5, str(tmp_path / "run"), export_dir=str(tmp_path / "x"), verbose=0,
                         passes=2) == 0
    out = capsys.readouterr().out
    assert "trained for 2 passes over its pairs (time cap 5 min)" in out  # the header
    line = re.search(r"trained for (\d+) passes \((\d+) steps of 64 pairs\) in [\d.]+ min "
                     r"\(all 2 passes\); the weights of pass \d", out)
    assert line and line.group(1) == "2" and int(line.group(2)) >= 2
    assert exported == [str(tmp_path / "x")]


def test_demo_flags():
    args, target = cli.prepare(["demo", "--passes", "12", "--minutes", "6"])
    assert (args.passes, args.minutes) == (12, 6.0)
    assert demo.DEMO_PASSES == 7 and demo.DEFAULT_MINUTES == 5.0
