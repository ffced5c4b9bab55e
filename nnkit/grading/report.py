"""How a failed check is shown: compact HTML in a notebook, one plain sentence everywhere else.

``Feedback.fail`` (``nnkit.grading.core``) raises ``CheckFailed``: an ``AssertionError`` whose
``str()`` is the one-line message and which carries a ``Report`` of what the check learned —
the steps that passed, what failed and, in a visible check, the two arrays it compared.

- In a notebook, IPython asks the exception for its own traceback (``_render_traceback_``):
  it gets the message alone, no frames of the grader's code, and the kernel is shown the HTML
  report first (``Report.html``). The error output stays, so nbgrader counts the cell as failed.
- In a graded run the judge puts the same two outputs into the cell (``nnkit.course.judge``).
- In a terminal (a plain ``python`` script) the uncaught failure prints the message alone.

A hidden check's report shows the plain message and nothing else: no steps, no arrays.
"""
from __future__ import annotations

import html
import sys
from dataclasses import dataclass, field

import numpy as np

#: what ``check_array`` asks of an array, in order; a failure at one means the earlier ones passed
ASPECTS = ("type", "shape", "finite", "values")
#: arrays up to this many entries (and columns) get a picture of where they differ
GRID_ENTRIES, GRID_COLUMNS = 400, 40
#: passed subjects listed in full; earlier ones are counted
SHOWN_SUBJECTS = 8

_OK, _BAD, _EDGE = "#2e7d32", "#c62828", "#b71c1c"


@dataclass(frozen=True)
class Step:
    """One thing a check asked: ``aspect`` (e.g. "values") of ``subject`` (e.g. "δ³")."""

    subject: str
    aspect: str
    ok: bool = True


@dataclass
class Comparison:
    """What a failed comparison looked at; the arrays only in a visible check."""

    subject: str
    aspect: str
    got: np.ndarray | None = None
    expected: np.ndarray | None = None
    rtol: float = 0.0
    atol: float = 0.0

    def wrong(self) -> np.ndarray | None:
        """Which entries differ (a boolean array), when both arrays are there with one shape."""
        if self.got is None or self.expected is None or np.shape(self.got) != np.shape(self.expected):
            return None
        try:
            got, expected = np.asarray(self.got, dtype=float), np.asarray(self.expected, dtype=float)
        except (TypeError, ValueError):
            return None
        with np.errstate(all="ignore"):
            return ~np.isclose(got, expected, rtol=self.rtol, atol=self.atol)

    def first_wrong(self) -> tuple[int, ...] | None:
        wrong = self.wrong()
        if wrong is None or not wrong.any():
            return None
        return tuple(int(i) for i in np.argwhere(wrong)[0])


@dataclass
class Report:
    """A failed check: its message, the steps that passed before, and what failed."""

    question: str
    message: str
    category: str
    hidden: bool = False
    passed: list[Step] = field(default_factory=list)
    compared: Comparison | None = None

    def plain(self) -> str:
        """The text for terminals, tracebacks and ``text/plain``: the one-line message."""
        return self.message

    def html(self) -> str:
        """The compact HTML shown in a notebook (a hidden check's shows only the message)."""
        if self.hidden:
            return _box(f"<div>{_esc(self.message)}</div>")
        parts = [_heading(self), *_step_lines(self), _sentence(self)]
        if self.compared is not None:
            parts += [_first_wrong_line(self.compared), _grid(self.compared)]
        return _box("".join(p for p in parts if p))


class CheckFailed(AssertionError):
    """A check's failure: ``str()`` is the message; IPython shows the report, not a traceback."""

    def __init__(self, message: str, report: Report):
        super().__init__(message)
        self.report = report
        self._published = False

    def __reduce__(self):
        return type(self), (str(self), self.report)

    def _render_traceback_(self) -> list[str]:
        """What IPython shows in place of the traceback (it asks twice: publish once)."""
        if not self._published:
            self._published = True
            publish(self.report)
        return traceback_lines(self.report.plain())


def traceback_lines(message: str) -> list[str]:
    """The error output's traceback of a failed check: its message, no frames."""
    return [f"AssertionError: {message}"]


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where a display has somewhere to go)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython  # noqa: PLC0415

    return getattr(get_ipython(), "kernel", None) is not None


def publish(report: Report) -> None:
    """Show the HTML report in the notebook, with the plain message as its ``text/plain``."""
    if not in_kernel():
        return
    from IPython.display import display  # noqa: PLC0415

    display({"text/html": report.html(), "text/plain": report.plain()}, raw=True)


def html_of(error: BaseException) -> str:
    """The HTML report of a failed check ('' for any other exception)."""
    return error.report.html() if isinstance(error, CheckFailed) else ""


# --- the HTML pieces ---------------------------------------------------------------------------
def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _box(inner: str) -> str:
    return ("<div class='nnkit-check' style='font-family:sans-serif;font-size:13px;line-height:1.5;"
            f"border-left:4px solid {_BAD};background:#fff6f6;color:#222;padding:6px 10px;margin:4px 0'>"
            f"{inner}</div>")


def _heading(report: Report) -> str:
    return (f"<div style='color:{_BAD}'><b>✗ [{_esc(report.question)}] check failed</b>"
            f" — {_esc(report.category)}</div>")


def _sentence(report: Report) -> str:
    """The message without the heading's part, its likely bug on a line of its own."""
    text = report.message
    _, found, rest = text.partition(f" failed, {report.category}: ")
    text = rest if found else text
    said, found, likely = text.partition(" Likely bug: ")
    if report.compared is not None and report.compared.first_wrong() is not None:
        said = said.split("; first wrong entry")[0].rstrip(".") + "."  # the highlighted line below says it
    out = f"<div style='margin-top:4px'>{_esc(said)}</div>"
    if found:
        out += f"<div><b>Likely bug:</b> {_esc(likely)}</div>"
    return out


