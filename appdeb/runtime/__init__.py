"""The runtime shipped inside every package (as `appdeb_runtime` beside `run.py`, the launcher's entry).

It runs on the node with nothing but python3's standard library (no appdeb install there), and from
a checkout under `appdeb serve`, so development and production see the same environment. Apps may
use it as the support library: `from appdeb_runtime import AppPackage, get_secret`.
"""

from .app import AppPackage, LauncherError, get_secret, parse_settings

__all__ = ["AppPackage", "LauncherError", "get_secret", "parse_settings"]
