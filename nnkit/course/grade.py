"""``nnkit grade``: autograde a class in parallel, each notebook in a sandboxed kernel.

The work is nbgrader's (``NbGraderAPI.autograde``: restore the read-only and test cells from
the gradebook, execute, score, late penalties). This module is the parent process: it finds
the submissions, starts N workers, hands each one submission at a time, watches them (a
worker stuck past its time is killed and its student recorded), and merges every private
gradebook into the course gradebook, alone, one transaction per student. The rest lives in
one module per job:

* ``containment`` — what this machine allows and the sandbox spec of each worker (uids, the
  allow-list, control groups);
* ``worker`` — a worker process: vet the submission, run nbgrader, report;
* ``submission`` — reading a submission safely and putting the course's cells back in place;
* ``sandbox`` — the kernel launcher that confines the kernel before any student code runs;
* ``grading_execute`` — ``GradingExecute``, nbgrader's Execute hardened for untrusted notebooks;
* ``judge`` — the test cells' checks, run in the worker: the kernel only runs the answers;
* ``gradebook`` — private gradebooks and the merge;
* ``summary`` — what the instructor reads at the end.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import queue
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import config as C
from . import containment as CT
from . import gradebook as GB
from . import sandbox as SB
from . import worker as W

#: seconds a grading worker may take to start (import nbgrader, set up its sandbox)
WORKER_START_TIMEOUT = 300


# --------------------------------------------------------------------------------------------------
# Options and the per-worker set-up
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class GradeOptions:
    assignment: str
    jobs: int = 0                       # 0: the number of CPU cores
    students: list[str] | None = None
    scheduler: str | None = None        # a Dask scheduler's address or file: grade on that cluster
    cell_timeout: int | None = None     # None: the course's Execute.timeout
    notebook_timeout: int = 1800
    memory: int = 4 << 30
    cpu: int = 900
    nproc: int = 256
    fsize: int = 64 << 20
    max_output_chars: int = 200_000
    worker_memory: int = 2 << 30        # the grading worker's own memory (its control group)
    sandbox: bool = True
    network: bool = False
    uid_base: int = 64000
    db_url: str | None = None
    report: str | None = None
    progress: bool = True

    @property
    def watchdog(self) -> float:
        """Seconds after which the parent kills a worker stuck on one submission."""
        return self.notebook_timeout + 180


# --------------------------------------------------------------------------------------------------
# The parent: discover, dispatch, watch, merge, summarise
# --------------------------------------------------------------------------------------------------
def discover(root: Path, cfg, assignment: str) -> list[str]:
    submitted = root / C.directory(cfg, "submitted_directory", "submitted")
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir()
                  if not p.name.startswith(".") and (p / assignment).is_dir()
                  and any((p / assignment).glob("*.ipynb")))


def _ensure_assignment(root: Path, cfg, url: str, cid: str, assignment: str, log) -> None:
    if GB.has_assignment(url, cid, assignment):
        return
    source = root / C.directory(cfg, "source_directory", "source") / assignment
    if not source.is_dir():
        raise C.CourseError(f"no assignment {assignment!r}: {source} does not exist")
    log(f"{assignment} is not in the gradebook yet: generating it from {source.relative_to(root)}")
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    gcfg = C.load_config(root, db_url=url)
    api = NbGraderAPI(coursedir=CourseDirectory(config=gcfg), config=gcfg)
    res = api.generate_assignment(assignment, force=True, create=True)
    if not res.get("success"):
        raise C.CourseError(f"generate_assignment {assignment} failed: "
                            f"{W.nbgrader_reason(res.get('log', ''), res.get('error', ''))}")


def select_students(root: Path, cfg, opts: GradeOptions, log) -> list[str]:
    """The students to grade: every submission of the assignment, or those of ``opts.students``."""
    students = discover(root, cfg, opts.assignment)
    if opts.students:
        wanted = set(opts.students)
        missing = wanted - set(students)
        if missing:
            log(f"no submission from: {', '.join(sorted(missing))}")
        students = [s for s in students if s in wanted]
    return students


def settle(rec: dict, url: str, cid: str, assignment: str) -> None:
    """Merge one graded submission (its private gradebook, ``rec["db"]``) into the course
    gradebook, delete the private one, and set the record's final status."""
    merged = GB.merge_submission(rec["db"], url, cid, assignment, rec["student"])
    with contextlib.suppress(OSError):
        os.remove(rec["db"][len("sqlite:///"):])
    rec.pop("db", None)
    if not merged and rec["status"] == "graded":
        rec["status"] = "error"
    if any(e["kind"] in ("timeout", "notebook_timeout") for e in rec["events"]) and rec["status"] == "graded":
        rec["status"] = "graded (timed out)"


