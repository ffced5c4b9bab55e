"""A student's submission, made safe to grade before anything else touches it.

nbgrader copies the student's folder as the grader's user (root, in a sandboxed run) and
follows symbolic links, so a link in a submission would pull in the solutions, the gradebook
or another student's notebook before any sandbox applies. :func:`vet` therefore copies the
submission first, into a staging folder that nbgrader then reads instead:

* every path is opened relative to its parent folder with ``O_NOFOLLOW``, so nothing is
  ever read through a student's link; a link, a hard link to a file elsewhere (more than one
  name), a device, FIFO or socket, a file over the size cap, anything past the file-count,
  total-size or depth caps is dropped, with a remark for the summary;
* each notebook of the assignment is parsed and rebuilt on the course's own skeleton
  (:func:`normalise`): the course's read-only and test cells in the course's order, the
  student's answers in their places, cells the student added kept next to the answer they
  followed but stripped of any nbgrader metadata. A notebook that is not a regular file or
  cannot be read is replaced by the blank release, so it scores 0 with the reason stated.
"""
from __future__ import annotations

import copy
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Caps:
    """The most a submission may hold; more is dropped with a remark."""

    file_bytes: int = 64 << 20
    total_bytes: int = 256 << 20
    files: int = 1000
    depth: int = 8


@dataclass
class Vetted:
    """What :func:`vet` copied and what it refused."""

    files: int = 0
    bytes: int = 0
    remarks: list[str] = field(default_factory=list)    # dropped files, refused notebooks
    changes: list[str] = field(default_factory=list)    # what the student did to the course's cells
    review: list[str] = field(default_factory=list)     # code a person should read


_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_dir(name: str, dir_fd: int | None) -> int:
    return os.open(name, _OPEN | os.O_DIRECTORY, dir_fd=dir_fd)


def _read_regular(name: str, dir_fd: int, cap: int) -> tuple[bytes | None, str]:
    """The bytes of ``name`` if it is a regular file with one name and at most ``cap`` bytes."""
    try:
        fd = os.open(name, _OPEN, dir_fd=dir_fd)
    except OSError as e:  # ELOOP: a symbolic link
        return None, "a symbolic link" if e.errno == 40 else f"unreadable ({e.strerror})"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        if st.st_nlink > 1:
            return None, "a hard link to a file elsewhere"
        if st.st_size > cap:
            return None, f"larger than {cap >> 20} MiB"
        chunks, left = [], cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return (None, f"larger than {cap >> 20} MiB") if len(data) > cap else (data, "")
    finally:
        os.close(fd)


def _copy_folder(dir_fd: int, dest: Path, rel: str, caps: Caps, out: Vetted, depth: int) -> None:
    # notebooks first, so that no number of other files can push one out
    for entry in sorted(os.scandir(dir_fd), key=lambda e: (not e.name.endswith(".ipynb"), e.name)):
        path = f"{rel}{entry.name}"
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode) and entry.name.endswith(".ipynb"):
            out.remarks.append(f"dropped {path}: not a regular file")
            continue
        if stat.S_ISDIR(mode):
            if depth >= caps.depth:
                out.remarks.append(f"dropped {path}/: folders nested deeper than {caps.depth}")
                continue
            sub = _open_dir(entry.name, dir_fd)
            try:
                (dest / entry.name).mkdir(exist_ok=True)
                _copy_folder(sub, dest / entry.name, path + "/", caps, out, depth + 1)
            finally:
                os.close(sub)
            continue
        if stat.S_ISLNK(mode):
            out.remarks.append(f"dropped {path}: a symbolic link")
            continue
        if not stat.S_ISREG(mode):
            out.remarks.append(f"dropped {path}: not a regular file")
            continue
        if out.files >= caps.files:
            out.remarks.append(f"dropped {path}: more than {caps.files} files")
            continue
        data, why = _read_regular(entry.name, dir_fd, min(caps.file_bytes, caps.total_bytes - out.bytes))
        if data is None:
            out.remarks.append(f"dropped {path}: {why}")
            continue
        (dest / entry.name).write_bytes(data)
        out.files += 1
        out.bytes += len(data)


