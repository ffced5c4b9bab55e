"""nnkit.train: the fit loop (against a hand-written loop and PyTorch), early stopping, metrics."""
from __future__ import annotations

import numpy as np
import pytest

import nnkit as nk
from nnkit.train import History, classification_accuracy, is_class_target


@pytest.fixture(scope="module")
def digits_split():
    X, y = nk.data.load_digits()
    return nk.data.train_val_test_split(X, y, rng=0)


def digits_mlp(seed: int, hidden: int = 64) -> nk.Sequential:
    return nk.Sequential(nk.Linear(64, hidden, rng=seed), nk.ReLU(), nk.Linear(hidden, 10, rng=seed + 1000))


def weights_equal(a: nk.Module, b: nk.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------- the digits MLP
def test_digits_mlp_reaches_95_percent_test_accuracy():
    """A 64-64-10 ReLU MLP trained by ``fit`` classifies held-out digits correctly ≥ 95 % of the time.

    Three different splits, each model seeded: every one of these reproducible runs reaches 95 %
    (the first split's test set is the hardest, about 96 %; the others about 98 %).
    """
    X, y = nk.data.load_digits()
    accs = []
    for seed in (0, 1, 2):
        (Xtr, ytr), (Xva, yva), (Xte, yte) = nk.data.train_val_test_split(X, y, rng=seed)
        model = digits_mlp(seed)
        opt = nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        h = nk.train.fit(model, nk.CrossEntropyLoss(), opt, train=(Xtr, ytr), val=(Xva, yva), epochs=40,
                         batch_size=32, rng=seed, patience=8, progress=False)
        acc = nk.train.accuracy(model, Xte, yte)
        assert h.val_acc[h.best_epoch] > 0.95, h.summary()
        accs.append(acc)
    assert min(accs) >= 0.95, accs


def test_same_seed_gives_identical_run(digits_split):
    (Xtr, ytr), (Xva, yva), _ = digits_split

    def run(model_seed, fit_seed):
        model = digits_mlp(model_seed, hidden=32)
        opt = nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        h = nk.train.fit(model, nk.CrossEntropyLoss(), opt, (Xtr, ytr), (Xva, yva), epochs=4, batch_size=32,
                         rng=fit_seed, progress=False)
        return h, model

    h1, m1 = run(3, 7)
    h2, m2 = run(3, 7)
    assert h1 == h2  # every per-epoch number identical, not just close
    assert weights_equal(m1, m2)
    h3, m3 = run(3, 8)  # another shuffling seed: another run
    assert h3.train_loss != h1.train_loss and not weights_equal(m1, m3)
    nk.manual_seed(5)  # rng=None follows nk.manual_seed
    h4, _ = run(3, None)
    nk.manual_seed(5)
    h5, _ = run(3, None)
    assert h4 == h5


def test_fit_is_exactly_the_lecture_loop(digits_split):
    """One step = train mode, forward, loss, zero_grad, backward, optimizer step; batches from DataLoader."""
    (Xtr, ytr), _, _ = digits_split
    X, y = Xtr[:200], ytr[:200]
    m1, m2 = digits_mlp(0, 16), digits_mlp(0, 16)
    loss_fn = nk.CrossEntropyLoss()
    h = nk.train.fit(m1, loss_fn, nk.optim.SGD(m1.parameters(), lr=0.05, momentum=0.9), (X, y),
                     epochs=3, batch_size=16, rng=11, progress=False)
    opt = nk.optim.SGD(m2.parameters(), lr=0.05, momentum=0.9)
    loader = nk.data.DataLoader(X, y, batch_size=16, shuffle=True, rng=11)
    epoch_losses = []
    for _ in range(3):
        losses, sizes = [], []
        for xb, yb in loader:
            m2.train()
            loss = loss_fn.forward(m2.forward(xb), yb)
            m2.zero_grad()
            m2.backward(loss_fn.backward())
            opt.step()
            losses.append(loss)
            sizes.append(len(xb))
        epoch_losses.append(np.average(losses, weights=sizes))
    assert weights_equal(m1, m2)
    np.testing.assert_allclose(h.train_loss, epoch_losses, rtol=1e-12)
    assert h.val_loss == [] and h.best_epoch is None and h.stopped_epoch is None


# ---------------------------------------------------------------- the notes' Torch example
def test_seed_torch_example_shapes_and_training():
    """Kanade's lecture 8: Linear(3,4), Sigmoid, Linear(4,2), Sigmoid, MSELoss on 500 random inputs.

    The notes print each module's tensors after one forward/backward: weight 4×3, gradWeight 4×3,
    bias 4, gradBias 4, output 500×4; Sigmoid output and gradInput 500×4; then 2×4, 2, 500×2.
    (Torch7 printed a stale buffer as Linear's gradInput; the gradient with respect to a
    layer's input has the input's shape, 500×3 for the first layer.)
    """
    rng = np.random.default_rng(0)
    model = nk.Sequential(nk.Linear(3, 4, rng=rng), nk.Sigmoid(), nk.Linear(4, 2, rng=rng), nk.Sigmoid())
    criterion = nk.MSELoss()
    inputs = rng.standard_normal((500, 3))
    targets = rng.standard_normal((500, 2))
    outputs, a = [], inputs
    for layer in model:
        a = layer.forward(a)
        outputs.append(a.shape)
    criterion.forward(a, targets)
    grad_inputs, g = [], criterion.backward()
    for layer in reversed(list(model)):
        g = layer.backward(g)
        grad_inputs.append(g.shape)
    grad_inputs.reverse()
    lin1, sig1, lin2, sig2 = model
    assert (lin1.weight.shape, lin1.weight.grad.shape, lin1.bias.shape, lin1.bias.grad.shape) == ((4, 3), (4, 3), (4,), (4,))
    assert (lin2.weight.shape, lin2.weight.grad.shape, lin2.bias.shape, lin2.bias.grad.shape) == ((2, 4), (2, 4), (2,), (2,))
    assert outputs == [(500, 4), (500, 4), (500, 2), (500, 2)]
    assert grad_inputs == [(500, 3), (500, 4), (500, 4), (500, 2)]
    # the δ's each layer received: δ² (500×2) into the last Linear, δ¹ (500×4) into the first
    assert lin2.delta.shape == (500, 2) and lin1.delta.shape == (500, 4)

    # and it trains: the loss goes down
    before, _ = nk.train.evaluate(model, criterion, inputs, targets)
    h = nk.train.fit(model, criterion, nk.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), (inputs, targets),
                     epochs=30, batch_size=50, rng=0, progress=False)
    after, acc = nk.train.evaluate(model, criterion, inputs, targets)
    assert after < before - 0.05 and h.train_loss[-1] < h.train_loss[0]
    assert acc is None and h.train_acc == [] and h.metric is None  # regression targets: no accuracy


def test_fit_matches_pytorch_training_loop():
    """Full-batch SGD with momentum on the notes' model: nnkit's fit and a PyTorch loop, float64."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    model = nk.Sequential(nk.Linear(3, 4, rng=rng), nk.Sigmoid(), nk.Linear(4, 2, rng=rng), nk.Sigmoid())
    X, Y = rng.standard_normal((500, 3)), rng.uniform(0, 1, (500, 2))
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 2), torch.nn.Sigmoid()).double()
    with torch.no_grad():
        for i in (0, 2):
            tmodel[i].weight.copy_(torch.from_numpy(model[i].weight.data))
            tmodel[i].bias.copy_(torch.from_numpy(model[i].bias.data))
    h = nk.train.fit(model, nk.MSELoss(), nk.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), (X, Y),
                     epochs=25, batch_size=500, shuffle=False, progress=False)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.5, momentum=0.9)
    tx, ty = torch.from_numpy(X), torch.from_numpy(Y)
    tlosses = []
    for _ in range(25):
        loss = torch.nn.functional.mse_loss(tmodel(tx), ty)
        topt.zero_grad()
        loss.backward()
        topt.step()
        tlosses.append(loss.item())
    np.testing.assert_allclose(h.train_loss, tlosses, rtol=1e-10)
    for i in (0, 2):
        np.testing.assert_allclose(model[i].weight.data, tmodel[i].weight.detach().numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_weights(digits_split):
    """Overfitting on 40 examples: validation loss falls, then rises; the best weights come back."""
    (Xtr, ytr), (Xva, yva), _ = digits_split
    model = digits_mlp(0)
    snapshots = []
    h = nk.train.fit(model, nk.CrossEntropyLoss(), nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                     (Xtr[:40], ytr[:40]), (Xva, yva), epochs=80, batch_size=10, rng=0, patience=5,
                     progress=False, callback=lambda e, hist, m: snapshots.append(m.state_dict()))
    assert h.best_epoch == int(np.argmin(h.val_loss))
    assert 0 < h.best_epoch < h.stopped_epoch < 79  # improved for a while, then stopped early
    assert h.stopped_epoch == h.best_epoch + 5 and h.epochs == h.stopped_epoch + 1 == len(snapshots)
    assert all(v >= h.val_loss[h.best_epoch] for v in h.val_loss[h.best_epoch:])
    assert h.restored_best
    best = snapshots[h.best_epoch]
    assert all(np.array_equal(best[k], v) for k, v in model.state_dict().items())
    assert not all(np.array_equal(snapshots[-1][k], v) for k, v in model.state_dict().items())
    loss, _ = nk.train.evaluate(model, nk.CrossEntropyLoss(), Xva, yva)
    assert loss == pytest.approx(h.val_loss[h.best_epoch], rel=1e-12)
    assert "early stopping after epoch" in h.summary() and "best (restored)" in h.summary()


def test_rising_validation_loss_stops_after_patience(digits_split):
    """Validation labels shifted by one: the better the model fits, the worse the validation loss."""
    (Xtr, ytr), _, _ = digits_split
    Xv, yv = Xtr[:300], (ytr[:300] + 1) % 10
    kwargs = dict(epochs=20, batch_size=32, rng=0, patience=3, progress=False)
    m1, m2, m0 = digits_mlp(1), digits_mlp(1), digits_mlp(1)
    h1 = nk.train.fit(m1, nk.CrossEntropyLoss(), nk.optim.SGD(m1.parameters(), lr=0.1), (Xtr, ytr), (Xv, yv), **kwargs)
    assert h1.stopped_epoch == h1.best_epoch + 3 and h1.restored_best
    h2 = nk.train.fit(m2, nk.CrossEntropyLoss(), nk.optim.SGD(m2.parameters(), lr=0.1), (Xtr, ytr), (Xv, yv),
                      restore_best=False, **kwargs)
    assert h2 == History(**{**h1.__dict__, "restored_best": False})  # same run, weights not reset
    assert not weights_equal(m1, m2)
    # the restored model is the one after the best epoch: one more epoch from the start reproduces it
    h0 = nk.train.fit(m0, nk.CrossEntropyLoss(), nk.optim.SGD(m0.parameters(), lr=0.1), (Xtr, ytr), (Xv, yv),
                      **{**kwargs, "epochs": h1.best_epoch + 1, "patience": None})
    assert weights_equal(m0, m1) and h0.val_loss == h1.val_loss[: h1.best_epoch + 1]


def test_without_patience_all_epochs_run_and_weights_stay(digits_split):
    (Xtr, ytr), _, _ = digits_split
    Xv, yv = Xtr[:300], (ytr[:300] + 1) % 10
    model = digits_mlp(1)
    h = nk.train.fit(model, nk.CrossEntropyLoss(), nk.optim.SGD(model.parameters(), lr=0.1), (Xtr, ytr), (Xv, yv),
                     epochs=6, rng=0, progress=False)
    assert h.epochs == 6 and h.stopped_epoch is None and not h.restored_best
    assert h.best_epoch == int(np.argmin(h.val_loss))


# ---------------------------------------------------------------- progress bar and modes
def test_progress_false_prints_nothing(capfd, digits_split):
    (Xtr, ytr), (Xva, yva), _ = digits_split
    model = digits_mlp(0, 8)
    nk.train.fit(model, nk.CrossEntropyLoss(), nk.optim.SGD(model.parameters(), lr=0.1), (Xtr[:100], ytr[:100]),
                 (Xva, yva), epochs=2, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    nk.train.fit(model, nk.CrossEntropyLoss(), nk.optim.SGD(model.parameters(), lr=0.1), (Xtr[:100], ytr[:100]),
                 (Xva, yva), epochs=2, progress=True)
    out, err = capfd.readouterr()
    assert "fit" in err and "2/2" in err  # the bar is there when asked for


class ModeSpy(nk.Module):
    """Identity that records whether each forward ran in training mode."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x

    def backward(self, grad):
        return grad


def test_training_steps_in_train_mode_validation_in_eval_mode(digits_split):
    (Xtr, ytr), (Xva, yva), _ = digits_split
    spy = ModeSpy()
    model = nk.Sequential(nk.Linear(64, 10, rng=0), spy)
    model.eval()  # fit must switch to train mode for its steps, and restore eval mode at the end
    nk.train.fit(model, nk.CrossEntropyLoss(), nk.optim.SGD(model.parameters(), lr=0.1), (Xtr[:64], ytr[:64]),
                 (Xva[:50], yva[:50]), epochs=2, batch_size=32, eval_batch_size=256, progress=False)
    assert spy.modes == [True, True, False] * 2
    assert not model.training and not spy.training


def test_predict_evaluate_accuracy_use_eval_mode_and_restore_it(digits_split):
    (Xtr, ytr), _, _ = digits_split
    model = nk.Sequential(nk.Linear(64, 32, rng=0), nk.ReLU(), nk.Dropout(0.5, rng=0), nk.Linear(32, 10, rng=1))
    p1 = nk.train.predict(model, Xtr, batch_size=100)
    p2 = nk.train.predict(model, Xtr, batch_size=7)
    assert model.training  # restored
    np.testing.assert_allclose(p1, p2, rtol=1e-12, atol=1e-12)  # deterministic: dropout off
    model.eval()
    np.testing.assert_allclose(p1, model.forward(Xtr), rtol=1e-12, atol=1e-12)
    model.train()
    loss_fn = nk.CrossEntropyLoss()
    loss, acc = nk.train.evaluate(model, loss_fn, Xtr, ytr, batch_size=64)
    assert loss == pytest.approx(loss_fn.forward(p1, ytr), rel=1e-12)
    assert acc == pytest.approx(np.mean(np.argmax(p1, 1) == ytr))
    assert acc == nk.train.accuracy(model, Xtr, ytr)
    loss_sum, _ = nk.train.evaluate(model, nk.CrossEntropyLoss(reduction="sum"), Xtr, ytr, batch_size=64)
    assert loss_sum == pytest.approx(loss * len(Xtr), rel=1e-12)
    assert model.training


