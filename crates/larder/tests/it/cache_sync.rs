//! `larder cache sync` against the Garage test server: buckets kache wrote (fixtures from
//! kache's documented format), the lockfile filters and their fallbacks, the dry-run text,
//! hostile and half-written entries, request counts, and the real npm client.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use larder_store::{Body, Key, PutOptions, S3Options, Store};
use larder_testutil::kache;

use crate::s3::larder_s3;
use crate::*;

const LIB: &[u8] = b"!<arch>\nlibrary bytes";
const META: &[u8] = b"rmeta bytes";

fn put_objects(url: &str, objects: &[(String, Vec<u8>)]) {
    let prefix = prefix_of(url);
    rt().block_on(async {
        let store = larder_testutil::s3_store(S3Options::default(), Some(&prefix)).await;
        for (k, v) in objects {
            store
                .put(
                    &Key::new(k).unwrap(),
                    Body::from_bytes(v.clone()),
                    PutOptions::default(),
                )
                .await
                .unwrap();
        }
    });
}

fn get_object(url: &str, key: &str) -> Vec<u8> {
    let prefix = prefix_of(url);
    rt().block_on(async {
        let store = larder_testutil::s3_store(S3Options::default(), Some(&prefix)).await;
        let got = store
            .get(&Key::new(key).unwrap(), Default::default())
            .await
            .unwrap();
        got.bytes().await.unwrap().to_vec()
    })
}

fn keys_under(url: &str, sub: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let prefix = prefix_of(url);
    rt().block_on(async {
        let store = larder_testutil::s3_store(S3Options::default(), Some(&prefix)).await;
        let v: Vec<_> = store.list(sub).try_collect().await.unwrap();
        v.into_iter().map(|e| e.key.as_str().to_owned()).collect()
    })
}

/// A kache entry in the bucket, as kache writes it: pack first, then manifest.
fn kache_entry(namespace: &str, seed: &str) -> (String, Vec<(String, Vec<u8>)>) {
    let ck = kache::cache_key(seed);
    let files: Vec<(&str, &[u8])> = vec![("lib.rlib", LIB), ("lib.rmeta", META)];
    let pack = kache::pack(&ck, namespace, &files);
    let pack_key = format!("artifacts/v3/packs/{namespace}/{ck}.tar.zst");
    let manifest = kache::manifest(&pack_key, &ck, namespace, pack.len(), &files);
    (
        ck.clone(),
        vec![
            (pack_key, pack),
            (
                format!("artifacts/v3/manifests/{namespace}/{ck}.json"),
                manifest,
            ),
        ],
    )
}

/// A bucket location with kache entries for `namespaces`; their cache keys, in order.
fn kache_bucket(d: &Path, namespaces: &[&str]) -> (String, Vec<String>) {
    let (_, url) = larder_s3(d);
    let mut objects = Vec::new();
    let mut keys = Vec::new();
    for ns in namespaces {
        let (ck, objs) = kache_entry(ns, &format!("{url}/{ns}"));
        keys.push(ck);
        objects.extend(objs);
    }
    put_objects(&url, &objects);
    (url, keys)
}

fn cache_sync(d: &Path, project: &Path, cache: &Path, args: &[&str], url: &str) -> Output {
    let (mut c, _) = larder_s3(d);
    // `cargo metadata` (the push filter) runs the toolchain's cargo directly: the test's
    // HOME has no rustup configuration.
    c.env("CARGO", env!("CARGO"));
    c.current_dir(project)
        .args(["cache", "sync", "--cache"])
        .arg(cache)
        .args(args)
        .arg(url);
    run(&mut c)
}

fn cargo_lock(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = String::from("version = 4\n");
    for n in names {
        s.push_str(&format!(
            "\n[[package]]\nname = \"{n}\"\nversion = \"1.0.0\"\n"
        ));
    }
    std::fs::write(dir.join("Cargo.lock"), s).unwrap();
}

fn pulled(out: &Output) -> u64 {
    summary(out)["pulled"].as_u64().unwrap()
}

