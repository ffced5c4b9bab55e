"""Known wrong answers for problem set 6 (convolutional networks) and the feedback each must get.

``MUTATIONS[question] = [(bug class, full source of the planted solution cell, phrase the
feedback must contain), ...]``; see tests/test_assignments.py.
"""

_FORWARD_LOOPS = '''
def conv2d_forward_loops(x, W, b, stride=1, padding=0):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = {Ho}
    Wo = {Wo}
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, f, i, j] = np.sum(window * {kernel}) + b[f]
    return out
'''
_GOOD_H, _GOOD_W = "(H + 2 * padding - kh) // stride + 1", "(Wd + 2 * padding - kw) // stride + 1"

_BACKWARD_LOOPS = '''
def conv2d_backward_loops(dout, x, W, stride=1, padding=0):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    db = np.zeros(F)
    _, _, Ho, Wo = dout.shape
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    rows = slice(i * stride, i * stride + kh)
                    cols = slice(j * stride, j * stride + kw)
                    delta = dout[n, f, i, j]
{body}
    dx = dxp[:, :, padding:padding + H, padding:padding + Wd]
    return dx, dW, db
'''

_MAXPOOL = '''
def maxpool_backward(dout, x, kernel_size, stride):
    k, s = kernel_size, stride
    N, C, Ho, Wo = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * s:i * s + k, j * s:j * s + k]
{body}
    return dx
'''

MUTATIONS = {
    "conv_forward_loops": [
        ("correlation vs convolution (flipped kernel)",
         _FORWARD_LOOPS.format(Ho=_GOOD_H, Wo=_GOOD_W, kernel="W[f, :, ::-1, ::-1]"), "flipped kernel"),
        ("stride/padding off by one",
         _FORWARD_LOOPS.format(Ho="(H + 2 * padding - kh) // stride", Wo="(Wd + 2 * padding - kw) // stride",
                               kernel="W[f]"), "stride/padding off by one"),
        ("bias missing", '''
def conv2d_forward_loops(x, W, b, stride=1, padding=0):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (Wd + 2 * padding - kw) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, f, i, j] = np.sum(window * W[f])
    return out
''', "bias missing"),
    ],
    "conv_backward_loops": [
        ("missing accumulation in dW over the batch", _BACKWARD_LOOPS.format(body='''\
                    dW[f] = delta * xp[n, :, rows, cols] if (i, j) == (0, 0) else dW[f] + delta * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += delta * W[f]
                    db[f] += delta'''), "missing accumulation in dW over the batch"),
        ("correlation vs convolution (flipped kernel) in dx", _BACKWARD_LOOPS.format(body='''\
                    dW[f] += delta * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += delta * W[f, :, ::-1, ::-1]
                    db[f] += delta'''), "flipped kernel"),
        ("padding not removed from dx", '''
def conv2d_backward_loops(dout, x, W, stride=1, padding=0):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    db = np.zeros(F)
    _, _, Ho, Wo = dout.shape
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    rows = slice(i * stride, i * stride + kh)
                    cols = slice(j * stride, j * stride + kw)
                    dW[f] += dout[n, f, i, j] * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += dout[n, f, i, j] * W[f]
                    db[f] += dout[n, f, i, j]
    return dxp, dW, db
''', "stride/padding off by one"),
    ],
    "conv_forward_vectorised": [
        ("not vectorised", '''
def conv2d_forward_vectorised(x, W, b, stride=1, padding=0):
    """Still the loops."""
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (Wd + 2 * padding - kw) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, f, i, j] = np.sum(window * W[f]) + b[f]
    return out
''', "not vectorised"),
        ("stride ignored", '''
def conv2d_forward_vectorised(x, W, b, stride=1, padding=0):
    kh, kw = W.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    out = np.einsum("nchwij,fcij->nfhw", windows, W, optimize=True)
    return out + b[None, :, None, None]
''', "stride/padding off by one"),
        ("correlation vs convolution (flipped kernel)", '''
def conv2d_forward_vectorised(x, W, b, stride=1, padding=0):
    kh, kw = W.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwij,fcij->nfhw", windows, W[:, :, ::-1, ::-1], optimize=True)
    return out + b[None, :, None, None]
''', "flipped kernel"),
    ],
    "maxpool_backward": [
        ("max-pool gradient to every position", _MAXPOOL.format(body='''\
                    dx[n, c, i * s:i * s + k, j * s:j * s + k] += dout[n, c, i, j]'''),
         "max-pool gradient to every position"),
        ("max-pool gradient not to the argmax (all tied maxima)", _MAXPOOL.format(body='''\
                    dx[n, c, i * s:i * s + k, j * s:j * s + k] += dout[n, c, i, j] * (window == window.max())'''),
         "max-pool gradient not to the argmax"),
        ("max-pool gradient not to the argmax (wrong index)", _MAXPOOL.format(body='''\
                    r, q = np.unravel_index(np.argmax(window), (k, k))
                    dx[n, c, i * s + q, j * s + r] += dout[n, c, i, j]'''),
         "max-pool gradient not to the argmax"),
        ("no accumulation for overlapping windows", _MAXPOOL.format(body='''\
                    r, q = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * s + r, j * s + q] = dout[n, c, i, j]'''),
         "no accumulation under fan-out"),
    ],
    "convnet": [
        ("no convolution", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(nk.Flatten(), nk.Linear(64, 32, rng=rng), nk.ReLU(), nk.Linear(32, 10, rng=rng))
''', "no Conv2d layer"),
        ("cannot learn (step activation)", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.Step(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng),
    )
''', "test accuracy too low"),
        ("wrong number of outputs", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng), nk.Softmax(), nk.Flatten(start_dim=0),
    )
''', "wrong shape"),
        ("ignores rng", '''
def build_convnet(rng=None):
    rng = np.random.default_rng(0)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng),
    )
