"""End-to-end tests of the language-model pipeline: the `keras-seq` command and the Python API.

One tiny word-level LSTM is trained once (1 epoch on ~20k characters of the
bundled Anna Karenina) and reused by every test; a second one, trained the
same way with `--sampled-softmax 8`, serves the sampled-softmax tests.
`test_public_api_pipeline` trains, reopens, generates and evaluates through
`import keras_seq as ks` only.
"""

import contextlib
import io
import json
import math
import os
import re

import numpy as np
import pytest

from keras_seq import cli
from keras_seq.data import load_text
from keras_seq.pipelines import lm_data
from keras_seq.pipelines import text_generator
from keras_seq.pipelines.text_generator import TextGenerator

TRAIN_FLAGS = ["--epochs", "1", "--batch-size", "4", "--seq-len", "10", "--units", "12",
               "--embedding-dim", "12", "--layers", "1", "--seed", "7"]


def _main(capsys, argv):
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    data = root / "anna.txt"
    data.write_text(load_text("bundled:anna-karenina")[:20000], encoding="utf-8")
    run = root / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["train-lm", "--data", str(data), "--run-dir", str(run), *TRAIN_FLAGS])
    assert status == 0, err.getvalue()[-2000:]
    return {"run": str(run), "data": str(data), "out": out.getvalue(), "err": err.getvalue()}


@pytest.fixture(scope="module")
def sampled(trained, tmp_path_factory):
    """The same tiny stateful LSTM trained with `--sampled-softmax 8`."""
    run = tmp_path_factory.mktemp("lm-sampled") / "run"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["train-lm", "--data", trained["data"], "--run-dir", str(run),
                           "--sampled-softmax", "8", *TRAIN_FLAGS])
    assert status == 0, err.getvalue()[-2000:]
    return {"run": str(run), "data": trained["data"], "out": out.getvalue(),
            "err": err.getvalue()}


def _np_perplexity(model, ids):
    """Full-softmax perplexity of a stream, one stateless pass (NumPy cross-entropy)."""
    logits = model(ids[None, :-1]).numpy()[0].astype(np.float64)  # [n - 1, V]
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return math.exp(-log_probs[np.arange(len(ids) - 1), ids[1:]].mean())


def test_train_writes_run_dir(trained):
    run = trained["run"]
    config = json.loads(open(f"{run}/config.json", encoding="utf-8").read())
    assert config["task"] == "lm"
    assert config["model"]["type"] == "rnn"
    assert config["model"]["config"]["units"] == 12
    assert config["data"]["seq_len"] == 10
    assert config["training"]["batch_size"] == 4
    assert config["tokenizer"]["type"] == "word"
    assert config["model"]["config"]["sampled_softmax"] == 0  # the recipe: full softmax
    assert os.path.isfile(f"{run}/vocab/vocab.txt")
    assert os.path.isfile(f"{run}/checkpoints/best.weights.h5")
    assert os.path.isfile(f"{run}/checkpoints/last.weights.h5")
    valid = float(re.search(r"validation perplexity: ([\d.]+)", trained["out"]).group(1))
    test = float(re.search(r"test perplexity: ([\d.]+)", trained["out"]).group(1))
    vocab = config["tokenizer"]["vocab_size"]
    # Better than uniform guessing after one epoch, and finite.
    assert 1.0 < valid < vocab and 1.0 < test < vocab


def test_quiet_silences_training_progress(trained, tmp_path):
    """`-q`: no per-epoch line (stdout keeps the results); `-v`: the run header too."""
    assert re.search(r"^epoch 1/1 ", trained["out"], re.M), trained["out"]  # normal: one line
    quiet = tmp_path / "quiet"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["train-lm", "--data", trained["data"], "--run-dir", str(quiet), "-q",
                           *TRAIN_FLAGS])
    assert status == 0, err.getvalue()[-2000:]
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "validation perplexity", "test perplexity", "run directory"], lines
    assert json.loads((quiet / "config.json").read_text())["training"]["verbose"] == 0


