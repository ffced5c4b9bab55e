"""Known wrong answers for problem set 7 (deriving backward passes) and the feedback each must get.

``MUTATIONS[question] = [(bug class, full source of the planted solution cell, phrase the
feedback must contain), ...]``; see tests/test_assignments.py.
"""
from nnkit.grading import core
from nnkit.grading import derivations as D

_BN_HEAD = '''
def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
'''

MUTATIONS = {
    "batchnorm_forward": [
        ("biased running variance", _BN_HEAD + '''
    if training:
        mu, var = x.mean(axis=0), x.var(axis=0)
        out = gamma * (x - mu) / np.sqrt(var + eps) + beta
        return out, (1 - momentum) * running_mean + momentum * mu, (1 - momentum) * running_var + momentum * var
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, running_mean, running_var
''', "biased variance in the running estimate"),
        ("momentum convention reversed", _BN_HEAD + '''
    if training:
        n = x.shape[0]
        mu, var = x.mean(axis=0), x.var(axis=0)
        out = gamma * (x - mu) / np.sqrt(var + eps) + beta
        return (out, momentum * running_mean + (1 - momentum) * mu,
                momentum * running_var + (1 - momentum) * var * n / (n - 1))
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, running_mean, running_var
''', "momentum convention reversed"),
        ("batch statistics in evaluation mode", _BN_HEAD + '''
    n = x.shape[0]
    mu, var = x.mean(axis=0), x.var(axis=0)
    out = gamma * (x - mu) / np.sqrt(var + eps) + beta
    if not training:
        return out, running_mean, running_var
    return (out, (1 - momentum) * running_mean + momentum * mu,
            (1 - momentum) * running_var + momentum * var * n / (n - 1))
''', "batch statistics in evaluation mode"),
        ("unbiased variance in the normalisation", _BN_HEAD + '''
    if training:
        mu, var = x.mean(axis=0), x.var(axis=0, ddof=1)
        out = gamma * (x - mu) / np.sqrt(var + eps) + beta
        return out, (1 - momentum) * running_mean + momentum * mu, (1 - momentum) * running_var + momentum * var
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, running_mean, running_var
''', "unbiased variance in the normalisation"),
        ("running statistics updated in place", _BN_HEAD + '''
    if training:
        n = x.shape[0]
        mu, var = x.mean(axis=0), x.var(axis=0)
        out = gamma * (x - mu) / np.sqrt(var + eps) + beta
        running_mean *= 1 - momentum          # as torch.nn.BatchNorm1d does with its buffers
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * n / (n - 1)
        return out, running_mean, running_var
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, running_mean.copy(), running_var.copy()
''', core.MODIFIES_INPUT,
         "changed its argument 4 `running_mean` and argument 5 `running_var` in place"),
    ],
    "batchnorm_backward": [
        ("batch statistics treated as constants", '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    xhat = (x - x.mean(axis=0)) * inv_std
    return dout * gamma * inv_std, (dout * xhat).sum(axis=0), dout.sum(axis=0)
''', "batch mean and variance treated as constants"),
        ("variance treated as a constant", '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    xhat = (x - x.mean(axis=0)) * inv_std
    g = dout * gamma
    return inv_std * (g - g.mean(axis=0)), (dout * xhat).sum(axis=0), dout.sum(axis=0)
''', "batch variance treated as a constant"),
        ("dγ without x̂", '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    xhat = (x - x.mean(axis=0)) * inv_std
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    return dx, dout.sum(axis=0), dout.sum(axis=0)
''', "dγ without the normalised input"),
        ("dβ averaged over the batch", '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    xhat = (x - x.mean(axis=0)) * inv_std
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.mean(axis=0)
''', "factor of the batch size"),
    ],
    "silu_prime": [
        ("product rule: a term missing", '''
def silu_prime(z):
    return sigmoid(z)
''', "product rule: a term is missing"),
        ("function instead of derivative", '''
def silu_prime(z):
    return z * sigmoid(z)
''', "the function instead of its derivative"),
        ("unstable", '''
def silu_prime(z):
    e = np.exp(-z)
    return (1.0 + e + z * e) / (1.0 + e) ** 2
''', "numerically unstable"),
    ],
    "huber_loss": [
        ("quadratic branch everywhere", '''
def huber_loss(z, y, delta=1.0):
    r = z - y
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))
    return float(loss.mean()), r / r.size
''', "quadratic branch used everywhere"),
        ("delta ignored in the linear branch", '''
def huber_loss(z, y, delta=1.0):
    r = z - y
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))
    return float(loss.mean()), np.where(small, r, np.sign(r)) / r.size
''', "delta ignored in the linear branch"),
        ("missing 1/N", '''
def huber_loss(z, y, delta=1.0):
    r = z - y
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))
    return float(loss.mean()), np.where(small, r, delta * np.sign(r))
''', "factor of the batch size"),
        ("sign flip", '''
def huber_loss(z, y, delta=1.0):
    r = y - z
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))
    return float(loss.mean()), np.where(small, r, delta * np.sign(r)) / r.size
''', "sign flip"),
    ],
    "conv_input_grad": [
        ("kernel not flipped", '''
def conv2d_input_grad(dout, W, x_shape, stride=1, padding=0):
    N, F, Ho, Wo = dout.shape
    kh, kw = W.shape[2:]
    Hp, Wp = x_shape[2] + 2 * padding, x_shape[3] + 2 * padding
    d = np.zeros((N, F, Hp - kh + 1, Wp - kw + 1))
    d[:, :, ::stride, ::stride][:, :, :Ho, :Wo] = dout
    d = np.pad(d, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    dxp = correlate2d_valid(d, W.transpose(1, 0, 2, 3))
    return dxp[:, :, padding:padding + x_shape[2], padding:padding + x_shape[3]]
''', "kernel not flipped"),
        ("padding not cropped", '''
def conv2d_input_grad(dout, W, x_shape, stride=1, padding=0):
    N, F, Ho, Wo = dout.shape
    kh, kw = W.shape[2:]
    Hp, Wp = x_shape[2] + 2 * padding, x_shape[3] + 2 * padding
    d = np.zeros((N, F, Hp - kh + 1, Wp - kw + 1))
    d[:, :, ::stride, ::stride][:, :, :Ho, :Wo] = dout
    d = np.pad(d, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    return correlate2d_valid(d, W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
''', "padding not cropped"),
        ("filter and channel axes not swapped", '''
def conv2d_input_grad(dout, W, x_shape, stride=1, padding=0):
    N, F, Ho, Wo = dout.shape
    kh, kw = W.shape[2:]
    Hp, Wp = x_shape[2] + 2 * padding, x_shape[3] + 2 * padding
    d = np.zeros((N, F, Hp - kh + 1, Wp - kw + 1))
    d[:, :, ::stride, ::stride][:, :, :Ho, :Wo] = dout
    d = np.pad(d, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    dxp = correlate2d_valid(d, W[:, :, ::-1, ::-1])
    return dxp[:, :, padding:padding + x_shape[2], padding:padding + x_shape[3]]
''', "filter and channel axes not swapped"),
        ("stride not handled", '''
def conv2d_input_grad(dout, W, x_shape, stride=1, padding=0):
    kh, kw = W.shape[2:]
    d = np.pad(dout, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    dxp = correlate2d_valid(d, W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return dxp[:, :, padding:padding + x_shape[2], padding:padding + x_shape[3]]
''', D.STRIDE_NOT_DILATED),
    ],
    "predict_scales": [
        ("ReLU's ½ missing", '''
def predict_scales(widths, gain, activation):
    L = len(widths) - 1
    z = [gain ** (l + 1) for l in range(L)]
    d = [1.0]
    for l in range(L - 1, 0, -1):
        d.insert(0, d[0] * gain * np.sqrt(widths[l + 1] / widths[l]))
    return z, d
''', "ReLU's factor ½ missing"),
        ("fan-in used for δ", '''
def predict_scales(widths, gain, activation):
    f2 = 0.5 if activation == "relu" else 1.0
    L = len(widths) - 1
    z2 = [gain ** 2]
    for l in range(1, L):
        z2.append(gain ** 2 * f2 * z2[-1])
    d2 = [f2]
    for l in range(L - 1, 0, -1):
        d2.insert(0, gain ** 2 * f2 * d2[0])
    return [float(np.sqrt(v)) for v in z2], [float(np.sqrt(v)) for v in d2]
''', D.FAN_IN_FOR_DELTA),
    ],
    "measure_scales": [
        ("missing f′(z) factor", '''
def measure_scales(X, Ws, G, activation):
    f = (lambda z: np.maximum(z, 0)) if activation == "relu" else (lambda z: z)
    Zs, A = [], X
    for W in Ws:
        Zs.append(A @ W.T)
        A = f(Zs[-1])
    fp = (Zs[-1] > 0) if activation == "relu" else 1.0
    deltas = [G * fp]
    for l in range(len(Ws) - 2, -1, -1):
        deltas.insert(0, deltas[0] @ Ws[l + 1])
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))
    return [rms(z) for z in Zs], [rms(d) for d in deltas]
''', "missing f′(z) factor"),
        ("transposed W", '''
def measure_scales(X, Ws, G, activation):
    f = (lambda z: np.maximum(z, 0)) if activation == "relu" else (lambda z: z)
    fp = (lambda z: (z > 0).astype(float)) if activation == "relu" else (lambda z: np.ones_like(z))
    Zs, A = [], X
    for W in Ws:
        Zs.append(A @ W.T)
        A = f(Zs[-1])
    deltas = [G * fp(Zs[-1])]
    for l in range(len(Ws) - 2, -1, -1):
        deltas.insert(0, (deltas[0] @ Ws[l + 1].T) * fp(Zs[l]))
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))
    return [rms(z) for z in Zs], [rms(d) for d in deltas]
''', "transposed W"),
        ("standard deviation instead of RMS", '''
def measure_scales(X, Ws, G, activation):
    f = (lambda z: np.maximum(z, 0)) if activation == "relu" else (lambda z: z)
    fp = (lambda z: (z > 0).astype(float)) if activation == "relu" else (lambda z: np.ones_like(z))
    Zs, A = [], X
    for W in Ws:
        Zs.append(A @ W.T)
        A = f(Zs[-1])
    deltas = [G * fp(Zs[-1])]
    for l in range(len(Ws) - 2, -1, -1):
        deltas.insert(0, (deltas[0] @ Ws[l + 1]) * fp(Zs[l]))
    return [float(np.std(z)) for z in Zs], [float(np.std(d)) for d in deltas]
''', "standard deviation instead of root mean square"),
    ],
}

