#!/usr/bin/env python3
"""Time `appdeb publish` into a repository of ~1,000 versions against plain aptly, and publishes in a row.

Usage: python3 bench/publish.py [--packages 200] [--versions 5] [--rounds 7] [--burst 10] [--fresh]
                                [--cache DIR]

Real aptly + gpg. The repositories (an appdeb root, and a plain aptly root of the same
shape signed with the same key) are generated once and cached in the system temp dir
(appdeb-bench-publish-P×V); every run works on a copy. Then, in interleaved rounds:

- appdeb: `publish.publish()` (what `appdeb publish` runs) of one new version — ledger
  check, add, retention (drops one version), snapshot, signed switch, history;
- command: the same as the `appdeb publish` command (adds Python's start and imports);
- plain: `aptly repo add` of one new version + signed `aptly publish update`, as a user would run
  them: aptly's own defaults (Go's collector untuned, the public pool cleaned by every update).

Medians and their ratios are printed, then `--burst` publishes in a row (publishes per
second: nothing waits for a new wall-clock second any more), and as many plain aptly
ones for comparison: what aptly itself manages on this machine.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appdeb.repo import config as repoconfig
from appdeb.repo import publish as repo
from appdeb.repo import signing
from appdeb.repo.aptly import rebase_by_hash_links
from appdeb.runner import run


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(outdir: Path, name: str, version: str) -> Path:
    """A minimal arch-all .deb written directly (ar + two tarballs): 1,000 of them in about a second."""
    control = (f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
               "Maintainer: Bench <bench@example.invalid>\nDescription: benchmark package\n").encode()
    members = [("debian-binary", b"2.0\n"), ("control.tar.gz", _tar_gz({"./control": control})),
               ("data.tar.gz", _tar_gz({f"./usr/share/{name}/payload": f"{name} {version}\n".encode()}))]
    out = outdir / f"{name}_{version}_all.deb"
    with out.open("wb") as fh:
        fh.write(b"!<arch>\n")
        for member, data in members:
            fh.write(f"{member:<16}{1_700_000_000:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode())
            fh.write(data + (b"\n" if len(data) % 2 else b""))
    return out


def _plain(plain: Path, cfg: repoconfig.RepoConfig, *args: str) -> None:
    """aptly on the plain root, with the appdeb root's key (the same signing cost)."""
    run(["aptly", f"-config={plain / 'aptly.conf'}", *args], env=signing.gnupg_env(cfg.gnupg_home))


def _plain_root(plain: Path, cfg: repoconfig.RepoConfig) -> None:
    """(Re)write the plain root's aptly.conf: the appdeb root's settings, rootDir here."""
    conf = cfg.conf.read_text().replace(f'"{cfg.root}"', f'"{plain}"')
    (plain / "aptly.conf").write_text(conf)


def build_cache(cache: Path, packages: int, versions: int) -> None:
    """Generate the debs, publish them into an appdeb root and, identically signed, a plain aptly root."""
    shutil.rmtree(cache, ignore_errors=True)
    (cache / "debs").mkdir(parents=True)
    t0 = time.perf_counter()
    debs = [make_deb(cache / "debs", f"app{p:03d}", f"1.0.{v}-1") for p in range(packages) for v in range(versions)]
    (cache / "later").mkdir()
    cfg = repoconfig.init_repo(cache / "appdeb", keep=versions, architectures=["amd64"])
    try:
        repo.publish(cfg, debs)
        for i in range(cfg.keep_snapshots):  # steady state: every later publish drops a snapshot
            repo.publish(cfg, [make_deb(cache / "later", f"app{packages - 1:03d}", f"1.1.{i}-1")])
        (cache / "plain").mkdir()
        _plain_root(cache / "plain", cfg)
        _plain(cache / "plain", cfg, "repo", "create", "-distribution=bookworm", "-component=main", "plain")
        _plain(cache / "plain", cfg, "repo", "add", "plain", str(cache / "debs"))
        _plain(cache / "plain", cfg, "publish", "repo", f"-gpg-key={cfg.key}", "-batch", "-acquire-by-hash",
               "-origin=appdeb", "-label=appdeb", "plain", ".")
    finally:
        signing.stop_agent(cfg.gnupg_home)
    (cache / "ready").write_text(f"{packages} {versions}\n")
    print(f"generated {len(debs)} versions in {cache}: {time.perf_counter() - t0:.1f}s")


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _report(name: str, times: list[float]) -> float:
    med = statistics.median(times)
    print(f"{name:<8} median {med * 1000:7.1f} ms  (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}, "
          f"n={len(times)})")
    return med