def test_splits_are_contiguous_and_cover_the_text():
    text = "\n".join(f"line {i} of the text." for i in range(100))
    train, valid, test = lm_data.split_text(text)
    assert train + valid + test == text
    assert len(valid) == pytest.approx(0.05 * len(text), rel=0.3)
    assert len(test) == pytest.approx(0.05 * len(text), rel=0.3)
    assert train.endswith("\n") and valid.endswith("\n")


def test_paragraphs_are_unwrapped_for_word_tokenizers():
    text = "Happy families are\nall alike.\n\n\nEvery unhappy\nfamily.\n"
    assert lm_data.preprocess_text(text, "word") == "Happy families are all alike.\nEvery unhappy family."
    assert lm_data.preprocess_text(text, "char") == text


def test_evaluate_matches_a_numpy_perplexity(trained, capsys):
    status, out, err = _main(capsys, ["evaluate", trained["run"]])
    assert status == 0, err
    match = re.search(r"test perplexity: ([\d.]+) \((\d+) tokens", out)
    ppl, scored = float(match.group(1)), int(match.group(2))
    # The train command reported the same figure for the same weights.
    assert f"test perplexity: {match.group(1)}" in trained["out"]

    # Oracle: one stateless pass over the whole test stream, cross-entropy in NumPy.
    generator = TextGenerator.from_run(trained["run"])
    model, tokenizer = generator.model, generator.tokenizer
    _, streams = lm_data.load_streams(trained["data"], "word", tokenizer)
    ids = streams["test"]
    assert len(ids) < 2000  # a single row: every token has its full left context
    logits = model(ids[None, :scored]).numpy()[0].astype(np.float64)  # [scored, V]
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -log_probs[np.arange(scored), ids[1 : scored + 1]].mean()
    assert ppl == pytest.approx(math.exp(nll), rel=1e-3)


def test_evaluate_on_other_data(trained, capsys, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("Anna said that the prince was there.\n" * 20, encoding="utf-8")
    status, out, err = _main(capsys, ["evaluate", trained["run"], "--data", str(other)])
    assert status == 0, err
    assert re.search(r"perplexity: [\d.]+ \(\d+ tokens", out)


def test_generate_greedy_is_deterministic(trained, capsys):
    argv = ["generate", trained["run"], "Anna and the prince", "--length", "12", "--greedy"]
    status, out, err = _main(capsys, argv)
    assert status == 0, err
    assert out.startswith("anna and the prince")
    from keras_seq.text import load_tokenizer

    tokens = load_tokenizer(os.path.join(trained["run"], "vocab")).tokenize([out.strip()])[0]
    # The 4 prompt tokens and 12 generated ones (fewer only if EOS was emitted).
    assert 4 < len(tokens) <= 16
    assert _main(capsys, argv)[1] == out


def test_generate_sampling_seeded_and_beam(trained, capsys):
    argv = ["generate", trained["run"], "Anna", "--length", "15", "--temperature", "0.8",
            "--top-k", "5", "--seed", "3", "--num-samples", "2"]
    status, out, err = _main(capsys, argv)
    assert status == 0, err
    samples = out.strip("\n").split("\n----\n")
    assert len(samples) == 2 and all(s.startswith("anna") for s in samples)
    assert _main(capsys, argv)[1] == out  # same seed, same text
    status, out, err = _main(capsys, ["generate", trained["run"], "the prince", "--length", "8",
                                      "--beam", "3", "--num-samples", "2"])
    assert status == 0, err
    assert len(out.strip("\n").split("\n----\n")) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["   "], "the prompt is empty"),
        (["qwxz zzyzx"], "every word of the prompt 'qwxz zzyzx' is unknown to the model's vocabulary"),
        (["Anna", "--length", str(text_generator.MAX_RNN_GENERATE_LENGTH + 1)],
         f"--length {text_generator.MAX_RNN_GENERATE_LENGTH + 1} is above this model's limit of "
         f"{text_generator.MAX_RNN_GENERATE_LENGTH} tokens"),
    ],
)
def test_generate_bad_input(trained, capsys, args, message):
    status, out, err = _main(capsys, ["generate", trained["run"], *args])
    assert status == 2
    assert message in err
    assert "Traceback" not in err and out == ""


