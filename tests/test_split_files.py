"""Standard splits: training on all of `data` with separate validation and test files.

`ks.train_translator(..., valid_data=, test_data=)` and
`ks.train_language_model(..., valid_data=, test_data=)`: the files are
recorded in config.json, read back by `Translator.split` / `evaluate` /
`TextGenerator.evaluate`, kept on resume; bad files are refused with one line
before a run directory is written; runs without them keep the seeded split.
"""

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest

import keras_seq as ks
from keras_seq import data as data_lib
from keras_seq import runs
from keras_seq.errors import DataError, InputError
from keras_seq.pipelines import lm_data
from keras_seq.pipelines import translation_training
from keras_seq.pipelines.text_generator import TextGenerator
from keras_seq.pipelines.translation_commands import evaluate_run

TRAIN, VALID, TEST = 400, 60, 50


def _write_pairs(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    pairs = data_lib.load_pairs("bundled:fra-eng", max_pairs=TRAIN + VALID + TEST)
    return {
        "root": root,
        "train": _write_pairs(root / "train.tsv", pairs[:TRAIN]),
        "valid": _write_pairs(root / "valid.tsv", pairs[TRAIN:TRAIN + VALID]),
        "test": _write_pairs(root / "test.tsv", pairs[TRAIN + VALID:]),
        "pairs": {"train": pairs[:TRAIN], "valid": pairs[TRAIN:TRAIN + VALID],
                  "test": pairs[TRAIN + VALID:]},
    }


def _recipe(epochs=1):
    return ks.TranslatorRecipe(units=8, embedding_dim=8, max_length=10).with_training(
        epochs=epochs, batch_size=32, verbose=0)


def _quiet(fn, *args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = fn(*args, **kwargs)
    return result, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def translator_run(pair_files, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("translator") / "run")
    result, out, err = _quiet(ks.train_translator, _recipe(), run, data=pair_files["train"],
                              valid_data=pair_files["valid"], test_data=pair_files["test"])
    return {"run": run, "result": result, "out": out, "err": err}


# ----------------------------------------------------------------------------
# Translator
# ----------------------------------------------------------------------------


def test_translator_trains_on_all_of_data(translator_run, pair_files):
    data = runs.load_run_config(translator_run["run"])["data"]
    assert data["spec"] == pair_files["train"]
    assert data["valid_spec"] == pair_files["valid"]
    assert data["test_spec"] == pair_files["test"]
    assert data["pairs"] == {"train": TRAIN, "valid": VALID, "test": TEST}
    assert (data["val_fraction"], data["test_fraction"]) == (0.0, 0.0)


def test_translator_scores_the_test_file_at_the_end(translator_run, pair_files):
    result = translator_run["result"]
    assert f"test BLEU (greedy, {TEST} sentences of {pair_files['test']})" in translator_run["out"]
    assert result["test_bleu"] is not None and result["test_chrf"] is not None
    assert result["valid_bleu"] is not None


def test_translator_splits_read_the_files(translator_run, pair_files):
    translator = ks.Translator.from_run(translator_run["run"])
    for name in ("train", "valid", "test"):
        assert translator.split(name) == pair_files["pairs"][name]
    assert translator.split_source("test") == f"test file {pair_files['test']}"
    assert translator.split_source("valid") == f"validation file {pair_files['valid']}"


def test_translator_evaluate_reads_the_test_file(translator_run, pair_files):
    translator = ks.Translator.from_run(translator_run["run"])
    scores = translator.evaluate(options=ks.decoding.DecodeOptions(beam_size=2))
    assert scores["sentences"] == TEST
    status, out, err = _quiet(evaluate_run, translator_run["run"], beam=2)
    assert status == 0
    assert f"test file {pair_files['test']}: {TEST} sentence pairs" in out


def test_translator_resume_keeps_the_files(pair_files, tmp_path):
    run = str(tmp_path / "run")
    _quiet(ks.train_translator, _recipe(), run, data=pair_files["train"],
           valid_data=pair_files["valid"], test_data=pair_files["test"])
    before = runs.load_run_config(run)
    other = _write_pairs(tmp_path / "other.tsv", [("Hi.", "Salut.")])
    result, out, err = _quiet(ks.train_translator, None, run, resume=True,
                              valid_data=other, train_overrides={"epochs": 2})
    after = runs.load_run_config(run)
    assert after["data"] == before["data"]
    assert f"the run's own valid data {pair_files['valid']} (ignoring {other})" in err
    assert f"test BLEU (greedy, {TEST} sentences" in out
    assert [h["epoch"] for h in runs.RunDir(run).training_state()["history"]] == [1, 2]


def _setup(pair_files, **files):
    return translation_training._new_setup(_recipe(), pair_files["train"], False, None,
                                           **files)


def test_translator_validation_file_alone_has_no_test_split(pair_files):
    setup = _setup(pair_files, valid_data=pair_files["valid"])
    data = setup.run_config["data"]
    assert "test_spec" not in data
    assert data["pairs"] == {"train": TRAIN, "valid": VALID, "test": 0}
    config = {"data": data}
    assert translation_training.load_split(config, "train") == pair_files["pairs"]["train"]
    with pytest.raises(InputError, match="^the run has no test split: .* no test file"):
        translation_training.load_split(config, "test")


def test_translator_test_file_alone_keeps_a_seeded_validation_split(pair_files):
    setup = _setup(pair_files, test_data=pair_files["test"])
    data = setup.run_config["data"]
    assert "valid_spec" not in data and data["test_fraction"] == 0.0
    assert data["val_fraction"] == ks.TranslatorRecipe().val_fraction
    assert data["pairs"]["test"] == TEST
    assert data["pairs"]["train"] + data["pairs"]["valid"] == TRAIN
    assert setup.splits["test"] == pair_files["pairs"]["test"]
    assert translation_training.load_splits(data) == setup.splits


def test_translator_without_files_keeps_todays_split(pair_files):
    """Same pairs and the same config.json "data" keys as before the files existed."""
    setup = _setup(pair_files)
    data = setup.run_config["data"]
    assert sorted(data) == ["max_length", "max_pairs", "pairs", "reverse", "spec",
                            "split_seed", "test_fraction", "val_fraction"]
    recipe = ks.TranslatorRecipe()
    val, test = recipe.held_out_fractions(TRAIN)
    assert (data["val_fraction"], data["test_fraction"]) == (val, test)
    pairs = translation_training.load_corpus(pair_files["train"])
    expected = translation_training.split_corpus(pairs, recipe.split_seed, val, test)
    assert setup.splits == expected
    assert translation_training.load_splits(data) == expected


def test_old_run_config_still_rebuilds_its_split(pair_files):
    """A config.json written before the files existed (no *_spec keys)."""
    old = {"data": {"spec": pair_files["train"], "reverse": False, "max_pairs": None,
                    "split_seed": 1234, "val_fraction": 0.05, "test_fraction": 0.05,
                    "max_length": 10, "pairs": {}}}
    pairs = translation_training.load_corpus(pair_files["train"])
    expected = translation_training.split_corpus(pairs, 1234, 0.05, 0.05)
    for name in ("train", "valid", "test"):
        assert translation_training.load_split(old, name) == expected[name]


def test_reversed_run_reads_the_files_reversed(pair_files):
    setup = translation_training._new_setup(_recipe(), pair_files["train"], True, None,
                                            valid_data=pair_files["valid"])
    assert setup.splits["valid"] == [(t, s) for s, t in pair_files["pairs"]["valid"]]


# -- bad files: one line, before any run directory ------------------------------------


def _bad_file(root, kind):
    path = root / f"bad-{kind}.tsv"
    if kind == "missing":
        return str(path), "validation data: cannot read data: no such file: "
    if kind == "empty":
        path.write_text("\n  \n", encoding="utf-8")
        return str(path), f"validation data: {path} is empty"
    if kind == "latin-1":
        path.write_bytes("Hi.\tSalut.\nCoffee.\tCaf\xe9.\n".encode("latin-1"))
        return str(path), (f"validation data: {path} is not UTF-8: invalid byte 0xe9 at "
                           "line 2, column 12")
    if kind == "no-tab":
        path.write_text("Hi.\tSalut.\nGo now.  Va !\n", encoding="utf-8")
        return str(path), f"validation data: {path}: line 2 has no tab"
    if kind == "empty-side":
        path.write_text("Hi.\tSalut.\nGo.\t \n", encoding="utf-8")
        return str(path), f"validation data: {path}: line 2 has an empty target"
    raise AssertionError(kind)


BAD_KINDS = ["missing", "empty", "latin-1", "no-tab", "empty-side"]


@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_translator_refuses_a_bad_file_before_training(pair_files, tmp_path, kind, split):
    bad, message = _bad_file(tmp_path, kind)
    if split == "test":
        message = message.replace("validation data:", "test data:")
    files = {"valid_data": pair_files["valid"], f"{split}_data": bad}
    run = tmp_path / "run"
    with pytest.raises(DataError) as caught:
        _quiet(ks.train_translator, _recipe(), str(run), data=pair_files["train"], **files)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert not run.exists()


def test_translator_refuses_a_validation_file_with_nothing_to_score(pair_files, tmp_path):
    long_line = " ".join(["word"] * 30)
    bad = _write_pairs(tmp_path / "long.tsv", [(long_line, long_line)])
    run = tmp_path / "run"
    with pytest.raises(DataError, match="^validation data: no translation pair to batch"):
        _quiet(ks.train_translator, _recipe(), str(run), data=pair_files["train"],
               valid_data=bad)
    assert not run.exists()


@pytest.mark.parametrize("spec,error,message", [
    ("", DataError, "^validation data: empty data spec"),
    ("bundled:nope", DataError, "^validation data: unknown bundled data set 'nope'"),
    (3, TypeError, "^valid_data must be a str or a path"),
])
def test_translator_refuses_a_bad_spec(pair_files, tmp_path, spec, error, message):
    run = tmp_path / "run"
    with pytest.raises(error, match=message):
        _quiet(ks.train_translator, _recipe(), str(run), data=pair_files["train"],
               valid_data=spec)
    assert not run.exists()


def test_load_split_file_names_the_split(tmp_path):
    with pytest.raises(DataError, match="^test data: cannot read data: no such file: x.txt$"):
        data_lib.load_split_file("x.txt", "test", pairs=False)
    path = tmp_path / "v.txt"
    path.write_text("some text\n", encoding="utf-8")
    assert data_lib.load_split_file(str(path), "valid", pairs=False) == "some text\n"
    with pytest.raises(ValueError, match="split must be 'valid' or 'test'"):
        data_lib.load_split_file(str(path), "train")


# ----------------------------------------------------------------------------
# Language model
# ----------------------------------------------------------------------------

LM_TRAIN_CHARS = 12000


def _lm_recipe(epochs=1):
    return ks.LanguageModelRecipe(units=8, embedding_dim=8, layers=1, seq_len=10).with_training(
        epochs=epochs, batch_size=4, verbose=0)


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    text = data_lib.load_text("bundled:anna-karenina")
    cut = text.rfind("\n", 0, LM_TRAIN_CHARS) + 1
    valid_end = text.rfind("\n", 0, cut + 3000) + 1
    test_end = text.rfind("\n", 0, valid_end + 3000) + 1
    parts = {"train": text[:cut], "valid": text[cut:valid_end], "test": text[valid_end:test_end]}
    files = {"root": root, "text": parts}
    for name, part in parts.items():
        (root / f"{name}.txt").write_text(part, encoding="utf-8")
        files[name] = str(root / f"{name}.txt")
    return files


@pytest.fixture(scope="module")
def lm_run(text_files, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("lm") / "run")
    result, out, err = _quiet(ks.train_language_model, _lm_recipe(), run,
                              data=text_files["train"], valid_data=text_files["valid"],
                              test_data=text_files["test"])
    return {"run": run, "result": result, "err": err}


def _stream(text, tokenizer):
    return lm_data.encode_stream(tokenizer, lm_data.preprocess_text(text, "word"))


def test_lm_trains_on_all_of_data(lm_run, text_files):
    data = runs.load_run_config(lm_run["run"])["data"]
    assert data["spec"] == text_files["train"]
    assert data["valid_spec"] == text_files["valid"]
    assert data["test_spec"] == text_files["test"]
    assert (data["val_fraction"], data["test_fraction"]) == (0.0, 0.0)
    tokenizer = TextGenerator.from_run(lm_run["run"]).tokenizer
    for name in ("train", "valid", "test"):
        assert data["tokens"][name] == len(_stream(text_files["text"][name], tokenizer))


def test_lm_evaluate_reads_the_test_file(lm_run, text_files):
    result = lm_run["result"]
    assert result.test_perplexity is not None and result.test_tokens > 0
    generator = TextGenerator.from_run(lm_run["run"])
    evaluation = generator.evaluate(split="test")
    assert evaluation.source == f"test file {text_files['test']}"
    assert evaluation.perplexity == pytest.approx(result.test_perplexity, rel=1e-5)
    assert evaluation.tokens == result.test_tokens
    valid = generator.evaluate(split="valid")
    assert valid.perplexity == pytest.approx(result.valid_perplexity, rel=1e-5)


def test_lm_resume_keeps_the_files(text_files, tmp_path):
    run = str(tmp_path / "run")
    _quiet(ks.train_language_model, _lm_recipe(), run, data=text_files["train"],
           valid_data=text_files["valid"], test_data=text_files["test"])
    before = runs.load_run_config(run)
    result, _, err = _quiet(ks.train_language_model, _lm_recipe(epochs=2), run, resume=True,
                            test_data=text_files["valid"])
    after = runs.load_run_config(run)
    assert after["data"] == before["data"]
    assert f"the run's own test data {text_files['test']} (ignoring {text_files['valid']})" in err
    assert [h["epoch"] for h in runs.RunDir(run).training_state()["history"]] == [1, 2]
    assert result.test_perplexity is not None


def test_lm_validation_file_alone_has_no_test_split(text_files, tmp_path):
    parts = lm_data.load_parts(text_files["train"], "word", valid_data=text_files["valid"])
    assert sorted(parts) == ["train", "valid"]
    assert parts["train"] == lm_data.preprocess_text(text_files["text"]["train"], "word")
    with pytest.raises(InputError, match="^the run has no test split"):
        lm_data.load_parts(text_files["train"], "word", valid_data=text_files["valid"],
                           only="test")
    only_test = lm_data.load_parts(text_files["train"], "word", test_data=text_files["test"])
    train, valid, _ = lm_data.split_text(
        lm_data.preprocess_text(text_files["text"]["train"], "word"), 0.05, 0.0,
        held_out=("valid",))
    assert (only_test["train"], only_test["valid"]) == (train, valid)


def test_lm_without_files_keeps_todays_split(text_files):
    text = lm_data.preprocess_text(text_files["text"]["train"], "word")
    parts = lm_data.load_parts(text_files["train"], "word")
    assert tuple(parts.values()) == lm_data.split_text(text, 0.05, 0.05)


def _bad_text(root, kind):
    path = root / f"bad-{kind}.txt"
    if kind == "missing":
        return str(path), "validation data: cannot read data: no such file: "
    if kind == "empty":
        path.write_text("  \n\n", encoding="utf-8")
        return str(path), f"validation data: {path} is empty"
    if kind == "latin-1":
        path.write_bytes("Caf\xe9 au lait.\n".encode("latin-1"))
        return str(path), (f"validation data: {path} is not UTF-8: invalid byte 0xe9 at "
                           "line 1, column 4")
    if kind == "too-short":
        path.write_text("A short line.\n", encoding="utf-8")
        return str(path), f"the valid split ({path}) has"
    raise AssertionError(kind)


# A short test file is scored as it is; a validation file must fill one batch.
LM_BAD_CASES = [(kind, split) for kind in ("missing", "empty", "latin-1")
                for split in ("valid", "test")] + [("too-short", "valid")]


@pytest.mark.parametrize("kind,split", LM_BAD_CASES)
def test_lm_refuses_a_bad_file_before_training(text_files, tmp_path, kind, split):
    bad, message = _bad_text(tmp_path, kind)
    if split == "test":
        message = message.replace("validation data:", "test data:")
    files = {"valid_data": text_files["valid"], f"{split}_data": bad}
    run = tmp_path / "run"
    with pytest.raises(DataError) as caught:
        _quiet(ks.train_language_model, _lm_recipe(), str(run), data=text_files["train"],
               **files)
    text = str(caught.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert not run.exists()


def test_lm_run_without_files_has_no_new_keys(text_files):
    """The run config of a run without files is unchanged (no *_spec keys)."""
    from keras_seq.pipelines import lm_training

    _, streams, config = _quiet(lm_training._new_run, _lm_recipe(), text_files["train"])[0]
    assert sorted(config["data"]) == ["preprocess", "seq_len", "spec", "test_fraction",
                                      "tokens", "val_fraction"]
    assert (config["data"]["val_fraction"], config["data"]["test_fraction"]) == (0.05, 0.05)
    assert sorted(streams) == ["test", "train", "valid"]


@pytest.mark.parametrize("command", ["train-translator", "train-lm"])
def test_cli_refuses_bad_split_files_in_one_line(command, pair_files, tmp_path, capsys):
    from keras_seq.cli import main

    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    cases = [
        (["--valid-data", str(tmp_path / "missing.tsv")], "missing.tsv"),
        (["--test-data", str(empty)], "test data:"),
    ]
    for extra, message in cases:
        run_dir = tmp_path / f"run-{len(extra[1])}"
        argv = [command, "--data", pair_files["train"], "--run-dir", str(run_dir), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        errors_printed = [line for line in err.splitlines() if "error" in line]
        assert len(errors_printed) == 1, err  # one line; progress notes may precede it
        assert errors_printed[0].startswith("keras-seq: error: ") and message in err
        assert "Traceback" not in err
        assert not run_dir.exists()
