"""The command line: click lives here only; one boundary turns AppdebError into a message and exit 1."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from . import __version__
from .cli_bench import bench
from .errors import AppdebError, SpecError

APP_DIR = click.argument("app_dir", required=False, default=".",
                         type=click.Path(file_okay=False, path_type=Path))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="appdeb")
def main() -> None:
    """appdeb: turn a Python web app described by app.yaml into versioned Debian packages."""


@main.command()
@APP_DIR
def check(app_dir: Path) -> None:
    """Validate APP_DIR/app.yaml and report every problem."""
    from .plan import port_notes
    from .validate import load_spec

    spec = load_spec(app_dir)
    click.echo(f"{app_dir / 'app.yaml'}: ok ({spec.name} {spec.version}, platform {', '.join(spec.platform)})")
    for note in port_notes(spec):
        click.echo(f"  {note}")


@main.command()
@APP_DIR
@click.option("--instance", help="Instance name: the package becomes NAME-INSTANCE.")
@click.option("--build-number", type=click.IntRange(min=0), default=1, show_default=True,
              help="Debian revision; a higher build always sorts higher.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("dist"),
              show_default=True)
@click.option("--vcs", help="VCS id (e.g. a short commit hash) appended to the version.")
@click.option("--python", "python_version", help="Target python3 version of the nodes (default: this one's).")
@click.option("--compression", type=click.Choice(["zstd", "xz", "gzip", "none"]), default="zstd",
              show_default=True, envvar="APPDEB_COMPRESSION")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of the path.")
def build(app_dir: Path, instance: str | None, build_number: int, out_dir: Path, vcs: str | None,
          python_version: str | None, compression: str, as_json: bool) -> None:
    """Build APP_DIR into a .deb and print its path."""
    from .build import BuildOptions
    from .build import build as run_build
    from .progress import reporter

    opts = BuildOptions(instance=instance, build_number=build_number, out_dir=out_dir, vcs=vcs,
                        compression=compression)
    if python_version:
        opts = dataclasses.replace(opts, python_version=python_version)
    result = run_build(app_dir, opts, reporter())
    for warning in result.warnings:
        click.echo(f"appdeb: warning: {warning}", err=True)
    if result.port is not None and not as_json:
        click.echo(f"{result.package}: web process on 127.0.0.1:{result.port}", err=True)
    click.echo(json.dumps(result.as_json()) if as_json else str(result.deb))


@main.command()
@APP_DIR
@click.option("--port", type=click.IntRange(1, 65535), help="Port on 127.0.0.1 (default: the app's).")
@click.option("--settings", type=click.Path(dir_okay=False, path_type=Path),
              help="Settings file (default: APP_DIR/settings.local.env).")
@click.option("--reload/--no-reload", default=True, show_default=True)
def serve(app_dir: Path, port: int | None, settings: Path | None, reload: bool) -> None:
    """Serve the app from a checkout, in the environment the package gives it."""
    from .devenv import exec_runtime, prepare
    from .progress import reporter

    root = prepare(app_dir, port=port, settings=settings, report=reporter())
    exec_runtime(root, "web", ["--reload"] if reload else [])


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--app-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(app_dir: Path, command: tuple[str, ...]) -> None:
    """Run COMMAND (from the description, or any program) in the app's environment."""
    from .devenv import exec_runtime, prepare

    exec_runtime(prepare(app_dir), "run", list(command))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="App name (default: the directory's name).")
def init(directory: Path, name: str | None) -> None:
    """Create a new app directory with a working app.yaml."""
    from .scaffold import init as scaffold

    click.echo(f"created {scaffold(directory, name)}")


@main.group()
def node() -> None:
    """Throw-away local Debian 12 nodes (systemd-nspawn, systemd as PID 1) to try packages on."""


@node.command("up")
@click.argument("name")
def node_up(name: str) -> None:
    """Boot node NAME (builds the cached base image on first use)."""
    from . import node as nodes
    from .progress import reporter

    n = nodes.up(name, progress=reporter(True))
    click.echo(f"{n.name}: running (pid1 {n.pid1}, root {n.root})")


@node.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def node_exec(name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside node NAME; its output and exit code pass through."""
    from . import node as nodes

    result = nodes.exec(nodes.get(name), list(command))
    click.echo(result.stdout, nl=False)
    sys.exit(result.returncode)


@node.command("install")
@click.argument("name")
@click.argument("debs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def node_install(name: str, debs: tuple[Path, ...]) -> None:
    """Copy .deb files into node NAME and install them with apt-get (dependencies resolved)."""
    from . import node as nodes

    result = nodes.install(nodes.get(name), list(debs), check=False)
    click.echo(result.stdout, nl=False)
    sys.exit(result.returncode)


@node.command("list")
def node_list() -> None:
    """List nodes."""
    from . import node as nodes

    for info in nodes.list_nodes():
        click.echo(f"{info.name}\t{info.state}\t{info.pid1 or '-'}\t{info.root}")


@node.command("down")
@click.argument("name")
def node_down(name: str) -> None:
    """Shut node NAME down cleanly and remove it."""
    from . import node as nodes

    nodes.down(name)
    click.echo(f"{name}: removed")


main.add_command(bench)  # appdeb bench …: benchmarks on nodes (appdeb/cli_bench.py)


# --- the signed apt repository (appdeb/repo.py; docs/repository.md) ----------------------------------

REPO_ROOT = click.option("--root", type=click.Path(file_okay=False, path_type=Path),
                         help="Repository root (default: $APPDEB_REPO, else ~/.local/share/appdeb/repo).")
DISTRIBUTION = click.option("--distribution", help="Distribution (suite) (default: the repository's).")
COMPONENT = click.option("--component", help="Component (default: the repository's).")
KEEP = click.option("--keep", type=click.IntRange(min=0),
                    help="Versions kept per package and architecture; 0 keeps all.")


def _check_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(r"(https?|file)://[^\s\"'<>]+", value):
        raise click.BadParameter(f"{value!r} is not an http://, https:// or file:// URL")
    return value


@main.group("repo")
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
    from .repoconfig import default_root, init_repo

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


@main.command()
@click.argument("debs", metavar="FILE.deb...", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@DISTRIBUTION
@COMPONENT
@KEEP
@REPO_ROOT
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
def publish(debs: tuple[Path, ...], distribution: str | None, component: str | None, keep: int | None,
            root: Path | None, as_json: bool) -> None:
    """Add .debs to the repository and publish a new signed snapshot (a no-op if nothing changed)."""
    from .repo import open_repo, published_snapshot
    from .repo import publish as run_publish

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
    from .repo import open_repo, serve_forever

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
    from .repo import list_packages, open_repo, published_snapshot

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

    from .repo import history, open_repo

    for entry in history(open_repo(root), distribution):
        if as_json:
            click.echo(json.dumps(asdict(entry)))
            continue
        click.echo(f"{entry.time}  {entry.action:<8}  {entry.distribution}  {entry.snapshot}"
                   f"  (before: {entry.previous or 'nothing'})")
        for key in entry.added:
            click.echo(f"    + {key}")
        for key in entry.removed:
            click.echo(f"    - {key}")


@repo_group.command("snapshots")
@REPO_ROOT
@DISTRIBUTION
def repo_snapshots(root: Path | None, distribution: str | None) -> None:
    """List the snapshots kept as rollback targets, oldest first; * marks the published one."""
    from .repo import open_repo, published_snapshot, snapshots

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
    from .repo import open_repo, rollback

    entry = rollback(open_repo(root), to, distribution)
    click.echo(f"{entry.distribution}: now serving {entry.snapshot} (was {entry.previous})")
    for key in entry.added:
        click.echo(f"    + {key}")
    for key in entry.removed:
        click.echo(f"    - {key}")
    click.echo("nodes see this after apt-get update; apt never downgrades an installed package by itself: "
               "run 'PKG rollback VERSION' on nodes that must go back too", err=True)


@repo_group.command("client-config")
@REPO_ROOT
@click.option("--url", required=True, callback=_check_url, help="URL nodes fetch the published tree from.")
@click.option("--name", default="appdeb", show_default=True, help="Name of the keyring, .sources and .pref files.")
@DISTRIBUTION
@COMPONENT
@click.option("--write-to", type=click.Path(file_okay=False, path_type=Path), metavar="ROOT",
              help="Write the files below ROOT (/ on the node itself, or a node image's root) instead of "
                   "printing them.")
def repo_client_config(root: Path | None, url: str, name: str, distribution: str | None, component: str | None,
                       write_to: Path | None) -> None:
    """The three files a node needs: the key, a deb822 source bound to it, and a pin over Debian's archive.

    Printed as a shell script to run as root on a node; no apt-key, nothing in trusted.gpg.d.
    """
    from .repo import client_config, open_repo, write_client_config

    cfg = open_repo(root)
    if write_to is not None:
        for written in write_client_config(write_to, cfg, url, name, distribution, component):
            click.echo(f"wrote {written}")
        return
    click.echo(f"# apt client configuration for {url} (run as root on the node, e.g. | ssh root@NODE sh)\nset -e")
    for path, text in client_config(cfg, url, name, distribution, component).items():
        click.echo(f"install -d -m 0755 {Path(path).parent}\n"
                   f"cat > {path} <<'APPDEB_EOF'\n{text.rstrip(chr(10))}\nAPPDEB_EOF\nchmod 0644 {path}")
    click.echo("apt-get update --error-on=any")


def run_cli() -> None:
    """Entry point with the error boundary: user errors exit 1 without a traceback, usage errors 2."""
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except SpecError as exc:
        click.echo(str(exc), err=True)
        click.echo(f"appdeb: {len(exc.problems)} problem(s) in the app description", err=True)
        sys.exit(1)
    except AppdebError as exc:
        click.echo(f"appdeb: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_cli()
