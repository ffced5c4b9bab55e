"""nbgrader configuration: this repository is the course.

    solutions/<assignment>/<assignment>.ipynb    source notebooks (solutions + hidden tests)
    assignments/<assignment>/<assignment>.ipynb  release notebooks (generated, committed)
    submitted/<student>/<assignment>/            what students hand in (not committed)
    autograded/, feedback/, gradebook.db         grading output (not committed)

Run the ordinary commands from this folder (nbgrader reads this file from the current
directory only): ``nbgrader generate_assignment ps1_perceptron --force``,
``nbgrader autograde ps1_perceptron``, ``nbgrader generate_feedback ps1_perceptron``,
``nbgrader export``, ``nbgrader validate assignments/ps1_perceptron/ps1_perceptron.ipynb``.

Environment variables:
    NNKIT_GRADEBOOK_URL   database URL of the gradebook (default sqlite:///<this folder>/gradebook.db)
    NNKIT_CELL_TIMEOUT    seconds a cell may run when grading (default 60)
"""
import os
import sys

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nnkit.course.config import normalize_db_url
from nbgrader.preprocessors import (
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    Execute,
    GetGrades,
    IncludeHeaderFooter,
    LockCells,
)

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader executes this file

# nbgrader executes this file with __file__ set to its path; the course root is its folder.
_root = os.path.dirname(os.path.abspath(__file__))

# --- course layout ------------------------------------------------------------------------
c.CourseDirectory.root = _root
c.CourseDirectory.course_id = "nnkit"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.db_url = normalize_db_url(os.environ.get(
    "NNKIT_GRADEBOOK_URL", "sqlite:///" + os.path.join(_root, "gradebook.db")
))  # a plain postgresql:// URL gets the installed driver's name (psycopg2)
# The file exchange stays inside the course (nbgrader's default is a world-writable folder
# under /usr/local/share); local grading does not use it at all.
c.Exchange.root = os.path.join(_root, "exchange")

# --- executing notebooks (autograde, validate, generate_solution) ---------------------------
c.Execute.timeout = int(os.environ.get("NNKIT_CELL_TIMEOUT", "60"))  # seconds per cell: an
# infinite loop costs this long and scores 0 for its question; the others are graded.
c.Execute.raise_on_iopub_timeout = False  # a loop that ignores Ctrl-C scores 0 instead of
# dropping the whole submission.
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",   # no history database per grading kernel
    "--InteractiveShell.xmode=Minimal",      # tracebacks without the source of hidden tests
]
# Any stderr output in a test cell scores 0 (a warning from numpy would cost the points of a
# right answer); the grading kernel inherits this environment.
os.environ.setdefault("PYTHONWARNINGS", "ignore")
os.environ.setdefault("MPLBACKEND", "Agg")
# nbgrader runs `alembic` (gradebook migrations) by name: find it beside this Python, so that
# `.venv/bin/nbgrader ...` works without activating the virtual environment first.
_bin = os.path.dirname(sys.executable)
if _bin not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _bin + os.pathsep + os.environ.get("PATH", "")

# --- release ---------------------------------------------------------------------------------
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# --- autograde -------------------------------------------------------------------------------
# A deleted test cell is put back from the gradebook (and scored), not left for manual grading;
# an edited one is always replaced by the instructor's version.
c.OverwriteCells.add_missing_cells = True

# --- feedback and solutions: never show hidden tests or mark schemes ------------------------
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, ClearMarkScheme, CSSHTMLHeaderPreprocessor]
c.GenerateSolution.preprocessors = [
    IncludeHeaderFooter, LockCells, ClearOutput, ClearMarkScheme, ClearHiddenTests, Execute,
]
