"""Information governance: the National Data Opt-out, project pseudonyms and disclosure
control, applied where published tables are written."""
