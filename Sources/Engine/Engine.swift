// Engine: see DESIGN.md.
