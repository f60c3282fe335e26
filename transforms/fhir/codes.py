"""Code systems and codes that connect FHIR resources to the clinical source's columns.

One place for them, shared by the mapping onto the source's tables and by the synthetic
FHIR writer, so what is written is what is read.
"""

from __future__ import annotations

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ETHNIC_CATEGORY_EXTENSION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
)
LOCAL_CODES = "https://flowehr.nhs.uk/fhir/CodeSystem"
LAB_TEST_SYSTEM = f"{LOCAL_CODES}/lab-test"
NEWS2_SYSTEM = f"{LOCAL_CODES}/news2"

VITAL_SIGNS_PANEL = "85353-1"
"""LOINC vital signs panel: one Observation per charted set, readings as components."""

NUMERIC_VITAL_SIGNS: dict[str, str] = {
    "9279-1": "respiratory_rate",
    "59408-5": "spo2",
    "2708-6": "spo2",
    "8310-5": "temperature",
    "8480-6": "systolic_bp",
    "8867-4": "heart_rate",
}
"""LOINC code -> the observation column it fills (SpO2 by pulse oximetry or arterial)."""

CONSCIOUSNESS = "67775-7"
"""LOINC level of responsiveness; the value's code is the ACVPU letter."""

SUPPLEMENTAL_OXYGEN = "on-supplemental-oxygen"
"""NEWS2's 'air or oxygen?' as a boolean component (no single LOINC code says it)."""

VITAL_SIGN_UNITS: dict[str, tuple[str, str]] = {
    "respiratory_rate": ("9279-1", "/min"),
    "spo2": ("59408-5", "%"),
    "temperature": ("8310-5", "Cel"),
    "systolic_bp": ("8480-6", "mm[Hg]"),
    "heart_rate": ("8867-4", "/min"),
}
"""Column -> (LOINC code, UCUM unit) used when writing a set."""

GENDER_TO_SEX = {"female": "F", "male": "M", "other": "U", "unknown": "U"}
SEX_TO_GENDER = {"F": "female", "M": "male", "U": "unknown"}
