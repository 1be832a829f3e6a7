"""OpenPGP key handling for the apt repository, kept in a repo-private GNUPGHOME.

The repository's signing key lives in its own gnupg directory so that publishing
never depends on (or pollutes) the operator's personal keyring, and so the whole
repository -- key included -- can be backed up or moved as one directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from appdeb import files
from appdeb.errors import AppdebError, CommandError
from appdeb.runner import run

_GPG = ("gpg", "--batch", "--no-tty", "--status-fd", "1")


SOCKET_PATH_MAX = 100  # bytes of a socket's path gpg-agent takes: 106 here (sun_path's 108, less two), with a margin
LONGEST_SOCKET = "S.gpg-agent.browser"


def gnupg_env(home: Path) -> dict[str, str]:
    """Environment that points gpg (and aptly's gpg calls) at the repo's keyring."""
    return {"GNUPGHOME": str(short_home(home))}


def short_home(home: Path) -> Path:
    """The repository's gnupg home, by a path short enough for gpg-agent's sockets.

    gpg puts the agent's sockets in GNUPGHOME itself unless /run/user/UID exists (it does not for root on
    a CI runner or in a container), and gpg-agent takes a socket path of at most 106 bytes: a repository
    deeper than about 80 characters could not sign ("failed to start agent"). Such a home is reached through a link
    named by a hash of its path, in a 0700 directory of the caller's own below the temporary directory."""
    absolute = home.absolute()
    if (len(os.fsencode(absolute / LONGEST_SOCKET)) <= SOCKET_PATH_MAX or not absolute.is_dir()
            or Path(f"/run/user/{os.getuid()}").is_dir()):
        return home
    links = Path(tempfile.gettempdir()) / f"appdeb-gnupg-{os.getuid()}"
    if not files.own_directory(links, 0o700):
        raise AppdebError(f"{links} is not a private directory of yours: remove it (appdeb keeps links to "
                          "repository keyrings with long paths there)")
    link = links / hashlib.sha256(os.fsencode(absolute)).hexdigest()[:16]
    with contextlib.suppress(FileExistsError):
        os.symlink(absolute, link)
    if os.readlink(link) != str(absolute):
        raise AppdebError(f"{link} does not lead to {absolute}: remove it")
    return link


def ensure_home(home: Path) -> None:
    """Create the gnupg directory with the 0700 mode gpg insists on."""
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)


def _gpg(home: Path, *args: str, input: str | None = None) -> str:
    return run([*_GPG, *args], env=gnupg_env(home), input=input).stdout


def _status(output: str, keyword: str) -> list[list[str]]:
    """Fields of gpg's machine-readable status lines, which are stable unlike its prose."""
    prefix = f"[GNUPG:] {keyword} "
    return [line[len(prefix) :].split() for line in output.splitlines() if line.startswith(prefix)]


def secret_fingerprints(home: Path) -> list[str]:
    """Primary-key fingerprints of the secret keys in `home` (the keys we can sign with)."""
    if not home.is_dir():
        return []
    out = _gpg(home, "--with-colons", "--list-secret-keys")
    fprs: list[str] = []
    expect_primary = False
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            expect_primary = True
        elif fields[0] == "fpr" and expect_primary:
            fprs.append(fields[9])
            expect_primary = False
    return fprs


def find_secret(home: Path, key: str) -> str | None:
    """Resolve a fingerprint or (long) key ID to a full fingerprint present in `home`."""
    wanted = key.upper().removeprefix("0X").replace(" ", "")
    for fpr in secret_fingerprints(home):
        if fpr.endswith(wanted):
            return fpr
    return None


def generate_key(home: Path, name: str, email: str) -> str:
    """Create a passphrase-less ed25519 signing key; unattended publishing needs no prompt."""
    ensure_home(home)
    out = _gpg(home, "--passphrase", "", "--quick-gen-key", f"{name} <{email}>", "ed25519", "sign", "never")
    created = _status(out, "KEY_CREATED")
    if not created:
        raise AppdebError(f"gpg did not report a new key:\n{out}")
    return created[0][1]


def import_key(home: Path, key: str) -> str:
    """Copy an existing secret key into the repo keyring and return its fingerprint.

    `key` is either a file holding an exported secret key, or a key ID/fingerprint in
    the operator's own keyring (GNUPGHOME or ~/.gnupg). The key must not be
    passphrase-protected, because publishing runs unattended.
    """
    ensure_home(home)
    if Path(key).is_file():
        out = _gpg(home, "--import", key)
    else:
        out = _gpg(home, "--import", input=_export_user_secret(key))
    imported = {fields[1] for fields in _status(out, "IMPORT_OK") if len(fields) > 1}
    for fpr in secret_fingerprints(home):
        if fpr in imported:
            return fpr
    raise AppdebError(f"{key}: no secret key was imported; a public key alone cannot sign")


def _export_user_secret(key: str) -> str:
    """Armored export (text-safe for run()) of a secret key from the operator's keyring."""
    argv = [*_GPG, "--armor", "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", key]
    try:
        out = run(argv).stdout
    except CommandError as exc:
        raise AppdebError(
            f"cannot export secret key {key!r} from your keyring (is it passphrase-protected?)\n{exc.output}"
        ) from None
    start = out.find("-----BEGIN PGP PRIVATE KEY BLOCK-----")
    if start < 0:
        where = os.environ.get("GNUPGHOME", "~/.gnupg")
        raise AppdebError(f"no secret key {key!r} in your keyring ({where})")
    return out[start:]


def armored_public_key(home: Path, fpr: str) -> str:
    """The public key as ASCII armor: what apt's Signed-By accepts in a .asc file."""
    out = run(["gpg", "--batch", "--armor", "--export", fpr], env=gnupg_env(home)).stdout
    start = out.find("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    if start < 0:
        raise AppdebError(f"gpg exported nothing for key {fpr}")
    return out[start:]


def export_public(home: Path, fpr: str, gpg_file: Path, asc_file: Path) -> None:
    """Write the public key both binary (gpgv/--keyring) and armored (apt .asc)."""
    asc_file.write_text(armored_public_key(home, fpr))
    tmp = gpg_file.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    # Binary output cannot travel through run()'s text capture, so let gpg write the file.
    run(["gpg", "--batch", "--yes", "--output", str(tmp), "--export", fpr], env=gnupg_env(home))
    tmp.replace(gpg_file)
    for f in (asc_file, gpg_file):
        f.chmod(0o644)


def verify_clearsigned(keyring: Path, signed: Path) -> None:
    """Check a clearsigned file (InRelease) the way apt does: gpgv against one keyring."""
    run(["gpgv", "--keyring", str(keyring), str(signed)])


def stop_agent(home: Path) -> None:
    """Stop the gpg-agent that signing started for `home` (tests, throw-away repos)."""
    if home.is_dir():
        run(["gpgconf", "--kill", "gpg-agent"], env=gnupg_env(home), check=False)


def stop_agent_of_vanished_home(home: Path) -> None:
    """Stop the agent of a gnupg home that no longer exists (its repository was moved away).

    With sockets under /run/user/UID the agent is found by a hash of the home's path, so
    the moved copy never reaches it and it would run on for nothing. gpgconf does not
    create the missing home; where sockets live in the home itself, there is none to reach.
    """
    if not home.exists():
        run(["gpgconf", "--kill", "gpg-agent"], env=gnupg_env(home), check=False)


def ensure_key(home: Path, existing: str | None, key: str | None, name: str, email: str) -> str:
    """The repo's signing fingerprint: keep `existing`, else import `key`, else generate one.

    A repository never silently changes keys: every node trusts exactly one key.
    """
    if existing:
        if find_secret(home, existing) is None:
            raise AppdebError(f"signing key {existing} is missing from {home}; restore it from backup")
        if key and find_secret(home, key) != existing:
            raise AppdebError(f"repository already signs with {existing}; refusing to switch to {key}")
        return existing
    if key:
        return find_secret(home, key) or import_key(home, key)
    return generate_key(home, name, email)
