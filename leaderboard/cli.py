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
                              help="Build or preview the static leaderboard site.")
console = Console()
log = logging.getLogger("lsmia_bench")

ResultsOpt = Annotated[Path, typer.Option("--results", envvar="LSMIA_RESULTS",
                                          help="Results folder of `lsmia-bench run` (its "
                                          "MLflow store and submissions/).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder to write the site to (replaced "
                                      "on each build).")]


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
    results: ResultsOpt = Path("results"),
    out: OutOpt = Path("site"),
    repository: Annotated[str | None, typer.Option(
        "--repository", envvar="LSMIA_REPOSITORY",
        help="Repository URL that the Submit page's pull request step links to (default: "
        "the package's [project.urls] Repository).")] = None,
) -> None:
    """Read every recorded run and write the static site (index, entry pages, downloads)."""
    from lsmia_bench.leaderboard.build import build_site

    uri = tracking_uri_for(results, tracking_uri)
    summary = build_site(uri, out, results_dir=results, repository=repository)
    console.print(
        f"Site: {summary.out / 'index.html'} ({summary.suites} suite(s), {summary.entries} "
        f"entries, {summary.pages} pages, {summary.files} files, "
        f"{summary.bytes / 1024:.0f} KiB) built in {summary.seconds:.1f} s from "
        f"{summary.runs_read} runs.", markup=False, highlight=False, soft_wrap=True)
    console.print(f"Open {(summary.out / 'index.html').as_uri()} in a browser, or run "
                  f"`lsmia-bench leaderboard serve --out {out}`.", markup=False,
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
