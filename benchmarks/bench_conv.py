"""Speed of nnkit's convolution against PyTorch on the CPU (a benchmark, not a test).

    python benchmarks/bench_conv.py [--threads T] [--repeats R] [--epochs E]

Prints, with numpy's BLAS and PyTorch both limited to the same number of threads:

1. the median time of one forward + backward pass of Conv2d(8→16, 5×5) + ReLU + MaxPool2d(2)
   on a float32 batch of shape (64, 8, 28, 28): nnkit (fast), PyTorch, and their ratio; then
   nnkit's naive loops on a much smaller batch (2, 8, 12, 12), with PyTorch on that batch too;
2. the wall time of training the digits convnet (``nnkit.models.lenet_digits``) for a fixed
   number of epochs in float32 with ``nk.train.fit``, against the same network, the same
   initial weights and the same minibatches in PyTorch.

One thread by default: on a machine shared with other jobs a multi-threaded BLAS waits for
busy cores at every matrix product, and the figures mean little; ``--threads T`` uses T. nnkit and PyTorch are
timed alternately, and the ratio is the median of the per-pair ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS and PyTorch threads (default 1; the machine has %d cores)" % (os.cpu_count() or 1))
    p.add_argument("--repeats", type=int, default=30, help="timed repetitions of the layer benchmark")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the training benchmark")
    p.add_argument("--skip-training", action="store_true", help="only the layer benchmark")
    return p.parse_args()


ARGS = _parse()
# numpy's BLAS reads its thread count when it is loaded: set it before importing numpy.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import nnkit as nk  # noqa: E402

torch.set_num_threads(ARGS.threads)


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def interleaved_ms(fn_a, fn_b, repeats: int, warmup: int = 3):
    """Median times of a and b, run alternately (so that a busy machine slows both alike), and
    the median of the per-pair ratios a/b."""
    for _ in range(warmup):
        fn_a(), fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, ta), (fn_b, tb)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    ta, tb = np.array(ta), np.array(tb)
    return 1e3 * float(np.median(ta)), 1e3 * float(np.median(tb)), float(np.median(ta / tb))


def layer_pair(impl: str, shape, rng):
    """The same Conv2d + ReLU + MaxPool2d block in nnkit and in PyTorch, identical weights."""
    block = nk.Sequential(nk.Conv2d(8, 16, 5, impl=impl, rng=rng, dtype=np.float32), nk.ReLU(),
                          nk.MaxPool2d(2, impl=impl))
    conv = torch.nn.Conv2d(8, 16, 5)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(block[0].weight.data))
        conv.bias.copy_(torch.from_numpy(block[0].bias.data))
    twin = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    x = rng.standard_normal(shape).astype(np.float32)
    dout = rng.standard_normal(block.forward(x).shape).astype(np.float32)
    xt, dt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dout)

    def step_nnkit():
        block.zero_grad()
        block.forward(x)
        block.backward(dout)

    def step_torch():
        twin.zero_grad(set_to_none=False)
        xt.grad = None
        twin(xt).backward(dt)

    step_nnkit(), step_torch()
    scale = max(1.0, float(np.max(np.abs(conv.weight.grad.numpy()))))
    err = float(np.max(np.abs(block[0].weight.grad - conv.weight.grad.numpy()))) / scale
    return step_nnkit, step_torch, err


def bench_layers():
    rng = np.random.default_rng(0)
    big, small = (64, 8, 28, 28), (2, 8, 12, 12)
    fast, torch_big, err = layer_pair("fast", big, rng)
    naive, torch_small, _ = layer_pair("naive", small, rng)
    t_fast, t_torch, ratio = interleaved_ms(fast, torch_big, ARGS.repeats)
    t_naive = median_ms(naive, max(3, ARGS.repeats // 10), warmup=1)
    t_torch_small = median_ms(torch_small, ARGS.repeats)
    print(f"Conv2d(8→16, 5×5) + ReLU + MaxPool2d(2), forward + backward, float32, median of {ARGS.repeats}")
    print(f"  input {big}:  nnkit fast {t_fast:7.2f} ms   PyTorch {t_torch:7.2f} ms   "
          f"ratio fast/PyTorch {ratio:4.2f}×   (∂ℒ/∂W relative difference {err:.1e})")
    print(f"  input {small} (the naive loops are far slower, hence a much smaller batch):")
    print(f"    nnkit naive {t_naive:7.1f} ms   PyTorch {t_torch_small:6.3f} ms   "
          f"ratio naive/PyTorch {t_naive / t_torch_small:5.0f}×")
    return ratio


def bench_training():
    from nnkit.models import lenet_digits, to_torch

    X, y = nk.data.load_digits(images=True, dtype=np.float32)
    (X_tr, y_tr), _, (X_te, y_te) = nk.data.train_val_test_split(X, y, rng=1)
    batch, lr, wd = 32, 0.05, 5e-4

    model = lenet_digits(rng=0).to(np.float32)
    twin = to_torch(model)
    opt = nk.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd, decay_biases=True)
    t = time.perf_counter()
    nk.train.fit(model, nk.CrossEntropyLoss(), opt, train=(X_tr, y_tr), epochs=ARGS.epochs,
                 batch_size=batch, rng=0, progress=False, metric=None)
    t_nnkit = time.perf_counter() - t
    acc_nnkit = nk.train.accuracy(model, X_te, y_te)

    # PyTorch: the same minibatches, drawn by the same DataLoader
    opt_t = torch.optim.SGD(twin.parameters(), lr=lr, momentum=0.9, weight_decay=wd)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = nk.data.DataLoader(X_tr, y_tr, batch_size=batch, shuffle=True, rng=0)
    t = time.perf_counter()
    for _ in range(ARGS.epochs):
        for xb, yb in loader:
            opt_t.zero_grad()
            loss_fn(twin(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            opt_t.step()
    t_torch = time.perf_counter() - t
    with torch.no_grad():
        acc_torch = float((twin(torch.from_numpy(X_te)).argmax(1).numpy() == y_te).mean())
    print(f"digits convnet (lenet_digits), {ARGS.epochs} epochs of {len(X_tr)} images, batch {batch}, float32, "
          f"SGD(lr={lr}, momentum=0.9, weight_decay={wd}), split rng=1")
    print(f"  nnkit {t_nnkit:6.2f} s (test accuracy {acc_nnkit:.3f})   PyTorch {t_torch:6.2f} s "
          f"(test accuracy {acc_torch:.3f})   ratio {t_nnkit / t_torch:4.2f}×")


if __name__ == "__main__":
    print(f"numpy {np.__version__}, PyTorch {torch.__version__}, {ARGS.threads} thread(s)")
    bench_layers()
    if not ARGS.skip_training:
        bench_training()
