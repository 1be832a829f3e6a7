"""The app the root-boundary tests attack: examples/hello with a schema its update command guards,
the files service, and a settings default full of shell syntax that must stay text.

`update` behaves like a real migration tool (Alembic, Django): it refuses a schema newer than its own
("Can't locate revision"), so a rollback that ran it against newer data fails the way real apps do.
While /var/tmp/PKG.slow-update exists, update sleeps after announcing itself in STATE/update-started.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ..conftest import EXAMPLES

HOSTILE_DEFAULT = "Hi $(touch /tmp/pwned-by-default) `touch /tmp/pwned-by-backticks` 'sq' \"dq\" ; SETTINGS_EOF"


def schema_commands(schema: int) -> dict[str, str]:
    state = '"$APPDEB_STATE_DIR"'
    return {
        "install": f'echo {schema} > {state}/schema; echo "data of $APPDEB_PACKAGE" > {state}/data.txt',
        "update": (f'have=$(cat {state}/schema); if [ "$have" -gt {schema} ]; then '
                   f'echo "Can\'t locate revision identified by $have" >&2; exit 1; fi; '
                   f'if [ -e "/var/tmp/$APPDEB_PACKAGE.slow-update" ]; then touch {state}/update-started; sleep 8; fi; '
                   f'echo {schema} > {state}/schema; '
                   f'echo "$APPDEB_FROM_VERSION -> $APPDEB_VERSION" >> {state}/update-runs'),
        "uninstall": 'echo "uninstall ran for $APPDEB_PACKAGE"',
        "greet": 'printf "%s\\n" "$GREETING"',
        # what a command run by root for the app sees: its environment and whether it leads its own session
        "verify": (f'env > {state}/verify-env; echo "$$ $(cut -d" " -f6 /proc/$$/stat)" > {state}/verify-sid; '
                   f'[ -t 0 ] && echo tty >> {state}/verify-sid; true'),
    }


def boundary_app(dest: Path, *, version: str = "1.0.0", schema: int = 1, default: str = HOSTILE_DEFAULT) -> Path:
    shutil.copytree(EXAMPLES / "hello", dest)
    spec = yaml.safe_load((dest / "app.yaml").read_text())
    spec["version"] = version
    spec["commands"] = {**spec.get("commands", {}), **schema_commands(schema)}
    spec["services"] = ["files"]
    spec["env"] = {"GREETING": {"default": default, "description": "shell syntax that must stay text"}}
    (dest / "app.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest
