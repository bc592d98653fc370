"""Pipelines: how a kind of suite turns its config into jobs and its results into a report.

A suite file names its pipeline (``pipeline: toy``); adding a suite of an existing kind is
adding a YAML file in ``configs/``.
"""

from benchmark.pipelines.base import Pipeline, Report
from benchmark.registry import Registry

PIPELINES: Registry[type[Pipeline]] = Registry(
    "pipeline",
    base=Pipeline,
    builtins={"toy": "benchmark.pipelines.toy:ToyPipeline",
              "image": "benchmark.pipelines.image:ImagePipeline",
              "faces": "benchmark.pipelines.faces:FacesPipeline"},
)

__all__ = ["PIPELINES", "Pipeline", "Report"]
