"""Known wrong answers to problem set 1 and what the feedback must call them."""
from textwrap import dedent


def _fn(signature: str, body: str) -> str:
    return dedent(f"def {signature}:\n") + "\n".join("    " + line for line in dedent(body).strip().splitlines())


MUTATIONS = {
    "sigmoid": [
        ("sign flip", _fn("sigmoid(z)", "return 1.0 / (1.0 + np.exp(z))"), "sign flip"),
        ("numerically unstable", _fn("sigmoid(z)", "return np.exp(z) / (1.0 + np.exp(z))"), "numerically unstable"),
        ("stable branches swapped", _fn("sigmoid(z)", """
            z = np.asarray(z, dtype=float)
            return np.where(z >= 0, np.exp(z) / (1.0 + np.exp(z)), 1.0 / (1.0 + np.exp(-z)))"""),
         "numerically unstable"),
        ("math.exp element by element", _fn("sigmoid(z)", """
            import math
            return np.array([1.0 / (1.0 + math.exp(-v)) for v in np.ravel(z)]).reshape(np.shape(z))"""),
         "numerically unstable"),
        ("stable version written into z", _fn("sigmoid(z)", """
            pos = z >= 0
            neg = ~pos
            z[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
            e = np.exp(z[neg])
            z[neg] = e / (1.0 + e)
            return z"""), "modifies its input", "changed its argument 1 `z` in place"),
        ("output array of the input's dtype", _fn("sigmoid(z)", """
            z = np.asarray(z)
            out = np.empty_like(z)
            pos = z >= 0
            out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
            e = np.exp(z[~pos])
            out[~pos] = e / (1.0 + e)
            return out"""), "result kept the integer dtype of the input"),
    ],
    "sigmoid_prime": [
        ("missing factor", _fn("sigmoid_prime(z)", "return sigmoid(z)"), "missing the factor (1 − σ(z))"),
        ("z for sigma", _fn("sigmoid_prime(z)", "return z * (1 - z)"), "used z where σ(z) belongs"),
        ("sign flip", _fn("sigmoid_prime(z)", "s = sigmoid(z)\nreturn s * (s - 1)"), "sign flip"),
        ("tanh's derivative", _fn("sigmoid_prime(z)", "return 1.0 - sigmoid(z) ** 2"),
         "1 − σ(z)², the derivative of tanh"),
        ("closed form that overflows", _fn("sigmoid_prime(z)", """
            e = np.exp(-z)
            return e / (1.0 + e) ** 2"""), "numerically unstable"),
    ],
    "forward": [
        ("transposed W", _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = X @ W1 + b1
            A1 = sigmoid(Z1)
            return Z1, A1, A1 @ W2 + b2"""), "transposed W"),
        ("output activation", _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = X @ W1.T + b1
            A1 = sigmoid(Z1)
            return Z1, A1, sigmoid(A1 @ W2.T + b2)"""), "σ applied to the output layer"),
        ("missing hidden activation", _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = X @ W1.T + b1
            A1 = sigmoid(Z1)
            return Z1, A1, Z1 @ W2.T + b2"""), "missing σ on the hidden layer"),
        ("missing bias", _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = X @ W1.T
            A1 = sigmoid(Z1)
            return Z1, A1, A1 @ W2.T"""), "missing bias"),
        ("examples as columns", _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = W1 @ X.T + b1[:, None]
            A1 = sigmoid(Z1)
            return Z1, A1, W2 @ A1 + b2[:, None]"""), "transposed"),
        ("output bias forgotten", _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = X @ W1.T + b1
            A1 = sigmoid(Z1)
            Y_hat = A1 @ W2.T
            return Z1, A1, Y_hat"""), "missing bias"),
        ("returns in the wrong order", _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = X @ W1.T + b1
            A1 = sigmoid(Z1)
            return A1, Z1, A1 @ W2.T + b2"""), "Z1 and A1 returned in the wrong order"),
    ],
    "mse_grad": [
        ("sign flip", _fn("mse_grad(Y_hat, Y)", "return 2.0 * (Y - Y_hat) / Y_hat.shape[0]"), "sign flip"),
        ("batch-size factor", _fn("mse_grad(Y_hat, Y)", "return 2.0 * (Y_hat - Y)"), "factor of the batch size"),
        ("mean over outputs", _fn("mse_grad(Y_hat, Y)", "return 2.0 * (Y_hat - Y) / Y_hat.size"),
         "averaged over the outputs"),
        ("missing 2", _fn("mse_grad(Y_hat, Y)", "return (Y_hat - Y) / Y_hat.shape[0]"), "factor of 2"),
        ("the difference alone", _fn("mse_grad(Y_hat, Y)", "return Y_hat - Y"),
         "the 2/N of the mean squared error left out"),
        ("averaged over the batch axis", _fn("mse_grad(Y_hat, Y)", "return np.mean(2.0 * (Y_hat - Y), axis=0)"),
         "gradient reduced over the examples"),
        ("the loss instead of its gradient", _fn("mse_grad(Y_hat, Y)",
                                                 "return np.sum((Y_hat - Y) ** 2) / Y_hat.shape[0]"),
         "returned the loss, not its gradient"),
        ("subtracts in place", _fn("mse_grad(Y_hat, Y)", """
            Y_hat -= Y
            return 2.0 * Y_hat / Y_hat.shape[0]"""), "modifies its input", "changed its argument 1 `Y_hat` in place"),
    ],
    "output_layer_grads": [
        ("transposed", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = mse_grad(Y_hat, Y)
            return A1.T @ G, G.sum(axis=0)"""), "transposed"),
        ("batch-size factor", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = 2.0 * (Y_hat - Y)
            return G.T @ A1, G.sum(axis=0)"""), "factor of the batch size"),
        ("db not summed", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = mse_grad(Y_hat, Y)
            return G.T @ A1, G"""), "∂ℒ/∂b not summed over the batch"),
        ("sign flip", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = mse_grad(Y, Y_hat)
            return G.T @ A1, G.sum(axis=0)"""), "sign flip"),
        ("db averaged over the batch", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = mse_grad(Y_hat, Y)
            return G.T @ A1, G.mean(axis=0)"""), "factor of the batch size"),
        ("db summed over the outputs", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = mse_grad(Y_hat, Y)
            return G.T @ A1, np.sum(G, axis=1)"""), "∂ℒ/∂b summed over the wrong axis"),
        ("db keeps the batch axis", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = mse_grad(Y_hat, Y)
            dW2 = G.T @ A1
            db2 = np.sum(G, axis=0, keepdims=True)
            return dW2, db2"""), "∂ℒ/∂b kept the summed axis"),
    ],
    "gradient_step": [
        ("sign flip", _fn("gradient_step(params, grads, lr)", "return [p + lr * g for p, g in zip(params, grads)]"),
         "sign flip"),
        ("learning rate not applied", _fn("gradient_step(params, grads, lr)",
                                          "return [p - g for p, g in zip(params, grads)]"), "learning rate not applied"),
        ("returns nothing", _fn("gradient_step(params, grads, lr)", """
            for p, g in zip(params, grads):
                p -= lr * g"""), "modifies its input", "returned None"),
        ("updates the caller's weights", _fn("gradient_step(params, grads, lr)", """
            for p, g in zip(params, grads):
                p -= lr * g
            return params"""), "modifies its input", "changed its argument 1 `params` in place"),
        ("replaces the items of the caller's list", _fn("gradient_step(params, grads, lr)", """
            for i in range(len(params)):
                params[i] = params[i] - lr * grads[i]
            return params"""), "modifies its input", "put other objects in the caller's list"),
        ("last parameter skipped", _fn("gradient_step(params, grads, lr)", """
            new = [p.copy() for p in params]
            for i in range(len(params) - 1):
                new[i] = params[i] - lr * grads[i]
            return new"""), "a parameter left out of the update"),
        ("loop starts at 1", _fn("gradient_step(params, grads, lr)", """
            new = []
            for i in range(1, len(params)):
                new.append(params[i] - lr * grads[i])
            return new"""), "a parameter left out of the update"),
    ],
}

