"""Known wrong answers to problem set 3 and what the feedback must call them."""
from textwrap import dedent


def _fn(signature: str, body: str) -> str:
    return dedent(f"def {signature}:\n") + "\n".join("    " + line for line in dedent(body).strip().splitlines())


def _backward(delta_hidden: str = "(deltas[l + 1] @ Ws[l + 1]) * sigmoid_prime(Zs[l])",
              delta_out: str = "2.0 * (As[L] - Y) / X.shape[0] * sigmoid_prime(Zs[L - 1])",
              dW: str = "deltas[l].T @ As[l]") -> str:
    """A self-contained backward pass (no helper functions) with one piece replaced."""
    return _fn("backward(X, Y, Ws, bs)", f"""
        Zs, As = forward_mlp(X, Ws, bs)
        L = len(Ws)
        deltas = [None] * L
        deltas[L - 1] = {delta_out}
        for l in range(L - 2, -1, -1):
            deltas[l] = {delta_hidden}
        dWs = [{dW} for l in range(L)]
        dbs = [deltas[l].sum(axis=0) for l in range(L)]
        return deltas, dWs, dbs""")


_TRAIN = """{copy}
    losses = []
    N = X.shape[0]
    for epoch in range(epochs):
        order = {order}
        for start in range(0, {stop}, batch_size):
            idx = order[start:start + batch_size]
            _, dWs, dbs = backward(X[idx], Y[idx], Ws, bs)
{update}
        losses.append(mse_loss(forward_mlp(X, Ws, bs)[1][-1], Y))
    return Ws, bs, losses"""
_COPY = "\n    Ws, bs = [W.copy() for W in Ws], [b.copy() for b in bs]"
_UPDATE = """\
            Ws = [W {op} lr * dW for W, dW in zip(Ws, dWs)]
            bs = [b {op} lr * db for b, db in zip(bs, dbs)]"""


def _train(order="rng.permutation(N)", stop="N", op="-", copy=_COPY, update=_UPDATE):
    """The solution's loop with one piece changed: the order, the range of a minibatch's start, the
    sign of the step, the copy of the caller's parameters, the update."""
    body = _TRAIN.format(order=order, stop=stop, copy=copy, update=update.format(op=op))
    return _fn("train(X, Y, Ws, bs, lr, epochs, batch_size, rng)", body)


def _numgrad(loop: str = "np.ndindex(x.shape)", old: str = "x[i]", h: str = "eps") -> str:
    return _fn("numerical_gradient(f, x, eps=1e-6)", f"""
        grad = np.zeros_like(x, dtype=float)
        for i in {loop}:
            old = {old}
            x[i] = old + {h}
            f_plus = f(x)
            x[i] = old - {h}
            f_minus = f(x)
            x[i] = old
            grad[i] = (f_plus - f_minus) / (2 * {h})
        return grad""")


