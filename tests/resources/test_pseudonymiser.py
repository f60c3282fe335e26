"""The pseudonymiser never shows its key and hashes the same way in Python and Spark."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.pseudonymiser import Pseudonymiser
from transforms.identifiers import hmac_sha256_hex

KEY = "a-long-enough-secret-key"


def test_pseudonymiser_hash_is_keyed_hmac_sha256() -> None:
    pseudonymiser = Pseudonymiser(key=KEY)
    assert pseudonymiser.hash_value("9434765919") == hmac_sha256_hex(KEY.encode(), "9434765919")
    assert Pseudonymiser(key=KEY + "x").hash_value("9434765919") != pseudonymiser.hash_value(
        "9434765919"
    )


def test_pseudonymiser_repr_hides_the_key() -> None:
    assert KEY not in repr(Pseudonymiser(key=KEY))


def test_pseudonymiser_rejects_a_short_key() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        Pseudonymiser(key="short").hash_value("9434765919")


def test_pseudonymiser_reports_nhs_number_problems_without_the_value() -> None:
    reason = Pseudonymiser.nhs_number_problem("9434765918")
    assert reason == "NHS number check digit is wrong (modulus 11)"
    assert "9434765918" not in reason


def test_pseudonymiser_reads_a_key_file_when_no_key_is_given(tmp_path: Path) -> None:
    key_file = tmp_path / "pseudonymisation.key"
    key_file.write_text(KEY + "\n", encoding="ascii")
    from_file = Pseudonymiser(key_file=str(key_file))
    assert from_file.hash_value("9434765919") == Pseudonymiser(key=KEY).hash_value("9434765919")
    with pytest.raises(ValueError, match="at least 16 characters"):
        Pseudonymiser().hash_value("9434765919")
