"""Pushing a release to a fleet with Ansible: canary first, then batches, health-gated, rolled back on failure."""
