"""nnkit.data: the shipped digits, toy 2-D sets, splits, the minibatch loader and the IDX reader."""
from __future__ import annotations

import gzip
import hashlib
import shutil
import struct

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nnkit as nk
from nnkit.data import DatasetError

# Class counts of the UCI optdigits test set (optdigits.names, "Class distribution" of optdigits.tes).
OPTDIGITS_TEST_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# ---------------------------------------------------------------- digits
@pytest.fixture(scope="module")
def digits():
    return nk.data.load_digits()


def test_digits_file_matches_its_checksum():
    digest = hashlib.sha256(nk.data.DIGITS_PATH.read_bytes()).hexdigest()
    assert digest == nk.data.DIGITS_SHA256


def test_digits_shapes_dtypes_ranges(digits):
    X, y = digits
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    # pixels are counts 0..16 divided by 16: every value is a multiple of 1/16
    np.testing.assert_array_equal(X * 16, np.round(X * 16))
    assert set(np.unique(y)) == set(range(10))
    assert np.bincount(y).tolist() == OPTDIGITS_TEST_COUNTS


def test_digits_as_images_are_the_same_pixels(digits):
    X, y = digits
    Xi, yi = nk.data.load_digits(images=True)
    assert Xi.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(Xi.reshape(1797, 64), X)
    np.testing.assert_array_equal(yi, y)
    # row-major images: the first row of an image is its first 8 pixels
    np.testing.assert_array_equal(Xi[5, 0, 0], X[5, :8])


def test_digits_are_real_handwriting(digits):
    """Not noise, not a constant: images of one digit resemble each other more than other digits."""
    X, y = digits
    means = np.stack([X[y == c].mean(axis=0) for c in range(10)])
    nearest_mean = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest_mean == y) > 0.85  # a nearest-class-mean classifier already works
    assert len(np.unique(X, axis=0)) > 1700  # almost every image distinct


def test_digits_returns_fresh_copies():
    X1, y1 = nk.data.load_digits()
    X1[:] = -1
    y1[:] = -1
    X2, y2 = nk.data.load_digits()
    assert X2.min() == 0.0 and y2.min() == 0


def test_digits_float32_on_request():
    X, _ = nk.data.load_digits(dtype=np.float32)
    assert X.dtype == np.float32


def test_corrupted_digits_file_fails_clearly(tmp_path):
    bad = tmp_path / "digits.npz"
    data = bytearray(nk.data.DIGITS_PATH.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte
    bad.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="corrupt.*SHA-256"):
        nk.data.load_digits(path=bad)


def test_intact_copy_of_digits_file_loads(tmp_path):
    good = tmp_path / "digits.npz"
    shutil.copy(nk.data.DIGITS_PATH, good)
    X, y = nk.data.load_digits(path=good)
    assert X.shape == (1797, 64)


def test_missing_digits_file_fails_clearly(tmp_path):
    with pytest.raises(DatasetError, match="missing"):
        nk.data.load_digits(path=tmp_path / "nope.npz")


# ---------------------------------------------------------------- toy sets
TOYS = {
    "xor": lambda n, rng: nk.data.xor(n, noise=0.1, rng=rng),
    "spirals2": lambda n, rng: nk.data.spirals(n, classes=2, noise=0.1, rng=rng),
    "spirals3": lambda n, rng: nk.data.spirals(n, classes=3, noise=0.1, rng=rng),
    "moons": lambda n, rng: nk.data.moons(n, noise=0.1, rng=rng),
    "circles": lambda n, rng: nk.data.circles(n, noise=0.05, factor=0.5, rng=rng),
}


@pytest.mark.parametrize("name", sorted(TOYS))
@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 400), seed=st.integers(0, 2**32 - 1))
def test_toy_sets_shapes_labels_balance(name, n, seed):
    X, y = TOYS[name](n, seed)
    classes = 3 if name == "spirals3" else 2
    assert X.shape == (n, 2) and X.dtype == np.float64 and np.all(np.isfinite(X))
    assert y.shape == (n,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes and counts.max() - counts.min() <= (1 if name != "xor" else 2)


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_sets_are_seeded(name):
    X1, y1 = TOYS[name](200, 7)
    X2, y2 = TOYS[name](200, np.random.default_rng(7))
    X3, _ = TOYS[name](200, 8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize("name", sorted(TOYS))
def test_toy_sets_are_shuffled(name):
    _, y = TOYS[name](200, 0)
    assert len(np.unique(y[:20])) > 1  # not all of one class first


def test_xor_labels_follow_the_sign_rule():
    X, y = nk.data.xor(400, noise=0.1, rng=0)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(int))


def test_circles_radii_and_moons_geometry():
    X, y = nk.data.circles(300, noise=0.0, factor=0.3, rng=0)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)
    X, y = nk.data.moons(300, noise=0.0, rng=0)
    np.testing.assert_allclose(np.hypot(X[y == 0, 0], X[y == 0, 1]), 1.0)
    np.testing.assert_allclose(np.hypot(X[y == 1, 0] - 1.0, X[y == 1, 1] - 0.5), 1.0)


