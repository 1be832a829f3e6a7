"""Benchmark: appdeb build against the "limit" pipeline, side by side, as ratios (interleaved rounds).

limit = `uv pip install --target` (hard links from uv's warm cache, --offline once warm) into a staging
tree + the app copied beside it + md5sums + `dpkg-deb -Zzstd --build`: the least work any tool must do
to produce the same package from the same requirements. Two apps: examples/flaskapp (small) and
bench/bigapp (numpy, pandas, Django: ~10,000 files vendored). For each: a warm build (new version, caches
warm), a build after changing one app file, a no-change rebuild, and the limit pipeline, in turn so
machine drift cancels out; prints medians and ratios. BENCH_ROUNDS (default 5), BENCH_APPS (flaskapp,bigapp).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = {"flaskapp": ROOT / "examples" / "flaskapp", "bigapp": ROOT / "bench" / "bigapp"}
CHANGED = {"flaskapp": "src/notes/web.py", "bigapp": "src/bigapp/web.py"}
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
UV = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def appdeb(app: Path, out: Path, build: int) -> list[str]:
    return [sys.executable, "-m", "appdeb.cli", "build", str(app), "--instance", "bench", "--out", str(out),
            "--build-number", str(build)]


def limit_pipeline(app: Path, work: Path, uv_cache: Path, offline: bool) -> float:
    """uv into a staging tree, the app beside it, md5sums and a control file, dpkg-deb with zstd."""
    shutil.rmtree(work, ignore_errors=True)
    stage = work / "pkg"
    start = time.perf_counter()
    lib = stage / "opt" / "bench" / "lib"
    reqs = [line for line in (app / "requirements.txt").read_text().split("\n") if line and not line.startswith("#")]
    if not any(r.startswith("gunicorn") for r in reqs):
        reqs.append("gunicorn>=23,<28")
    work.mkdir(parents=True)
    (work / "req.txt").write_text("\n".join(reqs))
    subprocess.run([UV, "pip", "install", "-q", "--target", str(lib), "--python", sys.executable, "--link-mode",
                    "hardlink", "--no-compile", "--cache-dir", str(uv_cache), *(["--offline"] if offline else []),
                    "-r", str(work / "req.txt")], check=True)
    shutil.copytree(app, stage / "opt" / "bench" / "app")
    (stage / "DEBIAN").mkdir()
    sums = []
    for dirpath, _, filenames in os.walk(stage):
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink() and "DEBIAN" not in path.parts:
                sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(stage)}\n")
    (stage / "DEBIAN" / "md5sums").write_text("".join(sorted(sums)))
    (stage / "DEBIAN" / "control").write_text(
        "Package: bench\nVersion: 1.0-1\nArchitecture: amd64\nMaintainer: b <b@example.org>\nDescription: bench\n")
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(stage), str(work / "x.deb")],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    return time.perf_counter() - start


def bench(name: str, t: Path) -> None:
    app = t / name
    shutil.copytree(APPS[name], app)  # a copy: one of its files changes every round
    out, uv_cache = t / f"dist-{name}", t / "uv-cache"
    subprocess.run(appdeb(app, out, 1), check=True, stdout=subprocess.DEVNULL)  # warm appdeb's caches
    limit_pipeline(app, t / "limit", uv_cache, offline=False)  # warm uv's cache for the limit pipeline
    runs: dict[str, list[float]] = {"warm": [], "changed": [], "nochange": [], "limit": []}
    for i in range(ROUNDS):
        runs["warm"].append(timed(appdeb(app, out, 100 + i)))  # a new version: a real build, warm caches
        runs["nochange"].append(timed(appdeb(app, out, 100 + i)))  # same inputs again: must reuse
        with (app / CHANGED[name]).open("a") as f:
            f.write(f"# round {i}\n")
        runs["changed"].append(timed(appdeb(app, out, 100 + i)))  # one app file changed
        runs["limit"].append(limit_pipeline(app, t / "limit", uv_cache, offline=True))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"{name}: {ROUNDS} rounds (medians; each appdeb run includes python start-up)")
    print(f"  limit pipeline (uv --target --offline, md5sums, dpkg-deb -Zzstd): {med['limit']:.3f} s")
    print(f"  appdeb build, warm caches:         {med['warm']:.3f} s  ratio {med['warm'] / med['limit']:.2f}")
    print(f"  appdeb build, one app file changed: {med['changed']:.3f} s  ratio {med['changed'] / med['limit']:.2f}")
    print(f"  appdeb build, no change:            {med['nochange']:.3f} s")


def main() -> None:
    names = os.environ.get("BENCH_APPS", "flaskapp,bigapp").split(",")
    with tempfile.TemporaryDirectory(prefix="appdeb-bench-") as tmp:
        t = Path(tmp)
        os.environ["APPDEB_CACHE"] = str(t / "appdeb-cache")  # a private cache this run can empty
        os.environ.pop("SOURCE_DATE_EPOCH", None)  # the app's newest file decides, as by default
        # appdeb's own modules load from their byte code, as where it is installed (a shell that sets
        # this would make every run compile them from source: ~0.13 s that no user pays)
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        for name in names:
            bench(name, t)


if __name__ == "__main__":
    main()
