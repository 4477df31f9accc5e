"""keras_seq.export without exporting: export.json's decoding settings (format 2
and the older format 1), the contract check, and the ONNX session helper that
keras_seq.serving shares (importable without TensorFlow)."""

import os
import subprocess
import sys

import pytest

from keras_seq import decoding
from keras_seq import export
from keras_seq.export import writer


@pytest.mark.parametrize(
    "config,strategy,sampler",
    [
        # Format 2: decoding.serialize configs.
        ({"strategy": decoding.serialize(decoding.Greedy()),
          "sampler": decoding.serialize(decoding.RandomSampler(0.5, top_k=3, seed=1))},
         decoding.Greedy(), decoding.RandomSampler(0.5, top_k=3, seed=1)),
        ({"strategy": decoding.serialize(decoding.BeamSearch(4, 0.6)), "sampler": None},
         decoding.BeamSearch(4, 0.6), None),
        # Format 1: "greedy" / {"beam_search": {...}} and a bare sampler config.
        ({"strategy": "greedy",
          "sampler": decoding.RandomSampler(0.5, top_k=3, seed=1).get_config()},
         decoding.Greedy(), decoding.RandomSampler(0.5, top_k=3, seed=1)),
        ({"strategy": {"beam_search": decoding.BeamSearch(4, 0.6).get_config()},
          "sampler": None},
         decoding.BeamSearch(4, 0.6), None),
    ],
)
def test_read_decoding_reads_both_formats(config, strategy, sampler):
    got_strategy, got_sampler = writer.read_decoding(config)
    assert repr(got_strategy) == repr(strategy)
    assert repr(got_sampler) == repr(sampler)


def test_exporters_name_the_contract(tmp_path):
    with pytest.raises(TypeError, match="GenerativeModel with task='translation'"):
        export.export_translator(object(), None, None, tmp_path)
    assert os.listdir(tmp_path) == []


def test_onnx_session_helper_imports_no_tensorflow():
    code = (
        "import sys\n"
        "from keras_seq.export.onnx import make_session, run_session\n"
        "print('tensorflow' in sys.modules)\n"
    )
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, KERAS_SEQ_LAZY_IMPORTS="1", PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_only_ascii_decimal_names_are_versions(tmp_path):
    """Issue 13: a stray `²` (which `str.isdigit()` accepts and `int()` rejects)
    or any other non-version directory is skipped, as the server skips it."""
    for name in ("1", "3", "²", "٣", "v2", "-1", "0012"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version directory")
    assert writer.versions(str(tmp_path)) == [1, 3, 12]
    assert writer.resolve_version(str(tmp_path), None) == 13
