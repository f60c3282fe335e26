"""One line per check: what was checked, whether it passed, and why not."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Finding:
    """The outcome of one check; ``detail`` never holds a secret's value."""

    check: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        return f"{self.status.upper():<4}  {self.check}: {self.detail}"


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def fail(check: str, detail: str) -> Finding:
    return Finding(check, "fail", detail)


def first_line(error: BaseException) -> str:
    """An exception as one short line: libraries' messages run to many lines."""
    text = str(error).strip()
    line = text.splitlines()[0].strip() if text else ""
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def guarded(check: str, run: Callable[[], Iterable[Finding]]) -> list[Finding]:
    """Run one check; an unexpected error becomes its failure line, not a traceback."""
    try:
        return list(run())
    except Exception as exc:  # a preflight reports every failure, whatever its kind
        return [fail(check, first_line(exc))]


def redact(findings: Iterable[Finding], secrets: Iterable[str]) -> list[Finding]:
    """Mask any secret value that reached a message (a driver echoing its URL, say)."""
    values = sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)
    cleaned = []
    for finding in findings:
        detail = finding.detail
        for value in values:
            detail = detail.replace(value, "***")
        cleaned.append(Finding(finding.check, finding.status, detail))
    return cleaned
