// Federation: see DESIGN.md.