def test_not_a_run_dir(capsys, tmp_path):
    status, _, err = _main(capsys, ["generate", str(tmp_path), "Anna"])
    assert status == 2 and "is not a keras-seq run directory" in err
    status, _, err = _main(capsys, ["evaluate", str(tmp_path / "missing")])
    assert status == 2 and "does not exist" in err


def test_malformed_model_config_is_a_clear_error(capsys, tmp_path, trained):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    config = json.loads((run / "config.json").read_text())
    config["model"] = {"type": "rnn", **config["model"]["config"]}  # flat: an old layout
    (run / "config.json").write_text(json.dumps(config))
    status, out, err = _main(capsys, ["generate", str(run), "Anna"])
    assert status == 2 and out == "" and "Traceback" not in err
    assert "config.json" in err and "'model'" in err and len(err.strip().splitlines()) == 1


def test_train_errors(capsys, tmp_path, trained):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("one line only, far too short.\n", encoding="utf-8")
    status, _, err = _main(capsys, ["train-lm", "--data", str(tiny), "--run-dir", str(tmp_path / "r")])
    assert status == 2 and "too short" in err
    vocab = json.loads(open(f"{trained['run']}/config.json", encoding="utf-8").read())[
        "tokenizer"]["vocab_size"]
    for model, n in (("lstm", vocab), ("transformer", vocab + 1)):
        run = tmp_path / f"r2-{model}"
        status, out, err = _main(capsys, ["train-lm", "--data", trained["data"], "--run-dir",
                                          str(run), "--model", model,
                                          "--sampled-softmax", str(n), *TRAIN_FLAGS])
        assert status == 2 and out == "" and "Traceback" not in err
        lines = [line for line in err.splitlines() if "error" in line]
        assert len(lines) == 1 and lines[0].startswith("keras-seq: error: ")
        assert (f"--sampled-softmax ({n}) must be smaller than the vocabulary ({vocab} "
                "tokens); 0 trains with the full softmax") in lines[0]
        assert not run.exists()  # refused before the run directory is written
    # Too little validation text for the batch shape: a clear error before training.
    status, _, err = _main(capsys, ["train-lm", "--data", trained["data"], "--run-dir",
                                    str(tmp_path / "r3"), "--batch-size", "64", "--seq-len", "35"])
    assert status == 2 and "the valid split has" in err and "too few for one batch" in err


def test_train_with_sampled_softmax(sampled):
    # The stateful recurrent model of the job, trained on the sampled loss.
    run = sampled["run"]
    config = json.loads(open(f"{run}/config.json", encoding="utf-8").read())
    assert config["model"]["type"] == "rnn" and config["model"]["config"]["cell"] == "lstm"
    assert config["model"]["config"]["sampled_softmax"] == 8
    assert "sampled softmax over 8 negatives" in sampled["err"]
    with open(f"{run}/logs/history.csv", encoding="utf-8") as f:
        header, row = f.read().strip().splitlines()
    logged = dict(zip(header.split(","), map(float, row.split(","))))
    assert math.isfinite(logged["loss"]) and math.isfinite(logged["val_loss"])

    # The reported perplexities are full-softmax ones: the oracle is one
    # stateless pass of the best weights over each (short) stream, in NumPy.
    generator = TextGenerator.from_run(run)
    model, tokenizer = generator.model, generator.tokenizer
    assert model.sampled_softmax == 8
    _, streams = lm_data.load_streams(sampled["data"], "word", tokenizer)
    for split, label in (("valid", "validation"), ("test", "test")):
        ids = streams[split]
        assert len(ids) < 2000  # scored as a single row of 10-token windows
        scored = (len(ids) - 1) // 10 * 10
        reported = float(re.search(rf"{label} perplexity: ([\d.]+)", sampled["out"]).group(1))
        assert reported == pytest.approx(_np_perplexity(model, ids[: scored + 1]), rel=1e-3)
        assert 1.0 < reported < config["tokenizer"]["vocab_size"]
    # val_loss (which picks the best checkpoint) is the full cross-entropy of
    # the validation batches: 4 contiguous rows read with a carried state.
    valid = streams["valid"]
    row_len = len(valid) // 4
    used = (row_len - 1) // 10 * 10
    rows = valid[: 4 * row_len].reshape(4, row_len)[:, : used + 1]
    expected = np.mean([math.log(_np_perplexity(model, row)) for row in rows])
    assert logged["val_loss"] == pytest.approx(expected, rel=1e-4)