# Answers that get their result from a shipped reference instead of computing it: each scores 0
# for its question, with the remark "not accepted: the answer calls …".
DELEGATIONS = {
    "sigmoid": [
        ("calls the reference", _fn("sigmoid(z)", "return nk.functional.sigmoid(z)"), "not accepted"),
    ],
    "sigmoid_prime": [
        ("autograd", "import torch\n\n\n" + _fn("sigmoid_prime(z)", """
            t = torch.tensor(np.asarray(z, dtype=float), requires_grad=True)
            torch.sigmoid(t).sum().backward()
            return t.grad.numpy()"""), "not accepted"),
    ],
    "forward": [
        ("reference in a helper", "import torch\n\n\n" + _fn("_linear(A, W, b)", """
            return torch.nn.functional.linear(torch.as_tensor(A), torch.as_tensor(W), torch.as_tensor(b)).numpy()
            """) + "\n\n\n" + _fn("forward(X, W1, b1, W2, b2)", """
            Z1 = _linear(X, W1, b1)
            A1 = sigmoid(Z1)
            return Z1, A1, _linear(A1, W2, b2)"""), "not accepted"),
    ],
    "mse_grad": [
        ("library loss", _fn("mse_grad(Y_hat, Y)", """
            loss = nk.MSELoss(reduction="sum")
            loss.forward(Y_hat, Y)
            return loss.backward() / Y_hat.shape[0]"""), "not accepted"),
    ],
    "output_layer_grads": [
        ("grading's reference", _fn("output_layer_grads(A1, Y_hat, Y)",
                                    "return G.ref_output_layer_grads(A1, Y_hat, Y)"), "not accepted"),
    ],
    "gradient_step": [
        ("library optimiser under an alias", "from nnkit.optim import SGD as Optimiser\n\n\n" + _fn(
            "gradient_step(params, grads, lr)", """
            ps = [nk.Parameter(np.array(p, dtype=float)) for p in params]
            for p, g in zip(ps, grads):
                p.grad = np.array(g, dtype=float)
            Optimiser(ps, lr=lr).step()
            return [p.data for p in ps]"""), "not accepted"),
    ],
}
for _question, _entries in DELEGATIONS.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries
