"""Helpers for the grading-pipeline tests: a course copy in a temporary folder, planted
submissions, autograding through nbgrader itself, scores read back from the gradebook.

Nothing here re-implements nbgrader: generating the release, autograding and exporting are
nbgrader's own ``NbGraderAPI`` and command line, run on a copy of this repository's course
(``nbgrader_config.py`` + ``solutions/``).

Command line (from the repository root)::

    python tests/assignment_utils.py release [ASSIGNMENT ...]
        regenerate assignments/<name>/ from solutions/<name>/ (in a temporary course, so the
        repository's own gradebook is not touched); all assignments when none is named
    python tests/assignment_utils.py autograde COURSE_ROOT ASSIGNMENT [ASSIGNMENT ...]
        autograde every submission of the named assignments in a course (one process)
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
from concurrent.futures import ThreadPoolExecutor
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


def mutation_tables() -> dict[str, dict]:
    """{assignment: MUTATIONS} for every tests/mutations/<assignment>.py."""
    import importlib.util

    tables = {}
    for path in sorted(MUTATIONS_DIR.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"_mutations_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tables[path.stem] = module.MUTATIONS
    return tables


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

    def autograde(self, assignment: str, students: list[str] | None = None) -> dict[str, dict]:
        """Autograde in this process through NbGraderAPI; {student: api result}."""
        api = self.api()
        results = {}
        for student in students or self.students(assignment):
            results[student] = api.autograde(assignment, student, force=True, create=True)
        return results

    def autograde_parallel(self, jobs: int = 2, timeout: float = 1800) -> dict[str, float]:
        """Autograde every submission of every assignment, split over ``jobs`` course copies.

        Each copy (a "shard") has its own gradebook, because SQLite does not take concurrent
        writers, and is graded by one process running NbGraderAPI; ``scores`` and
        ``autograded`` then read from the shards. Returns the seconds each shard took.
        """
        pairs = [(a, s) for a in self.assignments for s in self.students(a)]
        jobs = max(1, min(jobs, len(pairs)))
        shards = [pairs[i::jobs] for i in range(jobs)]
        self.shards = []
        for k, shard in enumerate(shards):
            shard_root = self.root.parent / f"{self.root.name}-shard{k}"
            if shard_root.exists():
                shutil.rmtree(shard_root)
            shard_root.mkdir()
            for item in ("nbgrader_config.py", "gradebook.db"):
                shutil.copy(self.root / item, shard_root / item)
            for sub in ("solutions", "assignments"):
                shutil.copytree(self.root / sub, shard_root / sub)
            for assignment, student in shard:
                shutil.copytree(self.root / "submitted" / student / assignment,
                                shard_root / "submitted" / student / assignment)
            self.shards.append(shard_root)

        def run(shard_root: Path) -> float:
            start = time.perf_counter()
            env = {**os.environ, "PYTHONWARNINGS": "ignore", "MPLBACKEND": "Agg"}
            env.pop("NNKIT_GRADEBOOK_URL", None)
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "autograde", str(shard_root), *self.assignments],
                cwd=shard_root, env=env, capture_output=True, text=True, timeout=timeout)
            (shard_root / "autograde.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                raise RuntimeError(f"autograding {shard_root.name} failed (rc {proc.returncode}):\n"
                                   f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
            return time.perf_counter() - start

        with ThreadPoolExecutor(jobs) as pool:
            seconds = list(pool.map(run, self.shards))
        return {s.name: t for s, t in zip(self.shards, seconds)}

    # --- results ----------------------------------------------------------------------------
    def _roots(self) -> list[Path]:
        return getattr(self, "shards", None) or [self.root]

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
_KERNEL_START_FAILED = "Kernel died before replying to kernel_info"


def _autograde_main(course_root: str, assignments: list[str]) -> int:
    """Autograde every submission of ``assignments`` in one process; print a JSON summary."""
    root = Path(course_root).resolve()
    api = api_for(root)
    failures = []
    for assignment in assignments:
        for student in Course.students_in(root, assignment):
            # planted-bug students ("mut-…") are graded without the PyTorch comparisons (seconds of
            # import per notebook); the kernel inherits this environment when it starts
            os.environ["NNKIT_GRADING_TORCH"] = "0" if student.startswith(MUTANT_PREFIX) else "1"
            result = api.autograde(assignment, student, force=True, create=True)
            for _ in range(2):
                # A kernel that died while starting (before any cell ran: on a busy machine, or two
                # kernels racing for the same free TCP port) says nothing about the submission:
                # grade it again. Any failure after the kernel started is kept as it is.
                if result["success"] or _KERNEL_START_FAILED not in (result.get("log") or ""):
                    break
                result = api.autograde(assignment, student, force=True, create=True)
            if not result["success"]:
                failures.append({"assignment": assignment, "student": student,
                                 "error": (result.get("error") or "")[-2000:], "log": (result.get("log") or "")[-2000:]})
    print(json.dumps({"failures": failures}))
    return 1 if failures else 0


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
    if len(sys.argv) >= 4 and sys.argv[1] == "autograde":
        sys.exit(_autograde_main(sys.argv[2], sys.argv[3:]))
    print(__doc__)
    sys.exit(2)
