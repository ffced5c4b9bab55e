"""The judge: a test cell's checks run in the grader's process; the kernel only runs the answer.

A graded run never executes a test cell in the student's kernel. ``GradingExecute`` runs the
kernel side of the conversation there (``nnkit.grading.kernel_side.serve``) and hands the
cell's source — the course's own, restored from the gradebook — to ``Judge.judge``, which
executes it here with the cell's imports (``from nnkit.grading import mlp as G``) done here
and every other name (the student's ``sigmoid``) looked up in the kernel as a ``Remote``.
So the check functions of ``nnkit.grading`` compute every expected value with nnkit and
PyTorch in this process, compare here and decide here; the kernel sees only the inputs.

After the checks pass, the judge asks whether the answer only works by calling the shipped
reference (``delegation``): a static look at the answer's code, and the same checks run once
more in a throw-away child of the kernel where the references the question forbids fail.
The verdict replaces the cell's outputs, so nbgrader scores, stores and returns it as usual.
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import secrets
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from nbformat.v4 import new_output

from nnkit.grading import remote, wire
from nnkit.grading.report import html_of

from . import delegation
from .submission import is_course_cell

#: what the kernel runs in place of a test cell (``{session}`` is the conversation's number)
SERVE = "__import__('nnkit.grading.kernel_side', fromlist=['serve']).serve({session})"
#: seconds the kernel has to connect to the judge after it started
CONNECT_TIMEOUT = 30.0
#: the judge's thread pickles deep structures (a 40-step graph of Values): room to recurse
JUDGE_RECURSION, JUDGE_STACK = 20_000, 256 << 20


@dataclass
class Verdict:
    """What a test cell's checks decided, and what the notebook shows for it.

    ``html`` is a failed check's report (``nnkit.grading.report``): the cell shows it as a
    display, then the short error output that makes nbgrader score the cell 0."""

    passed: bool
    printed: str = ""
    message: str = ""
    ename: str = "AssertionError"
    delegated: list[str] = field(default_factory=list)
    remark: str = ""
    html: str = ""

    def outputs(self) -> list:
        outs = [new_output("stream", name="stdout", text=self.printed)] if self.printed else []
        if not self.passed and self.html:
            outs.append(new_output("display_data", data={"text/html": self.html, "text/plain": self.message}))
        if not self.passed:
            outs.append(new_output("error", ename=self.ename, evalue=self.message,
                                   traceback=[f"{self.ename}: {self.message}"]))
        return outs


class _PerThreadStdout(io.TextIOBase):
    """``sys.stdout`` that sends what the judge's thread prints to that thread's buffer."""

    def __init__(self, fallback):
        self.fallback, self.buffers = fallback, {}

    def write(self, text):
        target = self.buffers.get(threading.get_ident())
        return target.write(text) if target is not None else self.fallback.write(text)

    def flush(self):
        with contextlib.suppress(Exception):
            self.fallback.flush()


@contextlib.contextmanager
def _captured():
    if not isinstance(sys.stdout, _PerThreadStdout):
        sys.stdout = _PerThreadStdout(sys.stdout)
    buf = io.StringIO()
    sys.stdout.buffers[threading.get_ident()] = buf
    try:
        yield buf
    finally:
        sys.stdout.buffers.pop(threading.get_ident(), None)


class Judge:
    """The judge of one notebook: its channel to the kernel, and the verdict of each test cell."""

    def __init__(self, nb, runtime_dir: str | None = None):
        self.nb = nb
        self.runtime_dir = runtime_dir or os.environ.get("JUPYTER_RUNTIME_DIR") or "/tmp"
        self.sock: socket.socket | None = None
        self.sessions = iter(range(1, 1 << 30))
        code = [c for c in nb.cells if c.cell_type == "code"]
        self.course_sources = [_python(c.source) for c in code if is_course_cell(c)]
        self.student_sources = [_python(c.source) for c in code if not is_course_cell(c)]
        self.namespace = _imports_of(self.course_sources)
        # names the course's read-only cells define (data a test may use): made here, not taken
        # from the kernel, where the student's code could have changed them
        self.definitions = _top_level_definitions(
            [_python(c.source) for c in code if is_course_cell(c) and not c.metadata.get("nbgrader", {}).get("grade")])
        self._made: set[int] = set()

    def names(self, wanted: set[str]) -> dict:
        """The grader's namespace for a test cell: imports, and the course's own definitions of
        ``wanted`` names (their cells run here, once); what is still missing is the student's."""
        for name in sorted(wanted - set(self.namespace)):
            index = self.definitions.get(name)
            if index is not None and index not in self._made:
                self._made.add(index)
                source = self.definitions.sources[index]
                with contextlib.suppress(Exception), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exec(compile(source, "<course cell>", "exec"), self.namespace)  # noqa: S102 - the course's own
        return dict(self.namespace)

    # -- the channel --------------------------------------------------------------------------------
    def listen(self) -> tuple[socket.socket, str, str]:
        """A listening socket the kernel can reach, its path, and the token it must send."""
        path = os.path.join(self.runtime_dir, f"judge-{secrets.token_hex(4)}.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        os.chmod(path, 0o777)  # the kernel's own uid connects; the folder around it is private
        server.listen(1)
        return server, path, secrets.token_hex(16)

    def accept(self, server: socket.socket, path: str, token: str, timeout: float = CONNECT_TIMEOUT) -> bool:
        """Take the kernel's connection (the first one that knows the token); close the door."""
        self.close()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                server.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    conn, _ = server.accept()
                except (TimeoutError, OSError):
                    return False
                with contextlib.suppress(wire.ChannelProblem, OSError):
                    if wire.recv_frame(conn, deadline=time.monotonic() + 5) == token.encode():
                        self.sock = conn
                        return True
                conn.close()
            return False
        finally:
            server.close()
            with contextlib.suppress(OSError):
                os.unlink(path)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    # -- one test cell ----------------------------------------------------------------------------
    def start(self, cell, seconds: float) -> Hearing:
        """Begin judging ``cell`` in a thread; the kernel must now run ``hearing.serve_code``.
        The checks have ``seconds``, and the run without the references as many again."""
        return Hearing(self, cell, next(self.sessions), seconds)

    def question(self, cell) -> str:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "this test")
        return gid.removeprefix("test_")


