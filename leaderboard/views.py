"""What the templates show: table columns and cells, download records, figures, charts.

Pure functions of a :class:`~leaderboard.board.Board`; the templates only lay them out.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from lsmia_bench.leaderboard.board import Entry, Stat, SuiteBoard
from lsmia_bench.leaderboard.charts import Chart, line_chart, tradeoff_chart
from lsmia_bench.leaderboard.columns import (
    FIXED_COLUMNS,
    UTILITY_METRIC,
    MetricInfo,
    format_spread,
    format_value,
    unit_note,
)
from lsmia_bench.leaderboard.records import MAX_IMAGE_BYTES
from lsmia_bench.leaderboard.submissions import Submission

from lsmia_bench.kernel.records import Artifact, TrialRecord


@dataclass
class Column:
    key: str
    title: str
    hint: str
    group: str
    numeric: bool = True
    detail: bool = False
    attack: str | None = None  # the attack of an attack column
    metric: str = ""  # the metric (or "status") of an attack column


@dataclass
class Group:
    title: str
    span: int  # columns in the full table
    compact_span: int  # columns in the compact table (detail columns hidden)


@dataclass
class Cell:
    text: str
    value: float | str | None = None
    title: str = ""
    css: str = ""
    href: str = ""
    badge: str = ""  # a short marker after the text, e.g. "submission"
    badge_title: str = ""


@dataclass
class Figure:
    run_id: str
    path: str
    site_path: str
    caption: str
    role: str


@dataclass
class SuiteView:
    suite: SuiteBoard
    slug: str
    columns: list[Column]
    groups: list[Group]
    rows: list[tuple[Entry, list[Cell]]]
    records: list[dict[str, Any]]
    chart: Chart | None
    figures: list[Figure] = field(default_factory=list)


def slug(text: str) -> str:
    """A file-name-safe form of ``text``; a hash suffix keeps distinct names distinct."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:60] or "x"
    if safe == text:
        return safe
    return f"{safe}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def safe_url(url: Any) -> str:
    """Only http(s) links are rendered as links (no javascript: or data: URLs)."""
    text = str(url or "").strip()
    return text if re.match(r"^https?://[^\s\"'<>]+$", text) else ""


def entry_page(entry: Entry) -> str:
    return f"entries/{entry.id}.html"


def image_site_path(run_id: str, path: str) -> str:
    parts = [slug(p) if i < len(PurePosixPath(path).parts) - 1 else _file_slug(p)
             for i, p in enumerate(PurePosixPath(path).parts)]
    return "/".join(["files", slug(run_id), *parts])


def _file_slug(name: str) -> str:
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix.lower()
    return slug(stem) + suffix


def stat_cell(stat: Stat | None, info: MetricInfo) -> Cell:
    if stat is None:
        return Cell("", None)
    text = format_value(stat.mean, info.fmt)
    spread = format_spread(stat.std, info.fmt)
    if spread:
        text = f"{text} ± {spread}"
    return Cell(text, stat.mean, title=f"{info.title}: mean over {stat.n} seed(s)")


