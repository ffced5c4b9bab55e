"""Speed of one training step of an MLP, nnkit against PyTorch on the CPU.

    python benchmarks/bench_mlp.py [--threads N] [--repeats R] [--batch B]

One step = forward, cross-entropy loss, backward, SGD update, zero_grad, for a
784-256-256-10 ReLU network on a batch of 128 in float32. Both libraries run with the same
number of threads (numpy's BLAS and PyTorch's intra-op pool; default: the number of CPU cores
this process may use). Prints the median time per step of each and their ratio.
"""
from __future__ import annotations

import argparse
import os
import sys


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    ap.add_argument("--repeats", type=int, default=200, help="timed steps per library (after warm-up)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sizes", default="784,256,256,10", help="layer widths, input first")
    ap.add_argument("--input-grad", action="store_true",
                    help="also compute ∂ℒ/∂x of the data in both libraries (x.requires_grad in PyTorch)")
    return ap.parse_args()


args = _parse()
# BLAS reads its thread count when numpy is first imported: set it before.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import nnkit as nk  # noqa: E402


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"{os.environ['OPENBLAS_NUM_THREADS']} (OPENBLAS_NUM_THREADS; install threadpoolctl to confirm)"
    info = [f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info() if p["user_api"] == "blas"]
    return ", ".join(info) or "unknown"


def time_steps(steps: dict, repeats: int, warmup: int = 20) -> dict[str, np.ndarray]:
    """Seconds per step of each function, ``repeats`` times each. The libraries take turns step by
    step, so a change in the machine's load during the run reaches every library alike."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: np.array(t) for name, t in times.items()}


def main() -> None:
    import torch

    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], args.batch)

    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nk.Linear(n_in, n_out, rng=i, dtype=np.float32))
        if i < len(sizes) - 2:
            layers.append(nk.ReLU())
    model = nk.Sequential(*layers)
    criterion = nk.CrossEntropyLoss()
    opt = nk.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def nnkit_step():
        loss = criterion.forward(model.forward(x), y)
        model.backward(criterion.backward(), input_grad=args.input_grad)  # as PyTorch: no ∂ℒ/∂x unless asked
        opt.step()
        opt.zero_grad()
        return loss

    twin = nk.parity.to_torch(model, dtype=torch.float32)
    t_criterion = torch.nn.CrossEntropyLoss()
    t_opt = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
    xt, yt = torch.from_numpy(x).requires_grad_(args.input_grad), torch.from_numpy(y)

    def torch_step():
        loss = t_criterion(twin(xt), yt)
        loss.backward()
        t_opt.step()
        t_opt.zero_grad()
        xt.grad = None
        return loss

    # float32 end to end: no layer may upcast
    out = model.forward(x)
    assert out.dtype == np.float32, f"nnkit output is {out.dtype}, expected float32"
    criterion.forward(out, y)
    assert model.backward(criterion.backward()).dtype == np.float32
    model.zero_grad()

    t = time_steps({"nnkit": nnkit_step, "torch": torch_step}, args.repeats)
    med = {name: float(np.median(v)) for name, v in t.items()}
    best = {name: float(np.min(v)) for name, v in t.items()}
    print(f"MLP {'-'.join(map(str, sizes))}, ReLU, cross entropy, SGD momentum, batch {args.batch}, float32, "
          f"∂ℒ/∂x of the data {'computed' if args.input_grad else 'not computed'}")
    print(f"threads: numpy BLAS {blas_threads()}; torch.get_num_threads() = {torch.get_num_threads()}")
    print(f"numpy {np.__version__}, torch {torch.__version__}; {args.repeats} steps each, taking turns")
    print(f"nnkit  : median {med['nnkit'] * 1e3:7.3f} ms/step   (fastest {best['nnkit'] * 1e3:.3f})")
    print(f"PyTorch: median {med['torch'] * 1e3:7.3f} ms/step   (fastest {best['torch'] * 1e3:.3f})")
    print(f"ratio nnkit / PyTorch = {med['nnkit'] / med['torch']:.2f}× (median), "
          f"{best['nnkit'] / best['torch']:.2f}× (fastest)")


if __name__ == "__main__":
    main()
