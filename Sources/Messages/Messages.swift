// Messages: see DESIGN.md.
