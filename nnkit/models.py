"""Ready-made networks: the lecture notes' convnet, and a LeNet-style convnet for the 8×8 digits.

Every builder takes ``rng`` (an int seed, a ``numpy.random.Generator`` or ``None`` for nnkit's
default generator) and initialises the layers from it in order, so that the same seed gives
the same weights. ``*_torch`` functions build the PyTorch twin of a network with the *same*
weights (float64 by default), for comparisons; they import PyTorch when called.
"""
from __future__ import annotations

import numpy as np

from ._random import get_rng
from .conv import Conv2d, MaxPool2d
from .layers import Flatten, Linear, LogSoftmax, ReLU
from .module import Module, Sequential

__all__ = ["lenet_digits", "lenet_notes", "to_torch"]


def lenet_digits(rng=None, *, channels: tuple[int, int] = (16, 32), hidden: int = 64,
                 dtype=np.float64) -> Sequential:
    """A LeNet-style convnet for the 8×8 digits (``nk.data.load_digits(images=True)``).

    The notes' Torch convnet (conv → ReLU → max-pool, twice, then two linear layers) scaled
    to 8×8 images; 3×3 kernels with padding 1 keep the size, and each pooling halves it::

        (N, 1, 8, 8) → Conv2d(1→16, 3×3, padding=1) → ReLU → MaxPool2d(2) → (N, 16, 4, 4)
                     → Conv2d(16→32, 3×3, padding=1) → ReLU → MaxPool2d(2) → (N, 32, 2, 2)
                     → Flatten → Linear(128→64) → ReLU → Linear(64→10)      → (N, 10) logits

    Train it with ``nk.CrossEntropyLoss()`` (which applies log-softmax itself).
    ``channels`` and ``hidden`` change the widths.
    """
    rng = get_rng(rng)
    c1, c2 = channels
    return Sequential(
        Conv2d(1, c1, 3, padding=1, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2),
        Conv2d(c1, c2, 3, padding=1, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(c2 * 2 * 2, hidden, rng=rng, dtype=dtype), ReLU(),
        Linear(hidden, 10, rng=rng, dtype=dtype),
    )


def lenet_notes(rng=None, *, dtype=np.float64) -> Sequential:
    """The convnet of the lecture notes (their Torch code), for (N, 1, 32, 32) images::

        SpatialConvolution(1, 16, 5, 5)   → Conv2d(1→16, 5×5)   → ReLU → MaxPool2d(2)   (N, 16, 14, 14)
        SpatialConvolution(16, 128, 5, 5) → Conv2d(16→128, 5×5) → ReLU → MaxPool2d(2)   (N, 128, 5, 5)
        Reshape(128*5*5), Linear(128*5*5, 200), ReLU, Linear(200, 10), LogSoftMax        (N, 10)

    The output is log-probabilities: train it with ``nk.NLLLoss()``, as the notes do.
    """
    rng = get_rng(rng)
    return Sequential(
        Conv2d(1, 16, 5, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2),
        Conv2d(16, 128, 5, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2),
        Flatten(),
        Linear(128 * 5 * 5, 200, rng=rng, dtype=dtype), ReLU(),
        Linear(200, 10, rng=rng, dtype=dtype),
        LogSoftmax(dim=1),
    )


def to_torch(model: Module, dtype=None):
    """The PyTorch twin of an nnkit ``Sequential`` made of the layers above, with copies of its
    weights: ``torch.nn.Sequential`` of ``Conv2d``, ``MaxPool2d``, ``ReLU``, ``Flatten``,
    ``Linear``, ``LogSoftmax``. ``dtype`` (a torch dtype) defaults to the model's own precision.
    """
    import torch

    if dtype is None:
        params = model.parameters()
        dtype = torch.float32 if params and params[0].data.dtype == np.float32 else torch.float64
    layers = []
    for layer in model:
        if isinstance(layer, Conv2d):
            twin = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                   layer.padding, bias=layer.bias is not None)
        elif isinstance(layer, Linear):
            twin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        elif isinstance(layer, MaxPool2d):
            twin = torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
        elif isinstance(layer, ReLU):
            twin = torch.nn.ReLU()
        elif isinstance(layer, Flatten):
            twin = torch.nn.Flatten(layer.start_dim, layer.end_dim)
        elif isinstance(layer, LogSoftmax):
            twin = torch.nn.LogSoftmax(dim=layer.dim)
        else:
            raise TypeError(f"to_torch: no PyTorch twin for {layer.label()}")
        twin = twin.to(dtype)
        if isinstance(layer, (Conv2d, Linear)):
            with torch.no_grad():
                twin.weight.copy_(torch.from_numpy(np.array(layer.weight.data)))
                if layer.bias is not None:
                    twin.bias.copy_(torch.from_numpy(np.array(layer.bias.data)))
        layers.append(twin)
    return torch.nn.Sequential(*layers)
