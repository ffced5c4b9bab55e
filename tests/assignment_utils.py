"""Helpers for the grading-pipeline tests: a course copy in a temporary folder, planted
submissions, grading through ``nnkit grade`` (what instructors run), scores read back from
the gradebook.

Nothing here re-implements nbgrader or the grader: generating the release is nbgrader's own
``NbGraderAPI``; grading is the ``nnkit grade`` command, run in a copy of this repository's
course (``nbgrader_config.py`` + ``solutions/``).

Command line (from the repository root)::

    python tests/assignment_utils.py release [ASSIGNMENT ...]
        regenerate assignments/<name>/ from solutions/<name>/ (in a temporary course, so the
        repository's own gradebook is not touched); all assignments when none is named
"""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
RELEASE = ROOT / "assignments"
MUTATIONS_DIR = Path(__file__).resolve().parent / "mutations"
COURSE_ID = "nnkit"
MUTANT_PREFIX = "mut-"

# nbgrader runs `alembic` (and the tests run `nbgrader`) from PATH: make this interpreter's
# scripts folder visible even when the virtual environment is not activated.
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


# --- discovery ---------------------------------------------------------------------------------
def assignment_names() -> list[str]:
    """Every assignment in solutions/: a folder holding a notebook of the same name."""
    return sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").is_file()) \
        if SOLUTIONS.is_dir() else []


def source_path(assignment: str) -> Path:
    return SOLUTIONS / assignment / f"{assignment}.ipynb"


def release_path(assignment: str) -> Path:
    return RELEASE / assignment / f"{assignment}.ipynb"


def mutation_modules() -> dict:
    """{assignment: module} for every tests/mutations/<assignment>.py."""
    import importlib.util

    modules = {}
    for path in sorted(MUTATIONS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"_mutations_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[path.stem] = module
    return modules


def mutation_tables() -> dict[str, dict[str, list]]:
    """{assignment: {question: [Bug, ...]}} for every tests/mutations/<assignment>.py (delegations
    included)."""
    from mutations import Bug

    return {assignment: {qid: [Bug(*entry) for entry in entries] for qid, entries in module.MUTATIONS.items()}
            for assignment, module in mutation_modules().items()}


# --- notebooks -----------------------------------------------------------------------------------
def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def cells_by_id(nb) -> dict[str, nbformat.NotebookNode]:
    return {nbgrader_meta(c)["grade_id"]: c for c in nb.cells if nbgrader_meta(c).get("grade_id")}


def autograded_ids(nb) -> list[str]:
    """grade_ids of the autograded test cells (code cells with grade=True)."""
    return [nbgrader_meta(c)["grade_id"] for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("grade")]


def questions(nb) -> list[str]:
    """grade_ids of the code solution cells that have a test cell ``test_<id>``."""
    tests = set(autograded_ids(nb))
    return [nbgrader_meta(c)["grade_id"] for c in nb.cells
            if c.cell_type == "code" and nbgrader_meta(c).get("solution") and
            f"test_{nbgrader_meta(c)['grade_id']}" in tests]


def strip_markers(source: str) -> str:
    """A solution cell's source as a student would write it: without the solution markers."""
    lines = [ln for ln in source.splitlines() if ln.strip() not in (SOLUTION_BEGIN, SOLUTION_END)]
    return "\n".join(lines)


def answered(assignment: str, course_root: Path | None = None) -> nbformat.NotebookNode:
    """The release notebook with every solution cell filled in from the source: a perfect student."""
    release = nbformat.read(Path(course_root or ROOT) / "assignments" / assignment / f"{assignment}.ipynb", 4)
    source = cells_by_id(nbformat.read(Path(course_root or ROOT) / "solutions" / assignment /
                                       f"{assignment}.ipynb", 4))
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            cell.source = strip_markers(source[meta["grade_id"]].source)
    return nb


def plant(nb, grade_id: str, new_source: str) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose cell ``grade_id`` has ``new_source``."""
    nb = copy.deepcopy(nb)
    cell = cells_by_id(nb).get(grade_id)
    if cell is None:
        raise KeyError(f"no cell with grade_id {grade_id!r}")
    cell.source = new_source
    return nb


def delete_cell(nb, grade_id: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if nbgrader_meta(c).get("grade_id") != grade_id]
    return nb


def output_text(cell) -> str:
    """Everything a cell printed or raised, as text (what the feedback shows for it)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
            parts.extend(out.get("traceback", []))
        else:
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


def is_clean(nb) -> bool:
    return not any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


# --- the course -------------------------------------------------------------------------------------
def load_config(root: Path, **execute):
    """The course's nbgrader_config.py as nbgrader would read it, pointed at ``root``.

    NbGraderAPI does not read the config file by itself; this loads it, fixes the root and the
    gradebook to this course copy, and applies ``Execute`` overrides (e.g. ``timeout=5``).
    """
    from traitlets.config.loader import PyFileConfigLoader

    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    cfg.CourseDirectory.root = str(root)
    cfg.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    for key, value in execute.items():
        setattr(cfg.Execute, key, value)
    return cfg


def api_for(root: Path, **execute):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    cfg = load_config(root, **execute)
    return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)


