#!/usr/bin/env bash
# S3 → S3 on one server: server-side copy (the default there) against the same sync with
# --no-server-side-copy, which reads and writes every byte through larder. Against a local
# Garage (started here on 127.0.0.1, stopped by PID at the end); prints wall time, larder's
# CPU time and peak RSS of each. Not part of CI.
#
#   bench/server-copy.sh [--big-mib N] [--small N]   (defaults: one 1024 MiB object, 2000 × 4 KiB)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

BIG=1024
SMALL=2000
while [ $# -gt 0 ]; do
    case $1 in
        --big-mib) BIG=$2; shift 2 ;;
        --small) SMALL=$2; shift 2 ;;
        *) echo "usage: bench/server-copy.sh [--big-mib N] [--small N]" >&2; exit 2 ;;
    esac
done

bench_start larder-bench-copy
run=$bucket/copy-$(date +%s)
mkdir -p "$work/big" "$work/small"
head -c $((BIG * 1024 * 1024)) /dev/urandom >"$work/big/blob"
python3 - "$work/small" "$SMALL" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(f"{d}/f{i:05d}", "wb") as f:
        f.write(os.urandom(4096))
PY
"$larder" sync -q "$work/big" "$run/src/big"
"$larder" sync -q "$work/small" "$run/src/small"
rm -rf "$work/big" "$work/small"

# measure NAME ARGS…: one S3 → S3 sync, timed by GNU time.
measure() {
    local name=$1
    shift
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" \
        "$larder" --json sync "$@" >"$work/out"
    read -r wall user sys rss <"$work/time"
    python3 - "$name" "$wall" "$user" "$sys" "$rss" "$work/out" <<'PY'
import json, sys
name, wall, user, sys_, rss, out = sys.argv[1:7]
s = [json.loads(l) for l in open(out) if '"summary"' in l][-1]
print(f"{name:<34} {float(wall):7.2f} s wall  {float(user) + float(sys_):6.2f} s CPU  "
      f"{int(rss) // 1024:5d} MiB RSS  {s['transferred']} objects, "
      f"{s['server_side_copies']} server-side, {s['etag_verified']} ETag-verified")
PY
}

for part in big small; do
    measure "$part: server-side copy" "$run/src/$part" "$run/dst-ssc-$part"
    measure "$part: through larder" --no-server-side-copy "$run/src/$part" "$run/dst-stream-$part"
done
