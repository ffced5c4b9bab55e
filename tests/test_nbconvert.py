"""Every lecture and solution notebook runs with ``jupyter nbconvert --execute`` at its default settings.

That is how instructors build pages and check forks in CI, and nbconvert's default has no cell
timeout: a notebook that stalls (lectures/README.md, "writing a widget cell") would hang for
good. Each run here is the plain command in a fresh process, under a wall-clock limit far above
a normal run; a run that reaches it is stopped and reported as a stall. The cell at fault is
named by the lecture tests, which execute the same notebooks with a cell timeout.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "lectures").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*/*.ipynb"))
WALL_LIMIT = 600  # seconds for a whole notebook; the slowest takes about a minute on a busy machine
JUPYTER = Path(sys.executable).parent / "jupyter"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nbconvert_executes_at_default_settings(path, tmp_path):
    cmd = [str(JUPYTER), "nbconvert", "--to", "notebook", "--execute", str(path), "--output-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=WALL_LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # nbconvert and the kernel it started
        proc.communicate()
        pytest.fail(f"{path.relative_to(ROOT)}: `jupyter nbconvert --execute` did not finish within {WALL_LIMIT} s "
                    "(a stall; the lecture tests name the cell)", pytrace=False)
    assert proc.returncode == 0, f"{path.relative_to(ROOT)}: nbconvert failed:\n{err[-3000:]}"
    executed = nbformat.read(tmp_path / path.name, 4)
    unrun = [i for i, c in enumerate(executed.cells) if c.cell_type == "code" and c.source.strip()
             and c.get("execution_count") is None]
    assert not unrun, f"{path.relative_to(ROOT)}: cells {unrun} were not executed"
