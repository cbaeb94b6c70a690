// Bus: see DESIGN.md.
