"""NHS number validation and HMAC-SHA256, in Python and as Spark column expressions."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from transforms.identifiers import (
    InvalidNhsNumberError,
    hmac_sha256_column,
    hmac_sha256_hex,
    nhs_notify_hash,
    nhs_number_check_digit,
    nhs_number_problem,
    nhs_number_valid_column,
    normalise_nhs_number,
)

# NHS Digital's worked example of the modulus-11 algorithm.
NHS_EXAMPLE = "9434765919"
# 1*10 + 2*9 + ... + 9*2 = 210; 210 % 11 = 1, so 11 - 1 = 10: no valid check digit.
CHECK_TEN_PREFIX = "123456789"
# 4*10 + 0*9 + 1*8 + 0*7 + 2*6 + 3*5 + 2*4 + 1*3 + 1*2 = 88 = 8 * 11: check 11 -> 0.
CHECK_ZERO_PREFIX = "401023211"

RFC4231_CASE_2 = (
    b"Jefe",
    "what do ya want for nothing?",
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
)
RFC4231_CASE_6 = (
    b"\xaa" * 131,
    "Test Using Larger Than Block-Size Key - Hash Key First",
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
)

# Every shape of input the Spark expressions must judge exactly as Python does.
NHS_SAMPLES: list[str | None] = [
    NHS_EXAMPLE,
    "943 476 5919",
    "943-476-5919",
    " 9434765919 ",
    f"{CHECK_ZERO_PREFIX}0",
    "9434765918",
    "9434765910",
    f"{CHECK_TEN_PREFIX}0",
    f"{CHECK_TEN_PREFIX}9",
    "943476591",
    "94347659190",
    "94347659AB",
    "ABCDEFGHIJ",
    "943.476.5919",
    "943_476_5919",
    "",
    "   ",
    None,
]


def test_nhs_number_check_digit_matches_nhs_digital_example():
    assert nhs_number_check_digit(NHS_EXAMPLE[:9]) == 9


def test_nhs_number_check_digit_eleven_becomes_zero():
    assert nhs_number_check_digit(CHECK_ZERO_PREFIX) == 0


def test_nhs_number_check_digit_ten_has_no_digit():
    assert nhs_number_check_digit(CHECK_TEN_PREFIX) is None


@pytest.mark.parametrize("first_nine", ["94347659", "9434765919", "94347659a", "٩٤٣٤٧٦٥٩١"])
def test_nhs_number_check_digit_rejects_anything_but_nine_ascii_digits(first_nine):
    with pytest.raises(InvalidNhsNumberError):
        nhs_number_check_digit(first_nine)


@pytest.mark.parametrize(
    "value", [NHS_EXAMPLE, "943 476 5919", "943-476-5919", f"{CHECK_ZERO_PREFIX}0"]
)
def test_nhs_number_problem_accepts_valid_numbers_with_separators(value):
    assert nhs_number_problem(value) is None


@pytest.mark.parametrize(
    ("value", "reason_fragment"),
    [
        (None, "missing"),
        (9434765919, "must be text"),
        ("", "empty"),
        (" - ", "empty"),
        ("94347659AB", "only digits"),
        ("943.476.5919", "only digits"),
        ("٩٤٣٤٧٦٥٩١٩", "only digits"),  # Arabic-Indic digits pass str.isdigit()
        ("943476591", "10 digits, got 9"),
        ("94347659190", "10 digits, got 11"),
        ("9434765918", "check digit is wrong"),
        (f"{CHECK_TEN_PREFIX}0", "check value 10"),
        (f"{CHECK_TEN_PREFIX}9", "check value 10"),
    ],
)
def test_nhs_number_problem_names_the_reason(value, reason_fragment):
    problem = nhs_number_problem(value)
    assert problem is not None
    assert reason_fragment in problem


@pytest.mark.parametrize(
    "value",
    ["9434765918", "943476591", "94347659190", "94347659AB", f"{CHECK_TEN_PREFIX}0", "12345"],
)
def test_nhs_number_problem_never_repeats_the_value(value):
    problem = nhs_number_problem(value)
    assert problem is not None
    assert value not in problem
    assert value.replace(" ", "")[:6] not in problem


def test_normalise_nhs_number_strips_separators():
    assert normalise_nhs_number("943 476 5919\n") == NHS_EXAMPLE
    with pytest.raises(InvalidNhsNumberError, match="one kind of separator"):
        normalise_nhs_number("943 476-5919")


def test_normalise_nhs_number_raises_with_reason_not_value():
    with pytest.raises(InvalidNhsNumberError, match="check digit") as info:
        normalise_nhs_number("9434765918")
    assert "9434765918" not in str(info.value)


@pytest.mark.parametrize(("key", "data", "digest"), [RFC4231_CASE_2, RFC4231_CASE_6])
def test_hmac_sha256_hex_matches_rfc4231(key, data, digest):
    assert hmac_sha256_hex(key, data) == digest


def test_hmac_sha256_column_matches_rfc4231(spark: SparkSession):
    (key2, data2, digest2), (key6, data6, digest6) = RFC4231_CASE_2, RFC4231_CASE_6
    df = spark.createDataFrame([(data2, data6)], "case2 string, case6 string")
    row = df.select(
        hmac_sha256_column(F.col("case2"), key2), hmac_sha256_column(F.col("case6"), key6)
    ).collect()[0]
    assert tuple(row) == (digest2, digest6)


def test_hmac_sha256_column_agrees_with_python(spark: SparkSession):
    keys = [b"Jefe", b"k" * 64, b"k" * 65, b"\xaa" * 131]  # short, one block, just over
    values = [*NHS_SAMPLES, "é unicode ✓", "x" * 200]
    df = spark.createDataFrame(list(enumerate(values)), "i int, v string")
    digests = [hmac_sha256_column(F.col("v"), key).alias(f"h{k}") for k, key in enumerate(keys)]
    rows = df.select("i", *digests).collect()
    got = {(row.i, k): row[f"h{k}"] for row in rows for k in range(len(keys))}
    expected = {
        (i, k): None if v is None else hmac_sha256_hex(key, v)
        for i, v in enumerate(values)
        for k, key in enumerate(keys)
    }
    assert got == expected


def test_nhs_number_valid_column_agrees_with_python(spark: SparkSession):
    df = spark.createDataFrame([(i, v) for i, v in enumerate(NHS_SAMPLES)], "i int, v string")
    rows = df.select("i", nhs_number_valid_column(F.col("v")).alias("ok")).collect()
    got = {row.i: row.ok for row in rows}
    expected = {i: nhs_number_problem(v) is None for i, v in enumerate(NHS_SAMPLES)}
    assert got == expected
    assert sum(expected.values()) == 5  # the sample list really mixes valid and invalid


def test_nhs_notify_hash_is_base64_sha256_of_key_dot_nhs_number() -> None:
    # NHS Notify's construction, to_base64(sha256(key || '.' || nhsnumber)), computed
    # independently by DuckDB's own functions and by hand.
    import duckdb

    key = "salt-0123456789abcdef"
    [(by_sql,)] = duckdb.execute(
        f"SELECT to_base64(unhex(sha256('{key}' || '.' || '{NHS_EXAMPLE}')))"
    ).fetchall()
    by_hand = "HbKsYmMWttrLOw2raK0gBGrzgkntvZtNptq9pU4Vq24="
    assert nhs_notify_hash(key.encode(), NHS_EXAMPLE) == by_sql == by_hand


def _valid_numbers(count: int) -> list[str]:
    """Valid NHS numbers from a fixed walk over nine-digit prefixes."""
    numbers: list[str] = []
    prefix = 943_476_591
    while len(numbers) < count:
        check = nhs_number_check_digit(str(prefix))
        if check is not None and len(set(f"{prefix}{check}")) > 1:
            numbers.append(f"{prefix}{check}")
        prefix += 7_919
    return numbers


def hardening_cases() -> list[str | None]:
    """At least 150 inputs: formats, whitespace, line breaks, unicode, never-issued."""
    cases: list[str | None] = [None, "", " ", "\n", "\t\r\n"]
    for n in _valid_numbers(12):
        spaced, hyphened = f"{n[:3]} {n[3:6]} {n[6:]}", f"{n[:3]}-{n[3:6]}-{n[6:]}"
        cases += [
            n,
            spaced,
            hyphened,
            f" {n} ",
            f"{n}\n",  # Java's "$" matched before this line break
            f"{n}\r\n",
            f"\t{spaced}\n",
            f"{n[:5]}\n{n[5:]}",  # a break inside the number
            f"{n[:3]} {n[3:6]}-{n[6:]}",  # mixed separators
            f"{n[:3]}  {n[3:6]} {n[6:]}",  # two spaces
            f"{n[:2]} {n[2:]}",  # not 3-3-4
            f"{n}\u00a0",  # no-break space is not ASCII whitespace
            "".join(chr(0x0660 + int(d)) for d in n),  # Arabic-Indic digits
            n[:9] + chr(0xFF10 + int(n[9])),  # a fullwidth check digit
        ]
    cases += [str(d) * 10 for d in range(10)]  # one repeated digit: never issued
    cases += [f"{d}{d}{d} {d}{d}{d} {d}{d}{d}{d}" for d in range(3)]
    cases += ["9434765918", f"{CHECK_TEN_PREFIX}0", "943476591", "94347659190", "943.476.5919"]
    return cases


def test_nhs_number_rules_agree_in_python_and_spark_on_hardening_cases(
    spark: SparkSession,
) -> None:
    from transforms.identifiers import nhs_number_digits, nhs_number_digits_column

    cases = hardening_cases()
    assert len(cases) >= 150
    df = spark.createDataFrame(list(enumerate(cases)), "i int, v string")
    rows = df.select(
        "i",
        nhs_number_valid_column(F.col("v")).alias("ok"),
        nhs_number_digits_column(F.col("v")).alias("digits"),
    ).collect()
    for row in rows:
        value = cases[row.i]
        assert row.ok == (nhs_number_problem(value) is None), repr(value)
        assert row.digits == (None if value is None else nhs_number_digits(value)), repr(value)
    valid = {cases[r.i] for r in rows if r.ok}
    assert "1111111111" not in valid and "9434765919\n" in valid
    assert not any("\u00a0" in v or "\u0660" <= v[0] <= "\u0669" for v in valid if v)


def test_one_patient_gets_one_pseudonym_whatever_the_accepted_format(
    spark: SparkSession,
) -> None:
    from transforms.identifiers import nhs_number_digits_column

    forms = [NHS_EXAMPLE, "943 476 5919", "943-476-5919\n", f"\t{NHS_EXAMPLE}\r\n"]
    df = spark.createDataFrame([(f,) for f in forms], "v string")
    keys = {
        r.k
        for r in df.select(
            hmac_sha256_column(nhs_number_digits_column(F.col("v")), b"k" * 16).alias("k")
        ).collect()
    }
    assert keys == {hmac_sha256_hex(b"k" * 16, NHS_EXAMPLE)}
