"""When generated facts became known: the bitemporal side of the synthetic EHR source.

Most observation sets are charted as they are taken, some entered later from paper;
every lab result is reported after its collection, a few very late (sent away,
re-run); some diagnoses are coded by clinical coders days after discharge. Drawn
from a stream of their own, so adding them left every other generated value as it was.
"""

from __future__ import annotations

import random

from flowehr_pipelines.synthetic.ehr_schema import (
    CODED_AFTER_DISCHARGE_RATE,
    DAY,
    HOUR,
    LATE_CHARTING_RATE,
    LATE_RESULT_RATE,
)


class KnownAtClock:
    """Known-at times for facts, never after the generator's "now"."""

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)  # nosec B311: synthetic demo data, not security

    def charted(self, observed: int, now: int) -> int:
        """When a set was entered: at the bedside, or (sometimes) later from paper."""
        if self.rng.random() < LATE_CHARTING_RATE:
            return min(observed + self.rng.randrange(20 * 60, 6 * HOUR), now)
        return observed

    def resulted(self, collected: int, now: int) -> int:
        """When a panel's results were reported: within hours, sometimes days."""
        if self.rng.random() < LATE_RESULT_RATE:
            return min(collected + self.rng.randrange(12 * HOUR, 72 * HOUR), now)
        return min(collected + self.rng.randrange(30 * 60, 3 * HOUR), now)

    def coded(self, recorded: int, discharge: int | None, now: int) -> int:
        """When a diagnosis was coded: on the ward, or from the discharge summary later."""
        if discharge is not None and self.rng.random() < CODED_AFTER_DISCHARGE_RATE:
            return max(recorded, min(discharge + self.rng.randrange(HOUR, 21 * DAY), now))
        return recorded
