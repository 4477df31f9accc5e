"""Tests for the `keras-seq` command (keras_seq.cli) and run directories (keras_seq.runs)."""

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_seq import cli, runs
from keras_seq.errors import InputError, KerasSeqError, RunDirError

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["train-lm", "generate", "train-translator", "translate", "evaluate", "export", "serve", "demo"]


def _make_run(path, task, *, checkpoint=True):
    run = runs.RunDir.create(path, {"task": task, "model": {}, "tokenizer": {}, "training": {}})
    if checkpoint:
        # The CLI only checks that trained weights exist; the task code loads them.
        run.best_weights.write_bytes(b"weights")
        run.last_weights.write_bytes(b"weights")
    return run


@pytest.fixture
def lm_run(tmp_path):
    return str(_make_run(tmp_path / "lm", "lm").path)


@pytest.fixture
def translator_run(tmp_path):
    return str(_make_run(tmp_path / "translator", "translator").path)


def _run_main(capsys, argv):
    status = cli.main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


def _command():
    exe = shutil.which("keras-seq")
    return [exe] if exe else [sys.executable, "-m", "keras_seq.cli"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


# ----------------------------------------------------------------------------
# Help
# ----------------------------------------------------------------------------


def test_top_level_help_lists_every_command(capsys):
    status, out, _ = _run_main(capsys, ["--help"])
    assert status == 0
    assert out.startswith("usage: keras-seq")
    for command in COMMANDS:
        assert command in out
    assert "examples:" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_subcommand(capsys, command):
    status, out, err = _run_main(capsys, [command, "--help"])
    assert status == 0 and err == ""
    assert out.startswith(f"usage: keras-seq {command}")
    assert "examples:" in out and f"keras-seq {command}" in out.split("examples:")[1]


def test_version_is_instant_and_single_sourced(capsys):
    import keras_seq

    status, out, _ = _run_main(capsys, ["--version"])
    assert status == 0 and out == f"keras-seq {keras_seq.__version__}\n"


def test_export_and_demo_help_say_what_they_do(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    _, export, _ = _run_main(capsys, ["export", "--help"])
    assert "DIR/onnx/*.onnx" in export and "the string signatures too" in export and "--quantize" in export
    assert "DIR.onnx" not in export
    _, demo, _ = _run_main(capsys, ["demo", "--help"])
    assert "trains a translator only, no language model" in demo
    assert "and language model" not in demo


def test_train_lm_help_shows_the_recipe_defaults(capsys, monkeypatch):
    from keras_seq.recipes import LanguageModelRecipe

    monkeypatch.setenv("COLUMNS", "250")
    _, lm, _ = _run_main(capsys, ["train-lm", "--help"])
    word, char = LanguageModelRecipe(), LanguageModelRecipe.rnn("lstm", "char")
    transformer = LanguageModelRecipe.transformer()
    assert f"number of epochs (recipe default: {word.train.epochs})" in lm
    assert (f"(recipe default: {word.seq_len}; char: {char.seq_len}, "
            f"transformer: {transformer.seq_len})") in lm
    assert f"(recipe default: {word.units}; char: {char.units})" in lm
    assert (f"(recipe default: {word.train.learning_rate}; "
            f"transformer: {transformer.train.learning_rate})") in lm
    assert "(recipe default: 10000; char: every token, wordpiece: 8000)" in lm
    assert "(recipe default: on; char: off)" in lm  # --tie-embeddings
    assert "(default: lstm)" in lm and "(default: word)" in lm
    _, generate, _ = _run_main(capsys, ["generate", "--help"])
    assert "tokens to generate (default: 200)" in generate


def test_translator_help_shows_the_recipe_defaults(capsys, monkeypatch):
    from keras_seq.recipes import TranslatorRecipe

    monkeypatch.setenv("COLUMNS", "250")
    _, tr, _ = _run_main(capsys, ["train-translator", "--help"])
    rnn, transformer = TranslatorRecipe.rnn(), TranslatorRecipe.transformer()
    assert f"number of epochs (recipe default: {rnn.train.epochs})" in tr
    assert f"(recipe default: {rnn.layers}; transformer: {transformer.layers})" in tr
    assert f"(recipe default: {rnn.train.learning_rate}; transformer: {transformer.train.learning_rate})" in tr
    assert f"(recipe default: {rnn.attention})" in tr
    _, translate, _ = _run_main(capsys, ["translate", "--help"])
    assert f"beam size (default: the run's; {rnn.beam_size} for runs of today's recipe)" in translate
    assert f"(default: the run's; {rnn.length_penalty:g} for runs of today's recipe)" in translate


def test_training_flags_in_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no line wrapping inside the words checked below
    _, lm, _ = _run_main(capsys, ["train-lm", "--help"])
    _, tr, _ = _run_main(capsys, ["train-translator", "--help"])
    shared = [
        "--data", "--run-dir", "--epochs", "--batch-size", "--max-minutes", "--seed", "--resume",
        "--mixed-precision", "--strategy", "--optimizer", "--learning-rate", "--lr-schedule",
        "--clipnorm", "--patience", "--jit", "--no-jit", "--sampled-softmax", "--model",
    ]  # fmt: skip
    for flag in shared:
        assert flag in lm and flag in tr, flag
    for flag in ["--tokenizer", "--vocab-size", "--min-frequency", "--seq-len", "--units", "--layers",
                 "--embedding-dim", "--dropout", "--tie-embeddings"]:  # fmt: skip
        assert flag in lm, flag
    for flag in ["--max-length", "--cell", "--bidirectional", "--no-bidirectional", "--attention",
                 "--input-feeding", "--teacher-forcing-ratio", "--max-pairs", "--reverse"]:  # fmt: skip
        assert flag in tr, flag
    assert "(default: bundled:anna-karenina)" in lm and "(default: bundled:fra-eng)" in tr
    assert "(default: runs/lm)" in lm and "(default: runs/translator)" in tr


# ----------------------------------------------------------------------------
# Bad input: exit 2, one line naming the problem, no traceback
# ----------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (["generate", "{lm}", "hi", "--top-k", "0"], "--top-k: must be an integer >= 1, got '0'"),
    (["generate", "{lm}", "hi", "--temperature", "0"], "--temperature: must be > 0, got '0'"),
    (["generate", "{lm}", "hi", "--temperature", "-0.5"], "--temperature: must be > 0, got '-0.5'"),
    (["generate", "{lm}", "hi", "--top-p", "0"], "--top-p: must be in (0, 1], got '0'"),
    (["generate", "{lm}", "hi", "--top-p", "1.5"], "--top-p: must be in (0, 1], got '1.5'"),
    (["generate", "{lm}", "hi", "--beam", "0"], "--beam: must be an integer >= 1, got '0'"),
    (["generate", "{lm}", "hi", "--length", "0"], "--length: must be an integer >= 1, got '0'"),
    (["generate", "{lm}", "hi", "--length", "ten"], "--length: expected an integer, got 'ten'"),
    (["translate", "{tr}", "hi", "--beam", "0"], "--beam: must be an integer >= 1, got '0'"),
    (["train-lm", "--epochs", "-1"], "--epochs: must be an integer >= 1, got '-1'"),
    (["train-lm", "--epochs", "0"], "--epochs: must be an integer >= 1, got '0'"),
    (["train-translator", "--batch-size", "-8"], "--batch-size: must be an integer >= 1, got '-8'"),
    (["train-lm", "--max-minutes", "0"], "--max-minutes: must be > 0"),
    (
        ["train-lm", "--data", "bundled:war-and-peace"],
        "unknown bundled data set 'war-and-peace' (available: ",
    ),
    (["train-translator", "--data", "{tmp}/missing.tsv"], "data file {tmp}/missing.tsv does not exist"),
    (["train-lm", "--data", "{tmp}"], "data path {tmp} is a directory, not a file"),
    (["train-lm", "--model", "lstmm"], "--model: invalid choice: 'lstmm'"),
    (["train-translator", "--dropout", "1"], "--dropout: must be in [0, 1)"),
    (["serve", "{tmp}", "--port", "70000"], "--port: must be a TCP port in 1..65535"),
    (["serve", "{tmp}", "--grpc-port", "0"], "--grpc-port: must be a TCP port in 1..65535"),
    # Every serve flag comes from keras_seq.serving.cli.add_arguments, with its range.
    (["serve", "{tmp}", "--workers", "0"], "argument --workers: must be an integer in 1..1024"),
    (["serve", "{tmp}", "--max-batch", "0"], "argument --max-batch: must be an integer in 1.."),
    (["serve", "{tmp}", "--max-queue", "-1"], "argument --max-queue: must be an integer in 1.."),
    (["serve", "{tmp}", "--poll-interval", "-1"], "argument --poll-interval: must be a number of seconds"),
    (["serve", "{tmp}", "--queue-timeout-ms", "0"], "argument --queue-timeout-ms: must be an integer in 1.."),
    (["serve", "{tmp}", "--request-timeout-ms", "x"], "argument --request-timeout-ms: must be an integer"),
    (["serve", "{tmp}", "--max-body-bytes", "0"], "argument --max-body-bytes: must be an integer in 1.."),
    (["serve", "{tmp}", "--max-versions", "0"], "argument --max-versions: must be an integer in 1.."),
    (["serve", "{tmp}", "--host", " "], "argument --host: must be a host name or IP address"),
    (["train-translator", "--anneal-to-budget", "1.5"], "argument --anneal-to-budget: must be in (0, 1]"),
    (["train-lm", "-q", "-v"], "argument -v/--verbose: not allowed with argument -q/--quiet"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]

BAD_STATE = [
    (["generate", "{tmp}/nowhere", "hi"], "run directory {tmp}/nowhere does not exist"),
    (["generate", "{tmp}", "hi"], "{tmp} is not a keras-seq run directory (no config.json); train one with"),
    (["evaluate", "{corrupt}"], "{corrupt}/config.json is corrupt (not valid JSON"),
    (["export", "{untrained}"], "{untrained} has no checkpoint yet"),
    (["generate", "{tr}", "hi"], "is a translator run, not a language-model run; use `keras-seq translate`"),
    (["translate", "{lm}", "hi"], "is a language-model run, not a translator run; use `keras-seq generate`"),
    (["generate", "{lm}", "hi", "--greedy", "--beam", "2"], "--greedy and --beam cannot be combined"),
    (
        ["generate", "{lm}", "hi", "--greedy", "--top-k", "5"],
        "--top-k only apply to random sampling; drop --greedy",
    ),
    (
        ["generate", "{lm}", "hi", "--beam", "2", "--num-samples", "3"],
        "--num-samples (3) cannot exceed --beam (2)",
    ),
    (["translate", "{tr}", "hi", "--n-best", "6"], "--n-best (6) cannot exceed the beam size (5)"),
    (
        ["translate", "{tr}", "hi", "--input", "{tmp}/x.txt"],
        "give sentences as TEXT arguments or with --input",
    ),
    (["translate", "{tr}", "--input", "{tmp}/x.txt"], "--input file {tmp}/x.txt does not exist"),
    (["train-lm", "--run-dir", "{lm}"], "already holds a trained run; pass --resume to continue it"),
    (["train-lm", "--resume", "--run-dir", "{tmp}/fresh"], "run directory {tmp}/fresh does not exist"),
    (["train-lm", "--resume", "--run-dir", "{untrained_lm}"], "nothing to resume in {untrained_lm}"),
    (
        ["train-lm", "--resume", "--run-dir", "{tr}"],
        "holds a translator run; resume it with `keras-seq train-translator",
    ),
    (["serve", "{tmp}/exported/none"], "export directory {tmp}/exported/none does not exist"),
]


@pytest.fixture
def paths(tmp_path, lm_run, translator_run):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"task": "lm", ')
    return {
        "tmp": str(tmp_path),
        "lm": lm_run,
        "tr": translator_run,
        "corrupt": str(corrupt),
        "untrained": str(_make_run(tmp_path / "untrained", "translator", checkpoint=False).path),
        "untrained_lm": str(_make_run(tmp_path / "untrained_lm", "lm", checkpoint=False).path),
    }


@pytest.mark.parametrize(
    "argv, message", BAD_ARGUMENTS + BAD_STATE, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_bad_input_is_one_line_exit_2(capsys, paths, argv, message):
    argv = [a.format(**paths) for a in argv]
    status, out, err = _run_main(capsys, argv)
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-seq: error: ")
    assert message.format(**paths) in lines[0]
    assert "Traceback" not in err


def test_bad_input_through_the_installed_command(tmp_path):
    """A real process of the `keras-seq` entry point (or `python -m keras_seq.cli`)."""
    cases = [
        (["generate", str(tmp_path), "hello", "--top-k", "0"], "--top-k: must be an integer >= 1"),
        (["generate", str(tmp_path), "hello"], "is not a keras-seq run directory (no config.json)"),
        (["train-lm", "--data", "bundled:nope"], "unknown bundled data set 'nope'"),
    ]
    for argv, message in cases:
        done = subprocess.run(_command() + argv, capture_output=True, text=True, env=_env(), timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("keras-seq: error: ")
        assert message in done.stderr and "Traceback" not in done.stderr


def test_help_and_errors_need_no_tensorflow():
    code = (
        "import sys, io, contextlib\n"
        "from keras_seq.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0\n"
        "    assert main(['train-translator', '--help']) == 0\n"
        "with contextlib.redirect_stderr(io.StringIO()):\n"
        "    assert main(['generate', '/nonexistent-run', 'hi']) == 2\n"
        "    assert main(['train-lm', '--epochs', '0']) == 2\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert time.monotonic() - start < 20  # TensorFlow alone takes longer than this to import here


def test_debug_shows_the_traceback(capsys, tmp_path):
    for argv in (["--debug", "generate", str(tmp_path), "hi"], ["generate", str(tmp_path), "hi", "--debug"]):
        status, _, err = _run_main(capsys, argv)
        assert status == 2
        assert "Traceback" in err and "RunDirError" in err
        assert err.strip().splitlines()[-1].startswith("keras-seq: error: ")


def test_no_command_prints_help(capsys):
    status, out, err = _run_main(capsys, [])
    assert status == 2 and "usage: keras-seq" in err


# ----------------------------------------------------------------------------
# Resolution and dispatch
# ----------------------------------------------------------------------------


def test_train_args_and_target(tmp_path):
    args, target = cli.prepare(
        ["train-lm", "--run-dir", str(tmp_path / "run"), "--epochs", "3", "--no-jit", "--lr-schedule", "step",
         "--tokenizer", "char", "--tie-embeddings", "--sampled-softmax", "64"]  # fmt: skip
    )
    assert target == ("keras_seq.cli", "_run_train_lm")
    assert args.data == "bundled:anna-karenina" and args.model == "lstm"
    assert (args.epochs, args.jit_compile, args.lr_schedule, args.tokenizer) == (3, False, "step", "char")
    assert args.tie_embeddings is True and args.sampled_softmax == 64
    assert args.batch_size is None and args.mixed_precision is None and args.resume is False
    # The flags map onto the recipe: given flags win, unset ones keep the
    # recipe's defaults (here the character LSTM's).
    recipe = cli._lm_recipe(args)
    config = recipe.train
    assert (config.epochs, config.optimizer, config.jit_compile, config.lr_schedule) == (
        3,
        "adam",
        False,
        "step",
    )
    assert (recipe.tokenizer, recipe.tie_embeddings, recipe.sampled_softmax) == ("char", True, 64)
    assert (recipe.seq_len, recipe.units, config.batch_size, config.mixed_precision) == (
        100, 512, 32, False)

    args, target = cli.prepare(
        ["train-translator", "--run-dir", str(tmp_path / "tr"), "--attention", "luong-general",
         "--no-bidirectional", "--input-feeding", "--reverse", "--mixed-precision"]  # fmt: skip
    )
    assert target == ("keras_seq.cli", "_run_train_translator")
    assert args.data == "bundled:fra-eng" and args.model == "rnn"
    assert (args.attention, args.bidirectional, args.input_feeding, args.reverse) == (
        "luong-general",
        False,
        True,
        True,
    )
    assert args.mixed_precision is True and args.jit_compile is None
    recipe = cli._translator_recipe(args)  # unset flags keep TranslatorRecipe's defaults
    assert (recipe.attention, recipe.bidirectional, recipe.input_feeding) == ("luong-general", False, True)
    assert (recipe.units, recipe.cell, recipe.train.epochs, recipe.train.learning_rate) == (
        256, "lstm", 30, 2e-3)
    assert recipe.train.mixed_precision is True and recipe.train.jit_compile == "auto"
    args, _ = cli.prepare(["train-translator", "--model", "transformer", "--seed", "7", "--units", "64"])
    recipe = cli._translator_recipe(args)
    assert (recipe.model, recipe.units, recipe.layers, recipe.train.learning_rate) == (
        "transformer", 64, 3, 5e-4)
    assert recipe.train.seed == recipe.split_seed == 7
    args, _ = cli.prepare(["train-translator", "--model", "transformer", "--label-smoothing", "0",
                           "--epochs", "3"])
    recipe = cli._translator_recipe(args)
    assert (recipe.label_smoothing, recipe.train.average_last) == (0.0, 3)
    # --anneal-to-budget alone anneals over the whole budget, with a fraction over its
    # last part; --no-anneal-to-budget turns a recipe's annealing off.
    for flags, expected in ([], False), (["--anneal-to-budget"], True), (
            ["--anneal-to-budget", "0.3"], 0.3), (["--no-anneal-to-budget"], False):
        args, _ = cli.prepare(["train-translator", "--max-minutes", "5", *flags])
        assert cli._translator_recipe(args).train.anneal_to_budget == expected, flags
    with pytest.raises(SystemExit):
        cli.prepare(["train-translator", "--label-smoothing", "1"])
    with pytest.raises(InputError, match="^--cell applies to --model rnn, not to the Transformer$"):
        cli.prepare(["train-translator", "--model", "transformer", "--cell", "gru"])
    with pytest.raises(InputError, match="--embedding-dim must equal --units"):
        cli.prepare(["train-translator", "--model", "transformer", "--embedding-dim", "32"])


def test_generate_and_translate_resolution(lm_run, translator_run, tmp_path, monkeypatch):
    args, target = cli.prepare(["generate", lm_run, "Once upon", "--top-p", "0.9", "--seed", "7"])
    assert target == ("keras_seq.cli", "_run_generate")
    assert cli._generate_options(args) == dict(sample=True, temperature=1.0, top_k=None, top_p=0.9,
                                               seed=7)
    assert args.temperature is None  # the derived value is not written back
    assert not hasattr(args, "run_config") and args.length == 200 and args.num_samples == 1
    args, _ = cli.prepare(["generate", lm_run, "x", "--beam", "4", "--num-samples", "2"])
    assert cli._generate_options(args) == dict(beam_size=4, num_return=2)
    args, _ = cli.prepare(["generate", lm_run, "x", "--greedy"])
    assert cli._generate_options(args) == {}

    args, target = cli.prepare(["translate", translator_run, "I am cold.", "Hello"])
    assert target == ("keras_seq.cli", "_run_translate")
    # beam and length penalty: None, the run's own (config.json "decoding")
    assert (args.beam, args.length_penalty, args.greedy, args.n_best) == (None, None, False, 1)
    assert not hasattr(args, "sentences")  # nothing written back
    assert cli._read_sentences(args) == ["I am cold.", "Hello"]
    args, _ = cli.prepare(["translate", translator_run, "x", "--greedy"])
    assert args.greedy and args.beam is None

    source = tmp_path / "in.txt"
    source.write_text("first\n\nthird\n", encoding="utf-8")
    args, _ = cli.prepare(["translate", translator_run, "--input", str(source)])
    assert cli._read_sentences(args) == ["first", "", "third"]  # blank lines kept: outputs align

    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin\nsecond line\n"))
    args, _ = cli.prepare(["translate", translator_run])
    assert cli._read_sentences(args) == ["from stdin", "second line"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n  \n"))
    args, _ = cli.prepare(["translate", translator_run, "--input", "-"])
    with pytest.raises(InputError, match="no text to translate"):
        cli._read_sentences(args)  # read by the job, once


def test_serve_passes_every_option_to_the_server(tmp_path, monkeypatch):
    from keras_seq.serving import cli as serving_cli

    calls = []
    monkeypatch.setattr(serving_cli, "run_server", lambda base_dir, **kw: calls.append((base_dir, kw)))
    args, target = cli.prepare(["serve", str(tmp_path), "--workers", "3", "--max-batch", "8",
                                "--poll-interval", "0", "--max-queue", "5", "--queue-timeout-ms", "100",
                                "--request-timeout-ms", "900", "--no-warmup", "--max-body-bytes", "4096",
                                "--max-versions", "2", "--max-string-length", "64", "--port", "9001",
                                "--no-batching", "--batch-timeout-ms", "2.5", "--drain-timeout-ms", "700",
                                "--grpc-port", "9002"])
    assert target == ("keras_seq.cli", "_run_serve")
    cli._run_serve(args)
    assert calls == [(str(tmp_path), dict(
        host="127.0.0.1", port=9001, onnx=False, precision="float", poll_interval=0.0,
        max_body_bytes=4096, max_batch=8,
        max_string_length=64, max_versions=2, workers=3, max_queue=5, queue_timeout_ms=100,
        request_timeout_ms=900, warmup=False, batching=False, batch_timeout_ms=2.5,
        drain_timeout_ms=700, grpc_port=9002))]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_quiet_and_verbose(command, lm_run, translator_run, tmp_path):
    positional = {"generate": [lm_run, "x"], "translate": [translator_run, "x"],
                  "evaluate": [lm_run], "export": [lm_run], "serve": [str(tmp_path)]}
    parser = cli.build_parser()
    levels = [parser.parse_args([command, *positional.get(command, []), *flag]).verbose
              for flag in ([], ["-q"], ["--quiet"], ["-v"], ["--verbose"])]
    assert levels == [None, 0, 0, 2, 2]


def test_quiet_and_verbose_reach_the_library(lm_run, translator_run, tmp_path, monkeypatch):
    """-q/-v become one level in TrainConfig and the pipeline calls; no Namespace goes below."""
    args, _ = cli.prepare(["train-lm", "--run-dir", str(tmp_path / "a"), "-q"])
    assert cli._lm_recipe(args).train.verbose == 0
    args, _ = cli.prepare(["train-translator", "--run-dir", str(tmp_path / "b"), "--verbose"])
    assert cli._translator_recipe(args).train.verbose == 2
    args, _ = cli.prepare(["train-translator", "--run-dir", str(tmp_path / "c")])
    assert cli._translator_recipe(args).train.verbose == 1

    from keras_seq.pipelines import lm_commands, translation_commands

    calls = {}
    for module, name in ((lm_commands, "evaluate_run"), (lm_commands, "export_run"),
                         (translation_commands, "evaluate_run"), (translation_commands, "export_run"),
                         (translation_commands, "translate_lines")):
        monkeypatch.setattr(module, name, lambda *a, _key=(module.__name__, name), **kw:
                            calls.__setitem__(_key, kw["verbose"]))
    monkeypatch.chdir(tmp_path)
    cli._run_evaluate_lm(cli.prepare(["evaluate", lm_run, "-q"])[0])
    cli._run_export_lm(cli.prepare(["export", lm_run, "--no-onnx", "-v"])[0])
    cli._run_evaluate_translator(cli.prepare(["evaluate", translator_run])[0])
    cli._run_export_translator(cli.prepare(["export", translator_run, "--no-onnx", "-q"])[0])
    source = tmp_path / "in.txt"
    source.write_text("a\nb\n", encoding="utf-8")
    cli._run_translate(cli.prepare(["translate", translator_run, "--input", str(source), "-v"])[0])
    assert calls == {
        ("keras_seq.pipelines.lm_commands", "evaluate_run"): 0,
        ("keras_seq.pipelines.lm_commands", "export_run"): 2,
        ("keras_seq.pipelines.translation_commands", "evaluate_run"): 1,
        ("keras_seq.pipelines.translation_commands", "export_run"): 0,
        ("keras_seq.pipelines.translation_commands", "translate_lines"): 2,
    }


def test_evaluate_and_export_pick_the_task_from_config(lm_run, translator_run, tmp_path, monkeypatch):
    args, target = cli.prepare(["evaluate", translator_run, "--beam", "3"])
    assert target == ("keras_seq.cli", "_run_evaluate_translator")
    assert (args.split, args.beam, args.data) == ("test", 3, None)
    args, target = cli.prepare(["evaluate", lm_run, "--split", "valid"])
    assert target == ("keras_seq.cli", "_run_evaluate_lm") and args.split == "valid"
    monkeypatch.chdir(tmp_path)
    args, target = cli.prepare(["export", lm_run, "--no-onnx"])
    assert target == ("keras_seq.cli", "_run_export_lm")
    assert (cli._export_dir(args), args.version, args.onnx) == (str(Path("exported") / "lm"), None, False)
    args, target = cli.prepare(["export", translator_run, "--to", "exported/fra", "--version", "3"])
    assert target == ("keras_seq.cli", "_run_export_translator")
    assert (cli._export_dir(args), args.version, args.onnx) == ("exported/fra", 3, True)
    args, target = cli.prepare(["serve", str(tmp_path), "--onnx", "--port", "9000"])
    assert target == ("keras_seq.cli", "_run_serve") and (args.host, args.port, args.onnx) == (
        "127.0.0.1",
        9000,
        True,
    )
    args, target = cli.prepare(["demo", "--minutes", "2"])
    assert target == ("keras_seq.cli", "_run_demo") and (args.minutes, args.run_dir) == (2.0, "runs/demo")


def test_a_missing_task_is_reported_not_faked():
    class Args:
        command = "train-lm"

    with pytest.raises(
        KerasSeqError,
        match=r"`keras-seq train-lm` is not available in this build \(keras_seq\.tasks\.nope is missing\)",
    ):
        cli._call_task("keras_seq.tasks.nope", "train", Args())
    with pytest.raises(KerasSeqError, match=r"keras_seq\.runs\.train is missing"):
        cli._call_task("keras_seq.runs", "train", Args())


# ----------------------------------------------------------------------------
# Run directories
# ----------------------------------------------------------------------------


def test_run_dir_layout_and_config(tmp_path):
    config = {"task": "translator", "model": {"units": 8}, "tokenizer": {"type": "word"}, "training": {}}
    run = runs.RunDir.create(tmp_path / "run", config)
    for sub in ("vocab", "checkpoints", "logs"):
        assert (run.path / sub).is_dir()
    assert json.loads(run.config_path.read_text()) == config
    assert runs.load_run_config(run.path) == config and run.task == "translator"
    assert not list(run.path.glob(".tmp-*"))
    with pytest.raises(RunDirError, match="has no checkpoint yet"):
        run.checkpoint()
    run.last_weights.write_bytes(b"w")
    assert run.checkpoint() == run.last_weights  # best falls back to last
    run.best_weights.write_bytes(b"w")
    assert run.checkpoint() == run.best_weights and run.checkpoint("last") == run.last_weights
    with pytest.raises(RunDirError, match="already holds a trained run"):
        runs.RunDir.create(run.path, config)
    runs.RunDir.create(run.path, config, overwrite=True)
    assert not run.has_checkpoint()
    with pytest.raises(ValueError, match="task"):
        runs.RunDir.create(tmp_path / "other", {"model": {}})


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "is not a keras-seq run directory (no config.json)"),
        ("{not json", "config.json is corrupt (not valid JSON"),
        ("[1, 2]", "config.json is corrupt (expected a JSON object, got list)"),
        ('{"task": "vision"}', "names no known task (task='vision'"),
        (b"\xff\xfe", "cannot read"),
    ],
)
def test_load_run_config_errors(tmp_path, content, message):
    if isinstance(content, bytes):
        (tmp_path / "config.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(RunDirError) as info:
        runs.load_run_config(tmp_path)
    assert message in str(info.value) and str(tmp_path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_run_dir_and_file_instead_of_dir(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        runs.load_run_config(tmp_path / "absent")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="it is a file"):
        runs.load_run_config(tmp_path / "file")


def test_prepare_run_dir(tmp_path):
    config = {"task": "lm"}
    with pytest.raises(RunDirError, match="does not exist"):
        runs.prepare_run_dir(tmp_path / "run", config, resume=True)
    run, used = runs.prepare_run_dir(tmp_path / "run", config)
    assert used == config and run.config == config
    with pytest.raises(RunDirError, match="nothing to resume"):
        runs.prepare_run_dir(tmp_path / "run", config, resume=True)
    run.last_weights.write_bytes(b"w")
    run2, used = runs.prepare_run_dir(tmp_path / "run", {"task": "lm", "other": 1}, resume=True)
    assert used == config  # the stored config wins when resuming


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "config.json"
    runs.write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with runs.atomic_write(target) as f:
            f.write('{"a": 2, "half')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_bundled_names_match_the_data_module():
    from keras_seq import data

    assert cli.bundled_names() == sorted(data.BUNDLED_DATA)


def test_translate_takes_sentences_before_and_after_its_options():
    """`translate RUN --greedy "text"` parses like `translate RUN "text" --greedy`."""
    parser = cli.build_parser()
    for argv in (["translate", "RUN", "--greedy", "I am cold.", "Hi."],
                 ["translate", "RUN", "I am cold.", "--greedy", "Hi."],
                 ["translate", "RUN", "I am cold.", "Hi.", "--greedy"],
                 ["translate", "RUN", "--beam", "3", "--greedy", "I am cold.", "Hi."]):
        args = parser.parse_args(argv)
        assert (args.run, args.text, args.greedy) == ("RUN", ["I am cold.", "Hi."], True), argv
    with pytest.raises(SystemExit):  # an unknown option is still refused
        parser.parse_args(["translate", "RUN", "--bogus", "I am cold."])
