//! The CLI against the Garage test server: sync both ways, verify, errors; and verify on
//! objects uploaded by the AWS CLI (multipart included).

use std::path::Path;
use std::process::Command;

use crate::*;

/// `larder` pointed at the test server with its credentials.
pub fn larder_s3(state: &Path) -> (Command, String) {
    let env = larder_testutil::s3_env();
    let mut c = larder(state);
    c.env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env("AWS_REGION", &env.region)
        .env("LARDER_ENDPOINT_URL", &env.endpoint);
    let url = format!("s3://{}/{}", env.bucket, larder_testutil::unique("cli"));
    (c, url)
}

fn tree(root: &Path) {
    write(&root.join("a.txt"), b"alpha");
    write(&root.join("dir/b c.txt"), b"bravo");
    let big: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
    write(&root.join("big.bin"), &big);
}

#[test]
fn s3_sync_up_down_and_verify() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    let (mut c, url) = larder_s3(d.path());
    let out = run(c
        .args(["sync", "--json", "--checksum-algorithm", "crc64nvme"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(
        (
            s["transferred"].as_u64(),
            s["etag_verified"].as_u64(),
            s["checksum_verified"].as_u64()
        ),
        (Some(3), Some(3), Some(3))
    );

    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync", "--json"]).arg(&src).arg(&url));
    let s = summary(&out);
    assert_eq!(
        (
            s["transferred"].as_u64(),
            s["skipped"].as_u64(),
            s["heads"].as_u64()
        ),
        (Some(0), Some(3), Some(0))
    );

    let back = d.path().join("back");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync", "--json"]).arg(&url).arg(&back));
    // The two single-part objects by their ETag; the multipart one by the whole-object
    // CRC64NVME it was stored with, which the part-size lookup reported (no MD5 pass).
    let s = summary(&out);
    assert_eq!(
        (s["etag_verified"].as_u64(), s["checksum_verified"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    assert_eq!(
        std::fs::read(back.join("big.bin")).unwrap(),
        std::fs::read(src.join("big.bin")).unwrap()
    );

    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args(["verify", "--checksum-algorithm", "crc64nvme"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("match")).count(),
        3,
        "{text}"
    );

    // A local change shows as a difference, exit 3.
    write(&src.join("a.txt"), b"ALPHA!");
    write(&src.join("new.txt"), b"n");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["verify", "--json"]).arg(&src).arg(&url));
    assert_eq!(out.status.code(), Some(3));
    let statuses: Vec<(String, String)> = json_lines(&out)
        .into_iter()
        .filter(|v| v["event"] == "status")
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("a.txt".into(), "size_mismatch".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("new.txt".into(), "missing".into())),
        "{statuses:?}"
    );
}

#[test]
fn s3_errors_name_the_bucket_and_the_cause() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync"]).arg(&src).arg("s3://no-such-bucket-cli/x"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bucket `no-such-bucket-cli` does not exist"),
        "{err}"
    );
    let (mut c, url) = larder_s3(d.path());
    let out = run(c
        .env("AWS_SECRET_ACCESS_KEY", "0".repeat(64))
        .args(["sync"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") || err.contains("403"),
        "{err}"
    );
    assert!(err.contains("hint: check the credentials"), "{err}");
}

/// The AWS CLI, installed by `.ci/run` (`pip install awscli`).
fn aws(state: &Path) -> Command {
    let env = larder_testutil::s3_env();
    let mut c = Command::new("aws");
    c.env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env("AWS_DEFAULT_REGION", &env.region)
        .env("AWS_CONFIG_FILE", state.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            state.join("no-aws-credentials"),
        )
        // Like larder: no streaming checksum trailers, which Garage rejects.
        .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
        .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
        .args(["--endpoint-url", &env.endpoint]);
    c
}

#[test]
fn s3_verify_works_on_objects_uploaded_by_the_aws_cli() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    // A part size larder does not use, so verify must find it (as --auto-chunksize does).
    write(&src.join("odd-parts.bin"), &vec![7u8; 13 << 20]);
    let (_, url) = larder_s3(d.path());
    let status = aws(d.path())
        .args(["s3", "cp", "--recursive", "--only-show-errors"])
        .arg(&src)
        .arg(&url)
        .env("AWS_MAX_CONCURRENT_REQUESTS", "4")
        .status()
        .expect("the AWS CLI is installed (pip install awscli)");
    assert!(status.success());
    let cfg = d.path().join("aws-config");
    std::fs::write(
        &cfg,
        "[default]\ns3 =\n  multipart_chunksize = 6MB\n  multipart_threshold = 6MB\n",
    )
    .unwrap();
    let status = aws(d.path())
        .env("AWS_CONFIG_FILE", &cfg)
        .args(["s3", "cp", "--only-show-errors"])
        .arg(src.join("odd-parts.bin"))
        .arg(format!("{url}/odd-parts.bin"))
        .status()
        .unwrap();
    assert!(status.success());

    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["verify", "--json"]).arg(&src).arg(&url));
    let lines = json_lines(&out);
    let statuses: Vec<(String, String)> = lines
        .iter()
        .filter(|v| v["event"] == "status")
        .map(|v| {
            (
                v["key"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("a.txt".to_owned(), "match".to_owned()),
            ("big.bin".to_owned(), "match".to_owned()),
            ("dir/b c.txt".to_owned(), "match".to_owned()),
            ("odd-parts.bin".to_owned(), "match".to_owned()),
        ]
    );
    assert_eq!(out.status.code(), Some(0));
    // And a download of those objects is verified against their multipart ETags.
    let back = d.path().join("back");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync", "--json"]).arg(&url).arg(&back));
    assert_eq!(summary(&out)["etag_verified"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_ctrl_c_aborts_the_upload_before_exiting_130() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("big.bin"), &vec![3u8; 160 << 20]);
    let (mut c, url) = larder_s3(d.path());
    let prefix = prefix_of(&url);
    let mut child = c
        .args(["sync", "-q", "--parts-in-flight", "1"])
        .arg(&src)
        .arg(&url)
        .spawn()
        .unwrap();
    let store = larder_testutil::s3_store(larder_store::S3Options::default(), Some(&prefix)).await;
    let mut started = false;
    for _ in 0..1500 {
        if !store.multipart_uploads("").await.unwrap().is_empty() {
            started = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(started, "the multipart upload was seen in progress");
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(130), "interrupted");
    // The binary waited for the abort before exiting: nothing is left, right away.
    assert_eq!(store.multipart_uploads("").await.unwrap(), []);
    use larder_store::Store as _;
    assert!(store
        .head(&larder_store::Key::new("big.bin").unwrap())
        .await
        .unwrap()
        .is_none());
}

#[test]
fn s3_to_s3_takes_endpoints_per_side() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    let (mut c, from) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&from))
            .status
            .code(),
        Some(0)
    );
    let real = larder_testutil::s3_env().endpoint;
    let to = format!("{from}-copy");
    // The common endpoint is wrong; only the per-side ones can make this work.
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .env("LARDER_ENDPOINT_URL", "http://127.0.0.1:9")
        .args([
            "sync",
            "--json",
            "--source-endpoint-url",
            &real,
            "--target-endpoint-url",
            &real,
        ])
        .arg(&from)
        .arg(&to));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["transferred"], 1);
    // And without the overrides the wrong endpoint is used and named.
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .env("LARDER_ENDPOINT_URL", "http://127.0.0.1:9")
        .args(["sync"])
        .arg(&from)
        .arg(&to));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not reach `http://127.0.0.1:9`"),
        "{err}"
    );
}

