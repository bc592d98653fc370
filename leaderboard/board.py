"""From trial records to leaderboard entries: a pure function, no I/O.

An *entry* is one target setting (defense x strength x architecture x the rest of the target's
configuration). Its seeds are aggregated into a mean with an interval
(``benchmark.metrics.uncertainty``): with two or more seeds a bootstrap over seeds (the seed is
the outer unit); with one seed the trial's own within-seed interval (``<m>_ci_low``,
``<m>_ci_high``, ``<m>_n`` recorded beside each metric ``m``, so attack or test-set randomness
only); with neither, no interval. Attack results join through the attack trial's
``lsmia.needs.target`` tag. Columns come from the metrics recorded. Each attack's ranking metric
is compared with the `none` entry of the same settings (paired over seeds), and ranks are
shared where the ranking metric's intervals overlap (:func:`uncertainty.rank_groups`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field

from lsmia_bench.benchmark.metrics.uncertainty import (
    BootstrapSettings,
    Difference,
    Interval,
    paired_seed_difference,
    rank_groups,
    seed_interval,
)
from lsmia_bench.kernel.records import InvocationRecord, TrialRecord
from lsmia_bench.leaderboard.columns import (
    RANKING_PRIVACY_METRICS,
    UTILITY_METRIC,
    MetricInfo,
    in_feature_spaces,
    metric_info,
    ordered_metrics,
)
from lsmia_bench.leaderboard.entry_records import EntryRecord
from lsmia_bench.leaderboard.entry_records import entry_id as record_entry_id
from lsmia_bench.leaderboard.ranking import Point, leakage, rank_order
from lsmia_bench.leaderboard.records import Snapshot, latest_per_job
from lsmia_bench.leaderboard.submissions import Submission, merge_trials, parse_all, submission_for

#: Where an architecture may be recorded, first match wins (labels, then spec keys).
ARCHITECTURE_KEYS = ("architecture", "model.architecture", "model.name", "model.arch", "model",
                     "target.architecture", "target.model", "arch")


#: Suffixes of a metric's interval keys: folded into the metric, never columns of their own.
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high", "_n")
ONE_SEED_NOTE = {"attacks": "one seed: attack randomness only",
                 "targets": "one seed: test-set sampling only"}
NEEDS_SEEDS = "needs two or more seeds"
#: Where an entry's numbers come from: a committed record (its status), or this machine's
#: MLflow store ("local").
LOCAL = "local"
ORIGIN_TITLES = {"canonical": "canonical", "submission-verified": "verified submission",
                 "submission-self-reported": "self-reported submission", LOCAL: "local"}


@dataclass
class Stat:
    """A metric of an entry over its seeds: mean, interval and where the interval comes from."""

    mean: float
    std: float | None
    #: Seeds aggregated.
    n: int
    low: float | None = None
    high: float | None = None
    #: Resampling units of the interval (seeds, or the one seed's reconstructions/images).
    units: int | None = None
    unit: str = ""
    level: float = 0.95
    #: Shown beside the interval, e.g. "one seed: attack randomness only".
    note: str = ""
    per_seed: dict[str, float] = field(default_factory=dict)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def interval(self) -> Interval:
        """The interval, or the point itself when none was recorded."""
        low = self.mean if self.low is None else self.low
        high = self.mean if self.high is None else self.high
        return Interval(self.mean, low, high, self.units or self.n, self.unit, self.level)


@dataclass
class AttackResult:
    attack: str
    trials: list[TrialRecord]
    stats: dict[str, Stat] = field(default_factory=dict)
    status: str = "missing"
    #: Metrics recorded missing by the trials, with the reason (trial info ``missing``).
    missing: dict[str, str] = field(default_factory=dict)
    #: Ranking metric minus the `none` baseline's, paired over seeds (None: see the note).
    paired: Difference | None = None
    paired_note: str = ""


@dataclass
class Entry:
    id: str
    suite: str
    defense: str
    label: str
    strength: float | None
    architecture: str
    setting: dict[str, str]
    targets: list[TrialRecord]
    target_stats: dict[str, Stat] = field(default_factory=dict)
    attacks: dict[str, AttackResult] = field(default_factory=dict)
    status: str = "finished"
    errors: list[tuple[str, str]] = field(default_factory=list)
    variant: str = ""
    baseline_id: str | None = None
    utility_drop: float | None = None
    #: Test accuracy minus the baseline's, paired over seeds (None: see the note).
    utility_paired: Difference | None = None
    utility_paired_note: str = ""
    leakage: float | None = None
    privacy: float | None = None
    #: Interval of the ranking metric at the attack that decides (the worst one).
    privacy_stat: Stat | None = None
    ranking_attack: str = ""
    rank: int | None = None
    #: Another entry has the same rank: their ranking-metric intervals overlap.
    shared_rank: bool = False
    pareto_rank: int | None = None
    rank_note: str = ""
    #: The ``lsmia-bench submit`` record that submitted this entry (current or replaced).
    submission: Submission | None = None
    #: ``local`` (this machine's store) or the status of the committed record it comes from.
    origin: str = LOCAL
    #: The committed entry record, for entries that come from one.
    record: EntryRecord | None = None

    @property
    def committed(self) -> bool:
        return self.record is not None

    @property
    def seeds(self) -> int:
        return sum(t.ok for t in self.targets)

    @property
    def on_front(self) -> bool:
        return self.pareto_rank == 1

    @property
    def utility(self) -> float | None:
        stat = self.target_stats.get(UTILITY_METRIC)
        return stat.mean if stat else None

    def trials(self) -> list[TrialRecord]:
        found = list(self.targets)
        for result in self.attacks.values():
            found.extend(result.trials)
        return found


@dataclass
class SuiteBoard:
    name: str
    description: str
    entries: list[Entry]
    target_metrics: list[MetricInfo]
    attacks: list[str]
    attack_metrics: dict[str, list[MetricInfo]]
    ranking_metric: MetricInfo | None
    invocations: list[InvocationRecord]
    prerequisites: list[TrialRecord]
    notes: list[str] = field(default_factory=list)
    settings: BootstrapSettings = field(default_factory=BootstrapSettings)
    #: Job key -> (MLflow run id, parent run id) of the trial that ran it (not a cached re-run).
    origins: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def latest_invocation(self) -> InvocationRecord | None:
        return max(self.invocations, key=lambda i: i.started_ms, default=None)


@dataclass
class Board:
    suites: list[SuiteBoard]
    submissions: list[Submission]
    runs_read: int

    def entry_count(self) -> int:
        return sum(len(s.entries) for s in self.suites)


def make_board(snapshot: Snapshot) -> Board:
    submissions = parse_all(snapshot.submissions, snapshot.submission_history)
    trials, invocations = merge_trials(snapshot.trials, snapshot.invocations, submissions)
    trials = latest_per_job(trials)
    suites = sorted({t.suite for t in trials} | {i.suite for i in invocations}
                    | {r.suite for r in snapshot.entries})
    boards = [make_suite(name, [t for t in trials if t.suite == name],
                         [i for i in invocations if i.suite == name], submissions,
                         bootstrap_settings(snapshot.uncertainty.get(name, {})),
                         [r for r in snapshot.entries if r.suite == name])
              for name in suites]
    for board in boards:
        board.origins = {key: origin for (suite, key), origin in snapshot.origins.items()
                         if suite == board.name}
    return Board(boards, submissions, snapshot.runs_read)


def bootstrap_settings(params: Mapping[str, str]) -> BootstrapSettings:
    """The invocation's recorded ``uncertainty.*`` settings (defaults where absent or bad)."""
    default = BootstrapSettings()
    method = params.get("uncertainty.method", default.method)
    try:
        return BootstrapSettings(
            level=float(params.get("uncertainty.level", default.level)),
            resamples=int(params.get("uncertainty.resamples", default.resamples)),
            method=method if method in ("percentile", "BCa", "basic") else default.method,
            seed=int(params.get("uncertainty.seed", default.seed)))
    except ValueError:
        return default


def make_suite(name: str, trials: list[TrialRecord], invocations: list[InvocationRecord],
               submissions: list[Submission] | None = None,
               settings: BootstrapSettings | None = None,
               records: list[EntryRecord] | None = None) -> SuiteBoard:
    """The suite's entries: those of the local trials, and one per committed record (its
    seeds aggregated with the record's own bootstrap settings). A local entry with the setting
    of a record is shown beside it with the id suffix ``-local``, never merged into it."""
    settings = settings or BootstrapSettings()
    targets = [t for t in trials if t.stage == "targets"]
    attacks_by_target: dict[str, list[TrialRecord]] = {}
    for trial in trials:
        if trial.stage == "attacks" and "target" in trial.needs:
            attacks_by_target.setdefault(trial.needs["target"], []).append(trial)
    groups: dict[str, list[TrialRecord]] = {}
    for target in targets:
        groups.setdefault(entry_id(name, setting_of(target)), []).append(target)
    entries = [_entry(eid, name, members, attacks_by_target, settings)
               for eid, members in groups.items()]
    for entry in entries:
        entry.submission = submission_for(name, {t.job_key for t in entry.targets},
                                          submissions or [])
        if entry.submission is not None:
            entry.label = entry.submission.entry_label(entry.label)
    committed = [record_entry(r) for r in sorted(records or [], key=_record_order)]
    taken = {e.id for e in committed}
    for entry in entries:
        if entry.id in taken:
            entry.id = f"{entry.id}-{LOCAL}"
    for entry in committed:
        if entry.id in {e.id for e in entries}:  # two records of one setting
            entry.id = f"{entry.id}-{entry.origin}"
        entries.append(entry)
    attack_names = sorted({a for e in entries for a in e.attacks})
    for entry in entries:
        for attack in attack_names:
            entry.attacks.setdefault(attack, AttackResult(attack, []))
        entry.attacks = dict(sorted(entry.attacks.items()))
        entry.status = _status(entry)
    _mark_variants(entries)
    _utility_drops(entries)
    target_keys = {k for e in entries for t in e.targets if t.ok for k in metric_keys(t.metrics)}
    attack_metrics = {
        a: [in_feature_spaces(metric_info(k, "attacks"), feature_spaces(
                [t for e in entries for t in e.attacks[a].trials if t.ok]))
            for k in ordered_metrics(
                {k for e in entries for t in e.attacks[a].trials if t.ok
                 for k in metric_keys(t.metrics)}, "attacks")]
        for a in attack_names}
    ranking = _ranking_metric(attack_metrics)
    _paired_with_baseline(entries, ranking, settings)
    notes = _rank(entries, ranking, attack_names)
    latest = max(invocations, key=lambda i: i.started_ms, default=None)
    description = latest.description if latest else next(
        (str(r.config.settings.get("description") or "") for r in records or []), "")
    return SuiteBoard(
        name=name, description=description, entries=entries,
        target_metrics=[metric_info(k, "targets") for k in ordered_metrics(target_keys,
                                                                           "targets")],
        attacks=attack_names, attack_metrics=attack_metrics, ranking_metric=ranking,
        invocations=sorted(invocations, key=lambda i: i.started_ms),
        prerequisites=[t for t in trials if t.stage == "prerequisites"], notes=notes,
        settings=settings)


def record_entry(record: EntryRecord) -> Entry:
    """The entry of a committed record: its own trials, its own bootstrap settings."""
    b = record.summary.bootstrap
    settings = BootstrapSettings(level=b.level, resamples=b.resamples, method=b.method,
                                 seed=b.seed)
    trials = record.trials()
    targets = [t for t in trials if t.stage == "targets"]
    attacks: dict[str, list[TrialRecord]] = {}
    for trial in trials:
        if trial.stage == "attacks":
            attacks.setdefault(trial.needs["target"], []).append(trial)
    entry = _entry(record.entry_id, record.suite, targets, attacks, settings)
    entry.origin, entry.record = record.status, record
    entry.label = record.label
    return entry


def _record_order(record: EntryRecord) -> tuple[int, str]:
    return (("canonical", "submission-verified", "submission-self-reported").index(
        record.status), record.entry)


def setting_of(target: TrialRecord) -> dict[str, str]:
    """The target's configuration without its seed: what seeds of one entry share. The
    interval settings (``uncertainty.*``, with their own bootstrap seed) describe how numbers
    are summarised, not the target, so they do not split an entry either."""
    seed = target.labels.get("seed")
    return {k: v for k, v in sorted(target.spec.items())
            if not (k == "seed" or k.startswith("uncertainty.")
                    or (k.endswith(".seed") and v == seed))}


