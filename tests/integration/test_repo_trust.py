"""A repository keeps its identity where it goes, and nodes keep preferring it: real aptly, gpg and apt.

- a root moved or copied to another path (mv, cp -a: the "ephemeral runner" recipe) publishes
  into itself, signed with the same key, and never into the old path;
- the client configuration pins the repository above Debian's archive, so an app named like an
  archive package (hello) stays the repository's version (apt-cache policy, throw-away apt dirs);
- `appdeb build` can tell a name that this machine's apt sources also know.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from appdeb.build import namecheck
from appdeb.errors import AppdebError
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import serve as reposerve
from appdeb.repo import signing, store
from appdeb.repo.serve import PIN_PRIORITY, apt_preferences
from appdeb.runner import run

from .test_repo import make_deb, published_versions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("aptly", "gpg", "gpgv", "dpkg-deb", "apt-get", "dpkg-scanpackages")),
        reason="needs aptly, gpg, gpgv, dpkg-deb, apt-get and dpkg-scanpackages",
    ),
]


_RUN_USER = "APPDEB_TEST_AGENT_SOCKETS_IN_RUN_USER"  # set for the inner run of the /run/user test


def _agent_running(home: Path) -> bool:
    """Whether a gpg-agent answers on `home`'s socket (without starting one; the exit code is 0 either way)."""
    proc = run(["gpg-connect-agent", "--no-autostart", "GETINFO pid", "/bye"], env=signing.gnupg_env(home))
    return any(line.startswith("D ") for line in proc.stdout.splitlines())


# --- a moved or copied root ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["mv", "mv, then repo init", "cp -a, then rm the original", "cp -a, original kept"])
def test_a_moved_or_copied_root_publishes_into_its_new_path(tmp_path: Path, debs: Path, how: str) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    old = repoconfig.init_repo(a, architectures=["amd64"])
    try:
        repo.publish(old, [make_deb(debs, "hello", "1.0-1")])
        assert not _agent_running(old.gnupg_home)  # publish stopped the agent its signing started
        # one left running all the same (by an older appdeb, or gpg run by hand): the move must survive it
        run(["gpg-connect-agent", "/bye"], env=signing.gnupg_env(old.gnupg_home))
        assert _agent_running(old.gnupg_home)  # socket in A/gnupg or /run/user
        if os.environ.get(_RUN_USER):
            socketdir = run(["gpgconf", "--list-dirs", "socketdir"], env=signing.gnupg_env(old.gnupg_home))
            assert socketdir.stdout.startswith("/run/user/")
        trusted, a_tree = tmp_path / "trusted.gpg", _tree(old.public_dir)
        shutil.copyfile(old.key_gpg, trusted)  # what nodes trust: the key as it was before the move
        if how.startswith("mv"):
            run(["mv", a, b])  # B/gnupg now holds the socket of A's agent, which looks for keys in A
        else:
            run(["cp", "-a", a, b])
            if how.endswith("rm the original"):
                signing.stop_agent(old.gnupg_home)
                shutil.rmtree(a)
        new = repoconfig.init_repo(b) if how.endswith("repo init") else repoconfig.open_repo(b)
        result = repo.publish(new, [make_deb(debs, "hello", "1.0-2")])
        assert result.added == ["hello_1.0-2_all"]
        assert published_versions(new) == ["1.0-1", "1.0-2"]
        assert json.loads(new.conf.read_text())["rootDir"] == str(b)
        assert new.key == old.key
        signing.verify_clearsigned(trusted, b / "public/dists/bookworm/InRelease")
        assert [e.added for e in store.history(new)] == [["hello_1.0-1_all"], ["hello_1.0-2_all"]]
        if how == "cp -a, original kept":
            assert _tree(old.public_dir) == a_tree  # the original is untouched
            assert [e.added for e in store.history(old)] == [["hello_1.0-1_all"]]
        else:
            assert not a.exists()  # nothing recreated the old path
            assert not _agent_running(old.gnupg_home)  # and the old path's agent is gone
    finally:
        for home in (old.gnupg_home, b / "gnupg"):
            signing.stop_agent(home)
            signing.stop_agent_of_vanished_home(home)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
def test_a_moved_root_signs_with_agent_sockets_under_run_user(tmp_path: Path) -> None:
    """The move again, where gpg keeps agent sockets in /run/user/UID: in a private mount namespace."""
    if os.environ.get(_RUN_USER):
        pytest.skip("this is the inner run")
    setup = f'mount -t tmpfs tmpfs /run/user && mkdir -m 700 /run/user/{os.getuid()} && exec "$@"'
    probe = run(["unshare", "-m", "sh", "-c", setup, "sh", "true"], check=False)
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stdout.strip()}")
    test = f"{__file__}::test_a_moved_or_copied_root_publishes_into_its_new_path[mv]"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path), test]
    proc = run(["unshare", "-m", "sh", "-c", setup, "sh", *argv], env={_RUN_USER: "1"}, check=False)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout


def _tree(public: Path) -> dict[str, bytes]:
    return {str(p.relative_to(public)): p.read_bytes() for p in sorted(public.rglob("*")) if p.is_file()}


def test_open_repo_leaves_a_current_aptly_conf_alone_and_rederives_an_edited_one(cfg: repoconfig.RepoConfig) -> None:
    before = cfg.conf.stat()
    assert repoconfig.open_repo(cfg.root) == cfg
    assert cfg.conf.stat().st_mtime_ns == before.st_mtime_ns and cfg.conf.stat().st_ino == before.st_ino
    rendered = cfg.conf.read_text()
    cfg.conf.write_text(rendered.replace(str(cfg.root), "/elsewhere"))
    repoconfig.open_repo(cfg.root)
    assert cfg.conf.read_text() == rendered


# --- the pin over Debian's archive ---------------------------------------------------------------


def test_client_config_files(cfg: repoconfig.RepoConfig, tmp_path: Path) -> None:
    files = reposerve.client_config(cfg, "http://127.0.0.1:8080/", "myapps")
    assert files.pop("/etc/apt/preferences.d/myapps.pref") == apt_preferences(cfg, "myapps")
    assert set(files) == {"/etc/apt/keyrings/myapps.asc", "/etc/apt/sources.list.d/myapps.sources"}
    assert files["/etc/apt/keyrings/myapps.asc"] == cfg.key_asc.read_text()
    assert files["/etc/apt/sources.list.d/myapps.sources"] == (
        "Types: deb\nURIs: http://127.0.0.1:8080/\nSuites: bookworm\nComponents: main\n"
        "Signed-By: /etc/apt/keyrings/myapps.asc\n"
    )
    written = reposerve.write_client_config(tmp_path / "node", cfg, "http://127.0.0.1:8080/", "myapps")
    assert sorted(p.relative_to(tmp_path / "node").as_posix() for p in written) == [
        "etc/apt/keyrings/myapps.asc", "etc/apt/preferences.d/myapps.pref", "etc/apt/sources.list.d/myapps.sources"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in written)


def test_release_carries_the_origin_and_label_the_pin_names(cfg: repoconfig.RepoConfig, debs: Path) -> None:
    release = cfg.public_dir / "dists/bookworm/Release"
    for version in ("1.0-1", "1.0-2"):  # publish snapshot, then publish switch
        repo.publish(cfg, [make_deb(debs, "hello", version)])
        assert release.read_text().startswith("Origin: appdeb\nLabel: appdeb\n")
    assert apt_preferences(cfg, "myapps") == (
        "Explanation: appdeb repository myapps: its packages win over same-named ones of other sources\n"
        "Explanation: (Debian's archive) even when those are newer; below 1000: never downgrades by itself\n"
        "Package: *\nPin: release o=appdeb,l=appdeb\nPin-Priority: 995\n"
    )
    assert 990 < PIN_PRIORITY < 1000
    # once published, the pin follows the Release nodes see, not later edits of settings.json
    edited = replace(cfg, origin="other", label="mine")
    assert "Pin: release o=appdeb,l=appdeb\n" in apt_preferences(edited, "myapps")
    assert "Pin: release o=other,l=mine\n" in apt_preferences(edited, "myapps", "trixie")  # not published yet


@pytest.mark.parametrize("field", ["origin", "label"])
@pytest.mark.parametrize("value", ["a,l=x", "x\nPin-Priority: 1001", "a b", ""])
def test_origin_and_label_must_be_plain_names(cfg: repoconfig.RepoConfig, field: str, value: str) -> None:
    with pytest.raises(AppdebError, match="invalid name"):
        reposerve.client_config(replace(cfg, **{field: value}), "http://127.0.0.1/", "apps")
    with pytest.raises(AppdebError, match="invalid name"):
        repoconfig.init_repo(cfg.root, **{field: value})
    assert repoconfig.open_repo(cfg.root) == cfg  # the refused init changed nothing


def _archive(tmp: Path, debs: Path, version: str) -> Path:
    """A flat unsigned repository like Debian's archive (Origin Debian, suite stable) with `hello`."""
    archive = tmp / "archive"
    archive.mkdir()
    shutil.copy(make_deb(debs, "hello", version), archive / f"hello_{version}_all.deb")
    run(["sh", "-c", "dpkg-scanpackages . > Packages 2>/dev/null"], cwd=archive)
    packages = (archive / "Packages").read_bytes()
    (archive / "Release").write_text(
        "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\nArchitectures: amd64 all\n"
        f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    )
    return archive


