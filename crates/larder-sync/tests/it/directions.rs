//! Every direction against the Garage test server: local→S3, S3→local, S3→S3, local→local;
//! every compare mode; a no-op re-sync makes no PUT, GET or HEAD.

use std::sync::Arc;

use larder_store::conformance::pattern;
use larder_store::integrity::ChecksumAlgorithm;
use larder_store::wrap::CountingStore;
use larder_store::{LocalStore, S3Options, S3Store, Store};
use larder_sync::{sync, CompareMode, SyncOptions};

use crate::*;

const PART: u64 = 5 << 20;

fn small_parts() -> S3Options {
    S3Options::default()
        .with_multipart_threshold(PART)
        .with_part_size(PART)
        .with_get_parallel_threshold(PART)
        .with_get_part_size(1 << 20)
}

async fn s3(name: &str) -> Arc<S3Store> {
    let prefix = larder_testutil::unique(name);
    Arc::new(larder_testutil::s3_store(small_parts(), Some(&prefix)).await)
}

/// A local tree with nested keys, odd names, an empty file and a multipart-sized file.
async fn fill(store: &dyn Store) {
    put(store, "a.txt", "alpha", t(1)).await;
    put(store, "dir/b c+d%.txt", "odd name", t(2)).await;
    put(store, "dir/sub/é.bin", pattern(70_000, 1), t(3)).await;
    put(store, "empty", "", t(4)).await;
    put(store, "big.bin", pattern(2 * PART as usize + 777, 2), t(5)).await;
}

/// Syncs again through counting wrappers and asserts no PUT, GET or HEAD on either side.
async fn assert_noop(src: Arc<dyn Store>, dst: Arc<dyn Store>, opts: SyncOptions) {
    let (s, d) = (
        Arc::new(CountingStore::new(src)),
        Arc::new(CountingStore::new(dst)),
    );
    let r = sync(s.clone(), d.clone(), opts).await.unwrap();
    assert_eq!((r.transferred, r.skipped), (0, 5), "{:?}", r.errors);
    let [_, head, get, put, del, copy] = s.counts().snapshot();
    assert_eq!(
        [head, get, put, del, copy],
        [0; 5],
        "source requests (head, get, put, delete, copy)"
    );
    let [_, head, get, put, del, copy] = d.counts().snapshot();
    assert_eq!(
        [head, get, put, del, copy],
        [0; 5],
        "destination requests (head, get, put, delete, copy)"
    );
}

#[tokio::test]
async fn s3_every_direction_round_trips_verified_and_a_resync_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::new(dir.path().join("src")));
    fill(&*local).await;
    let cache = Arc::new(larder_sync::MetaCache::in_memory());
    let o = || SyncOptions::default().with_cache(Some(cache.clone()));

    // local → S3
    let bucket = s3("up").await;
    let r = sync(local.clone(), bucket.clone(), o()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.etag_verified), (5, 5));
    assert_eq!(contents(&*bucket).await, contents(&*local).await);
    let big = bucket.head(&key("big.bin")).await.unwrap().unwrap();
    assert!(big.etag.unwrap().ends_with("-3"), "uploaded in parts");
    assert_eq!(
        big.mtime,
        Some(t(5)),
        "the source mtime travels as metadata"
    );
    assert_noop(local.clone(), bucket.clone(), o()).await;

    // S3 → local
    let back = Arc::new(LocalStore::new(dir.path().join("back")));
    let r = sync(bucket.clone(), back.clone(), o()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(
        (r.transferred, r.etag_verified),
        (5, 5),
        "downloads checked against ETags, multipart too"
    );
    assert_eq!(contents(&*back).await, contents(&*local).await);
    let m = back.head(&key("dir/sub/é.bin")).await.unwrap().unwrap();
    assert_eq!(m.mtime, Some(t(3)), "mtime restored from metadata");
    assert_noop(bucket.clone(), back.clone(), o()).await;

    // S3 → S3 (another prefix, another client)
    let other = s3("copy").await;
    let r = sync(bucket.clone(), other.clone(), o()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.etag_verified), (5, 5));
    assert_eq!(contents(&*other).await, contents(&*local).await);
    assert_noop(bucket.clone(), other.clone(), o()).await;

    // local → local
    let copy = Arc::new(LocalStore::new(dir.path().join("copy")));
    let r = sync(local.clone(), copy.clone(), o()).await.unwrap();
    assert_eq!(r.transferred, 5);
    assert_noop(local.clone(), copy.clone(), o()).await;
}

#[tokio::test]
async fn s3_size_mtime_with_a_fresh_cache_hashes_instead_of_heads_then_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::new(dir.path()));
    fill(&*local).await;
    let bucket = s3("nocache").await;
    sync(local.clone(), bucket.clone(), SyncOptions::default())
        .await
        .unwrap();
    // A fresh cache (another machine): the files are hashed against the listed ETags (the
    // multipart one with a likely part size), no HEAD; then nothing at all.
    let cache = Arc::new(larder_sync::MetaCache::in_memory());
    let o = SyncOptions::default().with_cache(Some(cache));
    let r = sync(local.clone(), bucket.clone(), o.clone())
        .await
        .unwrap();
    assert_eq!((r.transferred, r.skipped, r.adopted, r.heads), (0, 5, 5, 0));
    assert_noop(local.clone(), bucket.clone(), o).await;
}

#[tokio::test]
async fn s3_compare_modes_detect_what_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::new(dir.path()));
    fill(&*local).await;
    let bucket = s3("modes").await;
    let base =
        SyncOptions::default().with_cache(Some(Arc::new(larder_sync::MetaCache::in_memory())));
    sync(local.clone(), bucket.clone(), base.clone())
        .await
        .unwrap();
    // Same size and mtime, other bytes: only etag and checksum modes see it.
    put(&*local, "a.txt", "ALPHA", t(1)).await;
    put(
        &*local,
        "big.bin",
        pattern(2 * PART as usize + 777, 3),
        t(5),
    )
    .await;
    for mode in [CompareMode::SizeMtime, CompareMode::Size] {
        let r = sync(
            local.clone(),
            bucket.clone(),
            base.clone().with_compare(mode).with_dry_run(true),
        )
        .await
        .unwrap();
        assert_eq!(
            r.transferred, 0,
            "{mode} cannot see a same-size same-mtime change"
        );
    }
    let r = sync(
        local.clone(),
        bucket.clone(),
        base.clone().with_compare(CompareMode::Etag),
    )
    .await
    .unwrap();
    assert_eq!(
        (r.transferred, r.skipped),
        (2, 3),
        "etag mode recomputes MD5 and the multipart ETag"
    );
    let r = sync(
        local.clone(),
        bucket.clone(),
        base.clone().with_compare(CompareMode::Etag),
    )
    .await
    .unwrap();
    assert_eq!(r.transferred, 0);
    // Checksum mode with SHA-256: the first run uploads with checksums, the next skips.
    let sha = base
        .clone()
        .with_compare(CompareMode::Checksum)
        .with_checksum(Some(ChecksumAlgorithm::Sha256));
    let r = sync(local.clone(), bucket.clone(), sha.clone())
        .await
        .unwrap();
    assert_eq!(
        (r.transferred, r.checksum_verified),
        (5, 5),
        "no stored checksums yet"
    );
    put(&*local, "a.txt", "alpha", t(1)).await;
    let r = sync(local.clone(), bucket.clone(), sha.clone())
        .await
        .unwrap();
    assert_eq!((r.transferred, r.skipped), (1, 4));
    // And downloads verify the stored checksum, composite for the multipart object.
    let back = Arc::new(LocalStore::new(dir.path().join("back")));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let sha = sha.with_on_event(Some(Arc::new(move |e: &larder_sync::Event| {
        if let larder_sync::Event::Done { key, verified, .. } = e {
            s2.lock().unwrap().push((key.clone(), *verified));
        }
    })));
    let r = sync(bucket.clone(), back.clone(), sha).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|(_, v)| v.etag && v.checksum && !v.server_side),
        "{seen:?}"
    );
    assert_eq!((r.transferred, r.checksum_verified), (5, 5));
}

#[tokio::test]
async fn s3_cancelling_a_multipart_upload_leaves_no_parts() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::new(dir.path()));
    put(&*local, "huge.bin", pattern(8 * PART as usize, 9), t(1)).await;
    let bucket = s3("cancel").await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let c = cancel.clone();
    let b = bucket.clone();
    let watcher = tokio::spawn(async move {
        // Cancel as soon as the upload has started.
        for _ in 0..200 {
            if !b.multipart_uploads("").await.unwrap().is_empty() {
                c.cancel();
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    });
    let r = sync(
        local.clone(),
        bucket.clone(),
        SyncOptions::default().with_cancel(cancel),
    )
    .await
    .unwrap();
    assert!(watcher.await.unwrap(), "the upload was seen in progress");
    assert!(r.cancelled);
    assert!(bucket.head(&key("huge.bin")).await.unwrap().is_none());
    let left = larder_testutil::uploads_left_after_abort(&bucket, "").await;
    assert!(left.is_empty(), "parts left behind: {left:?}");
}

#[tokio::test]
async fn s3_a_one_part_multipart_object_is_verified_on_download() {
    let prefix = larder_testutil::unique("onepart");
    let store = Arc::new(
        larder_testutil::s3_store(
            S3Options::default()
                .with_multipart_threshold(PART)
                .with_part_size(8 << 20),
            Some(&prefix),
        )
        .await,
    );
    put(&*store, "one", pattern(6 << 20, 5), t(1)).await;
    let etag = store
        .head(&key("one"))
        .await
        .unwrap()
        .unwrap()
        .etag
        .unwrap();
    assert!(etag.ends_with("-1"), "{etag}");
    let dir = tempfile::tempdir().unwrap();
    let r = sync(store, Arc::new(LocalStore::new(dir.path())), opts())
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.etag_verified), (1, 1));
}

#[tokio::test]
async fn s3_keys_with_control_characters_sync_both_ways_and_nul_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::new(dir.path().join("src")));
    put(&*local, "ctl-\u{1}.txt", "one", t(1)).await;
    put(&*local, "esc-\u{1b}[0m", "esc", t(2)).await;
    put(&*local, "normal.txt", "plain", t(3)).await;
    let bucket = s3("ctl").await;
    let r = sync(local.clone(), bucket.clone(), opts()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.transferred, 3);
    // Listed again (URL-encoded listing), so a re-sync is a no-op, not an unlistable prefix.
    let r = sync(local.clone(), bucket.clone(), opts()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.skipped), (0, 3));

    // A key no local file system can name (NUL): refused by name, the rest completes.
    put(&*bucket, "nul-\u{0}.txt", "nul", t(4)).await;
    let back = Arc::new(LocalStore::new(dir.path().join("back")));
    let r = sync(bucket.clone(), back.clone(), opts()).await.unwrap();
    assert_eq!(r.transferred, 3);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(r.errors[0].key, "nul-\u{0}.txt");
    assert!(
        r.errors[0].message.contains("NUL"),
        "{}",
        r.errors[0].message
    );
    assert_eq!(contents(&*back).await, contents(&*local).await);
    assert!(dir.path().join("back/ctl-\u{1}.txt").is_file());
}
