"""A small, seeded silver EHR world written to Delta, and a changelog load to apply to it.

Feature asset tests build the silver tables themselves, so they exercise the feature
store without the bronze and silver assets in the way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa

from resources.delta.store import DeltaTableStore
from tests.transforms.features.silver_rows import (
    T0,
    arrow,
    diagnosis,
    lab,
    obs,
    patient,
    visit,
)

LABS = (("HB", 115, 165), ("CRP", 0, 5), ("NA", 133, 146), ("K", 3.5, 5.3))
CODES = ("A41.9", "J18.9", "I50.9", "U07.1", "N39.0")


@dataclass
class SilverWorld:
    """Silver rows by table, with a global change_seq like the source's."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_seq: int = 1

    def seq(self) -> int:
        self.next_seq += 1
        return self.next_seq

    def write(self, delta: DeltaTableStore) -> None:
        for name, rows in self.tables.items():
            delta.overwrite(("silver", "ehr", name), arrow(name, rows))

    def arrow(self, name: str) -> pa.Table:
        return arrow(name, self.tables[name])


def build_world(seed: int = 11, people: int = 6) -> SilverWorld:
    rng = random.Random(seed)
    known = random.Random(seed + 1)  # when facts became known: late results, charting, coding
    world = SilverWorld(
        tables={
            "patients": [],
            "visits": [],
            "observations": [],
            "lab_results": [],
            "diagnoses": [],
        }
    )
    visit_id = obs_id = lab_id = dx_id = 0
    for p in range(1, people + 1):
        key = f"person-{p}"
        world.tables["patients"].append(patient(p, key, seq=world.seq(), birth_year=1930 + 9 * p))
        start = rng.uniform(0, 48)
        for _ in range(rng.choice((1, 2, 2, 3))):
            visit_id += 1
            stay = rng.uniform(10, 60)
            still_in = rng.random() < 0.15
            disposition = rng.choice(("home", "home", "transfer", "died"))
            world.tables["visits"].append(
                visit(
                    visit_id,
                    key,
                    start,
                    None if still_in else start + stay,
                    disposition=disposition,
                    seq=world.seq(),
                    patient_id=p,
                )
            )
            t = start + rng.uniform(0, 2)
            while t < start + stay:
                obs_id += 1
                world.tables["observations"].append(
                    obs(
                        obs_id,
                        visit_id,
                        round(t, 2),
                        seq=world.seq(),
                        person_key=key,
                        charted=round(t + known.uniform(0.5, 3), 2)
                        if known.random() < 0.2
                        else None,
                        respiratory_rate=rng.randint(8, 30),
                        spo2=rng.randint(85, 100),
                        on_supplemental_oxygen=rng.random() < 0.2,
                        temperature=round(rng.uniform(35, 40), 1),
                        systolic_bp=rng.randint(80, 200),
                        heart_rate=None if rng.random() < 0.05 else rng.randint(40, 140),
                        consciousness=rng.choice("AAAAAACVPU"),
                    )
                )
                t += rng.choice((1.0, 2.5, 4.0, 4.0, 5.0))
            t = start + rng.uniform(0, 3)
            while t < start + stay:
                late = known.random() < 0.2
                resulted = round(t + (known.uniform(12, 40) if late else known.uniform(0.5, 3)), 2)
                for code, low, high in LABS:
                    lab_id += 1
                    world.tables["lab_results"].append(
                        lab(
                            lab_id,
                            visit_id,
                            round(t, 2),
                            code,
                            round(rng.uniform(low * 0.7, high * 1.3 + 1), 1),
                            low=low,
                            high=high,
                            seq=world.seq(),
                            person_key=key,
                            resulted=resulted,
                        )
                    )
                t += rng.uniform(12, 30)
            for code in known.sample(CODES, known.choice((1, 1, 2))):
                dx_id += 1
                after_discharge = not still_in and known.random() < 0.3
                recorded = start + stay + known.uniform(1, 200) if after_discharge else start + 1
                world.tables["diagnoses"].append(
                    diagnosis(
                        dx_id, visit_id, round(recorded, 2), code, seq=world.seq(), person_key=key
                    )
                )
            if still_in:
                break
            start += stay + rng.choice((48, 24 * 20, 24 * 45))
    return world


@dataclass(frozen=True)
class Changes:
    """Which visits a changelog load touched, per reason."""

    observation_updated: int
    observation_deleted: int
    lab_added: int
    visit_deleted: int
    patient_changed: str
    readmitted_person: str
    new_visit: int


def apply_changelog(world: SilverWorld) -> Changes:
    """Update, delete and insert rows across tables, as a changelog load would."""
    t = world.tables
    visits_by_id = {v["visit_id"]: v for v in t["visits"]}
    with_obs = sorted({o["visit_id"] for o in t["observations"]})
    with_labs = sorted({r["visit_id"] for r in t["lab_results"]})
    updated_visit, deleted_obs_visit = with_obs[0], with_obs[2]
    first = next(o for o in t["observations"] if o["visit_id"] == updated_visit)
    first.update(heart_rate=150, change_seq=world.seq())
    doomed = next(o for o in t["observations"] if o["visit_id"] == deleted_obs_visit)
    t["observations"].remove(doomed)
    lab_visit = with_labs[1]
    last = max(r["lab_result_id"] for r in t["lab_results"])
    v = visits_by_id[lab_visit]
    hours = (v["admission_datetime"] - T0).total_seconds() / 3600 + 1
    t["lab_results"].append(
        lab(
            last + 1,
            lab_visit,
            hours,
            "CRP",
            250.0,
            low=0,
            high=5,
            seq=world.seq(),
            person_key=v["person_key"],
        )
    )
    gone = max(visits_by_id)
    t["visits"] = [v for v in t["visits"] if v["visit_id"] != gone]
    t["observations"] = [o for o in t["observations"] if o["visit_id"] != gone]
    t["lab_results"] = [r for r in t["lab_results"] if r["visit_id"] != gone]
    t["diagnoses"] = [d for d in t["diagnoses"] if d["visit_id"] != gone]
    changed_patient = t["patients"][2]
    changed_patient.update(ethnicity="Any other ethnic group", change_seq=world.seq())
    # A readmission 5 days after a discharge flips that visit's 30-day label.
    discharged = next(
        v
        for v in t["visits"]
        if v["discharge_datetime"] is not None
        and v["discharge_disposition"] != "died"
        and v["person_key"] != changed_patient["person_key"]
    )
    new_id = max(v["visit_id"] for v in t["visits"]) + 100
    readmit = discharged["discharge_datetime"]
    row = visit(
        new_id,
        discharged["person_key"],
        0,
        30,
        seq=world.seq(),
        patient_id=discharged["patient_id"],
    )
    row["admission_datetime"] = readmit + timedelta(days=5)
    row["discharge_datetime"] = readmit + timedelta(days=6)
    t["visits"].append(row)
    last_obs = max(o["observation_id"] for o in t["observations"])
    t["observations"].append(
        obs(last_obs + 1, new_id, 0, seq=world.seq(), person_key=discharged["person_key"])
        | {"observed_at": row["admission_datetime"] + timedelta(hours=1)}
    )
    return Changes(
        observation_updated=updated_visit,
        observation_deleted=deleted_obs_visit,
        lab_added=lab_visit,
        visit_deleted=gone,
        patient_changed=changed_patient["person_key"],
        readmitted_person=discharged["person_key"],
        new_visit=new_id,
    )
