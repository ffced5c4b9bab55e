"""Every layer against central differences (float64, < 1e-7) and against PyTorch (float64, < 1e-10),
dropout's meaning, numerical stability at |z| = 1e4, float32 kept float32, and Module behaviour.

The PyTorch side is written out here (the mirror pattern), independently of ``nk.parity``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nnkit as nk
from nnkit.gradcheck import check_module, relative_error

GRAD_TOL = 1e-7
TORCH_TOL = 1e-10
FAST = settings(max_examples=25, deadline=None)

seeds = st.integers(0, 2**32 - 1)
batches = st.integers(1, 5)
widths = st.integers(1, 6)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


def _away_from_zero(rng, shape, low=0.05, high=3.0):
    """Inputs at least ``low`` from 0, where ReLU, LeakyReLU and Step have their kink or jump."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


# --- a table of layers: how to build one, and its PyTorch mirror --------------------------
ELEMENTWISE = {
    "Identity": (lambda rng: nk.Identity(), lambda layer, t: t),
    "Step": (lambda rng: nk.Step(), lambda layer, t: (t > 0).to(t.dtype) + 0 * t),
    "Sigmoid": (lambda rng: nk.Sigmoid(), lambda layer, t: torch.sigmoid(t)),
    "Tanh": (lambda rng: nk.Tanh(), lambda layer, t: torch.tanh(t)),
    "ReLU": (lambda rng: nk.ReLU(), lambda layer, t: torch.relu(t)),
    "LeakyReLU": (lambda rng: nk.LeakyReLU(float(rng.uniform(0.01, 0.5))),
                  lambda layer, t: torch.nn.functional.leaky_relu(t, layer.negative_slope)),
}


def _torch_run(fn, x, dout, params=()):
    """Forward ``fn`` on a float64 tensor of ``x``, backward ``dout``; output and gradients as numpy."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = fn(xt)
    (out * torch.tensor(dout, dtype=torch.float64)).sum().backward()
    grads = [p.grad.numpy() for p in params]
    return out.detach().numpy(), xt.grad.numpy(), grads


def _nnkit_run(layer, x, dout):
    out = layer.forward(x)
    dx = layer.backward(dout)
    return out, dx, [p.grad.copy() for p in layer.parameters()]


def _assert_parity(layer, fn, x, rng, params=()):
    out = layer.forward(x)
    dout = rng.standard_normal(np.shape(out))
    ours = _nnkit_run(layer, x, dout)
    theirs = _torch_run(fn, x, dout, params)
    assert relative_error(ours[0], theirs[0]) < TORCH_TOL, "forward differs from PyTorch"
    assert relative_error(ours[1], theirs[1]) < TORCH_TOL, "∂ℒ/∂x differs from PyTorch"
    for a, b in zip(ours[2], theirs[2]):
        assert relative_error(a, b) < TORCH_TOL, "a parameter gradient differs from PyTorch"


# --- Linear ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@FAST
@given(seed=seeds, batch=batches, n_in=widths, n_out=widths)
@example(seed=0, batch=1, n_in=1, n_out=1)
def test_linear_gradcheck(bias, seed, batch, n_in, n_out):
    rng = np.random.default_rng(seed)
    layer = nk.Linear(n_in, n_out, bias=bias, rng=rng)
    report = check_module(layer, rng.standard_normal((batch, n_in)), rng=rng)
    report.assert_ok()
    assert [r.name for r in report.rows] == ["∂ℒ/∂x", "∂ℒ/∂weight"] + (["∂ℒ/∂bias"] if bias else [])
    assert all(r.error < GRAD_TOL for r in report.rows)


@pytest.mark.parametrize("bias", [True, False])
@FAST
@given(seed=seeds, lead=st.lists(st.integers(1, 4), max_size=2).map(tuple), n_in=widths, n_out=widths)
@example(seed=0, lead=(1,), n_in=3, n_out=2)
@example(seed=0, lead=(), n_in=3, n_out=2)
def test_linear_matches_torch(bias, seed, lead, n_in, n_out):
    """Any leading shape (none, batch, batch × time), as torch.nn.functional.linear."""
    rng = np.random.default_rng(seed)
    layer = nk.Linear(n_in, n_out, bias=bias, rng=rng)
    W = torch.tensor(layer.weight.data, requires_grad=True)
    b = torch.tensor(layer.bias.data, requires_grad=True) if bias else None
    params = [W] + ([b] if bias else [])
    _assert_parity(layer, lambda t: torch.nn.functional.linear(t, W, b), rng.standard_normal(lead + (n_in,)), rng, params)


def test_linear_holds_weight_out_by_in_and_default_init_is_notes_uniform():
    layer = nk.Linear(50, 30, rng=0)
    assert layer.weight.shape == (30, 50) and layer.bias.shape == (30,)
    bound = 1 / np.sqrt(50)
    for p in (layer.weight.data, layer.bias.data):
        assert np.all(np.abs(p) <= bound)
    assert np.abs(layer.weight.data).max() > 0.95 * bound  # fills the interval, not a narrower one
    assert nk.Linear(3, 2, bias=False).bias is None


# --- element-wise activations ----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@FAST
@given(seed=seeds, shape=shapes)
@example(seed=0, shape=(1,))
@example(seed=1, shape=(1, 1))
def test_activation_gradcheck(name, seed, shape):
    rng = np.random.default_rng(seed)
    layer = ELEMENTWISE[name][0](rng)
    check_module(layer, _away_from_zero(rng, shape), rng=rng).assert_ok()


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@FAST
@given(seed=seeds, shape=shapes)
@example(seed=0, shape=(1, 3))
def test_activation_matches_torch(name, seed, shape):
    rng = np.random.default_rng(seed)
    make, mirror = ELEMENTWISE[name]
    layer = make(rng)
    _assert_parity(layer, lambda t: mirror(layer, t), _away_from_zero(rng, shape) * 2, rng)


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "Step"])
def test_derivative_at_zero_is_pytorchs(name):
    """At the kink itself the subgradient is PyTorch's choice: ReLU′(0) = 0, LeakyReLU′(0) = slope, Step′ = 0."""
    rng = np.random.default_rng(0)
    make, mirror = ELEMENTWISE[name]
    layer = make(rng)
    x = np.array([[-1.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
    _assert_parity(layer, lambda t: mirror(layer, t), x, rng)


# --- softmax and log-softmax -----------------------------------------------------------------
@st.composite
def tensor_and_dim(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, dim


@pytest.mark.parametrize("name", ["Softmax", "LogSoftmax"])
@FAST
@given(seed=seeds, shape_dim=tensor_and_dim())
@example(seed=0, shape_dim=((1, 1), -1))
@example(seed=0, shape_dim=((1, 5), 1))
def test_softmax_family_gradcheck_and_torch(name, seed, shape_dim):
    shape, dim = shape_dim
    rng = np.random.default_rng(seed)
    layer = getattr(nk, name)(dim=dim)
    x = 3 * rng.standard_normal(shape)
    check_module(layer, x, rng=rng).assert_ok()
    fn = torch.softmax if name == "Softmax" else torch.log_softmax
    _assert_parity(layer, lambda t: fn(t, dim), x, rng)


def test_softmax_rows_are_distributions_and_logsoftmax_is_their_log():
    z = np.random.default_rng(0).standard_normal((4, 5))
    p = nk.Softmax().forward(z)
    assert np.all(p > 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(nk.LogSoftmax().forward(z), np.log(p), rtol=1e-14)


# --- Flatten ---------------------------------------------------------------------------------
@st.composite
def flatten_case(draw):
    shape = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple))
    nd = len(shape)
    start = draw(st.integers(0, nd - 1))
    end = draw(st.integers(start, nd - 1))
    negative = draw(st.booleans())
    return shape, (start - nd if negative else start), (end - nd if negative else end)


@FAST
@given(seed=seeds, case=flatten_case())
@example(seed=0, case=((1, 3, 2, 2), 1, -1))
def test_flatten_gradcheck_and_torch(seed, case):
    shape, start, end = case
    rng = np.random.default_rng(seed)
    layer = nk.Flatten(start, end)
    x = rng.standard_normal(shape)
    check_module(layer, x, rng=rng).assert_ok()
    _assert_parity(layer, lambda t: torch.flatten(t, start, end), x, rng)


# --- Dropout ---------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
@FAST
@given(seed=seeds, shape=shapes)
@example(seed=0, shape=(1, 1))
def test_dropout_gradcheck_and_torch_with_its_mask(p, seed, shape):
    """Training mode: the mask is fixed during the check (the generator is rewound), and the
    PyTorch mirror multiplies by the same scaled mask."""
    rng = np.random.default_rng(seed)
    layer = nk.Dropout(p, rng=seed)
    x = rng.standard_normal(shape)
    check_module(layer, x, rng=rng).assert_ok()
    out = layer.forward(x)
    mask = np.ones(shape) if layer.mask is None else layer.mask  # p = 0 draws no mask
    dout = rng.standard_normal(shape)
    dx = layer.backward(dout)
    t_out, t_dx, _ = _torch_run(lambda t: t * torch.tensor(mask), x, dout)
    assert relative_error(out, t_out) < TORCH_TOL and relative_error(dx, t_dx) < TORCH_TOL


def test_dropout_p_is_the_drop_probability_with_inverted_scaling():
    p, n = 0.3, 200_000
    layer = nk.Dropout(p, rng=0)
    x = np.ones(n)
    out = layer.forward(x)
    dropped = np.mean(out == 0)
    assert abs(dropped - p) < 5 * np.sqrt(p * (1 - p) / n), f"dropped {dropped:.4f} of units, p = {p}"
    np.testing.assert_allclose(out[out != 0], 1 / (1 - p), rtol=1e-15)  # kept units scaled by 1/(1 − p)
    assert abs(out.mean() - 1.0) < 5 * np.sqrt(p / (1 - p) / n)  # so the expected output is the input


def test_dropout_p_means_what_torch_means():
    """Same fraction dropped as torch.nn.Dropout(p) and the same scale of what is kept."""
    p, n = 0.25, 200_000
    torch.manual_seed(0)
    t_out = torch.nn.Dropout(p)(torch.ones(n, dtype=torch.float64)).numpy()
    out = nk.Dropout(p, rng=0).forward(np.ones(n))
    assert abs(np.mean(out == 0) - np.mean(t_out == 0)) < 5 * np.sqrt(2 * p * (1 - p) / n)
    assert set(np.unique(out)) == set(np.unique(t_out))


def test_dropout_is_identity_in_eval_mode_and_backward_reuses_the_mask():
    rng = np.random.default_rng(0)
    layer = nk.Dropout(0.5, rng=1)
    x, g = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    out = layer.forward(x)
    assert np.any(out == 0) and np.any(out != 0)
    dx = layer.backward(g)
    np.testing.assert_array_equal(dx == 0, out == 0)  # zero gradient exactly where the unit was dropped
    np.testing.assert_allclose(dx, g * out / x, rtol=1e-15)  # the same scaled mask
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(g), g)


def test_dropout_masks_follow_manual_seed_set_after_building():
    """As in PyTorch: nk.manual_seed after the model is built still fixes the masks."""
    layer = nk.Dropout(0.5)
    x = np.ones((4, 8))
    nk.manual_seed(7)
    first = layer.forward(x)
    nk.manual_seed(7)
    np.testing.assert_array_equal(layer.forward(x), first)
    assert not np.array_equal(layer.forward(x), first)  # and the next draw is a new mask


def _net(rng, p):
    return nk.Sequential(nk.Linear(5, 16, rng=rng), nk.ReLU(), nk.Dropout(p, rng=rng), nk.Linear(16, 3, rng=rng))


def test_dropout_average_over_masks_equals_eval_output():
    """Inverted dropout: the average over many seeded masks of the training-mode output is
    the evaluation-mode output (exactly in expectation here: dropout feeds a linear layer)."""
    rng = np.random.default_rng(0)
    net = _net(rng, 0.5)
    x = rng.standard_normal((4, 5))
    samples = np.stack([net.forward(x) for _ in range(20_000)])
    expected = net.eval().forward(x)
    se = samples.std(axis=0) / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - expected) < 5 * se + 1e-12)


