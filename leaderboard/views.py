"""What the templates show: table columns and cells, download records, figures, charts.

Pure functions of a :class:`~leaderboard.board.Board`; the templates only lay them out.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from lsmia_bench.attacks import ATTACKS
from lsmia_bench.benchmark.metrics.uncertainty import Difference
from lsmia_bench.kernel.component import THREAT_MODELS
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.records import Artifact, TrialRecord
from lsmia_bench.leaderboard.board import Entry, Stat, SuiteBoard
from lsmia_bench.leaderboard.charts import Chart, TradeoffPoint, line_chart, tradeoff_chart
from lsmia_bench.leaderboard.columns import (
    FIXED_COLUMNS,
    UTILITY_METRIC,
    MetricInfo,
    decimals_for,
    format_number,
    metric_info,
    unit_note,
    unit_suffix,
)
from lsmia_bench.leaderboard.records import MAX_IMAGE_BYTES
from lsmia_bench.leaderboard.submissions import Submission


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
    arrow: str = ""  # ↑ / ↓: which way is better for the defender
    unit: str = ""  # shown in the header: %, pp, s
    info: MetricInfo | None = None
    decimals: int = 1
    sticky: bool = False


@dataclass
class Group:
    title: str
    span: int  # columns in the full table
    compact_span: int  # columns in the compact table (detail columns hidden)
    threat: str = ""  # the threat model of an attack's group ("" for the others)


#: Header of each threat model's span of attack columns.
THREAT_TITLES = {"white-box": "White-box attacks (gradients)",
                 "black-box": "Black-box attacks (scores)",
                 "label-only": "Label-only attacks (predicted label)",
                 "unknown": "Attacks of undeclared threat model"}


def threat_model_of(attack: str) -> str:
    """The attack's declared threat model, read from its registered class; "unknown" for a
    recorded name that is not registered (here), and for a file reference (a record must not
    make the build load a file)."""
    if attack not in ATTACKS.names():
        return "unknown"
    try:
        found = ATTACKS.metadata(attack, "threat_model")
    except UserError:
        return "unknown"
    return found if found in THREAT_MODELS else "unknown"


def threat_order(attacks: list[str]) -> list[str]:
    """Attacks grouped by threat model (most access first), by name within one."""
    rank = {t: i for i, t in enumerate((*THREAT_MODELS, "unknown"))}
    return sorted(attacks, key=lambda a: (rank[threat_model_of(a)], a))


@dataclass
class Cell:
    text: str
    value: float | str | None = None
    title: str = ""
    css: str = ""
    href: str = ""
    badge: str = ""  # a short marker after the text, e.g. "submission"
    badge_title: str = ""
    interval: str = ""  # "[low, high]" under the value
    n: str = ""  # "n = 3 seeds"
    note: str = ""  # e.g. "one seed: attack randomness only"
    verdict: str = ""  # lower / higher / no clear difference


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
    #: The header row above ``groups``: each threat model's consecutive attack groups merged
    #: (empty titles over the other groups); empty when the suite has no attacks.
    threat_groups: list[Group] = field(default_factory=list)


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


def stat_cell(stat: Stat | None, info: MetricInfo, decimals: int | None = None) -> Cell:
    """``mean`` with ``[low, high]`` and n under it; "—" for an interval that does not exist."""
    if stat is None:
        return Cell("", None)
    places = decimals if decimals is not None else decimals_for([stat.mean], info.fmt)
    text = format_number(stat.mean, info.fmt, places)
    title = f"{info.title}: mean over {stat.n} seed(s)"
    if stat.has_interval:
        interval = (f"[{format_number(stat.low, info.fmt, places)}, "
                    f"{format_number(stat.high, info.fmt, places)}]")
        n = f"n = {stat.units} {stat.unit}".strip() if stat.units else ""
        title += f"; {100 * stat.level:.0f} % interval {interval} over {n or 'seeds'}"
    else:
        interval, n = "—", f"n = {stat.n} seed{'s' if stat.n != 1 else ''}"
        title += "; no interval recorded"
    if stat.note:
        title += f" ({stat.note})"
    return Cell(text, stat.mean, title=title, interval=interval, n=n, note=stat.note,
                css="metric")


def difference_cell(difference: Difference | None, note: str, fmt: str, decimals: int,
                    scale_note: str = "") -> Cell:
    """A paired difference: estimate [low, high] with its verdict, or why there is none."""
    if difference is None:
        return Cell(note, None, title=note, css="paired none-yet")
    i = difference.interval
    text = format_number(i.estimate, fmt, decimals)  # type: ignore[arg-type]
    interval = (f"[{format_number(i.low, fmt, decimals)}, "  # type: ignore[arg-type]
                f"{format_number(i.high, fmt, decimals)}]")  # type: ignore[arg-type]
    title = (f"entry minus baseline{scale_note}, paired over {i.n} seeds: {text} {interval} "
             f"({100 * i.level:.0f} % interval): {difference.verdict}")
    return Cell(text, i.estimate, title=title, interval=interval, n=f"n = {i.n} seeds",
                verdict=difference.verdict, css="metric paired")


def suite_view(suite: SuiteBoard) -> SuiteView:
    """The suite table: the entry, utility, then each attack's ranking metric (with its paired
    difference to `none`), then details and the secondary metrics (shown with "all columns")."""
    ranking = suite.ranking_metric
    entries = suite.entries
    columns = [Column("rank", "Rank", FIXED_COLUMNS["rank"], "Entry"),
               Column("defense", "Defense", FIXED_COLUMNS["defense"], "Entry", numeric=False,
                      sticky=True)]
    groups = [Group("Entry", 2, 2)]
    target_infos = {m.key: m for m in suite.target_metrics}

    def metric_column(info: MetricInfo, group: str, attack: str | None, values: list[float],
                      detail: bool) -> Column:
        key = f"{attack}/{info.key}" if attack else info.key
        return Column(key, info.title, info.hint + unit_note(info.fmt), group, detail=detail,
                      attack=attack, metric=info.key, arrow=info.arrow,
                      unit=unit_suffix(info.fmt), info=info,
                      decimals=decimals_for(values, info.fmt))

    def target_values(key: str) -> list[float]:
        return [v for e in entries if key in e.target_stats
                for v in _stat_numbers(e.target_stats[key])]

    def attack_values(attack: str, key: str) -> list[float]:
        return [v for e in entries if key in e.attacks[attack].stats
                for v in _stat_numbers(e.attacks[attack].stats[key])]

    def add(group_title: str, cols: list[Column], threat: str = "") -> None:
        if cols:
            columns.extend(cols)
            groups.append(_group(group_title, cols, threat))

    attacks = threat_order(suite.attacks)

    if UTILITY_METRIC in target_infos:
        info = target_infos[UTILITY_METRIC]
        add("Utility", [metric_column(info, "Utility", None, target_values(UTILITY_METRIC),
                                      False)])
    for attack in attacks:
        cols = []
        if ranking is not None and ranking.key in {m.key for m in suite.attack_metrics[attack]}:
            cols.append(metric_column(ranking, f"Attack: {attack}", attack,
                                      attack_values(attack, ranking.key), False))
            cols.append(Column(f"{attack}/paired", "Δ vs none", FIXED_COLUMNS["paired"],
                               f"Attack: {attack}", attack=attack, metric="paired",
                               arrow=ranking.arrow, unit=unit_suffix(ranking.fmt)
                               .replace("%", "pp"), info=ranking,
                               decimals=decimals_for(attack_values(attack, ranking.key),
                                                     ranking.fmt)))
        elif not any(not m.detail for m in suite.attack_metrics[attack]):
            cols.append(Column(f"{attack}/status", "Status", f"Outcome of attack {attack}.",
                               f"Attack: {attack}", numeric=False, attack=attack,
                               metric="status"))
        add(f"Attack: {attack} (privacy)", cols, threat_model_of(attack))
    details = []
    if UTILITY_METRIC in target_infos:
        details.append(Column("utility_drop", "Utility drop", FIXED_COLUMNS["utility_drop"],
                              "Details", arrow="↓", unit="pp", decimals=1))
    details += [Column("seeds", "Seeds", FIXED_COLUMNS["seeds"], "Details"),
                Column("status", "Status", FIXED_COLUMNS["status"], "Details", numeric=False)]
    if any(e.on_front for e in entries):
        details.append(Column("pareto", "Front", FIXED_COLUMNS["pareto"], "Details"))
    if any(e.strength is not None for e in entries):
        details.append(Column("strength", "Strength", FIXED_COLUMNS["strength"], "Details"))
    if any(e.architecture for e in entries):
        details.append(Column("architecture", "Architecture", FIXED_COLUMNS["architecture"],
                              "Details", numeric=False))
    add("Details", details)
    add("Target model", [metric_column(m, "Target", None, target_values(m.key), m.detail)
                         for m in suite.target_metrics if m.key != UTILITY_METRIC])
    for attack in attacks:
        add(f"Attack: {attack}, more metrics",
            [metric_column(m, f"Attack: {attack}", attack, attack_values(attack, m.key),
                           m.detail)
             for m in suite.attack_metrics[attack] if ranking is None or m.key != ranking.key],
            threat_model_of(attack))
    rows = [(entry, _row(suite, entry, columns)) for entry in entries]
    records = [_record(suite, entry) for entry in entries]
    groups = [g for g in groups if g.span]
    return SuiteView(suite, slug(suite.name), columns, groups, rows, records, _tradeoff(suite),
                     threat_groups=_threat_groups(groups))


def _threat_groups(groups: list[Group]) -> list[Group]:
    """Consecutive groups of one threat model merged under its title; [] without attacks."""
    if not any(g.threat for g in groups):
        return []
    merged: list[Group] = []
    for g in groups:
        if merged and merged[-1].threat == g.threat:
            last = merged[-1]
            merged[-1] = Group(last.title, last.span + g.span,
                               last.compact_span + g.compact_span, g.threat)
        else:
            merged.append(Group(THREAT_TITLES.get(g.threat, ""), g.span, g.compact_span,
                                g.threat))
    return merged


def _stat_numbers(stat: Stat) -> list[float]:
    return [v for v in (stat.mean, stat.low, stat.high) if v is not None]


def _group(title: str, columns: list[Column], threat: str = "") -> Group:
    return Group(title, len(columns), sum(not c.detail for c in columns), threat)


def _row(suite: SuiteBoard, entry: Entry, columns: list[Column]) -> list[Cell]:
    cells = [_cell(suite, entry, column) for column in columns]
    for cell, column in zip(cells, columns, strict=True):
        extra = ["detail" if column.detail else "", "" if column.numeric else "text",
                 "sticky" if column.sticky else ""]
        cell.css = " ".join(c for c in [cell.css, *extra] if c)
    return cells


def _cell(suite: SuiteBoard, entry: Entry, column: Column) -> Cell:
    if column.info is None and column.attack is None:
        cell = _fixed_cell(entry, column.key)
        if column.key == "defense" and not cell.badge and any(e.committed
                                                              for e in suite.entries):
            cell.badge, cell.badge_title = "local", LOCAL_TITLE
        return cell
    if column.attack is None:
        assert column.info is not None
        return stat_cell(entry.target_stats.get(column.key), column.info, column.decimals)
    attack, key = column.attack, column.metric
    result = entry.attacks[attack]
    if key == "status" or result.status in ("failed", "missing"):
        error = "; ".join(t.error or t.status for t in result.trials if not t.ok)
        text = result.status if result.status != "missing" else "not run"
        return Cell(text, text if key == "status" else None, title=error,
                    css=f"status-{result.status}")
    assert column.info is not None
    if key == "paired":
        return difference_cell(result.paired, result.paired_note, column.info.fmt,
                               column.decimals, " (percentage points)"
                               if column.info.fmt == "percent" else "")
    if key not in result.stats and key in result.missing:
        return Cell("missing", None, title=result.missing[key], css="missing",
                    note=result.missing[key])
    return stat_cell(result.stats.get(key), column.info, column.decimals)


def _fixed_cell(entry: Entry, key: str) -> Cell:
    if key == "rank":
        if not entry.rank:
            return Cell("—", None, title=entry.rank_note)
        shared = entry.shared_rank
        return Cell(f"={entry.rank}" if shared else str(entry.rank), entry.rank,
                    title=(f"shares rank {entry.rank}: its interval overlaps that of the "
                           "group's best entry" if shared else f"rank {entry.rank}")
                    + (f"; Pareto front {entry.pareto_rank}" if entry.pareto_rank else ""),
                    css="rank shared" if shared else "rank")
    if key == "pareto":
        return Cell("★" if entry.on_front else "", 1 if entry.on_front else 0,
                    title="on the Pareto front" if entry.on_front else "",
                    css="front-star" if entry.on_front else "")
    if key == "defense":
        text = entry.label + (f" [{entry.variant}]" if entry.variant else "")
        cell = Cell(text, text.lower(), href=entry_page(entry), title=entry.defense)
        if entry.record is not None:
            cell.badge, cell.badge_title = origin_badge(entry)
        elif entry.submission is not None:
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
        cell = Cell(format_number(entry.utility_drop, "percent", 1), entry.utility_drop,
                    title="percentage points below the baseline (positive: the defense costs "
                    "accuracy)", css="metric")
        diff = entry.utility_paired
        if diff is not None:  # drop = -(entry - baseline)
            i = diff.interval
            cell.interval = (f"[{format_number(-i.high, 'percent', 1)}, "
                             f"{format_number(-i.low, 'percent', 1)}]")
            cell.n = f"n = {i.n} seeds"
        elif entry.utility_paired_note:
            cell.note = entry.utility_paired_note
        return cell
    raise KeyError(key)


def _record(suite: SuiteBoard, entry: Entry) -> dict[str, Any]:
    """One download row: raw numbers (fractions, not percent), never formatted strings; each
    metric ``m`` with ``m_ci_low``, ``m_ci_high``, ``m_n`` and the paired differences."""
    privacy = entry.privacy_stat
    record: dict[str, Any] = {
        "suite": suite.name, "rank": entry.rank, "pareto_front": entry.pareto_rank,
        "defense": entry.defense, "rank_shared": entry.shared_rank, "label": entry.label,
        "variant": entry.variant, "strength": entry.strength,
        "architecture": entry.architecture, "seeds": entry.seeds, "status": entry.status,
        "utility_drop": entry.utility_drop, "ranking_metric": (suite.ranking_metric.key if
                                                               suite.ranking_metric else ""),
        "ranking_attack": entry.ranking_attack, "ranking_privacy": entry.privacy,
        "ranking_privacy_ci_low": privacy.low if privacy else None,
        "ranking_privacy_ci_high": privacy.high if privacy else None,
        "confidence_level": suite.settings.level,
    }
    record |= _difference_fields("test_accuracy_vs_none", entry.utility_paired,
                                 entry.utility_paired_note)
    for key, stat in entry.target_stats.items():
        record |= _stat_fields(key, stat)
    for attack, result in entry.attacks.items():
        record[f"{attack}/status"] = result.status
        record[f"{attack}/threat_model"] = threat_model_of(attack)
        for key, stat in result.stats.items():
            record |= _stat_fields(f"{attack}/{key}", stat)
        for key, reason in result.missing.items():
            record[f"{attack}/{key}_missing"] = reason
        if suite.ranking_metric is not None:
            record |= _difference_fields(f"{attack}/{suite.ranking_metric.key}_vs_none",
                                         result.paired, result.paired_note)
    record["origin"] = entry.origin
    record["record"] = record_path(entry)
    if entry.record is not None and entry.record.submission is not None:
        record["submission"] = entry.record.submission.name
    else:
        record["submission"] = entry.submission.name if entry.submission else ""
    record["submission_status"] = ("" if entry.submission is None else
                                   "current" if entry.submission.current else "replaced")
    record["errors"] = "; ".join(f"{name}: {error}" for name, error in entry.errors)
    record["entry_id"] = entry.id
    record["page"] = entry_page(entry)
    return record


def _stat_fields(key: str, stat: Stat) -> dict[str, Any]:
    return {key: stat.mean, f"{key}_ci_low": stat.low, f"{key}_ci_high": stat.high,
            f"{key}_n": stat.units if stat.has_interval else stat.n,
            f"{key}_n_unit": stat.unit if stat.has_interval else "seeds",
            f"{key}_std": stat.std}


def _difference_fields(key: str, difference: Difference | None, note: str) -> dict[str, Any]:
    if difference is None:
        return {key: None, f"{key}_ci_low": None, f"{key}_ci_high": None, f"{key}_n": None,
                f"{key}_verdict": note}
    i = difference.interval
    return {key: i.estimate, f"{key}_ci_low": i.low, f"{key}_ci_high": i.high,
            f"{key}_n": i.n, f"{key}_verdict": difference.verdict}


def _tradeoff(suite: SuiteBoard) -> Chart | None:
    metric = suite.ranking_metric
    ranked = [e for e in suite.entries if e.privacy_stat is not None and e.utility is not None]
    if metric is None or not ranked:
        return None
    percent = metric.fmt == "percent"
    scale = 100 if percent else 1
    arrow = "← less leakage" if metric.better == "lower" else "less leakage →"
    points = []
    for e in ranked:
        privacy, utility = e.privacy_stat.interval(), e.target_stats[  # type: ignore[union-attr]
            UTILITY_METRIC].interval()
        points.append(TradeoffPoint(
            scale * privacy.estimate, scale * privacy.low, scale * privacy.high,
            100 * utility.estimate, 100 * utility.low, 100 * utility.high,
            e.label + (f" [{e.variant}]" if e.variant else ""), entry_page(e), e.on_front,
            baseline=e.defense == "none"))
    title = f"{metric.title}{unit_note(metric.fmt)}, worst over attacks ({arrow})"
    bounds = (0.0, 100.0)
    return tradeoff_chart(points, title, "Test accuracy (%)", bounds if percent else None,
                          bounds, x_min_span=10.0 if percent else None, y_min_span=10.0)


def entry_results(entry: Entry, suite: SuiteBoard) -> list[tuple[str, list[tuple[MetricInfo,
                                                                                  Cell]]]]:
    """Sections of an entry page's results: the target's metrics, then each attack's."""
    sections = [("Target model (utility)", [
        (info, stat_cell(entry.target_stats.get(info.key), info))
        for info in suite.target_metrics])]
    for attack, result in entry.attacks.items():
        rows = [(info, stat_cell(result.stats.get(info.key), info))
                for info in suite.attack_metrics[attack] if info.key in result.stats]
        rows += [(metric_info_of(suite, attack, key), Cell("missing", None, title=reason,
                                                            note=reason))
                 for key, reason in result.missing.items()]
        sections.append((f"Attack {attack} ({threat_model_of(attack)}): {result.status}",
                         rows))
    return sections


def metric_info_of(suite: SuiteBoard, attack: str, key: str) -> MetricInfo:
    return next((m for m in suite.attack_metrics[attack] if m.key == key),
                metric_info(key, "attacks"))


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
    by_run = {i.run_id: i for i in suite.invocations}
    trained = []
    for target in entry.targets:
        run_id, parent = suite.origins.get(target.job_key, (target.run_id,
                                                            target.parent_run_id or ""))
        origin = by_run.get(parent)
        confirmed = by_run.get(target.parent_run_id or "")
        trained.append({
            "seed": target.seed, "run_id": run_id,
            "invocation": origin.invocation if origin else parent or "unknown",
            "confirmed": confirmed.invocation if confirmed and target.status == "cached"
            and confirmed is not origin else ""})
    trained_by = {suite.origins.get(t.job_key, ("", t.parent_run_id or ""))[1]
                  for t in entry.trials()}
    parents = {t.parent_run_id for t in entry.trials()} | trained_by
    invocations = [i for i in suite.invocations if i.run_id in parents]
    dates = sorted(t.finished_at for t in entry.trials() if t.finished_at)
    return {
        "trained": trained, "trained_by": trained_by,
        "versions": {k: ", ".join(sorted(v)) for k, v in sorted(versions.items())},
        "hardware": {k: ", ".join(sorted(v)) for k, v in sorted(hardware.items())},
        "invocations": invocations,
        "seeds": [t.seed for t in entry.targets],
        "dates": (dates[0], dates[-1]) if dates else None,
    }


LOCAL_TITLE = ("Run on the machine that built this site (its MLflow store), not a committed "
               "record: compare with the canonical row of the same setting.")
#: Badge text (also its CSS class) of each record status.
ORIGIN_BADGES = {"canonical": "canonical", "submission-verified": "verified",
                 "submission-self-reported": "self-reported"}


def record_path(entry: Entry) -> str:
    """Where the entry's record lies in the repository ("" for a local entry)."""
    if entry.record is None:
        return ""
    return f"leaderboard/entries/{entry.record.suite}/{entry.record.file_name}"


def origin_badge(entry: Entry) -> tuple[str, str]:
    """Badge text and tooltip of an entry that comes from a committed record."""
    record = entry.record
    assert record is not None
    code = record.provenance.code
    commit = (code.commit or "no git commit")[:12] + (" with uncommitted changes"
                                                      if code.dirty else "")
    if record.status == "canonical":
        title = f"Canonical result, produced by the project's commands at {commit}."
    elif record.status == "submission-verified":
        assert record.verification is not None
        title = (f"Submission {record.submission.name if record.submission else ''}, "
                 f"verified by a reviewer on {record.verification.verified_at[:10]} (seed "
                 f"{record.verification.seed} run again inside the record's intervals).")
    else:
        title = (f"Submission {record.submission.name if record.submission else ''}: numbers "
                 "as reported by the submitter, not yet verified by a reviewer.")
    return ORIGIN_BADGES[record.status], title


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
