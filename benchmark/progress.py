"""What the user sees while a suite runs: stage, trial and how far along it is."""

from __future__ import annotations

import logging
import sys

from lsmia_bench.benchmark.jobs import Job
from lsmia_bench.benchmark.runner import Outcome
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

log = logging.getLogger("lsmia_bench")


class ProgressView:
    """A live rich display on a terminal; plain log lines (every 25 %) elsewhere."""

    def __init__(self, console: Console | None = None, live: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.live = sys.stderr.isatty() if live is None else live
        self._progress: Progress | None = None
        self._stage_task: TaskID | None = None
        self._trial_tasks: dict[str, TaskID] = {}
        self._logged_quarter: dict[str, int] = {}
        self._done = 0
        self._total = 0
        self._stage = ""

    def start_stage(self, stage: str, jobs: list[Job]) -> None:
        self._stage, self._done, self._total = stage, 0, len(jobs)
        log.info("stage %s: %d trial(s)", stage, len(jobs))
        if self.live:
            self.stop()
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                                      console=self.console, transient=False)
            self._progress.start()
            self._stage_task = self._progress.add_task(f"[bold]{stage}", total=len(jobs))
            self._trial_tasks = {}

    def trial_progress(self, job: Job, fraction: float) -> None:
        if self._progress is not None:
            task = self._trial_tasks.get(job.key)
            if task is None:
                task = self._progress.add_task(f"  {job.name}", total=1.0)
                self._trial_tasks[job.key] = task
            self._progress.update(task, completed=fraction)
            return
        quarter = int(fraction * 4)
        if quarter > self._logged_quarter.get(job.key, -1) and quarter < 4:
            self._logged_quarter[job.key] = quarter
            log.info("[%s] %s: %d%%", self._stage, job.name, int(fraction * 100))

    def trial_done(self, outcome: Outcome) -> None:
        self._done += 1
        note = f" ({outcome.error})" if outcome.error else ""
        log.info("[%s %d/%d] %s: %s%s", self._stage, self._done, self._total,
                 outcome.job.name, outcome.status, note)
        if self._progress is not None and self._stage_task is not None:
            self._progress.update(self._stage_task, completed=self._done)
            task = self._trial_tasks.pop(outcome.job.key, None)
            if task is not None:
                self._progress.remove_task(task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
