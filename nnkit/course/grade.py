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

import ast
import contextlib
import dataclasses
import hmac
import hashlib
import json
import multiprocessing as mp
import os
import pwd
import queue
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import config as C
from . import gradebook as GB
from . import sandbox as SB

#: what GradingExecute noticed while grading the current submission (one worker, one notebook
#: at a time); the worker sends it to the parent with the result
EVENTS: list[dict] = []


# --------------------------------------------------------------------------------------------------
# The Execute preprocessor used for grading runs
# --------------------------------------------------------------------------------------------------
def _grading_execute_class():
    """Built on first use: importing nbgrader takes seconds."""
    from nbclient.exceptions import DeadKernelError
    from nbclient.client import NotebookClient
    from nbformat.v4 import new_output
    from nbgrader.preprocessors import Execute
    from traitlets import Bool, Integer, List, Unicode

    from . import guard as guard_module

    class GradingExecute(Execute):
        """nbgrader's Execute, hardened for untrusted notebooks (see the module docstring)."""

        notebook_timeout = Integer(
            1800, help="Seconds for the whole notebook; cells after the limit are not run (0 = none)."
        ).tag(config=True)
        max_output_chars = Integer(
            200_000, help="Characters of output kept per cell while it runs; the rest is dropped."
        ).tag(config=True)
        guard = Bool(True, help="Check numpy, nnkit and the checks before and after each test cell.").tag(config=True)
        guard_preload = List(list(guard_module.DEFAULT_PRELOAD)).tag(config=True)
        guard_protect = List(list(guard_module.DEFAULT_PROTECT)).tag(config=True)
        guard_timeout = Integer(60, help="Seconds to wait for the guard's answer.").tag(config=True)
        interrupt_grace = Integer(
            10, help="Seconds a timed-out kernel has to answer after the interrupt before it is stopped."
        ).tag(config=True)
        sandbox_report = Unicode("", help="File where the kernel launcher writes what it applied.").tag(config=True)

        # -- the notebook ----------------------------------------------------------------------
        def preprocess(self, nb, resources=None, km=None):
            NotebookClient.__init__(self, nb, km)
            self.reset_execution_trackers()
            self._check_assign_resources(resources)
            self._dead = None
            self._deadline = time.monotonic() + self.notebook_timeout if self.notebook_timeout else None
            self._guard_key = secrets.token_hex(32)
            self._guard_on = False
            self._out_chars = 0
            self._out_truncated = False
            # the kernel's own log is not the notebook's output (the sandbox keeps it in kernel.log)
            with self.setup_kernel(stderr=subprocess.DEVNULL):
                info = self.wait_for_reply(self.kc.kernel_info())
                self.nb.metadata["language_info"] = info["content"]["language_info"]
                self._read_sandbox_report()
                if self.guard:
                    self._install_guard()
                for index, cell in enumerate(self.nb.cells):
                    self.preprocess_cell(cell, resources, index)
            self.set_widgets_metadata()
            return self.nb, self.resources

        def _read_sandbox_report(self):
            if not self.sandbox_report:
                return
            with contextlib.suppress(OSError, ValueError):
                with open(self.sandbox_report) as f:
                    EVENTS.append({"kind": "sandbox", "detail": json.load(f)})
                os.remove(self.sandbox_report)

        # -- one cell ---------------------------------------------------------------------------
        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type != "code" or not cell.source.strip():
                return cell, resources
            meta = cell.metadata.get("nbgrader", {})
            name = meta.get("grade_id", f"cell {index}")
            is_test = bool(meta.get("grade"))
            if self._dead is not None:
                cell.outputs = [self._error("KernelDied", f"not run: the kernel stopped in {self._dead}")]
                EVENTS.append({"kind": "not_run", "cell": name, "test": is_test})
                return cell, resources
            if self._deadline is not None and time.monotonic() > self._deadline:
                cell.outputs = [self._error(
                    "NotebookTimeout", f"not run: the notebook used its {self.notebook_timeout} s")]
                EVENTS.append({"kind": "notebook_timeout", "cell": name, "test": is_test})
                return cell, resources
            before = self._guard_call("check") if (is_test and self._guard_on) else []
            self._out_chars, self._out_truncated = 0, False
            started = time.monotonic()
            try:
                cell, resources = super().preprocess_cell(cell, resources, index)
            except DeadKernelError:
                self._dead = name
                code = self._exit_code()
                why = _describe_exit(code)
                cell.outputs.insert(0, self._error("KernelDied", f"the kernel stopped while running this cell ({why})"))
                EVENTS.append({"kind": "kernel_died", "cell": name, "test": is_test, "detail": why})
                return cell, resources
            if any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs):
                EVENTS.append({"kind": "timeout", "cell": name, "test": is_test,
                               "seconds": round(time.monotonic() - started, 1)})
                if self._silent("", {}, timeout=self.interrupt_grace) is None:
                    # the interrupt did not stop it (a loop that ignores SIGINT): stop the kernel
                    self._stop_kernel()
                    self._dead = f"{name} (it ignored the interrupt after the time limit)"
                    EVENTS.append({"kind": "kernel_died", "cell": name, "test": is_test,
                                   "detail": "stopped by the grader: it ignored the interrupt"})
                    return cell, resources
            if self._out_truncated:
                EVENTS.append({"kind": "output_truncated", "cell": name, "test": is_test})
            if not self._guard_on:
                return cell, resources
            if is_test:
                after = self._guard_call("check")
                found = list(dict.fromkeys(list(before) + list(after)))
                if found:
                    msg = "this test ran while the submission had replaced what the checks use: " + "; ".join(found[:6])
                    cell.outputs.insert(0, self._error("IntegrityError", msg))
                    EVENTS.append({"kind": "tamper", "cell": name, "test": True, "detail": found})
            elif meta.get("locked"):
                found = self._guard_call("seal")
                if found:
                    EVENTS.append({"kind": "tamper", "cell": name, "test": False, "detail": found})
            return cell, resources

        # -- output kept in memory while a cell runs ----------------------------------------
        def output(self, outs, msg, display_id, cell_index):
            content = msg.get("content", {})
            mtype = msg.get("msg_type")
            if mtype == "stream":
                size = len(content.get("text", ""))
            elif mtype in ("display_data", "execute_result", "update_display_data"):
                size = sum(len(str(v)) for v in content.get("data", {}).values())
            elif mtype == "error":
                tb = content.get("traceback", [])
                if len(tb) > 60:
                    content["traceback"] = tb[:30] + ["... traceback truncated by the grader ..."] + tb[-29:]
                return super().output(outs, msg, display_id, cell_index)
            else:
                size = 0
            if self.max_output_chars and self._out_chars + size > self.max_output_chars:
                room = max(self.max_output_chars - self._out_chars, 0)
                self._out_chars = self.max_output_chars
                if mtype == "stream":
                    name = content.get("name", "stdout")
                    note = f"\n... output truncated by the grader (more than {self.max_output_chars} characters) ...\n"
                    if not self._out_truncated or room:
                        out = new_output("stream", name=name, text=content.get("text", "")[:room] + note)
                        outs.append(out)
                        self._out_truncated = True
                        return out
                self._out_truncated = True
                return None
            self._out_chars += size
            return super().output(outs, msg, display_id, cell_index)

        # -- the guard ------------------------------------------------------------------------
        def _install_guard(self):
            code = (f"import nnkit.course.guard as _nnkit_guard\n"
                    f"_nnkit_guard.install({self._guard_key!r}, {list(self.guard_preload)!r}, "
                    f"{list(self.guard_protect)!r})\n"
                    f"del _nnkit_guard\n")
            reply = self._silent(code, {})
            if reply is None or reply["content"].get("status") != "ok":
                why = "no answer" if reply is None else reply["content"].get("evalue", "error")
                EVENTS.append({"kind": "guard_unavailable", "detail": why})
                return
            self._guard_on = True

        def _guard_call(self, mode: str) -> list[str]:
            nonce = secrets.token_hex(16)
            expr = f"__import__('nnkit.course.guard', fromlist=['check']).check({nonce!r}, {mode!r})"
            reply = self._silent("", {"g": expr})
            if reply is None:  # the kernel is busy (a loop that ignores interrupts): nothing to say
                return []
            answer = reply["content"].get("user_expressions", {}).get("g", {})
            try:
                text = ast.literal_eval(answer["data"]["text/plain"])
                body, mac = text.rsplit("\n", 1)
                expected = hmac.new(self._guard_key.encode(), (nonce + body).encode(), hashlib.sha256).hexdigest()
                data = json.loads(body)
                if not hmac.compare_digest(mac, expected) or data.get("nonce") != nonce:
                    return ["the integrity check's answer was forged"]
                return list(data.get("violations", []))
            except Exception:
                if self._dead is None and reply["content"].get("status") == "ok":
                    return ["the integrity check could not run (its answer was removed or changed)"]
                return []

        def _silent(self, code: str, user_expressions: dict, timeout: int | None = None):
            if not self.kc or self._dead is not None:
                return None
            saved = self.timeout
            self.timeout = timeout or self.guard_timeout
            try:
                msg_id = self.kc.execute(code, silent=True, store_history=False,
                                         user_expressions=user_expressions, allow_stdin=False)
                return self.wait_for_reply(msg_id)
            except DeadKernelError:
                return None
            finally:
                self.timeout = saved

        # -- helpers ----------------------------------------------------------------------------
        def _stop_kernel(self):
            with contextlib.suppress(Exception):
                self.km.provisioner.process.kill()
            with contextlib.suppress(Exception):
                self.km.provisioner.process.wait(timeout=5)

        def _exit_code(self):
            with contextlib.suppress(Exception):
                proc = self.km.provisioner.process
                proc.wait(timeout=2)
                return proc.returncode
            return None

        @staticmethod
        def _error(ename: str, evalue: str):
            return new_output("error", ename=ename, evalue=evalue,
                              traceback=[f"{ename}: {evalue}"])

    return GradingExecute


def _describe_exit(code) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        sig = -code
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {"SIGXCPU": "CPU-time limit reached", "SIGKILL": "killed", "SIGXFSZ": "file-size limit"}.get(name, "")
        return f"signal {name}" + (f": {why}" if why else "")
    return f"exit code {code}"


_GRADING_EXECUTE = None


def grading_execute():
    global _GRADING_EXECUTE
    if _GRADING_EXECUTE is None:
        _GRADING_EXECUTE = _grading_execute_class()
    return _GRADING_EXECUTE


# --------------------------------------------------------------------------------------------------
# Reading submissions without running them
# --------------------------------------------------------------------------------------------------
_SUSPICIOUS = [
    (r"\b(np|numpy|nk|nnkit|G|torch|builtins|math|grading|mlp|core)\s*(\.\s*\w+)+\s*=[^=]", "assigns to an attribute of a library module"),
    (r"\bsetattr\s*\(", "calls setattr"),
    (r"__builtins__|\bimport\s+builtins|\bfrom\s+builtins\b", "touches builtins"),
    (r"\bctypes\b", "uses ctypes"),
    (r"\bgc\s*\.\s*get_(referrers|objects|referents)", "walks the garbage collector"),
    (r"\bsys\s*\.\s*modules\b", "changes sys.modules"),
    (r"\bsys\s*\.\s*(settrace|setprofile)|\bthreading\s*\.\s*settrace", "sets a trace function"),
    (r"\bget_ipython\s*\(", "talks to IPython"),
    (r"\bos\s*\.\s*(_exit|kill|killpg|fork|system|exec\w*|spawn\w*)\b|\bsubprocess\b|\bmultiprocessing\b",
     "starts or stops processes"),
    (r"\b(sys\s*\.\s*exit|exit|quit)\s*\(", "exits"),
    (r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b", "uses the network"),
    (r"nnkit\.course|_nnkit_guard", "touches the grader"),
]


def locked_cell_changes(release_nb, submitted_nb) -> list[str]:
    """Read-only and test cells that the student deleted or edited (nbgrader restores them)."""
    def cells(nb):
        return {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id")}

    rel, sub = cells(release_nb), cells(submitted_nb)
    out = []
    for gid, cell in rel.items():
        meta = cell.metadata.get("nbgrader", {})
        if not (meta.get("locked") or (meta.get("grade") and not meta.get("solution"))):
            continue
        mine = sub.get(gid)
        if mine is None:
            out.append(f"deleted {gid}")
            continue
        mmeta = mine.metadata.get("nbgrader", {})
        if any(bool(mmeta.get(k)) != bool(meta.get(k)) for k in ("grade", "solution", "locked")):
            out.append(f"changed the nbgrader metadata of {gid}")
        elif mine.source.strip() != cell.source.strip():
            out.append(f"edited {gid}")
    return out


def suspicious_code(submitted_nb) -> list[str]:
    """Lines in the student's own cells that a person should read (no effect on the score)."""
    out = []
    for cell in submitted_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("locked") or meta.get("grade"):
            continue
        where = meta.get("grade_id", "an added cell")
        for pattern, what in _SUSPICIOUS:
            if re.search(pattern, cell.source):
                out.append(f"{where} {what}")
    return list(dict.fromkeys(out))


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


_UID_LOCKS: list = []   # open lock files of the uids this process has claimed


def _uid_has_processes(uid: int) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    return True
    return False


def _free_uids(base: int, n: int) -> list[int]:
    """``n`` uids from ``base`` up that no account uses, the user namespace maps, no process
    runs as, and no other ``nnkit grade`` on this machine has claimed (a lock file per uid,
    held until this process exits: two graders must never share a kernel uid, or cleaning
    up one's processes would kill the other's kernels)."""
    import fcntl

    ranges = []
    with contextlib.suppress(OSError):
        for line in open("/proc/self/uid_map"):
            inside, _, count = (int(x) for x in line.split())
            ranges.append((inside, inside + count))
    lockdir = Path(tempfile.gettempdir()) / "nnkit-grade-uids"
    lockdir.mkdir(mode=0o700, exist_ok=True)
    out, uid = [], base
    while len(out) < n and uid < base + 100_000:
        candidate, uid = uid, uid + 1
        if ranges and not any(lo <= candidate < hi for lo, hi in ranges):
            continue
        try:
            pwd.getpwuid(candidate)
            continue
        except KeyError:
            pass
        fd = os.open(lockdir / str(candidate), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if _uid_has_processes(candidate):
            os.close(fd)
            continue
        _UID_LOCKS.append(fd)
        out.append(candidate)
    if len(out) < n:
        raise C.CourseError(f"could not find {n} unused uids from {base} for the grading kernels")
    return out


def _uid_can_run_python(uid: int) -> bool:
    """Can ``uid`` start this Python and import nnkit? (Without a private mount namespace the
    kernel sees the real file system, where e.g. a Python under /root is out of its reach.)"""
    import nnkit

    paths = [os.path.realpath(sys.executable), str(Path(nnkit.__file__).resolve())]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = False
        with contextlib.suppress(BaseException):
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            ok = os.access(paths[0], os.X_OK) and os.access(paths[1], os.R_OK)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _release_uids() -> None:
    while _UID_LOCKS:
        with contextlib.suppress(OSError):
            os.close(_UID_LOCKS.pop())


def _keep_paths(root: Path) -> list[str]:
    """What a kernel needs to see: the Python installation and the nnkit package."""
    import site

    import nnkit

    cands = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
             str(Path(nnkit.__file__).resolve().parent)}
    with contextlib.suppress(Exception):
        cands.update(site.getsitepackages())
    with contextlib.suppress(Exception):
        cands.add(site.getusersitepackages())
    cands.update(p for p in sys.path if p)
    root = str(root)
    keep = []
    for p in cands:
        p = os.path.realpath(p)
        if not os.path.isdir(p) or SB._under(root, p):  # never the course root or a parent of it
            continue
        keep.append(p)
    return sorted(set(keep))


def _home_seed(dest: Path) -> str:
    """A HOME template with matplotlib's font cache, so that no kernel rebuilds it."""
    mpl = dest / ".config" / "matplotlib"
    mpl.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):
        import matplotlib

        cache = Path(matplotlib.get_cachedir())
        for f in cache.glob("fontlist-*.json"):
            shutil.copy(f, mpl / f.name)
    return str(dest)


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
    uid: int | None


def _worker_config(setup: WorkerSetup, db_url: str):
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                        LimitOutput, SaveAutoGrades)

    opts = setup.options
    cfg = C.load_config(Path(setup.root), db_url=db_url)
    GradingExecute = grading_execute()
    cfg.Autograde.autograde_preprocessors = [GradingExecute, IgnorePattern, ClearMetadataPreprocessor,
                                             LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                             CheckCellMetadata]
    if opts.get("cell_timeout"):
        cfg.Execute.timeout = int(opts["cell_timeout"])
        cfg.GradingExecute.interrupt_grace = max(3, min(10, int(opts["cell_timeout"])))
    if opts.get("guard_preload") is not None:
        cfg.GradingExecute.guard_preload = list(opts["guard_preload"])
    cfg.Execute.raise_on_iopub_timeout = False
    cfg.GradingExecute.notebook_timeout = int(opts["notebook_timeout"])
    cfg.GradingExecute.max_output_chars = int(opts["max_output_chars"])
    cfg.GradingExecute.guard = bool(opts["guard"])
    wdir = Path(setup.workdir) / f"w{setup.slot}"
    rt = wdir / "rt"
    # Unix-domain sockets in the worker's own folder: a kernel without network can use them,
    # and nothing else on the machine can connect to them
    cfg.KernelManager.transport = "ipc"
    cfg.KernelManager.ip = str(rt / "k")
    cfg.KernelManager.connection_file = str(rt / "kernel.json")
    if setup.spec is not None:
        cfg.Execute.kernel_name = "nnkit-sandbox"
        cfg.GradingExecute.sandbox_report = str(rt / "sandbox.json")
    return cfg


