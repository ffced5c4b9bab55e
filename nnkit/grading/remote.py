"""The grader's side of a conversation with the student's kernel: ``Conversation`` and ``Remote``.

In a graded run the checks of ``nnkit.grading`` run in the grader's process, unchanged: the
student's function they receive is a ``Remote``, and calling it asks the kernel to call the
real one (``kernel_side``) on the given inputs. What comes back is data (``wire.decode``) or
another ``Remote`` for an object that stays in the kernel — a layer the student's class made,
a model their function built — on which attributes, methods, ``len``, indexing and iteration
work the same way. Arrays and attributes of the arguments that the student's code changed in
the kernel are changed here too, so a check sees an in-place update exactly as it would
locally.

``Remote`` never runs student code here, never unpickles what the kernel sends, and only sets
attributes that already exist on the grader's own argument objects.
"""
from __future__ import annotations

import builtins
import contextlib
import io
import itertools
import pickle
import socket
from collections.abc import Callable

import numpy as np

from . import wire

try:  # pickles the grader's lambdas and closures by value (the kernel runs them on its copies)
    import cloudpickle as _cloudpickle
    _BasePickler = _cloudpickle.Pickler
except ImportError:  # pragma: no cover - a dependency of nnkit; plain pickle still works for most checks
    _BasePickler = pickle.Pickler


class RemoteError(Exception):
    """An exception raised by the student's code in the kernel (its type name is kept)."""


#: exceptions the grader re-raises as the built-in type too, so that ``hasattr``, iteration and
#: ``except`` clauses behave as they would locally (AssertionError is not one: a student's own
#: AssertionError must never look like a check's verdict)
_MIRRORED = ("AttributeError", "TypeError", "ValueError", "IndexError", "KeyError", "ZeroDivisionError",
             "RuntimeError", "FloatingPointError", "OverflowError", "NameError", "LookupError",
             "ArithmeticError")


def _exception(kind: str, message: str, not_implemented: bool) -> Exception:
    if not_implemented:
        return NotImplementedError(message)
    name = kind if kind.isidentifier() else "Exception"
    bases: tuple = (RemoteError,)
    if name in _MIRRORED:
        bases += (getattr(builtins, name),)
    return type(name, bases, {"__module__": "builtins"})(message)


class ForkEnded(wire.ChannelProblem):
    """The throw-away child of the kernel ended (finished, killed at its time limit, or failed)."""


class _Pickler(_BasePickler):
    """Remotes go as their handle, objects already sent in this conversation as their number."""

    def __init__(self, file, sent: dict):
        super().__init__(file, protocol=5)
        self.sent = sent

    def persistent_id(self, obj):
        if type(obj) is Remote:
            return ("h", object.__getattribute__(obj, "_handle").id)
        entry = self.sent.get(id(obj))
        if entry is not None and entry[1] is obj:
            return ("m", entry[0])
        return None


def _mirrored(obj) -> bool:
    """Arrays and objects with attributes: what the kernel reports changes of."""
    return isinstance(obj, np.ndarray) or (type(obj) is not Remote and wire.attributes(obj) is not None)


class Conversation:
    """One test cell's requests to the kernel: numbered, answered in order, within a deadline."""

    def __init__(self, sock: socket.socket, session: int, *, deadline: float,
                 cancelled: Callable[[], bool] = lambda: False):
        self.sock, self.session, self.deadline, self.cancelled = sock, session, deadline, cancelled
        self._ids = itertools.count(1)
        self.fork_id: int | None = None
        self.fork_over = False
        self.touched: list[str] = []
        self.changed: list[str] = []
        self._sent: dict[int, tuple[int, object]] = {}     # id(obj) -> (number, obj)
        self._objects: dict[int, object] = {}              # number -> the grader's object

    # -- requests -------------------------------------------------------------------------------
    def request(self, op: str, **args):
        if self.fork_over:
            raise ForkEnded("the throw-away kernel has ended")
        payload, mirror = self._dump(args)
        number = next(self._ids)
        envelope = {"session": self.session, "id": number, "op": op, "payload": payload, "mirror": mirror}
        wire.send_frame(self.sock, pickle.dumps(envelope, protocol=5))
        answer = self._answer(number)
        if "blocked" in answer and isinstance(answer["blocked"], list):
            self.touched = [str(x)[:200] for x in answer["blocked"]][:50]
        self._apply_changes(answer.get("changes"))
        error = answer.get("error")
        if isinstance(error, dict):
            raise _exception(str(error.get("type", "Exception"))[:80], str(error.get("message", ""))[:500],
                             bool(error.get("not_implemented")))
        return answer.get("value")

    def _dump(self, args: dict) -> tuple[bytes, list[tuple[int, int]]]:
        """The pickled arguments, and [(memo index, number)] of the new objects to mirror."""
        buf = io.BytesIO()
        pickler = _Pickler(buf, self._sent)
        pickler.dump(args)
        mirror = []
        for index, obj in sorted(pickler.memo.copy().values(), key=lambda e: e[0]):
            if _mirrored(obj) and id(obj) not in self._sent:
                number = len(self._objects) + 1
                self._sent[id(obj)], self._objects[number] = (number, obj), obj
                mirror.append((index, number))
        return buf.getvalue(), mirror

    def _answer(self, number: int) -> dict:
        while True:
            data = wire.recv_frame(self.sock, deadline=self.deadline, cancelled=self.cancelled)
            answer = wire.decode(data, self._remote)
            if not isinstance(answer, dict) or answer.get("session") != self.session:
                raise wire.WireError("an answer that is not for this test")
            if self.fork_id is not None and answer.get("id") == self.fork_id:
                self.fork_id, self.fork_over = None, True
                raise ForkEnded(answer.get("error") or answer.get("value"))
            if answer.get("id") == number:
                return answer
            if not isinstance(answer.get("id"), int) or answer["id"] > number:
                raise wire.WireError("an answer to a question that was not asked")

    def _remote(self, handle: wire.Handle) -> Remote:
        return Remote(self, handle)

    def _apply_changes(self, changes) -> None:
        """Mirror what the student's code changed in the grader's objects it was given."""
        for change in changes if isinstance(changes, list) else ():
            if not isinstance(change, tuple) or not change or not isinstance(change[0], str):
                continue
            original = self._objects.get(change[1]) if len(change) > 1 and isinstance(change[1], int) else None
            if change[0] == "array" and len(change) == 3 and isinstance(original, np.ndarray):
                new = change[2]
                if isinstance(new, np.ndarray) and new.shape == original.shape and original.flags.writeable:
                    with contextlib.suppress(TypeError, ValueError):
                        original[...] = new
                        self.changed.append(f"an array of shape {original.shape}")
            elif change[0] == "attr" and len(change) == 4 and isinstance(change[2], str):
                name = change[2]
                if name in (wire.attributes(original) or {}) and not name.startswith("__"):
                    with contextlib.suppress(AttributeError, TypeError):
                        object.__setattr__(original, name, change[3])
                        self.changed.append(f".{name}")

    # -- the throw-away child -------------------------------------------------------------------
    @contextlib.contextmanager
    def forked(self, forbid, allow, budget: float):
        """Requests inside go to a child of the kernel in which the forbidden references fail."""
        payload = pickle.dumps({"forbid": list(forbid), "allow": list(allow), "budget": budget})
        number = next(self._ids)
        envelope = {"session": self.session, "id": number, "op": "fork", "payload": payload}
        wire.send_frame(self.sock, pickle.dumps(envelope, protocol=5))
        self.fork_id, self.touched = number, []
        try:
            yield
        finally:
            with contextlib.suppress(wire.ChannelProblem, OSError):
                if self.fork_id is not None:
                    self.request("exit")
                if self.fork_id is not None:
                    self._answer(-1)  # read until the parent says the child ended
            self.fork_id, self.fork_over = None, False

    def done(self) -> None:
        envelope = {"session": self.session, "id": next(self._ids), "op": "done", "payload": b""}
        with contextlib.suppress(OSError, wire.WireError):
            wire.send_frame(self.sock, pickle.dumps(envelope, protocol=5))


class Remote:
    """An object in the student's kernel (a function, a class, an instance)."""

    __slots__ = ("_conversation", "_handle")

    def __init__(self, conversation: Conversation, handle: wire.Handle):
        object.__setattr__(self, "_conversation", conversation)
        object.__setattr__(self, "_handle", handle)

    def _ask(self, op: str, **args):
        return object.__getattribute__(self, "_conversation").request(op, target=self, **args)

    def __call__(self, *args, **kwargs):
        return self._ask("call", args=args, kwargs=kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__") and name not in ("__name__", "__qualname__", "__doc__"):
            raise AttributeError(name)
        return self._ask("getattr", name=name)

    def __setattr__(self, name: str, value) -> None:
        self._ask("setattr", name=name, value=value)

    def __len__(self):
        return self._ask("operator", name="len", args=())

    def __getitem__(self, key):
        return self._ask("operator", name="getitem", args=(key,))

    def __setitem__(self, key, value):
        self._ask("operator", name="setitem", args=(key, value))

    def __contains__(self, item):
        return self._ask("operator", name="contains", args=(item,))

    def __iter__(self):
        return iter(self._ask("operator", name="iter", args=()))

    def __bool__(self):
        return bool(self._ask("operator", name="bool", args=()))

    def __str__(self):
        return str(self._ask("operator", name="str", args=()))

    def __repr__(self):
        handle = object.__getattribute__(self, "_handle")
        return f"<{handle.type_name} in the student's kernel>"

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    @contextlib.contextmanager
    def _bind(self, refs: dict):
        """While inside, the names in ``refs`` are bound to these values where this function looks."""
        token = self._ask("bind", refs=refs)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self._ask("unbind", token=token)


def is_remote(obj) -> bool:
    return type(obj) is Remote


def type_name(obj) -> str:
    """The type's name of a local object, or of the remote object a ``Remote`` stands for."""
    if type(obj) is Remote:
        return object.__getattribute__(obj, "_handle").type_name
    return type(obj).__name__

