"""EHR domain: source databases to bronze (bulk, then by changelog), ETL state and lock,
silver, checks.
"""
