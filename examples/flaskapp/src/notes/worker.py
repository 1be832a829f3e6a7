"""A background worker: writes a heartbeat file so tests (and admins) can see it runs."""

import os
import time


def main() -> None:
    interval = float(os.environ.get("NOTES_WORKER_INTERVAL", "5"))
    path = os.path.join(os.environ["APPDEB_STATE_DIR"], "worker.heartbeat")
    while True:
        with open(path, "w") as f:
            f.write(f"{time.time()}\n")
        time.sleep(interval)


if __name__ == "__main__":
    main()
