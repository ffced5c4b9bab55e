"""Training: the minibatch SGD loop, with history, validation, early stopping and a progress bar.

One step of ``fit`` is the loop the lectures write by hand::

    model.train()
    out  = model.forward(xb)
    loss = loss_fn.forward(out, yb)
    model.zero_grad()
    model.backward(loss_fn.backward())
    optimizer.step()

and one epoch is one pass over the training data in a new random order. After every epoch
the model is evaluated on the validation data in eval mode (dropout off).

Accuracy is computed only for class targets (``classification_accuracy`` below says how):

- (N, C) outputs with C ≥ 2: the predicted class is the argmax of the output row; the target is
  a class index (N,) or a one-hot row (N, C);
- one output per example, (N,) or (N, 1): the prediction is 1 when the output exceeds a
  threshold, else 0. The threshold is 0.5 for probabilities (a ``Sigmoid`` output with
  ``BCELoss`` or ``MSELoss``) and 0 for logits (``BCEWithLogitsLoss``; ``fit`` and ``evaluate``
  pick this from the loss). Targets of ±1 (a ``Tanh`` output) are compared by sign.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._random import get_rng
from .data import DataLoader
from .errors import ShapeError, describe
from .module import Module

__all__ = ["History", "accuracy", "classification_accuracy", "evaluate", "fit", "is_class_target", "predict"]


@dataclass
class History:
    """What ``fit`` measured, one entry per epoch.

    - ``train_loss``: the loss over the epoch's training batches (batch losses combined as the
      loss's ``reduction`` would combine all examples: averaged for "mean"), computed on the fly
      in training mode while the weights were changing, as Keras and PyTorch loops report it;
    - ``val_loss``: the loss on the validation data after the epoch, in eval mode;
    - ``train_acc``, ``val_acc``: accuracy (fraction correct, 0…1) likewise; empty lists when
      no accuracy was computed (``metric=None``, or targets that are not class labels);
    - ``best_epoch``: index (0-based, into the lists above) of the epoch with the lowest
      validation loss, ``None`` without validation data;
    - ``stopped_epoch``: index of the epoch after which early stopping ended training, ``None``
      if all epochs ran;
    - ``restored_best``: whether the model's weights were reset to those after ``best_epoch``.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_epoch: int | None = None
    restored_best: bool = False
    metric: str | None = None

    @property
    def epochs(self) -> int:
        """How many epochs ran."""
        return len(self.train_loss)

    def summary(self) -> str:
        """One line per epoch, as a table."""
        acc = bool(self.train_acc)
        head = f"{'epoch':>5}  {'train loss':>10}" + (f"  {'train acc':>9}" if acc else "")
        if self.val_loss:
            head += f"  {'val loss':>10}" + (f"  {'val acc':>9}" if self.val_acc else "")
        lines = [head]
        for e in range(self.epochs):
            row = f"{e + 1:>5}  {self.train_loss[e]:>10.4f}" + (f"  {self.train_acc[e]:>9.2%}" if acc else "")
            if self.val_loss:
                row += f"  {self.val_loss[e]:>10.4f}" + (f"  {self.val_acc[e]:>9.2%}" if self.val_acc else "")
            if e == self.best_epoch:
                row += "  ← best" + (" (restored)" if self.restored_best else "")
            lines.append(row)
        if self.stopped_epoch is not None:
            lines.append(f"early stopping after epoch {self.stopped_epoch + 1}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------------
def is_class_target(y) -> bool:
    """Whether ``y`` holds class labels accuracy can be computed for.

    True for integer (or integer-valued float) labels of shape (N,) or (N, 1), and for one-hot
    rows (N, C); False for real-valued regression targets.
    """
    y = np.asarray(y)
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1):
        if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
            return True
        return bool(np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)))
    if y.ndim == 2 and np.issubdtype(y.dtype, np.number):
        return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))
    return False


def _default_threshold(loss_fn) -> float | None:
    from .losses import BCEWithLogitsLoss

    return 0.0 if isinstance(loss_fn, BCEWithLogitsLoss) else None


