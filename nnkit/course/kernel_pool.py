"""Kernels started ahead of need: a grading worker's next kernel boots while it grades.

Starting a sandboxed kernel (the launcher's confinement, Python, IPython, numpy, nnkit) takes
most of a second, in which nothing else of a submission can happen. So a worker keeps its
next kernel already started, on the other of its two *lanes*, while it grades the current
submission. A lane is one of the worker's kernel slots: a uid, a control group, a runtime
folder and a kernelspec of its own, so the kernel being graded cannot see, signal or reach
the one waiting (``hidepid=2`` shows a kernel only its own uid's processes).

A started kernel is exactly a kernel as it starts today — the same launcher, the same
sandbox spec, hence the same namespaces, allow-list root, limits and uid, all applied before
any Python of the kernel runs — except that its working folder is an empty one, and that it
has imported what the course's own cells import (:func:`course_imports`, through IPython's
``exec_lines``; no name is bound in the student's namespace). Nothing of a student's has run
in it. When the submission's turn comes, :meth:`KernelPool.claim` copies the student's files
into its workspace (``sandbox.fill_workspace``: as the kernel's uid, inside its mount
namespace) and hands the kernel manager to ``GradingExecute``, which uses it for that one
submission. Afterwards the worker kills every process of that lane's uid; the lane's next
kernel gets a fresh runtime folder (a new tmpfs) and a fresh working folder.

A kernel that died, or did not get ready, is thrown away: ``claim`` returns None and the
submission gets a kernel started for it, as without the pool.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from . import sandbox as SB

#: the kernel side of the judge, imported by every graded kernel besides the course's modules
JUDGE_SIDE = ("nnkit.grading.kernel_side", "nnkit.grading.blocking")
#: seconds a started kernel may take to confine itself (its launcher's report) when claimed
CLAIM_TIMEOUT = 60.0
#: nbclient's own argument for the kernels it starts: no IPython history file
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
#: size of the tmpfs holding a lane's runtime folder (sockets, connection file, kernel log)
RUNTIME_SIZE = 8 << 20


@dataclasses.dataclass
class Lane:
    """One of a worker's kernel slots."""

    index: int
    folder: Path                 # the lane's own folder in the worker's folder
    uid: int | None              # the kernels' uid (None: as the launcher's user)
    cgroup: list[str]            # the kernels' control-group folders

    @property
    def runtime(self) -> Path:
        return self.folder / "rt"

    @property
    def kernel_name(self) -> str:
        return f"nnkit-sandbox-{self.index}"

    @property
    def spec_file(self) -> Path:
        return self.folder / "spec.json"

    @property
    def report(self) -> Path:
        return self.runtime / "sandbox.json"


@dataclasses.dataclass
class Claimed:
    """A started kernel handed over for one submission: its manager, a client whose channels
    reach it, and what its launcher applied."""

    km: object
    kc: object
    report: dict


@dataclasses.dataclass
class _Started:
    km: object
    lane: Lane
    workspace: Path


def course_imports(release_dir: Path) -> list[str]:
    """The modules that the course's own cells of an assignment import, besides numpy, nnkit and
    the judge's kernel side; not the test cells' (the judge runs those in the grader)."""
    import nbformat

    from .submission import is_course_cell

    names = ["numpy", "nnkit", *JUDGE_SIDE]
    for path in sorted(Path(release_dir).glob("*.ipynb")):
        with contextlib.suppress(Exception):
            nb = nbformat.read(str(path), as_version=4)
            for cell in nb.cells:
                meta = cell.metadata.get("nbgrader", {})
                if cell.cell_type == "code" and is_course_cell(cell) and not meta.get("grade"):
                    names += _imported(cell.source)
    return list(dict.fromkeys(names))


