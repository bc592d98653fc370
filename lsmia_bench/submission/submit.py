"""``lsmia-bench submit``: validate a defense and its metadata, run the suite, record the result.

Order (everything that can be refused is refused before anything is written):

1. metadata (``--meta``), suite and ``--set`` overrides, the DEFENSE reference, the name
   (a recorded name needs ``--replace``) -- cheap checks in this process;
2. the plug-in check in a child process with a time limit (:mod:`.check`);
3. the suite's own standard run (:func:`benchmark.run.run_suite`): the suite's training
   settings, seeds and attacks, with its ``defenses`` replaced by the suite's ``none`` baseline
   and the submitted defense (its hyper-parameter settings from the metadata);
4. the record (:mod:`.record`), which ``lsmia-bench leaderboard build`` shows as a ranked
   entry marked as a submission.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsmia_bench.benchmark.config import (
    ComponentSpec,
    SuiteConfig,
    apply_overrides,
    read_suite_file,
)
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.records import ResultsLayout
from lsmia_bench.kernel.registry import is_path_reference
from lsmia_bench.submission.check import check_in_child
from lsmia_bench.submission.meta import SubmissionMeta, read_meta
from lsmia_bench.submission.record import (
    RECORD_FORMAT,
    RECORD_KIND,
    check_name_free,
    existing_records,
    git_info,
    now_iso,
    results_summary,
    trial_dicts,
    write_record,
)

log = logging.getLogger("lsmia_bench")

ENTRY_POINT_GROUP = "lsmia_bench.defenses"
DEFAULT_CHECK_TIMEOUT_S = 120.0


@dataclass
class SubmitOptions:
    defense: str
    meta_file: Path
    suite: str | None
    overrides: list[str] = field(default_factory=list)
    results_dir: Path = Path("results")
    replace: bool = False
    tracking_uri: str | None = None
    address: str | None = None
    max_concurrent: int | None = None
    data_home: Path | None = None
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S


@dataclass
class Prepared:
    meta: SubmissionMeta
    reference: str
    raw: dict[str, Any]
    source: str
    config: SuiteConfig
    standard_hash: str
    settings: list[dict[str, Any]]


@dataclass
class SubmitSummary:
    record: dict[str, Any] | None
    record_path: Path | None
    history_path: Path | None
    run: Any  # benchmark.run.RunSummary
    failed: list[str]
    #: The submitted entries as leaderboard entry records (``submissions/entries/<suite>/``),
    #: the files a pull request adds to ``leaderboard/entries/``.
    entry_paths: list[Path] = field(default_factory=list)


def prepare(options: SubmitOptions) -> Prepared:
    """Step 1: every check that needs neither the plug-in's code nor a run."""
    meta = read_meta(options.meta_file)
    meta_name = Path(options.meta_file).name
    raw, source = read_suite_file(options.suite, None)
    standard = _validated(raw, source)
    for item in options.overrides:
        if item.partition("=")[0].split(".")[0] == "defenses":
            raise UserError("--set", item, "Give the defense as DEFENSE and its settings as "
                            "hyperparameters in the metadata file.",
                            problem="a submission's defenses are not set with --set")
    raw = apply_overrides(raw, options.overrides)
    if options.data_home is not None and isinstance(raw.get("data"), dict):
        raw["data"]["data_home"] = str(Path(options.data_home).expanduser().resolve())
    reference = resolve_reference(options.defense)
    baseline = next((d for d in raw.get("defenses") or [] if isinstance(d, dict)
                     and d.get("name") == "none"), {"name": "none"})
    hyper = meta.hyperparameters
    raw["defenses"] = [baseline, {"name": reference, "params": hyper.params, "grid": hyper.grid}]
    config = _validated(raw, source)
    check_name_free(options.results_dir, meta.name, options.replace, meta_name)
    spec = ComponentSpec(name=reference, params=hyper.params, grid=hyper.grid)
    settings = [{"values": values, "origin": origin} for values, origin in spec.settings()]
    return Prepared(meta, reference, raw, source, config, standard.config_hash(), settings)


def _validated(raw: dict[str, Any], source: str) -> SuiteConfig:
    from lsmia_bench.benchmark.pipelines import validate_raw_suite

    return validate_raw_suite(raw, source)


