#!/usr/bin/env bash
# End-to-end throughput of `larder sync` against a local Garage (started here on 127.0.0.1,
# stopped by PID at the end): 10,000 × 10 KiB files up, a no-op re-sync, down; one 1 GiB
# file up and down. Prints objects/s, MiB/s and peak RSS per run.
#
#   bench/e2e.sh [--small N] [--big-mib M] [--aws]   (defaults 10000 and 1024)
#
# --aws also times `aws s3 sync` (awscli, defaults) on the same small files, for comparison.
#
# Numbers depend on the machine; they are for comparing builds and tools on the same one.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

SMALL=10000
BIG_MIB=1024
AWS=0
while [ $# -gt 0 ]; do
    case $1 in
        --small) SMALL=$2; shift 2 ;;
        --big-mib) BIG_MIB=$2; shift 2 ;;
        --aws) AWS=1; shift ;;
        *) echo "usage: bench/e2e.sh [--small N] [--big-mib M] [--aws]" >&2; exit 2 ;;
    esac
done

bench_start larder-bench

echo "making $SMALL files of 10 KiB and one of $BIG_MIB MiB in $work" >&2
python3 - "$work" "$SMALL" "$BIG_MIB" <<'PY'
import os, sys
work, n, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(work, "small", f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(os.urandom(10240))
os.makedirs(os.path.join(work, "big"), exist_ok=True)
with open(os.path.join(work, "big", "one.bin"), "wb") as f:
    for _ in range(big):
        f.write(os.urandom(1 << 20))
PY

# run NAME ARGS…: runs larder with --json, prints one result line from its summary and the
# peak RSS of the process (getrusage of the child).
run() {
    local name=$1; shift
    python3 - "$name" "$larder" "$@" <<'PY'
import json, resource, subprocess, sys, time
name, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
p = subprocess.run(cmd + ["--json"], capture_output=True, text=True)
secs = time.monotonic() - t
if p.returncode != 0:
    sys.stderr.write(p.stderr)
    sys.exit(f"{name}: exit {p.returncode}")
s = [json.loads(l) for l in p.stdout.splitlines() if '"summary"' in l][-1]
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
n, b = s["transferred"], s["bytes"] / (1 << 20)
print(f"{name:<22} {n:>7} obj {s['skipped']:>7} skip {b:>9.1f} MiB {secs:>7.2f} s "
      f"{n / secs:>9.0f} obj/s {b / secs:>8.1f} MiB/s  peak RSS {rss:>6.0f} MiB  "
      f"verified {s['etag_verified']}")
PY
}

echo "garage: $LARDER_TEST_S3_ENDPOINT; larder: $("$larder" --version)"
run "small up"          sync "$work/small" "$bucket/small"
run "small no-op"       sync "$work/small" "$bucket/small"
run "small down"        sync "$bucket/small" "$work/small-back"
run "small down no-op"  sync "$bucket/small" "$work/small-back"
run "big up"            sync "$work/big" "$bucket/big"
run "big down"          sync "$bucket/big" "$work/big-back"
cmp "$work/big/one.bin" "$work/big-back/one.bin"

if [ "$AWS" = 1 ]; then
    command -v aws >/dev/null || { echo "--aws needs the AWS CLI (pip install awscli)" >&2; exit 2; }
    # Like larder: no streaming checksum trailers, which Garage rejects.
    export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
    timed() {
        local name=$1; shift
        local t0 t1
        t0=$(date +%s.%N)
        "$@" >/dev/null
        t1=$(date +%s.%N)
        python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'{sys.argv[3]:<22} {s:7.2f} s')" "$t0" "$t1" "$name"
    }
    a=(aws --endpoint-url "$LARDER_TEST_S3_ENDPOINT" s3 sync --only-show-errors)
    timed "aws small up" "${a[@]}" "$work/small" "$bucket/aws-small"
    timed "aws small no-op" "${a[@]}" "$work/small" "$bucket/aws-small"
    timed "aws small down" "${a[@]}" "$bucket/aws-small" "$work/aws-back"
fi
