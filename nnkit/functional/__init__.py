"""Stateless functions: the formulas that layers and losses are built from."""
from .activations import (
    log_softmax,
    logsumexp,
    relu,
    sigmoid,
    sigmoid_prime,
    softmax,
    tanh,
)

__all__ = ["log_softmax", "logsumexp", "relu", "sigmoid", "sigmoid_prime", "softmax", "tanh"]