def classification_accuracy(out, y, threshold: float | None = None) -> float:
    """Fraction of examples whose predicted class equals the target class.

    ``out`` (N, C), C ≥ 2: predicted class = argmax over the row; ``y`` holds class indices (N,)
    or one-hot rows (N, C). ``out`` (N,) or (N, 1): predicted class = 1 if out > threshold else 0
    (threshold 0.5 by default: outputs are probabilities); if the targets contain −1, classes
    are ±1 and the prediction is +1 if out > threshold (default 0) else −1.
    """
    out, y = np.asarray(out), np.asarray(y)
    if out.ndim == 2 and out.shape[1] > 1:
        pred = np.argmax(out, axis=1)
        if y.shape == out.shape:
            true = np.argmax(y, axis=1)
        elif y.shape == out.shape[:1]:
            true = y
        else:
            raise ShapeError(
                f"accuracy: outputs have shape {out.shape} ({out.shape[1]} classes), so targets must be class "
                f"indices of shape {out.shape[:1]} or one-hot rows of shape {out.shape}; got {describe(y)}"
            )
    elif out.ndim in (1, 2) and out.size == y.size and out.shape[0] == (y.shape[0] if y.ndim else -1):
        out, true = out.reshape(-1), y.reshape(-1)
        if np.any(true < 0):
            t = 0.0 if threshold is None else threshold
            pred = np.where(out > t, 1, -1)
        else:
            t = 0.5 if threshold is None else threshold
            pred = (out > t).astype(np.int64)
    else:
        raise ShapeError(
            f"accuracy: cannot match outputs {describe(out)} with targets {describe(y)}; expected (N, C) "
            "outputs with class indices (N,), or one output per example with targets of the same size"
        )
    if len(true) == 0:
        return float("nan")
    return float(np.mean(pred == true))


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
class _Mode:
    """``with _Mode(model, training=False):`` — set train/eval mode, restore the old one after."""

    def __init__(self, model: Module, training: bool):
        self.model, self.training = model, training

    def __enter__(self):
        self.old = [(m, m.training) for m in self.model.modules()]
        self.model.train(self.training)
        return self.model

    def __exit__(self, *exc):
        for m, t in self.old:
            m.training = t
        return False


def _check_model(fn: str, model) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{fn}: model must be an nnkit Module (e.g. nk.Sequential(...)), got {type(model).__name__}")


def _loss_value(loss_fn, out, yb, where: str) -> float:
    value = loss_fn.forward(out, yb)
    if np.ndim(value) != 0:
        raise ValueError(
            f"{where}: the loss returned an array of shape {np.shape(value)}; training needs one number. "
            "Use reduction='mean' (the default) or 'sum'."
        )
    return float(value)


def _combine(values: list[float], sizes: list[int], reduction: str) -> float:
    """Batch losses → the loss over all their examples (exact for 'mean' and 'sum')."""
    if not values:
        return float("nan")
    v, n = np.asarray(values), np.asarray(sizes, dtype=np.float64)
    return float(v.sum()) if reduction == "sum" else float(np.sum(v * n) / n.sum())


def predict(model: Module, X, batch_size: int = 256) -> np.ndarray:
    """The model's outputs for every row of ``X``, computed in eval mode in batches.

    The model's train/eval mode is restored afterwards.
    """
    _check_model("predict", model)
    X = np.asarray(X)
    outs = []
    with _Mode(model, training=False):
        for xb in DataLoader(X, None, batch_size=batch_size, shuffle=False):
            outs.append(model.forward(xb))
    if not outs:
        raise ValueError("predict: X holds no examples")
    return np.concatenate(outs, axis=0)


def evaluate(model: Module, loss_fn, X, y, batch_size: int = 256, *,
             threshold: float | None = None) -> tuple[float, float | None]:
    """``(loss, accuracy)`` of the model on ``(X, y)``, in eval mode, in batches.

    The loss is what ``loss_fn`` would give on all examples at once. The accuracy is ``None``
    when ``y`` does not hold class labels (regression). The model's mode is restored afterwards.
    """
    _check_model("evaluate", model)
    X, y = np.asarray(X), np.asarray(y)
    if threshold is None:
        threshold = _default_threshold(loss_fn)
    values, sizes, outs = [], [], []
    with _Mode(model, training=False):
        for xb, yb in DataLoader(X, y, batch_size=batch_size, shuffle=False):
            out = model.forward(xb)
            values.append(_loss_value(loss_fn, out, yb, "evaluate"))
            sizes.append(len(xb))
            outs.append(out)
    loss = _combine(values, sizes, getattr(loss_fn, "reduction", "mean"))
    acc = classification_accuracy(np.concatenate(outs), y, threshold) if outs and is_class_target(y) else None
    return loss, acc


def accuracy(model: Module, X, y, batch_size: int = 256, *, threshold: float | None = None) -> float:
    """Fraction of ``X``'s rows the model classifies correctly (eval mode; see the module docstring).

    For a one-output model trained on logits (``BCEWithLogitsLoss``) pass ``threshold=0``.
    """
    y = np.asarray(y)
    if not is_class_target(y):
        raise ValueError(
            f"accuracy: targets {describe(y)} are not class labels (integers, 0/1, ±1 or one-hot rows); "
            "accuracy is defined for classification only"
        )
    return classification_accuracy(predict(model, X, batch_size), y, threshold)


# --------------------------------------------------------------------------------------------
# The fit loop
# --------------------------------------------------------------------------------------------
def _pair(name: str, data) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"fit: {name} must be a pair (X, y), got {type(data).__name__}")
    X, y = np.asarray(data[0]), np.asarray(data[1])
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ShapeError(
            f"fit: {name} X and y must hold the same number of examples, got X {describe(X)}, y {describe(y)}"
        )
    if len(X) == 0:
        raise ValueError(f"fit: {name} data holds no examples")
    return X, y


