"""Data: offline datasets, train/validation/test splits and a minibatch loader.

Everything here works without a network connection:

- ``load_digits()``: the real 8×8 handwritten digits (1797 images, UCI optdigits), shipped in
  the package and checked against a SHA-256 checksum before use;
- toy 2-D problems for drawing decision boundaries: ``xor``, ``spirals``, ``moons``,
  ``circles``, and the lecture's one-unit saturation example ``toy_pm1``;
- ``train_val_test_split`` (stratified, reproducible) and ``DataLoader`` (seeded shuffling);
- ``augment_shifts``: more training images, each one moved by a pixel or so;
- ``load_mnist_idx`` for readers who have MNIST's IDX files on disk.

Conventions: inputs ``X`` are float64 with one example per row (or NCHW images), class labels
``y`` are int64 class indices 0…C−1 (what ``CrossEntropyLoss`` takes). Every random function
takes ``rng``: ``None`` (the default generator, see ``nk.manual_seed``), an int seed, or a
``numpy.random.Generator``.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from ._random import get_rng
from .errors import NNKitError, ShapeError, describe

__all__ = [
    "DIGITS_SHA256", "DataLoader", "DatasetError", "augment_shifts", "circles", "load_digits",
    "load_mnist_idx", "moons", "read_idx", "spirals", "toy_pm1", "train_val_test_split", "xor",
]

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
DIGITS_PATH = DATASETS_DIR / "digits.npz"
#: SHA-256 of ``nnkit/datasets/digits.npz`` (see ``nnkit/datasets/README.md`` for its provenance).
DIGITS_SHA256 = "2e8c192fe978877b738066daed425f0b1d2431071d6455d8f56d491f4d5639ef"


class DatasetError(NNKitError, ValueError):
    """A data file is missing, corrupt or not in the expected format."""


# --------------------------------------------------------------------------------------------
# Handwritten digits
# --------------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def load_digits(images: bool = False, *, path: str | os.PathLike | None = None,
                dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The 1797 real 8×8 handwritten digits of the UCI optdigits test set.

    Returns ``(X, y)``:

    - ``X``: pixels scaled to [0, 1] (the raw counts 0…16 divided by 16), ``dtype`` float64 by
      default; shape (1797, 64) with each row an image read row by row, or (1797, 1, 8, 8)
      (N, C, H, W, ready for ``Conv2d``) with ``images=True``;
    - ``y``: int64 digit labels 0…9, shape (1797,).

    The file's SHA-256 is verified first; a damaged file raises ``DatasetError`` instead of
    giving silently wrong data. ``path`` reads another copy of the file (the checksum still
    applies). The arrays returned are fresh copies: changing them changes nothing else.
    """
    path = Path(path) if path is not None else DIGITS_PATH
    if not path.is_file():
        raise DatasetError(
            f"load_digits: the digits file {path} is missing. It ships with nnkit; reinstall the package "
            "(pip install --force-reinstall nnkit) or rebuild it with nnkit/datasets/make_digits.py."
        )
    digest = _sha256(path)
    if digest != DIGITS_SHA256:
        raise DatasetError(
            f"load_digits: the digits file {path} is corrupt: its SHA-256 is {digest}, expected "
            f"{DIGITS_SHA256}. Reinstall nnkit or rebuild the file with nnkit/datasets/make_digits.py."
        )
    with np.load(path, allow_pickle=False) as f:
        pixels, labels = f["pixels"], f["labels"]
    X = pixels.astype(dtype) / 16.0
    if images:
        X = X.reshape(-1, 1, 8, 8)
    return X, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Toy 2-D problems
# --------------------------------------------------------------------------------------------
def _check_n_noise(name: str, n: int, noise: float, minimum: int = 1) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name}: n must be an integer ≥ {minimum}, got {n!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"{name}: noise is a standard deviation and must be ≥ 0, got {noise!r}")


def _split_counts(n: int, parts: int) -> list[int]:
    """n items into ``parts`` groups as equal as possible (the first groups get the remainder)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _shuffled(X: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(X))
    return X[order], y[order]


def xor(n: int = 200, noise: float = 0.2, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: four Gaussian blobs at the corners (±1, ±1) of a square.

    Label 1 where the two coordinates have different signs ((−1, 1) and (1, −1)), else 0: no
    single line separates the classes, one hidden layer does. Returns X float64 (n, 2) (the
    corners plus N(0, noise²) noise) and y int64 (n,), in random order.
    """
    _check_n_noise("xor", n, noise)
    rng = get_rng(rng)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
    labels = np.array([0, 0, 1, 1])
    counts = _split_counts(n, 4)
    X = np.repeat(corners, counts, axis=0) + noise * rng.standard_normal((n, 2))
    y = np.repeat(labels, counts).astype(np.int64)
    return _shuffled(X, y, rng)


