"""Suite configuration: YAML files in ``configs/`` validated into typed objects.

Each pipeline (``toy``, ``image``, ``faces``) extends :class:`SuiteConfig` with its own
sections (``ToyConfig``, ``ImageConfig``, ``FacesConfig`` in ``benchmark/pipelines/``); the
``pipeline`` key of a suite file picks the schema.
"""

from __future__ import annotations

import itertools
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lsmia_bench.benchmark.jobs import content_hash
from lsmia_bench.kernel.component import Component, build_component, user_error_from_validation
from lsmia_bench.kernel.errors import UserError
from lsmia_bench.kernel.registry import Registry, is_path_reference


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentSpec(Strict):
    """A defense or attack in a suite: fixed ``params`` and an optional ``grid`` to sweep.

    Every combination of the grid's values (merged over ``params``) is its own trial.
    """

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _absolute_plugin_path(cls, name: str) -> str:
        # Trials run in other working directories (Ray Tune), so a file reference must be absolute.
        if is_path_reference(name):
            path, _, attr = name.rpartition(":")
            return f"{Path(path).expanduser().resolve()}:{attr}"
        return name

    def settings(self) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """Each parameter set with, per key, where it came from (for error messages)."""
        keys = list(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        out = []
        for combo in combos:
            values = dict(self.params) | dict(zip(keys, combo, strict=True))
            origin = {k: "params" for k in self.params} | {k: "grid" for k in keys}
            out.append((values, origin))
        return out


class Resources(Strict):
    """Ray resources for one trial. A fractional GPU is bookkeeping only: trials sharing a
    card must fit in its memory together."""

    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class StageResources(Strict):
    prerequisites: Resources = Field(default_factory=Resources)
    targets: Resources = Field(default_factory=Resources)
    attacks: Resources = Field(default_factory=Resources)


class Uncertainty(Strict):
    """How intervals are computed (docs/metrics.md, "Uncertainty"): percentile bootstrap at
    ``level`` with ``resamples`` resamples (``set_resamples`` for set statistics such as FID and
    PRDC, which are recomputed on every resample), seeded so the same run gives the same
    interval (``benchmark.metrics.uncertainty``)."""

    level: float = Field(0.95, gt=0, lt=1)
    resamples: int = Field(2000, ge=100)
    method: Literal["percentile", "BCa", "basic"] = "percentile"
    seed: int = 0
    set_resamples: int = Field(200, ge=50)


class SuiteConfig(Strict):
    name: str
    description: str = ""
    pipeline: str
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    defenses: list[ComponentSpec] = Field(min_length=1)
    attacks: list[ComponentSpec] = Field(default_factory=list)
    resources: StageResources = Field(default_factory=StageResources)
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("a list of distinct integers")
        return seeds

    def config_hash(self) -> str:
        return content_hash(self.model_dump(mode="json"))


def suite_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in _config_dir().iterdir()
                  if p.name.endswith(".yaml"))


def _config_dir() -> Any:
    return resources.files("lsmia_bench.configs")


def read_suite_file(suite: str | None, config_file: Path | None) -> tuple[dict[str, Any], str]:
    """The raw mapping of a suite (by name, or from ``--config``) and where it came from.

    A suite may start from another: ``include: digits`` (a suite name, or a ``.yaml`` path
    relative to the including file) takes that suite's keys, the file's own keys replace them
    (mappings merged key by key), and ``append: {defenses: [...], attacks: [...]}`` adds entries
    to the included lists, so an extended grid is one short file.
    """
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise UserError("--config", str(path), "Give the path of an existing suite YAML file.",
                            problem="file not found")
        text, source = _read_text(path, "--config"), str(path)
    else:
        _check_suite_name(suite, "--suite")
        text, source = (_config_dir() / f"{suite}.yaml").read_text(), f"configs/{suite}.yaml"
    raw = _parse_mapping(text, source)
    folder = Path(config_file).parent if config_file else None
    return _resolve_include(raw, source, folder, ()), source


def _check_suite_name(suite: str | None, field: str) -> None:
    if suite is None:
        raise UserError(field, None, f"Name a suite: {', '.join(suite_names())}.",
                        problem="no suite given")
    if suite not in suite_names():
        import difflib

        close = difflib.get_close_matches(suite, suite_names(), n=1)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        raise UserError(field, suite, f"{hint}Known suites: {', '.join(suite_names())}.",
                        problem="unknown suite")


