//! Preconditions and what a write carries, on memory stores: a key another writer changes
//! between the listing and the write is left alone (`Reason::Precondition`), never
//! overwritten; tags and headers are carried and overridden.

use std::sync::Arc;

use larder_store::{Headers, MemoryStore, Store, Tags};
use larder_sync::{sync, Conditional, Event, SyncOptions, WriteOptions};

use crate::*;

async fn read(store: &MemoryStore, k: &str) -> bytes::Bytes {
    contents(store).await.remove(k).unwrap_or_default()
}

/// `src` holds `a` and `b`; when `a` is done, `writer` runs (another tool writing to the
/// destination after larder listed it). Concurrency 1, so `b` is written after that.
async fn race(
    dst: &MemoryStore,
    condition: Conditional,
    writer: impl Fn() + Send + Sync + 'static,
) -> larder_sync::SyncReport {
    let src = MemoryStore::new();
    put(&src, "a", "aaa", t(1)).await;
    put(&src, "b", "bbbb-new", t(2)).await;
    let on_event = Arc::new(move |e: &Event| {
        if let Event::Done { key, .. } = e {
            if key == "a" {
                writer();
            }
        }
    });
    let opts = SyncOptions::default()
        .with_concurrency(1)
        .with_compare(larder_sync::CompareMode::Size)
        .with_write(WriteOptions::default().with_condition(Some(condition)))
        .with_on_event(Some(on_event));
    sync(Arc::new(src), Arc::new(dst.clone()), opts)
        .await
        .unwrap()
}

fn writer(dst: &MemoryStore, data: &'static str) -> impl Fn() + Send + Sync + 'static {
    let dst = dst.clone();
    move || {
        let dst = dst.clone();
        // The event handler is synchronous: the other writer's put runs on its own thread.
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                put(&dst, "b", data, t(9)).await;
            })
        })
        .join()
        .unwrap();
    }
}

#[tokio::test]
async fn if_none_match_leaves_a_key_that_appeared_after_the_listing() {
    let dst = MemoryStore::new();
    let report = race(&dst, Conditional::IfNoneMatch, writer(&dst, "theirs")).await;
    assert_eq!(report.transferred, 1, "{report:?}");
    assert_eq!(report.precondition_skipped, 1);
    assert!(report.errors.is_empty());
    assert_eq!(&read(&dst, "b").await[..], b"theirs");
}

#[tokio::test]
async fn if_match_leaves_a_key_changed_after_the_listing() {
    let dst = MemoryStore::new();
    put(&dst, "b", "old", t(3)).await;
    let report = race(&dst, Conditional::IfMatch, writer(&dst, "changed")).await;
    assert_eq!(report.precondition_skipped, 1, "{report:?}");
    assert_eq!(&read(&dst, "b").await[..], b"changed");
    // Unchanged since the listing: overwritten.
    let dst = MemoryStore::new();
    put(&dst, "b", "old", t(3)).await;
    let report = race(&dst, Conditional::IfMatch, || {}).await;
    assert_eq!((report.transferred, report.precondition_skipped), (2, 0));
    assert_eq!(&read(&dst, "b").await[..], b"bbbb-new");
}

#[tokio::test]
async fn if_none_match_plans_existing_keys_as_kept_without_a_write() {
    let (src, dst) = (MemoryStore::new(), MemoryStore::new());
    put(&src, "x", "new", t(1)).await;
    put(&dst, "x", "older", t(0)).await;
    for dry_run in [true, false] {
        let opts = SyncOptions::default()
            .with_dry_run(dry_run)
            .with_write(WriteOptions::default().with_condition(Some(Conditional::IfNoneMatch)));
        let r = sync(Arc::new(src.clone()), Arc::new(dst.clone()), opts)
            .await
            .unwrap();
        assert_eq!(
            (r.transferred, r.precondition_skipped),
            (0, 1),
            "dry run {dry_run}"
        );
    }
    assert_eq!(&read(&dst, "x").await[..], b"older");
}

#[tokio::test]
async fn a_destination_without_preconditions_is_refused_before_any_write() {
    let src = MemoryStore::new();
    put(&src, "x", "1", t(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let dst = larder_store::LocalStore::new(dir.path());
    let opts = SyncOptions::default()
        .with_write(WriteOptions::default().with_condition(Some(Conditional::IfNoneMatch)));
    let err = sync(Arc::new(src), Arc::new(dst), opts).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not implement conditional writes"),
        "{err}"
    );
    assert!(!dir.path().join("x").exists());
}

#[tokio::test]
async fn tags_and_headers_are_carried_then_overridden() {
    let (src, dst) = (MemoryStore::new(), MemoryStore::new());
    let tags: Tags = [("team".to_owned(), "a".to_owned())].into();
    src.put(
        &key("page"),
        larder_store::Body::from_bytes("p"),
        larder_store::PutOptions::default()
            .with_tags(Some(tags.clone()))
            .with_headers(Headers {
                content_language: Some("fr".into()),
                ..Default::default()
            }),
    )
    .await
    .unwrap();
    put(&src, "plain", "q", t(1)).await;
    sync(
        Arc::new(src.clone()),
        Arc::new(dst.clone()),
        SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(dst.tags(&key("page")).await.unwrap(), Some(tags));
    assert_eq!(dst.tags(&key("plain")).await.unwrap(), Some(Tags::new()));
    let h = dst.head(&key("page")).await.unwrap().unwrap();
    assert_eq!(h.headers.content_language.as_deref(), Some("fr"));

    let over: Tags = [("set".to_owned(), "1".to_owned())].into();
    let dst2 = MemoryStore::new();
    let opts = SyncOptions::default().with_write(
        WriteOptions::default()
            .with_tags(Some(over.clone()))
            .with_headers(Headers {
                content_language: Some("de".into()),
                ..Default::default()
            }),
    );
    sync(Arc::new(src), Arc::new(dst2.clone()), opts)
        .await
        .unwrap();
    assert_eq!(dst2.tags(&key("page")).await.unwrap(), Some(over));
    let h = dst2.head(&key("page")).await.unwrap().unwrap();
    assert_eq!(h.headers.content_language.as_deref(), Some("de"));
}
