"""The integrity guard: honest use of the libraries is never flagged, replacements are.

Each case runs in a fresh interpreter, as a grading kernel would: the guard is installed with
its default preload (numpy, PyTorch, nnkit, the checks), then the cell's code runs, then the
guard is asked what changed.
"""
from __future__ import annotations

import json
import subprocess
import sys
from textwrap import dedent

import pytest

HONEST = {
    "torch optimisers": """
        import torch
        w = torch.zeros(2, requires_grad=True)
        for opt in (torch.optim.SGD([w], lr=0.1, momentum=0.9), torch.optim.Adam([w]), torch.optim.AdamW([w])):
            opt.zero_grad()
            ((w - 2) ** 2).sum().backward()
            opt.step()
        torch.optim.lr_scheduler.StepLR(opt, 1)
        """,
    "torch autograd and nn": """
        import torch
        import torch.nn as nn
        net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
        x = torch.ones(4, 2, requires_grad=True)
        torch.autograd.grad(net(x).sum(), x)
        torch.nn.functional.cross_entropy(torch.ones(2, 3), torch.tensor([0, 1])).item()
        torch.manual_seed(0)
        """,
    "matplotlib": """
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        plt.close(fig)
        """,
    "nnkit": """
        import numpy as np
        import nnkit as nk
        model = nk.Sequential(nk.Linear(2, 3), nk.Sigmoid(), nk.Linear(3, 1))
        loss = nk.MSELoss()
        loss(model(np.ones((4, 2))), np.zeros((4, 1)))
        model.backward(loss.backward())
        nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9).step()
        """,
}

HOSTILE = {
    "a wrapper of numpy's comparison": ("""
        import functools, numpy as np
        np.allclose = functools.wraps(np.allclose)(lambda *a, **k: True)
        """, "numpy.allclose was replaced"),
    "a wrapper of torch.manual_seed": ("""
        import functools, torch
        torch.manual_seed = functools.wraps(torch.manual_seed)(lambda seed: None)
        """, "torch.manual_seed was replaced"),
}


def _violations(code: str) -> list[str]:
    script = dedent(f"""
        import json
        from nnkit.course import guard
        guard.install("k" * 64)
        exec(compile({dedent(code)!r}, "<cell>", "exec"), {{}})
        print(json.dumps(json.loads(guard.check("n", "check").rsplit("\\n", 1)[0])["violations"]))
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(HONEST))
def test_honest_use_of_the_libraries_is_never_flagged(case):
    assert _violations(HONEST[case]) == []


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_replacing_a_function_with_a_wrapper_is_flagged(case):
    code, message = HOSTILE[case]
    assert message in _violations(code)