_BN_BACKWARD = '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    inv_std = 1.0 / np.sqrt({var} + eps)
    xhat = (x - x.mean(axis=0)) * inv_std
    g = {g}
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))
    return dx, {dgamma}, {dbeta}
'''
_HUBER = '''
def huber_loss(z, y, delta=1.0):
    r = z - y
    small = np.abs(r) <= delta
    loss = {loss}
    dz = {dz}
    return float({mean}), dz
'''
_GOOD_LOSS, _GOOD_DZ = "np.where(small, 0.5 * r ** 2, delta * (np.abs(r) - 0.5 * delta))", \
    "np.where(small, r, delta * np.sign(r)) / r.size"
_INPUT_GRAD = '''
def conv2d_input_grad(dout, W, x_shape, stride=1, padding=0):
    N, F, Ho, Wo = dout.shape
    kh, kw = W.shape[2:]
    Hp, Wp = x_shape[2] + 2 * padding, x_shape[3] + 2 * padding
    d = np.zeros({grid})
    d[:, :, ::stride, ::stride][:, :, :Ho, :Wo] = dout
    d = np.pad(d, ((0, 0), (0, 0), ({ph}, {ph}), ({pw}, {pw})))
    dxp = correlate2d_valid(d, W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return {crop}
'''
_GRID, _CROP = "(N, F, Hp - kh + 1, Wp - kw + 1)", "dxp[:, :, padding:padding + x_shape[2], padding:padding + x_shape[3]]"
_PREDICT = '''
def predict_scales(widths, gain, activation):
    f2 = 0.5 if activation == "relu" else 1.0
    L = len(widths) - 1
    z2 = [{z1}]
    for l in range(1, L):
        z2.append({zl})
    d2 = [{dL}]
    for l in range(L - 1, 0, -1):
        d2.insert(0, widths[l + 1] / widths[l] * gain ** 2 * {fb} * d2[0])
    return {result}
'''
_SQRT = "[float(np.sqrt(v)) for v in z2], [float(np.sqrt(v)) for v in d2]"
_MEASURE = '''
def measure_scales(X, Ws, G, activation):
    f = (lambda z: np.maximum(z, 0)) if activation == "relu" else (lambda z: z)
    fp = (lambda z: (z > 0).astype(float)) if activation == "relu" else (lambda z: np.ones_like(z))
    Zs, A = [], X
    for W in Ws:
        {forward}
    deltas = [{last}]
    for l in range(len(Ws) - 2, -1, -1):
        deltas.insert(0, (deltas[0] @ Ws[l + 1]) * fp(Zs[{layer}]))
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))
    return [rms(z) for z in Zs], [rms(d) for d in deltas]
