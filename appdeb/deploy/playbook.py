"""The play appdeb runs on each host, as data: Ansible modules with argv lists, never a shell line.

Per host: the version the host has now; its Debian release, which must be the suite of the
distribution it is pointed at (a trixie build refused by a bookworm host must not move the host's
shared source to trixie: every other appdeb package and its `PKG pull` timer read that source); a
copy of the repository files it has; the repository's key, source and preferences (the same three
files as `appdeb repo client-config`), `apt-get update --error-on=any` of this repository's source
only (Debian's mirrors are not a deploy's business), the install of the target version, the health
gate (`PKG verify`: units settled, HTTP health) and the hold (`PKG pin VERSION`, so nothing but the
next deploy moves it). If anything from the files on fails, the repository files the host had are
put back (and read again), the host goes back to the version it had (`PKG rollback VERSION`), or,
if it had none, the package is removed (its data stays), and the host fails, which stops the
rollout. Under --check only what reads runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from appdeb.errors import AppdebError
from appdeb.repo.dists import suite_of

BEFORE, INSTALL, VERIFY, HOLD = "version before", "install", "health gate", "hold the version"
ROLLBACK, REMOVE, FAILED = "back to the version before", "remove the failed first install", "deploy failed"
RELEASE, WRONG_RELEASE = "read the host release", "host release"
SAVE, RESTORE, RESTORE_ABSENT = "save repository files", "restore repository files", "remove new repository files"
UPDATE_BACK = "apt-get update (files restored)"
GOING_BACK = (RESTORE, RESTORE_ABSENT, UPDATE_BACK)
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


def play_suite(sources: str) -> str | None:
    """The Debian suite of the distribution a .sources file names (None: a distribution of no release)."""
    suites = [line.split(":", 1)[1].split() for line in sources.splitlines() if line.startswith("Suites:")]
    return suite_of(suites[0][0]) if len(suites) == 1 and len(suites[0]) == 1 else None


def release_tasks(package: str, version: str, suite: str) -> list[dict[str, Any]]:
    """Read the host's VERSION_CODENAME and fail the host, before anything is written, if it is not suite.

    suite comes from suite_of (a build target's suite), so it is a plain word; it still reaches the
    play as a variable, never pasted into an expression.
    """
    read = _command(RELEASE, ["sed", "-n", "s/^VERSION_CODENAME=//p", "/etc/os-release"], register="appdeb_release",
                    failed_when=False, changed_when=False, check_mode=False)
    codename = "(appdeb_release.stdout | default('') | trim | replace('\"', ''))"
    refuse = {"name": WRONG_RELEASE, "when": f"{codename} != appdeb_suite",
              "ansible.builtin.fail": {"msg": f"this host runs Debian '{{{{ {codename} }}}}', but {package}={version}"
                                              " is published for {{ appdeb_suite }}: nothing was changed on it "
                                              "(deploy a build for the host's release, or upgrade the host)"}}
    return [read, refuse]


def restore_tasks(files: dict[str, str]) -> list[dict[str, Any]]:
    """Put back the repository files as SAVE read them (a file the host did not have is removed)."""
    owner = {"mode": "0644", "owner": "root", "group": "root"}
    loop = {"loop": "{{ appdeb_saved.results }}", "loop_control": {"label": "{{ item.item }}"}}
    return [{"name": RESTORE, "when": "item.content is defined", **loop,
             "ansible.builtin.copy": {"dest": "{{ item.item }}", "content": "{{ item.content | b64decode }}", **owner}},
            {"name": RESTORE_ABSENT, "when": "item.content is not defined", **loop,
             "ansible.builtin.file": {"path": "{{ item.item }}", "state": "absent"}}]


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
    suite = play_suite(files[sources])
    only_this = ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=-",
                 "-o", "APT::Get::List-Cleanup=0"]  # a deploy waits for this repository only, not for mirrors
    update = ["apt-get", "update", "--error-on=any", *only_this]
    save = {"name": SAVE, "ansible.builtin.slurp": {"src": "{{ item }}"}, "loop": list(files),
            "register": "appdeb_saved", "failed_when": False}
    had = ("appdeb_before.rc == 0 and appdeb_before.stdout.split() | length == 2"
           " and appdeb_before.stdout.split()[0] != 'not-installed'")
    tried = "appdeb_install is defined"  # the install ran (a failure before it changed no package)
    rescue = [
        *restore_tasks(files),
        _command(UPDATE_BACK, update, when=f"{tried} and {had}", changed_when=False),
        _command(ROLLBACK, [launcher, "rollback", "{{ appdeb_before.stdout.split()[1] }}"], when=f"{tried} and {had}"),
        _command(REMOVE, ["apt-get", "remove", "-y", package], when=f"{tried} and not ({had})",
                 environment=noninteractive),
        {"name": FAILED, "ansible.builtin.fail": {"msg": "{{ ansible_failed_result.msg | default('failed') }}: "
                                                        "{{ ansible_failed_result.stderr | default('') }}"}},
    ]
    block = [*repository_tasks(files), _command("apt-get update", update, changed_when=False),
             _command(INSTALL, ["apt-get", "install", "-y", "--allow-downgrades", f"{package}={version}"],
                      environment=noninteractive, register="appdeb_install"),
             _command(VERIFY, [launcher, "verify"], changed_when=False), _command(HOLD, [launcher, "pin", version])]
    checks = release_tasks(package, version, suite) if suite else []  # a distribution of no release: no check
    return [{"name": f"appdeb deploy {package}={version}", "hosts": "all", "gather_facts": False,
             "vars": {"appdeb_suite": suite or ""},
             "tasks": [before, *checks, save, {"name": "repository, install, gate, hold", "block": block,
                                               "rescue": rescue}]}]


def write_play(play: list[dict[str, Any]], path: Path, files: dict[str, str]) -> Path:
    """The playbook, and the repository files it copies in files/ beside it."""
    (path.parent / FILES_DIR).mkdir(exist_ok=True)
    for dest, content in files.items():
        (path.parent / FILES_DIR / Path(dest).name).write_text(content)
    path.write_text("# written by appdeb deploy; run: ansible-playbook -i INVENTORY " + path.name + "\n"
                    + yaml.safe_dump(play, sort_keys=False, width=120))
    return path
