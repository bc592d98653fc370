"""The ranking rule: data-driven, documented here and shown on the site from this text.

Each entry's privacy is the worst value, over the suite's attacks, of the suite's ranking
privacy metric (the first ranking candidate of the metric registry, ``MetricSpec.rank``, that
the suite records: attack Acc@1 when it exists), with its interval. Worst means the most
leakage, because a defense is only as strong as it is against the strongest attack that was
run. Ranks follow :func:`benchmark.metrics.uncertainty.rank_groups`: entries whose intervals
overlap the interval of their group's best entry share its rank, so the ranks claim only what
the data support. The Pareto front of (utility, leakage) is shown beside the rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lsmia_bench.benchmark.metrics import METRICS

#: Privacy metrics the ranking may use, most preferred first (the first one recorded wins).
RANKING_PRIVACY_METRICS = tuple(METRICS.ranking())
_FIRST, *_REST = (METRICS.get(name).title for name in RANKING_PRIVACY_METRICS)

RANKING_RULE = [
    f"Privacy is the suite's ranking metric (attack {_FIRST} when recorded, otherwise the first "
    f"available of {', '.join(_REST)}), taken at its worst over the attacks that were run, "
    "with its 95 % interval (over seeds; with one seed, the trial's own interval). A metric "
    "that is not meaningful in a suite (its validity rule) is never recorded, so it is never "
    "ranked; the entry says why it is missing.",
    "1. Rank: entries sorted by privacy, best first. An entry whose interval overlaps the "
    "interval of the best entry of the current group shares that group's rank (shown as =1); "
    "the first entry that does not overlap starts a new group, whose rank counts every entry "
    "before it (1, 1, 3). A shared rank means that the data do not tell the entries apart.",
    "2. Within a rank: the Pareto front first (front 1: no other entry has both higher test "
    "accuracy and less leakage; remove them and the next non-dominated entries form front 2, "
    "and so on), then less leakage, then higher utility (mean test accuracy over seeds), then "
    "the defense label alphabetically (a stable order).",
    "Entries without test accuracy, or without the ranking metric for every attack of the "
    "suite (failed, not yet attacked, or not meaningful there), are listed after the ranked "
    "ones without a rank.",
    "Everything is computed from the recorded runs at build time; no number is edited by "
    "hand.",
]


@dataclass(frozen=True)
class Point:
    """One entry in the trade-off plane; ``leakage`` is oriented so that lower is better."""

    key: str
    utility: float
    leakage: float
    label: str = ""


def dominates(a: Point, b: Point) -> bool:
    """a dominates b: at least as good in both, strictly better in one."""
    return (a.utility >= b.utility and a.leakage <= b.leakage
            and (a.utility > b.utility or a.leakage < b.leakage))


def pareto_ranks(points: Sequence[Point]) -> dict[str, int]:
    """Non-dominated sorting: key -> front number (1 = the Pareto front)."""
    remaining = list(points)
    ranks: dict[str, int] = {}
    front = 1
    while remaining:
        layer = [p for p in remaining if not any(dominates(q, p) for q in remaining)]
        for p in layer:
            ranks[p.key] = front
        remaining = [p for p in remaining if p.key not in ranks]
        front += 1
    return ranks


def rank_order(points: Sequence[Point]) -> list[tuple[Point, int]]:
    """Points in ranking order with their Pareto front number (rule above, steps 1-3)."""
    fronts = pareto_ranks(points)
    ordered = sorted(points, key=lambda p: (fronts[p.key], p.leakage, -p.utility, p.label, p.key))
    return [(p, fronts[p.key]) for p in ordered]


def leakage(value: float, better: str | None) -> float:
    """Orient a privacy metric so that lower means less leakage."""
    return -value if better == "higher" else value


def front_line(points: Sequence[Point]) -> list[Point]:
    """The Pareto front sorted by leakage, for drawing its line."""
    fronts = pareto_ranks(points)
    return sorted((p for p in points if fronts[p.key] == 1), key=lambda p: (p.leakage, p.utility))
