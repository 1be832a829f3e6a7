"""Every command explains itself: each option has help text, each argument is named in its command's help,
and the summaries in a group's listing are shown whole (click cuts a long one at about 45 characters)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from appdeb.cli.main import main


def commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, group
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


ALL = list(commands())
IDS = [" ".join(path) or "appdeb" for path, _ in ALL]


def words(text: str) -> str:
    return "".join(text.split())  # click wraps long summaries, also after a hyphen


@pytest.mark.parametrize(("path", "command"), ALL, ids=IDS)
def test_every_option_has_help_and_every_argument_is_explained(path: tuple[str, ...], command: click.Command) -> None:
    ctx = click.Context(command, info_name=" ".join(("appdeb", *path)))
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.hidden or (param.help or "").strip(), f"{param.opts} has no help text"
        else:
            metavar = param.make_metavar(ctx) if hasattr(click.Argument, "make_metavar") else param.human_readable_name
            name = metavar.rstrip(".").removeprefix("[").removesuffix("]").rstrip(".")
            assert name in (command.help or ""), f"argument {name} is not explained in the help of {path}"


@pytest.mark.parametrize(("path", "group"), [(p, c) for p, c in ALL if isinstance(c, click.Group)],
                         ids=[i for i, (_, c) in zip(IDS, ALL, strict=True) if isinstance(c, click.Group)])
def test_group_listings_show_whole_summaries(path: tuple[str, ...], group: click.Group) -> None:
    out = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
    assert out.exit_code == 0, out.output
    listing = out.output.split("Commands:", 1)[1]  # a cut summary ends in "..." and fails the comparison below
    for name, command in group.commands.items():
        summary = words((command.help or "").split("\n\n")[0])
        assert summary and summary in words(listing), f"{name}: {summary!r} not shown whole"
