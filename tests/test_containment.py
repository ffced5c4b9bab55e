"""Containment of untrusted notebooks while grading: one class of hostile submissions.

A tiny course (three questions, no PyTorch: a kernel grades it in about a second) and a class
of about sixty: an honest student, a blank one, honest students who use PyTorch, matplotlib
and nnkit (``fixtures.HONEST``), submissions whose code attacks the grader
(``fixtures.HOSTILE``: loops, loops that ignore Ctrl-C, fork bombs, memory alone and across
forked children, exits and kills early and late, files read and written outside the student's
folder, the repository beside an editable install, /proc, the network, output and widget
floods, full /tmp, /dev/shm and runtime folders, values shown to earn partial credit,
monkey-patching numpy, the checks and IPython), submissions whose *files* attack it
(:data:`FILE_ATTACKS`: symbolic and hard links, FIFOs, sockets, devices, huge, many and deeply
nested files, modules that shadow numpy or ipykernel, notebooks that are links or not
notebooks) and submissions that rearrange the course's cells (:data:`STRUCTURE_ATTACKS`).
The class is graded once, through the command line, with ``--jobs 2``; each test reads what it
needs from the result: the gradebook, the JSON report, the autograded notebooks, the host's
file system and process table, and canary files planted around the course.
"""
from __future__ import annotations

import json
import os
import re
import socket
import stat
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
pytestmark = [pytest.mark.notebooks, pytest.mark.xdist_group("containment")]  # one graded class

# Kernel uids of its own: other grading tests (running at the same time under pytest -n) use the
# default range from 64000, so leftover processes in this range can only be this test's.
UID_BASE = 64500
CELL_LIMIT = 10  # seconds per cell (--timeout) in the graded class
PROBE = SB.probe()
FULL_SANDBOX = PROBE["root"] and PROBE["namespaces"] and PROBE["mounts"]
needs_sandbox = pytest.mark.skipif(
    not FULL_SANDBOX, reason=f"the full sandbox needs root and Linux namespaces here: {PROBE}")
HOSTILE = {k: v for k, v in F.HOSTILE.items() if FULL_SANDBOX or k not in F.NEEDS_OWN_UID}
SHADOWS = ("numpy", "ipykernel_launcher", "sitecustomize", "usercustomize", "json", "nnkit")


def _shadow_marker(name: str) -> Path:
    return Path(f"/tmp/nnkit-shadow-{os.getpid()}-{name}")


def _shadow_modules(folder: Path) -> None:
    for name in SHADOWS:
        code = (f"open({str(_shadow_marker(name))!r}, 'w').write('imported')\n"
                f"raise ImportError('the student\\'s {name} was imported')\n")
        target = folder / name / "__init__.py" if name == "nnkit" else folder / f"{name}.py"
        target.parent.mkdir(exist_ok=True)
        target.write_text(code)


def _links(folder: Path, root: Path) -> None:
    (folder / "solution.ipynb").symlink_to(root / "solutions" / F.TINY / f"{F.TINY}.ipynb")
    (folder / "gradebook.db").symlink_to(root / "gradebook.db")
    (folder / "sol").symlink_to(root / "solutions")
    (folder / "passwd").symlink_to("/etc/shadow")


