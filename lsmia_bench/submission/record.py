"""Submission records: ``<results>/submissions/<name>.json``, never silently overwritten.

A record is self-contained: metadata, the defense (class, code fingerprint, distribution),
the suite configuration and its hash, the trials as recorded in MLflow (the kernel's
``TrialRecord``: metrics, curves, labels, configuration, hardware, versions), a summary of the
results, package versions, git commits, hardware, seeds and timestamps. ``leaderboard build`` reads
it (see ``leaderboard/submissions.py``). ``--replace`` moves the earlier record to
``submissions/history/<name>-<time>.json`` first.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.files import write_bytes_atomic, write_json_atomic
from lsmia_bench.kernel.records import InvocationRecord, ResultsLayout, TrialRecord

log = logging.getLogger("lsmia_bench")

RECORD_FORMAT = 1
RECORD_KIND = "lsmia-bench submission"


def submissions_dir(results: Path) -> Path:
    return ResultsLayout(results).submissions


def record_path(results: Path, name: str) -> Path:
    return ResultsLayout(results).submission(name)


def check_name_free(results: Path, name: str, replace: bool, meta_file: str) -> None:
    """A name already recorded needs ``--replace`` (checked before and after the run)."""
    path = record_path(results, name)
    if path.exists() and not replace:
        raise UserError(f"{meta_file}: name", name, "Pick another name, or pass --replace to "
                        "replace it (the earlier record is kept in submissions/history/).",
                        problem=f"a submission of this name is already recorded ({path})")


def write_record(results: Path, name: str, record: dict[str, Any], replace: bool,
                 meta_file: str) -> tuple[Path, Path | None]:
    """Write the record atomically; with ``replace`` keep the earlier one as history first."""
    check_name_free(results, name, replace, meta_file)
    path = record_path(results, name)
    history = None
    if path.exists():
        old = path.read_bytes()
        history = _history_path(results, name, _stamp_of(old, path))
        write_bytes_atomic(history, old)
        record["replaces"] = history.relative_to(submissions_dir(results)).as_posix()
        log.info("kept the earlier record of %s as %s", name, history)
    write_json_atomic(path, record)
    return path, history


def existing_records(results: Path) -> list[dict[str, Any]]:
    """Current and earlier records of this results folder (unreadable files skipped)."""
    layout = ResultsLayout(results)
    found = []
    for file in [*sorted(layout.submissions.glob("*.json")),
                 *sorted(layout.submission_history.glob("*.json"))]:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found.append(data)
    return found


def _history_path(results: Path, name: str, stamp: str) -> Path:
    folder = ResultsLayout(results).submission_history
    candidate = folder / f"{name}-{stamp}.json"
    counter = 1
    while candidate.exists():
        counter += 1
        candidate = folder / f"{name}-{stamp}-{counter}.json"
    return candidate


def _stamp_of(text: bytes, path: Path) -> str:
    try:
        when = datetime.fromisoformat(json.loads(text)["finished_at"])
    except (ValueError, KeyError, TypeError):
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def git_info(path: Path | str | None, expected_root: Path | None = None) -> dict[str, Any] | None:
    """Commit (and whether the tree has uncommitted changes) of the git checkout holding
    ``path``; None outside a checkout, inside an installed package, or when git is missing.

    With ``expected_root``, the checkout must be exactly that folder (so an install inside
    some other repository's virtual environment does not report that repository).
    """
    if path is None:
        return None
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    if any(part in ("site-packages", "dist-packages") for part in folder.parts):
        return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                  text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    root = git("rev-parse", "--show-toplevel")
    commit = git("rev-parse", "HEAD")
    if root is None or commit is None:
        return None
    if expected_root is not None and Path(root).resolve() != Path(expected_root).resolve():
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "path": str(folder.relative_to(
        Path(root).resolve())) if folder.is_relative_to(Path(root).resolve()) else ""}


def trial_dicts(trials: list[TrialRecord]) -> list[dict[str, Any]]:
    """Trial records as JSON, without figure listings."""
    out = []
    for trial in trials:
        data = asdict(trial)
        data.pop("images", None)
        out.append(data)
    return out


def results_summary(trials: list[TrialRecord], invocations: list[InvocationRecord],
                    submitted: set[str]
                    ) -> list[dict[str, Any]]:
    """Per entry of this run (the baseline and each submitted setting): the numbers the
    leaderboard will show, computed by the leaderboard's own code."""
    from lsmia_bench.leaderboard.board import make_board
    from lsmia_bench.leaderboard.records import Snapshot

    board = make_board(Snapshot(trials, invocations))
    summary = []
    for suite in board.suites:
        for entry in suite.entries:
            summary.append({
                "entry_id": entry.id, "label": entry.label, "defense": entry.defense,
                "submitted": any(t.job_key in submitted for t in entry.targets),
                "strength": entry.strength, "seeds": entry.seeds, "status": entry.status,
                "utility_drop": entry.utility_drop,
                "target": {k: asdict(s) for k, s in entry.target_stats.items()},
                "attacks": {a: {"status": r.status,
                                "metrics": {k: asdict(s) for k, s in r.stats.items()}}
                            for a, r in entry.attacks.items()},
            })
    return summary
