"""``nnkit grade --scheduler ADDRESS``: grade a class on a Dask distributed cluster.

The instructor's process (:func:`grade_on_cluster`) does everything that needs the course: it
vets each submission (``submission.vet``: nothing read through a link, the course's cells put
back) and sends one :class:`Task` per student carrying all that grading needs — the vetted
files, the assignment's source and release folders, the course's ``nbgrader_config.py`` and a
template gradebook holding the assignment. A Dask worker therefore needs only the installed
package (``pip install "nnkit[cluster]"``): no course folder, no shared file system, no
access to the gradebook.

On the worker, :func:`grade_task` builds a throw-away course in a temporary folder, makes the
containment plan for that task on that machine (``containment.plan``: uids, control groups,
the sandbox spec), and runs the grading worker of ``--jobs`` (``worker.worker_main``, hence
``_grade_one``) for that one submission in a child process, under the same limits and
watchdog. It returns an :class:`Outcome`: the record, the private gradebook's bytes and the
files of the autograded folder.

The instructor's process alone writes ``autograded/<student>/<assignment>/`` and the gradebook,
through the same merge as ``--jobs`` (``grade.settle``), once per student: a result that
arrives again for a student already merged is ignored. A worker lost mid-task has its
submission graded again elsewhere (the scheduler reschedules it).

Dask is imported here only, and only when a cluster is used.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import pickle
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path, PurePosixPath

from . import config as C
from . import containment as CT
from . import gradebook as GB
from . import submission
from . import worker as W

#: more tries for a task that raised (a worker lost mid-task is rescheduled by Dask in any case)
RETRIES = 2
#: seconds to wait for the scheduler to answer
CONNECT_TIMEOUT = 10
#: seconds to wait for a first worker to join the scheduler
WORKER_WAIT = 120
#: temporary folders of the tasks on a worker: nnkit-cluster-<pid of the worker process>-…
_PREFIX = "nnkit-cluster-"
#: one submission per worker process at a time: a containment plan is per process (control
#: groups named after its pid, its uid locks); further threads of a worker wait here
_ONE_AT_A_TIME = threading.Lock()
_PR_SET_PDEATHSIG = 1


@dataclasses.dataclass
class CourseFiles:
    """What every task of a run carries: enough to build the course on a worker."""

    course_id: str
    assignment: str
    config: str                     # the course's nbgrader_config.py
    source: dict[str, bytes]        # the assignment's source folder (relative path -> bytes)
    release: dict[str, bytes]       # its release folder
    template: bytes                 # a SQLite gradebook that holds the assignment
    options: dict                   # GradeOptions, as a dict


@dataclasses.dataclass
class Task:
    """One student's submission, vetted, with what grading it needs."""

    course: CourseFiles
    student: str
    files: dict[str, bytes]         # the vetted submission folder
    extension: _dt.timedelta | None = None


@dataclasses.dataclass
class Outcome:
    """What a worker sends back: nothing on the worker outlives the task."""

    student: str
    record: dict                    # as a local worker reports it (status, events, seconds, ...)
    gradebook: bytes | None         # the private gradebook (None: the grading worker died)
    autograded: dict[str, bytes]    # autograded/<student>/<assignment>/
    containment: dict               # the plan's summary, as made on that machine
    uids: list[int]


