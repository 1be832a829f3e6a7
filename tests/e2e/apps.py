"""Variants of the examples for end-to-end tests: copied into tmp dirs, changed, built with the real pipeline.

The lifecycle commands of `lifecycle_app` leave traces on the node that tests can check: every run of
`install` appends to STATE/install-runs (and writes STATE/data.txt), every `update` to STATE/update-runs;
`backup`/`restore` copy data.txt; `uninstall` prints a line. `install` fails while the flag file
/var/tmp/PKG.fail-install exists and `backup` while /var/tmp/PKG.fail-backup does, so tests can
inject failures into the maintainer scripts.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from appdeb.build.pipeline import BuildOptions, BuildResult, build
from appdeb.build.plan import default_port
from appdeb.node import harness as nodes

from ..conftest import EPOCH, EXAMPLES

LIFECYCLE_COMMANDS = {
    "install": 'if [ -e "/var/tmp/$APPDEB_PACKAGE.fail-install" ]; then echo "install: injected failure" >&2; '
               'exit 4; fi; echo "$APPDEB_VERSION" >> "$APPDEB_STATE_DIR/install-runs"; '
               'echo "data of $APPDEB_PACKAGE" > "$APPDEB_STATE_DIR/data.txt"',
    "update": 'echo "$APPDEB_FROM_VERSION -> $APPDEB_VERSION" >> "$APPDEB_STATE_DIR/update-runs"',
    "verify": 'python3 -c "import hello"',
    "backup": 'if [ -e "/var/tmp/$APPDEB_PACKAGE.fail-backup" ]; then echo "backup: injected failure" >&2; '
              'exit 5; fi; cp "$APPDEB_STATE_DIR/data.txt" "$APPDEB_BACKUP_DIR/data.txt"',
    "restore": 'cp "$APPDEB_BACKUP_DIR/data.txt" "$APPDEB_STATE_DIR/data.txt"',
    "uninstall": 'echo "uninstall ran for $APPDEB_PACKAGE"',
}
BROKEN_VERIFY = 'echo "verify says: the schema is from the future"; exit 3'


def lifecycle_app(dest: Path, *, version: str = "1.0.0", **commands: str) -> Path:
    """A copy of examples/hello with the given version and the lifecycle commands above (overridable)."""
    shutil.copytree(EXAMPLES / "hello", dest)
    spec = yaml.safe_load((dest / "app.yaml").read_text())
    spec["version"] = version
    spec["commands"] = {**spec.get("commands", {}), **LIFECYCLE_COMMANDS, **commands}
    (dest / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def build_app(app_dir: Path, out_dir: Path, instance: str, *, target: str = "debian-12",
              build_number: int = 1) -> BuildResult:
    """Build into a dir of its own: variants share package names and versions, so file names collide."""
    options = BuildOptions(instance=instance, build_number=build_number, out_dir=out_dir,
                           target=target, source_date_epoch=EPOCH)
    return build(app_dir, options)


def port_of(package: str) -> int:
    return default_port(package)  # the lifecycle apps configure no port: the package name decides


# ---- looking at a node -------------------------------------------------------------------------

def sh(node: nodes.Node, script: str, check: bool = True) -> str:
    """Run a shell snippet in the node; output (stdout+stderr) back, failing loudly if asked."""
    result = nodes.run_in(node, ["sh", "-c", script], timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"in node: {script}\nexit {result.returncode}:\n{result.stdout}")
    return result.stdout


def dpkg_status(node: nodes.Node, package: str) -> str:
    """dpkg's Status field ('install ok installed', …) or 'not-installed' when dpkg forgot the package."""
    result = nodes.run_in(node, ["dpkg-query", "-W", "-f=${Status}", package])
    status = result.stdout.strip()
    if result.returncode != 0 or status.endswith("not-installed"):
        return "not-installed"
    return status


def unit_state(node: nodes.Node, unit: str) -> tuple[str, str]:
    """(is-active, is-enabled) as systemctl in the node reports them."""
    active = nodes.run_in(node, ["systemctl", "is-active", unit]).stdout.strip()
    enabled = nodes.run_in(node, ["systemctl", "is-enabled", unit]).stdout.strip()
    return active, enabled


def http_get(port: int, timeout: float = 20.0, path: str = "/") -> str:
    """The body of GET path on 127.0.0.1:port, polling while the unit is still binding."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
                return str(resp.read().decode())
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def answers(port: int) -> bool:
    """True if anything answers HTTP on the port right now (no waiting)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def target_python_env(version: str) -> dict[str, str]:
    """Environment under which `pythonX.Y` runs here, for a build step of another target's python.

    commands.build runs with the libraries vendored for the target, so building polls for debian-13 on
    this Debian 12 machine needs a python3.13: on PATH, or a pyenv-installed one (its shim needs
    PYENV_VERSION). Nothing found is a failure, not a skip: the cross build is what is under test.
    """
    import subprocess

    exe = shutil.which(f"python{version}")
    if exe and subprocess.run([exe, "-c", ""], capture_output=True).returncode == 0:
        return {}
    pyenv = Path.home() / ".pyenv" / "versions"
    found = sorted(p.name for p in pyenv.glob(f"{version}.*") if (p / "bin" / f"python{version}").exists())
    assert found, f"python{version} is needed to run commands.build for its target (install it, or via pyenv)"
    return {"PYENV_VERSION": f"{found[-1]}:system"}
