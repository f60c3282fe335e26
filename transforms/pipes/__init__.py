"""Entry points that run transforms out of process (Databricks, subprocess) via Dagster Pipes."""