def worker_setup(slot: int, plan: CT.Plan, *, root: Path, cid: str, opts: GradeOptions, template: Path,
                 workdir: Path, submitted_dir: Path, release_dir: Path) -> W.WorkerSetup:
    """What grading worker ``slot`` of ``plan`` needs to start."""
    return W.WorkerSetup(slot=slot, root=str(root), course_id=cid, assignment=opts.assignment,
                         template_db=str(template), workdir=str(workdir), options=dataclasses.asdict(opts),
                         spec=plan.specs[slot] if plan.specs else None,
                         uids=plan.worker_slots(slot, plan.uids),
                         submitted_dir=str(submitted_dir), release_dir=str(release_dir),
                         kernel_groups=plan.worker_slots(slot, plan.kernel_groups),
                         worker_group=plan.worker_groups[slot] if plan.worker_groups else None)


@dataclasses.dataclass
class GradeRun:
    assignment: str
    jobs: int
    seconds: float
    records: dict[str, dict]
    scores: dict[str, dict]
    containment: dict
    failed: bool = False
    message: str = ""
    scheduler: str | None = None        # the Dask scheduler the class was graded on, if any

    def to_json(self) -> dict:
        return {"assignment": self.assignment, "jobs": self.jobs, "seconds": round(self.seconds, 2),
                "failed": self.failed, "message": self.message, "containment": self.containment,
                **({"scheduler": self.scheduler} if self.scheduler else {}),
                "students": {s: {**self.records.get(s, {}), **({"score": self.scores[s]} if s in self.scores else {})}
                             for s in sorted(set(self.records) | set(self.scores))}}


