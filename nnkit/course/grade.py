"""``nnkit grade``: autograde a class in parallel, each notebook in a sandboxed kernel.

The work is nbgrader's (``NbGraderAPI.autograde``: restore the read-only and test cells from
the gradebook, execute, score, late penalties). What this module adds around it:

* **parallel workers** — N processes, each grading one submission at a time into a private
  gradebook that the parent merges into the course gradebook (``gradebook.py``), with a
  progress bar and a watchdog that kills a worker whose submission runs past its time;
* **a sandboxed kernel** for every notebook (``sandbox.py``): no network, a private view of
  the file system, resource limits, an unprivileged user;
* ``GradingExecute``, nbgrader's ``Execute`` preprocessor with four additions: the integrity
  guard before and after every test cell (``guard.py``), a cap on the output kept in memory
  while a cell runs, a time limit for the whole notebook, and a kernel that dies (``os._exit``,
  ``exit()``, ``os.kill``, the CPU limit) costing only the cells it did not run;
* a summary: scores, failures by question, and every submission that timed out, errored, hit
  a limit, tripped the guard, edited a read-only cell, or contains code a person should read.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from . import config as C
from . import containment as CT
from . import gradebook as GB
from . import sandbox as SB
from . import worker as W

# --------------------------------------------------------------------------------------------------
# Options and the per-worker set-up
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class GradeOptions:
    assignment: str
    jobs: int = 0                       # 0: the number of CPU cores
    students: list[str] | None = None
    shard: tuple[int, int] | None = None
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
    guard: bool = True
    guard_preload: list[str] | None = None   # None: guard.DEFAULT_PRELOAD
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

    def to_json(self) -> dict:
        return {"assignment": self.assignment, "jobs": self.jobs, "seconds": round(self.seconds, 2),
                "failed": self.failed, "message": self.message, "containment": self.containment,
                "students": {s: {**self.records.get(s, {}), **({"score": self.scores[s]} if s in self.scores else {})}
                             for s in sorted(set(self.records) | set(self.scores))}}


def grade_assignment(root: Path, opts: GradeOptions, *, log=print) -> GradeRun:
    """Autograde every submission of ``opts.assignment``; the parent merges, workers grade."""
    import warnings

    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy's "not in session" noise
    warnings.filterwarnings("ignore", message=".*not in session.*")
    root = Path(root).resolve()
    cfg = C.load_config(root, db_url=opts.db_url)
    cid = C.course_id(cfg)
    url = C.db_url(cfg, root)
    _ensure_assignment(root, cfg, url, cid, opts.assignment, log)
    students = discover(root, cfg, opts.assignment)
    if opts.students:
        wanted = set(opts.students)
        missing = wanted - set(students)
        if missing:
            log(f"no submission from: {', '.join(sorted(missing))}")
        students = [s for s in students if s in wanted]
    if opts.shard:
        k, n = opts.shard
        students = [s for i, s in enumerate(students) if i % n == k - 1]
    jobs = max(1, min(opts.jobs or os.cpu_count() or 1, max(len(students), 1)))
    started = time.monotonic()
    if not students:
        return GradeRun(opts.assignment, jobs, 0.0, {}, {}, {}, failed=True,
                        message=f"no submissions found in submitted/*/{opts.assignment}/")

    workdir = Path(tempfile.mkdtemp(prefix="nnkit-grade-"))
    os.chmod(workdir, 0o711)
    (workdir / "db").mkdir(mode=0o700)
    plan = CT.plan(root, url, opts, workdir, jobs)
    containment, specs, uids = plan.info, plan.specs, plan.uids
    if containment.get("lock_down"):
        CT.lock_down(root, cfg, url)
    template = workdir / "template.db"
    GB.copy_assignment(url, f"sqlite:///{template}", cid, opts.assignment)

    release_dir = root / C.directory(cfg, "release_directory", "release") / opts.assignment
    submitted_dir = root / C.directory(cfg, "submitted_directory", "submitted")
    records: dict[str, dict] = {s: {"student": s, "status": "pending", "events": []} for s in students}

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    option_dict = dataclasses.asdict(opts)
    workers: dict[int, dict] = {}

    def start_worker(slot: int) -> None:
        tasks = ctx.Queue()
        setup = W.WorkerSetup(slot=slot, root=str(root), course_id=cid, assignment=opts.assignment,
                              template_db=str(template), workdir=str(workdir), options=option_dict,
                              spec=specs[slot] if specs else None, uid=uids[slot] if uids else None,
                              submitted_dir=str(submitted_dir), release_dir=str(release_dir),
                              kernel_group=plan.kernel_groups[slot] if plan.kernel_groups else None,
                              worker_group=plan.worker_groups[slot] if plan.worker_groups else None)
        proc = ctx.Process(target=W.worker_main, args=(setup, tasks, results), daemon=True)
        proc.start()
        workers[slot] = {"proc": proc, "tasks": tasks, "student": None, "since": time.monotonic(),
                         "ready": False}

    pending = list(students)
    done = 0
    failed_grader = False
    message = ""
    bar = _progress(len(students), opts.assignment, opts.progress)
    try:
        for slot in range(jobs):
            start_worker(slot)
        while done < len(students):
            for slot, w in list(workers.items()):
                if w["ready"] and w["student"] is None and pending:
                    s = pending.pop(0)
                    w["student"], w["since"] = s, time.monotonic()
                    ext = GB.student_extension(url, cid, opts.assignment, s)
                    w["tasks"].put((s, ext))
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
                try:
                    merged = GB.merge_submission(rec["db"], url, cid, opts.assignment, s)
                except Exception as e:
                    failed_grader, message = True, f"could not write {s}'s grades to the gradebook: {e}"
                    raise
                with contextlib.suppress(OSError):
                    os.remove(rec["db"][len("sqlite:///"):])
                rec.pop("db", None)
                if not merged and rec["status"] == "graded":
                    rec["status"] = "error"
                if any(e["kind"] in ("timeout", "notebook_timeout") for e in rec["events"]) and rec["status"] == "graded":
                    rec["status"] = "graded (timed out)"
                records[s].update(rec)
                done += 1
                bar.update(1)
            now = time.monotonic()
            for slot, w in list(workers.items()):
                proc = w["proc"]
                stuck = w["student"] is not None and now - w["since"] > opts.watchdog
                dead = not proc.is_alive()
                starting_too_long = not w["ready"] and now - w["since"] > 300
                if not (stuck or dead or starting_too_long):
                    continue
                s = w["student"]
                with contextlib.suppress(Exception):
                    proc.kill()
                    proc.join(5)
                if uids:
                    with contextlib.suppress(Exception):
                        SB.kill_uid(uids[slot])
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

    scores = GB.scores(url, cid, opts.assignment)
    scores = {s: v for s, v in scores.items() if s in records}
    graded = [s for s, r in records.items() if r["status"].startswith("graded")]
    if not graded:
        failed_grader = True
        message = message or "no submission could be graded: " + "; ".join(
            sorted({r.get("error", "") for r in records.values()}))[:500]
    run = GradeRun(opts.assignment, jobs, time.monotonic() - started, records, scores, containment,
                   failed=failed_grader, message=message)
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


# --------------------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def summary(run: GradeRun) -> str:
    lines = []
    n = len(run.records)
    per = run.seconds / n if n else 0.0
    lines.append(f"{run.assignment}: {n} submission{'s' if n != 1 else ''} graded in {run.seconds:.1f} s "
                 f"with {run.jobs} job{'s' if run.jobs != 1 else ''} ({per:.1f} s per submission, "
                 f"{60 * n / run.seconds if run.seconds else 0:.1f} per minute)")
    c = run.containment
    if c:
        if c.get("sandbox"):
            lim = c.get("limits", {})
            lines.append(f"sandbox: user {c.get('user')}; network {c.get('network')}; files: {c.get('files')}; "
                         f"limits: {lim.get('memory', 0) >> 20} MiB, {lim.get('cpu_seconds')} CPU s, "
                         f"{lim.get('processes')} processes, {lim.get('file_size', 0) >> 20} MiB per file")
            if c.get("cgroup"):
                lines.append(c["cgroup"])
            if c.get("note"):
                lines.append(c["note"])
        else:
            lines.append(c.get("note", ""))
    sc = [v for s, v in run.scores.items()]
    if sc:
        totals = [v["score"] for v in sc]
        mx = max(v["max_score"] for v in sc)
        auto_max = max(v["max_code_score"] for v in sc)
        lines.append(f"scores (out of {_fmt(mx)}; {_fmt(auto_max)} autograded): mean {_fmt(statistics.mean(totals))}, "
                     f"median {_fmt(statistics.median(totals))}, min {_fmt(min(totals))}, max {_fmt(max(totals))}")
        manual = sum(1 for v in sc if v["needs_manual_grade"])
        if manual:
            lines.append(f"{manual} submission{'s' if manual != 1 else ''} need manual grading (formgrader)")
        # failures by question
        questions: dict[str, list] = {}
        for s, v in run.scores.items():
            for cell, (score, maxs, is_code, needs) in v["grades"].items():
                if not is_code:
                    continue
                q = questions.setdefault(cell, [maxs, 0, 0, 0])
                if score >= maxs - 1e-9:
                    q[1] += 1
                else:
                    q[2] += 1
        timed = {}
        for r in run.records.values():
            for e in r.get("events", []):
                if e["kind"] in ("timeout", "notebook_timeout", "not_run", "kernel_died") and e.get("test"):
                    timed[e["cell"]] = timed.get(e["cell"], 0) + 1
        if questions:
            w = max(len("question"), *(len(q) for q in questions))
            lines.append("")
            lines.append(f"{'question':<{w}}  points  full marks  lost points  not run/timed out")
            for q, (maxs, ok, bad, _) in questions.items():
                lines.append(f"{q:<{w}}  {_fmt(maxs):>6}  {ok:>10}  {bad:>11}  {timed.get(q, 0):>17}")
    attention = []
    for s in sorted(run.records):
        r = run.records[s]
        notes = []
        if r.get("status") not in ("graded",):
            notes.append(f"{r.get('status')}" + (f": {r['error']}" if r.get("error") else ""))
        kinds: dict[str, list] = {}
        for e in r.get("events", []):
            kinds.setdefault(e["kind"], []).append(e)
        if "timeout" in kinds:
            notes.append("cell timed out: " + ", ".join(e["cell"] for e in kinds["timeout"]))
        for e in kinds.get("kernel_died", []):
            notes.append(f"kernel stopped in {e['cell']} ({e.get('detail')})"
                         + ("; a fresh kernel graded the rest without that cell"
                            if any(r["cell"] == e["cell"] for r in kinds.get("restarted", [])) else ""))
        if "not_run" in kinds:
            notes.append(f"{len(kinds['not_run'])} cells not run: " + ", ".join(e["cell"] for e in kinds["not_run"][:4]))
        if "comm_truncated" in kinds:
            notes.append("widget messages truncated: " + kinds["comm_truncated"][0].get("detail", ""))
        if "notebook_timeout" in kinds:
            notes.append(f"notebook time limit: {len(kinds['notebook_timeout'])} cells not run")
        if "output_truncated" in kinds:
            notes.append("output truncated: " + ", ".join(e["cell"] for e in kinds["output_truncated"]))
        if "tamper" in kinds:
            det = []
            for e in kinds["tamper"]:
                det += e.get("detail", [])
            cells = [e["cell"] for e in kinds["tamper"] if e.get("test")]
            notes.append("INTEGRITY: " + "; ".join(list(dict.fromkeys(det))[:3])
                         + (f" (zero for {', '.join(cells)})" if cells else ""))
        if "guard_unavailable" in kinds:
            notes.append(f"integrity guard not installed ({kinds['guard_unavailable'][0].get('detail')})")
        if r.get("changes"):
            notes.append("course cells put back: " + "; ".join(r["changes"][:4]))
        if r.get("dropped"):
            notes.append("files refused: " + "; ".join(r["dropped"][:3]))
        if r.get("review"):
            notes.append("read the code: " + "; ".join(r["review"][:3]))
        if notes:
            attention.append((s, notes))
    if attention:
        lines.append("")
        lines.append("submissions that need attention:")
        w = max(len(s) for s, _ in attention)
        for s, notes in attention:
            lines.append(f"  {s:<{w}}  {notes[0]}")
            for note in notes[1:]:
                lines.append(f"  {'':<{w}}  {note}")
    if run.failed:
        lines.append("")
        lines.append(f"GRADER FAILED: {run.message}")
    return "\n".join(lines)
