"""The global random generators an answer must leave alone: numpy's, Python's and PyTorch's.

A graded function that is given a generator must draw only from it. Whether it drew from (or
reseeded) a global generator instead is read from that generator's state before and after the
call: in the grader's process for an in-process check, in the student's kernel for a graded run
(``kernel_side``), which reports the names of the generators that moved.
"""
from __future__ import annotations

import random
import sys

import numpy as np

#: the global generators watched, by the name the messages use
NAMES = {"numpy": "numpy's", "random": "Python's", "torch": "PyTorch's"}
#: what a student would have called on each: the messages' examples
EXAMPLES = {
    "numpy": "np.random.seed, np.random.rand, np.random.permutation …",
    "random": "random.seed, random.random, random.shuffle …",
    "torch": "torch.manual_seed, torch.rand, torch.randperm …",
}


def states() -> dict[str, object]:
    """Each global generator's state, comparable with ``==`` (PyTorch's only once it is imported:
    importing it here would cost seconds and tells nothing)."""
    np_state = np.random.get_state(legacy=False)
    inner = np_state["state"]
    out: dict[str, object] = {
        "numpy": (inner["key"].tobytes(), inner["pos"], np_state["has_gauss"], np_state["gauss"]),
        "random": random.getstate(),
    }
    torch = sys.modules.get("torch")
    get_rng_state = getattr(torch, "get_rng_state", None)
    if callable(get_rng_state):
        try:
            out["torch"] = bytes(get_rng_state().numpy().tobytes())
        except Exception:  # noqa: BLE001 - a half-imported or replaced torch: nothing to compare
            pass
    return out


def moved(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """The names of the generators whose state differs (one imported meanwhile counts only if it moved
    from its seed-at-import state, which cannot be known: it is left out)."""
    return [name for name in NAMES if name in before and name in after and before[name] != after[name]]
