"""redis: one redis-server per instance (Debian's redis-server@ template), on a socket only it can open.

A server per instance rather than a database number in a shared one: instances cannot read each
other's keys, and backup/restore/purge of one never touches another. The server runs with the
instance's group, so the 0770 socket admits the app's user and nobody else.
"""

from __future__ import annotations

import os
import shutil
import stat
import time

from .base import TOOL_TIMEOUT, Service, ServiceError

RDB = "redis.rdb"


class Redis(Service):
    kind = "redis"
    depends = ("redis-server",)
    after = ("redis-server@{package}.service",)
    variables = ("CONFIG_REDIS_SOCKET", "CONFIG_REDIS_URL")

    @property
    def unit(self) -> str:
        return f"redis-server@{self.package}.service"

    @property
    def conf(self) -> str:
        return f"/etc/redis/redis-{self.package}.conf"

    @property
    def data_dir(self) -> str:
        return f"/var/lib/redis/{self.package}"

    @property
    def socket(self) -> str:
        return f"/run/redis-{self.package}/redis.sock"

    def provision(self) -> None:
        # redis's alone: the app reaches its data through the socket, never through these files
        os.makedirs(self.data_dir, exist_ok=True)
        st = os.lstat(self.data_dir)
        if not stat.S_ISDIR(st.st_mode):
            raise ServiceError(f"redis: {self.data_dir} is not a directory")
        shutil.chown(self.data_dir, "redis", "redis")
        os.chmod(self.data_dir, 0o750)
        text = (f"# {self.package}: written by its package; removed on purge\n"
                f"port 0\nunixsocket {self.socket}\nunixsocketperm 770\n"
                f"dir {self.data_dir}\ndbfilename dump.rdb\nsave 300 1\nappendonly no\n"
                f"pidfile /run/redis-{self.package}/redis-server.pid\nlogfile \"\"\n")
        with open(self.conf + ".new", "w", encoding="utf-8") as f:
            f.write(text)
        shutil.chown(self.conf + ".new", "redis", self.user)
        os.chmod(self.conf + ".new", 0o640)
        os.replace(self.conf + ".new", self.conf)
        dropin = f"/etc/systemd/system/{self.unit}.d"
        os.makedirs(dropin, exist_ok=True)
        with open(os.path.join(dropin, "appdeb.conf"), "w", encoding="utf-8") as f:
            f.write(f"[Service]\nGroup={self.user}\nReadWritePaths={self.data_dir}\n")
        if self.app.proc.systemd_running():
            self.run(["systemctl", "daemon-reload"])
            self.run(["systemctl", "enable", "--now", self.unit])
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.cli("PING", check=False, timeout=5).strip() != "PONG":  # a paused server answers no one
            if time.monotonic() > deadline:
                raise ServiceError(f"redis: {self.unit} does not answer on {self.socket}")
            time.sleep(0.3)

    def cli(self, *args: str, check: bool = True, timeout: float = TOOL_TIMEOUT) -> str:
        out = self.run(["redis-cli", "-s", self.socket, *args], check=check, timeout=timeout)
        return str(out.text)

    def environ(self) -> dict[str, str]:
        if self.app.dev:  # development: settings.local.env says where a redis is, if the app needs one
            return {}
        return {"CONFIG_REDIS_SOCKET": self.socket, "CONFIG_REDIS_URL": f"unix://{self.socket}?db=0"}

    def backup(self, dest: str) -> None:
        if not os.path.exists(self.conf):
            return
        self.wait_ready()
        self.cli("SAVE")
        _copy_nofollow(os.path.join(self.data_dir, "dump.rdb"), os.path.join(dest, RDB))

    def restore(self, src: str) -> None:
        rdb = os.path.join(src, RDB)
        if not os.path.exists(rdb):
            return
        self.provision()
        self.run(["systemctl", "stop", self.unit])
        target = os.path.join(self.data_dir, "dump.rdb")
        if os.path.lexists(target):
            os.unlink(target)  # whatever is there (a link included) goes; the copy is a new file
        _copy_nofollow(rdb, target)
        shutil.chown(target, "redis", "redis")
        self.run(["systemctl", "start", self.unit])
        self.wait_ready()

    def size_estimate(self) -> int:
        try:
            return os.lstat(os.path.join(self.data_dir, "dump.rdb")).st_size
        except OSError:
            return 0

    def check(self) -> list[str]:
        if self.app.dev:
            return []
        probe = self.run(["redis-cli", "-s", self.socket, "PING"], user=self.user, check=False, timeout=5)
        if probe.text.strip() != "PONG":
            return [f"redis: {self.unit} does not answer the app's user on {self.socket}"]
        return []

    def purge(self) -> None:
        if self.app.proc.systemd_running():
            self.run(["systemctl", "disable", "--now", self.unit], check=False)
        shutil.rmtree(f"/etc/systemd/system/{self.unit}.d", ignore_errors=True)
        for path in (self.conf,):
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _copy_nofollow(src: str, dest: str) -> None:
    """Copy a file's bytes, opening neither end through a symbolic link."""
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd_in, "rb", closefd=False) as fin, os.fdopen(fd_out, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    finally:
        os.close(fd_in)
