"""Lecture notebooks: every one runs headless and is stored clean; the notes' numbers are reproduced.

Each notebook in ``lectures/`` (found by glob, so new lectures are included automatically) is
executed once per test run in a real kernel (``nbutils.notebook_values``); every test about that
notebook shares the one execution. The time each took is listed at the end of the test run;
it is not asserted.

The second half checks numbers from the lecture notes that lectures 1, 2, 4 and 5 reproduce.
Each number is read out of the executed kernel and compared twice: with the notes' printed
value at the notes' printed precision (where the notes print one), and with an independent
computation here (PyTorch autograd in float64, or numpy).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient.exceptions import CellExecutionError

from nbutils import assert_clean, notebook_values

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parents[1]
LECTURE_DIR = ROOT / "lectures"
LECTURES = sorted(LECTURE_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell: a guard against a hung kernel, not a speed requirement

# The kernel variables each lecture exposes to the tests below (other lectures: none).
VALUES = {
    "01_perceptrons_and_networks.ipynb": [
        "best_single_perceptron_on_xor", "xor_outputs", "forward_max_diff", "collapse_max_diff"],
    "02_gradient_descent.ipynb": [
        "x_fit", "y_fit", "w0", "grad_by_hand", "grad_nnkit", "curvature_1d", "lr_critical_1d",
        "bowl_eigenvalues", "lr_critical_2d", "sgd_step_max_diff",
        "iters_gd", "iters_momentum", "final_gap_constant", "final_gap_decaying"],
    "04_backpropagation.ipynb": [
        "ece_x", "ece_y", "ece_W1", "ece_b1", "ece_W2", "ece_b2", "ece_loss", "ece_dW1", "ece_db1",
        "ece_dW2", "ece_db2", "ece_notes_grads", "ece_nnkit_vs_torch", "kanade_model_shapes",
        "delta_max_diff", "grad_input_max_diff", "gradcheck_ok", "gradcheck_catches_bug"],
    "05_activations_and_losses.ipynb": [
        "sigma_prime_z", "sigma_prime_values", "sigma_prime_max", "tanh_identity_max_diff",
        "ce_logits", "ce_targets", "ce_grad_nnkit", "saturation_z", "mse_grad_at_z", "ce_grad_at_z",
        "first_to_last_ratio", "first_to_last_ratio_matched"],
}

_RUNS: dict[str, tuple[dict | None, float | None, BaseException | None]] = {}


def _run(name: str) -> tuple[dict | None, float | None, BaseException | None]:
    """Execute ``lectures/<name>`` once per test run and remember the values, the time or the error."""
    if name not in _RUNS:
        try:
            values, seconds = notebook_values(LECTURE_DIR / name, VALUES.get(name, []), timeout=CELL_TIMEOUT)
            _RUNS[name] = (values, seconds, None)
        except Exception as exc:  # remembered, reported by every test that needs this lecture
            _RUNS[name] = (None, None, exc)
    return _RUNS[name]


def _failure_message(name: str, exc: BaseException) -> str:
    error = getattr(exc, "error", None)  # nbclient's exception behind a NotebookFailed
    if isinstance(error, CellExecutionError) and error.ename == "KeyError" and any(
            repr(v) in str(error.evalue) for v in VALUES.get(name, [])):
        return (f"{name} ran, but does not define the variable {error.evalue} that the tests read "
                f"(expected all of {VALUES[name]})")
    return f"{name} failed to execute:\n{exc}"


def lecture_values(name: str) -> dict:
    """The named kernel variables of a lecture (executing it if this run has not yet)."""
    values, _, exc = _run(name)
    if exc is not None:
        pytest.fail(_failure_message(name, exc), pytrace=False)
    return values


# --------------------------------------------------------------------------------------------
# Every lecture
# --------------------------------------------------------------------------------------------
def test_there_are_lectures():
    assert LECTURES, f"no notebooks found in {LECTURE_DIR}"


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_executes_without_error(path, record_property):
    values, seconds, exc = _run(path.name)
    if exc is not None:
        pytest.fail(_failure_message(path.name, exc), pytrace=False)
    print(f"{path.name}: executed headless in {seconds:.1f} s")
    record_property("notebook_seconds", (path.name, round(seconds, 1)))  # listed at the end of the run


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_is_stored_clean(path):
    assert_clean(path)


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.name)
def test_lecture_structure(path):
    """Kernel python3; opens with title, goals and prerequisites; %matplotlib inline first; ends with a summary."""
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: name lectures NN_topic.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel spec must be python3"
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), \
        f"{path.name}: the first cell must be a Markdown title"
    assert "prerequisite" in first.source.lower(), f"{path.name}: the first cell must state the prerequisites"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "%matplotlib inline" in code[0].source, \
        f"{path.name}: put %matplotlib inline in the first code cell"
    assert last.cell_type == "markdown" and "summary" in last.source.lower(), \
        f"{path.name}: the last cell must be a Markdown summary"


def test_index_lists_every_lecture_and_nothing_else():
    index = (LECTURE_DIR / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\(([^)\s]+\.ipynb)\)", index)
    present = {p.name for p in LECTURES}
    assert len(linked) == len(set(linked)), f"lectures/README.md links a notebook twice: {sorted(linked)}"
    missing = sorted(present - set(linked))
    dangling = sorted(set(linked) - present)
    assert not missing, f"lectures/README.md does not list {missing}"
    assert not dangling, f"lectures/README.md lists notebooks that do not exist in lectures/: {dangling}"
    assert linked == sorted(linked), f"lectures/README.md should list the lectures in order, got {linked}"


# --------------------------------------------------------------------------------------------
# Lecture 1: perceptrons and networks
# --------------------------------------------------------------------------------------------
def test_lecture1_xor_needs_a_hidden_layer():
    v = lecture_values("01_perceptrons_and_networks.ipynb")
    # A single line gets at most 3 of the 4 XOR points right; the two-layer step network gets all.
    assert v["best_single_perceptron_on_xor"] == 3
    assert v["xor_outputs"] == [0.0, 1.0, 1.0, 0.0]
    assert v["forward_max_diff"] < 1e-12
    assert v["collapse_max_diff"] < 1e-12


# --------------------------------------------------------------------------------------------
# Lecture 2: gradient descent
# --------------------------------------------------------------------------------------------
def test_lecture2_gradient_and_curvature_match_torch():
    torch = pytest.importorskip("torch")
    v = lecture_values("02_gradient_descent.ipynb")
    x = torch.tensor(v["x_fit"], dtype=torch.float64)
    y = torch.tensor(v["y_fit"], dtype=torch.float64)

    w = torch.tensor(v["w0"], dtype=torch.float64, requires_grad=True)
    loss = torch.mean((w * x - y) ** 2)
    (grad,) = torch.autograd.grad(loss, w, create_graph=True)
    (curvature,) = torch.autograd.grad(grad, w)
    assert v["grad_by_hand"] == pytest.approx(grad.item(), rel=1e-12)
    assert v["grad_nnkit"] == pytest.approx(grad.item(), rel=1e-12)
    assert v["curvature_1d"] == pytest.approx(curvature.item(), rel=1e-12)
    assert v["lr_critical_1d"] == pytest.approx(2.0 / curvature.item(), rel=1e-12)

    def J(theta):
        return torch.mean((theta[0] * x + theta[1] - y) ** 2)

    hessian = torch.autograd.functional.hessian(J, torch.zeros(2, dtype=torch.float64))
    eigenvalues = torch.linalg.eigvalsh(hessian).numpy()
    np.testing.assert_allclose(v["bowl_eigenvalues"], eigenvalues, rtol=1e-10)
    assert v["lr_critical_2d"] == pytest.approx(2.0 / eigenvalues[-1], rel=1e-10)
    assert v["sgd_step_max_diff"] < 1e-12


def test_lecture2_learning_rate_threshold_separates_convergence_from_divergence():
    """The lecture's claim η < 2/λ_max, checked by running gradient descent here (numpy)."""
    v = lecture_values("02_gradient_descent.ipynb")
    x, y = np.array(v["x_fit"]), np.array(v["y_fit"])

    def final_loss(lr, steps=400):
        w = b = 0.0
        for _ in range(steps):
            r = w * x + b - y
            w, b = w - lr * 2 * np.mean(r * x), b - lr * 2 * np.mean(r)
        return np.mean((w * x + b - y) ** 2)

    start = np.mean(y ** 2)
    assert final_loss(0.95 * v["lr_critical_2d"]) < start
    assert final_loss(1.05 * v["lr_critical_2d"]) > 1e3 * start


def test_lecture2_momentum_and_schedule_numbers():
    """Momentum (η = 0.1, β = 0.8) beats plain descent (η = 0.25) on the bowl: recomputed here in numpy."""
    v = lecture_values("02_gradient_descent.ipynb")
    x, y = np.array(v["x_fit"]), np.array(v["y_fit"])
    A = np.stack([x, np.ones_like(x)], axis=1)
    theta_star = np.linalg.lstsq(A, y, rcond=None)[0]
    j_min = np.mean((A @ theta_star - y) ** 2)

    def iterations(lr, beta):
        theta, vel = np.array([-0.5, 2.0]), None
        for t in range(300):
            r = A @ theta - y
            if np.mean(r ** 2) - j_min < 1e-6:
                return t
            g = 2 * A.T @ r / len(x)
            vel = g.copy() if vel is None else beta * vel + g
            theta = theta - lr * vel
        return None

    assert v["iters_gd"] == iterations(0.25, 0.0)
    assert v["iters_momentum"] == iterations(0.1, 0.8)
    assert v["iters_momentum"] < v["iters_gd"] / 2
    assert v["final_gap_decaying"] < v["final_gap_constant"] / 10


# --------------------------------------------------------------------------------------------
# Lecture 4: backpropagation
# --------------------------------------------------------------------------------------------
def test_lecture4_ece498_example_gradients_match_torch():
    torch = pytest.importorskip("torch")
    v = lecture_values("04_backpropagation.ipynb")
    t = {k: torch.tensor(v[k], dtype=torch.float64, requires_grad=True) for k in ("ece_W1", "ece_b1", "ece_W2", "ece_b2")}
    assert tuple(t["ece_W1"].shape) == (2, 1) and tuple(t["ece_W2"].shape) == (2, 2), \
        "the ECE 498 network has 1 input, 2 hidden units and 2 outputs"
    x = torch.tensor([v["ece_x"]], dtype=torch.float64)
    hidden = torch.sigmoid(t["ece_W1"] @ x + t["ece_b1"])
    y_hat = t["ece_W2"] @ hidden + t["ece_b2"]                     # linear outputs
    loss = torch.sum((y_hat - torch.tensor(v["ece_y"], dtype=torch.float64)) ** 2)   # squared L2 norm
    loss.backward()

    assert v["ece_loss"] == pytest.approx(loss.item(), rel=1e-12)
    for ours, theirs in [("ece_dW1", "ece_W1"), ("ece_db1", "ece_b1"), ("ece_dW2", "ece_W2"), ("ece_db2", "ece_b2")]:
        np.testing.assert_allclose(v[ours], t[theirs].grad.numpy(), rtol=1e-10, atol=1e-15, err_msg=ours)
        assert np.all(np.abs(v[ours]) > 1e-6), f"{ours}: choose numbers that make every gradient non-zero"
    # The notes' four chain-rule formulas (their w^[2]_kj is our W²[j, k]):
    # ∂ℒ/∂w_11^[2], ∂ℒ/∂b_1^[2], ∂ℒ/∂w_1^[1], ∂ℒ/∂b_1^[1]
    expected = [t["ece_W2"].grad[0, 0], t["ece_b2"].grad[0], t["ece_W1"].grad[0, 0], t["ece_b1"].grad[0]]
    np.testing.assert_allclose(v["ece_notes_grads"], [e.item() for e in expected], rtol=1e-10)
    assert v["ece_nnkit_vs_torch"] < 1e-12


