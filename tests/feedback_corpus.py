"""How well the feedback names the planted bugs of ``tests/mutations``: caught, right class, wrong
class, collateral — per problem set.

A bug is *caught* when its question loses points; its *right class* is named when the feedback's
diagnosis (a ``Likely bug: …`` or a category that is itself a diagnosis) is the bug's label; a
*wrong class* is any other diagnosis; *collateral* is another question losing points.
``tests/test_assignments.py`` asserts the targets on the class it grades anyway; this file's
command line grades the corpus on its own and prints the table::

    python tests/feedback_corpus.py [ASSIGNMENT ...]
"""
from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from assignment_utils import (
    MUTANT_PREFIX,
    Course,
    answered,
    assignment_names,
    mutation_modules,
    plant,
)
from mutations import OBSERVATIONS, Bug

#: the targets the test suite asserts over the whole corpus
TARGETS = {"caught": 1.0, "wrong": 0.0, "collateral": 0.0, "right": 0.85}

_CATEGORY = re.compile(r"check failed, (.+?): ")
_LIKELY = re.compile(r"Likely bug: (.+?)(?: — |\.\s*$)")


def planted() -> list[tuple[str, str, int, Bug, bool]]:
    """Every planted answer as (assignment, question, k, bug, is a delegation), ``k`` counting the
    question's entries, delegations included (the student it is graded as: ``student_id``)."""
    out = []
    for assignment, module in mutation_modules().items():
        delegations = {(qid, entry[0]) for qid, entries in getattr(module, "DELEGATIONS", {}).items()
                       for entry in entries}
        out += [(assignment, qid, k, Bug(*entry), (qid, entry[0]) in delegations)
                for qid, entries in module.MUTATIONS.items() for k, entry in enumerate(entries)]
    return out


def corpus() -> dict[str, dict[str, list[Bug]]]:
    """{assignment: {question: [Bug, ...]}}: the planted student mistakes, delegations left out."""
    out: dict[str, dict[str, list[Bug]]] = {}
    for assignment, qid, _k, bug, delegation in planted():
        if not delegation:
            out.setdefault(assignment, {}).setdefault(qid, []).append(bug)
    return out


def student_id(assignment: str, qid: str, k: int) -> str:
    """The student a planted bug is graded as (``k`` counts the question's entries, delegations included)."""
    return f"{MUTANT_PREFIX}{assignment.split('_')[0]}-{qid}-{k}".replace("_", "-")


def diagnoses(text: str, labels: set[str]) -> set[str]:
    """The bug classes a feedback text names: every ``Likely bug: X``, and every category that is
    one of the corpus's labels (a category such as "modifies its input" is itself a diagnosis)."""
    named = set()
    for line in text.splitlines():
        named.update(m.group(1).strip() for m in _LIKELY.finditer(line))
        named.update(c for c in (m.group(1).strip() for m in _CATEGORY.finditer(line))
                     if c in labels and c not in OBSERVATIONS)
    return named


@dataclass(frozen=True)
class Outcome:
    """What grading did with one planted bug."""

    assignment: str
    question: str
    bug: Bug
    caught: bool
    named: frozenset[str]
    collateral: tuple[str, ...]

    @property
    def right(self) -> bool:
        return self.bug.cls in self.named

    @property
    def wrong(self) -> frozenset[str]:
        return self.named - {self.bug.cls}


def outcome(course: Course, scores: dict, assignment: str, qid: str, k: int, bug: Bug,
            labels: set[str]) -> Outcome:
    student = student_id(assignment, qid, k)
    mine = scores[student]
    got, top = mine[f"test_{qid}"]
    text = course.feedback_text(assignment, student, f"test_{qid}")
    lost = tuple(sorted(gid for gid, (s, m) in mine.items() if gid != f"test_{qid}" and s != m))
    return Outcome(assignment, qid, bug, got < top, frozenset(diagnoses(text, labels)), lost)


def outcomes(course: Course, scores: dict[str, dict], assignments: list[str]) -> list[Outcome]:
    """One Outcome per corpus bug of ``assignments``, from a graded course (``scores``: per assignment)."""
    mistakes = [entry for entry in planted() if not entry[4]]
    labels = {bug.cls for *_, bug, _ in mistakes}
    return [outcome(course, scores[assignment], assignment, qid, k, bug, labels)
            for assignment, qid, k, bug, _ in mistakes if assignment in assignments]


@dataclass(frozen=True)
class Figures:
    """Rates over a set of outcomes (fractions of its bugs)."""

    name: str
    bugs: int
    caught: float
    right: float
    wrong: float
    collateral: float

    @classmethod
    def of(cls, name: str, found: list[Outcome]) -> Figures:
        n = len(found) or 1
        return cls(name, len(found), sum(o.caught for o in found) / n, sum(o.right for o in found) / n,
                   sum(bool(o.wrong) for o in found) / n, sum(bool(o.collateral) for o in found) / n)

    def row(self) -> str:
        return (f"{self.name:<20} {self.bugs:>5} {self.caught:>8.1%} {self.right:>8.1%} "
                f"{self.wrong:>8.1%} {self.collateral:>11.1%}")

    def misses(self) -> list[str]:
        """The targets these figures miss, as sentences."""
        out = []
        for key, target in TARGETS.items():
            value = getattr(self, key)
            ok = value >= target if key in ("caught", "right") else value <= target
            if not ok:
                out.append(f"{key} {value:.1%} (target {'≥' if key in ('caught', 'right') else '≤'} {target:.0%})")
        return out


def report(found: list[Outcome]) -> tuple[str, Figures]:
    """The per-problem-set table, and the figures over all of them."""
    lines = [f"{'problem set':<20} {'bugs':>5} {'caught':>8} {'right':>8} {'wrong':>8} {'collateral':>11}"]
    for assignment in sorted({o.assignment for o in found}):
        lines.append(Figures.of(assignment, [o for o in found if o.assignment == assignment]).row())
    total = Figures.of("all", found)
    lines.append(total.row())
    return "\n".join(lines), total


def details(found: list[Outcome]) -> str:
    """One line per bug that is missed, misnamed, named nothing, or costs another question."""
    lines = []
    for o in found:
        if not o.caught:
            lines.append(f"MISSED     {o.assignment} {o.question}: {o.bug.what}")
        if o.wrong:
            lines.append(f"WRONG      {o.assignment} {o.question}: {o.bug.what} [{o.bug.cls}] named {sorted(o.wrong)}")
        elif o.caught and not o.right:
            lines.append(f"UNNAMED    {o.assignment} {o.question}: {o.bug.what} [{o.bug.cls}]")
        if o.collateral:
            lines.append(f"COLLATERAL {o.assignment} {o.question}: {o.bug.what} also costs {list(o.collateral)}")
    return "\n".join(lines)


def main(names: list[str]) -> int:
    names = names or assignment_names()
    with tempfile.TemporaryDirectory() as tmp:
        course = Course.create(Path(tmp) / "nnkit", names)
        perfect = {assignment: answered(assignment, course.root) for assignment in names}
        for assignment, qid, k, bug, _ in planted():
            if assignment in names:
                course.submit(assignment, student_id(assignment, qid, k), plant(perfect[assignment], qid, bug.source))
        course.grade_all()
        found = outcomes(course, {a: course.scores(a) for a in names}, names)
    table, total = report(found)
    print(table)
    print(details(found))
    return 1 if total.misses() else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
