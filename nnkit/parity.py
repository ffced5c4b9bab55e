"""Parity with PyTorch: the same model, the same weights, the same numbers.

``to_torch(model)`` builds the PyTorch twin of an nnkit model (layers mapped one to one, weights
copied), ``torch_loss(loss)`` the twin of a loss, and ``compare`` runs both on the same input
and compares the output, the loss, ∂ℒ/∂x and every parameter's gradient:

    >>> report = nk.parity.compare(model, nk.CrossEntropyLoss(), x, y)
    >>> report.assert_ok()

The reference is nnkit in float64 (on a copy of the model, so the model itself and its
gradients are untouched). On ``cpu`` PyTorch also runs in float64 and must agree to 1e-10
relative; on ``cuda`` it runs in float32 with TF32 switched off (TF32 rounds matrix products to
10 bits) and must agree to 1e-4, the accuracy float32 allows. The relative error is
``nk.gradcheck.relative_error``: the worst element against the size of the whole quantity.

Dropout in training mode is compared with the mask nnkit drew: the twin multiplies by the same
(scaled) mask, so training-mode forward and backward are both checked.

PyTorch is imported inside the functions: ``import nnkit`` stays numpy-only.
"""
from __future__ import annotations

import copy
import functools
from collections import OrderedDict

import numpy as np

from ._random import get_rng
from .gradcheck import Comparison, _Report, _short

__all__ = ["TOLERANCES", "ParityReport", "available_devices", "compare", "to_torch", "torch_loss"]

#: device → (dtype, relative tolerance) used by ``compare``
TOLERANCES = {"cpu": ("float64", 1e-10), "cuda": ("float32", 1e-4)}


