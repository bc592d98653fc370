"""The pipeline contract: plan jobs from a config, summarise outcomes into a report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pandas as pd

from lsmia_bench.benchmark.config import SuiteConfig

if TYPE_CHECKING:
    from lsmia_bench.benchmark.jobs import Job
    from lsmia_bench.benchmark.runner import Outcome


@dataclass
class Report:
    """What a run shows at its end: a table (also saved as CSV) and figure files."""

    table: pd.DataFrame
    files: list[Path] = field(default_factory=list)
    #: Report column -> short title of each attack's ranking metric (``ppa_acc1`` -> ``PPA
    #: Acc@1``), in order: what the compact terminal summary shows (``benchmark.summary``).
    ranking: dict[str, str] = field(default_factory=dict)
    #: Column -> reason, for metrics not meaningful in this suite (not columns of the table).
    missing: dict[str, str] = field(default_factory=dict)
    #: Confidence level of the table's intervals.
    level: float = 0.95


class Pipeline:
    schema: ClassVar[type[SuiteConfig]] = SuiteConfig

    def check(self, config: SuiteConfig) -> None:
        """Raise UserError for problems the schema cannot see (names, data, plug-ins)."""

    def plan(self, config: SuiteConfig) -> list[Job]:
        raise NotImplementedError

    def report(
        self, config: SuiteConfig, jobs: list[Job], outcomes: dict[str, Outcome], out_dir: Path
    ) -> Report:
        raise NotImplementedError
