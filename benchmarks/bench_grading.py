"""Speed of ``nnkit grade``: seconds per submission and submissions per minute, 1 and 2 jobs.

    python benchmarks/bench_grading.py [--assignment ps1_perceptron] [--students 12] [--jobs 1 2]
                                       [--no-sandbox] [--timeout 60]

Builds a scratch course holding one assignment of this repository, hands in ``--students``
correct submissions (the release with every answer filled in from the solution), and grades
the class once per ``--jobs`` value, each time into a fresh gradebook, through the same code
path as the command line (sandboxed kernels, integrity guard, private gradebooks merged by the
parent). Prints, per run:

* wall time for the class, start-up of the workers included;
* seconds per submission (wall / students) and submissions per minute;
* the median time one worker spent on one notebook (kernel start to gradebook written);
* the speed-up of each run over the first.

Every submission must earn full marks (checked), so the figures are for real grading.
"""
from __future__ import annotations

import argparse
import os
import statistics
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
    return ap.parse_args()


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
    with tempfile.TemporaryDirectory(prefix="nnkit-bench-grading-") as tmp:
        for jobs in args.jobs:
            root = F.copy_course(Path(tmp) / f"jobs{jobs}", REPO, args.assignment)
            good = F.answered(root, args.assignment)
            for i in range(args.students):
                F.submit(root, f"student{i:03d}", args.assignment, good)
            opts = GradeOptions(assignment=args.assignment, jobs=jobs, cell_timeout=args.timeout,
                                sandbox=not args.no_sandbox, progress=False)
            started = time.perf_counter()
            run = grade_assignment(root, opts, log=lambda *a: None)
            wall = time.perf_counter() - started
            scores = GB.scores(f"sqlite:///{root / 'gradebook.db'}", "nnkit", args.assignment)
            short = [s for s, v in scores.items() if v["code_score"] < v["max_code_score"]]
            if run.failed or short or len(scores) != args.students:
                print(f"  jobs={jobs}: grading went wrong ({run.message or short}); figures not valid")
                return 1
            per_nb = statistics.median(r["seconds"] for r in run.records.values())
            rows.append((jobs, wall, wall / args.students, 60 * args.students / wall, per_nb))
    base = rows[0][1]
    print(f"{'jobs':>4}  {'wall s':>7}  {'s/submission':>12}  {'submissions/min':>15}  "
          f"{'median s/notebook (one worker)':>30}  {'speed-up':>8}")
    for jobs, wall, per, rate, per_nb in rows:
        print(f"{jobs:>4}  {wall:>7.1f}  {per:>12.2f}  {rate:>15.1f}  {per_nb:>30.2f}  {base / wall:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
