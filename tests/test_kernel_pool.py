"""Kernels started ahead of need (``nnkit.course.kernel_pool``): one submission each, sandboxed
before any student code runs, and the same grades.

One worker (``--jobs 1``) grades a small class of the tiny assignment in name order, so each
submission's kernel was started while the one before it was graded: a student who leaves
traces everywhere (a global, a module attribute, the environment, files in every writable
place, a process), the next one who looks for them, one who prints the limits and the view of
the machine that its kernel has, one whose kernel exits (so a kernel started on demand grades
the rest, to compare containment with), and honest, blank and wrong answers.
"""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
nbformat = pytest.importorskip("nbformat")

from nnkit.course import fixtures as F  # noqa: E402
from nnkit.course import gradebook as GB  # noqa: E402
from nnkit.course import sandbox as SB  # noqa: E402
from nnkit.course.containment import kernel_paths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.notebooks, pytest.mark.xdist_group("kernel_pool")]

UID_BASE = 64700   # uids of its own: no other grading test runs kernels in this range
PROBE = SB.probe()
POOLED = PROBE["root"] and PROBE["namespaces"] and PROBE["mounts"]
needs_pool = pytest.mark.skipif(not POOLED, reason=f"kernels are started ahead of need as root with "
                                                   f"Linux namespaces only: {PROBE}")
TRACES = ("left_by_a.txt", "/tmp/left_by_a.txt", "/dev/shm/left_by_a.txt", "~/left_by_a.txt")

LEAVES_TRACES = f"""
import builtins, os, subprocess, time
import numpy
LEFT_BY_A = True
builtins.LEFT_BY_A = True
numpy.LEFT_BY_A = True
os.environ["LEFT_BY_A"] = "1"
for path in {TRACES!r}:
    with open(os.path.expanduser(path), "w") as f:
        f.write("a")
subprocess.Popen(["sleep", "300"])
time.sleep(1.5)   # the next submission's kernel is starting meanwhile
print("UIDS SEEN", sorted({{os.stat(f"/proc/{{p}}").st_uid for p in os.listdir("/proc") if p.isdigit()}}),
      "OWN", os.getuid(), "PID", os.getpid())
def double(x):
    return 2 * x
"""

LOOKS_FOR_TRACES = f"""
print("NAMES", sorted(n for n in ("numpy", "nnkit", "preload", "importlib", "kernel_side") if n in globals()))
import builtins, os
import numpy
def _sleeping():
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if open(f"/proc/{{p}}/cmdline", "rb").read().startswith(b"sleep"):
                    return True
            except OSError:
                pass
    return False
found = [name for name, there in [
    ("global", "LEFT_BY_A" in globals()), ("builtins", hasattr(builtins, "LEFT_BY_A")),
    ("numpy", hasattr(numpy, "LEFT_BY_A")), ("environ", "LEFT_BY_A" in os.environ),
    *[(p, os.path.exists(os.path.expanduser(p))) for p in {TRACES!r}],
    ("process", _sleeping()),
] if there]
print("FOUND", found, "PID", os.getpid())
def double(x):
    return 2 * x
"""


def _limits_probe(course: Path) -> str:
    return f"""
import os, resource, socket
print("LIMITS", resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(resource.RLIMIT_NPROC)[0],
      resource.getrlimit(resource.RLIMIT_CPU)[0], resource.getrlimit(resource.RLIMIT_FSIZE)[0])
print("USER", os.getuid(), os.getgid(), os.getgroups())
print("ROOT", sorted(os.listdir("/")))
print("COURSE", os.path.exists({str(course)!r}), os.path.exists({str(course / "gradebook.db")!r}))
print("CGROUP", " ".join(open("/proc/self/cgroup").read().split()))
print("UIDS", sorted({{os.stat(f"/proc/{{p}}").st_uid for p in os.listdir("/proc") if p.isdigit()}}))
try:
    hog = bytearray(2 << 30)
    print("MEMORY allocated")
except MemoryError:
    print("MEMORY refused")
try:
    socket.create_connection(("127.0.0.1", 22), timeout=2).close()
    print("NETWORK connected")
except OSError as e:
    print("NETWORK refused", type(e).__name__)
print("CWD", os.getcwd(), sorted(os.listdir(".")))
def double(x):
    return 2 * x
"""


