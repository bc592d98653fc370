"""The example third-party package end to end: pip-install examples/confidence_penalty, submit
it on digits (tiny settings, real Ray Tune and MLflow), build the leaderboard, find the ranked
entry with its provenance; replace it (history kept); a record alone still makes an entry; and
HTML smuggled into a record is escaped on the site."""

from __future__ import annotations

import copy
import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import html5lib
import pytest
import yaml

from lsmia_bench.leaderboard.board import make_board
from lsmia_bench.leaderboard.build import render_site
from lsmia_bench.leaderboard.records import Snapshot

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "confidence_penalty"
#: Tiny sizes for every prior and attack the digits suite configures (by name, so that a
#: reordered config still gets them; an attack unknown here fails the test loudly).
SHRINK_PRIORS = {"wgan_gp": {"iterations": 30}, "kedmi": {"iterations": 30}}
SHRINK_ATTACKS = {
    "ppa": {"search_space_size": 16, "num_candidates": 2, "samples_per_class": 2, "steps": 3,
            "batch_size": 8, "final_iterations": 2},
    "gmi": {"iterations": 10, "restarts": 1},
    "kedmi": {"iterations": 10, "samples_per_class": 2},
    "mi_face": {"iterations": 10},
}


def _tiny() -> list[str]:
    suite = yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())
    sets = ["seeds=[0]", "training.epochs=2"]
    for prior in suite.get("priors") or {}:
        sets += [f"priors.{prior}.{k}={v}" for k, v in SHRINK_PRIORS[prior].items()]
    for index, attack in enumerate(suite.get("attacks") or []):
        if attack["name"] not in SHRINK_ATTACKS:
            pytest.fail(f"add tiny sizes for attack {attack['name']!r} to SHRINK_ATTACKS")
        sets += [f"attacks.{index}.params.{k}={v}"
                 for k, v in SHRINK_ATTACKS[attack["name"]].items()]
    if "privacy" in suite:
        sets.append("privacy.student_epochs=1")
    return [part for item in sets for part in ("--set", item)]


TINY = _tiny()
ATTACKS = [a["name"] for a in yaml.safe_load((REPO / "configs" / "digits.yaml").read_text())
           .get("attacks") or []]
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def example_installed(tmp_path_factory):
    """The example package, installed with pip from a copy (the checkout stays clean)."""
    from lsmia_bench.defenses import DEFENSES

    package = tmp_path_factory.mktemp("example") / "confidence_penalty"
    shutil.copytree(EXAMPLE, package, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-build-isolation",
                    str(package)], check=True, cwd=package.parent)
    importlib.invalidate_caches()
    try:
        yield package
    finally:
        subprocess.run([*pip, "uninstall", "--quiet", "--yes", "lsmia-confidence-penalty"],
                       check=False)
        DEFENSES._loaded.pop("confidence_penalty", None)
        sys.modules.pop("lsmia_confidence_penalty", None)
        importlib.invalidate_caches()


@pytest.fixture(scope="module")
def submitted(example_installed, ray_cluster, tmp_path_factory):
    """One submission of the example on digits; returns (results folder, record, CLI out)."""
    from lsmia_bench.cli import main

    results = tmp_path_factory.mktemp("submit-e2e") / "results"
    code = main(["submit", "confidence_penalty", "--meta", str(example_installed / "meta.yaml"),
                 "--suite", "digits", "--results", str(results), *TINY])
    assert code == 0
    record = json.loads((results / "submissions" / "confidence_penalty.json").read_text())
    return results, record


def _parse(text: str):
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)


def _text(node) -> str:
    return " ".join("".join(node.itertext()).split())


def test_record_holds_metadata_results_and_provenance(submitted):
    results, record = submitted
    assert record["kind"] == "lsmia-bench submission" and record["suite"] == "digits"
    assert record["metadata"]["display_name"] == "Confidence penalty"
    assert record["metadata"]["paper_url"] == "https://arxiv.org/abs/1701.06548"
    defense = record["defense"]
    assert defense["class"] == "lsmia_confidence_penalty:ConfidencePenalty"
    assert defense["distribution"] == {"name": "lsmia-confidence-penalty", "version": "0.1.0"}
    assert len(defense["fingerprint"]) == 16
    assert defense["hyperparameters"]["weight"]["default"] == 0.1
    assert record["settings"] == [{"label": "confidence_penalty(weight=0.5)",
                                   "params": {"weight": 0.5}, "strength": 0.5}]
    assert record["checks"]["one_batch"][0]["grad_norm"] > 0
    assert record["config"]["overrides"] == TINY[1::2] and record["config"]["standard"] is False
    assert record["config"]["settings"]["training"]["epochs"] == 2
    assert [d["name"] for d in record["config"]["settings"]["defenses"]] == [
        "none", "confidence_penalty"]
    assert record["seeds"] == [0]
    assert {"python", "torch", "ray", "mlflow", "lsmia-confidence-penalty"} <= set(
        record["versions"])
    assert record["hardware"]["device"] == "cpu"
    assert record["git"]["lsmia-bench"] is None or len(record["git"]["lsmia-bench"]["commit"]) == 40
    assert record["started_at"] <= record["finished_at"]
    stages = [t["stage"] for t in record["trials"]]
    assert stages.count("targets") == 2 and stages.count("attacks") == 2 * len(ATTACKS)
    assert all(t["status"] == "finished" for t in record["trials"])
    assert len(record["submitted_keys"]) == 1 + len(ATTACKS)  # its target and the attacks on it
    (mine,) = [r for r in record["results"] if r["submitted"]]
    (base,) = [r for r in record["results"] if not r["submitted"]]
    assert base["defense"] == "none"
    accuracy = mine["target"]["test_accuracy"]["mean"]
    assert 0 <= accuracy <= 1
    assert mine["utility_drop"] == pytest.approx(base["target"]["test_accuracy"]["mean"]
                                                 - accuracy)
    assert set(mine["attacks"]) == set(ATTACKS)
    assert all(a["status"] == "finished" for a in mine["attacks"].values())
    assert record["submitted_targets"] == [t["job_key"] for t in record["trials"]
                                           if t["stage"] == "targets"
                                           and t["labels"].get("defense") == "confidence_penalty"]


def test_submission_is_a_ranked_entry_on_a_fresh_board(run_cli, submitted, tmp_path):
    results, record = submitted
    site = tmp_path / "site"
    built = run_cli("leaderboard", "build", "--no-entries", "--results", results, "--out", site)
    assert built.code == 0, built.err
    index = (site / "index.html").read_text()
    rows = {row.get("data-entry"): row for row in _parse(index).iter("tr") if row.get("data-entry")}
    (mine,) = [r for r in record["results"] if r["submitted"]]
    row = rows[mine["entry_id"]]
    assert "Confidence penalty" in _text(row) and "submission" in _text(row)
    badge = next(s for s in row.iter("span") if "badge-submission" in s.get("class", ""))
    assert "Gabriel Pereyra" in badge.get("title") and "training.epochs=2" in badge.get("title")
    assert len(rows) == 2  # the submission and the suite's none baseline of the same run
    rank = next(td for td in row.iter("td"))  # the first column is the rank
    # A rank shared by entries whose intervals overlap reads "=1".
    rank_text = "".join(rank.itertext()).strip()
    assert rank_text.lstrip("=").isdigit() if ATTACKS else rank_text == "—"
    page = (site / "entries" / f"{mine['entry_id']}.html").read_text()
    text = _text(_parse(page))
    for needle in ("Submission confidence_penalty", "Gabriel Pereyra", "MIT",
                   "lsmia_confidence_penalty:ConfidencePenalty", record["defense"]["fingerprint"],
                   record["config"]["hash"], "lsmia-confidence-penalty 0.1.0",
                   "non-standard suite settings", "Utility drop against the baseline"):
        assert needle in text, needle
    links = {a.get("href") for a in _parse(page).iter("a")}
    assert "https://arxiv.org/abs/1701.06548" in links
    submit = _text(_parse((site / "submit.html").read_text()))
    assert "Confidence penalty confidence_penalty" in submit
    downloads = json.loads((site / "data" / "digits.json").read_text())
    assert {r["submission"] for r in downloads} == {"confidence_penalty", ""}


def test_replace_keeps_history_and_reuses_results_of_the_same_code(run_cli, submitted,
                                                                    example_installed, tmp_path):
    results, record = submitted
    path = results / "submissions" / "confidence_penalty.json"
    before = path.read_bytes()
    meta = tmp_path / "meta.yaml"
    meta.write_text((example_installed / "meta.yaml").read_text().replace(
        "display_name: Confidence penalty", "display_name: Confidence penalty v2"))
    clash = run_cli("submit", "confidence_penalty", "--meta", meta, "--suite", "digits",
                    "--results", results, *TINY)
    assert clash.code == 2 and "--replace" in clash.err and path.read_bytes() == before
    replaced = run_cli("submit", "confidence_penalty", "--meta", meta, "--suite", "digits",
                       "--results", results, "--replace", *TINY)
    assert replaced.code == 0, replaced.err[-3000:]
    (history,) = (results / "submissions" / "history").glob("confidence_penalty-*.json")
    assert history.read_bytes() == before
    new = json.loads(path.read_text())
    assert new["metadata"]["display_name"] == "Confidence penalty v2"
    assert new["replaces"] == f"history/{history.name}"
    # Same code (fingerprint): the trained targets were reused from the cache.
    assert {t["status"] for t in new["trials"]} == {"cached"}
    assert new["submitted_targets"] == record["submitted_targets"]
    site = tmp_path / "site"
    assert run_cli("leaderboard", "build", "--no-entries", "--results", results, "--out",
                   site).code == 0
    index = _text(_parse((site / "index.html").read_text()))
    assert "Confidence penalty v2" in index
    submit = _text(_parse((site / "submit.html").read_text()))
    assert f"history/{history.name}" in submit


def test_record_alone_makes_an_entry_and_html_in_it_is_escaped(submitted):
    _, record = submitted
    raw = copy.deepcopy(record) | {"file": "confidence_penalty.json"}
    board = make_board(Snapshot([], [], submissions=[raw]))
    (suite,) = board.suites
    labels = {e.label: e for e in suite.entries}
    assert set(labels) == {"Confidence penalty", "none"}
    assert labels["Confidence penalty"].submission.name == "confidence_penalty"
    assert labels["Confidence penalty"].utility_drop is not None
    # A hand-edited record with markup and a script link: text stays text, no link is made.
    raw["metadata"] |= {"display_name": EVIL, "description": EVIL, "authors": [EVIL],
                        "paper_url": "javascript:alert(1)", "license": EVIL}
    files = render_site(make_board(Snapshot([], [], submissions=[raw])))
    for name, text in files.items():
        if name.endswith(".html"):
            tree = _parse(text)
            assert EVIL not in text, name
            assert not any(a.get("href", "").startswith("javascript") for a in tree.iter("a"))
            assert not any(s.text and "alert" in s.text for s in tree.iter("script"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in files["submit.html"]


def test_submit_writes_its_entries_as_leaderboard_records(submitted):
    """The submitted setting as an entry record (the file a pull request adds to
    leaderboard/entries/): valid, self-reported, naming the submission and its command."""
    from lsmia_bench.leaderboard.entry_records import read_record

    results, record = submitted
    (path,) = (results / "submissions" / "entries" / "digits").glob("*.json")
    entry = read_record(path)
    (mine,) = [r for r in record["results"] if r["submitted"]]
    assert entry.entry_id == mine["entry_id"] and entry.status == "submission-self-reported"
    assert entry.submission is not None and entry.submission.name == "confidence_penalty"
    assert entry.submission.standard is False and entry.config.overrides == TINY[1::2]
    assert entry.config.hash == record["config"]["hash"]
    assert entry.provenance.command[0].startswith("lsmia-bench submit confidence_penalty")
    accuracy = entry.summary.target["test_accuracy"]
    assert accuracy.mean == mine["target"]["test_accuracy"]["mean"]
