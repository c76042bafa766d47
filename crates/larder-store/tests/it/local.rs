//! What is particular to the local-directory backend: escapes, symlinks, temp files, odd
//! file names.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use larder_store::key::TEMP_PREFIX;
use larder_store::{
    Body, ErrorKind, GetOptions, Key, LocalStore, PutOptions, Store, SymlinkPolicy,
};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// Every listing item: keys, and errors as their kind.
async fn walk(store: &LocalStore) -> (Vec<String>, Vec<ErrorKind>) {
    let items: Vec<_> = store.list("").collect().await;
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for i in items {
        match i {
            Ok(e) => keys.push(e.key.into_string()),
            Err(e) => errors.push(e.kind()),
        }
    }
    (keys, errors)
}

fn write(path: &Path, data: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

#[tokio::test]
async fn keys_that_would_escape_the_root_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = LocalStore::new(&root);
    for bad in [
        "../escape",
        "a/../../escape",
        "/abs",
        "a\\..\\..\\escape",
        "a//b",
        "./x",
        "dir/",
    ] {
        let err = store
            .put(&key(bad), Body::from_bytes("x"), PutOptions::default())
            .await
            .expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{bad}: {err}");
        assert!(
            err.to_string().contains(bad),
            "the error names the key: {err}"
        );
        let err = store
            .get(&key(bad), GetOptions::default())
            .await
            .expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidKey, "{bad}: {err}");
        let report = store.delete(&[key(bad)]).await.unwrap();
        assert_eq!(report.failed.len(), 1, "{bad}");
    }
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        outside.iter().all(|n| n == "root"),
        "nothing written outside the root: {outside:?}"
    );
    assert!(!dir.path().join("escape").exists());
}

#[tokio::test]
async fn symlinks_are_followed_and_loops_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("real/file"), "data");
    write(&root.join("outside-target"), "t");
    std::os::unix::fs::symlink(root.join("outside-target"), root.join("link-file")).unwrap();
    std::os::unix::fs::symlink(root.join("real"), root.join("link-dir")).unwrap();
    std::os::unix::fs::symlink(root, root.join("real/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling")).unwrap();

    let (keys, errors) = walk(&LocalStore::new(root)).await;
    // `link-dir/loop` points at the root, which is on its path: a loop, not entered.
    assert_eq!(
        keys,
        ["link-dir/file", "link-file", "outside-target", "real/file"]
    );
    let mut errors = errors;
    errors.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        errors,
        [
            ErrorKind::Conflict,
            ErrorKind::Conflict,
            ErrorKind::NotFound
        ],
        "two loops (via link-dir and via real) and one dangling link"
    );

    let (keys, errors) = walk(&LocalStore::new(root).with_symlinks(SymlinkPolicy::Skip)).await;
    assert_eq!(keys, ["outside-target", "real/file"]);
    assert!(errors.is_empty());
}

#[tokio::test]
async fn temp_files_are_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a"), "a");
    write(
        &dir.path().join(format!("{TEMP_PREFIX}0123")),
        "left by a crash",
    );
    write(
        &dir.path().join(format!("d/{TEMP_PREFIX}x")),
        "left by a crash",
    );
    let (keys, errors) = walk(&LocalStore::new(dir.path())).await;
    assert_eq!(keys, ["a"]);
    assert!(errors.is_empty());
}

#[tokio::test]
async fn a_non_utf8_name_is_an_error_item_and_the_walk_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a"), "a");
    write(&dir.path().join("z"), "z");
    let bad = std::ffi::OsStr::from_bytes(b"bad-\xff");
    std::fs::write(dir.path().join(bad), "x").unwrap();
    let (keys, errors) = walk(&LocalStore::new(dir.path())).await;
    assert_eq!(keys, ["a", "z"]);
    assert_eq!(errors, [ErrorKind::InvalidKey]);
}

#[tokio::test]
async fn a_failed_put_keeps_the_old_file_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    store
        .put(&key("f"), Body::from_bytes("old"), PutOptions::default())
        .await
        .unwrap();
    let chunks: Vec<larder_store::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"new data that ")),
        Err(larder_store::Error::new(
            ErrorKind::Transient,
            larder_store::Op::Get,
            "s3://b/f",
        )),
    ];
    let err = store
        .put(
            &key("f"),
            Body::from_stream(futures::stream::iter(chunks).boxed(), None),
            PutOptions::default(),
        )
        .await
        .expect_err("source failed");
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("f")).unwrap(),
        "old"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["f"], "no temp file left");
}

#[tokio::test]
async fn a_cancelled_put_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    // A body that never ends: the put is dropped mid-write.
    let body = futures::stream::iter(std::iter::once(Ok(Bytes::from_static(b"start"))))
        .chain(futures::stream::pending())
        .boxed();
    let k = key("d/f");
    let put = store.put(&k, Body::from_stream(body, None), PutOptions::default());
    let res = tokio::time::timeout(std::time::Duration::from_millis(200), put).await;
    assert!(res.is_err(), "the put is still waiting for its body");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "temp file left behind: {names:?}");
}

#[tokio::test]
async fn missing_root_lists_nothing_and_the_first_put_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path().join("not/yet"));
    let (keys, errors) = walk(&store).await;
    assert!(keys.is_empty() && errors.is_empty());
    store
        .put(&key("x/y"), Body::from_bytes("1"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(walk(&store).await.0, ["x/y"]);
}

#[tokio::test]
async fn walk_order_matches_s3_byte_order_in_a_deep_tree() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for a in ["a", "a-b", "a0", "a.b", "b", "é", "Z"] {
        for b in ["x", "x-y", "x0", "x.y"] {
            for c in ["1", "1-2", "10"] {
                names.push(format!("{a}/{b}/{c}"));
            }
        }
    }
    for n in &names {
        write(&dir.path().join(n), n);
    }
    let got: Vec<String> = LocalStore::new(dir.path())
        .list("")
        .map_ok(|e| e.key.into_string())
        .try_collect()
        .await
        .unwrap();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(got, names);
}

#[tokio::test]
async fn a_directory_at_the_target_is_a_conflict_for_small_and_large_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    for size in [10usize, 3 << 20] {
        let body = Body::from_bytes(Bytes::from(vec![1u8; size]));
        let err = store
            .put(&key("a/b"), body, PutOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{size}: {err}");
        assert!(
            err.to_string().contains("a directory of the same name"),
            "{err}"
        );
        assert!(dir.path().join("a/b").is_dir());
    }
    let names: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().collect();
    assert_eq!(names.len(), 1, "no temp file is left: {names:?}");
}

#[tokio::test]
async fn directories_removed_behind_the_store_or_by_its_deletes_are_made_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::new(dir.path());
    let put = |k: &'static str| {
        let store = store.clone();
        async move {
            store
                .put(&key(k), Body::from_bytes(k), PutOptions::default())
                .await
        }
    };
    put("d/e/1").await.unwrap();
    // Removed by someone else: the store knew `d/e`, finds it gone and makes it again.
    std::fs::remove_dir_all(dir.path().join("d")).unwrap();
    put("d/e/2").await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("d/e/2")).unwrap(), b"d/e/2");
    // Removed by its own delete (the emptied parents are pruned).
    store.delete(&[key("d/e/2")]).await.unwrap();
    assert!(!dir.path().join("d").exists());
    put("d/e/3").await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(walk(&store).await.0, ["d/e/3"]);
}