def _class(root: Path) -> dict[str, dict]:
    """Hands in the class; returns the points each submission must get."""
    good = F.answered(root, F.TINY)
    wrong_square = {**F.POINTS, "test_square": 0.0}
    handed = {
        "a_leaves_traces": (F.with_cell(good, "double", LEAVES_TRACES), dict(F.POINTS)),
        "b_looks_for_traces": (F.with_cell(good, "double", LOOKS_FOR_TRACES), dict(F.POINTS)),
        "c_limits": (F.with_cell(good, "double", _limits_probe(root)), dict(F.POINTS)),
        "d_blank": (F.read_release(root, F.TINY), {k: 0.0 for k in F.POINTS}),
        "e_exits": (F.with_cell(good, "square", "import os\nos._exit(3)"), wrong_square),
        "f_honest": (good, dict(F.POINTS)),
        "g_wrong": (F.with_cell(good, "square", "def square(x):\n    return x + x"), wrong_square),
    }
    for student, (nb, _) in handed.items():
        F.submit(root, student, F.TINY, nb)
    # a file beside the notebook reaches the student's kernel (copied into its workspace)
    (root / "submitted" / "c_limits" / F.TINY / "data.txt").write_text("the student's data\n")
    return {student: points for student, (_, points) in handed.items()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("kernel_pool")
    root = F.make_course(base / "course", REPO)
    expected = _class(root)
    report = base / "report.json"
    cmd = [sys.executable, "-m", "nnkit.course", "--course", str(root), "grade", F.TINY, "--jobs", "1",
           "--timeout", "20", "--memory", "1G", "--processes", "64", "--uid-base", str(UID_BASE),
           "--report", str(report), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    data = json.loads(report.read_text()) if report.exists() else {}

    def output(student: str, cell_id: str) -> str:
        nb = nbformat.read(root / "autograded" / student / F.TINY / f"{F.TINY}.ipynb", 4)
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id)
        return "\n".join(o.get("text", f"{o.get('ename')}: {o.get('evalue')}") for o in cell.get("outputs", []))

    return {"root": root, "proc": proc, "report": data, "expected": expected, "output": output,
            "scores": GB.scores(f"sqlite:///{root / 'gradebook.db'}", "nnkit", F.TINY)}


def _line(text: str, key: str) -> str:
    return next(ln for ln in text.splitlines() if ln.startswith(key + " "))[len(key) + 1:]


def _shown_at_the_root(course: Path) -> set[str]:
    """The top-level folders a kernel's root may hold, wherever the course is installed: the
    system's, the Python environment's and nnkit's, the course's own (the kernel's workspace and
    sockets sit below it, the course itself masked), and the pseudo file systems."""
    shown = [*SB.SYSTEM_ALLOW, *SB.DEVICES, *kernel_paths(course), str(course)]
    return {Path(p).parts[1] for p in shown} | {"proc", "sys", "dev", "tmp"}


def _sandboxes(graded, student: str) -> list[dict]:
    return [e["detail"] for e in graded["report"]["students"][student]["events"] if e["kind"] == "sandbox"]


def test_grading_gives_the_same_scores(graded):
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    got = {s: {cell: g[0] for cell, g in v["grades"].items()} for s, v in graded["scores"].items()}
    assert got == graded["expected"]


@needs_pool
def test_each_kernel_was_started_ahead_and_serves_one_submission(graded):
    students = sorted(graded["expected"])
    first = [_sandboxes(graded, s)[0] for s in students]
    pids = [k["pid"] for k in first]
    assert len(set(pids)) == len(pids), "a kernel served two submissions"
    # started ahead: in an empty working folder of the worker's, not the student's folder
    assert all("/ws/w0/" in k["mounts"]["workspace"] for k in first), first
    # consecutive submissions run on the worker's two lanes: two uids, taking turns
    users = [k["user"] for k in first]
    assert len(set(users)) == 2 and all(a != b for a, b in itertools.pairwise(users)), users


@needs_pool
def test_nothing_of_one_submission_reaches_the_next(graded):
    out = graded["output"]
    assert _line(out("b_looks_for_traces", "double"), "FOUND").startswith("[]"), out("b_looks_for_traces", "double")
    # the kernel's start-up imports bind no name in the student's namespace
    assert _line(out("b_looks_for_traces", "double"), "NAMES") == "[]"
    a_pid = int(_line(out("a_leaves_traces", "double"), "UIDS SEEN").split("PID")[1])
    b_pid = int(_line(out("b_looks_for_traces", "double"), "FOUND").split("PID")[1])
    assert a_pid != b_pid


@needs_pool
def test_a_kernel_cannot_see_the_next_one_waiting(graded):
    # while a's cell slept, the worker's next kernel was running, as another uid: a saw only its own
    seen = _line(graded["output"]("a_leaves_traces", "double"), "UIDS SEEN")
    uids, own = seen.split("OWN")[0], int(seen.split("OWN")[1].split()[0])
    assert json.loads(uids) == [own]


@needs_pool
def test_the_sandbox_and_limits_hold_before_student_code_in_a_started_kernel(graded):
    text = graded["output"]("c_limits", "double")
    memory, nproc, cpu, fsize = (int(x) for x in _line(text, "LIMITS").split())
    assert (memory, nproc, fsize) == (1 << 30, 64, 64 << 20) and cpu == 900
    uid, gid, groups = _line(text, "USER").split(" ", 2)
    assert int(uid) >= UID_BASE and uid == gid and groups == "[]"
    assert _line(text, "COURSE") == "False False"
    root = set(json.loads(_line(text, "ROOT").replace("'", '"')))
    assert root <= _shown_at_the_root(graded["root"]), root
    assert "nnkit-grade-" in _line(text, "CGROUP")
    assert json.loads(_line(text, "UIDS")) == [int(uid)]
    assert _line(text, "MEMORY") == "refused"
    assert _line(text, "NETWORK").startswith("refused")
    cwd = _line(text, "CWD")
    assert "data.txt" in cwd and "c_limits" not in cwd   # the student's files, in the kernel's own folder


@needs_pool
def test_a_started_kernel_is_contained_like_one_started_on_demand(graded):
    # e_exits: its kernel exited in square; a kernel started on demand (the launcher run by
    # nbclient, in the student's folder) graded the rest: the same containment, another folder
    started, on_demand = _sandboxes(graded, "e_exits")
    assert "/ws/w0/" in started["mounts"]["workspace"] and "/ws/w0/" not in on_demand["mounts"]["workspace"]
    same = ("root", "cgroup", "network", "limits", "user", "no_new_privs")
    assert {k: started[k] for k in same} == {k: on_demand[k] for k in same}
    for key in ("allowed", "masked", "proc", "home"):
        assert started["mounts"][key] == on_demand["mounts"][key]
    assert [e["kind"] for e in graded["report"]["students"]["e_exits"]["events"]].count("restarted") == 1


def test_a_started_kernel_that_died_is_thrown_away(tmp_path):
    """claim() gives no kernel that died before it confined itself (GradingExecute then starts
    one for the submission, as it does after a stop), and stops what is left of it."""
    import types

    from nnkit.course import kernel_pool as KP

    class Manager:   # a kernel manager whose kernel has exited
        def __init__(self):
            self.provisioner = types.SimpleNamespace(process=types.SimpleNamespace(pid=1 << 22, poll=lambda: 1))
            self.stopped = self.cleaned = False

        async def shutdown_kernel(self, now=False):
            self.stopped = now

        def cleanup_resources(self):
            self.cleaned = True

    lanes = [KP.Lane(i, tmp_path / f"lane{i}", None, []) for i in range(2)]
    started = []
    pool = KP.KernelPool(lanes, workspaces=tmp_path / "ws", assignment=F.TINY, fsize=None, ahead=True,
                         fresh_runtime=lambda lane: None)

    def start(lane):
        started.append(lane.index)
        pool._started[lane.index] = KP._Started(Manager(), lane, tmp_path / "ws" / str(lane.index))

    pool._start = start
    pool.prestart()
    manager = pool._started[0].km
    assert pool.claim(str(tmp_path)) is None
    assert manager.stopped and manager.cleaned
    assert started == [0, 1]   # the next lane's kernel was started all the same
