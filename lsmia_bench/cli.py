"""The ``lsmia-bench`` command line."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from lsmia_bench.kernel.errors import EXIT_USER_ERROR, UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark defenses against model inversion attacks.")
VERBOSE_HELP = "Debug logging, with Ray's and MLflow's own start-up messages."
console = Console()
err_console = Console(stderr=True)
EXIT_INTERRUPTED = 130

from lsmia_bench.leaderboard.cli import leaderboard_app  # noqa: E402

app.add_typer(leaderboard_app, name="leaderboard")

# A string, not a Path: typer turns "" into "." and an empty value must be refused, not
# written into the current folder.
ResultsOpt = Annotated[str, typer.Option("--results", help="Results folder (cache, MLflow "
                                         "store, reports).", envvar="LSMIA_RESULTS")]


def _hide_flag_types() -> None:
    """typer shows ``<bool>`` beside flags (``--resume``, ``-v``, ``--help``), which take no
    value: show no type for them."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):  # noqa: ANN001, ANN202
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_hide_flag_types()


def _show_version(value: bool) -> None:
    if value:
        from lsmia_bench import __version__

        console.print(f"lsmia-bench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Benchmark defenses against model inversion attacks."""


#: Libraries whose start-up chatter (Ray's token notice, MLflow's "Creating tables") is shown
#: only with -v.
CHATTY_LOGGERS = ("ray", "mlflow", "alembic", "urllib3", "filelock")


def _setup_logging(verbose: bool) -> None:
    # One console for log lines and the live progress display (benchmark/progress.py), so
    # rich prints each log line in full above the bars instead of clipping it beside them.
    handler = RichHandler(console=err_console, show_path=False, show_time=False,
                          markup=False, rich_tracebacks=False)
    logger = logging.getLogger("lsmia_bench")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)
    # MLflow and Ray set their loggers' levels again when they are imported (later, lazily).
    os.environ["MLFLOW_LOGGING_LEVEL"] = "DEBUG" if verbose else "ERROR"


@app.command("list")
def list_components() -> None:
    """List suites, defenses and attacks, one line each."""
    from lsmia_bench.attacks import ATTACKS
    from lsmia_bench.benchmark.config import read_suite_file, suite_names
    from lsmia_bench.defenses import DEFENSES

    console.print("[bold]Suites[/bold]")
    for name in suite_names():
        raw, _ = read_suite_file(name, None)
        console.print(f"  {name:<18} {raw.get('description', '')}", markup=False, soft_wrap=True)
    for title, registry in (("Defenses", DEFENSES), ("Attacks", ATTACKS)):
        console.print(f"[bold]{title}[/bold]")
        for name in registry.names():
            try:  # read from the source where it is a literal: no PyTorch import
                summary = registry.summary(name)
                if registry is ATTACKS:
                    summary = f"[{registry.metadata(name, 'threat_model')}] {summary}"
            except UserError as exc:
                summary = f"(broken plug-in: {exc})"
            console.print(f"  {name:<18} {summary}", markup=False, soft_wrap=True)


