"""Split Bulk Data NDJSON into valid resources, tombstones, issues and quarantined lines.

A line that is JSON but not a valid resource of the file's type is quarantined with the
validator's reason (field paths and messages only: pydantic's own text repeats input
values, which may be identifiers). A line that is not JSON at all means the file is
damaged, most often cut short, and ``NdjsonError`` fails the whole export: landing the
rest and advancing the watermark would lose the damaged resources for good.

Resources are validated with ``fhir.resources`` ``R4B``: release 8 ships FHIR R5 as its
default and R4B (4.3), not R4 (4.0.1); R4B is wire-compatible with R4 for the resources
read here (Patient, Encounter, Observation, Condition), while R5 is not (for example
``Encounter.class`` became a list).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

_MAX_REASON_ERRORS = 3


class NdjsonError(ValueError):
    """A file that cannot be read as NDJSON (not UTF-8, or a line that is not JSON)."""


@dataclass(frozen=True)
class Landed:
    """A valid resource as delivered, with where it came from."""

    resource_type: str
    id: str
    version_id: str | None
    last_updated: str | None
    resource: str
    sha256: str
    source_file: str
    line_number: int


@dataclass(frozen=True)
class Rejected:
    """A line kept aside with the reason it could not land."""

    resource_type: str | None
    id: str | None
    reason: str
    raw: str
    sha256: str
    source_file: str
    line_number: int


@dataclass(frozen=True)
class Tombstone:
    """A resource the server deleted since the previous export."""

    resource_type: str
    id: str
    source_file: str
    line_number: int


@dataclass(frozen=True)
class Issue:
    """One ``OperationOutcome.issue`` of an export's error files."""

    severity: str
    code: str
    diagnostics: str
    source_file: str
    line_number: int


@dataclass
class Parsed:
    """Everything one or more files held."""

    landed: list[Landed] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def extend(self, other: Parsed) -> None:
        self.landed += other.landed
        self.rejected += other.rejected
        self.tombstones += other.tombstones
        self.issues += other.issues


def json_lines(data: bytes, *, source_file: str) -> Iterator[tuple[int, str, Any]]:
    """Each non-blank line's number, text and JSON value.

    Raises:
        NdjsonError: on bytes that are not UTF-8 or a line that is not JSON.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NdjsonError(f"{source_file} is not UTF-8 (byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            last = number == len(text.splitlines())
            hint = "; the file looks cut short" if last and not text.endswith("\n") else ""
            raise NdjsonError(
                f"{source_file} line {number} is not JSON ({exc.msg}){hint}"
            ) from None
        yield number, line, value


def validation_reason(resource: dict[str, Any], resource_type: str) -> str | None:
    """Why ``resource`` is not a valid R4 ``resource_type`` (None when it is)."""
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return f"unknown resource type {resource_type}"
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors()
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or resource_type}: {e['msg']}"
            for e in errors[:_MAX_REASON_ERRORS]
        ]
        more = f" (+{len(errors) - _MAX_REASON_ERRORS} more)" if len(errors) > 3 else ""
        return f"invalid {resource_type}: {'; '.join(parts)}{more}"
    return None


def _digest(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _reject(line: str, number: int, source: str, reason: str, value: Any) -> Rejected:
    kind = value.get("resourceType") if isinstance(value, dict) else None
    ident = value.get("id") if isinstance(value, dict) else None
    return Rejected(
        resource_type=kind if isinstance(kind, str) else None,
        id=ident if isinstance(ident, str) else None,
        reason=reason,
        raw=line,
        sha256=_digest(line),
        source_file=source,
        line_number=number,
    )


def parse_output(
    data: bytes, *, source_file: str, declared_type: str | None, accepted: frozenset[str]
) -> Parsed:
    """The resources of one ``output`` file, each validated against its type.

    Args:
        data: the file's bytes.
        source_file: its URL, recorded with every row.
        declared_type: the manifest's ``type`` for the file (None when not given).
        accepted: the resource types this source lands.

    Raises:
        NdjsonError: when the file is not UTF-8 NDJSON.
    """
    parsed = Parsed()
    for number, line, value in json_lines(data, source_file=source_file):
        kind = value.get("resourceType") if isinstance(value, dict) else None
        reason: str | None
        if not isinstance(value, dict) or not isinstance(kind, str):
            reason = "not a FHIR resource (no resourceType)"
        elif declared_type is not None and kind != declared_type:
            reason = f"a {kind} in a file of {declared_type} resources"
        elif kind not in accepted:
            reason = f"resource type {kind} is not one this source lands"
        elif not isinstance(value.get("id"), str) or not value["id"]:
            reason = f"{kind} without an id"
        else:
            reason = validation_reason(value, kind)
        if reason is not None:
            parsed.rejected.append(_reject(line, number, source_file, reason, value))
            continue
        meta = value.get("meta") if isinstance(value.get("meta"), dict) else {}
        parsed.landed.append(
            Landed(
                resource_type=str(kind),
                id=value["id"],
                version_id=meta.get("versionId"),
                last_updated=meta.get("lastUpdated"),
                resource=line,
                sha256=_digest(line),
                source_file=source_file,
                line_number=number,
            )
        )
    return parsed


def parse_deleted(data: bytes, *, source_file: str, accepted: frozenset[str]) -> Parsed:
    """Tombstones from a ``deleted`` file: transaction Bundles of ``DELETE Type/id``.

    Raises:
        NdjsonError: when the file is not UTF-8 NDJSON.
    """
    parsed = Parsed()
    for number, line, value in json_lines(data, source_file=source_file):
        entries = value.get("entry") if isinstance(value, dict) else None
        if not isinstance(value, dict) or value.get("resourceType") != "Bundle":
            reason = "a deleted file line that is not a Bundle"
        elif not isinstance(entries, list):
            reason = "a deleted Bundle without entries"
        else:
            found = [_deleted_entry(entry) for entry in entries]
            if all(f is not None for f in found):
                for kind, ident in (f for f in found if f is not None):
                    if kind in accepted:
                        parsed.tombstones.append(Tombstone(kind, ident, source_file, number))
                continue
            reason = "a deleted Bundle entry without request DELETE Type/id"
        parsed.rejected.append(_reject(line, number, source_file, reason, value))
    return parsed


def _deleted_entry(entry: Any) -> tuple[str, str] | None:
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or request.get("method") != "DELETE":
        return None
    url = request.get("url")
    parts = url.strip("/").split("/") if isinstance(url, str) else []
    if len(parts) < 2 or not parts[-1] or not parts[-2]:
        return None
    return parts[-2], parts[-1]


def parse_errors(data: bytes, *, source_file: str) -> Parsed:
    """The issues of an ``error`` file of OperationOutcomes (other lines quarantined).

    Raises:
        NdjsonError: when the file is not UTF-8 NDJSON.
    """
    parsed = Parsed()
    for number, line, value in json_lines(data, source_file=source_file):
        issues = value.get("issue") if isinstance(value, dict) else None
        if not isinstance(value, dict) or value.get("resourceType") != "OperationOutcome":
            parsed.rejected.append(
                _reject(
                    line,
                    number,
                    source_file,
                    "an error line that is not an OperationOutcome",
                    value,
                )
            )
            continue
        for issue in issues if isinstance(issues, list) else []:
            issue = issue if isinstance(issue, dict) else {}
            parsed.issues.append(
                Issue(
                    severity=str(issue.get("severity") or "error"),
                    code=str(issue.get("code") or "unknown"),
                    diagnostics=str(issue.get("diagnostics") or ""),
                    source_file=source_file,
                    line_number=number,
                )
            )
    return parsed
