#!/usr/bin/env bash
# One-shot GPU run (issue: paper Table 1 on one GPU in ten minutes).
#
#   bash scripts/gpu_run.sh                 # on a GPU machine: writes $OUT/gpu_run.tar.gz
#   bash scripts/gpu_run.sh --out DIR --device cpu --profile tiny --budget 240 \
#        --meae-time 2 --sae-time 2         # the CPU path, as the tests run it
#
# Works offline: the triangles path imports no neurokit2, pyedflib or Dask. Every step has its own
# time bound inside --budget (default 540 s); see benchmark/gpu_oneshot.py for the steps.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
exec "$PYTHON" -m benchmark.tools.gpu_oneshot --out "${OUT:-results/gpu_run}" "$@"
