"""Grading a class on a Dask cluster: ``nnkit grade --scheduler``, with a worker killed mid-task.

The module starts a real cluster on 127.0.0.1 — ``dask scheduler`` and two ``dask worker
--nthreads 1 --nworkers 1`` processes, each a nanny and its worker process — and stops all of
it afterwards, even when a test fails. It grades the tests' class of 22 for problem set 1
(``fixtures.submit_ps1_class``: correct, wrong, blank, partial and hostile submissions)
through the command line, and while a worker process is grading it is killed with SIGKILL.
The scheduler gives that submission to another worker; every student must then have exactly
the score they earned, none missing, none twice, and the summary must count right.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
pytest.importorskip("distributed", reason="the cluster extra (dask[distributed]) is not installed")
psutil = pytest.importorskip("psutil")

from nnkit.course import cluster as K
from nnkit.course import fixtures as F
from nnkit.course import gradebook as GB

REPO = Path(__file__).resolve().parents[1]
PS1 = F.PS1

pytestmark = pytest.mark.xdist_group("cluster")  # one cluster, one graded class


def nnkit(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnkit.course", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, check=False)


# --------------------------------------------------------------------------------------------------
# Fast tests (no cluster)
# --------------------------------------------------------------------------------------------------
def test_grading_with_jobs_does_not_import_dask():
    code = ("import sys, nnkit.course.cli, nnkit.course.grade, nnkit.course.summary; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../b", "", ".", "a//b/.."])
def test_paths_from_a_task_stay_inside_their_folder(bad):
    with pytest.raises(ValueError):
        K.safe_relative(bad)
    with pytest.raises(ValueError):
        K.one_name("alice/bob")


def test_files_travel_as_data_without_links(tmp_path):
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "a.ipynb").write_text("{}")
    (src / "data" / "x.txt").write_text("x")
    (src / "link").symlink_to("/etc/passwd")
    copied = K.submission.copy_tree(src, tmp_path / "copy")
    assert any("link" in r for r in copied.remarks)
    files = K.read_tree(tmp_path / "copy")
    assert files == {"a.ipynb": b"{}", "data/x.txt": b"x"}
    dest = tmp_path / "out" / "alice" / PS1
    dest.mkdir(parents=True)
    (dest / "stale.txt").write_text("from an earlier run")
    K.replace_tree(dest, files)
    assert K.read_tree(dest) == files


def test_an_unreachable_scheduler_is_one_line(tmp_path):
    root = F.make_course(tmp_path / "course", REPO)
    F.submit(root, "alice", F.TINY, F.answered(root, F.TINY))
    proc = nnkit("--course", root, "grade", F.TINY, "--scheduler", "tcp://127.0.0.1:1", "--no-progress", timeout=120)
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("nnkit grade: cannot reach the Dask scheduler at tcp://127.0.0.1:1"), \
        proc.stderr


# --------------------------------------------------------------------------------------------------
# A real cluster on this machine
# --------------------------------------------------------------------------------------------------
def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, and everything it started."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers on 127.0.0.1; yields the scheduler file."""
    base = tmp_path_factory.mktemp("dask")
    scheduler_file = base / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    common = {"cwd": base, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    procs = []
    try:
        procs.append(subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                       "--scheduler-file", str(scheduler_file)], **common))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scheduler_file.exists(), "the scheduler did not start"
        for i in range(2):
            procs.append(subprocess.Popen([*dask, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                                           "--nworkers", "1", "--host", "127.0.0.1", "--no-dashboard",
                                           "--name", f"grader{i}"], **common))
        from dask.distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield {"file": scheduler_file, "nannies": procs[1:]}
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _grading_worker(nannies) -> psutil.Process | None:
    """A Dask worker process (a nanny's child) whose grading child has run for a second or more."""
    for nanny in nannies:
        with contextlib.suppress(psutil.Error):
            for worker in psutil.Process(nanny.pid).children():
                for child in worker.children():
                    if "nnkit.course.cluster" in " ".join(child.cmdline()) and time.time() - child.create_time() > 1:
                        return worker
    return None


