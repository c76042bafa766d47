//! Filters on what a read of the object tells (Content-Type, user metadata, tags: s3sync's
//! `--filter-*-regex`), and `--delete-excluded`.

use std::path::Path;

use larder_testutil::aws_cli;

use crate::*;

#[test]
fn s3_rgw_content_type_metadata_and_tag_filters_decide_what_is_synced() {
    let d = tempfile::tempdir().unwrap();
    let env = larder_testutil::rgw_bucket(false);
    let body = d.path().join("body");
    std::fs::write(&body, "x").unwrap();
    let put = |key: &str, extra: &[&str]| {
        let mut args = vec![
            "s3api",
            "put-object",
            "--bucket",
            &env.bucket,
            "--key",
            key,
            "--body",
            body.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        aws_cli(&env, &args);
    };
    put(
        "a.png",
        &["--content-type", "image/png", "--tagging", "team=web"],
    );
    put(
        "b.png",
        &[
            "--content-type",
            "image/png",
            "--tagging",
            "team=web&secret=1",
        ],
    );
    put(
        "c.html",
        &["--content-type", "text/html", "--tagging", "team=web"],
    );
    put(
        "d.jpg",
        &[
            "--content-type",
            "image/jpeg",
            "--metadata",
            "private=yes",
            "--tagging",
            "team=web",
        ],
    );
    put("e.gif", &["--content-type", "image/gif"]);
    let dst = d.path().join("dst");
    let out = run(larder_on(d.path(), &env)
        .args(["--json", "sync"])
        .arg(format!("s3://{}", env.bucket))
        .arg(&dst)
        .args([
            "--filter-include-content-type-regex",
            "^image/",
            "--filter-exclude-metadata-regex",
            "(^|,)private=yes(,|$)",
            "--filter-include-tag-regex",
            "(^|&)team=web(&|$)",
            "--filter-exclude-tag-regex",
            "(^|&)secret=1(&|$)",
        ]));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].clone(), s["filtered"].clone()),
        (1.into(), 4.into()),
        "{s}"
    );
    // One HEAD per object that would otherwise be transferred, counted.
    assert_eq!(s["heads"], 5, "{s}");
    let got: Vec<_> = files_under(&dst)
        .into_iter()
        .map(|(p, _)| p.strip_prefix(&dst).unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(got, ["a.png"]);
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = files_under(dir)
        .into_iter()
        .map(|(p, _)| p.strip_prefix(dir).unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn delete_excluded_removes_what_the_filters_leave_out_and_only_with_delete() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    write(&src.join("keep.txt"), b"k");
    write(&src.join("skip.log"), b"s");
    write(&dst.join("skip.log"), b"old");
    write(&dst.join("extra.log"), b"e");
    write(&dst.join("extra.txt"), b"e");
    // --delete alone leaves excluded keys alone.
    let out = run(larder(d.path())
        .args(["sync", "--delete", "--exclude", "*.log"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(names(&dst), ["extra.log", "keep.txt", "skip.log"]);
    // With --delete-excluded they go too, on both sides of the march.
    let out = run(larder(d.path())
        .args([
            "sync",
            "--delete",
            "--delete-excluded",
            "--exclude",
            "*.log",
        ])
        .arg(&src)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(names(&dst), ["keep.txt"]);
    assert_eq!(
        names(&src),
        ["keep.txt", "skip.log"],
        "the source is untouched"
    );
    // Without --delete it is a usage error, not a silent no-op.
    let out = run(larder(d.path())
        .args(["sync", "--delete-excluded"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(2));
}
