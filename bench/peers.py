"""The runner behind bench/peers.sh: generates the data, runs each tool on each workload,
reads Garage's request counters around every run, and prints a table and ratios.

Run through bench/peers.sh, which starts Garage and exports what this reads."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

E = os.environ
WORK = E["WORK"]
ENDPOINT = E["LARDER_TEST_S3_ENDPOINT"]
BUCKET = E["LARDER_TEST_S3_BUCKET"]
KEY, SECRET = E["LARDER_TEST_S3_ACCESS_KEY_ID"], E["LARDER_TEST_S3_SECRET_ACCESS_KEY"]
REGION = E["LARDER_TEST_S3_REGION"]
SMALL, TINY, BIG_MIB = int(E["SMALL"]), int(E["TINY"]), int(E["BIG_MIB"])
ONLY = set(filter(None, E.get("ONLY", "").split(",")))
WANTED = [t for t in E["TOOLS"].split(",") if t]

ENV = dict(
    E,
    AWS_ACCESS_KEY_ID=KEY,
    AWS_SECRET_ACCESS_KEY=SECRET,
    AWS_REGION=REGION,
    AWS_DEFAULT_REGION=REGION,
    LARDER_ENDPOINT_URL=ENDPOINT,
    LARDER_STATE_DIR=os.path.join(WORK, "larder-state"),
    # Garage rejects the SDKs' streaming checksum trailers (larder computes its own).
    AWS_REQUEST_CHECKSUM_CALCULATION="when_required",
    AWS_RESPONSE_CHECKSUM_VALIDATION="when_required",
    RCLONE_CONFIG=os.path.join(WORK, "no-rclone.conf"),
    RCLONE_CONFIG_T_TYPE="s3",
    RCLONE_CONFIG_T_PROVIDER="Other",
    RCLONE_CONFIG_T_ACCESS_KEY_ID=KEY,
    RCLONE_CONFIG_T_SECRET_ACCESS_KEY=SECRET,
    RCLONE_CONFIG_T_REGION=REGION,
    RCLONE_CONFIG_T_ENDPOINT=ENDPOINT,
    RCLONE_CONFIG_T_FORCE_PATH_STYLE="true",
)
ENV.pop("AWS_CA_BUNDLE", None)  # rclone 1.60 fails to load one over its own transport


def s3(path):
    return f"s3://{BUCKET}/{path}"


def s3_dir(path):
    return f"s3://{BUCKET}/{path}/"


# Each tool: how to sync SRC to DST (either may be s3://), by default and with 64 in flight.
def larder(src, dst, wide=False):
    return [E["LARDER"], "sync", "-q", src, dst] + (["--concurrency", "64"] if wide else [])


def rclone(src, dst, wide=False):
    conv = lambda p: "T:" + p[5:] if p.startswith("s3://") else p  # noqa: E731
    return ["rclone", "sync", "--quiet", conv(src), conv(dst)] + (
        ["--transfers", "64", "--checkers", "64"] if wide else []
    )


def aws(src, dst, wide=False):
    return ["aws", "--endpoint-url", ENDPOINT, "s3", "sync", "--only-show-errors", src, dst]


def s3sync(src, dst, wide=False):
    side = "target" if dst.startswith("s3://") else "source"
    return [
        "s3sync",
        f"--{side}-endpoint-url", ENDPOINT,
        f"--{side}-force-path-style",
        f"--{side}-region", REGION,
        "--worker-size", "64" if wide else "16",
        src,
        dst,
    ]


def s5cmd(src, dst, wide=False):
    src = src + "/*" if src.startswith("s3://") else src + "/"
    return ["s5cmd", "--endpoint-url", ENDPOINT, "--numworkers", "64" if wide else "256",
            "sync", src, dst + "/"]


def limit(src, dst, wide=False):
    # The yardstick (crates/larder-store/examples/limit.rs): no checks, no state, no fsync.
    return [E["LIMIT"], src, dst, "--concurrency", "64" if wide else "32"]


TOOLS = {"limit": limit, "larder": larder, "rclone": rclone, "aws": aws, "s3sync": s3sync, "s5cmd": s5cmd}


def counters():
    req = urllib.request.Request(
        f"http://127.0.0.1:{E['GARAGE_ADMIN_PORT']}/metrics",
        headers={"Authorization": f"Bearer {E['GARAGE_ADMIN_TOKEN']}"},
    )
    out = {}
    for line in urllib.request.urlopen(req).read().decode().splitlines():
        if line.startswith("api_s3_request_counter{"):
            name = line.split('api_endpoint="')[1].split('"')[0]
            out[name] = float(line.rsplit(" ", 1)[1])
    return out


SHORT = {"ListObjectsV2": "LIST", "ListObjects": "LIST", "HeadObject": "HEAD", "GetObject": "GET",
         "PutObject": "PUT", "UploadPart": "PUT", "CopyObject": "COPY",
         "DeleteObject": "DEL", "DeleteObjects": "DEL"}


def requests_between(before, after):
    out = {}
    for k, v in after.items():
        d = int(v - before.get(k, 0))
        if d:
            name = SHORT.get(k, k)
            out[name] = out.get(name, 0) + d
    return out


RESULTS = []


def run(workload, tool, cmd, objects, mib):
    # What earlier runs left dirty (generated data, a download not fsynced) is written out
    # first, so that its writeback does not land on this run's clock.
    os.sync()
    before = counters()
    t = time.monotonic()
    with open(os.path.join(WORK, "stderr"), "w+") as err:
        p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)  # this child's own CPU and peak RSS
        secs = time.monotonic() - t
        err.seek(0)
        stderr = err.read()
    reqs = requests_between(before, counters())
    cpu = ru.ru_utime + ru.ru_stime
    rss = ru.ru_maxrss / 1024
    ok = os.waitstatus_to_exitcode(status) == 0
    RESULTS.append(dict(workload=workload, tool=tool, secs=secs, cpu=cpu, rss=rss, reqs=reqs, ok=ok))
    if objects:
        rate = f"{objects / secs:8.0f} obj/s"
    elif mib:
        rate = f"{mib / secs:8.1f} MiB/s"
    else:
        rate = f"{'':>14}"
    req = " ".join(f"{k}={v}" for k, v in sorted(reqs.items()))
    print(f"{workload:<4} {tool:<7} {secs:8.2f} s {rate}  cpu {cpu:7.2f} s  "
          f"peak RSS {rss:6.0f} MiB  {'ok' if ok else 'FAILED'}  {req}", flush=True)
    if not ok:
        sys.stderr.write(stderr[-2000:])


def make_files(root, n, size, seed):
    import random
    rnd = random.Random(seed)
    for i in range(n):
        d = os.path.join(root, f"d{i % 100:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:06d}"), "wb") as f:
            f.write(rnd.randbytes(size))


def want(w):
    return not ONLY or w in ONLY


def main():
    tools = [t for t in WANTED if t in ("larder", "limit") or shutil.which(t)]
    missing = [t for t in WANTED if t not in tools]
    print(f"garage {ENDPOINT}; tools: {', '.join(tools)}"
          + (f"; not on PATH (left out): {', '.join(missing)}" if missing else ""), flush=True)
    small, tiny, big = (os.path.join(WORK, d) for d in ("small", "tiny", "big"))
    if want("W1") or want("W2") or want("W3") or want("W7"):
        make_files(small, SMALL, 10 << 10, 1)
    for tool in tools:
        f = TOOLS[tool]
        if want("W1"):
            run("W1", tool, f(small, s3(f"{tool}/small")), SMALL, 0)
        if want("W3") and tool != "limit":  # the yardstick compares nothing: no re-syncs
            run("W3", tool, f(small, s3(f"{tool}/small")), 0, 0)
        if want("W7") and tool != "limit":
            changed = os.path.join(WORK, f"small-{tool}")
            shutil.copytree(small, changed)
            make_files(os.path.join(changed, "d00"), SMALL // 100, 10 << 10, 7)
            run("W7", tool, f(changed, s3(f"{tool}/small")), 0, 0)
        if want("W2"):
            run("W2", tool, f(s3(f"{tool}/small"), os.path.join(WORK, f"down-{tool}")), SMALL, 0)
            run("W2x", tool, f(s3(f"{tool}/small"), os.path.join(WORK, f"down64-{tool}"), True),
                SMALL, 0)
    if want("W4") or want("W5"):
        os.makedirs(big, exist_ok=True)
        with open(os.path.join(big, "one.bin"), "wb") as fh:
            for _ in range(BIG_MIB):
                fh.write(os.urandom(1 << 20))
        for tool in tools:
            f = TOOLS[tool]
            run("W4", tool, f(big, s3(f"{tool}/big")), 0, BIG_MIB)
            back = os.path.join(WORK, f"big-{tool}")
            run("W5", tool, f(s3(f"{tool}/big"), back), 0, BIG_MIB)
            subprocess.run(["cmp", os.path.join(big, "one.bin"), os.path.join(back, "one.bin")],
                           check=True)
            shutil.rmtree(back)
            if tool == "larder":
                # Stored with a whole-object CRC64NVME (as AWS adds to every new object): the
                # download is verified by that CRC instead of by part MD5s.
                run("W4c", tool, f(big, s3(f"{tool}/bigcrc")) + ["--checksum-algorithm", "crc64nvme"],
                    0, BIG_MIB)
                run("W5c", tool, f(s3(f"{tool}/bigcrc"), back), 0, BIG_MIB)
                subprocess.run(["cmp", os.path.join(big, "one.bin"),
                                os.path.join(back, "one.bin")], check=True)
                shutil.rmtree(back)
    if want("W6"):
        make_files(tiny, TINY, 1 << 10, 6)
        if not shutil.which("rclone"):
            sys.exit("W6 needs rclone to seed the bucket (apt-get install rclone, or --install)")
        print(f"W6: seeding {TINY} × 1 KiB with rclone", flush=True)
        run("seed", "rclone", rclone(tiny, s3("w6"), True), TINY, 0)
        for tool in [t for t in tools if t not in ("larder", "limit")] + ["larder"]:
            run("W6", tool, TOOLS[tool](tiny, s3("w6")), 0, 0)
        run("W6b", "larder", larder(tiny, s3("w6")), 0, 0)
        if "s3sync" in tools:
            run("W6b", "s3sync", s3sync(tiny, s3("w6")), 0, 0)
        # The same objects as a vault: indexed once (one LIST pass), synced once (adopted,
        # manifest published), then the no-op that issue #7 is about: no LIST at all.
        vault = [E["LARDER"], "-q", "vault", "--home", os.path.join(WORK, "vault-home")]
        run("V0", "add", vault + ["add", "w6", tiny, s3("w6")], 0, 0)
        run("V1", "reconcile", vault + ["sync", "reconcile", "w6", "--allow-list-scan"], 0, 0)
        run("V2", "first", vault + ["sync", "w6"], 0, 0)
        run("V3", "no-op", vault + ["sync", "w6"], 0, 0)

    print("\nwall time of each peer as a multiple of larder's (>1: larder is faster)")
    by = {}
    for r in RESULTS:
        by.setdefault(r["workload"], {})[r["tool"]] = r
    for w, rs in by.items():
        if "larder" not in rs:
            continue
        base = rs["larder"]["secs"]
        ratios = "  ".join(f"{t} {r['secs'] / base:5.2f}" for t, r in rs.items() if t != "larder")
        print(f"{w:<4} larder {base:7.2f} s  {ratios}")
    with open(os.path.join(os.getcwd(), "target", "peers.json"), "w") as fh:
        json.dump(RESULTS, fh, indent=1)


main()
