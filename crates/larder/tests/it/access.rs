//! S3 access a user of aws-cli expects: `--no-sign-request` reads a public bucket without
//! any credentials (radosgw, a public-read bucket), and `--request-payer` sends
//! `x-amz-request-payer: requester` on every request (seen by a listener on loopback).

use std::io::{Read, Write as _};
use std::net::TcpListener;

use larder_testutil::aws_cli;

use crate::*;

/// `larder` with no credentials anywhere, pointed at `endpoint`.
fn anonymous(state: &std::path::Path, endpoint: &str) -> std::process::Command {
    let mut c = larder(state);
    c.env("LARDER_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1");
    c
}

#[test]
fn s3_rgw_no_sign_request_reads_a_public_bucket_without_credentials() {
    let env = larder_testutil::rgw_env();
    let bucket = larder_testutil::unique("public");
    aws_cli(
        &env,
        &[
            "s3api",
            "create-bucket",
            "--bucket",
            &bucket,
            "--acl",
            "public-read",
        ],
    );
    let d = tempfile::tempdir().unwrap();
    let body = d.path().join("body");
    write(&body, b"open data");
    aws_cli(
        &env,
        &[
            "s3api",
            "put-object",
            "--bucket",
            &bucket,
            "--key",
            "data/a.txt",
            "--body",
            body.to_str().unwrap(),
            "--acl",
            "public-read",
        ],
    );
    let url = format!("s3://{bucket}");
    let dst = d.path().join("dst");
    let out = run(anonymous(d.path(), &env.endpoint)
        .args(["sync", "--no-sign-request"])
        .arg(&url)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(dst.join("data/a.txt")).unwrap(), b"open data");
    // The per-side form reads the source the same way; with --json the logs (the SDK's
    // warnings about the missing config files) are JSON too.
    let out = run(anonymous(d.path(), &env.endpoint)
        .args(["--json", "verify", "--source-no-sign-request"])
        .arg(&url)
        .arg(&dst));
    assert_eq!(out.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(!logs.trim().is_empty(), "warnings were logged");
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(v["level"].is_string(), "{line}");
    }
    // Without it, no credentials: refused, with the hint.
    let out = run(anonymous(d.path(), &env.endpoint)
        .arg("sync")
        .arg(&url)
        .arg(d.path().join("dst2")));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: check the credentials"));
}

#[test]
fn request_payer_is_sent_on_every_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::thread::spawn(move || {
        // The first request's head, then a 403 so larder stops.
        let (mut sock, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        let _ = write!(
            sock,
            "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        String::from_utf8_lossy(&head).to_lowercase()
    });
    let d = tempfile::tempdir().unwrap();
    let out = run(anonymous(d.path(), &endpoint)
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .args(["ls", "--request-payer"])
        .arg("s3://payer-bucket/"));
    assert_eq!(out.status.code(), Some(1), "the listener refused it");
    let head = seen.join().unwrap();
    assert!(head.contains("x-amz-request-payer: requester"), "{head}");
}

/// An endpoint from the profile (`endpoint_url`) or from AWS_ENDPOINT_URL switches
/// path-style addressing on, as LARDER_ENDPOINT_URL does (Garage has no virtual hosts).
#[test]
fn s3_an_endpoint_from_the_profile_or_the_aws_environment_is_path_style() {
    let env = larder_testutil::s3_env();
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    write(&src.join("a.txt"), b"a");
    write(
        &d.path().join("no-aws-config"),
        format!(
            "[profile g]\nregion = {}\nendpoint_url = {}\n",
            env.region, env.endpoint
        )
        .as_bytes(),
    );
    write(
        &d.path().join("no-aws-credentials"),
        format!(
            "[g]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            env.access_key_id, env.secret_access_key
        )
        .as_bytes(),
    );
    let url = format!("s3://{}/{}", env.bucket, larder_testutil::unique("profile"));
    let out = run(larder(d.path())
        .args(["sync", "-q", "--profile", "g"])
        .arg(&src)
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    let out = run(larder(d.path())
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_REGION", &env.region)
        .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .args(["ls", "--json"])
        .arg(&url));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_lines(&out).len(), 1);
}
