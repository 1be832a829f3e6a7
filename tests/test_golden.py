"""Golden files for the rendered control area, units and launcher (refresh: pytest --update-golden)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appdeb.build.plan import BuildPlan, make_plan, with_vendor
from appdeb.build.render import render
from appdeb.build.validate import load_spec

from .conftest import EPOCH, EXAMPLES

GOLDEN = Path(__file__).parent / "golden"
# Shipped Python (the runtime, the service plug-ins) is tested as code; the gzip is binary.
SKIP = ("run.py", "changelog.Debian.gz")


def plan(example: str, instance: str | None, target: str = "debian-12") -> BuildPlan:
    p = make_plan(load_spec(EXAMPLES / example), instance=instance, target=target, source_date_epoch=EPOCH)
    binary = {"flaskapp": ("markupsafe==3.0.0",), "polls": ("psycopg2-binary==2.9.10",),
              "chat": ("psycopg2-binary==2.9.13", "pydantic-core==2.50.5", "websockets==17.4")}.get(example, ())
    return with_vendor(p, binary_dists=binary, vendored=binary, glibc="2.17" if binary else "")


@pytest.mark.parametrize(("example", "instance", "target"), [
    ("hello", None, "debian-12"), ("flaskapp", "staging", "debian-12"), ("chat", "prod", "debian-12"),
    ("polls", "prod", "debian-13"),  # trixie: python 3.13 floors, PostgreSQL 17, cp313 wheels
])
def test_rendered_tree_matches_golden(example: str, instance: str | None, target: str, update_golden: bool) -> None:
    files = render(plan(example, instance, target))
    root = GOLDEN / f"{example}-{instance or 'default'}{'' if target == 'debian-12' else '-' + target}"
    rendered = {path: f.content for path, f in files.items()
                if not path.endswith(SKIP) and "/appdeb_services/" not in path and "/appdeb_runtime/" not in path}
    if update_golden:
        for path, content in rendered.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(content)
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert on_disk == set(rendered), "file set changed; run pytest --update-golden and review the diff"
    for path, content in rendered.items():
        assert (root / path).read_bytes() == content, f"{path} differs from golden; --update-golden to accept"
