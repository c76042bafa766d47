//! Interop: what larder writes, npm's cacache (run by Node) and the `cacache` crate read, and
//! the reverse. Node and npm are on the machine; the `cacache` npm package is installed into
//! `target/npm-cacache` on first use.

use std::path::{Path, PathBuf};
use std::process::Command;

use larder_cache::Cache;

/// `node_modules` with npm's cacache, installed once.
fn npm_cacache() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/npm-cacache");
    if !dir.join("node_modules/cacache/package.json").is_file() {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args([
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--silent",
                "--prefix",
            ])
            .arg(&dir)
            .arg("cacache@19")
            .status()
            .expect("npm is installed (Node.js and npm are needed for this test)");
        assert!(status.success(), "npm install cacache failed");
    }
    dir
}

fn node(script: &str, cache: &Path) -> String {
    let dir = npm_cacache();
    let out = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(cache)
        .env("NODE_PATH", dir.join("node_modules"))
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn npm_cacache_reads_what_larder_writes_and_larder_reads_what_it_writes() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    let sri = c
        .put_with(
            "larder-key",
            b"written by larder",
            larder_cache::WriteOptions::default()
                .with_metadata(Some(serde_json::json!({"from": "larder"}))),
        )
        .unwrap();
    c.put("unicode key é/日本", b"second").unwrap();
    c.put("deleted", b"gone").unwrap();
    c.rm_entry("deleted").unwrap();

    // npm reads larder's entries, by key and by digest, and its listing.
    let got = node(
        r#"
        const cacache = require('cacache');
        const dir = process.argv[1];
        (async () => {
          const a = await cacache.get(dir, 'larder-key');
          const b = await cacache.get(dir, 'unicode key é/日本');
          const byDigest = await cacache.get.byDigest(dir, a.integrity);
          const ls = Object.keys(await cacache.ls(dir)).sort();
          let deleted = 'absent';
          try { await cacache.get(dir, 'deleted'); deleted = 'present'; } catch (e) {}
          console.log(JSON.stringify({
            a: a.data.toString(), meta: a.metadata, integrity: a.integrity, size: a.size,
            b: b.data.toString(), byDigest: byDigest.toString(), ls, deleted,
          }));
        })().catch(e => { console.error(e); process.exit(1); });
        "#,
        d.path(),
    );
    let v: serde_json::Value = serde_json::from_str(got.trim()).unwrap();
    assert_eq!(v["a"], "written by larder");
    assert_eq!(v["meta"]["from"], "larder");
    assert_eq!(v["integrity"], sri.to_string());
    assert_eq!(v["size"], 17);
    assert_eq!(v["b"], "second");
    assert_eq!(v["byDigest"], "written by larder");
    assert_eq!(
        v["ls"],
        serde_json::json!(["larder-key", "unicode key é/日本"])
    );
    assert_eq!(v["deleted"], "absent");

    // npm writes; larder reads (and npm's verify accepts larder's cache).
    let out = node(
        r#"
        const cacache = require('cacache');
        const dir = process.argv[1];
        (async () => {
          const i = await cacache.put(dir, 'npm-key', Buffer.from('written by npm'), { metadata: { from: 'npm' } });
          const stats = await cacache.verify(dir);
          console.log(JSON.stringify({ integrity: i, verified: stats.verifiedContent, bad: stats.badContentCount }));
        })().catch(e => { console.error(e); process.exit(1); });
        "#,
        d.path(),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["bad"], 0);
    assert_eq!(v["verified"], 3, "larder's two entries and npm's one");
    assert_eq!(c.get("npm-key").unwrap(), b"written by npm");
    let info = c.info("npm-key").unwrap().unwrap();
    assert_eq!(info.integrity.to_string(), v["integrity"].as_str().unwrap());
    assert_eq!(info.metadata.unwrap()["from"], "npm");
    assert_eq!(
        c.get("larder-key").unwrap(),
        b"written by larder",
        "npm's verify kept ours"
    );
}

#[test]
fn the_cacache_crate_and_larder_read_each_other() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    // The crate's index layout (SHA-1 buckets, SHA-256 line hashes): larder reads it by key.
    let rs_sri = cacache::write_sync(d.path(), "rs-key", b"written by the crate").unwrap();
    assert_eq!(c.get("rs-key").unwrap(), b"written by the crate");
    assert_eq!(
        c.info("rs-key").unwrap().unwrap().integrity.to_string(),
        rs_sri.to_string()
    );
    assert!(c.ls().unwrap().iter().any(|e| e.key == "rs-key"));
    // Content is where both agree: the crate reads larder's content by integrity.
    let sri = c.put("larder-key", b"written by larder").unwrap();
    let parsed: cacache::Integrity = sri.to_string().parse().unwrap();
    assert_eq!(
        cacache::read_hash_sync(d.path(), &parsed).unwrap(),
        b"written by larder"
    );
}
