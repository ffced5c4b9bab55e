"""A grading worker: a process that grades one submission at a time with nbgrader.

The parent (``grade.py``) starts N of them. Each one, for each student it is sent:

1. vets the submission into a staging folder (``submission.vet``): nothing is read through a
   student's link, the course's cells are put back in the course's order;
2. runs nbgrader's ``autograde`` on that staging copy into a private SQLite gradebook, with
   ``GradingExecute`` (``grading_execute.py``) and the sandboxed kernelspec (``sandbox.py``);
3. kills whatever is left of the kernel's uid and sends the parent a record: status, events,
   what the student changed, what was dropped, how long it took.

As root, a worker first moves into its own control group (a memory bound for the worker
itself) and into a mount namespace of its own, where each runtime folder (connection file,
sockets, the kernel's log) is a small tmpfs: a kernel can write there, but not fill a disk.
With a uid of its own for each kernel, a worker keeps its next kernel started while it grades
(``kernel_pool``): each kernel serves one submission, on one of the worker's two lanes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import time
import traceback
from pathlib import Path

from . import cgroups
from . import config as C
from . import gradebook as GB
from . import sandbox as SB
from . import submission
from .kernel_pool import RUNTIME_SIZE, KernelPool, Lane, course_imports, preload_argument, write_lane


@dataclasses.dataclass
class WorkerSetup:
    slot: int
    root: str
    course_id: str
    assignment: str
    template_db: str
    workdir: str
    options: dict
    spec: dict | None
    uids: list[int] | None                  # one per lane (kernel slot); None: no uid of their own
    submitted_dir: str = ""                 # the course's submitted/ folder
    release_dir: str = ""                   # the course's release of this assignment
    kernel_groups: list[list[str]] | None = None   # one per lane
    worker_group: list[str] | None = None
    one_submission: bool = False            # this worker grades one submission (a cluster task)

    @property
    def folder(self) -> Path:
        return Path(self.workdir) / f"w{self.slot}"

    def lanes(self) -> list[Lane]:
        count = len(self.uids) if self.uids else 1
        return [Lane(i, self.folder / f"lane{i}", self.uids[i] if self.uids else None,
                     list(self.kernel_groups[i]) if self.kernel_groups else []) for i in range(count)]


def _worker_config(setup: WorkerSetup, db_url: str, lane: Lane, pool: KernelPool | None):
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                        LimitOutput, SaveAutoGrades)

    from .grading_execute import GradingExecute

    opts = setup.options
    cfg = C.load_config(Path(setup.root), db_url=db_url)
    cfg.Autograde.autograde_preprocessors = [GradingExecute, IgnorePattern, ClearMetadataPreprocessor,
                                             LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                             CheckCellMetadata]
    cfg.CourseDirectory.submitted_directory = str(setup.folder / "submitted")   # the vetted copies
    if opts.get("cell_timeout"):
        cfg.Execute.timeout = int(opts["cell_timeout"])
        cfg.GradingExecute.interrupt_grace = max(3, min(10, int(opts["cell_timeout"])))
    cfg.Execute.raise_on_iopub_timeout = False
    cfg.GradingExecute.notebook_timeout = int(opts["notebook_timeout"])
    cfg.GradingExecute.max_output_chars = int(opts["max_output_chars"])
    cfg.GradingExecute.events_file = str(setup.folder / "events.jsonl")
    cfg.GradingExecute.kernel_cgroup = list(lane.cgroup)
    cfg.GradingExecute.shutdown_kernel = "immediate"   # nothing in a graded kernel is kept
    cfg.GradingExecute.prestarted = pool
    rt = lane.runtime
    cfg.GradingExecute.runtime_dir = str(rt)
    # Unix-domain sockets in the lane's own folder: a kernel without network can use them,
    # and nothing else on the machine can connect to them
    cfg.KernelManager.transport = "ipc"
    cfg.KernelManager.ip = str(rt / "k")
    cfg.KernelManager.connection_file = str(rt / "kernel.json")
    if setup.spec is not None:
        cfg.Execute.kernel_name = lane.kernel_name
        cfg.GradingExecute.sandbox_report = str(lane.report)
    return cfg


def _bound_worker(setup: WorkerSetup) -> None:
    """As root: the worker's own control group, and a mount namespace of its own (for the
    runtime folders' tmpfs)."""
    if setup.worker_group:
        with contextlib.suppress(OSError):
            cgroups.Group(0, list(setup.worker_group)).join()
    elif setup.spec is not None and setup.options.get("worker_memory"):
        # no control group: this process alone is bounded (the launcher sets the kernel's own
        # limit; without the sandbox the kernel would inherit this one, so it is not set then)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (int(setup.options["worker_memory"]), hard))
    if os.geteuid() != 0 or setup.spec is None:
        return
    with contextlib.suppress(OSError):
        SB.unshare(SB.CLONE_NEWNS)
        SB.mount(None, "/", None, SB.MS_REC | SB.MS_PRIVATE)
        for lane in setup.lanes():
            _fresh_runtime(setup, lane)


