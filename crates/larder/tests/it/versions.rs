//! Object versions through the CLI, on radosgw (Garage keeps none): `--enable-versioning`
//! copies each key's history in order and re-runs copy only what is new; `--point-in-time`
//! syncs a bucket as it was; `ls --versions` lists the history. The AWS CLI writes the
//! source's history and reads the destination's, as an independent client.

use std::path::Path;
use std::time::{Duration, SystemTime};

use larder_testutil::{aws_cli, S3Env};
use serde_json::Value;

use crate::*;

fn put(env: &S3Env, dir: &Path, key: &str, body: &str) {
    let f = dir.join("body");
    std::fs::write(&f, body).unwrap();
    aws_cli(
        env,
        &[
            "s3api",
            "put-object",
            "--bucket",
            &env.bucket,
            "--key",
            key,
            "--body",
            f.to_str().unwrap(),
        ],
    );
}

fn delete(env: &S3Env, key: &str) {
    aws_cli(
        env,
        &[
            "s3api",
            "delete-object",
            "--bucket",
            &env.bucket,
            "--key",
            key,
        ],
    );
}

/// One key's history as the server lists it, newest first: `Some(body)` for a version,
/// `None` for a delete marker.
fn history(env: &S3Env, dir: &Path, key: &str) -> Vec<Option<String>> {
    let out = aws_cli(
        env,
        &[
            "s3api",
            "list-object-versions",
            "--bucket",
            &env.bucket,
            "--prefix",
            key,
        ],
    );
    let v: Value = serde_json::from_str(&out).expect("list-object-versions JSON");
    let mut all: Vec<(String, bool, Option<String>)> = Vec::new();
    for x in v["Versions"].as_array().into_iter().flatten() {
        if x["Key"] != key {
            continue;
        }
        let id = x["VersionId"].as_str().unwrap();
        let f = dir.join("got");
        aws_cli(
            env,
            &[
                "s3api",
                "get-object",
                "--bucket",
                &env.bucket,
                "--key",
                key,
                // `=`: a version id may begin with '-', which argparse would
                // otherwise read as an option.
                &format!("--version-id={id}"),
                f.to_str().unwrap(),
            ],
        );
        let body = std::fs::read_to_string(&f).unwrap();
        all.push((
            x["LastModified"].as_str().unwrap().to_owned(),
            false,
            Some(body),
        ));
    }
    for x in v["DeleteMarkers"].as_array().into_iter().flatten() {
        if x["Key"] == key {
            all.push((x["LastModified"].as_str().unwrap().to_owned(), true, None));
        }
    }
    // Newest first; versions keep the server's order among equal times.
    all.sort_by(|a, b| b.0.cmp(&a.0));
    all.into_iter().map(|(_, _, body)| body).collect()
}

fn some(bodies: &[&str]) -> Vec<Option<String>> {
    bodies.iter().map(|b| Some((*b).to_owned())).collect()
}

#[test]
fn s3_rgw_every_version_syncs_in_order_and_a_rerun_copies_only_new_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let src = larder_testutil::rgw_bucket(true);
    let dst = larder_testutil::rgw_bucket(true);
    // doc.txt: 5 versions, then deleted. note.txt: 2 versions. back.txt: a version, a
    // delete marker, a version (the marker between them is not copied, as s3sync).
    for i in 1..=5 {
        put(&src, tmp.path(), "doc.txt", &format!("doc v{i}"));
        std::thread::sleep(Duration::from_millis(20));
    }
    delete(&src, "doc.txt");
    put(&src, tmp.path(), "note.txt", "note v1");
    put(&src, tmp.path(), "note.txt", "note v2");
    put(&src, tmp.path(), "back.txt", "back v1");
    delete(&src, "back.txt");
    put(&src, tmp.path(), "back.txt", "back v2");
    let (s, d) = (
        format!("s3://{}", src.bucket),
        format!("s3://{}", dst.bucket),
    );
    let sync = |state: &Path| {
        let out =
            run(larder_on(state, &src).args(["--json", "sync", &s, &d, "--enable-versioning"]));
        assert_eq!(out.status.code(), Some(0));
        summary(&out)
    };

    // A dry run plans exactly the versions the run then copies, and writes nothing.
    let out = run(larder_on(tmp.path(), &src).args([
        "--json",
        "sync",
        &s,
        &d,
        "--enable-versioning",
        "--dry-run",
    ]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["transferred"], 9);
    assert!(history(&dst, tmp.path(), "doc.txt").is_empty());

    let first = sync(tmp.path());
    assert_eq!(first["transferred"], 9, "{first}");
    assert_eq!(first["deleted"], 1, "{first}");
    assert_eq!(first["etag_verified"], 9, "{first}");
    let mut doc = vec![None];
    doc.extend(some(&["doc v5", "doc v4", "doc v3", "doc v2", "doc v1"]));
    assert_eq!(history(&dst, tmp.path(), "doc.txt"), doc);
    assert_eq!(
        history(&dst, tmp.path(), "note.txt"),
        some(&["note v2", "note v1"])
    );
    assert_eq!(
        history(&dst, tmp.path(), "back.txt"),
        some(&["back v2", "back v1"])
    );

    // Nothing new: nothing copied, nothing deleted again.
    let again = sync(tmp.path());
    assert_eq!(
        (again["transferred"].clone(), again["deleted"].clone()),
        (0.into(), 0.into()),
        "{again}"
    );
    assert_eq!(again["heads"], 0, "the version map answers: {again}");
    // One new version: only it.
    put(&src, tmp.path(), "note.txt", "note v3");
    let third = sync(tmp.path());
    assert_eq!(third["transferred"], 1, "{third}");
    assert_eq!(
        history(&dst, tmp.path(), "note.txt"),
        some(&["note v3", "note v2", "note v1"])
    );
    // Another machine (no version map): learns from the copies' metadata, copies nothing.
    let other = tempfile::tempdir().unwrap();
    let fresh = sync(other.path());
    assert_eq!(fresh["transferred"], 0, "{fresh}");
    assert_eq!(
        fresh["heads"], 10,
        "one HEAD per destination version: {fresh}"
    );

    // `ls --versions` shows the history, newest first.
    let out = run(larder_on(tmp.path(), &dst).args(["--json", "ls", "--versions", &d]));
    assert_eq!(out.status.code(), Some(0));
    let rows: Vec<Value> = json_lines(&out)
        .into_iter()
        .filter(|r| r["key"] == "doc.txt")
        .collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0]["delete_marker"], true);
    assert_eq!(rows[0]["is_latest"], true);
    assert!(rows[1..].iter().all(|r| r["delete_marker"] == false));
}

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<_> = files_under(dir)
        .into_iter()
        .map(|(p, body)| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, String::from_utf8(body).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Waits a moment, returns the instant in its middle, waits again: an instant that is
/// clearly between what was written before and after.
fn instant() -> String {
    std::thread::sleep(Duration::from_millis(1100));
    let t = SystemTime::now();
    std::thread::sleep(Duration::from_millis(1100));
    humantime::format_rfc3339_millis(t).to_string()
}

#[test]
fn s3_rgw_point_in_time_syncs_exactly_the_objects_of_each_instant() {
    let tmp = tempfile::tempdir().unwrap();
    let src = larder_testutil::rgw_bucket(true);
    put(&src, tmp.path(), "a", "a1");
    put(&src, tmp.path(), "b", "b1");
    let t1 = instant();
    put(&src, tmp.path(), "a", "a2");
    delete(&src, "b");
    put(&src, tmp.path(), "c", "c1");
    let t2 = instant();
    put(&src, tmp.path(), "b", "b2");
    delete(&src, "a");
    put(&src, tmp.path(), "c", "c2");
    let t3 = instant();
    put(&src, tmp.path(), "c", "c3");
    let s = format!("s3://{}", src.bucket);
    let expected = [
        (&t1, pairs(&[("a", "a1"), ("b", "b1")])),
        (&t2, pairs(&[("a", "a2"), ("c", "c1")])),
        (&t3, pairs(&[("b", "b2"), ("c", "c2")])),
    ];
    for (i, (t, want)) in expected.iter().enumerate() {
        let dir = tmp.path().join(format!("at{i}"));
        let out = run(larder_on(tmp.path(), &src).args([
            "sync",
            &s,
            dir.to_str().unwrap(),
            "--point-in-time",
            t,
            "--delete",
        ]));
        assert_eq!(out.status.code(), Some(0), "at {t}");
        assert_eq!(&files(&dir), want, "at {t}");
        // verify agrees: the directory is the bucket as it was then.
        let out = run(larder_on(tmp.path(), &src).args([
            "verify",
            &s,
            dir.to_str().unwrap(),
            "--point-in-time",
            t,
        ]));
        assert_eq!(out.status.code(), Some(0), "verify at {t}");
    }
    // Moving a directory from one instant to another changes it to exactly the other.
    let dir = tmp.path().join("at0");
    let out = run(larder_on(tmp.path(), &src).args([
        "sync",
        &s,
        dir.to_str().unwrap(),
        "--point-in-time",
        &t3,
        "--delete",
    ]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(files(&dir), expected[2].1);
    // The latest state needs no flag.
    let now = tmp.path().join("now");
    let out = run(larder_on(tmp.path(), &src).args(["sync", &s, now.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(files(&now), pairs(&[("b", "b2"), ("c", "c3")]));
}

#[test]
fn versioned_syncs_refuse_locations_without_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("d");
    std::fs::create_dir_all(&d).unwrap();
    let out = run(larder(tmp.path()).args([
        "sync",
        d.to_str().unwrap(),
        "s3://b/p",
        "--enable-versioning",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--enable-versioning"));
    let out = run(larder(tmp.path()).args([
        "sync",
        d.to_str().unwrap(),
        tmp.path().join("e").to_str().unwrap(),
        "--point-in-time",
        "2026-01-01T00:00:00Z",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--point-in-time"));
    let out = run(larder(tmp.path()).args([
        "sync",
        "s3://b/p",
        d.to_str().unwrap(),
        "--point-in-time",
        "yesterday",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

/// A destination without versioning would keep only the last copy and lose the history: each
/// key fails, named with the cause, and the run exits 1.
#[test]
fn s3_rgw_a_destination_without_versioning_fails_by_key_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let src = larder_testutil::rgw_bucket(true);
    let dst = larder_testutil::rgw_bucket(false);
    put(&src, tmp.path(), "doc.txt", "v1");
    put(&src, tmp.path(), "doc.txt", "v2");
    let out = run(larder_on(tmp.path(), &src).args([
        "sync",
        &format!("s3://{}", src.bucket),
        &format!("s3://{}", dst.bucket),
        "--enable-versioning",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("doc.txt") && err.contains("enable versioning on its bucket"),
        "{err}"
    );
}
