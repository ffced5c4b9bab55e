"""Parity with PyTorch on CUDA: float32 with TF32 switched off, tolerance ``nk.parity.TOLERANCES["cuda"]``.

Every test here is marked ``gpu``: skipped, with the reason, where PyTorch sees no CUDA device;
run wherever one is present (``pytest -m gpu tests/test_gpu.py``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nnkit as nk
from nnkit.gradcheck import relative_error

pytestmark = pytest.mark.gpu

CUDA_TOL = nk.parity.TOLERANCES["cuda"][1]


@pytest.fixture(autouse=True)
def no_tf32():
    """TF32 rounds float32 matrix products to 10 mantissa bits; parity needs it off."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_cuda_is_an_available_device():
    assert nk.parity.available_devices() == ["cpu", "cuda"]


def test_mnist_sized_mlp_matches_on_cuda_and_cpu():
    rng = np.random.default_rng(0)
    model = nk.Sequential(nk.Linear(784, 256, rng=1), nk.ReLU(), nk.Dropout(0.2, rng=2), nk.Linear(256, 256, rng=3),
                          nk.ReLU(), nk.Linear(256, 10, rng=4))
    x, y = rng.standard_normal((128, 784)), rng.integers(0, 10, 128)
    report = nk.parity.compare(model, nk.CrossEntropyLoss(), x, y)  # every available device
    report.assert_ok()
    assert report.tolerances == {"cpu": 1e-10, "cuda": CUDA_TOL}
    assert "TF32 off" in str(report) and f"tolerance {CUDA_TOL:.0e}" in str(report)
    assert max(r.error for r in report.rows if r.where == "cuda") > 0  # float32 really ran


@pytest.mark.parametrize("layer", [
    nk.Linear(6, 4, rng=0), nk.Linear(6, 4, bias=False, rng=0), nk.Step(), nk.Sigmoid(), nk.Tanh(), nk.ReLU(),
    nk.LeakyReLU(0.1), nk.Softmax(), nk.LogSoftmax(), nk.Identity(), nk.Dropout(0.5, rng=0), nk.Flatten(),
], ids=lambda m: m.label())
def test_every_layer_on_cuda(layer):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6))
    x[np.abs(x) < 0.05] = 0.5  # away from the kinks
    nk.parity.compare(layer, None, x, devices=["cuda"], rng=2).assert_ok()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss, head, target", [
    (nk.MSELoss, nk.Identity, lambda rng: rng.standard_normal((8, 3))),
    (nk.BCELoss, nk.Sigmoid, lambda rng: rng.uniform(0, 1, (8, 3))),
    (nk.BCEWithLogitsLoss, nk.Identity, lambda rng: rng.uniform(0, 1, (8, 3))),
    (nk.CrossEntropyLoss, nk.Identity, lambda rng: rng.integers(0, 3, 8)),
    (nk.NLLLoss, nk.LogSoftmax, lambda rng: rng.integers(0, 3, 8)),
])
def test_every_loss_on_cuda(loss, head, target, reduction):
    rng = np.random.default_rng(3)
    model = nk.Sequential(nk.Linear(5, 3, rng=4), head())
    report = nk.parity.compare(model, loss(reduction=reduction), rng.standard_normal((8, 5)), target(rng),
                               devices=["cuda"], rng=5)
    report.assert_ok()


def test_planted_bug_is_caught_on_cuda():
    class Doubled(nk.Linear):
        def backward(self, grad):
            dx = super().backward(grad)
            self.weight.grad *= 2
            return dx

    rng = np.random.default_rng(0)
    report = nk.parity.compare(nk.Sequential(Doubled(4, 3, rng=0)), nk.CrossEntropyLoss(), rng.standard_normal((6, 4)),
                               rng.integers(0, 3, 6), devices=["cuda"])
    assert [r.name for r in report.failures()] == ["∂ℒ/∂0.weight"]


def test_conv_net_on_cuda():
    conv = pytest.importorskip("nnkit.conv")
    rng = np.random.default_rng(0)
    model = nk.Sequential(conv.Conv2d(1, 4, 3, padding=1, rng=0), nk.ReLU(), conv.MaxPool2d(2), nk.Flatten(),
                          nk.Linear(4 * 4 * 4, 10, rng=1))
    nk.parity.compare(model, nk.CrossEntropyLoss(), rng.standard_normal((16, 1, 8, 8)), rng.integers(0, 10, 16),
                      devices=["cuda"]).assert_ok()


STABLE = {
    "sigmoid": (nk.Sigmoid, torch.sigmoid),
    "softmax": (nk.Softmax, lambda t: torch.softmax(t, -1)),
    "log_softmax": (nk.LogSoftmax, lambda t: torch.log_softmax(t, -1)),
}


@pytest.mark.parametrize("name", sorted(STABLE))
def test_stable_activations_equal_cuda_at_large_inputs(name):
    z = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, 1e4, 1e4]], dtype=np.float32)
    g = np.random.default_rng(0).standard_normal(z.shape).astype(np.float32)
    make, fn = STABLE[name]
    layer = make()
    out, dz = layer.forward(z), layer.backward(g)
    zt = torch.tensor(z, device="cuda", requires_grad=True)
    t_out = fn(zt)
    (t_out * torch.tensor(g, device="cuda")).sum().backward()
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dz))
    assert relative_error(out, t_out.detach().cpu().numpy()) < 1e-6
    assert relative_error(dz, zt.grad.cpu().numpy()) < 1e-6


@pytest.mark.parametrize("name", ["BCEWithLogitsLoss", "CrossEntropyLoss"])
def test_stable_losses_equal_cuda_at_large_logits(name):
    if name == "BCEWithLogitsLoss":
        z = np.array([1e4, -1e4, 1e4, -1e4, 0.0], dtype=np.float32)
        y = np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype=np.float32)
        yt = torch.tensor(y, device="cuda")
    else:
        z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=np.float32)
        y = np.array([1, 2, 0])
        yt = torch.tensor(y, device="cuda")
    loss = getattr(nk, name)()
    value, grad = loss.forward(z, y), loss.backward()
    zt = torch.tensor(z, device="cuda", requires_grad=True)
    t_value = getattr(torch.nn, name)()(zt, yt)
    t_value.backward()
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert relative_error(value, t_value.item()) < 1e-6
    assert relative_error(grad, zt.grad.cpu().numpy()) < 1e-6


def test_compare_switches_tf32_off_and_restores_the_setting():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    rng = np.random.default_rng(0)
    model = nk.Sequential(nk.Linear(512, 512, rng=0), nk.Tanh(), nk.Linear(512, 10, rng=1))
    report = nk.parity.compare(model, nk.CrossEntropyLoss(), rng.standard_normal((64, 512)), rng.integers(0, 10, 64),
                               devices=["cuda"])
    report.assert_ok()
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 0),
                    reason="TF32 exists from compute capability 8.0 (Ampere) on")
def test_tf32_is_far_less_accurate_than_float32():
    """Why TF32 is switched off: it rounds the factors of a float32 matrix product to 10 bits."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((256, 1024)), rng.standard_normal((1024, 256))
    exact = a @ b
    at, bt = torch.tensor(a, dtype=torch.float32, device="cuda"), torch.tensor(b, dtype=torch.float32, device="cuda")
    fp32 = relative_error((at @ bt).cpu().numpy(), exact)
    torch.backends.cuda.matmul.allow_tf32 = True
    tf32 = relative_error((at @ bt).cpu().numpy(), exact)
    assert fp32 < CUDA_TOL / 10
    assert tf32 > 10 * fp32
