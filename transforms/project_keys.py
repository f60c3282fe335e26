"""Project-specific pseudonyms: each research project sees its own ``person_key``.

The published tables hold one pseudonym per patient (HMAC-SHA256 of the NHS number
under the master key). A research project's reader replaces it with
HMAC-SHA256(project key, published pseudonym), where the project key is derived from
the master key with HKDF-SHA256 (RFC 5869; ``cryptography``'s implementation, salted
with this scheme's name and bound to the project id through ``info``). So:

* within a project every table gives a patient the same key, and joins still work;
* two projects' keys for one patient differ, and without a project key (or the master
  key) nobody can map one to the other: extracts of two projects cannot be linked;
* the reader holds only its project key, never the master key.

Every column holding a published pseudonym (``person_key`` in the feature store,
``nhsnumberhash`` in reporting) is replaced, so no global pseudonym reaches a project.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PSEUDONYM_COLUMNS: frozenset[str] = frozenset({"person_key", "nhsnumberhash"})
_SALT = b"flowehr-pipelines/project-pseudonyms/v1"
KEY_BYTES = 32


def derive_project_key(master_key: bytes, project_id: str) -> bytes:
    """The project's key: HKDF-SHA256 of the master key, bound to the project id."""
    if not project_id:
        raise ValueError("a project id is required")
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=_SALT,
        info=b"project:" + project_id.encode("utf-8"),
    )
    return hkdf.derive(master_key)


def project_pseudonym(project_key: bytes, published: str) -> str:
    """One published pseudonym as the project sees it (64 hex characters)."""
    return hmac.new(project_key, published.encode("utf-8"), hashlib.sha256).hexdigest()


def rekey_column(project_key: bytes, values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column of published pseudonyms as the project sees them (nulls stay null).

    Each distinct value is hashed once (a patient has many rows).
    """
    encoded = pc.dictionary_encode(values.cast(pa.string()))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks else pa.array([], pa.string())
    if not isinstance(encoded, pa.DictionaryArray):
        return pa.array([], pa.string())
    dictionary = pa.array(
        [project_pseudonym(project_key, v) for v in encoded.dictionary.to_pylist()], pa.string()
    )
    return pc.take(dictionary, encoded.indices)


def rekey_table(
    project_key: bytes, table: pa.Table, columns: Iterable[str] = PSEUDONYM_COLUMNS
) -> pa.Table:
    """``table`` with every pseudonym column replaced by the project's pseudonyms."""
    for name in columns:
        index = table.schema.get_field_index(name)
        if index < 0:
            continue
        field = table.schema.field(index)
        table = table.set_column(
            index,
            pa.field(name, pa.string(), field.nullable),
            rekey_column(project_key, table[name]),
        )
    return table
