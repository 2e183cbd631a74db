#!/usr/bin/env bash
# A make target timed from a fresh clone: `make venv` (environment), then `make TARGET` (workflow; default
# table2, the main job; TARGET=paper-quick for the whole quick paper), then the per-stage report of
# benchmarks/main_job.py with both wall times. Run it in a fresh clone: an existing results/quick or .venv is
# reused and makes the timing meaningless. Cores: CORES (default 2).
# Offline: PAE_DATA_MIRROR=/path/to/mirror TARGET=paper-quick bash benchmarks/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -e results/quick ] || [ -e .venv ]; then
  echo "main_job.sh: results/quick or .venv already exists; run this in a fresh clone for a meaningful timing" >&2
fi
now() { date +%s.%N; }
seconds() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$1" "$2"; }
t0=$(now)
make venv
t1=$(now)
make "${TARGET:-table2}" CORES="${CORES:-2}"
t2=$(now)
# The report also lands in results/quick/timing-TARGET.txt, which `make snapshot` copies to docs/results/quick/
# (the README's times and disk sizes quote it; tests/test_report.py checks the quick paper's total).
{
  .venv/bin/python benchmarks/main_job.py --out results/quick --setup "$(seconds "$t0" "$t1")" \
    --wall "$(seconds "$t1" "$t2")" --cores "${CORES:-2}"
  echo "target: make ${TARGET:-table2} with ${CORES:-2} cores at commit $(git rev-parse --short HEAD)"
  # disk: the environment, the downloads, the preprocessed arrays and the run's outputs (README, "Quick start")
  du -sh .venv data/raw data/processed results/quick
} | tee "results/quick/timing-${TARGET:-table2}.txt"
