"""The compact terminal summary of a suite's report: fits 100 columns.

Per entry: a short label (``none``, ``LS +0.1``, ``MID 0.003``, ``BiDO``), test accuracy with its
interval, each attack's ranking metric as ``mean [low, high]`` and its paired verdict against
``none``; then one line pointing to ``table.csv`` for everything else. Attacks that do not fit
beside each other go into a further table (entry and test accuracy repeated), so nothing is
cut; a wider terminal adds the paired differences' numbers, never removes a column.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

#: From this width on, the verdict cells also show the difference and its interval.
WIDE = 150
UTILITY = ("test_accuracy", "Test acc. %")
ELLIPSIS = "\u2026"
#: Shorter row labels for the compact table.
SHORT_ROWS = {"(evaluation model)": "eval. model"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _percent_column(table: pd.DataFrame, column: str) -> bool:
    """Shares in [0, 1] (accuracies) are shown in %."""
    values = pd.to_numeric(table.get(column, pd.Series(dtype=float)), errors="coerce").dropna()
    return bool(len(values)) and bool(((values >= 0) & (values <= 1)).all()) and (
        column.endswith(("accuracy", "acc1", "acc5", "xi", "target_conf")))


def number(value: Any, percent: bool) -> str:
    if not _is_number(value):
        return "-"
    return f"{100 * value:.1f}" if percent else f"{value:.3g}"


def with_interval(row: pd.Series, column: str, percent: bool) -> str:
    """``mean [low, high]``, or the mean alone when no interval was recorded."""
    value = row.get(column)
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    text = number(value, percent)
    if _is_number(low) and _is_number(high):
        text += f" [{number(low, percent)}, {number(high, percent)}]"
    return text


def verdict(row: pd.Series, column: str, percent: bool, wide: bool) -> str:
    word = row.get(f"{column}_vs_none_verdict")
    if not isinstance(word, str) or not word:
        return "baseline" if row.get("defense") == "none" or row.get("entry") == "none" \
            else "-"
    if not wide:
        return word
    low, high = row.get(f"{column}_vs_none_low"), row.get(f"{column}_vs_none_high")
    diff = row.get(f"{column}_vs_none")
    sign = "+" if _is_number(diff) and diff > 0 else ""
    return f"{sign}{number(diff, percent)} [{number(low, percent)}, {number(high, percent)}] " \
           f"{word}"


def summary_tables(table: pd.DataFrame, ranking: dict[str, str], title: str,
                   width: int = 100) -> list[Table]:
    """The summary as one or more rich tables that each fit ``width`` columns: attacks are
    added beside each other while the table still fits with every number whole (only the
    verdict words wrap), then a further table starts."""
    wide = width >= WIDE
    label_column = "entry" if "entry" in table.columns else "defense"
    labels = [SHORT_ROWS.get(str(v), str(v)) for v in table[label_column]]
    utility = [with_interval(row, UTILITY[0], True) for _, row in table.iterrows()] \
        if UTILITY[0] in table.columns else None
    blocks = []
    for column, name in ranking.items():
        if column not in table.columns:
            continue
        percent = _percent_column(table, column)
        values = [with_interval(row, column, percent) for _, row in table.iterrows()]
        verdicts = [verdict(row, column, percent, wide) for _, row in table.iterrows()]
        if "none" not in labels:  # no baseline in this suite: nothing to compare with
            verdicts = []
        blocks.append((f"{name}{' %' if percent else ''}", values, verdicts))

    def build(group: list[int], first: bool, narrowest: bool = False) -> Table:
        out = Table(title=title if first else None, box=box.SIMPLE_HEAD, title_justify="left",
                    pad_edge=False, collapse_padding=True, show_edge=False)
        out.add_column("Entry", no_wrap=True)
        if utility is not None:
            out.add_column(UTILITY[1], no_wrap=True, justify="right")
        for index in group:
            out.add_column(blocks[index][0], no_wrap=True, justify="right")
            if not blocks[index][2]:
                continue
            words = [w for text in ["vs none", *blocks[index][2]] for w in text.split()]
            longest = max(len(w) for w in words)
            out.add_column("vs none", no_wrap=wide, overflow="fold", min_width=longest,
                           width=longest if narrowest and not wide else None)
        for row_index, label in enumerate(labels):
            cells = [label] + ([utility[row_index]] if utility is not None else [])
            for index in group:
                cells.append(blocks[index][1][row_index])
                if blocks[index][2]:
                    cells.append(blocks[index][2][row_index])
            out.add_row(*cells)
        return out

    def fits(group: list[int]) -> bool:
        """Every number whole and the verdicts wrapped at their longest word, the table is
        at most ``width`` wide (rich would cut cells with an ellipsis or drop columns)."""
        console = Console(width=10 * width, file=io.StringIO(), record=True)
        console.print(build(group, True, narrowest=True))
        lines = console.export_text().splitlines()
        return max(len(line.rstrip()) for line in lines) <= width

    groups: list[list[int]] = [[]]
    for index in range(len(blocks)):
        candidate = [*groups[-1], index]
        fits_ = fits(candidate)
        if groups[-1] and not fits_:
            groups.append([index])
        else:
            groups[-1] = candidate
    return [build(group, number_ == 0) for number_, group in enumerate(groups)]


def print_summary(report: Any, title: str, console: Console, table_csv: Path | None) -> None:
    """Print the compact summary of a pipeline ``Report`` and where the rest is."""
    width = console.width
    for out in summary_tables(report.table, getattr(report, "ranking", {}) or {}, title,
                              width):
        console.print(out)
    units = sorted({str(u) for u in report.table.get("interval_unit", pd.Series(dtype=object))
                    if isinstance(u, str) and u})
    if units:
        console.print(f"[low, high]: {100 * getattr(report, 'level', 0.95):g} % bootstrap "
                      f"interval ({'; '.join(units)}); vs none: paired difference to none.",
                      markup=False, highlight=False)
    missing = getattr(report, "missing", {}) or {}
    rest = "every metric with its interval and n, per-seed values, paired differences"
    if missing:
        rest += f"; not meaningful here: {', '.join(sorted(missing))}"
    where = str(table_csv) if table_csv is not None else "the report's table.csv"
    console.print(f"All columns ({rest}): {where}", markup=False, highlight=False)
