"""Rebuild ``digits.npz`` from scikit-learn's copy of the UCI optdigits test set.

The course does not depend on scikit-learn; this script is how the shipped file was made:

    pip download --no-deps scikit-learn -d /tmp/skl
    unzip -o /tmp/skl/scikit_learn-*.whl 'sklearn/datasets/data/digits.csv.gz' -d /tmp/skl
    python nnkit/datasets/make_digits.py /tmp/skl/sklearn/datasets/data/digits.csv.gz nnkit/datasets/digits.npz

The archive is written byte for byte reproducibly (fixed member dates, fixed compression), so
the SHA-256 it prints must equal ``nnkit.data.DIGITS_SHA256``.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import sys
import zipfile

import numpy as np


def main(src: str, dst: str) -> str:
    raw = np.loadtxt(gzip.open(src, "rt"), delimiter=",", dtype=np.int64)
    if raw.shape != (1797, 65):
        raise SystemExit(f"{src}: expected 1797 rows of 64 pixels + 1 label, got shape {raw.shape}")
    pixels = raw[:, :64].astype(np.uint8)  # 8×8 images, row-major, counts 0..16
    labels = raw[:, 64].astype(np.uint8)  # digits 0..9
    if pixels.min() < 0 or pixels.max() > 16 or set(labels.tolist()) != set(range(10)):
        raise SystemExit(f"{src}: pixel or label values out of range")
    with zipfile.ZipFile(dst, "w") as zf:
        for name, arr in (("pixels", pixels), ("labels", labels)):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1998, 7, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    with open(dst, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
