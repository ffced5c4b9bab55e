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
import types
import warnings

import numpy as np

from . import global_rng, wire

_CHANNEL: socket.socket | None = None


def connect(path: str, token: str) -> None:
    """Open the channel to the judge (the grader calls this before any student code runs)."""
    global _CHANNEL
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    wire.send_frame(sock, token.encode())
    _CHANNEL = sock


def preload(names) -> None:
    """Import the modules the course's cells use, as a kernel starts and before any of the
    student's code runs (the grader starts kernels ahead of need); binds no name in the
    student's namespace. A module that cannot be imported is left out."""
    import importlib

    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


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
    """Reads the judge's arguments; ("h", n) is a handle of this kernel, ("m", n) an object the
    judge sent earlier in this conversation (the same copy again: identity across calls)."""

    def __init__(self, data: bytes, server: _Server):
        super().__init__(io.BytesIO(data))
        self.server = server
        self.tables = {"h": server.objects, "m": server.mirrors}

    def find_class(self, module, name):
        found = super().find_class(module, name)
        # what the judge sends is the judge's: a function the child refuses to the student's
        # code (``blocking``) arrives as itself, not as its refusing stand-in
        return found.__wrapped__ if getattr(found, "__nnkit_blocked__", False) else found

    def persistent_load(self, pid):
        kind, number = pid
        if kind == "c":
            return _Callback(self.server, number)
        table = self.tables.get(kind, {})
        if number not in table:
            raise pickle.UnpicklingError(f"no object {kind}{number} in this kernel")
        return table[number]


class _Server:
    def __init__(self, sock: socket.socket, session: int, namespace: dict):
        self.sock, self.session, self.ns = sock, session, namespace
        self.objects: dict[int, object] = {}
        self.numbers: dict[int, int] = {}
        self.bindings: dict[int, tuple[dict, dict]] = {}
        self.mirrors: dict[int, object] = {}     # the judge's objects, by the judge's numbers
        self.snapshots: dict[int, object] = {}   # their state after the last request
        self.mirror_ids: dict[int, int] = {}
        self.in_child = False
        self.rng_moved: list[str] = []   # the global generators the last call moved
        self.fork_tag = None                     # in a throw-away child: the number of its fork request

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
        if request.get("fork") != self.fork_tag:
            return None  # meant for a throw-away child that has ended (or for its parent)
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
        if self.rng_moved:
            body["global_rng"] = self.rng_moved
        if self.in_child:
            from . import blocking

            body["blocked"] = list(blocking.TOUCHED)
        wire.send_frame(self.sock, _Answer(self).encode(body))

    # -- one request --------------------------------------------------------------------------------
    def answer(self, request: dict) -> None:
        try:
            payload = _Unpickler(request.get("payload", b""), self)
            args = payload.load()
            self.register(payload.memo.copy(), request.get("mirror", ()))
        except Exception as e:  # noqa: BLE001
            self.reply(request, error=e)
            return
        rng_before, value, error = global_rng.states(), None, None
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                value = self.perform(request.get("op"), args)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - SystemExit too: student code's failure is an answer
            error = e
        # the checks ask whether an answer drew from or reseeded a global generator
        self.rng_moved = global_rng.moved(rng_before, global_rng.states())
        try:
            self.reply(request, value, error=error, changes=self.changes())
        finally:
            self.rng_moved = []

    def mirror_number(self, obj) -> int | None:
        return self.mirror_ids.get(id(obj))

    def register(self, memo: dict, mirror) -> None:
        """Keep the judge's stateful objects of this request under the judge's numbers."""
        for index, number in mirror:
            obj = memo.get(index)
            if obj is not None and (isinstance(obj, np.ndarray) or type(obj) in wire.CONTAINERS or _has_state(obj)):
                self.mirrors[number] = obj
                self.mirror_ids[id(obj)] = number
                self.snapshots[number] = _state(obj)

    def changes(self) -> list:
        """What the last request changed in the judge's objects: arrays' contents, the items of
        lists and dicts, attributes."""
        out = []
        for number, obj in self.mirrors.items():
            before = self.snapshots[number]
            if isinstance(obj, np.ndarray):
                if obj.shape != before.shape or obj.tobytes() != before.tobytes():
                    out.append(("array", number, obj))
            elif type(obj) in wire.CONTAINERS:
                out += self._item_changes(number, obj, before)
            else:
                out += [("attr", number, name, value) for name, value in (wire.attributes(obj) or {}).items()
                        if name not in before or before[name] is not value]
            if out and out[-1][1] == number:
                self.snapshots[number] = _state(obj)
        return out

    def _item_changes(self, number: int, obj: list | dict, before: list | dict) -> list:
        """("items"/"entries", number, keys, values, kept) when an item was replaced, added or
        removed; ``kept`` gives, by number, the items that are the judge's own objects."""
        keys = list(range(len(obj))) if type(obj) is list else list(obj)
        if not wire.items_replaced(before, obj) or not all(isinstance(k, (str, int)) for k in keys):
            return []
        values, kept = [obj[k] for k in keys], []
        for i, value in enumerate(values):
            mirrored = self.mirror_number(value)
            if mirrored is not None:
                values[i], kept = None, [*kept, (i, mirrored)]
        return [("items" if type(obj) is list else "entries", number, keys, values, kept)]

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
                self.in_child, self.fork_tag = True, request.get("id")
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


