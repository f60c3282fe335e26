"""Project keys: HKDF-SHA256 per project, HMAC re-keying of published pseudonyms."""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from transforms.project_keys import derive_project_key, project_pseudonym, rekey_table

MASTER = b"test-pseudonymisation-key-0123456789"


def test_project_key_is_hkdf_sha256_bound_to_the_project() -> None:
    expected = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"flowehr-pipelines/project-pseudonyms/v1",
        info=b"project:proj-a",
    ).derive(MASTER)
    assert derive_project_key(MASTER, "proj-a") == expected
    assert derive_project_key(MASTER, "proj-a") != derive_project_key(MASTER, "proj-b")
    assert derive_project_key(MASTER, "proj-a") != derive_project_key(
        b"another-key-0123456", "proj-a"
    )
    with pytest.raises(ValueError):
        derive_project_key(MASTER, "")


def test_rekeying_is_hmac_of_the_published_pseudonym_and_keeps_nulls() -> None:
    key = derive_project_key(MASTER, "proj-a")
    table = pa.table({"person_key": ["a", "b", "a", None], "value": [1, 2, 3, 4]})
    out = rekey_table(key, table)
    expected = hmac.new(key, b"a", hashlib.sha256).hexdigest()
    assert out["person_key"].to_pylist() == [
        expected,
        project_pseudonym(key, "b"),
        expected,
        None,
    ]
    assert out["value"].to_pylist() == [1, 2, 3, 4]
    assert (
        rekey_table(key, pa.table({"nhsnumberhash": ["a"]}))["nhsnumberhash"][0].as_py() == expected
    )
