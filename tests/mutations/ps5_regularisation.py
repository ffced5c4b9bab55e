"""Known wrong answers for problem set 5 (regularisation and robustness) and the feedback each must get.

``MUTATIONS[question] = [(bug class, full source of the planted solution cell, phrase the
feedback must contain), ...]``; see tests/test_assignments.py.
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
''', "replaces the gradient"),
        ("sign flip", '''
def l2_penalty(model, lam):
    penalty = 0.0
    for p in model.parameters():
        if p.data.ndim > 1:
            penalty += 0.5 * lam * float(np.sum(p.data ** 2))
            p.grad -= lam * p.data
    return penalty
''', "sign flip"),
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
        return x * self.mask''', '''        return grad if self.mask is None else grad * self.mask'''), "numpy's global"),
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
        return stop == self.epoch
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
