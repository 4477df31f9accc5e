"""The distribution's metadata: pyproject.toml, the setup.py shim, the sdist, README links."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import keras_seq

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_setup_py_is_a_shim():
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [(c.func.id, c.args, c.keywords) for c in calls] == [("setup", [], [])]


def test_one_version_source():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "keras_seq.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", keras_seq.__version__)


def test_import_keras_seq_is_light():
    code = "import sys, keras_seq; print(keras_seq.__version__, 'tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout.split()
    assert out == [keras_seq.__version__, "False"]


def test_license():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_sdist_manifest_holds_tests_apps_and_data():
    manifest = (REPO / "MANIFEST.in").read_text(encoding="utf-8").split()
    for entry in ("LICENSE", "README.md", "tests", "apps", "keras_seq/datasets"):
        assert entry in manifest, entry


def test_readme_links_work_on_an_index_page():
    """The long description shows on package indexes: no relative links or images."""
    assert PYPROJECT["project"]["readme"] == "README.md"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)", readme) + re.findall(r'src="([^"]+)"', readme)
    relative = [t for t in targets if not re.match(r"(https?:|mailto:|#)", t)]
    assert relative == []
