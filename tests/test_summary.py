"""The compact terminal summary: fits 100 columns with every label and number whole; a wider
terminal shows more, never less."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from lsmia_bench.benchmark.pipelines.aggregate import Entry, short_labels
from lsmia_bench.benchmark.pipelines.base import Report
from lsmia_bench.benchmark.summary import print_summary

ENTRIES = ["none", "LS +0.1", "LS +0.05", "LS -0.05", "MID 0.003", "MID 0.01", "BiDO",
           "(evaluation model)"]
ATTACKS = ["ppa", "gmi", "kedmi", "mi_face"]


def _report(attacks: list[str]) -> Report:
    rows = []
    for index, entry in enumerate(ENTRIES):
        row = {"entry": entry, "defense": entry, "test_accuracy": 0.9889 - index / 1000,
               "test_accuracy_ci_low": 0.9722, "test_accuracy_ci_high": 1.0,
               "interval_unit": "seeds"}
        for attack in attacks:
            row |= {f"{attack}_acc1": 0.88, f"{attack}_acc1_ci_low": 0.72,
                    f"{attack}_acc1_ci_high": 1.0, f"{attack}_acc1_vs_none": -0.04,
                    f"{attack}_acc1_vs_none_low": -0.123, f"{attack}_acc1_vs_none_high": 0.04,
                    f"{attack}_acc1_vs_none_verdict": None if entry in ("none", ENTRIES[-1])
                    else ("lower" if index == 3 else "no clear difference")}
        rows.append(row)
    return Report(pd.DataFrame(rows), ranking={f"{a}_acc1": f"{a.upper()} Acc@1"
                                               for a in attacks})


def _render(report: Report, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    print_summary(report, "digits: results", console, None)
    return console.export_text()


@pytest.mark.parametrize("attacks", [ATTACKS[:1], ATTACKS[:2], ATTACKS])
def test_summary_fits_100_columns_with_nothing_cut(attacks):
    text = _render(_report(attacks), 100)
    assert "\u2026" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 100
    for label in ["none", "LS +0.1", "LS -0.05", "MID 0.003", "BiDO", "eval. model"]:
        assert label in text
    for attack in attacks:
        assert f"{attack.upper()} Acc@1 %" in text
    assert "98.9 [97.2, 100.0]" in text and "88.0 [72.0, 100.0]" in text
    assert "lower" in text and "baseline" in text
    assert "table.csv" in text


def test_a_wider_terminal_shows_more_never_less():
    report = _report(ATTACKS[:2])
    narrow, wide = _render(report, 100), _render(report, 200)
    assert "\u2026" not in wide
    for token in ["LS -0.05", "98.9 [97.2, 100.0]", "GMI Acc@1 %", "lower"]:
        assert token in narrow and token in wide
    assert "-4.0 [-12.3, 4.0] lower" in wide  # the paired difference's numbers


def test_short_labels_show_the_strength_only_where_it_varies():
    entries = [Entry("none", "none", None),
               Entry("label_smoothing(alpha=0.1)", "label_smoothing", 0.1),
               Entry("label_smoothing(alpha=-0.05)", "label_smoothing", -0.05),
               Entry("mid(beta=0.003)", "mid", 0.003), Entry("mid(beta=0.01)", "mid", 0.01),
               Entry("bido(lambda_y=0.5)", "bido", 0.5)]
    assert list(short_labels(entries).values()) == ["none", "LS +0.1", "LS -0.05", "MID 0.003",
                                                    "MID 0.01", "BiDO"]
