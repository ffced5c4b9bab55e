"""Shared test configuration: float64 by default, GPU tests skipped with a visible reason."""
from __future__ import annotations

import os

import pytest

# One BLAS/OpenMP thread per process: the test workers (pytest -n) and the notebook kernels they
# start already keep every core busy; more threads than cores slow a notebook down up to 20×.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYTHONWARNINGS", "ignore")


def _cuda_reason() -> str | None:
    """None when CUDA is usable, else why not."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return "PyTorch is not installed"
    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda})"
    return None


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    reason = _cuda_reason()
    if reason:
        skip = pytest.mark.skip(reason=f"GPU test skipped: {reason}")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)


def pytest_terminal_summary(terminalreporter):
    """List how long each notebook took to execute (tests record it as ``notebook_seconds``)."""
    times = [value for report in terminalreporter.stats.get("passed", [])
             for name, value in getattr(report, "user_properties", []) if name == "notebook_seconds"]
    if times:
        terminalreporter.section("notebook execution times (headless, nbclient)")
        for notebook, seconds in sorted(times):
            terminalreporter.write_line(f"{seconds:7.1f} s  {notebook}")
