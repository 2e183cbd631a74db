"""The report of benchmarks/suite_timing.sh: pytest's closing lines from a `.ci/run` log and the total time.

    python3 benchmarks/suite_timing.py --log CLONE.log --seconds 749.2 --commit abc1234 --status 0

Prints the rest of the suite's summary line, then the Slurm part's (run beside it by `make test`), then
"set-up + wall: S s (h:mm:ss)" and the commit, as benchmarks/main_job.sh's reports do (the README quotes the
total; tests/test_report.py checks the quote against the committed copy).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

#: pytest's closing line, with or without its "=====" frame (-q prints none, -v frames it)
SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed|errors?)[^=\n]*? in [\d.]+s(?: \([\d:]+\))?)(?: =+)?$", re.M)
PARTS = ("rest of the suite", "tests/test_slurm.py (beside the rest)")


def report(log: str, seconds: float, commit: str, status: int) -> str:
    lines = [f"{part}: {line}" for part, line in zip(PARTS, SUMMARY.findall(log), strict=False)]
    s = round(seconds, 1)
    lines.append(f"set-up + wall: {s} s ({int(s // 3600)}:{int(s % 3600 // 60):02d}:{int(s % 60):02d})")
    lines.append(f"target: .ci/run (make test) in a fresh clone at commit {commit}, exit status {status}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--commit", required=True)
    ap.add_argument("--status", type=int, required=True)
    args = ap.parse_args()
    print(report(args.log.read_text(), args.seconds, args.commit, args.status))


if __name__ == "__main__":
    main()
