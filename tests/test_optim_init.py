"""SGD against torch.optim.SGD step by step (float64), the notes' bias-sparing weight decay, and
the statistics of every initialisation rule in ``nk.init``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nnkit as nk
from nnkit.gradcheck import relative_error

SHAPES = [(4, 3), (4,), (2, 4), (2,)]  # two Linear layers: weights and biases


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [nk.Parameter(rng.standard_normal(s)) for s in SHAPES]


def _run_both(steps=6, seed=0, decay_biases=True, **hyper):
    """The same gradients fed to nnkit's SGD and to torch.optim.SGD; parameters after each step."""
    ours = _params(seed)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    opt = nk.optim.SGD(ours, decay_biases=decay_biases, **hyper)
    t_opt = torch.optim.SGD(theirs, **hyper)
    rng = np.random.default_rng(seed + 1)
    history = []
    for _ in range(steps):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape)
            p.grad[...] = g
            t.grad = torch.tensor(g)
        opt.step()
        t_opt.step()
        history.append([(p.data.copy(), t.detach().numpy().copy()) for p, t in zip(ours, theirs)])
    return history


HYPER = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.05, momentum=0.9),
    "weight decay": dict(lr=0.05, weight_decay=0.1),
    "momentum + decay": dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True),
    "nesterov + decay": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
}


@pytest.mark.parametrize("name", sorted(HYPER))
def test_sgd_with_decay_biases_equals_torch_step_by_step(name):
    for step, pairs in enumerate(_run_both(**HYPER[name])):
        for ours, theirs in pairs:
            assert relative_error(ours, theirs) < 1e-14, f"{name}: parameters differ after step {step + 1}"


def test_sgd_default_weight_decay_spares_biases():
    """The notes: 'we do not regularise the biases'. With zero gradients, weights shrink by
    (1 − ηλ) and biases stay; torch.optim.SGD (decay_biases=True) shrinks both."""
    lr, wd = 0.1, 0.5
    params = _params()
    before = [p.data.copy() for p in params]
    opt = nk.optim.SGD(params, lr=lr, weight_decay=wd)
    opt.step()
    for p, b in zip(params, before):
        expected = b * (1 - lr * wd) if b.ndim > 1 else b
        np.testing.assert_allclose(p.data, expected, rtol=1e-15)
    # with gradients: biases follow plain SGD, weights follow torch's decayed SGD
    history = _run_both(lr=0.05, momentum=0.9, weight_decay=0.1, decay_biases=False)
    plain = _run_both(lr=0.05, momentum=0.9)
    for pairs, plain_pairs in zip(history, plain):
        for (ours, theirs), (plain_ours, _) in zip(pairs, plain_pairs):
            if ours.ndim > 1:
                assert relative_error(ours, theirs) < 1e-14
            else:
                np.testing.assert_array_equal(ours, plain_ours)


def test_momentum_accumulates_velocity():
    """v ← μv + g: a constant gradient g moves θ by η g (1 + μ + μ² + …) over the steps."""
    lr, mu = 0.1, 0.5
    p = nk.Parameter(np.zeros(3))
    opt = nk.optim.SGD([p], lr=lr, momentum=mu)
    g = np.array([1.0, -2.0, 0.5])
    for k in range(1, 6):
        p.grad[...] = g
        opt.step()
        expected = -lr * g * sum((k - j) * mu**j for j in range(k))  # Σ_{steps} Σ_{j<step} μ^j
        np.testing.assert_allclose(p.data, expected, rtol=1e-14)


def test_zero_grad_and_float32_updates_stay_float32():
    p = nk.Parameter(np.ones((2, 2), dtype=np.float32))
    opt = nk.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    p.grad[...] = 1
    opt.step()
    assert p.data.dtype == np.float32
    opt.zero_grad()
    assert not np.any(p.grad) and p.grad.dtype == np.float32


def test_sgd_trains_a_model_like_torch():
    """A few full training steps: nnkit model + SGD against its PyTorch twin + torch.optim.SGD."""
    rng = np.random.default_rng(0)
    model = nk.Sequential(nk.Linear(3, 5, rng=1), nk.Tanh(), nk.Linear(5, 2, rng=2))
    twin = nk.parity.to_torch(model)
    x, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    opt = nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3, decay_biases=True)
    t_opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    loss, t_loss = nk.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for _ in range(5):
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()
        opt.zero_grad()
        t_loss(twin(torch.tensor(x)), torch.tensor(y)).backward()
        t_opt.step()
        t_opt.zero_grad()
    for name, t in twin.named_parameters():
        assert relative_error(model.state_dict()[name], t.detach().numpy()) < 1e-12


# --- initialisation --------------------------------------------------------------------------
def _torch_fans(shape):
    return torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("shape", [(300, 200), (64, 3, 5, 5)])
def test_fans_follow_pytorch(shape):
    assert nk.init.fans(shape) == _torch_fans(shape)


