//! Faults: corrupted reads, keys that cannot be written, interruptions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use larder_store::key::TEMP_PREFIX;
use larder_store::wrap::FaultStore;
use larder_store::{ErrorKind, LocalStore, MemoryStore, Store};
use larder_sync::{sync, Event};

use crate::*;

/// Every file name below `dir`, temp files included (a walk through the store hides them).
fn raw_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_corrupted_read_is_detected_and_retried() {
    let mem = Arc::new(MemoryStore::new());
    put(&*mem, "a", "payload".repeat(1000), t(1)).await;
    put(&*mem, "b", "other", t(1)).await;
    let faulty = Arc::new(FaultStore::new(mem.clone(), "a", 2));
    let dir = tempfile::tempdir().unwrap();
    let dst = Arc::new(LocalStore::new(dir.path()));
    let r = sync(faulty.clone(), dst.clone(), opts()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(faulty.remaining(), 0, "both corrupt reads happened");
    assert_eq!(r.transferred, 2);
    assert_eq!(
        contents(&*dst).await,
        contents(&*mem).await,
        "the good bytes landed"
    );
}

#[tokio::test]
async fn persistent_corruption_is_reported_and_never_written() {
    let mem = Arc::new(MemoryStore::new());
    put(&*mem, "bad", "payload".repeat(1000), t(1)).await;
    put(&*mem, "good", "fine", t(1)).await;
    let faulty = Arc::new(FaultStore::new(mem.clone(), "bad", u64::MAX));
    for dst in [
        Box::new(|d: &std::path::Path| Arc::new(LocalStore::new(d)) as Arc<dyn Store>)
            as Box<dyn Fn(&std::path::Path) -> Arc<dyn Store>>,
        Box::new(|_: &std::path::Path| Arc::new(MemoryStore::new()) as Arc<dyn Store>),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dst = dst(dir.path());
        let r = sync(faulty.clone(), dst.clone(), opts().with_retries(2))
            .await
            .unwrap();
        assert_eq!(r.transferred, 1);
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].kind, ErrorKind::Integrity);
        assert_eq!(r.verify_failures(), 1);
        assert!(
            r.errors[0].message.contains("bad"),
            "{}",
            r.errors[0].message
        );
        assert_eq!(contents(&*dst).await.keys().collect::<Vec<_>>(), ["good"]);
        if dst.capabilities().native_mtime {
            assert_eq!(raw_files(dir.path()), ["good"], "no temp file left");
        }
    }
}

#[tokio::test]
async fn keys_that_escape_or_clash_are_per_key_errors() {
    let src = Arc::new(MemoryStore::new());
    for k in ["../evil", "a/../../evil2", "ok", "x", "x/y", "/abs"] {
        put(&*src, k, "data", t(1)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dst");
    let dst = Arc::new(LocalStore::new(&root));
    let r = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    let mut kinds: Vec<(String, ErrorKind)> =
        r.errors.iter().map(|e| (e.key.clone(), e.kind)).collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    // `x` and `x/y` cannot both be files; transfers run concurrently, so whichever lands
    // second is the conflict.
    let clash = kinds.pop().unwrap();
    assert!(
        clash == ("x".to_owned(), ErrorKind::Conflict)
            || clash == ("x/y".to_owned(), ErrorKind::Conflict),
        "{clash:?}"
    );
    assert_eq!(
        kinds,
        [
            ("../evil".to_owned(), ErrorKind::InvalidKey),
            ("/abs".to_owned(), ErrorKind::InvalidKey),
            ("a/../../evil2".to_owned(), ErrorKind::InvalidKey),
        ]
    );
    assert_eq!(r.transferred, 2, "ok, and x or x/y");
    // Nothing outside the destination.
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(outside, ["dst"]);
    let written = raw_files(&root);
    assert!(
        written == ["ok", "x"] || written == ["ok", "x/y"],
        "{written:?}"
    );
}

#[tokio::test]
async fn deletions_do_not_run_after_a_failed_transfer() {
    let mem = Arc::new(MemoryStore::new());
    put(&*mem, "bad", "x", t(1)).await;
    let faulty = Arc::new(FaultStore::new(mem, "bad", u64::MAX));
    let dst = Arc::new(MemoryStore::new());
    put(&*dst, "extra", "e", t(1)).await;
    let r = sync(
        faulty,
        dst.clone(),
        opts().with_delete(true).with_retries(0),
    )
    .await
    .unwrap();
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.deleted, 0);
    assert!(r.delete_refused.as_deref().unwrap().contains("failed"));
    assert!(dst.head(&key("extra")).await.unwrap().is_some());
}

#[tokio::test]
async fn stop_on_error_stops() {
    let mem = Arc::new(MemoryStore::new());
    for i in 0..200 {
        put(&*mem, &format!("k{i:03}"), "x", t(1)).await;
    }
    let faulty = Arc::new(FaultStore::new(mem, "k000", u64::MAX));
    let dst = Arc::new(MemoryStore::new());
    let r = sync(
        faulty,
        dst.clone(),
        opts()
            .with_stop_on_error(true)
            .with_retries(0)
            .with_concurrency(1),
    )
    .await
    .unwrap();
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.transferred < 199,
        "stopped early ({} copied)",
        r.transferred
    );
}

