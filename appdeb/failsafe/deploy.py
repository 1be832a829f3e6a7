"""Putting the scenario app and the servers on a fresh node, without touching any port but our own.

Nodes share the host's network, and Debian starts nginx and Apache on port 80 the moment they are
installed, which would collide with other nodes (and other people's tests) on this machine. So the
Debian packages go in first under a policy-rc.d that forbids starting services, their default
sites are removed, Apache is told to listen on our port only, and only then is anything started.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import yaml

from appdeb.errors import AppdebError
from appdeb.failsafe.client import HOST
from appdeb.failsafe.servers import TIMEOUT, WSGI_FILE, Server, Target, in_node, sockets_of
from appdeb.node import harness as nodes

POLICY_RC = "/usr/sbin/policy-rc.d"
APACHE_SITE = "/etc/apache2/sites-available/fsbench.conf"


def instance_ports(app_dir: Path, instance: str) -> tuple[int, int]:
    """(port, public_port) of an instance of the scenario app, straight from its app.yaml."""
    spec = yaml.safe_load((app_dir / "app.yaml").read_text())
    try:
        settings = spec["instances"][instance]
        return int(settings["port"]), int(settings["public_port"])
    except (KeyError, TypeError, ValueError):
        raise AppdebError(f"{app_dir}/app.yaml has no instance {instance!r} with port and public_port") from None


def prepare(node: nodes.Node, servers: Sequence[Server]) -> None:
    """Install the servers' Debian packages (and nginx, which the package needs) with every start refused.

    nginx is started once its default site is gone: the package's verify checks the app through it.
    """
    debs = sorted({"nginx", *(d for s in servers for d in s.debs)})
    in_node(node, ["sh", "-c", f"printf '#!/bin/sh\\nexit 101\\n' > {POLICY_RC} && chmod 755 {POLICY_RC}"])
    try:
        argv = ["apt-get", "install", "-y", "--no-install-recommends", *debs]
        result = nodes.run_in(node, argv, timeout=900)
        if result.returncode != 0 and re.search(r"Failed to fetch|Unable to locate|404", result.stdout):
            nodes.run_in(node, ["apt-get", "update"], timeout=600)  # the image's package lists went stale
            result = nodes.run_in(node, argv, timeout=900)
        if result.returncode != 0:
            raise AppdebError(f"apt-get install {' '.join(debs)} failed in node {node.name}:\n{result.stdout}")
        in_node(node, ["rm", "-f", "/etc/nginx/sites-enabled/default"])
        if "apache2" in debs:
            in_node(node, ["sh", "-c", "a2dissite -q 000-default && : > /etc/apache2/ports.conf"])
    finally:
        nodes.run_in(node, ["rm", "-f", POLICY_RC])
    in_node(node, ["systemctl", "restart", "nginx"])  # no site yet: listens nowhere until the package's


def install(node: nodes.Node, deb: Path, public_port: int) -> Target:
    """Install the package (its unit starts) and learn its name, port and environment from the node."""
    nodes.install(node, [deb])
    package = deb.name.split("_", 1)[0]
    env = parse_env(in_node(node, [package, "env"]))
    if "APPDEB_PORT" not in env:
        raise AppdebError(f"{package} env: no APPDEB_PORT; is it a wsgi package?")
    return Target(node, package, int(env["APPDEB_PORT"]), public_port, env)


def parse_env(text: str) -> dict[str, str]:
    """`PKG env` prints KEY=value with the value shell-quoted, one per line."""
    env = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            words = shlex.split(value)
            env[key] = words[0] if words else ""
    return env


def configure(target: Target, servers: Sequence[Server]) -> None:
    """Per-server set-up that needs the installed package; leaves every server stopped."""
    node = target.node
    if any(s.name == "apache" for s in servers):
        apache = next(s for s in servers if s.name == "apache")
        in_node(node, ["sh", "-c", 'cat > "$1"', "sh", APACHE_SITE], input=apache_site(target, apache.port(target)))
        in_node(node, ["sh", "-c", f"{target.package} env | sed 's/^/export /' >> /etc/apache2/envvars"])
        in_node(node, ["sh", "-c", "a2ensite -q fsbench && apache2ctl configtest"])
    unit = f"{target.package}.service"
    in_node(node, ["systemctl", "stop", unit, *sockets_of(node, unit)], timeout=120)


def apache_site(target: Target, port: int) -> str:
    """mod_wsgi in daemon mode as the app's user; request-timeout is its per-request guard."""
    pkg = target.package
    return f"""# appdeb bench failsafe: the scenario app under Apache + mod_wsgi (daemon mode), port {port} only.
Listen {HOST}:{port}
<VirtualHost {HOST}:{port}>
    ServerName fsbench.localhost
    WSGIDaemonProcess fsbench user={pkg} group={pkg} processes=2 threads=4 display-name=%{{GROUP}} \\
        home={target.app_dir} python-path={target.env.get("PYTHONPATH", target.app_dir)} \\
        request-timeout={TIMEOUT} maximum-requests=1000
    WSGIProcessGroup fsbench
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIScriptAlias / {target.app_dir}/{WSGI_FILE}
    <Directory {target.app_dir}>
        Require all granted
    </Directory>
</VirtualHost>
"""
