"""Known wrong answers to problem set 1 and what the feedback must call them."""
from textwrap import dedent


def _fn(signature: str, body: str) -> str:
    return dedent(f"def {signature}:\n") + "\n".join("    " + line for line in dedent(body).strip().splitlines())


MUTATIONS = {
    "sigmoid": [
        ("sign flip", _fn("sigmoid(z)", "return 1.0 / (1.0 + np.exp(z))"), "sign flip"),
        ("numerically unstable", _fn("sigmoid(z)", "return np.exp(z) / (1.0 + np.exp(z))"), "numerically unstable"),
    ],
    "sigmoid_prime": [
        ("missing factor", _fn("sigmoid_prime(z)", "return sigmoid(z)"), "missing the factor (1 − σ(z))"),
        ("z for sigma", _fn("sigmoid_prime(z)", "return z * (1 - z)"), "used z where σ(z) belongs"),
        ("sign flip", _fn("sigmoid_prime(z)", "s = sigmoid(z)\nreturn s * (s - 1)"), "sign flip"),
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
    ],
    "mse_grad": [
        ("sign flip", _fn("mse_grad(Y_hat, Y)", "return 2.0 * (Y - Y_hat) / Y_hat.shape[0]"), "sign flip"),
        ("batch-size factor", _fn("mse_grad(Y_hat, Y)", "return 2.0 * (Y_hat - Y)"), "factor of the batch size"),
        ("mean over outputs", _fn("mse_grad(Y_hat, Y)", "return 2.0 * (Y_hat - Y) / Y_hat.size"),
         "averaged over the outputs"),
        ("missing 2", _fn("mse_grad(Y_hat, Y)", "return (Y_hat - Y) / Y_hat.shape[0]"), "factor of 2"),
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
            return G.T @ A1, G"""), "not summed over the batch"),
        ("sign flip", _fn("output_layer_grads(A1, Y_hat, Y)", """
            G = mse_grad(Y, Y_hat)
            return G.T @ A1, G.sum(axis=0)"""), "sign flip"),
    ],
    "gradient_step": [
        ("sign flip", _fn("gradient_step(params, grads, lr)", "return [p + lr * g for p, g in zip(params, grads)]"),
         "sign flip"),
        ("learning rate not applied", _fn("gradient_step(params, grads, lr)",
                                          "return [p - g for p, g in zip(params, grads)]"), "learning rate not applied"),
        ("returns nothing", _fn("gradient_step(params, grads, lr)", """
            for p, g in zip(params, grads):
                p -= lr * g"""), "returned None"),
        ("updates the caller's weights", _fn("gradient_step(params, grads, lr)", """
            for p, g in zip(params, grads):
                p -= lr * g
            return params"""), "changed its argument 1 `params` in place"),
    ],
}
