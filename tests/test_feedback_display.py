"""A failed check reads at a glance: compact HTML in the notebook, one plain sentence elsewhere.

- in a real kernel, a failing check's cell shows an HTML report (the steps that passed, the one
  that failed, the first wrong entry highlighted, a picture of where the arrays differ) and an
  error output of one line with the message — no frame of the grader's code; the cell still
  counts as failed; a hidden check's report shows no value the visible one shows;
- the report of ``check_layers`` names the first wrong layer and the layers that were right;
- a plain ``python`` script that fails a check prints the message alone;
- graded through ``nnkit grade``, the wrong answer scores 0 and its feedback file shows the
  sentence and the report, and no traceback.
"""
from __future__ import annotations

import html as html_lib
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assignment_utils import Course, answered, cells_by_id, mutation_tables, plant, questions  # noqa: E402

from nnkit.grading.core import Feedback, check_layers  # noqa: E402
from nnkit.grading.report import CheckFailed  # noqa: E402

pytestmark = pytest.mark.xdist_group("feedback_display")

ANSWER = """\
import numpy as np
from nnkit.grading import mlp as G

def sigmoid_prime(z):  # right for z <= 0, wrong (0) for z > 0
    s = 1 / (1 + np.exp(-z))
    return np.where(z > 0, 0.0, s * (1 - s))
"""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DECIMAL = re.compile(r"\d+\.\d+")


def _text(html: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A tiny notebook run in a real kernel: the visible and the hidden check of a wrong answer."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(ANSWER),
                nbformat.v4.new_code_cell("G.check_sigmoid_prime(sigmoid_prime)"),
                nbformat.v4.new_code_cell("G.check_sigmoid_prime(sigmoid_prime, hidden=True)")]
    folder = tmp_path_factory.mktemp("display")
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return nb.cells[1].outputs, nb.cells[2].outputs


def _parts(outputs):
    errors = [o for o in outputs if o.output_type == "error"]
    shown = [o for o in outputs if o.output_type == "display_data" and "text/html" in o.data]
    assert len(errors) == 1, outputs
    assert len(shown) == 1, f"the report should be shown once: {outputs}"
    assert outputs.index(shown[0]) < outputs.index(errors[0]), "the report comes before the error line"
    return errors[0], shown[0].data["text/html"]


@pytest.mark.notebooks
def test_a_failed_check_shows_one_line_and_no_grader_frames(executed):
    error, _ = _parts(executed[0])
    traceback = _ANSI.sub("", "\n".join(error.traceback))
    assert error.evalue.startswith("[sigmoid_prime] check failed, wrong values")
    assert error.evalue in traceback, traceback
    assert len(traceback.splitlines()) <= 3, traceback
    for frame in ('File "', "nnkit/grading", "core.py", "Traceback", "---------"):
        assert frame not in traceback, f"{frame!r} in the student's error output:\n{traceback}"


@pytest.mark.notebooks
def test_a_failed_check_shows_its_report(executed):
    error, html = _parts(executed[0])
    assert "nnkit-check" in html
    text = _text(html)
    assert all(f"✓ {aspect}" in text for aspect in ("type", "shape", "finite")), text
    assert "✗ values" in text, text
    first = re.search(r"class='nnkit-first-wrong'[^>]*>([^<]*)<", html)
    assert first and "sigmoid_prime(z)[3]" in first.group(1) and "expected 0.235004" in first.group(1), html
    assert "nnkit-grid" in html, "2 of 5 entries wrong: the picture of where they differ is shown"
    assert html.count("nnkit-first-wrong-square") == 1, "the first wrong entry is outlined in the picture"


@pytest.mark.notebooks
def test_a_hidden_check_shows_the_message_and_no_value(executed):
    (_, visible), (error, hidden) = _parts(executed[0]), _parts(executed[1])
    assert "hidden check failed" in error.evalue
    shown = set(_DECIMAL.findall(_text(visible)))
    assert shown, "the visible report shows values"
    assert not shown & set(_DECIMAL.findall(_text(hidden))), _text(hidden)
    assert not _DECIMAL.findall(_text(hidden)), _text(hidden)
    for part in ("nnkit-grid", "nnkit-first-wrong", "title=", "✓"):
        assert part not in hidden, f"{part!r} in a hidden check's report"
    assert _text(hidden).strip() == error.evalue


def test_the_report_of_layers_names_the_first_wrong_one():
    rng = np.random.default_rng(0)
    expected = [rng.normal(size=(3, 4)) for _ in range(3)]
    got = [e.copy() for e in expected]
    got[1][0, 2] += 1.0  # δ² wrong at one entry; δ³ right
    with pytest.raises(CheckFailed) as info:
        check_layers(Feedback("backward"), "δ", got, expected)
    report = info.value.report
    assert report.compared.subject == "δ²" and report.compared.first_wrong() == (0, 2)
    assert [s.subject for s in report.passed] == ["δ³"] * 4
    html = report.html()
    assert "nnkit-first-wrong-subject'>δ²<" in html and "δ²[0, 2]" in html
    assert "δ¹" not in _text(html).split("δ² is wrong")[0], "δ¹ was never checked"
    assert "nnkit-grid" not in html, "one wrong entry: the sentence says it all"
    with pytest.raises(CheckFailed) as info:
        check_layers(Feedback("backward", hidden=True), "δ", got, expected)
    assert info.value.report.compared.got is None and "<table" not in info.value.report.html()


def test_a_plain_script_prints_the_message_alone():
    script = "from nnkit.grading import mlp as G\nG.check_sigmoid_prime(lambda z: z * (1 - z))\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("AssertionError: [sigmoid_prime] check failed"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr


# --- graded: nnkit grade, then nbgrader's feedback -------------------------------------------------
@pytest.mark.notebooks
def test_a_graded_wrong_answer_scores_zero_and_its_feedback_reads_at_a_glance(tmp_path):
    assignment = "ps1_perceptron"
    course = Course.create(tmp_path / "nnkit", [assignment])
    perfect = answered(assignment, course.root)
    first = questions(perfect)[0]
    entry = mutation_tables()[assignment][first][0]
    source, phrase = entry[1], entry[2]  # the planted answer, and what the feedback calls it
    course.submit(assignment, "right", perfect)
    course.submit(assignment, "wrong", plant(perfect, first, source))
    report = course.grade(assignment)
    assert all(r["status"].startswith("graded") for r in report["students"].values()), report
    scores = course.scores(assignment)
    assert scores["wrong"][f"test_{first}"][0] == 0
    assert scores["right"][f"test_{first}"][0] == scores["right"][f"test_{first}"][1] > 0

    outputs = cells_by_id(course.autograded(assignment, "wrong"))[f"test_{first}"].outputs
    error, html = _parts(outputs)
    assert phrase in error.evalue and error.traceback == [f"AssertionError: {error.evalue}"]
    assert "nnkit-check" in html and phrase in html_lib.unescape(html)

    result = course.api().generate_feedback(assignment, "wrong", force=True)
    assert result["success"], result.get("error")
    page = html_lib.unescape((course.root / "feedback" / "wrong" / assignment / f"{assignment}.html").read_text())
    assert phrase in page and "nnkit-check" in page
    for frame in ('File "', "nnkit/grading", "core.py", "Traceback (most recent call last)"):
        assert frame not in page, f"{frame!r} in the feedback file"
