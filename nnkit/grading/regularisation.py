"""Checks for problem set 5, *regularisation and robustness*.

==================== ====================================================== ==========================
question (grade_id)  what the student writes                                reference
==================== ====================================================== ==========================
``sgd_momentum``      ``sgd_momentum_step(theta, grad, v, lr, momentum)``    ``nk.optim.SGD``, torch.optim.SGD
``l2_penalty``        ``l2_penalty(model, lam)``: λ/2 Σ‖W‖², adds λW to      ``nk.optim.SGD(weight_decay=λ)``,
                      each weight's gradient, spares the biases              torch.autograd
``dropout``           ``Dropout(p)``: forward and backward, p = drop prob.   ``nk.Dropout``, torch dropout
``early_stopping``    ``EarlyStopping(patience)``: ``step(val_loss)``        ``nk.train.fit(patience=...)``
``fgsm``              ``fgsm(model, loss_fn, x, y, epsilon)``                ``nk.attacks.fgsm``, torch
==================== ====================================================== ==========================

Dropout is random, so its check is statistical (fixed seeds, tolerances far wider than the
sampling noise) plus exact where randomness plays no part: the backward pass must multiply by
the very mask the forward pass drew.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .core import (
    DROPOUT_MASK_NOT_REUSED,
    DROPOUT_NOT_RESCALED,
    SIGN_FLIP,
    WRONG_SHAPE,
    WRONG_TYPE,
    WRONG_VALUES,
    Feedback,
    Probe,
    as_array,
    available_devices,
    call,
    check_against_torch,
    check_array,
    check_uses_generator,
    close,
    quiet,
    seeded,
    torch_enabled,
    try_call,
)
from .remote import class_names, type_name

#: what an answer may call from nnkit (see nnkit.course.delegation): the model and the loss a
#: question hands over, and nn.Module as the base of Dropout — never the shipped optimiser,
#: dropout layer or attack
MAY_USE = {
    "check_l2_penalty": ("nnkit.module",),
    "check_dropout": ("nnkit.module", "nnkit._random"),
    "check_fgsm": ("nnkit.module", "nnkit.layers", "nnkit.conv", "nnkit.losses"),
}

__all__ = [
    "check_sgd_momentum", "check_l2_penalty", "check_dropout", "check_early_stopping", "check_fgsm",
    "MOMENTUM_SIGN", "NO_MOMENTUM", "DECAYS_BIASES", "REPLACES_GRADIENT", "P_AS_KEEP", "EVAL_NOT_IDENTITY",
    "OFF_BY_ONE", "LAST_NOT_BEST", "FGSM_NOT_SIGN", "NOT_CLIPPED", "TRAINING_MODE", "AVERAGED_VELOCITY",
    "OLD_VELOCITY", "NO_LR", "NO_LAMBDA", "FACTOR_OF_2", "SHRINKS_WEIGHTS", "GRAD_NOT_ADDED", "SHARED_MASK",
    "TIE_IMPROVES", "BEST_EPOCH_WRONG", "NO_EPSILON", "NO_RESET", "CS231N_VELOCITY", "LR_IN_VELOCITY",
    "STALE_MASK", "MIN_DELTA", "STOPS_ONCE",
]

MOMENTUM_SIGN = "momentum sign"
NO_MOMENTUM = "momentum not used"
DECAYS_BIASES = "decaying biases"
REPLACES_GRADIENT = "replaces the gradient instead of adding to it"
P_AS_KEEP = "p used as the keep probability"
EVAL_NOT_IDENTITY = "not the identity in eval mode"
OFF_BY_ONE = "off by one"
LAST_NOT_BEST = "compared with the last loss, not the best"
NO_RESET = "counter never reset"
FGSM_NOT_SIGN = "the gradient instead of its sign"
NOT_CLIPPED = "not clipped"
TRAINING_MODE = "gradient taken in training mode"
AVERAGED_VELOCITY = "velocity as an average: (1 − μ)·g"
OLD_VELOCITY = "θ moved with the old velocity"
NO_LR = "learning rate not applied"
NO_LAMBDA = "λ not applied"
FACTOR_OF_2 = "factor of 2"
SHRINKS_WEIGHTS = "changes the weights instead of their gradients"
GRAD_NOT_ADDED = "gradient not added to .grad"
SHARED_MASK = "one mask shared by every example"
TIE_IMPROVES = "a tie counted as an improvement"
BEST_EPOCH_WRONG = "best_epoch set at every epoch, not at the best"
NO_EPSILON = "ε not applied"
CS231N_VELOCITY = "velocity in the CS231n form (v = μv − ηg)"
LR_IN_VELOCITY = "learning rate inside the velocity (v = μv + ηg)"
STALE_MASK = "the training pass's mask kept in eval mode"
MIN_DELTA = "an improvement required to beat the best by a margin"
STOPS_ONCE = "True only on the stopping epoch"


# --------------------------------------------------------------------------------------------
# SGD with momentum
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """One run of the momentum check: θ of length ``d``, the learning rate of each step, μ, and the
    seed of the quadratic f."""

    d: int
    lrs: tuple[float, ...]
    momentum: float
    seed: int

    @property
    def lr_changes(self) -> bool:
        return len(set(self.lrs)) > 1

    def schedule(self) -> str:
        """'lr = 0.1', or 'lr = 0.1 for steps 1–4, then 0.05 for steps 5–8'."""
        parts, start = [], 1
        for lr, group in itertools.groupby(self.lrs):
            n = len(list(group))
            steps = f"step {start}" if n == 1 else f"steps {start}–{start + n - 1}"
            parts.append(f"{lr:g}" if not self.lr_changes else f"{lr:g} for {steps}")
            start += n
        return "lr = " + ", then ".join(parts)


#: a constant learning rate, then one that is halved half-way (a step schedule)
_VISIBLE_RUNS = (_Run(4, (0.1,) * 8, 0.9, 51), _Run(4, (0.1,) * 4 + (0.05,) * 4, 0.9, 55))
_HIDDEN_RUNS = (_Run(6, (0.05,) * 25, 0.9, 52), _Run(3, (0.2,) * 10, 0.5, 53), _Run(5, (0.1,) * 5, 0.0, 54),
                _Run(5, tuple(0.2 * 0.8 ** k for k in range(10)), 0.8, 56))


@dataclass
class Trajectory:
    """θ and the velocity after each step of a run, one row per step."""

    theta: np.ndarray
    velocity: np.ndarray


def _quadratic(d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A, b, θ₀ of f(θ) = ½ θᵀAθ − bᵀθ (A symmetric positive definite): ∇f = Aθ − b."""
    rng = seeded(seed)
    Q = rng.normal(size=(d, d))
    A = Q @ Q.T / d + np.eye(d)
    return A, rng.normal(size=d), rng.normal(size=d)


