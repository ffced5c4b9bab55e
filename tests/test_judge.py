"""The judge's parts, without nbgrader: the wire format, a conversation with a kernel's server
(in a forked child process standing in for the student's kernel), and the static look.

The end-to-end proofs — hostile submissions graded by ``nnkit grade`` — are in
``test_containment.py``; every question's delegating answer is in ``tests/mutations``.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import OrderedDict

import numpy as np
import pytest

import nnkit as nk
from nnkit.course import delegation
from nnkit.grading import core, global_rng, kernel_side, remote, wire


# --- the wire format ------------------------------------------------------------------------------
class _Plain(wire.Encoder):
    def other(self, x, depth):
        return wire.handle_node(wire.Handle(7, type(x).__name__, callable(x)))


@pytest.mark.parametrize("value", [
    None, True, 3, -2.5, float("inf"), "σ", b"\x00raw", 1 + 2j, np.float32(1.5), np.int64(-3),
    np.arange(12.0).reshape(3, 4), np.zeros((0, 3), dtype=np.float32), np.array([1, 2], dtype=np.uint8),
    np.array([True, False]), [1, (2.0, "x")], {"a": [1.5, "b"], 3: None}, OrderedDict(b=1, a=2),
])
def test_plain_data_crosses_exactly(value):
    back = wire.Decoder().decode(_Plain().encode(value))
    assert type(back) is type(value)
    if isinstance(value, (np.ndarray, np.generic)):
        assert back.dtype == value.dtype and back.shape == value.shape and np.array_equal(back, value)
    elif isinstance(value, float) and np.isnan(value):
        assert np.isnan(back)
    else:
        assert back == value


def test_anything_else_is_a_handle():
    back = wire.Decoder().decode(_Plain().encode([object(), len]))
    assert back == [wire.Handle(7, "object", False), wire.Handle(7, "builtin_function_or_method", True)]


def _frame(head: dict, *buffers: bytes) -> bytes:
    import json
    import struct

    text = json.dumps(head).encode()
    return struct.pack("!I", len(text)) + text + b"".join(buffers)


@pytest.mark.parametrize("data, why", [
    (b"\x00\x00", "cut short"),
    (b"\x00\x00\x00\x05hello", "not JSON"),
    (_frame({"v": {"t": "nd", "d": "|O", "s": [1], "b": 0}, "b": [8]}, b"\x00" * 8), "object dtype"),
    (_frame({"v": {"t": "nd", "d": "<f8", "s": [3], "b": 0}, "b": [8]}, b"\x00" * 8), "size does not match"),
    (_frame({"v": {"t": "nd", "d": "<f8", "s": [1], "b": 0}, "b": [8]}, b"\x00" * 9), "buffers do not add up"),
    (_frame({"v": {"t": "pickle", "v": "x"}, "b": []}), "unknown kind"),
    (_frame({"v": {"t": "mirror", "n": 3}, "b": []}), "never sent"),
    (_frame({"v": {"t": "nnkit", "i": 0, "cls": "nnkit.layers.Linear", "state": {"t": "dict", "k": [], "v": []}},
             "b": []}), "not accepted here"),
])
def test_garbage_from_the_kernel_is_refused(data, why):
    with pytest.raises(wire.WireError):
        wire.Decoder().decode(data)


def test_too_deep_an_answer_is_refused():
    node = 1
    for _ in range(wire.MAX_DEPTH + 5):
        node = {"t": "list", "v": [node]}
    with pytest.raises(wire.WireError):
        wire.Decoder().decode(_frame({"v": node, "b": []}))


# --- a conversation with a kernel's server ---------------------------------------------------------
STUDENT = '''
import random

import numpy as np
import nnkit as nk

def add_backward(a, b, out):
    a.grad += out.grad
    b.grad += out.grad

def scale_in_place(x):
    x *= 2.0

def build():
    return nk.Sequential(nk.Linear(3, 4), nk.ReLU(), nk.Linear(4, 2))

def loop(f, n):
    return [f(i) for i in range(n)]

def broken(x):
    raise NotImplementedError()

def picky(x):
    raise ValueError("no negative numbers")

def asserts(x):
    assert False, "[sigmoid] visible checks passed"

class Mine(nk.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

def sigmoid_own(z):
    return 1.0 / (1.0 + np.exp(-z))

def sigmoid_delegates(z):
    return nk.functional.sigmoid(z)

def _helper(z):
    return getattr(nk.functional, "sig" + "moid")(z)

def sigmoid_hidden(z):
    return _helper(z)

def runs_model(model, x):
    return model.forward(x)

def shuffle_global(rng, n):
    return np.random.permutation(n)

def shuffle_reseeded(rng, n):
    np.random.seed(int(rng.integers(2**31)))
    return np.random.permutation(n)

def shuffle_own(rng, n):
    return rng.permutation(n)

def shuffle_python(rng, n):
    order = list(range(n))
    random.shuffle(order)
    return np.array(order)

def replace_items(params, grads, lr):
    for i in range(len(params)):
        params[i] = params[i] - lr * grads[i]
    return params

def record(history, cache, x):
    history.append(x.sum())
    cache["x"] = x
    del cache["old"]
'''


@contextlib.contextmanager
def kernel(source: str = STUDENT, seconds: float = 60):
    """A forked child serving like a student's kernel whose cells defined ``source``."""
    ours, theirs = socket.socketpair()
    namespace = {"__name__": "__main__"}
    exec(compile(source, "/tmp/ipykernel_0/cell.py", "exec"), namespace)  # noqa: S102 - the test's own code
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            ours.close()
            kernel_side._Server(theirs, 1, namespace).loop()
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    conv = remote.Conversation(ours, 1, deadline=time.monotonic() + seconds)
    try:
        yield conv
    finally:
        conv.done()
        ours.close()
        os.waitpid(pid, 0)