def _cli_publish(cfg: repoconfig.RepoConfig, deb: Path) -> None:
    """`appdeb publish` as a command: the same publish plus Python's start and appdeb's imports."""
    run([sys.executable, "-m", "appdeb.cli", "publish", "--root", str(cfg.root), str(deb)],
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)})


def plain_publish(work: Path, cfg: repoconfig.RepoConfig, deb: Path) -> None:
    """The plain aptly way: add the .deb to the local repo, update the signed publish."""
    _plain(work / "plain", cfg, "repo", "add", "plain", str(deb))
    _plain(work / "plain", cfg, "publish", "update", f"-gpg-key={cfg.key}", "-batch", "bookworm", ".")


def compare(work: Path, cfg: repoconfig.RepoConfig, rounds: int) -> None:
    """Interleaved rounds (the order rotates): appdeb publish in-process, `appdeb publish`, plain aptly."""
    series: dict[str, list[float]] = {"appdeb": [], "command": [], "plain": []}
    repo.publish(cfg, [make_deb(work / "new", "app002", "2.0.0-1")])  # untimed: gpg-agent starts, links are
    plain_publish(work, cfg, make_deb(work / "new-plain", "app002", "2.0.0-1"))  # rebased after the copy
    for i in range(rounds):
        ours, cli, other = (make_deb(work / sub, "app000", f"2.{i}.{n}-1")
                            for n, sub in enumerate(("new", "new", "new-plain")))

        steps: list[tuple[str, Callable[[], object]]] = [
            ("appdeb", lambda deb=ours: repo.publish(cfg, [deb])),
            ("command", lambda deb=cli: _cli_publish(cfg, deb)),
            ("plain", lambda deb=other: plain_publish(work, cfg, deb)),
        ]
        for name, fn in steps[i % 3:] + steps[:i % 3]:
            series[name].append(_timed(fn))
    medians = {name: _report(name, times) for name, times in series.items()}
    print(f"ratio to plain (medians): appdeb {medians['appdeb'] / medians['plain']:.2f}x, "
          f"`appdeb publish` {medians['command'] / medians['plain']:.2f}x")


def _cpu() -> float:
    """CPU seconds of this process and its finished children (aptly, gpg): what a publish costs the
    machine, which other jobs' load does not stretch as it does the wall clock."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def burst(work: Path, cfg: repoconfig.RepoConfig, count: int) -> None:
    """`count` publishes in a row, each adding one new version (publishes per second); plain aptly the same."""
    for name, sub, publish in (("appdeb", "new", lambda deb: repo.publish(cfg, [deb])),
                               ("plain", "new-plain", lambda deb: plain_publish(work, cfg, deb))):
        debs = [make_deb(work / sub, "app001", f"3.{i}.0-1") for i in range(count)]
        cpu = _cpu()
        times = [_timed(lambda deb=deb, publish=publish: publish(deb)) for deb in debs]
        cpu = _cpu() - cpu
        print(f"{count} publishes in a row, {name}: {sum(times):.2f}s, {count / sum(times):.1f} publishes/s "
              f"(median {statistics.median(times) * 1000:.0f} ms; CPU {cpu / count * 1000:.0f} ms each, "
              f"{count / cpu:.1f} publishes per CPU second)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--packages", type=int, default=200, help="packages in the repository")
    parser.add_argument("--versions", type=int, default=5, help="versions of each (also --keep)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved appdeb/plain rounds")
    parser.add_argument("--burst", type=int, default=10, help="publishes in a row")
    parser.add_argument("--fresh", action="store_true", help="regenerate the cached repositories")
    parser.add_argument("--cache", type=Path, help="where to cache them (default: in the temp dir)")
    args = parser.parse_args()
    cache = args.cache or Path(tempfile.gettempdir()) / f"appdeb-bench-publish-{args.packages}x{args.versions}"
    if args.fresh or not (cache / "ready").exists():
        build_cache(cache, args.packages, args.versions)
    with tempfile.TemporaryDirectory(prefix="appdeb-bench-") as tmp:
        work = Path(tmp)
        for part in ("appdeb", "plain"):
            run(["cp", "-a", str(cache / part), str(work / part)])  # -a keeps aptly's pool hard links
        (work / "new").mkdir()
        (work / "new-plain").mkdir()
        cfg = repoconfig.open_repo(work / "appdeb")  # re-derives aptly.conf for the copy
        _plain_root(work / "plain", cfg)
        rebase_by_hash_links(work / "plain" / "public", "bookworm")  # else aptly deletes the cache's files
        try:
            print(f"repository of {args.packages * args.versions} versions (keep {args.versions}); "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            compare(work, cfg, args.rounds)
            burst(work, cfg, args.burst)
            print(f"load average afterwards {os.getloadavg()[0]:.1f}")
        finally:
            signing.stop_agent(cfg.gnupg_home)


if __name__ == "__main__":
    main()
