#!/usr/bin/env bash
# Create .venv and install synthkit with its test extras, offline-friendly and CPU-first.
# torch==2.13.0 goes FIRST: a CPU build of it lies on this machine's disk, and installing
# opacus into an environment without torch would pull a multi-GB CUDA build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