# --------------------------------------------------------------------------------------------------
# The instructor's side
# --------------------------------------------------------------------------------------------------
def connect(address: str):
    """A Dask client of the scheduler at ``address`` (or named by a scheduler file), with at
    least one worker; errors are one line naming the address."""
    try:
        from dask.distributed import Client
    except ImportError as e:
        raise C.CourseError("--scheduler needs Dask: pip install \"nnkit[cluster]\"") from e
    where = {"scheduler_file": address} if os.path.isfile(address) else {"address": address}
    try:
        client = Client(**where, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as e:  # noqa: BLE001 - refused, timed out, a malformed address, a peer that is no scheduler
        raise C.CourseError(f"cannot reach the Dask scheduler at {address}: {_first_line(e)}") from None
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except (OSError, TimeoutError):
        client.close()
        raise C.CourseError(f"no Dask worker joined the scheduler at {address} within {WORKER_WAIT} s") from None
    return client


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def grade_on_cluster(root: Path, opts, *, log=print):
    """Autograde every submission of ``opts.assignment`` on the cluster of ``opts.scheduler``."""
    import warnings

    from . import grade as G

    warnings.filterwarnings("ignore", module="nbgrader")
    warnings.filterwarnings("ignore", message=".*not in session.*")
    root = Path(root).resolve()
    cfg = C.load_config(root, db_url=opts.db_url)
    cid, url = C.course_id(cfg), C.db_url(cfg, root)
    G._ensure_assignment(root, cfg, url, cid, opts.assignment, log)
    students = G.select_students(root, cfg, opts, log)
    if not students:
        return G.GradeRun(opts.assignment, 0, 0.0, {}, {}, {}, failed=True, scheduler=opts.scheduler,
                          message=f"no submissions found in submitted/*/{opts.assignment}/")
    client = connect(opts.scheduler)
    scratch = Path(tempfile.mkdtemp(prefix="nnkit-grade-"))
    try:
        jobs = sum(client.nthreads().values())
        started = time.monotonic()
        course = course_files(root, cfg, cid, opts, scratch)
        records, outcomes = _grade_class(client, course, root, cfg, url, students, scratch, opts)
        run = G.GradeRun(opts.assignment, jobs, time.monotonic() - started, records, {},
                         combined_containment(outcomes), scheduler=client.scheduler.address)
    finally:
        client.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return G.conclude(run, url, cid, opts)


def course_files(root: Path, cfg, cid: str, opts, scratch: Path) -> CourseFiles:
    """The course's part of every task; the template gradebook is copied from the course's."""
    template = scratch / "template.db"
    GB.new_sqlite_gradebook(template)
    GB.copy_assignment(C.db_url(cfg, root), f"sqlite:///{template}", cid, opts.assignment)
    folder = {name: root / C.directory(cfg, f"{name}_directory", name) / opts.assignment
              for name in ("source", "release")}
    return CourseFiles(course_id=cid, assignment=opts.assignment,
                       config=(root / C.CONFIG_FILE).read_text(encoding="utf-8"),
                       source=read_tree(folder["source"]), release=read_tree(folder["release"]),
                       template=template.read_bytes(), options=dataclasses.asdict(opts))


def _grade_class(client, course: CourseFiles, root: Path, cfg, url: str, students: list[str],
                 scratch: Path, opts) -> tuple[dict[str, dict], list[Outcome]]:
    """Submit one task per student (vetting each first), then take the results as they come."""
    from dask.distributed import as_completed

    from . import grade as G

    a = opts.assignment
    submitted = root / C.directory(cfg, "submitted_directory", "submitted")
    release = root / C.directory(cfg, "release_directory", "release") / a
    records = {s: {"student": s, "status": "pending", "events": []} for s in students}
    run_id, futures, outcomes = uuid.uuid4().hex[:8], {}, []
    bar = G._progress(len(students), a, opts.progress)
    try:
        for s in students:
            files, vetted = vetted_files(submitted, s, a, release, scratch / "vetted")
            task = Task(course, s, files, GB.student_extension(url, course.course_id, a, s))
            future = client.submit(grade_task, task, key=f"nnkit-grade-{a}-{s}-{run_id}", pure=False,
                                   retries=RETRIES)
            futures[future] = (s, vetted)
        for future in as_completed(list(futures), loop=client.loop):
            s, vetted = futures[future]
            if records[s]["status"] != "pending":
                continue                                   # already merged: never count twice
            if future.status == "finished":
                outcomes.append(future.result())
                records[s].update(accept(outcomes[-1], vetted, root, cfg, url, course.course_id, a, scratch))
            else:
                records[s].update(lost(s, future.exception(), url, course.course_id))
            bar.update(1)
    finally:
        bar.close()
        client.cancel([f for f in futures if not f.done()])
    return records, outcomes


def vetted_files(submitted: Path, student: str, assignment: str, release: Path,
                 scratch: Path) -> tuple[dict[str, bytes], submission.Vetted]:
    """The submission as ``submission.vet`` makes it safe to grade, as bytes, and its findings."""
    dest = scratch / student
    try:
        vetted = submission.vet(submitted, student, assignment, dest, release)
        return read_tree(dest), vetted
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def accept(outcome: Outcome, vetted: submission.Vetted, root: Path, cfg, url: str, cid: str,
           assignment: str, scratch: Path) -> dict:
    """Write one worker's outcome: the autograded folder, then its grades (the merge of ``--jobs``)."""
    from . import grade as G

    rec = dict(outcome.record)
    for key, found in (("changes", vetted.changes), ("dropped", vetted.remarks), ("review", vetted.review)):
        rec[key] = list(dict.fromkeys([*found, *rec.get(key, [])]))
    auto = root / C.directory(cfg, "autograded_directory", "autograded") / one_name(outcome.student) / assignment
    if outcome.autograded:
        replace_tree(auto, outcome.autograded)
    if outcome.gradebook is None:
        rec.pop("db", None)
        _add_student(url, cid, outcome.student)
        return rec
    private = scratch / f"private-{outcome.student}.db"
    private.write_bytes(outcome.gradebook)
    rec["db"] = f"sqlite:///{private}"
    G.settle(rec, url, cid, assignment)
    return rec


def lost(student: str, error: BaseException | None, url: str, cid: str) -> dict:
    """The record of a task that failed for good (Dask gave up on it: KilledWorker, an error)."""
    _add_student(url, cid, student)
    return {"status": "error", "error": f"grading failed on the cluster: {type(error).__name__}: "
                                        f"{_first_line(error) if error else 'unknown'}"}


def _add_student(url: str, cid: str, student: str) -> None:
    """Listed in exports even without a grade (what ``--jobs`` does for a worker that died)."""
    with contextlib.suppress(Exception), GB.open_gradebook(url, cid) as gb:
        gb.update_or_create_student(student)


def combined_containment(outcomes: list[Outcome]) -> dict:
    """One summary of the plans made on the workers: the first, with every uid used; a note
    when the machines did not all apply the same containment."""
    if not outcomes:
        return {}
    info = dict(outcomes[0].containment)
    uids = sorted({u for o in outcomes for u in o.uids})
    if uids and all(o.uids for o in outcomes):
        info["user"] = f"uids {uids[0]}–{uids[-1]} (each worker's own)"
    ignore = ("user", "cgroup_root")
    same = {k: v for k, v in info.items() if k not in ignore}
    if any({k: v for k, v in o.containment.items() if k not in ignore} != same for o in outcomes):
        info["note"] = ("the workers did not all apply the same containment: "
                        "each student's sandbox is in the report (--report)")
    return info


# --------------------------------------------------------------------------------------------------
# Files as data
# --------------------------------------------------------------------------------------------------
def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path -> bytes), checkpoints and caches left out."""
    if not folder.is_dir():
        return {}
    skip = {".ipynb_checkpoints", "__pycache__"}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not skip & set(p.relative_to(folder).parts)}


def safe_relative(path: str) -> PurePosixPath:
    """``path`` if it stays inside the folder it is relative to; ValueError otherwise."""
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts):
        raise ValueError(f"not a relative path inside the folder: {path!r}")
    return p


def one_name(name: str) -> str:
    """``name`` if it can name a folder (a student id); ValueError otherwise."""
    if len(safe_relative(name).parts) != 1:
        raise ValueError(f"not a folder name: {name!r}")
    return name


def write_tree(dest: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = dest / safe_relative(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def replace_tree(dest: Path, files: dict[str, bytes]) -> None:
    """``dest`` holds exactly ``files`` (what nbgrader's ``--force`` does to an autograded folder)."""
    for folder in (dest.parent, dest):
        if folder.is_symlink():
            folder.unlink()
    shutil.rmtree(dest, ignore_errors=True)
    write_tree(dest, files)


# --------------------------------------------------------------------------------------------------
# The worker's side
# --------------------------------------------------------------------------------------------------
def grade_task(task: Task) -> Outcome:
    """Grade one submission on this machine: a Dask task (see the module docstring)."""
    with _ONE_AT_A_TIME:
        _remove_stale_folders()
        tmp = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        try:
            os.chmod(tmp, 0o711)
            return _grade_in(tmp, task)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _grade_in(tmp: Path, task: Task) -> Outcome:
    from .grade import GradeOptions, worker_setup

    course, student = task.course, one_name(task.student)
    root, workdir = tmp / "course", tmp / "work"
    cfg = unpack_course(root, task)
    workdir.mkdir(mode=0o711)
    (workdir / "db").mkdir(mode=0o700)
    template = workdir / "template.db"
    template.write_bytes(course.template)
    url = f"sqlite:///{template}"
    known = {f.name for f in dataclasses.fields(GradeOptions)}   # an option this version lacks is left out
    opts = GradeOptions(**{k: v for k, v in course.options.items() if k in known})
    plan = CT.plan(root, url, opts, workdir, 1)
    try:
        if plan.info.get("lock_down"):
            CT.lock_down(root, cfg, url)
        setup = worker_setup(0, plan, root=root, cid=course.course_id, opts=opts, template=template,
                             workdir=workdir, submitted_dir=root / C.directory(cfg, "submitted_directory", "submitted"),
                             release_dir=root / C.directory(cfg, "release_directory", "release") / course.assignment)
        setup.one_submission = True   # its first kernel boots while it imports nbgrader; no second one
        record = run_worker(setup, student, task.extension, opts.watchdog)
        record["host"] = socket.gethostname()
        db = record.pop("db", None)
        gradebook = Path(db[len("sqlite:///"):]).read_bytes() if db else None
        auto = root / C.directory(cfg, "autograded_directory", "autograded") / student / course.assignment
        return Outcome(student, record, gradebook, _copy_back(auto, tmp / "back"), plan.info, list(plan.uids or []))
    finally:
        plan.release()


def unpack_course(root: Path, task: Task):
    """The throw-away course of one task: configuration, the assignment, the one submission."""
    course = task.course
    root.mkdir(mode=0o755)
    (root / C.CONFIG_FILE).write_text(course.config, encoding="utf-8")
    cfg = C.load_config(root)
    a = course.assignment
    write_tree(root / C.directory(cfg, "source_directory", "source") / a, course.source)
    write_tree(root / C.directory(cfg, "release_directory", "release") / a, course.release)
    write_tree(root / C.directory(cfg, "submitted_directory", "submitted") / one_name(task.student) / a, task.files)
    return cfg


def _copy_back(folder: Path, scratch: Path) -> dict[str, bytes]:
    """The autograded folder as data, read as a submission is (a kernel may have written there)."""
    if not folder.is_dir():
        return {}
    submission.copy_tree(folder, scratch)
    return read_tree(scratch)


def _remove_stale_folders() -> None:
    """Folders of tasks whose worker process was killed mid-task (that pid no longer runs)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*"):
        pid = folder.name[len(_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The grading worker, one submission, in a child process
# --------------------------------------------------------------------------------------------------
class Channel:
    """Pickled messages over a pipe, each preceded by its length; ``put`` is what
    ``worker.worker_main`` sends its results with."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""

    def put(self, message) -> None:
        data = pickle.dumps(message)
        view = memoryview(struct.pack("!I", len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]

    def receive(self, timeout: float):
        """The next message; None if none came within ``timeout``; ``("eof", None, None)`` once
        the other end is closed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 4:
                size = struct.unpack("!I", self.buffer[:4])[0]
                if len(self.buffer) >= 4 + size:
                    data, self.buffer = self.buffer[4:4 + size], self.buffer[4 + size:]
                    return pickle.loads(data)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return ("eof", None, None)
            self.buffer += chunk


def run_worker(setup: W.WorkerSetup, student: str, extension, watchdog: float) -> dict:
    """Grade one submission with ``worker.worker_main`` in a child process, as ``--jobs`` does
    (a subprocess: Dask's worker processes are daemons, which may not fork multiprocessing
    children). The child dies with this process; past ``watchdog`` seconds it is killed."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-P", "-m", "nnkit.course.cluster", str(write_end), str(os.getpid())],
                            stdin=subprocess.PIPE, pass_fds=(write_end,), cwd=setup.workdir)
    os.close(write_end)
    try:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(pickle.dumps((setup, student, extension)))
            proc.stdin.close()
        return _watch(proc, Channel(read_end), student, watchdog)
    finally:
        os.close(read_end)
        if proc.poll() is None:
            proc.kill()
        proc.wait()


