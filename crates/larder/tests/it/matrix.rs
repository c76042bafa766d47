//! The matrix of bad inputs (issue #14): URLs, options, credentials, endpoints, special
//! files, odd names, overlaps and guards. Every case asserts its exit code, that stderr
//! names the culprit, and that nothing was written where nothing should be.
//! Signals, a full disk, silent and garbage servers have their own tests (`bad_input.rs`).
//!
//! To add a case: one more `Case` in `cases()`; `{src}`, `{dst}`, `{file}`, `{s3}` (a fresh
//! prefix on the test server) and `{dir}` are replaced in its arguments.

use std::path::Path;

use crate::s3::larder_s3;
use crate::*;

struct Case {
    name: &'static str,
    args: Vec<&'static str>,
    env: Vec<(&'static str, &'static str)>,
    /// Whether the case talks to the test server (credentials and endpoint set).
    s3: bool,
    code: i32,
    /// Words stderr must contain (the culprit and the cause).
    says: Vec<&'static str>,
    /// A directory that must not have been created or changed (`{dst}`'s, by default).
    untouched: bool,
}

fn case(name: &'static str, code: i32, args: &[&'static str], says: &[&'static str]) -> Case {
    Case {
        name,
        args: args.to_vec(),
        env: Vec::new(),
        s3: false,
        code,
        says: says.to_vec(),
        untouched: true,
    }
}

impl Case {
    fn s3(mut self) -> Self {
        self.s3 = true;
        self
    }
    fn env(mut self, k: &'static str, v: &'static str) -> Self {
        self.env.push((k, v));
        self
    }
    fn writes(mut self) -> Self {
        self.untouched = false;
        self
    }
}

fn cases() -> Vec<Case> {
    vec![
        // URLs and locations
        case("empty s3 URL", 2, &["sync", "{src}", "s3://"], &["s3://"]),
        case(
            "s3 URL without bucket",
            2,
            &["sync", "{src}", "s3:///x"],
            &["s3:///x"],
        ),
        case(
            "bucket name with _ and capitals",
            2,
            &["sync", "{src}", "s3://B_ad/x"],
            &["B_ad"],
        ),
        case(
            "bucket name too short",
            2,
            &["sync", "{src}", "s3://ab/x"],
            &["ab"],
        ),
        case(
            "http URL as a location",
            2,
            &["sync", "{src}", "http://b/x"],
            &["http://b/x"],
        ),
        case(
            "ftp URL as destination",
            2,
            &["sync", "{src}", "ftp://h/x"],
            &["ftp://h/x"],
        ),
        case(
            "missing source directory",
            1,
            &["sync", "{dir}/nope", "{dst}"],
            &["nope", "not a directory"],
        ),
        case(
            "a file as the source",
            1,
            &["sync", "{file}", "{dst}"],
            &["file.txt", "not a directory"],
        ),
        case(
            "destination inside the source",
            2,
            &["sync", "{src}", "{src}/inner"],
            &["overlap"],
        ),
        case(
            "source inside the destination",
            2,
            &["sync", "{src}/sub", "{src}"],
            &["overlap"],
        ),
        case(
            "source equals destination",
            2,
            &["sync", "{src}", "{src}/."],
            &["overlap"],
        ),
        case(
            "verify of a missing source",
            1,
            &["verify", "{dir}/nope", "{dst}"],
            &["nope"],
        ),
        // Options
        case(
            "concurrency 0",
            2,
            &["sync", "-j", "0", "{src}", "{dst}"],
            &["concurrency", "at least 1"],
        ),
        case(
            "parts in flight 0",
            2,
            &["sync", "--parts-in-flight", "0", "{src}", "{dst}"],
            &["--parts-in-flight"],
        ),
        case(
            "verify concurrency 0",
            2,
            &["verify", "-j", "0", "{src}", "{dst}"],
            &["concurrency"],
        ),
        case(
            "timeout 0",
            2,
            &["sync", "--timeout", "0s", "{src}", "{dst}"],
            &["--timeout"],
        ),
        case(
            "timeout not a duration",
            2,
            &["sync", "--connect-timeout", "soon", "{src}", "{dst}"],
            &["soon"],
        ),
        case(
            "size not a size",
            2,
            &["sync", "--min-size", "big", "{src}", "{dst}"],
            &["big"],
        ),
        case(
            "size with unknown unit",
            2,
            &["sync", "--max-size", "10Q", "{src}", "{dst}"],
            &["10Q"],
        ),
        case(
            "bad regex",
            2,
            &["sync", "--include-regex", "(", "{src}", "{dst}"],
            &["("],
        ),
        case(
            "bad time",
            2,
            &["sync", "--newer-than", "yesterday-ish", "{src}", "{dst}"],
            &["yesterday-ish"],
        ),
        case(
            "unknown compare mode",
            2,
            &["sync", "--compare", "vibes", "{src}", "{dst}"],
            &["vibes"],
        ),
        case(
            "unknown checksum",
            2,
            &["sync", "--checksum-algorithm", "md4", "{src}", "{dst}"],
            &["md4"],
        ),
        case(
            "negative max-delete",
            2,
            &["sync", "--max-delete", "-1", "{src}", "{dst}"],
            &["-1"],
        ),
        case(
            "unknown flag",
            2,
            &["sync", "--frobnicate", "{src}", "{dst}"],
            &["--frobnicate"],
        ),
        case(
            "missing destination argument",
            2,
            &["sync", "{src}"],
            &["DST"],
        ),
        case("unknown subcommand", 2, &["synk"], &["synk"]),
        case(
            "part size under 5 MiB",
            2,
            &["sync", "--part-size", "1Mi", "{src}", "{s3}"],
            &["5 MiB"],
        )
        .s3(),
        case(
            "endpoint not a URL",
            2,
            &["sync", "--endpoint-url", "not a url", "{src}", "{s3}"],
            &["not a url"],
        )
        .s3(),
        case(
            "bad LARDER_ env value",
            2,
            &["sync", "{src}", "{dst}"],
            &["many"],
        )
        .env("LARDER_CONCURRENCY", "many"),
        // Credentials and buckets
        case("wrong secret", 1, &["sync", "{src}", "{s3}"], &["403"])
            .s3()
            .env(
                "AWS_SECRET_ACCESS_KEY",
                "0000000000000000000000000000000000000000000000000000000000000000",
            ),
        case(
            "unknown access key",
            1,
            &["sync", "{src}", "{s3}"],
            &["s3://"],
        )
        .s3()
        .env("AWS_ACCESS_KEY_ID", "GK000000000000000000000000"),
        case(
            "missing bucket",
            1,
            &["sync", "{src}", "s3://no-such-bucket-matrix/x"],
            &["no-such-bucket-matrix", "does not exist"],
        )
        .s3(),
        case(
            "missing bucket as source",
            1,
            &["sync", "s3://no-such-bucket-matrix/x", "{dst}"],
            &["no-such-bucket-matrix"],
        )
        .s3(),
        case(
            "ls of a missing bucket",
            1,
            &["ls", "s3://no-such-bucket-matrix"],
            &["no-such-bucket-matrix"],
        )
        .s3(),
        // Endpoints
        case(
            "nothing listens",
            1,
            &[
                "sync",
                "--endpoint-url",
                "http://127.0.0.1:9",
                "{src}",
                "{s3}",
            ],
            &["http://127.0.0.1:9", "could not reach"],
        )
        .s3(),
        case(
            "https to a plain server",
            1,
            &["sync", "--connect-timeout", "2s", "{src}", "{s3}"],
            &["https://"],
        )
        .s3()
        .env("LARDER_ENDPOINT_URL", "ENDPOINT_AS_HTTPS"),
        // Special files and odd names in a local source
        case(
            "FIFO in the source",
            1,
            &["sync", "{dir}/special", "{dst}"],
            &["fifo", "FIFO", "not read"],
        )
        .writes(),
        case(
            "socket in the source",
            1,
            &["sync", "{dir}/socket", "{dst}"],
            &["sock", "socket"],
        )
        .writes(),
        case(
            "non-UTF-8 file name",
            1,
            &["sync", "{dir}/badname", "{dst}"],
            &["badname", "not valid UTF-8"],
        )
        .writes(),
        case(
            "dangling symlink",
            1,
            &["sync", "{dir}/dangling", "{dst}"],
            &["link", "dangling"],
        )
        .writes(),
        case(
            "symlink loop",
            1,
            &["sync", "{dir}/loop", "{dst}"],
            &["loop"],
        )
        .writes(),
        // Odd keys from S3 into a directory
        case(
            "key escaping with ..",
            1,
            &["sync", "{s3}/odd", "{dst}"],
            &["../escape"],
        )
        .s3()
        .writes(),
        case(
            "absolute-looking key",
            1,
            &["sync", "{s3}/odd", "{dst}"],
            &["/abs"],
        )
        .s3()
        .writes(),
        case(
            "key holding NUL",
            1,
            &["sync", "{s3}/odd", "{dst}"],
            &["nul-"],
        )
        .s3()
        .writes(),
        case(
            "key with a 300-byte segment",
            1,
            &["sync", "{s3}/odd", "{dst}"],
            &["255"],
        )
        .s3()
        .writes(),
        case(
            "file and prefix clash",
            1,
            &["sync", "{s3}/odd", "{dst}"],
            &["clash"],
        )
        .s3()
        .writes(),
        case(
            "key with a backslash",
            1,
            &["sync", "{s3}/odd", "{dst}"],
            &["back\\slash"],
        )
        .s3()
        .writes(),
        // Guards
        case(
            "delete with an empty source",
            3,
            &["sync", "--delete", "{dir}/empty", "{dst_full}"],
            &["--allow-empty-source"],
        ),
        case(
            "max-delete exceeded",
            3,
            &[
                "sync",
                "--delete",
                "--max-delete",
                "1",
                "{dir}/empty2",
                "{dst_full}",
            ],
            &["--max-delete"],
        ),
        case(
            "dry run writes nothing",
            0,
            &["sync", "--dry-run", "{src}", "{dst}"],
            &[],
        ),
        case(
            "verify finds differences",
            3,
            &["verify", "{src}", "{dir}/empty"],
            &[],
        ),
        case(
            "cache get of a missing key",
            1,
            &["cache", "--cache", "{dir}/cache", "get", "nope", "-"],
            &["nope"],
        ),
        case(
            "missing cacache source",
            1,
            &["sync", "cacache://{dir}/nocache", "{dst}"],
            &["nocache", "not a directory"],
        ),
    ]
}

