// InferenceRouter: see DESIGN.md.
