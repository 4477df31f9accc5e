"""The `keras-seq` command's refusals (issue 13): a table of bad inputs.

Each row is one distinct bad input; the command must answer with exit status
2 and one line `keras-seq: error: ...` naming the problem, with nothing on
stdout and no traceback. The table is the documentation of what is refused
(`tests/test_cli.py` holds the older rows: flag ranges, missing runs, wrong
tasks). The rows run in-process through `keras_seq.cli.main` against two tiny
real runs (`tests/tiny_runs.py`) and copies of them with a damaged
config.json; the few that need a real process (bytes in argv) run one.

Also here: what is *not* refused but handled (decoding lengths capped at the
model's limit, non-UTF-8 lines of stdin translated around), and run-directory
files following the umask.
"""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keras_seq import cli

import tiny_runs

REPO = Path(__file__).resolve().parents[1]


def _damaged(root, run, name, change):
    """A copy of `run` whose config.json was changed by `change(config)`."""
    path = root / name
    shutil.copytree(run, path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    change(config)
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(path)


def _set(*keys, value):
    def change(config):
        for key in keys[:-1]:
            config = config[key]
        config[keys[-1]] = value
    return change


def _drop(key):
    return lambda config: config.pop(key)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-refusals")
    tr, lm = tiny_runs.translator_run(tmp_path_factory), tiny_runs.lm_run(tmp_path_factory)
    (root / "empty.txt").write_text("\n\n", encoding="utf-8")
    (root / "file").write_text("not a directory", encoding="utf-8")
    (root / "notab.tsv").write_text("no tab here\nnor here\n", encoding="utf-8")
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    (root / "plots").mkdir()
    damaged = {
        "tr_model_str": (tr, _set("model", value="rnn")),
        "tr_no_training": (tr, _drop("training")),
        "tr_no_data": (tr, _drop("data")),
        "tr_bad_epochs": (tr, _set("training", "epochs", value=0)),
        "tr_no_source_tok": (tr, lambda c: c["tokenizer"].pop("source")),
        "tr_beam_zero": (tr, _set("decoding", "beam", value=0)),
        "tr_beam_two": (tr, _set("decoding", "beam", value=2)),  # valid: a run decoding with beam 2
        "tr_units_str": (tr, _set("model", "config", "units", value="8")),
        "tr_max_length_null": (tr, _set("data", "max_length", value=None)),
        "lm_model_str": (lm, _set("model", value="lstm")),
        "lm_no_data": (lm, _drop("data")),
        "lm_no_training": (lm, _drop("training")),
        "lm_units_str": (lm, _set("model", "config", "units", value="many")),
        "lm_seq_len_list": (lm, _set("data", "seq_len", value=[35])),
        "lm_type_bad": (lm, _set("model", "type", value="lstm")),
        "lm_dropout_big": (lm, _set("model", "config", "dropout", value=1.5)),
        "lm_no_tokenizer_type": (lm, lambda c: c["tokenizer"].pop("type")),
    }
    out = {name: _damaged(root, run, name, change) for name, (run, change) in damaged.items()}
    out.update(tmp=str(root), tr=tr, lm=lm, long_prompt="happy " * 30000)
    return out


def _main(capsys, argv):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


_DAMAGED = "the file is damaged: retrain the run or restore its config.json"

# (argv, text the one error line must hold). Every row a distinct bad input.
REFUSED = [
    # -- config.json of the wrong shape, in every command that reads a run ----------
    (["translate", "{tr_model_str}", "I am cold."], "{tr_model_str}/config.json: 'model' must be an object"),
    (["export", "{tr_model_str}", "--to", "{tmp}/x", "--no-onnx"], "'model' must be an object"),
    (["evaluate", "{tr_no_data}"], "{tr_no_data}/config.json has no 'data' entry; " + _DAMAGED),
    (["translate", "{tr_bad_epochs}", "hi"], "'training' is not a training configuration (epochs must be"),
    (["evaluate", "{tr_no_source_tok}"], "'tokenizer.source' must be an object, got nothing"),
    (["translate", "{tr_beam_zero}", "hi"], "'decoding.beam' must be an integer >= 1, got an integer (0)"),
    (["export", "{tr_units_str}", "--no-onnx", "--to", "{tmp}/y"], "'model.config.units' must be an integer >= 1"),
    (["evaluate", "{tr_max_length_null}"], "'data.max_length' must be an integer >= 1, got null"),
    (["train-translator", "--resume", "--run-dir", "{tr_no_training}"], "has no 'training' entry"),
    (["train-translator", "--resume", "--run-dir", "{tr_no_data}"], "{tr_no_data}/config.json has no 'data'"),
    (["train-translator", "--resume", "--run-dir", "{tr_model_str}"], "'model' must be an object"),
    (["train-translator", "--resume", "--run-dir", "{tr}", "--batch-size", "100000000"],
     "TranslatorRecipe(rnn, units=8, layers=1, embedding_dim=8, batch_size=100000000, max_length=12, "
     "vocabularies of 23 and 29) needs about"),
    (["train-lm", "--resume", "--run-dir", "{lm}", "--batch-size", "100000000"],
     "LanguageModelRecipe(lstm, units=8, layers=1, embedding_dim=8, batch_size=100000000, seq_len=8, "
     "the smallest vocabulary) needs about"),
    (["generate", "{lm_model_str}", "hi"], "{lm_model_str}/config.json: 'model' must be an object"),
    (["evaluate", "{lm_no_data}"], "{lm_no_data}/config.json has no 'data' entry"),
    (["export", "{lm_type_bad}", "--no-onnx"],
     "config.json: 'model' must be an object {{\"type\": \"rnn\" | \"transformer\", \"config\": {{...}}}}, "
     "its \"type\" is a string ('lstm')"),
    (["generate", "{lm_units_str}", "hi"], "'model.config.units' must be an integer >= 1, got a string"),
    (["evaluate", "{lm_seq_len_list}"], "'data.seq_len' must be an integer >= 1, got a list"),
    (["generate", "{lm_dropout_big}", "hi"], "'model.config.dropout' must be a number in [0, 1)"),
    (["generate", "{lm_no_tokenizer_type}", "hi"], "'tokenizer.type' must be a non-empty string"),
    (["train-lm", "--resume", "--run-dir", "{lm_no_training}"], "{lm_no_training}/config.json has no 'training'"),
    (["train-lm", "--resume", "--run-dir", "{lm_no_data}"], "has no 'data' entry"),
    (["train-lm", "--resume", "--run-dir", "{lm_model_str}"], "'model' must be an object"),
    # -- sizes that cannot fit, refused before any model is built ------------------
    (["train-lm", "--units", "100000"], "needs about 1.9 TB (120.1G parameters"),
    (["train-lm", "--embedding-dim", "10000000"], "embedding_dim=10000000"),
    (["train-lm", "--batch-size", "100000000"], "TB of activations per batch), more than this machine's"),
    (["train-lm", "--layers", "1000"], "LanguageModelRecipe: layers must be an integer in 1..64; got 1000"),
    (["train-lm", "--model", "transformer", "--seq-len", "1000000"], "seq_len=1000000"),
    (["train-translator", "--units", "100000"], "TranslatorRecipe(rnn, units=100000"),
    (["train-translator", "--embedding-dim", "10000000"], "lower units, embedding_dim, layers"),
    (["train-translator", "--batch-size", "100000000"], "batch_size=100000000"),
    (["train-translator", "--layers", "65"], "TranslatorRecipe: layers must be an integer in 1..64; got 65"),
    (["train-translator", "--model", "transformer", "--units", "100000"], "TranslatorRecipe(transformer"),
    (["generate", "{lm}", "happy", "--num-samples", "1000000000"], "decoding 1000000000 sequences of 200 tokens needs logits"),
    (["generate", "{lm}", "happy", "--beam", "100000000"], "decoding 100000000 sequences"),
    (["translate", "{tr}", "I am cold.", "--beam", "100000000"], "more than the 2**31 TensorFlow supports"),
    (["generate", "{lm}", "happy", "--num-samples", "50000000", "--length", "5000"],
     "decoding 50000000 sequences of 5000 tokens needs about 3.0 TB"),
    # -- lengths beyond the model's --------------------------------------------------
    (["generate", "{lm}", "happy", "--length", "1000000"], "--length 1000000 is above this model's limit of 5000"),
    (["generate", "{lm}", "{long_prompt}", "--length", "5"], "the prompt has 30000 tokens; a recurrent language"),
    # -- text that is not UTF-8 (surrogate-escaped argv) -----------------------------
    (["translate", "{tr}", "I am cold.", "caf\udce9"], "TEXT argument 2 is not valid UTF-8 (byte 0xe9 at"),
    (["generate", "{lm}", "\udcffhappy"], "PROMPT is not valid UTF-8 (byte 0xff at character 1)"),
    # -- --plot ------------------------------------------------------------------------
    (["translate", "{tr}", "I am cold.", "--plot", "{tmp}/plots"], "--plot {tmp}/plots is a directory"),
    (["translate", "{tr}", "I am cold.", "--plot", "{tmp}/none/a.png"], "directory {tmp}/none does not exist"),
    # -- other inputs ------------------------------------------------------------------
    (["translate", "{tr}", "--greedy", "--n-best", "2"], "--n-best (2) cannot exceed the beam size (1 with --greedy)"),
    # Without --beam, the run's own beam size bounds --n-best.
    (["translate", "{tr_beam_two}", "hi", "--n-best", "3"], "--n-best (3) cannot exceed the beam size (2)"),
    (["translate", "{tr_beam_two}", "hi", "--beam", "3", "--n-best", "4"],
     "--n-best (4) cannot exceed the beam size (3)"),
    (["translate", "{tr}", "   "], "no text to translate"),
    (["translate", "{tr}", "--input", "{tmp}/empty.txt"], "no text to translate: give TEXT, --input FILE"),
    (["translate", "{tr}", "--input", "{tmp}/plots"], "--input file {tmp}/plots does not exist"),
    (["generate", "{lm}", ""], "the prompt is empty"),
    (["generate", "{lm}", "zzzz qqqq"], "every word of the prompt 'zzzz qqqq' is unknown"),
    (["generate", "{lm}", "happy", "--greedy", "--num-samples", "2"], "--greedy gives a single output"),
    (["generate", "{lm}", "happy", "--beam", "2", "--top-p", "0.5"], "--top-p only apply to random sampling; drop --beam"),
    (["generate", "{lm}", "happy", "--seed", "x"], "argument --seed: expected an integer, got 'x'"),
    (["train-translator", "--model", "transformer", "--cell", "gru"], "--cell applies to --model rnn"),
    (["train-translator", "--ff-dim", "512"], "--ff-dim applies to --model transformer"),
    (["train-translator", "--tie-embeddings"], "--tie-embeddings applies to --model transformer"),
    (["train-translator", "--batch-size", "32", "--batch-tokens", "800"],
     "give --batch-size (pairs) or --batch-tokens (tokens), not both"),
    (["train-translator", "--batch-tokens", "40"],
     "batch_tokens must hold the longest pair (max_length + 1 = 51 tokens), got 40"),
    (["train-translator", "--model", "transformer", "--units", "30"], "--units (30) must be a multiple of the 4"),
    (["train-translator", "--model", "transformer", "--embedding-dim", "128"], "--embedding-dim must equal --units"),
    (["train-translator", "--vocab-size", "4"], "--vocab-size must be > 4 (the reserved tokens), got 4"),
    (["train-lm", "--resume", "--overwrite"], "--resume and --overwrite cannot be combined"),
    (["train-lm", "--vocab-size", "3"], "vocab_size must be > 4 (the reserved tokens), got 3"),
    (["train-lm", "--run-dir", "{tmp}/file"], "--run-dir {tmp}/file is a file, not a directory"),
    (["train-lm", "--learning-rate", "nan"], "--learning-rate: expected a finite number, got 'nan'"),
    (["export", "{tr}", "--to", "{tmp}/file"], "--to {tmp}/file is a file, not a directory"),
    (["demo", "--run-dir", "{tmp}/file"], "--run-dir {tmp}/file is a file, not a directory"),
    (["evaluate", "{tr}", "--data", "{tmp}/notab.tsv"], "notab.tsv"),
    (["train-lm", "-q", "--data", "{tmp}/latin1.txt", "--run-dir", "{tmp}/latin"], "latin1.txt is not UTF-8: invalid byte 0xe9"),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(a)[:60] for a, _ in REFUSED])
