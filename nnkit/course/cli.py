"""The course command, ``nnkit``: nbgrader's workflow for this course, in one place.

Run it from the course folder (the one with ``nbgrader_config.py``) or pass ``--course DIR``::

    nnkit release [ASSIGNMENT ...]            regenerate assignments/ from solutions/
    nnkit collect ASSIGNMENT FILE.zip         an LMS download -> submitted/<student>/ASSIGNMENT/
    nnkit grade ASSIGNMENT [--jobs N]         autograde every submission, sandboxed, in parallel
    nnkit grade ASSIGNMENT --scheduler ADDR   the same on a Dask cluster
    nnkit grade ASSIGNMENT --zip FILE.zip     collect, then grade
    nnkit feedback ASSIGNMENT                 HTML feedback per student (no hidden tests shown)
    nnkit export [--to grades.csv]            one row per student and assignment
    nnkit check [ASSIGNMENT ...]              releases in sync, solutions earn full marks, lectures run
    nnkit lab                                 open lectures/ in JupyterLab
    nnkit site [--out DIR]                    the lectures as a static website, built offline

Every command is an nbgrader command underneath (``generate_assignment``, ``zip_collect``,
``autograde``, ``generate_feedback``, ``export``), run with the course's own configuration;
``--db URL`` points all of them at another gradebook (e.g. a shared PostgreSQL database).
Exit codes: 0 when the command did its job (students' notebooks may still fail: that is a
grade, not an error), 1 when it could not, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from . import config as C

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(text: str) -> int:
    """'4G', '512M', '64MiB', '1000000' -> bytes."""
    m = _SIZE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M)")
    return int(float(m.group(1)) * 1024 ** "bkmgt".index((m.group(2) or "b").lower()))


class _Retired(argparse.Action):
    """An option that no longer exists (hidden from --help): a usage error naming what replaced it."""

    def __init__(self, option_strings, dest, replacement: str = "", **kwargs):
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was retired: {self.replacement}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnkit", description="The nnkit course: release, grade, give feedback.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See docs/grading.md for the grading guide.")
    p.add_argument("--course", metavar="DIR", help="the course folder (default: the current one or a parent)")
    p.add_argument("--db", metavar="URL", help="gradebook URL (default: the course's, e.g. sqlite:///gradebook.db; "
                   "also NNKIT_GRADEBOOK_URL)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("release", help="regenerate assignments/ from solutions/ (nbgrader generate_assignment --force)")
    r.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: every assignment in solutions/")

    c = sub.add_parser("collect", help="collect submissions from an LMS zip (nbgrader zip_collect)")
    c.add_argument("assignment", metavar="ASSIGNMENT")
    c.add_argument("zip", metavar="FILE", type=Path)
    _collect_options(c)

    g = sub.add_parser("grade", help="autograde every submission of an assignment",
                       description="Autograde every submitted notebook of ASSIGNMENT, each in a sandboxed "
                                   "kernel, N at a time; print a summary. Exit code 0 unless the grader failed.")
    g.add_argument("assignment", metavar="ASSIGNMENT")
    g.add_argument("--jobs", "-j", type=int, default=0, metavar="N", help="worker processes (default: CPU cores)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on the Dask cluster of this scheduler (tcp://host:8786, or the file written by "
                        "`dask scheduler --scheduler-file`); needs the `cluster` extra")
    g.add_argument("--zip", type=Path, metavar="FILE", help="collect this LMS zip first (see `collect`)")
    _collect_options(g)
    g.add_argument("--student", action="append", metavar="ID", help="grade only this student (repeatable)")
    g.add_argument("--shard", action=_Retired, replacement="grade on several machines with --scheduler ADDRESS "
                   "(a Dask cluster; see docs/grading.md), or split the class by hand with --student")
    g.add_argument("--timeout", type=int, metavar="S", help="seconds per cell (default: the course's Execute.timeout)")
    g.add_argument("--notebook-timeout", type=int, default=1800, metavar="S",
                   help="seconds for a whole notebook; later cells are not run (default 1800)")
    g.add_argument("--memory", type=parse_size, default=parse_size("4G"), metavar="SIZE",
                   help="memory per kernel: its whole process tree where control groups allow, "
                        "and each process's address space (default 4G)")
    g.add_argument("--worker-memory", type=parse_size, default=parse_size("2G"), metavar="SIZE",
                   help="memory of each grading worker itself (default 2G)")
    g.add_argument("--cpu", type=int, default=900, metavar="S", help="CPU seconds per kernel (default 900)")
    g.add_argument("--processes", type=int, default=256, metavar="N",
                   help="processes and threads per kernel user (default 256)")
    g.add_argument("--file-size", type=parse_size, default=parse_size("64M"), metavar="SIZE",
                   help="largest file a kernel may write (default 64M)")
    g.add_argument("--max-output", type=int, default=200_000, metavar="CHARS",
                   help="output characters kept per cell (default 200000)")
    g.add_argument("--no-sandbox", action="store_true", help="run kernels as the grader, without limits")
    g.add_argument("--allow-network", action="store_true", help="let kernels use the network")
    g.add_argument("--uid-base", type=int, default=64000, metavar="UID",
                   help="as root, kernels run as unused uids from here (default 64000)")
    g.add_argument("--report", metavar="FILE", help="also write the results as JSON")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    f = sub.add_parser("feedback", help="generate HTML feedback (nbgrader generate_feedback --force)")
    f.add_argument("assignment", metavar="ASSIGNMENT")
    f.add_argument("--student", metavar="ID", help="only this student")

    e = sub.add_parser("export", help="export grades (nbgrader export)")
    e.add_argument("--to", default="grades.csv", metavar="FILE", help="default grades.csv")
    e.add_argument("--assignment", action="append", metavar="A", help="only this assignment (repeatable)")

    k = sub.add_parser("check", help="self-check: releases in sync, solutions earn full marks, lectures run")
    k.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: all")
    k.add_argument("--no-lectures", action="store_true", help="skip executing the lectures")
    k.add_argument("--timeout", type=int, default=120, metavar="S", help="seconds per lecture cell (default 120)")
    k.add_argument("--jobs", "-j", type=int, default=0, metavar="N")
    k.add_argument("--no-sandbox", action="store_true")

    sub.add_parser("lab", help="open lectures/ in JupyterLab")
    w = sub.add_parser("site", help="build the course website (executed lectures, problem sets), offline")
    w.add_argument("--out", type=Path, metavar="DIR", help="default: build/site")
    w.add_argument("--timeout", type=int, default=300, metavar="S", help="seconds per lecture cell (default 300)")
    w.add_argument("--jobs", "-j", type=int, default=2, metavar="N", help="lectures executed at a time (default 2)")
    return p


def _collect_options(p) -> None:
    p.add_argument("--lms", default="canvas", choices=["canvas", "moodle", "folders", "flat"],
                   help="file naming of the LMS download (default canvas)")
    p.add_argument("--regexp", metavar="RE", help="nbgrader FileNameCollectorPlugin.named_regexp (overrides --lms)")


def _assignments_in(root: Path, cfg) -> list[str]:
    src = root / C.directory(cfg, "source_directory", "source")
    return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) if src.is_dir() else []


def cmd_release(root: Path, args) -> int:
    cfg = C.load_config(root, db_url=args.db)
    names = args.assignments or _assignments_in(root, cfg)
    if not names:
        print("nothing to release: no assignments in", C.directory(cfg, "source_directory", "source"))
        return 1
    for name in names:
        print(f"releasing {name}")
        C.run_nbgrader(root, "generate_assignment", name, "--force", db=args.db)
    return 0


def cmd_collect(root: Path, args) -> int:
    from .collect import collect_zip

    collect_zip(root, args.assignment, args.zip, lms=args.lms, regexp=args.regexp, db=args.db)
    return 0


def cmd_grade(root: Path, args) -> int:
    from .grade import GradeOptions, grade_assignment
    from .summary import summary

    if args.zip:
        from .collect import collect_zip

        collect_zip(root, args.assignment, args.zip, lms=args.lms, regexp=args.regexp, db=args.db)
    opts = GradeOptions(
        assignment=args.assignment, jobs=args.jobs, students=args.student, scheduler=args.scheduler,
        cell_timeout=args.timeout, notebook_timeout=args.notebook_timeout, memory=args.memory,
        worker_memory=args.worker_memory,
        cpu=args.cpu, nproc=args.processes, fsize=args.file_size, max_output_chars=args.max_output,
        sandbox=not args.no_sandbox, network=args.allow_network,
        uid_base=args.uid_base, db_url=args.db, report=args.report, progress=not args.no_progress)
    run = grade_assignment(root, opts)
    print(summary(run))
    return 1 if run.failed else 0


def cmd_feedback(root: Path, args) -> int:
    extra = ["--student", args.student] if args.student else []
    C.run_nbgrader(root, "generate_feedback", args.assignment, "--force", *extra, db=args.db)
    print(f"feedback written to {root / 'feedback'}/<student>/{args.assignment}/")
    return 0


def cmd_export(root: Path, args) -> int:
    extra = []
    if args.assignment:
        extra.append("--assignment=" + ",".join(args.assignment))
    to = str(Path(args.to).resolve())
    C.run_nbgrader(root, "export", f"--to={to}", *extra, db=args.db)
    print(f"grades written to {to}")
    return 0


def cmd_check(root: Path, args) -> int:
    from .check import check_course

    problems = check_course(root, args.assignments, lectures=not args.no_lectures, timeout=args.timeout,
                            jobs=args.jobs, sandbox=not args.no_sandbox)
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


def cmd_lab(root: Path, args) -> int:
    lectures = root / "lectures"
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={lectures if lectures.is_dir() else root}"]
    if os.geteuid() == 0:
        cmd.append("--ServerApp.allow_root=True")
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def cmd_site(root: Path, args) -> int:
    from .execute import NotebookFailed
    from .site import build_site

    try:
        build_site(root, args.out, timeout=args.timeout, jobs=args.jobs)
    except NotebookFailed as e:
        print(f"nnkit site: a lecture did not run: {e}", file=sys.stderr)
        return 1
    return 0


COMMANDS = {"release": cmd_release, "collect": cmd_collect, "grade": cmd_grade, "feedback": cmd_feedback,
            "export": cmd_export, "check": cmd_check, "lab": cmd_lab, "site": cmd_site}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "grade" and args.scheduler and args.jobs:
        parser.error("--jobs and --scheduler exclude each other: on a cluster the Dask workers "
                     "(dask worker --nworkers N) set how many submissions are graded at a time")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        root = C.find_course_root(args.course)
        if args.db:
            args.db = C.normalize_db_url(args.db)
            os.environ["NNKIT_GRADEBOOK_URL"] = args.db
        return COMMANDS[args.command](root, args)
    except C.CourseError as e:
        print(f"nnkit {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"nnkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
