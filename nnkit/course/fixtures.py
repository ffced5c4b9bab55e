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
        """, _pts(test_square=0.0)),
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

#: tricks on the checking itself, from inside the kernel: the judge decides in the grader's
#: process, so each earns exactly what the honest parts of the submission earn
HOSTILE.update({
    # look up the stack for the expected array (an array of the input's shape that is not it)
    "frame_reader": ("square", """
        import sys
        def square(x):
            frame = sys._getframe(1)
            while frame is not None:
                for value in list(frame.f_locals.values()):
                    if isinstance(value, np.ndarray) and value.shape == x.shape and not np.array_equal(value, x):
                        return value
                frame = frame.f_back
            return x
        """, _pts(test_square=0.0)),
    # right, unless the expected array can be found in the kernel's memory during the check
    "memory_reader": ("square", """
        import gc
        def square(x):
            mine = x * x
            seen = list(gc.get_objects())
            inside = [r for o in seen if type(o) in (dict, list, tuple) for r in gc.get_referents(o)]
            for obj in seen + inside:
                if isinstance(obj, np.ndarray) and obj is not mine and obj.shape == mine.shape \
                        and np.array_equal(obj, mine):
                    print("HOSTILE memory: found the expected array")
                    return mine + 1.0
            return mine
        """, _pts()),
    # a wrong answer that prints what a passing check prints
    "imitates_pass": ("double", """
        def double(x):
            print("[double] visible checks passed. More checks run when the assignment is graded.")
            return x
        """, _pts(test_double=0.0)),
    # the kernel's side of the conversation replaced by one that answers nothing
    "fake_server": ("add", """
        import nnkit.grading.kernel_side as _ks
        _ks.serve = lambda session: None
        def add(a, b):
            return a + b
        """, _pts(test_add=0.0)),
    # every call answered with a forged result: it helps only where the forgery is right
    "forged_answers": ("add", """
        import nnkit.grading.kernel_side as _ks
        _original = _ks._Server.perform
        def _forged(self, op, args):
            return 5 if op == "call" else _original(self, op, args)
        _ks._Server.perform = _forged
        def add(a, b):
            return a + b
        """, _pts(test_add=0.0)),
    # garbage written into the channel to the grader
    "garbage_channel": ("add", """
        import nnkit.grading.kernel_side as _ks
        if _ks._CHANNEL is not None:
            _ks._CHANNEL.sendall(b"\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x09not json!")
        def add(a, b):
            return a + b
        """, _pts(test_add=0.0)),
    # IPython's cell transformation rewrites every later cell into one that prints a pass
    "transformer": ("add", """
        def add(a, b):
            return a - b
        get_ipython().input_transformers_post.append(lambda lines: ['print("[add] visible checks passed")\\n'])
        """, _pts(test_add=0.0)),
})

HOSTILE.update({
    # a stopped kernel costs only its own cell: early deaths and hangs, then a fresh kernel
    "deaf_early": ("double", """
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
        """, _pts(test_double=0.0)),
    "exit_early": ("double", """
        import os
        os._exit(3)
        """, _pts(test_double=0.0)),
    "kill_self": ("square", """
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
        """, _pts(test_square=0.0)),
    "raise_exit_in_test": ("add", """
        def add(a, b):
            raise SystemExit(0)
        """, _pts(test_add=0.0)),
    "raise_interrupt_in_test": ("add", """
        def add(a, b):
            raise KeyboardInterrupt
        """, _pts(test_add=0.0)),
    # a value shown in a test cell is not partial credit, not even before the failure
    "partial_credit": ("double", """
        import sys
        def double(x):
            sys.displayhook(1.0)
            return x
        """, _pts(test_double=0.0)),
    "partial_credit_ipython": ("add", """
        def add(a, b):
            get_ipython().displayhook(1)
            return a - b
        """, _pts(test_add=0.0)),
    "output_mimic": ("square", """
        def square(x):
            print("All tests passed! 2/2 points")
            return x
        """, _pts(test_square=0.0)),
    # the package's own folder is shown, never the repository around it
    "read_beside_package": ("double", """
        import os, nnkit
        repo = os.path.dirname(os.path.dirname(nnkit.__file__))
        for what in ("solutions", "tests", "gradebook.db", "pyproject.toml", "nbgrader_config.py"):
            print("HOSTILE beside-package", what, ":", os.path.exists(os.path.join(repo, what)))
        print("HOSTILE repo-listing:", sorted(os.listdir(repo)))
        def double(x):
            return 2 * x
        """, _pts()),
    # everything of the course the kernel can find by walking its folders
    "course_walk": ("double", """
        import os
        here = os.getcwd()
        course = os.path.abspath(os.path.join(here, "..", "..", ".."))
        found = [os.path.join(d, f) for d, _, fs in os.walk(course) for f in fs if not d.startswith(here)]
        print("HOSTILE course-walk:", found[:5])
        def double(x):
            return 2 * x
        """, _pts()),
    # overwrite the canary files whose paths the test hands in next to the notebook
    "canary_writer": ("double", """
        import os
        for path in open("canaries.txt").read().split():
            try:
                open(path, "w").write("changed")
                print("HOSTILE canary", path, ": done")
            except OSError as e:
                print("HOSTILE canary", path, ":", type(e).__name__)
        def double(x):
            return 2 * x
        """, _pts()),
    # what other processes run, and with which command lines
    "proc_snoop": ("double", """
        import os
        others = [p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
        print("HOSTILE proc-others:", len(others))
        def double(x):
            return 2 * x
        """, _pts()),
    # every writable place is capped
    "fill_tmp": ("double", """
        import os
        def _fill(folder):
            written = 0
            try:
                for i in range(64):
                    with open(os.path.join(folder, f"fill{i}"), "wb") as f:
                        for _ in range(32):
                            f.write(b"x" * (1 << 20))
                            written += 1
                print("HOSTILE fill", folder, ": done", written)
            except OSError as e:
                print("HOSTILE fill", folder, ":", type(e).__name__, written)
        for folder in ("/tmp", "/dev/shm"):
            _fill(folder)
        def double(x):
            return 2 * x
        """, _pts()),
    "fill_runtime": ("double", """
        import os, sys
        conn = next((a for a in sys.argv if a.endswith(".json")), None)
        written = 0
        try:
            for i in range(64):
                with open(os.path.join(os.path.dirname(conn), f"fill{i}"), "wb") as f:
                    for _ in range(32):
                        f.write(b"x" * (1 << 20))
                        written += 1
            print("HOSTILE fill-runtime : done", written)
        except (OSError, TypeError) as e:
            print("HOSTILE fill-runtime :", type(e).__name__, written)
        def double(x):
            return 2 * x
        """, _pts()),
    # memory counted for the whole process tree: children that each stay under the
    # per-process limit cannot together exceed the kernel's
    "fork_memory": ("add", """
        import os, select, time
        def add(a, b):
            return a + b
        armed = os.environ.get("NNKIT_SANDBOX") == "1" and os.getuid() >= 1000
        held, pids = 0, []
        for _ in range(8 if armed else 0):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                open("/proc/self/oom_score_adj", "w").write("1000")
                block = bytearray(300 << 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                os.write(w, b"1")
                time.sleep(30)
                os._exit(0)
            os.close(w)
            pids.append(pid)
            if select.select([r], [], [], 20)[0] and os.read(r, 1) == b"1":
                held += 1
            os.close(r)
        alive = [pid for pid in pids if os.waitpid(pid, os.WNOHANG) == (0, 0)]
        for pid in pids:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        held = len(alive)   # children still holding their memory together
        print("HOSTILE fork-memory:", held, "children held 300 MiB")
        """, _pts()),
    # widget traffic is capped like output
    "comm_flood": ("double", """
        import ipywidgets as widgets
        box = widgets.Text()
        for i in range(400):
            box.value = str(i) * 250_000
        def double(x):
            return 2 * x
        """, _pts()),
})

#: honest submissions that use the libraries a student may use: never flagged, full marks
HONEST = {
    "honest_torch": ("double", """
        import torch
        w = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            ((w - 2) ** 2).sum().backward()
            opt.step()
        adam = torch.optim.Adam(torch.nn.Linear(2, 2).parameters())
        torch.nn.functional.relu(torch.autograd.grad((w * 3).sum(), w)[0])
        def double(x):
            return 2 * x
        """),
    "honest_matplotlib": ("square", """
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        plt.close(fig)
        def square(x):
            return x * x
        """),
    "honest_nnkit": ("square", """
        import nnkit as nk
        model = nk.Sequential(nk.Linear(2, 3), nk.Sigmoid(), nk.Linear(3, 1))
        loss = nk.MSELoss()
        out = model(np.ones((4, 2)))
        loss(out, np.zeros((4, 1)))
        model.backward(loss.backward())
        nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).step()
        def square(x):
            return x * x
        """),
    "honest_shows_values": ("add", """
        def add(a, b):
            return a + b
        add(2, 3)
        """),
}

HOSTILE.update({
    # its own process group, then a daemon that tries to outlive the kernel
    "kill_group": ("square", """
        import os, signal
        os.killpg(0, signal.SIGKILL)
        """, _pts(test_square=0.0)),
    "daemon": ("double", """
        import os, time
        if os.environ.get("NNKIT_SANDBOX") == "1" and os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(3600)
            os._exit(0)
        def double(x):
            return 2 * x
        """, _pts()),
    # threads count against the kernel's process limit too
    "thread_bomb": ("double", """
        import threading, time
        started = 0
        try:
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
                started += 1
            print("HOSTILE threads : done", started)
        except RuntimeError as e:
            print("HOSTILE threads : RuntimeError", started)
        def double(x):
            return 2 * x
        """, _pts()),
    # secrets in the grader's environment
    "env_snoop": ("double", """
        import os
        print("HOSTILE env:", sorted(k for k in os.environ if "SECRET" in k or "GRADEBOOK" in k or "TOKEN" in k))
        def double(x):
            return 2 * x
        """, _pts()),
    # raise its own limits, leave its namespaces, change its root
    "escape": ("double", """
        import ctypes, os, resource
        def _try(label, fn):
            try:
                fn()
                print("HOSTILE", label, ": done")
            except (OSError, ValueError) as e:
                print("HOSTILE", label, ":", type(e).__name__)
        _try("raise-memory-limit", lambda: resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2))
        _try("raise-process-limit", lambda: resource.setrlimit(resource.RLIMIT_NPROC, (100000, 100000)))
        _try("chroot", lambda: os.chroot("/"))
        libc = ctypes.CDLL(None, use_errno=True)
        def _unshare():
            if libc.unshare(0x00020000) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
        _try("unshare", _unshare)
        def _mount():
            if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
                raise OSError(ctypes.get_errno(), "mount")
        _try("mount", _mount)
        def double(x):
            return 2 * x
        """, _pts()),
})


# --------------------------------------------------------------------------------------------------
# A class of problem set 1 (``tests/test_course_cli.py``, ``tests/test_cluster.py``)
# --------------------------------------------------------------------------------------------------
PS1 = "ps1_perceptron"


def _fn(signature: str, body: str) -> str:
    return f"def {signature}:\n" + "\n".join("    " + ln for ln in dedent(body).strip().splitlines())


#: problem set 1: question -> a wrong answer (a classic bug) for its solution cell
PS1_WRONG = {
    "sigmoid": _fn("sigmoid(z)", "return 1.0 / (1.0 + np.exp(z))"),
    "sigmoid_prime": _fn("sigmoid_prime(z)", "return z * (1 - z)"),
    "forward": _fn("forward(X, W1, b1, W2, b2)", """
        Z1 = X @ W1 + b1
        A1 = sigmoid(Z1)
        return Z1, A1, A1 @ W2 + b2"""),
    "mse_grad": _fn("mse_grad(Y_hat, Y)", "return 2.0 * (Y_hat - Y)"),
    "output_layer_grads": _fn("output_layer_grads(A1, Y_hat, Y)", """
        G = mse_grad(Y_hat, Y)
        return G.T @ A1, G"""),
    "gradient_step": _fn("gradient_step(params, grads, lr)", "return [p + lr * g for p, g in zip(params, grads)]"),
}


def ps1_points(root: Path) -> dict[str, float]:
    """Points of each autograded test cell of problem set 1, from the release's metadata."""
    return {_meta(c)["grade_id"]: float(_meta(c)["points"]) for c in read_release(root, PS1).cells
            if c.cell_type == "code" and _meta(c).get("grade")}


