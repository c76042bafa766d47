#!/usr/bin/env bash
# The fault soak: N rounds of `larder sync` up and down through the fault-injecting proxy
# (seeded 503/500/429, resets before and mid-body, answers dropped after the server acted,
# flipped bytes, delays) at a given rate, against a local Garage (started here on 127.0.0.1,
# stopped by PID at the end). Each round runs until the sync converges, then checks the bucket
# directly and the disk; prints a line a round, faults injected by kind, and the totals:
# objects lost, objects corrupted, temp files left, multipart uploads left.
#
# Then the SIGKILL test with --crash-points kill points each way (CI runs 5).
#
#   bench/soak.sh [--rounds N] [--percent P] [--seed S] [--crash-points K]
#                 (defaults 20, 10, 1, 20)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/garage.sh

ROUNDS=20
PERCENT=10
SEED=1
CRASH=20
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --percent) PERCENT=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --crash-points) CRASH=$2; shift 2 ;;
        *) echo "usage: bench/soak.sh [--rounds N] [--percent P] [--seed S] [--crash-points K]" >&2; exit 2 ;;
    esac
done

trap 'stop_garage' EXIT
ensure_garage
start_garage
trap 'stop_garage' EXIT
SOAK_ROUNDS=$ROUNDS SOAK_PERCENT=$PERCENT SOAK_SEED=$SEED \
    cargo nextest run -p larder --run-ignored only -E 'test(=faults::s3_soak)' --no-capture \
    --status-level fail --final-status-level fail 2>&1 |
    grep -E '^(round|[0-9]+ rounds|objects lost)|panicked|FAIL'
echo "SIGKILL at $CRASH random points up and $CRASH down:"
CRASH_POINTS=$CRASH cargo nextest run -p larder -E 'test(=crash::s3_sigkill_at_random_moments_never_shows_a_partial_object_or_file)' \
    --status-level fail --final-status-level pass 2>&1 | grep -E 'PASS|FAIL|panicked'
