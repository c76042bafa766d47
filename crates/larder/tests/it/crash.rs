//! SIGKILL at random moments (seeded): no partial object or file is ever visible under its
//! final name, the next run converges byte for byte, and a multipart upload the killed run
//! left is resumed from its parts (or aborted), never left behind. (Issue #12; bench/soak.sh
//! and `CRASH_POINTS` run more points.)

use std::path::Path;
use std::time::{Duration, Instant};

use larder_testutil::proxy::{Fault, Proxy};
use rand::{Rng, SeedableRng};

use crate::s3::larder_s3;
use crate::*;

/// A proxy that only adds `ms` of latency per request, and counts.
fn slow_proxy(ms: u64) -> Proxy {
    let env = larder_testutil::s3_env();
    Proxy::start(
        &env.endpoint,
        Fault::ThrottleAbove {
            max: u64::MAX,
            retry_after: None,
            latency_ms: ms,
        },
    )
}

/// `larder sync --json` with 5 MiB parts, through `endpoint` (a fault proxy).
pub(crate) fn sync_cmd(home: &Path, endpoint: &str, src: &str, dst: &str) -> std::process::Command {
    let (mut c, _) = larder_s3(home);
    c.env("LARDER_ENDPOINT_URL", endpoint)
        .args([
            "sync",
            "--json",
            "--multipart-threshold",
            "5Mi",
            "--part-size",
            "5Mi",
        ])
        .arg(src)
        .arg(dst)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// Uploads `src` to `url` one part at a time through a slow proxy and SIGKILLs larder once
/// the proxy has received `parts` UploadPart requests.
fn kill_after_parts(home: &Path, src: &Path, url: &str, parts: u64) {
    let slow = slow_proxy(150);
    let mut child = sync_cmd(home, &slow.endpoint, src.to_str().unwrap(), url)
        .args(["--parts-in-flight", "1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow.part_puts() < parts && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn s3_a_killed_multipart_upload_is_resumed_from_its_parts() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let data: Vec<u8> = (0..(30u32 << 20)).map(|i| (i % 253) as u8).collect();
    write(&src.join("big.bin"), &data);
    let (_, url) = larder_s3(d.path());
    // Three of the six parts acknowledged (one in flight at a time), then SIGKILL.
    kill_after_parts(d.path(), &src, &url, 4);
    assert_eq!(
        bucket_objects(&url).len(),
        0,
        "no object under its final name"
    );
    assert_eq!(
        uploads_in_progress(&url),
        1,
        "the killed run's upload is on the server"
    );

    let counted = slow_proxy(0);
    let out = run(&mut sync_cmd(
        d.path(),
        &counted.endpoint,
        src.to_str().unwrap(),
        &url,
    ));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        counted.part_puts() <= 3,
        "resumed: {} parts sent again of 6",
        counted.part_puts()
    );
    assert_eq!(bucket_objects(&url), [("big.bin".to_owned(), data)]);
    assert_eq!(uploads_in_progress(&url), 0);
}

#[test]
fn s3_a_killed_runs_upload_of_a_key_no_longer_sent_is_aborted_by_the_next_run() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let data: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 249) as u8).collect();
    write(&src.join("big.bin"), &data);
    let (_, url) = larder_s3(d.path());
    kill_after_parts(d.path(), &src, &url, 2);
    assert_eq!(uploads_in_progress(&url), 1);
    // The file is gone from the source: nothing to resume, the upload is an orphan.
    std::fs::remove_file(src.join("big.bin")).unwrap();
    write(&src.join("small.txt"), b"small");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["sync", "--json"]).arg(&src).arg(&url));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["orphan_uploads_aborted"], 1);
    assert_eq!(uploads_in_progress(&url), 0);
}

fn tree(root: &Path) {
    for i in 0..30u32 {
        let data: Vec<u8> = (0..(500 + i * 997))
            .map(|b| (b % 251) as u8 ^ i as u8)
            .collect();
        write(&root.join(format!("d{}/f{i:02}", i % 3)), &data);
    }
    for i in 0..2u8 {
        let data: Vec<u8> = (0..(12u32 << 20)).map(|b| (b % 241) as u8 ^ i).collect();
        write(&root.join(format!("big{i}.bin")), &data);
    }
}

/// Kills `larder sync src dst` at `points` seeded moments; after each, `check` sees what is
/// under final names. Then one run to the end.
fn kill_at_random(d: &Path, seed: u64, points: usize, src: &str, dst: &str, check: impl Fn()) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let slow = slow_proxy(15);
    for _ in 0..points {
        let wait = Duration::from_millis(rng.gen_range(20..900));
        let mut child = sync_cmd(d, &slow.endpoint, src, dst).spawn().unwrap();
        std::thread::sleep(wait);
        let _ = child.kill(); // it may have finished: then there is nothing to kill
        child.wait().unwrap();
        check();
    }
    let out = run(&mut sync_cmd(d, &slow.endpoint, src, dst));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run after the kills converges"
    );
}

#[test]
fn s3_sigkill_at_random_moments_never_shows_a_partial_object_or_file() {
    let points: usize = std::env::var("CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    let want: Vec<(String, Vec<u8>)> = files_under(&src)
        .into_iter()
        .map(|(p, b)| {
            (
                p.strip_prefix(&src).unwrap().to_str().unwrap().to_owned(),
                b,
            )
        })
        .collect();
    let (_, url) = larder_s3(d.path());

    // Up: every object in the bucket is whole.
    kill_at_random(d.path(), 17, points, src.to_str().unwrap(), &url, || {
        for (k, bytes) in bucket_objects(&url) {
            let source = want.iter().find(|(p, _)| *p == k).map(|(_, b)| b);
            assert_eq!(source, Some(&bytes), "`{k}` is visible but not whole");
        }
    });
    assert_eq!(bucket_objects(&url), want);
    assert_eq!(
        uploads_in_progress(&url),
        0,
        "no multipart upload left behind"
    );

    // Down: every file under its final name is whole.
    let back = d.path().join("back");
    kill_at_random(d.path(), 23, points, &url, back.to_str().unwrap(), || {
        for (p, bytes) in files_under(&back) {
            let rel = p.strip_prefix(&back).unwrap().to_str().unwrap().to_owned();
            if rel
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".larder-tmp."))
            {
                continue; // a temp file: not under a final name, removed by the next run
            }
            let source = want.iter().find(|(k, _)| *k == rel).map(|(_, b)| b);
            assert_eq!(source, Some(&bytes), "`{rel}` is visible but not whole");
        }
    });
    let got: Vec<(String, Vec<u8>)> = files_under(&back)
        .into_iter()
        .map(|(p, b)| {
            (
                p.strip_prefix(&back).unwrap().to_str().unwrap().to_owned(),
                b,
            )
        })
        .collect();
    assert_eq!(got, want, "byte-identical, no temp file left");
}

#[test]
fn s3_a_file_written_to_while_it_is_read_is_never_sent_torn() {
    use std::os::unix::fs::FileExt;
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let data: Vec<u8> = (0..(24u32 << 20)).map(|i| (i % 239) as u8).collect();
    write(&src.join("big.bin"), &data);
    write(&src.join("small.txt"), b"small");
    let (_, url) = larder_s3(d.path());
    // Another program keeps writing into the middle of big.bin (same size).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, path) = (stop.clone(), src.join("big.bin"));
    let writer = std::thread::spawn(move || {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut b = 0u8;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            b = b.wrapping_add(1);
            f.write_all_at(&[b], 10 << 20).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        b
    });
    let slow = slow_proxy(40);
    let out = run(
        sync_cmd(d.path(), &slow.endpoint, src.to_str().unwrap(), &url).args([
            "--parts-in-flight",
            "1",
            "--retries",
            "1",
        ]),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let last = writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "that key failed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("big.bin") && stdout.contains("changed while it was read"),
        "named: {stdout}{stderr}"
    );
    let objects = bucket_objects(&url);
    assert_eq!(
        objects,
        [("small.txt".to_owned(), b"small".to_vec())],
        "no torn big.bin, the rest sent"
    );
    assert_eq!(uploads_in_progress(&url), 0);

    // Quiet again: the next run sends it whole.
    let out = run(&mut sync_cmd(
        d.path(),
        &slow.endpoint,
        src.to_str().unwrap(),
        &url,
    ));
    assert_eq!(out.status.code(), Some(0));
    let mut want = data;
    want[10 << 20] = last;
    let objects = bucket_objects(&url);
    assert_eq!(objects[0], ("big.bin".to_owned(), want));
}

#[test]
fn s3_a_file_deleted_mid_run_fails_that_key_only() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    for i in 0..40 {
        write(
            &src.join(format!("f{i:02}")),
            format!("file {i}").as_bytes(),
        );
    }
    let (_, url) = larder_s3(d.path());
    let slow = slow_proxy(60);
    let child = sync_cmd(d.path(), &slow.endpoint, src.to_str().unwrap(), &url)
        .args(["--concurrency", "1"])
        .spawn()
        .unwrap();
    // Listed, a few sent: the last file goes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.requests() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(src.join("f39")).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"event\":\"error\""))
        .collect();
    assert_eq!(errors.len(), 1, "{text}");
    assert!(errors[0].contains("f39"), "{}", errors[0]);
    assert_eq!(bucket_objects(&url).len(), 39, "every other file sent");
}

/// Partial copies (`.larder-tmp.partial-…`) below `dir`.
fn partials(dir: &Path) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".larder-tmp.partial-"))
        })
        .collect()
}

#[test]
fn s3_a_killed_download_resumes_from_its_partial_copy_and_a_damaged_one_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let data: Vec<u8> = (0..(40u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    write(&src.join("big.bin"), &data);
    let (_, url) = larder_s3(d.path());
    let env = larder_testutil::s3_env();
    let out = run(&mut sync_cmd(
        d.path(),
        &env.endpoint,
        src.to_str().unwrap(),
        &url,
    ));
    assert_eq!(out.status.code(), Some(0));

    let back = d.path().join("back");
    let kill_midway = |ms: u64, after_gets: u64| {
        let slow = slow_proxy(ms);
        let mut child = sync_cmd(d.path(), &slow.endpoint, &url, back.to_str().unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while slow.requests() < after_gets && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The parts are written as their chunks arrive: killed once the partial copy holds
        // the first whole part (5 MiB), while later ones are still on their way.
        let first_part_kept = || {
            partials(&back)
                .iter()
                .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() >= 5 << 20))
        };
        while !first_part_kept() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    };
    // Killed once the first ranged GETs came back (the next ones were sent): a partial copy,
    // no file under its final name.
    kill_midway(300, 8);
    let p = partials(&back);
    assert_eq!(p.len(), 1, "one partial copy");
    let kept = std::fs::metadata(&p[0]).unwrap().len();
    assert!(kept >= 5 << 20, "whole parts were written: {kept}");
    assert!(
        !back.join("big.bin").exists(),
        "no file under its final name"
    );

    // The next run sends only what is missing, and checks every byte against the ETag.
    let out = run(&mut sync_cmd(
        d.path(),
        &env.endpoint,
        &url,
        back.to_str().unwrap(),
    ));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert!(s["bytes"].as_u64().unwrap() < 40 << 20, "resumed: {s}");
    assert_eq!(s["etag_verified"], 1);
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), data);
    assert_eq!(partials(&back), Vec::<std::path::PathBuf>::new());

    // A partial copy damaged while nobody looked: the ETag check refuses the result, the
    // copy is dropped, and the retry downloads it whole.
    std::fs::remove_file(back.join("big.bin")).unwrap();
    kill_midway(300, 8);
    let p = partials(&back);
    assert_eq!(p.len(), 1);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&p[0]).unwrap();
        f.write_all_at(&[0xAA ^ data[1000]], 1000).unwrap();
    }
    let out = run(&mut sync_cmd(
        d.path(),
        &env.endpoint,
        &url,
        back.to_str().unwrap(),
    ));
    assert_eq!(out.status.code(), Some(0), "retried after the mismatch");
    assert_eq!(std::fs::read(back.join("big.bin")).unwrap(), data);
    assert_eq!(partials(&back), Vec::<std::path::PathBuf>::new());
}

/// Ctrl-C stops in order (uploads in flight aborted, 130); a second Ctrl-C while that is
/// going exits at once, with 130 too, saying so.
#[test]
fn s3_a_second_ctrl_c_exits_at_once_with_130() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("big.bin"), &vec![3u8; 30 << 20]);
    let (_, url) = larder_s3(d.path());
    // Every request takes 1.5 s: the abort after the first Ctrl-C too.
    let slow = slow_proxy(1500);
    let child = sync_cmd(d.path(), &slow.endpoint, src.to_str().unwrap(), &url)
        .args(["--parts-in-flight", "1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow.part_puts() < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    let int = || {
        assert!(std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success())
    };
    int();
    std::thread::sleep(Duration::from_millis(300));
    int();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted: stopping"), "{err}");
    assert!(err.contains("interrupted again: exiting now"), "{err}");
}