class WorkerStartError(RuntimeError):
    """The grading worker did not start (the task fails; Dask may try it elsewhere)."""


def _watch(proc: subprocess.Popen, channel: Channel, student: str, watchdog: float) -> dict:
    from .grade import WORKER_START_TIMEOUT

    since, ready = time.monotonic(), False
    while True:
        kind, _, payload = channel.receive(1.0) or (None, None, None)
        now = time.monotonic()
        if kind == "ready":
            ready, since = True, now
        elif kind == "start":
            since = now
        elif kind == "done":
            return payload
        stuck = now - since > (watchdog if ready else WORKER_START_TIMEOUT)
        if kind != "eof" and not stuck:
            continue
        proc.kill()
        proc.wait()
        if not ready:
            raise WorkerStartError(f"a grading worker could not start on {socket.gethostname()} "
                                   f"(exit code {proc.returncode})")
        why = (f"the grader gave up after {int(watchdog)} s" if stuck
               else f"the grading worker died (exit code {proc.returncode})")
        return {"student": student, "status": "timeout" if stuck else "error", "events": [], "error": why,
                "seconds": round(now - since, 1)}


class _OneTask:
    """The task queue of a grading worker that grades one submission: that one, then the end."""

    def __init__(self, task):
        self.items = [task, None]

    def get(self):
        return self.items.pop(0)


def _child_main(argv: list[str]) -> None:  # pragma: no cover - runs in the child process
    import ctypes

    from . import sandbox as SB

    fd, parent = int(argv[0]), int(argv[1])
    ulong = ctypes.c_ulong
    SB.libc().prctl(ctypes.c_int(_PR_SET_PDEATHSIG), ulong(signal.SIGKILL), ulong(0), ulong(0), ulong(0))
    if os.getppid() != parent:
        os._exit(1)
    setup, student, extension = pickle.load(sys.stdin.buffer)
    W.worker_main(setup, _OneTask((student, extension)), Channel(fd))


if __name__ == "__main__":  # pragma: no cover
    _child_main(sys.argv[1:])
