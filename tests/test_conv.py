"""Conv2d and MaxPool2d: gradients against central differences, parity with PyTorch (CPU float64,
CUDA float32), naive == fast, max-pool ties and overlapping windows, error messages, and the
digits convnet that trains to ≥ 98 % test accuracy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nnkit as nk
from nnkit.models import lenet_digits, lenet_notes, to_torch

ROOT = Path(__file__).resolve().parents[1]
TOL_TORCH = 1e-10  # float64 on the CPU: agreement with PyTorch up to rounding
IMPLS = ("fast", "naive")


def assert_close(actual, expected, tol, what=""):
    """max |actual − expected| ≤ tol · max(1, max |expected|) — relative, with absolute floor tol."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    err = float(np.max(np.abs(actual - expected))) / scale if expected.size else 0.0
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.0e}"


def pair(a: int, b: int):
    """An int when both are equal (the short form), else the (rows, columns) tuple."""
    return a if a == b else (a, b)


# --------------------------------------------------------------------------------------------
# hypothesis cases
# --------------------------------------------------------------------------------------------
@st.composite
def conv_cases(draw, max_size: int = 9):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    return dict(
        n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), f=draw(st.integers(1, 3)),
        h=draw(st.integers(max(1, kh - 2 * ph), max_size)), w=draw(st.integers(max(1, kw - 2 * pw), max_size)),
        kernel=pair(kh, kw), stride=pair(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=pair(ph, pw), bias=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def pool_cases(draw, max_size: int = 9):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    return dict(
        n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)),
        h=draw(st.integers(max(1, kh - 2 * ph), max_size)), w=draw(st.integers(max(1, kw - 2 * pw), max_size)),
        kernel=pair(kh, kw), stride=None if stride is None else pair(*stride), padding=pair(ph, pw),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def make_conv(case, impl="fast", dtype=np.float64):
    return nk.Conv2d(case["c"], case["f"], case["kernel"], case["stride"], case["padding"], bias=case["bias"],
                     impl=impl, rng=case["seed"], dtype=dtype)


def torch_conv_grads(layer, x, dout, device="cpu", dtype=torch.float64):
    """PyTorch's output and ∂ℒ/∂x, ∂ℒ/∂W, ∂ℒ/∂b for L = Σ out ⊙ dout, with the layer's weights."""
    xt = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    wt = torch.tensor(layer.weight.data, dtype=dtype, device=device, requires_grad=True)
    bt = None if layer.bias is None else torch.tensor(layer.bias.data, dtype=dtype, device=device, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, bt, layer.stride, layer.padding)
    out.backward(torch.tensor(dout, dtype=dtype, device=device))
    grads = [xt.grad, wt.grad] + ([bt.grad] if bt is not None else [])
    return out.detach().cpu().numpy(), [g.cpu().numpy() for g in grads]


def torch_pool_grads(layer, x, dout, device="cpu", dtype=torch.float64):
    xt = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    out = torch.nn.functional.max_pool2d(xt, layer.kernel_size, layer.stride, layer.padding)
    out.backward(torch.tensor(dout, dtype=dtype, device=device))
    return out.detach().cpu().numpy(), xt.grad.cpu().numpy()


def conv_forward_backward(layer, x, dout):
    out = layer.forward(x)
    dx = layer.backward(dout)
    grads = [dx, layer.weight.grad] + ([layer.bias.grad] if layer.bias is not None else [])
    return out, grads


# --------------------------------------------------------------------------------------------
# Conv2d: PyTorch parity, naive == fast, gradcheck
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=30, deadline=None)
@given(case=conv_cases())
def test_conv2d_matches_pytorch(impl, case):
    layer = make_conv(case, impl)
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    dout = rng.standard_normal(layer.forward(x).shape)
    out, grads = conv_forward_backward(layer, x, dout)
    out_t, grads_t = torch_conv_grads(layer, x, dout)
    assert_close(out, out_t, TOL_TORCH, "output")
    assert len(grads) == len(grads_t) == (3 if case["bias"] else 2)
    for name, g, g_t in zip(["∂ℒ/∂x", "∂ℒ/∂W", "∂ℒ/∂b"], grads, grads_t):
        assert_close(g, g_t, TOL_TORCH, name)


