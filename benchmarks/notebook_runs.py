"""Execute notebooks again and again with the standard Jupyter tools at their default settings.

Each run is a fresh process, exactly as a user types it:

- ``nbconvert``: ``jupyter nbconvert --to notebook --execute NB --output-dir TMP``
- ``papermill``: ``papermill NB TMP/out.ipynb --cwd NB's folder``
- ``nbclient``: ``nbclient.NotebookClient(nb, resources=<NB's folder>).execute()``

None of them has a cell timeout by default, so a run that hangs would hang for good: a run
still going after ``--stall-after`` seconds is stopped and counted as a stall. The script
prints every run's time, then per notebook and tool: runs, stalls, errors, median and maximum
seconds. Run it from the repository root with the course's environment, e.g.

    .venv/bin/python benchmarks/notebook_runs.py --runs 20 lectures/02_gradient_descent.ipynb
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
NBCLIENT_SNIPPET = (
    "import sys, nbformat, nbclient\n"
    "nb = nbformat.read(sys.argv[1], 4)\n"
    "nbclient.NotebookClient(nb, resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
)


def command(tool: str, notebook: Path, scratch: Path) -> list[str]:
    """The command line a user would type for ``tool`` (tool defaults, no timeout)."""
    if tool == "nbconvert":
        return [str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", str(notebook),
                "--output-dir", str(scratch)]
    if tool == "papermill":
        return [str(BIN / "papermill"), str(notebook), str(scratch / "out.ipynb"), "--cwd", str(notebook.parent)]
    if tool == "nbclient":
        return [sys.executable, "-c", NBCLIENT_SNIPPET, str(notebook), str(notebook.parent)]
    raise ValueError(f"unknown tool {tool!r}")


def run_once(tool: str, notebook: Path, stall_after: float) -> tuple[str, float]:
    """('ok' | 'stall' | 'error', seconds) for one execution in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="nnkit-runs-") as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen(command(tool, notebook, Path(tmp)), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(timeout=stall_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the tool and the kernel it started
            proc.wait()
            return "stall", time.perf_counter() - start
        return ("ok" if rc == 0 else "error"), time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--tools", default="nbconvert,papermill,nbclient")
    parser.add_argument("--stall-after", type=float, default=120.0, help="seconds (default 120)")
    args = parser.parse_args(argv)
    summary = []
    for notebook in args.notebooks:
        for tool in args.tools.split(","):
            results = []
            for i in range(args.runs):
                outcome, seconds = run_once(tool, notebook.resolve(), args.stall_after)
                results.append((outcome, seconds))
                print(f"{notebook.name} {tool} run {i + 1}: {outcome} {seconds:.1f} s", flush=True)
            times = [s for o, s in results if o == "ok"] or [float("nan")]
            summary.append((notebook.name, tool, len(results), sum(o == "stall" for o, _ in results),
                            sum(o == "error" for o, _ in results), statistics.median(times), max(times)))
    print(f"\n{'notebook':45} {'tool':10} runs stalls errors median_s max_s")
    for name, tool, runs, stalls, errors, median, longest in summary:
        print(f"{name:45} {tool:10} {runs:4} {stalls:6} {errors:6} {median:8.1f} {longest:5.1f}")
    return int(any(row[3] or row[4] for row in summary))


if __name__ == "__main__":
    sys.exit(main())
