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


def test_onnx_convert_runs_the_optimizers_in_place_and_falls_back_when_one_raises(
        tmp_path, monkeypatch):
    """tf2onnx's optimizers run without their per-optimizer graph copies; if one
    raises, `convert` converts again in tf2onnx's default mode (which skips the
    failing optimizer) and the graph computes the same."""
    np = pytest.importorskip("numpy")
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from tf2onnx import optimizer as tf2onnx_optimizer

    from keras_seq.export import onnx as export_onnx

    spec = [tf.TensorSpec([None, 3], tf.float32, name="x")]
    fn = tf.function(lambda x: {"y": tf.transpose(tf.transpose(x) * 2.0) + 1.0},
                     input_signature=spec)
    modes = []
    original = tf2onnx_optimizer.optimize_graph

    def failing_first(graph, catch_errors=True, optimizers=None):
        modes.append(catch_errors)
        if not catch_errors:
            raise RuntimeError("an optimizer failed")
        return original(graph, catch_errors, optimizers)

    x = np.arange(6, dtype="float32").reshape(2, 3)
    for name, patch in (("plain", None), ("fallback", failing_first)):
        if patch:
            monkeypatch.setattr(tf2onnx_optimizer, "optimize_graph", patch)
        path = str(tmp_path / f"{name}.onnx")
        export_onnx.convert(fn, spec, path, 17, {"doc": name})
        session = export_onnx.make_session(path, threads=1)
        np.testing.assert_allclose(export_onnx.run_session(session, {"x": x})["y"], x * 2 + 1)
    assert modes == [False, True]  # in place first, then tf2onnx's default mode
    assert "TF2ONNX_CATCH_ERRORS" not in os.environ
