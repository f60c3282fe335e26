"""How synthetic CDC records reach the landing zone: daily partition folders of JSON lines,
spilled and renamed into place.
"""

from __future__ import annotations

import gzip
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from random import Random
from typing import IO, Protocol

from flowehr_pipelines.synthetic.cdc_model import MALFORMED_KINDS, TRANSACTION_HISTORY
from transforms.landing import GZIP_SUFFIX, PLAIN_SUFFIX

# zlib's default level: most of level 9's size at a fraction of its time.
GZIP_LEVEL = 6


def iso_ms(epoch_ms: int) -> str:
    """Format epoch ms as ``2026-11-20T13:45:12.123Z``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def random_uuid(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def client_letters(index: int) -> str:
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


def clear_previous_output(landing_dir: Path) -> None:
    """Remove earlier runs' part files (and empty partition dirs) so none go stale."""
    for spill in landing_dir.glob(".cdc-spill-*"):
        shutil.rmtree(spill, ignore_errors=True)
    root = landing_dir / TRANSACTION_HISTORY
    if not root.exists():
        return
    for pattern in ("*.jsonl", "*.jsonl.gz", "*.tmp"):
        for path in root.rglob(pattern):
            path.unlink()
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


class Spill:
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


class _Feed(Protocol):
    """What a day writer reads and counts on the generator that feeds it."""

    rng: Random
    days: int
    duplicate_rate: float
    malformed_rate: float
    records: int
    duplicates: int
    malformed: dict[str, int]
    spill: Spill
    files: list[Path]
    compress: bool

    def malformed_line(self, kind: str, line: str) -> str: ...


class DayWriter:
    """Writes one delivery day's lines as shuffled part files of bounded size.

    Also injects the re-deliveries and malformed lines, since both are properties of
    delivery rather than of the source system.
    """

    def __init__(self, gen: _Feed, day: int, directory: Path, lines_per_file: int) -> None:
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
        suffix = GZIP_SUFFIX if self.gen.compress else PLAIN_SUFFIX
        final = self.directory / f"part-{self.part:05d}{suffix}"
        tmp = final.with_name(final.name + ".tmp")
        body = "".join(f"{line}\n" for line in self.buffer).encode("utf-8")
        if self.gen.compress:
            # mtime=0 and no file name in the header: same seed, same bytes.
            body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        tmp.write_bytes(body)
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
