"""A deterministic, streaming generator of NHS Notify style CDC landing files.

Each line is one change record from a DynamoDB-like change capture of a communications
service: clients, request items and request item plans, each state change carrying
the entity's full current state (docs/CONTRACTS.md §4). The files are deliberately awkward
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
* **Atomic files.** Each part file is written as ``*.tmp`` then renamed. Existing
  ``*.jsonl`` and ``*.jsonl.gz`` files under ``transaction_history`` are removed first,
  so a run never mixes its files with a previous run's. ``compress=True`` writes
  gzip-compressed ``*.jsonl.gz`` files, as real change-capture exports often arrive.
* **Warm-up.** Generation starts a couple of days before ``start_date`` and drops what
  would have been delivered before it, so the first day looks like any other day of a
  feed that was already running (including items whose first records came earlier).

The NHS numbers come from the same seeded permutation as the EHR source's patients
(:func:`~flowehr_pipelines.synthetic.ehr_source.synthetic_nhs_number`), so with the same
seed, communications can be linked to patients ``1..PATIENT_POOL``.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from random import Random
from typing import Any

from flowehr_pipelines.synthetic.cdc_files import (
    DayWriter,
    Spill,
    clear_previous_output,
    client_letters,
    iso_ms,
    partition_dir,
    random_uuid,
)
from flowehr_pipelines.synthetic.cdc_model import (
    ALL_CHANNELS_FAILED,
    CHANNEL_PLANS,
    CLIENT_RENAME_RATE,
    CONTACT_DETAIL_SOURCES,
    DAY_MS,
    DELIVERY_TIME,
    ENRICHMENT_FAILURE_RATE,
    ENRICHMENT_FAILURES,
    GP_PRACTICES,
    HOUR_MS,
    LATE_DELIVERY_RATE,
    LEGACY_TEMPLATE_RATE,
    LETTER_SUPPLIERS,
    MALFORMED_KINDS,
    MINUTE_MS,
    PATIENT_POOL,
    PLAN_FAILURE_RATE,
    PLAN_FAILURES,
    PLAN_SKIP_RATE,
    RECORDS_PER_ITEM,
    SENDING_GROUP_NAMES,
    STUCK_ITEM_RATE,
    STUCK_PLAN_RATE,
    WARMUP_DAYS,
    Campaign,
    CdcGenerationStats,
    Client,
    contact_id,
    encode_json,
    epoch_ms,
    message_specification,
    weighted_choice,
)
from flowehr_pipelines.synthetic.ehr_schema import synthetic_nhs_number
from transforms.cdc import ITEM_IDENTITY_FIELDS, REQUEST_ITEM_FIELDS, REQUEST_ITEM_PLAN_FIELDS


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
        compress: bool = False,
    ) -> None:
        self.rng = Random(seed)  # nosec B311: synthetic demo data, not security
        self.seed = seed
        self.landing_dir = landing_dir
        self.days = days
        self.events_per_day = events_per_day
        self.start_date = start_date
        self.start_ms = epoch_ms(start_date)
        self.lines_per_file = lines_per_file
        self.malformed_rate = malformed_rate
        self.duplicate_rate = duplicate_rate
        self.compress = compress
        self.spill = Spill(spill_dir)
        self.writer: DayWriter | None = None
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

    def _new_client(self, index: int) -> Client:
        rng = self.rng
        created = self.start_ms - rng.randrange(100, 1000) * DAY_MS + rng.randrange(DAY_MS)
        client = Client(
            clientid=random_uuid(rng),
            letter=client_letters(index),
            createddate=iso_ms(created),
            letter_supplier=rng.choice(LETTER_SUPPLIERS),
            odscode=f"R{rng.choice('ABCDEFGHJKLMNPQRTVWXY')}{rng.randrange(10, 99)}",
        )
        for number in range(rng.randint(2, 5)):
            channels = rng.choice(CHANNEL_PLANS)
            group_created = created + rng.randrange(1, 60) * DAY_MS
            client.campaigns.append(
                Campaign(
                    campaignid=random_uuid(rng),
                    sendinggroupid=random_uuid(rng),
                    sendinggroupidversion=rng.randint(1, 4),
                    channels=channels,
                    sendinggroupname=(
                        f"{rng.choice(SENDING_GROUP_NAMES)} {client.letter}{number + 1}"
                    ),
                    sendinggroupcreateddate=iso_ms(group_created),
                    billingref=(
                        f"BR-{client.letter}-{rng.randrange(1000, 9999)}"
                        if rng.random() < 0.8
                        else None
                    ),
                    templates={channel: random_uuid(rng) for channel in channels},
                )
            )
        return client

    # -- delivery -----------------------------------------------------------------------

    def emit(self, ts: int, record: dict[str, Any]) -> None:
        """Route a record to the day it is delivered on (or drop it: outside the window)."""
        line = encode_json(record)
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
        return encode_json(obj)

    # -- simulation ---------------------------------------------------------------------

    def run(self) -> None:
        for day in range(-WARMUP_DAYS, self.days):
            self.writer = None
            if day >= 0:
                day_date = self.start_date + timedelta(days=day)
                self.writer = DayWriter(
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
        if day > 0:  # a rename shows in the client's request items from then on
            for client in self.clients:
                if rng.random() < CLIENT_RENAME_RATE:
                    client.renames += 1
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

    def _request(
        self, client: Client, campaign: Campaign, day: int, created: int, size: int
    ) -> None:
        rng = self.rng
        number = self.request_counter.get(client.clientid, 0) + 1
        self.request_counter[client.clientid] = number
        day_label = time.strftime("%Y%m%d", time.gmtime(created // 1000))
        requestid = random_uuid(rng)
        requestrefid = f"HT{client.letter}-{day_label}-{number:05d}"
        request = {
            "pk": f"CLIENT#{client.clientid}",
            "clientid": client.clientid,
            "clientname": client.clientname,
            "campaignid": campaign.campaignid,
            "sendinggroupid": campaign.sendinggroupid,
            "sendinggroupidversion": campaign.sendinggroupidversion,
            "sendinggroupname": campaign.sendinggroupname,
            "sendinggroupcreateddate": campaign.sendinggroupcreateddate,
            "requestid": requestid,
            "requestrefid": requestrefid,
        }
        t = created
        for index in range(size):
            t += rng.randrange(5, 400)
            self._item(client, campaign, request, f"{requestrefid}-{index + 1:05d}", t)

    def _item(
        self,
        client: Client,
        campaign: Campaign,
        request: dict[str, Any],
        refid: str,
        created: int,
    ) -> None:
        rng = self.rng
        emit = self.emit
        patient = rng.randrange(1, PATIENT_POOL + 1)
        itemid = random_uuid(rng)
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
            "billingref": campaign.billingref,
        }
        # Keep the contract's field order (docs/CONTRACTS.md §4): pk, sk, timestamp, ...
        item = {k: base[k] for k in REQUEST_ITEM_FIELDS}
        emit(created, item)
        stuck = rng.random() < STUCK_ITEM_RATE
        if stuck and rng.random() < 0.5:
            return
        t = created + int(rng.lognormvariate(10.3, 1.0))  # enrichment: ~30 s median
        if rng.random() < ENRICHMENT_FAILURE_RATE:
            reason, code = rng.choice(ENRICHMENT_FAILURES)
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
            planid = random_uuid(rng)
            plan_created = t + rng.randrange(1, 500)
            supplier = client.letter_supplier if channel == "LETTER" else "NOTIFY"
            fields = {
                "pk": item["pk"],
                "sk": f"REQUEST_ITEM_PLAN#{planid}",
                "timestamp": plan_created,
                **{k: item[k] for k in ITEM_IDENTITY_FIELDS},
                "requestitemplanid": planid,
                "createddate": iso_ms(plan_created),
                "completeddate": None,
                "datesent": None,
                "status": "PENDING",
                "failedreason": None,
                "failedreasoncode": None,
                "communicationtype": channel,
                "supplier": supplier,
                "channeltype": "primary" if order == 1 else "secondary",
                "ordernumber": order,
                "contactdetailsource": weighted_choice(rng, CONTACT_DETAIL_SOURCES),
                "recipientcontactid": contact_id(nhsnumber, channel),
                "templateid": campaign.templates[channel],
                **message_specification(rng, channel, supplier),
                "senderodscode": client.odscode,
            }
            plan = {k: fields[k] for k in REQUEST_ITEM_PLAN_FIELDS}
            if rng.random() < LEGACY_TEMPLATE_RATE:
                # An older sender names the template per supplier only (NHS Notify's
                # ``templates.suppliers`` map); the projection falls back to it.
                plan["templateid"] = None
                plan["templates"] = {"suppliers": {supplier.lower(): campaign.templates[channel]}}
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
            plan = {**plan, "datesent": iso_ms(t)}
            emit(t, {**plan, "timestamp": t, "status": "SENDING"})
            if rng.random() < STUCK_PLAN_RATE:
                return  # the plan, and so its item, never hears back
            median, sigma = DELIVERY_TIME[channel]
            t += int(median * rng.lognormvariate(0.0, sigma))
            if rng.random() < PLAN_FAILURE_RATE[channel]:
                reason, code = rng.choice(PLAN_FAILURES[channel])
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
            final["status"] = "DELIVERED"
        else:
            reason, code = ALL_CHANNELS_FAILED
            final.update(status="FAILED", failedreason=reason, failedreasoncode=code)
        emit(t, final)


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
    compress: bool = False,
) -> CdcGenerationStats:
    """Write ``days`` days of CDC landing files starting at ``start_date``.

    Replaces every ``*.jsonl`` and ``*.jsonl.gz`` file under
    ``<landing_dir>/transaction_history``; ``compress`` writes the gzip kind.
    ``events_per_day`` is the approximate number of well-formed records per day.
    """
    if days <= 0 or events_per_day < 0 or lines_per_file <= 0:
        raise ValueError("days and lines_per_file must be > 0, events_per_day >= 0")
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    clear_previous_output(landing_dir)
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
            compress=compress,
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