class Hearing:
    """One test cell being judged, in its own thread, while the kernel serves."""

    def __init__(self, judge: Judge, cell, session: int, seconds: float):
        self.judge, self.session, self.seconds = judge, session, seconds
        self.deadline = time.monotonic() + seconds
        self.source = _python(cell.source)  # read now: the kernel runs ``serve_code`` in the cell's place
        self.question = judge.question(cell)
        self.cancel = threading.Event()
        self.verdict: Verdict | None = None
        self.serve_code = SERVE.format(session=session)
        sys.setrecursionlimit(max(sys.getrecursionlimit(), JUDGE_RECURSION))
        saved = threading.stack_size(JUDGE_STACK)
        try:
            self.thread = threading.Thread(target=self._run, daemon=True, name=f"judge-{session}")
            self.thread.start()
        finally:
            threading.stack_size(saved)

    def finish(self, grace: float = 5.0) -> Verdict:
        """The verdict, once the kernel's cell has ended (a judge still waiting gives up)."""
        self.thread.join(grace)
        self.cancel.set()
        self.thread.join()
        return self.verdict or Verdict(False, message="the grader could not judge this test", ename="JudgeError")

    def _run(self) -> None:
        try:
            self.verdict = self._hear()
        except BaseException as e:  # noqa: BLE001 - a verdict must always come out
            self.verdict = Verdict(False, message=f"the grader failed while judging ({type(e).__name__})",
                                   ename="JudgeError", remark=repr(e)[:300])

    def _hear(self) -> Verdict:
        judge = self.judge
        if judge.sock is None:
            return Verdict(False, ename="JudgeError", remark="no channel",
                           message="this test could not be judged: the kernel never connected to the grader")
        conv = remote.Conversation(judge.sock, self.session, deadline=self.deadline, cancelled=self.cancel.is_set)
        try:
            verdict, names, checks = self._checks(conv)
            if verdict.passed:
                verdict = self._delegation(conv, verdict, names, checks)
            return verdict
        finally:
            conv.done()

    def _checks(self, conv: remote.Conversation) -> tuple[Verdict, set[str], list]:
        source = self.source
        tree = ast.parse(source)
        free = _free_names(tree) - set(dir(__import__("builtins")))
        names = free - set(self.judge.names(free))
        try:
            namespace = self._fresh_namespace(conv, names)
        except wire.ChannelProblem as e:
            return _channel_verdict(e, self.deadline), names, []
        checks = _called(tree, namespace)
        return _execute(source, namespace, self.question, self.deadline), names, checks

    def _delegation(self, conv, verdict: Verdict, names: set[str], checks: list) -> Verdict:
        policy = delegation.policy_for(checks)
        static = delegation.static_hits(self.judge.student_sources, names, policy, self.judge.course_sources)
        used = [] if static else self._without_references(conv, verdict, policy, names)
        used = list(dict.fromkeys([*static, *used]))
        if not used:
            return verdict
        what = ", ".join(used[:3])
        message = (f"[{self.question}] not accepted: the answer calls {what} — the course's "
                   f"or a library's own implementation of what this question asks you to write; "
                   f"implement it yourself (numpy and your own functions)")
        return Verdict(False, printed="", message=message, ename="DelegationError", delegated=used,
                       remark=verdict.remark)

    def _without_references(self, conv, verdict: Verdict, policy, names: set[str]) -> list[str]:
        """The forbidden references the answer needed: the checks run again in a throw-away
        child of the kernel where they refuse to run ([] if it passes there)."""
        budget = self.seconds
        self.deadline = conv.deadline = time.monotonic() + budget
        try:
            with conv.forked(policy.forbid, policy.allow, budget), _without_torch():
                blocked = _execute(self.source, self._fresh_namespace(conv, names),
                                   self.question, self.deadline, quiet=True)
                touched = list(conv.touched)
        except wire.ChannelProblem as e:
            verdict.remark = f"the run without the references did not finish ({type(e).__name__}: {e})"[:300]
            return []
        return touched if not blocked.passed else []

    def _fresh_namespace(self, conv, names: set[str]) -> dict:
        """The grader's names, with ``names`` looked up in the kernel (the student's)."""
        namespace = self.judge.names(set())
        found = conv.request("lookup", names=sorted(names))
        for name, entry in (found or {}).items():
            if isinstance(entry, list) and len(entry) == 2 and entry[0] and name in names:
                namespace[name] = entry[1]
        return namespace


