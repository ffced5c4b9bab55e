"""Loss functions: ``forward(pred, target)`` → the loss, ``backward()`` → ∂ℒ/∂pred.

Semantics follow PyTorch (``reduction`` in {"mean", "sum", "none"}; ``CrossEntropyLoss`` takes
logits and integer class targets and equals ``LogSoftmax`` followed by ``NLLLoss``). Targets are
checked strictly: a target of shape (N,) against predictions of shape (N, 1) is an error, never
silent broadcasting into an (N, N) loss.
"""
from __future__ import annotations

import numpy as np

from . import functional as F
from .errors import BackwardBeforeForwardError, ShapeError, describe
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


class Loss(Module):
    """Base class: checks inputs, applies the reduction, and scales the backward accordingly."""

    _checks_input = False  # losses check prediction and target themselves

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._grad_elementwise = None  # ∂ℓ_i/∂pred for each element's unreduced loss ℓ_i
        self._n = 1

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""

    def _pred(self, pred) -> np.ndarray:
        if not isinstance(pred, np.ndarray):
            pred = np.asarray(pred)
        if not np.issubdtype(pred.dtype, np.floating):
            raise TypeError(
                f"{self.label()}: predictions have dtype {pred.dtype} ({describe(pred)}); "
                "they must be float32 or float64."
            )
        return pred

    def _same_shape_target(self, pred: np.ndarray, target) -> np.ndarray:
        target = np.asarray(target)
        if target.shape != pred.shape:
            hint = ""
            if target.size == pred.size:
                hint = f" Reshape it with target.reshape{pred.shape}."
            raise ShapeError(
                f"{self.label()}: target has shape {target.shape} but predictions have shape {pred.shape}; "
                f"they must match exactly (no broadcasting).{hint}"
            )
        if not np.issubdtype(target.dtype, np.number) and target.dtype != bool:
            raise TypeError(f"{self.label()}: target has dtype {target.dtype}; expected numbers")
        return target.astype(pred.dtype, copy=False)

    def _reduce(self, per_element: np.ndarray, grad: np.ndarray, n: int):
        """Store ∂ℓ/∂pred and return the reduced loss (``n`` = how many terms the mean divides by)."""
        self._grad_elementwise = grad
        self._loss_shape = per_element.shape
        self._n = max(n, 1)
        if self.reduction == "none":
            self._output_shape = per_element.shape
            return per_element
        self._output_shape = ()
        total = per_element.sum()
        return float(total / self._n) if self.reduction == "mean" else float(total)

    def backward(self, grad=1.0):
        """∂ℒ/∂pred. For ``reduction='none'`` pass the upstream gradient of the per-element losses
        (default: ones, i.e. the gradient of their sum)."""
        if self._grad_elementwise is None:
            raise BackwardBeforeForwardError(f"{self.label()}: backward() was called before forward(pred, target).")
        g = self._grad_elementwise
        if self.reduction == "none":
            up = np.broadcast_to(np.asarray(grad, dtype=g.dtype), self._loss_shape) if np.ndim(grad) == 0 else np.asarray(grad)
            if up.shape != self._loss_shape:
                raise ShapeError(
                    f"{self.label()}: upstream gradient has shape {up.shape}, the unreduced loss has shape {self._loss_shape}"
                )
            return self._expand(g, up)
        scale = float(grad) / self._n if self.reduction == "mean" else float(grad)
        return (g * scale).astype(g.dtype, copy=False)

    def _expand(self, g: np.ndarray, up: np.ndarray) -> np.ndarray:
        """Multiply the element-wise gradient by the upstream gradient of each loss term."""
        return g * up


class MSELoss(Loss):
    """ℓ_i = (pred_i − target_i)²; mean over all elements by default. ∂ℓ_i/∂pred_i = 2(pred_i − target_i).

    The notes' ½(y − ŷ)² is ``0.5 * MSELoss(reduction='sum')`` for one example.
    """

    def forward(self, pred, target):
        pred = self._pred(pred)
        target = self._same_shape_target(pred, target)
        diff = pred - target
        return self._reduce(diff * diff, 2.0 * diff, diff.size)


