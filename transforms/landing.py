"""Landed CDC files: which keys are landing files, and their lines, plain or gzip.

Real change-capture exports arrive gzip-compressed (``*.jsonl.gz``) as often as plain.
Both are the same feed: a compressed file is decompressed whole before parsing, and
its identity for exactly-once ingestion is the SHA-256 of its decompressed lines, so
``x.jsonl`` and ``x.jsonl.gz`` holding the same lines are one delivery, not two.

A compressed file that cannot be decompressed whole (cut short in transfer, not gzip
at all, a failed checksum) is refused as a whole with one line saying why: parsing
the part that did decompress would ingest a prefix of the file, and the complete file
delivered later would then count those records twice.
"""

from __future__ import annotations

import gzip
import zlib

PLAIN_SUFFIX = ".jsonl"
GZIP_SUFFIX = ".jsonl.gz"
LANDING_SUFFIXES = (PLAIN_SUFFIX, GZIP_SUFFIX)
GZIP_MAGIC = b"\x1f\x8b"


class LandingFileError(ValueError):
    """A landed file that cannot be read as a whole; the message is one line, no content."""


def is_landing_file(key: str) -> bool:
    """Whether a key under the landing prefix is a CDC file to ingest."""
    return key.endswith(LANDING_SUFFIXES)


def landed_lines(key: str, data: bytes) -> bytes:
    """The JSON lines of a landed file: ``data`` itself, or decompressed for ``*.jsonl.gz``.

    Raises:
        LandingFileError: a compressed file that does not decompress whole.
    """
    if not key.endswith(GZIP_SUFFIX):
        return data
    if data and data[:2] != GZIP_MAGIC:
        raise LandingFileError("file named .gz is not gzip-compressed")
    try:
        return gzip.decompress(data)
    except EOFError:
        raise LandingFileError(
            "gzip file is truncated (the compressed stream ends early)"
        ) from None
    except gzip.BadGzipFile as exc:
        # The library's messages quote bytes of the file; name the fault only.
        if str(exc).startswith("Not a gzipped file"):
            raise LandingFileError(
                "gzip file is corrupt (bytes after the compressed data)"
            ) from None
        raise LandingFileError("gzip file is corrupt (checksum or length mismatch)") from None
    except zlib.error:
        raise LandingFileError("gzip file is corrupt (invalid compressed data)") from None
