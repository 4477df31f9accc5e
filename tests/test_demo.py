"""`keras-seq demo` trains a fixed amount of work (passes) under a time cap and says so.

It starts from the bundled start weights (`demo.START_FILE`), which must fit
the demo's own vocabularies: `test_the_bundled_start_fits_the_demo` fails
when a change to the data, the tokenizer or the recipe needs a new file
(`python apps/demo_start.py`).
"""

import json
import re
import types

import pytest

from keras_seq import cli
from keras_seq import errors
from keras_seq import runs
from keras_seq.pipelines import demo
from keras_seq.pipelines import translation_training
from keras_seq.pipelines import warm_start


@pytest.mark.slow  # ~15 s on a quiet machine, much more under load: the full recipe's model
def test_demo_trains_its_passes_and_says_what_it_trained_for(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEMO_PAIRS", 300)
    monkeypatch.setattr(demo, "DEMO_TEST_SENTENCES", 5)
    exported = []
    monkeypatch.setattr(demo, "_export", lambda translator, to: exported.append(to))
    # 300 pairs have other vocabularies than the bundled start's: from scratch.
    assert demo.run_demo(5, str(tmp_path / "run"), export_dir=str(tmp_path / "x"), verbose=0,
                         passes=2, from_scratch=True) == 0
    out = capsys.readouterr().out
    assert "trained for 2 passes over its pairs from random weights (time cap 5 min)" in out
    line = re.search(r"trained for (\d+) passes \((\d+) steps of 64 pairs\) in [\d.]+ min "
                     r"\(all 2 passes\); the (final weights|weights after pass \d)", out)
    assert line and line.group(1) == "2" and int(line.group(2)) >= 2
    assert exported == [str(tmp_path / "x")]


def _finished_run(tmp_path, *, steps, epoch, best_epoch, stop_reason, minutes=5.0, batch=64):
    """A fake trained translator (run directory with its state.json) and train result."""
    run = runs.RunDir(tmp_path)
    run.state_path.parent.mkdir(parents=True, exist_ok=True)
    run.state_path.write_text(json.dumps(
        {"epoch": epoch, "best_epoch": best_epoch, "elapsed_seconds": 60.0 * minutes}))
    iterations = types.SimpleNamespace(numpy=lambda: steps)
    translator = types.SimpleNamespace(
        run_dir=str(tmp_path), model=types.SimpleNamespace(
            optimizer=types.SimpleNamespace(iterations=iterations)),
        run_config={"training": {"batch_size": batch}})
    return translator, {"stop_reason": stop_reason, "batches_per_pass": 470}


def test_demo_summary_counts_an_interrupted_pass_as_its_batches(tmp_path):
    # The cap stopped pass 5 after one batch: 4 passes, not 5 (the old line said 5).
    translator, result = _finished_run(tmp_path, steps=4 * 470 + 1, epoch=5, best_epoch=5,
                                       stop_reason="time_budget")
    assert demo._trained_for(translator, result, passes=7, minutes=5) == (
        "  trained for 4 passes and 1 of the 470 batches of pass 5 (1881 steps of 64 pairs) "
        "in 5.0 min (the 5-minute time cap stopped it before 7 passes); "
        "the final weights are used")


def test_demo_summary_of_completed_passes(tmp_path):
    translator, result = _finished_run(tmp_path, steps=7 * 470, epoch=7, best_epoch=6,
                                       stop_reason="completed", minutes=3.5, batch=128)
    assert demo._trained_for(translator, result, passes=7, minutes=5) == (
        "  trained for 7 passes (3290 steps of 128 pairs) in 3.5 min (all 7 passes); "
        "the weights after pass 6 (lowest validation loss) are used")


def test_demo_summary_names_the_bundled_start(tmp_path):
    translator, result = _finished_run(tmp_path, steps=3 * 470, epoch=3, best_epoch=3,
                                       stop_reason="completed", minutes=1.5)
    assert demo._trained_for(translator, result, passes=3, minutes=5, start=demo.START_FILE) == (
        f"  trained for 3 passes on top of the {demo.START_PASSES} passes of the bundled start "
        "(1410 steps of 64 pairs) in 1.5 min (all 3 passes); the final weights are used")


def test_demo_flags():
    args, target = cli.prepare(["demo", "--passes", "12", "--minutes", "6", "--from-scratch"])
    assert (args.passes, args.minutes, args.from_scratch) == (12, 6.0, True)
    assert cli.prepare(["demo"])[0].from_scratch is False
    assert (demo.DEMO_PASSES, demo.START_PASSES, demo.DEFAULT_MINUTES) == (3, 5, 5.0)


def test_the_bundled_start_fits_the_demo():
    # The demo's own split and tokenizers (as `run_demo` fits them), against the sidecar.
    from keras_seq.recipes import TranslatorRecipe

    setup = translation_training._new_setup(TranslatorRecipe().with_training(verbose=0),
                                            "bundled:fra-eng", False, demo.DEMO_PAIRS)
    about = warm_start.check_start(demo.START_FILE, setup.source_tokenizer,
                                   setup.target_tokenizer)
    assert about["passes"] == demo.START_PASSES and about["dtype"] == "float16"
    assert about["source_vocabulary"] and about["target_vocabulary"]


def test_a_missing_start_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "START_FILE", str(tmp_path / "gone.weights.h5"))
    with pytest.raises(errors.InputError, match="no such file"):
        demo.run_demo(5, str(tmp_path / "run"), export_dir=str(tmp_path / "x"), verbose=0)
    assert not (tmp_path / "run").exists()
