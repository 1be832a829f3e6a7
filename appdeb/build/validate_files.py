"""validate, the sections that name files of the app: require, python.paths, static, exclude.

They are checked against the app directory itself, so a path that looks harmless but leads out
(an absolute path, '..', a symbolic link) is caught before the build reads what it points at.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from appdeb.build import paths_in_app, requirements, rules
from appdeb.build.fields import Checker
from appdeb.build.spec import BUILD_COMMAND, Requirements, Static
from appdeb.build.yamlload import YNode
from appdeb.errors import AppdebError

OS_VALUES = ("debian",)


def require(node: YNode | None, c: Checker, app_dir: Path) -> Requirements:
    m = c.mapping(node, "require")
    if not m:
        return Requirements()
    assert node is not None
    c.keys(node, "require", ("os", "python", "deb", "pip"))
    os_name = c.string(m.get("os"), "require.os") or "debian"
    if os_name not in OS_VALUES:
        c.add(m["os"], "require.os", f"unsupported os {rules.shown(os_name)} (allowed: {', '.join(OS_VALUES)})")
    python = c.string(m.get("python"), "require.python") or ""
    for part in filter(None, (p.strip(" ") for p in python.split(","))):
        if not rules.SPECIFIER_RE.fullmatch(part):
            c.add(m["python"], "require.python",
                  f"{rules.shown(part)} is not a version specifier (e.g. '>=3.11', '<3.13')")
    debs = c.string_list(m.get("deb"), "require.deb")
    for d in debs:
        c.check(m.get("deb"), "require.deb", rules.deb_relation(d))
    pip, pip_file = _pip(m.get("pip"), c, app_dir)
    lines = requirements.rebase(pip, str(PurePosixPath(pip_file).parent) if pip_file else ".")
    included = requirements.included_files(app_dir, lines)
    for inc in included:
        if inc.path != pip_file:
            _requirement_file(m["pip"], c, app_dir, inc.path)
    projects, constrained = requirements.app_projects(app_dir, lines, included)
    return Requirements(os=os_name, python=python, deb=tuple(debs), pip=pip, pip_file=pip_file,
                        included=tuple(inc.path for inc in included), projects=projects, constrained=constrained)


def _pip(node: YNode | None, c: Checker, app_dir: Path) -> tuple[tuple[str, ...], str | None]:
    """A list of requirement lines, or the name of a requirements file in the app."""
    if node is None or node.kind == "null":
        return (), None
    if node.kind == "seq":
        lines = [ln.strip() for ln in c.string_list(node, "require.pip")]
        for line in lines:
            c.check(node, "require.pip", paths_in_app.requirement(app_dir, line) if line else "empty requirement")
        return tuple(lines), None
    name = c.string(node, "require.pip")
    if name is None:
        return (), None
    numbered = _requirement_file(node, c, app_dir, name)
    return (tuple(line for _, line in numbered), name) if numbered is not None else ((), None)


def _requirement_file(node: YNode, c: Checker, app_dir: Path, name: str) -> list[tuple[int, str]] | None:
    """Every line of a requirements file in the app (require.pip's, or one it includes with -r/-c, at any
    depth: the installer reads them all), checked as a line of require.pip is; None if it cannot be read."""
    numbered, problem = paths_in_app.read_requirements(app_dir, name)
    if problem:
        c.add(node, "require.pip", problem)  # it names the file
        return None
    base = str(PurePosixPath(name).parent)  # a -r/-c path in the file is relative to the file, as in pip
    for number, line in numbered:
        bad = paths_in_app.requirement(app_dir, requirements.rebase((line,), base)[0])
        c.check(node, "require.pip", f"{name}:{number}: {bad}" if bad else None)
    return numbered


def python_paths(node: YNode | None, c: Checker, app_dir: Path) -> tuple[str, ...]:
    m = c.mapping(node, "python")
    if not m:
        return ()
    assert node is not None
    c.keys(node, "python", ("paths",))
    paths = c.string_list(m.get("paths"), "python.paths")
    for p in paths:
        c.check(m["paths"], "python.paths", paths_in_app.app_dir_path(app_dir, p))
    return tuple(p.rstrip("/") or "." for p in paths)


def has_build(top: dict[str, YNode]) -> bool:
    """Whether app.yaml has a `commands.build` (looked up before `commands:` is validated)."""
    node = top.get("commands")
    return node is not None and node.kind == "map" and BUILD_COMMAND in node.value


def static(node: YNode | None, c: Checker, app_dir: Path, *, built: bool = False) -> Static | None:
    """`static:`; with a build step the directory may be its output, so a fresh checkout without it is
    fine here (only the path's shape is checked) and the build checks it once the step has run."""
    if node is None or node.kind == "null":
        return None
    url_node = node
    if node.kind == "map":
        c.keys(node, "static", ("dir", "url"), ("dir",))
        d = c.string(node.value.get("dir"), "static.dir")
        url_node = node.value.get("url", node)
        url = c.string(node.value.get("url"), "static.url") or "/static/"
    else:
        d, url = c.string(node, "static"), "/static/"
    if d is None:
        return None
    missing = built and not (app_dir / d).exists() and not (app_dir / d).is_symlink()
    c.check(node, "static", paths_in_app.app_path(app_dir, d) if missing else paths_in_app.app_dir_path(app_dir, d))
    url = url if url.endswith("/") else url + "/"
    c.check(url_node, "static.url", rules.url_path(url))
    return Static(dir=d.rstrip("/"), url=url)


def exclude(node: YNode | None, c: Checker, app_dir: Path) -> tuple[str, ...]:
    """Extra names not to ship; excluding every file (say `*`) would ship an app without its code."""
    from appdeb.build.stage import app_files

    patterns = tuple(c.string_list(node, "exclude"))
    for p in patterns:
        c.check(node, "exclude", rules.one_line(p, limit=1024))
    if node is None or not patterns or not app_dir.is_dir():
        return patterns
    try:
        if next(app_files(app_dir, patterns), None) is None:
            c.add(node, "exclude", "these patterns exclude every file of the app: nothing would be shipped")
    except AppdebError as exc:
        c.add(node, "exclude", str(exc))
    return patterns