def grade_assignment(root: Path, opts: GradeOptions, *, log=print) -> GradeRun:
    """Autograde every submission of ``opts.assignment``; the parent merges, workers grade
    (on this machine, or on the Dask cluster of ``opts.scheduler``: ``cluster.py``)."""
    import warnings

    W.skip_slow_imports()
    if opts.scheduler:
        from .cluster import grade_on_cluster

        return grade_on_cluster(root, opts, log=log)
    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy's "not in session" noise
    warnings.filterwarnings("ignore", message=".*not in session.*")
    root = Path(root).resolve()
    cfg = C.load_config(root, db_url=opts.db_url)
    cid = C.course_id(cfg)
    url = C.db_url(cfg, root)
    _ensure_assignment(root, cfg, url, cid, opts.assignment, log)
    students = select_students(root, cfg, opts, log)
    jobs = max(1, min(opts.jobs or os.cpu_count() or 1, max(len(students), 1)))
    started = time.monotonic()
    if not students:
        return GradeRun(opts.assignment, jobs, 0.0, {}, {}, {}, failed=True,
                        message=f"no submissions found in submitted/*/{opts.assignment}/")

    workdir = Path(tempfile.mkdtemp(prefix="nnkit-grade-"))
    os.chmod(workdir, 0o711)
    (workdir / "db").mkdir(mode=0o700)
    plan = CT.plan(root, url, opts, workdir, jobs)
    containment, uids = plan.info, plan.uids
    if containment.get("lock_down"):
        CT.lock_down(root, cfg, url)
    template = workdir / "template.db"   # made while the workers start

    release_dir = root / C.directory(cfg, "release_directory", "release") / opts.assignment
    submitted_dir = root / C.directory(cfg, "submitted_directory", "submitted")
    records: dict[str, dict] = {s: {"student": s, "status": "pending", "events": []} for s in students}

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    workers: dict[int, dict] = {}

    def start_worker(slot: int) -> None:
        tasks = ctx.Queue()
        setup = worker_setup(slot, plan, root=root, cid=cid, opts=opts, template=template, workdir=workdir,
                             submitted_dir=submitted_dir, release_dir=release_dir)
        proc = ctx.Process(target=W.worker_process, args=(setup, tasks, results), daemon=True)
        proc.start()
        workers[slot] = {"proc": proc, "tasks": tasks, "student": None, "since": time.monotonic(),
                         "ready": False}

    pending = list(students)
    done = 0
    failed_grader = False
    message = ""
    bar = _progress(len(students), opts.assignment, opts.progress)

    def dispatch(slot: int) -> None:
        w = workers[slot]
        if w["ready"] and w["student"] is None and pending:
            s = pending.pop(0)
            w["student"], w["since"] = s, time.monotonic()
            w["tasks"].put((s, GB.student_extension(url, cid, opts.assignment, s)))

    try:
        for slot in range(jobs):
            start_worker(slot)
        GB.new_sqlite_gradebook(template)
        GB.copy_assignment(url, f"sqlite:///{template}", cid, opts.assignment)
        while done < len(students):
            for slot in list(workers):
                dispatch(slot)
            try:
                kind, slot, payload = results.get(timeout=0.5)
            except queue.Empty:
                kind = None
            if kind == "ready":
                workers[slot]["ready"] = True
            elif kind == "start":
                workers[slot]["since"] = time.monotonic()
            elif kind == "done":
                rec = payload
                s = rec["student"]
                workers[slot]["student"] = None
                dispatch(slot)   # the worker grades the next submission while this one is merged
                try:
                    settle(rec, url, cid, opts.assignment)
                except Exception as e:
                    failed_grader, message = True, f"could not write {s}'s grades to the gradebook: {e}"
                    raise
                records[s].update(rec)
                done += 1
                bar.update(1)
            now = time.monotonic()
            for slot, w in list(workers.items()):
                proc = w["proc"]
                stuck = w["student"] is not None and now - w["since"] > opts.watchdog
                dead = not proc.is_alive()
                starting_too_long = not w["ready"] and now - w["since"] > WORKER_START_TIMEOUT
                if not (stuck or dead or starting_too_long):
                    continue
                s = w["student"]
                with contextlib.suppress(Exception):
                    proc.kill()
                    proc.join(5)
                for uid in plan.worker_slots(slot, uids) or []:
                    with contextlib.suppress(Exception):
                        SB.kill_uid(uid)
                if s is not None:
                    why = (f"the grader gave up after {int(opts.watchdog)} s" if stuck
                           else f"the grading worker died (exit code {proc.exitcode})")
                    records[s].update({"status": "timeout" if stuck else "error", "error": why,
                                       "seconds": round(now - w["since"], 1)})
                    with contextlib.suppress(Exception):
                        with GB.open_gradebook(url, cid) as gb:
                            gb.update_or_create_student(s)
                    done += 1
                    bar.update(1)
                elif starting_too_long or (dead and not w["ready"]):
                    failed_grader, message = True, f"a grading worker could not start (exit code {proc.exitcode})"
                    raise RuntimeError(message)
                del workers[slot]
                if done < len(students):
                    start_worker(slot)
    finally:
        bar.close()
        for w in workers.values():
            with contextlib.suppress(Exception):
                w["tasks"].put(None)
        for w in workers.values():
            w["proc"].join(10)
            if w["proc"].is_alive():
                w["proc"].kill()
        plan.release()
        shutil.rmtree(workdir, ignore_errors=True)

    run = GradeRun(opts.assignment, jobs, time.monotonic() - started, records, {}, containment,
                   failed=failed_grader, message=message)
    return conclude(run, url, cid, opts)


def conclude(run: GradeRun, url: str, cid: str, opts: GradeOptions) -> GradeRun:
    """The run's scores from the course gradebook; failed if nothing could be graded; the report."""
    scores = GB.scores(url, cid, opts.assignment)
    run.scores = {s: v for s, v in scores.items() if s in run.records}
    if not any(r["status"].startswith("graded") for r in run.records.values()):
        run.failed = True
        run.message = run.message or "no submission could be graded: " + "; ".join(
            sorted({r.get("error", "") for r in run.records.values()}))[:500]
    if opts.report:
        Path(opts.report).write_text(json.dumps(run.to_json(), indent=1, default=str))
    return run


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="nb", file=sys.stderr, dynamic_ncols=True)
