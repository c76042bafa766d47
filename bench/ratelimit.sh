#!/usr/bin/env bash
# Rate limits (`--rate-limit-objects`, `--rate-limit-bandwidth`) measured end to end against
# a local Garage (started here on 127.0.0.1, stopped by PID at the end): N small objects
# uploaded at R objects a second should take N/R seconds, and S bytes at B bytes a second
# S/B seconds, both within 10 %. Not part of CI: a benchmark, not a timed test.
#
#   bench/ratelimit.sh [--objects N] [--rate R] [--bytes SIZE_MIB] [--bandwidth MIB_PER_S]
#   (defaults 10000 objects at 200/s: 50 s; 64 MiB at 4 MiB/s: 16 s)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

N=10000
R=200
MIB=64
BW=4
while [ $# -gt 0 ]; do
    case $1 in
        --objects) N=$2; shift 2 ;;
        --rate) R=$2; shift 2 ;;
        --bytes) MIB=$2; shift 2 ;;
        --bandwidth) BW=$2; shift 2 ;;
        *) echo "usage: bench/ratelimit.sh [--objects N] [--rate R] [--bytes MIB] [--bandwidth MIB/S]" >&2; exit 2 ;;
    esac
done

bench_start larder-bench-rate
run=$bucket/rate-$(date +%s)

python3 - "$work/small" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    p = f"{d}/d{i % 100:02d}"
    os.makedirs(p, exist_ok=True)
    with open(f"{p}/f{i:05d}", "wb") as f:
        f.write(os.urandom(1024))
PY
mkdir -p "$work/big"
head -c $((MIB * 1024 * 1024)) /dev/urandom >"$work/big/blob"

# check NAME EXPECTED_SECONDS COMMAND…: runs it, prints the time and whether it is within 10 %.
check() {
    local name=$1 want=$2
    shift 2
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    python3 - "$name" "$want" "$t0" "$t1" <<'PY'
import sys
name, want, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
took = t1 - t0
ok = abs(took - want) <= 0.1 * want
print(f"{name:<48} {took:7.2f} s  (expected {want:.1f} s ± 10 %)  {'ok' if ok else 'OUT OF RANGE'}")
PY
}

check "upload $N × 1 KiB at $R objects/s" "$(python3 -c "print($N / $R)")" \
    "$larder" sync "$work/small" "$run/small" --rate-limit-objects "$R"
check "upload $MIB MiB at $BW MiB/s" "$(python3 -c "print($MIB / $BW)")" \
    "$larder" sync "$work/big" "$run/big" --rate-limit-bandwidth "${BW}Mi"
check "download $MIB MiB at $BW MiB/s" "$(python3 -c "print($MIB / $BW)")" \
    "$larder" sync "$run/big" "$work/big-down" --rate-limit-bandwidth "${BW}Mi"
check "download $N × 1 KiB at $R objects/s" "$(python3 -c "print($N / $R)")" \
    "$larder" sync "$run/small" "$work/small-down" --rate-limit-objects "$R"