def _fresh_runtime(setup: WorkerSetup, lane: Lane) -> None:
    """An empty runtime folder for the lane's next kernel: as root, a new tmpfs in the worker's
    own mount namespace (owned by the lane's uid); otherwise the folder emptied."""
    rt = lane.runtime
    if os.geteuid() != 0 or setup.spec is None:
        _clear(rt)
        return
    with contextlib.suppress(OSError):
        SB.umount_detached(str(rt))
    owner = lane.uid if lane.uid is not None else 0
    SB.mount("tmpfs", str(rt), "tmpfs", SB.MS_NOSUID | SB.MS_NODEV,
             f"size={RUNTIME_SIZE},mode=0700,uid={owner},gid={owner}")


def _prepare_worker_dir(setup: WorkerSetup) -> None:
    wdir = setup.folder
    wdir.mkdir(parents=True, exist_ok=True)
    os.chmod(wdir, 0o711)
    tail = [preload_argument(course_imports(Path(setup.release_dir)))] if setup.release_dir else []
    for lane in setup.lanes():
        lane.runtime.mkdir(parents=True, exist_ok=True)
        os.chmod(lane.runtime, 0o700)
        if lane.uid is not None:
            os.chown(lane.runtime, lane.uid, lane.uid)
        if setup.spec is not None:
            write_lane(lane, setup.spec, wdir / "jupyter", tail)
    _bound_worker(setup)
    if setup.spec is not None:
        os.environ["JUPYTER_PATH"] = str(wdir / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(setup.lanes()[0].runtime)


def kernel_pool(setup: WorkerSetup) -> KernelPool | None:
    """The worker's started kernels: as root, with a uid of their own for each lane."""
    lanes = setup.lanes()
    if setup.spec is None or os.geteuid() != 0 or len(lanes) < 2 or any(lane.uid is None for lane in lanes):
        return None
    return KernelPool(lanes, workspaces=Path(setup.workdir) / "ws" / f"w{setup.slot}", assignment=setup.assignment,
                      fsize=setup.spec.get("fsize"), ahead=not setup.one_submission,
                      fresh_runtime=lambda lane: _fresh_runtime(setup, lane))


def _grade_one(setup: WorkerSetup, pool: KernelPool | None, api_class, coursedir_class, student: str,
               extension) -> dict:
    db = Path(setup.workdir) / "db" / f"{setup.slot}-{student}.db"
    shutil.copy(setup.template_db, db)
    url = f"sqlite:///{db}"
    record = {"student": student, "db": url, "events": [], "status": "graded"}
    events = setup.folder / "events.jsonl"
    events.write_text("")
    lane = pool.lane if pool is not None else setup.lanes()[0]
    if pool is None:
        _clear(lane.runtime)
    try:
        staging = setup.folder / "submitted"
        shutil.rmtree(staging, ignore_errors=True)
        vetted = submission.vet(Path(setup.submitted_dir), student, setup.assignment,
                                staging / student / setup.assignment, Path(setup.release_dir))
        cfg = _worker_config(setup, url, lane, pool)
        record.update(changes=vetted.changes, dropped=vetted.remarks, review=vetted.review)
        GB.prepare_private(url, url, setup.course_id, setup.assignment, student, extension)
        api = api_class(coursedir=coursedir_class(config=cfg), config=cfg)
        res = api.autograde(setup.assignment, student, force=True, create=True)
        if not res.get("success", False):
            record["status"] = "error"
            record["error"] = nbgrader_reason(res.get("log") or "", res.get("error") or "")
    except Exception:
        record["status"] = "error"
        record["error"] = nbgrader_reason("", traceback.format_exc())
    finally:
        _clean_up(lane, pool)
    record["events"] = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    return record


def _clean_up(lane: Lane, pool: KernelPool | None) -> None:
    """After a submission: every process of its kernels' uid killed and reaped."""
    if pool is not None:
        pool.finish()
        return
    if lane.uid is not None:
        with contextlib.suppress(Exception):
            SB.kill_uid(lane.uid)
        SB.wait_gone(lane.uid)
    SB.reap_children()


def _clear(folder: Path) -> None:
    """Empty the runtime folder: what one kernel left there (its log, files it wrote to fill
    the folder) must not reach the next one."""
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()


def _warm_up() -> None:
    """Import what the judge's checks use (PyTorch, every check module) once, before the first
    submission: otherwise the first test cell a worker judges pays for it within its time limit."""
    import importlib

    from nnkit import grading

    for name in sorted(grading._SUBMODULES):
        with contextlib.suppress(Exception):
            importlib.import_module(f"nnkit.grading.{name}")
    with contextlib.suppress(Exception):
        import torch  # noqa: F401


def skip_slow_imports() -> None:
    """Where the optional ``rfc3987_syntax`` is installed, jsonschema (imported by nbformat)
    builds a parser for IRIs as it is imported: 1–2 s in every process that reads a notebook.
    The notebook schema has no IRIs to check, so grading processes go without it."""
    import sys

    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def worker_main(setup: WorkerSetup, tasks, results) -> None:  # pragma: no cover - child process
    """A grading worker: one submission at a time, each into its own gradebook."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    skip_slow_imports()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    SB.become_subreaper()
    _prepare_worker_dir(setup)
    pool = kernel_pool(setup)
    if pool is not None:
        pool.prestart()   # the first kernel boots while the worker imports nbgrader and the checks
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    _warm_up()
    results.put(("ready", setup.slot, None))
    try:
        while True:
            task = tasks.get()
            if task is None:
                break
            student, extension = task
            results.put(("start", setup.slot, student))
            started = time.monotonic()
            record = _grade_one(setup, pool, NbGraderAPI, CourseDirectory, student, extension)
            record["seconds"] = round(time.monotonic() - started, 2)
            results.put(("done", setup.slot, record))
    finally:
        if pool is not None:
            pool.close()


def worker_process(setup: WorkerSetup, tasks, results) -> None:  # pragma: no cover - child process
    """``worker_main`` as a local worker process: once its last record is sent, it exits at once
    (its kernels are gone; unloading PyTorch and nbgrader would only keep the parent waiting)."""
    worker_main(setup, tasks, results)
    results.close()
    results.join_thread()
    os._exit(0)


_LOG_ERROR = re.compile(r"^\[(?:\w+ \| )?(?:ERROR|CRITICAL)\]\s*(.*)")
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$")


def nbgrader_reason(log: str, error: str) -> str:
    """Why nbgrader refused a notebook, in a sentence an instructor can act on.

    nbgrader logs the reason as an ERROR line and then "see the above traceback"; the
    traceback's last exception line says what went wrong. Both are preferred to the generic
    lines around them.
    """
    generic = ("above traceback", "there was an error processing", "nbgrader step failed", "traceback (most recent")
    logged = [m.group(1).strip() for m in map(_LOG_ERROR.search, str(log).splitlines()) if m]
    logged = [x for x in logged if x and not any(g in x.lower() for g in generic)]
    raised = [m.group(0) for m in map(_EXCEPTION.match, (ln.strip() for ln in str(error).splitlines())) if m]
    raised = [x for x in raised if "NbGraderException" not in x or not logged]
    reason = (logged[-1] if logged else raised[-1] if raised else
              next((ln.strip() for ln in reversed(str(error or log).splitlines()) if ln.strip()), "unknown error"))
    return reason[:500]
