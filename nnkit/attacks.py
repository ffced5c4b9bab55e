"""Adversarial examples: the fast gradient sign method (FGSM).

Goodfellow, Shlens and Szegedy (2015), as in the lecture notes (ML lecture 8, "Adversarial
training"): move every input pixel a small step ε in the direction that increases the loss,

    x_adv = x + ε · sign(∇ₓ L(θ, x, y))            (the notes' example: ε = 0.007)

Backpropagation already computes ∇ₓ L: it is what ``model.backward`` returns, the gradient
with respect to the network's input, one step past the first layer's δ. The attack needs no
new machinery, only a backward pass with the weights held fixed.
"""
from __future__ import annotations

import numpy as np

from .errors import ShapeError, describe
from .module import Module

__all__ = ["GOODFELLOW_EPSILON", "accuracy_under_attack", "fgsm", "input_gradient"]

#: ε of the notes' panda → gibbon example (on images scaled to [0, 1]).
GOODFELLOW_EPSILON = 0.007


def input_gradient(model: Module, loss_fn, x, y) -> np.ndarray:
    """∇ₓ L(θ, x, y): the gradient of the loss with respect to the input, by nnkit's backward.

    Computed in eval mode (dropout off). The parameters' ``.grad`` are left exactly as they were
    before the call, and the model's train/eval mode is restored.
    """
    if not isinstance(model, Module):
        raise TypeError(f"fgsm: model must be an nnkit Module, got {type(model).__name__}")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"fgsm: x must be a float array (pixels scaled to [0, 1]), got {describe(x)}")
    modes = [(m, m.training) for m in model.modules()]
    saved = [(p, p.grad.copy()) for p in model.parameters()]
    try:
        model.eval()
        out = model.forward(x)
        loss_fn.forward(out, y)
        dx = model.backward(loss_fn.backward())
    finally:
        for p, g in saved:  # backward added ∂ℒ/∂θ into p.grad; put the old gradients back
            p.grad = g
        for m, t in modes:
            m.training = t
    if np.shape(dx) != x.shape:
        raise ShapeError(f"fgsm: the model's backward returned {describe(dx)} for an input of shape {x.shape}")
    return dx


def fgsm(model: Module, loss_fn, x, y, epsilon: float, clip: tuple[float, float] | None = (0.0, 1.0)) -> np.ndarray:
    """Fast gradient sign method: ``x + ε·sign(∇ₓ L(θ, x, y))``, clipped to the valid pixel range.

    ``x`` is a batch of inputs (any shape the model takes) with targets ``y`` (what ``loss_fn``
    takes, e.g. class indices for ``CrossEntropyLoss``). Each input moves by at most ε in every
    coordinate (an L∞ ball of radius ε); ``clip=(lo, hi)`` keeps the result a valid image
    (``None``: no clipping). The gradient is computed with nnkit's own backward in eval mode;
    the parameters' gradients and the model's mode are left as they were.

    With a mean-reduced loss the gradient of each example is divided by the batch size; the
    sign, and so the attack, is the same as attacking each example on its own.
    """
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"fgsm: epsilon is the size of the step and must be ≥ 0, got {epsilon!r}")
    x = np.asarray(x)
    dx = input_gradient(model, loss_fn, x, y)
    x_adv = x + epsilon * np.sign(dx)
    if clip is not None:
        lo, hi = clip
        if lo > hi:
            raise ValueError(f"fgsm: clip=(lo, hi) needs lo ≤ hi, got {clip}")
        x_adv = np.clip(x_adv, lo, hi)
    return x_adv.astype(x.dtype, copy=False)


def accuracy_under_attack(model: Module, loss_fn, X, y, epsilons, clip: tuple[float, float] | None = (0.0, 1.0),
                          batch_size: int = 256) -> list[float]:
    """Accuracy of ``model`` on FGSM examples made from ``(X, y)``, one value per ε in ``epsilons``.

    ε = 0 gives the clean accuracy. The usual picture: accuracy falls quickly as ε grows, long
    before the perturbation is visible.
    """
    from .train import _default_threshold, accuracy

    X, y = np.asarray(X), np.asarray(y)
    result = []
    for eps in epsilons:
        parts = [fgsm(model, loss_fn, X[i:i + batch_size], y[i:i + batch_size], eps, clip)
                 for i in range(0, len(X), batch_size)]
        result.append(accuracy(model, np.concatenate(parts), y, batch_size, threshold=_default_threshold(loss_fn)))
    return result
