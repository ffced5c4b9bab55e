"""Submissions from an LMS zip, through ``nbgrader zip_collect``.

nbgrader's ``zip_collect`` extracts ``downloaded/<assignment>/archive/*.zip`` and maps every
extracted file to a student with ``FileNameCollectorPlugin.named_regexp``, a regular
expression applied to the file's *absolute path* that must name the groups ``student_id``
and ``file_id``. This module copies the zip into place, picks a regular expression for the
LMS's naming scheme, and runs ``zip_collect`` in the course folder.

Naming schemes (``--lms``):

``canvas``   ``doejane_12345_678901_ps1_perceptron.ipynb`` (``doejane_LATE_12345_…`` when
             late; Canvas appends ``-1``, ``-2`` to resubmissions): the student id is the
             Canvas user id (``12345``).
``moodle``   ``Jane Doe_12345_assignsubmission_file_ps1_perceptron.ipynb`` (or the same name
             as a folder holding the notebook): the student id is the participant number.
``folders``  one folder per student: ``alice/ps1_perceptron.ipynb`` or
             ``alice/ps1_perceptron/ps1_perceptron.ipynb``.
``flat``     ``alice_ps1_perceptron.ipynb``: student id, underscore, notebook name.

Or give your own expression with ``--regexp``.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from . import config as C

#: a student id: letters, digits, '.', '-', '_' or '@', not starting with '.' (no path tricks)
_ID = r"[A-Za-z0-9][\w.@-]*"


def regexp_for(lms: str, notebooks: list[str], assignment: str) -> str:
    names = "|".join(re.escape(n) for n in sorted(notebooks, key=len, reverse=True)) or r"[^/]+?"
    if lms == "canvas":
        return (r".*/[a-z0-9]+(?:_LATE|_late)?_(?P<student_id>\d+)_\d+_"
                rf"(?P<file_id>{names})(?:-\d+)?\.ipynb$")
    if lms == "moodle":
        return (r".*/(?P<first_name>[^/_]+?) (?P<last_name>[^/_]+)_(?P<student_id>\d+)_assignsubmission_file_"
                rf"/?(?P<file_id>{names})\.ipynb$")
    if lms == "folders":
        return (rf".*/extracted/(?:[^/]+/)*?(?P<student_id>{_ID})/(?:{re.escape(assignment)}/)?"
                rf"(?P<file_id>{names})\.ipynb$")
    if lms == "flat":
        return rf".*/(?P<student_id>{_ID}?)_(?P<file_id>{names})\.ipynb$"
    raise ValueError(f"unknown LMS naming scheme {lms!r}: canvas, moodle, folders or flat")


def release_notebooks(root: Path, cfg, assignment: str) -> list[str]:
    release = root / C.directory(cfg, "release_directory", "release") / assignment
    return sorted(p.stem for p in release.glob("*.ipynb"))


def collect_zip(root: Path, assignment: str, archive: Path, *, lms: str = "canvas",
                regexp: str | None = None, db: str | None = None, log=print) -> list[str]:
    """Put ``archive`` where zip_collect expects it and run it; returns the students collected."""
    root = Path(root).resolve()
    archive = Path(archive).resolve()
    if not archive.is_file():
        raise C.CourseError(f"no such file: {archive}")
    cfg = C.load_config(root, db_url=db)
    notebooks = release_notebooks(root, cfg, assignment)
    if not notebooks:
        raise C.CourseError(f"no released notebooks for {assignment}: run `nnkit release {assignment}` first")
    rx = regexp or regexp_for(lms, notebooks, assignment)
    dest = root / "downloaded" / assignment / "archive"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copy(archive, dest / archive.name)
    submitted = root / C.directory(cfg, "submitted_directory", "submitted")
    before = {p.name for p in submitted.iterdir()} if submitted.is_dir() else set()
    log(f"collecting {archive.name} into {submitted.name}/<student>/{assignment}/ (nbgrader zip_collect)")
    C.run_nbgrader(root, "zip_collect", assignment, "--force", "--strict",
                   f"--FileNameCollectorPlugin.named_regexp={rx}", db=db, quiet=True)
    found = sorted(p.name for p in submitted.iterdir()
                   if (p / assignment).is_dir() and any((p / assignment).glob("*.ipynb"))) if submitted.is_dir() else []
    new = [s for s in found if s not in before]
    log(f"{len(found)} students have a submission for {assignment} ({len(new)} new)")
    return found
