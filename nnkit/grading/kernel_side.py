"""The kernel's side of a graded run: make the calls the judge asks for, decide nothing.

In a graded run the grader connects this kernel to its judge before any student code runs
(``connect``), and runs each test cell as ``serve(session)`` instead of the cell's own code.
``serve`` reads requests from the channel — look up the student's names, call a function or a
method on given inputs, read or set an attribute, bind a name the student's code should see —
and answers with the raw results (``wire.encode``: data, or handles to objects that stay here).
Expected values, reference implementations and verdicts never come here: the judge computes and
decides in its own process (``nnkit.course.judge``).

A request ``fork`` runs the rest of a conversation in a throw-away child of this kernel in
which the shipped references the question forbids are unavailable (``blocking``), so that an
answer that only works by calling them shows it, and the student's session is not disturbed.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import socket
import sys
import time
import warnings

import numpy as np

from . import wire

_CHANNEL: socket.socket | None = None


def connect(path: str, token: str) -> None:
    """Open the channel to the judge (the grader calls this before any student code runs)."""
    global _CHANNEL
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    wire.send_frame(sock, token.encode())
    _CHANNEL = sock


def serve(session: int) -> None:
    """Answer the judge's requests of test cell ``session`` until it says it is done."""
    if _CHANNEL is None:
        raise RuntimeError("this kernel has no channel to the grader (serve runs only in graded runs)")
    _Server(_CHANNEL, session, _user_namespace()).loop()


def _user_namespace() -> dict:
    with contextlib.suppress(Exception):
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            return shell.user_ns
    return sys.modules["__main__"].__dict__


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, objects: dict):
        super().__init__(io.BytesIO(data))
        self.objects = objects

    def persistent_load(self, pid):
        kind, number = pid
        if kind != "h" or number not in self.objects:
            raise pickle.UnpicklingError(f"no object {number} in this kernel")
        return self.objects[number]


