"""How nodes consume the repository: a small HTTP server for ROOT/public and apt client files.

The server is for tests, demos and small setups (`appdeb repo serve`); a real
deployment serves ROOT/public with any static web server (see repo/README.md).
"""

from __future__ import annotations

import io
import re
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from appdeb.build import formats, rules
from appdeb.errors import AppdebError
from appdeb.files import link_below, write_below
from appdeb.repo.config import RepoConfig, check_name
from appdeb.repo.dists import for_suite, node_suite


class _Handler(SimpleHTTPRequestHandler):
    """Static files, except that index files under dists/ are never answered 304.

    apt revalidates InRelease with If-Modified-Since, which has 1 s resolution: a
    publish in the same second as the client's previous fetch leaves the mtime
    "not newer", and a plain static server would answer 304 with stale metadata.
    Index files are small, so we always send them whole, marked no-cache. Pool
    files (.deb) are immutable and keep normal conditional-GET behaviour.
    """

    quiet = True

    def _is_index(self) -> bool:
        return urlsplit(self.path).path.startswith("/dists/")

    def send_head(self) -> io.BytesIO | BinaryIO | None:
        if self._is_index():
            del self.headers["If-Modified-Since"]
            del self.headers["If-None-Match"]
        return super().send_head()

    def end_headers(self) -> None:
        if self._is_index():
            self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        if not self.quiet:
            super().log_message(format, *args)


class RepoServer:
    """A running HTTP server for ROOT/public; close() it (or use `with`)."""

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread | None) -> None:
        self.httpd = httpd
        self.thread = thread
        host, port = httpd.server_address[:2]
        self.url = f"http://{host!s}:{port}/"

    def close(self) -> None:
        """Stop serving and release the port."""
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join()
        self.httpd.server_close()

    def __enter__(self) -> RepoServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _server(cfg: RepoConfig, host: str, port: int, quiet: bool) -> ThreadingHTTPServer:
    cfg.public_dir.mkdir(parents=True, exist_ok=True)  # servable (empty) before the first publish
    handler = type("Handler", (_Handler,), {"quiet": quiet})
    httpd = ThreadingHTTPServer((host, port), partial(handler, directory=str(cfg.public_dir)))
    httpd.daemon_threads = True
    return httpd


def serve(cfg: RepoConfig, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> RepoServer:
    """Serve ROOT/public from a background thread; port 0 picks a free port (see .url)."""
    httpd = _server(cfg, host, port, quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="appdeb-repo-http", daemon=True)
    thread.start()
    return RepoServer(httpd, thread)


def serve_forever(
    cfg: RepoConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    ready: Callable[[str], None] | None = None,
    quiet: bool = False,
) -> None:
    """Blocking variant for `appdeb repo serve`; returns on Ctrl-C. `ready` gets the URL."""
    server = RepoServer(_server(cfg, host, port, quiet), None)
    if ready is not None:
        ready(server.url)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        print(file=sys.stderr)
    finally:
        server.close()


# Above the archive's 500 -- and above the 990 that APT::Default-Release gives the target
# release, which a tie would hand to the higher (archive) version -- so the repository's
# version is the candidate even when Debian has a higher one of the same name; below 1000,
# so apt still never downgrades an installed package by itself (`PKG pin` uses 1001).
PIN_PRIORITY = 995


def _release_fields(cfg: RepoConfig, distribution: str) -> dict[str, str]:
    """Header fields of the published Release of `distribution` ({} before its first publish)."""
    try:
        text = (cfg.public_dir / "dists" / distribution / "Release").read_text()
    except FileNotFoundError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith(" ") and ": " in line:
            key, value = line.split(": ", 1)
            fields[key] = value.strip()
    return fields


def apt_preferences(cfg: RepoConfig, name: str, distribution: str | None = None) -> str:
    """An apt preferences stanza pinning this repository's packages above Debian's archive.

    Without it an app named like an archive package (examples/hello) is replaced by the
    archive's version on `apt-get upgrade` whenever that version is higher. The pin matches
    the Origin/Label that nodes see in Release: the published values (aptly keeps those of a
    distribution's first publish), else the settings the first publish will use.
    """
    dist = distribution or cfg.distribution
    check_name(dist)
    published = _release_fields(cfg, dist)
    origin, label = published.get("Origin", cfg.origin), published.get("Label", cfg.label)
    for value in (name, origin, label):
        check_name(value)  # plain names only: nothing can break out of its line
    return (
        f"Explanation: appdeb repository {name}: its packages win over same-named ones of other sources\n"
        "Explanation: (Debian's archive) even when those are newer; below 1000: never downgrades by itself\n"
        "Package: *\n"
        f"Pin: release o={origin},l={label}\n"
        f"Pin-Priority: {PIN_PRIORITY}\n"
    )


URL_RE = re.compile(r"(https?|file)://[A-Za-z0-9._~%:@\[\]/?=&+,;!*()$-]+")


def check_url(url: str) -> None:
    """The repository URL goes into a deb822 field, a shell script and an Ansible play: a plain URL only
    (no blank, quote, brace, '#' or line break that could add a field, a command or a template)."""
    if not URL_RE.fullmatch(url) or "{" in url or "}" in url:
        raise AppdebError(f"{url!r} is not an http://, https:// or file:// URL (plain: no blank, quote, brace or '#')")


def client_config(
    cfg: RepoConfig,
    url: str,
    name: str,
    distribution: str | None = None,
    component: str | None = None,
    suite: str | None = None,
    valid_for: int | None = None,
) -> dict[str, str]:
    """Absolute path -> content of the three files a node needs to trust, use and prefer the repo.

    The key goes to /etc/apt/keyrings and is bound to this source only (Signed-By),
    so it cannot vouch for other repositories: no apt-key, no trusted.gpg.d. The
    preferences file keeps Debian's archive from replacing the repository's packages.
    suite: the node's Debian suite; without --distribution the node follows the configured
    distribution of its own release (appdeb/repo/dists.py), whose packages its python runs.
    valid_for: seconds after its Date that the node takes a Release as current (Valid-Until-Max; the
    repository then needs `appdeb repo refresh` more often than that: switching.refresh).
    """
    dist = distribution or (for_suite(cfg.distribution, suite) if suite else cfg.distribution)
    comp = component or cfg.component
    for value in (name, dist, comp):
        check_name(value)
    check_url(url)
    keyfile = f"/etc/apt/keyrings/{name}.asc"
    sources = f"Types: deb\nURIs: {url}\nSuites: {dist}\nComponents: {comp}\nSigned-By: {keyfile}\n"
    if valid_for is not None:  # checked for this source even where the machine turns the check off for others
        sources += f"Check-Valid-Until: yes\nValid-Until-Max: {int(valid_for)}\n"
    return {
        keyfile: cfg.key_asc.read_text(),
        f"/etc/apt/sources.list.d/{name}.sources": sources,
        f"/etc/apt/preferences.d/{name}.pref": apt_preferences(cfg, name, dist),
    }


SYSTEMD_DIR = "/etc/systemd/system"
PULL_CONF_DIR = "/etc/appdeb/pull"  # read by the launcher's `pull` verb (appdeb/runtime/pull.py)
_SPAN_RE = re.compile(r"([0-9]{1,6})(sec|min|s|m|h|d)?")
_SECONDS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def span_seconds(text: str, option: str = "--pull-every") -> int:
    """`15min`, `20s`, `1h`, `7d` as seconds; the allow-list for the pull interval and --valid-for (at least 10 s).
    option: the name its message starts with ("" where click names the option itself)."""
    if not re.fullmatch(f"(?:{_SPAN_RE.pattern})+", text):
        raise AppdebError(f"{text!r} is not a time span such as 15min, 20s, 1h or 1h30min")
    seconds = sum(int(number) * _SECONDS[unit] for number, unit in _SPAN_RE.findall(text))
    if seconds < 10:
        raise AppdebError(f"{option} {text}: at least 10 s".lstrip())
    return seconds


def pull_files(name: str, packages: Sequence[str], every: str) -> dict[str, str]:
    """The pull units (templates, one timer per package by instance) and each package's config.

    The service runs `/usr/bin/PKG pull`, which updates from the source file named in
    /etc/appdeb/pull/PKG.conf only; the timer's jitter spreads a fleet's fetches after a release.
    """
    check_name(name)
    for package in packages:
        if not rules.NAME_RE.fullmatch(package):
            raise AppdebError(f"--pull {package!r}: not an appdeb package name (lowercase letters, digits, '-')")
    seconds = span_seconds(every)
    span, jitter = formats.unit(f"{seconds}s", word=True), formats.unit(f"{max(1, seconds // 4)}s", word=True)
    files = {
        f"{SYSTEMD_DIR}/appdeb-pull@.service": (
            "[Unit]\nDescription=appdeb pull: take the new release of %i from its repository, verify it\n"
            f"After=network-online.target\nWants=network-online.target\nConditionPathExists={PULL_CONF_DIR}/%i.conf"
            "\n\n[Service]\nType=oneshot\nExecStart=/usr/bin/%i pull\n"
            # bounded: a verify that hangs (the app's own command) must not stop every later pull
            "TimeoutStartSec=30min\n"),
        f"{SYSTEMD_DIR}/appdeb-pull@.timer": (
            f"[Unit]\nDescription=appdeb pull: look for a new release of %i every {span}\n\n"
            f"[Timer]\nOnBootSec={span}\nOnUnitActiveSec={span}\nRandomizedDelaySec={jitter}\nAccuracySec=1s\n\n"
            "[Install]\nWantedBy=timers.target\n"),
    }
    for package in packages:
        files[f"{PULL_CONF_DIR}/{package}.conf"] = (
            "# written by 'appdeb repo client-config --pull': the apt source that 'PKG pull' updates from\n"
            f"sources=/etc/apt/sources.list.d/{name}.sources\n")
    return files


def pull_links(packages: Sequence[str]) -> dict[str, str]:
    """link -> target that `systemctl enable appdeb-pull@PKG.timer` would create."""
    return {f"{SYSTEMD_DIR}/timers.target.wants/appdeb-pull@{p}.timer": f"{SYSTEMD_DIR}/appdeb-pull@.timer"
            for p in packages}


def write_client_config(
    root_dir: Path,
    cfg: RepoConfig,
    url: str,
    name: str,
    distribution: str | None = None,
    component: str | None = None,
    *,
    pull: Sequence[str] = (),
    pull_every: str = "15min",
    suite: str | None = None,
    valid_for: int | None = None,
) -> list[Path]:
    """Write client_config() (and with `pull` the pull units, configs and timer links) below root_dir
    (`/`, or a node image's root), for the suite of the Debian found there; world-readable because apt
    reads them as the unprivileged _apt user."""
    files = client_config(cfg, url, name, distribution, component, suite or node_suite(root_dir), valid_for)
    if pull:
        files.update(pull_files(name, pull, pull_every))
    # root_dir may be a node's file system: no link planted there may lead these writes elsewhere
    try:
        root_dir.mkdir(parents=True, exist_ok=True)
        written = [write_below(root_dir, path, text) for path, text in files.items()]
        written += [link_below(root_dir, link, target) for link, target in pull_links(pull).items()]
    except OSError as exc:
        raise AppdebError(f"cannot write the client configuration below {root_dir}: {exc.filename or ''} "
                          f"{exc.strerror} (nothing is written through a symbolic link)") from None
    return written