def vet(submitted: Path, student: str, assignment: str, dest: Path, release: Path,
        caps: Caps = Caps()) -> Vetted:
    """Copy ``submitted/student/assignment`` into ``dest`` safely (see the module docstring).

    ``release`` is the course's release folder of the assignment: its notebooks are the
    skeletons the student's notebooks are rebuilt on.
    """
    out = Vetted()
    dest.mkdir(parents=True, exist_ok=True)
    top = _open_dir(str(submitted), None)
    try:
        try:
            sfd = _open_dir(student, top)
            try:
                afd = _open_dir(assignment, sfd)
            finally:
                os.close(sfd)
        except OSError as e:
            link = os.path.islink(submitted / student) or os.path.islink(submitted / student / assignment)
            out.remarks.append(f"the submission folder {student}/{assignment} was refused: "
                               f"{'a symbolic link' if link else e.strerror}")
        else:
            try:
                _copy_folder(afd, dest, "", caps, out, 0)
            finally:
                os.close(afd)
    finally:
        os.close(top)
    _rebuild_notebooks(dest, release, out)
    return out


def copy_tree(src: Path, dest: Path, caps: Caps = Caps()) -> Vetted:
    """Copy the folder ``src`` into ``dest`` as :func:`vet` copies a submission (nothing read
    through a link; regular files within the caps only), leaving notebooks as they are."""
    out = Vetted()
    dest.mkdir(parents=True, exist_ok=True)
    fd = _open_dir(str(src), None)
    try:
        _copy_folder(fd, dest, "", caps, out, 0)
    finally:
        os.close(fd)
    return out


def _rebuild_notebooks(dest: Path, release: Path, out: Vetted) -> None:
    import nbformat

    for skeleton in sorted(release.glob("*.ipynb")):
        target = dest / skeleton.name
        rel_nb = nbformat.read(skeleton, as_version=4)
        if not target.is_file():
            reason = next((r.split(": ", 1)[1] for r in out.remarks if r.startswith(f"dropped {skeleton.name}:")),
                          "it was not handed in")
        else:
            try:
                mine = nbformat.reads(target.read_text(encoding="utf-8"), as_version=4)
                nb, changes = normalise(rel_nb, mine)
                out.changes += changes
                out.review += suspicious_code(nb)
                nbformat.write(nb, target)
                continue
            except Exception as e:  # JSON, schema or encoding: say which
                reason = f"not a readable notebook ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        out.remarks.append(f"{skeleton.name} was not graded: {reason}; it scores 0")
        nbformat.write(rel_nb, target)   # the blank release: nbgrader records zeros


# --------------------------------------------------------------------------------------------------
# Lines a person should read (no effect on the score)
# --------------------------------------------------------------------------------------------------
_SUSPICIOUS = [
    (r"\b(np|numpy|nk|nnkit|G|torch|builtins|math|grading|mlp|core)\s*(\.\s*\w+)+\s*=[^=]", "assigns to an attribute of a library module"),
    (r"\bsetattr\s*\(", "calls setattr"),
    (r"__builtins__|\bimport\s+builtins|\bfrom\s+builtins\b", "touches builtins"),
    (r"\bctypes\b", "uses ctypes"),
    (r"\bgc\s*\.\s*get_(referrers|objects|referents)", "walks the garbage collector"),
    (r"\bsys\s*\.\s*modules\b", "changes sys.modules"),
    (r"\bsys\s*\.\s*(settrace|setprofile)|\bthreading\s*\.\s*settrace", "sets a trace function"),
    (r"\bget_ipython\s*\(", "talks to IPython"),
    (r"\bos\s*\.\s*(_exit|kill|killpg|fork|system|exec\w*|spawn\w*)\b|\bsubprocess\b|\bmultiprocessing\b",
     "starts or stops processes"),
    (r"\b(sys\s*\.\s*exit|exit|quit)\s*\(", "exits"),
    (r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b", "uses the network"),
    (r"nnkit\.course|_nnkit_guard", "touches the grader"),
]


def suspicious_code(submitted_nb) -> list[str]:
    """Lines in the student's own cells that a person should read (no effect on the score)."""
    out = []
    for cell in submitted_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("locked") or meta.get("grade"):
            continue
        where = meta.get("grade_id", "an added cell")
        for pattern, what in _SUSPICIOUS:
            if re.search(pattern, cell.source):
                out.append(f"{where} {what}")
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------------------
# The course's skeleton with the student's answers
# --------------------------------------------------------------------------------------------------
def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _gid(cell) -> str | None:
    return _meta(cell).get("grade_id")


def is_course_cell(cell) -> bool:
    """A cell the course owns: read-only, or a test (graded and not an answer)."""
    m = _meta(cell)
    return bool(m.get("locked") or (m.get("grade") and not m.get("solution")))


def normalise(release_nb, student_nb):
    """The release notebook with the student's answers and added cells put in.

    Returns ``(notebook, changes)``, where changes are sentences naming what the student did
    to the course's cells (deleted, edited, moved, duplicated, metadata changed) and whether
    they added cells claiming to be graded. The course's cells come from the release (nbgrader
    then overwrites them again from the gradebook); answers are matched by ``grade_id``.
    """
    ids = {_gid(c): c for c in release_nb.cells if _gid(c)}
    answers: dict[str, object] = {}
    attached: dict[str | None, list] = {}      # answer id (None: before any) -> added cells
    seen: dict[str, int] = {}
    changes: list[str] = []
    anchor = None
    order: list[str] = []
    for cell in student_nb.cells:
        gid = _gid(cell)
        if gid in ids:
            seen[gid] = seen.get(gid, 0) + 1
            if seen[gid] == 1:
                order.append(gid)
                _note_course_cell(ids[gid], cell, changes)
                if not is_course_cell(ids[gid]):
                    answers[gid], anchor = cell, gid
                continue
            if is_course_cell(ids[gid]):
                changes.append(f"duplicated {gid} (the copy was dropped)")
                continue
        if _meta(cell).get("grade") or _meta(cell).get("locked"):
            changes.append(f"added a cell marked as {'graded' if _meta(cell).get('grade') else 'read-only'}"
                           f"{f' ({gid})' if gid else ''} (its marks were removed)")
        attached.setdefault(anchor, []).append(_plain(cell))
    changes += [f"deleted {g}" for g, c in ids.items() if is_course_cell(c) and g not in seen]
    course_order = [g for g in ids if g in seen]
    if order != course_order:
        moved = [g for g, h in zip(order, course_order) if g != h]
        changes.append("moved " + ", ".join(moved[:4]) + " (put back in the course's order)")
    nb = copy.deepcopy(release_nb)
    first_answer = next((c for c in nb.cells if _gid(c) in ids and not is_course_cell(c)), None)
    cells = []
    for cell in nb.cells:
        gid = _gid(cell)
        if cell is first_answer:
            cells += attached.pop(None, [])
        if gid in answers:
            cell.source = answers[gid].get("source", "")
        cells.append(cell)
        cells += attached.pop(gid, [])
    for rest in attached.values():   # added cells with no answer to follow
        cells += rest
    nb.cells = cells
    return nb, list(dict.fromkeys(changes))


def _note_course_cell(course, mine, changes: list[str]) -> None:
    if not is_course_cell(course):
        return
    gid = _gid(course)
    if any(bool(_meta(mine).get(k)) != bool(_meta(course).get(k)) for k in ("grade", "solution", "locked")):
        changes.append(f"changed the nbgrader metadata of {gid}")
    elif mine.get("source", "").strip() != course.source.strip():
        changes.append(f"edited {gid}")


def _plain(cell):
    """A student's own cell: kept, without any nbgrader metadata, id or outputs."""
    import nbformat.v4 as v4

    if cell.get("cell_type") == "code":
        return v4.new_code_cell(cell.get("source", ""))
    if cell.get("cell_type") == "markdown":
        return v4.new_markdown_cell(cell.get("source", ""))
    return v4.new_raw_cell(cell.get("source", ""))
