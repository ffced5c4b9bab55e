"""Running notebooks headless in a real kernel (nbclient), for lecture and assignment tests."""
from __future__ import annotations

import json
import queue
import time
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parents[1]
_MARK = "__NNKIT_VALUES__"


def _poll_in_short_steps(client: nbclient.NotebookClient, interval: float = 0.5) -> None:
    """Make the kernel client wait for messages in steps of ``interval`` seconds.

    With ipywidgets, a message that has already arrived sometimes wakes no one (the zmq.asyncio
    poll misses it; jupyter/nbclient#312), and a cell then waits its whole timeout before it is
    seen. Short polls keep the deadline but notice such a message within ``interval``.
    """
    for channel in (client.kc.shell_channel, client.kc.iopub_channel):
        original = channel.get_msg

        async def get_msg(timeout=None, _original=original):
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                step = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
                try:
                    return await _original(timeout=step)
                except queue.Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

        channel.get_msg = get_msg


def execute_notebook(path: str | Path, *, timeout: int = 60, extra_cells: tuple[str, ...] = (),
                     cwd: str | Path | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Execute a notebook top to bottom with a finite per-cell timeout; return it and the seconds taken.

    Raises nbclient's CellExecutionError (which names the failing cell and shows its traceback)
    on the first error. ``extra_cells`` are appended before execution (to read values out).
    """
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    for source in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(source))
    for attempt in range(3):
        client = nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", iopub_timeout=10,
            resources={"metadata": {"path": str(cwd or path.parent)}},
        )
        client.on_notebook_start = lambda client=client, **_: _poll_in_short_steps(client)
        start = time.perf_counter()
        try:
            client.execute()
        except RuntimeError as exc:
            # a kernel that died while starting, before any cell ran (a busy machine): start another
            if "Kernel died before replying to kernel_info" not in str(exc) or attempt == 2:
                raise
            continue
        return nb, time.perf_counter() - start


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
