"""The repository commands of the CLI: exit codes (0 ok, 1 error, 2 usage) and what they print.

Each test runs the real entry point in a subprocess; the repository lives in pytest's tmp dir
(APPDEB_REPO or --root), so no user repository is touched.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appdeb.repo import signing
from appdeb.runner import run

NEEDS_APTLY = pytest.mark.skipif(any(shutil.which(t) is None for t in ("aptly", "gpg", "dpkg-deb")),
                                 reason="needs aptly, gpg and dpkg-deb")


def appdeb(*args: str, root: Path, check_code: int | None = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "APPDEB_REPO": str(root), "CI": "1"}
    proc = subprocess.run([sys.executable, "-m", "appdeb.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    if check_code is not None:
        assert proc.returncode == check_code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def make_deb(outdir: Path, name: str, version: str, payload: str = "") -> Path:
    tree = outdir / f"tree-{name}-{version}-{len(payload)}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Test <test@example.invalid>\nDescription: cli test package\n")
    (tree / "usr" / "share" / name).mkdir(parents=True)
    (tree / "usr" / "share" / name / "payload").write_text(payload or f"{name} {version}\n")
    out = outdir / f"{name}_{version}_all-{len(payload)}.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)])
    return out


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def inited(root: Path) -> Iterator[Path]:
    appdeb("repo", "init", "--arch", "amd64", root=root)
    yield root
    signing.stop_agent(root / "gnupg")


# --- without aptly ------------------------------------------------------------------------------


def test_repo_help_lists_the_commands(root: Path) -> None:
    out = appdeb("repo", "--help", root=root).stdout
    for command in ("init", "serve", "list", "history", "snapshots", "rollback", "client-config"):
        assert command in out
    assert "FILE.deb..." in appdeb("publish", "--help", root=root).stdout


@pytest.mark.parametrize("args", [
    ["repo", "list"], ["repo", "history"], ["repo", "snapshots"], ["repo", "rollback"], ["repo", "serve"],
    ["repo", "client-config", "--url", "http://127.0.0.1:8080/"], ["publish", "DEB"],
])
def test_commands_need_an_initialised_repository(args: list[str], root: Path, tmp_path: Path) -> None:
    deb = tmp_path / "x.deb"
    deb.write_bytes(b"")
    proc = appdeb(*[str(deb) if a == "DEB" else a for a in args], root=root, check_code=1)
    assert proc.stderr == f"appdeb: error: {root}: not an appdeb repository; run `appdeb repo init` first\n"


def test_the_init_hint_names_the_root_given(tmp_path: Path) -> None:
    """The hint is a command that works as printed: the --root the user gave, shell-quoted."""
    given = tmp_path / "my repo's"
    deb = tmp_path / "x.deb"
    deb.write_bytes(b"")
    proc = appdeb("publish", "--root", str(given), str(deb), root=tmp_path / "elsewhere", check_code=1)
    quoted = shlex.quote(str(given))
    assert proc.stderr == (f"appdeb: error: {given}: not an appdeb repository; "
                           f"run `appdeb repo init --root {quoted}` first\n")
    hint = proc.stderr.split("`")[1]
    assert shlex.split(hint) == ["appdeb", "repo", "init", "--root", str(given)]


@pytest.mark.parametrize(("args", "message"), [
    (["publish"], "Missing argument 'FILE.deb...'"),
    (["publish", "/nonexistent/app.deb"], "does not exist"),
    (["publish", "--keep", "-1", "README.md"], "--keep"),
    (["repo", "client-config"], "Missing option '--url'"),
    (["repo", "client-config", "--url", "deb.example/x"], "is not an http://, https:// or file:// URL"),
    (["repo", "client-config", "--url", "http://a b/"], "is not an http://"),
    (["repo", "serve", "--port", "70000"], "70000"),
    (["repo", "init", "--keep", "x"], "--keep"),
    (["repo", "rollback", "--to"], "requires an argument"),
    (["repo", "nosuch"], "No such command"),
])
def test_usage_errors_exit_2(args: list[str], message: str, root: Path) -> None:
    proc = appdeb(*args, root=root, check_code=2)
    assert "Error:" in proc.stderr and message in proc.stderr


# --- with aptly ---------------------------------------------------------------------------------


@pytest.mark.integration
@NEEDS_APTLY
def test_init_reports_the_key_and_reinit_keeps_it(root: Path) -> None:
    first = appdeb("repo", "init", "--keep", "3", "--arch", "amd64", root=root).stdout
    try:
        assert first.startswith(f"created repository {root}\n")
        fpr = next(ln.split()[-1] for ln in first.splitlines() if "signing key" in ln)
        assert len(fpr) == 40 and "retention     3 versions per package" in first
        assert "gpg --armor --export-secret-keys" in first
        again = appdeb("repo", "init", "--root", str(root), root=root / "unused").stdout
        assert again.startswith(f"updated repository {root}\n") and fpr in again
        assert "retention     3 versions" in again and "export-secret-keys" not in again
        refused = appdeb("repo", "init", "--key", "0123456789ABCDEF", root=root, check_code=1)
        assert refused.stderr.startswith(f"appdeb: error: repository already signs with {fpr}")
    finally:
        signing.stop_agent(root / "gnupg")


@pytest.mark.integration
@NEEDS_APTLY
def test_publish_list_snapshots_history_and_rollback(inited: Path, tmp_path: Path) -> None:
    root = inited
    v1, v2 = make_deb(tmp_path, "hello", "1.0-1"), make_deb(tmp_path, "hello", "1.0-2")
    out = appdeb("publish", str(v1), root=root).stdout.splitlines()
    assert out[0] == "added      hello_1.0-1_all"
    first = out[1].split()[1]
    assert out[1].startswith(f"published  {first} (bookworm, signed, in {root}/public)")

    out = appdeb("publish", str(v1), root=root).stdout.splitlines()
    assert out == ["unchanged  hello_1.0-1_all", f"nothing changed: bookworm still serves {first}"]

    clash = appdeb("publish", str(make_deb(tmp_path, "hello", "1.0-1", payload="other")), root=root, check_code=1)
    assert "already published with different contents; versions are immutable" in clash.stderr
    assert clash.stderr.startswith("appdeb: error: ")

    result = json.loads(appdeb("publish", "--json", "--keep", "1", str(v2), root=root).stdout)
    assert (result["added"], result["removed"], result["unchanged"]) == (["hello_1.0-2_all"], ["hello_1.0-1_all"], [])
    second = result["snapshot"]

    listed = appdeb("repo", "list", root=root)
    assert listed.stdout == "hello  1.0-2  all\n" and second in listed.stderr
    assert appdeb("repo", "snapshots", root=root).stdout == f"  {first}\n* {second}\n"
    history = appdeb("repo", "history", root=root).stdout
    assert f"publish   bookworm  {first}  (before: nothing)\n    + hello_1.0-1_all\n" in history
    assert f"publish   bookworm  {second}  (before: {first})\n    + hello_1.0-2_all\n    - hello_1.0-1_all\n" in history
    assert [json.loads(ln)["action"] for ln in appdeb("repo", "history", "--json", root=root).stdout.splitlines()] \
        == ["publish", "publish"]

    back = appdeb("repo", "rollback", root=root)
    assert back.stdout == (f"bookworm: now serving {first} (was {second})\n"
                           "    + hello_1.0-1_all\n    - hello_1.0-2_all\n")
    assert "apt never downgrades" in back.stderr
    assert appdeb("repo", "list", root=root).stdout == "hello  1.0-1  all\n"
    forward = appdeb("repo", "rollback", "--to", second, root=root).stdout
    assert forward.startswith(f"bookworm: now serving {second}")
    missing = appdeb("repo", "rollback", "--to", "bookworm-nosuch", root=root, check_code=1)
    assert missing.stderr.startswith("appdeb: error: no snapshot bookworm-nosuch for bookworm; have: ")
    assert appdeb("repo", "list", "--distribution", "trixie", root=root).stdout == "nothing published for trixie\n"


@pytest.mark.integration
@NEEDS_APTLY
def test_publish_refuses_what_is_not_a_deb(inited: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.deb"
    junk.write_text("not a package\n")
    proc = appdeb("publish", str(junk), root=inited, check_code=1)
    assert proc.stderr.startswith(f"appdeb: error: {junk}: not a usable .deb")
    bad = appdeb("publish", "--distribution", "a/b", str(make_deb(tmp_path, "x", "1")), root=inited, check_code=1)
    assert "invalid name 'a/b'" in bad.stderr


@pytest.mark.integration
@NEEDS_APTLY
def test_client_config_prints_a_script_or_writes_the_files(inited: Path, tmp_path: Path) -> None:
    url = "http://127.0.0.1:8080/"
    script = appdeb("repo", "client-config", "--url", url, "--name", "apps", root=inited).stdout
    key = (inited / "key.asc").read_text()
    assert key.strip() in script
    assert f"URIs: {url}\nSuites: bookworm\nComponents: main\nSigned-By: /etc/apt/keyrings/apps.asc\n" in script
    assert "apt-key" not in script and "trusted.gpg.d" not in script
    run(["sh", "-n"], input=script)  # it is a valid shell script

    pin = "Package: *\nPin: release o=appdeb,l=appdeb\nPin-Priority: 995\n"
    assert "cat > /etc/apt/preferences.d/apps.pref <<'APPDEB_EOF'\n" in script and pin in script

    target = tmp_path / "noderoot"
    out = appdeb("repo", "client-config", "--url", url, "--name", "apps", "--distribution", "trixie",
                 "--write-to", str(target), root=inited).stdout
    keyring, sources = target / "etc/apt/keyrings/apps.asc", target / "etc/apt/sources.list.d/apps.sources"
    prefs = target / "etc/apt/preferences.d/apps.pref"
    assert out == f"wrote {keyring}\nwrote {sources}\nwrote {prefs}\n"
    assert keyring.read_text() == key and "Suites: trixie\n" in sources.read_text() and pin in prefs.read_text()
    assert {p.stat().st_mode & 0o777 for p in (keyring, sources, prefs)} == {0o644}
    assert not (target / "etc/apt/trusted.gpg.d").exists()
    bad = appdeb("repo", "client-config", "--url", url, "--name", "../x", root=inited, check_code=1)
    assert "invalid name '../x'" in bad.stderr


@pytest.mark.integration
@NEEDS_APTLY
def test_serve_runs_until_interrupted_and_reports_a_busy_port(inited: Path, tmp_path: Path) -> None:
    appdeb("publish", str(make_deb(tmp_path, "hello", "1.0-1")), root=inited)
    env = {**os.environ, "APPDEB_REPO": str(inited), "CI": "1"}
    # Ctrl-C is SIGINT at its default even when pytest runs as a background job (which ignores it)
    proc = subprocess.Popen([sys.executable, "-m", "appdeb.cli", "repo", "serve", "--port", "0", "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"serving {inited}/public at http://127.0.0.1:"), line
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "dists/bookworm/InRelease", timeout=10) as resp:
            assert resp.read().startswith(b"-----BEGIN PGP SIGNED MESSAGE-----")
        port = url.rstrip("/").rsplit(":", 1)[1]
        busy = appdeb("repo", "serve", "--port", port, root=inited, check_code=1)
        assert busy.stderr.startswith(f"appdeb: error: cannot serve on 127.0.0.1:{port}: ")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)  # generous: a loaded CI machine
        finally:
            if proc.poll() is None:  # never left running
                proc.kill()
                proc.wait()
    assert code == 0


@pytest.mark.integration
@NEEDS_APTLY
def test_a_root_synced_elsewhere_publishes_there(inited: Path, tmp_path: Path) -> None:
    """docs/repository.md's ephemeral runner: copy the root in, publish there, the original is untouched."""
    appdeb("publish", str(make_deb(tmp_path, "hello", "1.0-1")), root=inited)
    packages = "public/dists/bookworm/main/binary-amd64/Packages"
    before = (inited / packages).read_text()
    copy = tmp_path / "runner-copy"
    run(["cp", "-a", inited, copy])
    try:
        appdeb("publish", "--root", str(copy), str(make_deb(tmp_path, "hello", "1.0-2")), root=inited)
        assert appdeb("repo", "list", root=copy).stdout == "hello  1.0-1  all\nhello  1.0-2  all\n"
        assert (inited / packages).read_text() == before
        assert appdeb("repo", "list", root=inited).stdout == "hello  1.0-1  all\n"
    finally:
        signing.stop_agent(copy / "gnupg")


