"""Hidden checks reveal nothing: no expected value, and no magnitude one could be read from.

Every planted bug of ``tests/mutations/<assignment>.py`` is a real wrong answer. Each one is
run here in-process, without nbgrader: the solution notebook's cells are executed in a fresh
namespace with the planted cell in place of the solution, then the question's hidden check
(the line between the test cell's hidden-test markers) is called. Its failure message must not
contain a number that equals — to the digits it shows, at least 2 and at most 3 significant
ones — an entry of any expected result the check compared with, nor the largest magnitude of
one. The HTML report of the failure shows that message and nothing else.
"""
from __future__ import annotations

import contextlib
import html
import math
import os
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from assignment_utils import (  # noqa: E402
    HIDDEN_BEGIN,
    HIDDEN_END,
    cells_by_id,
    mutation_tables,
    nbgrader_meta,
    source_path,
    strip_markers,
)

import nnkit.grading.core as core  # noqa: E402
from nnkit.grading.report import html_of  # noqa: E402

TABLES = mutation_tables()
#: questions whose check trains a network for long: the hidden run costs minutes, not seconds
SLOW = {("ps3_backprop", "train"), ("ps6_convnets", "convnet")}

CASES = [pytest.param(assignment, question, index, id=f"{assignment}-{question}-{bug.what}")
         for assignment, table in TABLES.items() for question, entries in table.items()
         for index, bug in enumerate(entries)]


def _notebook(assignment: str):
    return nbformat.read(source_path(assignment), 4)


def planted_namespace(assignment: str, question: str, source: str) -> dict:
    """The solution notebook's code cells, run in a fresh namespace, ``question`` replaced by ``source``.

    Test cells and cells that fail (a demo that needs the right answer) are left out."""
    namespace: dict = {"__name__": "__planted__"}
    nb = _notebook(assignment)
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code" or meta.get("grade"):
            continue
        code = source if meta.get("grade_id") == question else strip_markers(cell.source)
        if any(line.lstrip().startswith(("%", "!")) for line in code.splitlines()):
            continue
        try:
            with core.quiet(), contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
                exec(compile(code, f"<{assignment}:{meta.get('grade_id', 'cell')}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - a demo cell that needs a right answer
            if meta.get("grade_id") == question or meta.get("solution"):
                continue
    return namespace


def hidden_lines(assignment: str, question: str) -> str:
    cell = cells_by_id(_notebook(assignment))[f"test_{question}"]
    lines = cell.source.splitlines()
    start, end = lines.index(HIDDEN_BEGIN), lines.index(HIDDEN_END)
    return "\n".join(lines[start + 1:end])


@contextlib.contextmanager
def recording_expected():
    """Every ``expected`` array the checks compare with (``core.mismatch`` and ``core.close``)."""
    seen: list[np.ndarray] = []
    real_mismatch, real_close = core.mismatch, core.close

    def mismatch(fb, name, got, expected, **kw):
        seen.append(np.asarray(expected))
        return real_mismatch(fb, name, got, expected, **kw)

    def close(got, expected, *a, **kw):
        with contextlib.suppress(TypeError, ValueError):
            seen.append(np.asarray(expected, dtype=float))
        return real_close(got, expected, *a, **kw)

    modules = [m for name, m in sys.modules.items() if name.startswith("nnkit.grading") and m is not None]
    saved = [(m, attr, getattr(m, attr)) for m in modules for attr in ("mismatch", "close") if hasattr(m, attr)]
    for m, attr, _ in saved:
        setattr(m, attr, mismatch if attr == "mismatch" else close)
    try:
        yield seen
    finally:
        for m, attr, value in saved:
            setattr(m, attr, value)


#: numbers, except speed ratios such as "0.9×" (a timing says nothing about a result)
_NUMBER = re.compile(r"(?<![\w.])[-−]?(?:\d+\.\d+(?:e[-+]?\d+)?|\d+e[-+]?\d+|\d+\.?\d*%)(?![\d×])")


def numbers_in(message: str) -> list[tuple[float, int]]:
    """(value, significant digits shown) of every non-integer number in ``message``."""
    found = []
    for text in _NUMBER.findall(message):
        text = text.replace("−", "-")
        percent = text.endswith("%")
        mantissa = text.rstrip("%").split("e")[0].lstrip("-").replace(".", "").lstrip("0")
        value = float(text.rstrip("%")) / (100 if percent else 1)
        if not percent and "." not in text and "e" not in text:
            continue
        found.append((value, max(len(mantissa), 1)))
    return found


def _round(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}")


def leaked(message: str, expected: list[np.ndarray]) -> list[str]:
    """The numbers of ``message`` that equal an expected entry or the largest magnitude of one."""
    values = set()
    for arr in expected:
        with contextlib.suppress(TypeError, ValueError):
            arr = np.asarray(arr, dtype=float).ravel()
            arr = arr[np.isfinite(arr)]
            if arr.size:
                values.update(arr[:5000].tolist())
                values.add(float(np.max(np.abs(arr))))
    values = {v for v in values if v != 0 and not float(v).is_integer()}
    hits = []
    for number, digits in numbers_in(message):
        digits = min(max(digits, 2), 3)
        if number == 0 or math.isinf(number):
            continue
        if any(_round(v, digits) == _round(number, digits) or _round(abs(v), digits) == _round(abs(number), digits)
               for v in values):
            hits.append(f"{number:.{digits}g}")
    return hits


@pytest.fixture(autouse=True)
def _no_torch(monkeypatch):
    monkeypatch.setenv("NNKIT_GRADING_TORCH", "0")


@pytest.mark.parametrize("assignment, question, index", CASES)
def test_hidden_message_reveals_no_expected_value(assignment, question, index):
    if (assignment, question) in SLOW and not os.environ.get("NNKIT_SLOW_FEEDBACK"):
        pytest.skip("trains a network; set NNKIT_SLOW_FEEDBACK=1 to include it")
    bug, source = TABLES[assignment][question][index][:2]
    namespace = planted_namespace(assignment, question, source)
    with recording_expected() as expected:
        try:
            with core.quiet(), contextlib.redirect_stdout(open(os.devnull, "w")):  # noqa: SIM115
                exec(compile(hidden_lines(assignment, question), "<hidden test>", "exec"), namespace)
        except AssertionError as err:
            message, shown = str(err), html_text(err)
        else:
            pytest.skip(f"the hidden check alone passes {bug!r} (the visible check or the judge catches it)")
    assert "hidden check" in message, message
    assert not leaked(message, expected), f"{message!r} shows {leaked(message, expected)}"
    assert shown == message, f"the HTML report of a hidden check shows more than its message: {shown!r}"


def html_text(err: AssertionError) -> str:
    """The text of a failed check's HTML report (what a notebook and the feedback file show)."""
    report = html_of(err)
    assert report, f"a failed check carries an HTML report: {err!r}"
    return html.unescape(re.sub(r"<[^>]+>", "", report)).strip()


def test_the_leak_detector_finds_a_shown_value():
    expected = [np.array([0.123456, -2.5])]
    assert leaked("largest error 0.12", expected) == ["0.12"]
    assert leaked("expected 2.50", expected) == ["2.5"]
    assert leaked("3 of 4 entries differ (rtol=1e-07, atol=1e-10)", expected) == []
