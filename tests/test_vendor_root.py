"""Vendoring runs as root: it installs wheels and runs nothing of the app's, and reads no configuration of the app's.

The attacker is the app's checkout. A requirement that passes validation (a name, with a find-links
directory inside the app) may still resolve to an sdist, whose build backend would run as root: the
installer is told to build nothing (--no-build). And uv reads a uv.toml or [tool.uv] from its working
directory, the app: one naming an index or find-links outside the app would feed root's files into the
package; uv is given the machine's configuration instead (vendor.uv_config).
"""

from __future__ import annotations

import io
import secrets
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from appdeb.build.installers import uv_config
from appdeb.build.vendor import installer, vendor
from appdeb.errors import AppdebError

from .hostile import appdeb, make_app

pytestmark = pytest.mark.skipif(installer()[0] != "uv", reason="needs uv, the default vendoring tool")
BACKEND = '''
import os
open(os.environ.get("MARKER_DIR", "/tmp") + "/built-as-" + str(os.getuid()), "w").close()
def get_requires_for_build_wheel(config_settings=None): return []
def prepare_metadata_for_build_wheel(*args, **kwargs): raise SystemExit(1)
def build_wheel(*args, **kwargs): raise SystemExit(1)
'''


def _sdist(where: Path, name: str, marker: Path) -> None:
    """An sdist whose build backend, if anything ran it, leaves a file in `marker`."""
    files = {"pyproject.toml": f'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
                               f'[project]\nname = "{name}"\nversion = "1.0"\n',
             "backend.py": BACKEND.replace('os.environ.get("MARKER_DIR", "/tmp")', repr(str(marker))),
             "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"}
    with tarfile.open(where / f"{name.replace('-', '_')}-1.0.tar.gz", "w:gz") as tar:
        for rel, text in files.items():
            info = tarfile.TarInfo(f"{name.replace('-', '_')}-1.0/{rel}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))


def _wheel(where: Path, name: str, secret: str) -> None:
    dist = name.replace("-", "_")
    with zipfile.ZipFile(where / f"{dist}-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{dist}/__init__.py", f"SECRET = {secret!r}\n")
        whl.writestr(f"{dist}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        whl.writestr(f"{dist}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}-1.0.dist-info/RECORD", "")


def test_an_sdist_found_for_a_name_is_never_built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Validation lets a name with a find-links directory in the app pass; what the installer finds there
    is an sdist only: the build fails, and its backend never ran."""
    marker = tmp_path / "marker"
    marker.mkdir()
    # an absolute path (in the app): uv takes no relative find-links in requirements, and would not get this far
    found = tmp_path / "app" / "sdists"
    app = make_app(tmp_path, {"require.pip": [f"--find-links {found}", "appdeb-test-sdist-only-4f2c==1.0"]})
    (app / "sdists").mkdir()
    _sdist(app / "sdists", "appdeb-test-sdist-only-4f2c", marker)
    assert appdeb(capsys, "check", app)[0] == 0  # a name and a directory in the app: nothing to refuse here
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert code == 1 and "could not install the Python requirements" in err and "Traceback" not in err, err
    assert list(marker.iterdir()) == []
    assert not list(tmp_path.glob("dist/*.deb"))


def test_the_installer_builds_nothing_it_is_given(tmp_path: Path) -> None:
    """Below validation (which refuses local directories): vendoring itself, given one, runs no backend."""
    marker = tmp_path / "marker"
    marker.mkdir()
    (tmp_path / "sdists").mkdir()
    _sdist(tmp_path / "sdists", "appdeb-test-local-7c1b", marker)
    with tarfile.open(next((tmp_path / "sdists").iterdir())) as tar:
        tar.extractall(tmp_path / "src", filter="data")
    local = next((tmp_path / "src").iterdir())
    with pytest.raises(AppdebError, match="could not install the Python requirements"):
        vendor((str(local),), "{}.{}".format(*sys.version_info[:2]), tmp_path)
    assert list(marker.iterdir()) == []


def test_the_apps_uv_configuration_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    name = f"appdeb-test-outside-{secrets.token_hex(4)}"  # no earlier build's cached tree answers for it
    _wheel(outside, name, "root's file outside the app")
    app = make_app(tmp_path, {"require.pip": [f"{name}==1.0"]})
    (app / "uv.toml").write_text(f'find-links = ["{outside}"]\n')
    (app / "pyproject.toml").write_text(f'[tool.uv]\nfind-links = ["{outside}"]\n')
    code, _, err = appdeb(capsys, "build", app, "--out", tmp_path / "dist")
    assert code == 1 and name in err and "Traceback" not in err, err
    assert not list(tmp_path.glob("dist/*.deb"))


def test_uv_is_given_the_machines_configuration_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UV_CONFIG_FILE", "UV_NO_CONFIG", "XDG_CONFIG_DIRS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    expected = ["--no-config"] if not Path("/etc/uv/uv.toml").is_file() else ["--config-file", "/etc/uv/uv.toml"]
    assert uv_config() == expected
    (tmp_path / "user" / "uv").mkdir(parents=True)
    (tmp_path / "user" / "uv" / "uv.toml").write_text("")
    assert uv_config() == ["--config-file", str(tmp_path / "user" / "uv" / "uv.toml")]
    monkeypatch.setenv("UV_CONFIG_FILE", str(tmp_path / "chosen.toml"))
    assert uv_config() == []
