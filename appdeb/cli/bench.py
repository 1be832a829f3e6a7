"""`appdeb bench …`: benchmarks as commands (click lives in CLI modules only; the work is in appdeb/failsafe)."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("bench")
def bench() -> None:
    """Benchmarks that need a node (they boot their own and remove it)."""


@bench.command("failsafe")
@click.option("--servers", "server_names", default="all", show_default=True, metavar="NAME,…",
              help="Servers to compare, comma-separated (--list shows them).")
@click.option("--scenarios", "scenario_names", default="all", show_default=True, metavar="NAME,…",
              help="Scenarios to run, comma-separated (--list shows them).")
@click.option("--duration", type=click.FloatRange(2, 120), default=30, show_default=True,
              help="Seconds of sending per scenario (the first fifth, at most 5 s, is a warm-up of good requests).")
@click.option("--rate", type=click.FloatRange(1, 100), default=20, show_default=True,
              help="Requests per second, fixed, whatever the server does.")
@click.option("--timeout", type=click.FloatRange(1, 120), default=15, show_default=True,
              help="The client's per-request timeout in seconds (slow transfers get --slow-seconds on top); "
                   "longer than the servers' own 10 s, so their kills show as such.")
@click.option("--slow-seconds", type=click.FloatRange(1, 120), default=30, show_default=True,
              help="How long a slow upload sends its 1 MiB and a slow download reads its 16 MiB.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build/failsafe"),
              show_default=True, help="Directory for failsafe.json, failsafe.md and failsafe.png.")
@click.option("--app-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="The scenario app (default: bench/failsafe/app of this checkout).")
@click.option("--instance", type=click.Choice(["fsb", "fst"]), default="fsb", show_default=True,
              help="Instance of the scenario app, which decides the ports (fst: a second run beside a full one).")
@click.option("--from-json", "from_json", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Run nothing: write the Markdown and PNG again (into --out) from an earlier run's JSON.")
@click.option("--list", "list_only", is_flag=True, help="List the servers and scenarios and exit.")
def failsafe(server_names: str, scenario_names: str, duration: float, rate: float, timeout: float,
             slow_seconds: float, out_dir: Path, app_dir: Path | None, instance: str, from_json: Path | None,
             list_only: bool) -> None:
    """Which server keeps serving when the app misbehaves (wedges, crashes, leaks, slow clients)?

    Boots a node, installs the scenario app, runs each scenario against each server at a fixed
    request rate, and writes a JSON file with every request, a Markdown table and a PNG plot.
    """
    from appdeb.errors import AppdebError
    from appdeb.failsafe.harness import DEFAULT_APP_DIR, BenchOptions, rewrite_reports, run_bench
    from appdeb.failsafe.scenarios import SCENARIOS, LoadShape, pick
    from appdeb.failsafe.servers import SERVERS
    from appdeb.progress import reporter

    if list_only:
        for name, server in SERVERS.items():
            click.echo(f"server    {name:<18} {server.summary}")
        for name, scenario in SCENARIOS.items():
            click.echo(f"scenario  {name:<18} {scenario.description}")
        return
    if from_json:
        click.echo(rewrite_reports(from_json, out_dir, reporter(True)).markdown.read_text())
        return
    chosen_servers, chosen_scenarios = pick(server_names, SERVERS, "servers"), pick(scenario_names, SCENARIOS,
                                                                                     "scenarios")
    if not chosen_servers or not chosen_scenarios:
        raise AppdebError("choose at least one server and one scenario")
    options = BenchOptions(chosen_servers, chosen_scenarios, LoadShape(duration, rate, timeout, slow_seconds),
                           out_dir, app_dir or DEFAULT_APP_DIR, instance)
    outcome = run_bench(options, progress=reporter(True))
    click.echo(outcome.markdown.read_text())
