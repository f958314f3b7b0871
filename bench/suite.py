"""`make bench`: run every benchmark in quick or full mode, then write docs/performance.md.

    .venv/bin/python bench/suite.py [--full] [--only ingress,drain,...] [--report-only]

Each benchmark keeps its figures in .hookstream/bench/NAME.json; the report is made from
whatever is there, so one benchmark can be re-run alone and the report written again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# name -> (quick arguments, full arguments)
RUNS: dict[str, tuple[list[str], list[str]]] = {
    "broker": (["bench/broker_perf.py", "--records", "50000"], ["bench/broker_perf.py"]),
    "ingress": (
        [
            "bench/ingress_http.py",
            "--rounds",
            "3",
            "--duration",
            "5",
            "--untraced",
            "--profile",
            ".hookstream/bench/ingress_profile.txt",
        ],
        [
            "bench/ingress_http.py",
            "--rounds",
            "5",
            "--duration",
            "10",
            "--untraced",
            "--profile",
            ".hookstream/bench/ingress_profile.txt",
        ],
    ),
    "ingress-w2": (
        ["bench/ingress_http.py", "--rounds", "2", "--duration", "5", "--workers", "2"],
        ["bench/ingress_http.py", "--rounds", "3", "--duration", "10", "--workers", "2"],
    ),
    "drain": (
        [
            "bench/worker_drain.py",
            "--events",
            "20000",
            "--rounds",
            "2",
            "--profile",
            ".hookstream/bench/worker_profile.txt",
        ],
        [
            "bench/worker_drain.py",
            "--events",
            "200000",
            "--rounds",
            "3",
            "--profile",
            ".hookstream/bench/worker_profile.txt",
        ],
    ),
    "e2e": (
        ["bench/end_to_end.py", "--seconds", "10", "--max-requests", "2000"],
        ["bench/end_to_end.py", "--seconds", "30", "--max-requests", "6000"],
    ),
    "scale": (
        ["bench/scale_out.py", "--events", "3000"],
        ["bench/scale_out.py", "--events", "12000"],
    ),
    "delivery": (
        ["bench/delivery_rate.py", "--events", "2000", "--rounds", "2"],
        ["bench/delivery_rate.py", "--events", "4000", "--rounds", "3"],
    ),
    "dedupe": (
        ["bench/dedupe_state.py", "--ids", "10000,100000"],
        ["bench/dedupe_state.py", "--ids", "10000,100000,1000000"],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full sizes (tens of minutes)")
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated: " + ",".join(RUNS))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        for name in args.only.split(","):
            quick, full = RUNS[name]
            command = [sys.executable, *(full if args.full else quick)]
            print(f"== {name}: {' '.join(command[1:])}", flush=True)
            started = time.monotonic()
            subprocess.run(command, cwd=ROOT, check=True)
            print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    from bench.report import write_report

    path = write_report("full" if args.full else "quick")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
