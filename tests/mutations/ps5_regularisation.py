"""Planted student mistakes for problem set 5 (regularisation and robustness).

``MUTATIONS[question] = [(what, full source of the planted solution cell, bug class[, phrase the
feedback must also contain]), ...]``: the class is the grader's name of the bug (a probe's bug or a
diagnosing category), see tests/mutations/__init__.py and tests/feedback_corpus.py.
"""

_DROPOUT = '''
class Dropout(nk.Module):
    """Inverted dropout; p is the probability of dropping a unit (PyTorch's meaning)."""

    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = p
        self.rng = nk.get_rng(rng)
        self.mask = None

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
{forward}

    def backward(self, grad):
{backward}
'''


def _dropout(forward: str, backward: str) -> str:
    return _DROPOUT.format(forward=forward, backward=backward)


_EARLY = '''
class EarlyStopping:
    def __init__(self, patience):
        self.patience = patience
        self.best_loss = float("inf")
        self.best_epoch = None
        self.epoch = -1
        self.waited = 0
        self.last = float("inf")

    def step(self, val_loss):
        self.epoch += 1
{body}
'''

MUTATIONS = {
    "sgd_momentum": [
        ("momentum sign", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    velocity = momentum * velocity - grad
    return theta - lr * velocity, velocity
''', "momentum sign"),
        ("momentum not used", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    return theta - lr * grad, velocity
''', "momentum not used"),
        ("returns the old velocity", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    new_velocity = momentum * velocity + grad
    return theta - lr * new_velocity, velocity
''', "momentum not used"),
        ("updates its arguments in place", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    velocity *= momentum
    velocity += grad
    theta -= lr * velocity
    return theta, velocity
''', "modifies its input", "`velocity`"),
        ("velocity as an average (1 − μ)·g", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    velocity = momentum * velocity + (1 - momentum) * grad
    return theta - lr * velocity, velocity
''', "velocity as an average: (1 − μ)·g"),
        ("step with the old velocity", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    new_theta = theta - lr * velocity
    velocity = momentum * velocity + grad
    return new_theta, velocity
''', "θ moved with the old velocity"),
        ("learning rate left out", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    velocity = momentum * velocity + grad
    return theta - velocity, velocity
''', "learning rate not applied"),
        ("velocity in the CS231n form", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    velocity = momentum * velocity - lr * grad
    return theta + velocity, velocity
''', "velocity in the CS231n form (v = μv − ηg)"),
        ("learning rate folded into the velocity", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    velocity = momentum * velocity + lr * grad
    return theta - velocity, velocity
''', "learning rate inside the velocity (v = μv + ηg)"),
    ],
    "l2_penalty": [
        ("decaying biases", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        penalty += 0.5 * lam * float(np.sum(p.data ** 2))
        p.grad += lam * p.data
    return penalty
''', "decaying biases"),
        ("replaces the gradient", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            penalty += 0.5 * lam * float(np.sum(p.data ** 2))
            p.grad = lam * p.data
    return penalty
''', "replaces the gradient instead of adding to it"),
        ("sign flip", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            penalty += 0.5 * lam * float(np.sum(p.data ** 2))
            p.grad -= lam * p.data
    return penalty
''', "sign flip"),
        ("λ missing from the gradient", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            penalty += 0.5 * lam * float(np.sum(p.data ** 2))
            p.grad += p.data
    return penalty
''', "λ not applied"),
        ("λ‖W‖² with gradient 2λW", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            penalty += lam * float(np.sum(p.data ** 2))
            p.grad += 2 * lam * p.data
    return penalty
''', "factor of 2"),
        ("penalty without the ½", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            penalty += lam * float(np.sum(p.data ** 2))
            p.grad += lam * p.data
    return penalty
''', "factor of 2"),
        ("weights shrunk instead of the gradient", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            penalty += 0.5 * lam * float(np.sum(p.data ** 2))
            p.data -= lam * p.data
    return penalty
''', "changes the weights instead of their gradients"),
        ("gradient never added", '''
def l2_penalty(model, lam):
    return sum(0.5 * lam * float(np.sum(p.data ** 2)) for p in model.parameters() if p.data.ndim > 1)
''', "gradient not added to .grad"),
    ],
    "dropout": [
        ("dropout mask not reused", _dropout('''        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        if self.mask is None:
            return grad
        fresh = self.rng.random(grad.shape) >= self.p
        return grad * fresh / (1.0 - self.p)'''), "dropout mask not reused"),
        ("dropout not rescaled", _dropout('''        self.mask = (self.rng.random(x.shape) >= self.p).astype(x.dtype)
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask'''), "dropout not rescaled"),
        ("p as keep probability", _dropout('''        keep = self.rng.random(x.shape) < self.p
        self.mask = keep / self.p
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask'''), "p used as the keep probability"),
        ("backward not rescaled", _dropout('''        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad * (self.mask != 0)'''), "dropout not rescaled"),
        ("not the identity in eval mode", '''
class Dropout(nk.Module):
    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = p
        self.rng = nk.get_rng(rng)
        self.mask = None

    def forward(self, x):
        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask
''', "not the identity in eval mode"),
        ("mask from np.random", _dropout('''        keep = np.random.rand(*x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask'''), "changes numpy's global random state"),
        ("mask from Python's random", "import random\n" + _dropout('''        keep = np.array([random.random() >= self.p for _ in range(x.size)]).reshape(x.shape)
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask'''),
         "changes Python's global random state"),
        ("scaled by 1 − p at test time", _dropout('''        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask''').replace(
            "            return x\n", "            return x * (1.0 - self.p)\n"), "not the identity in eval mode"),
        ("classic dropout, not inverted", '''
class Dropout(nk.Module):
    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = p
        self.rng = nk.get_rng(rng)
        self.mask = None

    def forward(self, x):
        if not self.training:
            self.mask = None
            return x * (1.0 - self.p)
        self.mask = (self.rng.random(x.shape) >= self.p).astype(float)
        return x * self.mask

    def backward(self, grad):
        return grad * (1.0 - self.p) if self.mask is None else grad * self.mask
''', "dropout not rescaled"),
        ("a fresh generator in forward", _dropout('''        keep = np.random.default_rng().random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask'''),
         "not reproducible with the same seed"),
        ("fixed seed, rng ignored", '''
class Dropout(nk.Module):
    def __init__(self, p=0.5, rng=None):
        super().__init__()
        self.p = p
        self.rng = np.random.default_rng(0)
        self.mask = None

    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        self.mask = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)
        return x * self.mask

    def backward(self, grad):
        return grad if self.mask is None else grad * self.mask
''', "ignores the generator it is given"),
        ("masks the input in place", _dropout('''        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        x *= self.mask
        return x''', '''        return grad if self.mask is None else grad * self.mask'''),
         "modifies its input", "`x`"),
        ("one mask for the whole batch", _dropout('''        keep = self.rng.random(x.shape[-1]) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask'''),
         "one mask shared by every example"),
        ("backward without the mask", _dropout('''        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad / (1.0 - self.p)'''),
         "dropout mask not reused"),
        ("eval mode keeps the training pass's mask", _dropout('''        keep = self.rng.random(x.shape) >= self.p
        self.mask = keep / (1.0 - self.p)
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask''').replace(
            "            self.mask = None\n            return x\n", "            return x\n"),
         "the training pass's mask kept in eval mode"),
    ],
    "early_stopping": [
        ("off by one (stops late)", _EARLY.format(body='''        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch, 0
        else:
            self.waited += 1
        return self.waited > self.patience'''), "off by one"),
        ("compared with the last loss", _EARLY.format(body='''        if val_loss < self.last:
            self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch, 0
        else:
            self.waited += 1
        self.last = val_loss
        return self.waited >= self.patience'''), "compared with the last loss, not the best"),
        ("counter never reset", _EARLY.format(body='''        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, self.epoch
        else:
            self.waited += 1
        return self.waited >= self.patience'''), "counter never reset"),
        ("a tie counts as an improvement", _EARLY.format(body='''        if val_loss <= self.best_loss:
            self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch, 0
        else:
            self.waited += 1
        return self.waited >= self.patience'''), "a tie counted as an improvement"),
        ("best_epoch is the last epoch", _EARLY.format(body='''        if val_loss < self.best_loss:
            self.best_loss, self.waited = val_loss, 0
        else:
            self.waited += 1
        self.best_epoch = self.epoch
        return self.waited >= self.patience'''), "best_epoch set at every epoch, not at the best"),
        ("off by one (stops early)", _EARLY.format(body='''        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch, 0
        else:
            self.waited += 1
        return self.waited >= self.patience - 1'''), "off by one"),
        ("epochs counted from 1", _EARLY.format(body='''        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch + 1, 0
        else:
            self.waited += 1
        return self.waited >= self.patience'''), "off by one"),
        ("an improvement must beat the best by 1e-3", _EARLY.format(body='''        if val_loss < self.best_loss - 1e-3:
            self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch, 0
        else:
            self.waited += 1
        return self.waited >= self.patience'''), "an improvement required to beat the best by a margin"),
        ("True only on the stopping epoch", _EARLY.format(body='''        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = val_loss, self.epoch, 0
        else:
            self.waited += 1
        return self.waited == self.patience'''), "True only on the stopping epoch"),
    ],
    "fgsm": [
        ("gradient instead of its sign", '''
def fgsm(model, loss_fn, x, y, epsilon):
    model.eval()
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    return np.clip(x + epsilon * dx, 0.0, 1.0)
''', "the gradient instead of its sign"),
        ("FGSM sign flip", '''
def fgsm(model, loss_fn, x, y, epsilon):
    model.eval()
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    return np.clip(x - epsilon * np.sign(dx), 0.0, 1.0)
''', "sign flip"),
        ("not clipped", '''
def fgsm(model, loss_fn, x, y, epsilon):
    model.eval()
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    return x + epsilon * np.sign(dx)
''', "not clipped"),
        ("training mode", '''
def fgsm(model, loss_fn, x, y, epsilon):
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    return np.clip(x + epsilon * np.sign(dx), 0.0, 1.0)
''', "gradient taken in training mode"),
        ("ε left out", '''
def fgsm(model, loss_fn, x, y, epsilon):
    model.eval()
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    return np.clip(x + np.sign(dx), 0.0, 1.0)
''', "ε not applied"),
        ("updates x in place", '''
def fgsm(model, loss_fn, x, y, epsilon):
    model.eval()
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    x += epsilon * np.sign(dx)
    np.clip(x, 0.0, 1.0, out=x)
    return x
''', "modifies its input", "`x`"),
        ("clipped before the step", '''
def fgsm(model, loss_fn, x, y, epsilon):
    model.eval()
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    return np.clip(x, 0.0, 1.0) + epsilon * np.sign(dx)
''', "not clipped"),
        ("normalised gradient instead of its sign", '''
def fgsm(model, loss_fn, x, y, epsilon):
    model.eval()
    loss_fn.forward(model.forward(x), y)
    dx = model.backward(loss_fn.backward())
    return np.clip(x + epsilon * dx / np.abs(dx).max(), 0.0, 1.0)
''', "the gradient instead of its sign"),
    ],
}

