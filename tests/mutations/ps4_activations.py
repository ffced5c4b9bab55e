"""Planted student mistakes for problem set 4 (activations, losses, stability).

``MUTATIONS[question] = [(what, full source of the planted solution cell, bug class[, phrase the
feedback must also contain]), ...]``: the class is the grader's name of the bug (a probe's bug or a
diagnosing category), see tests/mutations/__init__.py and tests/feedback_corpus.py.
"""

MUTATIONS = {
    "relu_prime": [
        ("wrong derivative at 0", '''
def relu_prime(z):
    return (z >= 0).astype(np.float64)
''', "wrong derivative at 0"),
        ("sign flip", '''
def relu_prime(z):
    return -(z > 0).astype(np.float64)
''', "sign flip"),
        ("function instead of derivative", '''
def relu_prime(z):
    return np.maximum(z, 0)
''', "the function instead of its derivative"),
        ("np.heaviside with 1 at 0", '''
def relu_prime(z):
    return np.heaviside(z, 1.0)
''', "wrong derivative at 0"),
        ("overwrites z in place", '''
def relu_prime(z):
    z[z <= 0] = 0
    z[z > 0] = 1
    return z
''', "modifies its input", "argument 1 `z`"),
    ],
    "leaky_relu_prime": [
        ("wrong slope", '''
def leaky_relu_prime(z, negative_slope=0.01):
    """ReLU′: no slope for z < 0."""
    return (z > 0).astype(np.float64)
''', "wrong slope"),
        ("wrong derivative at 0", '''
def leaky_relu_prime(z, negative_slope=0.01):
    return np.where(z >= 0, 1.0, negative_slope)
''', "wrong derivative at 0"),
        ("wrong slope (argument ignored)", '''
def leaky_relu_prime(z, negative_slope=0.01):
    return np.where(z > 0, 1.0, 0.01)
''', "wrong slope"),
        ("slope on the positive side", '''
def leaky_relu_prime(z, negative_slope=0.01):
    return np.where(z < 0, 1.0, negative_slope)
''', "wrong slope"),
        ("the function itself", '''
def leaky_relu_prime(z, negative_slope=0.01):
    return np.where(z > 0, z, negative_slope * z)
''', "the function instead of its derivative"),
        ("overwrites z in place", '''
def leaky_relu_prime(z, negative_slope=0.01):
    positive = z > 0
    z[positive] = 1.0
    z[~positive] = negative_slope
    return z
''', "modifies its input", "argument 1 `z`"),
        ("ones_like, slope only below 0", '''
def leaky_relu_prime(z, negative_slope=0.01):
    dz = np.ones_like(z)
    dz[z < 0] = negative_slope
    return dz
''', "wrong derivative at 0"),
    ],
    "tanh_prime": [
        ("wrong derivative", '''
def tanh_prime(z):
    return 1.0 - z * z
''', "wrong derivative"),
        ("sign flip", '''
def tanh_prime(z):
    return np.tanh(z) ** 2 - 1.0
''', "sign flip"),
        ("missing square", '''
def tanh_prime(z):
    return 1.0 - np.tanh(z)
''', "wrong derivative"),
        ("square outside the bracket", '''
def tanh_prime(z):
    return (1.0 - np.tanh(z)) ** 2
''', "wrong derivative"),
        ("tanh from exponentials", '''
def tanh_prime(z):
    t = (np.exp(z) - np.exp(-z)) / (np.exp(z) + np.exp(-z))
    return 1.0 - t ** 2
''', "numerically unstable"),
        ("tanh written into z", '''
def tanh_prime(z):
    np.tanh(z, out=z)
    return 1.0 - z * z
''', "modifies its input", "argument 1 `z`"),
    ],
    "softmax": [
        ("unstable softmax", '''
def softmax(z):
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)
''', "numerically unstable"),
        ("wrong axis", '''
def softmax(z):
    e = np.exp(z - np.max(z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)
''', "wrong axis"),
        ("global maximum subtracted", '''
def softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e, axis=-1, keepdims=True)
''', "numerically unstable"),
        ("normalised over every entry", '''
def softmax(z):
    e = np.exp(z - np.max(z))
    return e / np.sum(e)
''', "wrong axis"),
        ("axis=1 instead of the last axis", '''
def softmax(z):
    e = np.exp(z - np.max(z, axis=1, keepdims=True)) if z.ndim > 1 else np.exp(z - np.max(z))
    return e / (np.sum(e, axis=1, keepdims=True) if z.ndim > 1 else np.sum(e))
''', "wrong axis"),
        ("max subtracted in place", '''
def softmax(z):
    z -= np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=-1, keepdims=True)
''', "modifies its input", "argument 1 `z`"),
        ("keepdims missing in the sum", '''
def softmax(z):
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1)
''', "missing keepdims"),
        ("exp written into an array of z's dtype", '''
def softmax(z):
    shifted = z - np.max(z, axis=-1, keepdims=True)
    np.exp(shifted, out=shifted)
    return shifted / np.sum(shifted, axis=-1, keepdims=True)
''', "integer input not converted to float"),
    ],
    "log_softmax": [
        ("unstable: log of the softmax", '''
def log_softmax(z):
    return np.log(softmax(z))
''', "numerically unstable"),
        ("unstable: no maximum subtracted", '''
def log_softmax(z):
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
''', "numerically unstable"),
        ("the maximum not added back", '''
def log_softmax(z):
    m = np.max(z, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
''', "the maximum subtracted but not added back"),
        ("log of the softmax plus a small epsilon", '''
def log_softmax(z):
    return np.log(softmax(z) + 1e-12)
''', "numerically unstable"),
        ("over every entry", '''
def log_softmax(z):
    m = np.max(z)
    return z - m - np.log(np.sum(np.exp(z - m)))
''', "wrong axis"),
        ("shifted in place", '''
def log_softmax(z):
    z -= np.max(z, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
''', "modifies its input", "argument 1 `z`"),
        ("over axis 0", '''
def log_softmax(z):
    m = np.max(z, axis=0, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=0, keepdims=True))
''', "wrong axis"),
    ],
    "cross_entropy": [
        ("missing 1/N", '''
def cross_entropy(z, y):
    n = z.shape[0]
    logp = log_softmax(z)
    loss = -np.mean(logp[np.arange(n), y])
    dz = np.exp(logp)
    dz[np.arange(n), y] -= 1.0
    return float(loss), dz
''', "factor of the batch size"),
        ("sign flip", '''
def cross_entropy(z, y):
    n = z.shape[0]
    p = softmax(z)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    onehot = np.zeros_like(z)
    onehot[np.arange(n), y] = 1.0
    return float(loss), (onehot - p) / n
''', "sign flip"),
        ("unstable softmax", '''
def cross_entropy(z, y):
    n = z.shape[0]
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dz = p.copy()
    dz[np.arange(n), y] -= 1.0
    return float(loss), dz / n
''', "numerically unstable"),
        ("targets taken as one-hot", '''
def cross_entropy(z, y):
    n = z.shape[0]
    p = softmax(z)
    loss = -np.sum(y * log_softmax(z)) / n
    return float(loss), (p - y) / n
''', "targets taken as one-hot vectors"),
        ("indexed with [:, y]", '''
def cross_entropy(z, y):
    n = z.shape[0]
    logp = log_softmax(z)
    loss = -np.mean(logp[:, y])
    dz = softmax(z)
    dz[np.arange(n), y] -= 1.0
    return float(loss), dz / n
''', "targets picked with [:, y]"),
        ("averaged over the classes too", '''
def cross_entropy(z, y):
    n, c = z.shape
    onehot = np.eye(c)[y]
    loss = -np.mean(onehot * log_softmax(z))
    dz = (softmax(z) - onehot) / (n * c)
    return float(loss), dz
''', "averaged over the classes too"),
        ("summed loss", '''
def cross_entropy(z, y):
    n = z.shape[0]
    logp = log_softmax(z)
    loss = -np.sum(logp[np.arange(n), y])
    dz = np.exp(logp)
    dz[np.arange(n), y] -= 1.0
    return float(loss), dz / n
''', "factor of the batch size"),
        ("logits shifted in place", '''
def cross_entropy(z, y):
    n = z.shape[0]
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(n), y].mean()
    dz = np.exp(logp)
    dz[np.arange(n), y] -= 1.0
    return float(loss), dz / n
''', "modifies its input", "argument 1 `z`"),
    ],
    "bce_with_logits": [
        ("unstable", '''
def bce_with_logits(z, y):
    p = 1.0 / (1.0 + np.exp(-z))
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(loss), (p - y) / z.size
''', "numerically unstable"),
        ("missing 1/N", '''
def bce_with_logits(z, y):
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    return float(loss), nk.functional.sigmoid(z) - y
''', "factor of the batch size"),
        ("sign flip", '''
def bce_with_logits(z, y):
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    return float(loss), (y - nk.functional.sigmoid(z)) / z.size
''', "sign flip"),
        ("unstable for large negative logits", '''
def bce_with_logits(z, y):
    loss = np.mean((1 - y) * z + np.log1p(np.exp(-z)))
    return float(loss), (nk.functional.sigmoid(z) - y) / z.size
''', "numerically unstable"),
        ("divided by the rows, not the entries", '''
def bce_with_logits(z, y):
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    return float(loss), (nk.functional.sigmoid(z) - y) / z.shape[0]
''', "divided by the number of rows, not of entries"),
        ("logits clipped in place", '''
def bce_with_logits(z, y):
    np.clip(z, -30.0, 30.0, out=z)
    p = 1.0 / (1.0 + np.exp(-z))
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(loss), (p - y) / z.size
''', "modifies its input", "argument 1 `z`"),
        ("probabilities clamped by an epsilon", '''
def bce_with_logits(z, y):
    p = nk.functional.sigmoid(z)
    eps = 1e-12
    loss = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
    return float(loss), (p - y) / z.size
''', "numerically unstable"),
        ("gradient in an array like y", '''
def bce_with_logits(z, y):
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    dz = np.zeros_like(y)
    dz[...] = (nk.functional.sigmoid(z) - y) / z.size
    return float(loss), dz
''', "integer input not converted to float"),
    ],
    "toy_gradients": [
        ("sign flip (the slide's sign)", '''
def toy_gradients(w, b, x, y):
    s = 1.0 / (1.0 + np.exp(-(w * x + b)))
    return (y - s) * s * (1.0 - s), s - y
''', "sign flip"),
        ("missing f′(z) factor", '''
def toy_gradients(w, b, x, y):
    s = 1.0 / (1.0 + np.exp(-(w * x + b)))
    return s - y, s - y
''', "missing f′(z) factor"),
        ("∂ℒ/∂w instead of ∂ℒ/∂z", '''
def toy_gradients(w, b, x, y):
    s = 1.0 / (1.0 + np.exp(-(w * x + b)))
    return (s - y) * s * (1.0 - s) * x, (s - y) * x
''', "∂ℒ/∂w instead of ∂ℒ/∂z"),
        ("MSE without the ½", '''
def toy_gradients(w, b, x, y):
    s = 1.0 / (1.0 + np.exp(-(w * x + b)))
    return 2.0 * (s - y) * s * (1.0 - s), s - y
''', "factor of 2"),
        ("math.exp overflows", '''
import math


def toy_gradients(w, b, x, y):
    s = 1.0 / (1.0 + math.exp(-(w * x + b)))
    return (s - y) * s * (1.0 - s), s - y
''', "numerically unstable"),
    ],
}

