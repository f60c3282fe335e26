"""Canned reports: partitions, CSV writing, previews and charts, and which partitions are due."""
