#!/usr/bin/env bash
# `larder cache sync` (kache's v3 layout: a manifest LIST, one pack GET per entry) against the
# plain per-entry mirror `larder sync cacache://… s3://…` (one object per content file and per
# index bucket), on a synthetic npm cache of N packages (a tarball and a packument each),
# against a local Garage (started here on 127.0.0.1, stopped by PID at the end).
#
#   bench/cache-sync.sh [--packages N] [--lock M]   (defaults 500 and 100)
#
# Prints per run: wall time, requests (LIST/GET/PUT, from the JSON summary when the command
# reports them) and peak RSS. --lock M also times a pull filtered by a package-lock.json of
# M of the packages. `cache sync` defaults to 16 transfers at once (kache's default), plain
# `sync` to 32: the pull is also run at 32 for a like-for-like figure. Numbers depend on the machine; compare runs made side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

N=500
M=100
while [ $# -gt 0 ]; do
    case $1 in
        --packages) N=$2; shift 2 ;;
        --lock) M=$2; shift 2 ;;
        *) echo "usage: bench/cache-sync.sh [--packages N] [--lock M]" >&2; exit 2 ;;
    esac
done

bench_start larder-bench-cache
bucket=$bucket/bench-$(date +%s)

echo "making an npm cache of $N packages (tarball 4–60 KiB, packument 2–8 KiB each) in $work" >&2
python3 - "$work" "$N" "$M" <<'PY'
import json, os, random, sys
work, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(7)
os.makedirs(f"{work}/blobs", exist_ok=True)
reg = "https://registry.npmjs.org"
with open(f"{work}/entries", "w") as out:
    for i in range(n):
        name = f"pkg-{i:04d}" if i % 10 else f"@scope{i % 7}/pkg-{i:04d}"
        base = name.split("/")[-1]
        for kind, size in (("tgz", random.randint(4 << 10, 60 << 10)), ("doc", random.randint(2 << 10, 8 << 10))):
            path = f"{work}/blobs/{i}.{kind}"
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            url = f"{reg}/{name}/-/{base}-1.0.0.tgz" if kind == "tgz" else f"{reg}/{name.replace('/', '%2f')}"
            out.write(f"make-fetch-happen:request-cache:{url}\t{path}\n")
lock = {"lockfileVersion": 3, "packages": {"": {"name": "bench"}}}
for i in range(0, n, max(1, n // m))[:m]:
    name = f"pkg-{i:04d}" if i % 10 else f"@scope{i % 7}/pkg-{i:04d}"
    lock["packages"][f"node_modules/{name}"] = {"version": "1.0.0"}
os.makedirs(f"{work}/project", exist_ok=True)
with open(f"{work}/project/package-lock.json", "w") as f:
    json.dump(lock, f)
PY
while IFS=$'\t' read -r key path; do
    "$larder" cache --cache "$work/c0" put "$key" "$path" >/dev/null
done < "$work/entries"

# run NAME DIR ARGS…: runs larder --json in DIR; prints time, requests, peak RSS.
run() {
    local name=$1 dir=$2; shift 2
    (cd "$dir" && python3 - "$name" "$larder" "$@" <<'PY'
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
q = s.get("requests")
req = f"LIST {q['list']:>5} GET {q['get']:>5} PUT {q['put']:>5}" if q else "requests: not reported"
moved = s.get("pulled", s.get("pushed", s.get("transferred", 0)))
if "pushed" in s and s.get("pulled", 0) == 0:
    moved = s["pushed"]
print(f"{name:<34} {secs:>7.2f} s  {moved:>6} moved  {req}  peak RSS {rss:>5.0f} MiB")
PY
    )
}

echo "garage: $LARDER_TEST_S3_ENDPOINT; larder: $("$larder" --version); $N packages, $((2 * N)) entries"
run "cache sync push (packs)"        "$work" cache --cache "$work/c0" sync --push --all "$bucket/ks"
run "plain sync push (per object)"   "$work" sync "cacache://$work/c0" "$bucket/plain"
run "cache sync pull --all (-j 16)"  "$work" cache --cache "$work/c1" sync --pull --all "$bucket/ks"
run "cache sync pull --all -j 32"     "$work" cache --cache "$work/c1b" sync --pull --all --concurrency 32 "$bucket/ks"
run "plain sync pull (-j 32)"        "$work" sync "$bucket/plain" "cacache://$work/c2"
run "cache sync pull, lockfile of $M" "$work/project" cache --cache "$work/c3" sync --pull "$bucket/ks"
run "cache sync pull --all, no-op"   "$work" cache --cache "$work/c1" sync --pull --all "$bucket/ks"
run "plain sync pull, no-op"         "$work" sync "$bucket/plain" "cacache://$work/c2"
"$larder" cache --cache "$work/c1" verify >/dev/null
"$larder" cache --cache "$work/c2" verify >/dev/null
