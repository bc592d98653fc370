"""Intervals, paired differences and shared ranks, from trial records to the site in Chromium.

The unit tests build trials by hand; the site tests write digits-like trials (three seeds,
within-seed intervals, a metric missing with its reason) into a real MLflow SQLite store in a
temporary folder, build the site with ``lsmia-bench leaderboard build`` and open it in headless
Chromium at 1366 and 390 px.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from lsmia_bench.benchmark.metrics.uncertainty import (
    BootstrapSettings,
    paired_seed_difference,
    seed_interval,
)
from lsmia_bench.kernel.records import (
    InvocationRecord,
    TrialRecord,
    experiment_name,
    invocation_to_mlflow,
    trial_to_mlflow,
)
from lsmia_bench.leaderboard.board import NEEDS_SEEDS, make_board
from lsmia_bench.leaderboard.build import render_site
from lsmia_bench.leaderboard.records import Snapshot

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
#: Per defense: test accuracy and (gmi, ppa) Acc@1 per seed. `ls+` leaks clearly more than
#: `none`; `ls-` and `none` overlap (shared rank); `mid` overlaps `none` too.
DATA = {
    "none": ([0.990, 0.992, 0.994], [0.40, 0.44, 0.48], [0.80, 0.84, 0.88]),
    "label_smoothing(alpha=-0.05)": ([0.985, 0.988, 0.990], [0.36, 0.44, 0.46],
                                     [0.76, 0.84, 0.86]),
    "label_smoothing(alpha=0.1)": ([0.993, 0.994, 0.995], [0.60, 0.62, 0.64],
                                   [0.96, 0.97, 0.98]),
}


def trials_of(seeds: tuple[int, ...] = (0, 1, 2), one_seed: str | None = None
              ) -> list[TrialRecord]:
    found = []
    for label, (acc, gmi, ppa) in DATA.items():
        defense = "none" if label == "none" else "label_smoothing"
        for seed in seeds if label != one_seed else seeds[:1]:
            key = f"t-{label}-{seed}"
            found.append(TrialRecord(
                run_id=f"run-{key}", suite="digits", stage="targets", job_key=key,
                status="finished", started_ms=1 + seed, name=f"target {label} seed={seed}",
                labels={"defense": defense, "defense_label": label, "seed": str(seed),
                        "architecture": "cnn"},
                spec={"defense.name": defense, "defense.label": label, "seed": str(seed)},
                metrics={"test_accuracy": acc[seed], "test_accuracy_ci_low": acc[seed] - 0.01,
                         "test_accuracy_ci_high": min(1.0, acc[seed] + 0.01),
                         "test_accuracy_n": 360.0, "ece": 0.0123 + 0.01 * seed},
                info={"interval_units.test_accuracy": "test images"}))
            for attack, values in (("gmi", gmi), ("ppa", ppa)):
                value = values[seed]
                found.append(TrialRecord(
                    run_id=f"run-{attack}-{key}", suite="digits", stage="attacks",
                    job_key=f"{attack}-{key}", status="finished", started_ms=10 + seed,
                    name=f"attack {attack}", needs={"target": key},
                    labels={"attack": attack, "seed": str(seed)}, spec={"attack.name": attack},
                    metrics={"attack_acc1": value, "attack_acc1_ci_low": value - 0.08,
                             "attack_acc1_ci_high": value + 0.08, "attack_acc1_n": 25.0,
                             "delta_eval": 51.1 + seed, "attack_time_s": 2.6,
                             "elapsed_s": 5.9},
                    info={"interval_units.attack_acc1": "reconstructions",
                          "missing.attack_acc5": "Acc@5 needs more than 5 attacked classes "
                          "(5 attacked)"}))
    return found


def suite_of(trials: list[TrialRecord]):
    return make_board(Snapshot(trials, [InvocationRecord("p", "digits", "inv", 0)])).suites[0]


def test_seed_intervals_and_paired_differences_equal_the_library():
    suite = suite_of(trials_of())
    by_label = {e.label: e for e in suite.entries}
    none, minus = by_label["none"], by_label["label_smoothing(alpha=-0.05)"]
    stat = minus.attacks["gmi"].stats["attack_acc1"]
    expected = seed_interval(DATA["label_smoothing(alpha=-0.05)"][1], BootstrapSettings())
    assert (stat.mean, stat.low, stat.high) == pytest.approx(
        (expected.estimate, expected.low, expected.high))
    assert stat.units == 3 and stat.unit == "seeds" and stat.note == ""
    # the interval keys are folded into their metric, not columns of their own
    assert {m.key for m in suite.attack_metrics["gmi"]} == {"attack_acc1", "delta_eval",
                                                             "attack_time_s", "elapsed_s"}
    difference = paired_seed_difference(
        dict(enumerate(DATA["label_smoothing(alpha=-0.05)"][1])),
        dict(enumerate(DATA["none"][1])), BootstrapSettings())
    got = minus.attacks["gmi"].paired
    assert got is not None and got.verdict == difference.verdict
    assert (got.interval.low, got.interval.high) == pytest.approx(
        (difference.interval.low, difference.interval.high))
    assert none.attacks["gmi"].paired is None
    assert none.attacks["gmi"].missing["attack_acc5"].startswith("Acc@5 needs")


def test_overlapping_intervals_share_a_rank():
    suite = suite_of(trials_of())
    ranks = {e.label: (e.rank, e.shared_rank) for e in suite.entries}
    assert ranks["none"][0] == ranks["label_smoothing(alpha=-0.05)"][0] == 1
    assert ranks["none"][1] and ranks["label_smoothing(alpha=-0.05)"][1]
    assert ranks["label_smoothing(alpha=0.1)"] == (3, False)
    index = render_site(make_board(Snapshot(trials_of(), []))).get("index.html")
    assert ">=1<" in index and "share" in index


def test_one_seed_uses_the_trials_own_interval_and_says_so():
    suite = suite_of(trials_of(seeds=(0,)))
    stat = suite.entries[0].attacks["ppa"].stats["attack_acc1"]
    assert stat.units == 25 and stat.unit == "reconstructions"
    assert stat.note == "one seed: attack randomness only"
    assert stat.high - stat.low == pytest.approx(0.16)
    assert all(e.attacks["ppa"].paired is None for e in suite.entries)
    assert any(e.attacks["ppa"].paired_note.startswith(NEEDS_SEEDS) for e in suite.entries)
    files = render_site(make_board(Snapshot(trials_of(seeds=(0,)), [])))
    assert "one seed: attack randomness only" in files["index.html"]
    assert NEEDS_SEEDS in files["index.html"]


def test_downloads_hold_intervals_n_and_paired_differences():
    files = render_site(make_board(Snapshot(trials_of(), [])))
    rows = {r["label"]: r for r in json.loads(files["data/digits.json"])}
    row = rows["label_smoothing(alpha=0.1)"]
    for key in ("gmi/attack_acc1", "gmi/attack_acc1_ci_low", "gmi/attack_acc1_ci_high",
                "gmi/attack_acc1_n", "gmi/attack_acc1_vs_none", "gmi/attack_acc1_vs_none_ci_low",
                "gmi/attack_acc1_vs_none_verdict", "test_accuracy_ci_low"):
        assert key in row, key
    assert row["gmi/attack_acc1_vs_none_verdict"] == "higher"
    assert row["gmi/attack_acc1_n"] == 3
    assert "gmi/attack_acc1_ci_low" not in {m for m in rows["none"] if m.endswith("_ci_low_n")}
    assert "gmi/attack_acc1_ci_low" in files["data/digits.csv"].splitlines()[0]


# --- the site in Chromium --------------------------------------------------------------------

def write_store(results: Path, trials: list[TrialRecord]) -> None:
    """Record the trials as `lsmia-bench run` does: a parent run and child runs."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    results.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.create_experiment(experiment_name("digits"),
                                          artifact_location=(results / "art").as_uri())
    invocation = InvocationRecord("", "digits", "20260101-000000-test", 0, config_hash="abc",
                                  description="digits-like records for the site test")
    fields = invocation_to_mlflow(invocation, {"uncertainty": {"level": 0.95, "seed": 0}})
    parent = client.create_run(experiment, tags=fields.tags)
    client.log_batch(parent.info.run_id, params=[Param(k, v) for k, v in fields.params.items()])
    client.set_terminated(parent.info.run_id, "FINISHED")
    for trial in trials:
        trial.parent_run_id = parent.info.run_id
        fields = trial_to_mlflow(trial)
        run = client.create_run(experiment, tags=fields.tags)
        metrics = [Metric(k, v, 0, step) for k, values in fields.metrics.items()
                   for step, v in enumerate(values)]
        client.log_batch(run.info.run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in fields.params.items()],
                         tags=[RunTag(k, v) for k, v in fields.tags.items()])
        client.set_terminated(run.info.run_id, "FINISHED")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from lsmia_bench.cli import main

    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium")
    root = tmp_path_factory.mktemp("intervals")
    write_store(root / "results", trials_of())
    assert main(["leaderboard", "build", "--no-entries", "--results", str(root / "results"),
                 "--out",
                 str(root / "site"), "--repository", "https://example.org/lsmia-bench"]) == 0
    return root / "site"


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield context
        context.close()


def open_page(chromium, url: str, width: int):
    page = chromium.new_page()
    page.set_viewport_size({"width": width, "height": 768 if width > 600 else 844})
    page.goto(url)
    page.wait_for_load_state("load")
    return page


def overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("width", [1366, 390])
def test_first_screen_shows_acc1_and_the_body_does_not_overflow(site, chromium, width):
    page = open_page(chromium, (site / "index.html").as_uri(), width)
    try:
        assert overflow(page) <= 0
        header = page.locator('th[data-key="gmi/attack_acc1"]')
        box = header.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box
        assert box["y"] + box["height"] <= page.viewport_size["height"], box
        defense = page.locator("td.sticky").first
        assert defense.evaluate("e => getComputedStyle(e).position") == "sticky"
        entry = json.loads((site / "data" / "digits.json").read_text())[0]["page"]
        page.goto((site / entry).as_uri())
        page.wait_for_load_state("load")
        assert overflow(page) <= 0
    finally:
        page.close()


def test_intervals_shared_ranks_arrows_and_whiskers_in_chromium(site, chromium):
    page = open_page(chromium, (site / "index.html").as_uri(), 1366)
    try:
        table = page.locator("table.board")
        assert table.locator("td.rank.shared").count() == 2
        assert table.locator("td.rank.shared").first.inner_text().strip() == "=1"
        interval = table.locator("td.metric .ci").first
        assert interval.is_visible() and interval.inner_text().startswith("[")
        assert table.locator("td.metric .n").first.inner_text().startswith("n = ")
        assert "share" in page.locator("#ranking").inner_text()
        for key in ("test_accuracy", "gmi/attack_acc1", "ppa/attack_acc1", "utility_drop"):
            arrow = page.locator(f'th[data-key="{key}"] .dir').inner_text()
            assert arrow in ("↑", "↓"), key
        assert page.locator('th[data-key="gmi/attack_acc1"] .dir').inner_text() == "↓"
        assert page.locator('th[data-key="gmi/attack_acc1_ci_low"]').count() == 0
        assert page.locator('th[data-key="gmi/attack_time_s"]').is_hidden()  # all columns
        svg = page.locator("svg.tradeoff")
        assert svg.locator("line.whisker").count() == 2 * 3
        assert svg.locator("circle.baseline").count() == 1
        assert "higher" in page.locator("td.paired").all_inner_texts().__str__()
        page.goto((site / "submit.html").as_uri())
        assert page.locator("a.repository").get_attribute(
            "href") == "https://example.org/lsmia-bench"
    finally:
        page.close()
