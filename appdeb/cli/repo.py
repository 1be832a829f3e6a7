"""`appdeb repo …` and `appdeb publish`: the private signed apt repository (docs/repository.md).

The work is in appdeb/repo; this module only parses options and prints.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from appdeb.cli.options import check_span_option, check_url_option
from appdeb.errors import AppdebError

if TYPE_CHECKING:
    from appdeb.repo.store import HistoryEntry

REPO_ROOT = click.option("--root", type=click.Path(file_okay=False, path_type=Path),
                         help="Repository root (default: $APPDEB_REPO, else ~/.local/share/appdeb/repo).")
DISTRIBUTION = click.option("--distribution", help="Distribution (suite) (default: the repository's).")
COMPONENT = click.option("--component", help="Component (default: the repository's).")
KEEP = click.option("--keep", type=click.IntRange(min=0),
                    help="Versions kept per package and architecture; 0 keeps all.")


@click.group("repo")
def repo_group() -> None:
    """The private signed apt repository (aptly) that nodes install from."""


@repo_group.command("init")
@REPO_ROOT
@click.option("--key", help="Sign with this key: an exported secret-key file, or a key ID/fingerprint from "
                            "your keyring (default: generate a new key).")
@DISTRIBUTION
@COMPONENT
@KEEP
@click.option("--keep-snapshots", type=click.IntRange(min=0), help="Snapshots kept as rollback targets; 0 keeps all.")
@click.option("--arch", "architectures", multiple=True, help="Architecture to publish (repeatable; default: "
                                                             "this machine's).")
def repo_init(root: Path | None, key: str | None, distribution: str | None, component: str | None,
              keep: int | None, keep_snapshots: int | None, architectures: tuple[str, ...]) -> None:
    """Create the repository and its signing key (re-running keeps the key and unchanged settings)."""
    from appdeb.repo.config import default_root, init_repo

    existed = ((root or default_root()).expanduser() / "settings.json").exists()
    cfg = init_repo(root, key, distribution=distribution, component=component, keep=keep,
                    keep_snapshots=keep_snapshots, architectures=architectures or None)
    click.echo(f"{'updated' if existed else 'created'} repository {cfg.root}")
    click.echo(f"  signing key   {cfg.key}")
    click.echo(f"  publishes     {cfg.distribution}/{cfg.component} ({', '.join(cfg.architectures)})")
    click.echo(f"  retention     {cfg.keep or 'all'} versions per package, {cfg.keep_snapshots or 'all'} snapshots")
    click.echo(f"  public key    {cfg.key_asc}")
    if not existed:
        click.echo("back up the secret key now (nodes trust only this key):\n"
                   f"  GNUPGHOME={cfg.gnupg_home} gpg --armor --export-secret-keys > repo-signing-key.asc")


@click.command()
@click.argument("debs", metavar="FILE.deb...", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DISTRIBUTION
@COMPONENT
@KEEP
@REPO_ROOT
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def publish(debs: tuple[Path, ...], distribution: str | None, component: str | None, keep: int | None,
            root: Path | None, as_json: bool) -> None:
    """Add FILE.deb... to the repository and publish a new signed snapshot (a no-op if nothing changed)."""
    from appdeb.repo.aptly import published_snapshot
    from appdeb.repo.config import open_repo
    from appdeb.repo.publish import publish as run_publish

    cfg = open_repo(root)
    result = run_publish(cfg, list(debs), distribution, component, keep)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result)))
        return
    for label, keys in (("added", result.added), ("unchanged", result.unchanged), ("removed", result.removed)):
        for key in keys:
            click.echo(f"{label:<10} {key}")
    if result.snapshot:
        click.echo(f"published  {result.snapshot} ({result.distribution}, signed, in {cfg.public_dir})")
    else:
        current = published_snapshot(cfg, result.distribution)
        click.echo(f"nothing changed: {result.distribution} still serves {current or 'nothing'}")


@repo_group.command("serve")
@REPO_ROOT
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--quiet", is_flag=True, help="Do not log requests.")
def repo_serve(root: Path | None, port: int, host: str, quiet: bool) -> None:
    """Serve the published tree over HTTP until Ctrl-C (for trying it; use a web server for real nodes)."""
    from appdeb.repo.config import open_repo
    from appdeb.repo.serve import serve_forever

    cfg = open_repo(root)

    def ready(url: str) -> None:
        click.echo(f"serving {cfg.public_dir} at {url} (Ctrl-C stops)")
        click.echo(f"nodes: appdeb repo client-config --url {url}", err=True)
        sys.stdout.flush()

    try:
        serve_forever(cfg, host, port, ready=ready, quiet=quiet)
    except OSError as exc:
        raise AppdebError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


@repo_group.command("list")
@REPO_ROOT
@DISTRIBUTION
def repo_list(root: Path | None, distribution: str | None) -> None:
    """List the packages nodes currently get (the published snapshot)."""
    from appdeb.repo.aptly import list_packages, published_snapshot
    from appdeb.repo.config import open_repo

    cfg = open_repo(root)
    dist = distribution or cfg.distribution
    snap = published_snapshot(cfg, dist)
    if snap is None:
        click.echo(f"nothing published for {dist}")
        return
    refs = list_packages(cfg, dist)
    width = max((len(r.name) for r in refs), default=0)
    for ref in refs:
        click.echo(f"{ref.name:<{width}}  {ref.version}  {ref.arch}")
    click.echo(f"({len(refs)} package version(s) in {snap})", err=True)


@repo_group.command("history")
@REPO_ROOT
@click.option("--distribution", help="Only this distribution (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def repo_history(root: Path | None, distribution: str | None, as_json: bool) -> None:
    """Show publishes and rollbacks, oldest first, with the packages each added and removed."""
    from dataclasses import asdict

    from appdeb.repo.config import open_repo
    from appdeb.repo.store import history

    for entry in history(open_repo(root), distribution):
        if as_json:
            click.echo(json.dumps(asdict(entry)))
            continue
        click.echo(f"{entry.time}  {entry.action:<8}  {entry.distribution}  {entry.snapshot}"
                   f"  (before: {entry.previous or 'nothing'})")
        _echo_changes(entry)


@repo_group.command("snapshots")
@REPO_ROOT
@DISTRIBUTION
def repo_snapshots(root: Path | None, distribution: str | None) -> None:
    """List the snapshots kept as rollback targets, oldest first; * marks the published one."""
    from appdeb.repo.aptly import published_snapshot, snapshots
    from appdeb.repo.config import open_repo

    cfg = open_repo(root)
    current = published_snapshot(cfg, distribution)
    for name in snapshots(cfg, distribution):
        click.echo(f"{'*' if name == current else ' '} {name}")


@repo_group.command("rollback")
@REPO_ROOT
@DISTRIBUTION
@click.option("--to", "to", metavar="SNAPSHOT", help="Snapshot to publish (default: the one before the last publish).")
def repo_rollback(root: Path | None, distribution: str | None, to: str | None) -> None:
    """Publish an earlier snapshot again, atomically and signed; the next publish builds on it."""
    from appdeb.repo.config import open_repo
    from appdeb.repo.publish import rollback

    _echo_entry(rollback(open_repo(root), to, distribution))
    click.echo("nodes see this after apt-get update; apt never downgrades an installed package by itself: "
               "run 'PKG rollback VERSION' on nodes that must go back too", err=True)


@repo_group.command("refresh")
@REPO_ROOT
@click.option("--distribution", "distribution", metavar="DIST",
              help="Sign only this distribution again (default: every published one).")
def repo_refresh(root: Path | None, distribution: str | None) -> None:
    """Sign what is published again, unchanged and dated now, for nodes set up with --valid-for (a timer)."""
    from appdeb.repo.config import open_repo
    from appdeb.repo.switching import refresh

    for dist, snap in sorted(refresh(open_repo(root), distribution).items()):
        click.echo(f"{dist}: {snap} signed again")


def _echo_entry(entry: HistoryEntry) -> None:
    """What a rollback, promotion or yank changed for the distribution's nodes."""
    click.echo(f"{entry.distribution}: now serving {entry.snapshot} (was {entry.previous or 'nothing'})")
    _echo_changes(entry)