class _NotTransferable(Exception):
    pass


class _Answer(wire.Encoder):
    """What the kernel sends back: data; the judge's own objects by number; objects of nnkit's
    classes whose attributes are all data, rebuilt by the judge (a model the student built from
    nnkit layers); anything else a handle."""

    _NNKIT_SKIP = ("nnkit.grading", "nnkit.course")

    def __init__(self, server: _Server):
        super().__init__()
        self.server, self.strict, self.seen = server, 0, {}

    def other(self, x, depth: int) -> dict:
        number = self.server.mirror_number(x)
        if number is not None:
            return {"t": "mirror", "n": number}
        if id(x) in self.seen:
            return {"t": "ref", "i": self.seen[id(x)]}
        if self._nnkit_function(x):
            return {"t": "nnkit_fn", "name": f"{x.__module__}.{x.__qualname__}"}
        node = self._nnkit_object(x, depth)
        if node is not None:
            return node
        if self.strict:
            raise _NotTransferable
        return wire.handle_node(self.server.handle_for(x))

    def _nnkit_function(self, x) -> bool:
        home = getattr(x, "__module__", None) or ""
        return self.strict > 0 and isinstance(x, types.FunctionType) and home.startswith("nnkit.") \
            and not home.startswith(self._NNKIT_SKIP) and "<" not in x.__qualname__ and "." not in x.__qualname__

    def _nnkit_object(self, x, depth: int) -> dict | None:
        home = getattr(type(x), "__module__", "") or ""
        if not home.startswith("nnkit.") or home.startswith(self._NNKIT_SKIP) or "." in type(x).__qualname__:
            return None
        from nnkit.module import Module, Parameter

        if not isinstance(x, (Module, Parameter)):
            return None
        kept, index = len(self.buffers), len(self.seen)
        self.seen[id(x)] = index
        self.strict += 1
        try:
            state = self.tree(dict(wire.attributes(x) or {}), depth + 1)
        except _NotTransferable:
            del self.buffers[kept:]
            for key in [k for k, v in self.seen.items() if v >= index]:
                del self.seen[key]
            if self.strict > 1:
                raise
            return None
        finally:
            self.strict -= 1
        return {"t": "nnkit", "i": index, "cls": f"{home}.{type(x).__qualname__}", "state": state}


class _Callback:
    """A function of the judge's that the student's code may call: the call goes to the judge."""

    def __init__(self, server: _Server, number: int):
        self.server, self.number = server, number

    def __call__(self, *args, **kwargs):
        server = self.server
        body = {"session": server.session, "callback": self.number, "args": list(args), "kwargs": kwargs}
        wire.send_frame(server.sock, _Answer(server).encode(body))
        while True:
            reply = pickle.loads(wire.recv_frame(server.sock))
            if isinstance(reply, dict) and reply.get("callback_result") == self.number:
                break
        if reply.get("error"):
            raise RuntimeError(str(reply["error"]))
        payload = _Unpickler(reply.get("payload", b""), server)
        value = payload.load()
        server.register(payload.memo.copy(), reply.get("mirror", ()))
        return value


# --- the state of the judge's objects -------------------------------------------------------------
def _has_state(obj) -> bool:
    return wire.attributes(obj) is not None


def _state(obj):
    if isinstance(obj, np.ndarray):
        return obj.copy()
    return type(obj)(obj) if type(obj) in wire.CONTAINERS else wire.attributes(obj)


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
