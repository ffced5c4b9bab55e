"""Errors that name the layer and the shapes involved."""


class NNKitError(Exception):
    """Base class of nnkit's own errors."""


class ShapeError(NNKitError, ValueError):
    """An array has a shape that does not fit the layer or loss it was given to."""


class BackwardBeforeForwardError(NNKitError, RuntimeError):
    """``backward`` was called on a layer that has not run ``forward`` since it was built."""


def describe(x) -> str:
    """``shape (2, 3) float64`` — how messages describe an array."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None:
        return f"a {type(x).__name__}"
    return f"shape {tuple(shape)} {dtype}"
