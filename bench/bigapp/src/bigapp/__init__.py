"""The build benchmark's big app."""
