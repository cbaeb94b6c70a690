// EdgeEnvironment: see DESIGN.md.