def _echo_changes(entry: HistoryEntry) -> None:
    """The packages an entry added (+) and removed (-), one per line."""
    for sign, keys in (("+", entry.added), ("-", entry.removed)):
        for key in keys:
            click.echo(f"    {sign} {key}")


@repo_group.command("promote")
@REPO_ROOT
@click.argument("snapshot", required=False)
@click.option("--from", "from_dist", metavar="DIST", help="Promote what this distribution serves now.")
@click.option("--to", "to", metavar="DIST", required=True, help="Distribution to publish it to (e.g. prod).")
def repo_promote(root: Path | None, snapshot: str | None, from_dist: str | None, to: str) -> None:
    """Publish exactly the packages (the same bytes) of SNAPSHOT or of --from DIST to --to DIST, signed."""
    from appdeb.repo.config import open_repo
    from appdeb.repo.promote import promote

    if (snapshot is None) == (from_dist is None):
        raise click.UsageError("name either a SNAPSHOT or --from DIST")
    entry = promote(open_repo(root), to, snapshot, from_dist)
    if entry is None:
        click.echo(f"nothing changed: {to} already serves exactly these packages")
        return
    _echo_entry(entry)


@repo_group.command("yank")
@REPO_ROOT
@DISTRIBUTION
@click.argument("spec", metavar="PKG=VERSION")
def repo_yank(root: Path | None, distribution: str | None, spec: str) -> None:
    """Withdraw PKG=VERSION from what a distribution serves; it is never published again."""
    from appdeb.repo.config import open_repo
    from appdeb.repo.promote import yank

    _echo_entry(yank(open_repo(root), spec, distribution))
    click.echo("nodes that installed it keep it until they move on ('PKG pin', or the next release)", err=True)


@repo_group.command("client-config")
@REPO_ROOT
@click.option("--url", required=True, callback=check_url_option, help="URL nodes fetch the published tree from.")
@click.option("--name", default="appdeb", show_default=True, help="Name of the keyring, .sources and .pref files.")
@DISTRIBUTION
@COMPONENT
@click.option("--write-to", type=click.Path(file_okay=False, path_type=Path), metavar="ROOT",
              help="Write the files below ROOT (/ on the node itself, or a node image's root) instead of "
                   "printing them.")
@click.option("--pull", "pull", multiple=True, metavar="PKG",
              help="Let the node take new releases of PKG by itself (a systemd timer runs 'PKG pull'); repeatable.")
@click.option("--pull-every", default="15min", show_default=True, metavar="SPAN", callback=check_span_option,
              help="How often the pull timer looks for a new release (e.g. 15min, 1h; randomized by a quarter).")
@click.option("--suite", type=click.Choice(["bookworm", "trixie"]),
              help="The node's Debian suite: it follows the repository's distribution of that release (default: "
                   "the suite of the Debian below --write-to, else the repository's distribution).")
@click.option("--valid-for", metavar="SPAN", callback=check_span_option,
              help="Refuse the repository's state SPAN (e.g. 7d) after it was signed: a replayed old state is "
                   "noticed. Run 'appdeb repo refresh' more often.")
def repo_client_config(root: Path | None, url: str, name: str, distribution: str | None, component: str | None,
                       write_to: Path | None, pull: tuple[str, ...], pull_every: str, suite: str | None,
                       valid_for: str | None) -> None:
    """The three files a node needs: the key, a deb822 source bound to it, and a pin over Debian's archive.

    Printed as a shell script to run as root on a node; no apt-key, nothing in trusted.gpg.d. With
    --pull also the pull timer and service, enabled for each PKG.
    """
    from appdeb.build.formats import shell
    from appdeb.repo.config import open_repo
    from appdeb.repo.serve import client_config, pull_files, pull_links, span_seconds, write_client_config

    cfg = open_repo(root)
    seconds = span_seconds(valid_for) if valid_for is not None else None
    if write_to is not None:
        for written in write_client_config(write_to, cfg, url, name, distribution, component, pull=pull,
                                           pull_every=pull_every, suite=suite, valid_for=seconds):
            click.echo(f"wrote {written}")
        return
    files = client_config(cfg, url, name, distribution, component, suite, seconds)
    files.update(pull_files(name, pull, pull_every) if pull else {})
    click.echo(f"# apt client configuration for {url} (run as root on the node, e.g. | ssh root@NODE sh)\nset -e")
    for path, text in files.items():
        click.echo(f"install -d -m 0755 {Path(path).parent}\n"
                   f"cat > {path} <<'APPDEB_EOF'\n{text.rstrip(chr(10))}\nAPPDEB_EOF\nchmod 0644 {path}")
    click.echo("apt-get update --error-on=any")
    for link, target in pull_links(pull).items():
        timer = shell(Path(link).name)
        click.echo(f"install -d -m 0755 {Path(link).parent}\nln -sfn {target} {shell(link)}\n"
                   f"if [ -d /run/systemd/system ]; then systemctl daemon-reload; systemctl start {timer}; fi")