def spirals(n: int = 300, classes: int = 2, noise: float = 0.2, rng=None, *,
            turns: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (CS231n's spiral data, for any number of arms).

    Arm k has points at radius r ∈ [0, 1] and angle θ = 2πk/classes + 2π·turns·r + noise·ε with
    ε ~ N(0, 1), so ``noise`` is in radians. Returns X float64 (n, 2) = r (sin θ, cos θ) and
    y int64 (n,) in 0…classes−1, in random order.
    """
    _check_n_noise("spirals", n, noise)
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise ValueError(f"spirals: classes must be an integer ≥ 2, got {classes!r}")
    rng = get_rng(rng)
    Xs, ys = [], []
    for k, m in enumerate(_split_counts(n, classes)):
        r = np.linspace(0.0, 1.0, m)
        theta = 2 * np.pi * k / classes + 2 * np.pi * turns * r + noise * rng.standard_normal(m)
        Xs.append(np.column_stack([r * np.sin(theta), r * np.cos(theta)]))
        ys.append(np.full(m, k, dtype=np.int64))
    return _shuffled(np.concatenate(Xs), np.concatenate(ys), rng)


def moons(n: int = 200, noise: float = 0.1, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's ``make_moons`` geometry).

    Class 0: (cos t, sin t), class 1: (1 − cos t, ½ − sin t) for t ∈ [0, π], plus N(0, noise²)
    noise on each coordinate. Returns X float64 (n, 2), y int64 (n,), in random order.
    """
    _check_n_noise("moons", n, noise)
    rng = get_rng(rng)
    n0, n1 = _split_counts(n, 2)
    t0, t1 = np.linspace(0.0, np.pi, n0), np.linspace(0.0, np.pi, n1)
    X = np.concatenate([
        np.column_stack([np.cos(t0), np.sin(t0)]),
        np.column_stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)]),
    ])
    X = X + noise * rng.standard_normal(X.shape)
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n0, n1])
    return _shuffled(X, y, rng)


def circles(n: int = 200, noise: float = 0.05, factor: float = 0.5, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: class 0 on the unit circle, class 1 on the circle of radius ``factor``.

    Angles are drawn uniformly at random; N(0, noise²) noise is added to each coordinate.
    Returns X float64 (n, 2), y int64 (n,), in random order.
    """
    _check_n_noise("circles", n, noise)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"circles: factor is the inner circle's radius and must lie in (0, 1), got {factor!r}")
    rng = get_rng(rng)
    n0, n1 = _split_counts(n, 2)
    radius = np.repeat([1.0, float(factor)], [n0, n1])
    t = rng.uniform(0.0, 2 * np.pi, n)
    X = radius[:, None] * np.column_stack([np.cos(t), np.sin(t)]) + noise * rng.standard_normal((n, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n0, n1])
    return _shuffled(X, y, rng)


#: The starting point of the lecture's saturation example, chosen so that the example x = −1
#: has pre-activation z = w·x + b = −2.5, the value the notes compute (σ(−2.5) ≈ 0.076, far
#: from the target 1). The notes write "w = 2, b = 0.5", but 2·(−1) + 0.5 = −1.5; their
#: z = −2.5 needs b = −0.5 (the sign of b slipped), so nnkit keeps w = 2 and uses b = −0.5.
TOY_PM1_WEIGHT = 2.0
TOY_PM1_BIAS = -0.5


def toy_pm1() -> tuple[np.ndarray, np.ndarray]:
    """The lecture's saturation toy problem (Kanade, ML lecture 8): inputs x = ±1, target y = (1 − x)/2.

    One sigmoid unit a = σ(z), z = w·x + b, must map x = +1 to y = 0 and x = −1 to y = 1.
    Started at w = 2, b = −0.5 (``TOY_PM1_WEIGHT``, ``TOY_PM1_BIAS``; see there for the notes'
    "b = 0.5"), the example x = −1 has z = −2.5. With ½(y − σ(z))² the gradient
    ∂ℒ/∂z = (σ(z) − y)σ′(z) is tiny there (saturation); with cross entropy it is σ(z) − y,
    large while the unit is wrong.

    Returns ``X = [[+1], [−1]]`` and ``y = [[0], [1]]``, both float64 of shape (2, 1), the
    shapes ``Linear(1, 1)`` + ``Sigmoid`` with ``MSELoss`` or ``BCELoss`` expect.
    """
    X = np.array([[1.0], [-1.0]])
    y = (1.0 - X) / 2.0
    return X, y


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------
def _check_xy(name: str, X, y) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X)
    if X.ndim == 0:
        raise ShapeError(f"{name}: X must have one example per row, got a scalar")
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(X):
            raise ShapeError(
                f"{name}: X and y must hold the same number of examples (rows), got X {describe(X)} "
                f"and y {describe(y)}"
            )
    return X, y


def _is_class_labels(y: np.ndarray | None) -> bool:
    return y is not None and y.ndim == 1 and (np.issubdtype(y.dtype, np.integer) or y.dtype == bool)


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _apportion(sizes: np.ndarray, fractions: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Counts A[c, j] of class c in part j: rows sum to ``sizes``, columns to ``totals``.

    Each A[c, j] is its exact share sizes[c]·fractions[j] rounded down or up ("controlled
    rounding" of a table). Start from the rounded-down shares; the units still missing are
    placed one at a time along augmenting paths (class → part whose share it may round up,
    possibly moving another class's rounded-up unit elsewhere), a bipartite flow. If the part
    sizes make that impossible, the last units go wherever there is room.
    """
    Q = np.outer(sizes, fractions)
    A = np.floor(Q + 1e-9).astype(np.int64)
    can_round_up = (Q - A) > 1e-9
    up = np.zeros_like(A)  # which shares were rounded up
    row_left = sizes - A.sum(axis=1)
    col_left = totals - A.sum(axis=0)
    m = A.shape[1]
    for j in np.flatnonzero(col_left < 0):
        # a part smaller than the sum of its rounded-down shares (possible when both other parts
        # were rounded up): take units back from the classes whose shares were nearest below
        order = np.argsort(np.where(A[:, j] > 0, Q[:, j] - A[:, j], np.inf), kind="stable")
        for c in order[:-col_left[j]]:
            A[c, j] -= 1
            row_left[c] += 1
            can_round_up[c, j] = False
        col_left[j] = 0
    while row_left.sum() > 0:
        # breadth-first search from classes with units left to a part with room left
        parent_col = {}  # part j reached from class parent_col[j]
        parent_row = {c: None for c in np.flatnonzero(row_left > 0)}  # class c reached from part
        frontier, found = list(parent_row), None
        while frontier and found is None:
            nxt = []
            for c in frontier:
                for j in range(m):
                    if can_round_up[c, j] and not up[c, j] and j not in parent_col:
                        parent_col[j] = c
                        if col_left[j] > 0:
                            found = j
                            break
                        for c2 in np.flatnonzero(up[:, j]):
                            if c2 not in parent_row:
                                parent_row[c2] = j
                                nxt.append(c2)
                if found is not None:
                    break
            frontier = nxt
        if found is None:
            break
        j = found
        col_left[j] -= 1
        while True:  # walk the path back, flipping rounded-up shares
            c = parent_col[j]
            up[c, j] = 1
            prev = parent_row[c]
            if prev is None:
                row_left[c] -= 1
                break
            up[c, prev] = 0
            j = prev
    A = A + up
    for c in np.flatnonzero(row_left > 0):  # only when no exact rounding exists
        for j in np.flatnonzero(col_left > 0):
            k = min(row_left[c], col_left[j])
            A[c, j] += k
            row_left[c] -= k
            col_left[j] -= k
    return A


def train_val_test_split(X, y, val_fraction: float = 0.15, test_fraction: float = 0.15, rng=0,
                         stratify: bool = True):
    """Split ``(X, y)`` into ``(X_tr, y_tr), (X_va, y_va), (X_te, y_te)``.

    - **disjoint and complete:** every example lands in exactly one part;
    - **sizes:** the test part holds test_fraction·N examples rounded to the nearest
      integer (halves up), the validation part val_fraction·N likewise, the training part the rest;
    - **stratified** (default) for integer class labels ``y`` of shape (N,): each class is split in
      the same proportions, so that a rare class is not missing from the validation or test
      set. Each class's count in each part is its exact share rounded up or down (whenever the
      part sizes allow it, which is almost always). For other targets (floats, one-hot rows)
      the split is a plain random one;
    - **reproducible:** the same ``rng`` (an int seed, 0 by default, or a Generator) gives the
      same split. Each part is in random order.

    A validation set is for choosing hyper-parameters and early stopping; the test set is looked
    at once, at the end.
    """
    X, y = _check_xy("train_val_test_split", X, y)
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"train_val_test_split: {name} must lie in [0, 1), got {f!r}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"train_val_test_split: val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves "
            "no training data; it must be < 1"
        )
    rng = get_rng(rng)
    N = len(X)
    n_te, n_va = _round_half_up(test_fraction * N), _round_half_up(val_fraction * N)
    if n_te + n_va >= N:
        raise ValueError(
            f"train_val_test_split: with {N} examples, {n_va} for validation and {n_te} for testing leave "
            "no training examples; use smaller fractions or more data"
        )
    if stratify and _is_class_labels(y):
        classes, inverse = np.unique(y, return_inverse=True)
        sizes = np.bincount(inverse, minlength=len(classes))
        totals = np.array([n_te, n_va, N - n_te - n_va])
        # each class's share of a part is in proportion to the part's actual (rounded) size, so
        # the shares of every row and column add up to integers and a controlled rounding exists
        counts = _apportion(sizes, totals / N, totals)
        te, va = counts[:, 0], counts[:, 1]
        parts: tuple[list, list, list] = ([], [], [])
        for c in range(len(classes)):
            idx = rng.permutation(np.flatnonzero(inverse == c))
            parts[2].append(idx[:te[c]])
            parts[1].append(idx[te[c]:te[c] + va[c]])
            parts[0].append(idx[te[c] + va[c]:])
        index = [rng.permutation(np.concatenate(p)) for p in parts]
    else:
        order = rng.permutation(N)
        index = [order[n_te + n_va:], order[n_te:n_te + n_va], order[:n_te]]
    return tuple((X[i], y[i] if y is not None else None) for i in index)


