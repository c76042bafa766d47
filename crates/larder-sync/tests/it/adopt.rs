//! Adoption: a bucket or directory another tool filled is not re-sent when its content is
//! already right, and costs no HEAD and no PUT or GET; the match is remembered so the next
//! run needs no hashing either.

use std::sync::{Arc, Mutex};

use larder_store::conformance::pattern;
use larder_store::wrap::CountingStore;
use larder_store::{Body, LocalStore, PutOptions, S3Options, Store};
use larder_sync::{sync, Action, Adoption, Event, MetaCache, Reason, SyncOptions};

use crate::*;

const MIB: usize = 1 << 20;

/// A store writing as another tool would: no larder mtime, its own part size.
async fn foreign_s3(prefix: &str, part_size: u64) -> Arc<larder_store::S3Store> {
    let opts = S3Options::default()
        .with_multipart_threshold(5 << 20)
        .with_part_size(part_size);
    Arc::new(larder_testutil::s3_store(opts, Some(prefix)).await)
}

async fn put_foreign(store: &dyn Store, k: &str, data: impl Into<bytes::Bytes>) {
    store
        .put(
            &key(k),
            Body::from_bytes(data.into()),
            PutOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("put {k}: {e}"));
}

fn files() -> Vec<(&'static str, bytes::Bytes)> {
    vec![
        ("a.txt", bytes::Bytes::from_static(b"alpha")),
        ("dir/b c+d%.txt", bytes::Bytes::from_static(b"odd name")),
        ("empty", bytes::Bytes::new()),
        // Multipart at 5 MiB: one of the likely part sizes, found without a HEAD.
        ("five.bin", pattern(2 * 5 * MIB + 777, 1)),
        // Multipart at 6 MiB (4 parts of 20 MiB): the likely sizes give 4 parts of 5 MiB, a
        // wrong guess; the exact size is then read from the object (one HEAD).
        ("six.bin", pattern(20 * MIB, 2)),
        ("changed.txt", bytes::Bytes::from_static(b"local")),
    ]
}

fn recorder() -> (Arc<Mutex<Vec<Event>>>, larder_sync::EventHandler) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    (
        events,
        Arc::new(move |e: &Event| ev.lock().unwrap().push(e.clone())),
    )
}

fn reasons(events: &Mutex<Vec<Event>>) -> Vec<String> {
    let mut v: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| match e {
            Event::Done {
                action,
                key,
                reason,
                ..
            } => format!("{action} {key}: {reason}"),
            Event::Failed { key, error } => format!("failed {key}: {error}"),
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn s3_a_bucket_another_tool_filled_is_adopted_without_put_or_head() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalStore::new(dir.path().join("src")));
    let prefix = larder_testutil::unique("adopt-up");
    let other = foreign_s3(&prefix, 6 << 20).await;
    for (i, (k, data)) in files().into_iter().enumerate() {
        put(&*local, k, data.clone(), t(i as u64)).await;
        if k == "changed.txt" {
            put_foreign(&*other, k, "other").await; // same size, other bytes
        } else {
            put_foreign(&*other, k, data).await;
        }
    }
    let six = other.head(&key("six.bin")).await.unwrap().unwrap();
    assert!(six.etag.unwrap().ends_with("-4"), "written in 6 MiB parts");

    let bucket = Arc::new(larder_testutil::s3_store(S3Options::default(), Some(&prefix)).await);
    let cache = Arc::new(MetaCache::in_memory());
    let (events, on_event) = recorder();
    let (s, d) = (
        Arc::new(CountingStore::new(local.clone())),
        Arc::new(CountingStore::new(bucket.clone())),
    );
    // The dry run says what would be adopted and how, and sends what the run will.
    let dry = SyncOptions::default()
        .with_cache(Some(cache.clone()))
        .with_dry_run(true)
        .with_on_event(Some(on_event));
    let r = sync(s.clone(), d.clone(), dry).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.skipped, r.adopted), (1, 5, 5));
    assert_eq!(
        reasons(&events),
        [
            "skip a.txt: adopted: same content, the file's MD5 equals the object's ETag",
            "skip dir/b c+d%.txt: adopted: same content, the file's MD5 equals the object's ETag",
            "skip empty: adopted: same content, the file's MD5 equals the object's ETag",
            "skip five.bin: adopted: same content, the file's multipart ETag equals the object's",
            "skip six.bin: adopted: same content, the file's multipart ETag equals the object's",
            "transfer changed.txt: etag differs",
        ]
    );
    assert_eq!(
        d.counts().snapshot()[1..],
        [1, 0, 0, 0, 0],
        "only six.bin's part size was read (head, get, put, delete, copy)"
    );

    let d = Arc::new(CountingStore::new(bucket.clone()));
    let o = SyncOptions::default().with_cache(Some(cache.clone()));
    let r = sync(s.clone(), d.clone(), o.clone()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.etag_verified), (1, 1), "only changed.txt");
    assert_eq!(r.adopted, 5, "the dry run recorded nothing");
    assert_eq!(
        d.counts().snapshot()[1..],
        [1, 0, 1, 0, 0],
        "what the dry run counted, and one PUT for changed.txt"
    );
    assert_eq!(contents(&*bucket).await, contents(&*local).await);

    // Next run: decided from the metadata cache alone, no file read, no request but LIST.
    let (s, d) = (
        Arc::new(CountingStore::new(local.clone())),
        Arc::new(CountingStore::new(bucket.clone())),
    );
    let r = sync(s.clone(), d.clone(), o.clone()).await.unwrap();
    assert_eq!((r.transferred, r.skipped, r.adopted), (0, 6, 0));
    assert_eq!(s.counts().snapshot()[1..], [0; 5], "no file read again");
    assert_eq!(d.counts().snapshot()[1..], [0; 5], "only LIST");

    // A touched file (new mtime, same bytes) is adopted again, not re-sent.
    put(&*local, "a.txt", "alpha", t(100)).await;
    let d = Arc::new(CountingStore::new(bucket.clone()));
    let r = sync(local.clone(), d.clone(), o.clone()).await.unwrap();
    assert_eq!((r.transferred, r.adopted), (0, 1));
    assert_eq!(d.counts().snapshot()[1..], [0; 5]);
    // Same size, other bytes, new mtime: sent.
    put(&*local, "a.txt", "ALPHA", t(101)).await;
    let r = sync(local.clone(), bucket.clone(), o.clone())
        .await
        .unwrap();
    assert_eq!((r.transferred, r.adopted), (1, 0));
    assert_eq!(&contents(&*bucket).await["a.txt"][..], b"ALPHA");
}

