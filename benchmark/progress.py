"""What the user sees while a suite runs: trials done per stage, and how far along each
running trial is (stages overlap: a trial starts when its own inputs exist)."""

from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.runner import Outcome

log = logging.getLogger("lsmia_bench")


class ProgressView:
    """A live rich display on a terminal; plain log lines (every 25 %) elsewhere."""

    def __init__(self, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = sys.stderr.isatty() if live is None else live
        self._progress: Progress | None = None
        self._stage_tasks: dict[str, TaskID] = {}
        self._trial_tasks: dict[str, TaskID] = {}
        self._logged_quarter: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._total: dict[str, int] = {}

    def start(self, jobs: list[Job]) -> None:
        """A run of ``jobs`` begins; one bar per stage counts its trials as they end."""
        self._total = {}
        for job in jobs:
            self._total[job.stage] = self._total.get(job.stage, 0) + 1
        self._done = dict.fromkeys(self._total, 0)
        log.info("%d trial(s): %s", len(jobs),
                 ", ".join(f"{n} {stage}" for stage, n in self._total.items()))
        if self.live:
            self.stop()
            # The ETA comes from the rate at which trials of the stage have finished; the
            # display is transient: the log lines stay, the bars go when the run ends.
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                                      TextColumn("ETA"), TimeRemainingColumn(),
                                      console=self.console, transient=True)
            self._progress.start()
            self._stage_tasks = {stage: self._progress.add_task(f"[bold]{stage}", total=n,
                                                                count=f"0/{n}")
                                 for stage, n in self._total.items()}
            self._trial_tasks = {}

    def trial_progress(self, job: Job, fraction: float) -> None:
        if self._progress is not None:
            task = self._trial_tasks.get(job.key)
            if task is None:
                task = self._progress.add_task(f"  {job.name}", total=1.0, count="")
                self._trial_tasks[job.key] = task
            self._progress.update(task, completed=fraction, count=f"{fraction:.0%}")
            return
        quarter = int(fraction * 4)
        if quarter > self._logged_quarter.get(job.key, -1) and quarter < 4:
            self._logged_quarter[job.key] = quarter
            log.info("[%s] %s: %d%%", job.stage, job.name, int(fraction * 100))

    def trial_done(self, outcome: Outcome) -> None:
        stage = outcome.job.stage
        self._done[stage] = self._done.get(stage, 0) + 1
        note = f" ({outcome.error})" if outcome.error else ""
        log.info("[%s %d/%d] %s: %s%s", stage, self._done[stage],
                 self._total.get(stage, self._done[stage]), outcome.job.name, outcome.status,
                 note)
        if self._progress is not None:
            if stage in self._stage_tasks:
                self._progress.update(self._stage_tasks[stage], completed=self._done[stage],
                                      count=f"{self._done[stage]}/{self._total.get(stage, 0)}")
            task = self._trial_tasks.pop(outcome.job.key, None)
            if task is not None:
                self._progress.remove_task(task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