def fit(model: Module, loss_fn, optimizer, train, val=None, epochs: int = 10, batch_size: int = 32,
        rng=None, patience: int | None = None, progress: bool = True, metric: str | None = "accuracy", *,
        shuffle: bool = True, min_delta: float = 0.0, restore_best: bool = True,
        threshold: float | None = None, eval_batch_size: int = 256,
        callback: Callable[[int, History, Module], object] | None = None) -> History:
    """Train ``model`` with minibatch gradient descent; return the per-epoch ``History``.

    - ``train=(X, y)``: training data; ``val=(X, y)``: validation data, evaluated after every
      epoch in eval mode (or ``None``).
    - ``epochs`` passes over the training data in batches of ``batch_size``, shuffled each epoch
      with ``rng`` (int seed, Generator, or ``None`` for nnkit's default generator): the same
      seed, model initialisation and data give the same run, weight for weight.
    - **early stopping** (``patience=k``, needs ``val``): training stops when the validation loss
      has not improved (by more than ``min_delta``) for k epochs in a row, and the weights of the
      best epoch are restored (``restore_best=False`` keeps the last ones). The notes: "stop
      training when error on validation set stops decreasing"; storing the best model is its cost.
    - ``metric="accuracy"`` records accuracy when the targets are class labels (see the module
      docstring for how outputs become classes; ``threshold`` overrides the one-output
      threshold); ``None`` records only losses.
    - ``progress=True`` shows a tqdm bar (in a notebook, a widget); ``False`` prints nothing.
    - ``callback(epoch, history, model)`` is called after every epoch (e.g. to draw a plot).

    The model is left in the train/eval mode it had when ``fit`` was called. A loss that becomes
    NaN or infinite stops training with ``FloatingPointError`` (usually: learning rate too high).
    """
    _check_model("fit", model)
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"fit: optimizer must have a step() method (e.g. nk.optim.SGD), got {type(optimizer).__name__}")
    if metric not in ("accuracy", None):
        raise ValueError(f"fit: metric must be 'accuracy' or None, got {metric!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be an integer ≥ 0, got {epochs!r}")
    if patience is not None:
        if val is None:
            raise ValueError("fit: early stopping (patience=...) watches the validation loss; pass val=(X_val, y_val)")
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ValueError(f"fit: patience must be an integer ≥ 1 (epochs without improvement), got {patience!r}")
    if getattr(loss_fn, "reduction", "mean") == "none":
        raise ValueError("fit: the loss has reduction='none'; training needs one number per batch ('mean' or 'sum')")
    X, y = _pair("train", train)
    Xv, yv = _pair("val", val) if val is not None else (None, None)
    if threshold is None:
        threshold = _default_threshold(loss_fn)
    track_acc = metric == "accuracy" and is_class_target(y) and (yv is None or is_class_target(yv))

    history = History(metric="accuracy" if track_acc else None)
    loader = DataLoader(X, y, batch_size=batch_size, shuffle=shuffle, rng=get_rng(rng))
    reduction = getattr(loss_fn, "reduction", "mean")
    best_loss, best_state, waited = np.inf, None, 0

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, desc="fit", unit="epoch", leave=True)
    with _Mode(model, training=model.training):
        try:
            for epoch in range(epochs):
                values, sizes, correct = [], [], 0.0
                for b, (xb, yb) in enumerate(loader):
                    model.train()
                    out = model.forward(xb)
                    loss = _loss_value(loss_fn, out, yb, "fit")
                    if not np.isfinite(loss):
                        raise FloatingPointError(
                            f"fit: the loss became {loss} in epoch {epoch + 1}, batch {b + 1}. The weights have "
                            "diverged; try a smaller learning rate (or check the inputs for NaN)."
                        )
                    model.zero_grad()
                    model.backward(loss_fn.backward())
                    optimizer.step()
                    values.append(loss)
                    sizes.append(len(xb))
                    if track_acc:
                        correct += classification_accuracy(out, yb, threshold) * len(xb)
                history.train_loss.append(_combine(values, sizes, reduction))
                if track_acc:
                    history.train_acc.append(correct / max(sum(sizes), 1))
                postfix = {"loss": f"{history.train_loss[-1]:.4f}"}
                if track_acc:
                    postfix["acc"] = f"{history.train_acc[-1]:.3f}"

                stop = False
                if Xv is not None:
                    vloss, vacc = evaluate(model, loss_fn, Xv, yv, eval_batch_size, threshold=threshold)
                    history.val_loss.append(vloss)
                    if track_acc:
                        history.val_acc.append(vacc)
                        postfix["val_acc"] = f"{vacc:.3f}"
                    postfix["val_loss"] = f"{vloss:.4f}"
                    if vloss < best_loss - min_delta:
                        best_loss, waited, history.best_epoch = vloss, 0, epoch
                        if patience is not None and restore_best:
                            best_state = model.state_dict()
                    else:
                        waited += 1
                        if patience is not None and waited >= patience:
                            history.stopped_epoch, stop = epoch, True
                if bar is not None:
                    bar.set_postfix(postfix, refresh=False)
                    bar.update(1)
                if callback is not None:
                    callback(epoch, history, model)
                if stop:
                    break
        finally:
            if bar is not None:
                bar.close()
        last = history.epochs - 1
        if best_state is not None and history.best_epoch is not None and history.best_epoch != last:
            model.load_state_dict(best_state)
            history.restored_best = True
    return history