def _trajectory(step: Callable, A, b, theta0, run: _Run) -> Trajectory:
    """θ, v = step(θ, ∇f(θ), v, lr, momentum) once per learning rate of the run, from v = 0."""
    theta, v = np.array(theta0, dtype=float), np.zeros_like(theta0, dtype=float)
    thetas, velocities = [], []
    for lr in run.lrs:
        grad = A @ theta - b
        result = step(theta.copy(), grad, v.copy(), lr, run.momentum)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TypeError(f"sgd_momentum_step must return the pair (theta, velocity), got {type(result).__name__}")
        theta, v = (np.asarray(r, dtype=float) for r in result)
        thetas.append(theta)
        velocities.append(v)
    return Trajectory(np.array(thetas), np.array(velocities))


def _nnkit_trajectory(A, b, theta0, run: _Run) -> Trajectory:
    """The same run with ``nk.optim.SGD`` (PyTorch's rule: v ← μv + g, θ ← θ − ηv); without momentum
    the optimiser keeps no velocity, and the rule's is v = g."""
    import nnkit as nk  # noqa: PLC0415

    p = nk.Parameter(np.array(theta0, dtype=float))
    opt = nk.optim.SGD([p], lr=run.lrs[0], momentum=run.momentum)
    thetas, velocities = [], []
    for lr in run.lrs:
        opt.zero_grad()
        p.grad += A @ p.data - b
        opt.lr = lr
        opt.step()
        thetas.append(p.data.copy())
        velocities.append((opt._velocity[0] if run.momentum else p.grad).copy())
    return Trajectory(np.array(thetas), np.array(velocities))


def _torch_trajectory(run: _Run, part: str):
    """``part`` ("theta" or "velocity") of the same run with PyTorch's SGD update: ``torch.optim.sgd.sgd``,
    the function ``torch.optim.SGD.step`` calls (called directly: the optimizer class's first step imports
    the compiler, about 2 s). The velocity is its momentum buffer (the gradient when μ = 0: no buffer)."""
    def fn(A, b, theta0):
        import torch  # noqa: PLC0415
        from torch.optim.sgd import sgd  # noqa: PLC0415

        theta = theta0.detach().clone().requires_grad_(True)
        buffers = [None]
        thetas, velocities = [], []
        for lr in run.lrs:
            theta.grad = None
            (0.5 * theta @ A @ theta - b @ theta).backward()
            with torch.no_grad():
                sgd([theta], [theta.grad], buffers, weight_decay=0.0, momentum=run.momentum, lr=lr, dampening=0.0,
                    nesterov=False, maximize=False, foreach=False)
            thetas.append(theta.detach().clone())
            velocities.append((buffers[0] if run.momentum else theta.grad).detach().clone())
        return torch.stack(thetas if part == "theta" else velocities)

    return fn


def _buggy_steps() -> dict[str, tuple[Callable, str]]:
    def sign_v(theta, g, v, lr, mu):
        v = mu * v - g
        return theta - lr * v, v

    def sign_g(theta, g, v, lr, mu):
        v = g - mu * v
        return theta - lr * v, v

    def no_momentum(theta, g, v, lr, mu):
        return theta - lr * g, v

    def ascent(theta, g, v, lr, mu):
        v = mu * v + g
        return theta + lr * v, v

    def averaged(theta, g, v, lr, mu):
        v = mu * v + (1 - mu) * g
        return theta - lr * v, v

    def old_velocity(theta, g, v, lr, mu):
        return theta - lr * v, mu * v + g

    def no_lr(theta, g, v, lr, mu):
        v = mu * v + g
        return theta - v, v

    def cs231n(theta, g, v, lr, mu):
        v = mu * v - lr * g
        return theta + v, v

    def lr_inside(theta, g, v, lr, mu):
        v = mu * v + lr * g
        return theta - v, v

    return {
        "sign_v": (sign_v, "v ← μv − g flips the sign of the new gradient relative to the old velocity; PyTorch's "
                           "rule is v ← μv + g, then θ ← θ − ηv"),
        "sign_g": (sign_g, "the old velocity must be *added*: v ← μv + g, not g − μv"),
        "no_momentum": (no_momentum, "the step uses the gradient alone: θ ← θ − ηv with v ← μv + g"),
        "ascent": (ascent, "θ must move *against* the velocity: θ ← θ − ηv"),
        "averaged": (averaged, "v ← μv + (1 − μ)g is an exponential average (the dampened form); PyTorch's rule "
                               "adds the whole gradient: v ← μv + g"),
        "old_velocity": (old_velocity, "update the velocity first, then step with the new one: v ← μv + g, "
                                       "θ ← θ − ηv"),
        "no_lr": (no_lr, "the step is θ ← θ − ηv: multiply the velocity by the learning rate"),
        "cs231n": (cs231n, "PyTorch's velocity holds no learning rate: v ← μv + g, then θ ← θ − ηv, and that v is "
                           "the velocity to return. With v ← μv − ηg and θ ← θ + v the velocity is −η times "
                           "PyTorch's; θ moves the same only while η stays constant, and differs as soon as the "
                           "learning rate changes between steps"),
        "lr_inside": (lr_inside, "PyTorch's velocity holds no learning rate: v ← μv + g, then θ ← θ − ηv, and that v "
                                 "is the velocity to return. With v ← μv + ηg and θ ← θ − v the velocity is η times "
                                 "PyTorch's; θ moves the same only while η stays constant, and differs as soon as "
                                 "the learning rate changes between steps"),
    }


#: (bug, buggy rule) whose θ differs from PyTorch's at any learning rate; all but the last need μ > 0 to show
_THETA_BUGS = ((MOMENTUM_SIGN, "sign_v"), (MOMENTUM_SIGN, "sign_g"), (NO_MOMENTUM, "no_momentum"),
               (SIGN_FLIP, "ascent"), (AVERAGED_VELOCITY, "averaged"), (OLD_VELOCITY, "old_velocity"),
               (NO_LR, "no_lr"))
