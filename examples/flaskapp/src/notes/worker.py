"""A background worker: writes a heartbeat file so tests (and admins) can see it runs.

It says when it has started (app.yaml: `ready: notify`): after its first heartbeat is written, it
sends READY=1 to systemd, so the install waits for that instead of watching it stay up a while.
"""

import os
import socket
import time


def notify_ready() -> None:
    """sd_notify(READY=1) without a library: one datagram to the socket systemd names (if any). The
    variable goes with it: nothing this process starts later speaks for it."""
    address = os.environ.pop("NOTIFY_SOCKET", None)
    if not address:
        return  # not started by systemd (appdeb run, a test)
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(b"READY=1")


def main() -> None:
    interval = float(os.environ.get("NOTES_WORKER_INTERVAL", "5"))
    path = os.path.join(os.environ["APPDEB_STATE_DIR"], "worker.heartbeat")
    ready = False
    while True:
        with open(path, "w") as f:
            f.write(f"{time.time()}\n")
        if not ready:
            notify_ready()
            ready = True
        time.sleep(interval)


if __name__ == "__main__":
    main()