@contextlib.contextmanager
def _without_torch():
    from nnkit.grading.core import WITHOUT_TORCH

    token = WITHOUT_TORCH.set(True)
    try:
        yield
    finally:
        WITHOUT_TORCH.reset(token)


def _execute(source: str, namespace: dict, question: str, deadline: float, *, quiet: bool = False) -> Verdict:
    """Run the test cell's source here; an AssertionError is the check's verdict."""
    code = compile(source, f"<test of {question}>", "exec")
    with _captured() as out, warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            exec(code, namespace)  # noqa: S102 - the course's own test cell, from the gradebook
        except AssertionError as e:
            return Verdict(False, printed="" if quiet else out.getvalue(), message=str(e), html=html_of(e))
        except wire.ChannelProblem as e:
            if quiet:
                raise
            return _channel_verdict(e, deadline, out.getvalue())
        except Exception as e:  # noqa: BLE001 - e.g. NameError: the answer is not defined
            return Verdict(False, printed="" if quiet else out.getvalue(), ename=type(e).__name__,
                           message=str(e).splitlines()[0][:500] if str(e) else type(e).__name__)
    return Verdict(True, printed="" if quiet else out.getvalue())


def _channel_verdict(error: BaseException, deadline: float, printed: str = "") -> Verdict:
    if isinstance(error, wire.Cancelled) and time.monotonic() >= deadline:  # the answer's own time
        return Verdict(False, printed, ename="TimeoutError",
                       message="this test did not finish within its time limit (the answer is too slow or never "
                               "returns)")
    if isinstance(error, wire.Cancelled):
        return Verdict(False, printed, ename="JudgeError", remark="the test cell ended without an answer",
                       message="this test was not run: the kernel ended the test cell without answering the grader "
                               "(the submission changed how the kernel runs cells, or the kernel stopped)")
    if isinstance(error, wire.ChannelClosed):
        return Verdict(False, printed, ename="KernelDied", remark="channel closed",
                       message="this test could not be judged: the kernel stopped answering the grader")
    return Verdict(False, printed, ename="JudgeError", remark=str(error)[:200],
                   message="this test could not be judged: the kernel's answers to the grader were unreadable")


def _python(source: str) -> str:
    """A cell's source as plain Python (IPython's magics and shell escapes transformed away)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager  # noqa: PLC0415

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - a cell IPython cannot read is left as it is
        return source


class _Definitions(dict):
    """{name: index of the course cell that binds it at top level}, with the cells' sources."""

    sources: list[str]


def _top_level_definitions(sources: list[str]) -> _Definitions:
    out = _Definitions()
    out.sources = sources
    for index, source in enumerate(sources):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            for target in targets:
                out.update({n.id: index for n in ast.walk(target) if isinstance(n, ast.Name)})
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                out[node.name] = index
    return out


def _free_names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _called(tree: ast.AST, namespace: dict) -> list:
    """The grader-side functions a test cell calls (``G.check_sigmoid``): they carry the policy."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            obj = _resolve(node.func, namespace)
            if callable(obj) and not remote.is_remote(obj):
                out.append(obj)
    return out


def _resolve(node: ast.AST, namespace: dict):
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        if base is None or remote.is_remote(base):
            return None
        return getattr(base, node.attr, None)
    return None


def _imports_of(sources: list[str]) -> dict:
    """The grader's namespace for test cells: the course cells' imports, done here."""
    namespace: dict = {"__name__": "__nnkit_judge__"}
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if imports:
            with contextlib.suppress(Exception):
                exec(compile(ast.Module(body=imports, type_ignores=[]), "<course imports>", "exec"), namespace)  # noqa: S102
    return namespace