def test_spiral_radius_grows_along_each_arm():
    X, y = nk.data.spirals(300, classes=3, noise=0.0, rng=0)
    r = np.hypot(X[:, 0], X[:, 1])
    assert r.min() == 0.0 and np.isclose(r.max(), 1.0)


@pytest.mark.parametrize("call, match", [
    (lambda: nk.data.xor(0), "n must be"),
    (lambda: nk.data.moons(10, noise=-1), "noise"),
    (lambda: nk.data.spirals(10, classes=1), "classes"),
    (lambda: nk.data.circles(10, factor=1.5), "factor"),
])
def test_toy_sets_reject_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_toy_pm1_is_the_lecture_example():
    X, y = nk.data.toy_pm1()
    assert X.shape == (2, 1) and y.shape == (2, 1) and X.dtype == y.dtype == np.float64
    assert sorted(X.ravel().tolist()) == [-1.0, 1.0]
    np.testing.assert_array_equal(y, (1 - X) / 2)  # target y = (1 − x)/2: x = +1 → 0, x = −1 → 1
    # the notes' starting point puts x = −1 at z = −2.5 (they print b = 0.5, which would give −1.5)
    assert nk.data.TOY_PM1_WEIGHT == 2.0
    z = nk.data.TOY_PM1_WEIGHT * X + nk.data.TOY_PM1_BIAS
    assert z[X == -1.0].item() == -2.5


def test_toy_pm1_saturation_mse_vs_cross_entropy():
    """At z = −2.5 the MSE gradient through the sigmoid is small; cross entropy's is large."""
    X, y = nk.data.toy_pm1()
    i = np.flatnonzero(X.ravel() == -1.0)
    layer = nk.Linear(1, 1)
    layer.weight.data[:] = nk.data.TOY_PM1_WEIGHT
    layer.bias.data[:] = nk.data.TOY_PM1_BIAS
    grads = {}
    for name, loss in (("mse", nk.MSELoss(reduction="sum")), ("ce", nk.BCEWithLogitsLoss(reduction="sum"))):
        z = layer.forward(X[i])
        out = nk.Sigmoid().forward(z) if name == "mse" else z
        loss.forward(out, y[i])
        g = loss.backward()
        grads[name] = (g * (out * (1 - out)) if name == "mse" else g).item()  # ∂ℒ/∂z
    s = 1 / (1 + np.exp(2.5))
    assert grads["ce"] == pytest.approx(s - 1)  # σ(z) − y
    assert grads["mse"] == pytest.approx(2 * (s - 1) * s * (1 - s))  # 2(σ − y)σ′ (MSELoss has no ½)
    assert abs(grads["mse"]) < abs(grads["ce"]) / 5


# ---------------------------------------------------------------- splits
def test_split_sizes_disjoint_complete_stratified(digits):
    X, y = digits
    idx = np.arange(len(X), dtype=np.float64)[:, None]  # use the row number as the feature
    (a, ya), (b, yb), (c, yc) = nk.data.train_val_test_split(idx, y, 0.15, 0.15, rng=0)
    rows = np.concatenate([a, b, c]).ravel().astype(int)
    assert sorted(rows.tolist()) == list(range(len(X)))  # disjoint and covering
    assert (len(b), len(c)) == (round(0.15 * 1797), round(0.15 * 1797))
    for part, yp in ((a, ya), (b, yb), (c, yc)):
        np.testing.assert_array_equal(y[part.ravel().astype(int)], yp)  # labels travel with their rows
    overall = np.bincount(y) / len(y)
    for yp in (ya, yb, yc):
        counts = np.bincount(yp, minlength=10)
        # stratified: each class within one example of its share
        assert np.all(np.abs(counts - overall * len(yp)) <= 1.0 + 1e-9), counts


