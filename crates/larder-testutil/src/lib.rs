//! Test support for larder: how tests find the S3 test server.
//!
//! `scripts/test` starts Garage on 127.0.0.1 and exports `LARDER_TEST_S3_*`; tests that need
//! S3 call [`s3_env`], which panics with instructions when the server is not configured, so a
//! run without it fails loudly instead of skipping. To run only the offline tests, filter the
//! S3 ones out: `cargo nextest run -E 'not test(/s3/)'`.

pub mod kache;
pub mod proxy;

use std::env;

/// Where the S3 test server is and how to sign in.
#[derive(Debug, Clone)]
pub struct S3Env {
    /// The endpoint URL, on loopback (`http://127.0.0.1:3900`).
    pub endpoint: String,
    /// The bucket the tests may use.
    pub bucket: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The region the server expects.
    pub region: String,
}

/// The S3 test server from the environment.
///
/// # Panics
///
/// When `LARDER_TEST_S3_ENDPOINT` and its companions are not set, or the endpoint is not a
/// loopback address (tests never talk to anything else).
pub fn s3_env() -> S3Env {
    server_env(
        "LARDER_TEST_S3",
        "garage",
        "the S3 tests need the Garage test server",
    )
}

/// The radosgw (Ceph) test server, for what Garage lacks: versioning, tags, conditional
/// writes. Tests that use it are named `s3_rgw_*`.
///
/// # Panics
///
/// As [`s3_env`], for `LARDER_TEST_RGW_*`.
pub fn rgw_env() -> S3Env {
    server_env(
        "LARDER_TEST_RGW",
        "us-east-1",
        "the radosgw tests need the Ceph test server",
    )
}

/// A fresh bucket of its own on the radosgw test server (versioned when asked), created with
/// the AWS CLI, a real client; the returned environment names it.
///
/// # Panics
///
/// As [`rgw_env`], or when the AWS CLI fails.
pub fn rgw_bucket(versioned: bool) -> S3Env {
    let mut env = rgw_env();
    env.bucket = unique(if versioned { "versioned" } else { "bucket" });
    aws_cli(&env, &["s3api", "create-bucket", "--bucket", &env.bucket]);
    if versioned {
        aws_cli(
            &env,
            &[
                "s3api",
                "put-bucket-versioning",
                "--bucket",
                &env.bucket,
                "--versioning-configuration",
                "Status=Enabled",
            ],
        );
    }
    env
}

/// Runs the AWS CLI against `env`'s server; returns its standard output.
///
/// # Panics
///
/// When it cannot run or fails.
pub fn aws_cli(env: &S3Env, args: &[&str]) -> String {
    let out = std::process::Command::new("aws")
        .args(["--endpoint-url", &env.endpoint])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env("AWS_DEFAULT_REGION", &env.region)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the aws CLI runs");
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn server_env(var: &str, default_region: &str, need: &str) -> S3Env {
    let get = |suffix: &str| {
        let name = format!("{var}_{suffix}");
        env::var(&name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: {need}. Run the suite with `./scripts/test` (it installs \
                 and starts Garage and radosgw on 127.0.0.1), or export {var}_ENDPOINT, \
                 _BUCKET, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY and _REGION; `cargo nextest run \
                 -E 'not test(/s3/)'` runs the rest"
            )
        })
    };
    let e = S3Env {
        endpoint: get("ENDPOINT"),
        bucket: get("BUCKET"),
        access_key_id: get("ACCESS_KEY_ID"),
        secret_access_key: get("SECRET_ACCESS_KEY"),
        region: env::var(format!("{var}_REGION")).unwrap_or_else(|_| default_region.to_owned()),
    };
    let host_ok = ["http://127.", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|p| e.endpoint.starts_with(p));
    assert!(
        host_ok,
        "{var}_ENDPOINT `{}` is not a loopback address; tests only talk to 127.0.0.0/8",
        e.endpoint
    );
    e
}

/// Every file below `dir` (absolute paths, sorted), with its bytes; empty when `dir` is
/// missing.
pub fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let data = std::fs::read(&p).unwrap_or_default();
                out.push((p, data));
            }
        }
    }
    out.sort();
    out
}

/// A random lowercase name for a test's own prefix.
pub fn unique(prefix: &str) -> String {
    use rand::Rng;
    format!(
        "{prefix}-{:012x}",
        rand::thread_rng().gen::<u64>() & 0xffff_ffff_ffff
    )
}

/// A store on the test bucket: at its root, or at `prefix/` when given.
///
/// # Panics
///
/// As [`s3_env`], or when the store cannot be built.
pub async fn s3_store(
    opts: larder_store::S3Options,
    prefix: Option<&str>,
) -> larder_store::S3Store {
    store_on(&s3_env(), opts, prefix).await
}

/// A store on the radosgw test bucket, as [`s3_store`] on Garage's.
///
/// # Panics
///
/// As [`rgw_env`], or when the store cannot be built.
pub async fn rgw_store(
    opts: larder_store::S3Options,
    prefix: Option<&str>,
) -> larder_store::S3Store {
    store_on(&rgw_env(), opts, prefix).await
}

/// A store on `env`'s bucket: at its root, or at `prefix/` when given.
///
/// # Panics
///
/// When the store cannot be built.
pub async fn store_on(
    env: &S3Env,
    mut opts: larder_store::S3Options,
    prefix: Option<&str>,
) -> larder_store::S3Store {
    opts.endpoint_url = Some(env.endpoint.clone());
    opts.region = Some(env.region.clone());
    opts.credentials = Some(larder_store::s3::StaticCredentials {
        access_key_id: env.access_key_id.clone(),
        secret_access_key: env.secret_access_key.clone(),
        session_token: None,
    });
    let url = match prefix {
        Some(p) => format!("s3://{}/{p}/", env.bucket),
        None => format!("s3://{}", env.bucket),
    };
    larder_store::S3Store::new(larder_store::S3Url::parse(&url).expect("test URL"), opts)
        .await
        .expect("S3 store")
}

/// Waits for the background aborts of this process to finish (as the CLI does before it
/// exits), then up to 5 s more for the uploads under `prefix` to be gone; returns what is
/// still there.
///
/// # Panics
///
/// When the uploads cannot be listed.
pub async fn uploads_left_after_abort(
    store: &larder_store::S3Store,
    prefix: &str,
) -> Vec<(larder_store::Key, String)> {
    assert!(
        larder_store::s3::finish_background_aborts(std::time::Duration::from_secs(60)).await,
        "the background aborts did not finish in 60 s"
    );
    let mut left = Vec::new();
    for _ in 0..50 {
        left = store.multipart_uploads(prefix).await.expect("list uploads");
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    left
}

/// Asserts that every `tests/it/*.rs` of the crate at `manifest_dir` is declared as a module
/// in `tests/it/main.rs`: a forgotten file would silently not run.
///
/// # Panics
///
/// When one is not, naming it.
pub fn assert_test_modules_declared(manifest_dir: &str) {
    let dir = std::path::Path::new(manifest_dir).join("tests/it");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("tests/it/main.rs");
    for entry in std::fs::read_dir(&dir).expect("tests/it") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .into_string()
            .expect("UTF-8 name");
        if let Some(module) = name.strip_suffix(".rs").filter(|m| *m != "main") {
            assert!(
                main.contains(&format!("mod {module};")),
                "tests/it/{name} is not declared in tests/it/main.rs"
            );
        }
    }
}
