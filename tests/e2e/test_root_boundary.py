"""The root boundary, attacked on booted nodes: the app user (via runuser) and hostile values try to
make root create, follow, execute or write something of theirs, or to lose the instance's data.

Each test names the numbered case of the root-boundary issue it covers. The attacker acts as the
app user `runuser -u PKG`; every assertion is about a real outcome on the node (a file's owner or
bytes, a package status, an HTTP answer). Instances are named rb* so ports do not clash.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildResult
from appdeb.errors import SpecError
from appdeb.node import harness as nodes
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve

from .apps import build_app, dpkg_status, http_get, port_of, sh
from .boundary_apps import HOSTILE_DEFAULT, boundary_app

pytestmark = pytest.mark.e2e

PKG = "hello-rb1"
STATE, ETC, BACKUPS, OWN = f"/var/lib/{PKG}", f"/etc/{PKG}", f"/var/backups/{PKG}", f"/var/lib/appdeb/{PKG}"


@dataclass(frozen=True)
class Debs:
    v1: BuildResult  # schema 1
    v2: BuildResult  # schema 2


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> Debs:
    tmp = tmp_path_factory.mktemp("boundary")
    v1 = boundary_app(tmp / "v1")
    v2 = boundary_app(tmp / "v2", version="2.0.0", schema=2)
    return Debs(build_app(v1, tmp / "d1", "rb1"), build_app(v2, tmp / "d2", "rb1"))


def install(node: nodes.Node, deb: BuildResult, ok: bool = True) -> str:
    result = nodes.install(node, [deb.deb], check=False)
    assert (result.returncode == 0) == ok, result.stdout
    assert "Traceback" not in result.stdout
    return result.stdout


def as_app(node: nodes.Node, script: str) -> subprocess.CompletedProcess[str]:
    """The attacker: a shell as the app's user."""
    return nodes.run_in(node, ["runuser", "-u", PKG, "--", "sh", "-c", script])


def owner(node: nodes.Node, path: str) -> str:
    return sh(node, f"stat -c '%U:%G %a' {path}").strip()


def victims(node: nodes.Node) -> dict[str, str]:
    """Root-owned files and directories the attacks aim at, created fresh on the node."""
    sh(node, "mkdir -p /etc/victim-dir && echo original > /etc/victim-file && chmod 644 /etc/victim-file")
    return {p: owner(node, p) for p in ("/etc/victim-dir", "/etc/victim-file", "/etc/hostname", "/etc")}


def test_settings_default_with_shell_syntax_stays_text(node: nodes.Node, debs: Debs) -> None:
    """Case 1: a default is data in a file the package ships, never text pasted into postinst."""
    install(node, debs.v1)
    assert f"GREETING={HOSTILE_DEFAULT}" in sh(node, f"cat {ETC}/settings.env")
    assert sh(node, "ls /tmp/pwned-by-default /tmp/pwned-by-backticks 2>&1 || true").count("No such file") == 2
    assert sh(node, f"runuser -u {PKG} -- {PKG} run greet") == HOSTILE_DEFAULT + "\n"


def test_a_newline_in_a_value_never_reaches_a_maintainer_script(tmp_path: Path) -> None:
    """Case 1: a default (or description) that would close postinst's heredoc is refused at build time."""
    for field in ("default", "description"):
        app = boundary_app(tmp_path / field, default="x")
        text = (app / "app.yaml").read_text()
        (app / "app.yaml").write_text(text.replace(
            "default: x" if field == "default" else "description: shell syntax that must stay text",
            f"{field}: \"x\\nSETTINGS_EOF\\nid > /tmp/pwned\\n\""))
        with pytest.raises(SpecError) as refused:
            build_app(app, tmp_path / f"out-{field}", "rb1")
        assert f"env.GREETING.{field}" in str(refused.value) and "app.yaml:" in str(refused.value)
        assert not list((tmp_path / f"out-{field}").glob("*.deb"))


