"""The gradebook at class scale: private per-submission gradebooks, merged through nbgrader.

``nnkit grade --jobs N`` grades N submissions at once. nbgrader writes to its gradebook from
several places during one autograde (creating the student and the submission, then saving
each grade), and SQLite allows one writer at a time. Rather than hoping that the locks line
up, every submission is graded into a *private* SQLite gradebook that holds only the
assignment's structure (:func:`copy_assignment`), and the parent process, alone, copies the
result into the course gradebook (:func:`merge_submission`) — one short transaction per
student, through ``nbgrader.api.Gradebook``. The course gradebook may be the default SQLite
file or any SQLAlchemy URL nbgrader accepts, e.g. ``postgresql://user@host/db``, so graders
on several machines can share one gradebook (each grading its own students, ``--student``).

Merging follows what ``nbgrader autograde --force`` does to an existing submission: the
automatic score, the "needs manual grade" flag, the automatic comments, the timestamp and
the late penalty are replaced; manual scores, manual comments and extra credit stay.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
from typing import Iterator


@contextlib.contextmanager
def open_gradebook(url: str, course_id: str) -> Iterator["object"]:
    from nbgrader.api import Gradebook

    from .config import normalize_db_url

    gb = Gradebook(normalize_db_url(url), course_id=course_id)
    try:
        yield gb
    finally:
        gb.close()


def redact(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # pragma: no cover - not an SQLAlchemy URL
        return url


def has_assignment(url: str, course_id: str, assignment: str) -> bool:
    from nbgrader.api import MissingEntry

    with open_gradebook(url, course_id) as gb:
        try:
            a = gb.find_assignment(assignment)
        except MissingEntry:
            return False
        return len(a.notebooks) > 0


def new_sqlite_gradebook(path) -> None:
    """An empty SQLite gradebook: nbgrader's tables, stamped with its schema version.

    What ``nbgrader.api.Gradebook`` does for a new database, but in this process: nbgrader asks
    a new ``alembic`` process for the version, which takes seconds on a busy machine.
    """
    import os

    import nbgrader
    from alembic.script import ScriptDirectory
    from nbgrader.api import Base
    from sqlalchemy import create_engine, text

    head = ScriptDirectory(os.path.join(os.path.dirname(nbgrader.__file__), "alembic")).get_current_head()
    engine = create_engine(f"sqlite:///{path}")
    try:
        Base.metadata.create_all(bind=engine)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"), {"head": head})
    finally:
        engine.dispose()


def copy_assignment(src_url: str, dst_url: str, course_id: str, assignment: str) -> None:
    """Copy an assignment's structure (notebooks, cells, sources, due date) into ``dst_url``."""
    with open_gradebook(src_url, course_id) as src, open_gradebook(dst_url, course_id) as dst:
        a = src.find_assignment(assignment)
        dst.update_or_create_assignment(assignment, duedate=a.duedate)
        for nb in a.notebooks:
            dst.update_or_create_notebook(nb.name, assignment, kernelspec=nb.kernelspec)
            for c in nb.grade_cells:
                dst.update_or_create_grade_cell(c.name, nb.name, assignment, max_score=c.max_score,
                                                cell_type=c.cell_type)
            for c in nb.solution_cells:
                dst.update_or_create_solution_cell(c.name, nb.name, assignment)
            for c in nb.task_cells:
                dst.update_or_create_task_cell(c.name, nb.name, assignment, max_score=c.max_score,
                                               cell_type=c.cell_type)
            for c in nb.source_cells:
                dst.update_or_create_source_cell(c.name, nb.name, assignment, cell_type=c.cell_type,
                                                 locked=c.locked, source=c.source, checksum=c.checksum)


def student_extension(url: str, course_id: str, assignment: str, student: str) -> _dt.timedelta | None:
    from nbgrader.api import MissingEntry

    with open_gradebook(url, course_id) as gb:
        try:
            return gb.find_submission(assignment, student).extension
        except MissingEntry:
            return None


def prepare_private(template_url: str, url: str, course_id: str, assignment: str, student: str,
                    extension: _dt.timedelta | None) -> None:
    """Per-submission gradebook: the template plus the student's extension, if any."""
    if extension is None:
        return
    with open_gradebook(url, course_id) as gb:
        gb.update_or_create_student(student)
        gb.update_or_create_submission(assignment, student, extension=extension)


def merge_submission(src_url: str, dst_url: str, course_id: str, assignment: str, student: str) -> bool:
    """Copy one graded submission from a private gradebook into the course gradebook.

    Returns False when the private gradebook has no submission for the student (nbgrader
    failed before creating it); the student is still added to the course gradebook, so that
    exports list them.
    """
    from nbgrader.api import MissingEntry

    with open_gradebook(src_url, course_id) as src, open_gradebook(dst_url, course_id) as dst:
        try:
            s_student = src.find_student(student)
            info = {k: getattr(s_student, k) for k in ("first_name", "last_name", "email", "lms_user_id")
                    if getattr(s_student, k, None)}
        except MissingEntry:
            info = {}
        try:
            dst.find_student(student)
            if info:
                dst.update_or_create_student(student, **info)
        except MissingEntry:
            dst.add_student(student, **info)
        try:
            sub = src.find_submission(assignment, student)
        except MissingEntry:
            return False
        kwargs = {}
        if sub.timestamp is not None:
            kwargs["timestamp"] = sub.timestamp
        dsub = dst.update_or_create_submission(assignment, student, **kwargs)
        for nb in sub.notebooks:
            dnb = dst.find_submission_notebook(nb.notebook.name, assignment, student)
            dnb.flagged = nb.flagged
            dnb.late_submission_penalty = nb.late_submission_penalty
            for g in nb.grades:
                dg = dst.find_grade(g.cell.name, nb.notebook.name, assignment, student)
                dg.auto_score = g.auto_score
                dg.needs_manual_grade = g.needs_manual_grade if dg.manual_score is None else False
            for c in nb.comments:
                dc = dst.find_comment(c.cell.name, nb.notebook.name, assignment, student)
                dc.auto_comment = c.auto_comment
        dst.db.commit()
        del dsub
    return True


def scores(url: str, course_id: str, assignment: str) -> dict[str, dict]:
    """{student: {"score", "max_score", "needs_manual_grade", "grades": {cell: (score, max)}}}."""
    from nbgrader.api import MissingEntry

    out: dict[str, dict] = {}
    with open_gradebook(url, course_id) as gb:
        try:
            subs = gb.assignment_submissions(assignment)
        except MissingEntry:
            return out
        for sub in subs:
            grades = {}
            for nb in sub.notebooks:
                for g in nb.grades:
                    grades[g.cell.name] = (float(g.score), float(g.max_score), g.cell.type == "GradeCell"
                                           and getattr(g.cell, "cell_type", "code") == "code",
                                           g.needs_manual_grade)
            out[sub.student.id] = {
                "score": float(sub.score), "max_score": float(sub.max_score),
                "code_score": float(sub.code_score), "max_code_score": float(sub.max_code_score),
                "needs_manual_grade": bool(sub.needs_manual_grade), "grades": grades,
            }
    return out
