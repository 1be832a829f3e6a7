"""What `appdeb build` does: app.yaml → a checked spec → a plan → vendored libraries → a .deb."""
