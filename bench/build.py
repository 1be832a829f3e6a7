"""Benchmark: appdeb build of examples/flaskapp against the "limit" pipeline, side by side, as ratios.

limit = `uv pip install --target` (warm cache) into a staging tree + copy the app + `dpkg-deb -Zzstd --build`,
the least work any tool must do to produce the same package from the same requirements.
Runs A/B pairs in turn so machine drift cancels out; prints medians and ratios.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "flaskapp"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def timed(argv: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def appdeb(out: Path, build: int) -> list[str]:
    return [sys.executable, "-m", "appdeb.cli", "build", str(APP), "--instance", "bench", "--out", str(out),
            "--build-number", str(build)]


def limit_pipeline(work: Path, uv_cache: Path) -> float:
    """uv into a staging tree, the app beside it, a control file, dpkg-deb with zstd."""
    shutil.rmtree(work, ignore_errors=True)
    stage = work / "pkg"
    start = time.perf_counter()
    lib = stage / "opt" / "notes-bench" / "lib"
    reqs = [*(APP / "requirements.txt").read_text().split("\n"), "gunicorn>=22,<24"]
    (work).mkdir(parents=True)
    (work / "req.txt").write_text("\n".join(r for r in reqs if r and not r.startswith("#")))
    subprocess.run([shutil.which("uv") or str(Path(sys.executable).with_name("uv")), "pip", "install", "-q",
                    "--target", str(lib), "--python", sys.executable, "--link-mode", "copy", "--no-compile",
                    "--cache-dir", str(uv_cache), "-r", str(work / "req.txt")], check=True)
    shutil.copytree(APP, stage / "opt" / "notes-bench" / "app")
    (stage / "DEBIAN").mkdir()
    (stage / "DEBIAN" / "control").write_text(
        "Package: notes-bench\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: b <b@example.org>\n"
        "Description: bench\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(stage), str(work / "x.deb")],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="appdeb-bench-") as tmp:
        t = Path(tmp)
        os.environ["APPDEB_CACHE"] = str(t / "appdeb-cache")  # a private cache this run can empty
        uv_cache = t / "uv-cache"
        out = t / "dist"
        subprocess.run(appdeb(out, 1), check=True, stdout=subprocess.DEVNULL)  # warm appdeb's caches
        limit_pipeline(t / "limit", uv_cache)  # warm uv's cache for the limit pipeline
        warm, revendor, nochange, limit = [], [], [], []
        for i in range(ROUNDS):
            warm.append(timed(appdeb(out, 100 + i)))  # a new version each time: a real build, warm caches
            nochange.append(timed(appdeb(out, 100 + i)))  # same inputs again: must reuse
            shutil.rmtree(t / "appdeb-cache" / "vendor")  # like for like with the limit: uv runs again
            revendor.append(timed(appdeb(out, 200 + i)))
            limit.append(limit_pipeline(t / "limit", uv_cache))
        med = {k: statistics.median(v) for k, v in (("warm", warm), ("revendor", revendor),
                                                    ("nochange", nochange), ("limit", limit))}
        print(f"rounds: {ROUNDS} (medians; each appdeb run includes python start-up)")
        print(f"limit pipeline (uv --target + dpkg-deb -Zzstd):  {med['limit']:.3f} s")
        print(f"appdeb build, warm cache:                        {med['warm']:.3f} s")
        print(f"appdeb build, vendored tree rebuilt (uv warm):   {med['revendor']:.3f} s")
        print(f"appdeb build, no change:                         {med['nochange']:.3f} s")
        print(f"ratio warm / limit:     {med['warm'] / med['limit']:.2f}  (target <= 1.5)")
        print(f"ratio re-vendor / limit: {med['revendor'] / med['limit']:.2f}  (uv runs in both)")
        print(f"no-change rebuild:      {med['nochange']:.3f} s  (target <= 0.5 s)")


if __name__ == "__main__":
    main()
