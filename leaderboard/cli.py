"""``lsmia-bench leaderboard build|serve``: the static site from the recorded runs."""

from __future__ import annotations

import functools
import http.server
import logging
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.records import ResultsLayout

leaderboard_app = typer.Typer(add_completion=False, no_args_is_help=True,
                              help="Build or preview the static leaderboard site; record and "
                              "verify its entries.")
console = Console()
log = logging.getLogger("lsmia_bench")

ResultsOpt = Annotated[Path, typer.Option("--results", envvar="LSMIA_RESULTS",
                                          help="Results folder of `lsmia-bench run` (its "
                                          "MLflow store and submissions/).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder to write the site to (replaced "
                                      "on each build).")]
EXIT_DISAGREES = 1


def tracking_uri_for(results: Path, tracking_uri: str | None) -> str:
    """The store to read: the given URI, else the SQLite file ``lsmia-bench run`` writes."""
    if tracking_uri:
        return tracking_uri
    layout = ResultsLayout(results)
    if not layout.mlflow_db.is_file():
        raise UserError("--results", str(results), "Run `lsmia-bench run --suite digits` first, "
                        "or point --results or --tracking-uri at a recorded store.",
                        problem=f"no MLflow store at {layout.mlflow_db}")
    return layout.tracking_uri


@leaderboard_app.command("build")
def build(
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI (default: the SQLite file in the results folder).")] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", envvar="LSMIA_RESULTS", help="Results folder of `lsmia-bench run` (its "
        "MLflow store and submissions/). Default: ./results if it holds a store, else the "
        "site is built from the entry records alone.")] = None,
    out: OutOpt = Path("site"),
    repository: Annotated[str | None, typer.Option(
        "--repository", envvar="LSMIA_REPOSITORY",
        help="Repository URL that the Submit page's pull request step links to (default: "
        "the package's [project.urls] Repository).")] = None,
    entries: Annotated[Path | None, typer.Option(
        "--entries", help="Folder of entry records <suite>/<entry>.json (default: the "
        "committed leaderboard/entries/).")] = None,
    no_entries: Annotated[bool, typer.Option(
        "--no-entries", help="Leave the entry records out: only the local runs.")] = False,
    records_only: Annotated[bool, typer.Option(
        "--records-only", help="Only the entry records, no MLflow store (the shared "
        "leaderboard; what `make site` builds).")] = False,
) -> None:
    """Merge the committed entry records with the recorded runs and write the static site
    (index, entry pages, downloads)."""
    from lsmia_bench.leaderboard.build import build_site
    from lsmia_bench.leaderboard.entry_records import committed_folder

    records = None if no_entries else (entries or committed_folder())
    if records_only and no_entries:  # --results and --tracking-uri are ignored (env vars)
        raise UserError("--records-only", True, "Drop --no-entries or --records-only.",
                        problem="builds from the records alone")
    if entries is not None and not entries.is_dir():
        raise UserError("--entries", str(entries), "Give the folder that holds "
                        "<suite>/<entry>.json records.", problem="not a folder")
    if records_only:
        uri, folder = None, None
    elif tracking_uri or results is not None or records is None:
        uri: str | None = tracking_uri_for(results or Path("results"), tracking_uri)
        folder: Path | None = results or Path("results")
    elif ResultsLayout(Path("results")).mlflow_db.is_file():
        uri, folder = ResultsLayout(Path("results")).tracking_uri, Path("results")
    else:
        uri, folder = None, None
        log.info("no results folder here: the site is built from the entry records alone")
    summary = build_site(uri, out, results_dir=folder, repository=repository,
                         entries=records)
    refused = f", {len(summary.refused)} record(s) refused" if summary.refused else ""
    console.print(
        f"Site: {summary.out / 'index.html'} ({summary.suites} suite(s), {summary.entries} "
        f"entries, {summary.pages} pages, {summary.files} files, "
        f"{summary.bytes / 1024:.0f} KiB) built in {summary.seconds:.1f} s from "
        f"{summary.runs_read} runs and {summary.records} entry record(s){refused}.",
        markup=False, highlight=False, soft_wrap=True)
    console.print(f"Open {(summary.out / 'index.html').as_uri()} in a browser, or run "
                  f"`lsmia-bench leaderboard serve --out {out}`.", markup=False,
                  highlight=False, soft_wrap=True)


