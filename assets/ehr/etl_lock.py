"""A lock per data source, so two loads of one source never overlap (``internal/etl_locks``).

The lock is a row in a small Delta table, and every change to the table is a
compare-and-swap: read the table at version *v*, decide, then commit version *v + 1*
with no conflict retries (``DeltaTableStore.replace_if_version``). Delta log commits
are put-if-absent on a local disk and on S3, so when two loads race for a free lock
exactly one commit lands; the other re-reads, sees the winner and refuses with a
message naming it. Nothing here needs a database or a lock service beside the lake.

A holder refreshes ``heartbeat_at`` while it works. A lock whose heartbeat is older
than ``ehr.lock_stale_after_minutes`` belongs to a load that died without releasing
it (a killed process, a lost node); it is reported as stale with its owner and age,
and the next load breaks it with a warning. A holder whose lock was broken notices
at its next heartbeat and stops, so a broken lock never leaves two writers running.

A lock whose owner ran on this very host and whose process is provably gone (no such
pid, or a zombie) is broken at once, with a warning naming the owner: a killed run
must not block the next one for ``lock_stale_after_minutes``. A pid that is alive is
trusted even if it was reused by an unrelated process (the staleness timeout then
frees the lock), and an owner on another host is only ever judged by its heartbeat,
since a pid means nothing across hosts.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from resources.delta.store import DeltaTableStore, SwapConflictError
from resources.processes import process_alive

if TYPE_CHECKING:
    pass

ETL_LOCK_TABLE = ("internal", "etl_locks")
MAX_ATTEMPTS = 20

_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("token", pa.string()),
        ("run_id", pa.string()),
        ("host", pa.string()),
        ("pid", pa.int64()),
        ("purpose", pa.string()),
        ("acquired_at", pa.timestamp("us", tz="UTC")),
        ("heartbeat_at", pa.timestamp("us", tz="UTC")),
    ]
)

Clock = Callable[[], datetime]


class Logger(Protocol):
    """Anything with ``warning``: a Dagster log manager or a ``logging.Logger``."""

    def warning(self, msg: str) -> object: ...


class EtlLockError(RuntimeError):
    """The lock could not be taken or kept."""


class EtlLockHeldError(EtlLockError):
    """Another live load holds the source's lock."""


class EtlLockLostError(EtlLockError):
    """This load's lock was broken by another load (it was taken for stale)."""


@dataclass(frozen=True)
class LockOwner:
    """Who takes a lock: enough to find the process and its Dagster run."""

    run_id: str
    host: str
    pid: int
    purpose: str

    @classmethod
    def current(cls, run_id: str, purpose: str) -> LockOwner:
        """This process, on behalf of ``run_id``."""
        return cls(run_id=run_id, host=socket.gethostname(), pid=os.getpid(), purpose=purpose)


@dataclass(frozen=True)
class SourceLock:
    """One held lock, as stored."""

    source: str
    token: str
    run_id: str
    host: str
    pid: int
    purpose: str
    acquired_at: datetime
    heartbeat_at: datetime

    def age(self, now: datetime) -> timedelta:
        return now - self.acquired_at

    def silence(self, now: datetime) -> timedelta:
        """Time since the holder last showed it was alive."""
        return now - self.heartbeat_at

    def is_stale(self, now: datetime, stale_after: timedelta) -> bool:
        return self.silence(now) > stale_after

    def owner_is_dead(self, host: str | None = None) -> bool:
        """True when the owner ran on ``host`` (default this host) and its process is gone."""
        return self.host == (host or socket.gethostname()) and not process_alive(self.pid)

    def describe(self, now: datetime) -> str:
        """Owner and age in one line, for errors, warnings and ``head-state``."""
        return (
            f"{self.purpose} run {self.run_id} on host {self.host} (pid {self.pid}), "
            f"held for {format_duration(self.age(now))}, "
            f"last heartbeat {format_duration(self.silence(now))} ago"
        )


def format_duration(delta: timedelta) -> str:
    """``2h05m``, ``3m12s`` or ``8s``."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


class EtlLockStore:
    """Take, refresh and release per-source locks with compare-and-swap commits."""

    def __init__(
        self,
        delta: DeltaTableStore,
        *,
        stale_after: timedelta,
        clock: Clock | None = None,
    ) -> None:
        self._delta = delta
        self._stale_after = stale_after
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def stale_after(self) -> timedelta:
        return self._stale_after

    def now(self) -> datetime:
        return self._clock()

    def all(self) -> list[SourceLock]:
        """Every held lock (stale ones included)."""
        _, locks = self._read()
        return sorted(locks.values(), key=lambda lock: lock.source)

    def holder(self, source: str) -> SourceLock | None:
        """The source's current lock, or None when it is free."""
        _, locks = self._read()
        return locks.get(source)

    def acquire(self, source: str, owner: LockOwner, *, log: Logger | None = None) -> SourceLock:
        """Take the source's lock, breaking it if its holder is stale.

        A lock held by the same Dagster run (a retried step) is taken over.

        Raises:
            EtlLockHeldError: another live load holds it; the message names the owner.
            EtlLockError: the lock table kept changing under us (extreme contention).
        """
        token = uuid.uuid4().hex

        def take(locks: dict[str, SourceLock]) -> dict[str, SourceLock]:
            now = self.now()
            current = locks.get(source)
            if current is not None and current.run_id != owner.run_id:
                if current.owner_is_dead():
                    _warn(
                        log,
                        f"breaking lock on source '{source}' whose owner process is gone: "
                        f"{current.describe(now)}",
                    )
                elif not current.is_stale(now, self._stale_after):
                    raise EtlLockHeldError(
                        f"source '{source}' is locked by {current.describe(now)}; "
                        f"it is considered stale after {format_duration(self._stale_after)}"
                    )
                else:
                    _warn(
                        log,
                        f"breaking stale lock on source '{source}': {current.describe(now)}",
                    )
            return {
                **locks,
                source: SourceLock(
                    source=source,
                    token=token,
                    run_id=owner.run_id,
                    host=owner.host,
                    pid=owner.pid,
                    purpose=owner.purpose,
                    acquired_at=now,
                    heartbeat_at=now,
                ),
            }

        locks = self._swap(take)
        return locks[source]

    def heartbeat(self, lock: SourceLock) -> SourceLock:
        """Show the holder is alive; returns the refreshed lock.

        Raises:
            EtlLockLostError: the lock was broken and now belongs to another load.
        """

        def refresh(locks: dict[str, SourceLock]) -> dict[str, SourceLock]:
            current = locks.get(lock.source)
            if current is None or current.token != lock.token:
                taken = (
                    "released" if current is None else f"taken by {current.describe(self.now())}"
                )
                raise EtlLockLostError(f"lock on source '{lock.source}' was {taken}; stopping")
            return {**locks, lock.source: replace(current, heartbeat_at=self.now())}

        return self._swap(refresh)[lock.source]

    def release(self, lock: SourceLock) -> bool:
        """Give the lock back; False when it had already been broken by another load."""
        released = False

        def drop(locks: dict[str, SourceLock]) -> dict[str, SourceLock] | None:
            nonlocal released
            current = locks.get(lock.source)
            if current is None or current.token != lock.token:
                released = False
                return None
            released = True
            return {k: v for k, v in locks.items() if k != lock.source}

        self._swap(drop)
        return released

    def break_lock(self, source: str) -> SourceLock | None:
        """Remove a source's lock whoever holds it; returns what was removed."""
        removed: SourceLock | None = None

        def drop(locks: dict[str, SourceLock]) -> dict[str, SourceLock] | None:
            nonlocal removed
            removed = locks.get(source)
            if removed is None:
                return None
            return {k: v for k, v in locks.items() if k != source}

        self._swap(drop)
        return removed

    @contextmanager
    def hold(
        self,
        source: str,
        owner: LockOwner,
        *,
        log: Logger | None = None,
        heartbeat_every: timedelta = timedelta(minutes=1),
    ) -> Iterator[Callable[[], None]]:
        """Hold the lock for a block; yields a ``beat()`` to call as work progresses.

        ``beat()`` commits a heartbeat at most every ``heartbeat_every`` and raises
        ``EtlLockLostError`` if the lock was broken meanwhile.
        """
        lock = self.acquire(source, owner, log=log)
        last = self.now()

        def beat() -> None:
            nonlocal lock, last
            if self.now() - last >= heartbeat_every:
                lock = self.heartbeat(lock)
                last = self.now()

        try:
            yield beat
        finally:
            if not self.release(lock):
                _warn(log, f"lock on source '{source}' had been broken before release")

    def _read(self) -> tuple[int | None, dict[str, SourceLock]]:
        version, rows = self._delta.versioned_rows(ETL_LOCK_TABLE)
        return version, _locks(rows)

    def _swap(
        self, change: Callable[[dict[str, SourceLock]], dict[str, SourceLock] | None]
    ) -> dict[str, SourceLock]:
        """Apply ``change`` to the current locks as one compare-and-swap, retrying on races.

        ``change`` may raise to refuse, or return None to leave the table as it is.
        """
        outcome: dict[str, SourceLock] = {}

        def apply(rows: pa.Table | None) -> pa.Table | None:
            locks = _locks(rows)
            updated = change(dict(locks))
            outcome.clear()
            outcome.update(locks if updated is None else updated)
            if updated is None:
                return None
            records = [
                {field: getattr(lock, field) for field in _SCHEMA.names}
                for lock in updated.values()
            ]
            return pa.Table.from_pylist(records, schema=_SCHEMA)

        try:
            self._delta.swap(ETL_LOCK_TABLE, apply, attempts=MAX_ATTEMPTS)
        except SwapConflictError:
            raise EtlLockError(
                f"could not update {'/'.join(ETL_LOCK_TABLE)} after {MAX_ATTEMPTS} attempts: "
                "too many concurrent writers"
            ) from None
        return dict(outcome)


def _locks(rows: pa.Table | None) -> dict[str, SourceLock]:
    if rows is None:
        return {}
    return {row["source"]: SourceLock(**row) for row in rows.select(_SCHEMA.names).to_pylist()}


def _warn(log: Logger | None, message: str) -> None:
    (log or logging.getLogger(__name__)).warning(message)
