"""The fast convolution's backward on the paths the small hypothesis cases of test_conv.py do not
reach: a batch split into several chunks (equal and unequal), strides and paddings in each
direction, float32 kept end to end, and mixed float32/float64 inputs. Each is checked against
the naive loops and against PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nnkit as nk
from nnkit.functional import conv as C

# kernel, stride, padding, (H, W): stride 1 (the contiguous slices), strides > 1 in either
# direction (the copied slices), kernels wider than tall, sizes the stride does not divide
GEOMETRIES = [
    (3, 1, 0, (9, 8)),
    (5, 1, 2, (7, 7)),
    ((2, 3), 2, 1, (9, 10)),
    (3, (1, 2), (0, 1), (8, 9)),
    ((3, 1), (3, 1), (2, 0), (10, 5)),
    (4, 3, 1, (11, 13)),
]


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    return float(np.max(np.abs(actual - expected))) / max(1.0, float(np.max(np.abs(expected))))


def forward_backward(layer, x, dout):
    out = layer.forward(x)
    dx = layer.backward(dout)
    return out, dx, layer.weight.grad, layer.bias.grad


def torch_reference(layer, x, dout):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(layer.weight.data, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(layer.bias.data, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, bt, layer.stride, layer.padding)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return [a.detach().numpy() for a in (out, xt.grad, wt.grad, bt.grad)]


@pytest.mark.parametrize("examples_per_chunk,batch,block", [(1, 3, None), (2, 5, None), (3, 6, None), (None, 4, None),
                                                             (1, 2, 7), (1, 3, 50)])
@pytest.mark.parametrize("kernel,stride,padding,hw", GEOMETRIES)
def test_backward_in_chunks_matches_naive_and_pytorch(monkeypatch, examples_per_chunk, batch, block, kernel, stride,
                                                      padding, hw):
    """Chunks of 1, 2 (5 = 2 + 2 + 1: a shorter last chunk), 3 examples or the whole batch; and
    the backward's products over blocks of 7 or 50 positions, which cut images and chunks."""
    if block is not None:                              # the smallest budget: blocks of _MIN_BLOCK positions
        monkeypatch.setattr(C, "_MIN_BLOCK", block)
    fast = nk.Conv2d(3, 4, kernel, stride, padding, impl="fast", rng=1)
    naive = nk.Conv2d(3, 4, kernel, stride, padding, impl="naive", rng=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, *hw))
    if examples_per_chunk is not None:                # budgets that make chunks of that many examples
        out_hw = C._output_hw(x.shape, fast.kernel_size, fast.stride, fast.padding, "test")
        positions = C._FlatGeometry(x.shape, fast.weight.shape, fast.stride, fast.padding, out_hw, 8).P
        monkeypatch.setattr(C, "_CHUNK_BYTES", 1 << 40)
        budget = 1 if block is not None else examples_per_chunk * (2 * 3 + 4) * positions * 8
        monkeypatch.setattr(C, "_BACKWARD_CHUNK_BYTES", budget)
    dout = rng.standard_normal(fast.forward(x).shape)
    got = forward_backward(fast, x, dout)
    expected_chunk = batch if examples_per_chunk is None else examples_per_chunk
    assert fast._cache[-1].chunk == expected_chunk          # the batch really was split (or not)
    if block is not None:
        g = fast._cache[-1]
        assert g.block <= min(block, g.P)               # 7 positions: fewer than any image has
    for name, a, b, t in zip(["output", "∂ℒ/∂x", "∂ℒ/∂W", "∂ℒ/∂b"], got, forward_backward(naive, x, dout),
                             torch_reference(fast, x, dout)):
        assert relative_error(a, b) <= 1e-12, f"{name}: fast != naive"
        assert relative_error(a, t) <= 1e-10, f"{name}: fast != PyTorch"


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_float32_stays_float32_through_the_backward(stride, padding):
    """The benchmark's layer on a smaller batch: float32 in, float32 out, close to float64."""
    layer = nk.Conv2d(8, 16, 5, stride, padding, rng=0, dtype=np.float32)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 8, 28, 28)).astype(np.float32)
    dout = rng.standard_normal(layer.forward(x).shape).astype(np.float32)
    got = forward_backward(layer, x, dout)
    assert all(a.dtype == np.float32 for a in got)
    for name, a, t in zip(["output", "∂ℒ/∂x", "∂ℒ/∂W", "∂ℒ/∂b"], got, torch_reference(layer, x, dout)):
        assert relative_error(a, t) <= 1e-5, name


def test_mixed_precision_backward_uses_the_wider_type():
    """float32 weights and input with a float64 δ: the gradients come out in float64, as before."""
    layer = nk.Conv2d(2, 3, 3, stride=(2, 1), padding=1, rng=0, dtype=np.float32)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 7, 6)).astype(np.float32)
    dout = rng.standard_normal(layer.forward(x).shape)              # float64
    dx = layer.backward(dout)
    assert dx.dtype == np.float64
    _, dx_t, dw_t, _ = torch_reference(layer, x.astype(np.float64), dout)
    assert relative_error(dx, dx_t) <= 1e-6 and relative_error(layer.weight.grad, dw_t) <= 1e-6


# --------------------------------------------------------------------------------------------
# max-pool backward: windows that tile the input are written in place (no zero-filling); an
# infinite or NaN δ must still reach only the arg-max, exactly as in the naive loops
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,stride,padding,hw", [
    (2, None, 0, (8, 6)),           # tiles the input: every position written once
    ((2, 3), None, 0, (6, 9)),
    (2, None, 0, (7, 9)),           # leftover row and column: they must stay 0
    (2, 3, 0, (8, 8)),              # gaps between windows
    (3, 2, 1, (7, 8)),              # overlapping windows with padding
])
@pytest.mark.parametrize("special", [None, np.inf, -np.inf, np.nan])
def test_maxpool2d_backward_routes_like_naive(kernel, stride, padding, hw, special):
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, (2, 3, *hw)).astype(np.float64)      # many ties in each window
    fast = nk.MaxPool2d(kernel, stride, padding)
    naive = nk.MaxPool2d(kernel, stride, padding, impl="naive")
    out = fast.forward(x)
    assert np.array_equal(out, naive.forward(x))
    dout = rng.standard_normal(out.shape)
    if special is not None:
        dout[0, 1, 0, 0] = special
    dx, dx_naive = fast.backward(dout), naive.backward(dout)
    assert np.array_equal(np.isnan(dx), np.isnan(dx_naive))
    assert np.allclose(dx, dx_naive, rtol=1e-14, atol=0, equal_nan=True)
    if special is None:
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.functional.max_pool2d(xt, kernel, stride, padding).backward(torch.tensor(dout))
        assert np.allclose(dx, xt.grad.numpy(), rtol=1e-14, atol=0)


def test_maxpool2d_backward_after_a_reused_buffer_has_no_stale_values():
    """The tiled case fills dx without zeroing it first: run it twice, the second on a δ that is
    zero almost everywhere, so that stale memory from the first would show."""
    layer = nk.MaxPool2d(2)
    x = np.random.default_rng(1).standard_normal((4, 2, 6, 6))
    out = layer.forward(x)
    layer.backward(np.full(out.shape, 7.0))
    dout = np.zeros(out.shape)
    dout[1, 0, 2, 1] = 1.0
    dx = layer.backward(dout)
    assert dx.sum() == 1.0 and np.count_nonzero(dx) == 1