# --------------------------------------------------------------------------------------------
# Minibatches
# --------------------------------------------------------------------------------------------
class DataLoader:
    """Minibatches ``(xb, yb)`` of ``(X, y)``, one pass over the data per ``for`` loop.

        loader = DataLoader(X, y, batch_size=32, shuffle=True, rng=0)
        for epoch in range(10):
            for xb, yb in loader:      # a new random order every epoch
                ...

    - ``shuffle=True`` draws a fresh permutation from ``rng`` at the start of every epoch; the
      generator is created once (from an int seed, or taken as given), so a whole training run
      is reproducible and successive epochs differ. ``rng=None`` uses nnkit's default
      generator (``nk.manual_seed``).
    - The last batch is smaller when ``batch_size`` does not divide N, unless ``drop_last=True``
      drops it. ``len(loader)`` is the number of batches per epoch.
    - ``y=None`` yields the input batches alone.
    """

    def __init__(self, X, y=None, batch_size: int = 32, shuffle: bool = True, rng=None,
                 drop_last: bool = False):
        X, y = _check_xy("DataLoader", X, y)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an integer ≥ 1, got {batch_size!r}")
        self.X, self.y = X, y
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.rng = get_rng(rng) if shuffle else None

    def __len__(self) -> int:
        n = len(self.X)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator:
        n = len(self.X)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if self.y is None:
                yield self.X[idx]
            else:
                yield self.X[idx], self.y[idx]

    def __repr__(self) -> str:
        return (f"DataLoader(N={len(self.X)}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, batches={len(self)})")


