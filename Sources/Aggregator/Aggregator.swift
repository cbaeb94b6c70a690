// Aggregator: see DESIGN.md.
