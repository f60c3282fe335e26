"""NHS integrations: FHIR Bulk Data sources landed into bronze, and PDS verification."""
