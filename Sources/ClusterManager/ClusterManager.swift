// ClusterManager: see DESIGN.md.
