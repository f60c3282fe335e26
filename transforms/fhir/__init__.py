"""FHIR R4 resources as landed from a Bulk Data export: parsing, validation, mapping.

Pure Python and Arrow, no Dagster: the NDJSON an export delivers is split into valid
resources, tombstones and quarantined lines (``ndjson``), and the valid resources are
mapped onto the clinical source's table shapes (``source_rows``) so the silver cleaning
and the feature store read a FHIR-fed hospital exactly as they read a SQL-fed one.
"""
