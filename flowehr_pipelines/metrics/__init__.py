"""Prometheus metrics read from the Dagster instance at scrape time.

Dagster's own Prometheus integration pushes from inside a run, so a run that crashed,
was canceled before it started or is stuck in the queue never reports. Here the
instance's run and event storage is read on every scrape instead: whatever state the
instance records is what Prometheus sees.
"""
