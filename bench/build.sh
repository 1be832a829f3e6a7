#!/bin/sh
# Build-time benchmark: appdeb vs the limit pipeline on examples/flaskapp and bench/bigapp (see bench/build.py).
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" bench/build.py "$@"
