"""The judge's channel: length-prefixed frames over a Unix socket, and the kernel's answers.

A graded run talks to the student's kernel over one socket (see ``nnkit.course.judge``). The
two directions are not trusted alike:

* grader → kernel: the grader's requests (the calls to make, their arguments) are pickled with
  ``cloudpickle``, which the kernel may read freely — nothing there is secret except what the
  kernel is meant to receive;
* kernel → grader: what comes back is **data only**, never a pickle (unpickling bytes that
  student code can write would run student code in the grader). ``encode`` writes numbers,
  strings, bytes, numeric numpy arrays and scalars, and lists, tuples and dicts of them as a
  JSON tree plus raw buffers; anything else becomes a *handle*, a number the kernel keeps the
  object under. ``decode`` checks every field (numeric dtypes only, sizes that add up, bounded
  depth and size) and raises ``WireError`` on anything else.

Pickle's own framing is not used for the answers because it cannot be read safely; JSON plus
buffers is the smallest format that carries arrays exactly (no text round trip of floats).
"""
from __future__ import annotations

import json
import select
import socket
import struct
import time
import types
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: the largest frame either side accepts (a kernel's answer is held in the grader's memory)
MAX_FRAME = 256 << 20
#: how deep a decoded answer may nest, and how many values it may hold
MAX_DEPTH, MAX_NODES = 64, 1_000_000
_HEADER = struct.Struct("!Q")
_JSON_LEN = struct.Struct("!I")


class ChannelProblem(BaseException):
    """The conversation with the kernel cannot go on. A BaseException: a check's own
    ``except Exception`` (around a probe, say) must not swallow it and carry on."""


class WireError(ChannelProblem):
    """An answer that is not a well-formed frame (garbage, too large, cut short)."""


class ChannelClosed(WireError):
    """The other end closed the channel (the kernel stopped, or closed its socket)."""


class Cancelled(ChannelProblem):
    """The wait for an answer was given up (the cell's time is over)."""


@dataclass(frozen=True)
class Handle:
    """An object that stays in the kernel: its number there, its type's name, whether callable."""

    id: int
    type_name: str = "object"
    callable: bool = False


#: the containers whose items a graded run mirrors (``params[i] = …`` in student code)
CONTAINERS = (list, dict)


def items_replaced(before: list | dict, after: list | dict) -> bool:
    """True when a list or dict holds other objects than ``before``, its shallow copy, did
    (``params[i] = …``, an append, a new or deleted key), rather than the same objects."""
    if type(after) is not type(before) or len(after) != len(before):
        return True
    keys = range(len(before)) if type(before) is list else before.keys()
    return (type(after) is dict and after.keys() != before.keys()) or any(after[k] is not before[k] for k in keys)


def attributes(obj) -> dict | None:
    """An object's attributes by name (``__dict__`` and ``__slots__``), or None for things that
    have none worth mirroring (classes, modules, functions)."""
    if isinstance(obj, (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType)):
        return None
    state = getattr(obj, "__dict__", None)
    out = dict(state) if isinstance(state, dict) else {}
    slots = [name for klass in type(obj).__mro__ for name in _slot_names(klass)]
    for name in slots:
        if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
            out[name] = getattr(obj, name)
    return out if (isinstance(state, dict) or slots) else None


def _slot_names(klass) -> tuple[str, ...]:
    slots = klass.__dict__.get("__slots__", ())
    return (slots,) if isinstance(slots, str) else tuple(slots)


# --- frames -----------------------------------------------------------------------------------
def send_frame(sock: socket.socket, payload: bytes) -> None:
    if len(payload) > MAX_FRAME:
        raise WireError(f"a message of {len(payload)} bytes is over the limit of {MAX_FRAME}")
    try:
        sock.sendall(_HEADER.pack(len(payload)) + payload)
    except OSError as e:  # the other end is gone (a stopped kernel: broken pipe)
        raise ChannelClosed(f"the channel is closed ({type(e).__name__})") from None


def _recv_exact(sock: socket.socket, n: int, wait: Callable[[], None]) -> bytes:
    chunks, got = [], 0
    while got < n:
        wait()
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise ChannelClosed("the kernel closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, *, deadline: float | None = None,
               cancelled: Callable[[], bool] = lambda: False) -> bytes:
    """One frame; waits in short steps so that a cancelled or timed-out wait stops promptly."""
    def wait() -> None:
        while True:
            if cancelled():
                raise Cancelled("cancelled")
            if deadline is not None and time.monotonic() > deadline:
                raise Cancelled("timed out")
            ready, _, _ = select.select([sock], [], [], 0.1)
            if ready:
                return

    size, = _HEADER.unpack(_recv_exact(sock, _HEADER.size, wait))
    if size > MAX_FRAME:
        raise WireError(f"the kernel announced a message of {size} bytes (limit {MAX_FRAME})")
    return _recv_exact(sock, size, wait)


# --- the kernel's answers: encode (kernel side) -------------------------------------------------
_PLAIN_KINDS = frozenset("biufc")


def _plain_array(x) -> bool:
    return isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind in _PLAIN_KINDS and x.dtype.fields is None


