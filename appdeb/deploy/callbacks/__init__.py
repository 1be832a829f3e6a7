"""Ansible plug-ins appdeb brings along (loaded by path, not imported by appdeb)."""