def _prepare_worker_dir(setup: WorkerSetup) -> None:
    wdir = Path(setup.workdir) / f"w{setup.slot}"
    rt = wdir / "rt"
    rt.mkdir(parents=True, exist_ok=True)
    os.chmod(wdir, 0o711)
    os.chmod(rt, 0o700)
    if setup.uid is not None:
        os.chown(rt, setup.uid, setup.uid)
    if setup.spec is not None:
        spec = dict(setup.spec)
        spec["report"] = str(rt / "sandbox.json")
        spec["keep_rw"] = [str(rt)]
        (wdir / "spec.json").write_text(json.dumps(spec))
        os.chmod(wdir / "spec.json", 0o600)
        kdir = wdir / "jupyter" / "kernels" / "nnkit-sandbox"
        kdir.mkdir(parents=True, exist_ok=True)
        (kdir / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "nnkit.course.sandbox", "--spec", str(wdir / "spec.json"),
                     "-f", "{connection_file}"],
            "display_name": "Python 3 (nnkit grading sandbox)",
            "language": "python",
            "metadata": {"debugger": False},
        }))
        os.environ["JUPYTER_PATH"] = str(wdir / "jupyter")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(rt)


def _worker_main(setup: WorkerSetup, tasks, results) -> None:  # pragma: no cover - child process
    """A grading worker: one submission at a time, each into its own gradebook."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    import warnings

    warnings.simplefilter("ignore")
    import logging

    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    logging.getLogger("traitlets").setLevel(logging.ERROR)
    _prepare_worker_dir(setup)
    dbdir = Path(setup.workdir) / "db"
    results.put(("ready", setup.slot, None))
    while True:
        task = tasks.get()
        if task is None:
            break
        student, extension = task
        results.put(("start", setup.slot, student))
        db = dbdir / f"{setup.slot}-{student}.db"
        shutil.copy(setup.template_db, db)
        url = f"sqlite:///{db}"
        started = time.monotonic()
        record = {"student": student, "db": url, "events": [], "status": "graded"}
        try:
            GB.prepare_private(url, url, setup.course_id, setup.assignment, student, extension)
            cfg = _worker_config(setup, url)
            api = NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)
            EVENTS.clear()
            res = api.autograde(setup.assignment, student, force=True, create=True)
            record["events"] = list(EVENTS)
            if not res.get("success", False):
                record["status"] = "error"
                record["error"] = _last_error(res.get("error") or res.get("log") or "")
        except Exception:
            record["status"] = "error"
            record["error"] = _last_error(traceback.format_exc())
        finally:
            if setup.uid is not None:
                with contextlib.suppress(Exception):
                    SB.kill_uid(setup.uid)
        record["seconds"] = round(time.monotonic() - started, 2)
        results.put(("done", setup.slot, record))


def _last_error(text: str) -> str:
    lines = [ln for ln in str(text).strip().splitlines() if ln.strip()]
    errs = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (errs[-1] if errs else (lines[-1] if lines else "unknown error")).strip()[:500]


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
        raise C.CourseError(f"generate_assignment {assignment} failed: {_last_error(res.get('error', ''))}")


def _lock_down(root: Path, cfg, url: str) -> None:
    """Without a private mount namespace: permissions keep the kernel's uid out."""
    sub = root / C.directory(cfg, "submitted_directory", "submitted")
    auto = root / C.directory(cfg, "autograded_directory", "autograded")
    with contextlib.suppress(OSError):
        os.chmod(sub, 0o700)
    auto.mkdir(exist_ok=True)
    os.chmod(auto, 0o711)
    for p in auto.iterdir():
        if p.is_dir():
            os.chmod(p, 0o700)
    if url.startswith("sqlite:///"):
        with contextlib.suppress(OSError):
            os.chmod(url[len("sqlite:///"):], 0o600)


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
    containment = _containment(root, cfg, url, opts, workdir, jobs)
    specs, uids = containment.pop("_specs"), containment.pop("_uids")
    if containment.get("lock_down"):
        _lock_down(root, cfg, url)
    template = workdir / "template.db"
    GB.copy_assignment(url, f"sqlite:///{template}", cid, opts.assignment)

    release_dir = root / C.directory(cfg, "release_directory", "release") / opts.assignment
    submitted_dir = root / C.directory(cfg, "submitted_directory", "submitted")
    records: dict[str, dict] = {}
    for s in students:
        records[s] = {"student": s, "status": "pending", "events": []}
        records[s].update(_static_checks(release_dir, submitted_dir / s / opts.assignment))

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    option_dict = dataclasses.asdict(opts)
    workers: dict[int, dict] = {}

    def start_worker(slot: int) -> None:
        tasks = ctx.Queue()
        setup = WorkerSetup(slot=slot, root=str(root), course_id=cid, assignment=opts.assignment,
                            template_db=str(template), workdir=str(workdir), options=option_dict,
                            spec=specs[slot] if specs else None, uid=uids[slot] if uids else None)
        proc = ctx.Process(target=_worker_main, args=(setup, tasks, results), daemon=True)
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
        for uid in uids or []:
            with contextlib.suppress(Exception):
                SB.kill_uid(uid)
        _release_uids()
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


