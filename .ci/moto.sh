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
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

if [ ! -x "$PY" ]; then
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian and Ubuntu ship venv (ensurepip) apart from python3.
        rm -rf "$VENV"
        echo "moto: '$PYTHON -m venv' failed; installing python3-venv"
        if ! { as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null &&
               as_root env DEBIAN_FRONTEND=noninteractive \
                   apt-get install -y -qq --no-install-recommends python3-venv </dev/null &&
               "$PYTHON" -m venv "$VENV"; }; then
            echo "moto: cannot create a virtualenv; install python3-venv (as root) and run again" >&2
            exit 1
        fi
    fi
fi
"$PY" -m pip install --quiet --disable-pip-version-check "$MOTO_SPEC" boto3
ready || { echo "moto: installed, but $PY cannot import moto.server and boto3" >&2; exit 1; }
echo "moto: $VENV (moto $("$PY" -c 'import moto; print(moto.__version__)'))"