#[tokio::test]
async fn s3_files_another_tool_downloaded_are_adopted_without_get() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = larder_testutil::unique("adopt-down");
    let bucket = foreign_s3(&prefix, 6 << 20).await;
    let local = Arc::new(LocalStore::new(dir.path().join("dst")));
    for (i, (k, data)) in files().into_iter().enumerate() {
        put_foreign(&*bucket, k, data.clone()).await;
        // As a tool that does not restore mtimes would leave them.
        let data = if k == "changed.txt" {
            bytes::Bytes::from_static(b"LOCAL")
        } else {
            data
        };
        put(&*local, k, data, t(1000 + i as u64)).await;
    }
    let cache = Arc::new(MetaCache::in_memory());
    let o = SyncOptions::default().with_cache(Some(cache.clone()));
    let (events, on_event) = recorder();
    let (s, d) = (
        Arc::new(CountingStore::new(bucket.clone())),
        Arc::new(CountingStore::new(local.clone())),
    );
    let r = sync(
        s.clone(),
        d.clone(),
        o.clone().with_on_event(Some(on_event)),
    )
    .await
    .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.adopted), (1, 5), "{:?}", reasons(&events));
    let [_, head, get, ..] = s.counts().snapshot();
    assert_eq!(
        (head, get),
        (1, 1),
        "one GET (changed.txt), one HEAD (six.bin)"
    );
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        Event::Done { action: Action::Skip, key, reason: Reason::Adopted(Adoption::Md5), .. }
            if key == "a.txt"
    )));
    assert_eq!(contents(&*local).await, contents(&*bucket).await);

    // Next run: the local files' content is remembered; nothing is read on either side.
    let (s, d) = (
        Arc::new(CountingStore::new(bucket.clone())),
        Arc::new(CountingStore::new(local.clone())),
    );
    let r = sync(s.clone(), d.clone(), o).await.unwrap();
    assert_eq!((r.transferred, r.skipped), (0, 6));
    assert_eq!(s.counts().snapshot()[1..], [0; 5], "only LIST");
    assert_eq!(d.counts().snapshot()[1..], [0; 5], "no file read");
}

#[tokio::test]
async fn s3_objects_with_the_same_etag_are_adopted_between_buckets() {
    let a = foreign_s3(&larder_testutil::unique("adopt-a"), 8 << 20).await;
    let b = foreign_s3(&larder_testutil::unique("adopt-b"), 8 << 20).await;
    put_foreign(&*a, "same", "same bytes").await;
    put_foreign(&*b, "same", "same bytes").await;
    put_foreign(&*a, "differs", "aaaa").await;
    put_foreign(&*b, "differs", "bbbb").await;
    let d = Arc::new(CountingStore::new(b.clone()));
    let r = sync(a.clone(), d.clone(), opts()).await.unwrap();
    assert_eq!((r.transferred, r.adopted), (1, 1));
    let [_, head, _, puts, ..] = d.counts().snapshot();
    assert_eq!((head, puts), (0, 1), "decided from the listings");
}
