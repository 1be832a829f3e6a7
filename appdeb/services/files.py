"""files: a persistent writable directory per instance (CONFIG_FILES), backed up as a tar archive."""

from __future__ import annotations

import os
import pwd
import shutil
import tarfile

from .base import Service, ServiceError

ARCHIVE = "files.tar.gz"


class Files(Service):
    kind = "files"

    @property
    def directory(self) -> str:
        return os.path.join(self.app.paths["state"], "files")

    def provision(self) -> None:
        os.makedirs(self.directory, mode=0o750, exist_ok=True)
        if os.geteuid() == 0 and not self.app.dev:
            user = pwd.getpwnam(self.user)
            os.chown(self.directory, user.pw_uid, user.pw_gid)

    def environ(self) -> dict[str, str]:
        return {"CONFIG_FILES": self.directory}

    def backup(self, dest: str) -> None:
        if not os.path.isdir(self.directory):
            return
        with tarfile.open(os.path.join(dest, ARCHIVE), "w:gz") as tar:
            tar.add(self.directory, arcname="files")

    def restore(self, src: str) -> None:
        archive = os.path.join(src, ARCHIVE)
        if not os.path.exists(archive):
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:  # our own archive, but never write outside the directory
                if not (m.name == "files" or m.name.startswith("files/")) or ".." in m.name.split("/") \
                        or m.issym() or m.islnk() or m.isdev():
                    raise ServiceError(f"files: refusing archive member {m.name!r}")
            if hasattr(tarfile, "data_filter"):  # python >= 3.11.4
                tar.extractall(os.path.dirname(self.directory), members=members, filter="tar")
            else:
                tar.extractall(os.path.dirname(self.directory), members=members)
        self.provision()

    def check(self) -> list[str]:
        if not self.app.dev and not os.path.isdir(self.directory):
            return [f"files: {self.directory} is missing"]
        return []
