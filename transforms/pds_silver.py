"""PDS outcomes applied to bronze patients before they are cleaned and pseudonymised.

A number PDS has superseded (records merged) is replaced by the number PDS now uses, so
the person gets the pseudonym of their current record and the merged records become one
person. A restricted (sensitive) record's postcode is dropped before silver derives the
district from it: where such a patient lives must not be narrowed down at all.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.identifiers import nhs_number_digits_column


def with_pds_outcomes(patients: DataFrame, outcomes: DataFrame | None) -> DataFrame:
    """Bronze patients with PDS's current NHS number and restricted postcodes removed.

    Args:
        patients: bronze ``patients`` rows (``nhs_number``, ``postcode``, ...).
        outcomes: ``bronze/ehr/pds_verification`` (``nhs_number`` as ten digits,
            ``superseded_by``, ``restricted``), or None before PDS has run.

    Returns:
        The same rows and columns; unverified patients are unchanged.
    """
    if outcomes is None:
        return patients
    pds = outcomes.select(
        F.col("nhs_number").alias("_pds_number"),
        F.col("superseded_by").alias("_pds_superseded_by"),
        F.coalesce(F.col("restricted"), F.lit(False)).alias("_pds_restricted"),
    )
    joined = patients.join(
        pds, nhs_number_digits_column(F.col("nhs_number")) == F.col("_pds_number"), "left"
    )
    restricted = F.coalesce(F.col("_pds_restricted"), F.lit(False))
    return joined.select(
        *[
            F.coalesce(F.col("_pds_superseded_by"), F.col(c)).alias(c)
            if c == "nhs_number"
            else F.when(restricted, F.lit(None).cast("string")).otherwise(F.col(c)).alias(c)
            if c == "postcode"
            else F.col(c)
            for c in patients.columns
        ]
    )
