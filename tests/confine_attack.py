"""The app's own code as an attacker at build time (copied into the app as attack.py; stdlib only).

It runs as commands.build (`python3 attack.py step`) or on import of the web module (the interface
check), reads targets.json beside it (the test's canary files, the builder's pid, the directory that
holds the build's temporary files: a strongest attacker knows every path) and tries each attack. Its
writes only ever go to the test's own files, so the same attacker can run against a builder without the
confinement (to show what it could do there) without harming anything else. Every outcome is a line
"ATTACK name: refused|CROSSED detail"; a step writes them to attack-report.txt in its output.
"""

import contextlib
import ctypes
import json
import os
import subprocess
import time

TEMP = "/nowhere"
HERE = os.path.dirname(os.path.abspath(__file__))
MARK = bytes.fromhex("415050444542" "2d434f4e46494e452d504f49534f4e")  # not a constant byte code would hold


def own_dirs():
    """What the step may legitimately write: its working copy, HOME, TMPDIR and its runtime's state
    (APPDEB_STATE_DIR and the others: the directory that holds its secret file)."""
    env = os.environ
    state = os.path.dirname(env["APPDEB_SECRET_FILE"]) if "APPDEB_SECRET_FILE" in env else HERE
    return [os.getcwd(), HERE, env.get("HOME", HERE), env.get("TMPDIR", HERE), state]


def _link(path):
    try:
        return os.readlink(path)
    except OSError:
        return ""


def outside(path, own):
    try:
        real = os.path.realpath(path)
    except OSError:
        return True
    return not any(real == d or real.startswith(os.path.realpath(d) + os.sep) for d in own)


def write(path):
    """Append MARK to a file, or create one in a directory: True where it worked."""
    try:
        target = os.path.join(path, "attack-pwned") if os.path.isdir(path) else path
        with open(target, "ab") as f:
            f.write(MARK)
        return True
    except OSError:
        return False


def files_under(top, limit=400):
    found = [top]
    for dirpath, dirnames, filenames in os.walk(top):
        found += [os.path.join(dirpath, n) for n in (*dirnames, *filenames)]
        if len(found) > limit:
            break
    return found


def crossed(name, hits):
    """The outcome line (paths under the test's directories shortened: the build refuses build paths)."""
    shown = [h.replace(TEMP, "$TEMP") for h in sorted(hits)[:3]]
    return f"ATTACK {name}: " + (f"CROSSED {shown}" if hits else "refused")


def attacks(targets):
    global TEMP
    own = own_dirs()
    temp = TEMP = targets["temp"]
    in_temp = [p for p in files_under(temp) if outside(p, own)] if os.path.isdir(temp) else []
    pid = targets["builder"]
    via_proc = []
    for link in ("cwd", "root"):
        via_proc.append(f"/proc/{pid}/{link}/attack-pwned")
    with contextlib.suppress(OSError):
        via_proc += [p for p in (_link(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd"))
                     if p.startswith(temp)]
    parents = [os.path.dirname(d) for d in own] + [os.path.dirname(os.path.dirname(os.getcwd()))]
    via_env = [v for v in os.environ.values() if v.startswith("/") and os.path.exists(v) and outside(v, own)]
    yield crossed("write the build's temporary files (the directory that holds them)",
                  [p for p in in_temp if write(p)])
    yield crossed("write the build's temporary files (through /proc of the builder)", [p for p in via_proc if write(p)])
    yield crossed("write the build's temporary files (the parents of its cwd)",
                  [p for p in parents if outside(p, own) and p.startswith(temp) and write(p)])
    yield crossed("write the build's temporary files (paths in its environment)",
                  [p for p in via_env if p.startswith(temp) and write(p)])
    yield crossed("write a directory anyone may write, outside /tmp", [p for p in [targets["open"]] if write(p)])
    yield crossed("write under /etc", [p for p in (targets["etc"], "/etc") if write(p)])
    yield crossed("write under /root", [p for p in (targets["root"], "/root") if write(p)])
    yield crossed("write appdeb's cache", [p for p in targets["cache"] if write(p)])
    yield crossed("read /etc/shadow", ["/etc/shadow"] if readable("/etc/shadow") else [])
    yield crossed("signal the build process", [str(pid)] if signal_ok(pid) else [])
    yield crossed("ptrace the build process", [str(pid)] if ptrace_ok(pid) else [])


def readable(path):
    try:
        with open(path, "rb") as f:
            return bool(f.read(1))
    except OSError:
        return False


def signal_ok(pid):
    try:
        os.kill(pid, 0)  # the permission check of a kill, without the kill
        return True
    except OSError:
        return False


def ptrace_ok(pid):
    """Can it read the builder's memory (the ptrace access check), and attach to it?"""
    if readable(f"/proc/{pid}/mem"):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH: detach at once
        os.waitpid(pid, 0)
        libc.ptrace(17, pid, None, None)
        return True
    return False


def leave_behind(tag):
    """A child that leaves the session, meant to outlive the build (its argv carries tag, to be found)."""
    subprocess.Popen(["sh", "-c", f"sleep 60 # {tag}"], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def plant_links(targets):
    """Links in the output that root would follow if it took the copy back carelessly."""
    os.symlink("/etc/shadow", "shadow-link")
    os.symlink(targets["root"], "canary-link")
    os.symlink("/root", "root-dir-link")
    with contextlib.suppress(OSError):
        os.link("/etc/shadow", "shadow-hardlink")


def tty_report():
    """The builder's terminal: can it open it (then read keystrokes, push some with TIOCSTI)?"""
    try:
        fd = os.open("/dev/tty", os.O_RDWR)
    except OSError as exc:
        return f"ATTACK tty: refused ({exc.strerror})"
    os.close(fd)
    return "ATTACK tty: CROSSED /dev/tty opened"


def main(where):
    with open(os.path.join(HERE, "targets.json")) as f:
        targets = json.load(f)
    leave_behind(targets["tag"])
    if where == "tty":  # the report in its output, which the failed build's error shows
        print(tty_report(), flush=True)
        print("\x1b]52;c;b3duZWQ=\x07escape in the output", flush=True)
        raise SystemExit(3)
    if where == "hang":  # out of the session the builder kills, then past the time limit
        with contextlib.suppress(OSError):
            os.setsid()
        time.sleep(600)
    if where == "links":
        plant_links(targets)
        return
    end = time.time() + (3 if where == "import" else 0)  # the import runs beside the writing of the .deb
    report = list(attacks(targets))
    while time.time() < end and "CROSSED" not in "".join(report):
        report = list(attacks(targets))
    if where == "step":
        with open("attack-report.txt", "w") as f:
            f.write("\n".join(report) + "\n")
    elif "CROSSED" in "".join(report):
        raise SystemExit("; ".join(line for line in report if "CROSSED" in line))


if __name__ == "__main__":
    import sys

    main(sys.argv[1])
