"""`appdeb deploy` without hosts: inventories as Ansible reads them, batches, the play as data, outcomes.

The rollouts themselves run on private-network nodes in tests/e2e/test_deploy.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from appdeb.deploy import playbook
from appdeb.deploy.ansible import TaskResult
from appdeb.deploy.inventory import Fleet, fleet
from appdeb.deploy.rollout import emit, outcome
from appdeb.errors import AppdebError

FILES = {"/etc/apt/keyrings/appdeb.asc": "KEY\n", "/etc/apt/sources.list.d/appdeb.sources": "Types: deb\n"}


def _task(name: str, *, failed: bool = False, stdout: str = "", message: str = "", skipped: bool = False,
          unreachable: bool = False) -> TaskResult:
    return TaskResult(name, failed, unreachable, skipped, False, stdout, message)


def test_inventory_order_decides_canary_and_batches(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("[web]\nweb3 ansible_host=10.0.0.3\nweb1 ansible_host=10.0.0.1\n\n[db]\ndb1\nweb1\n")
    hosts = fleet(inv)
    assert hosts == Fleet(("web3", "web1", "db1"), ("web3",))
    assert hosts.batches("1") == [("web3",), ("web1",), ("db1",)]
    assert hosts.batches("100%") == [("web3",), ("web1", "db1")]
    assert fleet(inv, canary="db1").batches("2") == [("db1",), ("web3", "web1")]
    assert fleet(inv, limit="web").hosts == ("web3", "web1")


@pytest.mark.parametrize("bad", ["0", "-1", "x", "150%", "1.5"])
def test_bad_batch_sizes_are_refused(bad: str) -> None:
    with pytest.raises(AppdebError, match="--batch"):
        Fleet(("a", "b"), ("a",)).batches(bad)


def test_host_names_that_would_split_a_limit_are_refused(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    'web1,web2':\n      ansible_host: 10.0.0.1\n")
    with pytest.raises(AppdebError, match="host names must be"):
        fleet(inv)


def test_unknown_canary_and_empty_inventory_are_refused(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("[web]\nweb1\n")
    with pytest.raises(AppdebError, match="not a host"):
        fleet(inv, canary="web9")
    empty = tmp_path / "empty.ini"
    empty.write_text("[web]\n")
    with pytest.raises(AppdebError, match="no hosts"):
        fleet(empty)


def test_the_play_is_argv_lists_with_a_rescue_that_goes_back() -> None:
    play = playbook.deploy_play("blog-prod", "1.2.0-3", FILES)
    tasks = play[0]["tasks"]
    assert [t["name"] for t in tasks[:-1]] == [playbook.BEFORE, playbook.SAVE]  # no suite in FILES: no check
    block = tasks[-1]
    copies = block["block"][:2]
    assert [t["ansible.builtin.copy"]["dest"] for t in copies] == list(FILES)
    assert all("content" not in t["ansible.builtin.copy"] for t in copies)  # never a template
    assert [t["ansible.builtin.command"]["argv"][:3] for t in block["block"][2:]] == [
        ["apt-get", "update", "--error-on=any"], ["apt-get", "install", "-y"],
        ["/usr/bin/blog-prod", "verify"], ["/usr/bin/blog-prod", "pin", "1.2.0-3"]]
    assert block["block"][3]["ansible.builtin.command"]["argv"][-1] == "blog-prod=1.2.0-3"
    assert [t["name"] for t in block["rescue"]] == [*playbook.GOING_BACK, playbook.ROLLBACK, playbook.REMOVE,
                                                    playbook.FAILED]
    text = yaml.safe_dump(play)
    assert "shell" not in text  # nothing is ever a shell line


TRIXIE = {**FILES, "/etc/apt/sources.list.d/appdeb.sources":
          "Types: deb\nURIs: http://repo/\nSuites: trixie-staging\nComponents: main\n",
          "/etc/apt/preferences.d/appdeb.pref": "Package: *\n"}


def test_the_hosts_release_is_checked_before_any_repository_file_is_written() -> None:
    """A trixie build must not move a bookworm host's shared appdeb.sources (other packages read it)."""
    play = playbook.deploy_play("blog-prod", "1.2.0-3", TRIXIE)[0]
    assert play["vars"] == {"appdeb_suite": "trixie"}  # the suite of trixie-staging, as data
    read, refuse, save, block = play["tasks"][1:]
    assert read["name"] == playbook.RELEASE and read["check_mode"] is False
    assert read["ansible.builtin.command"]["argv"] == ["sed", "-n", "s/^VERSION_CODENAME=//p", "/etc/os-release"]
    assert refuse["name"] == playbook.WRONG_RELEASE
    assert refuse["when"].startswith("(appdeb_release.stdout") and refuse["when"].endswith("!= appdeb_suite")
    message = refuse["ansible.builtin.fail"]["msg"]
    assert "blog-prod=1.2.0-3 is published for {{ appdeb_suite }}" in message and "nothing was changed" in message
    assert save["name"] == playbook.SAVE and save["loop"] == list(TRIXIE)
    assert all("ansible.builtin.copy" not in t for t in play["tasks"][:-1])  # nothing written before the block
    assert [t["ansible.builtin.copy"]["dest"] for t in block["block"][:3]] == list(TRIXIE)


