#!/bin/sh
# Install the Debian tools appdeb drives (build, nodes, repository). Idempotent and quick when done.
set -eu

PACKAGES="dpkg-dev debootstrap systemd-container aptly gnupg zstd shellcheck curl iproute2 \
python3-venv python3-stdeb python3-all dh-python debhelper fakeroot lintian"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages:$missing (run this script as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