def entry_id(suite: str, setting: dict[str, str]) -> str:
    return record_entry_id(suite, setting)


def architecture_of(target: TrialRecord) -> str:
    for key in ARCHITECTURE_KEYS:
        value = target.labels.get(key) or target.spec.get(key)
        if value and not value.startswith(("{", "[")):
            return value
    return ""


def aggregate(values: list[float]) -> Stat:
    """Mean, sample standard deviation (None for one value) and count."""
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


def metric_keys(metrics: Mapping[str, float]) -> set[str]:
    """The metrics of a trial: ``m_ci_low``, ``m_ci_high`` and ``m_n`` belong to ``m``."""
    return {k for k in metrics if not any(k.endswith(s) and k.removesuffix(s) in metrics
                                          for s in INTERVAL_SUFFIXES)}


def aggregate_metric(trials: list[TrialRecord], key: str, settings: BootstrapSettings,
                     stage: str = "attacks") -> Stat:
    """One metric over the finished trials (one per seed) of an entry, with its interval."""
    done = [t for t in trials if t.ok and key in t.metrics]
    stat = aggregate([t.metrics[key] for t in done])
    stat.level = settings.level
    stat.per_seed = {t.seed: t.metrics[key] for t in done}
    if len(done) >= 2:
        interval = seed_interval([t.metrics[key] for t in done], settings)
        stat.low, stat.high, stat.units, stat.unit = (interval.low, interval.high, interval.n,
                                                      "seeds")
    elif len(done) == 1:
        trial = done[0]
        low, high = trial.metrics.get(f"{key}_ci_low"), trial.metrics.get(f"{key}_ci_high")
        if low is not None and high is not None:
            units = trial.metrics.get(f"{key}_n")
            stat.low, stat.high = low, high
            stat.units = int(units) if units is not None else None
            stat.unit = trial.info.get(f"interval_units.{key}", "")
            stat.note = ONE_SEED_NOTE.get(stage, ONE_SEED_NOTE["attacks"])
    return stat


def aggregate_metrics(trials: list[TrialRecord], settings: BootstrapSettings | None = None,
                      stage: str = "attacks") -> dict[str, Stat]:
    settings = settings or BootstrapSettings()
    keys = sorted({k for t in trials if t.ok for k in metric_keys(t.metrics)})
    return {k: aggregate_metric(trials, k, settings, stage) for k in keys}


def feature_spaces(trials: list[TrialRecord]) -> set[str]:
    """The FID/PRDC feature spaces the trials recorded (``info.feature_space``)."""
    return {t.info["feature_space"] for t in trials if t.info.get("feature_space")}


def missing_reasons(trials: list[TrialRecord]) -> dict[str, str]:
    """Metric -> why it is missing, from the trials' info ``missing`` (flattened)."""
    found: dict[str, str] = {}
    for trial in trials:
        for key, reason in trial.info.items():
            if key.startswith("missing.") and reason:
                found.setdefault(key.removeprefix("missing."), reason)
    return found


def paired(entry: Mapping[str, float], baseline: Mapping[str, float],
           settings: BootstrapSettings) -> tuple[Difference | None, str]:
    """entry - baseline over the seeds both have, or why there is no such difference."""
    common = set(entry) & set(baseline)
    if len(common) < 2:
        return None, NEEDS_SEEDS + (f" (common seeds: {len(common)})" if common else
                                    " (no common seed)")
    return paired_seed_difference({s: entry[s] for s in common},
                                  {s: baseline[s] for s in common}, settings), ""


