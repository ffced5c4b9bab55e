"""Every loss, with every reduction: central differences (float64, < 1e-7), PyTorch (float64, < 1e-10),
stability at |z| = 1e4, float32 kept float32, and the lecture's δ^L = p − y.

The PyTorch side is written out here (the mirror pattern), independently of ``nk.parity``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nnkit as nk
from nnkit.gradcheck import check_loss, relative_error

GRAD_TOL = 1e-7
TORCH_TOL = 1e-10
FAST = settings(max_examples=25, deadline=None)
REDUCTIONS = ["mean", "sum", "none"]

seeds = st.integers(0, 2**32 - 1)
any_shape = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
class_shape = st.tuples(st.integers(1, 6), st.integers(1, 5))  # (N, C), N = 1 included


def _log_probs(rng, shape):
    z = 2 * rng.standard_normal(shape)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# name → (pred maker, target maker, PyTorch mirror); shapes come from the test
LOSSES = {
    "MSELoss": (lambda rng, s: rng.standard_normal(s), lambda rng, s: rng.standard_normal(s), tF.mse_loss),
    # probabilities kept ≥ 0.05 from 0 and 1, so central differences stay inside (0, 1)
    "BCELoss": (lambda rng, s: rng.uniform(0.05, 0.95, s), lambda rng, s: rng.uniform(0, 1, s), tF.binary_cross_entropy),
    "BCEWithLogitsLoss": (lambda rng, s: 3 * rng.standard_normal(s), lambda rng, s: rng.uniform(0, 1, s),
                          tF.binary_cross_entropy_with_logits),
    "CrossEntropyLoss": (lambda rng, s: 2 * rng.standard_normal(s), lambda rng, s: rng.integers(0, s[-1], s[:-1]),
                         tF.cross_entropy),
    "NLLLoss": (_log_probs, lambda rng, s: rng.integers(0, s[-1], s[:-1]), tF.nll_loss),
}
ELEMENTWISE = ["MSELoss", "BCELoss", "BCEWithLogitsLoss"]
CLASSWISE = ["CrossEntropyLoss", "NLLLoss"]


def _case(name, seed, shape):
    rng = np.random.default_rng(seed)
    make_pred, make_target, _ = LOSSES[name]
    return rng, make_pred(rng, shape), make_target(rng, shape)


def _torch_loss(name, reduction, pred, target, dout):
    """Value and ∂ℒ/∂pred from PyTorch, float64; ``dout`` weights the per-element losses of 'none'."""
    pt = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    tt = torch.tensor(target) if name in CLASSWISE else torch.tensor(target, dtype=torch.float64)
    value = LOSSES[name][2](pt, tt, reduction=reduction)
    value.backward(None if reduction != "none" else torch.tensor(dout, dtype=torch.float64))
    return value.detach().numpy(), pt.grad.numpy()


def _check(name, reduction, seed, shape):
    rng, pred, target = _case(name, seed, shape)
    loss = getattr(nk, name)(reduction=reduction)
    report = check_loss(loss, pred, target, rng=rng)
    report.assert_ok()
    assert report["∂ℒ/∂pred"].error < GRAD_TOL

    value = loss.forward(pred, target)
    dout = rng.standard_normal(np.shape(value)) if reduction == "none" else None
    grad = loss.backward() if dout is None else loss.backward(dout)
    t_value, t_grad = _torch_loss(name, reduction, pred, target, dout)
    assert np.shape(value) == t_value.shape
    assert relative_error(value, t_value) < TORCH_TOL, f"{name} value differs from PyTorch"
    assert relative_error(grad, t_grad) < TORCH_TOL, f"{name} gradient differs from PyTorch"
    if reduction != "none":
        assert isinstance(value, float)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ELEMENTWISE)
@FAST
@given(seed=seeds, shape=any_shape)
@example(seed=0, shape=(1,))
@example(seed=0, shape=(1, 1))
def test_elementwise_loss_gradcheck_and_torch(name, reduction, seed, shape):
    _check(name, reduction, seed, shape)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CLASSWISE)
@FAST
@given(seed=seeds, shape=class_shape)
@example(seed=0, shape=(1, 3))
@example(seed=0, shape=(4, 1))
def test_class_loss_gradcheck_and_torch(name, reduction, seed, shape):
    _check(name, reduction, seed, shape)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CLASSWISE)
def test_class_loss_on_one_unbatched_example(name, reduction):
    """Scores of shape (C,) with a scalar target, as PyTorch accepts."""
    _check(name, reduction, 3, (5,))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_hard_zero_one_targets(name):
    rng = np.random.default_rng(0)
    pred = LOSSES[name][0](rng, (6, 2))
    target = rng.integers(0, 2, (6, 2)).astype(float)
    loss = getattr(nk, name)()
    check_loss(loss, pred, target).assert_ok()
    t_value, t_grad = _torch_loss(name, "mean", pred, target, None)
    assert relative_error(loss.forward(pred, target), t_value) < TORCH_TOL
    assert relative_error(loss.backward(), t_grad) < TORCH_TOL


def test_bce_clamps_log_at_minus_100_like_pytorch():
    """p = 0 or 1 exactly: PyTorch clamps each log at −100, so the loss is finite, and the gradient
    divides by max(p(1 − p), 1e-12)."""
    pred = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    target = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    for reduction in REDUCTIONS:
        loss = nk.BCELoss(reduction=reduction)
        value = loss.forward(pred, target)
        dout = np.ones(5) if reduction == "none" else None
        grad = loss.backward() if dout is None else loss.backward(dout)
        t_value, t_grad = _torch_loss("BCELoss", reduction, pred, target, dout)
        assert np.all(np.isfinite(value)) and relative_error(value, t_value) < TORCH_TOL
        assert relative_error(grad, t_grad) < TORCH_TOL


def test_backward_scales_with_the_upstream_gradient():
    rng, pred, target = _case("MSELoss", 0, (3, 2))
    loss = nk.MSELoss()
    loss.forward(pred, target)
    np.testing.assert_allclose(loss.backward(2.5), 2.5 * loss.backward(), rtol=1e-15)


# --- what the lectures say about these losses ------------------------------------------------
@given(seed=seeds, shape=class_shape)
@FAST
def test_cross_entropy_gradient_is_p_minus_y(seed, shape):
    """δ^L = p − y per example (summed loss); the mean divides it by the batch size N."""
    rng, z, y = _case("CrossEntropyLoss", seed, shape)
    p = torch.softmax(torch.tensor(z), dim=-1).numpy()  # p from PyTorch, y one-hot
    onehot = np.eye(shape[1])[y]
    loss = nk.CrossEntropyLoss(reduction="sum")
    loss.forward(z, y)
    assert relative_error(loss.backward(), p - onehot) < 1e-14
    mean = nk.CrossEntropyLoss()
    mean.forward(z, y)
    assert relative_error(mean.backward(), (p - onehot) / shape[0]) < 1e-14


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_is_log_softmax_then_nll(reduction):
    rng, z, y = _case("CrossEntropyLoss", 1, (5, 4))
    ce, nll, log_softmax = nk.CrossEntropyLoss(reduction=reduction), nk.NLLLoss(reduction=reduction), nk.LogSoftmax()
    a = ce.forward(z, y)
    b = nll.forward(log_softmax.forward(z), y)
    assert relative_error(a, b) < 1e-14
    dout = rng.standard_normal(np.shape(a)) if reduction == "none" else 1.0
    assert relative_error(ce.backward(dout), log_softmax.backward(nll.backward(dout))) < 1e-13


def test_mse_of_one_example_is_the_notes_half_squared_error_times_two():
    y_hat, y = np.array([0.3, -1.2]), np.array([1.0, 0.5])
    half_squared = 0.5 * np.sum((y - y_hat) ** 2)
    assert nk.MSELoss(reduction="sum").forward(y_hat, y) == pytest.approx(2 * half_squared, rel=1e-15)


# --- numerical stability ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_stable_at_large_logits(dtype, reduction):
    z = np.array([1e4, -1e4, 1e4, -1e4, 1e4, -1e4, 0.0], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0], dtype=dtype)
    _stable("BCEWithLogitsLoss", reduction, z, y, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_stable_at_large_logits(dtype, reduction):
    z = np.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    y = np.array([0, 1, 2, 1])
    _stable("CrossEntropyLoss", reduction, z, y, dtype)


def _stable(name, reduction, z, y, dtype):
    loss = getattr(nk, name)(reduction=reduction)
    dout = np.linspace(0.5, 1.5, z.shape[0]).astype(dtype) if reduction == "none" else None
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(z, y)
        grad = loss.backward() if dout is None else loss.backward(dout)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    assert grad.dtype == dtype
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    zt = torch.tensor(z, requires_grad=True)
    yt = torch.tensor(y) if name in CLASSWISE else torch.tensor(y, dtype=tdtype)
    t_value = LOSSES[name][2](zt, yt, reduction=reduction)
    t_value.backward(None if dout is None else torch.tensor(dout))
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert relative_error(value, t_value.detach().numpy()) < tol
    assert relative_error(grad, zt.grad.numpy()) < tol


# --- float32 stays float32 -------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_float32_predictions_give_float32_gradients(name, reduction):
    rng, pred, target = _case(name, 0, (4, 3))
    loss = getattr(nk, name)(reduction=reduction)
    value = loss.forward(pred.astype(np.float32), target)
    if reduction == "none":
        assert value.dtype == np.float32
        grad = loss.backward(np.ones(value.shape, dtype=np.float32))
    else:
        grad = loss.backward()
    assert grad.dtype == np.float32, f"{name} upcast its gradient to {grad.dtype}"
