//! What a write carries besides the bytes, through the CLI: system and user metadata and
//! tags copied S3 → S3 and overridden, SSE-C and SSE-KMS, and the preconditions
//! `--if-none-match` / `--if-match`. radosgw has tags, preconditions and encryption; Garage
//! has none of those and must refuse them by name.

use std::path::Path;

use larder_testutil::{aws_cli, S3Env};
use serde_json::Value;

use crate::*;

fn head(env: &S3Env, key: &str) -> Value {
    let out = aws_cli(
        env,
        &[
            "s3api",
            "head-object",
            "--bucket",
            &env.bucket,
            "--key",
            key,
        ],
    );
    serde_json::from_str(&out).expect("head-object JSON")
}

fn tags(env: &S3Env, key: &str) -> Vec<(String, String)> {
    let out = aws_cli(
        env,
        &[
            "s3api",
            "get-object-tagging",
            "--bucket",
            &env.bucket,
            "--key",
            key,
        ],
    );
    let v: Value = serde_json::from_str(&out).expect("tagging JSON");
    let mut t: Vec<_> = v["TagSet"]
        .as_array()
        .expect("TagSet")
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_owned(),
                t["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    t.sort();
    t
}

fn put(env: &S3Env, key: &str, body: &Path, extra: &[&str]) {
    let body = body.to_str().unwrap();
    let mut args = vec![
        "s3api",
        "put-object",
        "--bucket",
        &env.bucket,
        "--key",
        key,
        "--body",
        body,
    ];
    args.extend_from_slice(extra);
    aws_cli(env, &args);
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn s3_rgw_sync_carries_headers_metadata_and_tags_s3_to_s3() {
    let env = larder_testutil::rgw_env();
    let d = tempfile::tempdir().unwrap();
    let body = d.path().join("body");
    write(&body, b"<p>hello</p>");
    let src = larder_testutil::unique("meta-src");
    let dst = larder_testutil::unique("meta-dst");
    put(
        &env,
        &format!("{src}/page.html"),
        &body,
        &[
            "--content-type",
            "text/html; charset=utf-8",
            "--cache-control",
            "max-age=60",
            "--content-encoding",
            "identity",
            "--content-disposition",
            "inline",
            "--content-language",
            "fr-CH",
            "--expires",
            "2033-12-01T16:00:00Z",
            "--website-redirect-location",
            "/other.html",
            "--metadata",
            "owner=team-a,stage=raw",
            "--tagging",
            "team=a%20b&tier=hot",
        ],
    );
    put(&env, &format!("{src}/plain.txt"), &body, &[]);
    let url = |p: &str| format!("s3://{}/{p}", env.bucket);
    // Copied by the server (the default here: one endpoint, one set of credentials), then
    // through larder: both must carry the same.
    for (flag, server_side) in [(None, 2), (Some("--no-server-side-copy"), 0)] {
        let dst = format!("{dst}-{server_side}");
        let out = run(larder_on(d.path(), &env)
            .args(["--json", "sync"])
            .args(flag)
            .arg(url(&src))
            .arg(url(&dst)));
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(summary(&out)["transferred"], 2);
        assert_eq!(summary(&out)["server_side_copies"], server_side);
        assert_eq!(summary(&out)["etag_verified"], 2);
        carried(&env, &dst);
        // Up to date now: nothing is sent again.
        let out = run(larder_on(d.path(), &env)
            .args(["--json", "sync"])
            .arg(url(&src))
            .arg(url(&dst)));
        assert_eq!(summary(&out)["transferred"], 0);
    }
}

/// What `page.html` and `plain.txt` carried to `dst`.
fn carried(env: &S3Env, dst: &str) {
    let h = head(env, &format!("{dst}/page.html"));
    assert_eq!(h["ContentType"], "text/html; charset=utf-8");
    assert_eq!(h["CacheControl"], "max-age=60");
    assert_eq!(h["ContentEncoding"], "identity");
    assert_eq!(h["ContentDisposition"], "inline");
    assert_eq!(h["ContentLanguage"], "fr-CH");
    assert!(
        h["Expires"].as_str().unwrap_or_default().contains("2033"),
        "{h}"
    );
    assert_eq!(h["WebsiteRedirectLocation"], "/other.html");
    assert_eq!(h["Metadata"]["owner"], "team-a");
    assert_eq!(h["Metadata"]["stage"], "raw");
    assert_eq!(
        tags(env, &format!("{dst}/page.html")),
        pairs(&[("team", "a b"), ("tier", "hot")])
    );
    assert!(tags(env, &format!("{dst}/plain.txt")).is_empty());
}

#[test]
fn s3_rgw_overrides_replace_what_the_source_had() {
    let env = larder_testutil::rgw_env();
    let d = tempfile::tempdir().unwrap();
    let body = d.path().join("body");
    write(&body, b"data");
    let src = larder_testutil::unique("ovr-src");
    let dst = larder_testutil::unique("ovr-dst");
    put(
        &env,
        &format!("{src}/a.bin"),
        &body,
        &[
            "--content-type",
            "application/x-old",
            "--content-language",
            "en",
            "--metadata",
            "owner=old",
            "--tagging",
            "from=source",
        ],
    );
    let url = |p: &str| format!("s3://{}/{p}", env.bucket);
    let out = run(larder_on(d.path(), &env)
        .args(["--json", "sync", "--content-type", "application/x-new"])
        .args([
            "--metadata",
            "Owner=new,extra=1",
            "--tagging",
            "set=by%20flag",
        ])
        .args([
            "--expires",
            "2031-01-02T03:04:05Z",
            "--no-sync-system-metadata",
        ])
        .arg(url(&src))
        .arg(url(&dst)));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["server_side_copies"], 1);
    let h = head(&env, &format!("{dst}/a.bin"));
    assert_eq!(h["ContentType"], "application/x-new");
    assert!(
        h.get("ContentLanguage").is_none(),
        "system metadata left behind: {h}"
    );
    assert!(
        h["Expires"].as_str().unwrap_or_default().contains("2031"),
        "{h}"
    );
    assert_eq!(h["Metadata"]["owner"], "new");
    assert_eq!(h["Metadata"]["extra"], "1");
    assert_eq!(
        tags(&env, &format!("{dst}/a.bin")),
        pairs(&[("set", "by flag")])
    );

    // --disable-tagging and --no-sync-user-defined-metadata leave both behind.
    let dst2 = larder_testutil::unique("ovr-dst2");
    let out = run(larder_on(d.path(), &env)
        .args([
            "sync",
            "--disable-tagging",
            "--no-sync-user-defined-metadata",
        ])
        .arg(url(&src))
        .arg(url(&dst2)));
    assert_eq!(out.status.code(), Some(0));
    let h = head(&env, &format!("{dst2}/a.bin"));
    assert_eq!(h["ContentType"], "application/x-old");
    assert!(
        h["Metadata"]
            .as_object()
            .is_none_or(|m| !m.contains_key("owner")),
        "{h}"
    );
    assert!(tags(&env, &format!("{dst2}/a.bin")).is_empty());
}

#[test]
fn s3_rgw_if_none_match_never_overwrites_and_warns() {
    let env = larder_testutil::rgw_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("kept.txt"), b"local version");
    write(&src.join("new.txt"), b"new");
    let prefix = larder_testutil::unique("inm");
    let body = d.path().join("body");
    write(&body, b"theirs");
    put(&env, &format!("{prefix}/kept.txt"), &body, &[]);
    let url = format!("s3://{}/{prefix}", env.bucket);
    let out = run(larder_on(d.path(), &env)
        .args(["--json", "sync", "--if-none-match"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(3), "a warning");
    let s = summary(&out);
    assert_eq!(s["transferred"], 1);
    assert_eq!(s["precondition_skipped"], 1);
    let got = aws_cli(&env, &["s3", "cp", &format!("{url}/kept.txt"), "-"]);
    assert_eq!(got, "theirs", "never overwritten");
    assert_eq!(head(&env, &format!("{prefix}/new.txt"))["ContentLength"], 3);

    // The dry run predicts the same.
    write(&src.join("kept.txt"), b"changed again");
    let out = run(larder_on(d.path(), &env)
        .args(["sync", "--if-none-match", "--dry-run"])
        .arg(&src)
        .arg(&url));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("keep") && plan.contains("kept.txt"), "{plan}");
}

#[test]
fn s3_rgw_if_match_overwrites_only_the_version_compared() {
    let env = larder_testutil::rgw_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("doc.txt"), b"mine, newer");
    let prefix = larder_testutil::unique("im");
    let body = d.path().join("body");
    write(&body, b"old");
    put(&env, &format!("{prefix}/doc.txt"), &body, &[]);
    let url = format!("s3://{}/{prefix}", env.bucket);
    let out = run(larder_on(d.path(), &env)
        .args(["--json", "sync", "--if-match", "--compare", "size"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["transferred"], 1);
    let got = aws_cli(&env, &["s3", "cp", &format!("{url}/doc.txt"), "-"]);
    assert_eq!(got, "mine, newer");
}

#[test]
fn s3_rgw_sse_c_and_sse_kms_round_trip() {
    let env = larder_testutil::rgw_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    let big: Vec<u8> = (0..(12u32 << 20)).map(|i| (i % 253) as u8).collect();
    write(&src.join("small.txt"), b"secret");
    write(&src.join("big.bin"), &big);
    let prefix = larder_testutil::unique("ssec");
    let url = format!("s3://{}/{prefix}", env.bucket);
    let key = "0123456789abcdef0123456789abcdef";
    let out = run(larder_on(d.path(), &env)
        .env("LARDER_TARGET_SSE_C_KEY", key)
        .args(["sync"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    // Without the key the server refuses to read it.
    let plain = std::process::Command::new("aws")
        .args(["--endpoint-url", &env.endpoint, "s3", "cp"])
        .arg(format!("{url}/small.txt"))
        .arg("-")
        .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env("AWS_DEFAULT_REGION", &env.region)
        .output()
        .unwrap();
    assert!(!plain.status.success(), "read without the SSE-C key");
    let back = d.path().join("back");
    let out = run(larder_on(d.path(), &env)
        .env("LARDER_SOURCE_SSE_C_KEY", key)
        .args(["sync"])
        .arg(&url)
        .arg(&back));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(back.join("small.txt")).unwrap(), b"secret");
    assert!(std::fs::read(back.join("big.bin")).unwrap() == big);
    // The key never shows in what larder prints.
    assert!(!String::from_utf8_lossy(&out.stderr).contains(key));

    let kms = larder_testutil::unique("kms");
    let kms_url = format!("s3://{}/{kms}", env.bucket);
    let out = run(larder_on(d.path(), &env)
        .args([
            "sync",
            "--sse",
            "aws:kms",
            "--sse-kms-key-id",
            "larder-test-key",
        ])
        .arg(&src)
        .arg(&kms_url));
    assert_eq!(out.status.code(), Some(0));
    let h = head(&env, &format!("{kms}/small.txt"));
    assert_eq!(h["ServerSideEncryption"], "aws:kms", "{h}");
    let back = d.path().join("back-kms");
    let out = run(larder_on(d.path(), &env)
        .args(["sync"])
        .arg(&kms_url)
        .arg(&back));
    assert_eq!(out.status.code(), Some(0));
    assert!(std::fs::read(back.join("big.bin")).unwrap() == big);
}

#[test]
fn s3_garage_refuses_preconditions_and_tags_it_would_ignore() {
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"a");
    let url = format!("s3://{}/{}", env.bucket, larder_testutil::unique("refuse"));
    for flags in [&["--if-none-match"][..], &["--tagging", "a=b"][..]] {
        let out = run(larder_on(d.path(), &env)
            .arg("sync")
            .args(flags)
            .arg(&src)
            .arg(&url));
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("does not implement"), "{err}");
        assert!(err.contains(&url) || err.contains(&env.bucket), "{err}");
    }
    let prefix = url.trim_start_matches(&format!("s3://{}/", env.bucket));
    let listed = aws_cli(
        &env,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &env.bucket,
            "--prefix",
            prefix,
        ],
    );
    assert!(!listed.contains("\"Key\""), "nothing written: {listed}");
}

#[test]
fn s3_local_to_garage_sets_headers_from_flags() {
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("app.js.gz"), b"gz");
    let prefix = larder_testutil::unique("hdr");
    let url = format!("s3://{}/{prefix}", env.bucket);
    let out = run(larder_on(d.path(), &env)
        .args(["sync", "--content-type", "text/javascript"])
        .args([
            "--content-encoding",
            "gzip",
            "--cache-control",
            "max-age=31536000",
        ])
        .args(["--content-disposition", "inline", "--metadata", "build=42"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    let h = head(&env, &format!("{prefix}/app.js.gz"));
    assert_eq!(h["ContentType"], "text/javascript");
    assert_eq!(h["ContentEncoding"], "gzip");
    assert_eq!(h["CacheControl"], "max-age=31536000");
    assert_eq!(h["ContentDisposition"], "inline");
    assert_eq!(h["Metadata"]["build"], "42");
}

/// `verify --report-metadata --report-tagging`: keys whose bytes match are compared on
/// metadata and tags too, each difference named; without the flags they match.
#[test]
fn s3_rgw_verify_reports_metadata_and_tag_differences() {
    let env = larder_testutil::rgw_env();
    let d = tempfile::tempdir().unwrap();
    let body = d.path().join("body");
    write(&body, b"same bytes");
    let src = larder_testutil::unique("rep-src");
    let dst = larder_testutil::unique("rep-dst");
    for k in ["meta.txt", "tags.txt", "same.txt"] {
        put(
            &env,
            &format!("{src}/{k}"),
            &body,
            &[
                "--metadata",
                "owner=ann",
                "--tagging",
                "team=blue",
                "--content-type",
                "text/plain",
            ],
        );
    }
    let url = |p: &str| format!("s3://{}/{p}", env.bucket);
    let out = run(larder_on(d.path(), &env)
        .args(["sync", "-q"])
        .arg(url(&src))
        .arg(url(&dst)));
    assert_eq!(out.status.code(), Some(0));
    let verify = |flags: &[&str]| {
        run(larder_on(d.path(), &env)
            .args(["--json", "verify"])
            .args(flags)
            .arg(url(&src))
            .arg(url(&dst)))
    };
    let both = ["--report-metadata", "--report-tagging-sync-status"];
    assert_eq!(
        verify(&both).status.code(),
        Some(0),
        "in sync after the sync"
    );

    // The same bytes, other metadata (a copy onto itself) and other tags.
    aws_cli(
        &env,
        &[
            "s3api",
            "copy-object",
            "--bucket",
            &env.bucket,
            "--key",
            &format!("{dst}/meta.txt"),
            "--copy-source",
            &format!("{}/{dst}/meta.txt", env.bucket),
            "--metadata-directive",
            "REPLACE",
            "--metadata",
            "owner=bob",
            "--content-type",
            "text/plain",
        ],
    );
    aws_cli(
        &env,
        &[
            "s3api",
            "put-object-tagging",
            "--bucket",
            &env.bucket,
            "--key",
            &format!("{dst}/tags.txt"),
            "--tagging",
            "TagSet=[{Key=team,Value=red}]",
        ],
    );
    let out = verify(&both);
    assert_eq!(out.status.code(), Some(3), "differences are a warning");
    let lines = json_lines(&out);
    let status = |k: &str| {
        lines
            .iter()
            .find(|l| l["key"] == k)
            .unwrap_or_else(|| panic!("{k} reported"))
            .clone()
    };
    assert_eq!(status("meta.txt")["status"], "metadata_mismatch");
    assert!(
        status("meta.txt")["detail"]
            .as_str()
            .unwrap()
            .contains("x-amz-meta-owner: ann vs bob"),
        "{}",
        status("meta.txt")
    );
    // meta.txt lost its tags too (radosgw drops them from a copy that replaces the
    // metadata); the metadata is compared first and named.
    assert_eq!(status("tags.txt")["status"], "tagging_mismatch");
    assert!(
        status("tags.txt")["detail"]
            .as_str()
            .unwrap()
            .contains("team=red"),
        "{}",
        status("tags.txt")
    );
    assert_eq!(status("same.txt")["status"], "match");
    let s = summary(&out);
    assert_eq!(
        (
            s["metadata_mismatch"].as_u64(),
            s["tagging_mismatch"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // Only the bytes: everything matches.
    assert_eq!(verify(&[]).status.code(), Some(0));
}

/// A side that keeps no tags cannot be compared on them: a usage error naming it.
#[test]
fn s3_garage_verify_refuses_to_compare_tags_it_does_not_keep() {
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let url = format!("s3://{}/{}", env.bucket, larder_testutil::unique("rep"));
    let out = run(larder_on(d.path(), &env)
        .args(["verify", "--report-tagging"])
        .arg(d.path())
        .arg(&url));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--report-tagging") && err.contains("does not keep tags"),
        "{err}"
    );
}

/// S3 → directory → S3 keeps Content-Type, the other headers and user metadata (extended
/// attributes on the files), and `verify --report-metadata` compares a directory with a
/// bucket.
#[test]
fn s3_metadata_round_trips_through_a_directory() {
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let body = d.path().join("body");
    write(&body, b"{\"a\": 1}");
    let src = larder_testutil::unique("xattr-src");
    put(
        &env,
        &format!("{src}/data.json"),
        &body,
        &[
            "--content-type",
            "application/vnd.larder+json",
            "--cache-control",
            "no-store",
            "--content-language",
            "de",
            "--metadata",
            "owner=ann,stage=raw",
        ],
    );
    let url = |p: &str| format!("s3://{}/{p}", env.bucket);
    let dir = d.path().join("dir");
    let sync = |from: &str, to: &str| {
        let out = run(larder_on(d.path(), &env).args(["sync", "-q", from, to]));
        assert_eq!(out.status.code(), Some(0));
    };
    sync(&url(&src), dir.to_str().unwrap());
    assert_eq!(std::fs::read(dir.join("data.json")).unwrap(), b"{\"a\": 1}");
    let verify = |a: &str, b: &str| {
        run(larder_on(d.path(), &env).args(["--json", "verify", "--report-metadata", a, b]))
    };
    let out = verify(&url(&src), dir.to_str().unwrap());
    assert_eq!(
        out.status.code(),
        Some(0),
        "the directory keeps the metadata"
    );

    let back = larder_testutil::unique("xattr-back");
    sync(dir.to_str().unwrap(), &url(&back));
    let h = head(&env, &format!("{back}/data.json"));
    assert_eq!(h["ContentType"], "application/vnd.larder+json");
    assert_eq!(h["CacheControl"], "no-store");
    assert_eq!(h["ContentLanguage"], "de");
    assert_eq!(h["Metadata"]["owner"], "ann");
    assert_eq!(h["Metadata"]["stage"], "raw");
    assert_eq!(verify(&url(&src), &url(&back)).status.code(), Some(0));

    // A file whose attributes were changed by hand differs, by name.
    let f = dir.join("data.json");
    let set = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'user.larder.meta.owner', b'bob')",
        ])
        .arg(&f)
        .status()
        .expect("python3 runs");
    assert!(set.success());
    let out = verify(&url(&src), dir.to_str().unwrap());
    assert_eq!(out.status.code(), Some(3));
    let line = json_lines(&out)
        .into_iter()
        .find(|l| l["key"] == "data.json")
        .unwrap();
    assert!(
        line["detail"]
            .as_str()
            .unwrap()
            .contains("x-amz-meta-owner: ann vs bob"),
        "{line}"
    );
}

/// A local file's Content-Type is guessed from its name, unless `--no-guess-mime-type`.
#[test]
fn s3_content_types_are_guessed_unless_told_not_to() {
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("page.html"), b"<p>");
    for (flag, guessed) in [(None, true), (Some("--no-guess-mime-type"), false)] {
        let dst = larder_testutil::unique("guess");
        let out = run(larder_on(d.path(), &env)
            .args(["sync", "-q"])
            .args(flag)
            .arg(&src)
            .arg(format!("s3://{}/{dst}", env.bucket)));
        assert_eq!(out.status.code(), Some(0));
        let h = head(&env, &format!("{dst}/page.html"));
        assert_eq!(h["ContentType"] == "text/html", guessed, "{flag:?}: {h}");
    }
}
