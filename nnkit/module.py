"""Modules and parameters: the skeleton every layer, loss and network shares.

A module computes ``forward(x)`` and, given the gradient of the loss with respect to its
output, ``backward(grad)`` returns the gradient with respect to its input and *adds* the
gradients of its parameters into ``p.grad`` (they accumulate until ``zero_grad()``, as in
PyTorch).

Every module remembers the upstream gradient it received in its last backward as ``.delta``
(also ``.grad_output``). For a ``Linear`` layer ℓ that is δ^ℓ = ∂ℒ/∂z^ℓ, the quantity the
backpropagation lecture is about; for an activation layer it is ∂ℒ/∂a^ℓ.

``backward(grad, input_grad=False)`` computes the parameters' gradients only and returns None:
a training step needs no ∂ℒ/∂x of the data, and skipping it saves the first layer's largest
matrix product (PyTorch likewise skips inputs that do not require grad). A layer's backward may
take ``input_grad`` to skip that work; any other layer computes ∂ℒ/∂x and it is dropped.

Subclasses write plain ``forward`` and ``backward`` methods. ``Module.__init_subclass__``
wraps them once so that every layer gets the same checks for free: input type and dtype,
backward before forward, and an upstream gradient whose shape differs from the output's.
"""
from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from typing import Iterator

import numpy as np

from .errors import BackwardBeforeForwardError, ShapeError, describe


class Parameter:
    """A trainable array ``.data`` with its gradient ``.grad`` (same shape, zero at start)."""

    def __init__(self, data, name: str = ""):
        data = np.array(data, copy=True)
        if not np.issubdtype(data.dtype, np.floating):
            data = data.astype(np.float64)
        self.data: np.ndarray = data
        self.grad: np.ndarray = np.zeros_like(data)
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def zero_grad(self) -> None:
        self.grad = np.zeros_like(self.data)

    def __repr__(self) -> str:
        return f"Parameter({self.name or 'unnamed'}, shape={self.data.shape}, dtype={self.data.dtype})"


def _as_float_array(module: "Module", x, what: str = "input") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple, float, int, np.number)):
            x = np.asarray(x)
        else:
            raise TypeError(
                f"{module.label()}: {what} must be a numpy array, got {type(x).__name__}. "
                "Convert it with np.asarray(...)."
            )
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(
            f"{module.label()}: {what} has dtype {x.dtype} ({describe(x)}); nnkit layers compute in "
            "float32 or float64. Convert it with x.astype(np.float64)."
        )
    return x


def _wrap_forward(fn):
    @functools.wraps(fn)
    def forward(self: "Module", x, *args, **kwargs):
        if self._checks_input:
            x = _as_float_array(self, x)
        out = fn(self, x, *args, **kwargs)
        self._output_shape = np.shape(out)
        return out

    forward._nnkit_wrapped = True
    return forward


def _wrap_backward(fn):
    takes_flag = "input_grad" in inspect.signature(fn).parameters

    @functools.wraps(fn)
    def backward(self: "Module", *args, input_grad: bool = True, **kwargs):
        if self._output_shape is None:
            raise BackwardBeforeForwardError(
                f"{self.label()}: backward() was called before forward(). Run the forward pass "
                "first: backward needs the values forward stores."
            )
        if self._checks_input:
            if not args:
                raise TypeError(f"{self.label()}: backward() needs the upstream gradient ∂ℒ/∂output")
            grad, args = _as_float_array(self, args[0], what="upstream gradient"), args[1:]
            if grad.shape != tuple(self._output_shape):
                raise ShapeError(
                    f"{self.label()}: backward() got an upstream gradient of shape {grad.shape}, but "
                    f"the last forward() returned shape {tuple(self._output_shape)}. The gradient "
                    "∂ℒ/∂output must have the output's shape."
                )
            self.delta = grad
            if takes_flag:
                return fn(self, grad, *args, input_grad=input_grad, **kwargs)
            dx = fn(self, grad, *args, **kwargs)
            return dx if input_grad else None
        return fn(self, *args, **kwargs)

    backward._nnkit_wrapped = True
    return backward


