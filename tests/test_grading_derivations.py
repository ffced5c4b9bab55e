"""Problem set 7's references (nnkit has none of these pieces) against PyTorch, and its checks'
hidden messages: right answers pass, no expected values shown. (No kernel: the checks run here.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nnkit.grading import derivations as D



def t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("n,d,momentum", [(8, 3, 0.1), (2, 5, 0.5), (16, 1, 0.01)])
def test_batchnorm_reference_is_pytorchs(training, n, d, momentum, rng):
    x, g, b = rng.normal(2, 3, (n, d)), rng.normal(1, 0.3, d), rng.normal(0, 1, d)
    rm, rv = rng.normal(0, 1, d), rng.uniform(0.5, 2, d)
    out, m2, v2 = D.batchnorm_reference(x, g, b, rm, rv, training, momentum, 1e-5)
    trm, trv = t(rm), t(rv)
    ref = torch.nn.functional.batch_norm(t(x), trm, trv, t(g), t(b), training=training, momentum=momentum, eps=1e-5)
    for mine, theirs in ((out, ref), (m2, trm), (v2, trv)):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12)


def test_batchnorm_backward_reference_is_autograd(rng):
    x, g, b, dout = rng.normal(1, 2, (6, 4)), rng.normal(1, 0.3, 4), rng.normal(0, 1, 4), rng.normal(size=(6, 4))
    tx, tg, tb = t(x, True), t(g, True), t(b, True)
    (torch.nn.functional.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-5) * t(dout)).sum().backward()
    for mine, theirs in zip(D.batchnorm_backward_reference(dout, x, g, 1e-5), (tx, tg, tb)):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_silu_and_huber_references_are_pytorchs(rng):
    z = np.concatenate([rng.normal(0, 3, 50), [-1000.0, 1000.0, 0.0]])
    tz = t(z, True)
    torch.nn.functional.silu(tz).sum().backward()
    np.testing.assert_allclose(D.silu_prime_reference(z), tz.grad.numpy(), rtol=1e-12, atol=1e-14)
    y = rng.normal(size=z.size)
    for delta in (0.5, 1.0, 2.0):
        tz = t(z, True)
        loss = torch.nn.functional.huber_loss(tz, t(y), delta=delta)
        loss.backward()
        mine, dz = D.huber_reference(z, y, delta)
        assert mine == pytest.approx(loss.item(), rel=1e-12)
        np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_measured_scales_match_the_prediction_for_a_wide_network():
    widths = [300, 300, 600, 300, 300]
    X, Ws, G = D._random_network(widths, np.sqrt(2.0), 2000, np.random.default_rng(1))
    measured = np.array(D.measure_scales_reference(X, Ws, G, "relu"))
    predicted = np.array(D.predict_scales_reference(widths, np.sqrt(2.0), "relu"))
    np.testing.assert_allclose(measured, predicted, rtol=0.1)


def test_every_check_declares_what_an_answer_may_use():
    checks = {name for name in D.__all__ if name.startswith("check_")}
    assert set(D.MAY_USE) == checks
    assert all(v == () for v in D.MAY_USE.values()), "problem set 7's answers are numpy only"


def test_hidden_messages_show_no_expected_values():
    def wrong(z, y, delta=1.0):
        r = z - y
        return 123.456, r / r.size * 7.0

    with pytest.raises(AssertionError) as info:
        D.check_huber_loss(wrong, hidden=True)
    msg = str(info.value)
    assert "hidden check failed" in msg and "expected" not in msg
