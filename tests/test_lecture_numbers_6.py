"""The numbers lecture 6 states in its text about its newer experiments, recomputed here.

Non-convexity and the permutation symmetry of hidden units, the symmetric start, choosing λ on
the validation set (and the one look at the test set), L1 against L2, gradient clipping on the
exploding 8-layer network, and bagging. Each experiment is rerun here with the lecture's seeds:
the training itself uses nnkit (the same calls, so the same random streams), and everything that
is measured afterwards — outputs, losses, accuracies, shares of zeros, variances — is computed
again in plain numpy from the trained weights. The clipping experiment is run in numpy alone
(forward, backward, clipping and SGD), from nnkit's initial weights.

``STATED`` lists the sentences of the lecture's markdown that carry a number, as templates; each
is filled in with the recomputed value at the lecture's precision and must appear in the lecture
word for word. So a change in the library or in the lecture's code that changes a number the
prose quotes fails here, and so does prose that quotes a number the code does not produce.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

import nnkit as nk

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

L06 = Path(__file__).resolve().parents[1] / "lectures" / "06_training_deep_networks.ipynb"


# --- numpy twins of what the lecture measures --------------------------------------------------
def _linears(model):
    return [(m.weight.data.copy(), m.bias.data.copy()) for m in model if isinstance(m, nk.Linear)]


def _logits(params, X):
    a = X
    for i, (W, b) in enumerate(params):
        a = a @ W.T + b
        if i < len(params) - 1:
            a = np.maximum(a, 0.0)
    return a


def _cross_entropy(z, y):
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _accuracy(params, X, y):
    return float(np.mean(_logits(params, X).argmax(axis=1) == y))


def _mlp(hidden, seed):
    # the lecture's make_mlp: Linear layers drawn from one generator, ReLU between them
    rng = np.random.default_rng(seed)
    layers, n_in = [], 64
    for n_out in hidden:
        layers += [nk.Linear(n_in, n_out, rng=rng), nk.ReLU()]
        n_in = n_out
    return nk.Sequential(*layers, nk.Linear(n_in, 10, rng=rng))


@pytest.fixture(scope="module")
def digits():
    X, y = nk.data.load_digits()
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = nk.data.train_val_test_split(X, y, rng=0)
    return dict(X_tr=X_tr, y_tr=y_tr, X_va=X_va, y_va=y_va, X_te=X_te, y_te=y_te,
                X_small=X_tr[:200], y_small=y_tr[:200])


# --- the experiments ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def symmetry(digits):
    d = digits
    net = nk.Sequential(nk.Linear(64, 32, rng=0), nk.ReLU(), nk.Linear(32, 10, rng=1))
    nk.train.fit(net, nk.CrossEntropyLoss(), nk.optim.SGD(net.parameters(), lr=0.05, momentum=0.9),
                 train=(d["X_tr"], d["y_tr"]), epochs=15, batch_size=32, rng=0, progress=False)
    (W1, b1), (W2, b2) = _linears(net)
    perm = np.random.default_rng(0).permutation(32)
    theta, theta_perm = [(W1, b1), (W2, b2)], [(W1[perm], b1[perm]), (W2[:, perm], b2)]

    def loss_at(t):
        mixed = [((1 - t) * Wa + t * Wb, (1 - t) * ba + t * bb) for (Wa, ba), (Wb, bb) in zip(theta, theta_perm)]
        return _cross_entropy(_logits(mixed, d["X_tr"]), d["y_tr"])

    return dict(output_diff=float(np.max(np.abs(_logits(theta, d["X_va"]) - _logits(theta_perm, d["X_va"])))),
                loss_start=loss_at(0.0), loss_end=loss_at(1.0), loss_mid=loss_at(0.5))


@pytest.fixture(scope="module")
def twin(digits):
    d = digits
    net = nk.Sequential(nk.Linear(64, 16), nk.Tanh(), nk.Linear(16, 10))
    for p in net.parameters():
        p.data[...] = 0.05
    nk.train.fit(net, nk.CrossEntropyLoss(), nk.optim.SGD(net.parameters(), lr=0.1),
                 train=(d["X_tr"], d["y_tr"]), epochs=5, batch_size=32, rng=0, progress=False)
    (W1, b1), (W2, b2) = _linears(net)
    logits = np.tanh(d["X_va"] @ W1.T + b1) @ W2.T + b2
    return dict(spread=float(np.max(np.abs(W1 - W1[0]))),
                val_acc=float(np.mean(logits.argmax(axis=1) == d["y_va"])),
                distinct_predictions=len(np.unique(logits.argmax(axis=1))))


LAMBDAS = [0.0, 1e-3, 3e-3, 1e-2, 3e-2]


@pytest.fixture(scope="module")
def l2_runs(digits):
    d = digits
    runs = {}
    for lam in LAMBDAS:
        model = _mlp((256, 256), seed=0)
        opt = nk.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=lam)
        nk.train.fit(model, nk.CrossEntropyLoss(), opt, train=(d["X_small"], d["y_small"]), val=(d["X_va"], d["y_va"]),
                     epochs=60, batch_size=32, rng=0, progress=False)
        params = _linears(model)
        runs[lam] = dict(val_loss=_cross_entropy(_logits(params, d["X_va"]), d["y_va"]),
                         train_loss=_cross_entropy(_logits(params, d["X_small"]), d["y_small"]),
                         val_acc=_accuracy(params, d["X_va"], d["y_va"]),
                         test_acc=_accuracy(params, d["X_te"], d["y_te"]),
                         n_weights=sum(W.size for W, _ in params))
    return runs


@pytest.fixture(scope="module")
def l1_l2(digits):
    d = digits
    lr, lam1 = 0.05, 2e-3
    l1 = _mlp((64,), seed=0)
    opt, loss_fn = nk.optim.SGD(l1.parameters(), lr=lr), nk.CrossEntropyLoss()
    loader = nk.data.DataLoader(d["X_small"], d["y_small"], batch_size=32, shuffle=True, rng=0)
    for _ in range(60):
        for xb, yb in loader:
            loss_fn(l1(xb), yb)
            l1.backward(loss_fn.backward())
            opt.step()
            opt.zero_grad()
            for p in l1.parameters():
                if p.data.ndim > 1:
                    p.data[...] = np.sign(p.data) * np.maximum(np.abs(p.data) - lr * lam1, 0.0)
    l2 = _mlp((64,), seed=0)
    nk.train.fit(l2, nk.CrossEntropyLoss(), nk.optim.SGD(l2.parameters(), lr=0.05, weight_decay=1e-2),
                 train=(d["X_small"], d["y_small"]), epochs=60, batch_size=32, rng=0, progress=False)
    p1, p2 = _linears(l1), _linears(l2)
    return dict(zeros_l1=float(np.mean(p1[0][0] == 0)), zeros_l2=float(np.mean(p2[0][0] == 0)),
                acc_l1=_accuracy(p1, d["X_va"], d["y_va"]), acc_l2=_accuracy(p2, d["X_va"], d["y_va"]))


@pytest.fixture(scope="module")
def clipping(digits):
    """The exploding network, trained in numpy: 8 ReLU layers of 64 with weights 6× nnkit's default."""
    X, y = digits["X_small"], digits["y_small"]
    rng = np.random.default_rng(0)
    params = []
    for _ in range(8):
        lin = nk.Linear(64, 64, rng=rng)
        params.append([6.0 * lin.weight.data, lin.bias.data.copy()])
    lin = nk.Linear(64, 10, rng=rng)
    params.append([lin.weight.data.copy(), lin.bias.data.copy()])
    onehot = np.eye(10)[y]

    def run(max_norm, steps=100, lr=0.01):
        P = [[W.copy(), b.copy()] for W, b in params]
        losses, norms = [], []
        for _ in range(steps):
            acts, a = [X], X
            for i, (W, b) in enumerate(P):
                a = a @ W.T + b
                if i < len(P) - 1:
                    a = np.maximum(a, 0.0)
                acts.append(a)
            loss = _cross_entropy(a, y)
            losses.append(loss)
            if not np.isfinite(loss) or loss > 1e6:
                break
            delta = (_softmax(a) - onehot) / len(y)
            grads = []
            for i in range(len(P) - 1, -1, -1):
                W, _ = P[i]
                grads.append((delta.T @ acts[i], delta.sum(axis=0)))
                if i > 0:
                    delta = (delta @ W) * (acts[i] > 0)
            grads.reverse()
            norm = math.sqrt(sum((gW ** 2).sum() + (gb ** 2).sum() for gW, gb in grads))
            norms.append(norm)
            scale = max_norm / norm if max_norm is not None and norm > max_norm else 1.0
            for (W, b), (gW, gb) in zip(P, grads):
                W -= lr * scale * gW
                b -= lr * scale * gb
        return np.array(losses), np.array(norms)

    losses_plain, norms_plain = run(None)
    losses_clipped, _ = run(1.0)
    return dict(first_loss=losses_plain[0], first_norm=norms_plain[0], plain_last=losses_plain[-1],
                plain_steps=len(losses_plain), clipped_last=losses_clipped[-1], clipped_steps=len(losses_clipped),
                clipped_losses=losses_clipped)


