"""The golden Debian root file system that every throw-away node boots from.

Built once per Debian suite (bookworm, trixie) with debootstrap from the host's configured Debian
mirror and cached outside the repo, because building takes about a minute while an overlay over it
takes milliseconds. The cache directory holds one subdirectory per suite and recipe version
(``<suite>-<digest>/root`` plus a ``stamp`` file); a changed recipe or host mirror gives a new
version, so it is rebuilt rather than patched, and only older images of the same suite are pruned.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.files import locked
from appdeb.runner import run

# Debian releases a node can run; bookworm stays the default so existing nodes and caches keep working.
SUITES = ("bookworm", "trixie")
DEFAULT_SUITE = "bookworm"
SUITE = DEFAULT_SUITE  # kept for callers that mean "the default node's suite"
INCLUDE = ["systemd", "systemd-sysv", "dbus", "ca-certificates", "python3", "iproute2", "curl", "adduser",
           "openssh-server"]
# Downloaded, not installed: later tests install these in nodes quickly and without the network.
PREDOWNLOAD = ["nginx", "postgresql", "redis-server"]
# ssh.service is masked in the image: a node on the host's network must not start sshd on the host's
# port 22; a node with a private network unmasks it (appdeb/node/ssh.py).
MASKED_UNITS = ["apt-daily.timer", "apt-daily-upgrade.timer", "ssh.service"]
SSHD_DROP_IN = ("# appdeb node: key logins only, with the host key the harness gives each node\n"
                "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n")
RECIPE_REVISION = 2  # bump when the build steps below change in a way the lists above don't show

CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "HOME": "/root",
}
Progress = Callable[[str], None]


def cache_dir() -> Path:
    """Where images live; outside the repo so `git clean` does not cost a rebuild."""
    return Path(os.environ.get("APPDEB_NODE_CACHE", "/var/cache/appdeb/node-image"))


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    """(first URI, suites) of each enabled `Types: deb` stanza of a .sources file (python-debian parses it)."""
    from debian.deb822 import Deb822

    for stanza in Deb822.iter_paragraphs(text.splitlines()):
        fields = {key.lower(): value for key, value in stanza.items()}
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").strip() != "no":
            uris = fields.get("uris", "").split()
            if uris:
                yield uris[0], fields.get("suites", "").split()


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options, e.g. [signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            yield words[0], [words[1]]


def host_mirrors(etc: Path = Path("/etc/apt"), suite: str = DEFAULT_SUITE) -> tuple[str, str | None]:
    """Read (mirror, security mirror) from the host's apt config: never hard-code a host name.

    A Debian mirror serves every release, so the host's bookworm mirror is also the trixie node's: an
    entry naming the wanted suite wins, then one naming any Debian release, then any other entry.
    """
    entries: list[tuple[str, list[str]]] = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        entries += _deb822_entries(path.read_text(errors="replace"))
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        if path.is_file():
            entries += _one_line_entries(path.read_text(errors="replace"))
    main = [uri for uri, suites in entries if suite in suites]
    main += [uri for uri, suites in entries
             if any(_is_debian_suite(s) for s in suites)]
    main += [uri for uri, suites in entries if any(not s.endswith("-security") for s in suites)]
    security = [uri for uri, suites in entries if any(s.endswith("-security") for s in suites)]
    if not main:
        raise AppdebError(f"no Debian mirror found in {etc}/sources.list(.d); cannot build a node image")
    return main[0].rstrip("/"), security[0].rstrip("/") if security else None


# Debian's own suite names (a release, its alias, and the archive's suffixes): a third-party source such
# as "bookworm-pgdg" names a release too, but does not carry Debian itself.
_DEBIAN_NAMES = (*SUITES, "oldstable", "stable", "testing", "unstable", "sid")
_DEBIAN_SUFFIXES = ("", "-updates", "-backports", "-proposed-updates")


def _is_debian_suite(name: str) -> bool:
    return any(name == base + suffix for base in _DEBIAN_NAMES for suffix in _DEBIAN_SUFFIXES)


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise AppdebError(f"unknown node suite {suite!r}: use one of {', '.join(SUITES)}")
    return suite


def recipe_version(mirror: str, security: str | None, suite: str = DEFAULT_SUITE) -> str:
    """Digest of everything that shapes the image, so a changed recipe means a rebuild.

    The suite leads both the name and the digested list, so each suite has its own cache entry and the
    bookworm key is the same as before suites were a parameter (no needless rebuild).
    """
    recipe = [suite, INCLUDE, PREDOWNLOAD, MASKED_UNITS, RECIPE_REVISION, mirror, security]
    return f"{suite}-" + hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]


def ensure_image(progress: Progress | None = None, suite: str = DEFAULT_SUITE) -> Path:
    """Return the golden root of that suite, building it first if missing or made by an older recipe."""
    say = progress or (lambda _msg: None)
    mirror, security = host_mirrors(suite=check_suite(suite))
    version = recipe_version(mirror, security, suite)
    final = cache_dir() / version
    if (final / "stamp").is_file():
        return final / "root"
    cache_dir().mkdir(parents=True, exist_ok=True)
    with locked(cache_dir() / ".lock", lambda: say("waiting for another process building the node image")):
        if not (final / "stamp").is_file():  # another process may have built it while we waited
            _discard_partial_builds()
            _build(final, suite, mirror, security, say)
        _prune_old_images(keep=final, suite=suite)
    return final / "root"


def _build(final: Path, suite: str, mirror: str, security: str | None, say: Progress) -> None:
    """Build into a temp dir and rename at the end: an interrupted build leaves no half image."""
    version = final.name
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir()))
    root = tmp / "root"
    try:
        say(f"debootstrap {suite} from {mirror} (about a minute)")
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(INCLUDE), suite, root, mirror],
            timeout=1800)
        say("configuring image")
        _configure(root, suite, mirror, security)
        say("pre-downloading " + " ".join(PREDOWNLOAD))
        _chroot(root, ["apt-get", "update"])
        _chroot(root, ["apt-get", "install", "--download-only", "-y", *PREDOWNLOAD])
        (tmp / "stamp").write_text(version + "\n")
        tmp.chmod(0o755)
        tmp.rename(final)
        say(f"node image ready: {final / 'root'}")
    finally:
        if tmp.exists():
            _remove_tree(tmp)


def _configure(root: Path, suite: str, mirror: str, security: str | None) -> None:
    """Make the tree boot quietly and predictably as a container."""
    lines = [f"deb {mirror} {suite} main", f"deb {mirror} {suite}-updates main"]
    if security:
        lines.append(f"deb {security} {suite}-security main")
    (root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    (root / "etc/apt/apt.conf.d/90appdeb-node").write_text('Acquire::Languages "none";\n')
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # Each node writes its own identity; the golden copy must not carry the build host's.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("localhost\n")
    for key in (root / "etc/ssh").glob("ssh_host_*"):  # made by openssh-server's postinst: shared by all
        key.unlink()
    (root / "etc/ssh/sshd_config.d/appdeb-node.conf").write_text(SSHD_DROP_IN)


def _chroot(root: Path, argv: list[str]) -> None:
    """Run a command in the tree under construction, with /proc for tools that want it."""
    proc = root / "proc"
    run(["mount", "-t", "proc", "proc", proc])
    try:
        run(["env", "-i", *(f"{k}={v}" for k, v in CLEAN_ENV.items()), "chroot", root, *argv], timeout=1800)
    finally:
        run(["umount", proc], check=False)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path (deepest first), from /proc/mounts."""
    prefix = str(path).rstrip("/")
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    found = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    return sorted(found, key=len, reverse=True)


def _remove_tree(path: Path) -> None:
    """Delete a tree, but never through a mount left by an interrupted chroot step."""
    for point in mounts_under(path):
        run(["umount", point], check=False)
    if mounts_under(path):
        raise AppdebError(f"refusing to delete {path}: something is still mounted under it")
    shutil.rmtree(path)


def _discard_partial_builds() -> None:
    for stale in cache_dir().glob(".build-*"):
        _remove_tree(stale)


def _prune_old_images(keep: Path, suite: str) -> None:
    """Drop older recipes' images of the same suite unless a running node still uses one as its lower layer.

    Another suite's image is not older, just different: it stays.
    """
    mounts = Path("/proc/mounts").read_text()
    for old in cache_dir().iterdir():
        if (old != keep and old.is_dir() and old.name.startswith(f"{suite}-") and f"{old}/root" not in mounts):
            _remove_tree(old)
