"""End to end: wall time and peak memory (driver + Ray processes) of whole suites with their
default configs, and an identical re-run against the first (the cache).

Targets on 2 cores: toy <= 60 s, digits <= 5 min; identical re-run <= 10 % of the first run.

    python perf/end_to_end.py [--suites toy digits olivetti] [--rerun digits]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from perf.common import tree_rss_bytes, write_result


def run_suite(suite: str, results: Path) -> dict[str, float]:
    cmd = [sys.executable, "-m", "lsmia_bench.cli", "run", "--suite", suite, "--results",
           str(results)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_bytes(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{suite} failed:\n{output.decode()[-3000:]}")
    return {"wall_s": wall, "peak_rss_mib": peak / 2**20, "exit_code": proc.returncode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suites", nargs="+", default=["toy", "digits", "olivetti"])
    parser.add_argument("--rerun", nargs="*", default=["digits"])
    args = parser.parse_args()
    figures: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suite in args.suites:
            results = Path(tmp) / suite
            figures[suite] = run_suite(suite, results)
            if suite in args.rerun:
                again = run_suite(suite, results)
                figures[suite]["rerun"] = again
                figures[suite]["rerun_fraction"] = again["wall_s"] / figures[suite]["wall_s"]
            print(suite, figures[suite], flush=True)
    write_result("end_to_end", {
        "targets": {"toy_wall_s": 60, "digits_wall_s": 300, "rerun_fraction": 0.10},
        "suites": figures,
    })


if __name__ == "__main__":
    main()