@settings(max_examples=30, deadline=None)
@given(case=conv_cases())
def test_conv2d_naive_equals_fast(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["c"], case["h"], case["w"]))
    fast, naive = make_conv(case, "fast"), make_conv(case, "naive")
    dout = rng.standard_normal(fast.forward(x).shape)
    out_fast, grads_fast = conv_forward_backward(fast, x, dout)
    out_naive, grads_naive = conv_forward_backward(naive, x, dout)
    assert_close(out_fast, out_naive, 1e-12, "output")
    for name, a, b in zip(["∂ℒ/∂x", "∂ℒ/∂W", "∂ℒ/∂b"], grads_fast, grads_naive):
        assert_close(a, b, 1e-12, name)


@pytest.mark.parametrize("impl,examples", [("fast", 15), ("naive", 4)])
def test_conv2d_gradcheck(impl, examples):
    @settings(max_examples=examples, deadline=None)
    @given(case=conv_cases(max_size=6))
    def check(case):
        layer = make_conv(case, impl)
        x = np.random.default_rng(case["seed"]).standard_normal((case["n"], case["c"], case["h"], case["w"]))
        report = nk.gradcheck.check_module(layer, x, rng=case["seed"], tol=1e-7)
        report.assert_ok()

    check()


def test_conv2d_batch_one_and_single_channel():
    """The smallest shapes: one image, one channel in and out, a 1×1 kernel; and a kernel as large as the input."""
    rng = np.random.default_rng(0)
    for shape, args in [((1, 1, 1, 1), (1, 1, 1)), ((1, 1, 5, 4), (1, 1, (5, 4))), ((1, 1, 3, 3), (1, 2, 3, 2, 1))]:
        for impl in IMPLS:
            layer = nk.Conv2d(*args, impl=impl, rng=1)
            x = rng.standard_normal(shape)
            out, grads = conv_forward_backward(layer, x, dout := rng.standard_normal(layer.forward(x).shape))
            out_t, grads_t = torch_conv_grads(layer, x, dout)
            assert_close(out, out_t, TOL_TORCH, f"{shape} output")
            for g, g_t in zip(grads, grads_t):
                assert_close(g, g_t, TOL_TORCH, f"{shape} gradient")


def test_conv2d_gradients_accumulate_and_zero():
    layer = nk.Conv2d(2, 3, 3, padding=1, rng=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 5, 5))
    dout = rng.standard_normal(layer.forward(x).shape)
    layer.backward(dout)
    once = (layer.weight.grad.copy(), layer.bias.grad.copy())
    layer.forward(x)
    layer.backward(dout)
    assert_close(layer.weight.grad, 2 * once[0], 1e-14, "∂ℒ/∂W after two backward passes")
    assert_close(layer.bias.grad, 2 * once[1], 1e-14, "∂ℒ/∂b after two backward passes")
    layer.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()
    assert layer.delta is dout or np.array_equal(layer.delta, dout)  # the module stores δ = ∂ℒ/∂z


def test_conv2d_initialisation_follows_pytorch_default():
    in_c, out_c, (kh, kw) = 3, 64, (5, 4)
    layer = nk.Conv2d(in_c, out_c, (kh, kw), rng=0)
    bound = 1.0 / np.sqrt(in_c * kh * kw)
    assert isinstance(layer.weight, nk.Parameter) and isinstance(layer.bias, nk.Parameter)
    assert layer.weight.shape == (out_c, in_c, kh, kw) and layer.bias.shape == (out_c,)
    for p in (layer.weight.data, layer.bias.data):
        assert np.all(np.abs(p) <= bound)
    w = layer.weight.data.ravel()
    assert np.max(np.abs(w)) > 0.95 * bound                              # fills the interval …
    assert abs(np.mean(w)) < 0.1 * bound and abs(np.std(w) - bound / np.sqrt(3)) < 0.1 * bound  # … uniformly
    torch_layer = torch.nn.Conv2d(in_c, out_c, (kh, kw))
    torch_bound = torch_layer.weight.abs().max().item()
    assert torch_bound <= bound and torch_bound > 0.9 * bound            # PyTorch's default has the same bound
    same = nk.Conv2d(in_c, out_c, (kh, kw), rng=0)
    assert np.array_equal(same.weight.data, layer.weight.data) and np.array_equal(same.bias.data, layer.bias.data)
    assert nk.Conv2d(in_c, out_c, 3, bias=False, rng=0).bias is None
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]


