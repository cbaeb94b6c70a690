// Tokenizers: see DESIGN.md.