#: the two conventions whose velocity always differs from PyTorch's, and θ only when the learning rate changes
_VELOCITY_BUGS = ((CS231N_VELOCITY, "cs231n"), (LR_IN_VELOCITY, "lr_inside"))


def _momentum_probes(step: Callable, A, b, theta0, run: _Run, part: str) -> list[Probe]:
    """Probes for a wrong ``part`` ("theta" or "velocity"): the student's run reproduces a buggy rule's
    (on θ alone for a wrong θ; on θ and the velocity for a wrong velocity)."""
    bugs = _buggy_steps()
    parts = ("theta",) if part == "theta" else ("theta", "velocity")

    def like(name: str) -> Callable[[], bool]:
        def test() -> bool:
            got, bad = try_call(_trajectory, step, A, b, theta0, run), _trajectory(bugs[name][0], A, b, theta0, run)
            return got is not None and all(close(getattr(got, p), getattr(bad, p)) for p in parts)
        return test

    theta_bugs = [(bug, name) for bug, name in _THETA_BUGS
                  if part == "theta" and run.momentum > 0 and (name != "no_lr" or 1 not in run.lrs)]
    return [Probe(bug, like(name), bugs[name][1]) for bug, name in theta_bugs + list(_VELOCITY_BUGS)]


def _first_wrong_step(got: np.ndarray, expected: np.ndarray) -> str:
    """Which step first goes wrong (an observation: a wrong first step points at the update itself,
    a later one at what is carried from step to step)."""
    bad = ~np.all(np.isclose(got, expected, rtol=1e-7, atol=1e-10), axis=tuple(range(1, got.ndim)))
    first = int(np.argmax(bad))
    return "the first step is already wrong" if first == 0 else \
        f"the first {first} step{'s' if first > 1 else ''} {'are' if first > 1 else 'is'} right; " \
        f"it goes wrong from step {first + 1} on"


def _velocity_wrong(got: np.ndarray, expected: np.ndarray) -> str:
    return f"θ is right at every step, the velocity returned is not; {_first_wrong_step(got, expected)}"


def _check_momentum_run(fb: Feedback, sgd_momentum_step: Callable, run: _Run, k: int) -> None:
    """θ, then the velocity, after each step of ``run``: against nk.optim.SGD, then PyTorch."""
    __tracebackhide__ = True
    A, b, theta0 = _quadratic(run.d, run.seed)

    def student(A_, b_, t0_):
        return _trajectory(sgd_momentum_step, A_, b_, t0_, run)

    # a hidden check names no hidden setting
    setting = (f"of {len(run.lrs)} steps ({run.schedule()}, momentum = {run.momentum}, θ of length {run.d})"
               if not fb.hidden else f"step of hidden run {k + 1} (θ of length {run.d}"
               f"{', the learning rate changing between steps' if run.lr_changes else ''})")
    parts = {"theta": f"θ after each {setting}", "velocity": f"the velocity returned after each {setting}"}
    probes = {part: _momentum_probes(sgd_momentum_step, A, b, theta0, run, part) for part in parts}
    got = call(fb, student, A, b, theta0, name="sgd_momentum_step(theta, grad, velocity, lr, momentum)")
    expected = _nnkit_trajectory(A, b, theta0, run)
    for part, label in parts.items():
        check_array(fb, label, getattr(got, part), getattr(expected, part), probes=probes[part],
                    observe=_first_wrong_step if part == "theta" else _velocity_wrong,
                    shape_hint="one row per step", relations=False)
    for part, label in parts.items():
        check_against_torch(fb, f"{label}, against torch.optim.SGD", lambda *a, part=part: getattr(student(*a), part),
                            _torch_trajectory(run, part), [A, b, theta0], probes=probes[part])


def check_sgd_momentum(sgd_momentum_step: Callable, *, hidden: bool = False) -> None:
    """``sgd_momentum_step(theta, grad, velocity, lr, momentum)`` → (new theta, new velocity), PyTorch's rule;
    θ and the velocity are compared step for step, also with a learning rate that changes between steps."""
    __tracebackhide__ = True
    fb = Feedback("sgd_momentum", hidden=hidden)
    # one step on its own, velocity not zero: the caller's arrays stay as they were
    A, b, theta0 = _quadratic(4, 50)
    call(fb, sgd_momentum_step, theta0, A @ theta0 - b, 0.5 * theta0, 0.1, 0.9,
         name="sgd_momentum_step(theta, grad, velocity, lr, momentum)")
    for k, run in enumerate(_HIDDEN_RUNS if hidden else _VISIBLE_RUNS):
        _check_momentum_run(fb, sgd_momentum_step, run, k)
    fb.passed("momentum SGD follows torch.optim.SGD step for step, θ and velocity, also when the learning rate "
              "changes")


# --------------------------------------------------------------------------------------------
# L2 weight decay that spares the biases
# --------------------------------------------------------------------------------------------
def _l2_model(seed: int, hidden: bool):
    import nnkit as nk  # noqa: PLC0415

    rng = seeded(seed)
    if hidden:
        model = nk.Sequential(nk.Linear(5, 7, rng=rng), nk.Tanh(), nk.Linear(7, 4, bias=False, rng=rng), nk.ReLU(),
                              nk.Linear(4, 3, rng=rng))
    else:
        model = nk.Sequential(nk.Linear(4, 3, rng=rng), nk.ReLU(), nk.Linear(3, 2, rng=rng))
    for p in model.parameters():
        p.grad = rng.normal(size=p.shape)  # gradients of the data loss, already computed
    return model


def _run_l2(fn: Callable, model, lam: float):
    """(penalty, [grads after]) from the student's l2_penalty on a copy of ``model``."""
    import copy  # noqa: PLC0415

    m = copy.deepcopy(model)
    with quiet():
        penalty = fn(m, lam)
    return penalty, [p.grad.copy() for p in m.parameters()], [p.data.copy() for p in m.parameters()]