def _parse_mapping(text: str, source: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(source, "(YAML text)", "Fix the YAML syntax.",
                        problem=f"not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise UserError(source, type(raw).__name__, "A suite file is a YAML mapping of keys.",
                        problem="not a mapping")
    return raw


def _resolve_include(raw: dict[str, Any], source: str, folder: Path | None,
                     chain: tuple[str, ...]) -> dict[str, Any]:
    include, append = raw.pop("include", None), raw.pop("append", None)
    if include is None:
        if append is not None:
            raise UserError(f"{source}: append", str(append)[:60],
                            "Use append only together with include: <suite>.",
                            problem="nothing to append to")
        return raw
    field = f"{source}: include"
    if not isinstance(include, str):
        raise UserError(field, str(include), "Name one suite, e.g. include: digits.",
                        problem="not a suite name")
    if include.endswith((".yaml", ".yml")):
        path = (folder or Path.cwd()) / include
        if not path.is_file():
            raise UserError(field, include, "Give a suite file path relative to this file.",
                            problem="file not found")
        text, base_source = _read_text(path, field), str(path)
        base_folder: Path | None = path.parent
    else:
        _check_suite_name(include, field)
        base_source = f"configs/{include}.yaml"
        text = (_config_dir() / f"{include}.yaml").read_text()
        base_folder = None
    if base_source in chain or base_source == source:
        raise UserError(field, include, "Remove the include cycle.",
                        problem=f"includes itself via {' -> '.join((*chain, source))}")
    base = _resolve_include(_parse_mapping(text, base_source), base_source, base_folder,
                            (*chain, source))
    merged = _merge(base, raw)
    if append is not None:
        if not isinstance(append, dict):
            raise UserError(f"{source}: append", str(append)[:60],
                            "Write append: {defenses: [...], attacks: [...]}.",
                            problem="not a mapping")
        for key, extra in append.items():
            if not isinstance(extra, list) or not isinstance(merged.get(key, []), list):
                raise UserError(f"{source}: append.{key}", str(extra)[:60],
                                "Append a list of entries to a list section "
                                "(defenses, attacks, metrics).", problem="not a list")
            merged[key] = [*merged.get(key, []), *extra]
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over``'s keys replace ``base``'s; mappings are merged key by key, lists replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_text(path: Path, field: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(field, str(path), "Save the file as UTF-8.",
                        problem="file is not UTF-8 text") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set a.b.0.c=value`` (value parsed as YAML) to a copy of ``raw``."""
    import copy

    data = copy.deepcopy(raw)
    for item in overrides:
        path_text, sep, value_text = item.partition("=")
        if not sep or not path_text:
            raise UserError("--set", item, "Write --set key.subkey=value, e.g. --set seeds=[1,2].",
                            problem="not of the form key=value")
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError:
            raise UserError("--set", item, "Quote the value or fix its YAML syntax.",
                            problem="value is not valid YAML") from None
        parts = path_text.split(".")
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise UserError("--set", item, f"Use an index below {len(node)} for "
                                    f"{'.'.join(parts[:i]) or 'the list'}.",
                                    problem=f"{part!r} is not a valid list index")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise UserError("--set", item, f"{'.'.join(parts[:i])} is a value, not a section.",
                                problem="cannot set a key inside a plain value")
    return data


def validate_suite(raw: dict[str, Any], source: str, schema: type[SuiteConfig]) -> SuiteConfig:
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        error = user_error_from_validation(exc, model=schema)
        error.field = f"{source}: {error.field}"
        raise UserError(error.field, error.value, error.fix, problem=error.problem) from None


def build_components(
    specs: list[ComponentSpec], registry: Registry, section: str, probe: Any = None
) -> list[Component]:
    """Instantiate every setting of every spec, so bad names and values fail before any trial.

    Each defense is also run once on a tiny model (``probe``: the pipeline's own, see
    :func:`benchmark.plugin_check.check_component`), so a broken plug-in fails here.
    """
    from lsmia_bench.benchmark.plugin_check import check_component

    built = []
    for index, spec in enumerate(specs):
        cls = registry.get(spec.name, field=f"{section}[{index}].name")
        for values, origin in spec.settings():
            try:
                built.append(cls(**values))
            except ValidationError as exc:
                loc = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
                where = f"{section}[{index}].{origin.get(loc, 'params')}"
                error = user_error_from_validation(exc, prefix=where, model=cls)
                fix = error.fix
                if error.problem == "unknown key":  # name every spec's keys, by position
                    fix = ("Remove it or fix its spelling. "
                           + _keys_by_position(specs, registry, section))
                raise UserError(error.field, error.value, fix, problem=f"{error.problem} "
                                f"for {registry.kind} {spec.name!r}") from None
            except TypeError:
                built.append(build_component(cls, values, f"{section}[{index}].params"))
            # A plug-in that breaks its interface fails here, before any trial starts.
            check_component(built[-1], f"{section}[{index}].name", spec.name, probe)
    return built


def _keys_by_position(specs: list[ComponentSpec], registry: Registry, section: str) -> str:
    """``0 none (no keys); 1 label_smoothing (alpha, ...)``: what ``--set section.N.grid.KEY``
    may name for each spec of the section."""
    parts = []
    for index, spec in enumerate(specs):
        try:
            keys = ", ".join(registry.get(spec.name).model_fields) or "no keys"
        except UserError:
            keys = "not loadable"
        parts.append(f"{section}.{index} {spec.name} ({keys})")
    return f"Keys by position: {'; '.join(parts)}."