def test_generate_and_evaluate_a_sampled_softmax_run(sampled, capsys):
    run = sampled["run"]
    argv = ["generate", run, "Anna and the prince", "--length", "6", "--greedy"]
    status, out, err = _main(capsys, argv)
    assert status == 0, err
    assert out.startswith("anna and the prince")
    generator = TextGenerator.from_run(run)
    model, tokenizer = generator.model, generator.tokenizer
    assert 4 < len(tokenizer.tokenize([out.strip()])[0]) <= 10  # prompt + 6 (fewer at EOS)
    assert _main(capsys, argv)[1] == out
    # Greedy decoding picks the argmax of the full softmax: the next word is
    # the one of the full-vocabulary logits of a teacher-forced pass.
    prompt = tokenizer.encode(["Anna and the prince"])[0]
    logits = model(np.asarray([prompt], np.int32)).numpy()
    assert logits.shape == (1, len(prompt), model.vocab_size)
    best = int(logits[0, -1].argmax())
    assert best > 3  # a word, not EOS/reserved
    status, out, err = _main(capsys, ["generate", run, "Anna and the prince", "--length", "1",
                                      "--greedy"])
    assert status == 0, err
    assert out.strip() == tokenizer.decode([prompt + [best]])[0].strip()

    status, out, err = _main(capsys, ["evaluate", run, "--split", "valid"])
    assert status == 0, err
    valid = float(re.search(r"valid perplexity: ([\d.]+)", out).group(1))
    assert f"validation perplexity: {valid:.2f}" in sampled["out"]


def test_export_a_sampled_softmax_run(sampled, capsys, tmp_path):
    # The SavedModel's `step`/`generate` carry the full softmax; parity with
    # Keras is checked by the command (reloaded in a fresh process).
    status, out, err = _main(capsys, ["export", sampled["run"], "--to", str(tmp_path / "lm"),
                                      "--no-onnx"])
    assert status == 0, err
    assert os.path.isfile(tmp_path / "lm" / "1" / "saved_model.pb")
    assert "parity with saved_model" in out and "parity with onnx" not in out


@pytest.mark.slow
@pytest.mark.parametrize("which", ["trained", "sampled"])
def test_export_parity(which, request, capsys, tmp_path):
    # SavedModel (reloaded in a fresh process) and onnxruntime against Keras.
    run = request.getfixturevalue(which)["run"]
    status, out, err = _main(capsys, ["export", run, "--to", str(tmp_path / "lm")])
    assert status == 0, err
    assert os.path.isfile(tmp_path / "lm" / "1" / "saved_model.pb")
    assert os.path.isfile(tmp_path / "lm" / "onnx" / "step.onnx")
    assert "parity with onnx" in out and "parity with saved_model" in out


# ----------------------------------------------------------------------------
# The Python API: import keras_seq as ks, nothing else
# ----------------------------------------------------------------------------


