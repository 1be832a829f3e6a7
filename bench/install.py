#!/usr/bin/env python3
"""Time `dpkg -i` until the first HTTP 200 on a node, for examples/flaskapp (or --big: bench/bigapp, on
numpy, pandas and Django), before and after a change, in interleaved rounds.

Usage: python3 bench/install.py [--rounds 7] [--baseline REF] [--big] [--unchecked] [--instance bench]
                                [--disk image|host]

Variants, each built once: "after" (appdeb from this tree), "postinst-compile" (the same package
without its byte code: what a build where the interpreter rule does not hold makes, so postinst
compiles), with --unchecked "unchecked-hash" (the shipped byte code flagged unchecked-hash), and with
--baseline REF "before" (appdeb from that git commit). One host-network node (appdeb.node.harness)
gets the packages' dependencies once (apt, untimed); then every round installs each variant with
`dpkg -i` (the .deb copied in beforehand), polls 127.0.0.1:PORT from the host until it answers 200,
and purges it again (untimed). Prints every sample, the medians and the ratios to the first variant.

Two rows say what writing the files costs, whatever writes them: "unsafe-io" is "after" installed
with `dpkg --force-unsafe-io -i` (an administrator's dpkg option: no fsync per file), and "files"
is only `tar -x` of the package's data part into a scratch directory of the node, then `sync`
(no dpkg, no service: the least any package format that puts these files on disk pays).

--disk image (the default) keeps the node on an ext4 file system made for the run (a sparse image,
loop-mounted, mkfs.ext4's defaults: with a journal, as a Debian server's root), because the
host's own may not be like a server's: ext4 without a journal (this development machine's) scans
every inode deleted in the last 30 s before it reuses one, so an install right after the purge of
~8,000 files spends seconds of CPU in the kernel, and its fsync costs no journal commit.
--disk host keeps the node where the harness puts it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appdeb.errors import AppdebError  # noqa: E402
from appdeb.node import harness  # noqa: E402
from appdeb.runner import run  # noqa: E402


@dataclass
class Variant:
    """One package to time: its name in the table, the .deb on the host, its path in the node, samples."""

    name: str
    deb: Path
    dpkg_options: tuple[str, ...] = ()
    files_only: bool = False  # "files": tar -x of the data part and sync, nothing else
    in_node: str = ""
    dpkg: list[float] = field(default_factory=list)
    healthy: list[float] = field(default_factory=list)


def build(tree: Path, app: Path, instance: str, out: Path) -> dict[str, object]:
    """Build with the appdeb found in tree (a checkout), as CI would: a process of its own."""
    result = run([sys.executable, "-m", "appdeb.cli", "build", str(app), "--instance", instance,
                  "--out", str(out), "--json"], cwd=tree, env={"PYTHONPATH": str(tree)}, timeout=1800)
    data: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def checkout(ref: str, dest: Path) -> Path:
    """The project's files at a git commit (git archive: no worktree left behind)."""
    archive = dest.with_suffix(".tar")
    run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref])
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    return dest


def repacked(deb: Path, work: Path, edit: Callable[[Path], None]) -> Path:
    """The package unpacked, changed by edit (the tree), its md5sums redone and packed again."""
    tree = work / "tree"
    work.mkdir(parents=True)
    run(["dpkg-deb", "-R", str(deb), str(tree)])
    edit(tree)
    sums = []
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()
                       and p.relative_to(tree).parts[0] != "DEBIAN"):
        sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(tree).as_posix()}\n")
    (tree / "DEBIAN" / "md5sums").write_text("".join(sums))
    out = work / "out" / deb.name
    out.parent.mkdir(parents=True)
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(tree), str(out)])
    return out


def drop_byte_code(tree: Path) -> None:
    """As a build where the interpreter rule does not hold makes it: no __pycache__, no marker."""
    for cache in sorted(tree.rglob("__pycache__")):
        shutil.rmtree(cache)
    for mark in tree.glob("opt/*/appdeb/bytecode"):
        mark.unlink()


def unchecked(tree: Path) -> None:
    """The same byte code as unchecked-hash (PEP 552 flags 0b01: the source is never read on import)."""
    for pyc in tree.rglob("*.pyc"):
        data = bytearray(pyc.read_bytes())
        data[4:8] = (1).to_bytes(4, "little")
        pyc.write_bytes(bytes(data))


def wait_healthy(port: int, deadline: float) -> None:
    """Until GET / on 127.0.0.1:port answers 200 (the node shares the host's network)."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        time.sleep(0.01)
    raise AppdebError(f"no HTTP 200 on 127.0.0.1:{port}")


def data_part(deb: Path, work: Path) -> Path:
    """The package's data part as a plain tar (what dpkg unpacks), for the "files" row."""
    out = work / "files" / "data.tar"
    out.parent.mkdir(parents=True)
    run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$1" > "$2"', "sh", str(deb), str(out)])
    return out


def write_files(node: harness.Node, variant: Variant) -> None:
    """The "files" row: tar -x into a scratch directory and sync, timed; the removal after is untimed."""
    start = time.monotonic()
    harness.run_in(node, ["sh", "-c", 'mkdir /var/tmp/files && tar -C /var/tmp/files -xf "$1" && sync',
                          "sh", variant.in_node], check=True, timeout=900)
    variant.dpkg.append(time.monotonic() - start)
    variant.healthy.append(variant.dpkg[-1])
    harness.run_in(node, ["rm", "-rf", "/var/tmp/files"], check=True, timeout=900)


