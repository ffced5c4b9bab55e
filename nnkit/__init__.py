"""nnkit: a small, readable reference library for neural networks and backpropagation.

    import nnkit as nk
    model = nk.Sequential(nk.Linear(3, 4), nk.Sigmoid(), nk.Linear(4, 2), nk.Sigmoid())
    loss = nk.MSELoss()(model(x), y); model.backward(criterion.backward())

Numpy only at import time; the parts that compare with PyTorch import it when first used.
"""
from __future__ import annotations

import importlib

from ._random import get_rng, manual_seed
from .errors import BackwardBeforeForwardError, NNKitError, ShapeError
from .layers import (
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Loss, MSELoss, NLLLoss
from .module import Module, Parameter, Sequential
from . import functional, init, optim

__version__ = "0.1.0"

# Submodules loaded on first use (some import PyTorch, which takes seconds).
_LAZY = {"autograd", "data", "train", "attacks", "gradcheck", "parity", "grading", "conv", "models",
         "notebook", "exercises"}
# Names re-exported from lazily loaded submodules.
_LAZY_NAMES = {"Conv2d": "conv", "MaxPool2d": "conv"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'nnkit' has no attribute {name!r}")


__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "BackwardBeforeForwardError", "Conv2d", "CrossEntropyLoss", "Dropout",
    "Flatten", "Identity", "LeakyReLU", "Linear", "LogSoftmax", "Loss", "MSELoss", "MaxPool2d", "Module",
    "NLLLoss", "NNKitError", "Parameter", "ReLU", "Sequential", "ShapeError", "Sigmoid", "Softmax", "Step",
    "Tanh", "functional", "get_rng", "init", "manual_seed", "optim",
]
