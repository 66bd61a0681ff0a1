# Sourced by the bench scripts: a single-node Garage on free 127.0.0.1 ports, for
# benchmarks against S3. Needs `log` defined by the caller.
#
#   garage_start DIR LOGFILE   find (or install with .ci/garage.sh) and start Garage with its
#                              state in DIR; sets GARAGE, GARAGE_PID, S3_PORT, S3_ENDPOINT,
#                              ADMIN_PORT, ADMIN_TOKEN, METRICS_TOKEN, S3_KEY_ID, S3_SECRET
#                              (a key named "bench") and exports the AWS_* variables.
#   garage_bucket NAME         create bucket NAME, readable and writable with that key.
#   garage_stop                stop the server (safe to call when it never started).

GARAGE_PID=""

garage_free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
garage_hex() { python3 -c "import secrets; print(secrets.token_hex($1))"; }
garage_cli() { "$GARAGE" -c "$GARAGE_DIR/garage.toml" "$@"; }
garage_retry() { local i; for i in 1 2 3 4 5 6 7 8 9 10; do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done; "$@"; }

garage_start() {
    GARAGE_DIR="$1"
    local logfile="$2" rpc_port node
    GARAGE="${GARAGE_BIN:-$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")}"
    if [ ! -x "$GARAGE" ]; then
        log "garage not found: installing it with .ci/garage.sh (several minutes)"
        sh "$REPO_ROOT/.ci/garage.sh" >&2
        GARAGE="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
    fi
    mkdir -p "$GARAGE_DIR/meta" "$GARAGE_DIR/data"
    rpc_port=$(garage_free_port); S3_PORT=$(garage_free_port); ADMIN_PORT=$(garage_free_port)
    ADMIN_TOKEN=$(garage_hex 16); METRICS_TOKEN=$(garage_hex 16)
    cat > "$GARAGE_DIR/garage.toml" <<EOF
metadata_dir = "$GARAGE_DIR/meta"
data_dir = "$GARAGE_DIR/data"
db_engine = "sqlite"
replication_factor = 1
metadata_fsync = false
data_fsync = false
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(garage_hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token = "$ADMIN_TOKEN"
metrics_token = "$METRICS_TOKEN"
EOF
    log "starting garage $("$GARAGE" --version 2>/dev/null | awk '{ print $2 }') on 127.0.0.1:$S3_PORT"
    RUST_LOG=warn "$GARAGE" -c "$GARAGE_DIR/garage.toml" server > "$logfile" 2>&1 &
    GARAGE_PID=$!
    for _ in $(seq 1 100); do garage_cli status >/dev/null 2>&1 && break; sleep 0.2; done
    node=$(garage_cli node id -q 2>/dev/null | cut -d@ -f1)
    garage_retry garage_cli layout assign -z dc1 -c 100G "$node"
    garage_retry garage_cli layout apply --version 1
    S3_KEY_ID="GK$(garage_hex 12)"; S3_SECRET=$(garage_hex 32)
    garage_retry garage_cli key import --yes -n bench "$S3_KEY_ID" "$S3_SECRET"
    S3_ENDPOINT="http://127.0.0.1:$S3_PORT"
    export AWS_ACCESS_KEY_ID="$S3_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3_SECRET"
    export AWS_ENDPOINT_URL="$S3_ENDPOINT" AWS_REGION=garage AWS_DEFAULT_REGION=garage
}

garage_bucket() {
    garage_retry garage_cli bucket create "$1"
    garage_retry garage_cli bucket allow --read --write --owner "$1" --key bench
}

garage_stop() {
    if [ -n "$GARAGE_PID" ]; then kill "$GARAGE_PID" 2>/dev/null || true; wait "$GARAGE_PID" 2>/dev/null || true; fi
    GARAGE_PID=""
}