@pytest.mark.integration
def test_build_warns_when_the_name_is_in_this_machines_apt_sources(tmp_path: Path) -> None:
    if shutil.which("apt-cache") is None or "Candidate:" not in run(["apt-cache", "policy", "hello"]).stdout:
        pytest.skip("this machine's apt lists do not know hello (run apt-get update)")
    examples = Path(__file__).resolve().parent.parent / "examples"
    proc = appdeb("build", str(examples / "hello"), "--json", "--out", str(tmp_path / "dist"), root=tmp_path)
    assert json.loads(proc.stdout)["package"] == "hello"  # stdout stays one JSON object
    assert proc.stderr == (
        "appdeb: warning: 'hello' is also a package in this machine's apt sources (Debian's archive?): nodes will "
        "prefer this repository's version only with the client configuration's pin (appdeb repo client-config); "
        "consider another name or an --instance\n")
    again = appdeb("build", str(examples / "hello"), "--json", "--out", str(tmp_path / "dist"), root=tmp_path)
    assert json.loads(again.stdout)["reused"] and again.stderr == ""  # said when built; no apt-cache on reuse
    proc = appdeb("build", str(examples / "hello"), "--instance", "prod", "--out", str(tmp_path / "dist"),
                  root=tmp_path)
    assert re.fullmatch(r"hello-prod: web process on 127\.0\.0\.1:\d+\n", proc.stderr)  # no warning, the port
    assert proc.stdout.endswith("/hello-prod_1.0.0-1_all.deb\n")