def available_devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` where PyTorch sees a CUDA device."""
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# --- twins of layers -----------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _extras():
    """Torch modules with no ``torch.nn`` counterpart (defined on first use: torch is imported lazily)."""
    import torch

    class _Heaviside(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            return (z > 0).to(z.dtype)

        @staticmethod
        def backward(ctx, grad):
            return torch.zeros_like(grad)  # the step's derivative is 0 wherever it exists

    class Step(torch.nn.Module):
        """The perceptron's threshold 1[z > 0], with zero gradient (nnkit's Step)."""

        def forward(self, z):
            return _Heaviside.apply(z)

    class FixedMaskDropout(torch.nn.Module):
        """Dropout with a given mask, already scaled by 1/(1 − p): the twin of one nnkit forward."""

        def __init__(self, mask):
            super().__init__()
            self.register_buffer("mask", mask)

        def forward(self, x):
            return x * self.mask

    return Step, FixedMaskDropout


def _tensor(array, dtype, device):
    import torch

    return torch.tensor(np.asarray(array), dtype=dtype, device=device)


def _linear(m, dtype, device):
    import torch

    twin = torch.nn.utils.skip_init(torch.nn.Linear, m.in_features, m.out_features, bias=m.bias is not None,
                                    dtype=dtype, device=device)  # no random init: weights come from nnkit
    return twin


def _conv2d(m, dtype, device):
    import torch

    out_ch, in_ch, kh, kw = m.weight.data.shape
    return torch.nn.utils.skip_init(
        torch.nn.Conv2d, in_ch, out_ch, (kh, kw), stride=getattr(m, "stride", 1),
        padding=getattr(m, "padding", 0), bias=getattr(m, "bias", None) is not None, dtype=dtype, device=device)


def _maxpool2d(m, dtype, device):
    import torch

    k = m.kernel_size
    return torch.nn.MaxPool2d(k, stride=getattr(m, "stride", None) or k, padding=getattr(m, "padding", 0))


def _simple(name: str, *attrs: str):
    def build(m, dtype, device):
        import torch

        return getattr(torch.nn, name)(*(getattr(m, a) for a in attrs))

    return build


# nnkit class name → builder of its torch twin. Looked up by name along the class's MRO, so
# subclasses work and Conv2d/MaxPool2d need no import of nnkit.conv here.
_BUILDERS = {
    "Linear": _linear,
    "Conv2d": _conv2d,
    "MaxPool2d": _maxpool2d,
    "Step": lambda m, dtype, device: _extras()[0](),
    "Sigmoid": _simple("Sigmoid"),
    "Tanh": _simple("Tanh"),
    "ReLU": _simple("ReLU"),
    "LeakyReLU": _simple("LeakyReLU", "negative_slope"),
    "Softmax": _simple("Softmax", "dim"),
    "LogSoftmax": _simple("LogSoftmax", "dim"),
    "Identity": _simple("Identity"),
    "Dropout": _simple("Dropout", "p"),
    "Flatten": _simple("Flatten", "start_dim", "end_dim"),
}

_LOSSES = ("MSELoss", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "NLLLoss")


def _lookup(obj, table) -> str | None:
    for cls in type(obj).__mro__:
        if cls.__name__ in table:
            return cls.__name__
    return None


def _torch_dtype(dtype):
    import torch

    if dtype is None:
        return torch.float64
    if isinstance(dtype, torch.dtype):
        return dtype
    return {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32}[np.dtype(dtype)]


def _convert(m, dtype, device):
    import torch

    if _lookup(m, {"Sequential"}):
        return torch.nn.Sequential(OrderedDict((name, _convert(c, dtype, device)) for name, c in m._modules.items()))
    kind = _lookup(m, _BUILDERS)
    if kind is None:
        raise TypeError(
            f"nk.parity.to_torch: no PyTorch twin for {m.label()}; supported: Sequential, "
            f"{', '.join(_BUILDERS)}"
        )
    return _BUILDERS[kind](m, dtype, device)


def to_torch(model, dtype=None, device: str = "cpu"):
    """The PyTorch twin of an nnkit model, with identical weights (copied) and the same mode.

    ``dtype``: ``torch.float64`` (default) or ``torch.float32`` (numpy dtypes work too).
    Parameter names match: nnkit's ``"0.weight"`` is the twin's ``"0.weight"``.
    """
    import torch

    dtype = _torch_dtype(dtype)
    twin = _convert(model, dtype, device)
    for name, p in model.named_parameters():
        module_name, _, attr = name.rpartition(".")
        owner = twin.get_submodule(module_name)
        setattr(owner, attr, torch.nn.Parameter(_tensor(p.data, dtype, device)))
    for name, m in model.named_modules():
        twin.get_submodule(name).training = m.training
    return twin


def torch_loss(loss):
    """The PyTorch twin of an nnkit loss (same class name, same ``reduction``)."""
    import torch

    kind = _lookup(loss, _LOSSES)
    if kind is None:
        raise TypeError(f"nk.parity.torch_loss: no PyTorch twin for {loss.label()}; supported: {', '.join(_LOSSES)}")
    return getattr(torch.nn, kind)(reduction=loss.reduction)


# --- the comparison ------------------------------------------------------------------------
class ParityReport(_Report):
    """nnkit (float64) against PyTorch on each device: output, loss, ∂ℒ/∂x, every parameter gradient.

    ``ok``; ``errors`` ({"cpu:∂ℒ/∂x": 3e-17, …}); ``report["cpu:∂ℒ/∂0.weight"]`` → a
    ``Comparison`` (``error``, ``tol``, ``index`` of the worst element, ``a_value`` nnkit's,
    ``b_value`` PyTorch's); ``tolerances`` by device; ``assert_ok()``.
    """

    a_label, b_label = "nnkit", "torch"

    def __init__(self, rows, header, tolerances):
        super().__init__(rows, header, columns_where=True)
        self.tolerances = tolerances


def _mask_holders(model) -> dict[str, np.ndarray]:
    """Dropout layers that drew a mask in the last forward, by name, with the (scaled) mask."""
    return {name: m.mask for name, m in model.named_modules()
            if _lookup(m, {"Dropout"}) and getattr(m, "mask", None) is not None}


def compare(model, loss, x, target=None, devices=None, *, dout=None, rng=None, tol: float | None = None) -> ParityReport:
    """Run ``model`` and ``loss`` in nnkit and in PyTorch and compare every number that backprop makes.

    ``loss`` may be ``None``: then L = Σ output ⊙ ``dout`` (default: standard normal from
    ``rng``), which checks a layer's backward for an arbitrary upstream gradient. The same
    ``dout`` weights the per-element losses of a ``reduction='none'`` loss.
    ``devices``: default ``available_devices()``. ``tol`` overrides ``TOLERANCES``.
    """
    import torch

    available = available_devices()
    devices = available if devices is None else list(devices)
    missing = [d for d in devices if d.split(":")[0] not in available]
    if missing:
        raise ValueError(f"nk.parity.compare: device {missing[0]!r} is not available here (available: {available})")
    ref = copy.deepcopy(model).to(np.float64)
    crit = copy.deepcopy(loss) if loss is not None else None
    x64 = np.array(x, dtype=np.float64)

    ref.zero_grad()
    out = ref.forward(x64)
    masks = _mask_holders(ref)
    if crit is None:
        weights = get_rng(rng).standard_normal(np.shape(out)) if dout is None else np.asarray(dout, dtype=np.float64)
        value = float(np.sum(out * weights))
        grad_out = weights
    else:
        value = np.asarray(crit.forward(out, target), dtype=np.float64)
        weights = None
        if value.ndim:
            weights = get_rng(rng).standard_normal(value.shape) if dout is None else np.asarray(dout, dtype=np.float64)
        grad_out = crit.backward() if weights is None else crit.backward(weights)
    dx = ref.backward(grad_out)
    ours = {"output": out, "loss": value, "∂ℒ/∂x": dx}
    ours.update({f"∂ℒ/∂{name}": p.grad for name, p in ref.named_parameters()})

    rows, tolerances = [], {}
    for device in devices:
        dtype_name, default_tol = TOLERANCES["cuda" if device.startswith("cuda") else "cpu"]
        tolerances[device] = tol if tol is not None else default_tol
        theirs = _torch_side(ref, crit, x64, target, weights, masks, getattr(torch, dtype_name), device)
        for name, value in ours.items():
            rows.append(Comparison(name, np.asarray(value), theirs[name], tolerances[device], where=device))

    setting = "; ".join(
        f"{d}: torch {TOLERANCES['cuda' if d.startswith('cuda') else 'cpu'][0]}"
        + (", TF32 off" if d.startswith("cuda") else "") + f", tolerance {tolerances[d]:.0e}" for d in devices)
    what = _short(model) + (f" with {_short(loss)}" if loss is not None else " with L = Σ output ⊙ dout")
    header = f"parity of {what} — nnkit float64 vs PyTorch {torch.__version__} ({setting})"
    return ParityReport(rows, header, tolerances)


def _torch_side(ref, crit, x64, target, weights, masks, dtype, device) -> dict[str, np.ndarray]:
    import torch

    twin = to_torch(ref, dtype, device)
    _, FixedMaskDropout = _extras()
    for name, mask in masks.items():
        parent_name, _, attr = name.rpartition(".")
        parent = twin.get_submodule(parent_name) if name else None
        if parent is None:  # the model is a single Dropout layer
            twin = FixedMaskDropout(_tensor(mask, dtype, device))
        else:
            setattr(parent, attr, FixedMaskDropout(_tensor(mask, dtype, device)))

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        xt = _tensor(x64, dtype, device).requires_grad_(True)
        out = twin(xt)
        if crit is None:
            value = (out * _tensor(weights, dtype, device)).sum()
            value.backward()
        else:
            class_target = _lookup(crit, {"CrossEntropyLoss", "NLLLoss"}) is not None
            tgt = _tensor(target, torch.long if class_target else dtype, device)
            value = torch_loss(crit)(out, tgt)
            if weights is None:
                value.backward()
            else:
                value.backward(_tensor(weights, dtype, device))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved

    numpy = lambda t: t.detach().cpu().numpy() if t is not None else np.zeros(0)  # noqa: E731
    theirs = {"output": numpy(out), "loss": numpy(value), "∂ℒ/∂x": numpy(xt.grad)}
    params = dict(twin.named_parameters())
    for name, _ in ref.named_parameters():
        theirs[f"∂ℒ/∂{name}"] = numpy(params[name].grad)
    return theirs
