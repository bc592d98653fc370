"""The metric registry: every number lsmia-bench records is declared once, next to its function.

A :class:`MetricSpec` says what a metric is (name, title, explanation, unit, which way is better
for the defender, its one-line formula and how per-sample values combine) and when it means
something (validity rules on the evaluation :class:`Setting`). A :class:`MetricRegistry` holds
the declarations in declaration order; evaluation iterates it (:func:`evaluate`), and the
pipeline reports and the leaderboard read their columns, explanations and ranking from it.

No torch here: metric functions take an evaluation context built by the pipeline (tensors,
models), the kernel only calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

log = logging.getLogger("lsmia_bench")

#: Which way is better FOR THE DEFENDER (None: neither, e.g. a cost or a count).
Direction = Literal["higher", "lower"] | None
#: How the value is displayed: a share in [0, 1] shown in %, a plain number, seconds, a count.
Unit = Literal["percent", "float", "seconds", "count"]
#: ``target``: a utility metric of a trained target; ``attack``: a metric of one attack on it.
Scope = Literal["target", "attack"]


@dataclass(frozen=True)
class Setting:
    """What validity rules look at: the setting one metric is evaluated in (None: not known,
    and a rule that needs it does not object)."""

    attacked_classes: int | None = None
    reconstructions: int | None = None
    #: Private reference samples of the attacked classes (the "real" side of FID and PRDC).
    references: int | None = None
    prdc_k: int | None = None
    face_suite: bool | None = None
    #: Whether a student model for the knowledge extraction score was given.
    student: bool | None = None
    #: Private test images of the attacked classes (what the student is tested on).
    test_images: int | None = None
    #: Dimension of the feature space FID and PRDC are computed in.
    feature_dim: int | None = None


#: A validity rule: None when the metric is meaningful in the setting, else the reason it is not.
Rule = Callable[[Setting], str | None]
#: A caveat on a computed value (still recorded): None, or a note for ``info["flags"]``.
Flag = Callable[[float, Setting], str | None]


class MetricMissing(Exception):  # noqa: N818 - a result, not an error
    """Raised by a metric function: the metric cannot be computed here; ``str()`` says why."""


@dataclass(frozen=True)
class MetricSpec:
    """The declaration of one recorded metric."""

    name: str
    title: str
    explanation: str
    #: The formula in one line (by default the first line of the function's docstring).
    formula: str
    #: How per-reconstruction or per-sample values combine into the recorded number.
    aggregation: str
    scope: Scope
    direction: Direction = None
    unit: Unit = "float"
    #: Hidden in the compact leaderboard table (shown on entry pages and with "all columns").
    detail: bool = False
    #: Position among the leaderboard's ranking privacy metrics (1 = preferred); None: never.
    rank: int | None = None
    #: Suffix of the pipeline report's column (``<attack>_<column>``); None: not in the report.
    column: str | None = None
    #: Pipelines whose evaluation computes it (empty: recorded by the pipeline's tasks).
    pipelines: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    flag: Flag | None = None
    #: The metric function: evaluation context -> value (raises :class:`MetricMissing`).
    compute: Callable[[Any], float] | None = field(default=None, compare=False)

    def invalid_reason(self, setting: Setting) -> str | None:
        """The first validity rule's objection in ``setting``, or None when meaningful."""
        for rule in self.rules:
            reason = rule(setting)
            if reason is not None:
                return reason
        return None


F = TypeVar("F", bound=Callable[..., float])