def _special_files(folder: Path, root: Path) -> None:
    os.mkfifo(folder / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    sock.close()
    if os.geteuid() == 0:
        os.mknod(folder / "mem", 0o600 | stat.S_IFCHR, os.makedev(1, 1))
    os.link(root / "canary.txt", folder / "hard.txt")


def _big_and_many(folder: Path, root: Path) -> None:
    with open(folder / "huge.bin", "wb") as f:
        f.truncate(100 << 20)
    many = folder / "many"
    many.mkdir()
    for i in range(1100):
        (many / f"{i}.txt").write_text("x")
    deep = folder
    for i in range(12):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("x")


def _shadow_libraries(folder: Path, root: Path) -> None:
    for name in ("torch", "matplotlib", "ipywidgets"):
        (folder / name).mkdir()
        (folder / name / "__init__.py").write_text(
            f"open({str(_shadow_marker(name))!r}, 'w').write('imported')\nraise ImportError\n")


#: submissions whose files attack the grader: {student: (what to do to the folder, points)}
FILE_ATTACKS = {
    "shadow_libraries": (_shadow_libraries, dict(F.POINTS)),
    "shadow_modules": (lambda folder, root: _shadow_modules(folder), dict(F.POINTS)),
    "link_files": (_links, dict(F.POINTS)),
    "special_files": (_special_files, dict(F.POINTS)),
    "big_and_many": (_big_and_many, dict(F.POINTS)),
}


def _by_id(nb, gid):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def _moved_setup(good):
    nb = F.with_cell(good, "square", "def square(x):\n    return x")
    fake = nbformat.v4.new_code_cell("class GC:\n    Feedback = lambda *a, **k: None\n"
                                     "    check_array = staticmethod(lambda *a, **k: None)\n"
                                     "    call = staticmethod(lambda fb, f, *a: f(*a))")
    setup = _by_id(nb, "setup")
    nb.cells.remove(setup)
    nb.cells.append(setup)
    nb.cells.insert(1, fake)
    return nb


def _deleted_setup(good):
    nb = F.with_cell(good, "square", "class GC:\n    Feedback = lambda *a, **k: None\n"
                     "    check_array = staticmethod(lambda *a, **k: None)\n"
                     "    call = staticmethod(lambda fb, f, *a: f(*a))\n"
                     "def square(x):\n    return x")
    nb.cells.remove(_by_id(nb, "setup"))
    return nb


def _duplicated_test(good):
    nb = F.with_cell(good, "add", "def add(a, b):\n    return a - b")
    copy = nbformat.from_dict(json.loads(json.dumps(_by_id(nb, "test_add"))))
    copy.source = "pass"
    nb.cells.insert(nb.cells.index(_by_id(nb, "test_add")), copy)
    return nb


def _fake_graded_cell(good):
    nb = json.loads(json.dumps(good))
    nb = nbformat.from_dict(nb)
    cell = nbformat.v4.new_code_cell("print('bonus')")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 50,
                                 "grade_id": "bonus", "schema_version": 3}
    nb.cells.append(cell)
    return nb


def _metadata_changed(good):
    nb = F.with_cell(good, "double", "def double(x):\n    return x")
    test = _by_id(nb, "test_double")
    test.metadata["nbgrader"].update(grade=False, locked=False)
    test.source = "pass"
    return nb


def _moved_test_before_answer(good):
    nb = json.loads(json.dumps(good))
    nb = nbformat.from_dict(nb)
    test = _by_id(nb, "test_add")
    nb.cells.remove(test)
    nb.cells.insert(nb.cells.index(_by_id(nb, "add")), test)
    return nb


#: submissions that rearrange the course's cells: {student: (notebook from the honest one, points)}
STRUCTURE_ATTACKS = {
    # its own GC runs before the setup cell: the judge uses the course's imports, not the
    # kernel's names, so only the wrong square loses its points
    "moved_setup": (_moved_setup, {**F.POINTS, "test_square": 0.0}),
    "deleted_setup": (_deleted_setup, {**F.POINTS, "test_square": 0.0}),
    "duplicated_test": (_duplicated_test, {**F.POINTS, "test_add": 0.0}),
    "fake_graded_cell": (_fake_graded_cell, dict(F.POINTS)),
    "metadata_changed": (_metadata_changed, {**F.POINTS, "test_double": 0.0}),
    "moved_test": (_moved_test_before_answer, dict(F.POINTS)),
}
def _only_answers(good):
    nb = nbformat.from_dict(json.loads(json.dumps(good)))
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    return nb


def _test_as_markdown(good):
    nb = F.with_cell(good, "double", "def double(x):\n    return x")
    test = _by_id(nb, "test_double")
    test.cell_type = "markdown"
    test.pop("outputs", None)
    test.pop("execution_count", None)
    return nb


def _renamed_test(good):
    nb = F.with_cell(good, "add", "def add(a, b):\n    return a * b")
    test = _by_id(nb, "test_add")
    test.metadata["nbgrader"]["grade_id"] = "test_add_mine"
    test.source = "pass"
    return nb


def _answer_marked_read_only(good):
    nb = nbformat.from_dict(json.loads(json.dumps(good)))
    _by_id(nb, "double").metadata["nbgrader"]["locked"] = True
    return nb


STRUCTURE_ATTACKS.update({
    "only_answers": (_only_answers, dict(F.POINTS)),
    "test_as_markdown": (_test_as_markdown, {**F.POINTS, "test_double": 0.0}),
    "renamed_test": (_renamed_test, {**F.POINTS, "test_add": 0.0}),
    "answer_read_only": (_answer_marked_read_only, dict(F.POINTS)),
})


