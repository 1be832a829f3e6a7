"""The app's environment on a developer's machine: `appdeb serve`, `appdeb run`, `appdeb init`."""
