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
import contextvars
import importlib
import io
import itertools
import pickle
import socket
import types
from collections.abc import Callable

import numpy as np

from . import global_rng, wire

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


#: while set (``watching_global_rng``): a list that gets the names of the global generators
#: (``global_rng.NAMES``) the student's kernel saw move (drawn from or reseeded) during an answer
_GLOBAL_RNG_MOVES: contextvars.ContextVar[list | None] = contextvars.ContextVar("nnkit_global_rng_moves",
                                                                               default=None)


@contextlib.contextmanager
def watching_global_rng():
    """``with watching_global_rng() as moves:`` — afterwards ``moves`` names the global generators
    (numpy's, Python's, PyTorch's) that student code run in the kernel meanwhile drew from or reseeded."""
    moves: list = []
    token = _GLOBAL_RNG_MOVES.set(moves)
    try:
        yield moves
    finally:
        _GLOBAL_RNG_MOVES.reset(token)


class ForkEnded(wire.ChannelProblem):
    """The throw-away child of the kernel ended (finished, killed at its time limit, or failed)."""


class Here:
    """A function of the checks' that student code may call, which must run in the grader (it
    records how it was called, say): in a graded run each call is a request back to the judge.
    Outside a graded run it is just the function."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


class _Pickler(_BasePickler):
    """Remotes go as their handle, objects already sent in this conversation as their number,
    ``Here`` functions as a callback number. Lists and dicts always go afresh: the grader may have
    changed them since (a list of losses it appends to), and the kernel reports its changes to each
    copy under that copy's number."""

    def __init__(self, file, conversation: Conversation):
        super().__init__(file, protocol=5)
        self.sent, self.callbacks = conversation._sent, conversation._callbacks

    def persistent_id(self, obj):
        if type(obj) is Remote:
            return ("h", object.__getattribute__(obj, "_handle").id)
        if type(obj) is Here:
            self.callbacks.setdefault(id(obj), obj)
            return ("c", id(obj))
        entry = self.sent.get(id(obj))
        if entry is not None and entry[1] is obj and type(obj) not in wire.CONTAINERS:
            return ("m", entry[0])
        return None


def _mirrored(obj) -> bool:
    """Arrays, lists, dicts and objects with attributes: what the kernel reports changes of."""
    return isinstance(obj, np.ndarray) or type(obj) in wire.CONTAINERS or \
        (type(obj) is not Remote and wire.attributes(obj) is not None)


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
        self._callbacks: dict[int, Here] = {}

    # -- requests -------------------------------------------------------------------------------
    def request(self, op: str, **args):
        if self.fork_over:
            raise ForkEnded("the throw-away kernel has ended")
        payload, mirror = self._dump(args)
        number = next(self._ids)
        envelope = {"session": self.session, "id": number, "op": op, "payload": payload, "mirror": mirror,
                    "fork": self.fork_id}
        wire.send_frame(self.sock, pickle.dumps(envelope, protocol=5))
        answer = self._answer(number)
        if "blocked" in answer and isinstance(answer["blocked"], list):
            self.touched = [str(x)[:200] for x in answer["blocked"]][:50]
        self._apply_changes(answer.get("changes"))
        moves = _GLOBAL_RNG_MOVES.get()
        moved = answer.get("global_rng")
        if isinstance(moved, list) and moves is not None:
            moves += [name for name in moved if name in global_rng.NAMES and name not in moves]
        error = answer.get("error")
        if isinstance(error, dict):
            raise _exception(str(error.get("type", "Exception"))[:80], str(error.get("message", ""))[:500],
                             bool(error.get("not_implemented")))
        return answer.get("value")

    def _dump(self, args: dict) -> tuple[bytes, list[tuple[int, int]]]:
        """The pickled arguments, and [(memo index, number)] of the new objects to mirror."""
        buf = io.BytesIO()
        pickler = _Pickler(buf, self)
        pickler.dump(args)
        mirror = []
        for index, obj in sorted(pickler.memo.copy().values(), key=lambda e: e[0]):
            if _mirrored(obj) and (id(obj) not in self._sent or type(obj) in wire.CONTAINERS):
                number = len(self._objects) + 1
                self._sent[id(obj)], self._objects[number] = (number, obj), obj
                mirror.append((index, number))
        return buf.getvalue(), mirror

    def _answer(self, number: int) -> dict:
        while True:
            data = wire.recv_frame(self.sock, deadline=self.deadline, cancelled=self.cancelled)
            answer = _AnswerDecoder(self).decode(data)
            if not isinstance(answer, dict) or answer.get("session") != self.session:
                raise wire.WireError("an answer that is not for this test")
            if "callback" in answer:
                self._call_back(answer)
                continue
            if self.fork_id is not None and answer.get("id") == self.fork_id:
                self.fork_id, self.fork_over = None, True
                raise ForkEnded(answer.get("error") or answer.get("value"))
            if answer.get("id") == number:
                return answer
            if not isinstance(answer.get("id"), int) or answer["id"] > number:
                raise wire.WireError("an answer to a question that was not asked")

    def _call_back(self, request: dict) -> None:
        """Student code called a ``Here`` function: run it here, send its result back."""
        here = self._callbacks.get(request.get("callback"))
        args, kwargs = request.get("args"), request.get("kwargs")
        reply: dict = {"session": self.session, "callback_result": request.get("callback")}
        if here is None or not isinstance(args, list) or not isinstance(kwargs, dict) \
                or not all(isinstance(k, str) for k in kwargs):
            reply["error"] = "not a function the grader offered"
        else:
            try:
                reply["payload"], reply["mirror"] = self._dump(here.fn(*args, **kwargs))
            except Exception as e:  # noqa: BLE001 - the student's code sees the failure, as it would locally
                reply["error"] = f"{type(e).__name__}: {e}"[:300]
        wire.send_frame(self.sock, pickle.dumps(reply, protocol=5))

    def _apply_changes(self, changes) -> None:
        """Mirror what the student's code changed in the grader's objects it was given."""
        for change in changes if isinstance(changes, list) else ():
            if not isinstance(change, tuple) or len(change) < 3 or not isinstance(change[0], str) \
                    or not isinstance(change[1], int):
                continue
            kind, original = change[0], self._objects.get(change[1])
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                if kind == "array" and len(change) == 3 and isinstance(original, np.ndarray):
                    self._apply_array(original, change[2])
                elif kind == "attr" and len(change) == 4 and isinstance(change[2], str):
                    self._apply_attribute(original, change[2], change[3])
                elif kind in ("items", "entries") and len(change) == 5 and type(original) in wire.CONTAINERS:
                    self._apply_items(original, *change[2:])

    def _apply_array(self, original: np.ndarray, new) -> None:
        if isinstance(new, np.ndarray) and new.shape == original.shape and original.flags.writeable:
            original[...] = new
            self.changed.append(f"an array of shape {original.shape}")

    def _apply_attribute(self, original, name: str, value) -> None:
        if name in (wire.attributes(original) or {}) and not name.startswith("__"):
            object.__setattr__(original, name, value)
            self.changed.append(f".{name}")

    def _apply_items(self, original: list | dict, keys, values, kept) -> None:
        """A list's items or a dict's entries replaced, added or removed: ``kept`` names the
        positions that hold one of the grader's own objects, by number, so they stay themselves."""
        if not (isinstance(keys, list) and isinstance(values, list) and isinstance(kept, list)
                and len(keys) == len(values) and all(isinstance(k, (str, int)) for k in keys)):
            return
        for entry in kept:
            if not (isinstance(entry, list | tuple) and len(entry) == 2 and isinstance(entry[0], int)
                    and 0 <= entry[0] < len(values) and entry[1] in self._objects):
                return
            values[entry[0]] = self._objects[entry[1]]
        if type(original) is list:
            original[:] = values
        else:
            original.clear()
            original.update(zip(keys, values))
        self.changed.append("the items of a list" if type(original) is list else "the entries of a dict")

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


_NNKIT_SKIP = ("nnkit.grading", "nnkit.course")


def _nnkit_name(dotted: str):
    """The nnkit class or function a kernel's answer names, if it names one (else WireError)."""
    module, _, name = dotted.rpartition(".")
    if not module.startswith("nnkit.") or module.startswith(_NNKIT_SKIP) or not name.isidentifier() \
            or not all(part.isidentifier() for part in module.split(".")):
        raise wire.WireError(f"{dotted[:80]!r} is not something of nnkit's")
    try:  # a module of nnkit's own package (the kernel may have loaded one this process has not)
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        raise wire.WireError(f"{dotted[:80]!r} is not something of nnkit's") from None


class _AnswerDecoder(wire.Decoder):
    def __init__(self, conversation: Conversation):
        self.conversation = conversation

    def handle(self, h: wire.Handle):
        return Remote(self.conversation, h)

    def mirror(self, number: int):
        if number not in self.conversation._objects:
            raise wire.WireError("a reference to an object that was never sent")
        return self.conversation._objects[number]

    def new_nnkit(self, class_name: str):
        from nnkit.module import Module, Parameter

        cls = _nnkit_name(class_name)
        if not (isinstance(cls, type) and issubclass(cls, (Module, Parameter))):
            raise wire.WireError(f"{class_name[:80]!r} is not a layer or parameter of nnkit's")
        return cls.__new__(cls)

    def nnkit_function(self, name: str):
        fn = _nnkit_name(name)
        if not isinstance(fn, types.FunctionType):
            raise wire.WireError(f"{name[:80]!r} is not a function of nnkit's")
        return fn


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


def _mro_names(cls) -> list[str]:
    return [f"{c.__module__}.{c.__qualname__}" for c in getattr(cls, "__mro__", ())] if isinstance(cls, type) else []


def class_names(cls) -> list[str]:
    """'module.Class' for a class and each of its bases ([] if ``cls`` is not a class), also for
    a class in the student's kernel (asked there: the names come back as data)."""
    if type(cls) is Remote:
        names = object.__getattribute__(cls, "_conversation").request("call", target=_mro_names, args=(cls,),
                                                                      kwargs={})
        return [str(n) for n in names] if isinstance(names, list) else []
    return _mro_names(cls)


def is_remote(obj) -> bool:
    return type(obj) is Remote


def type_name(obj) -> str:
    """The type's name of a local object, or of the remote object a ``Remote`` stands for."""
    if type(obj) is Remote:
        return object.__getattribute__(obj, "_handle").type_name
    return type(obj).__name__

