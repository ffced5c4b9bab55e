"""Optimisers: stochastic gradient descent, θ ← θ − η ∂ℒ/∂θ, with momentum and L2 weight decay."""
from __future__ import annotations

from typing import Iterable

import numpy as np

from .module import Parameter


class SGD:
    """Minibatch SGD, PyTorch's update rule:

        g = ∂ℒ/∂θ + λθ            (L2 weight decay λ, only on decayed parameters)
        v ← μ v + g               (momentum μ; v = g on the first step)
        θ ← θ − η v

    ``weight_decay`` leaves biases (1-D parameters) alone by default, as the lecture notes teach
    ("we do not regularise the biases"); ``decay_biases=True`` decays every parameter, which is
    exactly ``torch.optim.SGD(..., weight_decay=λ)``.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, *, dampening: float = 0.0, nesterov: bool = False,
                 decay_biases: bool = False):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(f"SGD: item {i} of params is a {type(p).__name__}, not an nnkit Parameter")
        if lr <= 0:
            raise ValueError(f"SGD: learning rate must be > 0, got {lr}")
        if momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: momentum and weight_decay must be ≥ 0, got {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires momentum > 0 and zero dampening")
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.dampening, self.nesterov, self.decay_biases = float(dampening), nesterov, decay_biases
        self._velocity: list[np.ndarray | None] = [None] * len(self.params)

    def _decays(self, p: Parameter) -> bool:
        return self.decay_biases or p.data.ndim > 1

    def step(self) -> None:
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay and self._decays(p):
                g = g + self.weight_decay * p.data
            if self.momentum:
                v = self._velocity[i]
                if v is None:  # v = g on the first step
                    v = self._velocity[i] = np.array(g, copy=True)
                else:  # v ← μ v + (1 − dampening) g, in place
                    v *= self.momentum
                    v += g if self.dampening == 0 else (1.0 - self.dampening) * g
                g = g + self.momentum * v if self.nesterov else v
            p.data -= self.lr * g

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()
