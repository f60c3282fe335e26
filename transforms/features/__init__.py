"""Feature-store transforms: DataFrame in, DataFrame out, keyed on the visit and horizon.

Pure PySpark, no Dagster: the same functions run on the local session, in the Pipes
job on Databricks (``transforms.pipes.feature_job``) and in unit tests.

* ``dictionary``: the data dictionary types (``FeatureColumn``, ``FeatureTableSpec``)
  and ``FeatureOptions`` (version, NEWS2 SpO2 scale, horizon choice).
* ``horizons``: when features are computed (every charted event, or a regular grid)
  and the range-window helpers every time-based feature uses.
* ``demographics``, ``vitals``, ``news2``, ``labs``, ``outcomes``: one feature table
  each, with its builder, its input fingerprint and its column descriptions.
* ``incremental``: per-visit input fingerprints that find the visits a changelog
  load touched.
* ``pipeline``: ``FEATURE_TABLES`` and ``compute_feature_update``, which builds a
  table in full or only for the touched visits.
"""
