"""Executing a notebook headless the way users do: plain nbclient, a finite timeout per cell.

``nnkit check`` and the test suite both run notebooks through ``execute_notebook``. It is
nbclient at its defaults except for the cell timeout, with nothing patched: a notebook that
stalls here stalls under ``jupyter nbconvert --execute`` and papermill too, and the failure
names the cell, so the cause is fixed in the notebook (lectures/README.md says how).
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import nbclient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

KERNEL_START_ATTEMPTS = 3


class NotebookFailed(Exception):
    """A notebook did not run to the end.

    ``cell`` is the index of the cell at fault (None: before any cell ran); ``error`` is
    nbclient's exception, e.g. a CellExecutionError with the kernel's ``ename`` and ``evalue``.
    """

    def __init__(self, message: str, cell: int | None = None, error: BaseException | None = None):
        super().__init__(message)
        self.cell = cell
        self.error = error


def _describe(nb, index: int | None) -> str:
    if index is None:
        return "before any cell ran"
    first = next((ln for ln in nb.cells[index].source.splitlines() if ln.strip()), "")
    return f"cell {index} ({first.strip()[:70]!r})"


def _run(nb, cwd: Path, timeout: int, startup_timeout: int, quiet: bool) -> None:
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", startup_timeout=startup_timeout,
                                     resources={"metadata": {"path": str(cwd)}})
    current: list[int | None] = [None]
    client.on_cell_start = lambda cell, cell_index, **_: current.__setitem__(0, cell_index)
    try:
        client.execute(**({"stderr": subprocess.DEVNULL} if quiet else {}))  # quiet: no kernel log
    except CellTimeoutError as exc:
        raise NotebookFailed(f"{_describe(nb, current[0])} did not finish within {timeout} s", current[0], exc) from None
    except CellExecutionError as exc:
        raise NotebookFailed(f"{_describe(nb, current[0])} raised an error:\n{exc}", current[0], exc) from None
    except DeadKernelError as exc:
        raise NotebookFailed(f"the kernel died while running {_describe(nb, current[0])}", current[0], exc) from None


def execute_notebook(nb, *, cwd: str | Path, timeout: int = 120, startup_timeout: int = 120,
                     quiet: bool = False) -> float:
    """Execute ``nb`` (a NotebookNode, filled with outputs in place) in ``cwd``; return the seconds taken.

    Raises ``NotebookFailed`` naming the cell that raised, timed out or killed the kernel. A
    kernel that dies while starting, before any cell ran (a busy machine), is started again.
    ``quiet`` sends the kernel's own log (not the notebook's output) to /dev/null.
    """
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        start = time.perf_counter()
        try:
            _run(nb, Path(cwd), timeout, startup_timeout, quiet)
        except RuntimeError as exc:
            if "Kernel died before replying to kernel_info" not in str(exc):
                raise
            if attempt == KERNEL_START_ATTEMPTS:
                raise NotebookFailed(f"the kernel did not start: {exc}", None, exc) from None
            continue  # a kernel died while starting, before any cell ran: start another
        return time.perf_counter() - start
    raise AssertionError("unreachable")

