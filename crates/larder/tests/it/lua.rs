//! Lua callbacks through the CLI: a filter and a preprocess script change what is synced and
//! the metadata and tags written (radosgw keeps tags; the AWS CLI reads them back), an event
//! script sees each action, and the sandbox refuses `os` with a clear error.

use larder_testutil::{aws_cli, S3Env};
use serde_json::Value;

use crate::*;

fn api(env: &S3Env, op: &str, key: &str) -> Value {
    let out = aws_cli(env, &["s3api", op, "--bucket", &env.bucket, "--key", key]);
    serde_json::from_str(&out).expect("JSON")
}

fn keys(env: &S3Env, prefix: &str) -> Vec<String> {
    let out = aws_cli(
        env,
        &[
            "s3api",
            "list-objects-v2",
            "--bucket",
            &env.bucket,
            "--prefix",
            prefix,
        ],
    );
    if out.trim().is_empty() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&out).expect("JSON");
    v["Contents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| o["Key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn s3_rgw_lua_filter_and_preprocess_change_what_is_synced_and_the_tags_written() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    write(&src.join("b.log"), b"bravo");
    write(&src.join("big.txt"), &[b'x'; 100]);
    write(&src.join("sub/c.txt"), b"charlie");
    let filter = d.path().join("filter.lua");
    std::fs::write(
        &filter,
        "function filter(o) return o.key:match('%.txt$') ~= nil and o.size < 50 end",
    )
    .unwrap();
    let pre = d.path().join("pre.lua");
    std::fs::write(
        &pre,
        r#"function preprocess(o, u)
             u.content_type = "text/x-larder"
             u.metadata["checked"] = "yes"
             u.tags = { origin = "lua", name = o.key:match("[^/]+$") }
           end"#,
    )
    .unwrap();
    let events = d.path().join("events.txt");
    let ev = d.path().join("ev.lua");
    std::fs::write(
        &ev,
        r#"function on_event(e)
             local f = io.open(os.getenv("EVENTS_FILE"), "a")
             f:write(e.event .. " " .. e.key .. "\n")
             f:close()
           end"#,
    )
    .unwrap();
    let env = larder_testutil::rgw_bucket(false);
    let url = format!("s3://{}/lua", env.bucket);
    let out = run(larder_on(d.path(), &env)
        .env("EVENTS_FILE", &events)
        .args(["--json", "sync"])
        .arg(&src)
        .arg(&url)
        .arg("--filter-callback-lua-script")
        .arg(&filter)
        .arg("--preprocess-callback-lua-script")
        .arg(&pre)
        .arg("--event-callback-lua-script")
        .arg(&ev)
        .arg("--allow-lua-os-library"));
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(
        (s["transferred"].clone(), s["filtered"].clone()),
        (2.into(), 2.into()),
        "{s}"
    );
    let mut got = keys(&env, "lua/");
    got.sort();
    assert_eq!(got, ["lua/a.txt", "lua/sub/c.txt"]);
    let head = api(&env, "head-object", "lua/a.txt");
    assert_eq!(head["ContentType"], "text/x-larder");
    assert_eq!(head["Metadata"]["checked"], "yes");
    let tags = api(&env, "get-object-tagging", "lua/sub/c.txt");
    let mut t: Vec<(String, String)> = tags["TagSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_owned(),
                t["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    t.sort();
    assert_eq!(
        t,
        [
            ("name".to_owned(), "c.txt".to_owned()),
            ("origin".to_owned(), "lua".to_owned())
        ]
    );
    let mut lines: Vec<String> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["transfer a.txt", "transfer sub/c.txt"]);
}

#[test]
fn s3_a_sandboxed_script_calling_os_execute_fails_by_name_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"alpha");
    let marker = d.path().join("pwned");
    let filter = d.path().join("evil.lua");
    std::fs::write(
        &filter,
        format!(
            "function filter(o) os.execute('touch {}') return true end",
            marker.display()
        ),
    )
    .unwrap();
    let (mut c, url) = crate::s3::larder_s3(d.path());
    let out = run(c
        .args(["sync"])
        .arg(&src)
        .arg(&url)
        .arg("--filter-callback-lua-script")
        .arg(&filter));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.txt") && err.contains("evil.lua"), "{err}");
    assert!(
        err.contains("global 'os'") && err.contains("--allow-lua-os-library"),
        "{err}"
    );
    assert!(!marker.exists(), "the command ran");
    assert!(bucket_objects(&url).is_empty(), "nothing written");
    // A script that does not compile is a usage error before anything is listed.
    std::fs::write(&filter, "function filter(o) return end end").unwrap();
    let (mut c, url) = crate::s3::larder_s3(d.path());
    let out = run(c
        .args(["sync"])
        .arg(&src)
        .arg(&url)
        .arg("--filter-callback-lua-script")
        .arg(&filter));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("evil.lua"));
}
