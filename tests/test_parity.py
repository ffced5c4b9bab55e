"""The checking tools check: ``nk.parity`` and ``nk.gradcheck`` pass on correct code and fail,
naming the quantity, on planted bugs. A checker that cannot fail is a defect."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nnkit as nk
from nnkit.gradcheck import check_loss, check_module, numerical_gradient, relative_error

FAST = settings(max_examples=10, deadline=None)


def _mlp(seed=0, dropout=0.0):
    rng = np.random.default_rng(seed)
    layers = [nk.Linear(4, 6, rng=rng), nk.ReLU()]
    if dropout:
        layers.append(nk.Dropout(dropout, rng=rng))
    layers += [nk.Linear(6, 5, rng=rng), nk.Tanh(), nk.Linear(5, 3, rng=rng)]
    return nk.Sequential(*layers)


def _data(seed=0, n=7):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


# --- planted bugs: layers that are almost right -----------------------------------------------
class WeightGradTimesTwo(nk.Linear):
    def backward(self, grad):
        dx = super().backward(grad)
        self.weight.grad *= 2.0  # e.g. a doubled contribution
        return dx


class InputGradSlightlyOff(nk.Linear):
    def backward(self, grad):
        return super().backward(grad) * 1.0001  # ∂ℒ/∂x off by 0.01 %


class MissingBias(nk.Linear):
    def forward(self, x):
        z = super().forward(x)
        return z - self.bias.data  # forgets + b


class SigmoidWithoutDerivative(nk.Sigmoid):
    def f_prime(self, z, a):
        return np.ones_like(z)  # forgets f′(z)


class MeanLossWithoutBatchFactor(nk.CrossEntropyLoss):
    def backward(self, grad=1.0):
        return super().backward(grad) * self._n  # forgets the 1/N of the mean


def _bugged(kind):
    rng = np.random.default_rng(0)
    first = {"weight": WeightGradTimesTwo, "input": InputGradSlightlyOff, "bias": MissingBias}.get(kind, nk.Linear)
    act = SigmoidWithoutDerivative() if kind == "fprime" else nk.Sigmoid()
    return nk.Sequential(nk.Linear(4, 6, rng=rng), act, first(6, 3, rng=rng))


# --- nk.parity --------------------------------------------------------------------------------
def test_compare_passes_on_a_small_mlp_and_reports_everything():
    model = _mlp()
    x, y = _data()
    report = nk.parity.compare(model, nk.CrossEntropyLoss(), x, y, devices=["cpu"])
    report.assert_ok()
    names = {r.name for r in report.rows}
    assert names == {"output", "loss", "∂ℒ/∂x"} | {f"∂ℒ/∂{n}" for n, _ in model.named_parameters()}
    assert all(r.error < 1e-10 and r.tol == 1e-10 for r in report.rows)
    text = str(report)
    assert "OK" in text and "tolerance 1e-10" in text and "float64" in text and torch.__version__ in text
    assert report.tolerances == {"cpu": 1e-10}
    assert "<table>" in report._repr_html_()


@pytest.mark.parametrize("kind, quantity", [
    ("weight", "∂ℒ/∂2.weight"),
    ("input", "∂ℒ/∂x"),
    ("bias", "output"),
    ("fprime", "∂ℒ/∂0.weight"),
])
def test_compare_detects_planted_bugs(kind, quantity):
    x, y = _data()
    report = nk.parity.compare(_bugged(kind), nk.CrossEntropyLoss(), x, y, devices=["cpu"])
    assert not report.ok
    failed = {r.name for r in report.failures()}
    assert quantity in failed, f"{quantity} not among the failures {failed}"
    with pytest.raises(AssertionError, match="FAIL"):
        report.assert_ok()


def test_compare_detects_a_loss_gradient_without_the_batch_factor():
    x, y = _data()
    report = nk.parity.compare(_mlp(), MeanLossWithoutBatchFactor(), x, y, devices=["cpu"])
    assert not report.ok and "cpu:∂ℒ/∂x" in {f"{r.where}:{r.name}" for r in report.failures()}
    assert "loss" not in {r.name for r in report.failures()}  # the value is right, only the gradient is off
    assert "7 × torch everywhere" in str(report)  # the hint names the factor (N = 7)


def test_compare_detects_a_tampered_gradient_of_a_single_element():
    class OneElement(nk.Linear):
        def backward(self, grad):
            dx = super().backward(grad)
            self.weight.grad[1, 2] += 1e-6 * np.abs(self.weight.grad).max()
            return dx

    x, y = _data()
    model = nk.Sequential(OneElement(4, 3, rng=0))
    report = nk.parity.compare(model, nk.CrossEntropyLoss(), x, y, devices=["cpu"])
    bad = report["cpu:∂ℒ/∂0.weight"]
    assert not bad.ok and bad.index == (1, 2)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss, target", [
    (nk.MSELoss, lambda rng: rng.standard_normal((5, 3))),
    (nk.BCEWithLogitsLoss, lambda rng: rng.uniform(0, 1, (5, 3))),
    (nk.CrossEntropyLoss, lambda rng: rng.integers(0, 3, 5)),
])
def test_compare_with_every_reduction(loss, target, reduction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4))
    nk.parity.compare(_mlp(1), loss(reduction=reduction), x, target(rng), devices=["cpu"], rng=2).assert_ok()


def test_compare_bce_and_nll_heads():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4))
    sig = nk.Sequential(nk.Linear(4, 2, rng=0), nk.Sigmoid())
    nk.parity.compare(sig, nk.BCELoss(), x, rng.uniform(0, 1, (6, 2)), devices=["cpu"]).assert_ok()
    logp = nk.Sequential(nk.Linear(4, 3, rng=0), nk.LogSoftmax())
    nk.parity.compare(logp, nk.NLLLoss(), x, rng.integers(0, 3, 6), devices=["cpu"]).assert_ok()


def test_compare_dropout_in_training_mode_uses_nnkits_mask():
    model = _mlp(3, dropout=0.5)
    x, y = _data(3)
    report = nk.parity.compare(model, nk.CrossEntropyLoss(), x, y, devices=["cpu"])
    report.assert_ok()
    # the check is not vacuous: some units were dropped, so the output differs from eval mode
    assert not np.allclose(report["cpu:output"].a, model.eval().forward(x))
    nk.parity.compare(model, nk.CrossEntropyLoss(), x, y, devices=["cpu"]).assert_ok()  # and in eval mode


def test_compare_with_no_loss_checks_a_layer_for_an_upstream_gradient():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5))
    dout = rng.standard_normal((3, 5))
    for layer in (nk.Softmax(), nk.LogSoftmax(dim=0), nk.LeakyReLU(0.2), nk.Step(), nk.Flatten(), nk.Dropout(0.4, rng=0)):
        nk.parity.compare(layer, None, x, dout=dout, devices=["cpu"]).assert_ok()


def test_compare_leaves_the_model_untouched():
    model = _mlp(dropout=0.2).to(np.float32)
    state = model.state_dict()
    x, y = _data()
    nk.parity.compare(model, nk.CrossEntropyLoss(), x, y, devices=["cpu"]).assert_ok()
    assert all(not np.any(p.grad) for p in model.parameters())
    assert all(np.array_equal(state[k], v) and v.dtype == np.float32 for k, v in model.state_dict().items())


def test_compare_tolerance_can_be_tightened_until_it_fails():
    x, y = _data()
    report = nk.parity.compare(_mlp(), nk.CrossEntropyLoss(), x, y, devices=["cpu"], tol=0.0)
    assert any(r.error > 0 for r in report.rows) == (not report.ok)


def test_to_torch_copies_weights_names_and_modes_without_touching_torchs_rng():
    model = _mlp(dropout=0.5)
    model[2].eval()
    state = torch.get_rng_state()
    twin = nk.parity.to_torch(model)
    assert torch.equal(state, torch.get_rng_state())  # the twin's layers were not randomly initialised
    assert [n for n, _ in twin.named_parameters()] == [n for n, _ in model.named_parameters()]
    for name, p in twin.named_parameters():
        assert p.dtype == torch.float64
        np.testing.assert_array_equal(p.detach().numpy(), model.state_dict()[name])
    assert isinstance(twin[2], torch.nn.Dropout) and twin[2].p == 0.5 and not twin[2].training and twin[0].training
    assert nk.parity.to_torch(model, dtype=np.float32)[0].weight.dtype == torch.float32


def test_to_torch_maps_every_layer():
    model = nk.Sequential(nk.Flatten(), nk.Linear(6, 4, rng=0), nk.Step(), nk.Linear(4, 4, bias=False, rng=1),
                          nk.LeakyReLU(0.3), nk.Identity(), nk.Softmax(dim=1), nk.LogSoftmax(dim=-1), nk.Tanh(), nk.ReLU())
    twin = nk.parity.to_torch(model)
    assert twin[4].negative_slope == 0.3 and twin[6].dim == 1 and twin[3].bias is None
    x = np.random.default_rng(0).standard_normal((2, 2, 3))
    assert relative_error(model.forward(x), twin(torch.tensor(x)).detach().numpy()) < 1e-12


def test_to_torch_and_torch_loss_refuse_what_they_cannot_mirror():
    class Custom(nk.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"layer \[1\] Custom\(\)"):
        nk.parity.to_torch(nk.Sequential(nk.Linear(2, 2), Custom()))
    with pytest.raises(TypeError, match="no PyTorch twin"):
        nk.parity.torch_loss(nk.Sigmoid())


@pytest.mark.parametrize("name", ["MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss"])
def test_torch_loss_twins(name):
    for reduction in ("mean", "sum", "none"):
        twin = nk.parity.torch_loss(getattr(nk, name)(reduction=reduction))
        assert type(twin) is getattr(torch.nn, name) and twin.reduction == reduction


def test_available_devices():
    devices = nk.parity.available_devices()
    assert devices[0] == "cpu"
    assert ("cuda" in devices) == torch.cuda.is_available()
    x, y = _data()
    with pytest.raises(ValueError, match="'tpu' is not available here"):
        nk.parity.compare(_mlp(), nk.CrossEntropyLoss(), x, y, devices=["tpu"])


def test_conv_layers_have_twins_when_present():
    conv = pytest.importorskip("nnkit.conv")
    rng = np.random.default_rng(0)
    model = nk.Sequential(conv.Conv2d(2, 3, 3, padding=1, rng=0), nk.ReLU(), conv.MaxPool2d(2), nk.Flatten(),
                          nk.Linear(3 * 2 * 2, 3, rng=1))
    x = rng.standard_normal((2, 2, 4, 4))
    nk.parity.compare(model, nk.CrossEntropyLoss(), x, rng.integers(0, 3, 2), devices=["cpu"]).assert_ok()


# --- nk.gradcheck -----------------------------------------------------------------------------
@FAST
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6))
@example(seed=0, n=1)
def test_numerical_gradient_of_known_functions(seed, n):
    """∂/∂x Σ dout ⊙ sin(x)·x² = dout ⊙ (cos(x)x² + 2x sin(x)), and a scalar function."""
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal(n), rng.standard_normal(n)
    exact = dout * (np.cos(x) * x**2 + 2 * x * np.sin(x))
    assert relative_error(numerical_gradient(lambda v: np.sin(v) * v**2, x.copy(), dout, h=1e-6), exact) < 1e-8
    A = rng.standard_normal((n, n))
    quad = lambda v: v @ A @ v  # noqa: E731
    assert relative_error(numerical_gradient(quad, x.copy()), (A + A.T) @ x) < 1e-8


def test_numerical_gradient_restores_x_and_copes_with_views():
    x = np.random.default_rng(0).standard_normal((3, 2))
    before = x.copy()
    g = numerical_gradient(lambda v: v, x)  # the identity returns x itself, which is then perturbed
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(g, np.ones_like(x), rtol=1e-9)
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: v, x.astype(np.float32))


def test_relative_error_definition():
    a = np.array([1.0, -2.0, 0.0])
    assert relative_error(a, a) == 0
    assert relative_error(np.zeros(3), np.zeros(3)) == 0
    b = a + np.array([0.0, 0.0, 1e-3])
    assert relative_error(a, b) == pytest.approx(1e-3 / 4)  # worst |a − b| over the largest |a| + |b|
    assert relative_error(a, -a) == pytest.approx(1.0)
    assert relative_error(np.ones(2), np.ones(3)) == float("inf")
    assert relative_error([1.0, np.nan], [1.0, 2.0]) == float("inf")
    assert relative_error([1.0, np.nan], [1.0, np.nan]) == 0


@pytest.mark.parametrize("kind, quantity", [
    ("weight", "∂ℒ/∂2.weight"),
    ("input", "∂ℒ/∂x"),
    ("fprime", "∂ℒ/∂0.weight"),
])
def test_check_module_detects_planted_bugs(kind, quantity):
    x, _ = _data()
    report = check_module(_bugged(kind), x, rng=0)
    assert not report.ok and quantity in {r.name for r in report.failures()}
    with pytest.raises(AssertionError) as info:
        report.assert_ok()
    assert quantity in str(info.value) and "FAIL" in str(info.value)
    if kind == "weight":
        assert "2 × numerical everywhere" in str(info.value)


def test_check_module_passes_a_correct_network_and_reports_each_quantity():
    x, _ = _data()
    model = _mlp()
    report = check_module(model, x, rng=0)
    report.assert_ok()
    assert set(report.errors) == {"∂ℒ/∂x"} | {f"∂ℒ/∂{n}" for n, _ in model.named_parameters()}
    entry = report["∂ℒ/∂0.weight"]
    assert entry.tol == 1e-7 and entry.error < 1e-7 and len(entry.index) == 2
    assert entry.a_value == entry.a[entry.index] and entry.b_value == entry.b[entry.index]
    assert "analytic" in str(report) and "numerical" in str(report) and "<table>" in report._repr_html_()


def test_check_module_with_dropout_fixes_the_mask_and_leaves_the_module_as_found():
    model = _mlp(5, dropout=0.5)
    twin = _mlp(5, dropout=0.5)  # the same weights and the same dropout generator
    x, _ = _data()
    for p in model.parameters():
        p.grad[...] = 1.0
    state = model.state_dict()
    check_module(model, x, rng=0).assert_ok()
    assert all(np.all(p.grad == 1.0) for p in model.parameters())  # gradients restored
    assert all(np.array_equal(v, state[k]) for k, v in model.state_dict().items())
    twin.forward(x)  # the check advanced the generator by exactly one forward
    np.testing.assert_array_equal(model.forward(x), twin.forward(x))


def test_check_module_without_fixed_mask_would_fail():
    """Why the generator is rewound: differentiating through freshly drawn masks is meaningless."""
    model = nk.Dropout(0.5, rng=0)
    x = np.random.default_rng(0).standard_normal((3, 4))
    dout = np.ones((3, 4))
    fresh = numerical_gradient(lambda v: model.forward(v), x.copy(), dout, h=1e-6)
    model.forward(x)
    assert relative_error(model.backward(dout), fresh) > 1e-3
    check_module(model, x, dout).assert_ok()


def test_check_module_refuses_float32_parameters_and_losses():
    with pytest.raises(TypeError, match=r"float64.*to\(np.float64\)"):
        check_module(nk.Linear(2, 2, dtype=np.float32), np.zeros((1, 2)))
    with pytest.raises(TypeError, match="check_loss"):
        check_module(nk.MSELoss(), np.zeros((1, 2)))


def test_check_loss_detects_a_missing_batch_factor():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    check_loss(nk.CrossEntropyLoss(), z, y).assert_ok()
    report = check_loss(MeanLossWithoutBatchFactor(), z, y)
    assert not report.ok and "5 × numerical everywhere" in str(report)


def test_check_loss_with_none_reduction_uses_an_upstream_gradient():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((5, 3)), rng.uniform(0, 1, (5, 3))

    class IgnoresUpstream(nk.BCEWithLogitsLoss):
        def backward(self, grad=1.0):
            return super().backward()  # pretends the upstream gradient is all ones

    check_loss(nk.BCEWithLogitsLoss(reduction="none"), z, y, rng=1).assert_ok()
    assert not check_loss(IgnoresUpstream(reduction="none"), z, y, rng=1).ok


def test_small_gradients_get_a_tolerance_from_the_numerical_uncertainty_but_bugs_still_fail():
    """A nearly saturated softmax: its gradient (~4e-4) is small next to its outputs (~1), so
    central differences with h = 1e-6 resolve it only to ~2e-7 relative. The check says so
    (tolerance marked *) instead of failing; a 0.1 % error in the backward still fails."""
    rng = np.random.default_rng(309)
    x = 3 * rng.standard_normal(2)  # about (−4.6, 3.2)
    dout = rng.standard_normal(2)
    report = check_module(nk.Softmax(dim=0), x, dout)
    report.assert_ok()
    row = report["∂ℒ/∂x"]
    if row.error > 1e-7:  # the case this test is about (depends on rounding, so checked, not assumed)
        assert row.noise_limited and "*" in str(report) and row.limit < 1e-4

    class SlightlyOff(nk.Softmax):
        def backward(self, grad):
            return super().backward(grad) * 1.001

    bad = check_module(SlightlyOff(dim=0), x, dout)
    assert not bad.ok and "∂ℒ/∂x" in {r.name for r in bad.failures()}


def test_vanishing_gradient_is_reported_as_such():
    """Logits so confident that the loss rounds to 0: the numerical gradient is 0, the analytic
    one ~1e-22. The check cannot vouch for it, and says why."""
    z = np.array([[60.0, 0.0, 10.0]])
    report = check_loss(nk.CrossEntropyLoss(), z, np.array([0]))
    if not report.ok:
        assert "vanishingly small" in str(report)