# Answers that get their result from a shipped reference instead of computing it: each scores 0
# for its question, with the remark "not accepted: the answer calls …".
DELEGATIONS = {
    "relu_prime": [
        ("library layer in a helper", '''
def _derivative(layer, z):
    """f′(z) from a layer: its backward of a gradient of ones."""
    layer.forward(z)
    return layer.backward(np.ones_like(z))


def relu_prime(z):
    return _derivative(nk.ReLU(), z)
''', "not accepted"),
    ],
    "leaky_relu_prime": [
        ("autograd", '''
import torch


def leaky_relu_prime(z, negative_slope=0.01):
    t = torch.tensor(np.asarray(z, dtype=float), requires_grad=True)
    torch.nn.functional.leaky_relu(t, negative_slope).sum().backward()
    return t.grad.numpy()
''', "not accepted"),
    ],
    "tanh_prime": [
        ("library layer's backward", '''
def tanh_prime(z):
    layer = nk.Tanh()
    layer.forward(z)
    return layer.backward(np.ones_like(z))
''', "not accepted"),
    ],
    "softmax": [
        ("reference under an alias", '''
from nnkit.functional import softmax as sm


def softmax(z):
    return sm(z)
''', "not accepted"),
    ],
    "log_softmax": [
        ("PyTorch", '''
import torch


def log_softmax(z):
    return torch.log_softmax(torch.as_tensor(z), dim=-1).numpy()
''', "not accepted"),
    ],
    "cross_entropy": [
        ("library loss", '''
def cross_entropy(z, y):
    loss_fn = nk.CrossEntropyLoss()
    loss = loss_fn.forward(z, y)
    return float(loss), loss_fn.backward()
''', "not accepted"),
    ],
    "bce_with_logits": [
        ("autograd", '''
import torch


def bce_with_logits(z, y):
    t = torch.tensor(np.asarray(z, dtype=float), requires_grad=True)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(t, torch.as_tensor(np.asarray(y, dtype=float)))
    loss.backward()
    return float(loss), t.grad.numpy()
''', "not accepted"),
    ],
    "toy_gradients": [
        ("grading's reference", '''
def toy_gradients(w, b, x, y):
    d_mse, d_ce = G._toy_reference(w, b, x, y)
    return d_mse, d_ce
''', "not accepted"),
    ],
}
for _question, _entries in DELEGATIONS.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries
