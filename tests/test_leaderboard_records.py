"""Entry records (leaderboard/entries/): every committed record is valid; hand edits fail;
a fresh checkout's `leaderboard build` makes the toy table from the records alone; a local run
of a canonical setting is shown beside it, never merged; `verify` agrees with a canonical toy
record and disagrees (exit 1) with a copy whose accuracy was altered and re-digested."""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import pytest

from lsmia_bench.leaderboard.board import make_board
from lsmia_bench.leaderboard.entry_records import (
    RecordError,
    committed_folder,
    parse_record,
    read_record,
    record_files,
    sealed,
)
from lsmia_bench.leaderboard.records import Snapshot

REPO = Path(__file__).resolve().parents[1]
COMMITTED = record_files(committed_folder())
TOY = [p for p in COMMITTED if p.parent.name == "toy"]


def _raw(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_records_are_committed_in_the_checkout_and_shipped_as_package_data():
    assert committed_folder().resolve() == (REPO / "leaderboard" / "entries").resolve()
    assert len(TOY) >= 3, "the canonical toy records are missing from leaderboard/entries/toy"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"entries/*/*.json"' in pyproject


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_record_is_valid(path):
    record = read_record(path)
    assert record.digest == record.content_digest()
    assert record.status in ("canonical", "submission-self-reported", "submission-verified")
    if record.status == "canonical":
        code = record.provenance.code
        assert code.commit and len(code.commit) == 40
        assert any(c.startswith(f"lsmia-bench run --suite {record.suite}")
                   for c in record.provenance.command)
        assert any(c.startswith(f"lsmia-bench leaderboard record --suite {record.suite}")
                   for c in record.provenance.command)


def _first_toy() -> dict:
    return _raw(TOY[0])


def _problems(data: dict) -> str:
    with pytest.raises(RecordError) as caught:
        parse_record(data, "edited.json")
    return caught.value.problem or ""


def test_wrong_config_hash_fails_even_when_re_digested():
    data = _first_toy()
    data["config"]["hash"] = "0123456789abcdef"
    assert "config" in _problems(data) and "is not the hash of the settings" in _problems(data)
    # Changing the settings instead (a different training budget) fails the same way.
    data = _first_toy()
    data["config"]["settings"]["training"]["iterations"] += 1
    data["digest"] = sealed_digest_of(data)
    assert "is not the hash of the settings" in _problems(data)


def sealed_digest_of(data: dict) -> str:
    from lsmia_bench.leaderboard.entry_records import content_digest

    return content_digest(data)


def test_an_altered_metric_fails():
    data = _first_toy()
    trial = data["seeds"][0]["target"]["metrics"]
    trial["test_accuracy"] = round(trial["test_accuracy"] - 0.1, 6)
    problems = _problems(data)
    assert "summary.target.test_accuracy" in problems and "its target trial says" in problems
    # Altered consistently in the trial and the summary: the digest gives it away.
    summary = data["summary"]["target"]["test_accuracy"]
    summary["per_seed"] = {k: trial["test_accuracy"] for k in summary["per_seed"]}
    summary["mean"], summary["low"], summary["high"] = (trial["test_accuracy"],
                                                       trial["test_accuracy"] - 0.01,
                                                       trial["test_accuracy"] + 0.01)
    assert "digest" in _problems(data) and "edited after it was written" in _problems(data)


@pytest.mark.parametrize("drop", [("provenance",), ("provenance", "code"),
                                  ("provenance", "code", "commit"), ("provenance", "hardware"),
                                  ("provenance", "command"), ("config",), ("digest",)])
def test_missing_provenance_fails(drop):
    data = _first_toy()
    parent = data
    for key in drop[:-1]:
        parent = parent[key]
    del parent[drop[-1]]
    assert f"{'.'.join(drop)}: required field is missing" in _problems(data)


def test_emptied_provenance_and_unknown_fields_fail():
    data = _first_toy()
    data["provenance"]["hardware"] = {}
    data["provenance"]["versions"].pop("torch")
    data["notes"] = "typed by hand"
    problems = _problems(data)
    assert "provenance.hardware" in problems and "provenance.versions" in problems
    assert "notes: unknown field" in problems


def test_a_record_in_the_wrong_place_or_not_json_is_refused(tmp_path):
    wrong = tmp_path / "digits" / TOY[0].name
    wrong.parent.mkdir()
    wrong.write_bytes(TOY[0].read_bytes())
    with pytest.raises(RecordError, match="lies at <entries>/toy/"):
        read_record(wrong)
    assert read_record(wrong, located=False).suite == "toy"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        read_record(bad)


def test_fresh_checkout_builds_the_toy_table_from_records_alone(run_cli, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./results here
    monkeypatch.delenv("LSMIA_RESULTS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    built = run_cli("leaderboard", "build", "--out", "site")
    assert built.code == 0, built.err
    assert f"{len(COMMITTED)} entry record(s)" in built.out
    site = tmp_path / "site"
    rows = json.loads((site / "data" / "toy.json").read_text())
    records = {r.entry_id: r for r in map(read_record, TOY)}
    assert {r["entry_id"] for r in rows} == set(records)
    for row in rows:
        record = records[row["entry_id"]]
        accuracy = record.summary.target["test_accuracy"]
        assert row["origin"] == "canonical" == record.status
        assert row["record"] == f"leaderboard/entries/toy/{record.file_name}"
        assert row["test_accuracy"] == accuracy.mean
        assert row["test_accuracy_ci_low"] == accuracy.low
        assert row["test_accuracy_ci_high"] == accuracy.high
        assert row["seeds"] == len(record.seeds)
        assert row["ranking_metric"] == record.summary.ranking_metric
        assert row["ranking_privacy"] == record.summary.privacy
        if record.summary.privacy is not None:
            assert row["rank"] is not None
    table = list(csv.DictReader(io.StringIO((site / "data" / "toy.csv").read_text())))
    assert {r["entry_id"] for r in table} == set(records)
    assert {r["origin"] for r in table} == {"canonical"}
    index = (site / "index.html").read_text()
    assert 'class="badge badge-canonical"' in index
    page = (site / "entries" / f"{rows[0]['entry_id']}.html").read_text()
    assert "lsmia-bench run --suite toy" in page and records[rows[0]["entry_id"]].digest in page
    # `make site` is the same build from the records only, into a folder for a static host.
    makefile = (REPO / "Makefile").read_text()
    assert "leaderboard build --records-only --out $(SITE_OUT)" in makefile


def test_records_only_ignores_a_local_store_and_no_entries_ignores_records(run_cli, tmp_path):
    site = tmp_path / "site"
    built = run_cli("leaderboard", "build", "--records-only", "--results",
                    tmp_path / "nothing-here", "--out", site)
    assert built.code == 0, built.err
    assert {r["origin"] for r in json.loads((site / "data" / "toy.json").read_text())} == {
        "canonical"}
    refused = run_cli("leaderboard", "build", "--no-entries", "--results",
                      tmp_path / "nothing-here", "--out", site)
    assert refused.code == 2 and "no MLflow store" in refused.err


def test_a_local_run_of_a_canonical_setting_is_shown_beside_it():
    record = read_record(TOY[0])
    local = record.trials()  # the same job keys, as a local re-run records them
    for trial in local:
        trial.metrics = dict(trial.metrics, test_accuracy=0.123) if trial.stage == "targets" \
            else trial.metrics
    board = make_board(Snapshot(local, [], entries=[record]))
    (suite,) = board.suites
    by_id = {e.id: e for e in suite.entries}
    assert set(by_id) == {record.entry_id, f"{record.entry_id}-local"}
    canonical, mine = by_id[record.entry_id], by_id[f"{record.entry_id}-local"]
    assert canonical.origin == "canonical" and mine.origin == "local"
    assert canonical.utility == record.summary.target["test_accuracy"].mean
    assert mine.utility == pytest.approx(0.123)
    from lsmia_bench.leaderboard.build import render_site

    files = render_site(board)
    rows = {r["entry_id"]: r for r in json.loads(files["data/toy.json"])}
    assert rows[f"{record.entry_id}-local"]["origin"] == "local"
    assert 'class="badge badge-local"' in files["index.html"]


# ----------------------------------------------------------------------------- verify


@pytest.fixture(scope="module")
def toy_record() -> Path:
    """The canonical toy record with the fewest trials (all have one seed and one attack)."""
    return min(TOY, key=lambda p: (len(_raw(p)["seeds"]), p.name))


@pytest.mark.slow
def test_verify_agrees_with_a_canonical_record_and_not_with_an_altered_copy(
        run_cli, ray_cluster, toy_record, tmp_path):
    results = tmp_path / "results"
    agreed = run_cli("leaderboard", "verify", toy_record, "--results", results)
    assert agreed.code == 0, agreed.out + agreed.err
    assert "utility test_accuracy" in agreed.out and "inside" in agreed.out
    assert "OUTSIDE" not in agreed.out and "Agrees" in agreed.out

    # A copy whose test accuracy was altered, re-sealed by the project's own code: valid
    # schema and digest, only the numbers disagree. The re-run comes from the cache.
    data = copy.deepcopy(_raw(toy_record))
    target = data["seeds"][0]["target"]["metrics"]
    altered = round(target["test_accuracy"] - 0.25, 6)
    target["test_accuracy"] = altered
    target.update({k: v for k, v in (("test_accuracy_ci_low", altered - 0.01),
                                     ("test_accuracy_ci_high", altered + 0.01))
                   if k in target})
    stat = data["summary"]["target"]["test_accuracy"]
    stat.update(mean=altered, per_seed={k: altered for k in stat["per_seed"]},
                low=altered - 0.01, high=altered + 0.01)
    copy_path = tmp_path / "altered" / "toy" / toy_record.name
    copy_path.parent.mkdir(parents=True)
    copy_path.write_text(sealed(data).to_json())
    assert read_record(copy_path).summary.target["test_accuracy"].mean == altered
    disagreed = run_cli("leaderboard", "verify", copy_path, "--results", results)
    assert disagreed.code == 1, disagreed.out + disagreed.err
    assert "DISAGREES" in disagreed.out and "utility test_accuracy" in disagreed.out
    assert "OUTSIDE" in disagreed.out

    # A malformed record: exit 2 before anything runs.
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(_raw(toy_record) | {"status": "official"}))
    bad = run_cli("leaderboard", "verify", broken)
    assert bad.code == 2 and "status" in bad.err