def names(conv, *wanted):
    found = conv.request("lookup", names=list(wanted))
    return [found[n][1] for n in wanted]


def test_changes_to_the_graders_objects_come_back():
    with kernel() as conv:
        add_backward, scale = names(conv, "add_backward", "scale_in_place")
        a, b = nk.autograd.Value(1.0), nk.autograd.Value(2.0)
        out = a * b
        out.grad = 3.0
        assert add_backward(a, b, out) is None
        assert (a.grad, b.grad) == (3.0, 3.0)           # attributes (in slots) mirrored
        x = np.arange(3.0)
        scale(x)
        assert np.array_equal(x, [0.0, 2.0, 4.0])        # an array changed in place


def test_replaced_items_of_the_graders_lists_and_dicts_come_back():
    """``params[i] = …``, an append, a new or deleted key: the grader's own list and dict change as
    they would in-process, and the items that were the grader's own objects stay themselves."""
    with kernel() as conv:
        replace_items, record = names(conv, "replace_items", "record")
        params, grads = [np.ones(2), np.ones(3)], [np.ones(2), np.ones(3)]
        out = replace_items(params, grads, 0.5)
        assert [p.tolist() for p in params] == [[0.5, 0.5], [0.5, 0.5, 0.5]]
        assert [p.tolist() for p in out] == [[0.5, 0.5], [0.5, 0.5, 0.5]]
        x, first = np.arange(3.0), np.zeros(1)
        history, cache = [first], {"old": 1, "kept": grads[0]}
        record(history, cache, x)
        assert history[0] is first and history[1] == 3.0
        assert list(cache) == ["kept", "x"] and cache["kept"] is grads[0] and cache["x"] is x
        history.append(-1.0)                             # the grader's own change, then sent again
        record(history, {"old": 2}, x)
        assert history[1:] == [3.0, -1.0, 3.0] and history[0] is first


def test_an_answer_that_replaces_the_items_of_its_argument_is_named():
    with kernel() as conv:
        [replace_items] = names(conv, "replace_items")
        params, grads = [np.ones(2), np.ones(3)], [np.ones(2), np.ones(3)]
        fb = core.Feedback("gradient_step")
        with pytest.raises(AssertionError, match=r"changed its argument 1 `params` in place"):
            core.call(fb, replace_items, params, grads, 0.5, name="gradient_step(params, grads, lr)")
        assert [p.tolist() for p in params] == [[1.0, 1.0], [1.0, 1.0, 1.0]]   # the check worked on copies


def test_an_object_sent_twice_is_the_same_object_there():
    with kernel() as conv:
        [add_backward] = names(conv, "add_backward")
        a, b = nk.autograd.Value(1.0), nk.autograd.Value(2.0)
        out = a + b
        out.grad = 1.0
        add_backward(a, b, out)
        add_backward(a, b, out)                          # the kernel's a.grad is 1 when this starts
        assert a.grad == 2.0


def test_errors_keep_their_kind_but_never_look_like_a_check():
    with kernel() as conv:
        broken, picky, asserts = names(conv, "broken", "picky", "asserts")
        with pytest.raises(NotImplementedError):
            broken(1)
        with pytest.raises(ValueError, match="no negative numbers") as err:
            picky(1)
        assert isinstance(err.value, remote.RemoteError)
        with pytest.raises(remote.RemoteError) as err:
            asserts(1)
        assert not isinstance(err.value, AssertionError) and type(err.value).__name__ == "AssertionError"


@pytest.mark.parametrize("name, moves", [("shuffle_global", core.GLOBAL_RNG), ("shuffle_reseeded", core.GLOBAL_RNG),
                                         ("shuffle_python", core.PYTHON_RNG), ("shuffle_own", None)])
def test_the_kernel_says_when_a_global_generator_moved(name, moves):
    """Draws from or reseeds of numpy's or Python's global generator in the kernel are named by the
    check, even when the answer is reproducible and depends on its seed (reseeding from the given
    generator)."""
    with kernel() as conv:
        [shuffle] = names(conv, name)
        fb = core.Feedback("shuffle")
        run = lambda seed: shuffle(np.random.default_rng(seed), 50)  # noqa: E731
        if moves:
            with pytest.raises(AssertionError, match=moves):
                core.check_uses_generator(fb, "shuffle(rng, n)", run)
        else:
            core.check_uses_generator(fb, "shuffle(rng, n)", run)


def test_a_call_that_leaves_every_global_generator_alone_moves_none():
    import random

    before = global_rng.states()
    np.random.default_rng(0).random(3)
    assert global_rng.moved(before, global_rng.states()) == []
    random.random()
    np.random.rand()
    assert global_rng.moved(before, global_rng.states()) == ["numpy", "random"]


def test_a_model_of_nnkit_layers_comes_back_as_one():
    with kernel() as conv:
        [build] = names(conv, "build")
        model = build()
        assert isinstance(model, nk.Sequential) and len(model) == 3
        assert model[0].weight is model[0]._parameters["weight"]   # shared objects stay shared
        assert model.forward(np.ones((5, 3))).shape == (5, 2)


def test_a_students_own_class_stays_in_the_kernel():
    with kernel() as conv:
        [mine] = names(conv, "Mine")
        layer = mine(0.25)
        assert remote.is_remote(layer) and remote.type_name(layer) == "Mine"
        assert layer.p == 0.25
        assert "nnkit.module.Module" in remote.class_names(mine)


def test_a_function_that_must_run_in_the_grader_is_called_back():
    calls = []
    with kernel() as conv:
        [loop] = names(conv, "loop")
        assert loop(remote.Here(lambda i: calls.append(i) or i * i), 4) == [0, 1, 4, 9]
    assert calls == [0, 1, 2, 3]


@pytest.mark.parametrize("name, delegates", [
    ("sigmoid_own", False), ("sigmoid_delegates", True), ("sigmoid_hidden", True)])
def test_without_the_references_a_delegating_answer_fails(name, delegates):
    z = np.linspace(-3, 3, 7)
    with kernel() as conv:
        [fn] = names(conv, name)
        assert np.allclose(fn(z), nk.functional.sigmoid(z))          # the session itself is untouched
        with conv.forked(delegation.FORBIDDEN, (), 30):
            [blocked] = names(conv, name)
            try:
                ok = np.allclose(blocked(z), nk.functional.sigmoid(z))
            except remote.RemoteError as e:
                ok = False
                assert type(e).__name__ == "ReferenceBlocked"
        assert ok is not delegates
        assert bool(conv.touched) is delegates
        assert np.allclose(fn(z), nk.functional.sigmoid(z))          # and still after the child ended


def test_library_code_and_allowed_pieces_still_run_without_the_references():
    model = nk.Sequential(nk.Linear(3, 2), nk.Sigmoid())
    x = np.ones((4, 3))
    with kernel() as conv:
        with conv.forked(delegation.FORBIDDEN, ("nnkit.module", "nnkit.layers"), 30):
            [runs] = names(conv, "runs_model")
            assert np.allclose(runs(model, x), model.forward(x))    # Sigmoid calls nnkit.functional inside
        with conv.forked(delegation.FORBIDDEN, (), 30):
            [runs] = names(conv, "runs_model")
            with pytest.raises(remote.RemoteError):
                runs(model, x)


def test_a_kernel_that_closes_the_channel_ends_the_conversation():
    ours, theirs = socket.socketpair()
    theirs.close()
    conv = remote.Conversation(ours, 1, deadline=time.monotonic() + 5)
    with pytest.raises(wire.ChannelProblem):
        conv.request("lookup", names=["x"])


def test_a_kernel_that_never_answers_times_out():
    ours, theirs = socket.socketpair()
    conv = remote.Conversation(ours, 1, deadline=time.monotonic() + 0.3)
    with pytest.raises(wire.Cancelled):
        conv.request("lookup", names=["x"])
    theirs.close()


# --- the static look -------------------------------------------------------------------------------
COURSE = ["import numpy as np\nimport nnkit as nk\nfrom nnkit.grading import mlp as G"]


@pytest.mark.parametrize("source, hits", [
    ("def sigmoid(z):\n    return 1 / (1 + np.exp(-z))", []),
    ("def sigmoid(z):\n    return nk.functional.sigmoid(z)", ["nk.functional.sigmoid (line 2)"]),
    ("from nnkit.functional import sigmoid as s\ndef sigmoid(z):\n    return s(z)", ["s (line 3)"]),
    ("import torch\ndef sigmoid(z):\n    return torch.sigmoid(torch.tensor(z)).numpy()",
     ["torch.sigmoid (line 3)", "torch.tensor (line 3)"]),
    ("def sigmoid(z):\n    G = np.ones(3)\n    return G.sum() * z", []),               # a local name, not the import
    ("def sigmoid(z):\n    return G.ref_sigmoid(z)", ["G.ref_sigmoid (line 2)"]),  # the grading module's own
    ("class Dropout(nk.Dropout):\n    pass", ["nk.Dropout (line 1)"]),
])
def test_the_static_look_finds_calls_of_the_reference(source, hits):
    found = delegation.static_hits([source], {"sigmoid", "Dropout"}, delegation.Policy(), COURSE)
    assert sorted(found) == sorted(hits)


def test_what_a_question_allows_is_not_a_hit():
    source = "def build():\n    return nk.Sequential(nk.Linear(2, 2))"
    allow = delegation.Policy(allow=("nnkit.module", "nnkit.layers"))
    assert delegation.static_hits([source], {"build"}, allow, COURSE) == []
    assert delegation.static_hits([source], {"build"}, delegation.Policy(), COURSE)
