"""A missing optional extra is one line with the install command (keras_seq.extras)."""

import argparse
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from keras_seq import cli, errors, extras, plotting

REPO = Path(__file__).resolve().parents[1]


def _block(monkeypatch, *modules):
    """Makes `import module` fail as if it were not installed."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in modules):
            monkeypatch.delitem(sys.modules, name)
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)


def test_require_returns_the_module():
    assert extras.require("json", "plot", "anything") is sys.modules["json"]


def test_require_names_the_extra_in_one_line(monkeypatch):
    _block(monkeypatch, "matplotlib")
    with pytest.raises(errors.MissingExtraError) as info:
        extras.require("matplotlib.figure", "plot", "attention plotting")
    assert str(info.value) == 'attention plotting needs matplotlib: pip install "keras-seq[plot]"'
    assert isinstance(info.value, errors.KerasSeqError) and isinstance(info.value, ImportError)


def test_require_lets_a_broken_installation_through(monkeypatch, tmp_path):
    # The package is there but one of its own dependencies is not: not a missing extra.
    (tmp_path / "fake_extra_pkg").mkdir()
    (tmp_path / "fake_extra_pkg" / "__init__.py").write_text("import fake_extra_pkg_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        extras.require("fake_extra_pkg", "plot", "x")
    assert not isinstance(info.value, errors.MissingExtraError)
    assert info.value.name == "fake_extra_pkg_dependency"


def test_missing_message_without_importing(monkeypatch):
    _block(monkeypatch, "onnxruntime")
    assert extras.missing_message("onnx", "ONNX export") == (
        'ONNX export needs onnxruntime: pip install "keras-seq[onnx]"'
    )
    monkeypatch.setattr(extras, "EXTRAS", dict(extras.EXTRAS, plot=("json",)))
    assert extras.missing_message("plot", "plots") is None


def test_check_raises_before_importing(monkeypatch):
    _block(monkeypatch, "uvicorn")
    with pytest.raises(errors.MissingExtraError) as info:
        extras.check("serve", "`keras-seq serve`")
    assert str(info.value) == '`keras-seq serve` needs uvicorn: pip install "keras-seq[serve]"'
    monkeypatch.setattr(extras, "EXTRAS", dict(extras.EXTRAS, serve=("json",)))
    extras.check("serve", "`keras-seq serve`")


def test_hint_maps_a_module_to_its_extra():
    error = ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")
    assert extras.hint(error) == 'this command needs uvicorn: pip install "keras-seq[serve]"'
    error = ModuleNotFoundError("No module named 'onnxruntime.capi'", name="onnxruntime.capi")
    assert extras.hint(error, "serving ONNX") == (
        'serving ONNX needs onnxruntime: pip install "keras-seq[onnx]"'
    )
    assert extras.hint(ModuleNotFoundError("x", name="tensorflow")) is None
    assert extras.hint(ValueError("uvicorn")) is None


def test_plot_attention_without_matplotlib(monkeypatch, tmp_path):
    _block(monkeypatch, "matplotlib")
    with pytest.raises(errors.MissingExtraError, match=r'^attention plotting needs matplotlib: '
                                                         r'pip install "keras-seq\[plot\]"$'):
        plotting.plot_attention(np.eye(2), ["a", "b"], ["x", "y"], tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


def test_the_command_prints_one_line_and_exits_2(monkeypatch, capsys, tmp_path):
    """`keras-seq translate --plot` without matplotlib: checked before translating."""
    from keras_seq import runs

    run = runs.RunDir.create(tmp_path / "run", {"task": "translator", "model": {},
                                                "tokenizer": {}, "training": {}})
    run.best_weights.write_bytes(b"weights")
    run.last_weights.write_bytes(b"weights")

    def translate(args):  # the job, without a model to load: never reached
        print("je suis froid")
        plotting.plot_attention(np.eye(2), ["a", "b"], ["x", "y"], args.plot)

    monkeypatch.setattr(cli, "_import_tensorflow_quietly", lambda: None)
    monkeypatch.setattr(cli, "_call_task", lambda module, function, args: translate(args))
    _block(monkeypatch, "matplotlib")
    status = cli.main(["translate", str(run.path), "I am cold.", "--plot",
                       str(tmp_path / "a.png")])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""  # nothing translated
    assert captured.err == 'keras-seq: error: --plot needs matplotlib: pip install "keras-seq[plot]"\n'
    # The library's plotting step says the same in its own words.
    with pytest.raises(errors.MissingExtraError, match="^attention plotting needs matplotlib"):
        translate(argparse.Namespace(plot=str(tmp_path / "a.png")))


def test_the_command_names_the_extra_of_an_unguarded_import(monkeypatch, capsys, tmp_path):
    """An import of an extra's module that does not go through `require`."""
    from keras_seq import runs

    run = runs.RunDir.create(tmp_path / "run", {"task": "translator", "model": {},
                                                "tokenizer": {}, "training": {}})
    run.best_weights.write_bytes(b"weights")

    def job(args):
        import uvicorn  # noqa: F401

    monkeypatch.setattr(cli, "_call_task", lambda module, function, args: job(args))
    _block(monkeypatch, "uvicorn")
    status = cli.main(["evaluate", str(run.path)])
    assert status == 2
    assert capsys.readouterr().err == (
        'keras-seq: error: this command needs uvicorn: pip install "keras-seq[serve]"\n'
    )


def test_serve_and_export_check_their_extras_before_loading(monkeypatch, capsys, tmp_path):
    def job(args):
        raise AssertionError("the job must not start")

    monkeypatch.setattr(cli, "_call_task", lambda module, function, args: job(args))
    _block(monkeypatch, "uvicorn")
    assert cli.main(["serve", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        'keras-seq: error: `keras-seq serve` needs uvicorn: pip install "keras-seq[serve]"\n'
    )
    monkeypatch.undo()
    monkeypatch.setattr(cli, "_call_task", lambda module, function, args: job(args))
    _block(monkeypatch, "onnxruntime")
    assert cli.main(["serve", str(tmp_path), "--onnx"]) == 2
    assert "`keras-seq serve --onnx` needs onnxruntime" in capsys.readouterr().err
    from keras_seq import runs

    run = runs.RunDir.create(tmp_path / "run", {"task": "translator", "model": {},
                                                "tokenizer": {}, "training": {}})
    run.best_weights.write_bytes(b"weights")
    assert cli.main(["export", str(run.path), "--to", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        'keras-seq: error: ONNX export needs onnxruntime: pip install "keras-seq[onnx]"\n'
    )


def test_extras_match_pyproject():
    """extras.EXTRAS, pyproject's extras and the `all`/`test` extras agree."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project["optional-dependencies"]
    distributions = {"tf2onnx": "tf2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime",
                     "onnxruntime_extensions": "onnxruntime-extensions",
                     "starlette": "starlette", "uvicorn": "uvicorn", "matplotlib": "matplotlib",
                     "tensorboard": "tensorboard", "grpc": "grpcio",
                     "tensorflow_serving": "tensorflow-serving-api"}
    for extra, modules in extras.EXTRAS.items():
        names = sorted(_name(r) for r in optional[extra])
        assert names == sorted(distributions[m] for m in modules), extra
    assert optional["all"] == [f"keras-seq[{','.join(extras.EXTRAS)}]"]
    assert "keras-seq[all]" in optional["test"]
    core = {_name(r) for r in project["dependencies"]}
    assert core.isdisjoint(distributions.values())


def _name(requirement):
    for stop in "<>=!;[ ":
        requirement = requirement.split(stop)[0]
    return requirement.strip()