@pytest.fixture(scope="module")
def graded_on_cluster(dask_cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("ps1cluster")
    root = F.copy_course(base / "course", REPO, PS1)
    lost = F.submit_ps1_class(root)
    report = base / "report.json"
    cmd = [sys.executable, "-m", "nnkit.course", "--course", str(root), "grade", PS1, "--scheduler",
           str(dask_cluster["file"]), "--timeout", "15", "--report", str(report), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and killed is None and time.monotonic() < deadline:
            worker = _grading_worker(dask_cluster["nannies"])
            if worker is not None:
                killed = worker.pid
                os.kill(killed, signal.SIGKILL)          # a worker lost in the middle of a submission
            time.sleep(0.2)
        out, err = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    return {"root": root, "lost": lost, "killed": killed, "rc": proc.returncode, "out": out, "err": err,
            "report": json.loads(report.read_text()) if report.exists() else {}, "points": F.ps1_points(root)}


@pytest.mark.slow
@pytest.mark.notebooks
def test_a_class_graded_on_the_cluster_survives_a_lost_worker(graded_on_cluster):
    g = graded_on_cluster
    assert g["rc"] == 0, g["err"][-3000:] + g["out"][-2000:]
    print(g["out"])   # shown with pytest -s: what an instructor sees
    assert g["killed"] is not None, "no worker process was seen grading"
    assert not psutil.pid_exists(g["killed"]) or psutil.Process(g["killed"]).status() == psutil.STATUS_ZOMBIE
    points, lost = g["points"], g["lost"]
    full = sum(points.values())
    expected = {s: full - sum(points[f"test_{q}"] for q in qs) for s, qs in lost.items()}

    url = f"sqlite:///{g['root'] / 'gradebook.db'}"
    scores = GB.scores(url, "nnkit", PS1)
    assert set(scores) == set(expected), "a student is missing or unknown"
    wrong = {s: (v["code_score"], expected[s]) for s, v in scores.items() if abs(v["code_score"] - expected[s]) > 1e-9}
    assert not wrong, f"(graded, expected) per student: {wrong}"
    with GB.open_gradebook(url, "nnkit") as gb:
        cells = {c.name for nb in gb.find_assignment(PS1).notebooks for c in nb.grade_cells}
        per_student: dict[str, int] = {}
        for sub in gb.assignment_submissions(PS1):
            per_student[sub.student.id] = per_student.get(sub.student.id, 0) + 1
            assert sorted(gr.cell.name for nb in sub.notebooks for gr in nb.grades) == sorted(cells)
    assert per_student == {s: 1 for s in expected}, "a student has no submission or two"
    for s in expected:
        assert (g["root"] / "autograded" / s / PS1 / f"{PS1}.ipynb").is_file(), s

    students = g["report"]["students"]
    assert set(students) == set(expected)
    assert all(r["status"].startswith("graded") for r in students.values()), \
        {s: r.get("error") for s, r in students.items() if not r["status"].startswith("graded")}
    assert students["hostile_loop"]["status"] == "graded (timed out)"
    assert {r["host"] for r in students.values()}, "each record names the machine that graded it"


@pytest.mark.slow
@pytest.mark.notebooks
def test_the_summary_counts_the_cluster_run_right(graded_on_cluster):
    g = graded_on_cluster
    out = g["out"]
    assert re.search(rf"{PS1}: 22 submissions graded in [\d.]+ s on the Dask cluster at tcp://127\.0\.0\.1:\d+ "
                     r"\(2 worker threads\)", out), out
    for q in g["points"]:
        name = q[len("test_"):]
        losing = sum(name in qs for qs in g["lost"].values())
        row = re.search(rf"^{q}\s+[\d.]+\s+(\d+)\s+(\d+)\s+\d+$", out, re.MULTILINE)
        assert row, (q, out)
        assert (int(row.group(1)), int(row.group(2))) == (22 - losing, losing), q
    assert "hostile_loop" in out and "cell timed out: test_forward" in out
    assert "hostile_exit" in out and "kernel stopped in mse_grad" in out
    assert "edits_test" in out and "edited test_forward" in out
    assert "INTEGRITY" in out and "hostile_patch" in out
    assert "sandbox: user uids" in out or "no sandbox" in out
