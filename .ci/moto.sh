#!/bin/sh
# Makes sure moto's S3 server (the object-lock tests run against it) and boto3 are
# installed, in a virtualenv of their own so the system Python is never touched.
# Idempotent: does nothing when the virtualenv already imports both.
#
# Where: $VAULT_MOTO_VENV, else ${XDG_CACHE_HOME:-~/.cache}/vault-moto/venv. The tests look
# in the same place (tests/moto/mod.rs), and run this script themselves when it is empty.
set -eu

MOTO_SPEC="${MOTO_SPEC:-moto[server]>=5,<6}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}"
VENV="${VAULT_MOTO_VENV:-$CACHE/vault-moto/venv}"
PY="$VENV/bin/python"

ready() {
    [ -x "$PY" ] && "$PY" -c 'import moto, moto.server, boto3' >/dev/null 2>&1
}

if ready; then
    echo "moto: $VENV (moto $("$PY" -c 'import moto; print(moto.__version__)'))"
    exit 0
fi

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
    for p in python3 python; do
        if command -v "$p" >/dev/null 2>&1; then PYTHON="$p"; break; fi
    done
fi
if [ -z "$PYTHON" ]; then
    echo "moto: no python3 found; install python3 and python3-venv" >&2
    exit 1
fi

echo "moto: installing $MOTO_SPEC into $VENV"
mkdir -p "$(dirname "$VENV")"
if [ ! -x "$PY" ]; then
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        echo "moto: '$PYTHON -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
        exit 1
    fi
fi
"$PY" -m pip install --quiet --disable-pip-version-check "$MOTO_SPEC" boto3
ready || { echo "moto: installed, but $PY cannot import moto.server and boto3" >&2; exit 1; }
echo "moto: $VENV (moto $("$PY" -c 'import moto; print(moto.__version__)'))"