def check_l2_penalty(l2_penalty: Callable, *, hidden: bool = False) -> None:
    """``l2_penalty(model, lam)`` returns λ/2 Σ_W ‖W‖² over the weights (not the biases) and adds λW to W.grad."""
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("l2_penalty", hidden=hidden)
    for seed, lam in ((61, 0.1),) if not hidden else ((62, 0.01), (63, 0.5)):
        model = _l2_model(seed, hidden)
        params = list(model.named_parameters())
        weights = [p for _, p in params if p.data.ndim > 1]
        # reference: nnkit's SGD adds weight_decay·θ to the gradient of weights only (lr = 1, one step)
        expected_grads = []
        for _, p in params:
            q = nk.Parameter(p.data)
            q.grad = p.grad.copy()
            before = q.data.copy()
            nk.optim.SGD([q], lr=1.0, weight_decay=lam).step()
            expected_grads.append(before - q.data)  # θ − θ' = lr · (g + λθ) for decayed parameters
        expected_penalty = 0.5 * lam * sum(float(np.sum(p.data ** 2)) for p in weights)
        all_penalty = 0.5 * lam * sum(float(np.sum(p.data ** 2)) for _, p in params)
        grads0 = [p.grad for _, p in params]

        def grads_like(target) -> Callable[[], bool]:
            def test():
                result = try_call(_run_l2, l2_penalty, model, lam)
                return result is not None and all(close(g, t) for g, t in zip(result[1], target))
            return test

        decayed_all = [g + lam * p.data for g, (_, p) in zip(grads0, params)]
        probes = [
            Probe(DECAYS_BIASES, grads_like(decayed_all),
                  "the biases were decayed too: L2 regularisation leaves them alone (the notes: \"don't regularise "
                  "bias terms\"); decay only parameters with more than one dimension"),
            Probe(REPLACES_GRADIENT, grads_like([lam * p.data if p.data.ndim > 1 else g for g, (_, p) in
                                                 zip(grads0, params)]),
                  "W.grad already holds the data loss's gradient: add λW to it (+=)"),
            Probe(FACTOR_OF_2, grads_like([g + 2 * lam * p.data if p.data.ndim > 1 else g for g, (_, p) in
                                             zip(grads0, params)]),
                  "the penalty is (λ/2)‖W‖², whose gradient is λW, not 2λW"),
            Probe(SIGN_FLIP, grads_like([g - lam * p.data if p.data.ndim > 1 else g for g, (_, p) in
                                         zip(grads0, params)]),
                  "the penalty's gradient +λW is *added*: the update then shrinks the weights"),
            Probe(NO_LAMBDA, lambda: lam != 1 and grads_like([g + p.data if p.data.ndim > 1 else g for g, (_, p) in
                                                              zip(grads0, params)])(),
                  "the gradient of (λ/2)‖W‖² is λW: multiply by lam"),
            Probe(SHRINKS_WEIGHTS, lambda: (r := try_call(_run_l2, l2_penalty, model, lam)) is not None and
                  any(not close(d, p.data) for d, (_, p) in zip(r[2], params)),
                  "the weights themselves were changed; the optimiser does that: add λW to W.grad and leave W.data "
                  "alone"),
            Probe(GRAD_NOT_ADDED, grads_like(grads0),
                  "the .grad arrays are unchanged: add the penalty's gradient λW to each weight's .grad (the "
                  "optimiser only sees .grad)"),
        ]
        result = call(fb, _run_l2, l2_penalty, model, lam, name="l2_penalty(model, lam)", copy_inputs=False)
        penalty, grads, _ = result
        if penalty is None or np.ndim(penalty) != 0:
            fb.fail(WRONG_TYPE, f"l2_penalty(model, lam) must return the penalty as one number, got "
                                f"{type(penalty).__name__}", hint="return 0.5 * lam * (sum of the squared weights)")
        names = ", ".join(n for n, _ in params)
        shown = f"lam={lam}" if not hidden else "lam"  # a hidden check names no hidden λ
        for (name, _), got, exp in zip(params, grads, expected_grads):
            check_array(fb, f"{name}.grad after l2_penalty(model, {shown}) (parameters: {names})", got, exp,
                        probes=probes, relations=False)
        check_array(fb, f"the penalty returned by l2_penalty(model, {shown})", float(penalty), expected_penalty,
                    probes=[Probe(DECAYS_BIASES, lambda: close(penalty, all_penalty),
                                  "the penalty includes the biases: sum over the weights only"),
                            Probe(FACTOR_OF_2, lambda: close(penalty, 2 * expected_penalty),
                                  "the penalty is (λ/2) Σ‖W‖², with the ½")], relations=False)

        def student(*arrays, model=model, lam=lam):
            m = _l2_model(seed, hidden)
            for (_, p), arr in zip(m.named_parameters(), arrays):
                p.data = np.asarray(arr, dtype=float).copy()
            for p, g in zip(m.parameters(), grads0):
                p.grad = g.copy()
            pen, gs, _ = _run_l2(l2_penalty, m, lam)
            return (np.asarray(pen, dtype=float),) + tuple(gs)

        def torch_fn(*tensors, lam=lam):
            import torch  # noqa: PLC0415

            penalty = sum(0.5 * lam * (t * t).sum() for t in tensors if t.dim() > 1)
            penalty.backward()
            grads = [torch.as_tensor(g, dtype=t.dtype, device=t.device)
                     + (t.grad if t.grad is not None else torch.zeros_like(t)) for g, t in zip(grads0, tensors)]
            return (penalty.detach(),) + tuple(grads)

        check_against_torch(fb, f"[penalty, {names} gradients] of l2_penalty", student, torch_fn,
                            [p.data for _, p in params], requires_grad=True, probes=probes)
    fb.passed("L2 penalty and gradient, biases spared")


# --------------------------------------------------------------------------------------------
# Dropout
# --------------------------------------------------------------------------------------------
def _dropout_run(cls, p: float, x: np.ndarray, g: np.ndarray, seed: int, training: bool = True):
    """(out, dx) of a fresh ``cls(p, rng=seed)`` in train or eval mode."""
    layer = cls(p, rng=seed)
    if not training:
        layer.eval()
    with quiet():  # the caller's x and grad themselves: changing them in place is seen
        out = layer.forward(x)
        dx = layer.backward(g)
    return out, dx


def _stats(out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """[fraction of units dropped, mean scale of the kept units]: what dropout's definition fixes."""
    kept = out != 0
    scale = float(np.mean(out[kept] / x[kept])) if np.any(kept) else 0.0
    return np.array([1.0 - float(np.mean(kept)), scale])


def _torch_dropout_stats(p: float):
    def run(x):
        import torch  # noqa: PLC0415

        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)
        try:
            out = torch.nn.functional.dropout(x, p=p, training=True)
        finally:
            torch.random.set_rng_state(gen_state)
        kept = out != 0
        return torch.stack([1.0 - kept.to(x.dtype).mean(), (out[kept] / x[kept]).mean()])

    return run


@dataclass
class EvalAfterTraining:
    """A layer's eval mode right after a training-mode forward pass on the same x."""

    mask: np.ndarray  # what the training forward multiplied x by: its output / x
    out: object       # forward(x) after .eval()
    dx: object        # backward(grad) after that


def _eval_after_training(cls, p: float, x: np.ndarray, g: np.ndarray, seed: int) -> EvalAfterTraining:
    """A fresh ``cls(p, rng=seed)``: forward(x) in training mode, then .eval(), forward(x), backward(g)."""
    layer = cls(p, rng=seed)
    with quiet():  # the caller's x and grad themselves: changing them in place is seen
        mask = np.asarray(layer.forward(x), dtype=float) / x
        layer.eval()
        out = layer.forward(x)
        dx = layer.backward(g)
    return EvalAfterTraining(mask, out, dx)


def _check_eval_after_training(fb: Feedback, Dropout, x: np.ndarray, g: np.ndarray) -> None:
    """Eval mode is the identity, forward and backward, also right after a training-mode forward:
    the mask that pass drew must not reach the eval-mode backward."""
    __tracebackhide__ = True
    named = "Dropout(p=0.5)" if not fb.hidden else "Dropout(p)"
    steps = f"{named}: forward(x) in training mode, then .eval() and forward(x) again"
    run = call(fb, _eval_after_training, Dropout, 0.5, x, g, 76, name=f"{steps}, then backward(grad)",
               arg_names=(None, None, "x", "grad", None))
    stale = ("in eval mode forward must also forget the mask (self.mask = None): otherwise the mask the earlier "
             "training-mode forward drew is still applied, though eval-mode dropout is the identity")
    check_array(fb, f"{steps}: the output", run.out, x, relations=False,
                probes=[Probe(STALE_MASK, lambda: close(run.out, x * run.mask), stale)])
    check_array(fb, f"{steps}, then backward(grad)", run.dx, g, relations=False,
                probes=[Probe(STALE_MASK, lambda: close(run.dx, g * run.mask), stale)])


def _check_mask_per_unit(fb: Feedback, label: str, kept: np.ndarray) -> None:
    """Each unit of each example is dropped on its own: a mask the same in every row (or column) is shared."""
    __tracebackhide__ = True
    for axis, what in ((0, "the same units are dropped in every example (row)"),
                       (1, "each example (row) is dropped or kept whole")):
        first = kept.take([0], axis=axis)
        if kept.shape[axis] > 1 and not np.all(first) and np.all(kept == first):
            fb.fail(WRONG_VALUES, f"{label}: {what}", likely=SHARED_MASK,
                    hint="draw the mask with the input's full shape, rng.random(x.shape), so that each unit of "
                         "each example is dropped independently")


def check_dropout(Dropout, *, hidden: bool = False) -> None:
    """``Dropout(p, rng=...)``: inverted dropout with p = drop probability (PyTorch's meaning).

    Training: drop each unit with probability p, scale the kept ones by 1/(1 − p); backward
    multiplies by the same mask. Eval mode: the identity, forward and backward.
    """
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("dropout", hidden=hidden)
    if "nnkit.module.Module" not in class_names(Dropout):
        fb.fail(WRONG_TYPE, f"Dropout must be a class derived from nk.Module, got {type_name(Dropout)}")
    rng = seeded(71)
    shape = (200, 300) if not hidden else (400, 250)
    x = rng.uniform(0.5, 2.0, shape)  # no zeros: out / x recovers the mask
    g = rng.normal(size=shape)
    n = x.size
    for k, p in enumerate((0.2, 0.5) if not hidden else (0.1, 0.3, 0.75)):
        noise = 6 * np.sqrt(p * (1 - p) / n) + 1e-3  # 6 standard deviations of the drop fraction
        named = f"Dropout(p={p})" if not hidden else f"Dropout(p) with the hidden p number {k + 1}"
        out, dx = call(fb, _dropout_run, Dropout, p, x, g, 72, name=f"{named}: forward / backward",
                       arg_names=(None, None, "x", "grad", None))
        label = f"{named} in training mode on an input of shape {shape}"
        out, dx = as_array(fb, f"{label}: forward(x)", out), as_array(fb, f"{label}: backward(grad)", dx)
        for what, arr in (("forward(x)", out), ("backward(grad)", dx)):
            if arr.shape != x.shape:
                fb.fail(WRONG_SHAPE, f"{label}: {what} should have shape {x.shape}, got {arr.shape}",
                        hint="dropout works elementwise: the output has the input's shape")
        dropped, scale = _stats(out, x)
        _check_mask_per_unit(fb, label, out != 0)
        if abs(dropped - p) > noise:
            if abs(dropped - (1 - p)) <= noise:
                fb.fail(WRONG_VALUES, f"{label} dropped " + (f"{dropped:.1%} of the units, expected about {p:.0%}"
                                                             if not hidden else "about 1 − p of the units, not p"),
                        likely=P_AS_KEEP, hint="PyTorch's p is the probability of *dropping* a unit: keep it "
                                               "with probability 1 − p" + fb.values(f" = {1 - p:g}"))
            fb.fail(WRONG_VALUES, f"{label} dropped " + (f"{dropped:.1%} of the units, expected about {p:.0%} "
                                                         f"(± {noise:.1%})" if not hidden else
                                                         "a fraction of the units far from p (more than 6 standard "
                                                         "deviations of chance away)"))
        if not np.isclose(scale, 1.0 / (1.0 - p), rtol=1e-9):
            hint = ("the kept units are not scaled: inverted dropout multiplies them by 1/(1 − p) so that the "
                    "expected output equals the input" if np.isclose(scale, 1.0) else
                    "the kept units are scaled by the wrong factor; inverted dropout uses 1/(1 − p)" +
                    fb.values(f" = {1 / (1 - p):.4g}, yours {scale:.4g}"))
            fb.fail(WRONG_VALUES, f"{label}: the kept units are " +
                    (f"the input times {scale:.4g}" if not hidden else "not the input times 1/(1 − p)"),
                    likely=DROPOUT_NOT_RESCALED, hint=hint)
        mask = out / x
        expected_dx = g * mask
        backward_probes = [
            Probe(DROPOUT_MASK_NOT_REUSED, lambda: not np.array_equal(dx != 0, mask != 0),
                  "backward must multiply by the mask the forward pass drew (store it in forward); "
                  "a new random mask sends gradients to units that were dropped"),
            Probe(DROPOUT_NOT_RESCALED, lambda: close(dx, g * (mask != 0)),
                  "backward must use the same scaled mask as forward: ∂out/∂x = mask/(1 − p) on kept units"),
        ]
        check_array(fb, f"{label}: backward(grad)", dx, expected_dx, probes=backward_probes, relations=False)
        # the reference's and PyTorch's statistics (the masks themselves are random)
        ref_out, _ = _dropout_run(nk.Dropout, p, x, g, 72)
        check_array(fb, f"{label}: [fraction dropped, scale of the kept units] against nk.Dropout",
                    _stats(out, x), _stats(np.asarray(ref_out), x), atol=noise, rtol=1e-9, relations=False)
        check_against_torch(fb, f"{label}: [fraction dropped, scale of the kept units]",
                            lambda xx: _stats(np.asarray(_dropout_run(Dropout, p, xx, g.astype(xx.dtype), 72)[0],
                                                         dtype=float), np.asarray(xx, dtype=float)),
                            _torch_dropout_stats(p), [x], tolerances={"cpu": (1e-7, noise), "cuda": (1e-4, noise)})
        # eval mode: the identity
        out_e, dx_e = call(fb, _dropout_run, Dropout, p, x, g, 73, False, name=f"{named}.eval(): forward / backward",
                           arg_names=(None, None, "x", "grad", None, None))
        out_e, dx_e = as_array(fb, "forward(x) in eval mode", out_e), as_array(fb, "backward(grad) in eval mode", dx_e)
        eval_probe = [Probe(EVAL_NOT_IDENTITY, lambda: True,
                            "in eval mode (self.training is False) dropout does nothing: return x, and grad unchanged")]
        check_array(fb, f"{named} in eval mode: output", out_e, x, probes=eval_probe, relations=False)
        check_array(fb, f"{named} in eval mode: backward(grad)", dx_e, g, probes=eval_probe, relations=False)
    xs, gs = x[:20, :50], g[:20, :50]
    _check_eval_after_training(fb, Dropout, xs, gs)
    # the mask comes from the generator Dropout(p, rng=seed) is given, and from nothing else

    def masks(seed):
        return call(fb, _dropout_run, Dropout, 0.5, xs, gs, seed, name="Dropout(p, rng=seed): forward / backward",
                    arg_names=(None, None, "x", "grad", None))

    check_uses_generator(fb, "Dropout(p, rng=seed) on the same input", masks, (74, 75), differ="the masks")
    fb.passed("drop probability, scaling, the same mask in backward, identity in eval mode (also right after "
              "training)")


# --------------------------------------------------------------------------------------------
# Early stopping
# --------------------------------------------------------------------------------------------
def _fit_oracle(val_losses, patience: int, min_delta: float = 0.0) -> np.ndarray:
    """[epoch at which to stop (−1: never), best epoch] from ``nk.train.fit`` itself.

    A one-weight model is trained on one example while a scripted loss reports ``val_losses[e]``
    as the validation loss of epoch e: fit's own early-stopping logic decides.
    """
    import nnkit as nk  # noqa: PLC0415

    model = nk.Sequential(nk.Linear(1, 1, rng=0))
    epoch = {"e": 0}

    class Scripted(nk.MSELoss):
        def forward(self, pred, target):
            value = super().forward(pred, target)
            return value if model.training else float(val_losses[epoch["e"]])

    def tick(e, history, m):
        epoch["e"] = e + 1

    X = np.zeros((1, 1))
    history = nk.train.fit(model, Scripted(), nk.optim.SGD(model.parameters(), lr=1e-3), train=(X, X), val=(X, X),
                           epochs=len(val_losses), batch_size=1, rng=0, patience=patience, progress=False,
                           metric=None, min_delta=min_delta, callback=tick)
    stop = -1 if history.stopped_epoch is None else history.stopped_epoch
    return np.array([stop, history.best_epoch], dtype=float)


def _best_is_last(EarlyStopping, losses, patience: int, expected: np.ndarray) -> bool:
    """The right stopping epoch, and best_epoch the last epoch stepped (where that is not the best one)."""
    got = try_call(_run_stopper, EarlyStopping, losses, patience)
    last = expected[0] if expected[0] >= 0 else len(losses) - 1
    return got is not None and last != expected[1] and close(got, [expected[0], last])


def _run_stopper(EarlyStopping, val_losses, patience: int) -> np.ndarray:
    stopper = EarlyStopping(patience)
    stop = -1
    with quiet():
        for e, v in enumerate(val_losses):
            if stopper.step(float(v)):
                stop = e
                break
    return np.array([stop, getattr(stopper, "best_epoch")], dtype=float)


#: how many more times step() is called after it first returned True, each epoch without improvement
_AFTER_STOP = 3


def _returns_after_stop(EarlyStopping, val_losses, patience: int) -> np.ndarray:
    """What step() returns (1 for True) on ``_AFTER_STOP`` more epochs after it first returned True, each
    with the stopping epoch's loss again: that loss did not improve on the best, so it still does not."""
    stopper = EarlyStopping(patience)
    with quiet():
        for v in val_losses:
            if stopper.step(float(v)):
                return np.array([bool(stopper.step(float(v))) for _ in range(_AFTER_STOP)], dtype=float)
    return np.zeros(0)


class _LastNotBest:
    def __init__(self, patience):
        self.patience, self.last, self.waited, self.best_epoch, self.epoch = patience, np.inf, 0, None, -1

    def step(self, v):
        self.epoch += 1
        if v < self.last:
            self.waited, self.best_epoch = 0, self.epoch
        else:
            self.waited += 1
        self.last = v
        return self.waited >= self.patience


class _NoReset(_LastNotBest):
    def step(self, v):
        self.epoch += 1
        if v < self.last:
            self.last, self.best_epoch = v, self.epoch
        else:
            self.waited += 1
        return self.waited >= self.patience


class _TieImproves(_LastNotBest):
    def step(self, v):
        self.epoch += 1
        if v <= self.last:
            self.last, self.best_epoch, self.waited = v, self.epoch, 0
        else:
            self.waited += 1
        return self.waited >= self.patience


class _OnceOnly(_LastNotBest):
    def step(self, v):
        self.epoch += 1
        if v < self.last:
            self.last, self.best_epoch, self.waited = v, self.epoch, 0
        else:
            self.waited += 1
        return self.waited == self.patience


#: margins a student may demand of an improvement (val_loss < best − margin), tried by a probe
_MARGINS = (1e-5, 1e-4, 1e-3, 1e-2)