class Module:
    """Base class of layers, losses and networks (PyTorch's ``nn.Module``, made explicit)."""

    #: layers check that input and upstream gradient are float arrays; losses check their own.
    _checks_input = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, wrapper in (("forward", _wrap_forward), ("backward", _wrap_backward)):
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_nnkit_wrapped", False):
                setattr(cls, name, wrapper(fn))

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        self.training = True
        self._output_shape = None
        self._qualname = ""
        self.delta: np.ndarray | None = None

    # --- registration -------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__ and isinstance(value, (Parameter, Module)):
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning parameters or layers"
            )
        if isinstance(value, Parameter):
            value.name = value.name or name
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
            value._set_qualname(self._child_name(name))
        elif name in self.__dict__.get("_parameters", {}) and value is None:
            del self._parameters[name]
        object.__setattr__(self, name, value)

    def _child_name(self, name: str) -> str:
        return f"{self._qualname}.{name}" if self._qualname else name

    def _set_qualname(self, qualname: str) -> None:
        self._qualname = qualname
        for name, child in self._modules.items():
            child._set_qualname(self._child_name(name))

    def label(self) -> str:
        """How messages name this module: its position in the network and what it is."""
        where = f"layer [{self._qualname}] " if self._qualname else ""
        return f"{where}{self.extra_repr_name()}"

    def extra_repr_name(self) -> str:
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra})"

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return self.extra_repr_name()
        lines = [f"{type(self).__name__}("]
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        lines.append(")")
        return "\n".join(lines)

    # --- computation --------------------------------------------------------------------
    def forward(self, x):  # pragma: no cover - every subclass defines it
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, grad):  # pragma: no cover - every subclass defines it
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    @property
    def grad_output(self) -> np.ndarray | None:
        """The upstream gradient received in the last backward (same as ``.delta``)."""
        return self.delta

    # --- parameters and modes -----------------------------------------------------------
    def children(self) -> Iterator["Module"]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._parameters.items():
            yield (f"{prefix}.{name}" if prefix else name), p
        for name, child in self._modules.items():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def to(self, dtype) -> "Module":
        """Cast every parameter (and its gradient) to ``dtype``, e.g. ``np.float32``."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = p.grad.astype(dtype)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's values, by name (PyTorch's names, e.g. ``0.weight``)."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"{self.label()}: state dict does not fit: missing {missing}, unexpected {unexpected}")
        for name, p in own.items():
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ShapeError(
                    f"{self.label()}: parameter {name} has shape {p.data.shape}, the state dict gives {value.shape}"
                )
            p.data = value.astype(p.data.dtype, copy=True)


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse (the chain rule, layer by layer)."""

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, not an nnkit Module")
            setattr(self, str(i), layer)

    def forward(self, x):
        for layer in self._modules.values():
            x = layer.forward(x)
        return x

    def backward(self, grad, input_grad: bool = True):
        layers = list(self._modules.values())
        for layer in reversed(layers[1:]):
            grad = layer.backward(grad)
        # the first layer's ∂ℒ/∂x is ∂ℒ/∂(network input): skipped when input_grad=False
        return layers[0].backward(grad, input_grad=input_grad) if layers else grad

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index):
        if isinstance(index, slice):
            # as in PyTorch: a new Sequential sharing the layers, which keep their names, so
            # the layers' labels in messages still give their position in the whole network
            part = Sequential()
            for name, layer in list(self._modules.items())[index]:
                part._modules[name] = layer
                object.__setattr__(part, name, layer)
            return part
        return list(self._modules.values())[index]

    def append(self, layer: Module) -> "Sequential":
        taken = [int(name) for name in self._modules if name.isdigit()]
        setattr(self, str(max(taken, default=-1) + 1), layer)
        return self