fn cache_get(d: &Path, cache: &Path, key: &str) -> Option<Vec<u8>> {
    let out = larder(d)
        .args(["cache", "--cache"])
        .arg(cache)
        .args(["get", key])
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

#[test]
fn s3_kache_bucket_pull_filtered_by_cargo_lock_lists_only_those_namespaces() {
    let d = tempfile::tempdir().unwrap();
    let (url, keys) = kache_bucket(d.path(), &["serde", "tokio_util", "rand"]);
    let project = d.path().join("project");
    cargo_lock(&project, &["serde", "tokio-util"]);
    let cache = d.path().join("cache");

    // The dry run: kache's text, and nothing written.
    let out = cache_sync(d.path(), &project, &cache, &["--pull", "--dry-run"], &url);
    assert_eq!(out.status.code(), Some(0));
    let mut want = vec![
        (keys[0].as_str(), "serde"),
        (keys[1].as_str(), "tokio_util"),
    ];
    want.sort_by_key(|(ck, ns)| (*ns, *ck));
    let mut text = String::from("Plan: pull 2 artifacts, push 0 artifacts\n");
    for (ck, ns) in &want {
        text.push_str(&format!("pull {}... ({ns})\n", &ck[..16]));
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
    assert!(!cache.exists(), "a dry run writes nothing");

    let out = cache_sync(d.path(), &project, &cache, &["--pull", "--json"], &url);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(s["pulled"], 2);
    // serde, tokio-util and tokio_util: one LIST each, nothing else listed; one GET a pack.
    assert_eq!(s["requests"]["list"], 3, "{s}");
    assert_eq!(s["requests"]["get"], 2, "{s}");
    let file = |ns: &str, ck: &str, name: &str| {
        cache_get(d.path(), &cache, &format!("kache:{ns}/{ck}/{name}"))
    };
    assert_eq!(file("serde", &keys[0], "lib.rlib").as_deref(), Some(LIB));
    assert_eq!(
        file("tokio_util", &keys[1], "lib.rmeta").as_deref(),
        Some(META)
    );
    assert_eq!(
        file("rand", &keys[2], "lib.rlib"),
        None,
        "rand is not in Cargo.lock"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&file("serde", &keys[0], "meta.json").unwrap()).unwrap();
    assert_eq!(meta["cache_key"], keys[0].as_str());

    // A second pull finds everything present: no GET.
    let out = cache_sync(d.path(), &project, &cache, &["--pull", "--json"], &url);
    let s = summary(&out);
    assert_eq!(
        (s["pulled"].as_u64(), s["requests"]["get"].as_u64()),
        (Some(0), Some(0))
    );

    // --all ignores the filter.
    let out = cache_sync(
        d.path(),
        &project,
        &cache,
        &["--pull", "--all", "--json"],
        &url,
    );
    assert_eq!(pulled(&out), 1);
    assert_eq!(file("rand", &keys[2], "lib.rlib").as_deref(), Some(LIB));

    // Pushed elsewhere, an imported kache entry is a pack kache accepts, with kache's
    // meta.json byte for byte.
    let (_, url2) = larder_s3(d.path());
    let out = cache_sync(
        d.path(),
        &project,
        &cache,
        &["--push", "--all", "--json"],
        &url2,
    );
    assert_eq!(summary(&out)["pushed"], 3);
    let pack = get_object(
        &url2,
        &format!("artifacts/v3/packs/serde/{}.tar.zst", keys[0]),
    );
    let (meta, files) = kache::kache_accepts(&pack).unwrap();
    assert_eq!(meta["cache_key"], keys[0].as_str());
    assert_eq!(
        meta["target"], "x86_64-unknown-linux-gnu",
        "kache's fields survive"
    );
    assert_eq!(
        files,
        [
            ("lib.rlib".to_owned(), LIB.to_vec()),
            ("lib.rmeta".to_owned(), META.to_vec())
        ]
    );
    let manifest: serde_json::Value = serde_json::from_slice(&get_object(
        &url2,
        &format!("artifacts/v3/manifests/serde/{}.json", keys[0]),
    ))
    .unwrap();
    assert_eq!(manifest["version"], 3);
    assert_eq!(manifest["pack_bytes"], pack.len());
    assert_eq!(manifest["file_count"], 2);
    assert_eq!(
        manifest["pack_key"],
        format!(
            "{}/artifacts/v3/packs/serde/{}.tar.zst",
            prefix_of(&url2),
            keys[0]
        )
    );
}

#[test]
fn s3_pull_falls_back_to_everything_without_lockfile_names() {
    let d = tempfile::tempdir().unwrap();
    let (url, _) = kache_bucket(d.path(), &["serde", "rand"]);
    // No Cargo.lock.
    let empty = d.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = cache_sync(
        d.path(),
        &empty,
        &d.path().join("c1"),
        &["--pull", "--json"],
        &url,
    );
    assert_eq!(pulled(&out), 2);
    assert_eq!(
        summary(&out)["requests"]["list"],
        1,
        "one listing of every manifest"
    );
    // A Cargo.lock with no packages.
    let nameless = d.path().join("nameless");
    cargo_lock(&nameless, &[]);
    let out = cache_sync(
        d.path(),
        &nameless,
        &d.path().join("c2"),
        &["--pull", "--json"],
        &url,
    );
    assert_eq!(pulled(&out), 2);
    // A malformed Cargo.lock is an error naming it, not a silent full pull.
    let bad = d.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("Cargo.lock"), "[[package]\n").unwrap();
    let out = cache_sync(d.path(), &bad, &d.path().join("c3"), &["--pull"], &url);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cargo.lock"));
    assert!(!d.path().join("c3").exists());
}

/// A cache holding kache entries of `namespaces` (pulled from a fresh bucket).
fn cache_with(d: &Path, namespaces: &[&str]) -> PathBuf {
    let (url, _) = kache_bucket(d, namespaces);
    let cache = d.join(larder_testutil::unique("cache"));
    let out = cache_sync(d, d, &cache, &["--pull", "--all"], &url);
    assert_eq!(out.status.code(), Some(0));
    cache
}

fn workspace(dir: &Path, member: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[package]\nname = \"{member}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n"),
    )
    .unwrap();
    std::fs::write(dir.join("src/lib.rs"), "").unwrap();
}

fn pushed_namespaces(url: &str) -> Vec<String> {
    let mut v: Vec<String> = keys_under(url, "artifacts/v3/manifests/")
        .into_iter()
        .map(|k| k.split('/').nth(3).unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn s3_push_is_filtered_by_workspace_members_with_kaches_fallbacks() {
    let d = tempfile::tempdir().unwrap();
    let cache = cache_with(d.path(), &["my_app", "serde"]);

    // A workspace whose member is `my-app`: its crate-name form is pushed, serde is not.
    let ws = d.path().join("ws");
    workspace(&ws, "my-app");
    let (_, url) = larder_s3(d.path());
    let out = cache_sync(d.path(), &ws, &cache, &["--push", "--json"], &url);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(summary(&out)["pushed"], 1);
    assert_eq!(pushed_namespaces(&url), ["my_app"]);

    // --manifest-path that cargo cannot read: a warning, and nothing pushed.
    let (_, url) = larder_s3(d.path());
    let out = cache_sync(
        d.path(),
        &ws,
        &cache,
        &["--push", "--manifest-path", "/nonexistent/Cargo.toml"],
        &url,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: cargo metadata failed"));
    assert_eq!(pushed_namespaces(&url), Vec::<String>::new());

    // A Cargo.toml cargo rejects, without --manifest-path: a warning, and everything pushed.
    let broken = d.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("Cargo.toml"), "[package\n").unwrap();
    let (_, url) = larder_s3(d.path());
    let out = cache_sync(d.path(), &broken, &cache, &["--push"], &url);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning:"));
    assert_eq!(pushed_namespaces(&url), ["my_app", "serde"]);

    // No Cargo.toml at all: everything.
    let none = d.path().join("none");
    std::fs::create_dir_all(&none).unwrap();
    let (_, url) = larder_s3(d.path());
    let out = cache_sync(d.path(), &none, &cache, &["--push", "--dry-run"], &url);
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("Plan: pull 0 artifacts, push 2 artifacts\n"));
}

#[test]
fn s3_misses_and_hostile_packs_fail_alone_and_import_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (url, keys) = kache_bucket(d.path(), &["good"]);
    let mut objects = Vec::new();
    // A manifest without its pack.
    let (miss_ck, miss) = kache_entry("missing", "missing");
    objects.push(miss[1].clone());
    // A pack with a `../` member.
    let ck = kache::cache_key("evil");
    let files: Vec<(&str, &[u8])> = vec![("lib.rlib", LIB)];
    let mut members = kache::pack_members(&kache::entry_meta(&ck, "evil", &files), &files);
    members.push(kache::Member::file("../../escaped", b"pwned"));
    let pack = kache::tar_zst(&members);
    objects.push((
        format!("artifacts/v3/packs/evil/{ck}.tar.zst"),
        pack.clone(),
    ));
    objects.push((
        format!("artifacts/v3/manifests/evil/{ck}.json"),
        kache::manifest("x", &ck, "evil", pack.len(), &files),
    ));
    // A pack whose meta.json names another cache key.
    let ck2 = kache::cache_key("liar");
    let pack = kache::pack(&kache::cache_key("someone else"), "liar", &files);
    objects.push((
        format!("artifacts/v3/packs/liar/{ck2}.tar.zst"),
        pack.clone(),
    ));
    objects.push((
        format!("artifacts/v3/manifests/liar/{ck2}.json"),
        kache::manifest("x", &ck2, "liar", pack.len(), &files),
    ));
    // Keys not of kache's shape: never listed.
    objects.push((
        "artifacts/v3/manifests/good/not-a-key.json".to_owned(),
        b"{}".to_vec(),
    ));
    objects.push((
        format!("artifacts/v3/manifests/a..b/{ck}.json"),
        b"{}".to_vec(),
    ));
    put_objects(&url, &objects);

    let cache = d.path().join("cache");
    let out = cache_sync(d.path(), d.path(), &cache, &["--pull", "--json"], &url);
    assert_eq!(out.status.code(), Some(1), "failures fail the run");
    let s = summary(&out);
    assert_eq!(
        (
            s["pulled"].as_u64(),
            s["failed"].as_u64(),
            s["misses"].as_u64()
        ),
        (Some(1), Some(3), Some(1))
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("miss: pull {}... (missing)", &miss_ck[..16])),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("error: pull {}... (evil)", &ck[..16])),
        "{stderr}"
    );
    assert!(stderr.contains("unsafe name"), "{stderr}");
    assert!(stderr.contains("names cache key"), "{stderr}");
    assert_eq!(
        cache_get(
            d.path(),
            &cache,
            &format!("kache:good/{}/lib.rlib", keys[0])
        )
        .as_deref(),
        Some(LIB)
    );
    assert!(!d.path().join("escaped").exists() && !cache.join("../escaped").exists());
    let ls = larder(d.path())
        .args(["cache", "--cache"])
        .arg(&cache)
        .arg("ls")
        .output()
        .unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(!ls.contains("evil") && !ls.contains("liar"), "{ls}");
    let tmp = files_under(&cache.join("tmp"));
    assert!(
        tmp.is_empty(),
        "temp files left: {:?}",
        tmp.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );

    // --allow-partial: the same failures reported, exit 0.
    let out = cache_sync(
        d.path(),
        d.path(),
        &cache,
        &["--pull", "--allow-partial"],
        &url,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 failed"));
}

