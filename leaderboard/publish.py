"""Writing entry records from recorded runs, and verifying a record by running one seed again.

``lsmia-bench leaderboard record --suite S`` reads the local MLflow store (through
:func:`leaderboard.records.read_snapshot`), keeps the trials that the suite's configuration
plans (its job keys, so cached re-runs count and other configurations do not), builds the
board's entries and writes one :class:`~leaderboard.entry_records.EntryRecord` per finished
entry. ``lsmia-bench submit`` writes its entries the same way (:func:`records_from_trials`).

``lsmia-bench leaderboard verify RECORD`` runs the record's setting (its suite configuration,
that one defense setting, one seed) in a temporary results folder and checks that the test
accuracy and the ranking metric of each attack fall inside the record's intervals.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsmia_bench.benchmark.metrics.uncertainty import BootstrapSettings, Difference
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.files import write_bytes_atomic
from lsmia_bench.kernel.records import InvocationRecord, TrialRecord
from lsmia_bench.leaderboard.board import Entry, Stat, SuiteBoard, bootstrap_settings, make_board
from lsmia_bench.leaderboard.columns import UTILITY_METRIC
from lsmia_bench.leaderboard.entry_records import (
    EntryRecord,
    RecordError,
    sealed,
)
from lsmia_bench.leaderboard.records import Snapshot, latest_per_job

log = logging.getLogger("lsmia_bench")

#: The checkout this module lives in (an editable install); in site-packages there is none.
CHECKOUT = Path(__file__).resolve().parents[1]
#: Relative tolerance when a record has no interval for a metric (the value must be the same).
POINT_TOLERANCE = 1e-6


@dataclass
class Written:
    records: list[EntryRecord]
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def code_version() -> dict[str, Any]:
    """Commit and dirty flag of the lsmia-bench checkout (``{"commit": None}`` when the code
    is not a git checkout, e.g. installed from a wheel), and the package version."""
    from lsmia_bench import __version__

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(CHECKOUT), *args], capture_output=True,
                                  text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    root = git("rev-parse", "--show-toplevel")
    inside = root is not None and Path(root).resolve() == CHECKOUT and not any(
        p in ("site-packages", "dist-packages") for p in CHECKOUT.parts)
    commit = git("rev-parse", "HEAD") if inside else None
    dirty = bool(git("status", "--porcelain", "--untracked-files=no")) if commit else False
    return {"commit": commit, "dirty": dirty, "version": __version__}


def entry_name(label: str, entry_id: str) -> str:
    """File stem of a record: a readable label and the entry id."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_.")[:60] or "entry"
    return f"{safe}-{entry_id}"


def suite_bootstrap(settings: dict[str, Any]) -> BootstrapSettings:
    """The interval settings of a dumped suite configuration (defaults where absent)."""
    uncertainty = settings.get("uncertainty") or {}
    return bootstrap_settings({f"uncertainty.{k}": str(v) for k, v in uncertainty.items()})


def records_from_trials(trials: list[TrialRecord], invocations: list[InvocationRecord],
                        settings: dict[str, Any], *, source: str, overrides: list[str],
                        command: list[str], planned: set[str], status: str = "canonical",
                        submission: dict[str, Any] | None = None,
                        only_targets: set[str] | None = None,
                        results: str = "") -> tuple[list[EntryRecord], list[str]]:
    """Records of the finished entries among ``trials`` whose job keys the configuration plans
    (``planned``); with ``only_targets``, only the entries of those targets. Returns the
    records and a line for each entry left out."""
    suite = str(settings["name"])
    kept = [t for t in latest_per_job(trials) if t.suite == suite and t.job_key in planned]
    bootstrap = suite_bootstrap(settings)
    board = make_board(Snapshot(kept, [i for i in invocations if i.suite == suite],
                                uncertainty={suite: {f"uncertainty.{k}": str(v) for k, v in
                                                     (settings.get("uncertainty") or {})
                                                     .items()}}))
    records, skipped = [], []
    code = code_version()
    for suite_board in board.suites:
        for entry in suite_board.entries:
            if only_targets is not None and not {t.job_key for t in entry.targets} \
                    & only_targets:
                continue
            if entry.status != "finished":
                skipped.append(f"{entry.label}: {entry.status} "
                               f"({'; '.join(f'{n}: {e}' for n, e in entry.errors) or 'no seed'})")
                continue
            records.append(record_of(entry, suite_board, settings, bootstrap, code=code,
                                     source=source, overrides=overrides, command=command,
                                     status=status, submission=submission, results=results))
    return records, skipped


def record_of(entry: Entry, suite: SuiteBoard, settings: dict[str, Any],
              bootstrap: BootstrapSettings, *, code: dict[str, Any], source: str,
              overrides: list[str], command: list[str], status: str,
              submission: dict[str, Any] | None, results: str) -> EntryRecord:
    """One entry of the board as a sealed record."""
    from lsmia_bench.benchmark.jobs import content_hash

    seeds = []
    for target in entry.targets:
        attacks = {name: next(t for t in result.trials if t.needs.get("target") ==
                              target.job_key)
                   for name, result in entry.attacks.items()
                   if any(t.needs.get("target") == target.job_key for t in result.trials)}
        seeds.append({"seed": target.seed, "target": _trial(target),
                      "attacks": {n: _trial(t) for n, t in attacks.items()}})
    trials = entry.trials()
    started = min((t.started_ms for t in trials if t.started_ms), default=0)
    finished = max((t.finished_at for t in trials if t.finished_at), default="")
    data = {
        "kind": "lsmia-bench entry record", "format": 1, "suite": suite.name,
        "entry": entry_name(entry.label, entry.id), "entry_id": entry.id,
        "label": entry.label, "defense": entry.defense, "variant": entry.variant,
        "strength": entry.strength, "architecture": entry.architecture,
        "setting": entry.setting, "status": status, "seeds": seeds,
        "summary": {
            "target": {k: _stat(s) for k, s in entry.target_stats.items()},
            "attacks": {a: {"status": r.status, "metrics": {k: _stat(s) for k, s in
                                                            r.stats.items()},
                            "missing": r.missing, "paired": _difference(r.paired),
                            "paired_note": r.paired_note}
                        for a, r in entry.attacks.items()},
            "utility_paired": _difference(entry.utility_paired),
            "utility_paired_note": entry.utility_paired_note,
            "baseline_entry": entry.baseline_id, "utility_drop": entry.utility_drop,
            "ranking_metric": suite.ranking_metric.key if suite.ranking_metric else "",
            "ranking_attack": entry.ranking_attack, "privacy": entry.privacy,
            "bootstrap": asdict(bootstrap),
        },
        "config": {"source": source, "hash": content_hash(settings), "settings": settings,
                   "overrides": list(overrides)},
        "provenance": {
            "code": code, "versions": _merged(t.versions for t in trials) or _versions(),
            "hardware": _merged(t.hardware for t in trials),
            "started_at": datetime.fromtimestamp(started / 1000, UTC).isoformat(
                timespec="seconds") if started else finished,
            "finished_at": finished, "recorded_at": now_iso(), "command": command,
            "results": results,
        },
        "submission": submission, "verification": None,
    }
    try:
        return sealed(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise UserError(f"entry {entry.label}", entry.id, "Record the run again; if this "
                        "persists the run recorded incomplete provenance.",
                        problem=f"not a valid record: {exc}") from None


def _trial(trial: TrialRecord) -> dict[str, Any]:
    data = asdict(trial)
    for key in ("images", "suite", "error"):
        data.pop(key, None)
    return data


def _stat(stat: Stat) -> dict[str, Any]:
    return asdict(stat)


def _difference(difference: Difference | None) -> dict[str, Any] | None:
    if difference is None:
        return None
    i = difference.interval
    return {"estimate": i.estimate, "low": i.low, "high": i.high, "n": i.n, "unit": i.unit,
            "level": i.level, "verdict": difference.verdict}


def _merged(dicts: Any) -> dict[str, str]:
    """Key -> the values the trials recorded (one value, or several joined by ", ")."""
    found: dict[str, set[str]] = {}
    for data in dicts:
        for key, value in data.items():
            found.setdefault(key, set()).add(str(value))
    return {k: ", ".join(sorted(v)) for k, v in sorted(found.items())}


def _versions() -> dict[str, str]:
    from lsmia_bench.benchmark.trial import package_versions

    return package_versions()


def write_records(records: list[EntryRecord], out: Path) -> list[Path]:
    """``<out>/<suite>/<entry>.json`` for each record (replacing a record of the same entry)."""
    paths = []
    for record in records:
        path = Path(out) / record.suite / record.file_name
        write_bytes_atomic(path, record.to_json().encode("utf-8"))
        paths.append(path)
    return paths


def suite_config(suite: str | None, config_file: Path | None, overrides: list[str]
                 ) -> tuple[Any, str]:
    """The validated configuration of a named suite (or file) with ``--set`` overrides."""
    from lsmia_bench.benchmark.config import apply_overrides, read_suite_file

    raw, source = read_suite_file(suite, config_file)
    raw = apply_overrides(raw, overrides)
    return validated(raw, source), source


def validated(raw: dict[str, Any], source: str) -> Any:
    from lsmia_bench.benchmark.pipelines import validate_raw_suite

    return validate_raw_suite(raw, source)


def planned_keys(config: Any) -> set[str]:
    from lsmia_bench.benchmark.run import pipeline_for

    return {job.key for job in pipeline_for(config).plan(config)}


def record_suite(snapshot: Snapshot, config: Any, source: str, overrides: list[str],
                 out: Path, results_arg: str, describe: str, config_file: Path | None = None
                 ) -> Written:
    """``lsmia-bench leaderboard record``: canonical records of one suite's configuration
    (named, or from ``config_file``)."""
    settings = config.model_dump(mode="json")
    planned = planned_keys(config)
    have = {t.job_key for t in snapshot.trials if t.ok and t.suite == config.name}
    missing = planned - have
    if missing:
        # Finished trials of the suite that this configuration does not plan: the run was made
        # with other settings (a --set, --data-home or SCIKIT_LEARN_DATA), not left unfinished.
        other = "Give the same --set options and data home (SCIKIT_LEARN_DATA) " \
            "as the run, or run it first: " if have - planned else "Run it first: "
        raise UserError("--suite", config.name, f"{other}lsmia-bench run "
                        f"{_suite_args(config.name, config_file, overrides)} --results "
                        f"{shlex.quote(results_arg)}",
                        problem=f"{len(missing)} of its {len(planned)} trials are not recorded "
                        "(finished) in this store with this configuration")
    args = f"{_suite_args(config.name, config_file, overrides)} --results results"
    command = [f"lsmia-bench run {args}", f"lsmia-bench leaderboard record {args}"]
    records, skipped = records_from_trials(
        snapshot.trials, snapshot.invocations, settings, source=source, overrides=overrides,
        command=command, planned=planned, results=describe)
    if not records:
        raise UserError("--suite", config.name, "Run the suite until its entries finish.",
                        problem="no finished entry to record: " + "; ".join(skipped))
    return Written(records, write_records(records, out), skipped)


def _suite_args(suite: str, config_file: Path | None, overrides: list[str]) -> str:
    where = (f"--suite {shlex.quote(suite)}" if config_file is None
             else f"--config {shlex.quote(str(config_file))}")
    return " ".join([where, *(f"--set {shlex.quote(o)}" for o in overrides)])


# --------------------------------------------------------------------------- verify


@dataclass
class Check:
    what: str
    value: float | None
    low: float
    high: float
    interval: str  # where the interval comes from

    @property
    def ok(self) -> bool:
        if self.value is None or not math.isfinite(self.value):
            return False
        slack = POINT_TOLERANCE * max(abs(self.low), abs(self.high), 1e-12)
        return self.low - slack <= self.value <= self.high + slack

    def line(self) -> str:
        shown = "not recorded" if self.value is None else f"{self.value:.6g}"
        verdict = "inside" if self.ok else "OUTSIDE"
        return (f"{self.what}: {shown} {verdict} [{self.low:.6g}, {self.high:.6g}] "
                f"({self.interval})")


@dataclass
class Verification:
    record: EntryRecord
    seed: str
    checks: list[Check]
    seconds: float
    counts: dict[str, int]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def disagreements(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def verify_config(record: EntryRecord, seed: str) -> Any:
    """The record's suite configuration narrowed to one seed and the one defense setting
    whose target has the record's job key for that seed."""
    settings = record.config.settings
    seeds = [s for s in settings.get("seeds") or [] if str(s) == seed]
    if not seeds:
        raise UserError("--seed", seed, f"Pick a seed of the record: "
                        f"{', '.join(s.seed for s in record.seeds)}.",
                        problem="not a seed of the record's configuration")
    wanted = next(s.target.job_key for s in record.seeds if s.seed == seed)
    base = validated(settings, f"record {record.entry}")
    for spec in base.defenses:
        for values, _ in spec.settings():
            raw = json.loads(json.dumps(settings)) | {
                "seeds": seeds, "defenses": [{"name": spec.name, "params": values}]}
            candidate = validated(raw, f"record {record.entry}")
            if wanted in planned_keys(candidate):
                return candidate
    raise VerifyMismatch(["setting: this code plans no target with the record's job key "
                          f"{wanted} (the suite's code or configuration format changed since "
                          "the record was written)"])


class VerifyMismatch(Exception):
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(lines))


def verify_record(record: EntryRecord, seed: str | None = None,
                  results_dir: Path | None = None, max_concurrent: int | None = None,
                  address: str | None = None) -> Verification:
    """Run one seed of the record's setting and compare with the record's intervals."""
    import time

    from lsmia_bench.benchmark.run import RunOptions, run_suite

    started = time.perf_counter()
    seed = seed or record.seeds[0].seed
    config = verify_config(record, seed)
    with tempfile.TemporaryDirectory(prefix="lsmia-verify-") as scratch:
        folder = Path(results_dir) if results_dir else Path(scratch) / "results"
        run = run_suite(config, RunOptions(results_dir=folder, max_concurrent=max_concurrent,
                                           address=address,
                                           source=f"lsmia-bench leaderboard verify "
                                                  f"{record.entry}"))
        trials = list(run.trials)
    wanted = next(s.target.job_key for s in record.seeds if s.seed == seed)
    target = next((t for t in trials if t.job_key == wanted), None)
    checks = _checks(record, target, [t for t in trials if t.stage == "attacks"
                                      and t.needs.get("target") == wanted])
    return Verification(record, seed, checks, time.perf_counter() - started, run.counts)


def _checks(record: EntryRecord, target: TrialRecord | None,
            attacks: list[TrialRecord]) -> list[Check]:
    summary = record.summary
    checks = []

    def interval(stat: Any) -> tuple[float, float, str]:
        if stat.low is not None and stat.high is not None:
            kind = (f"{100 * stat.level:.0f} % interval over {stat.units} {stat.unit}".strip()
                    if stat.n == 1 else f"{100 * stat.level:.0f} % interval over "
                    f"{stat.n} seeds")
            return stat.low, stat.high, kind
        return stat.mean, stat.mean, "no interval recorded: the recorded value"

    utility = summary.target.get(UTILITY_METRIC)
    if utility is not None:
        low, high, kind = interval(utility)
        value = target.metrics.get(UTILITY_METRIC) if target and target.ok else None
        checks.append(Check(f"utility {UTILITY_METRIC}", value, low, high, kind))
    metric = summary.ranking_metric
    by_name = {t.labels.get("attack") or t.spec.get("attack.name") or t.name: t
               for t in attacks}
    for attack, result in summary.attacks.items():
        stat = result.metrics.get(metric) if metric else None
        if stat is None:
            continue
        low, high, kind = interval(stat)
        trial = by_name.get(attack)
        value = trial.metrics.get(metric) if trial and trial.ok else None
        checks.append(Check(f"ranking metric {attack}/{metric}", value, low, high, kind))
    return checks


def mark_verified(path: Path, verification: Verification, command: str) -> EntryRecord:
    """Rewrite a submitted record as ``submission-verified`` (re-sealed by this command)."""
    record = verification.record
    if record.status == "canonical":
        raise UserError("RECORD", str(path), "Only a submission is marked verified; a "
                        "canonical record is verified as it is.",
                        problem="a canonical record")
    data = record.model_dump(mode="json") | {
        "status": "submission-verified",
        "verification": {"verified_at": now_iso(),
                         "commit": code_version().get("commit") or "",
                         "seed": verification.seed, "command": command}}
    sealed_record = sealed(data)
    write_bytes_atomic(Path(path), sealed_record.to_json().encode("utf-8"))
    return sealed_record


__all__ = ["Check", "RecordError", "Verification", "VerifyMismatch", "Written", "code_version",
           "mark_verified", "record_suite", "records_from_trials", "verify_record",
           "write_records"]