def test_refused_in_one_line(capsys, paths, argv, message):
    argv = [a.format(**paths) for a in argv]
    status, out, err = _main(capsys, argv)
    assert status == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-seq: error: ")
    assert message.format(**paths) in lines[0], lines[0]
    assert "Traceback" not in err and ".tmp-" not in err


def test_the_table_is_long_and_distinct():
    assert len(REFUSED) >= 40
    assert len({tuple(argv) for argv, _ in REFUSED}) == len(REFUSED)


def test_undecodable_argv_bytes_in_a_real_process(paths):
    """Bytes that are not UTF-8 in argv (a real process decodes them with surrogateescape)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               TF_CPP_MIN_LOG_LEVEL="2")
    argv = [sys.executable.encode(), b"-m", b"keras_seq.cli", b"translate", paths["tr"].encode(),
            b"ok", b"caf\xe9"]
    done = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == b""
    err = done.stderr.decode("utf-8")
    assert err.count("\n") == 1, err
    assert err.startswith("keras-seq: error: TEXT argument 2 is not valid UTF-8 (byte 0xe9 at character 4)")


# ----------------------------------------------------------------------------
# Handled, not refused
# ----------------------------------------------------------------------------


def test_translate_max_length_is_capped_at_the_model_limit(capsys, paths):
    from keras_seq.pipelines.translator import RNN_OUTPUT_FACTOR

    config = json.loads(Path(paths["tr"], "config.json").read_text(encoding="utf-8"))
    limit = RNN_OUTPUT_FACTOR * config["model"]["config"]["max_length"]
    status, out, err = _main(capsys, ["translate", paths["tr"], "I am cold.", "--greedy",
                                      "--max-length", "1000000000"])
    assert status == 0, err
    assert len(out.splitlines()) == 1
    assert (f"max_length 1000000000 is above this model's limit of {limit} output tokens; "
            f"capped at {limit}") in err
    assert len(out.split()) <= limit


def test_non_utf8_stdin_lines_are_translated_around(capsys, paths, monkeypatch):
    data = "I am cold.\n".encode() + b"caf\xe9 \xff\n" + "Where is the cat?\n".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    status, out, err = _main(capsys, ["translate", paths["tr"], "--greedy"])
    lines = out.split("\n")[:-1]
    assert len(lines) == 3 and lines[1] == "" and lines[0] and lines[2]
    assert "line 2: not translated: not valid UTF-8 text" in err
    assert status == 1  # not every line was translated; the others were printed


def test_non_utf8_input_file_lines_are_translated_around(capsys, paths, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(b"\xff\xfe\nI am cold.\n")
    status, out, err = _main(capsys, ["translate", paths["tr"], "--input", str(source), "--greedy"])
    lines = out.split("\n")[:-1]
    assert status == 1 and len(lines) == 2 and lines[0] == "" and lines[1]
    assert "line 1: not translated: not valid UTF-8 text" in err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_run_directory_files_follow_the_umask(tmp_path, umask, mode):
    from keras_seq import runs

    old = os.umask(umask)
    try:
        run = runs.RunDir.create(tmp_path / "run", {"task": "lm"})
        runs.write_json_atomic(run.state_path, {"epoch": 1})
    finally:
        os.umask(old)
    for path in (run.config_path, run.state_path):
        assert path.stat().st_mode & 0o777 == mode, path