def _unreadable_notebooks(root: Path, honest: Path) -> None:
    """Notebooks that are not notebooks one could grade: every question scores 0."""
    def folder(student):
        path = root / "submitted" / student / F.TINY
        path.mkdir(parents=True)
        return path / f"{F.TINY}.ipynb"
    folder("link_notebook").symlink_to(honest / f"{F.TINY}.ipynb")
    (root / "submitted" / "folder_link").mkdir()
    (root / "submitted" / "folder_link" / F.TINY).symlink_to(honest)
    folder("not_json").write_text("{ not a notebook")
    folder("bad_schema").write_text('{"cells": 5}')
    folder("binary_notebook").write_bytes(bytes(range(256)) * 64)
    os.link(root / "solutions" / F.TINY / f"{F.TINY}.ipynb", folder("hardlink_notebook"))  # the solution
    os.mkfifo(folder("fifo_notebook"))
    with open(folder("huge_notebook"), "wb") as f:
        f.truncate(80 << 20)
    folder("notebook_dir").mkdir()


UNREADABLE = {"link_notebook", "folder_link", "not_json", "bad_schema", "binary_notebook",
              "hardlink_notebook", "fifo_notebook", "huge_notebook", "notebook_dir"}


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
    """Live processes of the kernel uids (zombies are dead: only a pid waiting to be reaped)."""
    return [f"{pid} (uid {uid})" for uid in range(lo, hi) for pid in SB.live_processes(uid)]


def _hand_in(root: Path) -> dict[str, Path]:
    """The class; returns the canary files planted around the course (path -> content)."""
    good = F.answered(root, F.TINY)
    F.submit(root, "honest", F.TINY, good)
    F.submit(root, "blank", F.TINY, F.read_release(root, F.TINY))
    for name, (cell, source, _) in HOSTILE.items():
        F.submit(root, name, F.TINY, F.with_cell(good, cell, source))
    for name, (cell, source) in F.HONEST.items():
        F.submit(root, name, F.TINY, F.with_cell(good, cell, source))
    for name, (build, _) in STRUCTURE_ATTACKS.items():
        F.submit(root, name, F.TINY, build(good))
    canaries = {root / "canary.txt": "course", root / "solutions" / "canary.txt": "solutions",
                Path(f"/tmp/nnkit-canary-{os.getpid()}.txt"): "host tmp"}
    for path, text in canaries.items():
        path.write_text(text)
    for name, (attack, _) in FILE_ATTACKS.items():
        attack(F.submit(root, name, F.TINY, good), root)
    _unreadable_notebooks(root, root / "submitted" / "honest" / F.TINY)
    helper = F.submit(root, "honest_helper", F.TINY,
                      F.with_cell(good, "double", "from helper import twice\ndef double(x):\n    return twice(x)"))
    (helper / "helper.py").write_text("def twice(x):\n    return 2 * x\n")
    (root / "submitted" / "canary_writer" / F.TINY / "canaries.txt").write_text("\n".join(map(str, canaries)))
    return canaries


def expected_points() -> dict[str, dict]:
    out = {"honest": dict(F.POINTS), "blank": {k: 0.0 for k in F.POINTS}, "honest_helper": dict(F.POINTS)}
    out.update({name: pts for name, (_, _, pts) in HOSTILE.items()})
    out.update({name: dict(F.POINTS) for name in F.HONEST})
    out.update({name: pts for name, (_, pts) in {**STRUCTURE_ATTACKS, **FILE_ATTACKS}.items()})
    out.update({name: {k: 0.0 for k in F.POINTS} for name in UNREADABLE})
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("containment")
    root = F.make_course(base / "course", REPO)
    canaries = _hand_in(root)
    listener = Listener()
    (root / "submitted" / "network" / F.TINY / "port.txt").write_text(str(listener.port))
    for stray in ("/tmp/nnkit-hostile-was-here", "/tmp/hostile-was-here"):
        if os.path.exists(stray):
            os.remove(stray)
    report = base / "report.json"
    cmd = [sys.executable, "-m", "nnkit.course", "--course", str(root), "grade", F.TINY, "--jobs", "2",
           "--timeout", str(CELL_LIMIT), "--memory", "1G", "--processes", "64", "--uid-base", str(UID_BASE),
           "--report", str(report),
           "--no-progress"]
    env = {**os.environ, "NNKIT_TEST_SECRET": "the grader's secret"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
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
            "listener": listener, "canaries": canaries}


def _events(graded, student, kind):
    return [e for e in graded["report"]["students"][student]["events"] if e["kind"] == kind]


