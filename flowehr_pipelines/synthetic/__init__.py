"""Deterministic, streaming synthetic data: the EHR source database and CDC landing files.

No Dagster import here: the CLI, the pipeline and tests all call these functions directly.
"""

from flowehr_pipelines.synthetic.cdc import write_cdc_landing
from flowehr_pipelines.synthetic.cdc_model import CdcGenerationStats
from flowehr_pipelines.synthetic.ehr_changes import SourceChangeStats, apply_source_changes
from flowehr_pipelines.synthetic.ehr_schema import EhrGenerationStats, synthetic_nhs_number
from flowehr_pipelines.synthetic.ehr_writer import write_ehr_source

__all__ = [
    "CdcGenerationStats",
    "EhrGenerationStats",
    "SourceChangeStats",
    "apply_source_changes",
    "synthetic_nhs_number",
    "write_cdc_landing",
    "write_ehr_source",
]