def _static_checks(release_dir: Path, sub_dir: Path) -> dict:
    import nbformat

    out = {"locked_cells": [], "review": []}
    for nbfile in sorted(sub_dir.glob("*.ipynb")):
        try:
            sub = nbformat.read(nbfile, as_version=4)
        except Exception as e:
            out["review"].append(f"{nbfile.name} is not a readable notebook ({type(e).__name__})")
            continue
        rel_file = release_dir / nbfile.name
        if rel_file.is_file():
            rel = nbformat.read(rel_file, as_version=4)
            out["locked_cells"] += locked_cell_changes(rel, sub)
        out["review"] += suspicious_code(sub)
    return out


def _containment(root: Path, cfg, url: str, opts: GradeOptions, workdir: Path, jobs: int) -> dict:
    """What this machine lets the grader apply, and the per-worker sandbox specs."""
    info: dict = {"sandbox": opts.sandbox, "_specs": None, "_uids": None}
    if not opts.sandbox:
        info["note"] = "no sandbox (--no-sandbox): student code runs as the grader, with the grader's rights"
        return info
    probe = SB.probe()
    is_root = probe["root"]
    info.update(probe)
    uids = _free_uids(opts.uid_base, jobs) if is_root else None
    if uids and not probe["mounts"] and not _uid_can_run_python(uids[0]):
        _release_uids()
        uids = None
        info["note"] = ("kernels run as root: without a mount namespace an unprivileged uid cannot "
                        "reach this Python installation")
    system = {"/", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/dev", "/proc", "/sys", "/opt", "/var"}
    hide = [h for h in (str(root), str(workdir), os.path.expanduser("~"), "/root")
            if os.path.isdir(h) and os.path.realpath(h) not in system]
    hide_files = []
    if url.startswith("sqlite:///"):
        dbfile = url[len("sqlite:///"):]
        if not any(SB._under(dbfile, h) for h in hide):
            hide_files.append(dbfile)
    seed = _home_seed(workdir / "home-seed")
    os.chmod(workdir / "home-seed", 0o755)
    specs = []
    for slot in range(jobs):
        spec = SB.SandboxSpec(
            memory=opts.memory, cpu=opts.cpu, nproc=opts.nproc, fsize=opts.fsize,
            uid=uids[slot] if uids else None, gid=uids[slot] if uids else None,
            network=opts.network, mounts=probe["mounts"], hide=hide, hide_files=hide_files,
            keep=_keep_paths(root), home_seed=seed)
        specs.append(dataclasses.asdict(spec))
    info["_specs"], info["_uids"] = specs, uids
    info["user"] = (f"uids {uids[0]}–{uids[-1]}" if uids else
                    "root (no unprivileged uid: RLIMIT_NPROC does not hold)" if is_root else "the grader's own")
    info["network"] = "host network" if opts.network else (
        "none (network namespace)" if probe["namespaces"] else "not isolated (no namespaces)")
    info["files"] = ("private mount namespace: course, home and /tmp hidden" if probe["mounts"]
                     else "permissions only")
    info["lock_down"] = bool(is_root and not probe["mounts"])
    info["limits"] = {"memory": opts.memory, "cpu_seconds": opts.cpu, "processes": opts.nproc,
                      "file_size": opts.fsize, "output_chars_per_cell": opts.max_output_chars,
                      "notebook_seconds": opts.notebook_timeout}
    return info


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
        if "kernel_died" in kinds:
            e = kinds["kernel_died"][0]
            notes.append(f"kernel stopped in {e['cell']} ({e.get('detail')}); "
                         f"{len(kinds.get('not_run', []))} later cells not run")
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
        if r.get("locked_cells"):
            notes.append("read-only cells (restored by nbgrader): " + ", ".join(r["locked_cells"][:4]))
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