def _which_answer(got: np.ndarray, expected: np.ndarray) -> str:
    """Which of [stopping epoch, best_epoch] is wrong (an observation, no values)."""
    wrong = [name for name, g, e in zip(("the epoch at which step() returns True", "best_epoch"), got, expected)
             if not np.isclose(g, e)]
    return f"only {wrong[0]} is wrong" if len(wrong) == 1 else "both the stopping epoch and best_epoch are wrong"


def _stopping_probes(EarlyStopping, losses: np.ndarray, patience: int, expected: np.ndarray) -> list[Probe]:
    """The known bugs of [stopping epoch, best_epoch], each recognised by reproducing the student's answer."""
    def got() -> np.ndarray | None:
        return try_call(_run_stopper, EarlyStopping, losses, patience)

    def like(cls) -> Callable[[], bool]:
        return lambda: close(got(), _run_stopper(cls, losses, patience))

    return [
        Probe(OFF_BY_ONE, lambda: close(got(), _fit_oracle(losses, patience + 1)) and expected[0] >= 0,
              "stopped one epoch late: stop as soon as `patience` epochs in a row brought no improvement "
              "(counter >= patience)"),
        Probe(OFF_BY_ONE, lambda: patience > 1 and close(got(), _fit_oracle(losses, patience - 1)),
              "stopped one epoch early: `patience` epochs without improvement are allowed before stopping"),
        Probe(LAST_NOT_BEST, like(_LastNotBest),
              "an epoch improves on the *best* loss so far, not on the previous epoch's loss"),
        Probe(NO_RESET, like(_NoReset), "reset the count of epochs without improvement when the loss improves"),
        Probe(TIE_IMPROVES, like(_TieImproves),
              "a loss equal to the best so far is no improvement: compare with <, not <="),
        Probe(OFF_BY_ONE, lambda: close(got(), expected + [0, 1]),
              "best_epoch is one too large: epochs count from 0 (the first call of step() is epoch 0)"),
        Probe(BEST_EPOCH_WRONG, lambda: _best_is_last(EarlyStopping, losses, patience, expected),
              "best_epoch is the last epoch, not the one of the lowest loss: set it only when the loss improves "
              "on the best so far (the weights to restore are those of that epoch)"),
        Probe(MIN_DELTA, lambda: any(close(got(), _fit_oracle(losses, patience, m)) for m in _MARGINS),
              "an epoch improves when its loss is strictly lower than the best so far, by however little: "
              "compare val_loss < best_loss, with no margin (a margin is what min_delta adds in nk.train.fit; "
              "this question has none)"),
    ]


def _check_after_stop(fb: Feedback, EarlyStopping, losses: np.ndarray, patience: int, expected: np.ndarray,
                      setting: str) -> None:
    """After the stop (``expected``: fit's [stopping epoch, best epoch]), epochs without improvement: step()
    is True while the epochs since the best number at least ``patience`` (fit's rule, waited >= patience)."""
    __tracebackhide__ = True
    stop, best = expected
    after = (stop + 1 + np.arange(_AFTER_STOP) - best >= patience).astype(float)
    got = call(fb, _returns_after_stop, EarlyStopping, losses, patience,
               name="EarlyStopping(patience).step(val_loss)")
    once = _returns_after_stop(_OnceOnly, losses, patience)
    check_array(fb, f"what step() returns (1: True) on {_AFTER_STOP} more epochs after it first returned True, "
                    f"each with the stopping epoch's loss again (no improvement), for {setting}",
                got, after, relations=False, probes=[Probe(
                    STOPS_ONCE, lambda: close(got, once),
                    "once `patience` epochs in a row have brought no improvement, one more epoch without "
                    "improvement keeps that true: step() must go on returning True (compare the count with >=, "
                    "not ==)")])


def _shown(losses: np.ndarray) -> str:
    """The losses as a visible message shows them, to 7 digits (improvements of 1e-6 stay visible)."""
    return "[" + ", ".join(f"{v:.7g}" for v in losses) + "]"


#: (validation losses, patience); the last of each set improves by as little as 1e-6 at a time
_VISIBLE_SEQUENCES = ((np.array([1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.9, 1.0]), 3),
                      (np.array([0.9, 0.8, 0.85, 0.7, 0.75, 0.8, 0.6]), 2),
                      (np.array([1.0, 0.8, 0.8 - 1e-6, 0.8 - 2e-6, 0.85, 0.8 - 3e-6, 0.9, 0.95]), 2))


def _hidden_sequences() -> list[tuple[np.ndarray, int]]:
    rng = seeded(81)
    return [(1.0 + 0.3 * np.cos(np.arange(20) / 2.0) + 0.02 * rng.normal(size=20), 3),
            (np.array([3.0, 2.0, 2.0, 2.0, 1.5, 1.6, 1.7, 1.8]), 2),
            (np.linspace(2.0, 1.0, 10), 2),
            (np.array([1.0, 1.1, 0.9, 1.2, 1.3, 0.8, 0.95, 0.96, 0.97, 0.98]), 3),
            (0.5 + 1e-6 * np.array([0, -1, -2, 0, -3, 5, 5, -4, 1, 1, 1]), 3)]


def check_early_stopping(EarlyStopping, *, hidden: bool = False) -> None:
    """``EarlyStopping(patience)``: ``step(val_loss)`` is True once the validation loss has not improved
    (strictly lower than the best, by any amount) for ``patience`` epochs in a row, and stays True while it
    does not improve; ``best_epoch`` is the (0-based) epoch of the lowest loss so far.
    The same rule as ``nk.train.fit(..., patience=...)``."""
    __tracebackhide__ = True
    fb = Feedback("early_stopping", hidden=hidden)
    for losses, patience in (_hidden_sequences() if hidden else _VISIBLE_SEQUENCES):
        expected = _fit_oracle(losses, patience)
        setting = f"patience = {patience} and the validation losses " + \
                  (_shown(losses) if not hidden else f"of a {len(losses)}-epoch run")
        got = call(fb, _run_stopper, EarlyStopping, losses, patience, name="EarlyStopping(patience).step(val_loss)")
        check_array(fb, f"[epoch at which step() first returns True (−1: never), best_epoch] for {setting}", got,
                    expected, observe=_which_answer, probes=_stopping_probes(EarlyStopping, losses, patience, expected),
                    relations=False)
        if expected[0] >= 0:
            _check_after_stop(fb, EarlyStopping, losses, patience, expected, setting)
    fb.passed("the same stopping epoch and best epoch as nk.train.fit, and True from then on while the loss does "
              "not improve")


