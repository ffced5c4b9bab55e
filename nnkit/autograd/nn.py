"""Neurons, layers and multi-layer perceptrons built from ``Value`` scalars (micrograd's ``nn``).

Every weight is its own ``Value``, so ``loss.backward()`` on any expression of the outputs
fills every weight's ``.grad``, with no backward code in this file at all: that is the point of
automatic differentiation. The same network made of ``nk.Linear`` layers computes the same
numbers with matrices and a hand-written backward; ``MLP.from_nnkit`` builds one from the other.

Notation: layer ℓ = 1…L computes a^ℓ_j = f(Σ_k w^ℓ_{jk} a^{ℓ−1}_k + b^ℓ_j), with w^ℓ_{jk} the
weight from unit k of layer ℓ−1 to unit j of layer ℓ, i.e. ``nk.Linear(...).weight[j, k]``.
Initialisation is the notes' U[−1/√n, 1/√n] with n = fan-in, drawn in the same order as
``nk.Linear`` (the weight matrix row by row, then the biases), so a network built with the same
generator gets the same weights.
"""
from __future__ import annotations

import math
from typing import Sequence

from .._random import get_rng
from .engine import Value

__all__ = ["Module", "Neuron", "Layer", "MLP"]

ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


class Module:
    """Base class: ``parameters()`` lists the Values that training updates."""

    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        """Set every parameter's gradient to 0 (do it before each ``loss.backward()``)."""
        for p in self.parameters():
            p.grad = 0.0


class Neuron(Module):
    """One unit: a = f(Σ_k w_k x_k + b) with f in ``tanh``, ``relu``, ``sigmoid``, ``linear``."""

    def __init__(self, nin: int, activation: str = "tanh", *, rng=None):
        if nin < 1:
            raise ValueError(f"Neuron: nin must be ≥ 1, got {nin}")
        bound = 1.0 / math.sqrt(nin)
        rng = get_rng(rng)
        w = rng.uniform(-bound, bound, nin)
        b = rng.uniform(-bound, bound)
        self._build(w, b, activation)

    def _build(self, w: Sequence[float], b: float, activation: str, where: tuple[int, int] | None = None) -> None:
        """Parameters labelled w[k], b — or w1[j,k], b1[j] for unit j of layer ℓ = 1 (``where``)."""
        if activation not in ACTIVATIONS:
            raise ValueError(f"Neuron: activation must be one of {ACTIVATIONS}, got {activation!r}")
        layer, j = where if where else ("", None)
        row = "" if j is None else f"{j},"
        self.name = "" if j is None else f"layer {layer} unit {j}"
        self.w = [Value(float(wk), label=f"w{layer}[{row}{k}]") for k, wk in enumerate(w)]
        self.b = None if b is None else Value(float(b), label=f"b{layer}" + ("" if j is None else f"[{j}]"))
        self.activation = activation

    def __call__(self, x: Sequence) -> Value:
        if len(x) != len(self.w):
            where = f" ({self.name})" if self.name else ""
            raise ValueError(f"Neuron{where}: expected {len(self.w)} inputs, got {len(x)}")
        z = self.b
        for wk, xk in zip(self.w, x):
            z = wk * xk if z is None else z + wk * xk  # z = b + Σ_k w_k x_k
        return z if self.activation == "linear" else getattr(z, self.activation)()

    def parameters(self) -> list[Value]:
        return self.w + ([self.b] if self.b is not None else [])

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)}, activation={self.activation!r})"


class Layer(Module):
    """``nout`` neurons that all read the same ``nin`` inputs (a fully-connected layer)."""

    def __init__(self, nin: int, nout: int, activation: str = "tanh", *, rng=None, index: int | None = None):
        if nin < 1 or nout < 1:
            raise ValueError(f"Layer: nin and nout must be ≥ 1, got {nin}, {nout}")
        bound = 1.0 / math.sqrt(nin)
        rng = get_rng(rng)
        weight = rng.uniform(-bound, bound, (nout, nin))  # same draws, same order as nk.Linear
        bias = rng.uniform(-bound, bound, nout)
        self._build(weight, bias, activation, index)

    @classmethod
    def from_weights(cls, weight, bias, activation: str = "tanh", *, index: int | None = None) -> "Layer":
        """A layer with the given weight rows (``weight[j][k]`` = w_{jk}) and biases (None: no bias)."""
        layer = cls.__new__(cls)
        layer._build(weight, bias, activation, index)
        return layer

    def _build(self, weight, bias, activation: str, index: int | None) -> None:
        if bias is None:
            bias = [None] * len(weight)
        if len(weight) != len(bias):
            raise ValueError(f"Layer: {len(weight)} weight rows but {len(bias)} biases")
        self.index = index
        self.neurons = []
        for j, (row, b) in enumerate(zip(weight, bias)):
            n = Neuron.__new__(Neuron)
            n._build(row, b, activation, where=("" if index is None else index, j))
            self.neurons.append(n)

    def __call__(self, x: Sequence) -> list[Value]:
        return [n(x) for n in self.neurons]

    @property
    def activation(self) -> str:
        return self.neurons[0].activation

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer({len(self.neurons[0].w)}→{len(self.neurons)}, activation={self.activation!r})"


class MLP(Module):
    """A multi-layer perceptron: ``MLP(2, [16, 16, 1])`` has two tanh hidden layers and a
    linear output, like micrograd's (``activation`` for the hidden layers, ``output_activation``
    for the last). Calling it on a list of ``nin`` numbers returns a list of Values, or one Value
    when the last layer has a single unit.
    """

    def __init__(self, nin: int, nouts: Sequence[int], activation: str = "tanh",
                 output_activation: str = "linear", *, rng=None):
        if not nouts:
            raise ValueError("MLP: nouts must list at least one layer width")
        rng = get_rng(rng)
        sizes = [nin, *nouts]
        self.layers = [
            Layer(sizes[i], sizes[i + 1], activation if i < len(nouts) - 1 else output_activation,
                  rng=rng, index=i + 1)
            for i in range(len(nouts))
        ]

    @classmethod
    def from_nnkit(cls, model) -> "MLP":
        """The same network as an ``nk.Sequential`` of ``Linear`` layers, each followed by at most
        one of ``Tanh``, ``ReLU``, ``Sigmoid``, ``Identity`` (weights copied as float64)."""
        from .. import layers as L

        names = {L.Tanh: "tanh", L.ReLU: "relu", L.Sigmoid: "sigmoid", L.Identity: "linear"}
        modules = list(model)
        layers, i = [], 0
        while i < len(modules):
            lin = modules[i]
            if not isinstance(lin, L.Linear):
                raise TypeError(f"MLP.from_nnkit: expected a Linear layer at position {i}, got {lin.label()}")
            activation = "linear"
            if i + 1 < len(modules) and not isinstance(modules[i + 1], L.Linear):
                act = modules[i + 1]
                if type(act) not in names:
                    raise TypeError(f"MLP.from_nnkit: {act.label()} has no Value counterpart "
                                    f"(supported: Tanh, ReLU, Sigmoid, Identity)")
                activation = names[type(act)]
                i += 1
            bias = lin.bias.data.tolist() if lin.bias is not None else None
            layers.append(Layer.from_weights(lin.weight.data.tolist(), bias, activation, index=len(layers) + 1))
            i += 1
        mlp = cls.__new__(cls)
        mlp.layers = layers
        return mlp

    def __call__(self, x: Sequence):
        for layer in self.layers:
            x = layer(x)
        return x[0] if len(x) == 1 else x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return "MLP(" + ", ".join(repr(layer) for layer in self.layers) + ")"
