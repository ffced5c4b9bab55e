"""``nnkit check``: the instructor's self-check after editing the course.

1. **releases in sync** — every ``solutions/<a>`` is generated again (nbgrader
   ``generate_assignment``, in a scratch copy of the course) and compared with the committed
   ``assignments/<a>``: same cells, same sources, same nbgrader metadata;
2. **solutions earn full marks** — the release with every answer filled in from the solution
   is autograded (in the grading sandbox) and must score every autograded point; the
   untouched release must score none of them (a test that passes an empty answer proves
   nothing);
3. **lectures execute** — every ``lectures/*.ipynb`` runs top to bottom in a fresh kernel
   (``execute``: plain nbclient, a finite timeout per cell, a copy of the folder as working
   directory); a cell that raises or does not finish is named.

It prints what is wrong and returns the number of problems (the command exits non-zero).
"""
from __future__ import annotations

import copy
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import config as C

SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _signature(nb) -> list[tuple]:
    out = []
    for c in nb.cells:
        m = {k: v for k, v in _meta(c).items() if k not in ("checksum",)}
        out.append((c.cell_type, c.source.strip(), tuple(sorted(m.items()))))
    return out


def answered(release_nb, source_nb):
    """The release with every solution cell filled in from the source (a perfect student)."""
    src = {_meta(c).get("grade_id"): c for c in source_nb.cells if _meta(c).get("grade_id")}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        meta = _meta(cell)
        if meta.get("solution") and meta.get("grade_id") in src:
            lines = [ln for ln in src[meta["grade_id"]].source.splitlines() if ln.strip() not in SOLUTION_MARKERS]
            cell.source = "\n".join(lines)
    return nb


def _scratch_course(root: Path, cfg, scratch: Path, assignments: list[str]) -> None:
    shutil.copy(root / C.CONFIG_FILE, scratch / C.CONFIG_FILE)
    src_name = C.directory(cfg, "source_directory", "source")
    for a in assignments:
        shutil.copytree(root / src_name / a, scratch / src_name / a)


def check_course(root: Path, assignments: list[str] | None = None, *, lectures: bool = True,
                 timeout: int = 120, jobs: int = 0, sandbox: bool = True, log=print) -> list[str]:
    import nbformat
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from . import gradebook as GB
    from .grade import GradeOptions, grade_assignment

    root = Path(root).resolve()
    cfg = C.load_config(root)
    src_dir = root / C.directory(cfg, "source_directory", "source")
    rel_dir = root / C.directory(cfg, "release_directory", "release")
    all_assignments = sorted(p.name for p in src_dir.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))) \
        if src_dir.is_dir() else []
    names = assignments or all_assignments
    problems: list[str] = []
    for a in names:
        if a not in all_assignments:
            problems.append(f"{a}: no such assignment in {src_dir.name}/")
    names = [a for a in names if a in all_assignments]
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="nnkit-check-") as tmp:
        scratch = Path(tmp) / "course"
        scratch.mkdir()
        _scratch_course(root, cfg, scratch, names)
        db = f"sqlite:///{scratch / 'gradebook.db'}"
        scfg = C.load_config(scratch, db_url=db)
        api = NbGraderAPI(coursedir=CourseDirectory(config=scfg), config=scfg)
        srel = scratch / C.directory(scfg, "release_directory", "release")
        for a in names:
            log(f"[{a}] generating the release from {src_dir.name}/{a}")
            res = api.generate_assignment(a, force=True, create=True)
            if not res.get("success"):
                problems.append(f"{a}: generate_assignment failed: {res.get('error', '').strip().splitlines()[-1:]}")
                continue
            for gen in sorted((srel / a).glob("*.ipynb")):
                committed = rel_dir / a / gen.name
                if not committed.is_file():
                    problems.append(f"{a}: {rel_dir.name}/{a}/{gen.name} is missing: run `nnkit release {a}`")
                    continue
                g, c = _signature(nbformat.read(gen, 4)), _signature(nbformat.read(committed, 4))
                if g != c:
                    where = next((i for i, (x, y) in enumerate(zip(g, c)) if x != y), min(len(g), len(c)))
                    problems.append(f"{a}: {rel_dir.name}/{a}/{gen.name} is out of date with "
                                    f"{src_dir.name}/{a} (first difference at cell {where}): run `nnkit release {a}`")
            # two fake students: a perfect one and one who hands in the release untouched
            for gen in sorted((srel / a).glob("*.ipynb")):
                source = nbformat.read(src_dir / a / gen.name, 4)
                release = nbformat.read(gen, 4)
                for student, nb in (("check-solution", answered(release, source)), ("check-release", release)):
                    dest = scratch / "submitted" / student / a
                    dest.mkdir(parents=True, exist_ok=True)
                    nbformat.write(nb, dest / gen.name)
            log(f"[{a}] autograding the solution and the untouched release")
            run = grade_assignment(scratch, GradeOptions(assignment=a, jobs=jobs or 2, sandbox=sandbox,
                                                         db_url=db, progress=False), log=lambda *x: None)
            sc = GB.scores(db, C.course_id(scfg), a)
            for student, want_full in (("check-solution", True), ("check-release", False)):
                rec = run.records.get(student, {})
                if not rec.get("status", "").startswith("graded"):
                    problems.append(f"{a}: autograding {student.split('-')[1]} failed: {rec.get('error')}")
                    continue
                lost = [name for name, (score, mx, is_code, _) in sc.get(student, {}).get("grades", {}).items()
                        if is_code and ((score < mx - 1e-9) if want_full else (score > 1e-9))]
                if lost and want_full:
                    problems.append(f"{a}: the solution does not earn full marks on {', '.join(lost)}")
                elif lost:
                    problems.append(f"{a}: the untouched release already earns points on {', '.join(lost)}")
            if run.failed:
                problems.append(f"{a}: the grader failed: {run.message}")

    if lectures:
        problems += check_lectures(root / "lectures", timeout=timeout, jobs=jobs, log=log)
    log(f"checked {len(names)} assignment(s){' and the lectures' if lectures else ''} "
        f"in {time.monotonic() - started:.0f} s: "
        + ("no problems" if not problems else f"{len(problems)} problem(s)"))
    return problems


def run_notebook(path: Path, timeout: int) -> str | None:
    """Execute a notebook in a copy of its folder; None when it ran, else what went wrong."""
    import nbformat

    from .execute import NotebookFailed, execute_notebook

    with tempfile.TemporaryDirectory(prefix="nnkit-lecture-") as tmp:
        work = Path(tmp) / path.parent.name
        shutil.copytree(path.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        try:
            nb = nbformat.read(work / path.name, 4)
            execute_notebook(nb, cwd=work, timeout=timeout, quiet=True)
        except NotebookFailed as e:
            lines = [ln for ln in str(e).splitlines() if ln.strip()]
            return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1][:300]}"
        except Exception as e:  # malformed notebook, ...
            return f"{type(e).__name__}: {e}"[:300]
    return None


def check_lectures(folder: Path, *, timeout: int = 120, jobs: int = 0, log=print) -> list[str]:
    import os

    notebooks = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
    if not notebooks:
        return []
    log(f"executing {len(notebooks)} lecture notebook(s) (at most {timeout} s per cell)")
    workers = max(1, min(jobs or os.cpu_count() or 1, len(notebooks)))
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(lambda p: (p, run_notebook(p, timeout)), notebooks))
    return [f"lectures/{p.name}: {err}" for p, err in results if err]
