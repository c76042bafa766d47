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
        let prefix = prefix_of(&url);

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

/// Uploads `n` small files through a proxy that answers 503 SlowDown above `max` requests in
/// flight; returns (exit code, 503s sent, requests, summary).
fn throttled_upload(
    d: &Path,
    n: u32,
    max: u64,
    extra: &[&str],
) -> (i32, u64, u64, serde_json::Value) {
    let src = d.join(format!("src-{}", extra.len()));
    for i in 0..n {
        write(
            &src.join(format!("f{i:03}")),
            format!("file {i}").as_bytes(),
        );
    }
    let env = larder_testutil::s3_env();
    let proxy = Proxy::start(
        &env.endpoint,
        Fault::ThrottleAbove {
            max,
            retry_after: None,
            latency_ms: 30,
        },
    );
    let (mut c, url) = larder_s3(d);
    let out = run(c
        .env("LARDER_ENDPOINT_URL", &proxy.endpoint)
        .args(["sync", "--json", "--concurrency", "32"])
        .args(extra)
        .arg(&src)
        .arg(&url));
    let slowdowns = proxy
        .injected()
        .iter()
        .find(|(k, _)| *k == larder_testutil::proxy::Injected::SlowDown)
        .map_or(0, |(_, n)| *n);
    let s = json_lines(&out)
        .into_iter()
        .rfind(|v| v["event"] == "summary")
        .unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        slowdowns,
        proxy.requests(),
        s,
    )
}

#[test]
fn s3_a_throttling_server_is_met_with_fewer_requests_in_flight() {
    let d = tempfile::tempdir().unwrap();
    let (code, adaptive_503, adaptive_requests, s) = throttled_upload(d.path(), 200, 6, &[]);
    assert_eq!(code, 0, "adaptive: every file uploaded");
    assert_eq!(s["transferred"], 200);
    assert!(s["throttle_decreases"].as_u64().unwrap() >= 1, "{s}");
    let min = s["min_concurrency"].as_u64().unwrap();
    assert!(
        (1..=8).contains(&min),
        "backed off to about the server's 6: {s}"
    );
    let (_, fixed_503, fixed_requests, _) =
        throttled_upload(d.path(), 200, 6, &["--fixed-concurrency"]);
    eprintln!(
        "503 SlowDown answers: adaptive {adaptive_503} of {adaptive_requests} requests, \
         fixed concurrency {fixed_503} of {fixed_requests}"
    );
    assert!(
        adaptive_503 * 3 < fixed_503,
        "adaptive {adaptive_503} vs fixed {fixed_503} failed attempts"
    );
}

/// What one soak round found.
#[derive(Debug, Default)]
struct Round {
    tries_up: usize,
    tries_down: usize,
    lost: usize,
    corrupted: usize,
    temps_left: usize,
    uploads_left: usize,
}

/// Compares the bucket under `prefix` with `src`, object by object, directly (no proxy):
/// (lost, corrupted).
async fn bucket_against(src: &Path, prefix: &str) -> (usize, usize) {
    use larder_store::{Key, Store};
    let store = larder_testutil::s3_store(Default::default(), Some(prefix)).await;
    let (mut lost, mut corrupted) = (0, 0);
    for (rel, data) in files(src) {
        let key = Key::new(rel.to_str().unwrap()).unwrap();
        match store.get(&key, Default::default()).await {
            Ok(g) => {
                if g.bytes().await.map(|b| b.to_vec()).ok().as_deref() != Some(&data[..]) {
                    corrupted += 1;
                }
            }
            Err(_) => lost += 1,
        }
    }
    (lost, corrupted)
}

/// The soak run (`bench/soak.sh`): `SOAK_ROUNDS` rounds (20) at `SOAK_PERCENT` % faults (10),
/// seeds from `SOAK_SEED` (1): up and down through the proxy until each converges, then
/// checked directly against the server and the disk. Prints a line a round and the totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by bench/soak.sh"]
async fn s3_soak() {
    let num = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (rounds, percent, seed0) = (
        num("SOAK_ROUNDS", 20),
        num("SOAK_PERCENT", 10),
        num("SOAK_SEED", 1),
    );
    let mut total = Round::default();
    let mut injected_total: std::collections::BTreeMap<&str, u64> = Default::default();
    for r in 0..rounds {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        tree(&src);
        let env = larder_testutil::s3_env();
        let proxy = Proxy::start(
            &env.endpoint,
            Fault::Random {
                seed: seed0 + r,
                percent: percent as u32,
            },
        );
        let (_, url) = larder_s3(d.path());
        let prefix = prefix_of(&url);
        let mut round = Round::default();
        let up = converge(d.path(), &proxy, src.to_str().unwrap(), &url, 10);
        round.tries_up = up.len();
        let (lost, corrupted) = bucket_against(&src, &prefix).await;
        let store = larder_testutil::s3_store(Default::default(), Some(&prefix)).await;
        round.uploads_left = larder_testutil::uploads_left_after_abort(&store, "")
            .await
            .len();
        let back = d.path().join("back");
        let down = converge(d.path(), &proxy, &url, back.to_str().unwrap(), 10);
        round.tries_down = down.len();
        let (want, got) = (files(&src), files(&back));
        let down_lost = want
            .iter()
            .filter(|(p, _)| !got.iter().any(|(q, _)| q == p))
            .count();
        let down_bad = want
            .iter()
            .filter(|(p, d)| got.iter().any(|(q, e)| q == p && e != d))
            .count();
        round.lost = lost + down_lost;
        round.corrupted = corrupted + down_bad;
        // Anything in the destination that is not a source file: a temp file left behind.
        round.temps_left = got
            .iter()
            .filter(|(q, _)| !want.iter().any(|(p, _)| p == q))
            .count();
        for (k, n) in proxy.injected() {
            *injected_total.entry(k.name()).or_default() += n;
        }
        println!(
            "round {r:>3} seed {:>4}: {:>5} requests, {:>4} faults; up in {} tries {up:?}, down in {} tries {down:?}; lost {}, corrupted {}, temp files {}, uploads left {}",
            seed0 + r,
            proxy.requests(),
            proxy.faulted(),
            round.tries_up,
            round.tries_down,
            round.lost,
            round.corrupted,
            round.temps_left,
            round.uploads_left,
        );
        total.lost += round.lost;
        total.corrupted += round.corrupted;
        total.temps_left += round.temps_left;
        total.uploads_left += round.uploads_left;
        total.tries_up = total.tries_up.max(round.tries_up);
        total.tries_down = total.tries_down.max(round.tries_down);
    }
    println!("{rounds} rounds at {percent} %: faults injected by kind: {injected_total:?}");
    println!(
        "objects lost {}, objects corrupted {}, temp files left {}, multipart uploads left {}; most tries to converge: up {}, down {}",
        total.lost, total.corrupted, total.temps_left, total.uploads_left, total.tries_up, total.tries_down
    );
    assert_eq!(
        (
            total.lost,
            total.corrupted,
            total.temps_left,
            total.uploads_left
        ),
        (0, 0, 0, 0)
    );
}
