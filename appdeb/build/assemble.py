"""assemble: the staged tree → a .deb via dpkg-deb, written atomically (no half-written file ever)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from debian.deb822 import Deb822

from appdeb.build.plan import BuildPlan
from appdeb.files import walk
from appdeb.runner import run


def deb_filename(plan: BuildPlan) -> str:
    version = plan.version.split(":", 1)[-1]
    return f"{plan.package}_{version}_{plan.architecture}.deb"


def write_control_extras(stage: Path) -> None:
    """md5sums over the payload and Installed-Size, both computed from the staged files."""
    sums, size_kib = [], 0
    for dirpath, dirnames, filenames in walk(stage):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(stage)
        if rel_dir.parts[:1] == ("DEBIAN",):
            continue
        size_kib += len(dirnames)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            size_kib += 1 if path.is_symlink() else (path.stat().st_size + 1023) // 1024
            if not path.is_symlink():
                sums.append(((rel_dir / name).as_posix(), hashlib.md5(path.read_bytes()).hexdigest()))
    control_path = stage / "DEBIAN" / "control"
    control, md5sums = control_extras(control_path.read_text(), sums, size_kib)
    (stage / "DEBIAN" / "md5sums").write_text(md5sums)
    control_path.write_text(control)
    (stage / "DEBIAN" / "md5sums").chmod(0o644)


def control_extras(control_text: str, sums: list[tuple[str, str]], size_kib: int) -> tuple[str, str]:
    """(control with Installed-Size in its place, md5sums sorted by path) from (path, md5) pairs."""
    md5sums = "".join(f"{md5}  {path}\n" for path, md5 in sorted(sums))
    control = Deb822(control_text)
    control["Installed-Size"] = str(size_kib)
    order = ["Package", "Version", "Architecture", "Maintainer", "Installed-Size"]
    ordered = Deb822()
    for key in order + [k for k in control if k not in order]:
        ordered[key] = control[key]
    return ordered.dump(), md5sums


def assemble(plan: BuildPlan, stage: Path, out_dir: Path) -> Path:
    """Build into a temporary name in out_dir, then rename: readers never see a partial .deb."""
    write_control_extras(stage)
    os.utime(stage / "DEBIAN", (plan.source_date_epoch,) * 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / deb_filename(plan)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        argv = ["dpkg-deb", "--root-owner-group", f"-Z{plan.compression}", "--build", str(stage), str(tmp)]
        run(argv, env={"SOURCE_DATE_EPOCH": str(plan.source_date_epoch)})
        tmp.chmod(0o644)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final