# ---------------------------------------------------------------- accuracy rules
def test_accuracy_rules():
    out = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert classification_accuracy(out, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert classification_accuracy(out, np.eye(2)[[1, 0, 0]]) == pytest.approx(2 / 3)  # one-hot targets
    probs = np.array([[0.2], [0.6], [0.51], [0.49]])
    assert classification_accuracy(probs, np.array([[0], [1], [0], [0]])) == 0.75  # threshold 0.5
    logits = np.array([-0.3, 0.2, 0.1, -2.0])
    assert classification_accuracy(logits, np.array([0, 1, 1, 1]), threshold=0.0) == 0.75
    assert classification_accuracy(logits, np.array([-1, 1, 1, -1])) == 1.0  # ±1 targets: by sign
    with pytest.raises(nk.ShapeError, match="class indices"):
        classification_accuracy(out, np.array([[1, 0, 0]]))
    assert is_class_target(np.array([0, 1, 2])) and is_class_target(np.array([[0.0], [1.0]]))
    assert is_class_target(np.eye(3)) and not is_class_target(np.array([0.5, 1.0]))
    assert not is_class_target(np.ones((3, 3)))


def test_one_output_logits_use_threshold_zero_in_fit_and_evaluate():
    X, y = nk.data.moons(200, noise=0.1, rng=0)
    yf = y[:, None].astype(float)
    model = nk.Sequential(nk.Linear(2, 16, rng=0), nk.Tanh(), nk.Linear(16, 1, rng=1))
    h = nk.train.fit(model, nk.BCEWithLogitsLoss(), nk.optim.SGD(model.parameters(), lr=0.5, momentum=0.9), (X, yf),
                     (X, yf), epochs=30, batch_size=20, rng=0, progress=False)
    logits = nk.train.predict(model, X)
    expected = np.mean((logits[:, 0] > 0) == y)
    assert h.val_acc[-1] == pytest.approx(expected) and expected > 0.85
    _, acc = nk.train.evaluate(model, nk.BCEWithLogitsLoss(), X, yf)
    assert acc == pytest.approx(expected)
    assert nk.train.accuracy(model, X, yf, threshold=0.0) == pytest.approx(expected)


def test_xor_needs_a_hidden_layer():
    X, y = nk.data.xor(200, noise=0.1, rng=0)
    hidden = nk.Sequential(nk.Linear(2, 8, rng=0), nk.Tanh(), nk.Linear(8, 2, rng=1))
    linear = nk.Sequential(nk.Linear(2, 2, rng=0))
    for m in (hidden, linear):
        nk.train.fit(m, nk.CrossEntropyLoss(), nk.optim.SGD(m.parameters(), lr=0.3, momentum=0.9), (X, y),
                     epochs=40, batch_size=20, rng=0, progress=False)
    assert nk.train.accuracy(hidden, X, y) > 0.97
    assert nk.train.accuracy(linear, X, y) < 0.8  # no line separates XOR


# ---------------------------------------------------------------- errors
def test_fit_errors_are_clear(digits_split):
    (Xtr, ytr), _, _ = digits_split
    model = digits_mlp(0, 8)
    opt = nk.optim.SGD(model.parameters(), lr=0.1)
    ce = nk.CrossEntropyLoss()
    with pytest.raises(ValueError, match="val="):
        nk.train.fit(model, ce, opt, (Xtr, ytr), patience=3, progress=False)
    with pytest.raises(ValueError, match="reduction='none'"):
        nk.train.fit(model, nk.CrossEntropyLoss(reduction="none"), opt, (Xtr, ytr), progress=False)
    with pytest.raises(nk.ShapeError, match="same number of examples"):
        nk.train.fit(model, ce, opt, (Xtr, ytr[:-1]), progress=False)
    with pytest.raises(TypeError, match="pair"):
        nk.train.fit(model, ce, opt, Xtr, progress=False)
    with pytest.raises(ValueError, match="metric"):
        nk.train.fit(model, ce, opt, (Xtr, ytr), metric="f1", progress=False)
    with pytest.raises(TypeError, match="step"):
        nk.train.fit(model, ce, None, (Xtr, ytr), progress=False)
    with pytest.raises(ValueError, match="not class labels"):
        nk.train.accuracy(model, Xtr, np.linspace(0, 1, len(Xtr)))


def test_divergence_raises_floating_point_error():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((64, 3)) * 10, rng.standard_normal((64, 1))
    model = nk.Sequential(nk.Linear(3, 8, rng=0), nk.Linear(8, 1, rng=1))
    with pytest.raises(FloatingPointError, match="learning rate"):
        with np.errstate(over="ignore", invalid="ignore"):
            nk.train.fit(model, nk.MSELoss(), nk.optim.SGD(model.parameters(), lr=10.0), (X, Y), epochs=50,
                         progress=False)
