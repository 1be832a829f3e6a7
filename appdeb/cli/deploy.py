"""`appdeb deploy`: push a release to the hosts of an Ansible inventory (the work is in appdeb/deploy)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from appdeb.cli.options import check_url_option
from appdeb.errors import AppdebError


@click.command()
@click.argument("package")
@click.option("-i", "--inventory", required=True, type=click.Path(exists=True, path_type=Path),
              help="Ansible inventory of the hosts (any format Ansible reads; `appdeb node inventory` writes one).")
@click.option("--version", "version", help="Version to deploy (default: the newest one published).")
@click.option("--repo-url", required=True, callback=check_url_option,
              help="URL the hosts fetch the repository from (as for `repo client-config`).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Repository root (default: $APPDEB_REPO, else ~/.local/share/appdeb/repo).")
@click.option("--distribution", help="Distribution the hosts follow (default: the repository's, of the "
              "Debian release PACKAGE is published for).")
@click.option("--component", help="Component (default: the repository's).")
@click.option("--name", default="appdeb", show_default=True, help="Name of the key, .sources and .pref files on hosts.")
@click.option("--canary", metavar="HOST", help="Host deployed first, alone (default: the inventory's first).")
@click.option("--batch", default="1", show_default=True, metavar="N|N%",
              help="Hosts per batch after the canary: a number, or a share of the fleet such as 25%.")
@click.option("--limit", metavar="PATTERN", help="Only these hosts of the inventory (Ansible's --limit syntax).")
@click.option("--check", is_flag=True, help="Show what would change on each host; change nothing.")
@click.option("--emit", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write the playbook, inventory and ansible.cfg into DIR instead of running them.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-host outcome as JSON lines.")
def deploy(package: str, inventory: Path, version: str | None, repo_url: str, root: Path | None,
           distribution: str | None, component: str | None, name: str, canary: str | None, batch: str,
           limit: str | None, check: bool, emit: Path | None, as_json: bool) -> None:
    """Install PACKAGE on every host: canary first, then batches; health-gated; failed hosts go back.

    A host whose Debian release is not the distribution's fails with nothing changed. Each other
    host gets the repository's key and source, `apt-get update --error-on=any`, the version,
    then `PACKAGE verify` (units and HTTP health) and a pin on that version. The first failed host
    stops the rollout and returns to the repository files and version it had; the command then
    exits 1 naming it.
    """
    from appdeb.deploy import rollout as ro
    from appdeb.deploy.inventory import fleet as read_fleet
    from appdeb.repo.aptly import list_packages
    from appdeb.repo.config import open_repo
    from appdeb.repo.dists import deploy_distribution
    from appdeb.repo.serve import client_config

    cfg = open_repo(root)
    if distribution is None:  # the hosts follow the distribution of the package's Debian release
        distribution = deploy_distribution(cfg.distribution, package,
                                           lambda d: [r.name for r in list_packages(cfg, d)])
    files = client_config(cfg, repo_url, name, distribution, component)
    if version is None:
        published = [r.version for r in list_packages(cfg, distribution) if r.name == package]
        if not published:
            raise AppdebError(f"{package} is not published in {distribution or cfg.distribution}")
        version = published[-1]
    if emit is not None:
        for written in ro.emit(emit, inventory, package, version, files):
            click.echo(f"wrote {written}")
        return
    hosts = read_fleet(inventory, canary=canary, limit=limit)
    result = (ro.check(hosts, inventory, package, version, files) if check else
              ro.deploy(hosts, inventory, package, version, files, batch=batch,
                        progress=lambda line: click.echo(line, err=True)))
    if as_json:
        for o in result.outcomes:
            click.echo(json.dumps(asdict(o)))
    else:
        click.echo(ro.table(result))
    sys.stdout.flush()
    ro.require_ok(result)
