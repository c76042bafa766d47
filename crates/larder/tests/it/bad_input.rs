//! Bad or hostile surroundings (issue #14): a server that never answers, one that answers
//! garbage, a full disk, SIGTERM, temp files a killed run left, impossible option values.
//! Each gives a documented exit code and a one-line error naming the culprit, and leaves
//! nothing half-written.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::s3::larder_s3;
use crate::*;

/// `larder` with credentials, pointed at `endpoint`.
fn larder_at(state: &Path, endpoint: &str) -> Command {
    let mut c = larder(state);
    c.env("AWS_ACCESS_KEY_ID", "GK0000")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "garage")
        .env("LARDER_ENDPOINT_URL", endpoint);
    c
}

/// A TCP server on 127.0.0.1 that hands every connection to `serve` on its own thread, for
/// the life of the test process.
fn server(serve: fn(std::net::TcpStream)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || serve(s));
        }
    });
    format!("http://{addr}")
}

fn stderr_line(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("larder: error"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line:\n{err}");
    lines[0].to_owned()
}

#[test]
fn a_server_that_never_answers_times_out_naming_the_endpoint() {
    let endpoint = server(|mut s| {
        // Accept, read what comes, never answer.
        let mut buf = [0u8; 4096];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("src/a"), b"a");
    let started = Instant::now();
    let out = run(larder_at(d.path(), &endpoint)
        .args(["sync", "--timeout", "1s", "--connect-timeout", "1s"])
        .arg(d.path().join("src"))
        .arg("s3://bucket/x"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "gave up in {:?}",
        started.elapsed()
    );
    let line = stderr_line(&out);
    assert!(line.contains(&format!("`{endpoint}`")), "{line}");
    assert!(line.contains("timed out"), "{line}");
}

#[test]
fn a_server_that_answers_garbage_is_named_as_not_s3() {
    // An HTTP server that answers everything 200 with a body that is not S3's XML.
    let web = server(|mut s| {
        let mut buf = [0u8; 8192];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                return;
            }
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\n";
            if s.write_all(head)
                .and_then(|_| s.write_all(b"<html>hello</html>"))
                .is_err()
            {
                return;
            }
        }
    });
    // Not HTTP at all.
    let raw = server(|mut s| {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02 garbage garbage\r\n\r\n");
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
    });
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("src/a"), b"a");
    for endpoint in [web, raw] {
        let out = run(larder_at(d.path(), &endpoint)
            .args(["sync", "--timeout", "2s", "--connect-timeout", "1s"])
            .arg(d.path().join("src"))
            .arg("s3://bucket/x"));
        assert_eq!(out.status.code(), Some(1));
        let line = stderr_line(&out);
        assert!(line.contains(&format!("`{endpoint}`")), "{line}");
        assert!(
            line.contains("not S3") || line.contains("not HTTP"),
            "{line}"
        );
    }
}

#[test]
fn zero_concurrency_and_parts_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("src/a"), b"a");
    for args in [
        ["--concurrency", "0"],
        ["--parts-in-flight", "0"],
        ["--timeout", "0s"],
    ] {
        let out = run(larder(d.path())
            .arg("sync")
            .args(args)
            .arg(d.path().join("src"))
            .arg(d.path().join("dst")));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(args[0]), "{args:?}: {err}");
        assert!(!d.path().join("dst").exists(), "nothing written");
    }
    let out = run(larder(d.path())
        .args(["verify", "-j", "0"])
        .arg(d.path().join("src"))
        .arg(d.path().join("dst")));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn temp_files_a_killed_run_left_are_removed_by_the_next_run_and_live_ones_kept() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    write(&src.join("sub/b.txt"), b"bravo");
    let dst = d.path().join("dst");
    // Left by a killed run: nobody holds them.
    write(&dst.join(".larder-tmp.00000000000000aa"), b"partial");
    write(&dst.join("sub/.larder-tmp.00000000000000bb"), b"partial");
    // Held by a live writer (this process, as another larder would): kept.
    let live = dst.join("sub/.larder-tmp.00000000000000cc");
    write(&live, b"in flight");
    let held = std::fs::File::open(&live).unwrap();
    held.try_lock().unwrap();
    std::thread::sleep(Duration::from_millis(20)); // created before the run starts
    let out = run(larder(d.path())
        .args(["sync", "--json"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(s["transferred"], 2);
    assert_eq!(s["stale_temps_removed"], 2);
    assert_eq!(temps(&dst), [live.display().to_string()]);
    drop(held);
    // Without --json the count is said in words.
    let out = run(larder(d.path()).args(["sync"]).arg(&src).arg(&dst));
    assert!(String::from_utf8_lossy(&out.stderr).contains("removed 1 stale temp file"));
    assert!(temps(&dst).is_empty());
}

#[test]
fn s3_sigterm_mid_download_stops_like_ctrl_c_and_exits_143() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    for i in 0..40 {
        write(&src.join(format!("f{i:02}")), &vec![i as u8; 3 << 20]);
    }
    let (mut c, url) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&url))
            .status
            .code(),
        Some(0)
    );
    let back = d.path().join("back");
    let (mut c, _) = larder_s3(d.path());
    let mut child = c
        .args(["sync", "-q", "-j", "8"])
        .arg(&url)
        .arg(&back)
        .spawn()
        .unwrap();
    // Wait for downloads to be under way (temp files or finished files appear).
    let started = Instant::now();
    while files_under(&back).is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "terminated");
    assert!(
        temps(&back).is_empty(),
        "temp files left: {:?}",
        temps(&back)
    );
    // What is there is whole; a rerun completes.
    for (f, _) in files_under(&back) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(src.join(&name)).unwrap()
        );
    }
    let (mut c, _) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&url).arg(&back))
            .status
            .code(),
        Some(0)
    );
    assert_eq!(files_under(&back).len(), 40);
}

