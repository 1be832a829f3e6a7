"""Shipped byte code on a node: installed as dpkg unpacked it (nothing compiled, nothing rewritten),
and an upgrade runs the new release's code even where byte code of an earlier release, compiled in
place, would pass Python's timestamp check (same mtime and size: reproducible builds). Instances bc*."""

from __future__ import annotations

from pathlib import Path

import pytest

from appdeb.build.pipeline import BuildResult
from appdeb.node import harness as nodes

from .apps import build_app, lifecycle_app, sh

pytestmark = pytest.mark.e2e

# Byte code as an older release's postinst compiled it: timestamp-checked, of the old source
# ('WORD = "ALPHA"'), recording the mtime and size that the new source has too.
STALE = """\
import os, py_compile
source = "{root}/app/real_linked.py"
os.makedirs("/var/tmp/stale", exist_ok=True)
with open("/var/tmp/stale/linked.py", "w") as f:
    f.write('WORD = "ALPHA"\\n')
mtime = os.stat(source).st_mtime
os.utime("/var/tmp/stale/linked.py", (mtime, mtime))
py_compile.compile("/var/tmp/stale/linked.py", cfile="{root}/app/__pycache__/linked.cpython-311.pyc",
                   invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP, doraise=True)
"""


def release(tmp: Path, version: str, word: str) -> BuildResult:
    """examples/hello with a module reached through a symbolic link (such a source ships no byte code)."""
    app = lifecycle_app(tmp / version, version=version)
    (app / "real_linked.py").write_text(f'WORD = "{word}"\n')
    (app / "linked.py").symlink_to("real_linked.py")
    return build_app(app, tmp / f"debs-{version}", "bc1")


def test_shipped_byte_code_is_installed_as_is_and_earlier_byte_code_goes(node: nodes.Node, tmp_path: Path) -> None:
    v1, v2 = release(tmp_path, "1.0.0", "ALPHA"), release(tmp_path, "2.0.0", "OMEGA")
    pkg, root = v1.package, f"/opt/{v1.package}"
    nodes.install(node, [v1.deb])
    shipped = f"{root}/app/__pycache__/real_linked.cpython-311.pyc"
    assert sh(node, f"dpkg -S {shipped}").startswith(f"{pkg}: ")  # dpkg's file, not compiled on the node
    assert sh(node, f"dpkg --verify {pkg}") == ""  # postinst rewrote and removed none of the package's files
    assert sh(node, f"{pkg} run python3 -c 'import linked; print(linked.WORD)'").strip() == "ALPHA"

    path = nodes.copy_in(node, v2.deb, "/var/tmp/bc")
    sh(node, f"dpkg --unpack {path}")  # the upgrade's first half: v2's files, v1's byte code dropped by its prerm
    nodes.run_in(node, ["python3", "-c", STALE.format(root=root)], check=True)
    ask = f"import sys; sys.path.insert(0, '{root}/app'); import linked; print(linked.WORD)"
    # what the stale byte code would do: Python's timestamp check takes it for the new source's
    assert sh(node, f'runuser -u nobody -- python3 -B -c "{ask}"').strip() == "ALPHA"

    sh(node, f"dpkg --configure {pkg}")
    assert sh(node, f"{pkg} run python3 -c 'import linked; print(linked.WORD)'").strip() == "OMEGA"
    assert sh(node, f"test -e {root}/app/__pycache__/linked.cpython-311.pyc && echo kept || echo gone").strip() \
        == "gone"
    assert sh(node, f"dpkg --verify {pkg}") == ""  # v2's own byte code is all there, untouched
