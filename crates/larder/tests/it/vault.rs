//! `larder vault …` through the binary: registry, policy, index from an inventory and from a
//! reconcile against the test server, budgets refusing or stalling an unbounded scan.

use std::path::Path;
use std::process::Command;

use crate::s3::larder_s3;
use crate::*;

pub(crate) fn vault(home: &Path) -> Command {
    let (mut c, _) = larder_s3(home);
    c.env("LARDER_HOME", home.join("home")).arg("vault");
    c
}

#[test]
fn vaults_are_added_listed_set_and_removed() {
    let d = tempfile::tempdir().unwrap();
    let out = run(vault(d.path())
        .args(["add", "site"])
        .arg(d.path().join("site"))
        .arg("s3://bucket/site"));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["add", "site", "/x", "s3://bucket/other"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
    let out = run(vault(d.path()).args(["add", "bad/name", "/x", "s3://bucket/other"]));
    assert_eq!(out.status.code(), Some(1));
    let out = run(vault(d.path()).args(["add", "x", "/x", "not-a-url"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(vault(d.path()).args(["--json", "list"]));
    let v = json_lines(&out);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["remote"], "s3://bucket/site/");
    assert_eq!(v[0]["strategy"], "mirror");

    let out = run(vault(d.path()).args([
        "sync",
        "set",
        "site",
        "--interval",
        "15m",
        "--max-remote-index-age",
        "2h",
        "--s3-budget-put",
        "5",
        "--budget-download-bytes",
        "1Gi",
        "--budget-price",
        "0.25",
        "--strategy",
        "cache",
        "--on-sync-conflict",
        "keep_local",
    ]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["--json", "sync", "info", "site"]));
    let info = &json_lines(&out)[0];
    assert_eq!(info["strategy"], "cache");
    assert_eq!(info["interval_seconds"], 900);
    assert_eq!(info["max_remote_index_age_seconds"], 7200);
    assert_eq!(info["on_sync_conflict"], "keep_local");
    assert_eq!(info["budgets"]["put"], 5);
    assert_eq!(info["budgets"]["download_bytes"], 1u64 << 30);
    assert_eq!(info["budgets"]["price_usd"], 0.25);
    assert!(info["index"].is_null(), "never indexed");
    assert_eq!(
        info["pricing"]["put"], 0.005,
        "S3 Standard us-east-1 by default"
    );
    let out =
        run(vault(d.path()).args(["sync", "set", "site", "--pricing", "put=0.0045,out_gb=0.02"]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["--json", "sync", "info", "site"]));
    let info = &json_lines(&out)[0];
    assert_eq!(
        (
            info["pricing"]["put"].as_f64(),
            info["pricing"]["out_gb"].as_f64()
        ),
        (Some(0.0045), Some(0.02))
    );
    assert_eq!(info["pricing"]["get"], 0.0004);
    let out = run(vault(d.path()).args(["sync", "set", "site", "--pricing", "puts=1"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown price `puts`"));
    let out = run(vault(d.path()).args(["sync", "info", "site"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("none yet") && text.contains("PUT 5"),
        "{text}"
    );

    let out = run(vault(d.path()).args(["rm", "site"]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["sync", "info", "site"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no vault named `site`"));
}

#[test]
fn s3_reconcile_and_inventory_feed_the_index() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    write(&src.join("dir/b c.txt"), b"bravo");
    write(&src.join("z.bin"), &[1u8; 3000]);
    let (mut c, url) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&url))
            .status
            .code(),
        Some(0)
    );
    let out = run(vault(d.path()).args(["add", "v"]).arg(&src).arg(&url));
    assert_eq!(out.status.code(), Some(0));

    // No LIST budget and no --allow-list-scan: refused before any request, with the estimate.
    let out = run(vault(d.path()).args(["sync", "reconcile", "v"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--allow-list-scan") && err.contains("LIST request"),
        "{err}"
    );

    let out = run(vault(d.path()).args(["sync", "reconcile", "v", "--allow-list-scan"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 objects indexed"));
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    let rows = json_lines(&out);
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a.txt", "dir/b c.txt", "z.bin"]);
    assert_eq!(rows[2]["size"], 3000);
    assert_eq!(
        rows[0]["etag"], "2c1743a391305fbf367df8e4f069f9f9",
        "MD5 of `alpha`"
    );
    let out = run(vault(d.path()).args(["--json", "sync", "info", "v"]));
    let info = &json_lines(&out)[0];
    assert_eq!(info["index"]["source"], "reconcile");
    assert_eq!(info["index"]["objects"], 3);
    assert_eq!(info["index"]["fresh"], true);

    // A LIST budget of 1 covers 1,000 objects: enough here.
    let out = run(vault(d.path()).args(["sync", "set", "v", "--s3-budget-list", "1"]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["sync", "reconcile", "v"]));
    assert_eq!(out.status.code(), Some(0));

    // An inventory replaces the rows; one that is broken leaves them as they were.
    let inv = d.path().join("inventory.csv");
    let bucket = larder_testutil::s3_env().bucket;
    let prefix = url.split_once(&format!("{bucket}/")).unwrap().1;
    write(
        &inv,
        format!(
            "Bucket,Key,Size,LastModifiedDate,ETag,StorageClass\n\
             {bucket},{prefix}/from+inventory,7,2024-01-01T00:00:00.000Z,0123456789abcdef0123456789abcdef,GLACIER\n\
             {bucket},elsewhere/x,1,2024-01-01T00:00:00.000Z,0123456789abcdef0123456789abcdef,STANDARD\n"
        )
        .as_bytes(),
    );
    let out = run(vault(d.path())
        .args(["sync", "inventory", "v", "--file"])
        .arg(&inv));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "from inventory");
    assert_eq!(rows[0]["archived"], true);
    let broken = d.path().join("broken.csv");
    write(
        &broken,
        format!("Bucket,Key,Size\n{bucket},{prefix}/x,not-a-size\n").as_bytes(),
    );
    let out = run(vault(d.path())
        .args(["sync", "inventory", "v", "--file"])
        .arg(&broken));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.csv") && err.contains("not-a-size") && err.contains("unchanged"),
        "{err}"
    );
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    assert_eq!(json_lines(&out).len(), 1, "unchanged");

    // Past the LIST budget (1 LIST = 1,000 objects), reconcile stalls before the request
    // that would exceed it, with its own exit code, and the index is unchanged.
    for i in 0..1001 {
        write(&src.join(format!("many/{i:04}")), b"m");
    }
    let (mut c, _) = larder_s3(d.path());
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&src).arg(&url))
            .status
            .code(),
        Some(0)
    );
    let out = run(vault(d.path()).args(["sync", "reconcile", "v"]));
    assert_eq!(out.status.code(), Some(4), "stalled");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LIST budget 1 exhausted"), "{err}");
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    assert_eq!(json_lines(&out).len(), 1, "unchanged");
    let out = run(vault(d.path()).args(["sync", "set", "v", "--s3-budget-list", "2"]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["sync", "reconcile", "v"]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    assert_eq!(json_lines(&out).len(), 1004);
}

#[test]
fn events_files_update_the_index() {
    let d = tempfile::tempdir().unwrap();
    let out = run(vault(d.path()).args(["add", "v", "/tmp/v", "s3://bkt/site"]));
    assert_eq!(out.status.code(), Some(0));
    let rec = |name: &str, key: &str, seq: &str| {
        format!(
            r#"{{"eventName":"{name}","eventTime":"2024-03-01T12:00:00.000Z","s3":{{"bucket":{{"name":"bkt"}},"object":{{"key":"{key}","size":3,"eTag":"abc","sequencer":"{seq}"}}}}}}"#
        )
    };
    let file = d.path().join("events.jsonl");
    write(
        &file,
        format!(
            "{{\"Records\":[{}]}}\n{{\"Records\":[{},{}]}}\n",
            rec("ObjectCreated:Put", "site/a", "02"),
            rec("ObjectRemoved:Delete", "site/a", "01"),
            rec("ObjectCreated:Put", "site/.larder/manifest", "09")
        )
        .as_bytes(),
    );
    let out = run(vault(d.path())
        .args(["--json", "sync", "events", "v", "--file"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(0));
    let s = &json_lines(&out)[0];
    assert_eq!(
        (
            s["created"].as_u64(),
            s["stale"].as_u64(),
            s["ignored"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    let rows = json_lines(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "a");
    write(&file, b"{\"not\": \"an event\"}");
    let out = run(vault(d.path())
        .args(["sync", "events", "v", "--file"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("events.jsonl"));
}

fn vault_json(home: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = run(vault(home).arg("--json").args(args));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let summary = json_lines(&out)
        .into_iter()
        .rfind(|v| v["event"] == "summary")
        .unwrap_or_default();
    (out.status.code(), summary, err)
}

#[test]
fn s3_mirror_vault_syncs_from_its_index_with_budgets_and_a_manifest() {
    let d = tempfile::tempdir().unwrap();
    let (m1, m2) = (d.path().join("machine1"), d.path().join("machine2"));
    let site = d.path().join("site");
    for i in 0..20 {
        write(
            &site.join(format!("f{i:02}.txt")),
            format!("file {i}").as_bytes(),
        );
    }
    let (_, url) = larder_s3(&m1);
    let out = run(vault(&m1).args(["add", "v"]).arg(&site).arg(&url));
    assert_eq!(out.status.code(), Some(0));

    // No index, no manifest, no LIST budget: it stalls instead of guessing; a dry run
    // refuses to invent a plan.
    let (code, _, err) = vault_json(&m1, &["sync", "v"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("no manifest") && err.contains("reconcile"),
        "{err}"
    );
    let (code, _, err) = vault_json(&m1, &["sync", "dry-run", "v"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("never indexed"), "{err}");

    // Index the (empty) prefix, then: the dry run's prediction is what the run sends.
    assert_eq!(
        run(vault(&m1).args(["sync", "reconcile", "v", "--allow-list-scan"]))
            .status
            .code(),
        Some(0)
    );
    let (code, dry, _) = vault_json(&m1, &["sync", "dry-run", "v", "--refresh-index"]);
    assert_eq!(code, Some(0));
    assert_eq!(dry["plan"]["uploads"], 20);
    let (code, run1, err) = vault_json(&m1, &["sync", "v"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(run1["transferred"], 20);
    assert_eq!(run1["published_manifest"], true);
    assert_eq!(
        run1["sent"], dry["plan"]["requests"],
        "prediction = what was sent"
    );
    assert_eq!(run1["sent"]["list"], 0, "no LIST");

    // A no-op sync with a fresh index: HeadBucket and one conditional GET (304), nothing else.
    let (code, noop, _) = vault_json(&m1, &["sync", "v"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        noop["sent"],
        serde_json::json!({"list": 0, "get": 1, "head": 1, "put": 0, "delete": 0})
    );
    assert_eq!(noop["index"], "manifest unchanged");

    // Another machine with an empty home plans from the manifest: no LIST, no upload.
    let out = run(vault(&m2).args(["add", "v"]).arg(&site).arg(&url));
    assert_eq!(out.status.code(), Some(0));
    let (code, other, err) = vault_json(&m2, &["sync", "v"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(other["index"], "manifest (changed)");
    assert_eq!(other["sent"]["list"], 0);
    assert_eq!(
        other["sent"]["put"], 0,
        "adopted by content, nothing re-sent"
    );

    // A PUT budget of 5 with 20 changed files: at most 5 PUTs, stalled (exit 4) naming the
    // budget; with a raised budget the next run finishes the rest.
    for i in 0..20 {
        write(
            &site.join(format!("f{i:02}.txt")),
            format!("changed {i}").as_bytes(),
        );
    }
    assert_eq!(
        run(vault(&m1).args(["sync", "set", "v", "--s3-budget-put", "5"]))
            .status
            .code(),
        Some(0)
    );
    let (code, stalled, err) = vault_json(&m1, &["sync", "v"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        stalled["stalled"]
            .as_str()
            .unwrap()
            .starts_with("PUT budget 5 exhausted"),
        "{stalled}"
    );
    assert!(stalled["sent"]["put"].as_u64().unwrap() <= 5);
    assert!(err.contains("stalled: PUT budget 5 exhausted"), "{err}");
    assert_eq!(
        run(vault(&m1).args(["sync", "set", "v", "--s3-budget-put", "100"]))
            .status
            .code(),
        Some(0)
    );
    let (code, rest, err) = vault_json(&m1, &["sync", "v"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        rest["transferred"].as_u64().unwrap() + stalled["sent"]["put"].as_u64().unwrap(),
        20,
        "the rest, and only the rest"
    );
    // Deletions are mirrored; the bucket now holds exactly the directory (and the manifest).
    std::fs::remove_file(site.join("f00.txt")).unwrap();
    let (code, del, _) = vault_json(&m1, &["sync", "v"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        (del["deleted"].as_u64(), del["sent"]["delete"].as_u64()),
        (Some(1), Some(1))
    );
    let (mut c, _) = larder_s3(&m1);
    let out = run(c
        .args(["verify", "--exclude", "/.larder/**"])
        .arg(&site)
        .arg(&url));
    assert_eq!(
        out.status.code(),
        Some(0),
        "the bucket matches the directory"
    );

    // Every run is recorded: info shows what the last ones did and spent.
    let out = run(vault(&m1).args(["--json", "sync", "info", "v"]));
    let runs = json_lines(&out)[0]["last_runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 5);
    assert_eq!(runs[0]["outcome"], "ok");
    assert_eq!(
        (
            runs[0]["deleted"].as_u64(),
            runs[0]["requests"]["delete"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(runs[0]["price_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(runs[2]["outcome"], "stalled");
    assert!(runs[2]["reason"]
        .as_str()
        .unwrap()
        .starts_with("PUT budget 5 exhausted"));
}

#[test]
fn s3_an_inventory_delivery_is_read_from_the_bucket_that_holds_it() {
    let d = tempfile::tempdir().unwrap();
    let env = larder_testutil::s3_env();
    let uniq = larder_testutil::unique("inventory");
    let data_key = format!("{uniq}/src-bucket/cfg/data/part-1.csv.gz");
    let csv = format!(
        "\"{b}\",\"site/a+b\",\"3\",\"2024-03-01T12:00:00.000Z\",\"0123456789abcdef0123456789abcdef\",\"STANDARD\"\n\
         \"{b}\",\"site/deep\",\"4\",\"2024-03-01T12:00:00.000Z\",\"0123456789abcdef0123456789abcdef\",\"DEEP_ARCHIVE\"\n",
        b = env.bucket
    );
    let mut gz = flate2_like_gzip(csv.as_bytes());
    let root = d.path().join("delivery");
    write(&root.join(&data_key), &gz);
    let manifest = format!(
        "{{\"sourceBucket\":\"{}\",\"destinationBucket\":\"arn:aws:s3:::{}\",\"version\":\"2016-11-30\",\
          \"creationTimestamp\":\"1709337600000\",\"fileFormat\":\"CSV\",\
          \"fileSchema\":\"Bucket, Key, Size, LastModifiedDate, ETag, StorageClass\",\
          \"files\":[{{\"key\":\"{data_key}\",\"size\":{},\"MD5checksum\":\"{}\"}}]}}",
        env.bucket,
        env.bucket,
        gz.len(),
        md5_hex(&gz)
    );
    let dir = root.join(format!("{uniq}/src-bucket/cfg/2024-03-02T00-00Z"));
    write(&dir.join("manifest.json"), manifest.as_bytes());
    write(
        &dir.join("manifest.checksum"),
        md5_hex(manifest.as_bytes()).as_bytes(),
    );
    let (mut c, _) = larder_s3(d.path());
    let dest = format!("s3://{}/{uniq}", env.bucket);
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(root.join(&uniq)).arg(&dest))
            .status
            .code(),
        Some(0)
    );

    let out = run(vault(d.path())
        .args(["add", "v", "/tmp/v"])
        .arg(format!("s3://{}/site", env.bucket)));
    assert_eq!(out.status.code(), Some(0));
    let url = format!("{dest}/src-bucket/cfg/2024-03-02T00-00Z/manifest.json");
    let out = run(vault(d.path()).args(["sync", "inventory", "v", "--file", &url]));
    assert_eq!(out.status.code(), Some(0));
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    let rows = json_lines(&out);
    let keys: Vec<&str> = rows.iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["a b", "deep"]);
    assert_eq!(rows[1]["archived"], true);

    // A data file changed in the bucket (same size, other bytes): refused, index unchanged.
    let n = gz.len();
    gz[n / 2] ^= 1;
    write(&root.join(&data_key), &gz);
    let (mut c, _) = larder_s3(d.path());
    assert_eq!(
        run(c
            .args(["sync", "-q", "--compare", "etag"])
            .arg(root.join(&uniq))
            .arg(&dest))
        .status
        .code(),
        Some(0)
    );
    let out = run(vault(d.path()).args(["sync", "inventory", "v", "--file", &url]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MD5"));
    let out = run(vault(d.path()).args(["--json", "index", "v"]));
    assert_eq!(json_lines(&out).len(), 2, "unchanged");
}

/// A gzip member of `data` (stored blocks: enough for a test, no extra dependency).
fn flate2_like_gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    for (i, chunk) in data.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= data.len();
        out.push(last as u8);
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    if data.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn md5_hex(data: &[u8]) -> String {
    larder_store::integrity::md5_hex(data)
}