@pytest.fixture(scope="module")
def bagging(digits):
    d = digits
    rng = np.random.default_rng(0)
    probs = []
    for k in range(10):
        idx = rng.integers(0, 200, size=200)
        member = _mlp((32,), seed=k)
        nk.train.fit(member, nk.CrossEntropyLoss(), nk.optim.SGD(member.parameters(), lr=0.05, momentum=0.9),
                     train=(d["X_small"][idx], d["y_small"][idx]), epochs=30, batch_size=32, rng=k, progress=False)
        probs.append(_softmax(_logits(_linears(member), d["X_va"])))
    probs, y_va = np.array(probs), d["y_va"]
    p_true = probs[:, np.arange(len(y_va)), y_va]
    single = [float(np.mean(p.argmax(axis=1) == y_va)) for p in probs]
    return dict(single_mean=float(np.mean(single)), single_std=float(np.std(single)),
                bag_acc=float(np.mean(probs.mean(axis=0).argmax(axis=1) == y_va)),
                var_single=float(np.mean(p_true.var(axis=0, ddof=1))),
                var_bag5=float(np.mean((p_true[:5].mean(axis=0) - p_true[5:].mean(axis=0)) ** 2 / 2)))


@pytest.fixture(scope="module")
def recomputed(symmetry, twin, l2_runs, l1_l2, clipping, bagging):
    """The recomputed numbers under the names the lecture's code gives them."""
    return dict(
        permutation_output_diff=symmetry["output_diff"], loss_endpoint=symmetry["loss_start"],
        loss_midpoint=symmetry["loss_mid"], twin_spread=twin["spread"], twin_val_acc=twin["val_acc"],
        lambdas=LAMBDAS, l2_val_losses=[l2_runs[lam]["val_loss"] for lam in LAMBDAS],
        l2_val_accs=[l2_runs[lam]["val_acc"] for lam in LAMBDAS],
        chosen_lambda=min(LAMBDAS, key=lambda lam: l2_runs[lam]["val_loss"]),
        chosen_test_acc=l2_runs[min(LAMBDAS, key=lambda lam: l2_runs[lam]["val_loss"])]["test_acc"],
        sparsity_l1=l1_l2["zeros_l1"], sparsity_l2=l1_l2["zeros_l2"], acc_l1=l1_l2["acc_l1"], acc_l2=l1_l2["acc_l2"],
        clip_first_loss=clipping["first_loss"], clip_first_norm=clipping["first_norm"],
        clip_plain_last=clipping["plain_last"], clip_plain_steps=clipping["plain_steps"],
        clip_clipped_last=clipping["clipped_last"], clip_clipped_steps=clipping["clipped_steps"],
        single_acc_mean=bagging["single_mean"], single_acc_std=bagging["single_std"], bag_acc=bagging["bag_acc"],
        var_single=bagging["var_single"], var_bag5=bagging["var_bag5"],
    )


# --- what the prose says ----------------------------------------------------------------------
_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _times_ten(x: float) -> str:
    """1.29e+14 written as the lecture writes it: 1.29·10¹⁴."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}·10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def stated(v: dict) -> list[str]:
    """The lecture's sentences that quote a number, filled in from the values ``v`` (named as in the lecture)."""
    val_acc = dict(zip(v["lambdas"], v["l2_val_accs"]))
    val_loss = dict(zip(v["lambdas"], v["l2_val_losses"]))
    chosen = v["chosen_lambda"]
    return [
        # non-convexity: the straight path between θ and its permuted copy
        f"halfway between them the training loss is {v['loss_midpoint']:.4f}, "
        f"{_WORDS[round(v['loss_midpoint'] / v['loss_endpoint'])]} times the {v['loss_endpoint']:.4f} at either end",
        # the symmetric start
        f"the largest difference is {v['twin_spread']:g}, not merely small",
        f"validation accuracy {v['twin_val_acc']:.3f}, chance for ten classes",
        # L2 for several λ, and the choice of λ on the validation set
        f"({val_acc[0.0]:.3f}, {val_acc[1e-3]:.3f} and {val_acc[3e-3]:.3f} for λ = 0, 10⁻³ and 3·10⁻³: "
        f"{_WORDS[round(270 * (max(val_acc[l] for l in (0.0, 1e-3, 3e-3)) - min(val_acc[l] for l in (0.0, 1e-3, 3e-3))))]}"
        f" examples of 270 apart; {val_acc[1e-2]:.3f} and {val_acc[3e-2]:.3f} once λ is too large)",
        f"The final validation loss is lowest at λ = 10⁻³ ({val_loss[chosen]:.3f}, against {val_loss[0.0]:.3f} "
        f"without regularisation and {val_loss[3e-2]:.3f} at λ = 0.03)",
        f"Its test accuracy, {v['chosen_test_acc']:.3f}, is the number we would report",
        f"a little below the same model's validation accuracy ({val_acc[chosen]:.3f})",
        # L1 against L2
        f"L1 sets {v['sparsity_l1']:.1%} of the first-layer weights exactly to zero, L2 none of them ({v['sparsity_l2']:.1%})",
        f"({v['acc_l1']:.3f} with L1, {v['acc_l2']:.3f} with L2)",
        # gradient clipping
        f"At the start the loss is {v['clip_first_loss']:.0f} and the gradient's norm {v['clip_first_norm']:.0f}",
        f"after {v['clip_plain_steps']} steps the loss is {_times_ten(v['clip_plain_last'])} and the run is stopped",
        f"the loss comes down, from {v['clip_first_loss']:.0f} to {v['clip_clipped_last']:.1f} in {v['clip_clipped_steps']} steps",
        f"the loss is still {_WORDS[round(v['clip_clipped_last'] / math.log(10))]} times that of guessing",
        # bagging
        f"a validation accuracy of {v['single_acc_mean']:.3f} ± {v['single_acc_std']:.3f} (mean and spread over the ten), "
        f"the bag of ten {v['bag_acc']:.3f}",
        f"a variance of {v['var_single']:.4f} (averaged over the validation digits); for the average of five models "
        f"it is {v['var_bag5']:.4f}, {v['var_single'] / v['var_bag5']:.1f} times smaller",
    ]


def lecture_prose() -> str:
    nb = nbformat.read(L06, as_version=4)
    text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return re.sub(r"\s+", " ", text)


def test_prose_quotes_the_recomputed_numbers(recomputed):
    prose = lecture_prose()
    missing = [s for s in stated(recomputed) if s not in prose]
    assert not missing, "lecture 6 does not say (recomputed here):\n" + "\n".join(missing)


# --- the claims around the numbers -------------------------------------------------------------
def test_permuted_network_is_the_same_function_and_the_loss_is_not_convex(symmetry):
    assert symmetry["output_diff"] < 1e-13                                  # "less than 10⁻¹³: rounding"
    assert symmetry["loss_end"] == pytest.approx(symmetry["loss_start"], rel=1e-12)
    # convex along the segment would mean loss(½) ≤ ½(loss(0) + loss(1))
    assert symmetry["loss_mid"] > 5 * symmetry["loss_start"]
    # "with 32! orderings of the hidden units, every minimum comes in more than 10^35 equivalent copies"
    assert 1e35 < math.factorial(32) < 1e36
    assert "$32!$ orderings" in lecture_prose() and "$10^{35}$ equivalent copies" in lecture_prose()


def test_symmetric_start_stays_symmetric(twin, digits):
    assert twin["spread"] == 0.0
    assert twin["distinct_predictions"] == 1                               # "the same class to every digit"
    assert len(digits["y_va"]) == 270


def test_l2_weights_count_and_choice_on_validation(l2_runs, recomputed):
    assert l2_runs[0.0]["n_weights"] == 64 * 256 + 256 * 256 + 256 * 10
    assert f"({l2_runs[0.0]['n_weights']:,} weights)".replace(",", " ") in lecture_prose()
    assert recomputed["chosen_lambda"] == 1e-3
    # the winner's test accuracy is below its validation accuracy, as the prose says
    assert recomputed["chosen_test_acc"] < l2_runs[1e-3]["val_acc"]
    # "too large a λ … even the training loss stays high"
    train = [l2_runs[lam]["train_loss"] for lam in LAMBDAS]
    assert train == sorted(train) and train[-1] > 100 * train[0]


def test_l1_makes_weights_zero_and_l2_does_not(l1_l2):
    assert l1_l2["zeros_l1"] > 0.1
    assert l1_l2["zeros_l2"] == 0.0
    assert abs(l1_l2["acc_l1"] - l1_l2["acc_l2"]) < 0.03                    # "the validation accuracies are close"


def test_clipping_tames_the_exploding_network(clipping):
    assert clipping["plain_last"] > 1e6 and clipping["plain_steps"] < 10     # blows up within a few steps
    assert clipping["clipped_steps"] == 100 and np.isfinite(clipping["clipped_last"])
    losses = clipping["clipped_losses"]
    assert losses[-1] < losses[0] / 30
    # "comes down": over every stretch of ten steps the loss is lower at the end
    assert np.all(losses[10::10] < losses[:-10:10])


def test_bagging_reduces_the_variance(bagging):
    assert bagging["bag_acc"] > bagging["single_mean"] + 2 * bagging["single_std"]
    ratio = bagging["var_single"] / bagging["var_bag5"]
    assert 1 < ratio < 5                               # less than the 5 of independent models: correlated errors