''', "ignores the generator it is given"),
    ],
}

# Answers that get their result from a shipped reference instead of computing it: each scores 0
# for its question, with the remark "not accepted: the answer calls …". build_convnet builds from
# nnkit's layers, as it should; its delegating answer returns one of nnkit's ready-made models.
DELEGATIONS = {
    "conv_forward_loops": [
        ("PyTorch", '''
import torch


def conv2d_forward_loops(x, W, b, stride=1, padding=0):
    return torch.nn.functional.conv2d(torch.as_tensor(x), torch.as_tensor(W), torch.as_tensor(b),
                                      stride=stride, padding=padding).numpy()
''', "not accepted"),
    ],
    "conv_backward_loops": [
        ("grading's reference", '''
def conv2d_backward_loops(dout, x, W, stride=1, padding=0):
    return G._ref_backward(dout, x, W, stride, padding)
''', "not accepted"),
    ],
    "conv_forward_vectorised": [
        ("library convolution", '''
def conv2d_forward_vectorised(x, W, b, stride=1, padding=0):
    return nk.functional.conv2d(x, W, b, stride, padding)
''', "not accepted"),
    ],
    "maxpool_backward": [
        ("library pooling in a helper", '''
from nnkit.functional.conv import maxpool2d_backward_naive, maxpool2d_forward_naive


def _route(dout, x, k, s):
    _, cache = maxpool2d_forward_naive(x, k, s)
    return maxpool2d_backward_naive(dout, cache)


def maxpool_backward(dout, x, kernel_size, stride):
    return _route(dout, x, kernel_size, stride)
''', "not accepted"),
    ],
    "convnet": [
        ("library model", '''
def build_convnet(rng=None):
    """A small convnet: (N, 1, 8, 8) images → (N, 10) logits."""
    rng = nk.get_rng(rng)
    return nk.models.lenet_digits(rng, channels=(8, 16), hidden=32)
''', "not accepted"),
    ],
}
for _question, _entries in DELEGATIONS.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries
