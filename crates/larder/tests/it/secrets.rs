//! No credential ever reaches what larder prints: logs at the most verbose level (the SDK's
//! trace output dumps identities and signed requests), errors, JSON events — with rejected
//! credentials and with good ones through a proxy that makes requests fail and retry.

use larder_testutil::proxy::{Fault, Proxy};

use crate::*;

fn assert_clean(out: &std::process::Output, secrets: &[&str]) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().count() > 20, "verbose output was produced");
    for s in secrets {
        assert!(!text.contains(s), "a credential was printed: `{s}`");
    }
    let signature = regex::Regex::new(r"(?i)signature=[0-9a-f]{64}").unwrap();
    assert!(
        !signature.is_match(&text),
        "a request signature was printed"
    );
}

#[test]
fn s3_rejected_credentials_are_not_printed_even_at_trace_level() {
    let d = tempfile::tempdir().unwrap();
    write(&d.path().join("src/a.txt"), b"a");
    let env = larder_testutil::s3_env();
    let (id, secret, token) = (
        "AKIAMARKERACCESSKEY1",
        "MarkerSecretKeyValue0123456789abcdefghij",
        "MarkerSessionTokenValue0123",
    );
    let out = run(larder(d.path())
        .env("AWS_ACCESS_KEY_ID", id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_SESSION_TOKEN", token)
        .env("AWS_REGION", &env.region)
        .env("LARDER_ENDPOINT_URL", &env.endpoint)
        .env("LARDER_LOG", "trace")
        .args(["sync", "-vv", "--json"])
        .arg(d.path().join("src"))
        .arg(format!("s3://{}/secrets", env.bucket)));
    assert_eq!(out.status.code(), Some(1), "rejected");
    assert_clean(&out, &[id, secret, token]);
}

#[test]
fn s3_good_credentials_are_not_printed_through_failures_and_retries() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..20 {
        write(
            &d.path().join(format!("src/f{i}")),
            format!("file {i}").as_bytes(),
        );
    }
    let env = larder_testutil::s3_env();
    let proxy = Proxy::start(
        &env.endpoint,
        Fault::Random {
            seed: 5,
            percent: 30,
        },
    );
    let (mut c, url) = crate::s3::larder_s3(d.path());
    let out = run(c
        .env("LARDER_ENDPOINT_URL", &proxy.endpoint)
        .env("LARDER_LOG", "trace")
        .args(["sync", "-vv", "--json", "--retries", "0"])
        .arg(d.path().join("src"))
        .arg(&url));
    assert!(proxy.faulted() > 0);
    assert_clean(&out, &[&env.access_key_id, &env.secret_access_key]);
}
