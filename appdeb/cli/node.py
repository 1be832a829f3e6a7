"""`appdeb node …`: throw-away local Debian nodes to try packages on (the work is in appdeb/node)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def node() -> None:
    """Throw-away local Debian 12 or 13 nodes (systemd-nspawn, systemd as PID 1) to try packages on."""


@node.command("up")
@click.argument("name")
@click.option("--network", type=click.Choice(["host", "private"]), default="host", show_default=True,
              help="host: share this machine's network (the default for now). private: a network namespace "
                   "and address of the node's own on the harness's /24, reachable from this machine and the "
                   "other private nodes only, with sshd and harness keys (see `node inventory`).")
@click.option("--suite", type=click.Choice(["bookworm", "trixie"]), default="bookworm", show_default=True,
              help="Debian release of the node: bookworm (Debian 12) or trixie (Debian 13); each suite's "
                   "image is built from this machine's configured Debian mirror and cached separately.")
def node_up(name: str, network: str, suite: str) -> None:
    """Boot node NAME (builds the cached base image of its suite on first use)."""
    from appdeb.node import harness as nodes
    from appdeb.progress import reporter

    n = nodes.up(name, progress=reporter(True), network=network, suite=suite)
    where = f", address {n.address}" if n.address else ""
    click.echo(f"{n.name}: running (pid1 {n.pid1}, root {n.root}{where})")


@node.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def node_exec(name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside node NAME; its output and exit code pass through (`NAME -- COMMAND` works too)."""
    from appdeb.node import harness as nodes

    if command[0] == "--":  # the usual separator; click keeps it because it follows an argument here
        command = command[1:]
        if not command:
            raise click.UsageError("no COMMAND after --")
    result = nodes.run_in(nodes.get(name), list(command))
    click.echo(result.stdout, nl=False)
    sys.exit(result.returncode)


@node.command("install")
@click.argument("name")
@click.argument("debs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def node_install(name: str, debs: tuple[Path, ...]) -> None:
    """Copy DEBS (.deb files) into node NAME and install them with apt-get (dependencies resolved)."""
    from appdeb.node import harness as nodes

    result = nodes.install(nodes.get(name), list(debs), check=False)
    click.echo(result.stdout, nl=False)
    sys.exit(result.returncode)


@node.command("list")
def node_list() -> None:
    """List nodes: name, state, PID 1, network (host or private), address (- on the host's network), root."""
    from appdeb.node import harness as nodes

    for info in nodes.list_nodes():
        click.echo(f"{info.name}\t{info.state}\t{info.pid1 or '-'}\t{info.network}\t{info.address or '-'}\t"
                   f"{info.root}")


@node.command("inventory")
def node_inventory() -> None:
    """Print an Ansible inventory (INI format) of the running private nodes, in group appdeb_nodes.

    Each host logs in as root with the harness's key and checks the node's host key strictly against
    the harness's known_hosts. Use it as `appdeb node inventory > hosts.ini; ansible -i hosts.ini …`.
    """
    from appdeb.node import harness as nodes

    click.echo(nodes.inventory_text(), nl=False)


@node.command("down")
@click.argument("name")
def node_down(name: str) -> None:
    """Shut node NAME down cleanly and remove it."""
    from appdeb.node import harness as nodes

    nodes.down(name)
    click.echo(f"{name}: removed")
