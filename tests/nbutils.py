"""Running notebooks headless in a real kernel, for lecture and assignment tests.

Notebooks run through ``nnkit.course.execute``, the runner ``nnkit check`` uses: plain
nbclient with a finite cell timeout and nothing patched, so a notebook that would stall under
``jupyter nbconvert --execute`` fails here too, with the cell named.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from nnkit.course.execute import execute_notebook as _execute

ROOT = Path(__file__).resolve().parents[1]
_MARK = "__NNKIT_VALUES__"


def execute_notebook(path: str | Path, *, timeout: int = 60, extra_cells: tuple[str, ...] = (),
                     cwd: str | Path | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Execute a notebook top to bottom with a finite per-cell timeout; return it and the seconds taken.

    Raises ``NotebookFailed`` (naming the cell that raised or timed out, with the traceback) on
    the first error. ``extra_cells`` are appended before execution (to read values out).
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    for source in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    seconds = _execute(nb, cwd=cwd or path.parent, timeout=timeout)
    return nb, seconds


def notebook_values(path: str | Path, names: list[str], **kwargs) -> tuple[dict, float]:
    """Execute a notebook, then read the named global variables out of its kernel as JSON.

    Values must be numbers, lists or numpy arrays/scalars (converted with ``.tolist()``).
    """
    reader = (
        "import json as _json\n"
        "def _plain(v):\n"
        "    return v.tolist() if hasattr(v, 'tolist') else v\n"
        f"print({_MARK!r} + _json.dumps({{k: _plain(globals()[k]) for k in {names!r}}}))\n"
    )
    nb, seconds = execute_notebook(path, extra_cells=(reader,), **kwargs)
    for output in nb.cells[-1].get("outputs", []):
        text = output.get("text", "")
        if _MARK in text:
            return json.loads(text.split(_MARK, 1)[1]), seconds
    raise AssertionError(f"{Path(path).name}: could not read {names} from the kernel")


def assert_clean(path: str | Path) -> None:
    """Committed notebooks carry no outputs and no execution counts."""
    nb = nbformat.read(Path(path), as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not dirty, f"{Path(path).name}: cells {dirty} carry outputs or execution counts; store the notebook clean"
