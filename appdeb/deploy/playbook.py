"""The play appdeb runs on each host, as data: Ansible modules with argv lists, never a shell line.

Per host: the repository's key, source and preferences (the same three files as `appdeb repo
client-config`), `apt-get update --error-on=any` of this repository's source only (Debian's mirrors
are not a deploy's business), the version the host has now, the install of the
target version, the health gate (`PKG verify`: units settled, HTTP health) and the hold (`PKG pin
VERSION`, so nothing but the next deploy moves it). If the install or the gate fails, the host goes
back to the version it had (`PKG rollback VERSION`), or, if it had none, the package is removed
(its data stays), and the host fails, which stops the rollout. Under --check only what reads runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from appdeb.errors import AppdebError

BEFORE, INSTALL, VERIFY, HOLD = "version before", "install", "health gate", "hold the version"
ROLLBACK, REMOVE, FAILED = "back to the version before", "remove the failed first install", "deploy failed"
FILES_DIR = "files"
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
VERSION_RE = re.compile(r"[0-9][A-Za-z0-9.+~:-]*")


def check_target(package: str, version: str) -> None:
    """Both reach argv lists on hosts and apt's PKG=VERSION syntax: Debian's own character sets only."""
    if not PACKAGE_RE.fullmatch(package):
        raise AppdebError(f"not a Debian package name: {package!r}")
    if not VERSION_RE.fullmatch(version):
        raise AppdebError(f"not a Debian version: {version!r}")


def _command(name: str, argv: list[str], **options: Any) -> dict[str, Any]:
    return {"name": name, "ansible.builtin.command": {"argv": argv}, **options}


def repository_tasks(files: dict[str, str]) -> list[dict[str, Any]]:
    """The client configuration, file by file (a changed key or URL shows as 'changed' under --check).

    The files travel as files beside the play (`src:`), never as `content:`, which Ansible would
    evaluate as a template on the controller.
    """
    return [{"name": f"repository file {path}",
             "ansible.builtin.copy": {"dest": path, "src": f"{FILES_DIR}/{Path(path).name}", "mode": "0644",
                                      "owner": "root", "group": "root"}}
            for path in files]


def deploy_play(package: str, version: str, files: dict[str, str]) -> list[dict[str, Any]]:
    """The whole playbook (one play) for deploying PACKAGE=VERSION to whatever hosts it is limited to."""
    check_target(package, version)
    launcher = f"/usr/bin/{package}"
    noninteractive = {"DEBIAN_FRONTEND": "noninteractive"}
    before = _command(BEFORE, ["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
                      register="appdeb_before", failed_when=False, changed_when=False, check_mode=False)
    sources = next((path for path in files if path.endswith(".sources")), None)
    if sources is None:
        raise AppdebError("the repository's client configuration has no .sources file")
    only_this = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=-",
                 "-o", "APT::Get::List-Cleanup=0"]  # a deploy waits for this repository only, not for mirrors
    update = _command("apt-get update", ["apt-get", "update", "--error-on=any", *only_this], changed_when=False)
    install = _command(INSTALL, ["apt-get", "install", "-y", "--allow-downgrades", f"{package}={version}"],
                       environment=noninteractive)
    had = ("appdeb_before.rc == 0 and appdeb_before.stdout.split() | length == 2"
           " and appdeb_before.stdout.split()[0] != 'not-installed'")
    rescue = [
        _command(ROLLBACK, [launcher, "rollback", "{{ appdeb_before.stdout.split()[1] }}"], when=had),
        _command(REMOVE, ["apt-get", "remove", "-y", package], when=f"not ({had})", environment=noninteractive),
        {"name": FAILED, "ansible.builtin.fail": {"msg": "{{ ansible_failed_result.msg | default('failed') }}: "
                                                        "{{ ansible_failed_result.stderr | default('') }}"}},
    ]
    block = [install, _command(VERIFY, [launcher, "verify"], changed_when=False),
             _command(HOLD, [launcher, "pin", version])]
    return [{"name": f"appdeb deploy {package}={version}", "hosts": "all", "gather_facts": False,
             "tasks": [*repository_tasks(files), before, update,
                       {"name": "install, gate, hold", "block": block, "rescue": rescue}]}]


def write_play(play: list[dict[str, Any]], path: Path, files: dict[str, str]) -> Path:
    """The playbook, and the repository files it copies in files/ beside it."""
    (path.parent / FILES_DIR).mkdir(exist_ok=True)
    for dest, content in files.items():
        (path.parent / FILES_DIR / Path(dest).name).write_text(content)
    path.write_text("# written by appdeb deploy; run: ansible-playbook -i INVENTORY " + path.name + "\n"
                    + yaml.safe_dump(play, sort_keys=False, width=120))
    return path