def agents_of(root: Path) -> list[str]:
    """gpg-agent processes whose command line or GNUPGHOME points into root, or to the short link that
    stands for a deep root's gnupg home (signing.short_home), read from /proc."""
    short = str(signing.short_home(root / "gnupg")) if (root / "gnupg").is_dir() else str(root)
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or (proc / "comm").read_text().strip() != "gpg-agent":
                continue
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            env = (proc / "environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if any(str(root) in a or a.startswith(short) for a in argv) or any(
                e.startswith((f"GNUPGHOME={root}", f"GNUPGHOME={short}")) for e in env):
            found.append(f"{proc.name}: {' '.join(argv)}")
    return found


@pytest.mark.integration
@NEEDS_APTLY
def test_repository_commands_leave_no_gpg_agent(root: Path, tmp_path: Path) -> None:
    """Each command stops the agent its signing started: a day of use must not leave one per root."""
    steps = [["repo", "init", "--arch", "amd64"], ["publish", "--distribution", "staging", "DEB1"],
             ["publish", "--distribution", "staging", "DEB2"], ["repo", "promote", "--from", "staging", "--to", "prod"],
             ["repo", "rollback", "--distribution", "staging"],
             ["repo", "yank", "--distribution", "staging", "hello=1.0-1"], ["repo", "init"]]
    debs = {"DEB1": str(make_deb(tmp_path, "hello", "1.0-1")), "DEB2": str(make_deb(tmp_path, "hello", "1.0-2"))}
    try:
        for step in steps:
            out = appdeb(*[debs.get(a, a) for a in step], root=root)
            assert out.stdout, step
            assert agents_of(root) == [], step
    finally:
        signing.stop_agent(root / "gnupg")