@app.command()
def run(
    suite: Annotated[str | None, typer.Option("--suite", help="Suite name (see `list`).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A suite YAML file instead of "
                                                "a named suite.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a setting: "
                                                   "key.sub=value (YAML value); repeatable.")
                    ] = None,
    results: ResultsOpt = "results",
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                                                     help="MLflow tracking URI (default: SQLite "
                                                     "file in the results folder).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Join an existing Ray "
                                                "cluster (e.g. auto or ray://host:10001).")
                       ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the last unfinished run of "
                                         "this suite in the results folder.")] = False,
    max_concurrent: Annotated[int | None, typer.Option("--max-concurrent", min=1,
                                                       help="At most this many trials at once."
                                                       )] = None,
    data_home: Annotated[Path | None, typer.Option("--data-home", help="scikit-learn data "
                                                   "home holding the Olivetti faces (sets "
                                                   "data.data_home).")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Folder of the faces "
                                                   "suite's data set (sets data.root).")] = None,
    smoke: Annotated[bool, typer.Option("--smoke", help="Run the suite's smoke version "
                                        "(<suite>-smoke: generated data, tiny models, CPU).")
                     ] = False,
    new_record: Annotated[bool, typer.Option("--new-record", help="Record a new MLflow run "
                                             "and report even when this configuration's last "
                                             "run is complete and nothing would run.")
                          ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Train targets under each defense, attack them, record everything, print the table."""
    _setup_logging(verbose)
    from lsmia_bench.benchmark import preflight
    from lsmia_bench.benchmark.config import apply_overrides, read_suite_file
    from lsmia_bench.benchmark.pipelines import validate_raw_suite
    from lsmia_bench.benchmark.progress import ProgressView
    from lsmia_bench.benchmark.run import RunOptions, run_suite
    from lsmia_bench.benchmark.tracking import EXIT_TRACKING_INCOMPLETE

    started = time.perf_counter()
    results_dir = _check_environment(results, tracking_uri, address)
    raw, source = read_suite_file(smoke_suite(suite, config) if smoke else suite, config)
    raw = apply_overrides(raw, set_ or [])
    for key, path in (("data_home", data_home), ("root", data_root)):
        if path is not None and isinstance(raw.get("data", {}), dict):
            raw.setdefault("data", {})[key] = str(path.expanduser().resolve())
    suite_config = validate_raw_suite(raw, source)
    with preflight.disk_full_guard(results_dir):  # ENOSPC anywhere: one line naming the folder
        summary = run_suite(suite_config, RunOptions(
            results_dir=results_dir, tracking_uri=tracking_uri, address=address, resume=resume,
            max_concurrent=max_concurrent, source=source,
            progress=ProgressView(console=err_console), reuse_finished=not new_record))
    _print_table(summary.report, f"{suite_config.name}: results", summary.report_dir)
    elapsed = time.perf_counter() - started
    counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    console.print(f"Trials: {counts}. Wall time {elapsed:.1f} s.")
    if summary.shown_again:
        shown = summary.invocation
        console.print(f"Nothing to run: every trial is cached and recorded in MLflow under run "
                      f"{shown.parent_run_id} ({shown.id}); this is its report "
                      "(--new-record records the trials again).", markup=False,
                      highlight=False, soft_wrap=True)
    if summary.figures:  # no trial ran (all cached): nothing to be efficient about
        f = summary.figures
        console.print(f"Orchestration efficiency {f['orchestration_efficiency']:.2f} "
                      f"({f['trial_work_s']:.1f} s of trial work in {f['run_wall_s']:.1f} s "
                      f"on {f['parallel_slots']:.0f} slot(s)).", highlight=False)
    console.print(f"Report: {preflight.quote(str(summary.report_dir))}", markup=False,
                  highlight=False, soft_wrap=True)
    full = preflight.disk_full_ending(summary, results_dir)
    if full is not None:
        raise full
    problem = summary.tracking.problem if summary.tracking is not None else None
    if problem is None:
        console.print(f"MLflow: {mlflow_hint(summary.invocation.tracking_uri)}", markup=False,
                      highlight=False, soft_wrap=True)
    if summary.counts.get("failed"):
        if problem:
            err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if problem:  # every trial done, not every record in the store: exit 3 (docs/faults.md)
        err_console.print(problem, markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_TRACKING_INCOMPLETE)


@app.command()
def submit(
    defense: Annotated[str, typer.Argument(help="An installed entry-point name (group "
                                           "lsmia_bench.defenses) or path/to/file.py:ClassName.",
                                           show_default=False)],
    meta: Annotated[Path, typer.Option("--meta", help="Metadata YAML: name, display_name, "
                                       "authors, description, license, paper_url/code_url, "
                                       "hyperparameters.", show_default=False)],
    suite: Annotated[str, typer.Option("--suite", help="Suite to run it on (see `list`).",
                                       show_default=False)],
    replace: Annotated[bool, typer.Option("--replace", help="Replace a recorded submission of "
                                          "the same name (the earlier record is kept in "
                                          "submissions/history/).")] = False,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a suite setting: "
                                                   "key.sub=value; the record marks the run as "
                                                   "non-standard.")] = None,
    results: ResultsOpt = "results",
    tracking_uri: Annotated[str | None, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                                                     help="MLflow tracking URI (default: SQLite "
                                                     "file in the results folder).")] = None,
    address: Annotated[str | None, typer.Option("--address", help="Join an existing Ray "
                                                "cluster.")] = None,
    max_concurrent: Annotated[int | None, typer.Option("--max-concurrent", min=1,
                                                       help="At most this many trials at once "
                                                       "(default: as many as Ray's resources "
                                                       "allow).")] = None,
    data_home: Annotated[Path | None, typer.Option("--data-home", help="scikit-learn data "
                                                   "home (Olivetti faces).")] = None,
    check_timeout: Annotated[float, typer.Option("--check-timeout", min=1, help="Seconds the "
                                                 "plug-in may take to import and train one "
                                                 "batch in the isolated check.")] = 120.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Check a defense and its metadata, run the suite's standard attacks on it, record it."""
    _setup_logging(verbose)
    from lsmia_bench.benchmark.preflight import disk_full_guard, quote
    from lsmia_bench.submission.submit import SubmitOptions
    from lsmia_bench.submission.submit import submit as run_submission

    started = time.perf_counter()
    results_dir = _check_environment(results, tracking_uri, address)
    with disk_full_guard(results_dir):  # ENOSPC anywhere: one line naming the folder
        summary = run_submission(SubmitOptions(
            defense=defense, meta_file=meta, suite=suite, overrides=set_ or [],
            results_dir=results_dir,
            replace=replace, tracking_uri=tracking_uri, address=address,
            max_concurrent=max_concurrent, data_home=data_home, check_timeout_s=check_timeout))
    _print_table(summary.run.report, f"{summary.run.invocation.suite}: submission run",
                 summary.run.report_dir)
    elapsed = time.perf_counter() - started
    if summary.failed:
        err_console.print("Submission not recorded: these trials did not finish:\n  "
                          + "\n  ".join(summary.failed), markup=False, highlight=False)
        raise typer.Exit(1)
    problem = summary.run.tracking.problem if summary.run.tracking is not None else None
    if problem:  # the trials are cached; recording waits for the store (docs/faults.md)
        from lsmia_bench.benchmark.tracking import EXIT_TRACKING_INCOMPLETE

        err_console.print(f"Submission not recorded: {problem}", markup=False,
                          highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_TRACKING_INCOMPLETE)
    console.print(f"Recorded {summary.record_path} (wall time {elapsed:.1f} s).", markup=False,
                  highlight=False, soft_wrap=True)
    if summary.history_path:
        console.print(f"The earlier record is kept as {summary.history_path}.", markup=False,
                      highlight=False, soft_wrap=True)
    console.print(f"Next: lsmia-bench leaderboard build --results {quote(str(results_dir))}",
                  markup=False,
                  highlight=False, soft_wrap=True)


def _check_environment(results: str, tracking_uri: str | None, address: str | None) -> Path:
    """Results folder, tracking URI and Ray address, checked before Ray starts."""
    from lsmia_bench.benchmark import preflight

    folder = preflight.results_folder(results)
    preflight.tracking_uri(tracking_uri)
    preflight.ray_address(address)
    if tracking_uri is None:
        _refuse_copied_store(folder)
    return folder


def _refuse_copied_store(folder: Path) -> None:
    """A copied or moved results folder: its MLflow store still names the original's artifact
    folders (MLflow keeps absolute locations), so a run would write there. Exit 2 and name the
    fix, ``lsmia-bench relocate`` (docs/usage.md, "Moving a results folder")."""
    from lsmia_bench.kernel.records import ResultsLayout

    foreign = ResultsLayout(folder).foreign_artifact_locations()
    if foreign:
        name, location = foreign[0]
        raise UserError(
            "--results", str(folder),
            f"Run `lsmia-bench relocate {folder}` to point its store at its own "
            f"mlartifacts/ (or use the original folder).",
            problem=f"the MLflow store in this folder keeps its artifacts outside it (experiment "
                    f"{name!r} at {location}): the folder was copied or moved, and a run would "
                    f"write into the original")


@app.command()
def relocate(
    results: Annotated[Path, typer.Argument(help="The copied or moved results folder.",
                                            show_default=False)],
) -> None:
    """Point a copied or moved results folder's MLflow store at its own artifacts."""
    from lsmia_bench.kernel.records import ResultsLayout

    layout = ResultsLayout(results)
    if not layout.mlflow_db.is_file():
        raise UserError("results", str(results), "Give a results folder of `lsmia-bench run`.",
                        problem=f"no MLflow store at {layout.mlflow_db}")
    moved = layout.relocate()
    for old, new in moved:
        console.print(f"{old} -> {new}", markup=False, highlight=False, soft_wrap=True)
    left = layout.foreign_artifact_locations()
    if left:
        raise UserError("results", str(results), "Only file locations ending in "
                        "mlartifacts/<suite> can be moved; keep using the store where it is.",
                        problem=f"artifact location {left[0][1]} is not a folder of this kind")
    console.print(f"{layout.root}: every artifact location is inside the folder "
                  f"({len(moved)} moved).", markup=False, highlight=False, soft_wrap=True)


def mlflow_hint(uri: str) -> str:
    """How to look at the runs: a server's own page, or ``mlflow ui`` on a local store."""
    from lsmia_bench.benchmark.preflight import quote

    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {quote(uri)}"


def smoke_suite(suite: str | None, config: Path | None) -> str:
    """The name of a suite's smoke version (``faces`` -> ``faces-smoke``)."""
    from lsmia_bench.benchmark.config import suite_names

    if config is not None or suite is None:
        raise UserError("--smoke", True, "Use --smoke with --suite (e.g. --suite faces "
                        "--smoke), or give the smoke suite's file to --config without it.",
                        problem="--smoke picks a named suite's smoke version")
    name = suite if suite.endswith("-smoke") else f"{suite}-smoke"
    if name not in suite_names():
        smokes = [n for n in suite_names() if n.endswith("-smoke")]
        raise UserError("--smoke", suite, f"Suites with a smoke version: "
                        f"{', '.join(s.removesuffix('-smoke') for s in smokes)}; or run "
                        f"--suite {suite} without --smoke.", problem="no smoke version")
    return name


def _print_table(report, title: str, report_dir: Path) -> None:  # noqa: ANN001
    """The compact summary (``benchmark.summary``): fits 100 columns, table.csv has the rest."""
    from lsmia_bench.benchmark.summary import print_summary

    # Off a terminal (logs, CI) rich would pick 80 columns; the summary is made for 100.
    printer = console if console.is_terminal else Console(width=100)
    print_summary(report, title, printer, report_dir / "table.csv")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: user errors exit 2 with one line, no traceback."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    try:
        # Without standalone mode click returns typer.Exit's code instead of raising it.
        code = app(args=argv, standalone_mode=False)
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl+C into this code
            err_console.print("interrupted; finished trials are kept, continue with --resume")
        if isinstance(code, int) and code:
            return code
    except UserError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_USER_ERROR
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted; finished trials are kept, continue with --resume")
        return EXIT_INTERRUPTED
    except Exception as exc:
        # Usage errors of typer's bundled click (bad option values): exit 2 with click's message.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            return int(exc.exit_code)
        raise
    return 0


#: After Ctrl+C the run's state is saved before ``main`` returns; what remains is the
#: interpreter's shutdown (Ray's and MLflow's exit handlers and threads). It gets this long,
#: so that Ctrl+C always ends the process; a second Ctrl+C ends it at once.
INTERRUPTED_EXIT_GRACE_S = 30.0


def _bound_exit(code: int, grace_s: float) -> None:
    """Leave within ``grace_s`` seconds (``os._exit(code)`` then), or at once on another
    Ctrl+C. Console entry only: in-process callers of ``main`` keep their interpreter."""
    import signal
    import threading

    def force(*_: object) -> None:
        sys.stderr.flush()
        os._exit(code)

    signal.signal(signal.SIGINT, force)
    timer = threading.Timer(grace_s, force)
    timer.daemon = True
    timer.start()


def _exit_now(code: int) -> None:
    """End the process with ``code`` once everything is written, without the interpreter's
    final garbage collection: with torch, Ray and MLflow loaded it takes seconds and keeps
    nothing. Ray's local processes are stopped first (without waiting for each in turn), then
    every exit handler runs as in a normal exit (``atexit._run_exitfuncs``: CPython's own
    runner of them). Console entry only."""
    import atexit
    import logging
    import threading

    for thread in threading.enumerate():  # as a normal exit would, wait for non-daemon threads
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown(wait_for_processes=False)
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def entry() -> None:
    code = main()
    if code == EXIT_INTERRUPTED:
        _bound_exit(code, INTERRUPTED_EXIT_GRACE_S)
        sys.exit(code)
    _exit_now(code)


if __name__ == "__main__":
    entry()
