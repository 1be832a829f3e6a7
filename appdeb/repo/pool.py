"""The public pool's file names: which .deb a version becomes in ROOT/public/pool/COMPONENT.

aptly keeps the file name it is given, and apt fetches what the index names; two versions that map to
one name cannot both be published (aptly refuses the second when it links the pool, after the add).
"""

from __future__ import annotations

from appdeb.repo.aptly import PackageRef


def name(ref: PackageRef, suite: str) -> str:
    """`name_version_arch[.suite].deb`, the version without its epoch, as Debian's pool names are (a
    colon in a file name apt fetches is trouble): so two versions that differ by the epoch alone would
    share one pool file (clashes)."""
    epoch, colon, rest = ref.version.partition(":")
    bare = rest if colon and epoch.isdigit() else ref.version
    return f"{ref.name}_{bare}_{ref.arch}{f'.{suite}' if suite else ''}.deb"


def clashes(ledgers: dict[str, dict[str, str]], new: list[tuple[PackageRef, str, str]]) -> list[str]:
    """New versions (ref, ledger scope, path for messages) whose pool file another version of the release
    already named (1:5.0-1 after 2:5.0-1, or in the same batch): aptly would refuse the file when
    publishing, after the add, and every later publish with it."""
    named = {name(PackageRef(*key.split("_")), suite): key
             for suite, known in ledgers.items() for key in known if key.count("_") == 2}
    found = []
    for ref, suite, path in new:
        other = named.setdefault(file := name(ref, suite), ref.key)
        if other != ref.key:
            found.append(f"{path}: {ref.name} {ref.version} would take the pool file {file} of {other.split('_')[1]}, "
                         "which differs from it by the epoch alone (a pool file name has no epoch) — bump the "
                         "upstream version or the build number instead")
    return found