def _chip(text: str, ok: bool) -> str:
    kind, colour, mark = ("nnkit-pass", _OK, "✓") if ok else ("nnkit-fail", _BAD, "✗")
    weight = "" if ok else ";font-weight:bold"
    return f"<span class='{kind}' style='color:{colour};margin-right:8px{weight}'>{mark} {_esc(text)}</span>"


def _step_lines(report: Report) -> list[str]:
    """One line per subject: its passed aspects, then the failed one on the failing subject."""
    subjects: dict[str, list[Step]] = {}
    for step in report.passed:
        subjects.setdefault(step.subject, []).append(step)
    failing = report.compared
    if failing is not None:
        subjects.pop(failing.subject, None)
    names = list(subjects)
    lines = []
    if len(names) > SHOWN_SUBJECTS:
        lines.append(f"<div style='color:{_OK}'>✓ {len(names) - SHOWN_SUBJECTS} earlier steps passed</div>")
    for name in names[-SHOWN_SUBJECTS:]:
        lines.append(_subject_line(name, [_chip(s.aspect, s.ok) for s in subjects[name]]))
    if failing is not None:
        before = ASPECTS[:ASPECTS.index(failing.aspect)] if failing.aspect in ASPECTS else ()
        lines.append(_subject_line(failing.subject, [_chip(a, True) for a in before] + [_chip(failing.aspect, False)],
                                   first_wrong=True))
    elif lines:  # after steps that passed, what failed (alone, the heading says it)
        lines.append(_subject_line("", [_chip(report.category, False)]))
    return lines


def _subject_line(subject: str, chips: list[str], *, first_wrong: bool = False) -> str:
    name = f"<mark class='nnkit-first-wrong-subject'>{_esc(subject)}</mark>" if first_wrong and subject \
        else _esc(subject)
    label = f"<span style='display:inline-block;min-width:8em'>{name}</span>" if subject else ""
    return f"<div>{label}{''.join(chips)}</div>"


def _number(x) -> str:
    return f"{float(x):.6g}"


def _first_wrong_line(compared: Comparison) -> str:
    index = compared.first_wrong()
    if index is None:
        return ""
    where = f"{compared.subject}[{', '.join(map(str, index))}]" if index else compared.subject
    got, expected = np.asarray(compared.got, dtype=float), np.asarray(compared.expected, dtype=float)
    return (f"<div>First wrong entry: <mark class='nnkit-first-wrong' style='background:#ffcdd2'>"
            f"{_esc(where)}: expected {_number(expected[index])}, got {_number(got[index])}</mark></div>")


def _grid(compared: Comparison) -> str:
    """A picture of which entries are wrong (red; the first one outlined), one square per entry,
    when the pattern says more than the sentence: some entries wrong, not one, not all."""
    wrong = compared.wrong()
    if wrong is None or wrong.ndim not in (1, 2) or not 1 < int(wrong.sum()) < wrong.size \
            or wrong.size > GRID_ENTRIES or wrong.shape[-1] > GRID_COLUMNS:
        return ""
    rows = wrong.reshape(1, -1) if wrong.ndim == 1 else wrong
    first = tuple(np.argwhere(rows)[0])
    squares = [_square(compared, (i, j), bool(bad), (i, j) == first)
               for (i, j), bad in np.ndenumerate(rows)]
    width, height = rows.shape[1] * CELL + 2, rows.shape[0] * CELL + 2
    caption = (f"where {_esc(compared.subject)} differs: {int(wrong.sum())} of {wrong.size} entries "
               "(red), the first one outlined")
    return (f"<div class='nnkit-grid' style='margin:4px 0'><svg width='{width}' height='{height}' "
            f"xmlns='http://www.w3.org/2000/svg'>{''.join(squares)}</svg>"
            f"<div style='font-size:11px;color:#555'>{caption}</div></div>")


#: the side of one entry's square in the picture, in pixels
CELL = 12


def _square(compared: Comparison, index: tuple[int, int], bad: bool, first: bool) -> str:
    """One entry's square; a wrong one says, on hover, what was expected and what came."""
    i, j = index
    at = f"x='{j * CELL + 1}' y='{i * CELL + 1}' width='{CELL - 2}' height='{CELL - 2}'"
    if not bad:
        return f"<rect {at} fill='#c8e6c9'/>"
    edge = f" stroke='{_EDGE}' stroke-width='2' class='nnkit-first-wrong-square'" if first else ""
    where = (j,) if np.ndim(compared.got) == 1 else (i, j)
    got, expected = np.asarray(compared.got, dtype=float), np.asarray(compared.expected, dtype=float)
    title = f"[{', '.join(map(str, where))}] expected {_number(expected[where])}, got {_number(got[where])}"
    return f"<rect {at} fill='#ef9a9a'{edge}><title>{_esc(title)}</title></rect>"


# --- terminals -----------------------------------------------------------------------------------
def _excepthook(etype, value, tb):
    """An uncaught failed check prints its message alone; anything else as before."""
    if isinstance(value, CheckFailed):
        print(*traceback_lines(value.report.plain()), sep="\n", file=sys.stderr)
    else:
        sys.__excepthook__(etype, value, tb)


def install_excepthook() -> None:
    """Plain Python scripts: print a failed check's message without the grader's frames
    (only where nothing else has replaced Python's own hook)."""
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
