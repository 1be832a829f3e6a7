"""commands.build cannot poison the vendored-library cache that every later build of the same requirements reuses.

Each test works on a copy of the real cache entry (XDG_CACHE_HOME in tmp_path): the build step's app code
really tries to write and delete inside the vendored tree it has on its PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from appdeb.build import sealed
from appdeb.build.pipeline import BuildOptions, build
from appdeb.build.plan import make_plan
from appdeb.build.validate import load_spec
from appdeb.build.vendor import vendor
from appdeb.errors import AppdebError

from .conftest import EPOCH, EXAMPLES
from .test_build_step import snapshot, with_build

pytestmark = pytest.mark.integration

POISON = ('python3 -c "import gunicorn, os; os.remove(gunicorn.__file__)" || echo delete refused; '
          'python3 -c "import gunicorn, os; open(os.path.join(os.path.dirname(gunicorn.__file__), '
          '\\"evil.py\\"), \\"w\\").write(\\"x = 1\\")"')
PYTHON = "{}.{}".format(*sys.version_info[:2])


def private_cache(app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache of its own holding a copy of the app's vendored tree (made in the real cache if need be)."""
    spec = load_spec(app)
    plan = make_plan(spec, instance=None, python_version=PYTHON, source_date_epoch=EPOCH)
    real = vendor(plan.requirements, plan.python_version, app, plan.target.glibc_minor)
    entry = tmp_path / "cache" / "appdeb" / "vendor" / real.key
    shutil.copytree(real.lib.parent, entry, symlinks=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return entry


@pytest.mark.skipif(not sealed.can_seal(), reason="needs root and mount namespaces (CI runs as root)")
def test_as_root_the_build_step_sees_the_cache_read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proc, entry, before = _build_with_step(POISON, tmp_path, monkeypatch)
    assert "delete refused" in proc.stderr and "Read-only file system" in proc.stderr
    assert proc.stderr.rstrip().endswith(sealed_hint())
    assert snapshot(entry) == before  # every path, mode, mtime and byte as it was
    assert str(tmp_path / "cache") not in Path("/proc/self/mountinfo").read_text()  # the bind stayed private


def _build_with_step(step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> tuple[subprocess.CompletedProcess[str], Path, object]:
    """`appdeb build` (as CI runs it) of an app whose commands.build is `step`, on a private cache copy:
    the failed run, the cache entry and its state before."""
    app = with_build(tmp_path, step.replace("'", "''"))
    entry = private_cache(app, tmp_path, monkeypatch)
    before = snapshot(entry)
    proc = subprocess.run([sys.executable, "-m", "appdeb.cli", "build", str(app), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "CI": "1"})
    assert proc.returncode == 1, proc.stderr
    return proc, entry, before


def sealed_hint() -> str:
    from appdeb.build.build_step import READ_ONLY_HINT

    return READ_ONLY_HINT


def test_unsealed_a_step_that_changed_the_tree_loses_the_entry_and_fails(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The path of a build without root or namespaces: the change is found by the tree's stat."""
    app = with_build(tmp_path, POISON.replace("'", "''"))
    entry = private_cache(app, tmp_path, monkeypatch)
    monkeypatch.setattr(sealed, "can_seal", lambda: False)
    with pytest.raises(AppdebError) as info:
        build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    message = str(info.value)
    assert message.startswith("commands.build changed the cached vendored libraries (")
    assert "(gunicorn, gunicorn/__init__.py)" in message  # its directory and the deleted file
    assert not entry.exists() and os.listdir(entry.parent) == []  # dropped: the next build vendors afresh
    assert not list((tmp_path / "out").glob("*.deb")) if (tmp_path / "out").exists() else True


def test_a_step_that_leaves_the_tree_alone_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = with_build(tmp_path, 'python3 -c "import gunicorn" && touch made.txt')
    entry = private_cache(app, tmp_path, monkeypatch)
    before = snapshot(entry)
    result = build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    assert result.deb.is_file() and snapshot(entry) == before


@pytest.mark.skipif(not sealed.can_seal(), reason="needs root and mount namespaces (CI runs as root)")
def test_the_web_apps_import_at_build_time_sees_the_cache_read_only(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The interface check imports the app with the vendored tree on its path: its import-time code may not write."""
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    with (app / "hello.py").open("a") as f:
        f.write("\nimport gunicorn\ntry:\n    open(os.path.join(os.path.dirname(gunicorn.__file__), 'evil.py'), 'w')\n"
                "except OSError as exc:\n    print('import-time write refused:', exc.strerror)\n")
    entry = private_cache(app, tmp_path, monkeypatch)
    before = snapshot(entry)
    result = build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    assert result.deb.is_file()
    assert not [w for w in result.warnings if "could not" in w]  # the import went through: it is WSGI
    assert snapshot(entry) == before


# The step finds the read-only bind holding gunicorn and tries to make it writable again, then writes.
REMOUNT = ('python3 -c "import gunicorn, os, subprocess; d = os.path.dirname(gunicorn.__file__); '
           'm = max((l.split()[4] for l in open(\\"/proc/self/mountinfo\\") if d.startswith(l.split()[4])), key=len); '
           'r = subprocess.run([\\"mount\\", \\"-o\\", \\"remount,bind,rw\\", m]).returncode; '
           'print(\\"remount refused\\" if r else \\"remounted\\"); '
           'open(os.path.join(d, \\"evil.py\\"), \\"w\\").write(\\"x = 1\\")"')


@pytest.mark.skipif(not sealed.can_seal(), reason="needs root and mount namespaces (CI runs as root)")
def test_as_root_the_build_step_cannot_make_the_cache_writable_again(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    proc, entry, before = _build_with_step(REMOUNT, tmp_path, monkeypatch)
    assert "remount refused" in proc.stderr and "Read-only file system" in proc.stderr
    assert snapshot(entry) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="the rule is for builds as root")
@pytest.mark.parametrize("how", ["world-writable", "another user's"])
def test_as_root_a_cache_another_user_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           how: str) -> None:
    """Another user who can write appdeb's cache could put a library there that root then ships."""
    shared = tmp_path / "shared"
    shared.mkdir()
    if how == "world-writable":
        shared.chmod(0o777)
    else:
        os.chown(shared, 65534, 65534)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    app = tmp_path / "hello"
    shutil.copytree(EXAMPLES / "hello", app)
    with pytest.raises(AppdebError, match="can be written by another user than root") as info:
        build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    assert str(shared) in str(info.value)
    assert not (shared / "appdeb").exists() and not list(tmp_path.glob("out/*.deb"))
    shared.chmod(0o755)
    os.chown(shared, 0, 0)
    sealed.check_owner(shared / "appdeb")  # root's own, not writable by others: fine
    sealed.check_owner(Path("/tmp/appdeb-not-made-yet/appdeb"))  # under sticky /tmp: fine


# hello's web module at import: gunicorn must come from its kept byte code, and every write is refused
KEPT = """
import gunicorn, os, subprocess
assert os.path.isfile(gunicorn.__cached__), 'gunicorn imported from source'
for target in (os.path.join(os.path.dirname(gunicorn.__file__), 'evil.py'), gunicorn.__cached__):
    try:
        open(target, 'w')
        raise SystemExit('wrote ' + target)
    except OSError:
        pass
if subprocess.run(['mount', '-o', 'remount,rw', os.path.dirname(os.path.dirname(gunicorn.__file__))]).returncode == 0:
    raise SystemExit('remounted')
"""


@pytest.mark.skipif(not sealed.can_seal(), reason="needs root and mount namespaces (CI runs as root)")
def test_the_import_at_build_time_reads_the_kept_byte_code_and_writes_nothing(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a build has kept the libraries' byte code, the interface check's import reads it (laid over the
    vendored tree, read-only) instead of compiling every library from source; it still writes nowhere."""
    from appdeb.build.bytecode import compiler
    from appdeb.build.targets import default_target

    if compiler(default_target()) is None:
        pytest.skip("no byte code ships from this builder (not the target's release)")
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    entry = private_cache(app, tmp_path, monkeypatch)
    build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))  # keeps the byte code
    with (app / "hello.py").open("a") as f:
        f.write(KEPT)
    payload = tmp_path / "cache" / "appdeb" / "payload"
    before, kept = snapshot(entry), snapshot(payload)
    result = build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH, build_number=2))
    assert not [w for w in result.warnings if "could not" in w], result.warnings  # KEPT's checks all held
    assert snapshot(entry) == before and snapshot(payload) == kept


# hello's web module at import, as an attacker: for a few seconds, append a mark to every byte code file
# of the package being built that it can find in the build's temporary directories
TAMPER = """
import glob, time
mark = bytes.fromhex('54414d50455245442d42592d494d504f5254')  # (not a constant the byte code would hold)
end = time.time() + 4
while time.time() < end:
    for path in glob.glob('/tmp/appdeb-*/**/*.pyc', recursive=True):
        try:
            with open(path, 'ab') as f:
                f.write(mark)
        except OSError:
            pass
    pass
"""


@pytest.mark.skipif(not sealed.can_seal(), reason="needs root and mount namespaces (CI runs as root)")
def test_the_import_at_build_time_cannot_poison_the_kept_byte_code(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The import runs beside the compiling of the byte code and can reach the build's temporary files: what
    it changes there must never reach the cache of kept byte code, so a later build of clean code ships none."""
    from appdeb.build.bytecode import compiler
    from appdeb.build.targets import default_target

    if compiler(default_target()) is None:
        pytest.skip("no byte code ships from this builder (not the target's release)")
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    clean = (app / "hello.py").read_text()
    private_cache(app, tmp_path, monkeypatch)
    (app / "hello.py").write_text(clean + TAMPER)
    build(app, BuildOptions(out_dir=tmp_path / "hostile", source_date_epoch=EPOCH))
    (app / "hello.py").write_text(clean)
    later = build(app, BuildOptions(out_dir=tmp_path / "clean", source_date_epoch=EPOCH, build_number=2))
    kept = [p for p in (tmp_path / "cache" / "appdeb" / "bytecode").rglob("*") if p.is_file()]
    assert kept and not [p for p in kept if b"TAMPERED-BY-IMPORT" in p.read_bytes()]
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(later.deb)], capture_output=True, check=True).stdout
    assert b".pyc" in fsys and b"TAMPERED-BY-IMPORT" not in fsys


def test_kept_byte_code_never_comes_from_the_builds_temporary_files(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The attacker above at its best moment, every time: the instant each compiling run ends, every byte code
    file it wrote outside appdeb's cache is rewritten. The cache, and a later build, hold none of it."""
    from appdeb.build import bytecode
    from appdeb.build.targets import default_target

    if bytecode.compiler(default_target()) is None:
        pytest.skip("no byte code ships from this builder (not the target's release)")
    monkeypatch.setenv("APPDEB_CACHE", str(tmp_path / "cache"))
    real_run = bytecode.run

    def tampering(argv: list[str], **kw: Any) -> Any:
        done = real_run(argv, **kw)
        for _, cfile, _ in json.loads(kw["input"]):
            if os.path.isfile(cfile) and not cfile.startswith(str(tmp_path / "cache")):
                with open(cfile, "ab") as f:
                    f.write(b"TAMPERED")
        return done
    monkeypatch.setattr(bytecode, "run", tampering)
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    build(app, BuildOptions(out_dir=tmp_path / "one", source_date_epoch=EPOCH))
    monkeypatch.setattr(bytecode, "run", real_run)
    later = build(app, BuildOptions(out_dir=tmp_path / "two", source_date_epoch=EPOCH, build_number=2))
    kept = [p for p in (tmp_path / "cache" / "bytecode").rglob("*.pyc")]
    assert kept and not [p for p in kept if p.read_bytes().endswith(b"TAMPERED")]
    fsys = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(later.deb)], capture_output=True, check=True).stdout
    assert b".pyc" in fsys and b"TAMPERED" not in fsys


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="root contains the import")
def test_nothing_the_import_starts_outlives_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child that leaves the import's session (setsid) would go on beside later builds: it ends with it."""
    app = tmp_path / "app"
    shutil.copytree(EXAMPLES / "hello", app)
    private_cache(app, tmp_path, monkeypatch)
    late = tmp_path / "still-running"
    with (app / "hello.py").open("a") as f:
        f.write(f"\nimport subprocess\n"
                f"subprocess.Popen(['sh', '-c', 'sleep 2; touch {late}'], start_new_session=True)\n")
    result = build(app, BuildOptions(out_dir=tmp_path / "out", source_date_epoch=EPOCH))
    assert result.deb.is_file() and not [w for w in result.warnings if "could not" in w]
    time.sleep(3)
    assert not late.exists()