class BCELoss(Loss):
    """Binary cross entropy on probabilities p ∈ [0, 1]: ℓ = −[y log p + (1 − y) log(1 − p)].

    As in PyTorch, each log is clamped at −100 so that p = 0 or 1 gives a finite loss. Prefer
    ``BCEWithLogitsLoss`` on logits: it is exact where this one saturates.
    """

    def forward(self, pred, target):
        pred = self._pred(pred)
        target = self._same_shape_target(pred, target)
        if np.any((pred < 0) | (pred > 1)) or np.any(np.isnan(pred)):
            raise ValueError(f"{self.label()}: predictions must be probabilities in [0, 1] (min {np.nanmin(pred):.4g}, max {np.nanmax(pred):.4g}); pass logits to BCEWithLogitsLoss instead")
        if np.any((target < 0) | (target > 1)):
            raise ValueError(f"{self.label()}: targets must lie in [0, 1] (min {target.min():.4g}, max {target.max():.4g})")
        with np.errstate(divide="ignore"):
            log_p = np.maximum(np.log(pred), -100.0)
            log_1mp = np.maximum(np.log1p(-pred), -100.0)
        per = -(target * log_p + (1 - target) * log_1mp)
        eps = float(np.float32(1e-12))  # PyTorch's guard in the gradient (a float32 constant there)
        grad = (pred - target) / np.maximum((1 - pred) * pred, eps)
        return self._reduce(per, grad, per.size)


class BCEWithLogitsLoss(Loss):
    """Binary cross entropy on logits z: ℓ = max(z, 0) − z·y + log(1 + e^{−|z|}); ∂ℓ/∂z = σ(z) − y.

    The formula never exponentiates a large positive number, so it is finite for any z.
    """

    def forward(self, pred, target):
        z = self._pred(pred)
        y = self._same_shape_target(z, target)
        if np.any((y < 0) | (y > 1)):
            raise ValueError(f"{self.label()}: targets must lie in [0, 1] (min {y.min():.4g}, max {y.max():.4g})")
        per = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return self._reduce(per, F.sigmoid(z) - y, per.size)


class _ClassLoss(Loss):
    """Shared target checks of NLLLoss and CrossEntropyLoss: (N, C) scores with (N,) class indices."""

    def _class_target(self, scores: np.ndarray, target) -> np.ndarray:
        target = np.asarray(target)
        if scores.ndim not in (1, 2):
            raise ShapeError(
                f"{self.label()}: expected scores of shape (N, C) (or (C,) for one example), got {describe(scores)}"
            )
        expected = scores.shape[:-1]
        if target.shape != expected:
            raise ShapeError(
                f"{self.label()}: scores have shape {scores.shape}, so the target must hold one class index per "
                f"example, shape {expected}; got {target.shape}."
                + (" Use target.reshape(-1)." if target.size == int(np.prod(expected)) else "")
            )
        if not np.issubdtype(target.dtype, np.integer):
            if np.issubdtype(target.dtype, np.floating) and np.all(np.mod(target, 1) == 0):
                raise TypeError(
                    f"{self.label()}: class targets must be integers, got dtype {target.dtype}; use target.astype(int)"
                )
            raise TypeError(f"{self.label()}: class targets must be integer class indices, got dtype {target.dtype}")
        C = scores.shape[-1]
        if target.size and (target.min() < 0 or target.max() >= C):
            bad = target[(target < 0) | (target >= C)]
            raise ValueError(
                f"{self.label()}: class targets must lie in 0…{C - 1} for scores of shape {scores.shape} ({C} classes); "
                f"found {bad.ravel()[:5].tolist()}"
            )
        return target

    def _one_hot(self, target: np.ndarray, C: int, dtype) -> np.ndarray:
        y = np.zeros(target.shape + (C,), dtype=dtype)
        np.put_along_axis(y, target[..., None], 1.0, axis=-1)
        return y

    def _expand(self, g, up):
        return g * up[..., None]


class NLLLoss(_ClassLoss):
    """Negative log-likelihood on log-probabilities: ℓ_i = −logp_{i, y_i}; ∂ℓ_i/∂logp = −onehot(y_i)."""

    def forward(self, pred, target):
        logp = self._pred(pred)
        target = self._class_target(logp, target)
        onehot = self._one_hot(target, logp.shape[-1], logp.dtype)
        per = -np.sum(logp * onehot, axis=-1)
        return self._reduce(per, -onehot, per.size)


class CrossEntropyLoss(_ClassLoss):
    """Softmax cross entropy on logits z with integer targets: ℓ_i = log Σ_k e^{z_ik} − z_{i,y_i}.

    Equal to ``LogSoftmax`` + ``NLLLoss``; its gradient is the lecture's δ^L = p − y (per example).
    """

    def forward(self, pred, target):
        z = self._pred(pred)
        target = self._class_target(z, target)
        logp = F.log_softmax(z, axis=-1)
        onehot = self._one_hot(target, z.shape[-1], z.dtype)
        per = -np.sum(logp * onehot, axis=-1)
        return self._reduce(per, np.exp(logp) - onehot, per.size)
