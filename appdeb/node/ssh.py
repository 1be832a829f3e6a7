"""ssh into private-network nodes the way Ansible will: harness keys, strict host-key checking.

The harness keeps one ed25519 client key pair in ``NODES/.ssh/`` (root's ``authorized_keys`` in every
private node) and gives each node a host key of its own at `up`, recorded in ``NODES/.ssh/known_hosts``
under the node's address, so ``ssh -i KEY -o UserKnownHostsFile=FILE -o StrictHostKeyChecking=yes
root@ADDR`` works without trusting on first use. The image masks ssh.service (a node on the host's
network must not start sshd on the host's port 22); a private node unmasks it before it boots.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

from appdeb.errors import AppdebError
from appdeb.files import write_atomic
from appdeb.runner import run

HOST_KEY = "ssh_host_ed25519_key"
# Paths that go into the inventory and ssh's own option parsing as they are: no quoting needed.
SAFE_PATH = re.compile(r"/[A-Za-z0-9_./+-]*")


def ssh_dir(nodes: Path) -> Path:
    return nodes / ".ssh"


def key_path(nodes: Path) -> Path:
    """The harness's private client key (its public half is KEY.pub)."""
    return ssh_dir(nodes) / "id_ed25519"


def known_hosts_path(nodes: Path) -> Path:
    """known_hosts for the private nodes, rewritten whenever one comes up or goes down."""
    return ssh_dir(nodes) / "known_hosts"


def ssh_options(nodes: Path) -> list[str]:
    """ssh options that log in with the harness key and trust only the recorded host keys."""
    key, known = (_safe(p) for p in (key_path(nodes), known_hosts_path(nodes)))
    return ["-i", key, "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"]


def _safe(path: Path) -> str:
    """Allow-list the node directory's paths: they are pasted into ssh options and an INI inventory."""
    if not SAFE_PATH.fullmatch(str(path)):
        raise AppdebError(f"{path}: node state paths may hold only letters, digits and _ . / + - "
                          "(set APPDEB_NODE_DIR to such a path)")
    return str(path)


def _keygen(path: Path, comment: str) -> None:
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])


def ensure_client_key(nodes: Path) -> Path:
    """Create the client key pair once, in a root-only directory that nobody else controls."""
    folder = ssh_dir(nodes)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(folder)
    if st.st_uid != os.geteuid() or not stat.S_ISDIR(st.st_mode):
        raise AppdebError(f"{folder} is not a directory of this user (a symlink?); remove it")
    folder.chmod(0o700)
    key = key_path(nodes)
    if not (key.is_file() and key.with_name(key.name + ".pub").is_file()):
        _keygen(key, "appdeb-nodes")
    return key


def prepare_node(nodes: Path, name: str, state: Path, root: Path) -> None:
    """Before first boot: a host key of the node's own, root's authorized_keys, sshd unmasked.

    `root` is the node's fresh overlay, which only root of this machine has written to so far.
    """
    client_pub = ensure_client_key(nodes).with_name("id_ed25519.pub").read_text()
    _keygen(state / HOST_KEY, name)
    etc_ssh = root / "etc/ssh"
    for suffix, mode in (("", 0o600), (".pub", 0o644)):
        dest = etc_ssh / (HOST_KEY + suffix)
        shutil.copyfile(state / (HOST_KEY + suffix), dest)
        dest.chmod(mode)
    dot_ssh = root / "root/.ssh"
    dot_ssh.mkdir(mode=0o700, exist_ok=True)
    (dot_ssh / "authorized_keys").write_text(client_pub)
    (dot_ssh / "authorized_keys").chmod(0o600)
    (root / "etc/systemd/system/ssh.service").unlink(missing_ok=True)  # the image's mask


def write_known_hosts(nodes: Path, hosts: list[tuple[str, str, Path]]) -> None:
    """Rewrite known_hosts from the (name, address, state) of every private node: one line per node."""
    lines = []
    for _name, address, state in hosts:
        pub = state / (HOST_KEY + ".pub")
        if pub.is_file():
            keytype, key = pub.read_text().split()[:2]
            lines.append(f"{address} {keytype} {key}\n")
    ssh_dir(nodes).mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(known_hosts_path(nodes), "".join(lines))


def inventory_text(nodes: Path, hosts: list[tuple[str, str]]) -> str:
    """An Ansible INI inventory: each (name, address) as a host of group appdeb_nodes, ssh set up as above."""
    key, known = _safe(key_path(nodes)), _safe(known_hosts_path(nodes))
    common = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    lines = ["# appdeb nodes with a private network (Ansible INI inventory)", "[appdeb_nodes]"]
    for name, address in hosts:
        lines.append(f"{name} ansible_host={address} ansible_user=root ansible_ssh_private_key_file={key} "
                     f"ansible_ssh_common_args='{common}' ansible_python_interpreter=/usr/bin/python3")
    return "\n".join(lines) + "\n"