@leaderboard_app.command("record")
def record(
    suite: Annotated[str | None, typer.Option("--suite", help="Suite name (see `list`).")
                     ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A suite YAML file instead "
                                                "of a named suite.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="The overrides the run was "
                                                   "made with (key.sub=value); repeatable.")
                    ] = None,
    results: ResultsOpt = Path("results"),
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
        help="MLflow tracking URI (default: the SQLite file in the results folder).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder of records to write <suite>/<entry>.json into (default: the "
        "checkout's leaderboard/entries/).")] = None,
) -> None:
    """Write one entry record per finished entry of a suite's run (after `lsmia-bench run`)."""
    from lsmia_bench.leaderboard.build import _describe
    from lsmia_bench.leaderboard.entry_records import committed_folder
    from lsmia_bench.leaderboard.publish import record_suite, suite_config
    from lsmia_bench.leaderboard.records import read_snapshot

    if (suite is None) == (config is None):
        raise UserError("--suite", suite, "Give --suite NAME (or --config FILE) of the run.",
                        problem="one of --suite and --config is needed")
    suite_cfg, source = suite_config(suite, config, set_ or [])
    uri = tracking_uri_for(results, tracking_uri)
    snapshot = read_snapshot(uri, results)
    written = record_suite(snapshot, suite_cfg, source, set_ or [],
                           out or committed_folder(), str(results), _describe(uri), config)
    for path, entry in zip(written.paths, written.records, strict=True):
        console.print(f"{path} ({path.stat().st_size / 1024:.1f} KiB, {entry.label}, "
                      f"{len(entry.seeds)} seed(s))", markup=False, highlight=False,
                      soft_wrap=True)
    for line in written.skipped:
        console.print(f"not recorded: {line}", markup=False, highlight=False, soft_wrap=True)
    code = written.records[0].provenance.code
    if code.dirty or code.commit is None:
        console.print("note: the checkout has uncommitted changes (recorded as dirty); "
                      "canonical records come from a clean checkout.", markup=False,
                      highlight=False, soft_wrap=True)


@leaderboard_app.command("verify")
def verify(
    record_file: Annotated[Path, typer.Argument(help="An entry record (.json).",
                                                show_default=False)],
    seed: Annotated[str | None, typer.Option("--seed", help="The seed to run again "
                                             "(default: the record's first).")] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", help="Results folder for the re-run (default: a temporary folder, "
        "removed afterwards).")] = None,
    mark_verified: Annotated[bool, typer.Option(
        "--mark-verified", help="When it agrees, rewrite a submitted record as "
        "submission-verified (for a reviewer).")] = False,
    max_concurrent: Annotated[int | None, typer.Option("--max-concurrent", min=1,
                                                       help="At most this many trials at "
                                                       "once.")] = None,
) -> None:
    """Run one seed of a record's setting again; exit 0 when test accuracy and the ranking
    metric fall inside the record's intervals, 1 naming what disagrees, 2 for a bad record."""
    from lsmia_bench.leaderboard.entry_records import read_record
    from lsmia_bench.leaderboard.publish import VerifyMismatch, verify_record
    from lsmia_bench.leaderboard.publish import mark_verified as mark

    entry = read_record(record_file, located=False)
    console.print(f"Verifying {entry.label} ({entry.suite}, {entry.status}): one seed of its "
                  "setting, run again.", markup=False, highlight=False, soft_wrap=True)
    try:
        result = verify_record(entry, seed, results, max_concurrent)
    except VerifyMismatch as exc:
        for line in exc.lines:
            console.print(f"DISAGREES {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_DISAGREES) from None
    for check in result.checks:
        console.print(check.line(), markup=False, highlight=False, soft_wrap=True)
    if not result.ok:
        bad = ", ".join(c.what for c in result.disagreements()) or "nothing to compare"
        console.print(f"DISAGREES with {record_file}: {bad} (seed {result.seed}, "
                      f"{result.seconds:.0f} s).", markup=False, highlight=False,
                      soft_wrap=True)
        raise typer.Exit(EXIT_DISAGREES)
    console.print(f"Agrees: seed {result.seed} inside the record's intervals "
                  f"({result.seconds:.0f} s).", markup=False, highlight=False, soft_wrap=True)
    if mark_verified:
        marked = mark(record_file, result, f"lsmia-bench leaderboard verify {record_file}")
        console.print(f"Marked {record_file} as {marked.status}.", markup=False,
                      highlight=False, soft_wrap=True)


@leaderboard_app.command("serve")
def serve(
    out: Annotated[Path, typer.Option("--out", help="Folder of the built site to serve (the "
                                      "--out of `leaderboard build`).")] = Path("site"),
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port on localhost (0 picks a free one).")] = 8000,
) -> None:
    """Preview the built site on http://127.0.0.1:PORT (Ctrl-C stops)."""
    server = make_server(out, port)
    host, bound = server.server_address[:2]
    console.print(f"Serving {Path(out).resolve()} on http://{host}:{bound}/ (Ctrl-C stops).",
                  markup=False, highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def make_server(out: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """A static file server for the site on localhost only."""
    folder = Path(out).resolve()
    if not (folder / "index.html").is_file():
        raise UserError("--out", str(out), "Build the site first: `lsmia-bench leaderboard "
                        "build`.", problem="no index.html in this folder")
    handler = functools.partial(_QuietHandler, directory=os.fspath(folder))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise UserError("--port", port, "Pick another port, e.g. --port 0 for a free one.",
                        problem=str(exc)) from None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("serve: " + format, *args)
