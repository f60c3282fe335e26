"""Patient identifier rules: NHS number validation and keyed hashing.

Pure Python and PySpark column expressions, with no Dagster import, so the same
rules run in a Dagster asset, a Databricks job and a unit test.

The Spark HMAC is built from Spark's native ``sha2`` rather than a Python UDF:
HMAC-SHA256(K, m) = SHA256((K ^ opad) || SHA256((K ^ ipad) || m)), and both padded
keys are constants, so the whole hash runs in the JVM with no Python round trip.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column

NHS_NUMBER_LENGTH = 10
# The one normalisation both engines apply: surrounding ASCII whitespace is dropped, then
# the value must be ten ASCII digits, or 3-3-4 with one kind of separator (space or
# hyphen). Anything else (inner line breaks, unicode digits, other groupings) is not an
# NHS number. Java's "$" also matches before a final line break, so the Spark patterns
# anchor with \A and \z, and Python uses fullmatch with ASCII classes.
_ASCII_SPACE = " \t\n\r\f\v"
_ACCEPTED_FORMAT = re.compile(r"[0-9]{10}|[0-9]{3}([ -])[0-9]{3}\1[0-9]{4}", re.ASCII)
_SPARK_TRIM = r"\A[ \t\n\r\f\x0B]+|[ \t\n\r\f\x0B]+\z"
_SPARK_FORMAT = r"\A(?:[0-9]{10}|[0-9]{3}([ -])[0-9]{3}\1[0-9]{4})\z"
_SPARK_REPDIGIT = r"\A([0-9])\1{9}\z"
_WEIGHTS = tuple(range(10, 1, -1))  # 10, 9, ..., 2 for the first nine digits
_SHA256_BLOCK = 64


class InvalidNhsNumberError(ValueError):
    """An NHS number that is not ten digits or whose check digit is wrong."""


def nhs_number_check_digit(first_nine: str) -> int | None:
    """Compute the modulus-11 check digit for the first nine digits of an NHS number.

    Args:
        first_nine: exactly nine ASCII digits.

    Returns:
        The check digit 0-9, or None when the remainder gives 10, which means no
        valid NHS number starts with these nine digits.

    Raises:
        InvalidNhsNumberError: when ``first_nine`` is not nine digits.
    """
    if len(first_nine) != 9 or not first_nine.isascii() or not first_nine.isdigit():
        raise InvalidNhsNumberError(
            f"expected 9 digits to compute a check digit, got {len(first_nine)} characters"
        )
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def nhs_number_digits(value: str) -> str | None:
    """The ten digits of a value in an accepted format, or None (see ``_ACCEPTED_FORMAT``)."""
    trimmed = value.strip(_ASCII_SPACE)
    if _ACCEPTED_FORMAT.fullmatch(trimmed) is None:
        return None
    return trimmed.replace(" ", "").replace("-", "")


def nhs_number_problem(value: object) -> str | None:
    """Explain why a value is not a valid NHS number.

    Accepted: ten digits, or "943 476 5919" / "943-476-5919", with any surrounding
    ASCII whitespace. Numbers of one repeated digit pass modulus 11 but are never
    issued, so they are invalid. The reason never repeats the value itself, so it is
    safe to log or to store in a quarantine table.

    Returns:
        None when the value is a valid NHS number, else a one-line reason.
    """
    if value is None:
        return "NHS number is missing"
    if not isinstance(value, str):
        return f"NHS number must be text, got {type(value).__name__}"
    bare = value.strip(_ASCII_SPACE).replace(" ", "").replace("-", "")
    if not bare:
        return "NHS number is empty"
    digits = nhs_number_digits(value)
    if digits is None:
        if not (bare.isascii() and bare.isdigit()):
            return "NHS number must contain only digits (0-9), spaces or hyphens"
        if len(bare) != NHS_NUMBER_LENGTH:
            return f"NHS number must be {NHS_NUMBER_LENGTH} digits, got {len(bare)}"
        return "NHS number must be 10 digits, or 3-3-4 digits split by one kind of separator"
    if len(set(digits)) == 1:
        return "NHS number is never issued: one repeated digit"
    expected = nhs_number_check_digit(digits[:9])
    if expected is None:
        return "NHS number is invalid: its first nine digits give check value 10"
    if expected != int(digits[9]):
        return "NHS number check digit is wrong (modulus 11)"
    return None


def valid_nhs_number_digits(value: str) -> str | None:
    """The ten digits of a valid NHS number, or None: the one rule every path hashes by."""
    return None if nhs_number_problem(value) is not None else nhs_number_digits(value)


def normalise_nhs_number(value: str) -> str:
    """Return the ten-digit form of a valid NHS number.

    Raises:
        InvalidNhsNumberError: with the reason from :func:`nhs_number_problem`.
    """
    problem = nhs_number_problem(value)
    if problem is not None:
        raise InvalidNhsNumberError(problem)
    digits = nhs_number_digits(value)
    assert digits is not None  # a valid number is in an accepted format
    return digits


def hmac_sha256_hex(key: bytes, value: str) -> str:
    """Keyed SHA-256 of a UTF-8 string, as 64 lowercase hex characters."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def nhs_notify_hash(key: bytes, value: str) -> str:
    """NHS Notify's pseudonym: base64 of SHA-256 over ``key || '.' || value``.

    Offered so that a team moving from NHS Notify keeps pseudonyms that join with its
    existing tables. Both constructions need the key to reproduce; this one is a
    secret-prefix hash rather than a MAC (SHA-256's length extension lets anyone extend
    a published digest to longer inputs without the key), so the default stays
    ``hmac_sha256_hex``, the construction reviewers expect.
    """
    digest = hashlib.sha256(key + b"." + value.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


def _padded_keys(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _SHA256_BLOCK:
        key = hashlib.sha256(key).digest()
    block = key.ljust(_SHA256_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def hmac_sha256_column(column: Column, key: bytes) -> Column:
    """HMAC-SHA256 of a string column as a native Spark expression.

    Args:
        column: a string column; nulls stay null.
        key: the secret key.

    Returns:
        A column of 64-character lowercase hex digests, equal to :func:`hmac_sha256_hex`.
    """
    from pyspark.sql import functions as F

    inner_pad, outer_pad = _padded_keys(key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), column.cast("binary")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def nhs_number_digits_column(column: Column) -> Column:
    """The ten digits of a value in an accepted format, else null: :func:`nhs_number_digits`.

    The value a pseudonym is computed over, so "9434765919" and "943 476 5919\\n" give
    one person one pseudonym.
    """
    from pyspark.sql import functions as F

    trimmed = F.regexp_replace(column, _SPARK_TRIM, "")
    return F.when(trimmed.rlike(_SPARK_FORMAT), F.regexp_replace(trimmed, "[ -]", ""))


def nhs_number_valid_column(column: Column) -> Column:
    """True where a string column holds a valid NHS number, as :func:`nhs_number_problem`.

    The modulus-11 rule is written with Spark column arithmetic so validation runs in
    the JVM at the same speed as any other filter. Digits are read with ``try_cast``:
    Spark evaluates every operand of ``&``, and under ANSI mode a plain cast of a
    letter would fail the whole query instead of marking one row invalid.
    """
    from pyspark.sql import functions as F

    digits = nhs_number_digits_column(column)
    weighted = sum(
        (F.substring(digits, i + 1, 1).try_cast("int") * w for i, w in enumerate(_WEIGHTS)),
        F.lit(0),
    )
    check = F.lit(11) - (weighted % 11)
    expected = F.when(check == 11, F.lit(0)).otherwise(check)
    valid = (
        digits.isNotNull()
        & ~digits.rlike(_SPARK_REPDIGIT)
        & (expected != 10)
        & (expected == F.substring(digits, 10, 1).try_cast("int"))
    )
    return F.coalesce(valid, F.lit(False))
