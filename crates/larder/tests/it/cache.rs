//! `larder cache …` on a temp cache.

use std::io::Write;
use std::process::Stdio;

use crate::*;

#[test]
fn cache_commands_round_trip_and_refuse_corrupt_content() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let c = |args: &[&str]| {
        let mut cmd = larder(d.path());
        cmd.env("LARDER_CACHE", &cache).arg("cache").args(args);
        cmd
    };
    let file = d.path().join("in.txt");
    write(&file, b"from a file");
    let out = run(c(&["put", "k1"]).arg(&file));
    assert_eq!(out.status.code(), Some(0));
    let sri = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(sri.starts_with("sha512-"), "{sri}");

    let mut child = c(&["put", "k2", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    let out = run(&mut c(&["get", "k2"]));
    assert_eq!(out.stdout, b"from stdin");
    let dest = d.path().join("out.txt");
    assert_eq!(run(c(&["get", "k1"]).arg(&dest)).status.code(), Some(0));
    assert_eq!(std::fs::read(&dest).unwrap(), b"from a file");

    let out = run(&mut c(&["info", "k1", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["integrity"].as_str(), v["size"].as_u64()),
        (Some(sri.as_str()), Some(11))
    );
    let out = run(&mut c(&["ls", "--json"]));
    assert_eq!(json_lines(&out).len(), 2);
    assert_eq!(run(&mut c(&["verify"])).status.code(), Some(0));

    // Corrupt k1's content: get refuses (and writes nothing), verify says so, gc repairs.
    let path = v["path"].as_str().unwrap().to_owned();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let dest2 = d.path().join("out2.txt");
    let out = run(c(&["get", "k1"]).arg(&dest2));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
    assert!(!dest2.exists(), "nothing written");
    let out = run(&mut c(&["get", "k1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no corrupt bytes on stdout");
    assert_eq!(run(&mut c(&["verify"])).status.code(), Some(3));
    let out = run(&mut c(&["gc", "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["bad_content"].as_u64(), v["rejected_entries"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(run(&mut c(&["verify"])).status.code(), Some(0));
    assert_eq!(run(&mut c(&["rm", "k2"])).status.code(), Some(0));
    let out = run(&mut c(&["rm", "k2"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cache entry for key `k2`"));
    assert_eq!(run(&mut c(&["clear"])).status.code(), Some(0));
    assert!(run(&mut c(&["ls"])).stdout.is_empty());
}

/// Deterministic content of key `i`: a size and bytes of its own.
fn data_for(i: usize) -> Vec<u8> {
    larder_store::conformance::pattern((i % 5 + 1) * (512 << 10) + i * 7, i as u64).to_vec()
}

#[test]
fn cache_writers_killed_at_random_points_never_yield_wrong_data() {
    let d = tempfile::tempdir().unwrap();
    let cache_dir = d.path().join("cache");
    let keys = 6;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let cache = larder_cache::Cache::new(&cache_dir);
    let all: Vec<Vec<u8>> = (0..keys).map(data_for).collect();
    let mut killed = 0;
    for round in 0..40 {
        let i = round % keys;
        // Two processes write the same key at once; a third writes another key.
        let mut children = Vec::new();
        for k in [i, i, (i + 1) % keys] {
            let mut child = larder(d.path())
                .env("LARDER_CACHE", &cache_dir)
                .args(["cache", "put", &format!("k{k}"), "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let data = all[k].clone();
            let writer = std::thread::spawn(move || {
                // Paced, so that kills land mid-write.
                for chunk in data.chunks(64 << 10) {
                    if stdin.write_all(chunk).is_err() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            });
            children.push((child, writer));
        }
        // Three writers in four are killed (SIGKILL) at a random point.
        for (child, _) in &mut children {
            if next() % 4 != 0 {
                std::thread::sleep(std::time::Duration::from_millis(next() % 10));
                if child.kill().is_ok() {
                    killed += 1;
                }
            }
        }
        for (mut child, writer) in children {
            let _ = writer.join();
            let _ = child.wait();
        }
        // Whatever state the cache is in, a read is the right data or nothing.
        for (k, want) in all.iter().enumerate() {
            match cache.get(&format!("k{k}")) {
                Ok(got) => assert!(got == *want, "k{k}: wrong data after round {round}"),
                Err(larder_cache::Error::EntryNotFound(_)) => {}
                Err(e) => panic!("k{k} after round {round}: {e}"),
            }
        }
    }
    assert!(killed > 30, "writers were killed ({killed})");
    // verify finds no corrupt content; gc removes what the killed writers left in tmp/.
    let st = cache.check(std::time::Duration::ZERO).unwrap();
    assert_eq!((st.bad_content, st.rejected_entries), (0, 0), "{st:?}");
    let st = cache.verify(std::time::Duration::ZERO).unwrap();
    assert_eq!(st.bad_content, 0);
    assert!(
        st.removed_tmp > 0,
        "some writer died mid-write and left a temp file"
    );
    let tmp_left = std::fs::read_dir(cache_dir.join("tmp"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(
        tmp_left, 0,
        "gc removed the leftovers ({} removed)",
        st.removed_tmp
    );
    for (k, want) in all.iter().enumerate() {
        if let Ok(got) = cache.get(&format!("k{k}")) {
            assert!(got == *want);
        }
    }
}

#[test]
fn sync_into_and_out_of_a_cache_directory() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    write(&src.join("dir/b.bin"), &data_for(3));
    let cache_url = format!("cacache://{}", d.path().join("cache").display());
    let out = run(larder(d.path())
        .args(["sync", "--json"])
        .arg(&src)
        .arg(&cache_url));
    assert_eq!(summary(&out)["transferred"], 2);
    let out = run(larder(d.path())
        .args(["sync", "--json"])
        .arg(&src)
        .arg(&cache_url));
    assert_eq!(
        summary(&out)["skipped"],
        2,
        "mtimes recorded in the entries' metadata"
    );
    // The entries are ordinary cacache entries.
    let c = larder_cache::Cache::new(d.path().join("cache"));
    assert_eq!(c.get("a.txt").unwrap(), b"alpha");
    let back = d.path().join("back");
    let out = run(larder(d.path())
        .args(["sync", "--json"])
        .arg(&cache_url)
        .arg(&back));
    assert_eq!(summary(&out)["transferred"], 2);
    assert_eq!(std::fs::read(back.join("dir/b.bin")).unwrap(), data_for(3));
    let out = run(larder(d.path()).args(["verify"]).arg(&src).arg(&back));
    assert_eq!(out.status.code(), Some(0));
}
