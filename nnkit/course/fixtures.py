"""A tiny nbgrader course and classes of submissions, for testing the grading pipeline.

``make_course(root)`` writes a course with one short assignment, ``tiny`` (three questions, no
PyTorch, so a kernel grades it in about a second), using the real course's
``nbgrader_config.py`` when given. ``copy_course(root, repo, assignment)`` copies a real
assignment of this repository instead. ``answered``/``with_cell`` build submissions from the
release, and ``HOSTILE`` is a catalogue of submissions that attack the grader — each with what
it tries and how it must be graded.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path
from textwrap import dedent

from . import check

TINY = "tiny"

_MINIMAL_CONFIG = dedent('''\
    import os
    c = get_config()  # noqa
    _root = os.path.dirname(os.path.abspath(__file__))
    c.CourseDirectory.root = _root
    c.CourseDirectory.course_id = "nnkit"
    c.CourseDirectory.source_directory = "solutions"
    c.CourseDirectory.release_directory = "assignments"
    c.CourseDirectory.db_url = os.environ.get("NNKIT_GRADEBOOK_URL", "sqlite:///" + os.path.join(_root, "gradebook.db"))
    c.Exchange.root = os.path.join(_root, "exchange")
    c.Execute.timeout = 30
    c.Execute.raise_on_iopub_timeout = False
    c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--InteractiveShell.xmode=Minimal"]
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    c.OverwriteCells.add_missing_cells = True
    ''')


def _cell(kind: str, source: str, grade_id: str, *, grade=False, solution=False, locked=False, points=None):
    import nbformat.v4 as v4

    make = v4.new_code_cell if kind == "code" else v4.new_markdown_cell
    cell = make(dedent(source).strip("\n"))
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    cell.metadata["nbgrader"] = meta
    return cell


def tiny_notebook():
    """Three questions: double (1 point, numpy), square (2 points, nk.grading), add (1 point)."""
    import nbformat.v4 as v4

    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        _cell("markdown", "# A tiny assignment\nThree functions, three tests.", "intro", locked=True),
        _cell("code", "import numpy as np\nfrom nnkit.grading import core as GC", "setup", locked=True),
        _cell("code", """
            def double(x):
                ### BEGIN SOLUTION
                return 2 * x
                ### END SOLUTION""", "double", solution=True),
        _cell("code", """
            x = np.arange(4.0)
            assert np.allclose(double(x), 2 * x), "double(x) should be 2x"
            ### BEGIN HIDDEN TESTS
            assert np.allclose(double(-x - 1), -2 * x - 2)
            ### END HIDDEN TESTS""", "test_double", grade=True, locked=True, points=1),
        _cell("code", """
            def square(x):
                ### BEGIN SOLUTION
                return x * x
                ### END SOLUTION""", "square", solution=True),
        _cell("code", """
            fb = GC.Feedback("square")
            x = np.linspace(-2.0, 2.0, 5)
            GC.check_array(fb, "square(x)", GC.call(fb, square, x), x ** 2)
            ### BEGIN HIDDEN TESTS
            fb = GC.Feedback("square", hidden=True)
            x = np.linspace(-3.0, 5.0, 7)
            GC.check_array(fb, "square(x)", GC.call(fb, square, x), x ** 2)
            ### END HIDDEN TESTS""", "test_square", grade=True, locked=True, points=2),
        _cell("code", """
            def add(a, b):
                ### BEGIN SOLUTION
                return a + b
                ### END SOLUTION""", "add", solution=True),
        _cell("code", """
            assert add(2, 3) == 5
            ### BEGIN HIDDEN TESTS
            assert add(-1, 1) == 0
            ### END HIDDEN TESTS""", "test_add", grade=True, locked=True, points=1),
    ]
    return nb


POINTS = {"test_double": 1.0, "test_square": 2.0, "test_add": 1.0}


def make_course(root: Path, config_from: Path | None = None, *, release: bool = True) -> Path:
    """A course folder with the tiny assignment; generates the release (and the gradebook)."""
    import nbformat

    root = Path(root)
    (root / "solutions" / TINY).mkdir(parents=True, exist_ok=True)
    if config_from is not None and (Path(config_from) / "nbgrader_config.py").is_file():
        shutil.copy(Path(config_from) / "nbgrader_config.py", root / "nbgrader_config.py")
    else:
        (root / "nbgrader_config.py").write_text(_MINIMAL_CONFIG)
    nbformat.write(tiny_notebook(), root / "solutions" / TINY / f"{TINY}.ipynb")
    if release:
        generate(root, TINY)
    return root


