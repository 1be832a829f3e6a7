"""Option checks the CLI modules share: a value that fails its allow-list is a usage error (exit 2, as
click's own), named by click with the option, before any work starts."""

from __future__ import annotations

from collections.abc import Callable

import click

from appdeb.errors import AppdebError


def check_url_option(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from appdeb.repo.serve import check_url

    return _usage(check_url, value)


def check_span_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A time span (15min, 7d, at least 10 s); a malformed one is a usage error (exit 2), as click's own."""
    from appdeb.repo.serve import span_seconds

    return None if value is None else _usage(lambda text: span_seconds(text, option=""), value)


def _usage(check: Callable[[str], object], value: str) -> str:
    try:
        check(value)
    except AppdebError as exc:
        raise click.BadParameter(str(exc)) from None
    return value
