#!/usr/bin/env bash
# One-step set-up: a virtual environment in .venv with nnkit, JupyterLab, nbgrader and the test tools.
# constraints.txt keeps PyTorch at its CPU build 2.13.0 (pyproject.toml only sets a floor).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[dev]"
echo "nnkit is set up in $VENV. Next: $VENV/bin/jupyter lab lectures/   (or: $VENV/bin/python -m pytest)"
