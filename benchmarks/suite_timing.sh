#!/usr/bin/env bash
# The README's test command timed as CI runs it: `.ci/run` (which runs `make test`) in a fresh clone of this
# repository's HEAD, the environment included. The report (benchmarks/suite_timing.py) is written to
# docs/results/quick/timing-tests.txt beside the main job's timing reports, to be committed (the README quotes
# it; tests/test_report.py checks the quote). Run it alone on the machine.
# Offline: PAE_DATA_MIRROR=/path/to/mirror bash benchmarks/suite_timing.sh [CLONE]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
clone="${1:-$(mktemp -d)/pae}"
if [ -e "$clone" ]; then
  echo "suite_timing.sh: $clone exists; give a new folder for the fresh clone" >&2
  exit 2
fi
git clone -q "$repo" "$clone"
log="$clone.log"
t0=$(date +%s.%N)
status=0
(cd "$clone" && bash .ci/run) > "$log" 2>&1 || status=$?
t1=$(date +%s.%N)
python3 "$repo/benchmarks/suite_timing.py" --log "$log" --commit "$(git -C "$repo" rev-parse --short HEAD)" \
  --seconds "$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$t1")" \
  --status "$status" | tee "$repo/docs/results/quick/timing-tests.txt"
echo "log: $log"
exit "$status"