def suite_view(suite: SuiteBoard) -> SuiteView:
    fixed = [("rank", "Rank"), ("pareto", "Front"), ("defense", "Defense"),
             ("strength", "Strength"), ("architecture", "Architecture"), ("seeds", "Seeds"),
             ("status", "Status")]
    # A column that no entry fills (no strength hyper-parameter, no recorded architecture) goes.
    if all(e.strength is None for e in suite.entries):
        fixed.remove(("strength", "Strength"))
    if not any(e.architecture for e in suite.entries):
        fixed.remove(("architecture", "Architecture"))
    if not any(e.on_front for e in suite.entries):
        fixed.remove(("pareto", "Front"))
    columns = [Column(k, t, FIXED_COLUMNS[k], "Entry",
                      numeric=k in ("rank", "strength", "seeds", "pareto")) for k, t in fixed]
    groups = [Group("Entry", len(columns), len(columns))]
    target = [Column(m.key, m.title, m.hint + unit_note(m.fmt), "Target", detail=m.detail)
              for m in suite.target_metrics]
    if UTILITY_METRIC in {m.key for m in suite.target_metrics}:
        target.append(Column("utility_drop", "Utility drop", FIXED_COLUMNS["utility_drop"],
                             "Target"))
    columns += target
    groups.append(_group("Target model (utility)", target))
    for attack in suite.attacks:
        metrics = suite.attack_metrics[attack] or []
        cols = [Column(f"{attack}/{m.key}", m.title, m.hint + unit_note(m.fmt),
                       f"Attack: {attack}", detail=m.detail, attack=attack, metric=m.key)
                for m in metrics]
        if not any(not c.detail for c in cols):
            cols.insert(0, Column(f"{attack}/status", "Status", f"Outcome of attack {attack}.",
                                  f"Attack: {attack}", numeric=False, attack=attack,
                                  metric="status"))
        columns += cols
        groups.append(_group(f"Attack: {attack} (privacy)", cols))
    rows = [(entry, _row(suite, entry, columns)) for entry in suite.entries]
    records = [_record(suite, entry) for entry in suite.entries]
    return SuiteView(suite, slug(suite.name), columns, [g for g in groups if g.span], rows,
                     records, _tradeoff(suite))


def _group(title: str, columns: list[Column]) -> Group:
    return Group(title, len(columns), sum(not c.detail for c in columns))


def _row(suite: SuiteBoard, entry: Entry, columns: list[Column]) -> list[Cell]:
    cells = [_cell(suite, entry, column) for column in columns]
    for cell, column in zip(cells, columns, strict=True):
        extra = ["detail" if column.detail else "", "" if column.numeric else "text"]
        cell.css = " ".join(c for c in [cell.css, *extra] if c)
    return cells


def _cell(suite: SuiteBoard, entry: Entry, column: Column) -> Cell:
    if (column.attack is None and column.group != "Target") or column.key == "utility_drop":
        return _fixed_cell(entry, column.key)
    if column.attack is None:
        info = next(m for m in suite.target_metrics if m.key == column.key)
        return stat_cell(entry.target_stats.get(column.key), info)
    attack, key = column.attack, column.metric
    result = entry.attacks[attack]
    if key == "status" or result.status in ("failed", "missing"):
        error = "; ".join(t.error or t.status for t in result.trials if not t.ok)
        text = result.status if result.status != "missing" else "not run"
        return Cell(text, text if key == "status" else None, title=error,
                    css=f"status-{result.status}")
    info = next(m for m in suite.attack_metrics[attack] if m.key == key)
    return stat_cell(result.stats.get(key), info)


def _fixed_cell(entry: Entry, key: str) -> Cell:
    if key == "rank":
        return Cell(str(entry.rank) if entry.rank else "—", entry.rank,
                    title=entry.rank_note or f"Pareto front {entry.pareto_rank}")
    if key == "pareto":
        return Cell("★" if entry.on_front else "", 1 if entry.on_front else 0,
                    title="on the Pareto front" if entry.on_front else "",
                    css="front-star" if entry.on_front else "")
    if key == "defense":
        text = entry.label + (f" [{entry.variant}]" if entry.variant else "")
        cell = Cell(text, text.lower(), href=entry_page(entry), title=entry.defense)
        if entry.submission is not None:
            cell.badge, cell.badge_title = submission_badge(entry)
        return cell
    if key == "strength":
        return Cell("" if entry.strength is None else f"{entry.strength:g}", entry.strength)
    if key == "architecture":
        return Cell(entry.architecture or "—", entry.architecture)
    if key == "seeds":
        return Cell(str(entry.seeds), entry.seeds)
    if key == "status":
        errors = "; ".join(f"{name}: {error}" for name, error in entry.errors)
        return Cell(entry.status, entry.status, title=errors, css=f"status-{entry.status}")
    if key == "utility_drop":
        if entry.utility_drop is None:
            return Cell("", None, title="no baseline with the same settings")
        return Cell(f"{100 * entry.utility_drop:+.1f}", entry.utility_drop,
                    title="percentage points below the baseline")
    raise KeyError(key)


