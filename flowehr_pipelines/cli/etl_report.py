"""flowehr etl: stored changelog numbers, each table's lag behind its source, who holds
the lock, and holding it while a command changes the state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, timedelta

from assets.ehr.change_batches import load_quarantine_path
from assets.ehr.etl_lock import EtlLockStore, LockOwner, Logger
from assets.ehr.etl_state import EtlStateStore, TableLag, source_heads
from flowehr_pipelines.config import Settings
from resources.delta.store import DeltaTableStore


@dataclass(frozen=True)
class HeadStateReport:
    """What ``flowehr etl head-state`` prints: a table of rows, then notes."""

    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: list[str]


def head_state_report(settings: Settings, source: str | None = None) -> HeadStateReport:
    """Stored changelog numbers, the sources' lag behind them, and each source's lock.

    A source that cannot be reached still gets its stored numbers, with a note saying
    why its lag is unknown.
    """
    import dagster as dg

    from assets.ehr.etl_lock import EtlLockStore
    from flowehr_pipelines.deployment import build_delta_store, build_resources

    delta = build_delta_store(settings)
    state = EtlStateStore(delta)
    locks = EtlLockStore(
        delta, stale_after=timedelta(minutes=settings.ehr.lock_stale_after_minutes)
    )
    connections = (
        [settings.connection(source)] if source else list(settings.data_source_connections)
    )
    resources = build_resources(settings)
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    now = locks.now()
    for connection in connections:
        stored = {s.table_name: s for s in state.all(connection.name)}
        heads: dict[str, int | None] | None = None
        try:
            with dg.build_resources({"source": resources[connection.name]}) as built:
                heads = source_heads(built.source, connection.tables)
        except Exception as exc:  # any reason the source cannot answer is worth one line
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            notes.append(f"{connection.name}: source lag unknown: {reason}")
        for table in connection.tables:
            s = stored.get(table.name)
            head = None if heads is None else heads.get(table.name)
            lag = (
                "?"
                if heads is None
                else str(
                    TableLag(
                        connection.name,
                        table.name,
                        None if s is None else s.changelog_number,
                        head,
                    ).lag
                )
            )
            rows.append(
                (
                    connection.name,
                    table.name,
                    "-" if s is None else str(s.changelog_number),
                    "?" if heads is None else ("-" if head is None else str(head)),
                    lag,
                    "-" if s is None else s.load_mode,
                    "-" if s is None else f"{s.rows_loaded:,}",
                    "-"
                    if s is None
                    else s.updated_at.astimezone(UTC).isoformat(timespec="seconds"),
                )
            )
        notes.extend(set_aside_notes(delta, connection.name, [t.name for t in connection.tables]))
        if not stored:
            notes.append(f"{connection.name}: no changelog numbers stored: the next load is bulk")
        holder = locks.holder(connection.name)
        if holder is None:
            notes.append(f"{connection.name}: lock free")
        elif holder.owner_is_dead():
            notes.append(
                f"{connection.name}: DEAD lock ({holder.describe(now)}; its process is gone); "
                "the next load breaks it"
            )
        elif holder.is_stale(now, locks.stale_after):
            notes.append(
                f"{connection.name}: STALE lock ({holder.describe(now)}); the next load breaks it"
            )
        else:
            notes.append(f"{connection.name}: locked by {holder.describe(now)}")
    header = ("source", "table", "changelog", "source head", "lag", "mode", "rows", "updated")
    return HeadStateReport(header=header, rows=rows, notes=notes)


def set_aside_notes(delta: DeltaTableStore, source: str, tables: list[str]) -> list[str]:
    """One note per table whose load set source rows aside: the lag cannot show them
    (a row whose change number no load can read is never behind)."""
    notes = []
    for table in tables:
        path = load_quarantine_path(source, table)
        found = delta.read_or_none(path, columns=["record_key"])
        count = 0 if found is None else found.num_rows
        if count:
            notes.append(
                f"{source}/{table}: {count:,} source row(s) set aside, not loaded "
                f"({'/'.join(path)} gives each key and reason)"
            )
    return notes


@contextmanager
def maintenance_lock(
    settings: Settings, source: str, *, purpose: str, log: Logger | None = None
) -> Iterator[None]:
    """Hold a source's lock while a command changes its ETL state.

    Raises:
        EtlLockHeldError: a live load holds the lock (a stale one is broken, with a
            warning, as a load would).
    """
    from flowehr_pipelines.deployment import build_delta_store

    store = EtlLockStore(
        build_delta_store(settings),
        stale_after=timedelta(minutes=settings.ehr.lock_stale_after_minutes),
    )
    owner = LockOwner.current(f"cli-{uuid.uuid4().hex[:12]}", purpose)
    with store.hold(source, owner, log=log):
        yield
