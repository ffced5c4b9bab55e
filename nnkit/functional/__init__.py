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
from .conv import (
    conv2d,
    conv2d_backward_fast,
    conv2d_backward_naive,
    conv2d_forward_fast,
    conv2d_forward_naive,
    conv_output_size,
    max_pool2d,
    maxpool2d_backward_fast,
    maxpool2d_backward_naive,
    maxpool2d_forward_fast,
    maxpool2d_forward_naive,
)

__all__ += [
    "conv2d", "conv2d_backward_fast", "conv2d_backward_naive", "conv2d_forward_fast", "conv2d_forward_naive",
    "conv_output_size", "max_pool2d", "maxpool2d_backward_fast", "maxpool2d_backward_naive",
    "maxpool2d_forward_fast", "maxpool2d_forward_naive",
]
