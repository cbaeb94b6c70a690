// Data: see DESIGN.md.