def test_public_api_pipeline(trained, tmp_path):
    import keras_seq as ks

    # The recipe of TRAIN_FLAGS: the CLI's `trained` run, through the library.
    recipe = ks.LanguageModelRecipe.for_model(
        "lstm", epochs=1, batch_size=4, seq_len=10, units=12, embedding_dim=12, layers=1, seed=7)
    assert (recipe.tokenizer, recipe.dropout, recipe.train.learning_rate) == ("word", 0.3, 2e-3)
    result = ks.train_language_model(recipe, tmp_path / "run", data=trained["data"])
    # Same recipe, same data, same seed: the figures the command printed.
    assert f"validation perplexity: {result.valid_perplexity:.2f}" in trained["out"]
    assert (f"test perplexity: {result.test_perplexity:.2f} ({result.test_tokens} tokens)"
            in trained["out"])
    with open(tmp_path / "run" / "config.json", encoding="utf-8") as f, \
            open(os.path.join(trained["run"], "config.json"), encoding="utf-8") as g:
        mine, theirs = json.load(f), json.load(g)
    theirs["data"]["spec"] = mine["data"]["spec"]
    assert mine == theirs  # the same run directory layout and config.json

    generator = ks.TextGenerator.from_run(result.run_dir)
    text = generator.generate("Anna and the prince", length=12)
    assert isinstance(text, str) and text.startswith("anna and the prince")
    assert generator.generate(["Anna and the prince"], length=12) == [text]
    sampling = ks.DecodeOptions(temperature=0.8, top_k=5, seed=3)
    samples = generator.generate(["Anna", "the prince"], length=6, options=sampling,
                                 num_samples=2)
    assert [len(s) for s in samples] == [2, 2]
    assert samples[0][0].startswith("anna") and samples[1][1].startswith("the prince")
    assert generator.generate(["Anna", "the prince"], length=6, options=sampling,
                              num_samples=2) == samples  # seeded: reproducible
    beams = generator.generate("the prince", length=8, options=ks.DecodeOptions(beam_size=3),
                               num_samples=2)
    assert 1 <= len(beams) <= 2 and all(b.startswith("the prince") for b in beams)

    evaluation = generator.evaluate(split="test")
    assert evaluation.perplexity == pytest.approx(result.test_perplexity, rel=1e-6)
    assert evaluation.tokens == result.test_tokens
    other = generator.evaluate("Anna said that the prince was there.\n" * 20)
    assert 1.0 < other.perplexity and other.source == "given text"

    with pytest.raises(ks.KerasSeqError, match="the prompt is empty"):
        generator.generate("   ")
    with pytest.raises(ValueError, match="greedy decoding gives one text per prompt"):
        generator.generate("Anna", length=3, num_samples=2)
    with pytest.raises(ks.KerasSeqError, match="no prompt given"):
        generator.generate([])
    with pytest.raises(ValueError, match="`num_samples` must be an int >= 1"):
        generator.generate("Anna", length=3, num_samples=0)
    limit = text_generator.MAX_RNN_GENERATE_LENGTH
    assert generator.length_limit(4) == limit
    with pytest.raises(ks.KerasSeqError, match=f"above this model's limit of {limit} tokens"):
        generator.generate("Anna", length=limit + 1)


def test_public_api_transformer_limits_come_from_the_model(trained, tmp_path, capsys):
    import keras_seq as ks

    recipe = ks.LanguageModelRecipe.transformer(
        epochs=1, batch_size=4, seq_len=10, units=8, layers=1, num_heads=2, seed=7)
    assert recipe.embedding_dim is None and recipe.train.warmup_steps == 200
    result = ks.train_language_model(recipe, tmp_path / "run", data=trained["data"])
    assert math.isfinite(result.test_perplexity)
    with open(tmp_path / "run" / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    assert config["model"]["type"] == "transformer"
    assert config["model"]["config"]["max_length"] == 512 == config["generation"]["max_length"]

    generator = ks.TextGenerator.from_run(result.run_dir)
    model = generator.model
    # The prompt and the generated tokens share the model's positions.
    assert generator.length_limit(4) == model.output_length_limit() - 3 == 509
    assert model.input_length_limit(509) >= 4 > model.input_length_limit(510)
    assert generator.generate("anna and the prince", length=3).startswith("anna and the prince")
    with pytest.raises(ks.KerasSeqError, match="above this model's limit of 509 tokens"):
        generator.generate("anna and the prince", length=510)
    with pytest.raises(ks.KerasSeqError, match="the prompt has 513 tokens; .* at most 512"):
        generator.generate("anna " * 513, length=1)
    assert generator.evaluate(split="valid").tokens > 0
    # The command names its flag, and why the limit depends on the prompt.
    status = cli.main(["generate", str(result.run_dir), "anna and the prince", "--length", "510",
                       "--greedy"])
    err = capsys.readouterr().err
    assert status == 2 and ("--length 510 is above this model's limit of 509 tokens (its "
                            "max_length minus the prompt)") in err