def _uniform_ok(w, bound):
    """Inside [−a, a], filling it (max near a), variance a²/3, mean 0 — checked with a seed."""
    n = w.size
    assert np.all(np.abs(w) <= bound)
    assert np.abs(w).max() > bound * (1 - 20 / n)
    var = bound**2 / 3
    assert abs(w.mean()) < 5 * math.sqrt(var / n)
    assert abs(w.var() / var - 1) < 5 * math.sqrt(0.8 / n)  # var of the sample variance of U: 0.8 σ⁴/n


def _normal_ok(w, std):
    n = w.size
    assert abs(w.mean()) < 5 * std / math.sqrt(n)
    assert abs(w.var() / std**2 - 1) < 5 * math.sqrt(2 / n)
    assert abs(np.mean(np.abs(w) < std) - 0.6827) < 0.01  # a normal, not a uniform of the same variance


SHAPE = (256, 300)


def test_notes_uniform_rule():
    """The notes: w ∈ [−1/√n, 1/√n] with n the number of inputs; also PyTorch's nn.Linear default."""
    n_in = SHAPE[1]
    w = nk.init.uniform_fan_in(np.empty(SHAPE), rng=0)
    _uniform_ok(w, 1 / math.sqrt(n_in))
    t = torch.nn.Linear(n_in, SHAPE[0]).weight  # PyTorch's default for Linear has the same bound
    assert t.abs().max().item() <= 1 / math.sqrt(n_in)
    layer = nk.Linear(n_in, SHAPE[0], rng=1)
    _uniform_ok(layer.weight.data, 1 / math.sqrt(n_in))


def test_xavier_rules():
    n_in, n_out = nk.init.fans(SHAPE)
    gain = torch.nn.init.calculate_gain("tanh")
    _uniform_ok(nk.init.xavier_uniform(np.empty(SHAPE), rng=0), math.sqrt(6 / (n_in + n_out)))
    _uniform_ok(nk.init.xavier_uniform(np.empty(SHAPE), gain=gain, rng=0), gain * math.sqrt(6 / (n_in + n_out)))
    _normal_ok(nk.init.xavier_normal(np.empty(SHAPE), rng=0), math.sqrt(2 / (n_in + n_out)))
    # PyTorch's xavier_uniform_ bound, measured the same way
    t = torch.nn.init.xavier_uniform_(torch.empty(SHAPE, dtype=torch.float64)).numpy()
    _uniform_ok(t, math.sqrt(6 / (n_in + n_out)))


def test_kaiming_rules_match_pytorch_for_relu():
    n_in, _ = nk.init.fans(SHAPE)
    gain = torch.nn.init.calculate_gain("relu")  # √2
    _uniform_ok(nk.init.kaiming_uniform(np.empty(SHAPE), rng=0), gain * math.sqrt(3 / n_in))
    _normal_ok(nk.init.kaiming_normal(np.empty(SHAPE), rng=0), gain / math.sqrt(n_in))
    torch.manual_seed(0)
    t = torch.nn.init.kaiming_normal_(torch.empty(SHAPE, dtype=torch.float64), nonlinearity="relu").numpy()
    _normal_ok(t, gain / math.sqrt(n_in))


def test_conv_weight_fan_in_counts_the_kernel():
    shape = (64, 8, 3, 3)
    w = nk.init.kaiming_uniform(np.empty(shape), rng=0)
    _uniform_ok(w, math.sqrt(6 / (8 * 9)))


def test_init_fills_parameters_in_place_reproducibly_and_keeps_dtype():
    p = nk.Parameter(np.zeros((30, 20), dtype=np.float32))
    data = p.data
    assert nk.init.xavier_uniform(p, rng=3) is p
    assert p.data is data and p.data.dtype == np.float32 and np.any(p.data)
    q = nk.init.xavier_uniform(nk.Parameter(np.zeros((30, 20), dtype=np.float32)), rng=3)
    np.testing.assert_array_equal(p.data, q.data)
    assert not np.any(nk.init.zeros(p).data)
    with pytest.raises(ValueError, match="≥ 2 dimensions"):
        nk.init.kaiming_uniform(np.zeros(5))


def test_init_rules_keep_activations_alive_through_depth():
    """Why the rules exist. With ReLU, a layer multiplies the activations' mean square by
    n · Var(w) / 2: 1 for He (Var = 2/n), 1/6 for the notes' U[−1/√n, 1/√n] (Var = 1/(3n)).
    Measured through 20 layers of width 256: He keeps the scale, the notes' rule loses it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 256))

    def final_rms(rule):
        h = x
        for _ in range(20):
            W = rule(np.empty((256, 256)), rng=rng)
            h = np.maximum(h @ W.T, 0)
        return np.sqrt(np.mean(h**2)) / np.sqrt(np.mean(x**2))

    he = final_rms(nk.init.kaiming_normal)
    notes = final_rms(nk.init.uniform_fan_in)
    assert 0.2 < he < 5
    assert notes < 1e-6  # (1/√6)^20 ≈ 2e-8
