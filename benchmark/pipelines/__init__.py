"""Pipelines: how a kind of suite turns its config into jobs and its results into a report.

A suite file names its pipeline (``pipeline: toy``); adding a suite of an existing kind is
adding a YAML file in ``configs/``.
"""

from typing import Any

from lsmia_bench.benchmark.config import SuiteConfig, validate_suite
from lsmia_bench.benchmark.pipelines.base import Pipeline, Report
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.registry import Registry

PIPELINES: Registry[type[Pipeline]] = Registry(
    "pipeline",
    base=Pipeline,
    builtins={"toy": "lsmia_bench.benchmark.pipelines.toy:ToyPipeline",
              "image": "lsmia_bench.benchmark.pipelines.image:ImagePipeline",
              "faces": "lsmia_bench.benchmark.pipelines.faces:FacesPipeline"},
)



def validate_raw_suite(raw: dict[str, Any], source: str) -> SuiteConfig:
    """A suite's raw settings validated by the schema of the pipeline they name."""
    name = raw.get("pipeline")
    if not isinstance(name, str):
        raise UserError(f"{source}: pipeline", name,
                        f"Set pipeline to one of: {', '.join(PIPELINES.names())}.",
                        problem="missing or not a name")
    return validate_suite(raw, source, PIPELINES.get(name, field=f"{source}: pipeline").schema)


__all__ = ["PIPELINES", "Pipeline", "Report", "validate_raw_suite"]