def _record(suite: SuiteBoard, entry: Entry) -> dict[str, Any]:
    """One download row: raw numbers (fractions, not percent), never formatted strings."""
    record: dict[str, Any] = {
        "suite": suite.name, "rank": entry.rank, "pareto_front": entry.pareto_rank,
        "defense": entry.defense, "label": entry.label, "variant": entry.variant,
        "strength": entry.strength, "architecture": entry.architecture, "seeds": entry.seeds,
        "status": entry.status, "utility_drop": entry.utility_drop,
        "ranking_privacy": entry.privacy,
    }
    for key, stat in entry.target_stats.items():
        record[key] = stat.mean
        record[f"{key}_std"] = stat.std
    for attack, result in entry.attacks.items():
        record[f"{attack}/status"] = result.status
        for key, stat in result.stats.items():
            record[f"{attack}/{key}"] = stat.mean
            record[f"{attack}/{key}_std"] = stat.std
    record["submission"] = entry.submission.name if entry.submission else ""
    record["submission_status"] = ("" if entry.submission is None else
                                   "current" if entry.submission.current else "replaced")
    record["errors"] = "; ".join(f"{name}: {error}" for name, error in entry.errors)
    record["entry_id"] = entry.id
    record["page"] = entry_page(entry)
    return record


def _tradeoff(suite: SuiteBoard) -> Chart | None:
    metric = suite.ranking_metric
    ranked = [e for e in suite.entries if e.privacy is not None and e.utility is not None]
    if metric is None or not ranked:
        return None
    scale = 100 if metric.fmt == "percent" else 1
    arrow = "← less leakage" if metric.better == "lower" else "less leakage →"
    points = [(scale * e.privacy, 100 * e.utility, e.label + (f" [{e.variant}]" if e.variant
                                                              else ""),
               entry_page(e), e.on_front) for e in ranked]  # type: ignore[operator]
    title = f"{metric.title}{unit_note(metric.fmt)}, worst over attacks ({arrow})"
    percent = (0.0, 100.0)
    return tradeoff_chart(points, title, "Test accuracy (%)",
                          percent if metric.fmt == "percent" else None, percent)


def entry_results(entry: Entry, suite: SuiteBoard) -> list[tuple[str, list[tuple[MetricInfo,
                                                                                  Cell]]]]:
    """Sections of an entry page's results: the target's metrics, then each attack's."""
    sections = [("Target model (utility)", [
        (info, stat_cell(entry.target_stats.get(info.key), info))
        for info in suite.target_metrics])]
    for attack, result in entry.attacks.items():
        rows = [(info, stat_cell(result.stats.get(info.key), info))
                for info in suite.attack_metrics[attack]]
        sections.append((f"Attack {attack}: {result.status}", rows))
    return sections


def trial_rows(entry: Entry) -> list[dict[str, Any]]:
    """Per-trial table of an entry page (and its downloads)."""
    rows = []
    for trial in entry.trials():
        row: dict[str, Any] = {
            "stage": trial.stage, "attack": trial.labels.get("attack", ""), "seed": trial.seed,
            "status": trial.status, "error": trial.error or "", "finished_at":
            trial.finished_at or "", "job_key": trial.job_key, "mlflow_run_id": trial.run_id,
        }
        row.update(trial.metrics)
        rows.append(row)
    return rows


def curves(trials: list[TrialRecord]) -> list[tuple[str, Chart]]:
    """One chart per recorded series, one line per seed."""
    names = sorted({name for t in trials for name in t.series})
    charts = []
    for name in names:
        lines = [(f"seed {t.seed}", t.series[name]) for t in trials if name in t.series]
        charts.append((name, line_chart(lines, "logged step", name)))
    return charts


def image_role(path: str) -> str:
    """Classify a figure by its file name: real, reconstruction, embedding, curve or other."""
    name = PurePosixPath(path).name.lower()
    if "real" in name or "private" in name:
        return "real"
    if any(w in name for w in ("recon", "invers", "attack_samples", "samples")):
        return "reconstruction"
    if any(w in name for w in ("embed", "tsne", "t-sne", "umap", "pca", "feature")):
        return "embedding"
    if any(w in name for w in ("curve", "loss", "history", "training")):
        return "curve"
    return "other"


def figures(run_id: str, images: list[Artifact], caption: str) -> list[Figure]:
    """Images worth showing: not too big, and a PNG preferred over an SVG of the same name."""
    stems = {PurePosixPath(a.path).with_suffix("").as_posix() for a in images
             if a.path.lower().endswith(".png")}
    found = []
    for artifact in images:
        if artifact.size is not None and artifact.size > MAX_IMAGE_BYTES:
            continue
        if (not artifact.path.lower().endswith(".png")
                and PurePosixPath(artifact.path).with_suffix("").as_posix() in stems):
            continue
        found.append(Figure(run_id, artifact.path, image_site_path(run_id, artifact.path),
                            f"{caption}: {PurePosixPath(artifact.path).name}",
                            image_role(artifact.path)))
    return found


def entry_figures(entry: Entry, suite: SuiteBoard) -> list[Figure]:
    found = []
    for trial in entry.trials():
        what = trial.labels.get("attack") or "target"
        found += figures(trial.run_id, trial.images, f"{what}, seed {trial.seed}")
    parents = {t.parent_run_id for t in entry.trials()}
    for invocation in suite.invocations:
        if invocation.run_id in parents:
            found += [Figure(f.run_id, f.path, f.site_path, f.caption, "run") for f in
                      figures(invocation.run_id, invocation.images,
                              f"run {invocation.invocation}")]
    return found


def provenance(entry: Entry, suite: SuiteBoard) -> dict[str, Any]:
    """Versions, hardware, dates and config hashes of the trials behind an entry."""
    versions: dict[str, set[str]] = {}
    hardware: dict[str, set[str]] = {}
    for trial in entry.trials():
        for name, value in trial.versions.items():
            versions.setdefault(name, set()).add(str(value))
        for name, value in trial.hardware.items():
            hardware.setdefault(name, set()).add(str(value))
    parents = {t.parent_run_id for t in entry.trials()}
    invocations = [i for i in suite.invocations if i.run_id in parents]
    dates = sorted(t.finished_at for t in entry.trials() if t.finished_at)
    return {
        "versions": {k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
        "hardware": {k: ", ".join(sorted(v)) for k, v in sorted(hardware.items())},
        "invocations": invocations,
        "seeds": [t.seed for t in entry.targets],
        "dates": (dates[0], dates[-1]) if dates else None,
    }


def submission_badge(entry: Entry) -> tuple[str, str]:
    """Badge text and tooltip of an entry submitted with ``lsmia-bench submit``."""
    submission = entry.submission
    assert submission is not None
    who = ", ".join(submission.authors)
    if not submission.current:
        return "replaced", f"An earlier version of submission {submission.name} by {who}."
    note = "" if submission.standard else " Run with non-standard settings: " + ", ".join(
        submission.overrides) + "."
    return "submission", f"Submitted as {submission.name} by {who}.{note}"


# The submit page's view of each record sits with the other views (not in submissions.py, which
# the board imports): it needs the board's entries and the suites' views.
@dataclass
class SubmissionView:
    submission: Submission
    entries: list[Entry]
    suite_slug: str


def submission_views(suites: list[SuiteView], submissions: list[Submission]
                     ) -> list[SubmissionView]:
    """Each record with the entries it submitted (current records first, newest first)."""
    views = []
    for submission in sorted(submissions, key=lambda s: (not s.current, s.name,
                                                         _desc(s.finished_at))):
        entries, slug_ = [], ""
        for view in suites:
            if view.suite.name != submission.suite:
                continue
            slug_ = view.slug
            entries = [e for e in view.suite.entries if e.submission is submission]
        views.append(SubmissionView(submission, entries, slug_))
    return views


def _desc(text: str) -> str:
    """Sort key that puts later ISO timestamps first."""
    return "".join(chr(0x10FFFF - ord(c)) for c in text)