def test_app_user_cannot_plant_code_that_root_runs_at_purge(node: nodes.Node, debs: Debs) -> None:
    """Case 2: the release kept for purge lives in appdeb's root-owned state, not the app's."""
    install(node, debs.v1)
    sh(node, f"apt-get -y remove {PKG}")  # the kept release is made now; purge runs it later
    payload = "open('/etc/pwned-at-purge', 'w').write('root ran the app user\\'s code')"
    planted = as_app(node, f"cd {STATE} && {{ mv .appdeb .appdeb-was-root 2>/dev/null || true; }} && "
                           "mkdir -p .appdeb/kit/appdeb && "
                           f"echo \"{payload}\" > .appdeb/kit/appdeb/run.py && echo planted")
    assert "planted" in planted.stdout
    assert as_app(node, f"touch {OWN}/x").returncode != 0  # appdeb's own state is not the app user's
    assert as_app(node, f"mv {OWN} {STATE}/stolen").returncode != 0
    out = sh(node, f"apt-get -y purge {PKG}")
    assert f"uninstall ran for {PKG}" in out  # the kept release did run: root's copy
    assert dpkg_status(node, PKG) == "not-installed"
    assert nodes.run_in(node, ["test", "-e", "/etc/pwned-at-purge"]).returncode != 0
    assert nodes.run_in(node, ["test", "-e", STATE]).returncode != 0
    assert nodes.run_in(node, ["test", "-e", OWN]).returncode != 0


def test_app_user_cannot_take_ownership_of_root_files(node: nodes.Node, debs: Debs) -> None:
    """Case 3: secret copies, tmp/ and the files service never chown or chmod through the app's links."""
    install(node, debs.v1)
    before = victims(node)
    run_dir = f"/run/appdeb/{PKG}"
    assert as_app(node, f"ln -s /etc/victim-file {run_dir}/secret").returncode != 0  # root's directory
    assert as_app(node, f"ln -s /etc/victim-file /run/appdeb-{PKG}").returncode != 0
    swapped = as_app(node, f"cd {STATE} && rm -rf tmp files && ln -s /etc/victim-dir tmp && "
                           "ln -s /etc/victim-dir files && ln -s /etc/victim-file secret && echo swapped")
    assert "swapped" in swapped.stdout
    for attempt in (f"{PKG} verify", f"{PKG} run greet", f"{PKG} backup", f"dpkg-reconfigure {PKG}"):
        nodes.run_in(node, ["sh", "-c", attempt])
    assert {p: owner(node, p) for p in before} == before
    assert sh(node, "cat /etc/victim-file") == "original\n"
    assert sh(node, f"ls -A {run_dir}").strip() == ""  # every per-run secret copy was removed
    assert owner(node, run_dir) == "root:root 711"


def test_root_never_writes_through_links_in_the_app_state(node: nodes.Node, debs: Debs) -> None:
    """Case 4: a fake 0.1.0 state dir of the app user's is neither read nor written by an upgrade."""
    install(node, debs.v1)
    before = victims(node)
    fake = as_app(node, f"cd {STATE} && {{ mv .appdeb .appdeb-was-root 2>/dev/null || true; }} && "
                        "mkdir -p .appdeb && cd .appdeb && echo 0.0.1-1 > configured-version && "
                        "ln -s /etc/victim-file configured-version.new && ln -s /etc/victim-file kit && echo faked")
    assert "faked" in fake.stdout
    install(node, debs.v2)
    assert {p: owner(node, p) for p in before} == before
    assert sh(node, "cat /etc/victim-file") == "original\n"
    assert sh(node, f"cat {STATE}/update-runs") == "1.0.0-1 -> 2.0.0-1\n"  # the real marker decided
    assert sh(node, f"cat {OWN}/configured-version") == "2.0.0-1\n"
    assert sh(node, f"readlink {STATE}/.appdeb/kit").strip() == "/etc/victim-file"  # the app's, left alone


def test_backups_cover_the_state_directory_and_restore_it(node: nodes.Node, debs: Debs) -> None:
    """Case 10: everything in STATE but tmp/ and cache/ is backed up (by the app user) and restored."""
    install(node, debs.v1)
    as_app(node, f"mkdir -p {STATE}/uploads/deep {STATE}/cache && echo kept > {STATE}/uploads/deep/a.txt && "
                 f"echo scratch > {STATE}/tmp/s.txt && echo cached > {STATE}/cache/c.txt && "
                 f"ln -s /etc/shadow {STATE}/uploads/link && echo files > {STATE}/files/f.txt")
    name = sh(node, f"{PKG} backup").strip().rsplit("/", 1)[-1]
    members = sh(node, f"tar -tf {BACKUPS}/{name}/state.tar").split()
    assert {"./uploads/deep/a.txt", "./files/f.txt", "./data.txt", "./schema", "./uploads/link"} <= set(members)
    assert not [m for m in members if m.startswith(("./tmp/", "./cache/"))]
    assert "root:" not in sh(node, f"tar -tvf {BACKUPS}/{name}/state.tar")  # archived as the app user
    as_app(node, f"rm -rf {STATE}/uploads {STATE}/files/f.txt && echo damaged > {STATE}/data.txt")
    sh(node, f"{PKG} restore {name}")
    assert sh(node, f"cat {STATE}/uploads/deep/a.txt {STATE}/files/f.txt {STATE}/data.txt") == \
        f"kept\nfiles\ndata of {PKG}\n"
    assert owner(node, f"{STATE}/uploads/deep/a.txt").startswith(f"{PKG}:{PKG}")
    assert sh(node, f"readlink {STATE}/uploads/link").strip() == "/etc/shadow"  # restored as a link, not followed
    assert sh(node, f"cat {STATE}/tmp/s.txt") == "scratch\n"  # scratch space is not touched
    assert http_get(port_of(PKG)).startswith("Hi ")


def test_backups_are_pruned_and_a_backup_that_cannot_fit_is_refused(node: nodes.Node, debs: Debs) -> None:
    """Case 17: keep the newest N; an upgrade whose backup would not fit is refused before anything changes."""
    install(node, debs.v1)
    sh(node, f"echo APPDEB_BACKUP_KEEP=2 >> {ETC}/settings.env")
    names = [sh(node, f"{PKG} backup").strip().rsplit("/", 1)[-1] for _ in range(4)]
    listed = sh(node, f"{PKG} backups")
    assert [line.split("\t")[0] for line in listed.splitlines() if "\t" in line] == names[2:]
    assert "size=" in listed
    # a small file system for the backups, and more data than fits in it
    sh(node, f"mount -t tmpfs -o size=2m,mode=0700 tmpfs {BACKUPS}")
    try:
        as_app(node, f"head -c 6000000 /dev/zero > {STATE}/big.bin")
        manual = nodes.run_in(node, [PKG, "backup"])
        assert manual.returncode == 1 and "not enough space for the backup" in manual.stdout
        out = install(node, debs.v2, ok=False)
        assert "needs about" in out and "nothing was changed" in out
        assert sh(node, f"dpkg-query -W -f='${{Status}} ${{Version}}' {PKG}") == "install ok installed 1.0.0-1"
        assert sh(node, f"cat {STATE}/schema") == "1\n"
        assert http_get(port_of(PKG)).startswith("Hi ")
    finally:
        sh(node, f"umount {BACKUPS}")
    as_app(node, f"rm {STATE}/big.bin")
    install(node, debs.v2)
    assert sh(node, f"cat {STATE}/schema") == "2\n"


def test_configure_after_an_interrupted_dpkg_waits_for_the_orphan(node: nodes.Node, debs: Debs) -> None:
    """Case 12: dpkg killed during the update command; `dpkg --configure -a` right away succeeds."""
    install(node, debs.v1)
    sh(node, f"touch /var/tmp/{PKG}.slow-update")
    deb = nodes.copy_in(node, debs.v2.deb, "/var/tmp/rb")
    sh(node, f"(dpkg -i {deb} >/var/tmp/dpkg.log 2>&1 & echo $! > /var/tmp/dpkg.pid) ; true")
    deadline = time.monotonic() + 60
    while nodes.run_in(node, ["test", "-e", f"{STATE}/update-started"]).returncode != 0:
        assert time.monotonic() < deadline, sh(node, "cat /var/tmp/dpkg.log")
        time.sleep(0.2)
    sh(node, "kill -KILL $(cat /var/tmp/dpkg.pid)")  # the postinst it started lives on, orphaned
    sh(node, f"rm /var/tmp/{PKG}.slow-update")
    result = nodes.run_in(node, ["dpkg", "--configure", "-a"], timeout=120)
    assert result.returncode == 0, result.stdout
    assert "Traceback" not in result.stdout
    assert dpkg_status(node, PKG) == "install ok installed"
    assert sh(node, f"cat {STATE}/update-runs") == "1.0.0-1 -> 2.0.0-1\n"  # the update ran once
    assert sh(node, f"cat {OWN}/configured-version") == "2.0.0-1\n"
    assert http_get(port_of(PKG)).endswith("2.0.0-1)\n")


def test_concurrent_launcher_runs_each_get_the_secret(node: nodes.Node, debs: Debs) -> None:
    """Case 13: every run gets its own private copy of the secret; none removes another's."""
    install(node, debs.v1)
    script = ("for i in 1 2 3 4 5; do "
              f"({PKG} run sh -c 'sleep 1; cat \"$APPDEB_SECRET_FILE\" >/dev/null && echo ok-$(id -un)' &) ; done; "
              "sleep 4")
    out = sh(node, script)
    assert out.count(f"ok-{PKG}") == 5, out
    assert "No such file" not in out


def test_commands_run_by_root_get_no_terminal_no_root_environment_and_no_root_processes(
    node: nodes.Node, debs: Debs,
) -> None:
    """Review findings: no tty or environment of root's reaches the app user; the app never runs as root;
    the app user's stray processes do not outlive remove."""
    install(node, debs.v1)
    # `script` gives the admin's command a real terminal, as an interactive `PKG verify` would have
    sh(node, f"SOME_TOKEN=root-only script -qec '{PKG} verify' /dev/null")
    pid, sid = sh(node, f"cat {STATE}/verify-sid").split()[:2]
    assert pid == sid and "tty" not in sh(node, f"cat {STATE}/verify-sid")  # its own session, no terminal
    env = sh(node, f"cat {STATE}/verify-env")
    assert "SOME_TOKEN" not in env and f"APPDEB_PACKAGE={PKG}" in env
    refused = nodes.run_in(node, [PKG, "web"])
    assert refused.returncode == 1 and "runs the app as root" in refused.stdout
    mine = f"for p in /proc/[0-9]*; do [ \"$(stat -c %U $p 2>/dev/null)\" = {PKG} ] && echo $p; done; true"
    as_app(node, "setsid sleep 600 >/dev/null 2>&1 < /dev/null &")
    sh(node, f"systemctl stop {PKG}.service")
    assert sh(node, mine).strip()  # the stray sleeper
    sh(node, f"apt-get -y remove {PKG}")
    assert sh(node, mine).strip() == ""


# --- through the signed repository: the archive's namesake, data-aware rollback, the pin at purge ------

ALL_SOURCES = ("-o", "Dir::Etc::SourceList=/dev/null", "-o", "Dir::Etc::SourceParts=/etc/apt/sources.list.d",
               "-o", "APT::Get::List-Cleanup=0")


@pytest.fixture
def server(cfg: repoconfig.RepoConfig) -> Iterator[reposerve.RepoServer]:
    with reposerve.serve(cfg) as srv:
        yield srv


def archive_namesake(tmp: Path, package: str, version: str) -> Path:
    """A flat apt repository (unsigned, trusted) like Debian's archive, holding a higher version of our name."""
    pkg = tmp / "namesake"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: Someone Else <x@example.org>\n"
        "Description: an unrelated package of the archive that happens to share the name\n")
    (pkg / "usr/share/doc" / package).mkdir(parents=True)
    (pkg / "usr/share/doc" / package / "namesake").write_text("not the app\n")
    flat = tmp / "archive"
    flat.mkdir()
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(flat / "namesake.deb")],
                   check=True, capture_output=True)
    packages = subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=flat, check=True, capture_output=True).stdout
    (flat / "Packages").write_bytes(packages)
    return flat


def test_repository_wins_over_a_namesake_rollback_restores_data_first_and_purge_drops_the_pin(
    node: nodes.Node, cfg: repoconfig.RepoConfig, server: reposerve.RepoServer, debs: Debs, tmp_path: Path,
) -> None:
    """Cases 9, 16 and 11 on one node."""
    repo.publish(cfg, [debs.v1.deb, debs.v2.deb])
    reposerve.write_client_config(node.root, cfg, server.url, "appdeb-rb")
    flat = archive_namesake(tmp_path, PKG, "99.0-1")
    where = nodes.copy_in(node, flat, "/var/tmp")
    sh(node, f"printf 'Types: deb\\nURIs: file:{where}\\nSuites: ./\\nTrusted: yes\\n' "
             "> /etc/apt/sources.list.d/namesake.sources")
    sh(node, "apt-get update --error-on=any " + " ".join(ALL_SOURCES))
    # case 9: the archive's higher version never replaces the app
    sh(node, f"apt-get install -y {PKG}=1.0.0-1")
    sh(node, "apt-get -y upgrade " + " ".join(ALL_SOURCES))
    assert sh(node, f"dpkg-query -W -f='${{Version}}' {PKG}") == "2.0.0-1"  # ours, not 99.0-1
    assert "Candidate: 2.0.0-1" in sh(node, f"apt-cache policy {PKG}")
    assert nodes.run_in(node, ["test", "-e", f"/usr/share/doc/{PKG}/namesake"]).returncode != 0
    assert sh(node, f"cat {STATE}/schema") == "2\n"
    as_app(node, f"echo written-at-2 > {STATE}/data.txt")
    # nor is it ever a version to pin or go back to: only the repository's are (apt lists all three)
    assert "99.0-1" in sh(node, f"apt-cache madison {PKG}")
    assert sh(node, f"{PKG} pin").strip().endswith("available: 1.0.0-1, 2.0.0-1")

    # case 16: back to 1.0.0-1 with its data: restored before its postinst, whose update never sees schema 2
    out = sh(node, f"{PKG} rollback 1.0.0-1 --restore-backup")
    assert "rolled back to 1.0.0-1 with its data" in out and "Can't locate revision" not in out
    assert dpkg_status(node, PKG) == "install ok installed"
    assert sh(node, f"cat {STATE}/schema {STATE}/data.txt") == f"1\ndata of {PKG}\n"
    assert sh(node, f"cat {OWN}/configured-version") == "1.0.0-1\n"
    assert http_get(port_of(PKG)).endswith("1.0.0-1)\n")
    assert sh(node, f"{PKG} pin").strip().endswith("pinned to 1.0.0-1; available: 1.0.0-1, 2.0.0-1")
    labels = {line.split("\t")[2]: line.split("\t")[1] for line in sh(node, f"{PKG} backups").splitlines()
              if "\t" in line}
    assert labels == {"reason=upgrade": "version=1.0.0-1", "reason=rollback": "version=2.0.0-1"}
    rollback_backup = sh(node, f"ls -d {BACKUPS}/*-2.0.0-1-rollback").strip()
    assert sh(node, f"tar -xOf {rollback_backup}/state.tar ./data.txt") == "written-at-2\n"

    # case 11: purge takes the rollback's pin with it; a new install gets the newest version
    assert nodes.run_in(node, ["test", "-e", f"/etc/apt/preferences.d/{PKG}-appdeb-pin"]).returncode == 0
    sh(node, f"apt-get -y purge {PKG}")
    assert nodes.run_in(node, ["test", "-e", f"/etc/apt/preferences.d/{PKG}-appdeb-pin"]).returncode != 0
    sh(node, f"apt-get install -y {PKG}")
    assert sh(node, f"dpkg-query -W -f='${{Version}}' {PKG}") == "2.0.0-1"
