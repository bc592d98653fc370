"""The leaderboard's pure parts: ranking, aggregation, rendering (no MLflow, no browser)."""

from __future__ import annotations

import json
import math
import statistics

import html5lib
import pytest

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.leaderboard.board import make_board
from lsmia_bench.leaderboard.build import _check_out, render_site
from lsmia_bench.leaderboard.charts import line_chart, nice_ticks
from lsmia_bench.leaderboard.ranking import Point, pareto_ranks, rank_order
from lsmia_bench.leaderboard.records import (
    InvocationRecord,
    Snapshot,
    TrialRecord,
    latest_per_job,
    read_submissions,
)

EVIL = "<script>alert(1)</script>"


def target(key: str, defense: str, seed: int, acc: float | None, *, strength: float | None = None,
           status: str = "finished", started: int = 1, error: str | None = None,
           extra: dict | None = None, label: str | None = None) -> TrialRecord:
    metrics = {} if acc is None else {"test_accuracy": acc, **(extra or {})}
    return TrialRecord(
        run_id=f"run-{key}-{started}", suite="s", stage="targets", job_key=key, status=status,
        started_ms=started, error=error, name=f"target {defense} seed={seed}",
        parent_run_id="parent",
        labels={"defense": defense, "defense_label": label or defense,
                "strength": "None" if strength is None else str(strength), "seed": str(seed)},
        spec={"defense.name": defense, "defense.params.alpha": str(strength), "seed": str(seed),
              "training.epochs": "3"},
        metrics=metrics)


def attack(key: str, target_key: str, acc1: float | None, *, status: str = "finished",
           name: str = "gmi", started: int = 2, error: str | None = None) -> TrialRecord:
    return TrialRecord(
        run_id=f"run-{key}-{started}", suite="s", stage="attacks", job_key=key, status=status,
        started_ms=started, error=error, name=f"attack {name}", needs={"target": target_key},
        parent_run_id="parent", labels={"attack": name, "seed": "0"}, spec={"attack.name": name},
        metrics={} if acc1 is None else {"attack_acc1": acc1, "brand_new_metric": 7.0})


def board_of(trials: list[TrialRecord]):
    invocation = InvocationRecord("parent", "s", "inv-1", 0, config_hash="abc",
                                  description="a suite")
    return make_board(Snapshot(latest_per_job(trials), [invocation], runs_read=len(trials)))


def test_pareto_ranks_and_order_by_hand():
    points = [Point("a", 0.9, 0.2), Point("b", 0.8, 0.1), Point("c", 0.7, 0.3),
              Point("d", 0.6, 0.35)]
    # c is beaten by a (more utility, less leakage); d by a, b and c.
    assert pareto_ranks(points) == {"a": 1, "b": 1, "c": 2, "d": 3}
    # Within front 1 less leakage first: b (0.1) before a (0.2).
    assert [p.key for p, _ in rank_order(points)] == ["b", "a", "c", "d"]


def test_equal_points_share_a_front_and_order_stably():
    points = [Point("y", 0.5, 0.5, "beta"), Point("x", 0.5, 0.5, "alpha")]
    assert pareto_ranks(points) == {"x": 1, "y": 1}
    assert [p.key for p, _ in rank_order(points)] == ["x", "y"]


def test_nice_ticks_cover_the_range():
    lo, hi, ticks = nice_ticks(0.13, 0.87)
    assert lo <= 0.13 and hi >= 0.87 and ticks[0] == lo and ticks[-1] == hi
    lo, hi, ticks = nice_ticks(5.0, 5.0)  # a constant still gets a visible range
    assert lo < 5.0 < hi and len(ticks) >= 2


def test_long_curves_are_thinned_but_keep_their_ends():
    chart = line_chart([("seed 0", [float(i) for i in range(5000)])], "step", "loss")
    points = chart.lines[0][2].split()
    assert 300 < len(points) <= 420
    assert points[0] == f"{chart.x.pixel(0)},{chart.y.pixel(0.0)}"
    assert points[-1] == f"{chart.x.pixel(4999)},{chart.y.pixel(4999.0)}"


def test_latest_per_job_never_lets_a_failure_hide_a_success():
    ok = target("k1", "none", 0, 0.9, started=1)
    failed_later = target("k1", "none", 0, None, status="failed", started=5, error="boom")
    newer_ok = target("k2", "none", 1, 0.8, started=1)
    newest_ok = target("k2", "none", 1, 0.7, status="cached", started=9)
    kept = {t.job_key: t for t in latest_per_job([ok, failed_later, newer_ok, newest_ok])}
    assert kept["k1"] is ok
    assert kept["k2"] is newest_ok


def test_seeds_aggregate_attacks_join_and_baseline_drop():
    trials = [
        target("n0", "none", 0, 0.90), target("n1", "none", 1, 0.94),
        target("l0", "ls", 0, 0.80, strength=-0.05), target("l1", "ls", 1, 0.86, strength=-0.05),
        attack("an0", "n0", 0.70), attack("an1", "n1", 0.80),
        attack("al0", "l0", 0.20), attack("al1", "l1", 0.40),
    ]
    suite = make_board(Snapshot(trials, [])).suites[0]
    by_label = {e.label: e for e in suite.entries}
    none, ls = by_label["none"], by_label["ls"]
    assert none.seeds == 2 and ls.seeds == 2
    assert math.isclose(none.target_stats["test_accuracy"].mean, 0.92)
    assert math.isclose(none.target_stats["test_accuracy"].std, statistics.stdev([0.90, 0.94]))
    assert math.isclose(ls.attacks["gmi"].stats["attack_acc1"].mean, 0.30)
    assert math.isclose(ls.utility_drop, 0.92 - 0.83)
    assert none.utility_drop == 0.0
    # Both on the front (ls leaks less, none is more useful); less leakage ranks first.
    assert [e.label for e in suite.entries] == ["ls", "none"]
    assert all(e.on_front for e in suite.entries)
    assert suite.ranking_metric.key == "attack_acc1"
    assert "brand_new_metric" in {m.key for m in suite.attack_metrics["gmi"]}


def test_failed_trials_are_shown_and_not_ranked():
    trials = [
        target("n0", "none", 0, 0.9), attack("an0", "n0", 0.5),
        target("b0", "broken", 0, None, status="failed", error="RuntimeError: boom"),
        attack("ab0", "b0", None, status="skipped"),
        target("p0", "partial", 0, 0.8), attack("ap0", "p0", None, status="failed",
                                                error="ValueError: attack broke"),
    ]
    suite = make_board(Snapshot(trials, [])).suites[0]
    by_label = {e.label: e for e in suite.entries}
    assert by_label["broken"].status == "failed" and by_label["broken"].rank is None
    assert ("target broken seed=0", "RuntimeError: boom") in by_label["broken"].errors
    assert by_label["partial"].status == "partial" and by_label["partial"].rank is None
    assert by_label["none"].rank == 1
    assert suite.entries[0].label == "none"  # ranked entries first
    files = render_site(make_board(Snapshot(trials, [])))
    index = files["index.html"]
    assert "RuntimeError: boom" in index and "status-failed" in index
    assert "ValueError: attack broke" in files[f"entries/{by_label['partial'].id}.html"]


def test_recorded_strings_are_escaped_and_every_page_parses():
    trials = [target("e0", EVIL, 0, 0.9, label=EVIL), attack("ae0", "e0", 0.5, name=EVIL),
              target("n0", "none", 0, 0.95), attack("an0", "n0", 0.6, name=EVIL)]
    trials[0].error = EVIL
    files = render_site(board_of(trials), source=EVIL)
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    pages = [p for p in files if p.endswith(".html")]
    assert len(pages) == 4  # index, submit, two entry pages
    for path in pages:
        parser.parse(files[path])  # strict: raises on any parse error
        assert EVIL not in files[path], path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in files["index.html"]
    table = parser.parse(files["index.html"])
    cells = [a.text for a in table.iter("a") if a.text]
    assert EVIL in cells  # parsed back, it is text, not an element
    assert json.loads(files["data/s.json"])[0]["label"] in (EVIL, "none")


def test_suite_without_attack_metrics_says_so_instead_of_plotting():
    files = render_site(board_of([target("n0", "none", 0, 0.9), target("n1", "ls", 0, 0.8)]))
    index = files["index.html"]
    assert "no utility\n    vs. privacy plot" in index or "no utility vs. privacy plot" in index
    assert "<svg" not in index
    assert "entries are not ranked" in index


def test_unknown_metric_gets_a_column_and_downloads_hold_raw_numbers():
    trials = [target("n0", "none", 0, 0.9, extra={"shiny_new_score": 0.25}),
              attack("an0", "n0", 0.5)]
    files = render_site(board_of(trials))
    assert 'data-key="shiny_new_score"' in files["index.html"]
    record = json.loads(files["data/s.json"])[0]
    assert record["test_accuracy"] == 0.9 and record["gmi/attack_acc1"] == 0.5
    assert record["shiny_new_score"] == 0.25
    assert files["data/s.csv"].splitlines()[0].startswith("suite,rank,pareto_front,defense")


def test_out_folder_that_is_not_a_site_is_refused(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    with pytest.raises(UserError, match="--out"):
        _check_out(precious)
    _check_out(tmp_path / "new-site")  # a new folder is fine


def test_submissions_folder_is_optional_and_bad_files_are_skipped(tmp_path):
    assert read_submissions(tmp_path / "submissions") == []
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps({"name": "my defense", "authors": "A. B."}))
    (folder / "broken.json").write_text("{not json")
    (folder / "list.json").write_text("[1, 2]")
    assert read_submissions(folder) == [{"file": "good.json", "name": "my defense",
                                         "authors": "A. B."}]


def test_empty_store_gives_a_site_that_says_so():
    from lsmia_bench.leaderboard.board import Board

    files = render_site(Board([], [], 0))
    html5lib.HTMLParser(strict=True).parse(files["index.html"])
    assert "No results recorded yet" in files["index.html"]


def test_build_without_a_store_is_a_user_error(run_cli, tmp_path):
    result = run_cli("leaderboard", "build", "--results", tmp_path / "nothing-here",
                     "--out", tmp_path / "site")
    assert result.code == 2
    assert "--results" in result.err and "no MLflow store" in result.err
    assert not (tmp_path / "site").exists()


def test_attack_columns_are_grouped_by_threat_model():
    from lsmia_bench.leaderboard.views import suite_view

    # Recorded in an order that mixes the threat models; one name is no longer registered.
    names = ["rlb_mi", "gmi", "retired_attack", "brep_mi", "ppa"]
    trials = [target("n0", "none", 0, 0.9)] + [
        attack(f"a-{name}", "n0", 0.5, name=name) for name in names]
    view = suite_view(board_of(trials).suites[0])
    ranked = [c.attack for c in view.columns if c.attack and c.metric == "attack_acc1"]
    assert ranked == ["gmi", "ppa", "rlb_mi", "brep_mi", "retired_attack"]
    threats = [(g.threat, g.span) for g in view.threat_groups]
    # The compact part: entry/utility (no threat), then one span per threat model in order.
    assert [t for t, _ in threats[:5]] == ["", "white-box", "black-box", "label-only",
                                           "unknown"]
    # Each threat model's header spans exactly the columns of its attacks.
    threat_of = {"gmi": "white-box", "ppa": "white-box", "rlb_mi": "black-box",
                 "brep_mi": "label-only", "retired_attack": "unknown"}
    start = 0
    for threat, span in threats:
        covered = view.columns[start:start + span]
        assert {threat_of.get(c.attack, "") for c in covered} == {threat}, threat
        start += span
    assert start == len(view.columns)
    page = render_site(board_of(trials))["index.html"]
    html5lib.HTMLParser(strict=True).parse(page)
    assert "White-box attacks" in page and "Label-only attacks" in page
    assert "Black-box attacks" in page