/// Garage → radosgw: two servers, two sets of credentials (profiles). The default streams
/// every object through larder; `--server-side-copy` forces a copy the destination's server
/// cannot make, which fails by key and writes nothing.
#[test]
fn s3_rgw_between_two_servers_objects_stream_and_a_forced_server_copy_fails_by_key() {
    let (garage, rgw) = (larder_testutil::s3_env(), larder_testutil::rgw_env());
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    let (mut c, from) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&from))
            .status
            .code(),
        Some(0)
    );
    let profile = |name: &str, e: &larder_testutil::S3Env| {
        format!(
            "[{name}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            e.access_key_id, e.secret_access_key
        )
    };
    write(
        &d.path().join("no-aws-credentials"),
        format!("{}{}", profile("g", &garage), profile("r", &rgw)).as_bytes(),
    );
    let to = format!(
        "s3://{}/{}",
        rgw.bucket,
        larder_testutil::unique("from-garage")
    );
    let two_servers = |c: &mut Command| {
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .args(["--source-endpoint-url", &garage.endpoint])
            .args(["--source-profile", "g", "--source-region", &garage.region])
            .args(["--target-endpoint-url", &rgw.endpoint])
            .args(["--target-profile", "r", "--target-region", &rgw.region]);
    };
    let (mut c, _) = larder_s3(d.path());
    c.args(["sync", "--json"]);
    two_servers(&mut c);
    let out = run(c.arg(&from).arg(&to));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].as_u64(), s["server_side_copies"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(s["etag_verified"], 1);

    let forced = format!("{to}-forced");
    let (mut c, _) = larder_s3(d.path());
    c.args(["sync", "--server-side-copy"]);
    two_servers(&mut c);
    let out = run(c.arg(&from).arg(&forced));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.txt"), "{err}");
    let ls = |url: &str| {
        let (mut c, _) = larder_s3(d.path());
        let out = run(c
            .env_remove("AWS_ACCESS_KEY_ID")
            .args(["ls", "--json", "--endpoint-url", &rgw.endpoint])
            .args(["--profile", "r", "--region", &rgw.region])
            .arg(url));
        assert_eq!(out.status.code(), Some(0));
        out
    };
    assert!(json_lines(&ls(&forced)).is_empty(), "nothing written");
    let listed = ls(&to);
    assert_eq!(json_lines(&listed).len(), 1, "the streamed copy is listed");
}