@dataclass
class Course:
    """A copy of the course in ``root``: config, solutions/, and the generated assignments/."""

    root: Path
    assignments: list[str]
    execute: dict = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, assignments: list[str] | None = None, *, generate: bool = True,
               **execute) -> "Course":
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        assignments = list(assignments or assignment_names())
        shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
        if execute:  # the command line reads the config file, so overrides go into it too
            with open(root / "nbgrader_config.py", "a") as f:
                f.write("\n# test overrides\n")
                for key, value in execute.items():
                    f.write(f"c.Execute.{key} = {value!r}\n")
        for name in assignments:
            shutil.copytree(SOLUTIONS / name, root / "solutions" / name)
        course = cls(root, assignments, dict(execute))
        if generate:
            course.generate()
        return course

    def api(self):
        return api_for(self.root, **self.execute)

    def generate(self) -> None:
        api = self.api()
        for name in self.assignments:
            result = api.generate_assignment(name, force=True, create=True)
            assert result["success"], f"generate_assignment {name} failed:\n{result.get('error')}\n{result.get('log')}"

    def release(self, assignment: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root / "assignments" / assignment / f"{assignment}.ipynb", 4)

    def submit(self, assignment: str, student: str, nb, timestamp: str = "2026-01-15 12:00:00") -> None:
        folder = self.root / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")
        (folder / "timestamp.txt").write_text(timestamp)

    def students(self, assignment: str) -> list[str]:
        sub = self.root / "submitted"
        return sorted(p.name for p in sub.iterdir() if (p / assignment).is_dir()) if sub.is_dir() else []

    def grade(self, assignment: str, *, jobs: int = 2, students: list[str] | None = None,
              timeout: float = 3600) -> dict:
        """Grade ``assignment`` the way an instructor does: ``nnkit grade`` in the course folder.

        Returns the JSON report (``--report``); raises with the command's output if it failed.
        """
        report = self.root / f"grade-{assignment}.json"
        command = [sys.executable, "-m", "nnkit.course", "grade", assignment, "--jobs", str(jobs),
                   "--no-progress", "--report", str(report)]
        for student in students or ():
            command += ["--student", student]
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}
        env.pop("NNKIT_GRADEBOOK_URL", None)
        proc = subprocess.run(command, cwd=self.root, env=env, capture_output=True, text=True, timeout=timeout)
        (self.root / f"grade-{assignment}.log").write_text(proc.stdout + proc.stderr)
        if not report.is_file():
            raise RuntimeError(f"nnkit grade {assignment} failed (rc {proc.returncode}):\n"
                               f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return json.loads(report.read_text())

    def grade_all(self, jobs: int = 2) -> dict[str, float]:
        """Grade every assignment with ``nnkit grade --jobs``; the seconds each one took."""
        seconds = {}
        for assignment in self.assignments:
            start = time.perf_counter()
            self.grade(assignment, jobs=jobs)
            seconds[assignment] = time.perf_counter() - start
        return seconds

    # --- results ----------------------------------------------------------------------------
    def _roots(self) -> list[Path]:
        return [self.root]

    def scores(self, assignment: str) -> dict[str, dict[str, tuple[float, float]]]:
        """{student: {grade_id: (score, max_score)}} for the autograded (code) cells."""
        from nbgrader.api import Gradebook, MissingEntry

        out: dict[str, dict[str, tuple[float, float]]] = {}
        for root in self._roots():
            with Gradebook(f"sqlite:///{root / 'gradebook.db'}", course_id=COURSE_ID) as gb:
                for student in self.students_in(root, assignment):
                    try:
                        sub = gb.find_submission(assignment, student)
                    except MissingEntry:
                        continue
                    cells = {}
                    for nb in sub.notebooks:
                        for grade in nb.grades:
                            if grade.cell_type == "code":
                                cells[grade.name] = (float(grade.score), float(grade.max_score))
                    out[student] = cells
        return out

    @staticmethod
    def students_in(root: Path, assignment: str) -> list[str]:
        sub = root / "submitted"
        return sorted(p.name for p in sub.iterdir() if (p / assignment).is_dir()) if sub.is_dir() else []

    def autograded(self, assignment: str, student: str) -> nbformat.NotebookNode:
        for root in self._roots():
            path = root / "autograded" / student / assignment / f"{assignment}.ipynb"
            if path.is_file():
                return nbformat.read(path, 4)
        raise FileNotFoundError(f"no autograded notebook for {student}/{assignment}")

    def feedback_text(self, assignment: str, student: str, grade_id: str) -> str:
        """What the autograded test cell ``grade_id`` printed or raised."""
        return output_text(cells_by_id(self.autograded(assignment, student))[grade_id])


# --- command line --------------------------------------------------------------------------------
def _release_main(names: list[str]) -> int:
    """Regenerate assignments/<name>/ for each name in a temporary course and copy it back."""
    names = names or assignment_names()
    with tempfile.TemporaryDirectory() as tmp:
        course = Course.create(Path(tmp) / "course", names)
        for name in names:
            target = RELEASE / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(course.root / "assignments" / name, target)
            print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "release":
        sys.exit(_release_main(sys.argv[2:]))
    print(__doc__)
    sys.exit(2)
