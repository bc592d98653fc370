"""The user-error contract: one clear message, exit status 2, nothing already recorded lost."""

from __future__ import annotations

from typing import Any

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix: names the field, the value and the fix.

    The CLI prints ``str(error)`` on one line and exits with status 2, without a traceback.
    """

    def __init__(self, field: str, value: Any, fix: str, *, problem: str | None = None) -> None:
        self.field = field
        self.value = value
        self.fix = fix
        self.problem = problem
        super().__init__(self.message)

    @property
    def message(self) -> str:
        shown = _short(self.value)
        what = f"{self.problem}: " if self.problem else ""
        return f"{self.field}: {what}got {shown}. {self.fix}"


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