# --------------------------------------------------------------------------------------------
# FGSM
# --------------------------------------------------------------------------------------------
def _fgsm_setup(seed: int, hidden: bool):
    import nnkit as nk  # noqa: PLC0415

    X, y = nk.data.load_digits()
    rng = seeded(seed)
    idx = rng.choice(len(X), 16 if not hidden else 40, replace=False)
    model = nk.Sequential(nk.Linear(64, 24, rng=rng), nk.ReLU(), nk.Dropout(0.5, rng=rng), nk.Linear(24, 10, rng=rng))
    return model, nk.CrossEntropyLoss(), X[idx], y[idx]


def _input_grad_torch(model, loss_fn, x, y, device, dtype):
    import torch  # noqa: PLC0415

    import nnkit as nk  # noqa: PLC0415

    twin = nk.parity.to_torch(model, dtype=dtype, device=device).eval()
    xt = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    crit = nk.parity.torch_loss(loss_fn)
    crit(twin(xt), torch.tensor(y, device=device).long()).backward()
    return xt.grad.detach().to("cpu").double().numpy()


def _proportional_to_gradient(got, x: np.ndarray, dx: np.ndarray) -> bool:
    """The perturbation, where no clipping happened, is c·∇ₓL for one c > 0 per image, and not ±ε alone."""
    if got is None or np.shape(got) != x.shape:
        return False
    delta = np.asarray(got, dtype=float) - x
    inside = (np.asarray(got) > 0) & (np.asarray(got) < 1) & (dx != 0)
    if not np.any(inside) or len(np.unique(np.round(np.abs(delta[inside]), 12))) < 3:
        return False
    for row in range(len(x)):
        keep = inside[row]
        if np.any(keep):
            c = delta[row][keep] / dx[row][keep]
            if not (np.all(c > 0) and np.allclose(c, c[0], rtol=1e-6)):
                return False
    return True


def _right_without_dropout(fgsm: Callable, model, loss_fn, x, y, eps) -> bool:
    import copy  # noqa: PLC0415

    import nnkit as nk  # noqa: PLC0415

    layers = [m for m in model if not isinstance(m, nk.Dropout)]
    if len(layers) == len(model):
        return False
    plain = nk.Sequential(*copy.deepcopy(layers))
    got = try_call(fgsm, copy.deepcopy(plain).train(), copy.deepcopy(loss_fn), x, y, eps)
    return close(got, nk.attacks.fgsm(plain, loss_fn, x, y, eps))


def check_fgsm(fgsm: Callable, *, hidden: bool = False) -> None:
    """``fgsm(model, loss_fn, x, y, epsilon)`` = clip(x + ε·sign(∇ₓL), 0, 1), the gradient taken in eval mode."""
    __tracebackhide__ = True
    import copy  # noqa: PLC0415

    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("fgsm", hidden=hidden)
    model, loss_fn, x, y = _fgsm_setup(91 if not hidden else 92, hidden)
    for k, eps in enumerate((0.1,) if not hidden else (0.05, 0.25)):
        shown = f"ε = {eps}" if not hidden else f"the hidden ε number {k + 1}"
        def student(xx, model=model, eps=eps):
            m = copy.deepcopy(model)
            m.train()  # the attack must switch dropout off itself
            return fgsm(m, copy.deepcopy(loss_fn), xx, y.copy(), eps)

        expected = nk.attacks.fgsm(copy.deepcopy(model), loss_fn, x, y, eps)
        dx = nk.attacks.input_gradient(copy.deepcopy(model), loss_fn, x, y)

        def like(target) -> Callable[[], bool]:
            return lambda: close(try_call(student, x), target)

        probes = [
            Probe(FGSM_NOT_SIGN, like(np.clip(x + eps * dx, 0, 1)),
                  "FGSM steps by ε·sign(∇ₓL): every pixel moves by exactly ε, whatever the size of its gradient"),
            Probe(SIGN_FLIP, like(np.clip(x - eps * np.sign(dx), 0, 1)),
                  "x − ε·sign(∇ₓL) *lowers* the loss; the attack adds ε·sign(∇ₓL) to raise it"),
            Probe(NOT_CLIPPED, like(x + eps * np.sign(dx)),
                  "pixels lie in [0, 1]: clip the result (np.clip) so the adversarial image is a valid image"),
            Probe(NO_EPSILON, like(np.clip(x + np.sign(dx), 0, 1)),
                  "every pixel moved by a whole unit: the step is ε·sign(∇ₓL)"),
            Probe(FGSM_NOT_SIGN, lambda: _proportional_to_gradient(try_call(student, x), x, dx),
                  "the pixels moved in proportion to the gradient; FGSM moves every pixel by exactly ε, in the "
                  "direction of sign(∇ₓL)"),
            Probe(TRAINING_MODE, lambda: _right_without_dropout(fgsm, model, loss_fn, x, y, eps),
                  "right on the model without its Dropout layer, wrong with it: the gradient was taken with "
                  "dropout on; call model.eval() before the forward pass"),
        ]
        got = call(fb, student, x, name=f"fgsm(model, loss_fn, x, y, epsilon) for {shown}", arg_names=("x",))
        check_array(fb, f"the adversarial batch for {shown} (x of shape {x.shape})", got, expected, probes=probes,
                    relations=False, shape_hint="the shape of x")
        # PyTorch's gradient on every device; entries whose gradient is ~0 have no reliable sign in float32
        for device in (available_devices() if torch_enabled() else []):
            import torch  # noqa: PLC0415

            kind = device.split(":")[0]
            dtype = torch.float64 if kind == "cpu" else torch.float32
            with quiet():
                g = _input_grad_torch(model, loss_fn, x, y, device, dtype)
            ref = np.clip(x + eps * np.sign(g), 0, 1)
            reliable = np.abs(g) > (1e-12 if kind == "cpu" else 1e-5) * np.abs(g).max()
            mine = np.asarray(got, dtype=float)
            check_array(fb, f"the adversarial batch for {shown} against PyTorch on {device} "
                            f"({'float64' if kind == 'cpu' else 'float32, TF32 off'}; pixels whose gradient is "
                            f"not ~0)", np.where(reliable, mine, ref), ref, probes=probes, relations=False)
    fb.passed("FGSM against nk.attacks.fgsm and torch.autograd")
