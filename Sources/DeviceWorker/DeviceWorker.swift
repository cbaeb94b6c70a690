// DeviceWorker: see DESIGN.md.
