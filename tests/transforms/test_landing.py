"""Landed files plain or gzip: the same lines, and a whole-file refusal in one line."""

from __future__ import annotations

import gzip

import pytest

from transforms.landing import LandingFileError, is_landing_file, landed_lines

BODY = b'{"sk":"REQUEST_ITEM#1","timestamp":1}\n' * 200
PACKED = gzip.compress(BODY)


def test_landing_files_are_jsonl_plain_or_gzip() -> None:
    assert is_landing_file("landing/transaction_history/part-1.jsonl")
    assert is_landing_file("landing/transaction_history/part-1.jsonl.gz")
    for other in ("part-1.json", "part-1.gz", "part-1.jsonl.tmp", "part-1.jsonl.gz.tmp"):
        assert not is_landing_file(other)


def test_plain_files_are_read_as_they_are_and_gzip_ones_decompressed() -> None:
    assert landed_lines("x.jsonl", BODY) is BODY
    assert landed_lines("x.jsonl.gz", PACKED) == BODY
    assert landed_lines("x.jsonl.gz", PACKED + gzip.compress(BODY)) == BODY * 2  # two members
    assert landed_lines("x.jsonl.gz", b"") == b""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (PACKED[: len(PACKED) // 2], "gzip file is truncated (the compressed stream ends early)"),
        (PACKED[:10], "gzip file is truncated (the compressed stream ends early)"),
        (BODY, "file named .gz is not gzip-compressed"),
        (
            PACKED[:-8] + b"\0\0\0\0" + PACKED[-4:],
            "gzip file is corrupt (checksum or length mismatch)",
        ),
        (
            PACKED[:20] + b"\xff" * 10 + PACKED[30:],
            "gzip file is corrupt (invalid compressed data)",
        ),
        (PACKED + b"junk", "gzip file is corrupt (bytes after the compressed data)"),
    ],
    ids=["truncated", "header only", "not gzip", "bad checksum", "bad data", "trailing bytes"],
)
def test_a_gzip_file_that_does_not_decompress_whole_is_refused_in_one_line(
    data: bytes, reason: str
) -> None:
    with pytest.raises(LandingFileError) as caught:
        landed_lines("x.jsonl.gz", data)
    assert str(caught.value) == reason
    assert "\n" not in str(caught.value)