/// `larder cache put KEY -` with `data`; returns the integrity.
fn cache_put(d: &Path, cache: &Path, key: &str, data: &[u8]) -> String {
    let put = larder(d)
        .args(["cache", "--cache"])
        .arg(cache)
        .args(["put", key, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(put.status.success());
    String::from_utf8_lossy(&put.stdout).trim().to_owned()
}

#[test]
fn s3_an_older_version_of_a_key_the_cache_holds_is_not_imported_and_not_counted_pulled() {
    let d = tempfile::tempdir().unwrap();
    let key = "make-fetch-happen:request-cache:https://registry.npmjs.org/ms";
    // An older packument in the bucket, a newer one in the cache.
    let old = d.path().join("old");
    cache_put(d.path(), &old, key, b"packument v1");
    let (_, url) = larder_s3(d.path());
    let out = cache_sync(d.path(), d.path(), &old, &["--push", "--json"], &url);
    assert_eq!(summary(&out)["pushed"], 1);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let cache = d.path().join("cache");
    cache_put(d.path(), &cache, key, b"packument v2, newer");
    let out = cache_sync(d.path(), d.path(), &cache, &["--pull", "--json"], &url);
    let s = summary(&out);
    assert_eq!(
        (s["pulled"].as_u64(), s["already_present"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    assert_eq!(
        cache_get(d.path(), &cache, key).as_deref(),
        Some(&b"packument v2, newer"[..])
    );
}

#[test]
fn s3_a_pack_without_its_manifest_is_never_listed_and_is_pushed_again() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let key =
        "make-fetch-happen:request-cache:https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz";
    let sri = cache_put(d.path(), &cache, key, b"left-pad tarball");
    let ck = larder_cache_sync::local::entry_cache_key(key, &sri);
    // An interrupted push left the pack (garbage, even) but no manifest.
    let (_, url) = larder_s3(d.path());
    let pack_key = format!("artifacts/v3/packs/left-pad/{ck}.tar.zst");
    put_objects(&url, &[(pack_key.clone(), b"half".to_vec())]);

    let empty = d.path().join("elsewhere");
    let out = cache_sync(d.path(), d.path(), &empty, &["--pull", "--json"], &url);
    assert_eq!(pulled(&out), 0, "a pack without a manifest is not seen");

    let out = cache_sync(d.path(), d.path(), &cache, &["--json"], &url);
    assert_eq!(summary(&out)["pushed"], 1, "pushed again");
    let (meta, files) = kache::kache_accepts(&get_object(&url, &pack_key)).unwrap();
    assert_eq!(meta["crate_name"], "left-pad");
    assert_eq!(meta["larder"]["key"], key);
    assert_eq!(files[0].1, b"left-pad tarball");

    let out = cache_sync(d.path(), d.path(), &empty, &["--pull", "--json"], &url);
    assert_eq!(pulled(&out), 1);
    assert_eq!(
        cache_get(d.path(), &empty, key).as_deref(),
        Some(&b"left-pad tarball"[..])
    );
    let info = larder(d.path())
        .args(["cache", "--json", "--cache"])
        .arg(&empty)
        .args(["info", key])
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["integrity"], sri.as_str());
}

fn npm(dir: &Path) -> Command {
    let mut c = Command::new("npm");
    c.current_dir(dir)
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_update_notifier", "false");
    c
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn s3_npm_ci_offline_succeeds_on_a_cache_pulled_by_its_lockfile() {
    let d = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npm");
    let (app, other) = (d.path().join("app"), d.path().join("other"));
    copy_dir(&fixtures.join("app"), &app);
    copy_dir(&fixtures.join("other"), &other);
    // npm fills C1 for both projects, from the registry.
    let c1 = d.path().join("c1");
    for p in [&app, &other] {
        let out = npm(p)
            .arg("ci")
            .arg("--cache")
            .arg(&c1)
            .output()
            .expect("npm is installed");
        assert!(
            out.status.success(),
            "npm ci: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Push all of C1 (no lockfile where it runs).
    let (_, url) = larder_s3(d.path());
    let out = cache_sync(
        d.path(),
        d.path(),
        &c1.join("_cacache"),
        &["--push", "--json"],
        &url,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(summary(&out)["pushed"].as_u64().unwrap() >= 8);

    // An empty C2, filled by app's lockfile only.
    let c2 = d.path().join("c2");
    std::fs::remove_dir_all(app.join("node_modules")).unwrap();
    std::fs::create_dir_all(c2.join("_cacache")).unwrap();
    // npm's cache root (what `npm --cache` takes) works as well as its `_cacache`.
    let out = cache_sync(d.path(), &app, &c2, &["--pull", "--json"], &url);
    assert_eq!(out.status.code(), Some(0));
    let s = summary(&out);
    // debug, ms, @isaacs/string-locale-compare: one LIST each.
    assert_eq!(s["requests"]["list"], 3, "{s}");
    let out = npm(&app)
        .args(["ci", "--offline", "--cache"])
        .arg(&c2)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "npm ci --offline on the pulled cache: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(app.join("node_modules/ms/package.json").is_file());
    assert!(app
        .join("node_modules/@isaacs/string-locale-compare/package.json")
        .is_file());
    let ls = larder(d.path())
        .args(["cache", "--cache"])
        .arg(c2.join("_cacache"))
        .arg("ls")
        .output()
        .unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.contains("/ms/-/ms-2.1.3.tgz"), "{ls}");
    assert!(
        !ls.contains("is-number"),
        "the other project's packages were pulled: {ls}"
    );
}

#[test]
fn s3_two_pulls_into_one_cache_at_once_both_succeed() {
    let d = tempfile::tempdir().unwrap();
    let namespaces: Vec<String> = (0..24).map(|i| format!("crate{i}")).collect();
    let ns: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let (url, keys) = kache_bucket(d.path(), &ns);
    let cache = d.path().join("cache");
    let spawn = || {
        let (mut c, _) = larder_s3(d.path());
        c.current_dir(d.path())
            .args([
                "cache",
                "sync",
                "--pull",
                "--json",
                "--concurrency",
                "4",
                "--cache",
            ])
            .arg(&cache)
            .arg(&url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!((a.status.code(), b.status.code()), (Some(0), Some(0)));
    let (sa, sb) = (summary(&a), summary(&b));
    // Each entry was downloaded by one of them at least (a run that started later may have
    // found some already imported when it planned, or meanwhile), and neither failed.
    let pulled = |s: &serde_json::Value| s["pulled"].as_u64().unwrap();
    assert!(pulled(&sa) + pulled(&sb) >= 24, "{sa}\n{sb}");
    assert_eq!(
        (sa["failed"].as_u64(), sb["failed"].as_u64()),
        (Some(0), Some(0))
    );
    for (n, ck) in ns.iter().zip(&keys) {
        assert_eq!(
            cache_get(d.path(), &cache, &format!("kache:{n}/{ck}/lib.rlib")).as_deref(),
            Some(LIB)
        );
    }
    let verify = larder(d.path())
        .args(["cache", "--cache"])
        .arg(&cache)
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
