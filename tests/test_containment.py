"""Containment of untrusted notebooks while grading: one class of hostile submissions.

A tiny course (three questions, no PyTorch: a kernel grades it in about a second) and a class
of sixteen: an honest student, a blank one, and fourteen submissions that attack the grader
(``nnkit.course.fixtures.HOSTILE``: infinite loops, a loop that ignores Ctrl-C, a fork bomb,
unbounded memory, sys.exit, os._exit, killing processes, reading and writing outside the
student's folder, the network, a gigabyte of output, monkey-patching numpy, the checks and
IPython). The class is graded once, through the command line, with ``--jobs 2``; each test
reads what it needs from the result: the gradebook, the JSON report, the autograded notebooks,
the host's file system and process table.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
nbformat = pytest.importorskip("nbformat")

from nnkit.course import fixtures as F  # noqa: E402
from nnkit.course import gradebook as GB  # noqa: E402
from nnkit.course import sandbox as SB  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.notebooks

# Kernel uids of its own: other grading tests (running at the same time under pytest -n) use the
# default range from 64000, so leftover processes in this range can only be this test's.
UID_BASE = 64500
PROBE = SB.probe()
FULL_SANDBOX = PROBE["root"] and PROBE["namespaces"] and PROBE["mounts"]
needs_sandbox = pytest.mark.skipif(
    not FULL_SANDBOX, reason=f"the full sandbox needs root and Linux namespaces here: {PROBE}")
HOSTILE = {k: v for k, v in F.HOSTILE.items() if FULL_SANDBOX or k not in F.NEEDS_OWN_UID}


class Listener:
    """A TCP server on the host's loopback that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.close()
            except OSError:
                pass

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def _leftover_processes(lo: int, hi: int) -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        if lo <= uid < hi:
            out.append(f"{pid} (uid {uid})")
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("containment")
    root = F.make_course(base / "course", REPO)
    good = F.answered(root, F.TINY)
    F.submit(root, "honest", F.TINY, good)
    F.submit(root, "blank", F.TINY, F.read_release(root, F.TINY))
    for name, (cell, source, _) in HOSTILE.items():
        F.submit(root, name, F.TINY, F.with_cell(good, cell, source))
    listener = Listener()
    (root / "submitted" / "network" / F.TINY / "port.txt").write_text(str(listener.port))
    for stray in ("/tmp/nnkit-hostile-was-here", "/tmp/hostile-was-here"):
        if os.path.exists(stray):
            os.remove(stray)
    report = base / "report.json"
    cmd = [sys.executable, "-m", "nnkit.course", "--course", str(root), "grade", F.TINY, "--jobs", "2",
           "--timeout", "5", "--memory", "1G", "--processes", "64", "--uid-base", str(UID_BASE),
           "--guard-preload", "numpy,nnkit,nnkit.grading,nnkit.grading.*", "--report", str(report),
           "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    listener.close()
    data = json.loads(report.read_text()) if report.exists() else {}
    scores = GB.scores(f"sqlite:///{root / 'gradebook.db'}", "nnkit", F.TINY)

    def outputs(student: str) -> dict[str, str]:
        nb = nbformat.read(root / "autograded" / student / F.TINY / f"{F.TINY}.ipynb", 4)
        out = {}
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            texts = []
            for o in cell.get("outputs", []):
                if o.output_type == "stream":
                    texts.append(o.text)
                elif o.output_type == "error":
                    texts.append(f"{o.ename}: {o.evalue}")
            out[gid] = "\n".join(texts)
        return out

    return {"root": root, "proc": proc, "report": data, "scores": scores, "outputs": outputs,
            "listener": listener}


def _events(graded, student, kind):
    return [e for e in graded["report"]["students"][student]["events"] if e["kind"] == kind]


def test_the_grader_itself_succeeds(graded):
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert f"tiny: {len(HOSTILE) + 2} submissions graded" in proc.stdout
    assert set(graded["scores"]) == {"honest", "blank", *HOSTILE}, "a submission is missing from the gradebook"


def test_every_submission_gets_exactly_the_points_it_earned(graded):
    expected = {"honest": dict(F.POINTS), "blank": {k: 0.0 for k in F.POINTS}}
    expected.update({name: pts for name, (_, _, pts) in HOSTILE.items()})
    got = {s: {cell: g[0] for cell, g in v["grades"].items()} for s, v in graded["scores"].items()}
    wrong = {s: (got.get(s), want) for s, want in expected.items() if got.get(s) != want}
    assert not wrong, f"(got, expected) per student: {wrong}"


def test_an_infinite_loop_costs_only_its_question(graded):
    [ev] = _events(graded, "loop", "timeout")
    assert ev["cell"] == "test_double" and ev["seconds"] < 30
    assert "CellTimeoutError" in graded["outputs"]("loop")["test_double"]


def test_a_loop_that_ignores_the_interrupt_is_stopped(graded):
    died = _events(graded, "deaf_loop", "kernel_died")
    assert died and died[0]["cell"] == "add" and "ignored the interrupt" in died[0]["detail"]
    assert "not run" in graded["outputs"]("deaf_loop")["test_add"]
    assert graded["report"]["students"]["deaf_loop"]["seconds"] < 60


@needs_sandbox
def test_a_fork_bomb_hits_the_process_limit_and_is_cleaned_up(graded):
    text = graded["outputs"]("fork_bomb")["double"]
    assert "HOSTILE fork: BlockingIOError" in text
    children = int(text.split("after")[1].split()[0])
    assert 0 < children < 64
    assert _leftover_processes(UID_BASE, UID_BASE + 100) == []


def test_unbounded_memory_raises_memoryerror_in_the_kernel(graded):
    assert "MemoryError" in graded["outputs"]("memory_hog")["test_square"]
    assert not _events(graded, "memory_hog", "kernel_died")


def test_exits_cost_only_what_did_not_run(graded):
    out = graded["outputs"]
    assert "SystemExit" in out("sys_exit")["add"]
    [died] = _events(graded, "os_exit", "kernel_died")
    assert died["cell"] == "square" and "exit code 7" in died["detail"]
    assert {e["cell"] for e in _events(graded, "os_exit", "not_run")} == {"test_square", "add", "test_add"}


@needs_sandbox
def test_the_kernel_cannot_kill_the_grader(graded):
    text = graded["outputs"]("killer")["add"]
    assert "HOSTILE kill parent : PermissionError" in text
    assert "HOSTILE kill init : PermissionError" in text
    [died] = _events(graded, "killer", "kernel_died")          # it killed only itself
    assert died["cell"] == "add" and "SIGKILL" in died["detail"]


@needs_sandbox
def test_the_kernel_sees_only_its_own_folder(graded):
    text = graded["outputs"]("snoop")["double"]
    for what in ("read-solutions", "read-gradebook", "read-other-student"):
        assert f"HOSTILE {what} : FileNotFoundError" in text, text
    assert "HOSTILE autograded-listing: ['snoop']" in text
    assert "HOSTILE write-course : PermissionError" in text
    assert "HOSTILE big-file : OSError" in text            # RLIMIT_FSIZE
    assert "HOSTILE write-here : done" in text             # its own folder is writable ...
    root = graded["root"]
    assert not (root / "autograded" / "snoop" / F.TINY / "scratch.txt").exists()  # ... and thrown away
    assert not (root / "hostile-was-here").exists()
    assert not os.path.exists("/tmp/nnkit-hostile-was-here")
    assert not os.path.exists("/tmp/hostile-was-here")


@needs_sandbox
def test_no_network(graded):
    text = graded["outputs"]("network")["double"]
    assert "HOSTILE connect 127.0.0.1 : OSError" in text
    assert "HOSTILE connect 10.0.0.1 : OSError" in text
    assert graded["listener"].accepted == 0


def test_a_flood_of_output_is_truncated(graded):
    root = graded["root"]
    assert _events(graded, "flood", "output_truncated")
    size = (root / "autograded" / "flood" / F.TINY / f"{F.TINY}.ipynb").stat().st_size
    assert size < 1_000_000
    assert "output truncated by the grader" in graded["outputs"]("flood")["double"]


@pytest.mark.parametrize("student, cell, replaced", [
    ("patch_numpy", "test_double", "numpy.allclose was replaced"),
    ("patch_grading", "test_square", "nnkit.grading.core.check_array was replaced"),
    ("patch_code", "test_square", "the code of nnkit.grading.core.check_array was replaced"),
    ("hide_errors", "test_add", "showtraceback was overridden"),
])
def test_monkey_patching_the_checks_earns_nothing(graded, student, cell, replaced):
    [ev] = [e for e in _events(graded, student, "tamper") if e["cell"] == cell]
    assert any(replaced in d for d in ev["detail"])
    assert "IntegrityError" in graded["outputs"](student)[cell]
    assert "INTEGRITY" in graded["proc"].stdout and student in graded["proc"].stdout
    # the originals were put back: the student's other answers are graded normally
    others = {c: g[0] for c, g in graded["scores"][student]["grades"].items() if c != cell}
    assert others == {c: p for c, p in F.POINTS.items() if c != cell}


def test_honest_submissions_are_not_flagged(graded):
    for student in ("honest", "blank", "loop", "sys_exit"):
        assert not _events(graded, student, "tamper"), student
    assert graded["report"]["students"]["honest"]["review"] == []


def test_the_sandbox_report_says_what_was_applied(graded):
    [ev] = _events(graded, "honest", "sandbox")
    detail = ev["detail"]
    assert detail["limits"]["RLIMIT_AS"] == 1 << 30
    assert detail["limits"]["RLIMIT_NPROC"] == 64
    if FULL_SANDBOX:
        assert detail["user"].startswith("uid ")
        assert detail["network"].startswith("none")
        assert str(graded["root"]) in detail["mounts"]["hidden"] or any(
            str(graded["root"]).startswith(h) for h in detail["mounts"]["hidden"])
