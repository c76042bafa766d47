//! The CLI on local directories: help, exit codes, dry-run, JSON.

use crate::*;

#[test]
fn help_and_version() {
    let d = tempfile::tempdir().unwrap();
    let out = run(larder(d.path()).arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["sync", "verify", "Exit codes", "130"] {
        assert!(help.contains(word), "--help lacks {word}");
    }
    let out = run(larder(d.path()).args(["sync", "--help"]));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--delete",
        "--dry-run",
        "--compare",
        "--checksum-algorithm",
        "LARDER_DELETE",
        "--max-delete",
        "--source-endpoint-url",
    ] {
        assert!(help.contains(flag), "sync --help lacks {flag}");
    }
    // Grouped under headings, values listed, examples, and the exit codes on every
    // subcommand's short help too.
    let headings = [
        "Locations & S3:",
        "Filters:",
        "Compare:",
        "Deletion:",
        "Performance:",
        "Output:",
        "Examples:",
        "possible values: size-mtime, size, etag, checksum",
        "possible values: crc64nvme, crc32c, crc32, sha256, sha1",
    ];
    for h in headings {
        assert!(help.contains(h), "sync --help lacks {h}");
    }
    for sub in ["sync", "verify", "ls", "cache", "vault", "cleanup"] {
        let out = run(larder(d.path()).args([sub, "-h"]));
        let short = String::from_utf8_lossy(&out.stdout);
        assert!(
            short.contains("Exit codes:") && short.contains("130"),
            "{sub} -h: {short}"
        );
    }
    // The version, the commit and the target.
    let out = run(larder(d.path()).arg("--version"));
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let want = format!("larder {} (", env!("CARGO_PKG_VERSION"));
    assert!(v.starts_with(&want) && v.ends_with(')'), "{v}");
    assert!(v.contains(std::env::consts::ARCH), "the target: {v}");
}

/// The documented install step writes man pages that `man` finds.
#[test]
fn man_pages_install_and_man_finds_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("man");
    let out = run(larder(d.path()).args(["man", "--dir"]).arg(&dir));
    assert_eq!(out.status.code(), Some(0));
    let man = |page: &str| {
        let out = std::process::Command::new("man")
            .env("MANPATH", &dir)
            .env("MANWIDTH", "200")
            .args(["-P", "cat", page])
            .output()
            .expect("man runs (Debian's man-db; .ci/run installs it)");
        assert!(
            out.status.success(),
            "man {page}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = man("larder");
    assert!(top.contains("larder") && top.contains("sync"), "{top}");
    let sync = man("larder-sync");
    for flag in ["--delete", "--server-side-copy", "Exit codes"] {
        assert!(sync.contains(flag), "man larder-sync lacks {flag}");
    }
    // Without --dir, the page goes to standard output.
    let out = run(larder(d.path()).arg("man"));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(".ie"),
        "roff"
    );
}

#[test]
fn local_sync_json_summary_and_idempotence() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    for i in 0..10 {
        write(
            &src.join(format!("d{}/f{i}", i % 2)),
            format!("data {i}").as_bytes(),
        );
    }
    let out = run(larder(d.path())
        .args(["sync", "--json"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(s["transferred"], 10);
    assert_eq!(s["errors"], 0);
    assert_eq!(std::fs::read(dst.join("d1/f3")).unwrap(), b"data 3");
    let events: Vec<_> = json_lines(&out)
        .into_iter()
        .filter(|v| v["event"] == "transfer")
        .collect();
    assert_eq!(events.len(), 10);
    let out = run(larder(d.path())
        .args(["sync", "--json"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(summary(&out)["skipped"], 10);
    assert_eq!(summary(&out)["transferred"], 0);
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    write(&src.join("new.txt"), b"new");
    write(&dst.join("old.txt"), b"old");
    let out = run(larder(d.path())
        .args(["sync", "--dry-run", "--delete"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    let plan = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = plan.lines().collect();
    assert_eq!(lines.len(), 2, "{plan}");
    assert!(
        lines[0].starts_with("transfer")
            && lines[0].contains("new.txt")
            && lines[0].contains("missing at destination"),
        "{plan}"
    );
    assert!(
        lines[1].starts_with("delete") && lines[1].contains("old.txt"),
        "{plan}"
    );
    assert!(!dst.join("new.txt").exists());
    assert!(dst.join("old.txt").exists());
    // The same through the environment.
    let out = run(larder(d.path())
        .env("LARDER_DRY_RUN", "true")
        .env("LARDER_DELETE", "true")
        .args(["sync"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    assert!(!dst.join("new.txt").exists());
}

#[test]
fn delete_of_everything_needs_allow_empty_source() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    write(&dst.join("keep.txt"), b"k");
    let out = run(larder(d.path())
        .args(["sync", "--delete"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(
        out.status.code(),
        Some(3),
        "refused deletions are a warning"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("source is empty"));
    assert!(dst.join("keep.txt").exists());
    let out = run(larder(d.path())
        .args(["sync", "--delete", "--allow-empty-source"])
        .arg(&src)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    assert!(!dst.join("keep.txt").exists());
}

#[test]
fn bad_input_gets_one_line_and_the_documented_exit_code() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["sync", "SRC", "s3://Bad_Bucket/x"], 2, "Bad_Bucket"),
        (&["sync", "SRC", "ftp://host/x"], 2, "ftp://host/x"),
        (
            &["sync", "SRC", "DST", "--include", "["],
            2,
            "invalid glob `[`",
        ),
        (&["sync", "SRC", "DST", "--compare", "bogus"], 2, "bogus"),
        (
            &["sync", "SRC", "DST", "--checksum-algorithm", "md4"],
            2,
            "md4",
        ),
        (
            &["sync", "/nonexistent/larder-src", "DST"],
            1,
            "/nonexistent/larder-src",
        ),
        // A missing source is an error, not an empty source whose keys all look extra.
        (
            &["verify", "/nonexistent/larder-src", "DST"],
            1,
            "/nonexistent/larder-src",
        ),
        (
            &["sync", "cacache:///nonexistent/cache", "DST"],
            1,
            "cacache:///nonexistent/cache",
        ),
    ];
    for (args, code, needle) in cases {
        let args: Vec<String> = args
            .iter()
            .map(|a| match *a {
                "SRC" => src.display().to_string(),
                "DST" => d.path().join("dst").display().to_string(),
                a => a.to_owned(),
            })
            .collect();
        let out = run(larder(d.path()).args(&args));
        assert_eq!(out.status.code(), Some(*code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!d.path().join("dst").exists(), "nothing written");
}

#[test]
fn completions_are_printed() {
    let d = tempfile::tempdir().unwrap();
    let out = run(larder(d.path()).args(["completions", "bash"]));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("larder"));
}

/// The names users of rclone, aws-cli and s3sync type (#13).
#[test]
fn aliases_users_type_and_filter_files() {
    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("src"), d.path().join("dst"));
    for name in ["a.jpg", "b.png", "c.txt", "sub/d.jpg", "sub/e.txt"] {
        write(&src.join(name), name.as_bytes());
    }
    let sync = |args: &[&str], to: &std::path::Path| {
        let mut c = larder(d.path());
        c.arg("sync").args(args).arg(&src).arg(to);
        run(&mut c)
    };
    // Brace globs are one glob, not split at the comma.
    let only = d.path().join("only");
    let out = sync(&["--json", "--include", "*.{jpg,png}"], &only);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        summary(&out)["transferred"],
        3,
        "a.jpg, b.png, sub/d.jpg: unanchored, as rclone matches"
    );
    // --dryrun, --transfers, --no-cache and --no-meta-cache, a bare --path-style.
    let out = sync(
        &["--dryrun", "--transfers", "4", "--no-cache", "--path-style"],
        &dst,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(!dst.exists(), "a dry run writes nothing");
    assert!(String::from_utf8_lossy(&out.stdout).contains("transfer"));
    let out = sync(&["--json", "--no-meta-cache"], &dst);
    assert_eq!(summary(&out)["transferred"], 5);
    // --size-only: a same-size change with a new mtime is left alone; the default sends it.
    write(&src.join("c.txt"), b"C.TXT");
    let out = sync(&["--json", "--size-only"], &dst);
    assert_eq!(
        (
            summary(&out)["transferred"].as_u64(),
            summary(&out)["skipped"].as_u64()
        ),
        (Some(0), Some(5))
    );
    let out = sync(&["--json"], &dst);
    assert_eq!(summary(&out)["transferred"], 1);
    // -c without an algorithm: a usage error, not a silent re-send of every same-size key.
    let out = sync(&["-c"], &dst);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--checksum-algorithm"));
    let out = sync(&["--size-only", "--checksum"], &dst);
    assert_eq!(out.status.code(), Some(2), "exclusive");

    // Filter files: one pattern or key per line, `#` comments, blank lines.
    let inc = d.path().join("include.txt");
    write(&inc, b"# pictures\n**.jpg\n\n");
    let exc = d.path().join("exclude.txt");
    write(&exc, b"sub/**\n");
    let picked = d.path().join("picked");
    let out = run(larder(d.path())
        .args(["sync", "--json", "--include-from"])
        .arg(&inc)
        .arg("--exclude-from")
        .arg(&exc)
        .arg(&src)
        .arg(&picked));
    assert_eq!(summary(&out)["transferred"], 1, "a.jpg only: sub/ excluded");
    let list = d.path().join("files.txt");
    write(&list, b"# exactly these\nc.txt\n/sub/e.txt\nmissing.txt\n");
    let listed = d.path().join("listed");
    let out = run(larder(d.path())
        .args(["sync", "--json", "--files-from"])
        .arg(&list)
        .arg(&src)
        .arg(&listed));
    assert_eq!(summary(&out)["transferred"], 2);
    assert!(listed.join("sub/e.txt").is_file() && listed.join("c.txt").is_file());
    let out = run(larder(d.path())
        .args(["sync", "--files-from"])
        .arg(d.path().join("nope.txt"))
        .arg(&src)
        .arg(&listed));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.txt"));
}

/// With `--json`, a fatal error is JSON on standard output too, followed by a summary, and
/// every line carries the schema version.
#[test]
fn json_fatal_errors_and_schema_versions() {
    let d = tempfile::tempdir().unwrap();
    let out = run(larder(d.path())
        .args(["--json", "sync"])
        .arg(d.path().join("missing"))
        .arg(d.path().join("dst")));
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "error");
    assert_eq!(lines[0]["fatal"], true);
    assert!(
        lines[0]["error"].as_str().unwrap().contains("missing"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[0]["exit_code"], 1);
    assert_eq!(lines[1]["event"], "summary");
    assert_eq!(lines[1]["exit_code"], 1);

    let src = d.path().join("src");
    write(&src.join("a"), b"a");
    let out = run(larder(d.path())
        .args(["--json", "sync"])
        .arg(&src)
        .arg(d.path().join("dst")));
    let lines = json_lines(&out);
    assert!(lines.len() >= 2);
    assert!(lines.iter().all(|l| l["schema"] == 1), "{lines:?}");
}
