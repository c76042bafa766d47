//! Key transforms and `--dest-prefix` through the CLI, against Garage: objects land at
//! their new keys, `--delete` prunes against the new keys (and only inside the destination
//! prefix), re-runs are no-ops, and keys a transform merges or sends outside a directory
//! fail by name without anything being deleted.

use std::path::Path;

use crate::s3::larder_s3;
use crate::*;

fn tree(root: &Path) {
    write(&root.join("raw/a.txt"), b"alpha");
    write(&root.join("raw/sub/b.txt"), b"bravo");
    write(&root.join("keep.txt"), b"kept");
}

fn keys(d: &Path, url: &str) -> Vec<String> {
    let (mut c, _) = larder_s3(d);
    let out = run(c.args(["ls", "--json"]).arg(url));
    assert_eq!(out.status.code(), Some(0));
    let mut k: Vec<String> = json_lines(&out)
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

#[test]
fn s3_transform_renames_keys_prunes_against_the_new_keys_and_reruns_as_no_ops() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    let (mut c, url) = larder_s3(d.path());
    // Something the source does not have: pruned by --delete.
    let stray = d.path().join("stray");
    write(&stray.join("old.txt"), b"old");
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&stray).arg(&url))
            .status
            .code(),
        Some(0)
    );

    let sync = |extra: &[&str]| {
        let (mut c, _) = larder_s3(d.path());
        run(c
            .args([
                "--json",
                "sync",
                "--delete",
                "--transform",
                r"s/^raw\//clean\//",
            ])
            .args(extra)
            .arg(&src)
            .arg(&url))
    };
    let out = sync(&[]);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].as_u64(), s["deleted"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        keys(d.path(), &url),
        ["clean/a.txt", "clean/sub/b.txt", "keep.txt"]
    );
    let out = sync(&[]);
    assert_eq!(summary(&out)["transferred"], 0, "a re-run sends nothing");
    assert_eq!(summary(&out)["deleted"], 0);

    // Back down, renamed again (S3 → local), bytes intact.
    let back = d.path().join("back");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args([
            "sync",
            "-q",
            "--transform",
            r"s|^clean/(.*)\.txt$|restored/$1.text|",
        ])
        .arg(&url)
        .arg(&back));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read(back.join("restored/sub/b.text")).unwrap(),
        b"bravo"
    );
    assert_eq!(std::fs::read(back.join("keep.txt")).unwrap(), b"kept");

    // Two keys made one: both fail by name, and nothing is deleted.
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args([
            "sync",
            "--delete",
            "--transform",
            r"s/^(raw\/a|keep)\.txt$/same.txt/",
        ])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("raw/a.txt") && err.contains("keep.txt") && err.contains("same.txt"),
        "{err}"
    );
    assert!(
        keys(d.path(), &url).contains(&"clean/a.txt".to_owned()),
        "no deletion"
    );

    // A key sent out of a destination directory is refused by name.
    let out_dir = d.path().join("out");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args(["sync", "--transform", r"s/^keep\.txt$/..\/escaped.txt/"])
        .arg(&url)
        .arg(&out_dir));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("escaped.txt"));
    assert!(!d.path().join("escaped.txt").exists());

    // A malformed transform is a usage error.
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args(["sync", "--transform", "s/(/x/"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn s3_dest_prefix_writes_and_prunes_only_under_it_and_a_lua_transform_renames() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    tree(&src);
    let (mut c, url) = larder_s3(d.path());
    let other = d.path().join("other");
    write(&other.join("x.txt"), b"x");
    let side = format!("{url}/side/");
    assert_eq!(
        run(c.args(["sync", "-q"]).arg(&other).arg(&side))
            .status
            .code(),
        Some(0)
    );

    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args(["sync", "-q", "--delete", "--dest-prefix", "y/"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        keys(d.path(), &url),
        ["side/x.txt", "y/keep.txt", "y/raw/a.txt", "y/raw/sub/b.txt"],
        "side/ is outside the prefix, so --delete leaves it"
    );

    let script = d.path().join("t.lua");
    write(&script, b"function transform(k) return k:upper() end");
    let lua_dst = format!("{url}/lua/");
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args(["--json", "sync", "--transform-lua-script"])
        .arg(&script)
        .arg(&src)
        .arg(&lua_dst));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        keys(d.path(), &lua_dst),
        ["KEEP.TXT", "RAW/A.TXT", "RAW/SUB/B.TXT"]
    );
    let (mut c, _) = larder_s3(d.path());
    let out = run(c
        .args(["--json", "sync", "--transform-lua-script"])
        .arg(&script)
        .arg(&src)
        .arg(&lua_dst));
    assert_eq!(summary(&out)["transferred"], 0);
}