def test_inverted_dropout_equals_notes_halve_the_weights_at_test_time():
    """The notes: train with dropout p = ½ (no scaling), then use the whole network with halved
    weights. Inverted dropout scales by 1/(1 − p) during training instead. With the weights
    after the dropout layer related by W_inverted = (1 − p) W_notes, the two networks compute the
    same function on every mask in training, and the same function at test time."""
    p = 0.5
    rng = np.random.default_rng(1)
    net = _net(rng, p)
    x = rng.standard_normal((6, 5))
    W_notes = net[3].weight.data / (1 - p)
    b = net[3].bias.data
    hidden = lambda: net[1].forward(net[0].forward(x))  # noqa: E731

    for _ in range(5):  # training: same mask, same output
        out = net.forward(x)
        keep = (net[2].mask != 0).astype(float)  # the notes' unscaled 0/1 mask
        np.testing.assert_allclose(out, (keep * hidden()) @ W_notes.T + b, rtol=1e-12)

    halved = hidden() @ (0.5 * W_notes).T + b  # test time in the notes: halve the weights
    np.testing.assert_allclose(net.eval().forward(x), halved, rtol=1e-12)

    # and the notes' halving is the expectation of their training-time network over masks
    net.train()
    h = hidden()
    samples = np.stack([((rng.random(h.shape) >= p) * h) @ W_notes.T + b for _ in range(20_000)])
    se = samples.std(axis=0) / np.sqrt(len(samples))
    assert np.all(np.abs(samples.mean(axis=0) - halved) < 5 * se + 1e-12)


