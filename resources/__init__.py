"""Resources: SQL sources, the Delta table store, object storage, Spark, Databricks and the
pseudonymiser. ``flowehr_pipelines.deployment`` builds them from the settings."""
