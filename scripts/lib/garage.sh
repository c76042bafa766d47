# Garage, the S3 test server: install, start on 127.0.0.1, stop by PID.
# Sourced by scripts/test, scripts/demo and bench scripts; not run directly.
#
#   ensure_garage          install it (cargo install garage --locked) when not on PATH
#   start_garage           start a fresh single-node server with a key and a bucket;
#                          exports LARDER_TEST_S3_* and GARAGE_DIR; registers stop_garage
#                          to run on exit
#   stop_garage            stop it by the PID in $GARAGE_DIR/server.pid and delete its data
#
# The start sequence follows shared/reference/servers/start-garage.sh, which is known to
# work on these machines.

GARAGE_VERSION=${GARAGE_VERSION:-2.5.0}

garage_bin() {
    command -v garage 2>/dev/null || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage"
}

ensure_garage() {
    if [ -x "$(garage_bin)" ]; then
        return 0
    fi
    echo "garage not found: installing garage $GARAGE_VERSION from crates.io (about 10 minutes on 2 cores)" >&2
    cargo install garage --locked --version "$GARAGE_VERSION" >&2
    [ -x "$(garage_bin)" ] || { echo "garage install failed" >&2; return 1; }
}

# shellcheck source=ports.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

start_garage() {
    local bin port dir tries=0
    bin=$(garage_bin)
    while :; do
        port=$(_random_port)
        if _port_free "$port" && _port_free $((port + 1)) && _port_free $((port + 2)); then
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || { echo "start_garage: no free port triple on 127.0.0.1" >&2; return 1; }
    done
    dir=$(mktemp -d -t larder-garage.XXXXXX)
    GARAGE_DIR=$dir
    export GARAGE_DIR
    trap stop_garage EXIT
    trap 'exit 130' INT TERM
    local bucket=larder-test
    local access=GK1a2de500000000000000000001
    local secret=1a2de50000000000000000000000000000000000000000000000000000000001
    local rpc_secret admin_token
    rpc_secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    admin_token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    mkdir -p "$dir/meta" "$dir/data"
    cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
metadata_fsync = false
data_fsync = false
rpc_bind_addr = "127.0.0.1:$((port + 1))"
rpc_public_addr = "127.0.0.1:$((port + 1))"
rpc_secret = "$rpc_secret"

[s3_api]
api_bind_addr = "127.0.0.1:$port"
s3_region = "garage"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$((port + 2))"
admin_token = "$admin_token"
TOML
    chmod 600 "$dir/garage.toml"
    GARAGE_DEFAULT_ACCESS_KEY=$access GARAGE_DEFAULT_SECRET_KEY=$secret GARAGE_DEFAULT_BUCKET=$bucket \
    RUST_LOG=${GARAGE_LOG:-warn} \
        setsid "$bin" -c "$dir/garage.toml" server --single-node --default-bucket \
        </dev/null >>"$dir/server.log" 2>&1 &
    echo $! >"$dir/server.pid"
    local pid
    pid=$(cat "$dir/server.pid")
    local ready=0 code=000
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        if curl -sf -o /dev/null "http://127.0.0.1:$((port + 2))/health"; then
            code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:garage:s3" \
                --user "$access:$secret" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
                -I "http://127.0.0.1:$port/$bucket")
            if [ "$code" = 200 ]; then ready=1; break; fi
        fi
        sleep 0.1
    done
    if [ "$ready" != 1 ]; then
        echo "start_garage: the server did not become ready (bucket HTTP $code); last log lines:" >&2
        tail -n 20 "$dir/server.log" >&2
        return 1
    fi
    export LARDER_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export LARDER_TEST_S3_BUCKET=$bucket
    export LARDER_TEST_S3_ACCESS_KEY_ID=$access
    export LARDER_TEST_S3_SECRET_ACCESS_KEY=$secret
    export LARDER_TEST_S3_REGION=garage
    echo "garage $("$bin" --version 2>/dev/null | head -n1) on $LARDER_TEST_S3_ENDPOINT (pid $pid, data $dir)" >&2
}

stop_garage() {
    local dir=${GARAGE_DIR:-}
    [ -n "$dir" ] && [ -f "$dir/server.pid" ] || return 0
    local pid
    pid=$(cat "$dir/server.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
    GARAGE_DIR=
}