def test_the_grader_itself_succeeds(graded):
    import sqlite3

    with sqlite3.connect(graded["root"] / "gradebook.db") as db:      # intact, whatever linked to it
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    proc = graded["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert f"tiny: {len(expected_points())} submissions graded" in proc.stdout
    assert set(graded["scores"]) == set(expected_points()), "a submission is missing from the gradebook"


def test_every_submission_gets_exactly_the_points_it_earned(graded):
    expected = expected_points()
    got = {s: {cell: g[0] for cell, g in v["grades"].items()} for s, v in graded["scores"].items()}
    wrong = {s: (got.get(s), want) for s, want in expected.items() if got.get(s) != want}
    assert not wrong, f"(got, expected) per student: {wrong}"


def test_an_infinite_loop_costs_only_its_question(graded):
    [ev] = _events(graded, "loop", "timeout")
    # the judge gives up after the cell limit; the kernel's test cell is stopped after twice
    # the limit + 10 s (the limit again is the run without the references)
    assert ev["cell"] == "test_double" and ev["seconds"] < 2 * CELL_LIMIT + 10 + 10
    assert "did not finish within its time limit" in graded["outputs"]("loop")["test_double"]


def test_a_loop_that_ignores_the_interrupt_is_stopped(graded):
    died = _events(graded, "deaf_loop", "kernel_died")
    assert died and died[0]["cell"] == "add" and "ignored the interrupt" in died[0]["detail"]
    # a fresh kernel graded test_add, without the cell that hung: add was never defined
    assert "NameError" in graded["outputs"]("deaf_loop")["test_add"]
    assert graded["report"]["students"]["deaf_loop"]["seconds"] < 60


@needs_sandbox
def test_a_fork_bomb_hits_the_process_limit_and_is_cleaned_up(graded):
    text = graded["outputs"]("fork_bomb")["double"]
    assert "HOSTILE fork: BlockingIOError" in text
    children = int(text.split("after")[1].split()[0])
    assert 0 < children < 64
    # the uids this grader used (another grader on the machine takes others)
    lo, hi = (int(u) for u in graded["report"]["containment"]["user"].split()[1].split("–"))
    assert _leftover_processes(lo, hi + 1) == []


def test_unbounded_memory_raises_memoryerror_in_the_kernel(graded):
    assert "MemoryError" in graded["outputs"]("memory_hog")["test_square"]
    assert not _events(graded, "memory_hog", "kernel_died")


def test_exits_cost_only_what_did_not_run(graded):
    out = graded["outputs"]
    assert "SystemExit" in out("sys_exit")["add"]
    [died] = _events(graded, "os_exit", "kernel_died")
    assert died["cell"] == "square" and "exit code 7" in died["detail"]
    assert not _events(graded, "os_exit", "not_run")       # a fresh kernel graded the rest
    assert [e["cell"] for e in _events(graded, "os_exit", "restarted")] == ["square"]
    assert "a fresh kernel graded the rest without that cell" in graded["proc"].stdout


@pytest.mark.parametrize("student, cell", [("deaf_early", "double"), ("exit_early", "double"),
                                           ("kill_self", "square"), ("deaf_loop", "add")])
def test_a_stopped_kernel_costs_only_its_own_question(graded, student, cell):
    [died] = _events(graded, student, "kernel_died")
    assert died["cell"] == cell
    assert not _events(graded, student, "not_run")


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
    # the folders around its working folder: a kernel started ahead of need works in an empty
    # folder of the worker's (nothing of the course around it); one started for the notebook, in
    # the student's autograded folder, sees only that student's folder there
    assert ("HOSTILE autograded-listing: ['snoop']" in text
            or "HOSTILE list-autograded : FileNotFoundError" in text), text
    assert "HOSTILE write-course : PermissionError" in text or "HOSTILE write-course : OSError" in text
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


@pytest.mark.parametrize("student, cell, says", [
    ("patch_numpy", "test_double", "AssertionError"),          # numpy.allclose replaced in the kernel
    ("patch_grading", "test_square", "wrong values"),           # the kernel's check_array replaced
    ("patch_code", "test_square", "wrong values"),              # ... or its code swapped in place
    ("hide_errors", "test_add", "AssertionError"),              # IPython told not to show failures
    ("frame_reader", "test_square", "wrong values"),            # the expected array looked up the stack
    ("imitates_pass", "test_double", "AssertionError"),         # prints what a pass prints
    ("forged_answers", "test_add", "AssertionError"),           # every call answered with 5
    ("transformer", "test_add", "was not run"),                 # every later cell rewritten into a pass
    ("fake_server", "test_add", "was not run"),                 # the kernel's side of the judge replaced
    ("garbage_channel", "test_add", "unreadable"),              # garbage written into the channel
])
def test_tricks_inside_the_kernel_earn_nothing(graded, student, cell, says):
    """The judge decides in the grader's process: what the kernel patches, prints or forges
    changes nothing but the answers it returns (the exact points are checked above)."""
    assert graded["scores"][student]["grades"][cell][0] == 0
    assert says in graded["outputs"](student)[cell], graded["outputs"](student)[cell]


def test_the_expected_values_never_enter_the_kernel(graded):
    # its square is right unless an array equal to the expected one is in the kernel's memory
    assert graded["scores"]["memory_reader"]["grades"]["test_square"][0] == F.POINTS["test_square"]
    assert "HOSTILE memory" not in "".join(graded["outputs"]("memory_reader").values())


@pytest.mark.parametrize("student", ["fake_server", "garbage_channel", "transformer"])
def test_an_unjudged_test_is_named_for_the_instructor(graded, student):
    assert [e for e in _events(graded, student, "judge") if e["cell"] == "test_add"]
    attention = graded["proc"].stdout.split("submissions that need attention:")[-1]
    block = re.search(rf"^  {student} (.*\n)(  {' ' * len(student)}.*\n)*", attention + "\n", re.M)
    assert block and "could not judge" in block.group(0), attention


def test_honest_submissions_are_not_flagged(graded):
    attention = graded["proc"].stdout.split("submissions that need attention:")[-1]
    for student in ("honest", "blank", "loop", "sys_exit", "honest_helper", *F.HONEST):
        assert not _events(graded, student, "delegation"), student
        assert not _events(graded, student, "judge"), student
        assert not _events(graded, student, "judge_unavailable"), student
    for student in ("honest", "honest_helper", *F.HONEST):
        assert not re.search(rf"^  {student} ", attention, re.M), student
    assert graded["report"]["students"]["honest"]["review"] == []


def test_the_sandbox_report_says_what_was_applied(graded):
    # every kernel reported, also after a kernel that filled its runtime folder
    assert not [s for s in expected_points() if not _events(graded, s, "sandbox")]
    [ev] = _events(graded, "honest", "sandbox")
    detail = ev["detail"]
    assert detail["limits"]["RLIMIT_AS"] == 1 << 30
    assert detail["limits"]["RLIMIT_NPROC"] == 64
    if FULL_SANDBOX:
        assert detail["user"].startswith("uid ")
        assert detail["network"].startswith("none")
        allowed = detail["mounts"]["allowed"]
        assert not any(SB.under(str(graded["root"]), p) or SB.under(p, str(graded["root"])) for p in allowed)
        assert detail["cgroup"] in (None, "joined")


def _report(graded, student):
    return graded["report"]["students"][student]


def test_nothing_is_read_through_a_link_and_odd_files_are_dropped(graded):
    dropped = {s: " ".join(_report(graded, s).get("dropped", [])) for s in FILE_ATTACKS}
    for name in ("solution.ipynb", "gradebook.db", "sol", "passwd"):
        assert f"dropped {name}: a symbolic link" in dropped["link_files"]
    for name, why in (("pipe", "not a regular file"), ("sock", "not a regular file"),
                      ("hard.txt", "a hard link"), *((("mem", "not a regular file"),) if os.geteuid() == 0 else ())):
        assert f"dropped {name}: {why}" in dropped["special_files"]
    assert "dropped huge.bin: larger than" in dropped["big_and_many"]
    assert "more than 1000 files" in dropped["big_and_many"]
    assert "nested deeper than" in dropped["big_and_many"]
    auto = graded["root"] / "autograded"
    for student, name in (("link_files", "solution.ipynb"), ("link_files", "gradebook.db"),
                          ("special_files", "pipe"), ("special_files", "hard.txt"),
                          ("big_and_many", "huge.bin")):
        assert not os.path.lexists(auto / student / F.TINY / name)


def test_a_notebook_that_is_a_link_or_no_notebook_scores_zero_with_the_reason(graded):
    assert "a symbolic link" in " ".join(_report(graded, "link_notebook")["dropped"])
    assert "refused: a symbolic link" in " ".join(_report(graded, "folder_link")["dropped"])
    assert "not a readable notebook" in " ".join(_report(graded, "not_json")["dropped"])
    assert "not a readable notebook" in " ".join(_report(graded, "bad_schema")["dropped"])
    for student, why in (("binary_notebook", "not a readable notebook"), ("hardlink_notebook", "a hard link"),
                         ("fifo_notebook", "not a regular file"), ("huge_notebook", "larger than 64 MiB"),
                         ("notebook_dir", "was not graded")):
        assert why in " ".join(_report(graded, student)["dropped"]), student
    summary = graded["proc"].stdout
    for student in UNREADABLE:
        assert student in summary


def test_files_handed_in_never_stand_in_for_installed_modules(graded):
    for name in (*SHADOWS, "torch", "matplotlib", "ipywidgets"):
        assert not _shadow_marker(name).exists(), f"the student's {name} was imported"
    assert not _report(graded, "shadow_modules").get("error")


def test_the_course_cells_run_in_place_and_the_summary_says_what_changed(graded):
    changes = {s: " ".join(_report(graded, s).get("changes", [])) for s in STRUCTURE_ATTACKS}
    assert "moved" in changes["moved_setup"]
    assert "deleted setup" in changes["deleted_setup"]
    assert "duplicated test_add" in changes["duplicated_test"]
    assert "added a cell marked as graded (bonus)" in changes["fake_graded_cell"]
    assert "changed the nbgrader metadata of test_double" in changes["metadata_changed"]
    assert "moved" in changes["moved_test"]
    assert graded["scores"]["fake_graded_cell"]["max_score"] == sum(F.POINTS.values())


def test_canaries_around_the_course_are_untouched(graded):
    for path, text in graded["canaries"].items():
        assert path.read_text() == text, path
    out = graded["outputs"]("canary_writer")["double"]
    assert out.count("HOSTILE canary") == len(graded["canaries"])
    for path in graded["canaries"]:   # the host's /tmp canary: the kernel wrote to its own /tmp
        if SB.under(str(path), str(graded["root"])):
            assert f"{path} : done" not in out


@needs_sandbox
def test_the_kernel_sees_nothing_of_the_course_or_the_repository_beside_nnkit(graded):
    text = graded["outputs"]("read_beside_package")["double"]
    assert "True" not in text, text
    listing = text.split("HOSTILE repo-listing:")[1].splitlines()[0]
    assert "solutions" not in listing and "tests" not in listing
    assert "HOSTILE course-walk: []" in graded["outputs"]("course_walk")["double"]
    assert "HOSTILE proc-others: 0" in graded["outputs"]("proc_snoop")["double"]


@needs_sandbox
def test_the_kernel_cannot_lift_its_limits_or_leave_its_namespaces(graded):
    text = graded["outputs"]("escape")["double"]
    for what in ("raise-memory-limit", "raise-process-limit", "chroot", "unshare", "mount"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"HOSTILE {what} :"))
        assert "done" not in line, line
    threads = graded["outputs"]("thread_bomb")["double"]
    assert "HOSTILE threads : RuntimeError" in threads and int(threads.split()[-1]) < 64, threads


