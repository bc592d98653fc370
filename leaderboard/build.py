"""``lsmia-bench leaderboard build``: MLflow runs -> records -> static site.

:func:`render_site` is a pure function from a :class:`~leaderboard.board.Board` to the site's
files (Jinja2, autoescape on, strict undefined); :func:`build_site` adds the I/O around it:
read the store, fetch the figures, write the folder (replacing an earlier build atomically).
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from lsmia_bench.kernel.errors import UserError
from lsmia_bench.leaderboard.board import Board, make_board
from lsmia_bench.leaderboard.columns import FIXED_COLUMNS, format_value
from lsmia_bench.leaderboard.entry_records import read_folder
from lsmia_bench.leaderboard.ranking import RANKING_RULE
from lsmia_bench.leaderboard.records import Snapshot, fetch_artifact, read_snapshot
from lsmia_bench.leaderboard.views import curves as curve_charts
from lsmia_bench.leaderboard.views import (
    entry_figures,
    entry_page,
    entry_results,
    origin_badge,
    provenance,
    record_path,
    safe_url,
    submission_views,
    suite_view,
    trial_rows,
)

log = logging.getLogger("lsmia_bench")

MARKER = ".lsmia-leaderboard"
STATIC_FILES = ("leaderboard.css", "leaderboard.js", "favicon.svg")


@dataclass
class BuildSummary:
    out: Path
    suites: int
    entries: int
    pages: int
    files: int
    bytes: int
    seconds: float
    runs_read: int
    #: Committed entry records read (and those refused, with why).
    records: int = 0
    refused: list[str] | None = None


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("lsmia_bench.leaderboard", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = format_value
    env.filters["safe_url"] = safe_url
    env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    env.globals["entry_page"] = entry_page
    env.globals["ui_badge"] = origin_badge
    env.globals["record_path"] = record_path
    return env


def repository_url(given: str | None = None) -> str:
    """The repository that pull requests go to: ``given`` (``--repository`` or
    ``LSMIA_REPOSITORY``), else the package's ``[project.urls]`` Repository/Source/Homepage;
    only http(s) links, else ""."""
    if given:
        return safe_url(given)
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("lsmia-bench").get_all("Project-URL") or []
    except PackageNotFoundError:
        return ""
    found = dict(u.split(",", 1) for u in urls if "," in u)
    found = {k.strip().lower(): v.strip() for k, v in found.items()}
    for name in ("repository", "source", "source code", "homepage"):
        if safe_url(found.get(name)):
            return safe_url(found[name])
    return ""


def render_site(board: Board, components: dict[str, dict[str, str]] | None = None,
                built_at: str = "", source: str = "", repository: str = "") -> dict[str, str]:
    """All text files of the site, by path relative to its root."""
    env = environment()
    components = components or {}
    views = [suite_view(suite) for suite in board.suites]
    common = {"built_at": built_at, "source": source, "runs_read": board.runs_read,
              "suites": views, "components": components}
    out: dict[str, str] = {
        "index.html": env.get_template("index.html").render(
            root="", page="index", rule=RANKING_RULE, fixed=FIXED_COLUMNS,
            entries=board.entry_count(), **common),
        "submit.html": env.get_template("submit.html").render(
            root="", page="submit", submissions=submission_views(views, board.submissions),
            repository=safe_url(repository), **common),
    }
    entry_template = env.get_template("entry.html")
    for view in views:
        suite = view.suite
        out[f"data/{view.slug}.csv"] = _csv(view.records)
        out[f"data/{view.slug}.json"] = _json(view.records)
        for entry in suite.entries:
            rows = trial_rows(entry)
            out[f"data/entry-{entry.id}.csv"] = _csv(rows)
            out[f"data/entry-{entry.id}.json"] = _json(rows)
            baseline = next((e for e in suite.entries if e.id == entry.baseline_id), None)
            out[entry_page(entry)] = entry_template.render(
                root="../", page="entry", view=view, suite=suite, entry=entry,
                trials=rows, baseline=baseline, results=entry_results(entry, suite),
                figures=entry_figures(entry, suite),
                curves=curve_charts(entry.targets),
                attack_curves={a: curve_charts(r.trials) for a, r in entry.attacks.items()},
                provenance=provenance(entry, suite), **common)
    all_records = [r for view in views for r in view.records]
    out["data/leaderboard.json"] = _json(all_records)
    out["data/leaderboard.csv"] = _csv(all_records)
    return out


def site_images(board: Board) -> dict[str, tuple[str, str]]:
    """Site path -> (run id, artifact path) of every figure the pages show."""
    wanted: dict[str, tuple[str, str]] = {}
    for suite in board.suites:
        for entry in suite.entries:
            for figure in entry_figures(entry, suite):
                wanted[figure.site_path] = (figure.run_id, figure.path)
    return wanted


def build_site(tracking_uri: str | None, out: Path, results_dir: Path | None = None,
               repository: str | None = None, entries: Path | None = None) -> BuildSummary:
    """The site from the MLflow store at ``tracking_uri`` (None: no store, records only) and
    the entry records under ``entries`` (None: none). A record that fails validation is left
    out with a warning (the test suite validates every committed one)."""
    started = time.perf_counter()
    out = Path(out).resolve()
    _check_out(out)
    snapshot = read_snapshot(tracking_uri, results_dir) if tracking_uri else Snapshot([], [])
    records, refused = read_folder(entries) if entries is not None else ([], [])
    for error in refused:
        log.warning("entry record left out: %s", error)
    snapshot.entries = records
    board = make_board(snapshot)
    if not board.suites:
        log.warning("no lsmia-bench runs in %s and no entry records; the site says so",
                    tracking_uri)
    built_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    source = " and ".join(filter(None, [
        _describe(tracking_uri) if tracking_uri else "",
        f"{len(records)} entry record(s)" if records or not tracking_uri else ""]))
    texts = render_site(board, component_metadata(board), built_at, source,
                        repository_url(repository))
    staging = Path(tempfile.mkdtemp(prefix=".site-", dir=out.parent))
    try:
        for path, text in texts.items():
            _write(staging / path, text.encode("utf-8"))
        static = package_files("lsmia_bench.leaderboard") / "static"
        for name in STATIC_FILES:
            _write(staging / "static" / name, (static / name).read_bytes())
        with tempfile.TemporaryDirectory() as download:
            for site_path, (run_id, path) in site_images(board).items():
                if tracking_uri is None:
                    break
                try:
                    local = fetch_artifact(tracking_uri, run_id, path, Path(download) / run_id)
                except Exception as exc:  # one missing figure must not stop the build
                    log.warning("figure %s of run %s not fetched: %s", path, run_id, exc)
                    continue
                _write(staging / site_path, local.read_bytes())
        (staging / MARKER).write_text(f"built {built_at}\n")
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written = [p for p in out.rglob("*") if p.is_file()]
    return BuildSummary(
        out=out, suites=len(board.suites), entries=board.entry_count(),
        pages=sum(p.suffix == ".html" for p in written), files=len(written),
        bytes=sum(p.stat().st_size for p in written),
        seconds=time.perf_counter() - started, runs_read=board.runs_read,
        records=len(records), refused=[str(e) for e in refused])


def component_metadata(board: Board) -> dict[str, dict[str, str]]:
    """Summary and paper of the built-in defenses and attacks, read from their source files.

    The class variables are read with :mod:`ast`, so building the site imports neither torch
    nor any plug-in code; path and entry-point plug-ins simply get no metadata.
    """
    names = {e.defense for s in board.suites for e in s.entries} | {
        a for s in board.suites for a in s.attacks}
    found: dict[str, dict[str, str]] = {}
    for package in ("lsmia_bench.defenses", "lsmia_bench.attacks"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            continue
        for file in sorted(Path(spec.origin).parent.glob("*.py")):
            for meta in _class_metadata(file):
                if meta.get("name") in names and meta["name"] not in found:
                    found[meta["name"]] = {"summary": meta.get("summary", ""),
                                           "paper": meta.get("paper", ""),
                                           "paper_url": safe_url(meta.get("paper_url"))}
    return found


def _class_metadata(file: Path) -> list[dict[str, str]]:
    """String class variables (name, summary, paper, paper_url) of each class in ``file``."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        values = {}
        for item in node.body:
            target = item.target if isinstance(item, ast.AnnAssign) else (
                item.targets[0] if isinstance(item, ast.Assign) and len(item.targets) == 1
                else None)
            value = getattr(item, "value", None)
            if (isinstance(target, ast.Name) and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and target.id in ("name", "summary", "paper", "paper_url")):
                values[target.id] = value.value
        if values.get("name"):
            found.append(values)
    return found


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                               and not (out / MARKER).exists())):
        raise UserError("--out", str(out), "Choose a new or empty folder, or the folder of an "
                        "earlier leaderboard build.",
                        problem="exists and is not a leaderboard site (refusing to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)


def _replace(staging: Path, out: Path) -> None:
    """Swap the new build in; the old one is removed only once the new one is in place."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    pd.DataFrame.from_records(records).to_csv(buffer, index=False)
    return buffer.getvalue()


def _json(records: list[dict[str, Any]]) -> str:
    clean = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
             for r in records]
    return json.dumps(clean, indent=1, allow_nan=False) + "\n"


def _describe(tracking_uri: str) -> str:
    """The store's kind and file name, without a full local path."""
    if tracking_uri.startswith("sqlite:"):
        return f"MLflow SQLite store {Path(tracking_uri.split(':///')[-1]).name}"
    if "://" in tracking_uri:
        return "MLflow tracking server"
    return "MLflow store"