# The shapes the notes' Torch listing prints after forward and backward (modules numbered from 1).
NOTES_TORCH_LISTING = {
    "1.weight": [4, 3], "1.gradWeight": [4, 3], "1.bias": [4], "1.gradBias": [4], "1.output": [500, 4],
    "2.output": [500, 4], "2.gradInput": [500, 4],
    "3.weight": [2, 4], "3.gradWeight": [2, 4], "3.bias": [2], "3.gradBias": [2], "3.output": [500, 2],
    "4.output": [500, 2], "4.gradInput": [500, 2],
}


def test_lecture4_torch_example_shapes():
    torch = pytest.importorskip("torch")
    v = lecture_values("04_backpropagation.ipynb")
    shapes = v["kanade_model_shapes"]
    for key, shape in NOTES_TORCH_LISTING.items():
        assert shapes.get(key) == shape, f"{key}: lecture shows {shapes.get(key)}, the notes print {shape}"

    # The same model in PyTorch: every shape the lecture lists, including gradInput of the Linear
    # layers (the notes' listing prints "size 4" and "size 2" there; ∂ℒ/∂input has the input's shape).
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 2),
                                torch.nn.Sigmoid()).double()
    a = torch.randn(500, 3, dtype=torch.float64, requires_grad=True)
    inputs, outputs = [], []
    for layer in model:
        inputs.append(a)
        a = layer(a)
        a.retain_grad()
        outputs.append(a)
    for t in inputs[1:]:
        t.retain_grad()
    torch.nn.functional.mse_loss(a, torch.randn(500, 2, dtype=torch.float64)).backward()
    expected = {}
    for i, layer in enumerate(model, start=1):
        if isinstance(layer, torch.nn.Linear):
            expected.update({f"{i}.weight": list(layer.weight.shape), f"{i}.gradWeight": list(layer.weight.grad.shape),
                             f"{i}.bias": list(layer.bias.shape), f"{i}.gradBias": list(layer.bias.grad.shape)})
        expected[f"{i}.output"] = list(outputs[i - 1].shape)
        expected[f"{i}.gradInput"] = list(inputs[i - 1].grad.shape)
    assert shapes == expected