def test_split_is_reproducible_and_seed_dependent(digits):
    X, y = digits
    s1 = nk.data.train_val_test_split(X, y, rng=3)
    s2 = nk.data.train_val_test_split(X, y, rng=np.random.default_rng(3))
    s3 = nk.data.train_val_test_split(X, y, rng=4)
    for (p1, q1), (p2, q2) in zip(s1, s2):
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(q1, q2)
    assert not np.array_equal(s1[2][0], s3[2][0])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(10, 300), classes=st.integers(1, 6), val=st.floats(0.0, 0.4), test=st.floats(0.0, 0.4),
       seed=st.integers(0, 1000), stratify=st.booleans())
@example(n=240, classes=3, val=0.0, test=0.171875, seed=112, stratify=True)  # shares of the rounded part sizes
def test_split_properties(n, classes, val, test, seed, stratify):
    r = np.random.default_rng(seed)
    y = r.integers(0, classes, n)
    X = np.arange(n)[:, None].astype(float)
    if round(val * n) + round(test * n) >= n:
        with pytest.raises(ValueError, match="no training"):
            nk.data.train_val_test_split(X, y, val, test, rng=seed, stratify=stratify)
        return
    (a, ya), (b, yb), (c, yc) = nk.data.train_val_test_split(X, y, val, test, rng=seed, stratify=stratify)
    rows = np.concatenate([a, b, c]).ravel().astype(int)
    assert sorted(rows.tolist()) == list(range(n))
    assert len(c) == int(np.floor(test * n + 0.5)) and len(b) == int(np.floor(val * n + 0.5))
    if stratify:
        for yp in (ya, yb, yc):
            for k in range(classes):
                share = np.mean(y == k) * len(yp)
                assert abs(np.sum(yp == k) - share) < 1.0 + 1e-9 or len(yp) == 0


def test_split_of_regression_targets_is_random_but_complete():
    X = np.arange(50.0)[:, None]
    y = np.linspace(0, 1, 50)
    (a, ya), (b, _), (c, _) = nk.data.train_val_test_split(X, y, 0.2, 0.2, rng=0)
    assert len(a) + len(b) + len(c) == 50
    np.testing.assert_array_equal(ya, y[a.ravel().astype(int)])


@pytest.mark.parametrize("val, test", [(0.6, 0.5), (-0.1, 0.2), (0.2, 1.0)])
def test_split_rejects_bad_fractions(val, test):
    with pytest.raises(ValueError):
        nk.data.train_val_test_split(np.zeros((10, 2)), np.zeros(10, int), val, test)


def test_split_rejects_mismatched_lengths():
    with pytest.raises(nk.ShapeError, match="same number of examples"):
        nk.data.train_val_test_split(np.zeros((10, 2)), np.zeros(9, int))