def _node(tmp: Path, cfg: repoconfig.RepoConfig, archive: Path) -> list[str]:
    """Throw-away apt dirs: the repository as configured by client_config (file://), plus the archive."""
    etc = tmp / "etc/apt"
    reposerve.write_client_config(tmp, cfg, f"file://{cfg.public_dir}", "appdeb-test")
    sources = etc / "sources.list.d/appdeb-test.sources"
    sources.write_text(sources.read_text().replace("/etc/apt/keyrings/", f"{etc}/keyrings/"))
    (etc / "sources.list.d/archive.sources").write_text(
        f"Types: deb\nURIs: file:{archive}\nSuites: ./\nTrusted: yes\n")
    for sub in ("state/lists/partial", "cache/archives/partial"):
        (tmp / sub).mkdir(parents=True)
    (tmp / "state/status").write_text("")
    opts = {"Dir::Etc": str(etc), "Dir::State": str(tmp / "state"), "Dir::State::status": str(tmp / "state/status"),
            "Dir::Cache": str(tmp / "cache"), "APT::Sandbox::User": "root"}
    return [arg for k, v in opts.items() for arg in ("-o", f"{k}={v}")]


def _candidate(opts: list[str], *extra: str) -> str:
    policy = run(["apt-cache", *opts, *extra, "policy", "hello"]).stdout
    return next(ln.split()[1] for ln in policy.splitlines() if ln.strip().startswith("Candidate:"))


def test_apt_takes_the_repository_version_over_a_higher_archive_one(
    cfg: repoconfig.RepoConfig, debs: Path, tmp_path: Path
) -> None:
    repo.publish(cfg, [make_deb(debs, "hello", "1.0-1"), make_deb(debs, "hello", "1.0-2")])
    node = tmp_path / "node"
    opts = _node(node, cfg, _archive(tmp_path, debs, "2.10-3"))
    run(["apt-get", *opts, "update", "--error-on=any"])
    policy = run(["apt-cache", *opts, "policy", "hello"]).stdout
    assert _candidate(opts) == "1.0-2", policy
    assert f"     1.0-2 {PIN_PRIORITY}\n" in policy and "     2.10-3 500\n" in policy
    # also where the node makes the archive's suite its target release (which gives the archive 990)
    assert _candidate(opts, "-o", "APT::Default-Release=stable") == "1.0-2"
    # a node's own pin of one version (`PKG pin`: a specific pin, 1001) still beats the general one
    pin = node / "etc/apt/preferences.d/hello-appdeb-pin"
    pin.write_text("Package: hello\nPin: version 1.0-1\nPin-Priority: 1001\n")
    assert _candidate(opts) == "1.0-1"
    pin.unlink()
    # below 1000: a newer installed version is kept, apt never downgrades by itself
    (node / "state/status").write_text(
        "Package: hello\nStatus: install ok installed\nVersion: 3.0-1\nArchitecture: all\n"
        "Maintainer: Test <test@example.invalid>\nDescription: installed\n")
    assert _candidate(opts) == "3.0-1"
    # and without the preferences file the archive's higher version would win: the pin is what matters
    (node / "state/status").write_text("")
    (node / "etc/apt/preferences.d/appdeb-test.pref").unlink()
    assert _candidate(opts) == "2.10-3"


# --- the build-time name check -------------------------------------------------------------------


def test_a_name_in_this_machines_apt_sources_is_found() -> None:
    if shutil.which("apt-cache") is None or "Candidate:" not in run(["apt-cache", "policy", "hello"]).stdout:
        pytest.skip("this machine's apt lists do not know hello (run apt-get update)")
    assert namecheck.in_apt_sources("hello")
    [warning] = namecheck.name_warnings("hello")
    assert warning.startswith("'hello' is also a package in this machine's apt sources (Debian's archive?)")
    assert "appdeb repo client-config" in warning
    assert not namecheck.in_apt_sources("appdeb-no-such-package-7f3c9e")
    assert namecheck.name_warnings("appdeb-no-such-package-7f3c9e") == []


def test_the_name_check_is_silent_when_apt_cache_is_missing_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(namecheck, "which", lambda _name: None)
    assert namecheck.name_warnings("hello") == []
    monkeypatch.setattr(namecheck, "which", lambda _name: "/usr/bin/apt-cache")

    def timed_out(*_args: object, **_kwargs: object) -> None:
        raise AppdebError("command timed out after 10.0s: apt-cache show hello")

    monkeypatch.setattr(namecheck, "run", timed_out)
    assert namecheck.name_warnings("hello") == []


def test_the_name_check_is_remembered_while_the_apt_state_holds(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("apt-cache") is None or "Candidate:" not in run(["apt-cache", "policy", "hello"]).stdout:
        pytest.skip("this machine's apt lists do not know hello (run apt-get update)")
    lists = tmp_path / "lists"
    lists.mkdir()
    monkeypatch.setattr(namecheck, "APT_STATE", (str(lists), "/etc/apt/sources.list.d"))
    assert namecheck.name_warnings("hello", tmp_path / "cache")  # asks apt-cache, remembers
    asked: list[str] = []
    monkeypatch.setattr(namecheck, "in_apt_sources", lambda name: asked.append(name) or False)
    assert namecheck.name_warnings("hello", tmp_path / "cache") and asked == []
    (lists / "new_InRelease").write_text("")  # what apt-get update does: the answer may have changed
    os.utime(lists, ns=(1, 1))
    assert namecheck.name_warnings("hello", tmp_path / "cache") == [] and asked == ["hello"]
