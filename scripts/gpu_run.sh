#!/usr/bin/env bash
# One-shot GPU run (paper Tables 1 and 2 in fixed device slots).
#
#   bash scripts/gpu_run.sh                         # on a GPU machine: writes $OUT/gpu_run.tar.gz (+ resume.tar.partNN)
#   bash scripts/gpu_run.sh --resume .resume        # a later slot: continue the cut cells from the carried parts
#   bash scripts/gpu_run.sh --out DIR --device cpu --profile tiny --budget 300 \
#        --meae-time 2 --sae-time 2 --mesa-time 2   # the CPU path, as the tests run it
#
# Works offline. Wheels in .whl/ (neurokit2, pyedflib, pywavelets for the MESA step; fetch them
# with scripts/device_wheels.sh) are installed into /tmp/site first. Every step has its own time
# bound inside --budget (default 540 s); see benchmark/tools/gpu_oneshot.py for the steps.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" > /dev/null; then
    if "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl; then
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "gpu_run.sh: the wheels in .whl/ do not install here (built for Python 3.12 on x86-64 Linux); going on without them" >&2
    fi
fi
exec "$PYTHON" -m benchmark.tools.gpu_oneshot --out "${OUT:-results/gpu_run}" "$@"
