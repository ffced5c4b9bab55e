"""The repository keeps its promises: the README's commands are the ones CI runs, notebooks are clean."""
from __future__ import annotations

import re
import subprocess

import pytest

from nbutils import ROOT, assert_clean


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", quick, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_quick_start_has_set_up_main_job_and_tests():
    commands = _readme_commands()
    assert len(commands) == 3, commands
    assert "setup.sh" in commands[0]
    assert "pytest" in commands[2]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash setup.sh" in ci
    assert _readme_commands()[2] in ci


def test_pyproject_has_no_exact_pins():
    text = (ROOT / "pyproject.toml").read_text()
    assert "==" not in text, "pyproject.toml must use floor-bounded ranges, not exact pins"


@pytest.mark.parametrize(
    "path",
    sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("*/**/*.ipynb") if p.relative_to(ROOT).parts[0] not in (".venv", "build") and ".ipynb_checkpoints" not in p.parts),
)
def test_committed_notebooks_are_clean(path):
    assert_clean(ROOT / path)


def test_library_does_not_import_course_code():
    """nnkit's library modules never import the grading or course tooling (grading imports the library)."""
    offenders = []
    for py in (ROOT / "nnkit").rglob("*.py"):
        rel = py.relative_to(ROOT / "nnkit")
        if rel.parts[0] in ("grading", "course"):
            continue
        if re.search(r"^\s*(from\s+(\.|nnkit\.)(grading|course)|import\s+nnkit\.(grading|course))", py.read_text(), re.M):
            offenders.append(str(rel))
    assert not offenders, f"library modules import course code: {offenders}"


def test_importing_nnkit_does_not_import_torch():
    code = "import sys, nnkit; import nnkit.layers, nnkit.losses; print('torch' in sys.modules)"
    out = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