#[tokio::test]
async fn an_interrupted_run_leaves_nothing_partial_and_a_rerun_converges() {
    let src_dir = tempfile::tempdir().unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let src = Arc::new(LocalStore::new(src_dir.path()));
    for i in 0..300 {
        put(
            &*src,
            &format!("d{}/f{i:03}", i % 4),
            vec![i as u8; 20_000 + i],
            t(i as u64),
        )
        .await;
    }
    let dst = Arc::new(LocalStore::new(dst_dir.path()));
    let cancel = tokio_util::sync::CancellationToken::new();
    let done = Arc::new(AtomicU64::new(0));
    let (c, d) = (cancel.clone(), done.clone());
    let first = sync(
        src.clone(),
        dst.clone(),
        opts()
            .with_concurrency(8)
            .with_cancel(cancel.clone())
            .with_on_event(Some(Arc::new(move |e: &Event| {
                if matches!(e, Event::Done { .. }) && d.fetch_add(1, Ordering::SeqCst) == 40 {
                    c.cancel();
                }
            }))),
    )
    .await
    .unwrap();
    assert!(first.cancelled);
    assert!(
        first.transferred < 300,
        "interrupted ({} copied)",
        first.transferred
    );
    // Whatever is visible is whole: every file present equals its source.
    let src_all = contents(&*src).await;
    let files = raw_files(dst_dir.path());
    assert!(
        files.iter().all(|f| !f.contains(TEMP_PREFIX)),
        "temp files: {files:?}"
    );
    for (k, v) in contents(&*dst).await {
        assert_eq!(src_all[&k], v, "{k} is partial");
    }
    let second = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert!(second.errors.is_empty());
    assert_eq!(second.transferred + second.skipped, 300);
    assert_eq!(contents(&*dst).await, src_all);
    let third = sync(src, dst, opts()).await.unwrap();
    assert_eq!(third.skipped, 300);
}

#[tokio::test]
async fn folder_markers_are_left_out_of_a_directory_not_errors() {
    let src = Arc::new(MemoryStore::new());
    put(&*src, "photos/", "", t(1)).await; // as S3 consoles create
    put(&*src, "photos/a.jpg", "jpg", t(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let dst = Arc::new(LocalStore::new(dir.path()));
    let r = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!((r.transferred, r.filtered), (1, 1));
    assert_eq!(raw_files(dir.path()), ["photos/a.jpg"]);
    // Bucket to bucket, the marker is an object like any other.
    let other = Arc::new(MemoryStore::new());
    let r = sync(src, other.clone(), opts()).await.unwrap();
    assert_eq!(r.transferred, 2);
}

/// A memory store whose batch delete fails as a whole (credentials revoked, server down).
#[derive(Debug)]
struct DeleteFails(MemoryStore);

impl std::fmt::Display for DeleteFails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

#[async_trait::async_trait]
impl Store for DeleteFails {
    fn list(
        &self,
        p: &str,
    ) -> futures::stream::BoxStream<'static, larder_store::Result<larder_store::Entry>> {
        self.0.list(p)
    }
    async fn head(
        &self,
        k: &larder_store::Key,
    ) -> larder_store::Result<Option<larder_store::ObjectMeta>> {
        self.0.head(k).await
    }
    async fn get(
        &self,
        k: &larder_store::Key,
        o: larder_store::GetOptions,
    ) -> larder_store::Result<larder_store::GetResult> {
        self.0.get(k, o).await
    }
    async fn put(
        &self,
        k: &larder_store::Key,
        b: larder_store::Body,
        o: larder_store::PutOptions,
    ) -> larder_store::Result<larder_store::PutResult> {
        self.0.put(k, b, o).await
    }
    async fn delete(
        &self,
        _: &[larder_store::Key],
    ) -> larder_store::Result<larder_store::DeleteReport> {
        Err(larder_store::Error::new(
            ErrorKind::PermissionDenied,
            larder_store::Op::Delete,
            "memory://",
        )
        .with_detail("AccessDenied: no delete for you"))
    }
    async fn copy(
        &self,
        f: &larder_store::Key,
        t: &larder_store::Key,
        o: larder_store::CopyOptions,
    ) -> larder_store::Result<larder_store::PutResult> {
        self.0.copy(f, t, o).await
    }
    fn capabilities(&self) -> larder_store::Capabilities {
        self.0.capabilities()
    }
    fn location(&self, k: &str) -> String {
        self.0.location(k)
    }
}

#[tokio::test]
async fn a_failed_batch_delete_names_each_key_and_the_cause() {
    let src = Arc::new(MemoryStore::new());
    put(&*src, "keep", "k", t(1)).await;
    let inner = MemoryStore::new();
    put(&inner, "extra/1", "x", t(1)).await;
    put(&inner, "extra/2", "x", t(1)).await;
    let dst = Arc::new(DeleteFails(inner));
    let r = sync(src, dst, opts().with_delete(true)).await.unwrap();
    assert_eq!(r.deleted, 0);
    let msgs: Vec<&str> = r.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "failed to delete `memory://extra/1`: AccessDenied: no delete for you",
            "failed to delete `memory://extra/2`: AccessDenied: no delete for you",
        ]
    );
    assert!(r
        .errors
        .iter()
        .all(|e| e.kind == ErrorKind::PermissionDenied));
}

#[tokio::test]
async fn a_source_listing_error_refuses_deletions() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good"), "g").unwrap();
    // A name that is not UTF-8 cannot be listed as a key: the listing is incomplete.
    std::fs::write(
        dir.path().join(std::ffi::OsStr::from_bytes(b"bad-\xff")),
        "b",
    )
    .unwrap();
    let src = Arc::new(LocalStore::new(dir.path()));
    let dst = Arc::new(MemoryStore::new());
    put(&*dst, "extra", "e", t(1)).await;
    let r = sync(src, dst.clone(), opts().with_delete(true))
        .await
        .unwrap();
    assert_eq!(r.transferred, 1);
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].kind, ErrorKind::InvalidKey);
    assert!(
        r.delete_refused
            .as_deref()
            .unwrap()
            .contains("source listing had 1 error"),
        "{:?}",
        r.delete_refused
    );
    assert!(
        dst.head(&key("extra")).await.unwrap().is_some(),
        "nothing deleted"
    );
}
