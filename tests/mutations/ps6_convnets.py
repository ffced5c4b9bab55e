"""Known wrong answers for problem set 6 (convolutional networks) and the feedback each must get.

``MUTATIONS[question] = [(bug class, full source of the planted solution cell, phrase the
feedback must contain), ...]``; see tests/test_assignments.py.
"""
from nnkit.grading import conv_checks as C
from nnkit.grading import core

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
         _FORWARD_LOOPS.format(Ho=_GOOD_H, Wo=_GOOD_W, kernel="W[f, :, ::-1, ::-1]"), C.FLIPPED_KERNEL),
        ("stride/padding off by one",
         _FORWARD_LOOPS.format(Ho="(H + 2 * padding - kh) // stride", Wo="(Wd + 2 * padding - kw) // stride",
                               kernel="W[f]"), C.STRIDE_PADDING),
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
                    db[f] += delta'''), C.DW_NOT_SUMMED),
        ("correlation vs convolution (flipped kernel) in dx", _BACKWARD_LOOPS.format(body='''\
                    dW[f] += delta * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += delta * W[f, :, ::-1, ::-1]
                    db[f] += delta'''), C.FLIPPED_KERNEL),
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
''', C.PADDING_NOT_CROPPED),
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
''', C.STRIDE_IGNORED),
        ("correlation vs convolution (flipped kernel)", '''
def conv2d_forward_vectorised(x, W, b, stride=1, padding=0):
    kh, kw = W.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("nchwij,fcij->nfhw", windows, W[:, :, ::-1, ::-1], optimize=True)
    return out + b[None, :, None, None]
''', C.FLIPPED_KERNEL),
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
        ("tied maxima share the gradient", _MAXPOOL.format(body='''\
                    tied = window == window.max()
                    dx[n, c, i * s:i * s + k, j * s:j * s + k] += dout[n, c, i, j] * tied / tied.sum()'''),
         "max-pool gradient not to the argmax", "split the gradient between them"),
        ("argmax unravelled with the stride", _MAXPOOL.format(body='''\
                    r, q = divmod(int(np.argmax(window)), s)
                    if i * s + r < x.shape[2] and j * s + q < x.shape[3]:
                        dx[n, c, i * s + r, j * s + q] += dout[n, c, i, j]'''),
         "pooling assumes stride = kernel size", "the stride stands where the kernel size belongs"),
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
''', C.NO_GRADIENT),
        ("wrong number of outputs", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng), nk.Softmax(), nk.Flatten(start_dim=0),
    )
''', C.BATCH_FLATTENED),
        ("seeds numpy's global generator", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    np.random.seed(int(rng.integers(2**31)))
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng),
    )
''', "changes numpy's global random state"),
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

_VECTORISED = '''
def conv2d_forward_vectorised(x, W, b, stride=1, padding=0):
    kh, kw = W.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3)){steps}
    out = np.einsum("{spec}", windows, W, optimize=True)
    return {result}
'''
_STEPS, _SPEC, _BIAS = "[:, :, ::stride, ::stride]", "nchwij,fcij->nfhw", "out + b[None, :, None, None]"

# More of the mistakes students make, one class each: the padding, the stride, the channels, the
# layout, the bias, integer-valued images, the pooling windows, the network's structure and its generator.
MORE = {
    "conv_forward_loops": [
        ("padding applied twice", '''
def conv2d_forward_loops(x, W, b, stride=1, padding=0):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    p2 = 2 * padding  # padding on both sides
    xp = np.pad(x, ((0, 0), (0, 0), (p2, p2), (p2, p2)))
    Ho = (H + 2 * p2 - kh) // stride + 1
    Wo = (Wd + 2 * p2 - kw) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, f, i, j] = np.sum(window * W[f]) + b[f]
    return out
''', C.PADDING_TWICE),
        ("stride left out of the window's position", '''
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
                    out[n, f, i, j] = np.sum(xp[n, :, i:i + kh, j:j + kw] * W[f]) + b[f]
    return out
''', C.STRIDE_IGNORED),
        ("channel loop overwrites instead of summing", '''
def conv2d_forward_loops(x, W, b, stride=1, padding=0):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (Wd + 2 * padding - kw) // stride + 1
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for c in range(C):
                for i in range(Ho):
                    for j in range(Wo):
                        window = xp[n, c, i * stride:i * stride + kh, j * stride:j * stride + kw]
                        out[n, f, i, j] = np.sum(window * W[f, c]) + b[f]
    return out
''', C.CHANNELS_NOT_SUMMED),
        ("+ 1 inside the floor division",
         _FORWARD_LOOPS.format(Ho="(H + 2 * padding - kh + 1) // stride", Wo="(Wd + 2 * padding - kw + 1) // stride",
                               kernel="W[f]"), C.STRIDE_PADDING),
    ],
    "conv_backward_loops": [
        ("db overwritten for every example", _BACKWARD_LOOPS.format(body='''\
                    dW[f] += delta * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += delta * W[f]
                    db[f] = dout[n, f].sum()''').replace("dxp = np.zeros_like(xp)", "dxp = np.zeros(xp.shape)"),
         C.DW_NOT_SUMMED),
        ("gradients averaged over the batch", _BACKWARD_LOOPS.format(body='''\
                    dW[f] += delta * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += delta * W[f]
                    db[f] += delta''').replace("return dx, dW, db", "return dx, dW / N, db / N"), core.BATCH_FACTOR),
        ("stride left out of the backward windows", '''
def conv2d_backward_loops(dout, x, W, stride=1, padding=0):
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))).astype(float)
    dxp, dW, db = np.zeros_like(xp), np.zeros_like(W), np.zeros(F)
    for n in range(N):
        for f in range(F):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    dW[f] += dout[n, f, i, j] * xp[n, :, i:i + kh, j:j + kw]
                    dxp[n, :, i:i + kh, j:j + kw] += dout[n, f, i, j] * W[f]
                    db[f] += dout[n, f, i, j]
    return dxp[:, :, padding:padding + H, padding:padding + Wd], dW, db
''', C.STRIDE_IGNORED),
        ("padding cropped with [p:-p]", _BACKWARD_LOOPS.format(body='''\
                    dW[f] += delta * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] += delta * W[f]
                    db[f] += delta''').replace("dxp[:, :, padding:padding + H, padding:padding + Wd]",
                                               "dxp[:, :, padding:-padding, padding:-padding]")
         .replace("dxp = np.zeros_like(xp)", "dxp = np.zeros(xp.shape)"), C.EMPTY_CROP),
        ("dx allocated like the integer input", _BACKWARD_LOOPS.format(body='''\
                    dW[f] += delta * xp[n, :, rows, cols]
                    dxp[n, :, rows, cols] = dxp[n, :, rows, cols] + delta * W[f]
                    db[f] += delta'''), C.INTEGER_INPUT),
    ],
    "conv_forward_vectorised": [
        ("output in NHWC order", _VECTORISED.format(steps=_STEPS, spec="nchwij,fcij->nhwf",
                                                    result="out + b"), C.OUTPUT_NHWC),
        ("kernel rows and columns exchanged in the einsum", _VECTORISED.format(steps=_STEPS, spec="nchwij,fcji->nfhw",
                                                                                result=_BIAS), C.KERNEL_TRANSPOSED),
        ("bias broadcast along the last axis", _VECTORISED.format(steps=_STEPS, spec=_SPEC, result="out + b"),
         C.BIAS_WRONG_AXIS),
        ("input not padded", '''
def conv2d_forward_vectorised(x, W, b, stride=1, padding=0):
    kh, kw = W.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("nchwij,fcij->nfhw", windows, W, optimize=True) + b[None, :, None, None]
''', C.PADDING_IGNORED),
        ("result cast back to the input's dtype", _VECTORISED.format(
            steps=_STEPS, spec=_SPEC, result="(out + b[None, :, None, None]).astype(x.dtype)  # keep the caller's dtype"),
         C.INTEGER_INPUT),
        ("stride along the rows only", _VECTORISED.format(steps="[:, :, ::stride]", spec=_SPEC, result=_BIAS),
         C.STRIDE_IGNORED),
    ],
    "maxpool_backward": [
        ("stride left out of the windows", _MAXPOOL.format(body='''\
                    window = x[n, c, i:i + k, j:j + k]
                    r, q = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i + r, j + q] += dout[n, c, i, j]''').replace("np.zeros_like(x)", "np.zeros(x.shape)"),
         C.STRIDE_IGNORED),
        ("dx allocated like the integer input", _MAXPOOL.format(body='''\
                    r, q = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * s + r, j * s + q] += dout[n, c, i, j]'''), C.INTEGER_INPUT),
        ("last of tied maxima", _MAXPOOL.format(body='''\
                    best = (0, 0)
                    for r in range(k):
                        for q in range(k):
                            if window[r, q] >= window[best]:
                                best = (r, q)
                    dx[n, c, i * s + best[0], j * s + best[1]] += dout[n, c, i, j]''').replace(
            "np.zeros_like(x)", "np.zeros(x.shape)"), C.POOL_NOT_ARGMAX),
        ("blocks by reshape: only for stride = kernel", '''
def maxpool_backward(dout, x, kernel_size, stride):
    k = kernel_size
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    blocks = x[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k).transpose(0, 1, 2, 4, 3, 5)
    flat = blocks.reshape(N, C, Ho, Wo, k * k)
    mask = np.zeros_like(flat, dtype=float)
    np.put_along_axis(mask, flat.argmax(axis=-1)[..., None], 1.0, axis=-1)
    grads = mask * dout[..., None]
    dx = np.zeros(x.shape)
    dx[:, :, :Ho * k, :Wo * k] = grads.reshape(N, C, Ho, Wo, k, k).transpose(0, 1, 2, 4, 3, 5).reshape(
        N, C, Ho * k, Wo * k)
    return dx
''', C.POOL_NO_OVERLAP),
        ("window's offset left out of the position", _MAXPOOL.format(body='''\
                    r, q = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, r, q] += dout[n, c, i, j]''').replace(
            "np.zeros_like(x)", "np.zeros(x.shape)"), C.POOL_NOT_ARGMAX),
    ],
    "convnet": [
        ("Conv2d's channel arguments swapped", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(8, 1, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng),
    )
''', C.SIZES_DO_NOT_FIT),
        ("rng not passed to the convolution", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng),
    )
''', core.NOT_REPRODUCIBLE),
        ("softmax at the end", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 4 * 4, 10, rng=rng), nk.Softmax(),
    )
''', C.SOFTMAX_OUTPUT),
        ("no Flatten", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Linear(8 * 4 * 4, 10, rng=rng),
    )
''', C.NO_FLATTEN),
        ("Linear sized for the unpooled maps", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 8, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(8 * 8 * 8, 10, rng=rng),
    )
''', C.SIZES_DO_NOT_FIT),
        ("wide hidden layer", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 32, 3, padding=1, rng=rng), nk.ReLU(), nk.MaxPool2d(2),
        nk.Flatten(), nk.Linear(32 * 4 * 4, 64, rng=rng), nk.ReLU(), nk.Linear(64, 10, rng=rng),
    )
''', C.TOO_BIG),
        ("no pooling", '''
def build_convnet(rng=None):
    rng = nk.get_rng(rng)
    return nk.Sequential(
        nk.Conv2d(1, 4, 3, padding=1, rng=rng), nk.ReLU(),
        nk.Flatten(), nk.Linear(4 * 8 * 8, 10, rng=rng),
    )
''', C.NO_POOL),
    ],
}
for _question, _entries in MORE.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries

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