def _entry(eid: str, suite: str, targets: list[TrialRecord],
           attacks_by_target: dict[str, list[TrialRecord]],
           settings: BootstrapSettings | None = None) -> Entry:
    settings = settings or BootstrapSettings()
    targets = sorted(targets, key=lambda t: (_seed_order(t.seed), t.started_ms))
    first = targets[0]
    entry = Entry(
        id=eid, suite=suite, defense=first.labels.get("defense", first.spec.get("defense.name",
                                                                                 "")),
        label=first.labels.get("defense_label") or first.labels.get("defense") or first.name,
        strength=_number(first.labels.get("strength")), architecture=architecture_of(first),
        setting=setting_of(first), targets=targets,
        target_stats=aggregate_metrics(targets, settings, "targets"))
    per_attack: dict[str, list[TrialRecord]] = {}
    for target in targets:
        by_name: dict[str, TrialRecord] = {}
        for trial in attacks_by_target.get(target.job_key, []):
            name = trial.labels.get("attack") or trial.spec.get("attack.name") or trial.name
            current = by_name.get(name)
            # Several settings of one attack on one target: the latest success speaks for it.
            if current is None or (trial.ok, trial.started_ms) > (current.ok, current.started_ms):
                by_name[name] = trial
        for name, trial in by_name.items():
            per_attack.setdefault(name, []).append(trial)
    for name, trials in per_attack.items():
        ok = sum(t.ok for t in trials)
        status = "finished" if ok == len(targets) else "failed" if ok == 0 else "partial"
        entry.attacks[name] = AttackResult(name, trials, aggregate_metrics(trials, settings),
                                           status, missing_reasons(trials))
    entry.errors = [(t.name or t.job_key, t.error or t.status) for t in entry.trials()
                    if not t.ok]
    return entry


def _status(entry: Entry) -> str:
    if entry.seeds == 0:
        return "failed"
    if all(t.ok for t in entry.targets) and all(r.status == "finished"
                                                for r in entry.attacks.values()):
        return "finished"
    return "partial"


def _mark_variants(entries: list[Entry]) -> None:
    """Entries that share a label but differ in other settings name their differences."""
    by_label: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        by_label.setdefault((entry.label, entry.architecture), []).append(entry)
    for group in by_label.values():
        if len(group) < 2:
            continue
        keys = sorted({k for e in group for k in e.setting})
        differing = [k for k in keys if len({e.setting.get(k) for e in group}) > 1]
        for entry in group:
            parts = [f"{k}={entry.setting.get(k, '—')}" for k in differing[:3]]
            entry.variant = ", ".join(parts) + (" …" if len(differing) > 3 else "")


def _baseline_key(entry: Entry) -> str:
    """Entries compared with one baseline: same settings but the defense, and from the same
    side (committed records with committed records, local results with local ones)."""
    rest = {k: v for k, v in entry.setting.items() if not k.startswith("defense")}
    return json.dumps([entry.committed, rest], sort_keys=True)


def _utility_drops(entries: list[Entry]) -> None:
    """Baseline: `none` with the same other settings, else the same defense at strength 0."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(_baseline_key(entry), []).append(entry)
    for group in groups.values():
        for entry in group:
            base = next((e for e in group if e.defense == "none" and e.utility is not None),
                        None)
            base = base or next((e for e in group if e.defense == entry.defense
                                 and e.strength == 0 and e.utility is not None), None)
            if base is not None and entry.utility is not None:
                entry.baseline_id = base.id
                entry.utility_drop = base.utility - entry.utility  # type: ignore[operator]


def _baselines(entries: list[Entry]) -> dict[str, Entry]:
    """Entry id -> the `none` entry with the same settings (not the entry itself)."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(_baseline_key(entry), []).append(entry)
    found = {}
    for group in groups.values():
        base = next((e for e in group if e.defense == "none" and e.seeds), None)
        for entry in group:
            if base is not None and entry is not base:
                found[entry.id] = base
    return found


def _paired_with_baseline(entries: list[Entry], metric: MetricInfo | None,
                          settings: BootstrapSettings) -> None:
    """Each attack's ranking metric and the test accuracy against `none`, paired by seed."""
    baselines = _baselines(entries)
    for entry in entries:
        base = baselines.get(entry.id)
        if base is None:
            note = "this is the baseline" if entry.defense == "none" else "no `none` baseline"
            entry.utility_paired_note = note
            for result in entry.attacks.values():
                result.paired_note = note
            continue
        mine, theirs = entry.target_stats.get(UTILITY_METRIC), base.target_stats.get(
            UTILITY_METRIC)
        if mine and theirs:
            entry.utility_paired, entry.utility_paired_note = paired(
                mine.per_seed, theirs.per_seed, settings)
        for name, result in entry.attacks.items():
            other = base.attacks.get(name)
            if metric is None or other is None or metric.key not in result.stats \
                    or metric.key not in other.stats:
                result.paired_note = "not recorded for both"
                continue
            result.paired, result.paired_note = paired(
                result.stats[metric.key].per_seed, other.stats[metric.key].per_seed, settings)


def _ranking_metric(attack_metrics: dict[str, list[MetricInfo]]) -> MetricInfo | None:
    recorded = {m.key: m for metrics in attack_metrics.values() for m in metrics}
    for key in RANKING_PRIVACY_METRICS:
        if key in recorded:
            return recorded[key]
    return None


def _rank(entries: list[Entry], metric: MetricInfo | None, attacks: list[str]) -> list[str]:
    """Set rank (shared where intervals overlap), Pareto front and privacy; sort ``entries``."""
    notes = []
    if metric is None:
        notes.append("No attack metric that the ranking can use is recorded for this suite "
                     "yet, so entries are not ranked and there is no trade-off plot.")
    points, intervals = [], {}
    for entry in entries:
        scored = {a: entry.attacks[a].stats[metric.key] for a in attacks
                  if metric and metric.key in entry.attacks[a].stats}
        if entry.submission is not None and not entry.submission.current:
            entry.rank_note = (f"replaced by a later version of submission "
                               f"{entry.submission.name}")
        elif metric is None:
            entry.rank_note = "no privacy metric recorded"
        elif entry.utility is None:
            entry.rank_note = "no test accuracy recorded"
        elif len(scored) < len(attacks):
            missing = [a for a in attacks if a not in scored]
            reasons = [f"{a}: {entry.attacks[a].missing[metric.key]}" for a in missing
                       if metric.key in entry.attacks[a].missing]
            entry.rank_note = f"no {metric.title} for attack(s) {', '.join(missing)}" + (
                f" ({'; '.join(reasons)})" if reasons else "")
        else:
            worst = max(scored, key=lambda a: (leakage(scored[a].mean, metric.better), a))
            entry.ranking_attack, entry.privacy_stat = worst, scored[worst]
            entry.privacy = scored[worst].mean
            entry.leakage = leakage(entry.privacy, metric.better)
            intervals[entry.id] = scored[worst].interval()
            points.append(Point(entry.id, entry.utility, entry.leakage, entry.label))
    by_id = {e.id: e for e in entries}
    for point, front in rank_order(points):
        by_id[point.key].pareto_rank = front
    if metric is not None and intervals:
        better = "higher" if metric.better == "higher" else "lower"
        ranks = rank_groups(intervals, better)
        for key, rank in ranks.items():
            by_id[key].rank = rank
            by_id[key].shared_rank = list(ranks.values()).count(rank) > 1
    entries.sort(key=lambda e: (e.rank is None, e.rank or 0, e.pareto_rank or 0,
                                e.leakage if e.leakage is not None else 0.0,
                                -(e.utility or 0.0), e.status == "failed", e.label, e.variant,
                                e.id))
    return notes


def _seed_order(seed: str) -> tuple[int, float | str]:
    number = _number(seed)
    return (0, number) if number is not None else (1, seed)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None
