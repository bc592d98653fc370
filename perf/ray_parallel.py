"""Ray parallel efficiency: N CPU trials at once against the same trials one after another.
Target on 2 cores: speed-up >= 1.7x.

    python perf/ray_parallel.py [--trials 4] [--concurrent 2] [--iterations 3000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lsmia_bench.benchmark.cache import ArtifactStore
from lsmia_bench.benchmark.config import Resources
from lsmia_bench.benchmark.pipelines.toy import ToyConfig, ToyPipeline
from lsmia_bench.benchmark.runner import StageRunner, init_ray
from perf.common import write_result


def stage_time(jobs, concurrent: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        runner = StageRunner(ArtifactStore(Path(tmp) / "cache"), Path(tmp) / "ray",
                             f"bench-{concurrent}", device="cpu", max_concurrent=concurrent)
        started = time.perf_counter()
        outcomes = runner.run("targets", jobs, Resources(cpu=1), {})
        elapsed = time.perf_counter() - started
    assert all(o.ok for o in outcomes.values()), [o.error for o in outcomes.values()]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args()
    init_ray(None)
    config = ToyConfig(name="bench", defenses=[{"name": "label_smoothing",
                                                "grid": {"alpha": [0.0, 0.05, -0.05, 0.1]}}],
                       seeds=list(range((args.trials + 3) // 4)),
                       training={"iterations": args.iterations})
    jobs = [j for j in ToyPipeline().plan(config) if j.stage == "targets"][:args.trials]
    stage_time(jobs[:1], 1)  # warm up the Ray workers
    sequential = stage_time(jobs, 1)
    parallel = stage_time(jobs, args.concurrent)
    write_result("ray_parallel", {
        "target": ">= 1.7x speed-up with 2 concurrent trials on 2 cores",
        "trials": len(jobs), "concurrent": args.concurrent, "iterations": args.iterations,
        "sequential_s": sequential, "parallel_s": parallel, "speedup": sequential / parallel,
    })


if __name__ == "__main__":
    main()
