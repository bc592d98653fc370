"""The progress display: one console for log lines and bars, an ETA per stage, no bars left
behind, full log lines at 100 columns, and library chatter hidden unless -v."""

from __future__ import annotations

import io
import logging

from rich.console import Console
from rich.logging import RichHandler

from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.progress import ProgressView
from lsmia_bench.benchmark.runner import Outcome


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100, color_system=None), out


def test_bars_show_eta_and_leave_full_log_lines(monkeypatch):
    console, out = _console()
    logger = logging.getLogger("lsmia_bench")
    monkeypatch.setattr(logger, "handlers", [RichHandler(console=console, show_path=False,
                                                         show_time=False)])
    monkeypatch.setattr(logger, "level", logging.INFO)
    jobs = [Job("targets", "m:f", f"target resnet label_smoothing(alpha=-0.05) seed={s}", {})
            for s in range(2)]
    view = ProgressView(console=console, live=True)
    view.start(jobs)
    view.trial_progress(jobs[0], 0.5)
    view._progress.refresh()  # noqa: SLF001 - render once as the live display would
    during = out.getvalue()
    assert "ETA" in during and "0/2" in during and "50%" in during
    view.trial_done(Outcome(jobs[0], "finished"))
    view.trial_done(Outcome(jobs[1], "finished"))
    view.stop()
    text = out.getvalue()
    for job in jobs:
        assert f"{job.name}: finished" in " ".join(text.split())


def test_library_chatter_hidden_unless_verbose():
    from lsmia_bench.cli import CHATTY_LOGGERS, _setup_logging

    _setup_logging(verbose=False)
    assert all(logging.getLogger(n).getEffectiveLevel() >= logging.ERROR for n in CHATTY_LOGGERS)
    _setup_logging(verbose=True)
    assert logging.getLogger("mlflow").getEffectiveLevel() == logging.DEBUG
    _setup_logging(verbose=False)