def _imported(source: str) -> list[str]:
    """Module names a cell imports (``from a import b`` gives ``a`` and ``a.b``: b may be a module)."""
    try:
        tree = ast.parse("\n".join(ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return []
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out += [node.module, *(f"{node.module}.{a.name}" for a in node.names if a.name != "*")]
    return out


def preload_argument(modules: list[str]) -> str:
    """The kernel's command-line option that imports ``modules`` as it starts."""
    line = f"__import__('nnkit.grading.kernel_side', fromlist=['preload']).preload({modules!r})"
    return f"--IPKernelApp.exec_lines={line}"


class KernelPool:
    """A worker's lanes, and the kernel started on the one that grades next."""

    def __init__(self, lanes: list[Lane], *, workspaces: Path, assignment: str, fsize: int | None, ahead: bool,
                 fresh_runtime):
        self.lanes = lanes
        # a started kernel works in workspaces/<lane>-<n>/<assignment>: like nbgrader's
        # autograded/<student>/<assignment>, with nothing but its own folder around it
        self.workspaces, self.assignment = workspaces, assignment
        self.fsize = fsize
        self.ahead = ahead                   # start the next kernel while grading
        self.fresh_runtime = fresh_runtime   # fresh_runtime(lane): an empty runtime folder
        self.current = 0                     # the lane of the submission being (or next) graded
        self.claimed = False
        self._started: dict[int, _Started] = {}
        self._count = 0

    def __deepcopy__(self, memo):
        return self   # handed to GradingExecute through its configuration, which traitlets copies

    @property
    def lane(self) -> Lane:
        return self.lanes[self.current]

    def prestart(self) -> None:
        """Start a kernel on the current lane, if it has none."""
        if self.current not in self._started:
            self._start(self.lane)

    def claim(self, source: str) -> Claimed | None:
        """The current lane's started kernel, holding a copy of ``source``, for one submission;
        None if there is none or it is unusable. Starts the next lane's kernel."""
        started = self._started.pop(self.current, None)
        self.claimed = True
        if self.ahead:
            with contextlib.suppress(Exception):
                self._start(self.lanes[(self.current + 1) % len(self.lanes)])
        if started is None:
            return None
        report = self._wait_confined(started)
        why = "the kernel did not start" if report is None else SB.fill_workspace(
            report["pid"], (started.lane.uid, started.lane.uid), str(started.workspace), source, self.fsize)
        kc = None if why is not None else _client(started.km)
        if kc is None:
            self.discard(started.km)
            return None
        return Claimed(started.km, kc, report)

    def finish(self) -> None:
        """After a submission: kill what is left of its kernels; the next one grades on the
        other lane. An unclaimed kernel (nbgrader failed before running the notebook) is kept."""
        if not self.claimed:
            return
        lane = self.lane
        if lane.uid is not None:
            with contextlib.suppress(Exception):
                SB.kill_uid(lane.uid)
            SB.wait_gone(lane.uid)
        SB.reap_children()
        for old in self.workspaces.glob(f"{lane.index}-*"):
            shutil.rmtree(old, ignore_errors=True)
        self.current, self.claimed = (self.current + 1) % len(self.lanes), False

    def discard(self, km) -> None:
        """Stop a kernel manager's kernel now (no graceful shutdown: nothing in it is kept)."""
        from jupyter_core.utils import run_sync

        with contextlib.suppress(Exception):   # killed first: shutdown_kernel then need not poll
            km.provisioner.process.kill()
            km.provisioner.process.wait(timeout=5)
        with contextlib.suppress(Exception):
            run_sync(km.shutdown_kernel)(now=True)
        with contextlib.suppress(Exception):
            km.cleanup_resources()

    def close(self) -> None:
        for started in self._started.values():
            self.discard(started.km)
            if started.lane.uid is not None:
                with contextlib.suppress(Exception):
                    SB.kill_uid(started.lane.uid)
        self._started.clear()

    def _start(self, lane: Lane) -> None:
        """A kernel on ``lane``, in a fresh runtime folder and an empty working folder."""
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        self.fresh_runtime(lane)
        self._count += 1
        workspace = self.workspaces / f"{lane.index}-{self._count}" / self.assignment
        workspace.mkdir(parents=True, mode=0o700)
        rt = lane.runtime
        km = AsyncKernelManager(kernel_name=lane.kernel_name, transport="ipc", ip=str(rt / "k"),
                                connection_file=str(rt / "kernel.json"))
        run_sync(km.start_kernel)(cwd=str(workspace), extra_arguments=list(KERNEL_ARGUMENTS),
                                  stderr=subprocess.DEVNULL)
        self._started[lane.index] = _Started(km, lane, workspace)

    def _wait_confined(self, started: _Started) -> dict | None:
        """The launcher's report once the kernel has confined itself; None if it died first."""
        process = started.km.provisioner.process
        deadline = time.monotonic() + CLAIM_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                report = json.loads(started.lane.report.read_text())
                if report.get("pid") == process.pid:
                    return report
            time.sleep(0.01)
        return None


def _client(km):
    """A client of ``km``'s kernel whose shell and IOPub channels are both connected, or None.

    jupyter_client's ``wait_for_ready`` without its last step, which waits for 0.2 s of
    silence on IOPub: nbclient tells a cell's messages from earlier ones by their parent.
    """
    from queue import Empty

    from jupyter_core.utils import run_sync

    async def connected() -> bool:
        deadline = time.monotonic() + CLAIM_TIMEOUT
        while time.monotonic() < deadline and await km.is_alive():
            kc.kernel_info()
            with contextlib.suppress(Empty):
                if (await kc.get_shell_msg(timeout=1))["msg_type"] == "kernel_info_reply":
                    await kc.get_iopub_msg(timeout=0.2)
                    return True
        return False

    kc = km.client()
    kc.start_channels()
    kc.allow_stdin = False
    if run_sync(connected)():
        return kc
    kc.stop_channels()
    return None


def write_lane(lane: Lane, spec: dict, jupyter: Path, argv_tail: list[str]) -> None:
    """The lane's sandbox spec and kernelspec (in the worker's private ``JUPYTER_PATH``)."""
    import sys

    lane.runtime.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "report": str(lane.report), "allow_rw": [str(lane.runtime)]}
    if lane.uid is not None:
        spec.update(uid=lane.uid, gid=lane.uid)
    if lane.cgroup:
        spec["cgroup"] = list(lane.cgroup)
    lane.spec_file.write_text(json.dumps(spec))
    os.chmod(lane.spec_file, 0o600)
    kdir = jupyter / "kernels" / lane.kernel_name
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir / "kernel.json").write_text(json.dumps({
        # -I: nothing from the student's folder (the kernel's working folder) is imported
        # by the launcher, which runs as root until it has confined itself
        "argv": [sys.executable, "-I", "-m", "nnkit.course.sandbox", "--spec", str(lane.spec_file),
                 "-f", "{connection_file}", *argv_tail],
        "display_name": "Python 3 (nnkit grading sandbox)",
        "language": "python",
        "metadata": {"debugger": False},
    }))
