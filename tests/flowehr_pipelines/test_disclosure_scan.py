"""The disclosure scan reads every published table back, declared or not."""

from __future__ import annotations

import pyarrow as pa

from flowehr_pipelines.disclosure_scan import people_count_columns, scan_disclosure
from resources.delta.store import DeltaTableStore
from transforms.disclosure import DisclosurePolicy, protect_counts

POLICY = DisclosurePolicy()


def publish(store: DeltaTableStore, path: tuple[str, ...], table: pa.Table, declared: bool) -> str:
    store.overwrite(path, table)
    if declared:
        store.set_properties(path, POLICY.properties(["recipientcount"]))
    return "/".join(path)


def test_scan_finds_small_counts_and_undeclared_people_counts(store: DeltaTableStore) -> None:
    counts = pa.table({"day": [1, 2, 3], "recipientcount": [0, 5, 23]})
    good = publish(
        store,
        ("reporting", "views", "good"),
        protect_counts(counts, POLICY, ["recipientcount"]),
        True,
    )
    planted = publish(store, ("reporting", "views", "planted"), counts, True)
    undeclared = publish(
        store,
        ("gold", "features", "summary"),
        pa.table({"patient_count": [40], "messagecount": [3]}),
        False,
    )
    findings = scan_disclosure(store, [good, planted, undeclared])
    assert [(f.location, f.column, f.cells) for f in findings] == [
        (planted, "recipientcount", 2),
        (undeclared, "patient_count", 1),
    ]
    assert "breaking its rule" in findings[0].kind
    assert findings[1].kind == "a count of people under no disclosure rule"


def test_people_count_names() -> None:
    schema = pa.schema(
        [
            (name, pa.int64())
            for name in ("recipientcount", "totalmonthlyrecipients", "n_people", "patients_total")
        ]
        + [("messagecount", pa.int64()), ("clientcount", pa.int64()), ("recipient", pa.string())]
    )
    assert people_count_columns(schema) == [
        "recipientcount",
        "totalmonthlyrecipients",
        "n_people",
        "patients_total",
    ]
