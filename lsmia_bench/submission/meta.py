"""The metadata of a submitted defense (``--meta META.yaml``), validated before anything runs.

Every text field is plain text: HTML markup is refused here (and everything is escaped on the
site anyway); links must be http(s); the license is an SPDX identifier or expression; the
hyper-parameters are fixed ``params`` and an optional ``grid``, exactly like a suite's
``defenses`` entry, and are checked against the defense's own schema later (in the plug-in
check), because only the defense knows its ranges.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lsmia_bench.kernel.component import user_error_from_validation
from lsmia_bench.kernel.errors import UserError

#: A submission's name: file name of its record and its identity on the board.
SLUG = re.compile(r"^[a-z][a-z0-9_-]{1,47}$")
#: An SPDX license identifier or expression, e.g. ``MIT``, ``Apache-2.0``,
#: ``GPL-3.0-or-later``, ``MIT OR Apache-2.0``, ``LicenseRef-my-license``.
SPDX_ID = r"[A-Za-z0-9][A-Za-z0-9.+-]*"
SPDX = re.compile(rf"^\(?{SPDX_ID}(?: (?:AND|OR|WITH) \(?{SPDX_ID}\)?)*\)?$")
#: What counts as HTML markup in a plain-text field: a tag, a comment or a character reference.
MARKUP = re.compile(r"<[A-Za-z!/?]|&(?:#\d+|#x[0-9a-fA-F]+|[A-Za-z]+);")
#: At most this many hyper-parameter settings (the grid's product) per submission.
MAX_SETTINGS = 8


def _plain_text(value: str) -> str:
    value = value.strip()
    if MARKUP.search(value):
        raise ValueError("plain text without HTML markup (tags such as <b> or entities such as "
                         "&amp;); the site shows text as written")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ValueError("text without control characters")
    return value


def _link(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if (parts.scheme not in ("http", "https") or not parts.hostname or "." not in parts.hostname
            or re.search(r"[\s\"'<>`]", value)):
        raise ValueError("an http(s) link such as https://arxiv.org/abs/1701.06548")
    return value


class Hyperparameters(BaseModel):
    """Values for the defense's fields: fixed ``params`` and a ``grid`` to sweep (every
    combination is one setting, as in a suite's ``defenses`` list)."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        count = 1
        for key, values in grid.items():
            if not values:
                raise ValueError(f"a non-empty list of values for {key!r}")
            count *= len(values)
        if count > MAX_SETTINGS:
            raise ValueError(f"at most {MAX_SETTINGS} settings in all (this grid has {count})")
        return grid


class SubmissionMeta(BaseModel):
    """What the leaderboard shows about a submission, next to its measured results."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="slug: lower-case letters, digits, '_' or '-', 2-48 "
                      "characters, starting with a letter")
    display_name: str = Field(min_length=2, max_length=80)
    authors: list[str] = Field(min_length=1, max_length=50)
    description: str = Field(min_length=10, max_length=4000)
    license: str = Field(description="SPDX identifier or expression, e.g. MIT or Apache-2.0")
    paper: str | None = Field(None, max_length=300, description="paper title and venue")
    paper_url: str | None = None
    code_url: str | None = None
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not SLUG.match(name):
            raise ValueError("a slug: lower-case letters, digits, '_' or '-', 2-48 characters, "
                             "starting with a letter, e.g. confidence_penalty")
        return name

    @field_validator("display_name", "description", "paper")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _plain_text(value)

    @field_validator("authors")
    @classmethod
    def _authors(cls, authors: list[str]) -> list[str]:
        cleaned = [_plain_text(a) for a in authors]
        if any(not a or len(a) > 120 for a in cleaned):
            raise ValueError("author names of 1-120 characters")
        return cleaned

    @field_validator("paper_url", "code_url")
    @classmethod
    def _links(cls, value: str | None) -> str | None:
        return None if value is None else _link(value)

    @field_validator("license")
    @classmethod
    def _license(cls, value: str) -> str:
        value = value.strip()
        if not SPDX.match(value) or len(value) > 100:
            raise ValueError("an SPDX license identifier or expression, e.g. MIT, Apache-2.0, "
                             "BSD-3-Clause or GPL-3.0-or-later (see https://spdx.org/licenses/)")
        return value

    def links(self) -> dict[str, str]:
        return {k: v for k, v in (("paper", self.paper_url), ("code", self.code_url)) if v}


def read_meta(path: Path, option: str = "--meta") -> SubmissionMeta:
    """Read and validate ``META.yaml``; every problem is a UserError naming the file's field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(option, str(path), "Give the path of an existing metadata YAML file "
                        "(see examples/confidence_penalty/meta.yaml).",
                        problem="file not found")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(option, str(path), "Save the file as UTF-8.",
                        problem=f"file is not UTF-8 text (byte {exc.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{option} {path.name}", "(YAML text)", "Fix the YAML syntax.",
                        problem=f"not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{option} {path.name}", type(raw).__name__,
                        "The metadata file is a YAML mapping with keys name, display_name, "
                        "authors, description, license, paper_url/code_url, hyperparameters.",
                        problem="not a mapping")
    try:
        meta = SubmissionMeta.model_validate(raw)
    except ValidationError as exc:
        error = user_error_from_validation(exc, model=SubmissionMeta)
        missing = error.problem == "required field is missing"
        raise UserError(f"{path.name}: {error.field}", None if missing else error.value,
                        error.fix, problem=error.problem) from None
    if not meta.links():
        raise UserError(f"{path.name}: paper_url", None, "Add paper_url or code_url (an "
                        "http(s) link) so that reviewers can follow the defense to its source.",
                        problem="no link given")
    return meta