def test_the_grader_s_environment_does_not_reach_the_kernel(graded):
    assert "HOSTILE env: []" in graded["outputs"]("env_snoop")["double"]


@needs_sandbox
def test_every_writable_place_is_capped(graded):
    text = graded["outputs"]("fill_tmp")["double"]
    for folder in ("/tmp", "/dev/shm"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"HOSTILE fill {folder} :"))
        assert "OSError" in line and int(line.split()[-1]) <= 130, line
    line = graded["outputs"]("fill_runtime")["double"]
    assert "OSError" in line and int(line.split()[-1]) <= 8, line


@needs_sandbox
def test_memory_counts_for_the_kernels_whole_process_tree(graded):
    if "cgroup" not in (graded["report"]["containment"].get("cgroup") or "cgroup refused"):
        pytest.skip("no control groups here: the memory limit holds per process only")
    text = graded["outputs"]("fork_memory")["add"]
    held = int(text.split("HOSTILE fork-memory:")[1].split()[0])
    assert held <= 3, text          # 1 GiB for the tree: at most three children of 300 MiB


def test_widget_traffic_is_capped(graded):
    assert _events(graded, "comm_flood", "comm_truncated")
    size = (graded["root"] / "autograded" / "comm_flood" / F.TINY / f"{F.TINY}.ipynb").stat().st_size
    assert size < 5_000_000
