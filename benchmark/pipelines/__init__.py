"""Pipelines: how a kind of suite turns its config into jobs and its results into a report.

A suite file names its pipeline (``pipeline: toy``); adding a suite of an existing kind is
adding a YAML file in ``configs/``.
"""

from lsmia_bench.benchmark.pipelines.base import Pipeline, Report
from lsmia_bench.kernel.registry import Registry

PIPELINES: Registry[type[Pipeline]] = Registry(
    "pipeline",
    base=Pipeline,
    builtins={"toy": "lsmia_bench.benchmark.pipelines.toy:ToyPipeline",
              "image": "lsmia_bench.benchmark.pipelines.image:ImagePipeline",
              "faces": "lsmia_bench.benchmark.pipelines.faces:FacesPipeline"},
)

__all__ = ["PIPELINES", "Pipeline", "Report"]
