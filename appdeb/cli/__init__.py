"""The command line (click lives in this package only)."""
