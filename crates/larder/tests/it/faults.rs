//! Through a proxy that injects faults at random (seeded): 503 SlowDown, 500, 429, resets
//! before and in the middle of answers, answers dropped after the server acted, flipped
//! bytes, delays. After every run, checked directly against the server and the disk:
//! nothing lost, nothing corrupted, no temp file, no multipart upload left behind; a rerun
//! converges. (Issue #12; the soak version with more rounds is for bench/.)

use std::path::Path;

use larder_testutil::proxy::{Fault, Proxy};

use crate::s3::larder_s3;
use crate::*;

fn tree(root: &Path) {
    for i in 0..40u32 {
        let data: Vec<u8> = (0..(1000 + i * 1237))
            .map(|b| (b % 251) as u8 ^ i as u8)
            .collect();
        write(&root.join(format!("d{}/f{i:02}", i % 4)), &data);
    }
    for i in 0..2u8 {
        let data: Vec<u8> = (0..(12u32 << 20)).map(|b| (b % 241) as u8 ^ i).collect();
        write(&root.join(format!("big{i}.bin")), &data);
    }
}

/// The files below `root` by relative path, with their bytes.
fn files(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    files_under(root)
        .into_iter()
        .map(|(p, d)| (p.strip_prefix(root).unwrap().to_path_buf(), d))
        .collect()
}

/// Runs `larder sync` through the proxy until it exits 0 (at most `tries` times); returns
/// the exit codes seen.
fn converge(home: &Path, proxy: &Proxy, src: &str, dst: &str, tries: usize) -> Vec<i32> {
    let mut codes = Vec::new();
    for _ in 0..tries {
        let (mut c, _) = larder_s3(home);
        let out = c
            .env("LARDER_ENDPOINT_URL", &proxy.endpoint)
            .args([
                "sync",
                "-q",
                "--multipart-threshold",
                "5Mi",
                "--part-size",
                "5Mi",
            ])
            .args(["--timeout", "5s"])
            .arg(src)
            .arg(dst)
            .output()
            .unwrap();
        let code = out.status.code().unwrap_or(-1);
        codes.push(code);
        if code == 0 {
            break;
        }
        // A failed run names what failed, one line each.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.lines().any(|l| l.starts_with("larder:")),
            "exit {code} says why:\n{err}"
        );
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_random_faults_lose_and_corrupt_nothing_and_reruns_converge() {
    for (seed, percent) in [(7u64, 5u32), (11, 25)] {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        tree(&src);
        let env = larder_testutil::s3_env();
        let proxy = Proxy::start(&env.endpoint, Fault::Random { seed, percent });
        let (_, url) = larder_s3(d.path());
        let prefix = url.splitn(4, '/').nth(3).unwrap().to_owned();

        // Up.
        let codes = converge(d.path(), &proxy, src.to_str().unwrap(), &url, 6);
        assert_eq!(
            codes.last(),
            Some(&0),
            "{percent}%: up converged: {codes:?}"
        );
        // Checked directly against the server: every object there, every byte right.
        let (mut c, _) = larder_s3(d.path());
        let out = run(c.args(["verify", "--only-differences"]).arg(&src).arg(&url));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{percent}%: the bucket matches the source"
        );
        let store = larder_testutil::s3_store(Default::default(), Some(&prefix)).await;
        let left = larder_testutil::uploads_left_after_abort(&store, "").await;
        assert!(
            left.is_empty(),
            "{percent}%: multipart uploads left: {left:?}"
        );

        // Down.
        let back = d.path().join("back");
        let codes = converge(d.path(), &proxy, &url, back.to_str().unwrap(), 6);
        assert_eq!(
            codes.last(),
            Some(&0),
            "{percent}%: down converged: {codes:?}"
        );
        assert_eq!(
            files(&back),
            files(&src),
            "{percent}%: every byte, no temp file"
        );

        let injected = proxy.injected();
        eprintln!(
            "{percent}% (seed {seed}): {} requests, injected {injected:?}",
            proxy.requests()
        );
        assert!(proxy.faulted() >= 3, "{percent}%: faults were injected");
    }
}