class _Server:
    def __init__(self, sock: socket.socket, session: int, namespace: dict):
        self.sock, self.session, self.ns = sock, session, namespace
        self.objects: dict[int, object] = {}
        self.numbers: dict[int, int] = {}
        self.bindings: dict[int, tuple[dict, dict]] = {}
        self.in_child = False

    # -- handles ----------------------------------------------------------------------------------
    def handle_for(self, obj) -> wire.Handle:
        number = self.numbers.get(id(obj))
        if number is None:
            number = len(self.objects) + 1
            self.objects[number], self.numbers[id(obj)] = obj, number
        return wire.Handle(number, type(obj).__name__, callable(obj))

    # -- the loop -----------------------------------------------------------------------------------
    def loop(self) -> None:
        while True:
            request = self.read()
            if request is None:
                continue
            op = request.get("op")
            if op == "done":
                return
            if op == "exit" and self.in_child:
                self.reply(request, None)
                return
            if op == "fork" and not self.in_child:
                self.fork(request)
                continue
            self.answer(request)

    def read(self) -> dict | None:
        data = wire.recv_frame(self.sock)
        try:
            request = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a request this kernel cannot read is skipped
            return None
        if not isinstance(request, dict) or request.get("session") != self.session:
            return None  # left over from an earlier test cell
        return request

    def reply(self, request: dict, value=None, *, error: BaseException | None = None, changes=()) -> None:
        body: dict = {"id": request.get("id"), "session": self.session}
        if error is not None:
            text = str(error).splitlines()[0][:500] if str(error) else ""
            body["error"] = {"type": type(error).__name__[:80], "message": text,
                             "not_implemented": isinstance(error, NotImplementedError)}
        else:
            body["value"] = value
        if changes:
            body["changes"] = list(changes)
        if self.in_child:
            from . import blocking

            body["blocked"] = list(blocking.TOUCHED)
        wire.send_frame(self.sock, wire.encode(body, self.handle_for))

    # -- one request --------------------------------------------------------------------------------
    def answer(self, request: dict) -> None:
        try:
            payload = _Unpickler(request.get("payload", b""), self.objects)
            args = payload.load()
            memo = payload.memo.copy()
        except Exception as e:  # noqa: BLE001
            self.reply(request, error=e)
            return
        op = request.get("op")
        snapshot = _snapshot(memo) if op == "call" else None
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                value = self.perform(op, args)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - SystemExit too: student code's failure is an answer
            self.reply(request, error=e, changes=_changes(memo, snapshot) if snapshot else ())
            return
        self.reply(request, value, changes=_changes(memo, snapshot) if snapshot else ())

    def perform(self, op: str, args: dict):
        if op == "lookup":
            return {name: ([True, self.ns[name]] if name in self.ns else [False, None]) for name in args["names"]}
        if op == "call":
            return args["target"](*args["args"], **args["kwargs"])
        if op == "getattr":
            return getattr(args["target"], args["name"])
        if op == "setattr":
            setattr(args["target"], args["name"], args["value"])
            return None
        if op == "operator":
            return _OPERATORS[args["name"]](args["target"], *args["args"])
        if op == "bind":
            return self.bind(args["target"], args["refs"])
        if op == "unbind":
            return self.unbind(args["token"])
        raise ValueError(f"unknown request {op!r}")

    def bind(self, target, refs: dict) -> int:
        namespace = getattr(target, "__globals__", None)
        if not isinstance(namespace, dict):
            namespace = self.ns
        missing = object()
        saved = {name: namespace.get(name, missing) for name in refs}
        namespace.update(refs)
        token = len(self.bindings) + 1
        self.bindings[token] = (namespace, {k: v for k, v in saved.items()})
        if self.in_child:
            from . import blocking

            blocking.allow_objects(refs.values())
        return token

    def unbind(self, token: int) -> None:
        namespace, saved = self.bindings.pop(token)
        for name, value in saved.items():
            if type(value) is object:
                namespace.pop(name, None)
            else:
                namespace[name] = value

    # -- the throw-away child ------------------------------------------------------------------------
    def fork(self, request: dict) -> None:
        args = pickle.loads(request["payload"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "fork() in a multi-threaded process": the child only computes
            try:
                pid = os.fork()
            except OSError as e:
                self.reply(request, error=e)
                return
        if pid == 0:  # pragma: no cover - the child
            code = 0
            try:
                _quiet_child()
                from . import blocking

                blocking.apply(args["forbid"], args["allow"], self.ns)
                self.in_child = True
                self.loop()
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        killed = _wait_child(pid, float(args["budget"]))
        self.reply(request, {"ended": True, "killed": killed})


def _quiet_child() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the child


def _wait_child(pid: int, budget: float) -> bool:
    """Wait for the child; kill it after ``budget`` seconds or on an interrupt. True if killed."""
    deadline = time.monotonic() + budget
    try:
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return False
            time.sleep(0.01)
    except BaseException:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return True


# --- what a call changed in its arguments ---------------------------------------------------------
def _snapshot(memo: dict) -> dict:
    """Copies of the arrays and attribute tables the request's arguments are made of."""
    snap = {}
    for index, obj in memo.items():
        if isinstance(obj, np.ndarray):
            snap[index] = obj.copy()
        elif _has_state(obj):
            snap[index] = dict(vars(obj))
    return snap


def _has_state(obj) -> bool:
    return hasattr(obj, "__dict__") and not isinstance(obj, (type, type(sys), type(_has_state))) \
        and isinstance(getattr(obj, "__dict__", None), dict)


def _changes(memo: dict, snapshot: dict) -> list:
    """[("array", index, new contents) | ("attr", index, name, new value)] for what the call changed."""
    out = []
    for index, before in snapshot.items():
        obj = memo[index]
        if isinstance(before, np.ndarray):
            if obj.shape != before.shape or obj.tobytes() != before.tobytes():
                out.append(("array", index, obj))
        else:
            for name, value in vars(obj).items():
                if name not in before or before[name] is not value:
                    out.append(("attr", index, name, value))
    return out


_OPERATORS = {
    "len": len,
    "getitem": lambda obj, key: obj[key],
    "setitem": lambda obj, key, value: obj.__setitem__(key, value),
    "contains": lambda obj, item: item in obj,
    "iter": lambda obj: list(obj),
    "bool": bool,
    "str": lambda obj: str(obj)[:10_000],
    "repr": lambda obj: repr(obj)[:10_000],
}
