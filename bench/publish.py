#!/usr/bin/env python3
"""Time one publish into a repository that already holds ~200 package versions.

Usage: python3 bench/publish.py [--packages 40] [--versions 5]
Runs in a temporary directory (real aptly + gpg); prints seconds per phase. The
timed publish adds one new version, applies retention, snapshots and switches the
signed publish: exactly what `appdeb publish` does in steady state.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appdeb.repo import aptly, signing
from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.runner import run


def make_deb(outdir: Path, name: str, version: str) -> Path:
    """A minimal arch-all package (same shape as the integration tests')."""
    tree = outdir / f"tree-{name}-{version}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Bench <bench@example.invalid>\nDescription: benchmark package\n"
    )
    (tree / "usr" / "share" / name).mkdir(parents=True)
    (tree / "usr" / "share" / name / "payload").write_text(f"{name} {version}\n")
    out = outdir / f"{name}_{version}_all.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=40)
    parser.add_argument("--versions", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="appdeb-bench-") as tmp:
        work = Path(tmp)
        (work / "debs").mkdir()
        t0 = time.perf_counter()
        debs = [make_deb(work / "debs", f"app{p:03d}", f"1.0.{v}-1")
                for p in range(args.packages) for v in range(args.versions)]
        print(f"built {len(debs)} debs: {time.perf_counter() - t0:.2f}s")
        cfg = repoconfig.init_repo(work / "repo", keep=args.versions + 1, architectures=["amd64"])
        try:
            t0 = time.perf_counter()
            repo.publish(cfg, debs)
            print(f"initial publish of {len(debs)} versions: {time.perf_counter() - t0:.2f}s")
            extra = make_deb(work / "debs", "app000", f"1.0.{args.versions}-1")
            time.sleep(1.1)  # let the same-second guard pass, so only real work is timed
            t0 = time.perf_counter()
            result = repo.publish(cfg, [extra])
            elapsed = time.perf_counter() - t0
            held = len(aptly.list_packages(cfg))
            print(f"one more publish into {held - 1} versions ({result.snapshot}): {elapsed:.3f}s")
            t0 = time.perf_counter()
            repo.publish(cfg, [extra])
            print(f"no-op republish of the same file: {time.perf_counter() - t0:.3f}s")
        finally:
            signing.stop_agent(cfg.gnupg_home)


if __name__ == "__main__":
    main()
