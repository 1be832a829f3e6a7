"""Throw-away Debian nodes on this machine: the image, the booted containers, their processes."""
