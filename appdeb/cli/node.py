"""`appdeb node …`: throw-away local Debian nodes to try packages on (the work is in appdeb/node)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def node() -> None:
    """Throw-away local Debian 12 nodes (systemd-nspawn, systemd as PID 1) to try packages on."""


@node.command("up")
@click.argument("name")
def node_up(name: str) -> None:
    """Boot node NAME (builds the cached base image on first use)."""
    from appdeb.node import harness as nodes
    from appdeb.progress import reporter

    n = nodes.up(name, progress=reporter(True))
    click.echo(f"{n.name}: running (pid1 {n.pid1}, root {n.root})")


@node.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("name")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def node_exec(name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside node NAME; its output and exit code pass through."""
    from appdeb.node import harness as nodes

    result = nodes.run_in(nodes.get(name), list(command))
    click.echo(result.stdout, nl=False)
    sys.exit(result.returncode)


@node.command("install")
@click.argument("name")
@click.argument("debs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def node_install(name: str, debs: tuple[Path, ...]) -> None:
    """Copy .deb files into node NAME and install them with apt-get (dependencies resolved)."""
    from appdeb.node import harness as nodes

    result = nodes.install(nodes.get(name), list(debs), check=False)
    click.echo(result.stdout, nl=False)
    sys.exit(result.returncode)


@node.command("list")
def node_list() -> None:
    """List nodes."""
    from appdeb.node import harness as nodes

    for info in nodes.list_nodes():
        click.echo(f"{info.name}\t{info.state}\t{info.pid1 or '-'}\t{info.root}")


@node.command("down")
@click.argument("name")
def node_down(name: str) -> None:
    """Shut node NAME down cleanly and remove it."""
    from appdeb.node import harness as nodes

    nodes.down(name)
    click.echo(f"{name}: removed")
