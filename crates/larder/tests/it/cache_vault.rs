//! Strategy `cache`: a vault over 10,000 indexed objects downloads nothing at sync time;
//! `vault get` of one key sends one GET and nothing else; `--include` fetches; a refresh
//! follows a changed object; eviction is not a deletion.

use crate::s3::larder_s3;
use crate::vault::vault;
use crate::*;

fn requests(out: &std::process::Output, stream: &[u8]) -> serde_json::Value {
    let line = String::from_utf8_lossy(stream)
        .lines()
        .rfind(|l| l.contains("\"summary\""))
        .unwrap_or_else(|| panic!("a summary: {out:?}"))
        .to_owned();
    serde_json::from_str::<serde_json::Value>(&line).unwrap()["requests"].clone()
}

#[test]
fn s3_a_cache_vault_indexes_without_downloading_and_fetches_on_access() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("real.txt"), b"the one real object");
    write(&src.join("docs/a.md"), b"doc a");
    let (mut c, url) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&url))
            .status
            .code(),
        Some(0)
    );
    let etag = |data: &[u8]| larder_store::integrity::md5_hex(data);
    // The index from an inventory: the two real objects and 10,000 others.
    let bucket = larder_testutil::s3_env().bucket;
    let prefix = url
        .split_once(&format!("{bucket}/"))
        .unwrap()
        .1
        .trim_end_matches('/');
    let mut inv = String::from("Bucket,Key,Size,LastModifiedDate,ETag,StorageClass\n");
    for (k, data) in [
        ("real.txt", &b"the one real object"[..]),
        ("docs/a.md", b"doc a"),
    ] {
        inv.push_str(&format!(
            "{bucket},{prefix}/{k},{},2024-01-01T00:00:00.000Z,{},STANDARD\n",
            data.len(),
            etag(data)
        ));
    }
    for i in 0..10_000 {
        inv.push_str(&format!(
            "{bucket},{prefix}/bulk/{i:05},100,2024-01-01T00:00:00.000Z,{},STANDARD\n",
            etag(format!("{i}").as_bytes())
        ));
    }
    write(&d.path().join("inventory.csv"), inv.as_bytes());
    let dir = d.path().join("cache");
    let out = run(vault(d.path())
        .args(["add", "v"])
        .arg(&dir)
        .arg(&url)
        .args(["--strategy", "cache"]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path())
        .args(["sync", "inventory", "v", "--file"])
        .arg(d.path().join("inventory.csv")));
    assert_eq!(out.status.code(), Some(0));

    // Sync: nothing downloaded, nothing written to the bucket.
    let out = run(vault(d.path()).args(["--json", "sync", "v"]));
    assert_eq!(out.status.code(), Some(0));
    let q = requests(&out, &out.stdout);
    assert_eq!(
        (q["get"].as_u64(), q["put"].as_u64(), q["list"].as_u64()),
        (Some(1), Some(0), Some(0)),
        "one conditional GET of the manifest: {q}"
    );
    assert_eq!(files_under(&dir).len(), 0, "nothing downloaded");

    // Get: one GET, nothing else (the index is fresh).
    let out = run(vault(d.path()).args(["--json", "get", "v", "real.txt", "-"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"the one real object");
    let q = requests(&out, &out.stderr);
    assert_eq!(
        q,
        serde_json::json!({"list": 0, "get": 1, "head": 0, "put": 0, "delete": 0})
    );
    assert_eq!(
        std::fs::read(dir.join("real.txt")).unwrap(),
        b"the one real object"
    );
    let out = run(vault(d.path()).args(["get", "v", "not/there"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `not/there` in its index"));

    // --include fetches; a changed object refreshes the cached copy.
    let out = run(vault(d.path()).args(["sync", "v", "--include", "docs/**"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(dir.join("docs/a.md")).unwrap(), b"doc a");
    write(&src.join("real.txt"), b"changed upstream");
    let (mut c, _) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&url))
            .status
            .code(),
        Some(0)
    );
    let out = run(vault(d.path()).args(["sync", "reconcile", "v", "--allow-list-scan"]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["sync", "v"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read(dir.join("real.txt")).unwrap(),
        b"changed upstream"
    );

    // Evicted: gone locally, still in the bucket, and not a deletion at the next sync.
    let out = run(vault(d.path()).args(["evict", "v", "--max-size", "0"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(files_under(&dir).len(), 0);
    assert!(!dir.join("docs").exists(), "emptied directories go too");
    let out = run(vault(d.path()).args(["--json", "sync", "v"]));
    assert_eq!(out.status.code(), Some(0));
    let q = requests(&out, &out.stdout);
    assert_eq!(
        (q["put"].as_u64(), q["delete"].as_u64()),
        (Some(0), Some(0))
    );
    let (mut c, _) = larder_s3(d.path());
    let out = run(c.args(["ls", "--json"]).arg(&url));
    assert_eq!(json_lines(&out).len(), 2, "the objects are still there");
}