# ---------------------------------------------------------------- loader
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 200), bs=st.integers(1, 64), drop_last=st.booleans(), shuffle=st.booleans())
def test_loader_covers_every_example_once_per_epoch(n, bs, drop_last, shuffle):
    X = np.arange(n, dtype=float)[:, None] * np.ones((1, 3))
    y = np.arange(n)
    loader = nk.data.DataLoader(X, y, batch_size=bs, shuffle=shuffle, rng=0, drop_last=drop_last)
    expected_batches = n // bs if drop_last else -(-n // bs)
    assert len(loader) == expected_batches
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == expected_batches
        assert all(len(xb) == bs for xb, _ in batches[: n // bs])
        seen = np.concatenate([yb for _, yb in batches]) if batches else np.array([], int)
        for xb, yb in batches:
            np.testing.assert_array_equal(xb[:, 0], yb)  # rows and labels stay paired
        assert len(set(seen.tolist())) == len(seen)  # no example twice
        if not drop_last:
            assert sorted(seen.tolist()) == list(range(n))
        else:
            assert len(seen) == (n // bs) * bs
        if not shuffle:
            np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_loader_shuffles_reproducibly_and_differently_each_epoch():
    X = np.arange(100.0)[:, None]
    y = np.arange(100)

    def run(rng):
        loader = nk.data.DataLoader(X, y, batch_size=10, rng=rng)
        return [np.concatenate([yb for _, yb in loader]) for _ in range(3)]

    a, b = run(5), run(np.random.default_rng(5))
    for e1, e2 in zip(a, b):
        np.testing.assert_array_equal(e1, e2)
    assert not np.array_equal(a[0], a[1])  # a new permutation every epoch
    assert not np.array_equal(a[0], np.arange(100))
    assert not np.array_equal(run(6)[0], a[0])


def test_loader_default_generator_follows_manual_seed():
    X = np.arange(30.0)[:, None]
    nk.manual_seed(11)
    first = np.concatenate([xb for xb, _ in nk.data.DataLoader(X, np.arange(30), batch_size=7)])
    nk.manual_seed(11)
    second = np.concatenate([xb for xb, _ in nk.data.DataLoader(X, np.arange(30), batch_size=7)])
    np.testing.assert_array_equal(first, second)


def test_loader_without_targets_yields_inputs():
    X = np.arange(10.0)[:, None]
    batches = list(nk.data.DataLoader(X, batch_size=4, shuffle=False))
    assert [b.shape for b in batches] == [(4, 1), (4, 1), (2, 1)]


def test_loader_rejects_bad_input():
    with pytest.raises(nk.ShapeError, match="same number of examples"):
        nk.data.DataLoader(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        nk.data.DataLoader(np.zeros((5, 2)), np.zeros(5), batch_size=0)


# ---------------------------------------------------------------- IDX files
def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(dtype).tobytes()


@pytest.fixture
def mnist_like(tmp_path):
    r = np.random.default_rng(0)
    images = r.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = r.integers(0, 10, 7).astype(np.uint8)
    paths = {}
    for compress in (False, True):
        for name, arr, code in (("images", images, 0x08), ("labels", labels, 0x08)):
            raw = _idx_bytes(arr, code)
            p = tmp_path / (f"{name}-idx{arr.ndim}-ubyte" + (".gz" if compress else ""))
            p.write_bytes(gzip.compress(raw) if compress else raw)
            paths[name, compress] = p
    return images, labels, paths


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_roundtrip(mnist_like, compress):
    images, labels, paths = mnist_like
    X, y = nk.data.load_mnist_idx(paths["images", compress], paths["labels", compress])
    assert X.shape == (7, 784) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X * 255, images.reshape(7, -1).astype(float))
    np.testing.assert_array_equal(y, labels)
    Xi, _ = nk.data.load_mnist_idx(paths["images", compress], paths["labels", compress], images=True)
    assert Xi.shape == (7, 1, 28, 28)
    Xr, _ = nk.data.load_mnist_idx(paths["images", compress], paths["labels", compress], normalize=False)
    assert Xr.dtype == np.uint8


@pytest.mark.parametrize("code, dtype", [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32),
                                          (0x0E, np.float64)])
def test_read_idx_every_type_is_big_endian(tmp_path, code, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    p = tmp_path / "a.idx"
    p.write_bytes(_idx_bytes(arr, code))
    out = nk.data.read_idx(p)
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


def _corrupt(paths, tmp_path, which, mutate):
    src = paths[which, False]
    p = tmp_path / f"bad-{which}"
    p.write_bytes(mutate(src.read_bytes()))
    return p


@pytest.mark.parametrize("which, mutate, match", [
    ("images", lambda b: b"\x01\x00" + b[2:], "magic number"),
    ("images", lambda b: b[:2] + b"\x0a" + b[3:], "data type code"),
    ("images", lambda b: b[:-1], "truncated"),
    ("images", lambda b: b + b"\x00", "truncated or corrupt"),
    ("images", lambda b: b[:10], "header"),
    ("images", lambda b: b[:3], "too short"),
    ("labels", lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
])
def test_corrupt_idx_files_fail_clearly(mnist_like, tmp_path, which, mutate, match):
    _, _, paths = mnist_like
    bad = _corrupt(paths, tmp_path, which, mutate)
    other = paths["labels" if which == "images" else "images", False]
    args = (bad, other) if which == "images" else (other, bad)
    with pytest.raises(DatasetError, match=match):
        nk.data.load_mnist_idx(*args)


def test_idx_swapped_files_and_count_mismatch(mnist_like, tmp_path):
    images, labels, paths = mnist_like
    with pytest.raises(DatasetError, match="swapped"):
        nk.data.load_mnist_idx(paths["labels", False], paths["images", True])
    short = tmp_path / "short-labels"
    short.write_bytes(_idx_bytes(labels[:5], 0x08))
    with pytest.raises(DatasetError, match="7 images but .* 5 labels"):
        nk.data.load_mnist_idx(paths["images", False], short)
    big = tmp_path / "big-labels"
    big.write_bytes(_idx_bytes(np.full(7, 12, np.uint8), 0x08))
    with pytest.raises(DatasetError, match="digits 0…9"):
        nk.data.load_mnist_idx(paths["images", False], big)
    floats = tmp_path / "float-images"
    floats.write_bytes(_idx_bytes(images.astype(np.float32), 0x0D))
    with pytest.raises(DatasetError, match="uint8 images"):
        nk.data.load_mnist_idx(floats, paths["labels", False])


def test_idx_damaged_gzip_and_missing_file(mnist_like, tmp_path):
    _, _, paths = mnist_like
    data = paths["images", True].read_bytes()
    bad = tmp_path / "bad.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="gzip"):
        nk.data.read_idx(bad)
    with pytest.raises(DatasetError, match="no such file"):
        nk.data.read_idx(tmp_path / "absent")


# ---------------------------------------------------------------- augmentation
def _shifted_by_padding(X, dy, dx, s, fill):
    """Reference: pad by s pixels of ``fill``, then cut the H×W window that moves the image by (dy, dx)."""
    H, W = X.shape[-2:]
    pad = [(0, 0)] * (X.ndim - 2) + [(s, s), (s, s)]
    P = np.pad(X, pad, constant_values=fill)
    return P[..., s - dy:s - dy + H, s - dx:s - dx + W]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), c=st.sampled_from([None, 1, 3]), h=st.integers(2, 7), w=st.integers(2, 7),
       s=st.integers(0, 3), diagonal=st.booleans(), fill=st.sampled_from([0.0, -1.0]), seed=st.integers(0, 99))
def test_augment_shifts_matches_padding_and_cropping(n, c, h, w, s, diagonal, fill, seed):
    s = min(s, min(h, w) - 1)
    shape = (n, h, w) if c is None else (n, c, h, w)
    X = np.random.default_rng(seed).random(shape)
    y = np.arange(n) % 10
    Xa, ya = nk.data.augment_shifts(X, y, s, diagonal=diagonal, fill=fill)
    offsets = [(0, 0)] + [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)
                          if (dy, dx) != (0, 0) and (diagonal or dy == 0 or dx == 0)]
    assert len(offsets) == ((2 * s + 1) ** 2 if diagonal else 4 * s + 1)
    assert Xa.shape == (len(offsets) * n,) + shape[1:] and Xa.dtype == X.dtype
    assert np.array_equal(ya, np.tile(y, len(offsets)))
    for k, (dy, dx) in enumerate(offsets):
        assert np.array_equal(Xa[k * n:(k + 1) * n], _shifted_by_padding(X, dy, dx, s, fill)), (dy, dx)


def test_augment_shifts_moves_digits_without_losing_ink():
    X, y = nk.data.load_digits(images=True)
    X, y = X[:50], y[:50]
    Xa, ya = nk.data.augment_shifts(X, y)                      # 9 copies: the original and 8 one-pixel moves
    assert Xa.shape == (450, 1, 8, 8) and np.array_equal(Xa[:50], X)
    right = Xa[5 * 50:6 * 50]                                  # offsets in order: (0,0), (−1,−1), (−1,0), (−1,1), (0,−1), (0,1)
    assert np.array_equal(right[..., 1:], X[..., :-1]) and not right[..., 0].any()
    border_free = ~X[..., :, -1].any(axis=(1, 2))              # images whose last column is blank keep all their ink
    assert border_free.any()
    assert np.allclose(right[border_free].sum(axis=(1, 2, 3)), X[border_free].sum(axis=(1, 2, 3)))
    assert not np.shares_memory(Xa, X)
    Xn, yn = nk.data.augment_shifts(X, None, 1, diagonal=False)
    assert Xn.shape == (250, 1, 8, 8) and yn is None


def test_augment_shifts_rejects_bad_input():
    X, y = nk.data.load_digits()
    with pytest.raises(nk.ShapeError, match=r"images=True"):
        nk.data.augment_shifts(X, y)                           # flat rows (N, 64)
    images = X.reshape(-1, 1, 8, 8)
    with pytest.raises(nk.ShapeError, match="same number of examples"):
        nk.data.augment_shifts(images, y[:-1])
    for bad in (-1, 8, 1.5, True):
        with pytest.raises(ValueError, match="max_shift"):
            nk.data.augment_shifts(images, y, bad)
