#!/usr/bin/env python3
"""The README's demo: an app goes from source to a node through a private signed apt repository.

Steps (each timed): build examples/hello into a .deb, create a signed repository, publish the
package, serve the repository on 127.0.0.1, boot a throw-away Debian node, give the node the
repository's key and source, `apt-get update --error-on=any` and `apt-get install` the app there,
and fetch the app's HTTP answer from this machine. The node is always torn down; the repository
lives in a temporary directory unless --repo is given.

Usage (as root: nodes need systemd-nspawn): make demo   or   python3 scripts/demo.py [--repo DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appdeb.build.pipeline import BuildOptions, build  # noqa: E402
from appdeb.errors import AppdebError  # noqa: E402
from appdeb.node import harness as nodes  # noqa: E402
from appdeb.repo import aptly, signing  # noqa: E402
from appdeb.repo import config as repoconfig  # noqa: E402
from appdeb.repo import publish as repo  # noqa: E402
from appdeb.repo import serve as reposerve  # noqa: E402

T = TypeVar("T")
INSTANCE = "demo"
SOURCE = "appdeb-demo"
TIMINGS: list[tuple[str, float]] = []


def say(message: str) -> None:
    print(message, flush=True)


def step(title: str, action: Callable[[], T]) -> T:
    """Run one step, print how long it took, remember the timing for the summary."""
    say(f"==> {title}")
    start = time.monotonic()
    result = action()
    elapsed = time.monotonic() - start
    TIMINGS.append((title, elapsed))
    say(f"    done in {elapsed:.1f}s")
    return result


def in_node(node: nodes.Node, *argv: str) -> str:
    """Run a command in the node; on failure show its output and stop the demo."""
    result = nodes.run_in(node, list(argv), timeout=900)
    if result.returncode != 0:
        raise AppdebError(f"in node {node.name}: {' '.join(argv)} failed ({result.returncode}):\n{result.stdout}")
    return result.stdout


def fetch(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return str(resp.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def repository(path: str | None) -> Iterator[repoconfig.RepoConfig]:
    """The given repository root, or a temporary one that is removed afterwards."""
    tmp = None if path else tempfile.mkdtemp(prefix="appdeb-demo-repo-")
    root = Path(path or tmp or "")
    cfg = step(f"create the signed repository in {root}", lambda: repoconfig.init_repo(root))
    try:
        yield cfg
    finally:
        signing.stop_agent(cfg.gnupg_home)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def demo(repo_dir: str | None) -> None:
    work = Path(tempfile.mkdtemp(prefix="appdeb-demo-"))
    try:
        result = step("build examples/hello (instance demo) into a .deb",
                      lambda: build(ROOT / "examples" / "hello", BuildOptions(instance=INSTANCE, out_dir=work)))
        say(f"    {result.deb.name} ({result.size // 1024} KiB)")
        with repository(repo_dir) as cfg:
            published = step("publish it (aptly snapshot, signed)", lambda: repo.publish(cfg, [result.deb]))
            say(f"    added {', '.join(published.added) or 'nothing new'}; "
                f"serving {aptly.published_snapshot(cfg)}")
            with step("serve the repository on 127.0.0.1", lambda: reposerve.serve(cfg)) as server:
                say(f"    {server.url}")
                name = f"demo-{os.getpid()}"
                node = step(f"boot node {name} (Debian 12, systemd-nspawn; the first run builds the image)",
                            lambda: nodes.up(name, progress=lambda m: say(f"    {m}")))
                try:
                    files = step("write the repository's key and source into the node",
                                 lambda: reposerve.write_client_config(node.root, cfg, server.url, SOURCE))
                    for path in files:
                        say(f"    /{path.relative_to(node.root)}")
                    step("apt-get update --error-on=any (in the node)",
                         lambda: in_node(node, "apt-get", "update", "--error-on=any"))
                    step(f"apt-get install -y {result.package} (in the node)",
                         lambda: in_node(node, "apt-get", "install", "-y", result.package))
                    meta = json.loads((node.root / f"opt/{result.package}/appdeb/app.json").read_text())
                    url = f"http://127.0.0.1:{meta['web']['port']}/"
                    answer = step(f"ask the app from this machine: GET {url}", lambda: fetch(url))
                    say(f"    {answer.strip()}")
                finally:
                    step(f"tear node {name} down", lambda: nodes.down(name))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repo", metavar="DIR", help="use (and keep) this repository root instead of a temp dir")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("demo: the node needs root (mount, systemd-nspawn); run it as root", file=sys.stderr)
        return 1
    start = time.monotonic()
    try:
        demo(args.repo)
    except AppdebError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted (the node was torn down)", file=sys.stderr)
        return 130
    finally:
        if TIMINGS:
            say("\ntimings:")
            for title, seconds in TIMINGS:
                say(f"  {seconds:6.1f}s  {title}")
            say(f"  {time.monotonic() - start:6.1f}s  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
