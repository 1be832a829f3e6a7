"""files: a persistent writable directory per instance (CONFIG_FILES) inside the state directory.

It is the app user's: created by the app user (root never creates or follows a path inside the
app's state directory), and backed up with the rest of the state directory (state.tar). Archives
of appdeb 0.1.0 (services/files/files.tar.gz) are still restored, unpacked by the app user.
"""

from __future__ import annotations

import os

from .base import Service

ARCHIVE = "files.tar.gz"


class Files(Service):
    kind = "files"
    variables = ("CONFIG_FILES",)

    @property
    def directory(self) -> str:
        return os.path.join(self.app.paths.state, "files")

    def provision(self) -> None:
        self.run(["mkdir", "-p", "-m", "0750", self.directory], user=self.user)

    def environ(self) -> dict[str, str]:
        return {"CONFIG_FILES": self.directory}

    def restore(self, src: str) -> None:
        archive = os.path.join(src, ARCHIVE)
        if not os.path.exists(archive):
            return
        script = 'cd "$1" && rm -rf files && tar -xzf - --no-same-owner files'
        with open(archive, "rb") as data:
            self.run(["sh", "-c", script, "sh", self.app.paths.state], user=self.user, stdin=data)
        self.provision()

    def check(self) -> list[str]:
        if not self.app.dev and not os.path.isdir(self.directory):
            return [f"files: {self.directory} is missing"]
        return []
