"""Feature store domain: silver EHR tables to the gold feature tables researchers read."""
