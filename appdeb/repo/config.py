"""Where an appdeb repository lives and how it is set up: settings, aptly.conf, key.

Layout of ROOT: aptly.conf (derived from repo/aptly.conf.j2 for the root's current
path, see sync_conf; aptly.conf.stamp vouches for it), settings.json,
gnupg/ (the signing key), key.gpg/key.asc (public key), history.jsonl,
ledger.json, plus aptly's own db/, pool/ and public/ (the tree nodes fetch).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from appdeb.build import formats
from appdeb.datafiles import data_path
from appdeb.errors import AppdebError
from appdeb.files import debian_arch, write_atomic
from appdeb.repo import signing
from appdeb.repo.store import locked

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# a package's fields as Debian Policy writes them (5.6.1 as dpkg takes it, 5.6.12; an architecture is a word): they
# become pool file names and aptly queries, so a crafted control file cannot name another path
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]*")
VERSION_RE = re.compile(r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*(?::[A-Za-z0-9.+~-]+)*")
ARCH_RE = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class RepoConfig:
    """A repository root plus its settings (persisted in ROOT/settings.json)."""

    root: Path
    key: str
    distribution: str = "bookworm"
    component: str = "main"
    origin: str = "appdeb"
    label: str = "appdeb"
    keep: int = 5
    keep_snapshots: int = 20
    architectures: tuple[str, ...] = ("amd64",)

    @property
    def conf(self) -> Path:
        return self.root / "aptly.conf"

    @property
    def gnupg_home(self) -> Path:
        return self.root / "gnupg"

    @property
    def public_dir(self) -> Path:
        return self.root / "public"

    @property
    def key_asc(self) -> Path:
        return self.root / "key.asc"

    @property
    def key_gpg(self) -> Path:
        return self.root / "key.gpg"


def default_root() -> Path:
    """APPDEB_REPO, else the XDG data dir: a per-user location needing no root."""
    if env := os.environ.get("APPDEB_REPO"):
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "appdeb" / "repo"


def _template_text() -> str:
    """The aptly.conf template: a checkout's repo/, else the wheel's appdeb/_repo/ copy."""
    return data_path("repo", "aptly.conf.j2").read_text()


def _conf_vars(cfg: RepoConfig) -> dict[str, Any]:
    return {"root_dir": str(cfg.root), "architectures": list(cfg.architectures), "gpg_provider": "gpg"}


def _render_conf(cfg: RepoConfig) -> str:
    """aptly.conf as this root renders it now: derived from template, settings and location only."""
    import jinja2  # only when the stamp does not vouch for aptly.conf (_stamp): 50 ms of every command

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    text = env.from_string(_template_text()).render(**_conf_vars(cfg))
    try:
        json.loads(text)  # a broken template must fail here, not inside aptly
    except json.JSONDecodeError as exc:
        raise AppdebError(f"aptly.conf.j2 does not render to valid JSON: {exc}") from None
    return text


def _read_conf(cfg: RepoConfig) -> str | None:
    try:
        return cfg.conf.read_text()
    except FileNotFoundError:
        return None


def _forget_moved_agent(cfg: RepoConfig, conf_text: str | None) -> None:
    """Stop the gpg-agents of the old path if aptly.conf shows the root came from elsewhere.

    gpg-agent's socket lives in the gnupg home (unless /run/user/UID exists): after `mv`
    it is still bound by the old path's agent, which looks for the key in the old home and
    fails to sign ("No secret key"). Once it is stopped, the next gpg call starts one here.
    """
    try:
        data = json.loads(conf_text) if conf_text is not None else None
    except json.JSONDecodeError:
        data = None
    old_root = data.get("rootDir") if isinstance(data, dict) else None
    if old_root != str(cfg.root):
        signing.stop_agent(cfg.gnupg_home)
        if isinstance(old_root, str) and old_root:
            signing.stop_agent_of_vanished_home(Path(old_root) / "gnupg")


def sync_conf(cfg: RepoConfig) -> None:
    """Re-render ROOT/aptly.conf when it is not what this root renders to now.

    aptly.conf holds the absolute rootDir, so after `mv`, `cp -a` or an rsync of the
    whole root to another path a stale copy would make aptly open (or create) the old
    path's database and publish there while reporting success.
    """
    current = _read_conf(cfg)
    if current is not None and _read_stamp(cfg) == _stamp(cfg, current):
        return  # the common case renders nothing and takes no lock (read-only roots work)
    text = _render_conf(cfg)
    if current == text:
        _write_stamp(cfg, text)
        return
    with locked(cfg.root):
        old = _read_conf(cfg)
        if old != text:
            _forget_moved_agent(cfg, old)
            write_atomic(cfg.conf, text)
        _write_stamp(cfg, text)


STAMP_FILE = "aptly.conf.stamp"


def _stamp(cfg: RepoConfig, conf_text: str) -> str:
    """What vouches that `conf_text` is what the template renders to for this root now, without
    rendering it: the digests of the template and variables it was last rendered from, and of the result."""
    source = json.dumps([_template_text(), _conf_vars(cfg)])
    return " ".join(hashlib.sha256(t.encode()).hexdigest() for t in (source, conf_text)) + "\n"


def _read_stamp(cfg: RepoConfig) -> str | None:
    try:
        return (cfg.root / STAMP_FILE).read_text()
    except OSError:
        return None


def _write_stamp(cfg: RepoConfig, conf_text: str) -> None:
    """Best effort: a root nobody may write (a read-only copy) renders the template each time instead."""
    with contextlib.suppress(OSError):
        write_atomic(cfg.root / STAMP_FILE, _stamp(cfg, conf_text))


def _save_settings(cfg: RepoConfig) -> None:
    data = {k: v for k, v in asdict(cfg).items() if k != "root"}
    data["architectures"] = list(cfg.architectures)
    write_atomic(cfg.root / "settings.json", json.dumps(data, indent=2) + "\n")


def open_repo(root: Path | None = None) -> RepoConfig:
    """Load an initialised repository; the CLI's entry point for every command but init.

    aptly.conf is re-derived for where the root is now (see sync_conf): a root that was
    moved or copied publishes into itself, never into its old location.
    """
    path = (root or default_root()).expanduser().resolve()
    if not (path / "settings.json").exists():
        given = f" --root {formats.shell(root)}" if root is not None else ""  # the hint runs as printed
        raise AppdebError(f"{path}: not an appdeb repository; run `appdeb repo init{given}` first")
    cfg = _load(path)
    sync_conf(cfg)
    return cfg


def _load(root: Path) -> RepoConfig:
    """settings.json as a RepoConfig, touching nothing (init_repo calls it under the lock)."""
    try:
        data: dict[str, Any] = json.loads((root / "settings.json").read_text())
    except FileNotFoundError:
        raise AppdebError(f"{root}: not an appdeb repository; run `appdeb repo init` first") from None
    data["architectures"] = tuple(data.get("architectures", ("amd64",)))
    try:
        return RepoConfig(root=root, **data)
    except TypeError as exc:
        raise AppdebError(f"{root / 'settings.json'}: {exc}") from None


def init_repo(
    root: Path | None = None,
    key: str | None = None,
    *,
    name: str = "appdeb repository signing key",
    email: str = "appdeb@localhost",
    distribution: str | None = None,
    component: str | None = None,
    origin: str | None = None,
    label: str | None = None,
    keep: int | None = None,
    keep_snapshots: int | None = None,
    architectures: Sequence[str] | None = None,
) -> RepoConfig:
    """Create (or refresh) a repository; idempotent, and never replaces an existing key.

    Options left as None keep the existing setting (or take the default on a new repo).
    """
    root = (root or default_root()).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    with locked(root):
        old = _load(root) if (root / "settings.json").exists() else None
        if old:
            _forget_moved_agent(old, _read_conf(old))
        home = root / "gnupg"
        fpr = signing.ensure_key(home, old.key if old else None, key, name, email)
        base = old or RepoConfig(root=root, key=fpr, architectures=(debian_arch(),))
        given: dict[str, Any] = {
            "distribution": distribution, "component": component, "origin": origin, "label": label,
            "keep": keep, "keep_snapshots": keep_snapshots,
            "architectures": tuple(architectures) if architectures else None,
        }
        cfg = replace(base, root=root, key=fpr, **{k: v for k, v in given.items() if v is not None})
        for value in (cfg.distribution, cfg.component, cfg.origin, cfg.label, *cfg.architectures):
            check_name(value)
        text = _render_conf(cfg)
        write_atomic(cfg.conf, text)
        _write_stamp(cfg, text)
        _save_settings(cfg)
        signing.export_public(home, fpr, cfg.key_gpg, cfg.key_asc)
    return cfg


def check_name(value: str) -> None:
    """Distribution/component/arch names end up in paths and URLs, origin/label in nodes' apt
    preferences (client_config): keep them plain, so none can inject a field or a path."""
    if not _NAME_RE.fullmatch(value):
        raise AppdebError(f"invalid name {value!r}: use letters, digits, '.', '_' and '-'")
