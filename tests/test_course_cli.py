"""The course command ``nnkit``: grading a class of problem set 1, LMS zips, release, check.

The class-scale test grades 22 submissions of the real problem set 1 (generated from its
solution and release notebooks: correct, partly wrong, unanswered, hostile, and one that
edited a read-only test cell) with ``nnkit grade --jobs 2``, then exports the grades through
nbgrader and checks every student's score against the points of the questions they got
right. Expected scores come from the notebook's own metadata, never from a hard-coded total.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
nbformat = pytest.importorskip("nbformat")

from nnkit.course import cli  # noqa: E402
from nnkit.course import collect as CO  # noqa: E402
from nnkit.course import fixtures as F  # noqa: E402
from nnkit.course import gradebook as GB  # noqa: E402
from nnkit.course import sandbox as SB  # noqa: E402
from nnkit.course import containment as CT  # noqa: E402
from nnkit.course import submission as SUB  # noqa: E402
from nnkit.course import worker as W  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PS1 = "ps1_perceptron"

pytestmark = pytest.mark.xdist_group("course_cli")  # the class of problem set 1 is graded once


def nnkit(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnkit.course", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


# --------------------------------------------------------------------------------------------------
# Fast unit tests (no kernel)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [("4G", 4 << 30), ("512M", 512 << 20), ("64MiB", 64 << 20),
                                         ("1000", 1000), ("1.5k", 1536)])
def test_sizes(text, value):
    assert cli.parse_size(text) == value


@pytest.mark.parametrize("bad", ["", "G4", "4X", "-1M"])
def test_bad_sizes_are_usage_errors(bad):
    with pytest.raises(Exception, match="not a size"):
        cli.parse_size(bad)


def test_shard_is_retired_and_jobs_exclude_a_scheduler(capsys):
    """--shard K/N gave way to --scheduler (docs/grading.md says why): a usage error naming both
    replacements; on a cluster the Dask workers, not --jobs, set the parallelism."""
    with pytest.raises(SystemExit) as e:
        cli.main(["grade", PS1, "--shard", "1/2"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--shard was retired" in err and "--scheduler" in err and "--student" in err
    assert "--shard" not in cli.build_parser().format_help()
    with pytest.raises(SystemExit) as e:
        cli.main(["grade", PS1, "--scheduler", "tcp://127.0.0.1:8786", "--jobs", "2"])
    assert e.value.code == 2 and "exclude each other" in capsys.readouterr().err


def test_usage_errors_exit_2_and_an_unknown_course_exits_1(tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["grade"])
    assert e.value.code == 2
    assert cli.main(["--course", str(tmp_path), "export"]) == 1


@pytest.mark.parametrize("lms, filename, student, notebook", [
    ("canvas", "doejane_1001_5001_ps1_perceptron.ipynb", "1001", "ps1_perceptron"),
    ("canvas", "roedick_LATE_1002_5002_ps1_perceptron-1.ipynb", "1002", "ps1_perceptron"),
    ("moodle", "Jane Doe_77_assignsubmission_file_ps1_perceptron.ipynb", "77", "ps1_perceptron"),
    ("moodle", "Jane van Doe_78_assignsubmission_file_/ps1_perceptron.ipynb", "78", "ps1_perceptron"),
    ("folders", "dl/alice/ps1_perceptron.ipynb", "alice", "ps1_perceptron"),
    ("folders", "dl/bob.s/ps1_perceptron/ps1_perceptron.ipynb", "bob.s", "ps1_perceptron"),
    ("flat", "carol_ps1_perceptron.ipynb", "carol", "ps1_perceptron"),
])
def test_lms_file_names(lms, filename, student, notebook):
    import re

    rx = CO.regexp_for(lms, ["ps1_perceptron"], "ps1_perceptron")
    m = re.match(rx, f"/course/downloaded/ps1_perceptron/extracted/{filename}")
    assert m, (rx, filename)
    assert m.group("student_id") == student and m.group("file_id") == notebook


@pytest.mark.parametrize("filename", ["../../etc_ps1_perceptron.ipynb", ".hidden_ps1_perceptron.ipynb",
                                      "alice_other.ipynb"])
def test_lms_names_that_are_not_students(filename):
    import re

    rx = CO.regexp_for("flat", ["ps1_perceptron"], "ps1_perceptron")
    m = re.match(rx, f"/c/downloaded/ps1_perceptron/extracted/{filename}")
    assert m is None or not m.group("student_id").startswith(".")


def test_course_cells_put_back_and_suspicious_code(tmp_path):
    root = F.make_course(tmp_path / "course", REPO)
    release = F.read_release(root, F.TINY)
    good = F.answered(root, F.TINY)
    assert SUB.normalise(release, good)[1] == []
    assert SUB.suspicious_code(good) == []
    edited = F.with_cell(good, "test_add", "assert True")
    assert SUB.normalise(release, edited)[1] == ["edited test_add"]
    deleted = F.with_cell(good, "add", "def add(a, b):\n    return a + b")
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_double"]
    nb, changes = SUB.normalise(release, deleted)
    assert changes == ["deleted test_double"]
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells] == \
        [c.metadata["nbgrader"]["grade_id"] for c in release.cells]
    cheat = F.with_cell(good, "double", "import numpy\nnumpy.allclose = lambda *a: True\ndef double(x):\n    return x")
    assert any("assigns to an attribute" in r for r in SUB.suspicious_code(cheat))


def test_sandbox_spec_round_trip_and_path_helpers(tmp_path):
    spec = SB.SandboxSpec(memory=1 << 30, uid=64000, allow=["/a", "/c"], mask=["/a/b"])
    (tmp_path / "s.json").write_text(spec.to_json())
    assert SB.SandboxSpec.from_file(str(tmp_path / "s.json")) == spec
    assert CT.outermost(["/a/b", "/a", "/c", "/ab", "/c/d/e"]) == ["/a", "/ab", "/c"]
    assert SB.under("/a/b", "/a") and not SB.under("/ab", "/a")


@pytest.mark.filterwarnings("ignore:.*not in session")
def test_gradebook_copy_and_merge_keep_manual_grades(tmp_path):
    """A re-grade replaces automatic scores and keeps what a person entered."""
    root = F.make_course(tmp_path / "course", REPO)
    main = f"sqlite:///{root / 'gradebook.db'}"
    private = f"sqlite:///{tmp_path / 'private.db'}"
    GB.copy_assignment(main, private, "nnkit", F.TINY)
    with GB.open_gradebook(private, "nnkit") as gb:
        gb.add_student("ana")
        gb.add_submission(F.TINY, "ana")
        gb.find_grade("test_add", F.TINY, F.TINY, "ana").auto_score = 1.0
        gb.find_grade("test_square", F.TINY, F.TINY, "ana").auto_score = 0.0
        for g in gb.find_submission(F.TINY, "ana").notebooks[0].grades:
            g.needs_manual_grade = False
        gb.db.commit()
    assert GB.merge_submission(private, main, "nnkit", F.TINY, "ana")
    with GB.open_gradebook(main, "nnkit") as gb:
        g = gb.find_grade("test_square", F.TINY, F.TINY, "ana")
        g.manual_score = 1.5
        gb.db.commit()
    assert GB.merge_submission(private, main, "nnkit", F.TINY, "ana")   # graded again
    sc = GB.scores(main, "nnkit", F.TINY)["ana"]
    assert sc["grades"]["test_add"][0] == 1.0
    assert sc["grades"]["test_square"][0] == 1.5                         # the manual score stays
    assert not GB.merge_submission(private, main, "nnkit", F.TINY, "nobody")
    with GB.open_gradebook(main, "nnkit") as gb:
        assert "nobody" in {s.id for s in gb.students}                   # listed in exports


# --------------------------------------------------------------------------------------------------
# A class of problem set 1
# --------------------------------------------------------------------------------------------------
WRONG = F.PS1_WRONG  # question -> a wrong answer (a classic bug) for its solution cell


@pytest.fixture(scope="module")
def ps1_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("ps1class")
    root = F.copy_course(base / "course", REPO, PS1)
    points = F.ps1_points(root)
    full = sum(points.values())
    expected = {s: full - sum(points[f"test_{q}"] for q in lost) for s, lost in F.submit_ps1_class(root).items()}
    assert len(expected) == 22

    report = base / "report.json"
    proc = nnkit("--course", root, "grade", PS1, "--jobs", "2", "--timeout", "15", "--report", report,
                 "--no-progress")
    csv_path = base / "grades.csv"
    export = nnkit("--course", root, "export", "--to", csv_path)
    rows = list(csv.DictReader(open(csv_path))) if csv_path.exists() else []
    return {"root": root, "proc": proc, "export": export, "rows": rows, "expected": expected,
            "report": json.loads(report.read_text()) if report.exists() else {}, "points": points}


@pytest.mark.notebooks
def test_grade_exits_0_and_prints_a_summary(ps1_class):
    proc = ps1_class["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    print(out)  # shown with pytest -s: what an instructor sees
    assert f"{PS1}: 22 submissions graded" in out
    for line in ("mean", "median", "question", "need manual grading", "submissions that need attention"):
        assert line in out
    for test in ps1_class["points"]:
        assert test in out                                      # failures by question
    assert "hostile_loop" in out and "cell timed out: test_forward" in out
    assert "hostile_exit" in out and "kernel stopped in mse_grad" in out
    assert "edits_test" in out and "edited test_forward" in out
    # patching numpy and the check in the kernel changes nothing (the judge decides in the grader);
    # the summary still asks the instructor to read that code
    assert re.search(r"^  hostile_patch +read the code", out, re.M), out


@pytest.mark.notebooks
def test_every_student_is_exported_with_the_score_they_earned(ps1_class):
    assert ps1_class["export"].returncode == 0, ps1_class["export"].stderr[-2000:]
    rows = {r["student_id"]: r for r in ps1_class["rows"] if r["assignment"] == PS1}
    expected = ps1_class["expected"]
    assert set(rows) == set(expected), "a submission is missing from the export"
    wrong = {s: (float(rows[s]["score"]), want) for s, want in expected.items()
             if abs(float(rows[s]["score"]) - want) > 1e-9}
    assert not wrong, f"(exported, expected) per student: {wrong}"


@pytest.mark.notebooks
def test_questions_fail_where_the_bugs_are(ps1_class):
    scores = GB.scores(f"sqlite:///{ps1_class['root'] / 'gradebook.db'}", "nnkit", PS1)
    for q in WRONG:
        grades = scores[f"wrong_{q}"]["grades"]
        assert grades[f"test_{q}"][0] == 0.0
        assert all(g[0] == g[1] for name, g in grades.items() if g[2] and name != f"test_{q}")
    # the written answer is left to a person: filled in -> needs manual grading
    assert scores["correct00"]["needs_manual_grade"]
    assert not scores["blank00"]["needs_manual_grade"]


@pytest.mark.notebooks
def test_feedback_for_one_student(ps1_class):
    proc = nnkit("--course", ps1_class["root"], "feedback", PS1, "--student", "wrong_forward")
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (ps1_class["root"] / "feedback" / "wrong_forward" / PS1 / f"{PS1}.html").read_text()
    assert "test_forward" in html and "BEGIN HIDDEN TESTS" not in html


# --------------------------------------------------------------------------------------------------
# LMS zip, release, check (the tiny course)
# --------------------------------------------------------------------------------------------------
@pytest.mark.notebooks
def test_grade_a_canvas_zip(tmp_path):
    """Also the path without the sandbox (the kernels run as the grader, as in plain nbgrader)."""
    root = F.make_course(tmp_path / "course", REPO)
    good = F.answered(root, F.TINY)
    wrong = F.with_cell(good, "add", "def add(a, b):\n    return a * b")
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("doejane_1001_5001_tiny.ipynb", nbformat.writes(good))
        z.writestr("roedick_LATE_1002_5002_tiny-1.ipynb", nbformat.writes(wrong))
        z.writestr("smithann_1003_5003_tiny.ipynb", nbformat.writes(F.read_release(root, F.TINY)))
        z.writestr("smithann_1003_5003_notes.txt", "not a notebook")
    proc = nnkit("--course", root, "grade", F.TINY, "--zip", archive, "--lms", "canvas", "--jobs", "2",
                 "--timeout", "10", "--no-sandbox",
                 "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tiny: 3 submissions graded" in proc.stdout and "no sandbox" in proc.stdout
    scores = GB.scores(f"sqlite:///{root / 'gradebook.db'}", "nnkit", F.TINY)
    full = sum(F.POINTS.values())
    assert {s: v["score"] for s, v in scores.items()} == {"1001": full, "1002": full - F.POINTS["test_add"],
                                                          "1003": 0.0}


@pytest.mark.notebooks
def test_release_regenerates_the_student_version(tmp_path):
    root = F.make_course(tmp_path / "course", REPO)
    release = root / "assignments" / F.TINY / f"{F.TINY}.ipynb"
    release.unlink()
    proc = nnkit("--course", root, "release")
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = release.read_text()
    assert "raise NotImplementedError" in text and "BEGIN HIDDEN TESTS" not in text and "return 2 * x" not in text


def _lecture(path: Path, source: str) -> None:
    import nbformat.v4 as v4

    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [v4.new_code_cell(source)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.mark.notebooks
def test_check_passes_on_a_sound_course_and_names_every_problem_of_a_broken_one(tmp_path):
    good = F.make_course(tmp_path / "good", REPO)
    _lecture(good / "lectures" / "01_ok.ipynb", "import numpy as np\nprint(np.arange(3).sum())")
    proc = nnkit("--course", good, "check", "--jobs", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no problems" in proc.stdout

    bad = F.make_course(tmp_path / "bad", REPO)
    _lecture(bad / "lectures" / "01_broken.ipynb", "raise ValueError('lecture cell fails')")
    src = bad / "solutions" / F.TINY / f"{F.TINY}.ipynb"
    nb = nbformat.read(src, 4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "intro":
            cell.source += "\nEdited after the release."                    # release out of date
        elif gid == "square":
            cell.source = "def square(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
        elif gid == "test_add":
            cell.source = "assert add is not None"                        # passes without an answer
    nbformat.write(nb, src)
    proc = nnkit("--course", bad, "check", "--jobs", "2")
    assert proc.returncode == 1
    problems = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBLEM:")]
    text = "\n".join(problems)
    assert "out of date" in text and "nnkit release tiny" in text
    assert "solution does not earn full marks on test_square" in text
    assert "untouched release already earns points on test_add" in text
    assert "01_broken.ipynb" in text and "lecture cell fails" in text
    assert len(problems) == 4, text


def test_lab_opens_the_lectures_in_jupyterlab(tmp_path, monkeypatch):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    (tmp_path / "lectures").mkdir()
    seen = {}
    monkeypatch.setattr(cli.os, "execv", lambda exe, argv: seen.update(exe=exe, argv=argv))
    assert cli.main(["--course", str(tmp_path), "lab"]) == 0
    assert seen["argv"][1:3] == ["-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path.resolve() / 'lectures'}" in seen["argv"]


def test_the_console_script_is_declared():
    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["nnkit"] == "nnkit.course.cli:main"
    assert callable(cli.main)


def test_nbgrader_refusals_are_reported_with_their_reason():
    log = ("[INFO] Converting notebook /c/autograded/s/ps1/ps1.ipynb\n"
           "[ERROR] Error occurred while starting new kernel client for kernel 1f: Kernel died before replying to kernel_info\n"
           "[ERROR] There was an error processing assignment: /c/submitted/s/ps1\n"
           "[ERROR] Traceback (most recent call last):\n    RuntimeError: Kernel died before replying to kernel_info\n"
           "[ERROR] Please see the the above traceback for details on the specific errors on the above failures.\n")
    error = ("Traceback (most recent call last):\n  File \"x\", line 1\n"
             "nbgrader.converters.base.NbGraderException: Please see the the above traceback for details.")
    assert W.nbgrader_reason(log, error) == (
        "Error occurred while starting new kernel client for kernel 1f: Kernel died before replying to kernel_info")
    assert W.nbgrader_reason("", "Traceback:\n  ...\nValueError: Notebook has a bad cell") == \
        "ValueError: Notebook has a bad cell"