def submit_ps1_class(root: Path) -> dict[str, list[str]]:
    """Hand in a class of 22 for problem set 1 in the course ``root``: correct (one of them
    chatty), one classic bug per question and one with two, unanswered, partly answered,
    hostile (an endless loop, a kernel that exits, monkey-patching) and one that edited a test
    cell. Returns each student's questions that must score 0."""
    release, good = read_release(root, PS1), answered(root, PS1)
    every = [k[len("test_"):] for k in ps1_points(root)]
    lost: dict[str, list[str]] = {}

    def add(student, nb, questions=()):
        submit(root, student, PS1, nb)
        lost[student] = list(questions)

    for i in range(8):
        nb = good if i != 1 else with_cell(good, "gradient_step", "def gradient_step(params, grads, lr):\n"
                                           "    print('stepping', len(params), 'parameters')\n"
                                           "    return [p - lr * g for p, g in zip(params, grads)]")
        add(f"correct{i:02d}", nb)
    for q, wrong in PS1_WRONG.items():
        add(f"wrong_{q}", with_cell(good, q, wrong), [q])
    add("wrong_two", with_cell(with_cell(good, "sigmoid_prime", PS1_WRONG["sigmoid_prime"]), "gradient_step",
                               PS1_WRONG["gradient_step"]), ["sigmoid_prime", "gradient_step"])
    add("blank00", release, every)
    add("blank01", release, every)
    sigmoid = next(c.source for c in good.cells if _meta(c).get("grade_id") == "sigmoid")
    add("partial", with_cell(release, "sigmoid", sigmoid), [q for q in every if q != "sigmoid"])
    add("hostile_loop", with_cell(good, "forward", "def forward(X, W1, b1, W2, b2):\n    while True:\n        pass"),
        ["forward"])
    # the kernel dies in mse_grad: a fresh kernel grades the rest without that cell
    add("hostile_exit", with_cell(good, "mse_grad", "import os\nos._exit(1)"), ["mse_grad"])
    add("hostile_patch", with_cell(good, "gradient_step", PS1_WRONG["gradient_step"] +
                                   "\nimport numpy\nnumpy.allclose = lambda *a, **k: True\n"
                                   "G.check_gradient_step = lambda *a, **k: None"), ["gradient_step"])
    add("edits_test", with_cell(with_cell(good, "forward", PS1_WRONG["forward"]), "test_forward", "pass"), ["forward"])
    return lost