def copy_course(root: Path, repo: Path, assignment: str, *, release: bool = True) -> Path:
    """A course folder holding one assignment of the repository ``repo``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(repo) / "nbgrader_config.py", root / "nbgrader_config.py")
    shutil.copytree(Path(repo) / "solutions" / assignment, root / "solutions" / assignment)
    if release:
        generate(root, assignment)
    return root


def generate(root: Path, assignment: str, db_url: str | None = None) -> None:
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    from .config import load_config

    cfg = load_config(Path(root), db_url=db_url)
    api = NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)
    res = api.generate_assignment(assignment, force=True, create=True)
    if not res.get("success"):
        raise RuntimeError(f"generate_assignment {assignment} failed:\n{res.get('error') or res.get('log')}")


def read_release(root: Path, assignment: str):
    import nbformat

    return nbformat.read(Path(root) / "assignments" / assignment / f"{assignment}.ipynb", 4)


def read_source(root: Path, assignment: str):
    import nbformat

    return nbformat.read(Path(root) / "solutions" / assignment / f"{assignment}.ipynb", 4)


def _meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def answered(root: Path, assignment: str):
    """The release with every solution cell filled in from the source: a perfect student."""
    return check.answered(read_release(root, assignment), read_source(root, assignment))


def with_cell(nb, grade_id: str, source: str):
    """A copy of ``nb`` whose cell ``grade_id`` holds ``source``."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if _meta(cell).get("grade_id") == grade_id:
            cell.source = dedent(source).strip("\n")
            return nb
    raise KeyError(grade_id)


def submit(root: Path, student: str, assignment: str, nb, *, timestamp: str | None = None) -> Path:
    import nbformat

    dest = Path(root) / "submitted" / student / assignment
    dest.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest / f"{assignment}.ipynb")
    if timestamp:
        (dest / "timestamp.txt").write_text(timestamp)
    return dest


# --------------------------------------------------------------------------------------------------
# Hostile submissions for the tiny assignment: {student: (cell, source, expected points per test)}
# Each prints what it managed to do ("HOSTILE <what>: <result>") so a test can read the
# autograded notebook. Expected points assume the honest answers elsewhere.
# --------------------------------------------------------------------------------------------------
FULL = dict(POINTS)

#: submissions to hand in only where kernels run as a uid of their own (root + namespaces):
#: elsewhere a fork bomb is not stopped by RLIMIT_NPROC and kill(-1) reaches the grader's processes
NEEDS_OWN_UID = {"fork_bomb", "killer"}


def _pts(**changes) -> dict:
    out = dict(FULL)
    out.update(changes)
    return out


HOSTILE = {
    # an infinite loop in the function a test calls: that test times out, the others count
    "loop": ("double", """
        def double(x):
            while True:
                pass
        """, _pts(test_double=0.0)),
    # a loop that ignores Ctrl-C: the kernel is stopped; the earlier answers keep their points
    "deaf_loop": ("add", """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
        """, _pts(test_add=0.0)),
    # a fork bomb: stopped by the process limit, cleaned up afterwards (it only goes off in
    # the sandbox, as a uid of its own: elsewhere RLIMIT_NPROC may not hold)
    "fork_bomb": ("double", """
        import os, time
        children = 0
        armed = os.environ.get("NNKIT_SANDBOX") == "1" and os.getuid() >= 1000
        for _ in range(2000 if armed else 0):
            try:
                pid = os.fork()
            except OSError as e:
                print("HOSTILE fork:", type(e).__name__, "after", children, "children")
                break
            if pid == 0:
                time.sleep(3600)
                os._exit(0)
            children += 1
        def double(x):
            return 2 * x
        """, _pts()),
    # unbounded memory in the function a test calls: MemoryError, zero for that test
    "memory_hog": ("square", """
        def square(x):
            hoard = []
            while True:
                hoard.append(np.empty(1 << 26))   # 512 MiB at a time
        """, _pts(test_square=0.0)),
    # sys.exit in a solution cell: IPython reports it, grading continues
    "sys_exit": ("add", """
        import sys
        def add(a, b):
            return a + b
        sys.exit(3)
        """, _pts()),
    # os._exit: the kernel dies; the cells before it keep their points
    "os_exit": ("square", """
        import os
        os._exit(7)
        """, _pts(test_square=0.0, test_add=0.0)),
    # kills its own kernel, and tries to kill everything else it can reach
    "killer": ("add", """
        import os, signal
        for target, pid in (("parent", os.getppid()), ("init", 1)):
            try:
                os.kill(pid, signal.SIGKILL)
                print("HOSTILE kill", target, ": done")
            except OSError as e:
                print("HOSTILE kill", target, ":", type(e).__name__)
        if os.environ.get("NNKIT_SANDBOX") == "1" and os.getuid() >= 1000:
            os.kill(-1, signal.SIGKILL)  # every other process of this user (there is none)
        import sys, time
        sys.stdout.flush()
        time.sleep(1)                   # let the output reach the grader before the end
        os.kill(os.getpid(), signal.SIGKILL)
        """, _pts(test_add=0.0)),
    # writes outside its folder and reads what it must not
    "snoop": ("double", """
        import os, glob
        def _try(label, fn):
            try:
                fn()
                print("HOSTILE", label, ": done")
            except Exception as e:
                print("HOSTILE", label, ":", type(e).__name__)
        here = os.getcwd()
        course = os.path.abspath(os.path.join(here, "..", "..", ".."))
        _try("write-tmp", lambda: open("/tmp/nnkit-hostile-was-here", "w").write("x"))
        _try("write-course", lambda: open(os.path.join(course, "hostile-was-here"), "w").write("x"))
        _try("write-home", lambda: open(os.path.expanduser("~/../hostile-was-here"), "w").write("x"))
        _try("read-solutions", lambda: open(os.path.join(course, "solutions", "tiny", "tiny.ipynb")).read())
        _try("read-gradebook", lambda: open(os.path.join(course, "gradebook.db"), "rb").read())
        _try("read-other-student", lambda: open(os.path.join(course, "submitted", "honest", "tiny", "tiny.ipynb")).read())
        _try("list-autograded", lambda: print("HOSTILE autograded-listing:", os.listdir(os.path.join(course, "autograded"))))
        _try("write-here", lambda: open("scratch.txt", "w").write("x"))
        _try("big-file", lambda: open("big.bin", "wb").write(b"x" * (200 << 20)))
        def double(x):
            return 2 * x
        """, _pts()),
    # the network
    "network": ("double", """
        import os, socket
        port = int(open("port.txt").read()) if os.path.exists("port.txt") else 9
        for host in ("127.0.0.1", "10.0.0.1"):
            try:
                socket.create_connection((host, port), timeout=2).close()
                print("HOSTILE connect", host, ": done")
            except OSError as e:
                print("HOSTILE connect", host, ":", type(e).__name__)
        def double(x):
            return 2 * x
        """, _pts()),
    # prints about a gigabyte
    "flood": ("double", """
        import sys
        def double(x):
            return 2 * x
        line = "x" * 999 + "\\n"
        for _ in range(1_000_000):
            sys.stdout.write(line)
        """, _pts()),
    # wrong answers, plus numpy's comparison replaced so that the asserts pass
    "patch_numpy": ("double", """
        import numpy
        numpy.allclose = lambda *a, **k: True
        def double(x):
            return x
        """, _pts(test_double=0.0)),
    # wrong answer, plus the check replaced by one that always passes
    "patch_grading": ("square", """
        import nnkit.grading.core as core
        core.check_array = lambda *a, **k: None
        GC.check_array = core.check_array
        def square(x):
            return x
        """, _pts(test_square=0.0)),
    # wrong answer, plus the check's code swapped in place (the function object stays the same)
    "patch_code": ("square", """
        def _always_ok(*args, **kwargs):
            return None
        GC.check_array.__code__ = _always_ok.__code__
        def square(x):
            return x
        """, _pts(test_square=0.0)),
    # wrong answer, and IPython told not to show the failure
    "hide_errors": ("add", """
        get_ipython().showtraceback = lambda *a, **k: None
        get_ipython().set_custom_exc((AssertionError,), lambda *a, **k: None)
        def add(a, b):
            return a - b
        """, _pts(test_add=0.0)),
}