class MetricRegistry:
    """Metric declarations by name, in declaration order."""

    def __init__(self) -> None:
        self._specs: dict[str, MetricSpec] = {}

    def add(self, spec: MetricSpec) -> MetricSpec:
        if spec.name in self._specs:
            raise ValueError(f"metric {spec.name!r} is already declared")
        self._specs[spec.name] = spec
        return spec

    def metric(self, name: str, title: str, explanation: str, *, aggregation: str,
               scope: Scope = "attack", **fields: Any) -> Callable[[F], F]:
        """Decorator: declare the metric computed by the decorated function (context ->
        value); its formula is the first line of the function's docstring."""

        def declare(function: F) -> F:
            self.add(MetricSpec(name, title, explanation, docstring_formula(function),
                                aggregation, scope, compute=function, **fields))
            return function

        return declare

    def get(self, name: str) -> MetricSpec:
        return self._specs[name]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[MetricSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def names(self, scope: Scope | None = None) -> list[str]:
        return [s.name for s in self if scope is None or s.scope == scope]

    def for_pipeline(self, pipeline: str) -> list[str]:
        """Names of the metrics the pipeline's evaluation computes, in declaration order."""
        return [s.name for s in self if pipeline in s.pipelines]

    def ranking(self) -> list[str]:
        """Ranking candidates, most preferred first."""
        ranked = [s for s in self if s.rank is not None]
        return [s.name for s in sorted(ranked, key=lambda s: s.rank or 0)]

    def columns(self, names: Iterable[str]) -> dict[str, str]:
        """Report column suffix -> metric, for the listed metrics that have a report column."""
        wanted = set(names)
        return {s.column: s.name for s in self if s.name in wanted and s.column}


def docstring_formula(function: Callable[..., Any]) -> str:
    """The first line of a function's docstring: its formula."""
    doc = (function.__doc__ or "").strip()
    if not doc:
        raise ValueError(f"metric function {function.__name__} needs a one-line formula as "
                         "its docstring")
    return doc.splitlines()[0].strip()


@dataclass
class Evaluated:
    """What :func:`evaluate` found: values, and reasons for the metrics it could not give."""

    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)


def evaluate(registry: MetricRegistry, names: Sequence[str], context: Any,
             setting: Setting) -> Evaluated:
    """Each listed metric on ``context``, in registry order: a value, or missing with the reason
    (a validity rule's objection or the function's :class:`MetricMissing`), never both."""
    out = Evaluated()
    wanted = set(names)
    for spec in registry:
        if spec.name not in wanted or spec.compute is None:
            continue
        reason = spec.invalid_reason(setting)
        if reason is None:
            try:
                value = float(spec.compute(context))
            except MetricMissing as missing:
                reason = str(missing)
            else:
                if value != value:  # NaN: not a number to record
                    reason = "the value is undefined (NaN) here"
        if reason is not None:
            out.missing[spec.name] = reason
            log.info("metric %s missing: %s", spec.name, reason)
            continue
        out.values[spec.name] = value
        note = spec.flag(value, setting) if spec.flag else None
        if note is not None:
            out.flags[spec.name] = note
    return out


def known_metrics(registry: MetricRegistry, names: list[str], pipeline: str) -> list[str]:
    """``names`` when the pipeline's evaluation computes each one, else a ValueError naming
    the choices (for a config validator)."""
    known = registry.for_pipeline(pipeline)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; the {pipeline} pipeline "
                         f"computes {', '.join(known)}")
    return names


# --- validity rules ----------------------------------------------------------------------


def top_k_needs_more_classes(k: int) -> Rule:
    """Acc@k needs k < number of attacked classes: otherwise a hit is (nearly) certain."""

    def rule(setting: Setting) -> str | None:
        classes = setting.attacked_classes
        if classes is not None and k >= classes:
            return (f"Acc@{k} needs more than {k} attacked classes, got {classes}: the attacked "
                    "class is then among the top k by construction")
        return None

    return rule


def min_samples_per_side(minimum: Callable[[Setting], int], source: str) -> Rule:
    """A set-vs-set metric (FID, PRDC) needs ``minimum(setting)`` samples on each side."""

    def rule(setting: Setting) -> str | None:
        need = minimum(setting)
        sides = {"reconstructions": setting.reconstructions, "reference images":
                 setting.references}
        few = {side: n for side, n in sides.items() if n is not None and n < need}
        if few:
            got = ", ".join(f"{n} {side}" for side, n in few.items())
            return f"needs at least {need} samples on each side ({source}), got {got}"
        return None

    return rule


def faces_only(setting: Setting) -> str | None:
    if setting.face_suite is False:
        return "not a face suite (FaceNet features only mean something on faces)"
    return None


def needs_student(setting: Setting) -> str | None:
    return "no student model given" if setting.student is False else None


def near_chance(margin: float = 2.0) -> Flag:
    """Flag a test accuracy within ``margin`` binomial standard errors of chance (1 / attacked
    classes; the standard error at chance over the private test images)."""

    def flag(value: float, setting: Setting) -> str | None:
        classes, n = setting.attacked_classes, setting.test_images
        if not classes or not n or classes < 2:
            return None
        chance = 1 / classes
        if value <= chance + margin * (chance * (1 - chance) / n) ** 0.5:
            return (f"near chance ({value:.3f} vs 1/{classes} = {chance:.3f}): the student "
                    "learned little from the reconstructions (few samples or epochs), so a low "
                    "value need not mean little leakage")
        return None

    return flag