class Encoder:
    """Writes a value as JSON + buffers. Plain data is written as it is; for anything else
    ``other`` (overridden by the kernel's side) returns the node: a handle, a reference to an
    object of the judge's, or a transferable nnkit object."""

    def __init__(self):
        self.buffers: list[bytes] = []

    def encode(self, value) -> bytes:
        tree = self.tree(value, 0)
        head = json.dumps({"v": tree, "b": [len(b) for b in self.buffers]}).encode()
        return _JSON_LEN.pack(len(head)) + head + b"".join(self.buffers)

    def tree(self, x, depth: int):
        if x is None or isinstance(x, (bool, str)) or type(x) in (int, float):
            return x
        if depth > MAX_DEPTH:
            return self.other(x, depth)
        if isinstance(x, (int, float)) and not isinstance(x, np.generic):  # subclasses: the plain value
            return int(x) if isinstance(x, int) else float(x)
        if isinstance(x, complex):
            return {"t": "complex", "re": x.real, "im": x.imag}
        if isinstance(x, (bytes, bytearray)):
            self.buffers.append(bytes(x))
            return {"t": "bytes", "b": len(self.buffers) - 1}
        if _plain_array(x):
            arr = np.ascontiguousarray(x) if isinstance(x, np.ndarray) else np.asarray(x)  # a scalar stays 0-d
            self.buffers.append(arr.tobytes())
            return {"t": "nd" if isinstance(x, np.ndarray) else "scalar", "d": arr.dtype.str,
                    "s": list(arr.shape), "b": len(self.buffers) - 1}
        if type(x) in (list, tuple):
            return {"t": type(x).__name__, "v": [self.tree(v, depth + 1) for v in x]}
        if type(x) in (dict, OrderedDict) and all(isinstance(k, (str, int)) for k in x):
            return {"t": "dict" if type(x) is dict else "odict", "k": list(x),
                    "v": [self.tree(v, depth + 1) for v in x.values()]}
        return self.other(x, depth)

    def other(self, x, depth: int) -> dict:
        raise TypeError(f"{type(x).__name__} is not plain data")


def handle_node(h: Handle) -> dict:
    return {"t": "handle", "id": h.id, "type": h.type_name, "call": h.callable}


# --- the kernel's answers: decode (grader side) -------------------------------------------------
class Decoder:
    """Reads what ``Encoder`` wrote, checking every field; raises WireError on anything else.

    The hooks say what the non-plain nodes become: ``handle`` (an object that stays in the
    kernel), ``mirror`` (an object the judge sent, by its number), ``new_nnkit`` and
    ``nnkit_function`` (an object of an nnkit class, rebuilt from its plain attributes, and the
    nnkit functions such an object refers to by name)."""

    def handle(self, h: Handle):
        return h

    def mirror(self, number: int):
        raise WireError("a reference to an object that was never sent")

    def new_nnkit(self, class_name: str):
        raise WireError("nnkit objects are not accepted here")

    def nnkit_function(self, name: str):
        raise WireError("nnkit functions are not accepted here")

    def decode(self, data: bytes):
        try:
            n, = _JSON_LEN.unpack_from(data, 0)
            head = json.loads(data[_JSON_LEN.size:_JSON_LEN.size + n])
            sizes = head["b"]
            if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
                raise WireError("bad buffer table")
            self.offsets, pos = [], _JSON_LEN.size + n
            for size in sizes:
                self.offsets.append((pos, pos + size))
                pos += size
            if pos != len(data):
                raise WireError("the buffers do not add up to the message")
            self.data, self.nodes, self.objects = data, 0, {}
            return self.value(head["v"], 0)
        except WireError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, RecursionError, AttributeError, struct.error) as e:
            raise WireError(f"unreadable answer from the kernel ({type(e).__name__})") from None

    def value(self, node, depth: int):
        self.nodes += 1
        if depth > MAX_DEPTH or self.nodes > MAX_NODES:
            raise WireError("the answer nests too deep or holds too many values")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict):
            raise WireError("malformed value")
        kind = node["t"]
        if kind in ("list", "tuple"):
            items = [self.value(v, depth + 1) for v in node["v"]]
            return items if kind == "list" else tuple(items)
        if kind in ("dict", "odict"):
            keys = node["k"]
            if not all(isinstance(k, (str, int)) for k in keys) or len(keys) != len(node["v"]):
                raise WireError("malformed dict")
            return (dict if kind == "dict" else OrderedDict)(zip(keys, (self.value(v, depth + 1) for v in node["v"])))
        if kind in ("nd", "scalar"):
            return self.array(node)
        if kind == "bytes":
            start, end = self.offsets[node["b"]]
            return self.data[start:end]
        if kind == "complex":
            return complex(float(node["re"]), float(node["im"]))
        if kind == "handle":
            return self.handle(Handle(int(node["id"]), str(node["type"])[:100], bool(node["call"])))
        if kind == "mirror":
            return self.mirror(int(node["n"]))
        if kind == "nnkit":
            return self.nnkit(node, depth)
        if kind == "ref":
            return self.objects[int(node["i"])]
        if kind == "nnkit_fn":
            return self.nnkit_function(str(node["name"])[:200])
        raise WireError(f"unknown value kind {str(kind)[:20]!r}")

    def nnkit(self, node, depth: int):
        """An nnkit object: made first (so that references inside can point to it), then filled."""
        obj = self.new_nnkit(str(node["cls"])[:200])
        self.objects[int(node["i"])] = obj
        state = self.value(node["state"], depth + 1)
        if not isinstance(state, dict) or not all(isinstance(k, str) and not k.startswith("__") for k in state):
            raise WireError("malformed nnkit object")
        for name, value in state.items():
            object.__setattr__(obj, name, value)
        return obj

    def array(self, node):
        dtype = np.dtype(str(node["d"]))
        if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None \
                or dtype.itemsize > 16:
            raise WireError(f"an array of dtype {dtype} is not accepted")
        shape = tuple(int(s) for s in node["s"])
        if any(s < 0 for s in shape) or len(shape) > 32:
            raise WireError("bad array shape")
        start, end = self.offsets[node["b"]]
        if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != end - start:
            raise WireError("an array's size does not match its shape")
        arr = np.frombuffer(self.data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=start)
        arr = arr.reshape(shape).copy()
        return arr if node["t"] == "nd" else arr[()]
