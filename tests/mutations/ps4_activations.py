"""Known wrong answers for problem set 4 (activations, losses, stability) and the feedback each must get.

``MUTATIONS[question] = [(bug class, full source of the planted solution cell, phrase the
feedback must contain), ...]``; see tests/test_assignments.py.
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
