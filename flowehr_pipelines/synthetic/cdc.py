"""A deterministic, streaming generator of NHS Notify style CDC landing files.

Each line is one change record from a DynamoDB-like change capture of a communications
service: clients, request items and request item plans, each state change carrying
the entity's full current state (DESIGN section 5). The files are deliberately awkward
to ingest, as real landing zones are: records arrive late and out of order, are
re-delivered, and now and then a line is malformed.

Design choices:

* **Streaming.** Time advances one day at a time. Records delivered on the day being
  written go into a buffer of at most ``lines_per_file`` lines, which is shuffled and
  written as one part file when full. Records delivered on later days (letters take
  days, some deliveries are late) are appended to a per-day spill file on disk and
  read back when their day comes. Memory is therefore bounded by ``lines_per_file``
  and does not grow with ``days`` or ``events_per_day``.
* **Deterministic.** One ``random.Random(seed)`` drives everything (ids are uuid-shaped
  values drawn from it), in a fixed order, and the clock is never read.
* **Atomic files.** Each part file is written as ``*.jsonl.tmp`` then renamed. Existing
  ``*.jsonl`` files under ``transaction_history`` are removed first, so a run never
  mixes its files with a previous run's.
* **Warm-up.** Generation starts a couple of days before ``start_date`` and drops what
  would have been delivered before it, so the first day looks like any other day of a
  feed that was already running (including items whose first records came earlier).

The NHS numbers come from the same seeded permutation as the EHR source's patients
(:func:`~flowehr_pipelines.synthetic.ehr_source.synthetic_nhs_number`), so with the same
seed, communications can be linked to patients ``1..PATIENT_POOL``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from random import Random
from typing import IO, Any

from flowehr_pipelines.synthetic.ehr_source import synthetic_nhs_number

TRANSACTION_HISTORY = "transaction_history"
DAY_MS = 86_400_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "truncated",
    "not_object",
    "missing_sk",
    "missing_timestamp",
    "bad_timestamp_type",
    "non_iso_date",
)
COMMUNICATION_TYPES: tuple[str, ...] = ("NHSAPP", "EMAIL", "SMS", "LETTER")
ITEM_STATUSES: tuple[str, ...] = (
    "PENDING_ENRICHMENT",
    "ENRICHED",
    "SENDING",
    "COMPLETED",
    "FAILED",
)
PLAN_STATUSES: tuple[str, ...] = ("PENDING", "SENDING", "DELIVERED", "FAILED", "SKIPPED")

PATIENT_POOL = 100_000
GP_PRACTICES = 400
WARMUP_DAYS = 2
LATE_DELIVERY_RATE = 0.05
CLIENT_RENAME_RATE = 0.02  # per client per day
STUCK_ITEM_RATE = 0.002  # never leaves PENDING_ENRICHMENT / ENRICHED
STUCK_PLAN_RATE = 0.003  # never leaves SENDING (so neither does its item)
ENRICHMENT_FAILURE_RATE = 0.01
PLAN_SKIP_RATE = 0.05
PLAN_FAILURE_RATE = {"NHSAPP": 0.35, "SMS": 0.08, "EMAIL": 0.1, "LETTER": 0.03}
RECORDS_PER_ITEM = 8.7  # measured mean over the lifecycle model; turns events into items

_CHANNEL_PLANS: tuple[tuple[str, ...], ...] = (
    ("NHSAPP", "SMS"),
    ("NHSAPP", "SMS", "LETTER"),
    ("NHSAPP", "EMAIL", "LETTER"),
    ("SMS",),
    ("EMAIL",),
    ("LETTER",),
    ("SMS", "LETTER"),
)
_ENRICHMENT_FAILURES = (
    ("Patient not found in PDS", "CM_PDS_NOT_FOUND"),
    ("Patient is recorded as deceased", "CM_PATIENT_DECEASED"),
    ("NHS number has been superseded", "CM_NHS_NUMBER_SUPERSEDED"),
)
_PLAN_FAILURES: dict[str, tuple[tuple[str, str], ...]] = {
    "NHSAPP": (
        ("Patient is not an NHS App user", "CM_NHSAPP_NOT_REGISTERED"),
        ("NHS App notifications are switched off", "CM_NHSAPP_OPTED_OUT"),
    ),
    "SMS": (
        ("No mobile number on record", "CM_NO_MOBILE"),
        ("Mobile network rejected the message", "CM_SMS_PERMANENT_FAILURE"),
    ),
    "EMAIL": (
        ("No email address on record", "CM_NO_EMAIL"),
        ("Email address bounced", "CM_EMAIL_BOUNCED"),
    ),
    "LETTER": (
        ("Address is incomplete", "CM_INVALID_ADDRESS"),
        ("Letter returned to sender", "CM_LETTER_RETURNED"),
    ),
}
_ALL_CHANNELS_FAILED = ("All communication channels failed", "CM_ALL_CHANNELS_FAILED")
# (median duration to delivery, log-sigma) per channel, in ms; letters are posted.
_DELIVERY_TIME: dict[str, tuple[float, float]] = {
    "NHSAPP": (2 * MINUTE_MS, 1.0),
    "SMS": (1 * MINUTE_MS, 1.2),
    "EMAIL": (3 * MINUTE_MS, 1.2),
    "LETTER": (2 * DAY_MS, 0.3),
}

# One compact encoder, reused: json.dumps with non-default options builds a new one per call.
_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class CdcGenerationStats:
    """What :func:`write_cdc_landing` wrote, so tests can check it line by line."""

    records: int  # well-formed records written (including duplicates)
    duplicates: int  # exact re-deliveries of an earlier record
    malformed: dict[str, int]  # kind -> count of malformed lines written
    files: list[Path]


@dataclass
class _Campaign:
    campaignid: str
    sendinggroupid: str
    sendinggroupidversion: int
    channels: tuple[str, ...]


@dataclass
class _Client:
    clientid: str
    letter: str
    createddate: str
    letter_supplier: str
    campaigns: list[_Campaign] = field(default_factory=list)
    renames: int = 0

    @property
    def clientname(self) -> str:
        variants = (
            f"Hospital Trust {self.letter}",
            f"Hospital Trust {self.letter} NHS Foundation Trust",
            f"{self.letter} University Hospitals NHS Trust",
            f"{self.letter} and District Hospitals NHS Foundation Trust",
        )
        return variants[self.renames % len(variants)]


def iso_ms(epoch_ms: int) -> str:
    """Format epoch ms as ``2026-11-20T13:45:12.123Z``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def _uuid(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: spreadsheet-style client letters."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


def partition_dir(landing_dir: Path, day: date) -> Path:
    """The Hive-style directory holding the files delivered on ``day``."""
    return (
        Path(landing_dir)
        / TRANSACTION_HISTORY
        / f"__year={day.year:04d}"
        / f"__month={day.month:02d}"
        / f"__day={day.day:02d}"
    )


def _clear_previous_output(landing_dir: Path) -> None:
    """Remove earlier runs' part files (and empty partition dirs) so none go stale."""
    for spill in landing_dir.glob(".cdc-spill-*"):
        shutil.rmtree(spill, ignore_errors=True)
    root = landing_dir / TRANSACTION_HISTORY
    if not root.exists():
        return
    for pattern in ("*.jsonl", "*.jsonl.tmp"):
        for path in root.rglob(pattern):
            path.unlink()
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


class _Spill:
    """Lines for later delivery days, kept on disk so memory stays bounded."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._handles: dict[int, IO[str]] = {}

    def add(self, day: int, flag: str, ts_day: int, line: str) -> None:
        handle = self._handles.get(day)
        if handle is None:
            handle = open(self.directory / f"{day}.spill", "a", encoding="utf-8")
            self._handles[day] = handle
        handle.write(f"{flag}\t{ts_day}\t{line}\n")

    def take(self, day: int) -> Iterator[tuple[str, int, str]]:
        """Yield (flag, timestamp day, line) for ``day``, then delete its spill file."""
        handle = self._handles.pop(day, None)
        if handle is None:
            return
        handle.close()
        path = self.directory / f"{day}.spill"
        with open(path, encoding="utf-8") as lines:
            for raw in lines:
                flag, ts_day, line = raw.rstrip("\n").split("\t", 2)
                yield flag, int(ts_day), line
        path.unlink()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()


class _DayWriter:
    """Writes one delivery day's lines as shuffled part files of bounded size.

    Also injects the re-deliveries and malformed lines, since both are properties of
    delivery rather than of the source system.
    """

    def __init__(self, gen: _Generator, day: int, directory: Path, lines_per_file: int) -> None:
        self.gen = gen
        self.day = day
        self.directory = directory
        self.lines_per_file = max(1, lines_per_file)
        self.buffer: list[str] = []
        self.deferred: list[str] = []  # duplicates for a later file of the same day
        self.part = 0

    def add_record(self, line: str, ts_day: int) -> None:
        """A first delivery: maybe re-deliver it and maybe follow it with a broken line."""
        gen = self.gen
        rng = gen.rng
        self._append(line)
        gen.records += 1
        if rng.random() < gen.duplicate_rate:
            roll = rng.random()
            if roll < 0.3 and ts_day == self.day and self.day + 1 < gen.days:
                gen.spill.add(self.day + 1, "D", ts_day, line)  # counted when written
            elif roll < 0.6:
                self.deferred.append(line)
            else:
                self.add_duplicate(line)
        if rng.random() < gen.malformed_rate:
            kind = rng.choice(MALFORMED_KINDS)
            self._append(gen.malformed_line(kind, line))
            gen.malformed[kind] += 1

    def add_duplicate(self, line: str) -> None:
        self._append(line)
        self.gen.records += 1
        self.gen.duplicates += 1

    def _append(self, line: str) -> None:
        self.buffer.append(line)
        if len(self.buffer) >= self.lines_per_file:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        self.gen.rng.shuffle(self.buffer)
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"part-{self.part:05d}.jsonl"
        tmp = final.with_name(final.name + ".tmp")
        with open(tmp, "w", encoding="utf-8", newline="\n") as out:
            out.writelines(f"{line}\n" for line in self.buffer)
        tmp.replace(final)
        self.gen.files.append(final)
        self.part += 1
        self.buffer = []
        deferred, self.deferred = self.deferred, []
        for line in deferred:
            self.add_duplicate(line)

    def close(self) -> None:
        while self.buffer or self.deferred:
            deferred, self.deferred = self.deferred, []
            for line in deferred:
                self.add_duplicate(line)
            self._flush()


class _Generator:
    """The simulation: clients, campaigns, requests, items and plans, day by day."""

    def __init__(
        self,
        landing_dir: Path,
        spill_dir: Path,
        *,
        days: int,
        events_per_day: int,
        start_date: date,
        seed: int,
        clients: int,
        lines_per_file: int,
        malformed_rate: float,
        duplicate_rate: float,
    ) -> None:
        self.rng = Random(seed)
        self.seed = seed
        self.landing_dir = landing_dir
        self.days = days
        self.events_per_day = events_per_day
        self.start_date = start_date
        self.start_ms = _epoch_ms(start_date)
        self.lines_per_file = lines_per_file
        self.malformed_rate = malformed_rate
        self.duplicate_rate = duplicate_rate
        self.spill = _Spill(spill_dir)
        self.writer: _DayWriter | None = None
        self.records = 0
        self.duplicates = 0
        self.malformed = dict.fromkeys(MALFORMED_KINDS, 0)
        self.files: list[Path] = []
        rng = self.rng
        self.practices = tuple(
            f"{rng.choice('ABCDEFGHJKLMNPY')}{rng.randrange(10_000, 99_999)}"
            for _ in range(GP_PRACTICES)
        )
        self.clients = [self._new_client(i) for i in range(max(1, clients))]
        # Big trusts send more: client i gets weight 1 / (i + 1).
        self.client_weights = tuple(1.0 / (i + 1) for i in range(len(self.clients)))
        self.request_counter: dict[str, int] = {}  # per client, reset daily

    def _new_client(self, index: int) -> _Client:
        rng = self.rng
        created = self.start_ms - rng.randrange(100, 1000) * DAY_MS + rng.randrange(DAY_MS)
        client = _Client(
            clientid=_uuid(rng),
            letter=_letters(index),
            createddate=iso_ms(created),
            letter_supplier=rng.choice(("MBA", "SYNERTEC")),
        )
        for _ in range(rng.randint(2, 5)):
            client.campaigns.append(
                _Campaign(
                    campaignid=_uuid(rng),
                    sendinggroupid=_uuid(rng),
                    sendinggroupidversion=rng.randint(1, 4),
                    channels=rng.choice(_CHANNEL_PLANS),
                )
            )
        return client

    # -- delivery -----------------------------------------------------------------------

    def emit(self, ts: int, record: dict[str, Any]) -> None:
        """Route a record to the day it is delivered on (or drop it: outside the window)."""
        line = _encode(record)
        ts_day = (ts - self.start_ms) // DAY_MS
        delivery = ts_day
        if self.rng.random() < LATE_DELIVERY_RATE:
            delivery = (ts + self.rng.randrange(DAY_MS) - self.start_ms) // DAY_MS
        if delivery < 0 or delivery >= self.days:
            return
        writer = self.writer
        if writer is not None and delivery == writer.day:
            writer.add_record(line, ts_day)
        else:
            self.spill.add(delivery, "R", ts_day, line)

    def malformed_line(self, kind: str, line: str) -> str:
        """A broken variant of a good line; still a single line of text."""
        rng = self.rng
        if kind == "not_json":
            return rng.choice(
                (
                    f"#### corrupted record {rng.getrandbits(64):016x} ####",
                    "{'pk': 'CLIENT#unknown', 'status': 'SENDING'}",
                    f"ERROR: stream shard iterator expired at {rng.getrandbits(32)}",
                )
            )
        if kind == "truncated":
            return line[: rng.randrange(len(line) // 4, len(line) - 1)]
        obj = json.loads(line)
        if kind == "not_object":
            payload: Any = rng.choice(([obj["sk"], obj["timestamp"]], obj["timestamp"]))
            return json.dumps(payload)
        if kind == "missing_sk":
            del obj["sk"]
        elif kind == "missing_timestamp":
            del obj["timestamp"]
        elif kind == "bad_timestamp_type":
            obj["timestamp"] = rng.choice(("yesterday", "N/A", iso_ms(obj["timestamp"])))
        elif kind == "non_iso_date":
            obj["createddate"] = time.strftime(
                "%d/%m/%Y %H:%M", time.gmtime(obj["timestamp"] // 1000)
            )
        else:
            raise ValueError(f"unknown malformed kind {kind}")
        return _encode(obj)

    # -- simulation ---------------------------------------------------------------------

    def run(self) -> None:
        for day in range(-WARMUP_DAYS, self.days):
            self.writer = None
            if day >= 0:
                day_date = self.start_date + timedelta(days=day)
                self.writer = _DayWriter(
                    self, day, partition_dir(self.landing_dir, day_date), self.lines_per_file
                )
                for flag, ts_day, line in self.spill.take(day):
                    if flag == "D":
                        self.writer.add_duplicate(line)
                    else:
                        self.writer.add_record(line, ts_day)
            self._simulate_day(day)
            if self.writer is not None:
                self.writer.close()
        self.spill.close()

    def _simulate_day(self, day: int) -> None:
        rng = self.rng
        day_start = self.start_ms + day * DAY_MS
        self.request_counter = {}
        if day == 0:
            for client in self.clients:  # a snapshot of every client at the start
                self._client_record(client, day_start + rng.randrange(HOUR_MS))
        elif day > 0:
            for client in self.clients:
                if rng.random() < CLIENT_RENAME_RATE:
                    client.renames += 1
                    self._client_record(client, day_start + rng.randrange(DAY_MS))
        items_left = round(self.events_per_day / RECORDS_PER_ITEM)
        while items_left > 0:
            size = min(items_left, max(1, min(2_000, int(rng.lognormvariate(3.5, 1.2)))))
            client = rng.choices(self.clients, weights=self.client_weights)[0]
            if rng.random() < 0.85:  # office hours, mostly
                created = day_start + 7 * HOUR_MS + rng.randrange(12 * HOUR_MS)
            else:
                created = day_start + rng.randrange(DAY_MS)
            self._request(client, rng.choice(client.campaigns), day, created, size)
            items_left -= size

    def _client_record(self, client: _Client, ts: int) -> None:
        self.emit(
            ts,
            {
                "pk": f"CLIENT#{client.clientid}",
                "sk": f"CLIENT#{client.clientid}",
                "timestamp": ts,
                "clientid": client.clientid,
                "createddate": client.createddate,
                "clientname": client.clientname,
            },
        )

    def _request(
        self, client: _Client, campaign: _Campaign, day: int, created: int, size: int
    ) -> None:
        rng = self.rng
        number = self.request_counter.get(client.clientid, 0) + 1
        self.request_counter[client.clientid] = number
        day_label = time.strftime("%Y%m%d", time.gmtime(created // 1000))
        requestid = _uuid(rng)
        requestrefid = f"HT{client.letter}-{day_label}-{number:05d}"
        request = {
            "pk": f"CLIENT#{client.clientid}",
            "clientid": client.clientid,
            "campaignid": campaign.campaignid,
            "sendinggroupid": campaign.sendinggroupid,
            "sendinggroupidversion": campaign.sendinggroupidversion,
            "requestid": requestid,
            "requestrefid": requestrefid,
        }
        t = created
        for index in range(size):
            t += rng.randrange(5, 400)
            self._item(client, campaign, request, f"{requestrefid}-{index + 1:05d}", t)

    def _item(
        self,
        client: _Client,
        campaign: _Campaign,
        request: dict[str, Any],
        refid: str,
        created: int,
    ) -> None:
        rng = self.rng
        emit = self.emit
        patient = rng.randrange(1, PATIENT_POOL + 1)
        itemid = _uuid(rng)
        nhsnumber = synthetic_nhs_number(patient, self.seed)
        base = {
            **request,
            "sk": f"REQUEST_ITEM#{itemid}",
            "timestamp": created,
            "requestitemid": itemid,
            "requestitemrefid": refid,
            "nhsnumber": nhsnumber,
            "createddate": iso_ms(created),
            "completeddate": None,
            "status": "PENDING_ENRICHMENT",
            "failedreason": None,
            "failedreasoncode": None,
            "completedcommunicationtypes": None,
            "failedcommunicationtypes": None,
            "patientodscode": self.practices[(patient * 7_919) % GP_PRACTICES],
        }
        # Keep DESIGN's field order: pk, sk, timestamp, ... rather than request's order.
        item = {k: base[k] for k in _ITEM_FIELDS}
        emit(created, item)
        stuck = rng.random() < STUCK_ITEM_RATE
        if stuck and rng.random() < 0.5:
            return
        t = created + int(rng.lognormvariate(10.3, 1.0))  # enrichment: ~30 s median
        if rng.random() < ENRICHMENT_FAILURE_RATE:
            reason, code = rng.choice(_ENRICHMENT_FAILURES)
            emit(
                t,
                {
                    **item,
                    "timestamp": t,
                    "status": "FAILED",
                    "completeddate": iso_ms(t),
                    "failedreason": reason,
                    "failedreasoncode": code,
                    "completedcommunicationtypes": [],
                    "failedcommunicationtypes": [],
                },
            )
            return
        emit(t, {**item, "timestamp": t, "status": "ENRICHED"})
        if stuck:
            return

        plans = []
        for order, channel in enumerate(campaign.channels, start=1):
            planid = _uuid(rng)
            plan_created = t + rng.randrange(1, 500)
            plan = {
                "pk": item["pk"],
                "sk": f"REQUEST_ITEM_PLAN#{planid}",
                "timestamp": plan_created,
                "clientid": client.clientid,
                "campaignid": campaign.campaignid,
                "sendinggroupid": campaign.sendinggroupid,
                "sendinggroupidversion": campaign.sendinggroupidversion,
                "requestid": request["requestid"],
                "requestrefid": request["requestrefid"],
                "requestitemid": itemid,
                "requestitemrefid": refid,
                "requestitemplanid": planid,
                "nhsnumber": nhsnumber,
                "createddate": iso_ms(plan_created),
                "completeddate": None,
                "status": "PENDING",
                "failedreason": None,
                "failedreasoncode": None,
                "communicationtype": channel,
                "supplier": client.letter_supplier if channel == "LETTER" else "NOTIFY",
                "channeltype": "primary" if order == 1 else "secondary",
                "ordernumber": order,
            }
            emit(plan_created, plan)
            plans.append(plan)
        t += 500 + rng.randrange(1_000, 10_000)
        emit(t, {**item, "timestamp": t, "status": "SENDING"})

        completed: list[str] = []
        failed: list[str] = []
        for plan in plans:
            channel = plan["communicationtype"]
            if completed:
                t += rng.randrange(10, 1_000)
                emit(t, {**plan, "timestamp": t, "status": "SKIPPED", "completeddate": iso_ms(t)})
                continue
            if rng.random() < PLAN_SKIP_RATE:  # e.g. no contact details for this channel
                t += rng.randrange(10, 1_000)
                emit(t, {**plan, "timestamp": t, "status": "SKIPPED", "completeddate": iso_ms(t)})
                continue
            t += rng.randrange(100, 5_000)
            emit(t, {**plan, "timestamp": t, "status": "SENDING"})
            if rng.random() < STUCK_PLAN_RATE:
                return  # the plan, and so its item, never hears back
            median, sigma = _DELIVERY_TIME[channel]
            t += int(median * rng.lognormvariate(0.0, sigma))
            if rng.random() < PLAN_FAILURE_RATE[channel]:
                reason, code = rng.choice(_PLAN_FAILURES[channel])
                emit(
                    t,
                    {
                        **plan,
                        "timestamp": t,
                        "status": "FAILED",
                        "completeddate": iso_ms(t),
                        "failedreason": reason,
                        "failedreasoncode": code,
                    },
                )
                failed.append(channel)
                t += int(30 * MINUTE_MS * rng.lognormvariate(0.0, 1.0))  # fallback delay
            else:
                emit(t, {**plan, "timestamp": t, "status": "DELIVERED", "completeddate": iso_ms(t)})
                completed.append(channel)

        t += rng.randrange(100, 5_000)
        final: dict[str, Any] = {
            **item,
            "timestamp": t,
            "completeddate": iso_ms(t),
            "completedcommunicationtypes": completed,
            "failedcommunicationtypes": failed,
        }
        if completed:
            final["status"] = "COMPLETED"
        else:
            reason, code = _ALL_CHANNELS_FAILED
            final.update(status="FAILED", failedreason=reason, failedreasoncode=code)
        emit(t, final)


_ITEM_FIELDS = (
    "pk",
    "sk",
    "timestamp",
    "clientid",
    "campaignid",
    "sendinggroupid",
    "sendinggroupidversion",
    "requestid",
    "requestrefid",
    "requestitemid",
    "requestitemrefid",
    "nhsnumber",
    "createddate",
    "completeddate",
    "status",
    "failedreason",
    "failedreasoncode",
    "completedcommunicationtypes",
    "failedcommunicationtypes",
    "patientodscode",
)


def _epoch_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_MS


def write_cdc_landing(
    landing_dir: Path,
    *,
    days: int,
    events_per_day: int,
    start_date: date,
    seed: int,
    clients: int = 4,
    lines_per_file: int = 50_000,
    malformed_rate: float = 0.002,
    duplicate_rate: float = 0.01,
) -> CdcGenerationStats:
    """Write ``days`` days of CDC landing files starting at ``start_date``.

    Replaces every ``*.jsonl`` file under ``<landing_dir>/transaction_history``.
    ``events_per_day`` is the approximate number of well-formed records per day.
    """
    if days <= 0 or events_per_day < 0 or lines_per_file <= 0:
        raise ValueError("days and lines_per_file must be > 0, events_per_day >= 0")
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous_output(landing_dir)
    with tempfile.TemporaryDirectory(prefix=".cdc-spill-", dir=landing_dir) as spill_dir:
        gen = _Generator(
            landing_dir,
            Path(spill_dir),
            days=days,
            events_per_day=events_per_day,
            start_date=start_date,
            seed=seed,
            clients=clients,
            lines_per_file=lines_per_file,
            malformed_rate=malformed_rate,
            duplicate_rate=duplicate_rate,
        )
        try:
            gen.run()
        finally:
            gen.spill.close()
    return CdcGenerationStats(
        records=gen.records,
        duplicates=gen.duplicates,
        malformed=dict(gen.malformed),
        files=list(gen.files),
    )
