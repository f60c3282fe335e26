"""Reporting domain: CDC landing files to bronze, staging projections and aggregations,
watchdogs.
"""
