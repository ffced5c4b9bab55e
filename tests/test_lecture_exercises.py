"""The lectures' exercises: every self-check accepts a right answer, rejects a wrong one with a hint,
and says "not answered yet" for the default None, so that the notebooks run headless.

Right answers are computed here independently (numpy, or PyTorch in float64), not read from
``nnkit.exercises``; wrong answers are the classic mistakes (a sign, a missing factor, a flipped kernel).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from nnkit import exercises

LECTURES = sorted((Path(__file__).resolve().parents[1] / "lectures").glob("*.ipynb"))
CHECK = re.compile(r'nk\.exercises\.check\("(\d+\.\d+)"')


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _maxpool_backward(a, dout):
    da = np.zeros_like(a)
    for i in range(dout.shape[0]):
        for j in range(dout.shape[1]):
            blk = a[2 * i:2 * i + 2, 2 * j:2 * j + 2]
            r, c = divmod(int(np.argmax(blk)), 2)
            da[2 * i + r, 2 * j + c] = dout[i, j]
    return da


def _params(widths):
    return sum(o * i + o for i, o in zip(widths[:-1], widths[1:]))


# exercise id → (right answer, wrong answer)
ANSWERS = {
    "1.1": (1.0, 0.0),
    "1.2": (3, 4),
    "1.3": (lambda W1, b1, W2, b2: (W2 @ W1, W2 @ b1 + b2), lambda W1, b1, W2, b2: (W2 @ W1, b2)),
    "1.4": (_params((3, 4, 2)), 4 * 3 + 2 * 4),
    "1.5": ("wide" if _params((784, 512, 10)) > _params((784, 64, 64, 64, 10)) else "deep", "deep"),
    "2.1": (0.0 - 0.1 * 2 * (0.0 - 3), -0.6),
    "2.2": (2 / 8, 1 / 8),
    "2.3": (1000 // 40 * 4, 1000 // 40),
    "2.4": (lambda w, v, g, lr, b: (w - lr * (b * v + g), b * v + g), lambda w, v, g, lr, b: (w - lr * g, v)),
    "2.5": (1 / (1 - 0.9), 1.0),
    "3.1": (-3 + 1, -3),
    "3.2": (_sigmoid(1.0) + _sigmoid(1.0) * (1 - _sigmoid(1.0)), _sigmoid(1.0) * (1 - _sigmoid(1.0))),
    "3.3": (1000, 1),
    "3.4": (2 * 100, 100),
    "4.1": ((3, 5), (7, 3)),
    "4.2": ((0.5 - 1) * 0.25, -0.5),
    "4.3": (lambda dZ, A, W: (dZ.T @ A, dZ.sum(axis=0), dZ @ W), lambda dZ, A, W: (A.T @ dZ, dZ.sum(axis=0), dZ @ W)),
    "4.4": (0.1 / 4.1, 0.1 / 2.1),
    "5.1": (1.0, 0.25),
    "5.2": (np.array([1 / 3 - 1, 1 / 3, 1 / 3]), np.array([1 / 3, 1 / 3, 1 / 3])),
    "5.3": (0.25 ** 10, 0.25),
    "5.4": (lambda z: np.where(z > 0, 1.0, 0.1), lambda z: np.where(z > 0, 1.0, 0.0)),
    "5.5": (lambda z: np.max(z) + np.log(np.sum(np.exp(z - np.max(z)))), lambda z: np.log(np.sum(np.exp(np.clip(z, -700, 700))))),
    "6.1": (1 / math.sqrt(3 * 256), 1 / math.sqrt(256)),
    "6.2": (lambda w, lam: lam * np.sign(w), lambda w, lam: lam * w),
    "6.3": (math.factorial(5), 5),
    "6.4": (lambda g, c: g * min(1.0, c / np.linalg.norm(g)), lambda g, c: np.clip(g, -c, c)),
    "6.5": ((1 - 1 / 100) ** 100, 1 / 100),
    "7.1": (np.correlate(np.arange(1.0, 6.0), np.array([1.0, -1.0]), mode="valid"),
            np.convolve(np.arange(1.0, 6.0), np.array([1.0, -1.0]), mode="valid")),
    "7.2": ((32 - 5) // 2 + 1, 32 - 5 + 1),
    "7.3": (128 * 16 * 5 * 5 + 128, 128 * 16 * 5 * 5),
    "7.4": (_maxpool_backward, lambda a, dout: np.kron(dout, np.ones((2, 2))) / 4),
}


def _lecture_checks(path):
    nb = nbformat.read(path, as_version=4)
    return [m for c in nb.cells if c.cell_type == "code" for m in CHECK.findall(c.source)]


def test_every_exercise_has_right_and_wrong_answers_here():
    assert set(ANSWERS) == set(exercises.EXERCISES)


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_has_at_least_four_exercises_each_checked(path):
    nb = nbformat.read(path, as_version=4)
    headed = [c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("**Exercise ")]
    assert len(headed) >= 4, f"{path.name}: {len(headed)} exercises"
    number = path.name[:2].lstrip("0")
    ids = _lecture_checks(path)
    assert len(ids) == len(set(ids)), f"{path.name}: an exercise is checked twice: {ids}"
    for cell in headed:
        ex = re.match(r"\*\*Exercise (\d+\.\d+)\*\*", cell.source).group(1)
        assert ex.split(".")[0] == number, f"{path.name}: exercise {ex} belongs to another lecture"
        assert ex in ids or "<details>" in cell.source, f"{path.name}: exercise {ex} has no self-check or answer"
    assert set(ids) == {k for k in exercises.EXERCISES if k.split(".")[0] == number}


@pytest.mark.parametrize("ex", sorted(exercises.EXERCISES, key=lambda k: tuple(map(int, k.split(".")))))
def test_exercise_check_accepts_right_rejects_wrong(ex, capsys):
    right, wrong = ANSWERS[ex]
    assert exercises.check(ex, right) is True
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"[Exercise {ex}] right"), line
    assert exercises.check(ex, wrong) is False
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"[Exercise {ex}] not right") and "Hint:" in line and "\n" not in line, line
    assert exercises.check(ex, None) is None
    assert "not answered yet" in capsys.readouterr().out


def test_unanswered_function_stub_is_not_answered(capsys):
    assert exercises.check("2.4", lambda *a: None) is None
    assert "not answered yet" in capsys.readouterr().out
    def raises(*a):
        raise ValueError("boom")
    assert exercises.check("2.4", raises) is False
    assert "raised ValueError: boom" in capsys.readouterr().out


def test_library_does_not_import_course_or_grading():
    src = Path(exercises.__file__).read_text(encoding="utf-8")
    assert "grading" not in re.findall(r"^\s*(?:from|import)\s+(\S+)", src, re.M) and "course" not in src.split('"""', 2)[2]
