"""The notebook runner of the tests and ``nnkit check``: a cell that fails or does not finish is named."""
from __future__ import annotations

import pytest
from nbformat import v4

from nnkit.course.execute import NotebookFailed, execute_notebook

pytestmark = pytest.mark.notebooks


def _notebook(*sources: str):
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [v4.new_markdown_cell("# A notebook")] + [v4.new_code_cell(s) for s in sources]
    return nb


def test_a_cell_that_does_not_finish_is_named(tmp_path):
    nb = _notebook("x = 1", "import time\ntime.sleep(120)", "y = 2")
    with pytest.raises(NotebookFailed) as info:
        execute_notebook(nb, cwd=tmp_path, timeout=3, quiet=True)
    assert info.value.cell == 2
    assert str(info.value).startswith("cell 2 ('import time') did not finish within 3 s")


def test_a_cell_that_raises_is_named_with_the_error(tmp_path):
    nb = _notebook("x = 1", "raise ValueError('broken on purpose')")
    with pytest.raises(NotebookFailed) as info:
        execute_notebook(nb, cwd=tmp_path, timeout=60, quiet=True)
    assert info.value.cell == 2 and info.value.error.ename == "ValueError"
    assert "cell 2 (\"raise ValueError('broken on purpose')\") raised an error" in str(info.value)
    assert "broken on purpose" in str(info.value)


def test_a_notebook_that_runs_is_filled_with_its_outputs(tmp_path):
    nb = _notebook("print(6 * 7)")
    assert execute_notebook(nb, cwd=tmp_path, timeout=60, quiet=True) > 0
    assert nb.cells[1].outputs[0]["text"] == "42\n"
