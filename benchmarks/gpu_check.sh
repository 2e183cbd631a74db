#!/usr/bin/env bash
# The GPU path in a few minutes of GPU time: quick main job in fp32 (twice) and bf16 on CUDA, per-stage
# seconds, digits, a resume from a checkpoint and paper-scale GPU-hours (benchmarks/gpu_check.py).
# Offline: PAE_DATA_MIRROR=/path/to/mirror bash benchmarks/gpu_check.sh [--device cuda:1] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec "$PY" benchmarks/gpu_check.py --device cuda "$@"