# --- whole networks --------------------------------------------------------------------------
@FAST
@given(seed=seeds, batch=batches)
@example(seed=0, batch=1)
def test_mlp_gradcheck_every_parameter(seed, batch):
    rng = np.random.default_rng(seed)
    net = nk.Sequential(nk.Linear(4, 5, rng=rng), nk.Tanh(), nk.Dropout(0.3, rng=rng), nk.Linear(5, 3, rng=rng),
                        nk.Sigmoid(), nk.Linear(3, 2, bias=False, rng=rng), nk.LogSoftmax())
    report = check_module(net, rng.standard_normal((batch, 4)), rng=rng)
    report.assert_ok()
    assert len(report.rows) == 1 + len(net.parameters())


# --- numerical stability ---------------------------------------------------------------------
BIG = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, 1e4, 1e4], [-1e4, -1e4, -1e4, -1e4]])
STABLE = {
    "Sigmoid": (nk.Sigmoid, torch.sigmoid),
    "Softmax": (nk.Softmax, lambda t: torch.softmax(t, -1)),
    "LogSoftmax": (nk.LogSoftmax, lambda t: torch.log_softmax(t, -1)),
    "Tanh": (nk.Tanh, torch.tanh),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(STABLE))
def test_stable_at_large_inputs(name, dtype):
    make, fn = STABLE[name]
    layer = make()
    z = BIG.astype(dtype)
    g = np.random.default_rng(0).standard_normal(z.shape).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow, no 0 · inf, no NaN
        out = layer.forward(z)
        dz = layer.backward(g)
    assert out.dtype == dtype and dz.dtype == dtype
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dz))
    zt = torch.tensor(z, requires_grad=True)
    t_out = fn(zt)
    (t_out * torch.tensor(g)).sum().backward()
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert relative_error(out, t_out.detach().numpy()) < tol
    assert relative_error(dz, zt.grad.numpy()) < tol


def test_functional_sigmoid_exact_in_both_tails():
    z = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = nk.functional.sigmoid(z)
    np.testing.assert_allclose(s, torch.sigmoid(torch.tensor(z)).numpy(), rtol=1e-15, atol=0)


# --- float32 stays float32 -------------------------------------------------------------------
LAYERS_F32 = [
    lambda: nk.Linear(6, 4, rng=0, dtype=np.float32), nk.Identity, nk.Step, nk.Sigmoid, nk.Tanh, nk.ReLU, nk.LeakyReLU,
    nk.Softmax, nk.LogSoftmax, lambda: nk.Dropout(0.5, rng=0), nk.Flatten,
]


@pytest.mark.parametrize("make", LAYERS_F32, ids=lambda m: type(m()).__name__)
def test_float32_in_float32_out(make):
    layer = make()
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32, f"{layer.label()} upcast its output to {out.dtype}"
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == np.float32, f"{layer.label()} upcast ∂ℒ/∂x to {dx.dtype}"
    for p in layer.parameters():
        assert p.data.dtype == p.grad.dtype == np.float32


# --- Module behaviour ------------------------------------------------------------------------
def _mlp(seed=0):
    return nk.Sequential(nk.Linear(3, 4, rng=seed), nk.Sigmoid(), nk.Linear(4, 2, rng=seed + 1), nk.Sigmoid())


def test_gradients_accumulate_until_zeroed():
    net = _mlp()
    x, g = np.random.default_rng(0).standard_normal((5, 3)), np.random.default_rng(1).standard_normal((5, 2))
    net.forward(x)
    net.backward(g)
    once = [p.grad.copy() for p in net.parameters()]
    assert all(np.any(o != 0) for o in once)
    net.forward(x)
    net.backward(g)
    for p, o in zip(net.parameters(), once):
        np.testing.assert_allclose(p.grad, 2 * o, rtol=1e-15)
    net.zero_grad()
    assert all(not np.any(p.grad) and p.grad.shape == p.shape for p in net.parameters())