# Answers that get their result from a shipped reference instead of computing it: each scores 0
# for its question, with the remark "not accepted: the answer calls …". Where the question hands
# over an nnkit model (l2_penalty, fgsm) or builds on nk.Module (Dropout), the answer calls what
# the question asks to write: the library's optimiser, attack or layer, or PyTorch's autograd.
DELEGATIONS = {
    "sgd_momentum": [
        ("library optimiser", '''
def sgd_momentum_step(theta, grad, velocity, lr, momentum):
    p = nk.Parameter(np.array(theta, dtype=float))
    p.grad = np.array(grad, dtype=float)
    opt = nk.optim.SGD([p], lr=lr, momentum=momentum)
    opt._velocity = [np.array(velocity, dtype=float)]
    opt.step()
    return p.data, (opt._velocity[0] if momentum else p.grad)
''', "not accepted"),
    ],
    "l2_penalty": [
        ("autograd", '''
import torch


def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            w = torch.tensor(p.data, requires_grad=True)
            term = 0.5 * lam * (w ** 2).sum()
            term.backward()
            penalty += float(term)
            p.grad += w.grad.numpy()
    return penalty
''', "not accepted"),
    ],
    "dropout": [
        ("subclass of the library's layer", '''
class Dropout(nk.Dropout):
    """Inverted dropout; p is the probability of dropping a unit (PyTorch's meaning)."""

    def __init__(self, p=0.5, rng=None):
        super().__init__(p, rng=rng)
''', "not accepted"),
    ],
    "early_stopping": [
        ("grading's reference", '''
class EarlyStopping:
    """Asks the grading module's oracle (nk.train.fit's own rule) after every epoch."""

    def __init__(self, patience):
        self.patience = patience
        self.best_loss = float("inf")
        self.best_epoch = None
        self.epoch = -1
        self.losses = []

    def step(self, val_loss):
        self.epoch += 1
        self.losses.append(val_loss)
        self.best_loss = min(self.best_loss, val_loss)
        stop, best = G._fit_oracle(self.losses, self.patience)
        self.best_epoch = int(best)
        return 0 <= stop <= self.epoch
''', "not accepted"),
    ],
    "fgsm": [
        ("library attack", '''
def fgsm(model, loss_fn, x, y, epsilon):
    return nk.attacks.fgsm(model, loss_fn, x, y, epsilon)
''', "not accepted"),
    ],
}
for _question, _entries in DELEGATIONS.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries
