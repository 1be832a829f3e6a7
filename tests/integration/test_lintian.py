"""Debian's own checker on every example package: no error and no warning beyond the overrides each
package ships (usr/share/lintian/overrides/PKG, a reason above every line)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import EXAMPLES, build_example

pytestmark = pytest.mark.integration

EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "app.yaml").is_file())


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_example_package_is_lintian_clean(example: str, dist: Path) -> None:
    if shutil.which("lintian") is None:  # part of the test set-up: missing, it fails rather than skips
        pytest.fail("lintian is not installed; run scripts/install-host-deps.sh")
    deb = build_example(example, dist).deb  # the session's build where a fixture made it already
    # --fail-on none: shown overrides would count as failures; the E:/W: lines are checked instead
    proc = subprocess.run(["lintian", "--tag-display-limit", "0", "--show-overrides", "--fail-on", "none", str(deb)],
                          capture_output=True, text=True, timeout=900)
    lines = proc.stdout.splitlines()
    complaints = [ln for ln in lines if ln.startswith(("E:", "W:"))]
    assert complaints == [], "\n".join(complaints)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    overridden = {ln.split()[2] for ln in lines if ln.startswith("O:")}
    assert "dir-or-file-in-opt" in overridden  # the shipped overrides file was read, not ignored
