"""Attack budget -> interval width: Acc@1 of the `none` target on seed 0 at several
reconstruction budgets per attacked class, with its within-seed 95 % interval.

Within one seed the interval comes from attack randomness alone (the reconstructions are
resampled within their class; docs/metrics.md, "Uncertainty"). The suites' default budgets
are the smallest measured here whose half-width is at most 0.05. Only the `none` target is
looked at: sizing never sees a defended model.

    python -m perf.attack_budgets [--suites digits olivetti] [--budgets 5 10 20 40]

Each budget k sets PPA's num_candidates = samples_per_class = k and GMI's restarts = k (all
kept), the other attack settings as in the suite file. The target, the evaluation model and
the prior are trained once per suite (cached between the budgets).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from perf.common import write_result
from perf.end_to_end import run_suite

BUDGETS = {"digits": [5, 10, 20, 40], "olivetti": [3, 5, 10]}
ATTACKS = ("ppa", "gmi")


def budget_overrides(suite: str, k: int) -> list[str]:
    from lsmia_bench.benchmark.config import read_suite_file

    raw, _ = read_suite_file(suite, None)
    out = ["seeds=[0]", "defenses=[{name: none}]"]
    for i, attack in enumerate(raw["attacks"]):
        if attack["name"] == "ppa":
            out += [f"attacks.{i}.params.num_candidates={k}",
                    f"attacks.{i}.params.samples_per_class={k}"]
        elif attack["name"] == "gmi":
            out += [f"attacks.{i}.params.restarts={k}"]
    return out


def acc1_rows(results: Path, suite: str) -> dict[str, dict[str, float]]:
    """Acc@1 with its interval, per attack, from the newest report's table.csv."""
    reports = sorted((results / "reports" / suite).iterdir(), key=lambda p: p.stat().st_mtime)
    row = pd.read_csv(reports[-1] / "table.csv").set_index("entry").loc["none"]
    out = {}
    for attack in ATTACKS:
        col = f"{attack}_acc1"
        if col not in row:
            continue
        low, high = float(row[f"{col}_ci_low"]), float(row[f"{col}_ci_high"])
        out[attack] = {"acc1": float(row[col]), "ci_low": low, "ci_high": high,
                       "half_width": (high - low) / 2, "n": float(row[f"{col}_n"])}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--suites", nargs="+", default=list(BUDGETS))
    parser.add_argument("--budgets", nargs="+", type=int, default=None)
    args = parser.parse_args()
    figures: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suite in args.suites:
            results = Path(tmp) / suite
            figures[suite] = {}
            for k in args.budgets or BUDGETS[suite]:
                run = run_suite(suite, results, budget_overrides(suite, k))
                figures[suite][str(k)] = {"per_class": k, "wall_s": run["wall_s"],
                                          **acc1_rows(results, suite)}
                print(suite, k, figures[suite][str(k)], flush=True)
                # Written after every budget: an interrupted script keeps what it measured.
                write_result("attack_budgets", {"entry": "none", "seed": 0, "level": 0.95,
                                                "suites": figures})


if __name__ == "__main__":
    main()
