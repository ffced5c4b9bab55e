"""nnkit.attacks: FGSM by nnkit's own backward, against torch.autograd on the PyTorch twin."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk
from nnkit.attacks import GOODFELLOW_EPSILON, accuracy_under_attack, fgsm, input_gradient


@pytest.fixture(scope="module")
def trained():
    """A digits MLP (with dropout, so that eval mode matters), trained with fit; and the test set."""
    X, y = nk.data.load_digits()
    (Xtr, ytr), (Xva, yva), (Xte, yte) = nk.data.train_val_test_split(X, y, rng=1)
    model = nk.Sequential(nk.Linear(64, 64, rng=0), nk.ReLU(), nk.Dropout(0.1, rng=0), nk.Linear(64, 10, rng=1))
    nk.train.fit(model, nk.CrossEntropyLoss(), nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                 (Xtr, ytr), (Xva, yva), epochs=25, rng=0, patience=5, progress=False)
    model.train()
    return model, Xte, yte


def torch_twin(model, device="cpu", dtype=None):
    """The same MLP in PyTorch with nnkit's weights (Dropout is the identity in eval mode)."""
    import torch

    dtype = dtype or torch.float64
    layers = []
    for layer in model:
        if isinstance(layer, nk.Linear):
            lin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
            with torch.no_grad():  # copy in float64 first, so no weight is rounded to float32
                lin.weight.copy_(torch.from_numpy(layer.weight.data))
                lin.bias.copy_(torch.from_numpy(layer.bias.data))
            layers.append(lin)
        elif isinstance(layer, nk.ReLU):
            layers.append(torch.nn.ReLU())
        elif isinstance(layer, nk.Dropout):
            layers.append(torch.nn.Dropout(layer.p))
        else:  # pragma: no cover
            raise TypeError(layer)
    return torch.nn.Sequential(*layers).to(device=device, dtype=dtype).eval()


def torch_fgsm(tmodel, x, y, eps, clip=(0.0, 1.0), device="cpu", dtype=None):
    import torch

    dtype = dtype or torch.float64
    tx = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(tmodel(tx), torch.tensor(y, device=device))
    (grad,) = torch.autograd.grad(loss, tx)
    adv = tx.detach() + eps * grad.sign()
    if clip is not None:
        adv = adv.clamp(*clip)
    return adv.cpu().double().numpy(), grad.cpu().double().numpy()


@pytest.mark.parametrize("eps", [GOODFELLOW_EPSILON, 0.05, 0.25])
def test_fgsm_matches_pytorch_autograd(trained, eps):
    pytest.importorskip("torch")
    model, Xte, yte = trained
    x, y = Xte[:100], yte[:100]
    adv = fgsm(model, nk.CrossEntropyLoss(), x, y, eps)
    t_adv, t_grad = torch_fgsm(torch_twin(model), x, y, eps)
    np.testing.assert_allclose(input_gradient(model, nk.CrossEntropyLoss(), x, y), t_grad, rtol=1e-10, atol=1e-15)
    assert np.all(np.abs(t_grad) > 1e-12)  # no sign is decided by rounding
    np.testing.assert_allclose(adv, t_adv, rtol=0, atol=1e-15)
    adv_free = fgsm(model, nk.CrossEntropyLoss(), x, y, eps, clip=None)
    t_adv_free, _ = torch_fgsm(torch_twin(model), x, y, eps, clip=None)
    np.testing.assert_allclose(adv_free, t_adv_free, rtol=0, atol=1e-15)


def test_fgsm_is_x_plus_eps_sign_gradient(trained):
    model, Xte, yte = trained
    x, y = Xte[:20], yte[:20]
    g = input_gradient(model, nk.CrossEntropyLoss(), x, y)
    adv = fgsm(model, nk.CrossEntropyLoss(), x, y, 0.1, clip=None)
    np.testing.assert_array_equal(adv, x + 0.1 * np.sign(g))
    assert np.max(np.abs(adv - x)) == pytest.approx(0.1)
    clipped = fgsm(model, nk.CrossEntropyLoss(), x, y, 0.1)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    assert np.max(np.abs(clipped - x)) <= 0.1 + 1e-15  # an L∞ step of at most ε
    np.testing.assert_array_equal(fgsm(model, nk.CrossEntropyLoss(), x, y, 0.0), x)
    assert adv.dtype == x.dtype and adv.shape == x.shape


def test_fgsm_increases_the_loss(trained):
    model, Xte, yte = trained
    x, y = Xte, yte
    loss_fn = nk.CrossEntropyLoss()
    clean, _ = nk.train.evaluate(model, loss_fn, x, y)
    attacked, _ = nk.train.evaluate(model, loss_fn, fgsm(model, loss_fn, x, y, GOODFELLOW_EPSILON), y)
    assert attacked > clean


def test_fgsm_leaves_parameter_gradients_and_mode_untouched(trained):
    model, Xte, yte = trained
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.grad = rng.standard_normal(p.shape)
    before = [p.grad.copy() for p in model.parameters()]
    weights = model.state_dict()
    model.train()
    fgsm(model, nk.CrossEntropyLoss(), Xte[:30], yte[:30], 0.05)
    assert model.training and all(m.training for m in model.modules())
    for p, g in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.grad, g)
    assert all(np.array_equal(weights[k], v) for k, v in model.state_dict().items())
    model.eval()
    fgsm(model, nk.CrossEntropyLoss(), Xte[:30], yte[:30], 0.05)
    assert not model.training
    model.train()


def test_fgsm_uses_eval_mode(trained):
    """Dropout is off during the attack: two calls give the same result, equal to the eval-mode twin's."""
    model, Xte, yte = trained
    a = fgsm(model, nk.CrossEntropyLoss(), Xte[:50], yte[:50], 0.1)
    b = fgsm(model, nk.CrossEntropyLoss(), Xte[:50], yte[:50], 0.1)
    np.testing.assert_array_equal(a, b)


def test_accuracy_falls_as_epsilon_grows(trained):
    model, Xte, yte = trained
    loss_fn = nk.CrossEntropyLoss()
    eps = [0.0, GOODFELLOW_EPSILON, 0.03, 0.1, 0.2]
    accs = accuracy_under_attack(model, loss_fn, Xte, yte, eps, batch_size=100)
    assert accs[0] == nk.train.accuracy(model, Xte, yte) > 0.95
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[3] < accs[0] - 0.2 and accs[4] < 0.5, accs
    # the gradient's direction is what hurts: random ±ε noise of the same size barely matters
    noise = np.sign(np.random.default_rng(0).standard_normal(Xte.shape))
    noisy = nk.train.accuracy(model, np.clip(Xte + 0.1 * noise, 0, 1), yte)
    assert noisy > accs[3] + 0.2, (noisy, accs)


def test_fgsm_on_image_shaped_input_and_one_output_model():
    X, y = nk.data.load_digits(images=True)
    x, yy = X[:10], y[:10]
    model = nk.Sequential(nk.Flatten(), nk.Linear(64, 10, rng=0))
    adv = fgsm(model, nk.CrossEntropyLoss(), x, yy, 0.1)
    assert adv.shape == (10, 1, 8, 8)
    # a logistic unit on moons: BCEWithLogits targets, accuracy under attack thresholds logits at 0
    Xm, ym = nk.data.moons(200, noise=0.1, rng=0)
    yf = ym[:, None].astype(float)
    unit = nk.Sequential(nk.Linear(2, 16, rng=0), nk.Tanh(), nk.Linear(16, 1, rng=1))
    nk.train.fit(unit, nk.BCEWithLogitsLoss(), nk.optim.SGD(unit.parameters(), lr=0.5, momentum=0.9), (Xm, yf),
                 epochs=30, batch_size=20, rng=0, progress=False)
    clean, attacked = accuracy_under_attack(unit, nk.BCEWithLogitsLoss(), Xm, yf, [0.0, 0.3], clip=None)
    assert clean == nk.train.accuracy(unit, Xm, yf, threshold=0.0) > 0.85
    assert attacked < clean - 0.2


def test_fgsm_rejects_bad_arguments(trained):
    model, Xte, yte = trained
    with pytest.raises(ValueError, match="epsilon"):
        fgsm(model, nk.CrossEntropyLoss(), Xte[:5], yte[:5], -0.1)
    with pytest.raises(ValueError, match="clip"):
        fgsm(model, nk.CrossEntropyLoss(), Xte[:5], yte[:5], 0.1, clip=(1.0, 0.0))
    with pytest.raises(TypeError, match="float"):
        fgsm(model, nk.CrossEntropyLoss(), (Xte[:5] * 16).astype(int), yte[:5], 0.1)
    with pytest.raises(TypeError, match="Module"):
        fgsm(lambda x: x, nk.CrossEntropyLoss(), Xte[:5], yte[:5], 0.1)


@pytest.mark.gpu
def test_fgsm_agrees_with_pytorch_on_cuda(trained):
    """The attack in PyTorch on CUDA (float32, TF32 off) agrees with nnkit's float64 attack."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model, Xte, yte = trained
    eps = 0.1
    adv = fgsm(model, nk.CrossEntropyLoss(), Xte, yte, eps)
    grad64 = input_gradient(model, nk.CrossEntropyLoss(), Xte, yte)
    t_adv, t_grad = torch_fgsm(torch_twin(model, "cuda", torch.float32), Xte.astype(np.float32), yte, eps,
                               device="cuda", dtype=torch.float32)
    scale = np.abs(grad64).max()
    err = np.abs(t_grad - grad64).max() / scale
    print(f"CUDA float32 input gradient: max error {err:.2e} of max |∂ℒ/∂x| (tolerance 1e-5)")
    assert err < 1e-5
    clear = np.abs(grad64) > 1e-4 * scale  # where the sign is not decided by rounding
    np.testing.assert_allclose(t_adv[clear], adv[clear], rtol=0, atol=1e-6)
    acc_cuda = nk.train.accuracy(model, t_adv, yte)
    assert abs(acc_cuda - nk.train.accuracy(model, adv, yte)) <= 2 / len(yte)
