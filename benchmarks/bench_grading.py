"""Speed of ``nnkit grade``: seconds per submission and submissions per minute, 1 and 2 jobs.

    python benchmarks/bench_grading.py [--assignment ps1_perceptron] [--students 12] [--jobs 1 2]
                                       [--no-sandbox] [--timeout 60]
                                       [--local-cluster N | --scheduler ADDRESS] [--stock]

Builds a scratch course holding one assignment of this repository, hands in ``--students``
correct submissions (the release with every answer filled in from the solution), and grades
the class once per ``--jobs`` value, each time into a fresh gradebook, through the same code
path as the command line (sandboxed kernels, checks judged in the grader, private gradebooks
merged by the parent); with ``--stock``, also with stock ``nbgrader autograde`` on the same
class. Prints, per run:

* wall time for the class, start-up of the workers included;
* seconds per submission (wall / students) and submissions per minute;
* the median time one worker spent on one notebook (kernel start to gradebook written);
* the speed-up of each run over the first;
* the machine's load average (1 minute) when the run started;
* with ``--stock``, each run's time as a fraction of stock nbgrader's (the goal for
  ``--jobs 1``: at most 0.5×).

``--local-cluster N`` also grades the class once on a Dask cluster started on this machine (a
scheduler and N ``dask worker --nthreads 1`` processes, stopped afterwards); ``--scheduler
ADDRESS`` on an existing one (``nnkit grade --scheduler``; needs the ``cluster`` extra).

Every submission must earn full marks (checked), so the figures are for real grading.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--assignment", default="ps1_perceptron")
    ap.add_argument("--students", type=int, default=12)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-sandbox", action="store_true", help="grade without the kernel sandbox")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per cell")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--local-cluster", type=int, metavar="N",
                       help="also grade on a Dask cluster of N single-threaded workers started here")
    where.add_argument("--scheduler", metavar="ADDRESS", help="also grade on this Dask cluster")
    ap.add_argument("--stock", action="store_true",
                    help="also grade the class with stock `nbgrader autograde` (no sandbox, checks in the kernel)")
    return ap.parse_args()


def stock_nbgrader(root: Path, assignment: str) -> float:
    """Seconds for ``nbgrader autograde ASSIGNMENT`` (nbgrader's own Execute) on the class in ``root``."""
    env = {k: v for k, v in os.environ.items() if k != "NNKIT_GRADEBOOK_URL"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force"], cwd=root,
                          env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"nbgrader autograde failed:\n{proc.stderr[-2000:]}")
    return seconds


@contextlib.contextmanager
def local_cluster(workers: int, folder: Path):
    """``dask scheduler`` and ``workers`` × ``dask worker --nthreads 1`` on 127.0.0.1; yields the
    scheduler file; stops them all."""
    dask = [sys.executable, "-m", "dask"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    scheduler_file = folder / "scheduler.json"
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(scheduler_file)], **quiet)]
    try:
        while not scheduler_file.exists():
            time.sleep(0.2)
        procs += [subprocess.Popen([*dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                                    "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard"], **quiet)
                  for _ in range(workers)]
        from dask.distributed import Client

        with Client(scheduler_file=str(scheduler_file), set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
        yield str(scheduler_file)
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()


def main() -> int:
    args = _parse()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    from nnkit.course import fixtures as F
    from nnkit.course import gradebook as GB
    from nnkit.course.grade import GradeOptions, grade_assignment

    print(f"grading {args.students} correct submissions of {args.assignment} "
          f"({'no sandbox' if args.no_sandbox else 'sandboxed kernels'}, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f} at the start)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nnkit-bench-grading-") as tmp, contextlib.ExitStack() as stack:
        runs = [(str(jobs), {"jobs": jobs}) for jobs in args.jobs]
        if args.local_cluster:
            address = stack.enter_context(local_cluster(args.local_cluster, Path(tmp)))
            runs.append((f"dask {args.local_cluster}", {"scheduler": address}))
        elif args.scheduler:
            runs.append(("dask", {"scheduler": args.scheduler}))
        for label, where in runs:
            root = F.copy_course(Path(tmp) / f"run{len(rows)}", REPO, args.assignment)
            good = F.answered(root, args.assignment)
            for i in range(args.students):
                F.submit(root, f"student{i:03d}", args.assignment, good)
            opts = GradeOptions(assignment=args.assignment, cell_timeout=args.timeout,
                                sandbox=not args.no_sandbox, progress=False, **where)
            load = os.getloadavg()[0]
            started = time.perf_counter()
            run = grade_assignment(root, opts, log=lambda *a: None)
            wall = time.perf_counter() - started
            scores = GB.scores(f"sqlite:///{root / 'gradebook.db'}", "nnkit", args.assignment)
            short = [s for s, v in scores.items() if v["code_score"] < v["max_code_score"]]
            if run.failed or short or len(scores) != args.students:
                print(f"  {label}: grading went wrong ({run.message or short}); figures not valid")
                return 1
            per_nb = statistics.median(r["seconds"] for r in run.records.values())
            rows.append((label, wall, wall / args.students, 60 * args.students / wall, per_nb, load))
        stock = None
        if args.stock:
            root = F.copy_course(Path(tmp) / "stock", REPO, args.assignment)
            good = F.answered(root, args.assignment)
            for i in range(args.students):
                F.submit(root, f"student{i:03d}", args.assignment, good)
            stock_load = os.getloadavg()[0]
            stock = stock_nbgrader(root, args.assignment)
            scores = GB.scores(f"sqlite:///{root / 'gradebook.db'}", "nnkit", args.assignment)
            if len(scores) != args.students or any(v["code_score"] < v["max_code_score"] for v in scores.values()):
                print("  stock nbgrader: grading went wrong; figures not valid")
                return 1
    base = rows[0][1]
    print(f"{'jobs':>8}  {'wall s':>7}  {'s/submission':>12}  {'submissions/min':>15}  "
          f"{'median s/notebook (one worker)':>30}  {'speed-up':>8}  {'load':>5}"
          + (f"  {'× stock':>7}" if stock is not None else ""))
    for label, wall, per, rate, per_nb, load in rows:
        print(f"{label:>8}  {wall:>7.1f}  {per:>12.2f}  {rate:>15.1f}  {per_nb:>30.2f}  {base / wall:>8.2f}  "
              f"{load:>5.1f}" + (f"  {wall / stock:>7.2f}" if stock is not None else ""))
    if stock is not None:
        print(f"stock nbgrader autograde (load {stock_load:.1f}): {stock:.1f} s, {stock / args.students:.2f} "
              f"s/submission; nnkit grade --jobs {args.jobs[0]} takes {base / stock:.2f}× its time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
