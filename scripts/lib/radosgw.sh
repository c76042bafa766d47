# Ceph's RADOS Gateway (radosgw), the second S3 test server: versioning, object tags and
# conditional writes, which Garage lacks. Sourced by scripts/test; not run directly.
#
#   ensure_radosgw       install radosgw, ceph-mon and ceph-osd from Debian when missing
#   start_radosgw        a throw-away cluster on 127.0.0.1: one monitor, one OSD with its data
#                        in RAM (memstore), one radosgw, a user and a bucket; exports
#                        LARDER_TEST_RGW_* and RGW_DIR. The caller stops it (stop_radosgw),
#                        usually from its EXIT trap.
#   stop_radosgw         stop radosgw, the OSD and the monitor by the PIDs it recorded, then
#                        delete the data directory
#
# The start sequence follows shared/reference/servers/start-radosgw.sh (Ceph 16 "Pacific" on
# Debian 12), which is known to work on these machines; about 20 s.

# shellcheck source=ports.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

ensure_radosgw() {
    local missing=0 b
    for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool; do
        command -v "$b" >/dev/null || missing=1
    done
    [ "$missing" = 0 ] && return 0
    echo "radosgw not found: installing radosgw ceph-mon ceph-osd from Debian (about 1 minute)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq radosgw ceph-mon ceph-osd; } >&2
    command -v radosgw >/dev/null || { echo "radosgw install failed" >&2; return 1; }
}

# _rgw_wait SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s while the daemons live.
_rgw_wait() {
    local deadline=$((SECONDS + $1)) what=$2 p
    shift 2
    while [ "$SECONDS" -lt "$deadline" ]; do
        "$@" >/dev/null 2>&1 && return 0
        for p in $RGW_PIDS; do
            kill -0 "$p" 2>/dev/null || { echo "start_radosgw: a daemon (pid $p) exited while waiting for $what" >&2; return 1; }
        done
        sleep 0.2
    done
    echo "start_radosgw: timed out waiting for $what" >&2
    return 1
}

_rgw_fail() {
    echo "start_radosgw: $*; last log lines:" >&2
    tail -n 15 "$RGW_DIR"/log/*.log >&2 2>/dev/null || true
    stop_radosgw
    return 1
}

start_radosgw() {
    local port tries=0
    while :; do
        port=$(_random_port)
        if _port_free "$port" && _port_free $((port + 1)); then break; fi
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || { echo "start_radosgw: no free port on 127.0.0.1" >&2; return 1; }
    done
    RGW_DIR=$(mktemp -d -t larder-rgw.XXXXXX)
    export RGW_DIR
    RGW_PIDS=""
    local dir=$RGW_DIR conf=$RGW_DIR/ceph.conf mon_port=$((port + 1))
    local access=larder-rgw-test-key secret=larder-rgw-test-secret-0000000000000001 bucket=larder-test
    local fsid
    fsid=$(cat /proc/sys/kernel/random/uuid)
    mkdir -p "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run" "$dir/log"
    cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr2 = false
ms bind port min = $((port + 2))
ms bind port max = $((port + 40))
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
# A throw-away monitor with a few MiB of data: never refuse for a nearly full disk.
mon data avail warn = 0
mon data avail crit = 0
osd crush chooseleaf type = 0
osd crush update on start = false
osd class update on start = false
osd objectstore = memstore
memstore device bytes = $((4 * 1024 * 1024 * 1024))
osd max object size = 1073741824
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
mon data = $dir/mon
osd data = $dir/osd

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw data = $dir/rgw
rgw dns name = localhost
# SSE-C over plain HTTP on loopback, and SSE-KMS with Ceph's built-in test keys, so the
# encryption options have a real server to talk to.
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = larder-test-key=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
EOF
    monmaptool --create --add a "v1:127.0.0.1:$mon_port" --fsid "$fsid" "$dir/monmap" >/dev/null ||
        { _rgw_fail "monmaptool failed"; return 1; }
    ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >>"$dir/log/setup.log" 2>&1 ||
        { _rgw_fail "ceph-mon --mkfs failed"; return 1; }
    local c=(ceph -c "$conf" --connect-timeout 10)
    setsid ceph-mon -f -c "$conf" -i a </dev/null >>"$dir/log/mon.stdout" 2>&1 &
    echo $! >"$dir/mon.pid"
    RGW_PIDS="$!"
    _rgw_wait 30 "the monitor" "${c[@]}" mon stat || { _rgw_fail "no monitor"; return 1; }
    local osd_uuid osd_id
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    osd_id=$("${c[@]}" osd new "$osd_uuid") || { _rgw_fail "osd new failed"; return 1; }
    ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$dir/log/setup.log" 2>&1 ||
        { _rgw_fail "ceph-osd --mkfs failed"; return 1; }
    "${c[@]}" osd crush add-bucket localhost host >/dev/null 2>&1
    "${c[@]}" osd crush move localhost root=default >/dev/null 2>&1
    "${c[@]}" osd crush add "osd.$osd_id" 1.0 host=localhost >/dev/null 2>&1
    setsid ceph-osd -f -c "$conf" -i "$osd_id" </dev/null >>"$dir/log/osd.stdout" 2>&1 &
    echo $! >"$dir/osd.pid"
    RGW_PIDS="$RGW_PIDS $!"
    _osd_up() { "${c[@]}" osd dump 2>/dev/null | grep -q "^osd.$osd_id up "; }
    _rgw_wait 60 "the OSD" _osd_up || { _rgw_fail "no OSD"; return 1; }
    setsid radosgw -f -c "$conf" -n client.rgw </dev/null >>"$dir/log/rgw.stdout" 2>&1 &
    echo $! >"$dir/server.pid"
    RGW_PIDS="$RGW_PIDS $!"
    _rgw_up() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ]; }
    _rgw_wait 90 "radosgw" _rgw_up || { _rgw_fail "no radosgw"; return 1; }
    radosgw-admin -c "$conf" -n client.rgw user create --uid=larder --display-name=larder \
        --access-key="$access" --secret="$secret" >>"$dir/log/setup.log" 2>&1 ||
        { _rgw_fail "radosgw-admin user create failed"; return 1; }
    local sign=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$access:$secret" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' "${sign[@]}" -X PUT "http://127.0.0.1:$port/$bucket")
    [ "$code" = 200 ] || { _rgw_fail "CreateBucket $bucket failed (HTTP $code)"; return 1; }
    export LARDER_TEST_RGW_ENDPOINT="http://127.0.0.1:$port"
    export LARDER_TEST_RGW_BUCKET=$bucket
    export LARDER_TEST_RGW_ACCESS_KEY_ID=$access
    export LARDER_TEST_RGW_SECRET_ACCESS_KEY=$secret
    export LARDER_TEST_RGW_REGION=us-east-1
    echo "radosgw $(radosgw --version 2>/dev/null | awk '{print $3}') on $LARDER_TEST_RGW_ENDPOINT (pids $RGW_PIDS, data $dir)" >&2
}

stop_radosgw() {
    local dir=${RGW_DIR:-} f pid
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    # radosgw first, then the OSD, then the monitor: each by the PID recorded when started.
    for f in server.pid osd.pid mon.pid; do
        [ -f "$dir/$f" ] || continue
        pid=$(cat "$dir/$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        fi
    done
    rm -rf "$dir"
    RGW_DIR=
}
