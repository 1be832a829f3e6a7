"""The full package lifecycle on a real booted node: install, upgrade, remove, purge, recovery, instances.

Every test builds nothing itself (the session fixture builds each variant once) and boots its own
throw-away node (well under a second), so the tests are independent. Instance names start with
`lc` so their ports differ from other suites' packages on the shared host network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildResult
from appdeb.node import harness as nodes

from .apps import (
    BROKEN_VERIFY,
    answers,
    build_app,
    dpkg_status,
    http_get,
    lifecycle_app,
    port_of,
    sh,
    unit_state,
)

pytestmark = pytest.mark.e2e

PKG, OTHER = "hello-lc1", "hello-lc2"
STATE, ETC, LOGS, BACKUPS, ROOT = (f"/var/lib/{PKG}", f"/etc/{PKG}", f"/var/log/{PKG}", f"/var/backups/{PKG}",
                                   f"/opt/{PKG}")
UNIT = f"{PKG}.service"
OWN = f"/var/lib/appdeb/{PKG}"  # appdeb's own state: root's


@dataclass(frozen=True)
class Debs:
    v1: BuildResult  # hello-lc1 1.0.0-1
    v2: BuildResult  # 2.0.0-1
    v2_broken: BuildResult  # 2.0.0-1 whose verify command fails
    v3: BuildResult  # 3.0.0-1, fixed again
    other: BuildResult  # hello-lc2 1.0.0-1, a second instance
    py313: BuildResult  # 1.0.0-1 built for debian-13, python 3.13 (the node is bookworm, 3.11)
    py313_v2: BuildResult  # 2.0.0-1 built for debian-13


@pytest.fixture(scope="session")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Debs:
    tmp = tmp_path_factory.mktemp("lifecycle")

    def variant(name: str, instance: str = "lc1", target: str = "debian-12", version: str = "1.0.0",
                **commands: str) -> BuildResult:
        app = lifecycle_app(tmp / "apps" / name, version=version, **commands)
        return build_app(app, tmp / "debs" / name, instance, target=target)

    return Debs(
        v1=variant("v1"), v2=variant("v2", version="2.0.0"),
        v2_broken=variant("v2-broken", version="2.0.0", verify=BROKEN_VERIFY),
        v3=variant("v3", version="3.0.0"), other=variant("other", instance="lc2"),
        py313=variant("py313", target="debian-13"), py313_v2=variant("py313-v2", target="debian-13", version="2.0.0"),
    )


def install(node: nodes.Node, deb: BuildResult, ok: bool = True) -> str:
    result = nodes.install(node, [deb.deb], check=False)
    assert (result.returncode == 0) == ok, result.stdout
    return result.stdout


def apt(node: nodes.Node, *args: str) -> str:
    return sh(node, "apt-get -y " + " ".join(args))


def lines(node: nodes.Node, path: str) -> list[str]:
    return sh(node, f"cat {path}").splitlines()


def exists(node: nodes.Node, path: str) -> bool:
    return nodes.run_in(node, ["test", "-e", path]).returncode == 0


def backups(node: nodes.Node, package: str = PKG) -> dict[str, dict[str, str]]:
    """Finished backups of a package: dir name → meta.json."""
    out = sh(node, f"for m in /var/backups/{package}/*/meta.json; do [ -f \"$m\" ] && echo \"$m\" && cat \"$m\" "
                   "&& echo; done; true")
    found, it = {}, iter(out.splitlines())
    for path in it:
        found[path.split("/")[-2]] = json.loads(next(it))
    return found


def snapshot(node: nodes.Node, *paths: str) -> str:
    """Owner, group, mode of every file and dir, plus size, mtime and checksum of every regular file
    (not sockets, nor gunicorn's .gunicorn directory that holds its control socket: a running process
    makes them a moment after it serves, so whether a listing taken then shows them is a race)."""
    listed = " ".join(paths)
    return sh(node, f"find {listed} ! -type s ! -name .gunicorn -printf '%p %M %u %g\\n' | sort; "
                    f"find {listed} -type f -printf '%p %s %T@\\n' | sort; "
                    f"find {listed} -type f -exec md5sum {{}} + | sort")


def stat(node: nodes.Node, path: str) -> str:
    return sh(node, f"stat -c '%a %U:%G' {path}").strip()


# ---- install --------------------------------------------------------------------------------------

def test_install_creates_user_dirs_settings_and_serves(node: nodes.Node, debs: Debs) -> None:
    out = install(node, debs.v1)
    assert dpkg_status(node, PKG) == "install ok installed"
    assert unit_state(node, UNIT) == ("active", "enabled")
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    assert "uninstall ran" not in out
    # the system user, its directories and the settings file
    passwd = sh(node, f"getent passwd {PKG}").strip().split(":")
    assert passwd[5:] == [STATE, "/usr/sbin/nologin"] and int(passwd[2]) < 1000
    assert stat(node, ETC) == "755 root:root"
    assert stat(node, f"{ETC}/settings.env") == f"640 root:{PKG}"
    assert "GREETING=Hello" in lines(node, f"{ETC}/settings.env")
    for path in (STATE, f"{STATE}/tmp", LOGS):
        assert stat(node, path) == f"750 {PKG}:{PKG}"
    assert stat(node, BACKUPS) == "700 root:root"
    # the install command ran once, as the app user
    assert lines(node, f"{STATE}/install-runs") == ["1.0.0-1"]
    assert stat(node, f"{STATE}/data.txt").endswith(f"{PKG}:{PKG}")
    assert not exists(node, f"{STATE}/update-runs")
    assert backups(node) == {}
    # byte code compiled at configure time is readable by the app user (not root-only)
    pycs = sh(node, f"find {ROOT} -name '*.pyc' -printf '%m %u\\n' | sort -u").split("\n")
    assert [p for p in pycs if p] == ["644 root"]
    assert sh(node, f"find {ROOT} -name __pycache__ -printf '%m\\n' | sort -u").split() == ["755"]
    # verify by hand
    assert sh(node, f"{PKG} verify").strip() == f"{PKG} 1.0.0-1: ok"
    assert sh(node, f"runuser -u {PKG} -- {PKG} run greet").strip() == "Hello"


# ---- upgrade, backup, restore ---------------------------------------------------------------------

def test_upgrade_backs_up_then_runs_update(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    sh(node, f"echo 'GREETING=Bonjour' >> {ETC}/settings.env")
    install(node, debs.v2)
    assert dpkg_status(node, PKG) == "install ok installed"
    assert http_get(port_of(PKG)) == "Bonjour from hello (lc1, 2.0.0-1)\n"  # restarted, settings kept
    assert lines(node, f"{STATE}/update-runs") == ["1.0.0-1 -> 2.0.0-1"]
    assert lines(node, f"{STATE}/install-runs") == ["1.0.0-1"]  # not re-run on upgrade
    [(name, meta)] = backups(node).items()
    assert (meta["version"], meta["reason"], meta["package"]) == ("1.0.0-1", "upgrade", PKG)
    assert sh(node, f"tar -xOf {BACKUPS}/{name}/app.tar ./data.txt") == f"data of {PKG}\n"
    assert "GREETING=Bonjour" in lines(node, f"{BACKUPS}/{name}/settings.env")
    assert stat(node, f"{BACKUPS}/{name}") == "700 root:root"
    assert sh(node, "ls -A /var/lib/" + PKG + "/tmp").strip() == ""  # no staging left behind
    assert stat(node, f"{ETC}/settings.env") == f"640 root:{PKG}"


def test_manual_backup_and_restore(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    path = sh(node, f"{PKG} backup").strip()
    name = path.rsplit("/", 1)[-1]
    assert path.startswith(f"{BACKUPS}/") and name.endswith("-1.0.0-1-manual")
    assert backups(node)[name]["reason"] == "manual"
    assert f"{name}\tversion=1.0.0-1\treason=manual" in sh(node, f"{PKG} backups")
    # damage data and settings, then restore both
    sh(node, f"echo damaged > {STATE}/data.txt; echo GREETING=Broken > {ETC}/settings.env")
    out = sh(node, f"{PKG} restore {name}")
    assert f"restored {name}" in out
    assert sh(node, f"cat {STATE}/data.txt") == f"data of {PKG}\n"
    assert stat(node, f"{STATE}/data.txt").endswith(f"{PKG}:{PKG}")
    assert stat(node, f"{ETC}/settings.env") == f"640 root:{PKG}"  # the app user can still read it
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    assert unit_state(node, UNIT) == ("active", "enabled")
    result = nodes.run_in(node, [PKG, "restore", "no-such-backup"])
    assert result.returncode == 1 and "no backup 'no-such-backup'" in result.stdout
    result = nodes.run_in(node, ["runuser", "-u", PKG, "--", PKG, "backup"])  # backups are root's
    assert result.returncode == 1 and "(run it as root)" in result.stdout and "Traceback" not in result.stdout


# ---- remove, reinstall, purge ---------------------------------------------------------------------

def test_remove_keeps_data_and_reinstall_reuses_it(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    apt(node, "remove", PKG)
    assert dpkg_status(node, PKG) == "deinstall ok config-files"
    assert unit_state(node, UNIT) == ("inactive", "masked")
    assert not answers(port_of(PKG))
    assert not exists(node, f"/usr/bin/{PKG}")
    for path in (f"{ETC}/settings.env", f"{STATE}/data.txt", LOGS, BACKUPS):
        assert exists(node, path), path
    assert sh(node, f"getent passwd {PKG}")
    # reinstall the same version: the data is reused and the install command is not run again
    install(node, debs.v1)
    assert dpkg_status(node, PKG) == "install ok installed"
    assert unit_state(node, UNIT) == ("active", "enabled")
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    assert lines(node, f"{STATE}/install-runs") == ["1.0.0-1"]
    assert sh(node, f"cat {STATE}/data.txt") == f"data of {PKG}\n"
    assert not exists(node, f"{OWN}/kit")
    assert backups(node) == {}


def test_purge_removes_everything_but_backups_and_user(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    out = apt(node, "purge", PKG)
    assert dpkg_status(node, PKG) == "not-installed"
    assert f"uninstall ran for {PKG}" in out
    for path in (ETC, STATE, LOGS, ROOT, f"/usr/bin/{PKG}", f"/lib/systemd/system/{UNIT}",
                 f"/etc/systemd/system/multi-user.target.wants/{UNIT}", f"/etc/systemd/system/{UNIT}"):
        assert not exists(node, path), path
    assert sh(node, f"getent passwd {PKG}") and sh(node, f"getent group {PKG}")
    [(name, meta)] = backups(node).items()
    assert (meta["version"], meta["reason"]) == ("1.0.0-1", "purge")
    assert sh(node, f"tar -xOf {BACKUPS}/{name}/app.tar ./data.txt") == f"data of {PKG}\n"
    assert not answers(port_of(PKG))
    assert unit_state(node, UNIT)[0] == "inactive"
    assert nodes.run_in(node, ["systemctl", "cat", UNIT]).returncode != 0  # systemd no longer knows it
    assert sh(node, f"find /etc/systemd /var/lib/systemd -name '*{PKG}*'") == ""  # no enable/mask state
    assert exists(node, "/opt")  # dpkg took /opt (base-files creates it, no package lists it); it is back


def test_purge_after_remove_runs_the_kept_release(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    apt(node, "remove", PKG)
    sh(node, f"rm -rf {ROOT}")  # whatever dpkg left of the app dir is gone too
    assert exists(node, f"{OWN}/kit/appdeb/app.json")
    out = apt(node, "purge", PKG)
    assert f"uninstall ran for {PKG}" in out
    [(name, meta)] = backups(node).items()
    assert (meta["version"], meta["reason"]) == ("1.0.0-1", "purge")
    assert sh(node, f"tar -xOf {BACKUPS}/{name}/app.tar ./data.txt") == f"data of {PKG}\n"
    assert sh(node, f"cat {BACKUPS}/{name}/settings.env").startswith("# Settings for")
    assert dpkg_status(node, PKG) == "not-installed"
    for path in (ETC, STATE, LOGS, ROOT):
        assert not exists(node, path), path


def test_install_then_purge_leaves_nothing_behind(node: nodes.Node, debs: Debs) -> None:
    """piuparts-like: compare the node's file list before install and after purge."""
    find = ("find / \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp "
            "-o -path /var/tmp/appdeb-install \\) -prune -o -print | sort")
    before = set(sh(node, find).splitlines())
    install(node, debs.v1)
    http_get(port_of(PKG))
    sh(node, f"{PKG} backup >/dev/null")
    apt(node, "purge", PKG)
    after = set(sh(node, find).splitlines())
    allowed = (f"{BACKUPS}/", "/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/apt/", "/var/cache/debconf/",
               "/var/lib/systemd/", "/var/log/")
    allowed_files = {BACKUPS, *(f"/etc/{f}{s}" for f in ("passwd", "group", "shadow", "gshadow") for s in ("", "-"))}

    def unexpected(paths: set[str]) -> list[str]:
        return sorted(p for p in paths if (p not in allowed_files and not p.startswith(allowed))
                      or (PKG in p and not p.startswith(BACKUPS)))

    assert unexpected(after - before) == [], "left behind after purge"
    assert unexpected(before - after) == [], "removed although not ours"
    assert len(backups(node)) == 2  # the manual one and the one taken before purge


# ---- recovery -------------------------------------------------------------------------------------

def test_configure_a_completes_after_a_failed_postinst(node: nodes.Node, debs: Debs) -> None:
    sh(node, f"touch /var/tmp/{PKG}.fail-install")
    out = install(node, debs.v1, ok=False)
    assert "install: injected failure" in out
    assert "the app's 'install' command failed (exit 4)" in out
    assert dpkg_status(node, PKG) == "install ok half-configured"
    assert not exists(node, f"{STATE}/install-runs")
    assert unit_state(node, UNIT)[0] == "inactive"  # nothing started before install succeeded
    sh(node, f"rm /var/tmp/{PKG}.fail-install")
    sh(node, "dpkg --configure -a")
    assert dpkg_status(node, PKG) == "install ok installed"
    assert lines(node, f"{STATE}/install-runs") == ["1.0.0-1"]
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"


def test_failed_backup_stops_upgrade_and_purge(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    sh(node, f"touch /var/tmp/{PKG}.fail-backup")
    out = install(node, debs.v2, ok=False)
    assert "backup: injected failure" in out and "backup before the update failed; nothing was migrated" in out
    assert dpkg_status(node, PKG) == "install ok half-configured"
    assert not exists(node, f"{STATE}/update-runs") and backups(node) == {}
    sh(node, f"rm /var/tmp/{PKG}.fail-backup")
    sh(node, "dpkg --configure -a")
    assert lines(node, f"{STATE}/update-runs") == ["1.0.0-1 -> 2.0.0-1"]
    assert dpkg_status(node, PKG) == "install ok installed"
    # purge refuses to delete data it could not back up; the admin can retry
    sh(node, f"touch /var/tmp/{PKG}.fail-backup")
    result = nodes.run_in(node, ["apt-get", "-y", "purge", PKG])
    assert result.returncode != 0
    assert "purge stopped: 'backup --reason purge' failed" in result.stdout
    assert dpkg_status(node, PKG).endswith(" ok config-files")  # removed, not purged
    assert sh(node, f"cat {STATE}/data.txt") == f"data of {PKG}\n"
    assert exists(node, f"{ETC}/settings.env")
    assert "uninstall ran" not in result.stdout
    sh(node, f"rm /var/tmp/{PKG}.fail-backup")
    assert f"uninstall ran for {PKG}" in apt(node, "purge", PKG)
    assert dpkg_status(node, PKG) == "not-installed"
    assert sorted(m["reason"] for m in backups(node).values()) == ["purge", "upgrade"]


def test_postinst_configure_twice_is_harmless(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    sh(node, f"{PKG} backup >/dev/null")
    watched = (ETC, STATE, LOGS, BACKUPS, ROOT)
    before = snapshot(node, *watched)
    nbackups = len(backups(node))
    sh(node, f"/var/lib/dpkg/info/{PKG}.postinst configure 1.0.0-1")
    assert snapshot(node, *watched) == before
    assert len(backups(node)) == nbackups
    assert lines(node, f"{STATE}/install-runs") == ["1.0.0-1"]
    assert not exists(node, f"{STATE}/update-runs")
    assert unit_state(node, UNIT) == ("active", "enabled")
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    assert dpkg_status(node, PKG) == "install ok installed"


def test_failed_verify_leaves_half_configured_and_keeps_data(node: nodes.Node, debs: Debs) -> None:
    install(node, debs.v1)
    out = install(node, debs.v2_broken, ok=False)
    assert f"{PKG}: verify failed after configuring 2.0.0-1" in out
    assert BROKEN_VERIFY in out  # the command …
    assert "verify says: the schema is from the future" in out  # … and its output
    assert "dpkg --configure -a" in out
    assert dpkg_status(node, PKG) == "install ok half-configured"
    assert sh(node, f"cat {STATE}/data.txt") == f"data of {PKG}\n"
    [meta] = backups(node).values()
    assert (meta["version"], meta["reason"]) == ("1.0.0-1", "upgrade")
    manual = nodes.run_in(node, [PKG, "verify"])
    assert manual.returncode == 1 and "verify command failed (exit 3)" in manual.stdout
    # retrying does not repeat the update; a fixed release goes through
    assert nodes.run_in(node, ["dpkg", "--configure", "-a"]).returncode != 0
    assert lines(node, f"{STATE}/update-runs") == ["1.0.0-1 -> 2.0.0-1"]
    install(node, debs.v3)
    assert dpkg_status(node, PKG) == "install ok installed"
    assert lines(node, f"{STATE}/update-runs") == ["1.0.0-1 -> 2.0.0-1", "2.0.0-1 -> 3.0.0-1"]
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 3.0.0-1)\n"


def dpkg_i(node: nodes.Node, deb: BuildResult) -> str:
    """dpkg -i, which runs preinst before it looks at Depends (apt would refuse on the python3 floor first)."""
    result = nodes.run_in(node, ["dpkg", "-i", nodes.copy_in(node, deb.deb, "/var/tmp/appdeb-install")])
    assert result.returncode != 0, result.stdout
    return result.stdout


def test_package_for_another_python_is_refused(node: nodes.Node, debs: Debs) -> None:
    out = install(node, debs.py313, ok=False)  # apt: the control file's python3 floor
    assert "python3 (>= 3.13)" in out
    out = dpkg_i(node, debs.py313)  # dpkg: preinst, naming both pythons and the target to rebuild with
    assert "built for debian-13 with python 3.13, but this node's python3 is 3.11" in out
    assert "rebuild it with 'appdeb build --target debian-12'" in out
    assert dpkg_status(node, PKG) == "not-installed"
    assert not exists(node, ROOT) and not exists(node, STATE)
    assert nodes.run_in(node, ["getent", "passwd", PKG]).returncode == 2
    # an upgrade to it is refused too, and the running release keeps running (abort-upgrade)
    install(node, debs.v1)
    out = dpkg_i(node, debs.py313_v2)
    assert "python 3.13" in out and "--target debian-12" in out
    assert sh(node, f"dpkg-query -W -f='${{Status}} ${{Version}}' {PKG}") == "install ok installed 1.0.0-1"
    assert unit_state(node, UNIT) == ("active", "enabled")
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    assert backups(node) == {}


# ---- instances, policy, arguments -----------------------------------------------------------------

def test_two_instances_side_by_side(node: nodes.Node, debs: Debs) -> None:
    assert port_of(PKG) != port_of(OTHER)
    install(node, debs.v1)
    install(node, debs.other)
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    assert http_get(port_of(OTHER)) == "Hello from hello (lc2, 1.0.0-1)\n"
    other_files = snapshot(node, f"/etc/{OTHER}", f"/var/lib/{OTHER}", f"/opt/{OTHER}")
    apt(node, "purge", PKG)
    assert dpkg_status(node, PKG) == "not-installed"
    assert not answers(port_of(PKG))
    assert dpkg_status(node, OTHER) == "install ok installed"
    assert unit_state(node, f"{OTHER}.service") == ("active", "enabled")
    assert http_get(port_of(OTHER)) == "Hello from hello (lc2, 1.0.0-1)\n"
    assert snapshot(node, f"/etc/{OTHER}", f"/var/lib/{OTHER}", f"/opt/{OTHER}") == other_files
    assert backups(node, OTHER) == {}


def test_policy_rc_d_and_disabled_units_are_honoured(node: nodes.Node, debs: Debs) -> None:
    sh(node, "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d")
    out = install(node, debs.v1)
    assert "policy-rc.d returned 101" in out
    assert unit_state(node, UNIT) == ("inactive", "enabled")
    assert dpkg_status(node, PKG) == "install ok installed"
    sh(node, "rm /usr/sbin/policy-rc.d")
    sh(node, f"dpkg-reconfigure {PKG}")  # postinst configure again, as dpkg runs it
    assert unit_state(node, UNIT) == ("active", "enabled")
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    # a unit the admin disabled stays off, and verify does not count that against the package
    sh(node, f"systemctl disable --now {UNIT}")
    sh(node, f"dpkg-reconfigure {PKG}")
    assert unit_state(node, UNIT) == ("inactive", "disabled")
    assert sh(node, f"{PKG} verify").strip() == f"{PKG} 1.0.0-1: ok"


def test_maintainer_scripts_handle_every_argument(node: nodes.Node, debs: Debs) -> None:
    """Documented no-op arguments exit 0 without touching the system; unknown ones exit 1 with a message."""
    install(node, debs.v1)
    noops = {"preinst": ["abort-upgrade 1.0.0-1"],
             "prerm": ["failed-upgrade 0.9-1"],
             "postinst": ["triggered /usr/lib/python3"],
             "postrm": ["upgrade 2.0.0-1", "failed-upgrade 0.9-1 1.0.0-1", "abort-install", "abort-install 0.9-1",
                        "abort-upgrade 0.9-1 1.0.0-1", "disappear other 1.0"]}
    before = snapshot(node, ETC, STATE, LOGS, BACKUPS, ROOT)
    for script, calls in noops.items():
        for args in calls:
            sh(node, f"/var/lib/dpkg/info/{PKG}.{script} {args}")
    assert snapshot(node, ETC, STATE, LOGS, BACKUPS, ROOT) == before
    assert unit_state(node, UNIT) == ("active", "enabled")
    # before an upgrade the release drops the byte code it compiled in place (the next one's sources have
    # the same mtime); what the package ships stays for dpkg to replace; if dpkg then unwinds, the
    # release has its byte code again and keeps serving
    sh(node, f"echo 'X = 1' > {ROOT}/app/stray.py && python3 -m compileall -q {ROOT}/app/stray.py")
    assert sh(node, f"find {ROOT}/app -name 'stray*.pyc'").strip()
    sh(node, f"/var/lib/dpkg/info/{PKG}.prerm upgrade 2.0.0-1")
    listed = {p for p in sh(node, f"dpkg -L {PKG}").split("\n") if p.endswith(".pyc")}
    assert set(sh(node, f"find {ROOT} -name '*.pyc'").split()) == listed and unit_state(node, UNIT)[0] == "active"
    sh(node, f"rm {ROOT}/app/stray.py")
    sh(node, f"/var/lib/dpkg/info/{PKG}.postinst abort-upgrade 2.0.0-1")
    assert sh(node, f"find {ROOT}/app -name '*.pyc'").strip()
    assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
    for script in ("preinst", "postinst", "prerm", "postrm"):
        result = nodes.run_in(node, [f"/var/lib/dpkg/info/{PKG}.{script}", "bogus"])
        assert result.returncode == 1 and f"{script} called with unknown argument 'bogus'" in result.stdout
    # the unwinds dpkg runs when a removal or a conflicting install fails: stop, then serve again
    unwinds = [("remove", "abort-remove"),
               ("remove in-favour other 1.0", "abort-remove in-favour other 1.0"),
               ("deconfigure in-favour other 1.0", "abort-deconfigure in-favour other 1.0")]
    for stop, unwind in unwinds:
        sh(node, f"/var/lib/dpkg/info/{PKG}.prerm {stop}")
        assert unit_state(node, UNIT)[0] == "inactive" and not answers(port_of(PKG))
        sh(node, f"/var/lib/dpkg/info/{PKG}.postinst {unwind}")
        assert unit_state(node, UNIT) == ("active", "enabled")
        assert http_get(port_of(PKG)) == "Hello from hello (lc1, 1.0.0-1)\n"
        assert sh(node, f"find {ROOT}/app -name '*.pyc'").strip()  # byte code back after prerm dropped it


def test_upgrade_runs_the_new_code_even_where_a_file_kept_its_size(node: nodes.Node,
                                                                    tmp_path: Path) -> None:
    """Reproducible builds give every file the same mtime; a changed file of the same size must not run as
    the previous release's byte code (Python's timestamp check alone would take it for unchanged)."""
    built = []
    for version, word in (("1.0.0", "ALPHA"), ("2.0.0", "OMEGA")):
        app = lifecycle_app(tmp_path / version, version=version)
        (app / "marker.py").write_text(f'WORD = "{word}"\n')
        built.append(build_app(app, tmp_path / f"debs-{version}", "lc3"))
    package = built[0].package
    ask = f"{package} run python3 -c 'import marker; print(marker.WORD)'"
    install(node, built[0])
    assert sh(node, ask).strip() == "ALPHA"
    install(node, built[1])
    assert sh(node, ask).strip() == "OMEGA"
