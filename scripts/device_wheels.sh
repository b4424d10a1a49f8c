#!/usr/bin/env bash
# Fetch the wheels the device machine lacks (the MESA step's neurokit2, pyedflib and pywavelets,
# at the versions installed here) into .whl/ (ignored), for Python 3.12 on x86-64 Linux.
# Carry .whl with the device call; scripts/gpu_run.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
version() { "$PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    "neurokit2==$(version neurokit2)" "pyedflib==$(version pyEDFlib)" "pywavelets==$(version PyWavelets)"
ls -la .whl