def resolve_reference(defense: str) -> str:
    """An installed entry point's name, or an existing ``path/to/file.py:ClassName`` made
    absolute; built-in defenses are already on the board and cannot be submitted."""
    from importlib.metadata import entry_points

    from lsmia_bench.defenses import DEFENSES

    if is_path_reference(defense):
        path_text, _, attr = defense.rpartition(":")
        path = Path(path_text).expanduser().resolve()
        if not path.is_file():
            raise UserError("DEFENSE", defense, "Give an existing Python file as "
                            "path/to/file.py:ClassName.",
                            problem=f"file {str(path)!r} does not exist")
        if not attr.isidentifier():
            raise UserError("DEFENSE", defense, "Name the defense class after the colon, e.g. "
                            "my_defense.py:MyDefense.", problem="not a class name after ':'")
        return f"{path}:{attr}"
    if ":" in defense or "/" in defense or not defense:
        raise UserError("DEFENSE", defense, "Give an installed entry-point name (group "
                        f"{ENTRY_POINT_GROUP}) or path/to/file.py:ClassName.",
                        problem="neither an entry-point name nor a .py file reference")
    installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if defense not in installed:
        if defense in DEFENSES.names():
            raise UserError("DEFENSE", defense, "Submit your own defense; the built-in ones are "
                            "on the board already.", problem="a built-in defense")
        raise UserError("DEFENSE", defense, f"Install its package (pip install ...) so that it "
                        f"registers the entry point in group {ENTRY_POINT_GROUP}, or give "
                        "path/to/file.py:ClassName. Installed: "
                        f"{', '.join(sorted(installed)) or 'none'}.",
                        problem="no installed defense of this name")
    return defense


def submit(options: SubmitOptions) -> SubmitSummary:
    """The whole submission; raises UserError (exit 2) before anything is written."""
    from lsmia_bench.benchmark.run import RunOptions, pipeline_for, run_suite
    from lsmia_bench.benchmark.trial import hardware, package_versions

    started_at, clock = now_iso(), time.perf_counter()
    prepared = prepare(options)
    meta_name = Path(options.meta_file).name
    checked = check_in_child(
        {"reference": prepared.reference, "settings": prepared.settings, "raw": prepared.raw,
         "source": prepared.source, "meta_file": meta_name}, options.check_timeout_s)
    defense = checked["defense"]
    if defense["class"].startswith("defenses."):
        raise UserError("DEFENSE", options.defense, "Register your own defense under a name "
                        "that no built-in defense uses.", problem="resolves to the built-in "
                        f"defense {defense['class']}")
    config = prepared.config
    pipeline = pipeline_for(config)
    pipeline.check(config)  # the same checks as `run`; the plug-in passed them in the child
    results = ResultsLayout(options.results_dir).root
    jobs = pipeline.plan(config)
    submitted = submitted_keys(jobs, prepared.reference)
    retire_stale(results, submitted, defense["fingerprint"])
    log.info("submission %s: running suite %s (%d trials)", prepared.meta.name, config.name,
             len(jobs))
    run = run_suite(config, RunOptions(
        results_dir=results, tracking_uri=options.tracking_uri, address=options.address,
        max_concurrent=options.max_concurrent,
        source=f"lsmia-bench submit {prepared.meta.name} ({prepared.source})"))
    failed = [f"{o.job.name}: {o.error or o.status}" for o in run.outcomes.values() if not o.ok]
    failed += [f"{j.name}: not run" for j in jobs if j.key not in run.outcomes]
    if failed:
        return SubmitSummary(None, None, None, run, failed)
    if run.tracking is not None and not run.tracking.complete:
        # Not every trial reached the tracking store: a record now would lack them; the CLI
        # says so (exit 3); submitting again once the store is back records it.
        return SubmitSummary(None, None, None, run, [])
    from lsmia_bench.benchmark.context import resolve_device

    # The records the run logged to MLflow (the same mapping the leaderboard reads back
    # through), so the submission does not read its own run back out of the store.
    invocation, trials = run.record, run.trials
    assert invocation is not None
    targets = {k for k in submitted if any(j.key == k and j.stage == "targets" for j in jobs)}
    record = {
        "format": RECORD_FORMAT, "kind": RECORD_KIND, "name": prepared.meta.name,
        "suite": config.name,
        "metadata": prepared.meta.model_dump(mode="json"),
        "defense": defense,
        "settings": checked["settings"],
        "checks": {"plugin_check_s": checked["seconds"], "one_batch": checked["one_batch"],
                   "time_limit_s": options.check_timeout_s},
        "config": {"source": prepared.source, "hash": config.config_hash(),
                   "standard_hash": prepared.standard_hash,
                   "overrides": list(options.overrides),
                   "standard": not options.overrides,
                   "settings": config.model_dump(mode="json")},
        "seeds": list(config.seeds),
        "run": {"invocation": run.invocation.id, "parent_run_id": invocation.run_id,
                "tracking": _describe_store(run.invocation.tracking_uri),
                "counts": run.counts, "started_ms": invocation.started_ms},
        "submitted_targets": sorted(targets),
        "submitted_keys": sorted(submitted),
        "trials": trial_dicts(trials),
        "results": results_summary(trials, [invocation], targets),
        "versions": package_versions() | _plugin_version(defense),
        "hardware": hardware(resolve_device(config.device)),
        "git": {"lsmia-bench": git_info(Path(__file__).parents[2], Path(__file__).parents[2]),
                "defense": git_info(defense.get("source_file"))},
        "started_at": started_at, "finished_at": now_iso(),
        "wall_time_s": round(time.perf_counter() - clock, 1),
        "replaces": None,
    }
    path, history = write_record(results, prepared.meta.name, record, options.replace,
                                 meta_name)
    entry_paths = _entry_records(options, prepared, config, jobs, run, defense, targets)
    return SubmitSummary(record, path, history, run, [], entry_paths)