def test_a_failed_deploy_puts_back_the_repository_files_before_going_back() -> None:
    """The rescue restores appdeb.sources (and key, preferences) as saved, then rolls the package back."""
    rescue = playbook.deploy_play("blog-prod", "1.2.0-3", TRIXIE)[0]["tasks"][-1]["rescue"]
    restore, absent, update, rollback = rescue[:4]
    assert restore["loop"] == absent["loop"] == "{{ appdeb_saved.results }}"
    assert restore["ansible.builtin.copy"] == {"dest": "{{ item.item }}", "content": "{{ item.content | b64decode }}",
                                               "mode": "0644", "owner": "root", "group": "root"}
    assert restore["when"] == "item.content is defined"
    assert absent["ansible.builtin.file"] == {"path": "{{ item.item }}", "state": "absent"}  # it had none
    assert absent["when"] == "item.content is not defined"
    argv = update["ansible.builtin.command"]["argv"]
    assert argv[:3] == ["apt-get", "update", "--error-on=any"]
    assert "Dir::Etc::SourceList=/etc/apt/sources.list.d/appdeb.sources" in argv  # the restored source, read again
    assert rollback["name"] == playbook.ROLLBACK and "appdeb_install is defined" in rollback["when"]


@pytest.mark.parametrize("sources", ["Types: deb\nSuites: prod\n", "Suites: trixie bookworm\n", "Suites: sid\n"])
def test_no_release_check_where_the_distribution_is_of_no_one_release(sources: str) -> None:
    files = {**FILES, "/etc/apt/sources.list.d/appdeb.sources": sources}
    play = playbook.deploy_play("blog-prod", "1.2.0-3", files)[0]
    assert playbook.RELEASE not in [t["name"] for t in play["tasks"]] and play["vars"] == {"appdeb_suite": ""}


def test_a_host_of_another_release_fails_unchanged_and_says_why() -> None:
    refused = _task(playbook.WRONG_RELEASE, failed=True, message="this host runs Debian 'bookworm', but "
                    "blog-prod=1.2.0-3 is published for trixie: nothing was changed on it")
    got = outcome("web1", [_task(playbook.BEFORE, stdout="installed 1.1.0-1"), _task(playbook.RELEASE), refused],
                  "1.2.0-3", 1.0, 2.0)
    assert (got.status, got.before, got.after) == ("failed", "1.1.0-1", "1.1.0-1")
    assert got.error.startswith("host release: this host runs Debian 'bookworm'")
    fresh = outcome("web2", [_task(playbook.BEFORE, stdout="not-installed "), refused], "1.2.0-3", 1.0, 2.0)
    assert (fresh.status, fresh.after) == ("failed", "")  # never reported as "removed": nothing was installed
    undone = outcome("web3", [_task(playbook.BEFORE, stdout="installed 1.1.0-1"), _task(playbook.INSTALL, failed=True),
                              _task(playbook.RESTORE, failed=True, message="disk full")], "1.2.0-3", 1.0, 2.0)
    assert "going back failed too: restore repository files: disk full" in undone.error


@pytest.mark.parametrize(("package", "version"), [("blog; rm -rf /", "1.0"), ("blog", "1.0 && reboot"),
                                                  ("Blog", "1.0"), ("blog", "{{ lookup('pipe','id') }}")])
def test_hostile_package_or_version_never_reaches_a_play(package: str, version: str) -> None:
    with pytest.raises(AppdebError, match="not a Debian"):
        playbook.deploy_play(package, version, FILES)


def test_outcomes_read_from_task_results() -> None:
    before = _task(playbook.BEFORE, stdout="installed 1.0.0-1")
    ok = outcome("a", [before, _task(playbook.INSTALL), _task(playbook.VERIFY), _task(playbook.HOLD)], "1.1.0-1",
                 1.0, 2.0)
    assert (ok.status, ok.before, ok.after) == ("ok", "1.0.0-1", "1.1.0-1")
    failed = outcome("b", [before, _task(playbook.INSTALL), _task(playbook.VERIFY, failed=True, message="exit 1"),
                           _task(playbook.ROLLBACK), _task(playbook.FAILED, failed=True)], "1.1.0-1", 1.0, 2.0)
    assert (failed.status, failed.after) == ("failed", "1.0.0-1")
    assert failed.error.startswith("health gate: exit 1")
    down = outcome("c", [_task("connect", failed=True, unreachable=True)], "1.1.0-1", 1.0, 2.0)
    assert down.status == "down"
    first = outcome("d", [_task(playbook.BEFORE, stdout="not-installed "), _task(playbook.INSTALL, failed=True),
                          _task(playbook.ROLLBACK, skipped=True), _task(playbook.REMOVE)], "1.1.0-1", 1.0, 2.0)
    assert (first.status, first.after) == ("failed", "removed")
    assert outcome("e", [], "1.1.0-1", 1.0, 2.0).status == "failed"  # silence is not success
    assert outcome("f", [before, _task(playbook.INSTALL)], "1.1.0-1", 1.0, 2.0).status == "failed"


def test_emit_writes_a_playbook_ansible_accepts(tmp_path: Path) -> None:
    from appdeb.deploy.ansible import ansible_env, tool
    from appdeb.runner import run

    inv = tmp_path / "hosts.ini"
    inv.write_text("[web]\nweb1 ansible_host=10.0.0.1\n")
    written = emit(tmp_path / "out", inv, "blog-prod", "1.2.0-3", FILES)
    assert [p.name for p in written] == ["deploy.yml", "inventory.ini", "ansible.cfg"]
    assert (tmp_path / "out" / "files" / "appdeb.sources").read_text() == "Types: deb\n"
    syntax = run([tool("ansible-playbook"), "--syntax-check", "-i", str(written[1]), str(written[0])],
                 env=ansible_env(ANSIBLE_STDOUT_CALLBACK="default"), check=False)
    assert syntax.returncode == 0, syntax.stdout


@pytest.mark.parametrize("url", ["http://x/{{lookup(dict(pipe=1)|list|first,dict(id=1)|list|first)}}",
                                 "http://x/\nTrusted: yes", "http://x/ a", "http://x/#{%raw%}"])
def test_a_hostile_repository_url_reaches_no_play_and_no_source(url: str, tmp_path: Path) -> None:
    """The URL lands in a deb822 field on every host; a template or a second line would be code or trust."""
    import subprocess
    import sys

    inv = tmp_path / "hosts.ini"
    inv.write_text("[web]\nweb1\n")
    proc = subprocess.run([sys.executable, "-m", "appdeb.cli", "deploy", "hello", "-i", str(inv), "--repo-url", url,
                           "--root", str(tmp_path / "no-repo")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "is not an http://" in proc.stderr
    from appdeb.repo.serve import check_url

    with pytest.raises(AppdebError):
        check_url(url)


def test_nothing_is_written_through_a_link_planted_in_a_node_root(tmp_path: Path) -> None:
    """A node's root user can plant links in its file system; the host writes there as its own root."""
    import os

    from appdeb.files import write_below

    node_root, victim = tmp_path / "node", tmp_path / "host-file"
    victim.write_text("host\n")
    (node_root / "etc/apt/preferences.d").mkdir(parents=True)
    os.symlink(victim, node_root / "etc/apt/preferences.d/appdeb.pref")
    os.symlink(tmp_path, node_root / "etc/apt/keyrings")
    for path in ("/etc/apt/preferences.d/appdeb.pref", "/etc/apt/keyrings/host-file"):
        with pytest.raises(OSError):
            write_below(node_root, path, "attacker\n")
    assert victim.read_text() == "host\n"
