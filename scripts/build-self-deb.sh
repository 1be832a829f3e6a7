#!/bin/sh
# Build appdeb itself as a Debian package (python3-appdeb_VERSION-1_all.deb) into dist/ (or $APPDEB_DEB_OUT)
# with stdeb.
#
# Runs in a throw-away copy of the checkout, so deb_dist/, build/ and *.egg-info never litter
# the tree. stdeb needs a setup.py; the project has only setup.cfg + pyproject.toml, so a
# one-line shim is added to the copy. Package metadata overrides (Depends, Maintainer, ...)
# live in stdeb.cfg. Needs: python3-stdeb python3-all dh-python debhelper dpkg-dev fakeroot
# (scripts/install-host-deps.sh installs them).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
# stdeb and dh-python belong to Debian's python3, not to a venv or pyenv interpreter.
PY=/usr/bin/python3
out="${APPDEB_DEB_OUT:-$here/dist}"  # where the .deb goes (tests point this at a tmp dir)

if ! "$PY" -c 'import stdeb' 2>/dev/null || ! command -v dpkg-buildpackage >/dev/null; then
    echo "build-self-deb: needs python3-stdeb and dpkg-dev (run scripts/install-host-deps.sh)" >&2
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/appdeb-selfdeb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/src"
if git -C "$here" rev-parse --git-dir >/dev/null 2>&1; then
    # tracked + untracked-but-not-ignored files: what a release would contain (a tracked file deleted
    # in the working tree is not: tar skips it quietly)
    (cd "$here" && git ls-files -z -co --exclude-standard) |
        (cd "$here" && tar --null --ignore-failed-read --warning=no-failed-read -T - -cf -) | tar -xf - -C "$work/src"
else
    tar -C "$here" --exclude=.git --exclude=.venv --exclude=dist --exclude=build --exclude='*.egg-info' \
        -cf - . | tar -xf - -C "$work/src"
fi
[ -f "$work/src/setup.py" ] || printf 'from setuptools import setup\n\nsetup()\n' >"$work/src/setup.py"

cd "$work/src"
if ! "$PY" setup.py --command-packages=stdeb.command \
        sdist_dsc --with-python2=False --with-python3=True --compat 13 --dist-dir "$work/deb_dist" \
        bdist_deb >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    echo "build-self-deb: stdeb failed (full log above was $work/build.log)" >&2
    exit 1
fi

deb=$(ls "$work"/deb_dist/python3-appdeb_*_all.deb)
# Refuse to hand out a package that cannot work once installed.
if ! dpkg-deb -c "$deb" | grep 'appdeb/_repo/aptly.conf.j2$' >/dev/null; then
    echo "build-self-deb: $deb lacks appdeb/_repo/aptly.conf.j2 (setup.cfg must map appdeb._repo = repo)" >&2
    exit 1
fi
if dpkg-deb -f "$deb" Depends | grep -Eq '(^|[ ,])(python3-)?uv([ ,(]|$)'; then
    echo "build-self-deb: Depends mentions uv, which Debian does not ship; fix stdeb.cfg" >&2
    exit 1
fi
if ! dpkg-deb -f "$deb" Depends | grep -Eq '(^|[ ,])python3-pip([ ,(]|$)'; then
    echo "build-self-deb: Depends lacks python3-pip, which vendors app requirements where uv is absent; fix stdeb.cfg" >&2
    exit 1
fi
mkdir -p "$out"
cp "$deb" "$out/"
dpkg-deb -f "$out/$(basename "$deb")" Package Version Architecture Depends Recommends
echo "built $out/$(basename "$deb")"
