"""flowehr run: materialise the graph in its independent parts and summarise the outcome."""