'''
_FORWARD = "Zs.append(A @ W.T)\n        A = f(Zs[-1])"

# More of the mistakes students make, one class each: ε, the axis of the statistics, the running
# statistics in evaluation, γ in dx, the sums of dγ and dβ, the branches and threshold of the Huber loss,
# the crop and dilation of the input gradient, the square root and the output layer's f′ of the scales.
MORE = {
    "batchnorm_forward": [
        ("eps outside the square root", _BN_HEAD + '''
    if training:
        n = x.shape[0]
        mu, var = x.mean(axis=0), x.var(axis=0)
        out = gamma * (x - mu) / (np.sqrt(var) + eps) + beta
        return out, (1 - momentum) * running_mean + momentum * mu, \\
            (1 - momentum) * running_var + momentum * var * n / (n - 1)
    return gamma * (x - running_mean) / (np.sqrt(running_var) + eps) + beta, running_mean, running_var
''', D.EPS_OUTSIDE_SQRT),
        ("eps missing in evaluation mode", _BN_HEAD + '''
    if training:
        n = x.shape[0]
        mu, var = x.mean(axis=0), x.var(axis=0)
        out = gamma * (x - mu) / np.sqrt(var + eps) + beta
        return out, (1 - momentum) * running_mean + momentum * mu, \\
            (1 - momentum) * running_var + momentum * var * n / (n - 1)
    return gamma * (x - running_mean) / np.sqrt(running_var) + beta, running_mean, running_var
