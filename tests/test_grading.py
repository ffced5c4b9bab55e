"""nk.grading: each known bug is named on a crafted wrong function, right answers pass, hidden
messages show no expected values, nothing reaches stderr. (No kernel: the checks run here.)"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnkit as nk
from nnkit.grading import core as C
from nnkit.grading import mlp as G

SLOW_OK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def fails(fn, *args, **kwargs) -> str:
    """The one-line AssertionError message of a failing check."""
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, "feedback is one line"
    return msg


# --- core: arrays ----------------------------------------------------------------------------------
def test_check_array_passes_a_right_answer_and_returns_it(rng):
    x = rng.normal(size=(3, 4))
    out = C.check_array(C.Feedback("q"), "x", x + 1e-12, x)
    assert out.shape == (3, 4)


@SLOW_OK
@given(st.lists(st.integers(1, 5), min_size=1, max_size=3), st.integers(0, 10_000))
def test_wrong_shape_names_both_shapes(shape, seed):
    rng = np.random.default_rng(seed)
    expected = rng.normal(size=shape)
    got = rng.normal(size=tuple(shape) + (2,))
    msg = fails(C.check_array, C.Feedback("q", hidden=True), "dW", got, expected)
    assert C.WRONG_SHAPE in msg and str(tuple(shape)) in msg and str(got.shape) in msg
    assert msg.startswith("[q] hidden check failed")


@SLOW_OK
@given(st.integers(2, 5), st.integers(2, 5), st.integers(0, 10_000))
def test_relations_between_arrays_are_recognised(rows, cols, seed):
    rng = np.random.default_rng(seed)
    expected = rng.normal(size=(rows, cols))
    fb = C.Feedback("q")
    assert C.SIGN_FLIP in fails(C.check_array, fb, "x", -expected, expected)
    assert C.BATCH_FACTOR in fails(C.check_array, fb, "x", expected * 7, expected, batch_size=7)
    assert C.BATCH_FACTOR in fails(C.check_array, fb, "x", expected / 7, expected, batch_size=7)
    if rows != cols:
        assert C.TRANSPOSED in fails(C.check_array, fb, "x", expected.T, expected)
    else:
        assert C.TRANSPOSED in fails(C.check_array, fb, "x", expected.T, expected) or np.allclose(expected, expected.T)


def test_nan_is_reported_where_it_is_and_called_unstable_only_on_evidence():
    msg = fails(C.check_array, C.Feedback("q"), "p", np.array([0.5, np.nan]), np.array([0.5, 1.0]))
    assert C.NON_FINITE in msg and "index 1" in msg and C.UNSTABLE not in msg and "Likely bug" not in msg
    z = np.array([-1000.0, 0.0, 1000.0])
    expected = 1 / (1 + np.exp(-np.clip(z, -500, 500)))
    unstable = expected.copy()
    unstable[2] = np.nan
    msg = fails(C.check_array, C.Feedback("q"), "p", unstable, expected, inputs=z)
    assert f"Likely bug: {C.UNSTABLE}" in msg and "index 2" in msg
    unstable[1] = 0.7  # wrong at a moderate input too: no evidence that only large inputs break it
    msg = fails(C.check_array, C.Feedback("q"), "p", unstable, expected, inputs=z)
    assert C.NON_FINITE in msg and C.UNSTABLE not in msg


def test_a_wrong_shape_says_which_axis_is_missing_or_extra():
    msg = fails(C.check_array, C.Feedback("q"), "x", np.ones(4), np.ones((1, 4)))
    assert "axis 0 of length 1 is missing" in msg and "Likely bug" not in msg
    msg = fails(C.check_array, C.Feedback("q"), "x", np.ones((5, 3)), np.full(3, 5.0))
    assert "extra axis 0 of length 5" in msg and "summed over that axis it would be right" in msg
    msg = fails(C.check_array, C.Feedback("q"), "x", np.arange(6.0).reshape(3, 2), np.arange(6.0).reshape(2, 3))
    assert "arranged in shape (3, 2)" in msg and "Likely bug" not in msg


def test_patterns_of_the_difference_are_observations():
    expected = np.arange(1.0, 13.0).reshape(3, 4)
    visible = fails(C.check_array, C.Feedback("q"), "x", 0.3 * expected, expected)
    hidden = fails(C.check_array, C.Feedback("q", hidden=True), "x", 0.3 * expected, expected)
    assert "same factor 0.3" in visible and "same factor" in hidden and "0.3" not in hidden
    assert "Likely bug" not in visible
    got = expected.copy()
    got[0] += 1
    assert "only row 0 is wrong" in fails(C.check_array, C.Feedback("q"), "x", got, expected)
    got = expected.copy()
    got[:, 2] *= -1
    assert "all in column 2" in fails(C.check_array, C.Feedback("q"), "x", got, expected)


def test_none_and_non_arrays_are_reported_as_such():
    assert "returned None" in fails(C.check_array, C.Feedback("q"), "f(x)", None, np.zeros(2))
    assert "returned a str" in fails(C.check_array, C.Feedback("q"), "f(x)", "abc", np.zeros(2))


@SLOW_OK
@given(st.integers(0, 10_000), st.sampled_from([(4,), (3, 2), (2, 3, 2)]))
def test_hidden_messages_never_show_expected_values(seed, shape):
    rng = np.random.default_rng(seed)
    expected = rng.normal(size=shape)
    got = expected + rng.normal(scale=0.5, size=shape)
    hidden = fails(C.check_array, C.Feedback("q", hidden=True), "x", got, expected)
    visible = fails(C.check_array, C.Feedback("q"), "x", got, expected)
    for v in expected.ravel():
        for fmt in (f"{v:.6g}", f"{v:.4f}", repr(float(v))):
            assert fmt not in hidden
    assert "first wrong entry" in visible and "first wrong entry" not in hidden


def test_probes_come_before_relations_and_a_failing_probe_is_no_diagnosis():
    fb = C.Feedback("q")
    probes = [C.Probe("broken probe", lambda: 1 / 0), C.Probe("the real bug", lambda: True, "look here")]
    msg = fails(C.check_array, fb, "x", -np.ones(3), np.ones(3), probes=probes)
    assert "Likely bug: the real bug — look here" in msg and "broken probe" not in msg


# --- core: calling student code ------------------------------------------------------------------------
def test_call_reports_the_stub_as_not_implemented():
    def stub(x):
        raise NotImplementedError()

    msg = fails(C.call, C.Feedback("sigmoid"), stub, np.zeros(2), name="sigmoid(z)")
    assert msg.startswith("[sigmoid]") and "not implemented yet" in msg


def test_call_turns_an_exception_into_a_message_with_shapes_and_asks_the_probes():
    def bad(W):
        return np.ones((2, 3)) @ W

    msg = fails(C.call, C.Feedback("q"), bad, np.ones((2, 3)), name="f(W)",
                probes=[C.Probe(C.TRANSPOSED_W, lambda: True, "W is (out, in)")])
    assert "raised ValueError" in msg and "(2, 3)" in msg and C.TRANSPOSED_W in msg


def test_call_works_on_copies_and_is_silent(capfd):
    def noisy(x):
        x[:] = 0
        import warnings

        warnings.warn("student warning")
        return np.exp(np.array([1000.0])) + x.sum()

    x = np.ones(3)
    C.call(C.Feedback("q"), noisy, x, may_modify=True)  # a question that asks for an in-place update
    assert np.all(x == 1)
    captured = capfd.readouterr()
    assert captured.err == ""


def test_call_fails_an_answer_that_modifies_an_argument_and_names_it():
    def scales_z(delta_next, W_next, Z):
        Z *= 2.0
        return Z

    Z = np.ones((2, 3))
    msg = fails(C.call, C.Feedback("q", hidden=True), scales_z, np.ones((2, 2)), np.ones((2, 3)), Z,
                name="delta_hidden(delta_next, W_next, Z)")
    assert C.MODIFIES_INPUT in msg and "argument 3 `Z`" in msg and np.all(Z == 1)
    # without names in the label: the position alone; keyword arguments by their name
    msg = fails(C.call, C.Feedback("q"), lambda a, b: b.fill(0), np.ones(2), np.ones(2))
    assert "argument 2" in msg and "returned None" in msg
    msg = fails(C.call, C.Feedback("q"), lambda a, *, out: out.fill(0), np.ones(2), out=np.ones(2))
    assert "argument `out`" in msg


def test_call_sees_changes_inside_lists_and_dicts_and_allows_what_the_question_asks():
    def step(params, grads, lr):
        for p, g in zip(params, grads):
            p -= lr * g
        return [p.copy() for p in params]

    params, grads = [np.ones(3), np.ones(2)], [np.ones(3), np.ones(2)]
    msg = fails(C.call, C.Feedback("q"), step, params, grads, 0.1, name="gradient_step(params, grads, lr)")
    assert "argument 1 `params`" in msg and np.all(params[0] == 1)
    msg = fails(C.call, C.Feedback("q"), lambda d: d["w"].fill(0) or 1.0, {"w": np.ones(2)})
    assert C.MODIFIES_INPUT in msg
    # the question's in-place update is allowed, by position or by name; other arguments are still watched
    assert C.call(C.Feedback("q"), step, params, grads, 0.1, may_modify=[0])[0][0] == pytest.approx(0.9)
    assert C.call(C.Feedback("q"), step, params, grads, 0.1, name="gradient_step(params, grads, lr)",
                  may_modify=["params"])[0][0] == pytest.approx(0.9)
    msg = fails(C.call, C.Feedback("q"), lambda a, b: b.fill(0), np.ones(2), np.ones(2), may_modify=[0])
    assert "argument 2" in msg
    # nan stays nan: not a change; copy_inputs=False compares with a copy taken before the call
    assert C.call(C.Feedback("q"), lambda a: 1.0, np.array([np.nan, 1.0])) == 1.0
    x = np.ones(2)
    assert "argument 1" in fails(C.call, C.Feedback("q"), lambda a: a.fill(3), x, copy_inputs=False)


def test_relative_error_has_one_definition():
    import nnkit as nk

    assert C.relative_error is nk.gradcheck.relative_error
    assert nk.grading.relative_error is nk.gradcheck.relative_error


def test_reference_bindings_swap_and_restore_globals():
    namespace = {"np": np}
    exec("def helper(z):\n    return z + 1\n\ndef f(z):\n    return helper(z)\n", namespace)
    f = namespace["f"]
    with C.reference_bindings(f, helper=lambda z: z * 10, missing_name=1):
        assert f(2) == 20 and namespace["missing_name"] == 1
    assert f(2) == 3 and "missing_name" not in namespace


# --- core: layers, gradients, PyTorch ----------------------------------------------------------------------
def test_check_layers_names_the_first_wrong_layer_from_the_top(rng):
    expected = [rng.normal(size=(4, d)) for d in (5, 4, 2)]
    got = [e.copy() for e in expected]
    got[1] = got[1] * 3
    got[0] = got[0] * 2  # wrong below too, but δ² is where the recursion broke
    msg = fails(C.check_layers, C.Feedback("backward"), "δ", got, expected)
    assert "δ² is wrong; δ³ was right" in msg
    got = [e.copy() for e in expected]
    got[2] = -got[2]
    msg = fails(C.check_layers, C.Feedback("backward"), "δ", got, expected)
    assert "δ³ is wrong; it is the output layer's" in msg and C.SIGN_FLIP in msg


def test_numerical_gradient_matches_the_analytic_gradient(rng):
    A = rng.normal(size=(3, 4))
    x = rng.normal(size=4)
    x0 = x.copy()
    num = C.numerical_gradient(lambda v: float(np.sum(np.tanh(A @ v))), x)
    exact = A.T @ (1 - np.tanh(A @ x) ** 2)
    assert C.relative_error(num, exact) < 1e-8
    assert np.array_equal(x, x0)


def test_check_against_torch_passes_a_right_answer_and_states_device_and_tolerance(rng):
    z = rng.normal(size=(3, 4))
    devices = C.check_against_torch(C.Feedback("q"), "sigmoid", nk.functional.sigmoid, lambda t: t.sigmoid(), [z])
    assert devices[0] == "cpu"
    msg = fails(C.check_against_torch, C.Feedback("q", hidden=True), "sigmoid", lambda z: nk.functional.sigmoid(z) + 1e-6,
                lambda t: t.sigmoid(), [z])
    assert "PyTorch on cpu (float64)" in msg and "rtol=1e-07" in msg


def test_torch_comparisons_can_be_switched_off(monkeypatch, rng):
    monkeypatch.setenv("NNKIT_GRADING_TORCH", "0")
    assert C.check_against_torch(C.Feedback("q"), "f", lambda z: z + 1, lambda t: t, [rng.normal(size=2)]) == []


@pytest.mark.gpu
def test_check_against_torch_on_cuda_in_float32_with_tf32_off(rng):
    import torch

    assert "cuda" in C.available_devices()
    X, W = rng.normal(size=(64, 512)), rng.normal(size=(32, 512))
    torch.backends.cuda.matmul.allow_tf32 = True  # a user's setting: switched off for the check, then restored
    try:
        devices = C.check_against_torch(C.Feedback("q"), "X @ W.T", lambda X, W: X @ W.T, lambda X, W: X @ W.T, [X, W])
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False
    assert devices[0] == "cpu" and any(d.startswith("cuda") for d in devices)


@pytest.mark.gpu
def test_cuda_comparison_catches_what_float32_tolerance_allows_not(rng):
    """A bug only visible on CUDA's float32 path: the student's code breaks for float32 inputs."""
    def student(z):
        if z.dtype == np.float32:
            return nk.functional.sigmoid(z.astype(np.float64)) + 1e-2
        return nk.functional.sigmoid(z)

    msg = fails(C.check_against_torch, C.Feedback("q"), "sigmoid", student, lambda t: t.sigmoid(), [rng.normal(size=8)])
    assert "PyTorch on cuda" in msg and "float32, TF32 off" in msg


# --- the checks of problem sets 1 and 3 on crafted wrong functions -----------------------------------------
def _sigmoid(z):
    return nk.functional.sigmoid(np.asarray(z, dtype=float))


def _sp(z):
    s = _sigmoid(z)
    return s * (1 - s)


def _mse_grad(Y_hat, Y):
    return 2.0 * (Y_hat - Y) / Y_hat.shape[0]


def _forward(X, W1, b1, W2, b2, *, transpose=False, out_act=False, no_hidden_act=False, no_bias=False):
    T = (lambda W: W) if transpose else (lambda W: W.T)
    Z1 = X @ T(W1) + (0 if no_bias else b1)
    A1 = Z1 if no_hidden_act else _sigmoid(Z1)
    Y = A1 @ T(W2) + (0 if no_bias else b2)
    return Z1, A1, (_sigmoid(Y) if out_act else Y)


def _backward(X, Y, Ws, bs, *, no_fprime=False, transpose=False, acts_above=False):
    Zs, As = G.ref_mlp_forward(X, Ws, bs)
    L = len(Ws)
    deltas = [None] * L
    deltas[-1] = _mse_grad(As[-1], Y) * _sp(Zs[-1])
    for l in range(L - 2, -1, -1):
        W = Ws[l + 1].T if transpose else Ws[l + 1]
        deltas[l] = deltas[l + 1] @ W * (1 if no_fprime else _sp(Zs[l]))
    acts = As[1:] if acts_above else As[:-1]
    return deltas, [d.T @ a for d, a in zip(deltas, acts)], [d.sum(0) for d in deltas]


def _numgrad(f, x, eps=1e-6, *, one_sided=False, restore=True, divisor=2.0):
    grad = np.zeros_like(x)
    f0 = f(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f(x)
        x[i] = old - eps
        fm = f(x)
        if restore:
            x[i] = old
        grad[i] = (fp - f0) / eps if one_sided else (fp - fm) / (divisor * eps)
    return grad


CASES = {
    "sigmoid": (G.check_sigmoid, _sigmoid, [
        (lambda z: 1 / (1 + np.exp(np.asarray(z, float))), C.SIGN_FLIP),
        (lambda z: np.exp(z) / (1 + np.exp(z)), C.UNSTABLE),
        (lambda z: np.tanh(z), C.WRONG_VALUES),
    ]),
    "sigmoid_prime": (G.check_sigmoid_prime, _sp, [
        (lambda z: _sigmoid(z), G.MISSING_ONE_MINUS),
        (lambda z: z * (1 - z), G.Z_FOR_SIGMA),
        (lambda z: -_sp(z), C.SIGN_FLIP),
    ]),
    "forward": (G.check_forward, _forward, [
        (lambda *a: _forward(*a, transpose=True), C.TRANSPOSED_W),
        (lambda *a: _forward(*a, out_act=True), G.OUTPUT_ACTIVATION),
        (lambda *a: _forward(*a, no_hidden_act=True), G.MISSING_HIDDEN_ACTIVATION),
        (lambda *a: _forward(*a, no_bias=True), G.MISSING_BIAS),
    ]),
    "mse_grad": (G.check_mse_grad, _mse_grad, [
        (lambda Yh, Y: -_mse_grad(Yh, Y), C.SIGN_FLIP),
        (lambda Yh, Y: 2 * (Yh - Y), C.BATCH_FACTOR),
        (lambda Yh, Y: 2 * (Yh - Y) / Yh.size, G.MEAN_OVER_OUTPUTS),
        (lambda Yh, Y: (Yh - Y) / len(Yh), "factor of 2"),
    ]),
    "output_layer_grads": (G.check_output_layer_grads, lambda A1, Yh, Y: (_mse_grad(Yh, Y).T @ A1, _mse_grad(Yh, Y).sum(0)), [
        (lambda A1, Yh, Y: (A1.T @ _mse_grad(Yh, Y), _mse_grad(Yh, Y).sum(0)), C.TRANSPOSED),
        (lambda A1, Yh, Y: (2 * (Yh - Y).T @ A1, 2 * (Yh - Y).sum(0)), C.BATCH_FACTOR),
        (lambda A1, Yh, Y: (_mse_grad(Yh, Y).T @ A1, _mse_grad(Yh, Y)), G.DB_NOT_SUMMED),
        (lambda A1, Yh, Y: (-_mse_grad(Yh, Y).T @ A1, -_mse_grad(Yh, Y).sum(0)), C.SIGN_FLIP),
    ]),
    "gradient_step": (G.check_gradient_step, lambda ps, gs, lr: [p - lr * g for p, g in zip(ps, gs)], [
        (lambda ps, gs, lr: [p + lr * g for p, g in zip(ps, gs)], C.SIGN_FLIP),
        (lambda ps, gs, lr: [p - g for p, g in zip(ps, gs)], G.LR_NOT_APPLIED),
        (lambda ps, gs, lr: None, "returned None"),
    ]),
    "delta_output": (G.check_delta_output, lambda A, Z, Y: _mse_grad(A, Y) * _sp(Z), [
        (lambda A, Z, Y: _mse_grad(A, Y), C.MISSING_FPRIME),
        (lambda A, Z, Y: 2 * (A - Y) * _sp(Z), C.BATCH_FACTOR),
        (lambda A, Z, Y: -_mse_grad(A, Y) * _sp(Z), C.SIGN_FLIP),
    ]),
    "delta_hidden": (G.check_delta_hidden, lambda d, W, Z: (d @ W) * _sp(Z), [
        (lambda d, W, Z: (d @ W.T) * _sp(Z), C.TRANSPOSED_W),
        (lambda d, W, Z: d @ W, C.MISSING_FPRIME),
        (lambda d, W, Z: (d @ W) * _sigmoid(Z), G.SIGMA_FOR_FPRIME),
        (lambda d, W, Z: -(d @ W) * _sp(Z), C.SIGN_FLIP),
    ]),
    "param_grads": (G.check_param_grads, lambda d, A: (d.T @ A, d.sum(0)), [
        (lambda d, A: (A.T @ d, d.sum(0)), C.TRANSPOSED),
        (lambda d, A: (d.T @ A / len(d), d.mean(0)), C.BATCH_FACTOR),
        (lambda d, A: (d.T @ A, d), G.DB_NOT_SUMMED),
    ]),
    "backward": (G.check_backward, _backward, [
        (lambda *a: _backward(*a, no_fprime=True), C.MISSING_FPRIME),
        (lambda *a: _backward(*a, no_fprime=True), "δ² is wrong; δ³ was right"),
        (lambda *a: _backward(*a, transpose=True), C.TRANSPOSED_W),
        (lambda *a: _backward(*a, acts_above=True), G.WRONG_ACTIVATIONS),
    ]),
    "numerical_gradient": (G.check_numerical_gradient, _numgrad, [
        (lambda f, x, eps=1e-6: _numgrad(f, x, eps, one_sided=True), G.ONE_SIDED),
        (lambda f, x, eps=1e-6: _numgrad(f, x, eps, restore=False), G.INPUT_NOT_RESTORED),
        (lambda f, x, eps=1e-6: _numgrad(f, x, eps, divisor=1.0), "factor of 2"),
    ]),
}


def _train_impl(X, Y, Ws, bs, lr, epochs, batch_size, rng, backward, *, sign=-1, shuffle=True, one_batch=False):
    Ws, bs, losses = [W.copy() for W in Ws], [b.copy() for b in bs], []
    N = X.shape[0]
    for _ in range(epochs):
        order = rng.permutation(N) if shuffle else np.arange(N)
        for start in range(0, batch_size if one_batch else N, batch_size):
            idx = order[start:start + batch_size]
            _, dWs, dbs = backward(X[idx], Y[idx], Ws, bs)
            Ws = [W + sign * lr * dW for W, dW in zip(Ws, dWs)]
            bs = [b + sign * lr * db for b, db in zip(bs, dbs)]
        losses.append(G.mse_loss(G.ref_mlp_forward(X, Ws, bs)[1][-1], Y))
    return Ws, bs, losses


def _train_function(**kwargs):
    """A `train` defined as in a notebook: it looks `backward` up in its own globals."""
    namespace = {"_impl": _train_impl, "kwargs": kwargs, "backward": None}
    exec("def train(X, Y, Ws, bs, lr, epochs, batch_size, rng):\n"
         "    return _impl(X, Y, Ws, bs, lr, epochs, batch_size, rng, backward, **kwargs)\n", namespace)
    return namespace["train"]


@pytest.mark.parametrize("qid", sorted(CASES))
def test_a_right_answer_passes_visible_and_hidden_checks(qid, capfd):
    check, right, _ = CASES[qid]
    check(right)
    check(right, hidden=True)
    out = capfd.readouterr()
    assert f"[{qid}] visible checks passed" in out.out and "all tests passed" not in out.out.lower()
    assert out.err == ""


@pytest.mark.parametrize("qid,k", [(q, k) for q in sorted(CASES) for k in range(len(CASES[q][2]))])
def test_each_known_bug_is_named(qid, k, capfd):
    check, _, bugs = CASES[qid]
    wrong, phrase = bugs[k]
    msg_visible = None
    try:
        check(wrong)
    except AssertionError as err:
        msg_visible = str(err)
    msg_hidden = fails(check, wrong, hidden=True)
    assert msg_hidden.startswith(f"[{qid}] hidden check failed")
    named = [m for m in (msg_visible, msg_hidden) if m and phrase in m]
    assert named, f"no message names {phrase!r}: {msg_visible!r} / {msg_hidden!r}"
    assert capfd.readouterr().err == ""


def _max_significant_digits(text: str) -> int:
    """The most significant digits of any decimal number in ``text`` (values print with 6, sizes with 2)."""
    digits = [len(m.replace(".", "").replace("-", "").lstrip("0")) for m in re.findall(r"-?\d+\.\d+", text)]
    return max(digits, default=0)


@pytest.mark.parametrize("qid", ["forward", "mse_grad", "delta_hidden", "backward", "output_layer_grads"])
def test_hidden_messages_of_the_problem_sets_show_no_values(qid):
    """Hidden messages give shapes and error sizes (2 significant digits), never the values."""
    check, _, bugs = CASES[qid]
    for wrong, _phrase in bugs:
        msg = fails(check, wrong, hidden=True)
        assert "first wrong entry" not in msg
        assert _max_significant_digits(msg) <= 2, msg


@pytest.mark.parametrize("kwargs,phrase", [
    ({}, None),
    ({"sign": +1}, C.SIGN_FLIP),
    ({"shuffle": False}, G.NOT_SHUFFLED),
    ({"one_batch": True}, G.NOT_EVERY_BATCH),
])
def test_train_check_grades_the_loop_with_the_reference_backward(kwargs, phrase):
    train = _train_function(**kwargs)
    if phrase is None:
        G.check_train(train)
    else:
        assert phrase in fails(G.check_train, train)


def test_train_check_does_not_depend_on_the_students_backward():
    train = _train_function()
    train.__globals__["backward"] = lambda *a: (_ for _ in ()).throw(RuntimeError("student's broken backward"))
    G.check_train(train)  # the reference backward is bound while the loop runs
    assert train.__globals__["backward"] is not None  # and the student's is put back afterwards


def test_checks_isolate_questions_from_earlier_wrong_answers():
    """forward uses the notebook's sigmoid; a wrong sigmoid must not cost the forward question."""
    namespace = {"np": np}
    exec("def sigmoid(z):\n    return z\n\n"
         "def forward(X, W1, b1, W2, b2):\n    Z1 = X @ W1.T + b1\n    A1 = sigmoid(Z1)\n"
         "    return Z1, A1, A1 @ W2.T + b2\n", namespace)
    G.check_forward(namespace["forward"], hidden=True)
    assert namespace["sigmoid"](3) == 3