/// rclone, installed by `.ci/run` (Debian's `rclone`), pointed at the test server.
fn rclone(state: &Path) -> Command {
    let env = larder_testutil::s3_env();
    let mut c = Command::new("rclone");
    // rclone 1.60 cannot load a CA bundle over its own transport (and needs none here).
    c.env_remove("AWS_CA_BUNDLE")
        .env("RCLONE_CONFIG", state.join("no-rclone.conf"))
        .env("RCLONE_CONFIG_T_TYPE", "s3")
        .env("RCLONE_CONFIG_T_PROVIDER", "Other")
        .env("RCLONE_CONFIG_T_ACCESS_KEY_ID", &env.access_key_id)
        .env("RCLONE_CONFIG_T_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env("RCLONE_CONFIG_T_REGION", &env.region)
        .env("RCLONE_CONFIG_T_ENDPOINT", &env.endpoint)
        .env("RCLONE_CONFIG_T_FORCE_PATH_STYLE", "true")
        .args([
            "--quiet",
            "--s3-upload-cutoff",
            "5M",
            "--s3-chunk-size",
            "5M",
        ]);
    c
}

/// A bucket another tool filled is adopted: no PUT and no HEAD, each key reported as
/// adopted in the dry run, and the run after that costs only the LIST.
fn assert_adopts_without_resending(d: &Path, src: &Path, url: &str, tool: &str) {
    let (mut c, _) = larder_s3(d);
    let out = run(c.args(["sync", "--dry-run"]).arg(src).arg(url));
    assert_eq!(out.status.code(), Some(0), "{tool}");
    let plan = String::from_utf8_lossy(&out.stdout);
    let adopted: Vec<&str> = plan.lines().filter(|l| l.starts_with("adopt ")).collect();
    assert_eq!(
        adopted.len(),
        3,
        "{tool}: every key adopted in the plan:\n{plan}"
    );
    assert!(
        !plan.lines().any(|l| l.starts_with("transfer")),
        "{tool}: {plan}"
    );
    for _ in 0..2 {
        let (mut c, _) = larder_s3(d);
        let out = run(c.args(["sync", "--json"]).arg(src).arg(url));
        assert_eq!(out.status.code(), Some(0), "{tool}");
        let s = summary(&out);
        assert_eq!(
            (
                s["transferred"].as_u64(),
                s["skipped"].as_u64(),
                s["heads"].as_u64()
            ),
            (Some(0), Some(3), Some(0)),
            "{tool}: nothing re-sent, no HEAD"
        );
    }
    // The second of those runs decided from the state database: nothing adopted again.
    let (mut c, _) = larder_s3(d);
    let out = run(c.args(["sync", "--json"]).arg(src).arg(url));
    assert_eq!(summary(&out)["adopted"].as_u64(), Some(0), "{tool}");
}

#[test]
fn s3_buckets_filled_by_the_aws_cli_and_rclone_are_adopted_not_reuploaded() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    let (_, url) = larder_s3(d.path());
    let status = aws(d.path())
        .args(["s3", "sync", "--only-show-errors"])
        .arg(&src)
        .arg(&url)
        .status()
        .expect("the AWS CLI is installed (pip install awscli)");
    assert!(status.success());
    assert_adopts_without_resending(d.path(), &src, &url, "aws s3 sync");

    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    let (_, url) = larder_s3(d.path());
    let env = larder_testutil::s3_env();
    let remote = format!("T:{}", url.strip_prefix("s3://").unwrap());
    let status = rclone(d.path())
        .arg("copy")
        .arg(&src)
        .arg(&remote)
        .status()
        .expect("rclone is installed (apt-get install rclone)");
    assert!(status.success(), "rclone copy to {} failed", env.endpoint);
    assert_adopts_without_resending(d.path(), &src, &url, "rclone copy");

    // And the other way: files rclone downloaded (mtimes restored from its metadata) and
    // files copied without their mtimes are not downloaded again.
    let down = d.path().join("down");
    let status = rclone(d.path())
        .arg("copy")
        .arg(&remote)
        .arg(&down)
        .status()
        .unwrap();
    assert!(status.success());
    let plain = d.path().join("plain");
    tree(&plain);
    for dst in [&down, &plain] {
        let (mut c, _) = larder_s3(d.path());
        let out = run(c.args(["sync", "--json"]).arg(&url).arg(dst));
        assert_eq!(out.status.code(), Some(0));
        let s = summary(&out);
        assert_eq!(
            (
                s["transferred"].as_u64(),
                s["skipped"].as_u64(),
                s["heads"].as_u64()
            ),
            (Some(0), Some(3), Some(0)),
            "{}",
            dst.display()
        );
    }
}

#[test]
fn s3_cleanup_aborts_multipart_uploads_left_behind() {
    let d = tempfile::tempdir().unwrap();
    let env = larder_testutil::s3_env();
    let (_, url) = larder_s3(d.path());
    let prefix = prefix_of(&url);
    // An upload another tool started and never finished.
    let out = aws(d.path())
        .args([
            "s3api",
            "create-multipart-upload",
            "--bucket",
            &env.bucket,
            "--key",
        ])
        .arg(format!("{prefix}/left-behind.bin"))
        .output()
        .expect("the AWS CLI is installed (pip install awscli)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cleanup = |args: &[&str]| {
        let (mut c, _) = larder_s3(d.path());
        run(c.args(["--json", "cleanup"]).args(args).arg(&url))
    };
    // Younger than the default hour: kept.
    let out = cleanup(&[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["kept"], 1);
    // All of them, first as a dry run.
    let out = cleanup(&["--older-than", "0s", "--dry-run"]);
    let lines = json_lines(&out);
    assert_eq!(lines[0]["key"], "left-behind.bin");
    assert_eq!(lines[0]["outcome"], "would abort");
    let out = cleanup(&["--older-than", "0s"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["aborted"], 1);
    let out = cleanup(&["--older-than", "0s"]);
    assert_eq!(
        (
            summary(&out)["aborted"].as_u64(),
            summary(&out)["kept"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

/// `--rate-limit-objects` and `--rate-limit-bandwidth` hold the pace across all workers, up
/// and down. Only lower bounds are asserted (a run cannot be faster than its limit allows);
/// how close to the limit a run comes is measured by `bench/ratelimit.sh`, not here.
#[test]
fn s3_rate_limits_hold_the_pace_across_workers() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    for i in 0..12 {
        write(
            &src.join(format!("f{i:02}")),
            format!("file {i}").as_bytes(),
        );
    }
    let (mut c, url) = larder_s3(d.path());
    let t = std::time::Instant::now();
    let out = run(c
        .args(["sync", "--json", "-j", "8", "--rate-limit-objects", "10"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["transferred"], 12);
    // 12 objects at 10 a second from an empty bucket of tokens: 1.2 s at least.
    assert!(t.elapsed().as_secs_f64() >= 1.15, "{:?}", t.elapsed());

    let big = d.path().join("big");
    write(&big.join("blob"), &vec![7u8; 1 << 20]);
    let (mut c, big_url) = larder_s3(d.path());
    let t = std::time::Instant::now();
    let out = run(c
        .args(["sync", "--json", "--rate-limit-bandwidth", "512Ki"])
        .arg(&big)
        .arg(&big_url));
    assert_eq!(out.status.code(), Some(0));
    assert!(t.elapsed().as_secs_f64() >= 1.9, "up: {:?}", t.elapsed());
    let (mut c, _) = larder_s3(d.path());
    let down = d.path().join("down");
    let t = std::time::Instant::now();
    let out = run(c
        .args(["sync", "--json", "--rate-limit-bandwidth", "512Ki"])
        .arg(&big_url)
        .arg(&down));
    assert_eq!(out.status.code(), Some(0));
    assert!(t.elapsed().as_secs_f64() >= 1.9, "down: {:?}", t.elapsed());
    assert_eq!(
        std::fs::read(down.join("blob")).unwrap(),
        vec![7u8; 1 << 20]
    );
    // A zero limit is a usage error, not an endless run.
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args(["sync", "--rate-limit-bandwidth", "0"])
        .arg(&big)
        .arg(&big_url));
    assert_eq!(out.status.code(), Some(2));
}

/// `--max-buffer-memory` holds large transfers back: with room for one large object, eight
/// workers download four 20 MiB objects one at a time (its four ranged GETs at most in flight);
/// with room for all, they overlap. Small objects are not held back by it.
#[test]
fn s3_large_downloads_wait_for_room_in_the_memory_budget() {
    use larder_testutil::proxy::{Fault, Proxy};
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 253) as u8).collect();
    for i in 0..4 {
        std::fs::write(src.join(format!("big{i}.bin")), &big).unwrap();
    }
    let url = format!("s3://{}/{}/", env.bucket, larder_testutil::unique("budget"));
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync", "-q"]).arg(&src).arg(&url));
    assert_eq!(out.status.code(), Some(0));

    let peak = |budget: &str, dir: &str| {
        // Never throttles; 150 ms per request, so that requests that may overlap do.
        let slow = Fault::ThrottleAbove {
            max: 1000,
            retry_after: None,
            latency_ms: 150,
        };
        let proxy = Proxy::start(&env.endpoint, slow);
        let (mut c, _) = larder_s3(d.path());
        let out = run(c
            .env("LARDER_ENDPOINT_URL", &proxy.endpoint)
            .args([
                "sync",
                "-q",
                "--concurrency",
                "8",
                "--max-buffer-memory",
                budget,
            ])
            .arg(&url)
            .arg(d.path().join(dir)));
        assert_eq!(out.status.code(), Some(0));
        for i in 0..4 {
            assert_eq!(
                std::fs::read(d.path().join(dir).join(format!("big{i}.bin"))).unwrap(),
                big
            );
        }
        proxy.peak_in_flight()
    };
    let tight = peak("40Mi", "tight");
    assert!(tight <= 4, "one object's four ranges at most, saw {tight}");
    let roomy = peak("1Gi", "roomy");
    assert!(roomy > 4, "objects overlap with room for all, saw {roomy}");
}
