"""Submission records (``lsmia-bench submit``) as the board sees them: typed, tolerant of
damage (a broken record is skipped with a warning, never a failed build).

A record holds its own trials (see ``lsmia_bench/submission/record.py``), so an entry appears
even when the board is built from another MLflow store than the one the submission ran in;
trials that the store does hold win (they carry figures). Entries whose targets a *current*
record submitted are marked as that submission; entries only an earlier, replaced record
(``submissions/history/``) submitted are marked as replaced and left out of the ranking.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any

from lsmia_bench.kernel.records import InvocationRecord, TrialRecord

log = logging.getLogger("lsmia_bench")

RECORD_KIND = "lsmia-bench submission"


@dataclass
class Submission:
    file: str
    name: str
    suite: str
    display_name: str
    authors: list[str]
    description: str
    license: str
    paper: str = ""
    paper_url: str = ""
    code_url: str = ""
    current: bool = True
    defense: dict[str, Any] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    seeds: list[Any] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=dict)
    hardware: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    wall_time_s: float | None = None
    replaces: str = ""
    target_keys: set[str] = field(default_factory=set)
    trials: list[TrialRecord] = field(default_factory=list)

    @property
    def path(self) -> str:
        """Where the record lies under ``<results>/submissions/``."""
        return self.file if self.current else f"history/{self.file}"

    @property
    def standard(self) -> bool:
        return bool(self.config.get("standard", True))

    @property
    def overrides(self) -> list[str]:
        return [str(o) for o in self.config.get("overrides") or []]

    def entry_label(self, defense_label: str) -> str:
        """The display name; with several settings, the setting in brackets."""
        if len(self.settings) <= 1:
            return self.display_name
        name = str(self.defense.get("name") or "")
        suffix = defense_label[len(name):] if name and defense_label.startswith(name) else ""
        return f"{self.display_name} {suffix.strip() or '(' + defense_label + ')'}"


def parse_submission(raw: dict[str, Any], current: bool = True) -> Submission | None:
    """A record read by :func:`leaderboard.records.read_submissions`, or None (logged)."""
    file = str(raw.get("file", "?"))
    try:
        if raw.get("kind") != RECORD_KIND:
            raise ValueError(f"kind is {raw.get('kind')!r}, not {RECORD_KIND!r}")
        meta = raw["metadata"]
        trials = [_trial(t) for t in raw.get("trials") or []]
        return Submission(
            file=file, name=str(raw["name"]), suite=str(raw["suite"]),
            display_name=str(meta["display_name"]),
            authors=[str(a) for a in meta.get("authors") or []],
            description=str(meta.get("description") or ""),
            license=str(meta.get("license") or ""), paper=str(meta.get("paper") or ""),
            paper_url=str(meta.get("paper_url") or ""), code_url=str(meta.get("code_url") or ""),
            current=current, defense=_dict(raw.get("defense")),
            settings=list(raw.get("settings") or []), checks=_dict(raw.get("checks")),
            config=_dict(raw.get("config")), run=_dict(raw.get("run")),
            seeds=list(raw.get("seeds") or []), versions=_dict(raw.get("versions")),
            hardware=_dict(raw.get("hardware")), git=_dict(raw.get("git")),
            started_at=str(raw.get("started_at") or ""),
            finished_at=str(raw.get("finished_at") or ""),
            wall_time_s=raw.get("wall_time_s"), replaces=str(raw.get("replaces") or ""),
            target_keys={str(k) for k in raw.get("submitted_targets") or []}, trials=trials)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        log.warning("skipping submission record %s: %s", file, exc)
        return None


def parse_all(current: list[dict[str, Any]], history: list[dict[str, Any]]) -> list[Submission]:
    found = [parse_submission(r, True) for r in current]
    found += [parse_submission(r, False) for r in history]
    return [s for s in found if s is not None]


def merge_trials(trials: list[TrialRecord], invocations: list[InvocationRecord],
                 submissions: list[Submission]
                 ) -> tuple[list[TrialRecord], list[InvocationRecord]]:
    """Add the current records' trials (and runs) that the store does not hold."""
    known = {(t.suite, t.job_key) for t in trials}
    runs = {i.run_id for i in invocations}
    extra_trials: list[TrialRecord] = []
    extra_runs: list[InvocationRecord] = []
    for submission in submissions:
        if not submission.current:
            continue
        extra_trials += [t for t in submission.trials if (t.suite, t.job_key) not in known]
        run_id = str(submission.run.get("parent_run_id") or "")
        if run_id and run_id not in runs:
            runs.add(run_id)
            extra_runs.append(InvocationRecord(
                run_id=run_id, suite=submission.suite,
                invocation=str(submission.run.get("invocation") or run_id),
                started_ms=int(submission.run.get("started_ms") or 0),
                config_hash=str(submission.config.get("hash") or ""),
                config_source=f"submission {submission.name} "
                              f"({submission.config.get('source', '')})",
                status="FINISHED", versions=submission.versions))
    return trials + extra_trials, invocations + extra_runs


def submission_for(suite: str, target_keys: set[str], submissions: list[Submission]
                   ) -> Submission | None:
    """The record that submitted these targets: the newest current one, else the newest
    replaced one."""
    matching = [s for s in submissions if s.suite == suite and s.target_keys & target_keys]
    if not matching:
        return None
    return max(matching, key=lambda s: (s.current, s.finished_at, s.file))


def _trial(data: dict[str, Any]) -> TrialRecord:
    names = {f.name for f in fields(TrialRecord)} - {"images"}
    values = {k: v for k, v in data.items() if k in names}
    values["metrics"] = {k: float(v) for k, v in (values.get("metrics") or {}).items()
                         if isinstance(v, int | float) and v == v}
    return TrialRecord(**values)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
