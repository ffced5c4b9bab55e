"""Random numbers: every random thing in nnkit takes a seed or a ``numpy.random.Generator``.

``nk.manual_seed(s)`` reseeds the default generator, as ``torch.manual_seed`` does, so that a
lecture or a test that never passes ``rng=`` is still reproducible.
"""
from __future__ import annotations

import numpy as np

RNGLike = "int | np.random.Generator | None"

_default = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator used when no ``rng`` is given; returns it."""
    global _default
    _default = np.random.default_rng(seed)
    return _default


def get_rng(rng: int | np.random.Generator | None = None) -> np.random.Generator:
    """A Generator from ``None`` (the default one), an integer seed, or a Generator."""
    if rng is None:
        return _default
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, not {type(rng).__name__}")
