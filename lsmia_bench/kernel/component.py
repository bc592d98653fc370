"""Hyper-parameterised components (defenses, attacks): pydantic models whose fields are the
hyper-parameters, with the paper's defaults and allowed ranges."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from lsmia_bench.kernel.errors import UserError

#: What an attack may see of the target: its gradients (white-box), its output scores
#: (black-box, soft labels) or only its predicted label (label-only).
ThreatModel = Literal["white-box", "black-box", "label-only"]
#: The threat models in order of the attacker's access, most first (the leaderboard's order).
THREAT_MODELS: tuple[ThreatModel, ...] = get_args(ThreatModel)


class Component(BaseModel):
    """Base of every defense and attack: fields are hyper-parameters, class variables metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Registry name, e.g. ``"label_smoothing"``.
    name: ClassVar[str] = ""
    #: Paper title and link, shown on the leaderboard.
    paper: ClassVar[str] = ""
    paper_url: ClassVar[str] = ""
    #: One line saying what the component does.
    summary: ClassVar[str] = ""
    #: The hyper-parameter that sets the strength (a sweep over it traces a trade-off curve).
    strength: ClassVar[str | None] = None

    @classmethod
    def hyperparameters(cls) -> dict[str, dict[str, Any]]:
        """Name -> default, description and constraints, for docs and the leaderboard."""
        info: dict[str, dict[str, Any]] = {}
        for field_name, field in cls.model_fields.items():
            constraints = [str(m) for m in field.metadata]
            info[field_name] = {
                "default": field.default,
                "description": field.description or "",
                "constraints": ", ".join(constraints),
            }
        return info

    def strength_value(self) -> float | None:
        if self.strength is None:
            return None
        value = getattr(self, self.strength)
        return float(value) if isinstance(value, int | float) else None

    def label(self) -> str:
        """Short display name, e.g. ``label_smoothing(alpha=-0.05)``."""
        if self.strength is None:
            return self.name
        return f"{self.name}({self.strength}={getattr(self, self.strength)})"


def distinct_labels(components: list[Component]) -> list[str]:
    """Each component's :meth:`~Component.label`, extended where two of the same name share
    one (a grid over a knob other than the strength) by the hyper-parameters on which they
    differ, e.g. ``trap_mid(beta=0.2, alpha=0.02)``: a report keyed by label must not merge
    two settings."""
    labels = [c.label() for c in components]
    out = []
    for component, label in zip(components, labels, strict=True):
        twins = [c for c, other in zip(components, labels, strict=True)
                 if other == label and c.name == component.name]
        params = component.model_dump(mode="json")
        differing = [k for k in params if k != component.strength
                     and any(t.model_dump(mode="json").get(k) != params[k] for t in twins)]
        if not differing:
            out.append(label)
            continue
        extra = ", ".join(f"{k}={params[k]}" for k in differing)
        out.append(f"{label[:-1]}, {extra})" if label.endswith(")") else f"{label}({extra})")
    return out


def build_component(cls: type[Component], params: dict[str, Any], field: str) -> Component:
    """Instantiate ``cls(**params)``; a validation problem becomes a UserError naming the field."""
    try:
        return cls(**params)
    except ValidationError as exc:
        raise user_error_from_validation(exc, field) from None
    except TypeError as exc:
        raise UserError(field, params, "Check the hyper-parameters of this component.",
                        problem=str(exc)) from None


def user_error_from_validation(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> UserError:
    """The first pydantic error as a UserError: dotted field path, bad value, what is allowed."""
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    field = ".".join(part for part in (prefix, loc) if part) or "config"
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, first["loc"][:-1])
        fix = f"Remove it or fix its spelling.{allowed}"
        problem = "unknown key"
    elif kind == "missing":
        fix = "Add this field."
        problem = "required field is missing"
    else:
        fix = f"Allowed: {first['msg'].removeprefix('Value error, ')}."
        problem = "invalid value"
    more = f" ({len(errors) - 1} more problem(s) after this one.)" if len(errors) > 1 else ""
    return UserError(field, first.get("input"), fix + more, problem=problem)


def _allowed_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """Walk the schema along ``loc`` to list the keys allowed where an unknown key was found."""
    for part in loc:
        if model is None:
            return ""
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field else None
    if model is None:
        return ""
    if not model.model_fields:
        return " It takes no keys."
    return f" Allowed keys: {', '.join(model.model_fields)}."


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None