# --------------------------------------------------------------------------------------------
# Data augmentation
# --------------------------------------------------------------------------------------------
def _shift_image(X: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """``X`` (…, H, W) moved ``dy`` rows down and ``dx`` columns right; vacated pixels = fill."""
    H, W = X.shape[-2:]
    out = np.full_like(X, fill)
    out[..., max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = \
        X[..., max(-dy, 0):H + min(-dy, 0), max(-dx, 0):W + min(-dx, 0)]
    return out


def augment_shifts(X, y=None, max_shift: int = 1, *, diagonal: bool = True, fill: float = 0.0):
    """The images ``X`` followed by copies of them moved by up to ``max_shift`` pixels.

    A digit moved by a pixel is still the same digit, so the shifted copies are extra training
    examples for free: the network learns that a small translation does not change the class
    (the invariance a convnet's pooling only gives approximately). Augment the *training* set
    only; validation and test images stay as they are.

    - ``X``: images with the two image axes last, (N, H, W) or (N, C, H, W) (all channels move
      together); ``y``: their labels (N,…), repeated for each copy, or ``None``;
    - offsets (dy, dx) with |dy|, |dx| ≤ ``max_shift``, row by row from (−s, −s) to (s, s),
      the original (0, 0) first; ``diagonal=False`` keeps only the moves along one axis
      (dy = 0 or dx = 0). ``max_shift=1`` makes 9 images of each (5 without diagonals);
    - pixels moved in from outside the image are ``fill`` (0, the digits' background).

    Returns ``(X_aug, y_aug)`` (``y_aug`` is ``None`` when ``y`` is): copy k of every image is
    the block ``X_aug[k*N:(k+1)*N]``. Nothing is random; ``fit`` shuffles the batches.
    """
    X, y = _check_xy("augment_shifts", X, y)
    if X.ndim < 3:
        raise ShapeError(
            f"augment_shifts: X must hold images with the two image axes last, (N, H, W) or (N, C, H, W); "
            f"got {describe(X)}. Flat rows, e.g. load_digits()'s (N, 64), need load_digits(images=True) "
            "or X.reshape(-1, 1, 8, 8)"
        )
    H, W = X.shape[-2:]
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise ValueError(f"augment_shifts: max_shift must be an integer ≥ 0 (pixels), got {max_shift!r}")
    if max_shift >= min(H, W):
        raise ValueError(
            f"augment_shifts: max_shift={max_shift} would move {H}×{W} images entirely out of view; "
            f"it must be < {min(H, W)}"
        )
    s = int(max_shift)
    offsets = [(0, 0)] + [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)
                          if (dy, dx) != (0, 0) and (diagonal or dy == 0 or dx == 0)]
    X_aug = np.concatenate([_shift_image(X, dy, dx, fill) for dy, dx in offsets])
    y_aug = None if y is None else np.concatenate([y] * len(offsets))
    return X_aug, y_aug


# --------------------------------------------------------------------------------------------
# MNIST's IDX files
# --------------------------------------------------------------------------------------------
# IDX type codes → big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"read_idx: no such file: {path}")
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip's magic number, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(f"read_idx: {path} looks gzip-compressed but cannot be decompressed: {e}") from None
    return data


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into a numpy array of its stored type and shape.

    The IDX header is two zero bytes, a type code (0x08 = uint8, …), the number of dimensions
    d, then d big-endian uint32 sizes; the data follow, big-endian, row-major. Every part is
    checked, and a truncated or over-long file raises ``DatasetError`` naming the file.
    """
    data = _read_bytes(path)
    name = Path(path).name
    if len(data) < 4:
        raise DatasetError(f"read_idx: {name} is {len(data)} bytes long, too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"read_idx: {name} is not an IDX file: its magic number starts with bytes "
            f"{data[0]:#04x} {data[1]:#04x}, expected 0x00 0x00"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DatasetError(
            f"read_idx: {name} has data type code {code:#04x}; IDX defines "
            + ", ".join(f"{k:#04x}" for k in _IDX_DTYPES)
        )
    if ndim == 0:
        raise DatasetError(f"read_idx: {name} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"read_idx: {name} ends inside its header ({len(data)} bytes, header needs {header})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetError(
            f"read_idx: {name} declares shape {shape} of {dtype.name} ({expected} bytes of data) but holds "
            f"{len(data) - header} bytes after the header; the file is truncated or corrupt"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def load_mnist_idx(images_path: str | os.PathLike, labels_path: str | os.PathLike, *,
                   images: bool = False, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST-style IDX files (e.g. ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``).

    nnkit does not download MNIST; this reads the files if you have them (raw or gzip).
    The images file must hold uint8 images (magic 0x00000803: N × rows × cols), the labels
    file uint8 labels 0…9 (magic 0x00000801: N), with the same N.

    Returns ``(X, y)`` in the same form as ``load_digits``: X float64 in [0, 1] (pixels / 255),
    shape (N, rows·cols), or (N, 1, rows, cols) with ``images=True``; ``normalize=False`` keeps
    the raw uint8 pixels. y is int64 of shape (N,).
    """
    X = read_idx(images_path)
    y = read_idx(labels_path)
    iname, lname = Path(images_path).name, Path(labels_path).name
    if X.dtype != np.uint8 or X.ndim != 3:
        raise DatasetError(
            f"load_mnist_idx: {iname} should hold uint8 images of shape (N, rows, cols) (magic 0x00000803), "
            f"got {X.dtype} with shape {X.shape}. Are the images and labels files swapped?"
        )
    if y.dtype != np.uint8 or y.ndim != 1:
        raise DatasetError(
            f"load_mnist_idx: {lname} should hold uint8 labels of shape (N,) (magic 0x00000801), "
            f"got {y.dtype} with shape {y.shape}. Are the images and labels files swapped?"
        )
    if len(X) != len(y):
        raise DatasetError(f"load_mnist_idx: {iname} holds {len(X)} images but {lname} holds {len(y)} labels")
    if y.size and y.max() > 9:
        raise DatasetError(f"load_mnist_idx: {lname} has labels up to {int(y.max())}; MNIST labels are digits 0…9")
    if normalize:
        X = X.astype(np.float64) / 255.0
    X = X.reshape(len(X), 1, *X.shape[1:]) if images else X.reshape(len(X), -1)
    return X, y.astype(np.int64)