fn fill(dir: &Path) {
    write(&dir.join("src/a.txt"), b"alpha");
    write(&dir.join("src/sub/b.txt"), b"bravo");
    write(&dir.join("file.txt"), b"a file");
    write(&dir.join("special/ok.txt"), b"ok");
    assert!(std::process::Command::new("mkfifo")
        .arg(dir.join("special/fifo"))
        .status()
        .unwrap()
        .success());
    write(&dir.join("socket/ok.txt"), b"ok");
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("socket/sock")).unwrap();
    std::mem::forget(_sock); // stays a socket file for the test's life
    write(&dir.join("badname/ok.txt"), b"ok");
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"badname-\xff.txt");
        write(&dir.join("badname").join(name), b"x");
    }
    write(&dir.join("dangling/ok.txt"), b"ok");
    std::os::unix::fs::symlink(dir.join("gone"), dir.join("dangling/link")).unwrap();
    write(&dir.join("loop/ok.txt"), b"ok");
    std::os::unix::fs::symlink(dir.join("loop"), dir.join("loop/again")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    write(&dir.join("empty2/keep-1"), b"1");
}

/// Objects no directory can hold as they are named, beside one that it can.
async fn odd_objects(prefix: &str) {
    use larder_store::{Body, Key, PutOptions, Store};
    let store = larder_testutil::s3_store(Default::default(), Some(prefix)).await;
    let long = format!("long/{}", "x".repeat(300));
    for k in [
        "odd/ok.txt",
        "odd/../escape",
        "odd//abs",
        "odd/nul-\u{0}",
        long.replacen("long", "odd", 1).as_str(),
        "odd/clash",
        "odd/clash/inner",
        "odd/back\\slash",
    ] {
        store
            .put(
                &Key::new(k).unwrap(),
                Body::from_bytes("v"),
                PutOptions::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("put {k:?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_bad_inputs_matrix() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    fill(dir);
    let env = larder_testutil::s3_env();
    let prefix = larder_testutil::unique("matrix");
    odd_objects(&prefix).await;
    let s3 = format!("s3://{}/{prefix}", env.bucket);
    let https = env.endpoint.replacen("http://", "https://", 1);
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let dst = dir.join(format!("dst{i}"));
        let dst_full = dir.join(format!("full{i}"));
        write(&dst_full.join("keep-1"), b"1");
        write(&dst_full.join("keep-2"), b"2");
        write(&dst_full.join("keep-3"), b"3");
        let before = (files_under(&dir.join("src")), files_under(&dst_full));
        let subst = |a: &str| {
            a.replace("{src}", &dir.join("src").display().to_string())
                .replace("{dst_full}", &dst_full.display().to_string())
                .replace("{dst}", &dst.display().to_string())
                .replace("{file}", &dir.join("file.txt").display().to_string())
                .replace("{dir}", &dir.display().to_string())
                .replace("{s3}", &s3)
        };
        let mut cmd = if c.s3 { larder_s3(dir).0 } else { larder(dir) };
        for (k, v) in &c.env {
            cmd.env(
                k,
                if *v == "ENDPOINT_AS_HTTPS" {
                    https.as_str()
                } else {
                    v
                },
            );
        }
        let out = cmd
            .args(c.args.iter().map(|a| subst(a)))
            .output()
            .expect("run larder");
        let err = String::from_utf8_lossy(&out.stderr);
        let mut why = Vec::new();
        if out.status.code() != Some(c.code) {
            why.push(format!("exit {:?}, expected {}", out.status.code(), c.code));
        }
        for w in &c.says {
            if !err.contains(w) {
                why.push(format!("stderr lacks {w:?}"));
            }
        }
        if c.code == 1 || c.code == 2 {
            let lines = err
                .lines()
                .filter(|l| l.starts_with("larder: error") || l.starts_with("error:"))
                .count();
            if lines == 0 {
                why.push("no error line".to_owned());
            }
        }
        if c.untouched && dst.exists() && c.code != 0 {
            why.push(format!("{} was written", dst.display()));
        }
        if c.name == "dry run writes nothing" && dst.exists() {
            why.push("the dry run wrote".to_owned());
        }
        if (files_under(&dir.join("src")), files_under(&dst_full)) != before {
            why.push("the source or a guarded destination changed".to_owned());
        }
        if !files_under(&dst)
            .iter()
            .all(|(p, _)| !p.to_string_lossy().contains(".larder-tmp."))
        {
            why.push("a temp file was left".to_owned());
        }
        if !why.is_empty() {
            failures.push(format!(
                "{} ({}): {}\n  stderr: {}",
                c.name,
                i,
                why.join("; "),
                err.trim()
            ));
        }
    }
    eprintln!("{} bad-input cases, {} failed", cases.len(), failures.len());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
