"""The numbers lectures 3, 6 and 7 compute, read out of their kernels after a headless run.

Each lecture is executed once (a module-scoped fixture) and its named globals are checked twice:
against the lecture notes' printed values, with the notes' printed precision, and against an
independent computation here (PyTorch in float64, or nnkit itself). Claims the lectures' prose
makes about their experiments (the convnet's accuracy, dropout's expectation, cross entropy
beating the squared error) are checked too, so that a change in the library that breaks a
lecture's story fails here.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from nbutils import assert_clean, notebook_values

pytestmark = pytest.mark.notebooks

# Several kernels share two cores: OpenBLAS's spinning threads then slow the small matrix
# products of these lectures down by an order of magnitude. One BLAS thread per kernel is faster.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

LECTURES = Path(__file__).resolve().parents[1] / "lectures"
L03 = LECTURES / "03_computational_graphs_and_autodiff.ipynb"
L06 = LECTURES / "06_training_deep_networks.ipynb"
L07 = LECTURES / "07_convolutional_networks.ipynb"

NAMES_03 = ["f_value", "f_grads", "l0_value", "l0_grad", "ad_sizes", "forward_ops", "reverse_ops", "ad_max_diff", "jacobian_check_error", "central_diff_best_h",
            "forward_diff_best_h", "mlp_grad_max_diff", "mlp_curve_max_diff", "mlp_train_acc"]
NAMES_06 = ["dropout_mc_mean", "dropout_mc_sem", "dropout_eval_out", "notes_mc_mean", "notes_mc_sem",
            "halved_weights_out", "same_network_gap", "W_next", "b_next", "a_hidden", "dropout_p",
            "relu_std_notes", "relu_std_he", "dnn_test_acc", "fgsm_acc", "noise_acc", "epsilons",
            "fgsm_acc_at_0007", "mse_val_acc", "ce_val_acc",
            # the newer experiments, whose numbers test_lecture_numbers_6.py recomputes
            "loss_endpoint", "loss_midpoint", "permutation_output_diff", "twin_spread", "twin_val_acc", "lambdas",
            "l2_val_losses", "l2_val_accs", "chosen_lambda", "chosen_test_acc", "sparsity_l1", "sparsity_l2",
            "acc_l1", "acc_l2", "clip_first_loss", "norms_plain", "losses_plain", "clip_plain_last",
            "clip_clipped_last", "losses_clipped", "single_accs", "bag_acc", "var_single", "var_bag5"]
NAMES_07 = ["convnet_test_acc", "notes_convnet_param_counts", "naive_fast_max_diff", "conv_backward_max_diff",
            "n_conv_params", "shifted_acc"]


def _run(path: Path, names: list[str]) -> dict:
    assert_clean(path)
    values, seconds = notebook_values(path, names, timeout=120)
    print(f"{path.name}: executed in {seconds:.1f} s")
    return values


@pytest.fixture(scope="module")
def lecture3():
    return _run(L03, NAMES_03)


@pytest.fixture(scope="module")
def lecture6():
    return _run(L06, NAMES_06)


@pytest.fixture(scope="module")
def lecture7():
    return _run(L07, NAMES_07)


# --- Lecture 3: computational graphs and automatic differentiation ----------------------------
def test_lecture3_f_xyz_matches_notes(lecture3):
    """The notes (after CS231n): f(x, y, z) = (x + y)z at (−2, 5, −4) is −12 with gradient (−4, −4, 3)."""
    assert lecture3["f_value"] == -12.0
    assert lecture3["f_grads"] == [-4.0, -4.0, 3.0]


def test_lecture3_f_xyz_matches_torch(lecture3):
    torch = pytest.importorskip("torch")
    x, y, z = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (-2.0, 5.0, -4.0))
    f = (x + y) * z
    f.backward()
    assert lecture3["f_value"] == f.item()
    assert lecture3["f_grads"] == [x.grad.item(), y.grad.item(), z.grad.item()]


def test_lecture3_class0_loss_matches_text(lecture3):
    """The worked example l0_x(w) = log(1 + exp(w·x)), x = (2, 1, 1.5), w = (1, 1, −1.5): the lecture's printed
    1.136871 and 0.679179·(2, 1, 1.5) = (1.358357, 0.679179, 1.018768)."""
    assert lecture3["l0_value"] == pytest.approx(1.136871, abs=5e-7)
    assert lecture3["l0_grad"] == pytest.approx([1.358357, 0.679179, 1.018768], abs=5e-7)


def test_lecture3_class0_loss_matches_torch(lecture3):
    torch = pytest.importorskip("torch")
    w = torch.tensor([1.0, 1.0, -1.5], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([2.0, 1.0, 1.5], dtype=torch.float64)
    loss = -torch.nn.functional.logsigmoid(-(w @ x))          # −log(1 − σ(s)) = −log σ(−s)
    loss.backward()
    assert lecture3["l0_value"] == pytest.approx(loss.item(), rel=1e-12)
    assert lecture3["l0_grad"] == pytest.approx(w.grad.tolist(), rel=1e-12)


def test_lecture3_forward_vs_reverse_mode_cost(lecture3):
    """Forward mode needs n sweeps (cost ∝ n²); reverse mode one sweep each way (cost ∝ n); same gradient."""
    n = np.array(lecture3["ad_sizes"])
    fwd, rev = np.array(lecture3["forward_ops"]), np.array(lecture3["reverse_ops"])
    assert lecture3["ad_max_diff"] < 1e-12
    # one sweep of log(1 + exp(w·x)) with n weights: n multiplications, n − 1 additions, exp, +1, log
    assert fwd.tolist() == (n * (2 * n + 2)).tolist()
    assert np.all(np.diff(rev) > 0) and rev[-1] / rev[-2] < 2.1      # linear growth
    assert fwd[-1] / rev[-1] > 30                                     # n = 128: forward mode far dearer


def test_lecture3_gradients_agree(lecture3):
    """The Jacobian check, and the Value MLP against nnkit's layers, agree to rounding error."""
    assert lecture3["jacobian_check_error"] < 1e-12
    assert lecture3["mlp_grad_max_diff"] < 1e-12
    assert lecture3["mlp_curve_max_diff"] < 1e-12
    assert lecture3["mlp_train_acc"] >= 0.95


def test_lecture3_finite_difference_steps(lecture3):
    """The lecture's plot claims the best steps lie near √ε ≈ 1e-8 (forward) and ε^(1/3) ≈ 1e-5 (central)."""
    assert 1e-10 <= lecture3["forward_diff_best_h"] <= 1e-6
    assert 1e-7 <= lecture3["central_diff_best_h"] <= 1e-3


# --- Lecture 6: training deep networks -------------------------------------------------------
def test_lecture6_dropout_expectation(lecture6):
    """Inverted dropout averages to the eval-mode output; the notes' mask-and-halve recipe likewise."""
    v = {k: np.asarray(val) for k, val in lecture6.items()}
    assert np.all(np.abs(v["dropout_mc_mean"] - v["dropout_eval_out"]) < 5 * v["dropout_mc_sem"])
    assert np.all(np.abs(v["notes_mc_mean"] - v["halved_weights_out"]) < 5 * v["notes_mc_sem"])
    assert lecture6["same_network_gap"] < 1e-12


def test_lecture6_dropout_numbers_match_torch(lecture6):
    """The lecture's test-time outputs, recomputed with PyTorch from the weights the lecture used."""
    torch = pytest.importorskip("torch")
    W, b, a = (torch.tensor(lecture6[k], dtype=torch.float64) for k in ("W_next", "b_next", "a_hidden"))
    p = lecture6["dropout_p"]
    assert lecture6["dropout_eval_out"] == pytest.approx(torch.nn.functional.linear(a, W, b).tolist(), rel=1e-12)
    assert lecture6["halved_weights_out"] == pytest.approx(
        torch.nn.functional.linear(a, (1 - p) * W, b).tolist(), rel=1e-12)
    # PyTorch's own inverted dropout averages to the same test-time output
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    keep = (torch.rand((n, a.numel()), generator=gen, dtype=torch.float64) >= p).to(torch.float64)
    z = torch.nn.functional.linear(a * keep / (1 - p), W, b)
    sem = z.std(dim=0) / n ** 0.5
    assert torch.all((z.mean(dim=0) - torch.nn.functional.linear(a, W, b)).abs() < 5 * sem)


def test_lecture6_initialisation_claims(lecture6):
    """He keeps a deep ReLU net's activations at one scale; the notes' U[−1/√n, 1/√n] shrinks them ≈ √6 per layer."""
    he, notes = np.array(lecture6["relu_std_he"]), np.array(lecture6["relu_std_notes"])
    assert 0.5 < he[-1] / he[0] < 2.0
    ratios = notes[1:] / notes[:-1]
    assert np.all(np.abs(ratios - 1 / np.sqrt(6)) < 0.1)


def test_lecture6_training_claims(lecture6):
    """The typical DNN learns the digits; FGSM breaks it where random signs do not; cross entropy beats MSE."""
    assert lecture6["dnn_test_acc"] >= 0.93
    eps, fgsm, noise = lecture6["epsilons"], lecture6["fgsm_acc"], lecture6["noise_acc"]
    assert fgsm[0] == pytest.approx(lecture6["dnn_test_acc"])
    assert lecture6["fgsm_acc_at_0007"] >= fgsm[0] - 0.05          # the notes' ε barely matters on 8×8 digits
    assert fgsm[eps.index(0.2)] < 0.3                                # a large ε destroys the classifier
    assert noise[eps.index(0.2)] > fgsm[eps.index(0.2)] + 0.5        # random signs of the same size do not
    assert lecture6["ce_val_acc"][9] > lecture6["mse_val_acc"][9] + 0.3


def test_lecture6_prose_quotes_what_its_code_computes(lecture6):
    """The sentences test_lecture_numbers_6.py checks against its own recomputation, filled in from the kernel:
    the lecture's code produces the numbers its prose quotes."""
    from test_lecture_numbers_6 import lecture_prose, stated

    v = dict(lecture6)
    v.update(clip_first_norm=v["norms_plain"][0], clip_plain_steps=len(v["losses_plain"]),
             clip_clipped_steps=len(v["losses_clipped"]), single_acc_mean=float(np.mean(v["single_accs"])),
             single_acc_std=float(np.std(v["single_accs"])))
    prose = lecture_prose()
    missing = [s for s in stated(v) if s not in prose]
    assert not missing, "lecture 6's code computes, but its prose does not say:\n" + "\n".join(missing)


# --- Lecture 7: convolutional networks -------------------------------------------------------
def test_lecture7_convnet_accuracy(lecture7):
    """The lecture states that its small convnet reaches at least 93 % test accuracy on the digits."""
    assert lecture7["convnet_test_acc"] >= 0.93
    assert lecture7["n_conv_params"] < 2500


def test_lecture7_notes_convnet_parameter_counts_match_torch(lecture7):
    """The notes' Torch convnet, counted layer by layer in the lecture, has PyTorch's parameter counts."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    twin = nn.Sequential(
        nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(16, 128, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(128 * 5 * 5, 200), nn.ReLU(),
        nn.Linear(200, 10), nn.LogSoftmax(dim=-1),
    )
    expected = [sum(p.numel() for p in m.parameters()) for m in twin]
    assert lecture7["notes_convnet_param_counts"] == expected


def test_lecture7_naive_fast_and_torch_agree(lecture7):
    assert lecture7["naive_fast_max_diff"] < 1e-10
    assert lecture7["conv_backward_max_diff"] < 1e-12


def test_lecture7_convnet_more_robust_to_shifts(lecture7):
    """The lecture's claim: on digits shifted by one pixel the convnet beats the MLP."""
    shifted = lecture7["shifted_acc"]
    assert shifted["convnet"] > shifted["MLP 64-128-10"]