@pytest.mark.integration
@NEEDS_APTLY
def test_refresh_signs_every_published_distribution_again(inited: Path, tmp_path: Path) -> None:
    appdeb("publish", str(make_deb(tmp_path, "hello", "1.0-1")), root=inited)
    snapshot = appdeb("repo", "snapshots", root=inited).stdout.split()[-1]
    out = appdeb("repo", "refresh", root=inited)
    assert out.stdout == f"bookworm: {snapshot} signed again\n"
    bad = appdeb("repo", "refresh", "--distribution", "prod", root=inited, check_code=1)
    assert bad.stderr == "appdeb: error: nothing is published for prod\n"
    assert "Valid-Until-Max: 604800" in appdeb("repo", "client-config", "--url", "http://127.0.0.1:8080/",
                                               "--valid-for", "7d", root=inited).stdout
    usage = appdeb("repo", "client-config", "--url", "http://127.0.0.1:8080/", "--valid-for", "7 days",
                   root=inited, check_code=2)  # a usage error, as click's own
    assert "Invalid value for '--valid-for': '7 days' is not a time span" in usage.stderr
    short = appdeb("repo", "client-config", "--url", "http://127.0.0.1:8080/", "--valid-for", "9s",
                   root=inited, check_code=2)
    assert "Invalid value for '--valid-for': 9s: at least 10 s" in short.stderr
