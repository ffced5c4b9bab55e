"""Checks for assignment test cells: what is wrong, in a sentence, never the expected array.

``nnkit.grading.core`` holds the shared machinery (``Feedback``, ``call``, ``check_array``,
``check_layers``, ``check_against_torch``, ``diagnose`` with ``Probe``, ``numerical_gradient``,
``reference_bindings``) and the bug-class phrases. The checks of each problem set live in
submodules (``mlp`` for problem sets 1 and 3), imported when first used::

    from nnkit.grading import mlp as G
    G.check_sigmoid_prime(sigmoid_prime)
"""
from __future__ import annotations

import importlib

from .core import (
    BATCH_FACTOR,
    DROPOUT_MASK_NOT_REUSED,
    DROPOUT_NOT_RESCALED,
    MISSING_FPRIME,
    NO_ACCUMULATION,
    SIGN_FLIP,
    TRANSPOSED,
    TRANSPOSED_W,
    UNSTABLE,
    Feedback,
    Probe,
    available_devices,
    call,
    check_against_torch,
    check_array,
    check_layers,
    diagnose,
    numerical_gradient,
    reference_bindings,
    relative_error,
)

__all__ = [
    "BATCH_FACTOR", "DROPOUT_MASK_NOT_REUSED", "DROPOUT_NOT_RESCALED", "Feedback", "MISSING_FPRIME",
    "NO_ACCUMULATION", "Probe", "SIGN_FLIP", "TRANSPOSED", "TRANSPOSED_W", "UNSTABLE", "available_devices",
    "call", "check_against_torch", "check_array", "check_layers", "diagnose", "numerical_gradient",
    "reference_bindings", "relative_error",
]

_SUBMODULES = {"core", "mlp", "autograd_checks", "stability", "regularisation", "conv_checks", "derivations"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'nnkit.grading' has no attribute {name!r}")