def one_install(node: harness.Node, variant: Variant, package: str, port: int) -> None:
    """dpkg -i, then the first 200; both measured from the start of dpkg. The purge after is untimed."""
    if variant.files_only:
        write_files(node, variant)
        return
    start = time.monotonic()
    result = harness.run_in(node, ["dpkg", *variant.dpkg_options, "-i", variant.in_node], timeout=900)
    installed = time.monotonic()
    if result.returncode != 0:
        raise AppdebError(f"{variant.name}: dpkg -i failed:\n{result.stdout}")
    wait_healthy(port, installed + 120)
    variant.dpkg.append(installed - start)
    variant.healthy.append(time.monotonic() - start)
    harness.run_in(node, ["dpkg", "--purge", package], check=True, timeout=900)


def measure(variants: list[Variant], package: str, port: int, rounds: int) -> None:
    name = f"bench-install-{os.getpid()}"
    node = harness.up(name)
    try:
        for v in variants:
            v.in_node = harness.copy_in(node, v.deb, f"/var/tmp/bench/{v.name}")
        harness.install(node, [variants[0].deb])  # the Debian dependencies, once (untimed)
        harness.run_in(node, ["dpkg", "--purge", package], check=True, timeout=900)
        harness.run_in(node, ["sync"], check=True, timeout=900)  # what was copied in is on disk before any timing
        for v in variants:  # a warm-up install each: caches as in every later round
            one_install(node, v, package, port)
            v.dpkg.clear()
            v.healthy.clear()
        for i in range(rounds):
            for v in (variants if i % 2 == 0 else variants[::-1]):
                one_install(node, v, package, port)
    finally:
        harness.down(name)


@contextlib.contextmanager
def node_disk(kind: str, work: Path) -> Iterator[None]:
    """With kind "image", the harness's nodes live on a fresh journaled ext4 (see the module's text)."""
    if kind == "host":
        yield
        return
    image, mount = work / "nodes.img", work / "nodes"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(16 << 30)  # sparse: only what the node writes takes space
    run(["mkfs.ext4", "-q", "-F", str(image)])
    run(["mount", "-o", "loop", str(image), str(mount)])
    saved = os.environ.get("APPDEB_NODE_DIR")
    os.environ["APPDEB_NODE_DIR"] = str(mount)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["APPDEB_NODE_DIR"]
        else:
            os.environ["APPDEB_NODE_DIR"] = saved
        run(["umount", str(mount)])


def report(variants: list[Variant]) -> None:
    base = statistics.median(variants[0].healthy)
    print(f"{'variant':<18} {'dpkg -i':>8} {'→ 200':>8} {'ratio':>6}   samples (→ 200, s)")
    for v in variants:
        healthy = statistics.median(v.healthy)
        samples = " ".join(f"{s:.2f}" for s in v.healthy)
        print(f"{v.name:<18} {statistics.median(v.dpkg):>7.2f}s {healthy:>7.2f}s {healthy / base:>6.2f}   {samples}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed installs per variant")
    parser.add_argument("--baseline", help="a git ref of appdeb to compare with (the 'before' variant)")
    parser.add_argument("--big", action="store_true", help="bench/bigapp (numpy, pandas, Django) for examples/flaskapp")
    parser.add_argument("--unchecked", action="store_true", help="also the shipped byte code as unchecked-hash")
    parser.add_argument("--instance", default="bench", help="the instance to build (its port must be free)")
    parser.add_argument("--disk", choices=("image", "host"), default="image",
                        help="where the node writes: a fresh journaled ext4 image (default) or the harness's own place")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="appdeb-bench-install-") as tmp:
        work = Path(tmp)
        app = ROOT / "bench" / "bigapp" if args.big else ROOT / "examples" / "flaskapp"
        variants = []
        if args.baseline:
            tree = checkout(args.baseline, work / "baseline")
            # the app as that commit had it (an app.yaml written for this tree may use what it does not know)
            own = tree / app.relative_to(ROOT)
            before = build(tree, own if (own / "app.yaml").is_file() else app, args.instance, work / "before")
            variants.append(Variant("before", Path(str(before["deb"]))))
        after = build(ROOT, app, args.instance, work / "after")
        variants.append(Variant("after", Path(str(after["deb"]))))
        shipped = Path(str(after["deb"]))
        variants.append(Variant("postinst-compile", repacked(shipped, work / "nopyc", drop_byte_code)))
        if args.unchecked:
            variants.append(Variant("unchecked-hash", repacked(shipped, work / "unchecked", unchecked)))
        variants.append(Variant("unsafe-io", shipped, dpkg_options=("--force-unsafe-io",)))
        variants.append(Variant("files", data_part(shipped, work), files_only=True))
        package, port = str(after["package"]), int(str(after["port"]))
        print(f"{package} on port {port}: {args.rounds} rounds, {len(variants)} variants, disk {args.disk}",
              flush=True)
        with node_disk(args.disk, work):
            measure(variants, package, port, args.rounds)
        report(variants)


if __name__ == "__main__":
    main()
