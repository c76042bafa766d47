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
