"""appdeb: turn server applications into Debian packages."""

__version__ = "0.1.0"
