"""The command line: click lives in appdeb/cli only; one boundary turns AppdebError into a message and exit 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from appdeb import __version__
from appdeb.cli.bench import bench
from appdeb.cli.deploy import deploy
from appdeb.cli.node import node
from appdeb.cli.repo import publish, repo_group
from appdeb.errors import AppdebError, SpecError

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
    from appdeb.build.plan import port_notes
    from appdeb.build.validate import load_spec

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
              show_default=True, help="Directory the .deb is written to (created if missing).")
@click.option("--vcs", help="VCS id (e.g. a short commit hash) appended to the version.")
@click.option("--target", type=click.Choice(["debian-13", "debian-12"]),
              help="Debian release to build for: its python3, wheel platform, dependency floors and repository "
                   "distribution (default: app.yaml's target:, else the release whose python3 is this machine's).")
@click.option("--python", "python_version", help="Target python3 version; must be the target's (prefer --target).")
@click.option("--compression", type=click.Choice(["zstd", "xz", "gzip", "none"]), default="zstd",
              show_default=True, envvar="APPDEB_COMPRESSION",
              help="Compression of the .deb's members (or $APPDEB_COMPRESSION); xz for targets older than "
                   "bookworm.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of the path.")
def build(app_dir: Path, instance: str | None, build_number: int, out_dir: Path, vcs: str | None,
          target: str | None, python_version: str | None, compression: str, as_json: bool) -> None:
    """Build APP_DIR into a .deb and print its path."""
    from appdeb.build.pipeline import BuildOptions
    from appdeb.build.pipeline import build as run_build
    from appdeb.progress import reporter

    opts = BuildOptions(instance=instance, build_number=build_number, out_dir=out_dir, vcs=vcs,
                        compression=compression, target=target, python_version=python_version)
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
@click.option("--reload/--no-reload", default=True, show_default=True,
              help="Restart the web process when a source file of the app changes.")
def serve(app_dir: Path, port: int | None, settings: Path | None, reload: bool) -> None:
    """Serve the app in APP_DIR from a checkout, in the environment the package gives it."""
    from appdeb.dev.env import exec_runtime, prepare
    from appdeb.progress import reporter

    root = prepare(app_dir, port=port, settings=settings, report=reporter())
    exec_runtime(root, "web", ["--reload"] if reload else [])


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--app-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="The app's directory (where app.yaml is).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(app_dir: Path, command: tuple[str, ...]) -> None:
    """Run COMMAND (from the description, or any program) in the app's environment."""
    from appdeb.dev.env import exec_runtime, prepare

    exec_runtime(prepare(app_dir), "run", list(command))


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="App name (default: the directory's name).")
def init(directory: Path, name: str | None) -> None:
    """Create DIRECTORY with a working app.yaml, a minimal WSGI app and requirements.txt."""
    from appdeb.dev.scaffold import init as scaffold

    for path in scaffold(directory, name):
        click.echo(f"created {path}")


def whole_summaries(group: click.Group) -> None:
    """Show each command's summary whole in its group's listing: the first paragraph of its help.

    Left to itself click cuts a summary at the listing's width (about 45 characters) with "...".
    """
    for command in group.commands.values():
        if command.short_help is None and command.help:
            command.short_help = " ".join(command.help.split("\n\n")[0].split())
        if isinstance(command, click.Group):
            whole_summaries(command)


for group in (node, bench, repo_group, publish, deploy):  # the parts of the command line, each in its own module
    main.add_command(group)
whole_summaries(main)


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
        click.echo("\n".join(str(p) for p in exc.problems), err=True)
        click.echo(f"appdeb: {exc.summary()}", err=True)
        sys.exit(1)
    except AppdebError as exc:
        click.echo(f"appdeb: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run_cli()