def _entry_records(options: SubmitOptions, prepared: Prepared, config: SuiteConfig,
                   jobs: list[Any], run: Any, defense: dict[str, Any], targets: set[str]
                   ) -> list[Path]:
    """The submitted entries in the leaderboard's entry-record format (status
    ``submission-self-reported``), under ``<results>/submissions/entries/<suite>/``."""
    import shlex

    from lsmia_bench.leaderboard.publish import records_from_trials, write_records

    command = " ".join(["lsmia-bench submit", shlex.quote(options.defense), "--meta",
                        shlex.quote(Path(options.meta_file).name), "--suite",
                        shlex.quote(config.name),
                        *(f"--set {shlex.quote(o)}" for o in options.overrides)])
    records, skipped = records_from_trials(
        run.trials, [run.record], config.model_dump(mode="json"), source=prepared.source,
        overrides=list(options.overrides), command=[command],
        planned={j.key for j in jobs}, status="submission-self-reported",
        submission={"name": prepared.meta.name,
                    "metadata": prepared.meta.model_dump(mode="json"), "defense": defense,
                    "standard": not options.overrides},
        only_targets=targets, results=_describe_store(run.invocation.tracking_uri))
    for line in skipped:
        log.warning("entry not written as a record: %s", line)
    paths = write_records(records, ResultsLayout(options.results_dir).submissions / "entries")
    for entry_path in paths:
        log.info("entry record for the shared leaderboard: %s", entry_path)
    return paths


def submitted_keys(jobs: list[Any], reference: str) -> set[str]:
    """Job keys of the submitted defense's targets and of the attacks on them."""
    targets = {j.key for j in jobs if j.stage == "targets"
               and (j.spec.get("defense") or {}).get("name") == reference}
    return targets | {j.key for j in jobs if j.stage == "attacks"
                      and j.needs.get("target") in targets}


def retire_stale(results: Path, keys: set[str], fingerprint: str) -> list[str]:
    """Cached trials of the submitted defense are reused only when an earlier submission made
    them with the same code (fingerprint); others are moved to ``<results>/superseded/`` so
    that the submission trains them afresh (job keys hash the configuration, not the code)."""
    from lsmia_bench.benchmark.cache import ArtifactStore
    from lsmia_bench.benchmark.state import ResultsLock

    trusted = {t.get("job_key") for r in existing_records(results)
               if (r.get("defense") or {}).get("fingerprint") == fingerprint
               for t in r.get("trials") or [] if isinstance(t, dict)}
    moved = []
    layout = ResultsLayout(results)
    with ResultsLock(layout.root):
        store = ArtifactStore(layout.cache)
        for key in sorted(keys):
            if store.has(key) and key not in trusted:
                target = layout.superseded / f"{key}-{int(time.time())}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(store.path(key)), str(target))
                moved.append(key)
    if moved:
        log.info("trained again (cached results not made by this code): %d trial(s); the old "
                 "ones are in %s", len(moved), layout.superseded)
    return moved


def _plugin_version(defense: dict[str, Any]) -> dict[str, str]:
    dist = defense.get("distribution")
    return {dist["name"]: dist["version"]} if dist else {}


def _describe_store(tracking_uri: str) -> str:
    if tracking_uri.startswith("sqlite:"):
        return f"MLflow SQLite store {Path(tracking_uri.split(':///')[-1]).name}"
    return "MLflow tracking server" if "://" in tracking_uri else "MLflow store"