def test_parameters_in_order_with_pytorch_names():
    net = nk.Sequential(nk.Linear(3, 4), nk.ReLU(), nk.Linear(4, 2, bias=False))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight"]
    assert names == [n for n, _ in nk.parity.to_torch(net).named_parameters()]
    assert net.parameters()[0] is net[0].weight and net.parameters()[2] is net[2].weight
    assert nk.ReLU().parameters() == []


def test_train_and_eval_reach_every_nested_module():
    inner = nk.Sequential(nk.Linear(2, 2), nk.Dropout(0.5))
    net = nk.Sequential(nk.Linear(2, 2), inner, nk.Dropout(0.5))
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    inner.eval()
    assert net.training and not inner[1].training


def test_sequential_len_iter_index_and_slice():
    layers = [nk.Linear(3, 4), nk.ReLU(), nk.Linear(4, 2), nk.Sigmoid()]
    net = nk.Sequential(*layers)
    assert len(net) == 4
    assert list(net) == layers
    assert net[0] is layers[0] and net[-1] is layers[-1]
    head = net[1:3]
    assert isinstance(head, nk.Sequential) and list(head) == layers[1:3]
    assert [n for n, _ in head.named_parameters()] == ["2.weight", "2.bias"]  # names kept, as in PyTorch
    assert layers[2].label() == "layer [2] Linear(4→2)"  # slicing does not rename layers of the whole
    x = np.random.default_rng(0).standard_normal((2, 3))
    np.testing.assert_array_equal(net.forward(x), net[2:].forward(net[:2].forward(x)))
    with pytest.raises(IndexError):
        net[4]


def test_model_call_is_forward_and_delta_is_the_upstream_gradient():
    net = _mlp()
    x = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(net(x), net.forward(x))
    g = np.ones((5, 2))
    net.backward(g)
    np.testing.assert_array_equal(net[3].delta, g)
    np.testing.assert_array_equal(net[2].delta, net[3].backward(g))  # δ of the last Linear layer = g ⊙ σ′(z)


def test_state_dict_round_trip():
    a, b = _mlp(0), _mlp(10)
    x = np.random.default_rng(0).standard_normal((5, 3))
    assert not np.allclose(a(x), b(x))
    state = a.state_dict()
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    b.load_state_dict(state)
    np.testing.assert_array_equal(a(x), b(x))
    state["0.weight"][...] = 0  # the state dict is a copy, not a view of the parameters
    assert np.any(a[0].weight.data) and np.any(b[0].weight.data)
    # PyTorch reads the same state dict (same names, same shapes)
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 2), torch.nn.Sigmoid()).double()
    twin.load_state_dict({k: torch.tensor(v) for k, v in a.state_dict().items()})
    assert relative_error(twin(torch.tensor(x)).detach().numpy(), a(x)) < TORCH_TOL


def test_to_casts_parameters_and_gradients():
    net = _mlp().to(np.float32)
    assert all(p.data.dtype == p.grad.dtype == np.float32 for p in net.parameters())
    assert net(np.ones((2, 3), dtype=np.float32)).dtype == np.float32


@pytest.mark.parametrize("first", [lambda: nk.Linear(3, 4, rng=0), nk.Sigmoid, nk.Flatten], ids=["Linear", "Sigmoid", "Flatten"])
def test_backward_without_input_gradient_gives_the_same_parameter_gradients(first):
    """``backward(g, input_grad=False)``: what a training step needs (no ∂ℒ/∂x of the data)."""
    head = first()
    width = 4 if isinstance(head, nk.Linear) else 3
    net = nk.Sequential(head, nk.Linear(width, 2, rng=1), nk.Tanh())
    x, g = np.random.default_rng(0).standard_normal((5, 3)), np.random.default_rng(1).standard_normal((5, 2))
    net.forward(x)
    dx = net.backward(g)
    full = [p.grad.copy() for p in net.parameters()]
    net.zero_grad()
    net.forward(x)
    assert net.backward(g, input_grad=False) is None
    for p, f in zip(net.parameters(), full):
        np.testing.assert_array_equal(p.grad, f)
    assert dx.shape == x.shape
    assert net[0].backward(np.ones((5, net[0]._output_shape[1])), input_grad=False) is None
