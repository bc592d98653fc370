"""End to end: a real toy run recorded in MLflow -> `leaderboard build` -> headless Chromium.

Two invocations write one SQLite store: the first trains `none`, negative label smoothing,
a defense whose *name* is an HTML script tag, and a defense that fails on purpose; the second
adds a seed to one defense. The site built after both must keep every entry, aggregate the
seeds, escape the script name, mark the failure, and load from file:// and over HTTP without
errors or requests outside the site. A screenshot goes to test-output/leaderboard/.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import html5lib
import pytest
import yaml

from lsmia_bench.cli import main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "test-output" / "leaderboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
EVIL = "<script>alert(1)</script>"

PLUGIN = f'''
from typing import ClassVar

from lsmia_bench.defenses.base import Defense


class Evil(Defense):
    """Plain cross-entropy under a name that is an HTML script tag."""

    name: ClassVar[str] = {EVIL!r}


class Broken(Defense):
    """Passes the config-time probe (progress 0), then fails halfway through training."""

    name: ClassVar[str] = "broken"

    def loss(self, batch):
        if batch.progress > 0.5:
            raise RuntimeError("this defense breaks on purpose")
        return super().loss(batch)
'''


def suite_yaml(seeds: list[int], defenses: list[dict]) -> str:
    return yaml.safe_dump({
        "name": "toy", "description": "Toy suite for the leaderboard test", "pipeline": "toy",
        "seeds": seeds, "device": "cpu", "training": {"iterations": 300},
        "defenses": defenses,
        "attacks": [{"name": "toy_sgd", "params": {"max_steps": 500}}],
        "resources": {"targets": {"cpu": 1}, "attacks": {"cpu": 1}},
    })


NEGATIVE_LS = {"name": "label_smoothing", "params": {"schedule_negative": False},
               "grid": {"alpha": [-0.05]}}


@pytest.fixture(scope="module")
def built(tmp_path_factory, ray_cluster):
    """Run, build, run again, build again; returns (site folder, first build's table).

    Module scope, so every check below shares the two runs; the CLI runs in-process through
    ``main`` (what the function-scoped ``run_cli`` fixture calls) on the session's Ray.
    """
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run `make browser` "
                    "(apt-get install chromium chromium-driver)")
    root = tmp_path_factory.mktemp("leaderboard")
    plugin = root / "evil.py"
    plugin.write_text(PLUGIN)
    results, site = root / "results", root / "site"
    first, second = root / "first.yaml", root / "second.yaml"
    first.write_text(suite_yaml([0], [{"name": "none"}, NEGATIVE_LS,
                                      {"name": f"{plugin}:Evil"}, {"name": f"{plugin}:Broken"}]))
    second.write_text(suite_yaml([1], [NEGATIVE_LS]))
    # Exit 1: the Broken defense fails; the other trials still finish and are recorded.
    assert main(["run", "--config", str(first), "--results", str(results)]) == 1
    assert main(["leaderboard", "build", "--no-entries", "--results", str(results), "--out",
                 str(site)]) == 0
    first_table = json.loads((site / "data" / "toy.json").read_text())
    assert main(["run", "--config", str(second), "--results", str(results)]) == 0
    assert main(["leaderboard", "build", "--no-entries", "--results", str(results), "--out",
                 str(site)]) == 0
    return site, first_table


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page opened in a fresh context, with its console errors, requests and dialogs."""

    def __init__(self, browser, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def close(self) -> None:
        self.context.close()


def table(site: Path) -> list[dict]:
    return json.loads((site / "data" / "toy.json").read_text())


def test_rebuild_keeps_older_entries_and_aggregates_new_seeds(built):
    site, first = built
    now = {row["entry_id"]: row for row in table(site)}
    assert {row["entry_id"] for row in first} <= set(now)
    by_label = {row["label"]: row for row in now.values()}
    assert set(by_label) == {"none", "label_smoothing(alpha=-0.05)", EVIL, "broken"}
    assert by_label["label_smoothing(alpha=-0.05)"]["seeds"] == 2
    assert by_label["none"]["seeds"] == 1
    assert by_label["broken"]["status"] == "failed"
    assert "this defense breaks on purpose" in by_label["broken"]["errors"]
    ranked = sorted(row["rank"] for row in now.values() if row["rank"] is not None)
    # Every entry with results is ranked, the failed one is not. Entries whose intervals
    # overlap share a rank (competition ranking: 1, 1, 3 or 1, 2, 3, ...).
    assert len(ranked) == 3 and ranked[0] == 1
    assert all(r in (ranked[i - 1], i + 1) for i, r in enumerate(ranked) if i)
    assert by_label["broken"]["rank"] is None


def test_every_page_parses_cleanly(built):
    site, _ = built
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 2 + 4  # index, submit, one page per entry
    for page in pages:
        parser.parse(page.read_text(encoding="utf-8"))


def test_index_from_file_url_has_no_errors_or_outside_requests(built, browser):
    site, _ = built
    visit = Visit(browser, (site / "index.html").as_uri())
    try:
        assert visit.errors == []
        assert visit.dialogs == []
        outside = [u for u in visit.requests if not u.startswith(site.as_uri() + "/")]
        assert outside == []
        assert any(u.endswith("static/leaderboard.js") for u in visit.requests)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        visit.page.screenshot(path=str(OUTPUT / "index.png"), full_page=True)
        assert (OUTPUT / "index.png").stat().st_size > 10_000
    finally:
        visit.close()


def test_script_name_shows_as_text_and_failure_is_marked(built, browser):
    site, _ = built
    visit = Visit(browser, (site / "index.html").as_uri())
    try:
        link = visit.page.get_by_role("link", name=EVIL, exact=True)
        assert link.count() == 1 and link.is_visible()
        scripts = visit.page.eval_on_selector_all("script", "s => s.map(e => e.src || e.text)")
        assert len(scripts) == 1 and scripts[0].endswith("static/leaderboard.js")
        assert visit.dialogs == []
        failed = visit.page.locator('tr[data-status="failed"]')
        assert failed.count() == 1
        assert "broken" in failed.inner_text() and "failed" in failed.inner_text()
        # The status cell (and the attack cells, which name their skipped input) carry the
        # failure on hover; the trained target's own error must be among them.
        cells = failed.locator("td.status-failed")
        titles = [cells.nth(i).get_attribute("title") or "" for i in range(cells.count())]
        assert any("this defense breaks on purpose" in title for title in titles), titles
    finally:
        visit.close()


def test_clicking_a_column_header_reorders_the_rows(built, browser):
    site, _ = built
    visit = Visit(browser, (site / "index.html").as_uri())
    try:
        page = visit.page
        rows = page.locator("table.board tbody tr")

        def labels() -> list[str]:
            return [rows.nth(i).locator("td.text a").first.inner_text()
                    for i in range(rows.count())]

        initial = labels()  # ranking order
        header = page.locator('table.board th[data-key="defense"] button')
        header.click()
        ascending = labels()
        assert ascending == sorted(initial, key=str.lower)
        assert page.locator('th[data-key="defense"]').get_attribute("aria-sort") == "ascending"
        header.click()
        assert labels() == ascending[::-1]
        assert ascending != initial or ascending[::-1] != initial
        page.locator("input.filter").fill("label_smoothing")
        visible = [r for r in range(rows.count()) if rows.nth(r).is_visible()]
        assert len(visible) == 1
        assert "1 of 4 entries shown" in page.locator(".shown").inner_text()
    finally:
        visit.close()


def test_pareto_svg_marks_the_front(built, browser):
    site, _ = built
    visit = Visit(browser, (site / "index.html").as_uri())
    try:
        svg = visit.page.locator("svg.tradeoff")
        assert svg.count() == 1 and svg.is_visible()
        ranked = [row for row in table(site) if row["rank"] is not None]
        assert svg.locator("circle.point").count() == len(ranked)
        on_front = [row for row in ranked if row["pareto_front"] == 1]
        assert svg.locator("circle.front").count() == len(on_front) >= 1
    finally:
        visit.close()


def test_entry_page_shows_its_images(built, browser):
    site, _ = built
    entry = next(row for row in table(site) if row["label"] == "label_smoothing(alpha=-0.05)")
    visit = Visit(browser, (site / entry["page"]).as_uri())
    try:
        page = visit.page
        assert visit.errors == []
        assert [u for u in visit.requests if not u.startswith(site.as_uri() + "/")] == []
        images = page.locator("main img")
        assert images.count() >= 1
        for i in range(images.count()):
            images.nth(i).scroll_into_view_if_needed()
            assert page.evaluate("img => img.complete && img.naturalWidth > 0",
                                 images.nth(i).element_handle())
        assert page.locator("svg.curve").count() >= 1  # training curves of both seeds
        assert "Provenance" in page.inner_text("main")
        page.screenshot(path=str(OUTPUT / "entry.png"), full_page=True)
    finally:
        visit.close()


def test_served_over_http_like_any_static_host(built, browser):
    from lsmia_bench.leaderboard.cli import make_server

    site, _ = built
    server = make_server(site, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        visit = Visit(browser, origin + "index.html")
        try:
            assert visit.errors == []
            assert [u for u in visit.requests if not u.startswith(origin)] == []
            visit.page.get_by_role("link", name="Submit a defense").click()
            visit.page.wait_for_load_state("load")
            assert visit.page.url == origin + "submit.html"
            assert visit.errors == []
        finally:
            visit.close()
    finally:
        server.shutdown()
        server.server_close()


def test_downloads_hold_every_table(built):
    site, _ = built
    rows = table(site)
    csv_lines = (site / "data" / "toy.csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1
    for row in rows:
        entry_rows = json.loads((site / "data" / f"entry-{row['entry_id']}.json").read_text())
        assert {r["stage"] for r in entry_rows} >= {"targets"}