/// A 1 MiB tmpfs, unmounted when dropped (the tests run as root, as CI does).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(at)
            .status()
            .expect("mount(8)");
        assert!(ok.success(), "mounting a tmpfs needs root (as CI runs)");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn s3_a_full_disk_names_the_file_and_the_cause_and_leaves_no_temp_file() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("small.txt"), b"fits");
    write(&src.join("big.bin"), &vec![9u8; 3 << 20]);
    let (mut c, url) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&url))
            .status
            .code(),
        Some(0)
    );
    let full = Tmpfs::mount(&d.path().join("full"));
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync", "--retries", "0"]).arg(&url).arg(&full.0));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("big.bin"))
        .unwrap_or_else(|| panic!("an error naming big.bin:\n{err}"));
    assert!(line.contains("No space left on device"), "{line}");
    assert!(
        line.contains(&full.0.join("big.bin").display().to_string()),
        "{line}"
    );
    assert!(temps(&full.0).is_empty(), "{:?}", temps(&full.0));
    assert_eq!(std::fs::read(full.0.join("small.txt")).unwrap(), b"fits");
    assert!(!full.0.join("big.bin").exists());
}

#[test]
fn s3_a_put_answered_without_an_etag_is_checked_and_never_a_silent_success() {
    use larder_testutil::proxy::{Fault, Proxy};
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    write(&src.join("b.txt"), b"bravo");
    write(&src.join("big.bin"), &vec![5u8; 12 << 20]);
    let (_, url) = larder_s3(d.path());

    // The server stored the objects but its answers lost their ETags: one HEAD each shows
    // the right object, so the transfers count as verified.
    let strip = Proxy::start(&env.endpoint, Fault::StripPutEtag);
    let out = run(&mut crate::crash::sync_cmd(
        d.path(),
        &strip.endpoint,
        src.to_str().unwrap(),
        &url,
    ));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].as_u64(), s["etag_verified"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        strip.faulted(),
        3,
        "two PUTs and one CompleteMultipartUpload lost their ETag"
    );

    // The server answers 200 without an ETag and stores nothing: each key is reported, by
    // name, as not verified, with the warnings exit code.
    let swallow = Proxy::start(&env.endpoint, Fault::SwallowPuts);
    write(&src.join("a.txt"), b"ALPHA!");
    write(&src.join("c.txt"), b"charlie");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .env("LARDER_ENDPOINT_URL", &swallow.endpoint)
        .args(["sync", "--json", "--retries", "0"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(3));
    let lines = json_lines(&out);
    let mut failed: Vec<&str> = lines
        .iter()
        .filter(|v| v["event"] == "error")
        .map(|v| {
            let e = v["error"].as_str().unwrap();
            assert!(e.contains("without an ETag"), "{e}");
            // c.txt is not there at all; a.txt is, but the old version.
            assert!(
                e.contains("does not have the object") || e.contains("holds 5 bytes where 6"),
                "{e}"
            );
            v["key"].as_str().unwrap()
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["a.txt", "c.txt"]);
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].as_u64(), s["verify_failures"].as_u64()),
        (Some(0), Some(2))
    );
}

#[test]
fn a_download_whose_body_stalls_times_out_naming_the_key() {
    // Enough of S3 to list one 1 MiB object, whose body stops after 1 KiB and never ends.
    let endpoint = server(|s| {
        let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
        let mut s = s;
        loop {
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let first = head.lines().next().unwrap_or("").to_owned();
            if first.contains("list-type=2") {
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                    <ListBucketResult><Name>bucket</Name><Prefix>x/</Prefix><KeyCount>1</KeyCount>\
                    <MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
                    <Contents><Key>x/stalls.bin</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>\
                    <ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>1048576</Size>\
                    <StorageClass>STANDARD</StorageClass></Contents></ListBucketResult>";
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                    xml.len()
                );
            } else if first.starts_with("GET") {
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\
                      ETag: \"0123456789abcdef0123456789abcdef\"\r\n\r\n",
                );
                let _ = s.write_all(&[7u8; 1024]);
                std::thread::sleep(Duration::from_secs(120));
                return;
            } else {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        }
    });
    let d = tempfile::tempdir().unwrap();
    let dst = d.path().join("dst");
    let started = Instant::now();
    let out = run(larder_at(d.path(), &endpoint)
        .args([
            "sync",
            "--idle-timeout",
            "2s",
            "--retries",
            "0",
            "s3://bucket/x",
        ])
        .arg(&dst));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("stalls.bin"))
        .unwrap_or_else(|| panic!("an error naming the key:\n{err}"));
    assert!(
        line.contains("timed out") || line.contains("stalled"),
        "{line}"
    );
    assert!(temps(&dst).is_empty() && !dst.join("stalls.bin").exists());
}

#[test]
fn s3_a_byte_flipped_on_the_wire_in_a_parallel_part_download_is_caught_and_retried() {
    // Verified by the multipart ETag, recomputed from part MD5s.
    flipped_download_is_caught(&["--multipart-threshold", "5Mi"], "etag_verified");
}

/// An object stored with a whole-object CRC64NVME is verified by it instead of by part MD5s
/// (a fraction of the CPU), and a flipped byte is caught all the same.
#[test]
fn s3_a_byte_flipped_in_a_download_verified_by_its_full_object_crc_is_caught_and_retried() {
    flipped_download_is_caught(
        &[
            "--multipart-threshold",
            "5Mi",
            "--checksum-algorithm",
            "crc64nvme",
        ],
        "checksum_verified",
    );
}

/// The same for a large object sent in one PutObject: the read asks for its stored
/// checksum, and its whole-object CRC then stands for the serial MD5 of the ETag.
#[test]
fn s3_a_byte_flipped_in_a_single_part_download_verified_by_its_crc_is_caught_and_retried() {
    flipped_download_is_caught(
        &[
            "--multipart-threshold",
            "64Mi",
            "--checksum-algorithm",
            "crc32c",
        ],
        "checksum_verified",
    );
}

fn flipped_download_is_caught(upload_args: &[&str], verified_by: &str) {
    use larder_testutil::proxy::{Fault, Proxy};
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    // 20 MiB: read as parallel ranges (along its 5 MiB parts when it has them).
    let data: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 253) as u8).collect();
    write(&src.join("big.bin"), &data);
    let (mut c, url) = larder_s3(d.path());
    let out = run(c
        .args(["sync", "-q", "--part-size", "5Mi"])
        .args(upload_args)
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));

    // Every attempt corrupted: the digest recomputed differs, the key fails as an integrity
    // error, and nothing is written.
    let flip = Proxy::start(&env.endpoint, Fault::FlipRangedGetBodies(u64::MAX));
    let back = d.path().join("back");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .env("LARDER_ENDPOINT_URL", &flip.endpoint)
        .args(["sync", "--json", "--retries", "1"])
        .arg(&url)
        .arg(&back));
    assert_eq!(out.status.code(), Some(3), "a verification failure");
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].as_u64(), s["verify_failures"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(flip.faulted() >= 2, "both attempts were corrupted");
    assert!(!back.join("big.bin").exists());
    assert!(temps(&back).is_empty());

    // One corrupted answer only: the retry reads it right, verified.
    let once = Proxy::start(&env.endpoint, Fault::FlipRangedGetBodies(1));
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .env("LARDER_ENDPOINT_URL", &once.endpoint)
        .args(["sync", "--json"])
        .arg(&url)
        .arg(&back));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(s[verified_by], 1, "{s}");
    assert_eq!(
        s["etag_verified"].as_u64().unwrap() + s["checksum_verified"].as_u64().unwrap(),
        1,
        "verified one way: {s}"
    );
    assert_eq!(once.faulted(), 1);
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), data);
}

/// Upload bodies are sent unsigned (the signed Content-MD5 stands for them): bytes damaged
/// on the way are still refused by the server, the part or object is sent again, and what
/// is stored is exactly the file, single-part and multipart alike.
#[test]
fn s3_upload_bytes_damaged_in_flight_are_refused_and_sent_again() {
    use larder_testutil::proxy::{Fault, Proxy};
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let big: Vec<u8> = (0..12u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    std::fs::write(src.join("small.txt"), b"small but damaged once").unwrap();
    let url = format!(
        "s3://{}/{}/",
        env.bucket,
        larder_testutil::unique("flip-put")
    );
    // Two damaged bodies: whichever requests they hit (a part, the small object) fail with
    // BadDigest and are retried.
    let flip = Proxy::start(&env.endpoint, Fault::FlipPutBodies(2));
    let out = run(&mut crate::crash::sync_cmd(
        d.path(),
        &flip.endpoint,
        src.to_str().unwrap(),
        &url,
    ));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].as_u64(), s["etag_verified"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(flip.faulted(), 2, "two bodies were damaged");
    // Read back past the proxy: exactly the files.
    let back = d.path().join("back");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync", "-q"]).arg(&url).arg(&back));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), big);
    assert_eq!(
        std::fs::read(back.join("small.txt")).unwrap(),
        b"small but damaged once"
    );
}