''', D.EPS_MISSING),
        ("statistics over each example's features", _BN_HEAD + '''
    if training:
        n = x.shape[0]
        mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
        out = gamma * (x - mu) / np.sqrt(var + eps) + beta
        return out, (1 - momentum) * running_mean + momentum * x.mean(axis=0), \\
            (1 - momentum) * running_var + momentum * x.var(axis=0, ddof=1)
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, running_mean, running_var
''', D.STATS_OVER_FEATURES),
        ("running statistics updated in evaluation mode too", _BN_HEAD + '''
    n = x.shape[0]
    mu, var = x.mean(axis=0), x.var(axis=0)
    new_mean = (1 - momentum) * running_mean + momentum * mu
    new_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    if training:
        return gamma * (x - mu) / np.sqrt(var + eps) + beta, new_mean, new_var
    return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, new_mean, new_var
''', D.RUNNING_UPDATED_IN_EVAL),
    ],
    "batchnorm_backward": [
        ("γ left out of dx", _BN_BACKWARD.format(var="x.var(axis=0)", g="dout", dgamma="(dout * xhat).sum(axis=0)",
                                                 dbeta="dout.sum(axis=0)"), D.DX_WITHOUT_GAMMA),
        ("dγ and dβ per example", _BN_BACKWARD.format(var="x.var(axis=0)", g="dout * gamma", dgamma="dout * xhat",
                                                      dbeta="dout"), D.PARAM_GRADS_NOT_SUMMED),
        ("unbiased variance (ddof=1)", '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    inv_std = 1.0 / np.sqrt(x.var(axis=0, ddof=1) + eps)
    xhat = (x - x.mean(axis=0)) * inv_std
    g = dout * gamma
    dx = inv_std * (g - g.mean(axis=0) - xhat * (g * xhat).sum(axis=0) / (n - 1))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)
''', D.UNBIASED_NORMALISATION),
    ],
    "silu_prime": [
        ("σ′ only", '''
def silu_prime(z):
    s = sigmoid(z)
    return s * (1 - s)
''', D.SIGMOID_PRIME),
        ("product rule: the σ term missing", '''
def silu_prime(z):
    s = sigmoid(z)
    return z * s * (1 - s)
''', D.PRODUCT_RULE),
        ("z updated in place", '''
def silu_prime(z):
    s = sigmoid(z)
    z *= 1 - s
    return s * (1 + z)
''', core.MODIFIES_INPUT, "changed its argument 1 `z` in place"),
        ("σ written with e^z", '''
def silu_prime(z):
    e = np.exp(z)
    s = e / (1 + e)
    return s + z * s * (1 - s)
''', core.UNSTABLE),
    ],
    "huber_loss": [
        ("½ instead of ½δ² in the linear branch",
         _HUBER.format(loss="np.where(small, 0.5 * r ** 2, delta * np.abs(r) - 0.5)", dz=_GOOD_DZ, mean="loss.mean()"),
         D.LINEAR_OFFSET),
        ("branches swapped", _HUBER.format(loss="np.where(small, delta * (np.abs(r) - 0.5 * delta), 0.5 * r ** 2)",
                                           dz="np.where(small, delta * np.sign(r), r) / r.size", mean="loss.mean()"),
         D.BRANCHES_SWAPPED),
        ("sign of r missing in the linear branch's slope",
         _HUBER.format(loss=_GOOD_LOSS, dz="np.where(small, r, delta) / r.size", mean="loss.mean()"),
         D.LINEAR_SIGN_MISSING),
        ("mean over len(z)", _HUBER.format(loss=_GOOD_LOSS, dz="np.where(small, r, delta * np.sign(r)) / len(z)",
                                           mean="loss.sum() / len(z)"), D.MEAN_OVER_ROWS),
        ("strict inequalities on both branches", '''
def huber_loss(z, y, delta=1.0):
    r = z - y
    quad, lin = np.abs(r) < delta, np.abs(r) > delta
    loss = 0.5 * r ** 2 * quad + delta * (np.abs(r) - 0.5 * delta) * lin
    dz = (r * quad + delta * np.sign(r) * lin) / r.size
    return float(loss.mean()), dz
''', D.THRESHOLD_GAP),
    ],
    "conv_input_grad": [
        ("padding cut from the end only", _INPUT_GRAD.format(grid=_GRID, ph="kh - 1", pw="kw - 1",
                                                             crop="dxp[:, :, :x_shape[2], :x_shape[3]]"),
         D.CROP_ONE_SIDE),
        ("padding cropped with [p:-p]", _INPUT_GRAD.format(grid=_GRID, ph="kh - 1", pw="kw - 1",
                                                           crop="dxp[:, :, padding:-padding, padding:-padding]"),
         D.EMPTY_CROP),
        ("δ padded by k", _INPUT_GRAD.format(grid=_GRID, ph="kh", pw="kw", crop=_CROP), D.FULL_PAD_WRONG),
        ("dilated δ only as long as the outputs reach", _INPUT_GRAD.format(
            grid="(N, F, (Ho - 1) * stride + 1, (Wo - 1) * stride + 1)", ph="kh - 1", pw="kw - 1", crop=_CROP),
         D.UNCOVERED_ROWS),
    ],
    "predict_scales": [
        ("variances, no square root", _PREDICT.format(z1="gain ** 2", zl="gain ** 2 * f2 * z2[-1]", dL="f2", fb="f2",
                                                      result="z2, d2"), D.SQRT_MISSING),
        ("δᴸ without f′", _PREDICT.format(z1="gain ** 2", zl="gain ** 2 * f2 * z2[-1]", dL="1.0", fb="f2",
                                          result=_SQRT), core.MISSING_FPRIME),
        ("ReLU's ½ in the forward pass only", _PREDICT.format(z1="gain ** 2", zl="gain ** 2 * f2 * z2[-1]", dL="1.0",
                                                              fb="1.0", result=_SQRT), D.RELU_HALF_MISSING),
        ("fan-out ratio in the forward pass", _PREDICT.format(
            z1="gain ** 2 * widths[1] / widths[0]", zl="widths[l + 1] / widths[l] * gain ** 2 * f2 * z2[-1]", dL="f2",
            fb="f2", result=_SQRT), D.FAN_OUT_FOR_Z),
    ],
    "measure_scales": [
        ("δᴸ without f′", _MEASURE.format(forward=_FORWARD, last="G", layer="l"), core.MISSING_FPRIME),
        ("f′ of the layer above", _MEASURE.format(forward=_FORWARD, last="G * fp(Zs[-1])", layer="l + 1"),
         D.FPRIME_WRONG_LAYER),
        ("activations recorded", _MEASURE.format(forward="A = f(A @ W.T)\n        Zs.append(A)",
                                                 last="G * fp(Zs[-1])", layer="l"), D.A_NOT_Z),
        ("upstream gradient multiplied in place", '''
def measure_scales(X, Ws, G, activation):
    f = (lambda z: np.maximum(z, 0)) if activation == "relu" else (lambda z: z)
    fp = (lambda z: (z > 0).astype(float)) if activation == "relu" else (lambda z: np.ones_like(z))
    Zs, A = [], X
    for W in Ws:
        Zs.append(A @ W.T)
        A = f(Zs[-1])
    G *= fp(Zs[-1])
    deltas = [G]
    for l in range(len(Ws) - 2, -1, -1):
        deltas.insert(0, (deltas[0] @ Ws[l + 1]) * fp(Zs[l]))
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))
    return [rms(z) for z in Zs], [rms(d) for d in deltas]
''', core.MODIFIES_INPUT, "changed its argument 3 `G` in place"),
    ],
}
for _question, _entries in MORE.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries

# Answers that get their result from a shipped reference instead of computing it: each scores 0
# for its question, with the remark "not accepted: the answer calls …".
DELEGATIONS = {
    "batchnorm_forward": [
        ("grading's reference", '''
def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    return G.batchnorm_reference(x, gamma, beta, running_mean, running_var, training, momentum, eps)
''', "not accepted"),
    ],
    "batchnorm_backward": [
        ("autograd", '''
import torch


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    gt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros_like(gt, requires_grad=True)
    out = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()
''', "not accepted"),
    ],
    "silu_prime": [
        ("autograd", '''
import torch


def silu_prime(z):
    t = torch.tensor(np.asarray(z, dtype=float), requires_grad=True)
    torch.nn.functional.silu(t).sum().backward()
    return t.grad.numpy()
''', "not accepted"),
    ],
    "huber_loss": [
        ("grading's reference", '''
def huber_loss(z, y, delta=1.0):
    return G.huber_reference(z, y, delta)
''', "not accepted"),
    ],
    "conv_input_grad": [
        ("autograd in a helper", '''
import torch


def _input_grad(dout, W, x_shape, stride, padding):
    x = torch.zeros(tuple(x_shape), dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(x, torch.tensor(W, dtype=torch.float64), stride=stride, padding=padding)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return x.grad.numpy()


def conv2d_input_grad(dout, W, x_shape, stride=1, padding=0):
    return _input_grad(dout, W, x_shape, stride, padding)
''', "not accepted"),
    ],
    "predict_scales": [
        ("grading's reference", '''
def predict_scales(widths, gain, activation):
    return G.predict_scales_reference(widths, gain, activation)
''', "not accepted"),
    ],
    "measure_scales": [
        ("grading's reference under an alias", '''
from nnkit.grading.derivations import measure_scales_reference as measured


def measure_scales(X, Ws, G, activation):
    return measured(X, Ws, G, activation)
''', "not accepted"),
    ],
}
for _question, _entries in DELEGATIONS.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries
