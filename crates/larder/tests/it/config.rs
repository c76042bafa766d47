//! The config file (`$XDG_CONFIG_HOME/larder/config.toml`, here under the test's HOME):
//! defaults for options with the precedence flag > environment > file > built-in, named
//! remotes, and one-line usage errors for what it cannot hold.

use std::path::Path;

use crate::*;

fn config(home: &Path, text: &str) {
    write(&home.join(".config/larder/config.toml"), text.as_bytes());
}

#[test]
fn defaults_from_the_file_yield_to_the_environment_and_to_flags() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"a");
    config(d.path(), "[defaults]\ndry-run = true\nconcurrency = 4\n");
    let sync = |dst: &str, env: Option<&str>, flag: Option<&str>| {
        let mut c = larder(d.path());
        if let Some(v) = env {
            c.env("LARDER_DRY_RUN", v);
        }
        let out = run(c
            .args(["--json", "sync"])
            .args(flag)
            .arg(&src)
            .arg(d.path().join(dst)));
        assert_eq!(out.status.code(), Some(0));
        summary(&out)["dry_run"].as_bool().unwrap()
    };
    assert!(sync("file", None, None), "the file's default applies");
    assert!(!d.path().join("file").exists());
    assert!(
        !sync("env", Some("false"), None),
        "the environment wins over the file"
    );
    assert!(d.path().join("env/a.txt").exists());
    assert!(
        sync("flag", Some("false"), Some("--dry-run")),
        "a flag wins over both"
    );

    // Another file by LARDER_CONFIG; none with it empty.
    let other = d.path().join("other.toml");
    write(&other, b"[defaults]\ndry-run = false\n");
    let out = run(larder(d.path())
        .env("LARDER_CONFIG", &other)
        .args(["--json", "sync"])
        .arg(&src)
        .arg(d.path().join("other")));
    assert_eq!(summary(&out)["dry_run"], false);
    let out = run(larder(d.path())
        .env("LARDER_CONFIG", "")
        .args(["--json", "sync"])
        .arg(&src)
        .arg(d.path().join("none")));
    assert_eq!(
        summary(&out)["dry_run"],
        false,
        "no file: the built-in default"
    );
}

#[test]
fn what_the_file_cannot_hold_is_a_one_line_usage_error() {
    let d = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            "[defaults]\nconcurency = 4\n",
            "`concurency` is not an option",
        ),
        (
            "[defaults]\ninclude = ['a', 'b']\n",
            "`include` must be one string",
        ),
        ("[defaults\n", "config file"),
        (
            "[remotes.x]\nendpoint = 'http://127.0.0.1:1'\n",
            "unknown field `endpoint`",
        ),
    ] {
        config(d.path(), text);
        let out = run(larder(d.path()).args(["ls", "/tmp"]));
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(want) && err.contains("config.toml"),
            "{text}: {err}"
        );
    }
}

#[test]
fn s3_a_named_remote_stands_for_its_server() {
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    config(
        d.path(),
        &format!(
            "[remotes.garage]\nendpoint-url = \"{}\"\nregion = \"{}\"\n",
            env.endpoint, env.region
        ),
    );
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    let remote = format!(
        "garage:{}/{}",
        env.bucket,
        larder_testutil::unique("remote")
    );
    let creds = |c: &mut std::process::Command| {
        c.env("AWS_ACCESS_KEY_ID", &env.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key);
    };
    let mut c = larder(d.path());
    creds(&mut c);
    let out = run(c.args(["sync", "-q"]).arg(&src).arg(&remote));
    assert_eq!(out.status.code(), Some(0));
    let mut c = larder(d.path());
    creds(&mut c);
    let out = run(c.args(["ls", "--json"]).arg(&remote));
    assert_eq!(json_lines(&out).len(), 1);
    let mut c = larder(d.path());
    creds(&mut c);
    let out = run(c.arg("verify").arg(&src).arg(&remote));
    assert_eq!(out.status.code(), Some(0));
}
