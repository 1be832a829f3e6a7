"""Planning: versions that sort, and the one naming rule that keeps instances apart."""

from __future__ import annotations

import dataclasses
import random
import string

import pytest
from debian.debian_support import Version

from appdeb.build.plan import debian_version, make_plan
from appdeb.build.validate import load_spec
from appdeb.errors import AppdebError

from .conftest import EXAMPLES


def plan_for(instance: str | None, **kw: object):  # type: ignore[no-untyped-def]
    spec = load_spec(EXAMPLES / "flaskapp")
    return make_plan(spec, instance=instance, python_version="3.11", source_date_epoch=0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("app", "build", "expected"), [
    ("1.0", 1, "1.0-1"), ("1.0rc1", 2, "1.0~rc1-2"), ("2.0.dev3", 1, "2.0~dev3-1"), ("1.0.post1", 1, "1.0+post1-1"),
])
def test_debian_version(app: str, build: int, expected: str) -> None:
    assert debian_version(app, build)[1] == expected


def test_versions_sort_by_release_then_build() -> None:
    ordered = [("1.0rc1", 5), ("1.0", 1), ("1.0", 2), ("1.0", 10), ("1.0.post1", 1), ("1.1", 1)]
    versions = [Version(debian_version(v, b)[1]) for v, b in ordered]
    assert versions == sorted(versions)


def test_higher_build_always_sorts_higher_whatever_the_vcs_id() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        build = rnd.randint(0, 10_000)
        a = debian_version("3.2.1", build, "g" + "".join(rnd.choices(string.hexdigits, k=8)))[1]
        b = debian_version("3.2.1", build + rnd.randint(1, 50), "g" + "".join(rnd.choices(string.hexdigits, k=8)))[1]
        assert Version(a) < Version(b), (a, b)


def test_instance_naming() -> None:
    plan = plan_for("staging")
    assert (plan.package, plan.user, plan.port) == ("notes-staging", "notes-staging", 8101)
    assert plan.paths.root == "/opt/notes-staging" and plan.paths.settings == "/etc/notes-staging/settings.env"
    assert [u.name for u in plan.units] == ["notes-staging.socket", "notes-staging-nginx.socket",
                                            "notes-staging.service", "notes-staging-worker.service",
                                            "notes-staging-tidy.service", "notes-staging-tidy.timer"]
    assert plan_for(None).package == "notes"
    site_socket = next(u for u in plan.units if u.name == "notes-staging-nginx.socket")
    assert (site_socket.kind, site_socket.target, site_socket.path) == (
        "socket", "notes-staging.service", "/run/appdeb/notes-staging/web.sock") == (
        "socket", "notes-staging.service", plan.paths.web_socket)


def _owned(plan) -> set[str]:  # type: ignore[no-untyped-def]
    paths = {v for v in dataclasses.asdict(plan.paths).values() if v not in ("/lib/systemd/system", None)}
    return paths | {f"{plan.paths.unit_dir}/{u.name}" for u in plan.units} | {f"user:{plan.user}",
                                                                               f"port:{plan.port}"}


def test_two_instances_share_nothing_property() -> None:
    rnd = random.Random(1)
    names = {"".join(rnd.choices(string.ascii_lowercase, k=rnd.randint(1, 10))) for _ in range(60)}
    plans = [plan_for(n) for n in sorted(names)] + [plan_for(None)]
    for i, a in enumerate(plans):
        for b in plans[i + 1:]:
            clash = {x for x in _owned(a) & _owned(b) if not x.startswith("port:")}
            assert not clash, (a.package, b.package, clash)
            for pa in _owned(a):
                for pb in _owned(b):
                    if not pa.startswith(("user:", "port:")):
                        assert not pb.startswith(pa + "/") and not pa.startswith(pb + "/"), (pa, pb)


def test_python_requirement_is_enforced() -> None:
    spec = load_spec(EXAMPLES / "flaskapp")
    spec = dataclasses.replace(spec, require=dataclasses.replace(spec.require, python=">=3.12"))
    with pytest.raises(AppdebError, match=r"requires python >=3\.12, but the build targets python 3\.11"):
        make_plan(spec, target="debian-12", source_date_epoch=0)
    assert make_plan(spec, target="debian-13", source_date_epoch=0).python_version == "3.13"


def test_a_python_no_target_has_is_refused() -> None:
    with pytest.raises(AppdebError, match=r"no target has python 3\.10"):
        make_plan(load_spec(EXAMPLES / "flaskapp"), python_version="3.10", source_date_epoch=0)


def test_bad_compression() -> None:
    with pytest.raises(AppdebError, match="unknown compression"):
        plan_for(None, compression="lzma")
