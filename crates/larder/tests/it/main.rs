//! CLI tests: the `larder` binary on temp dirs and the Garage test server.

mod access;
mod bad_input;
mod cache;
mod cache_sync;
mod cache_vault;
mod cli;
mod config;
mod crash;
mod faults;
mod lua;
mod matrix;
mod metadata;
mod object_filters;
mod progress;
mod s3;
mod secrets;
mod transform;
mod twoway;
mod vault;
mod versions;

use std::path::Path;
use std::process::{Command, Output};

/// `larder` with a clean environment: no user config, cache in a temp dir.
pub fn larder(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_larder"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", state)
        .env("LARDER_STATE_DIR", state.join("state"))
        .env("AWS_CONFIG_FILE", state.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            state.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

/// `larder` pointed at `env`'s server with its credentials (Garage's or radosgw's).
pub fn larder_on(state: &Path, env: &larder_testutil::S3Env) -> Command {
    let mut c = larder(state);
    c.env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env("AWS_REGION", &env.region)
        .env("LARDER_ENDPOINT_URL", &env.endpoint);
    c
}

pub fn run(c: &mut Command) -> Output {
    let out = c.output().expect("run larder");
    eprintln!(
        "larder exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON lines of stdout.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// The summary object of a `--json` run.
pub fn summary(out: &Output) -> serde_json::Value {
    json_lines(out)
        .into_iter()
        .rfind(|v| v["event"] == "summary")
        .expect("a summary line")
}

pub use larder_testutil::files_under;

/// A current-thread runtime, for the S3 calls a test makes itself.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The test prefix of an `s3://bucket/prefix/` URL (`prefix`).
pub fn prefix_of(url: &str) -> String {
    url.splitn(4, '/')
        .nth(3)
        .unwrap()
        .trim_end_matches('/')
        .to_owned()
}

/// Every object under the test prefix of `url`, read directly from the server (no proxy):
/// key and bytes, in key order.
pub fn bucket_objects(url: &str) -> Vec<(String, Vec<u8>)> {
    let prefix = prefix_of(url);
    rt().block_on(async {
        use futures::TryStreamExt;
        use larder_store::Store;
        let store = larder_testutil::s3_store(Default::default(), Some(&prefix)).await;
        let listed: Vec<_> = store.list("").try_collect().await.unwrap();
        let mut out = Vec::new();
        for e in listed {
            let g = store.get(&e.key, Default::default()).await.unwrap();
            out.push((e.key.as_str().to_owned(), g.bytes().await.unwrap().to_vec()));
        }
        out
    })
}

/// Multipart uploads in progress under the test prefix of `url`.
pub fn uploads_in_progress(url: &str) -> usize {
    let prefix = prefix_of(url);
    rt().block_on(async {
        let store = larder_testutil::s3_store(Default::default(), Some(&prefix)).await;
        store.multipart_uploads("").await.unwrap().len()
    })
}

/// larder temp files below `dir`.
pub fn temps(dir: &Path) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .filter(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with(".larder-tmp."))
        })
        .collect()
}

pub fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Every test module is declared (a forgotten file would silently not run).
#[test]
fn no_forgotten_test_files() {
    larder_testutil::assert_test_modules_declared(env!("CARGO_MANIFEST_DIR"));
}