def test_lecture4_deltas_and_gradient_checks():
    v = lecture_values("04_backpropagation.ipynb")
    assert v["delta_max_diff"] < 1e-12, "nnkit's .delta should equal PyTorch's retained z.grad"
    assert v["grad_input_max_diff"] < 1e-12
    assert v["gradcheck_ok"] is True
    assert v["gradcheck_catches_bug"] is True


# --------------------------------------------------------------------------------------------
# Lecture 5: activations and losses
# --------------------------------------------------------------------------------------------
def test_lecture5_saturation_toy_example():
    torch = pytest.importorskip("torch")
    v = lecture_values("05_activations_and_losses.ipynb")
    assert v["saturation_z"] == pytest.approx(-2.5, abs=1e-12)
    # The notes' values (4 decimals): squared error −0.0648, cross entropy −0.9241 at z = −2.5, y = 1.
    assert v["mse_grad_at_z"] == pytest.approx(-0.0648, abs=5e-5)
    assert v["ce_grad_at_z"] == pytest.approx(-0.9241, abs=5e-5)

    z = torch.tensor(-2.5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(1.0, dtype=torch.float64)
    (mse_grad,) = torch.autograd.grad(0.5 * (y - torch.sigmoid(z)) ** 2, z)
    (ce_grad,) = torch.autograd.grad(torch.nn.functional.binary_cross_entropy_with_logits(z, y), z)
    assert v["mse_grad_at_z"] == pytest.approx(mse_grad.item(), rel=1e-10)
    assert v["ce_grad_at_z"] == pytest.approx(ce_grad.item(), rel=1e-10)


def test_lecture5_sigmoid_derivative():
    torch = pytest.importorskip("torch")
    v = lecture_values("05_activations_and_losses.ipynb")
    z = torch.tensor(v["sigma_prime_z"], dtype=torch.float64, requires_grad=True)
    torch.sigmoid(z).sum().backward()
    np.testing.assert_allclose(v["sigma_prime_values"], z.grad.numpy(), rtol=1e-12, atol=1e-15)
    s = torch.sigmoid(z.detach()).numpy()
    np.testing.assert_allclose(v["sigma_prime_values"], s * (1 - s), rtol=1e-12, atol=1e-15)   # σ' = σ(1 − σ)
    assert v["sigma_prime_max"] == pytest.approx(0.25, abs=1e-15)                              # σ' ≤ 1/4, at z = 0
    assert v["tanh_identity_max_diff"] < 1e-14                                                 # tanh z = 2σ(2z) − 1


def test_lecture5_cross_entropy_delta_is_p_minus_y():
    torch = pytest.importorskip("torch")
    v = lecture_values("05_activations_and_losses.ipynb")
    logits = torch.tensor(v["ce_logits"], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor(v["ce_targets"], dtype=torch.int64)
    torch.nn.functional.cross_entropy(logits, targets).backward()
    np.testing.assert_allclose(v["ce_grad_nnkit"], logits.grad.numpy(), rtol=1e-10, atol=1e-15)
    p = torch.softmax(logits.detach(), dim=1)
    onehot = torch.nn.functional.one_hot(targets, num_classes=logits.shape[1]).double()
    np.testing.assert_allclose(v["ce_grad_nnkit"], ((p - onehot) / len(targets)).numpy(), rtol=1e-10, atol=1e-15)


def test_lecture5_vanishing_gradients_claims():
    v = lecture_values("05_activations_and_losses.ipynb")
    notes_init, matched = v["first_to_last_ratio"], v["first_to_last_ratio_matched"]
    # With 20 sigmoid layers the first layer's gradient all but vanishes, under any initialisation.
    assert notes_init["sigmoid"] < 1e-10 and matched["sigmoid"] < 1e-8
    assert notes_init["sigmoid"] < min(notes_init[a] for a in ("tanh", "ReLU", "leaky ReLU"))
    # With He (ReLU) or Xavier (tanh) initialisation, gradients reach the first layer.
    for name in ("tanh", "ReLU", "leaky ReLU"):
        assert matched[name] > 1e-2, f"{name}: {matched[name]:.1e}"
        assert matched[name] > 100 * notes_init[name]
