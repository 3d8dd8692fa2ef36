#!/usr/bin/env bash
# Create .venv and install synthkit with its test extras, offline-friendly and CPU-first.
# torch==2.13.0 goes FIRST: a CPU build of it lies on this machine's disk, and installing
# opacus into an environment without torch would pull a multi-GB CUDA build instead.
# As root on Debian it also installs chromium + chromium-driver (browser tests of the HTML
# report and the dashboard) when they are missing; elsewhere those tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; }; } \
        || echo "install.sh: could not install chromium (browser tests will skip)" >&2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
# setuptools notes every editable install ("Editable installation", a reminder about folders
# named like the package); it is not a problem of this project, so it is not shown
# the `ray` extra too: the Ray Train tests (tests/test_ray_fit.py) run in CI on 2 cores
PYTHONWARNINGS="ignore:Editable installation:UserWarning" .venv/bin/python -m pip install -q -e ".[test,ray]"