MUTATIONS = {
    "delta_output": [
        ("missing f'(z)", _fn("delta_output(A_L, Z_L, Y)", "return mse_grad(A_L, Y)"), "missing f′(z) factor"),
        ("batch-size factor", _fn("delta_output(A_L, Z_L, Y)", "return 2.0 * (A_L - Y) * sigmoid_prime(Z_L)"),
         "factor of the batch size"),
        ("the 2/N dropped", _fn("delta_output(A_L, Z_L, Y)", "return (A_L - Y) * sigmoid_prime(Z_L)"),
         "the 2/N of the mean squared error left out"),
        ("sign flip", _fn("delta_output(A_L, Z_L, Y)", "return mse_grad(Y, A_L) * sigmoid_prime(Z_L)"), "sign flip"),
        ("σ for σ′", _fn("delta_output(A_L, Z_L, Y)", "return mse_grad(A_L, Y) * sigmoid(Z_L)"),
         "σ(z) instead of σ′(z)"),
        ("σ′ of the activation", _fn("delta_output(A_L, Z_L, Y)", "return mse_grad(A_L, Y) * sigmoid_prime(A_L)"),
         "σ′ evaluated at the activation a instead of z"),
        ("matrix product for ⊙", _fn("delta_output(A_L, Z_L, Y)", """
            dA = mse_grad(A_L, Y)
            return dA @ sigmoid_prime(Z_L).T"""), "matrix product where the element-wise product belongs"),
    ],
    "delta_hidden": [
        ("transposed W", _fn("delta_hidden(delta_next, W_next, Z)",
                             "return (delta_next @ W_next.T) * sigmoid_prime(Z)"), "transposed W"),
        ("missing f'(z)", _fn("delta_hidden(delta_next, W_next, Z)", "return delta_next @ W_next"),
         "missing f′(z) factor"),
        ("sigma for sigma'", _fn("delta_hidden(delta_next, W_next, Z)", "return (delta_next @ W_next) * sigmoid(Z)"),
         "σ(z) instead of σ′(z)"),
        ("sign flip", _fn("delta_hidden(delta_next, W_next, Z)", "return -(delta_next @ W_next) * sigmoid_prime(Z)"),
         "sign flip"),
        ("changes Z in place", _fn("delta_hidden(delta_next, W_next, Z)", """
            Z *= 1.0                   # work in Z's memory ...
            Z[:] = sigmoid_prime(Z)    # ... and overwrite the caller's pre-activations
            return (delta_next @ W_next) * Z"""), "modifies its input", "changed its argument 3 `Z` in place"),
        ("matrix product for ⊙", _fn("delta_hidden(delta_next, W_next, Z)",
                                     "return np.dot(np.dot(delta_next, W_next), sigmoid_prime(Z).T)"),
         "matrix product where the element-wise product belongs"),
        ("divides by N again", _fn("delta_hidden(delta_next, W_next, Z)", """
            N = Z.shape[0]
            return (delta_next @ W_next) * sigmoid_prime(Z) / N"""), "factor of the batch size"),
    ],
    "param_grads": [
        ("transposed", _fn("param_grads(delta, A_prev)", "return A_prev.T @ delta, delta.sum(axis=0)"), "transposed"),
        ("batch-size factor", _fn("param_grads(delta, A_prev)",
                                  "return delta.T @ A_prev / len(delta), delta.mean(axis=0)"),
         "factor of the batch size"),
        ("db not summed", _fn("param_grads(delta, A_prev)", "return delta.T @ A_prev, delta"),
         "∂ℒ/∂b not summed over the batch"),
        ("db summed over the units", _fn("param_grads(delta, A_prev)", "return delta.T @ A_prev, delta.sum(axis=1)"),
         "∂ℒ/∂b summed over the wrong axis"),
        ("db keeps the batch axis", _fn("param_grads(delta, A_prev)", """
            dW = delta.T @ A_prev
            db = np.sum(delta, axis=0, keepdims=True)
            return dW, db"""), "∂ℒ/∂b kept the summed axis"),
        ("sign flip", _fn("param_grads(delta, A_prev)", "return -(delta.T @ A_prev), -delta.sum(axis=0)"),
         "sign flip"),
    ],
    "backward": [
        # the message also names the bug ("missing f′(z) factor"; tests/test_grading.py checks that)
        ("missing f'(z) in hidden layers", _backward(delta_hidden="deltas[l + 1] @ Ws[l + 1]"),
         "missing f′(z) factor", "δ² is wrong; δ³ was right"),
        ("transposed W", _backward(delta_hidden="(deltas[l + 1] @ Ws[l + 1].T) * sigmoid_prime(Zs[l])"),
         "transposed W"),
        ("wrong layer's activations", _backward(dW="deltas[l].T @ As[l + 1]"), "wrong layer's activations"),
        ("batch-size factor", _backward(delta_out="2.0 * (As[L] - Y) * sigmoid_prime(Zs[L - 1])"),
         "factor of the batch size"),
        ("sign flip at the output", _backward(delta_out="2.0 * (Y - As[L]) / X.shape[0] * sigmoid_prime(Zs[L - 1])"),
         "sign flip", "δ³ is wrong"),
        ("σ′ of the activations", _backward(delta_hidden="(deltas[l + 1] @ Ws[l + 1]) * sigmoid_prime(As[l + 1])"),
         "σ′ evaluated at the activation a instead of z"),
        ("weights of the same layer", _backward(delta_hidden="(deltas[l + 1] @ Ws[l]) * sigmoid_prime(Zs[l])"),
         "wrong layer's W"),
        ("layer loop stops before the first layer", _fn("backward(X, Y, Ws, bs)", """
            Zs, As = forward_mlp(X, Ws, bs)
            L = len(Ws)
            deltas = [np.zeros_like(Z) for Z in Zs]
            deltas[L - 1] = 2.0 * (As[L] - Y) / X.shape[0] * sigmoid_prime(Zs[L - 1])
            for l in range(L - 2, 0, -1):
                deltas[l] = (deltas[l + 1] @ Ws[l + 1]) * sigmoid_prime(Zs[l])
            dWs = [deltas[l].T @ As[l] for l in range(L)]
            dbs = [deltas[l].sum(axis=0) for l in range(L)]
            return deltas, dWs, dbs"""), "a layer left out of the backward loop"),
        ("list built without the first layer", _fn("backward(X, Y, Ws, bs)", """
            Zs, As = forward_mlp(X, Ws, bs)
            L = len(Ws)
            deltas = [2.0 * (As[L] - Y) / X.shape[0] * sigmoid_prime(Zs[L - 1])]
            for l in range(L - 2, 0, -1):
                deltas.insert(0, (deltas[0] @ Ws[l + 1]) * sigmoid_prime(Zs[l]))
            dWs = [d.T @ a for d, a in zip(deltas, As[1:])]
            dbs = [d.sum(axis=0) for d in deltas]
            return deltas, dWs, dbs"""), "a layer left out of the backward loop"),
        ("db averaged", _fn("backward(X, Y, Ws, bs)", """
            Zs, As = forward_mlp(X, Ws, bs)
            L = len(Ws)
            deltas = [None] * L
            deltas[L - 1] = 2.0 * (As[L] - Y) / X.shape[0] * sigmoid_prime(Zs[L - 1])
            for l in range(L - 2, -1, -1):
                deltas[l] = (deltas[l + 1] @ Ws[l + 1]) * sigmoid_prime(Zs[l])
            dWs = [deltas[l].T @ As[l] for l in range(L)]
            dbs = [deltas[l].mean(axis=0) for l in range(L)]
            return deltas, dWs, dbs"""), "factor of the batch size", "∂ℒ/∂b"),
    ],
    "numerical_gradient": [
        ("one-sided difference", _fn("numerical_gradient(f, x, eps=1e-6)", """
            grad = np.zeros_like(x, dtype=float)
            f0 = f(x)
            for i in np.ndindex(x.shape):
                old = x[i]
                x[i] = old + eps
                grad[i] = (f(x) - f0) / eps
                x[i] = old
            return grad"""), "one-sided difference"),
        ("input not restored", _fn("numerical_gradient(f, x, eps=1e-6)", """
            grad = np.zeros_like(x, dtype=float)
            for i in np.ndindex(x.shape):
                x[i] += eps
                f_plus = f(x)
                x[i] -= 2 * eps
                f_minus = f(x)
                grad[i] = (f_plus - f_minus) / (2 * eps)
            return grad"""), "input not restored"),
        ("factor of 2", _fn("numerical_gradient(f, x, eps=1e-6)", """
            grad = np.zeros_like(x, dtype=float)
            for i in np.ndindex(x.shape):
                old = x[i]
                x[i] = old + eps
                f_plus = f(x)
                x[i] = old - eps
                f_minus = f(x)
                x[i] = old
                grad[i] = (f_plus - f_minus) / eps
            return grad"""), "factor of 2"),
        ("loops over rows only", _numgrad(loop="range(len(x))", old="x[i].copy()"),
         "perturbs whole rows, not single entries"),
        ("a fixed step", _numgrad(h="1e-4"), "ignores the eps it is given"),
    ],
    "train": [
        ("sign flip", _train(op="+"), "sign flip"),
        ("one minibatch per epoch", _train(stop="batch_size"), "not every minibatch"),
        ("no shuffling", _train(order="np.arange(N)"), "examples not shuffled"),
        ("shuffles with np.random", _train(order="np.random.permutation(N)"), "changes numpy's global random state"),
        ("shuffles with Python's random", "import random\n" + _train(order="np.array(random.sample(range(N), N))"),
         "changes Python's global random state"),
        ("reseeds numpy's global generator from rng",
         _train(order="(np.random.seed(int(rng.integers(2**31))), np.random.permutation(N))[1]"),
         "changes numpy's global random state"),
        ("last minibatch dropped", _train(stop="N - batch_size"), "not every minibatch"),
        ("a generator of its own per epoch", _train(order="np.random.default_rng(epoch).permutation(N)"),
         "ignores the generator it is given"),
        ("updates the caller's weights", _train(copy="", update="""\
            for W, dW in zip(Ws, dWs):
                W -= lr * dW
            for b, db in zip(bs, dbs):
                b -= lr * db"""), "modifies its input", "changed its argument 3 `Ws`"),
        ("replaces the items of the caller's lists", _train(copy="", update="""\
            for l in range(len(Ws)):
                Ws[l] = Ws[l] - lr * dWs[l]
                bs[l] = bs[l] - lr * dbs[l]"""), "modifies its input", "put other objects in the caller's list"),
        ("a loss per minibatch", _fn("train(X, Y, Ws, bs, lr, epochs, batch_size, rng)", """
            Ws, bs = [W.copy() for W in Ws], [b.copy() for b in bs]
            losses = []
            N = X.shape[0]
            for epoch in range(epochs):
                order = rng.permutation(N)
                for start in range(0, N, batch_size):
                    idx = order[start:start + batch_size]
                    _, dWs, dbs = backward(X[idx], Y[idx], Ws, bs)
                    Ws = [W - lr * dW for W, dW in zip(Ws, dWs)]
                    bs = [b - lr * db for b, db in zip(bs, dbs)]
                    losses.append(mse_loss(forward_mlp(X, Ws, bs)[1][-1], Y))
            return Ws, bs, losses"""), "a loss per minibatch, not per epoch"),
    ],
}

# Answers that get their result from a shipped reference instead of computing it: each scores 0
# for its question, with the remark "not accepted: the answer calls …".
DELEGATIONS = {
    "delta_output": [
        ("library layer's backward", _fn("delta_output(A_L, Z_L, Y)", """
            act = nk.Sigmoid()
            act.forward(Z_L)
            return act.backward(mse_grad(A_L, Y))"""), "not accepted"),
    ],
    "delta_hidden": [
        ("autograd", "import torch\n\n\n" + _fn("delta_hidden(delta_next, W_next, Z)", """
            z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)
            z_next = torch.sigmoid(z) @ torch.tensor(W_next, dtype=torch.float64).T
            z_next.backward(torch.tensor(delta_next, dtype=torch.float64))
            return z.grad.numpy()"""), "not accepted"),
    ],
    "param_grads": [
        ("library layer's backward", _fn("param_grads(delta, A_prev)", """
            layer = nk.Linear(A_prev.shape[1], delta.shape[1], rng=0)
            layer.forward(A_prev)
            layer.backward(delta)
            return layer.weight.grad, layer.bias.grad"""), "not accepted"),
    ],
    "backward": [
        ("grading's reference", _fn("backward(X, Y, Ws, bs)", "return G.ref_mlp_backward(X, Y, Ws, bs)"),
         "not accepted"),
    ],
    "numerical_gradient": [
        ("library gradcheck", _fn("numerical_gradient(f, x, eps=1e-6)",
                                  "return nk.gradcheck.numerical_gradient(f, x, h=eps)"), "not accepted"),
    ],
    "train": [
        ("library optimiser in a helper", _fn("_sgd_step(Ws, bs, dWs, dbs, lr)", """
            params = [nk.Parameter(p.copy()) for p in Ws + bs]
            for p, g in zip(params, dWs + dbs):
                p.grad = np.array(g, dtype=float)
            nk.optim.SGD(params, lr=lr).step()
            return [p.data for p in params[:len(Ws)]], [p.data for p in params[len(Ws):]]""") + "\n\n\n" + _fn(
            "train(X, Y, Ws, bs, lr, epochs, batch_size, rng)", """
            Ws, bs = [W.copy() for W in Ws], [b.copy() for b in bs]
            losses = []
            N = X.shape[0]
            for epoch in range(epochs):
                order = rng.permutation(N)
                for start in range(0, N, batch_size):
                    idx = order[start:start + batch_size]
                    _, dWs, dbs = backward(X[idx], Y[idx], Ws, bs)
                    Ws, bs = _sgd_step(Ws, bs, dWs, dbs, lr)
                losses.append(mse_loss(forward_mlp(X, Ws, bs)[1][-1], Y))
            return Ws, bs, losses"""), "not accepted"),
    ],
}
for _question, _entries in DELEGATIONS.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries
