"""The whole privacy scan of a configured lake: cells (``privacy_scan``), names, and the
disclosure control of counts of people (``disclosure_scan``).

``scan_lake`` is what ``flowehr privacy-scan`` and the reliability suite run.

A client id or batch reference that is really an NHS number or a patient's name would
reach a published path (``reports/completed_batch_report/<client>/<batch>/...``) and
Dagster's dynamic partition keys (shown in the UI and stored in its database), though
no table cell holds it. Object keys are scanned decoded (the report writer
percent-encodes segments); for Delta tables the directories are scanned (table and
partition names), not the data file names, which are engine-made UUIDs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from assets.reports.partitions import BATCH_PARTITIONS, CLIENT_PARTITIONS
from flowehr_pipelines.config import Settings
from flowehr_pipelines.disclosure_scan import scan_disclosure
from flowehr_pipelines.privacy_scan import (
    PUBLISHED_PREFIXES,
    Finding,
    KnownIdentifiers,
    ScanResult,
    collect_source_identifiers,
    scan_published,
    scan_strings,
)
from flowehr_pipelines.privacy_scan_fhir import collect_fhir_identifiers
from resources.object_store import ObjectStore

DYNAMIC_PARTITION_SETS: tuple[str, ...] = tuple(
    d.name for d in (CLIENT_PARTITIONS, BATCH_PARTITIONS) if d.name
)


def key_names(tables: Sequence[str], keys: Iterable[str]) -> list[str]:
    """The names a scan must read: plain files' keys and Delta tables' directories."""
    names = set(tables)
    for key in keys:
        if "/_delta_log/" in key:
            continue
        in_table = any(key.startswith(f"{table}/") for table in tables)
        names.add(key.rpartition("/")[0] if in_table else key)
    return sorted(names)


def scan_object_keys(location: str, keys: Iterable[str], known: KnownIdentifiers) -> list[Finding]:
    """Findings among object keys' path segments (decoded), one per identifier kind.

    Segments, not whole keys: a client id that is a surname is a whole segment.
    """
    segments = {unquote(part) for key in keys for part in key.split("/")}
    counts = scan_strings(sorted(segments), known)
    return [Finding(location, "(path segment)", kind, n) for kind, n in sorted(counts.items())]


class LinkFinding(Finding):
    """A symbolic link in a published zone that leads out of it (a way into bronze)."""

    def describe(self) -> str:
        return f"{self.location}: {self.kind}; remove the link"


def scan_links(objects: ObjectStore, prefixes: Sequence[str] = PUBLISHED_PREFIXES) -> list[Finding]:
    """A finding for every link under a published prefix whose target is outside it.

    The key listing does not follow links, so without this a link to a bronze table
    would be neither scanned nor reported.
    """
    findings: list[Finding] = []
    for prefix in prefixes:
        for link, target in objects.links(prefix):
            if target is not None and (target == prefix or target.startswith(f"{prefix}/")):
                continue
            where = f"'{target}'" if target is not None else "a path outside the lake"
            kind = f"a symbolic link to {where}, outside {prefix}/"
            findings.append(LinkFinding(link, "(symbolic link)", kind, 1))
    return findings


def open_existing_instance(dagster_home: Path) -> Any | None:
    """The Dagster instance at ``dagster_home`` if one was ever created there, else None.

    A scan must not create an instance (nor its databases) where none is.
    """
    if not dagster_home.is_dir() or not any(dagster_home.iterdir()):
        return None
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dg.DagsterInstance.get()


def scan_partition_keys(instance: Any, known: KnownIdentifiers) -> list[Finding]:
    """Findings among the dynamic partition keys the report assets registered."""
    findings = []
    for name in DYNAMIC_PARTITION_SETS:
        keys = instance.get_dynamic_partitions(name)
        for kind, n in sorted(scan_strings(keys, known).items()):
            findings.append(Finding(f"Dagster dynamic partitions '{name}'", "(key)", kind, n))
    return findings


def scan_names(
    objects: ObjectStore,
    dagster_home: Path,
    tables: Sequence[str],
    known: KnownIdentifiers,
    prefixes: Sequence[str] = PUBLISHED_PREFIXES,
) -> list[Finding]:
    """Findings in the published zones' object keys and links, and the instance's
    partition keys."""
    findings = scan_links(objects, prefixes)
    for prefix in prefixes:
        names = key_names(tables, objects.list_keys(prefix))
        findings += scan_object_keys(f"object keys under {prefix}/", names, known)
    instance = open_existing_instance(dagster_home)
    if instance is not None:
        with instance:
            findings += scan_partition_keys(instance, known)
    return findings


def scan_lake(settings: Settings) -> tuple[KnownIdentifiers, ScanResult]:
    """Collect the sources' identifiers; scan the published zones, their object keys and
    the Dagster instance's partition keys."""
    from flowehr_pipelines.deployment import build_delta_store, build_object_store

    objects = build_object_store(settings)
    known = collect_source_identifiers(settings, objects)
    delta = build_delta_store(settings)
    collect_fhir_identifiers(settings, delta, known)
    result = scan_published(delta, objects, known)
    result.findings += scan_names(objects, settings.dagster_home, result.tables, known)
    result.findings += scan_disclosure(delta, result.tables)
    return known, result