def test_conv2d_float32_stays_float32():
    layer = nk.Conv2d(3, 4, 3, stride=2, padding=1, rng=0, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    out = layer.forward(x)
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == layer.weight.grad.dtype == layer.bias.grad.dtype == np.float32
    ref = nk.Conv2d(3, 4, 3, stride=2, padding=1, rng=0).forward(x.astype(np.float64))
    assert_close(out, ref, 1e-5, "float32 output")


def test_functional_conv2d_and_max_pool2d_match_pytorch():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    xt, wt, bt = (torch.tensor(a) for a in (x, w, b))
    assert_close(nk.functional.conv2d(x, w, b, stride=(2, 1), padding=1),
                 torch.nn.functional.conv2d(xt, wt, bt, (2, 1), 1).numpy(), TOL_TORCH, "conv2d")
    assert_close(nk.functional.max_pool2d(x, 3, 2, 1),
                 torch.nn.functional.max_pool2d(xt, 3, 2, 1).numpy(), 0.0, "max_pool2d")
    assert nk.functional.conv_output_size(28, 5) == 24 and nk.functional.conv_output_size(7, 3, 2, 1) == 4


# --------------------------------------------------------------------------------------------
# MaxPool2d: PyTorch parity (including ties and overlapping windows), naive == fast, gradcheck
# --------------------------------------------------------------------------------------------
def pool_input(kind: str, shape, rng):
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "integers":                      # many ties inside windows
        return rng.integers(-2, 3, shape).astype(np.float64)
    if kind == "constant":                      # every window is one big tie
        return np.full(shape, rng.standard_normal())
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["normal", "integers", "constant"])
@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=25, deadline=None)
@given(case=pool_cases())
def test_maxpool2d_matches_pytorch(impl, kind, case):
    layer = nk.MaxPool2d(case["kernel"], case["stride"], case["padding"], impl=impl)
    rng = np.random.default_rng(case["seed"])
    x = pool_input(kind, (case["n"], case["c"], case["h"], case["w"]), rng)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    out_t, dx_t = torch_pool_grads(layer, x, dout)
    assert_close(out, out_t, 0.0, "output")              # a max is exact
    assert_close(dx, dx_t, TOL_TORCH, "∂ℒ/∂x")            # same arg-max, same sums


@pytest.mark.parametrize("kind", ["normal", "integers", "constant"])
@settings(max_examples=25, deadline=None)
@given(case=pool_cases())
def test_maxpool2d_naive_equals_fast(kind, case):
    rng = np.random.default_rng(case["seed"])
    x = pool_input(kind, (case["n"], case["c"], case["h"], case["w"]), rng)
    fast = nk.MaxPool2d(case["kernel"], case["stride"], case["padding"])
    naive = nk.MaxPool2d(case["kernel"], case["stride"], case["padding"], impl="naive")
    out = fast.forward(x)
    assert np.array_equal(out, naive.forward(x))
    dout = rng.standard_normal(out.shape)
    # the same arg-max positions; where windows overlap the sums may differ in order (rounding)
    assert_close(fast.backward(dout), naive.backward(dout), 1e-14, "∂ℒ/∂x")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kernel,stride,padding", [(2, 1, 0), (3, 1, 1), (3, 2, 1), ((3, 2), (1, 2), (1, 0))])
def test_maxpool2d_overlapping_windows_and_ties(impl, kernel, stride, padding):
    """stride < kernel: windows share inputs and their gradients add up; with ties everywhere
    (constant and integer-valued inputs) each window picks its first maximum, as PyTorch does."""
    rng = np.random.default_rng(7)
    for x in (np.ones((2, 3, 6, 7)), rng.integers(0, 2, (2, 3, 6, 7)).astype(np.float64), rng.standard_normal((2, 3, 6, 7))):
        layer = nk.MaxPool2d(kernel, stride, padding, impl=impl)
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape)
        dx = layer.backward(dout)
        out_t, dx_t = torch_pool_grads(layer, x, dout)
        assert_close(out, out_t, 0.0, "output")
        assert_close(dx, dx_t, TOL_TORCH, "∂ℒ/∂x")
        # every upstream gradient lands somewhere, and only once
        assert np.isclose(dx.sum(), dout.sum(), rtol=1e-12, atol=1e-12)


def test_maxpool2d_stride_defaults_to_kernel_and_floor_mode():
    layer = nk.MaxPool2d((2, 3))
    assert layer.stride == (2, 3) and layer.padding == (0, 0)
    x = np.random.default_rng(0).standard_normal((1, 2, 7, 8))     # 7×8 leaves a remainder: dropped
    out = layer.forward(x)
    out_t, dx_t = torch_pool_grads(layer, x, np.ones(out.shape))
    assert out.shape == out_t.shape == (1, 2, 3, 2)
    assert_close(layer.backward(np.ones(out.shape)), dx_t, 0.0, "∂ℒ/∂x")


def test_maxpool2d_nan_propagates():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 0] = np.nan
    for impl in IMPLS:
        out = nk.MaxPool2d(2, impl=impl).forward(x)
        ref = torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy()
        assert np.array_equal(np.isnan(out), np.isnan(ref))
        assert_close(out[~np.isnan(out)], ref[~np.isnan(ref)], 0.0, "output")


@pytest.mark.parametrize("impl,examples", [("fast", 15), ("naive", 5)])
def test_maxpool2d_gradcheck(impl, examples):
    @settings(max_examples=examples, deadline=None)
    @given(case=pool_cases(max_size=6))
    def check(case):
        rng = np.random.default_rng(case["seed"])
        shape = (case["n"], case["c"], case["h"], case["w"])
        # distinct values 0.01 apart: no maximum changes within the finite-difference step h
        x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01
        layer = nk.MaxPool2d(case["kernel"], case["stride"], case["padding"], impl=impl)
        nk.gradcheck.check_module(layer, x, rng=case["seed"], tol=1e-7).assert_ok()

    check()


# --------------------------------------------------------------------------------------------
# errors that name the layer and the shapes
# --------------------------------------------------------------------------------------------
def test_conv2d_wrong_channel_count_names_layer_and_shapes():
    model = nk.Sequential(nk.Conv2d(3, 8, 3, rng=0), nk.ReLU())
    with pytest.raises(nk.ShapeError) as err:
        model.forward(np.zeros((2, 1, 8, 8)))
    msg = str(err.value)
    assert "layer [0] Conv2d(3→8" in msg and "(2, 1, 8, 8)" in msg and "(N, 3, H, W)" in msg


def test_conv2d_wrong_rank_suggests_batch_axis():
    layer = nk.Conv2d(1, 2, 3, rng=0)
    with pytest.raises(nk.ShapeError, match=r"x\[None\]") as err:
        layer.forward(np.zeros((1, 8, 8)))
    assert "(1, 8, 8)" in str(err.value) and "Conv2d(1→2" in str(err.value)
    with pytest.raises(nk.ShapeError, match=r"\(64,\)"):
        layer.forward(np.zeros(64))


def test_kernel_larger_than_padded_input():
    model = nk.Sequential(nk.Conv2d(1, 2, 5, padding=1, rng=0))
    with pytest.raises(nk.ShapeError) as err:
        model.forward(np.zeros((1, 1, 2, 6)))
    msg = str(err.value)
    assert "layer [0] Conv2d" in msg and "5×5 kernel" in msg and "(1, 1, 2, 6)" in msg and "4×8 after padding" in msg
    pool = nk.Sequential(nk.Identity(), nk.MaxPool2d(3))
    with pytest.raises(nk.ShapeError, match=r"layer \[1\] MaxPool2d\(kernel_size=3\).*3×3 kernel.*\(1, 1, 2, 2\)"):
        pool[1].forward(np.zeros((1, 1, 2, 2)))
    with pytest.raises(nk.ShapeError, match=r"3×3 kernel"):
        nk.functional.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))


def test_maxpool2d_bad_arguments():
    with pytest.raises(ValueError, match="at most half the kernel"):
        nk.MaxPool2d(2, padding=2)
    with pytest.raises(nk.ShapeError, match=r"MaxPool2d.*\(N, C, H, W\).*\(4, 4\)"):
        nk.MaxPool2d(2).forward(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="kernel_size"):
        nk.MaxPool2d(2.5)
    with pytest.raises(ValueError, match="stride"):
        nk.MaxPool2d(2, stride=0)


def test_conv2d_bad_arguments():
    with pytest.raises(ValueError, match="in_channels"):
        nk.Conv2d(0, 2, 3)
    with pytest.raises(TypeError, match="kernel_size"):
        nk.Conv2d(1, 2, (3, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        nk.Conv2d(1, 2, 3, padding=-1)
    with pytest.raises(ValueError, match="impl"):
        nk.Conv2d(1, 2, 3, impl="gpu")


def test_backward_checks():
    layer = nk.Conv2d(1, 2, 3, rng=0)
    with pytest.raises(nk.BackwardBeforeForwardError):
        layer.backward(np.zeros((1, 2, 2, 2)))
    layer.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(nk.ShapeError, match=r"\(1, 2, 3, 3\).*\(1, 2, 2, 2\)"):
        layer.backward(np.zeros((1, 2, 3, 3)))
    with pytest.raises(TypeError, match="float"):
        layer.forward(np.zeros((1, 1, 4, 4), dtype=np.int64))


# --------------------------------------------------------------------------------------------
# CUDA: the same numbers on the GPU (float32, TF32 off)
# --------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_conv_and_pool_match_pytorch_on_cuda():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tol = 1e-5  # float32: about 7 digits; sums of a few hundred terms lose one or two
    rng = np.random.default_rng(0)
    for stride, padding in [(1, 0), (2, 1), ((1, 2), (2, 0))]:
        layer = nk.Conv2d(3, 8, (3, 5), stride, padding, rng=1, dtype=np.float32)
        x = rng.standard_normal((4, 3, 12, 11)).astype(np.float32)
        out, grads = conv_forward_backward(layer, x, dout := rng.standard_normal(layer.forward(x).shape).astype(np.float32))
        out_t, grads_t = torch_conv_grads(layer, x, dout, device="cuda", dtype=torch.float32)
        assert_close(out, out_t, tol, f"CUDA conv output (tolerance {tol})")
        for name, g, g_t in zip(["∂ℒ/∂x", "∂ℒ/∂W", "∂ℒ/∂b"], grads, grads_t):
            assert_close(g, g_t, tol, f"CUDA conv {name} (tolerance {tol})")
    for kernel, stride, padding in [(2, None, 0), (3, 1, 1), (3, 2, 1)]:
        layer = nk.MaxPool2d(kernel, stride, padding)
        x = rng.standard_normal((4, 3, 12, 11)).astype(np.float32)
        out = layer.forward(x)
        dout = rng.standard_normal(out.shape).astype(np.float32)
        out_t, dx_t = torch_pool_grads(layer, x, dout, device="cuda", dtype=torch.float32)
        assert_close(out, out_t, 0.0, "CUDA max-pool output")
        assert_close(layer.backward(dout), dx_t, tol, f"CUDA max-pool ∂ℒ/∂x (tolerance {tol})")


# --------------------------------------------------------------------------------------------
# models: the digits convnet and the notes' convnet
# --------------------------------------------------------------------------------------------
def test_lenet_digits_shapes_and_pytorch_twin():
    model = lenet_digits(rng=0)
    x = np.random.default_rng(0).random((5, 1, 8, 8))
    out = model.forward(x)
    assert out.shape == (5, 10)
    twin = to_torch(model)
    xt = torch.tensor(x, requires_grad=True)
    out_t = twin(xt)
    assert_close(out, out_t.detach().numpy(), TOL_TORCH, "lenet_digits output")
    dout = np.random.default_rng(1).standard_normal(out.shape)
    dx = model.backward(dout)
    out_t.backward(torch.tensor(dout))
    assert_close(dx, xt.grad.numpy(), TOL_TORCH, "lenet_digits ∂ℒ/∂x")
    for (name, p), p_t in zip(model.named_parameters(), twin.parameters()):
        assert_close(p.grad, p_t.grad.numpy(), TOL_TORCH, f"lenet_digits ∂ℒ/∂{name}")
    assert np.array_equal(lenet_digits(rng=0).forward(x), out)          # seeded: same weights
    assert not np.array_equal(lenet_digits(rng=1).forward(x), out)


def test_lenet_notes_is_the_notes_torch_convnet():
    model = lenet_notes(rng=0)
    shapes = [p.shape for p in model.parameters()]
    assert shapes == [(16, 1, 5, 5), (16,), (128, 16, 5, 5), (128,), (200, 3200), (200,), (10, 200), (10,)]
    x = np.random.default_rng(0).random((2, 1, 32, 32))
    out = model.forward(x)
    assert out.shape == (2, 10)
    assert_close(np.exp(out).sum(axis=1), np.ones(2), 1e-12, "LogSoftMax rows")
    assert_close(out, to_torch(model)(torch.tensor(x)).detach().numpy(), TOL_TORCH, "lenet_notes output")


def test_lenet_digits_training_step_matches_pytorch():
    """A few SGD steps with momentum on the same minibatches: nnkit and its PyTorch twin end
    with the same weights (every forward, backward and update agrees)."""
    X, y = nk.data.load_digits(images=True)
    model = lenet_digits(rng=0)
    twin = to_torch(model)
    opt = nk.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    loss_fn, loss_t = nk.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for start in range(0, 5 * 32, 32):
        xb, yb = X[start:start + 32], y[start:start + 32]
        loss = loss_fn.forward(model.forward(xb), yb)
        model.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
        opt_t.zero_grad()
        lt = loss_t(twin(torch.tensor(xb)), torch.tensor(yb))
        lt.backward()
        opt_t.step()
        assert abs(loss - lt.item()) <= 1e-10 * max(1.0, abs(loss))
    for (name, p), p_t in zip(model.named_parameters(), twin.parameters()):
        assert_close(p.data, p_t.detach().numpy(), 1e-9, f"weights {name} after 5 steps")


TRAIN_DIGITS = textwrap.dedent("""
    import json, time
    import numpy as np
    import nnkit as nk

    X, y = nk.data.load_digits(images=True, dtype=np.float32)
    train, val, (X_te, y_te) = nk.data.train_val_test_split(X, y)          # the default split, rng=0
    start = time.perf_counter()
    model, history = nk.models.train_digits_convnet(train, val, rng=0)
    print(json.dumps(dict(test=nk.train.accuracy(model, X_te, y_te), val=history.val_acc[-1],
                          train_loss=history.train_loss, seconds=time.perf_counter() - start)))
""")


def test_lenet_digits_reaches_98_percent_test_accuracy():
    """The digits convnet trained with the recipe of ``nk.models.train_digits_convnet``
    (nk.train.fit, 30 epochs of SGD with momentum and cosine learning-rate decay, a wider
    lenet_digits, training images augmented with one-pixel shifts; float32, about 30 s on one
    core) reaches ≥ 98 % on the default split's test images, which neither the training nor
    the choice of the recipe saw.

    It runs in a subprocess with one BLAS thread: on a machine shared with other jobs a
    multi-threaded BLAS waits for idle cores at every small matrix product, which makes the run
    up to ten times slower without changing a number.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", TRAIN_DIGITS], env=env, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["test"] >= 0.98, f"test accuracy {r['test']:.4f} < 0.98 (val {r['val']:.4f}, {r['seconds']:.0f} s)"
    assert r["train_loss"][-1] < 0.1 * r["train_loss"][0]


def test_train_digits_convnet_is_seeded_and_checks_its_input():
    X, y = nk.data.load_digits(images=True)
    train, val = (X[:200], y[:200]), (X[200:300], y[200:300])
    (a, hist_a), (b, hist_b) = (nk.models.train_digits_convnet(train, val, rng=3, epochs=2) for _ in range(2))
    c, _ = nk.models.train_digits_convnet(train, val, rng=4, epochs=2)
    assert hist_a.train_loss == hist_b.train_loss and len(hist_a.val_acc) == 2
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))
    assert not np.array_equal(a.parameters()[0].data, c.parameters()[0].data)
    model32, _ = nk.models.train_digits_convnet((X[:64].astype(np.float32), y[:64]), rng=0, epochs=1)
    assert all(p.data.dtype == np.float32 for p in model32.parameters())
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        nk.models.train_digits_convnet((X.reshape(len(X), 64), y))


def test_lenet_digits_training_is_reproducible():
    X, y = nk.data.load_digits(images=True)
    X, y = X[:256], y[:256]

    def run():
        model = lenet_digits(rng=0)
        opt = nk.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        history = nk.train.fit(model, nk.CrossEntropyLoss(), opt, train=(X, y), epochs=2, batch_size=32, rng=0,
                               progress=False)
        return model.state_dict(), history.train_loss

    (state_a, loss_a), (state_b, loss_b) = run(), run()
    assert loss_a == loss_b
    assert all(np.array_equal(state_a[k], state_b[k]) for k in state_a)
