//! What a sync does, on memory stores: plans, skips, deletes and their guards, filters,
//! dry runs.

use std::sync::{Arc, Mutex};

use larder_store::{MemoryStore, Store};
use larder_sync::{sync, Action, CompareMode, Event, Filters, Reason};

use crate::*;

fn pair() -> (Arc<MemoryStore>, Arc<MemoryStore>) {
    (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()))
}

#[tokio::test]
async fn first_sync_copies_everything_and_the_second_nothing() {
    let (src, dst) = pair();
    for i in 0..50 {
        put(
            &*src,
            &format!("d{}/f{i}", i % 3),
            format!("data {i}"),
            t(i),
        )
        .await;
    }
    let r = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert_eq!((r.transferred, r.skipped, r.deleted), (50, 0, 0));
    assert_eq!(r.etag_verified, 50, "every transfer verified");
    assert!(r.errors.is_empty());
    assert_eq!(contents(&*dst).await, contents(&*src).await);
    let r = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert_eq!((r.transferred, r.skipped), (0, 50));
}

#[tokio::test]
async fn size_mtime_sees_a_touched_file_and_size_mode_does_not() {
    let (src, dst) = pair();
    put(&*src, "a", "same", t(1)).await;
    sync(src.clone(), dst.clone(), opts()).await.unwrap();
    put(&*src, "a", "SAME", t(2)).await; // same size, new content and mtime
    let size_only = opts().with_compare(CompareMode::Size);
    let r = sync(src.clone(), dst.clone(), size_only).await.unwrap();
    assert_eq!((r.transferred, r.skipped), (0, 1));
    let r = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert_eq!((r.transferred, r.skipped), (1, 0));
    assert_eq!(&contents(&*dst).await["a"][..], b"SAME");
}

#[tokio::test]
async fn etag_mode_compares_content() {
    let (src, dst) = pair();
    put(&*src, "a", "v1", t(1)).await;
    put(&*dst, "a", "v2", t(1)).await; // same size and mtime, other bytes
                                       // size-mtime has no recorded mtimes without a request, so the listed ETags decide: the
                                       // bytes differ, whatever the mtimes say.
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let dry = opts()
        .with_dry_run(true)
        .with_on_event(Some(Arc::new(move |e: &Event| {
            ev.lock().unwrap().push(e.clone())
        })));
    let r = sync(src.clone(), dst.clone(), dry).await.unwrap();
    assert_eq!(r.transferred, 1);
    assert!(matches!(
        &events.lock().unwrap()[..],
        [Event::Done {
            action: Action::Transfer,
            reason: Reason::Etag,
            ..
        }]
    ));
    let etag = opts().with_compare(CompareMode::Etag);
    let r = sync(src.clone(), dst.clone(), etag.clone()).await.unwrap();
    assert_eq!(r.transferred, 1);
    let r = sync(src.clone(), dst.clone(), etag).await.unwrap();
    assert_eq!(r.skipped, 1);
}

#[tokio::test]
async fn checksum_mode_compares_the_additional_checksum() {
    let (src, dst) = pair();
    let a = larder_store::integrity::ChecksumAlgorithm::Crc32c;
    put(&*src, "a", "v1", t(1)).await;
    let with = opts()
        .with_compare(CompareMode::Checksum)
        .with_checksum(Some(a));
    // The source object carries no stored checksum: unknown is never "equal".
    let r = sync(src.clone(), dst.clone(), with.clone()).await.unwrap();
    assert_eq!(r.transferred, 1);
    assert_eq!(r.checksum_verified, 1, "sent and stored with the checksum");
    let r = sync(src.clone(), dst.clone(), with.clone()).await.unwrap();
    assert_eq!(r.transferred, 1, "the source still has no stored checksum");
    // Store the checksum on the source too: then equal checksums skip.
    src.put(
        &key("a"),
        larder_store::Body::from_bytes("v1"),
        larder_store::PutOptions::default()
            .with_checksum(Some(a))
            .with_mtime(Some(t(1))),
    )
    .await
    .unwrap();
    let r = sync(src.clone(), dst.clone(), with).await.unwrap();
    assert_eq!((r.transferred, r.skipped), (0, 1));
}

#[derive(Debug)]
struct OddSizes;
impl larder_sync::Comparator for OddSizes {
    fn compare(&self, src: &larder_store::Entry, _: &larder_store::Entry) -> Option<String> {
        (src.size % 2 == 1).then(|| "odd size".to_owned())
    }
}

#[tokio::test]
async fn a_custom_comparator_decides() {
    let (src, dst) = pair();
    put(&*src, "even", "ab", t(1)).await;
    put(&*src, "odd", "abc", t(1)).await;
    sync(src.clone(), dst.clone(), opts()).await.unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let custom = opts()
        .with_comparator(Some(Arc::new(OddSizes)))
        .with_on_event(Some(Arc::new(move |e: &Event| {
            ev.lock().unwrap().push(e.clone())
        })));
    let r = sync(src.clone(), dst.clone(), custom).await.unwrap();
    assert_eq!((r.transferred, r.skipped), (1, 1));
    let events = events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::Done { action: Action::Transfer, key, reason: Reason::Custom(r), .. } if key == "odd" && r == "odd size")));
}

#[tokio::test]
async fn delete_prunes_extra_keys_after_transfers() {
    let (src, dst) = pair();
    put(&*src, "keep", "k", t(1)).await;
    put(&*dst, "extra/1", "x", t(1)).await;
    put(&*dst, "extra/2", "x", t(1)).await;
    let r = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert_eq!(r.deleted, 0, "no --delete, no deletion");
    assert_eq!(contents(&*dst).await.len(), 3);
    let del = opts().with_delete(true);
    let r = sync(src.clone(), dst.clone(), del).await.unwrap();
    assert_eq!((r.transferred, r.skipped, r.deleted), (0, 1, 2));
    assert_eq!(contents(&*dst).await.keys().collect::<Vec<_>>(), ["keep"]);
}

#[tokio::test]
async fn delete_is_refused_for_an_empty_source_unless_allowed() {
    let (src, dst) = pair();
    put(&*dst, "precious", "p", t(1)).await;
    let del = opts().with_delete(true);
    let r = sync(src.clone(), dst.clone(), del.clone()).await.unwrap();
    assert_eq!(r.deleted, 0);
    assert!(r
        .delete_refused
        .as_deref()
        .unwrap()
        .contains("source is empty"));
    assert_eq!(contents(&*dst).await.len(), 1);
    let allowed = del.with_allow_empty_source(true);
    let r = sync(src.clone(), dst.clone(), allowed).await.unwrap();
    assert_eq!(r.deleted, 1);
    assert!(dst.is_empty());
}

#[tokio::test]
async fn max_delete_refuses_all_deletions_past_the_limit() {
    let (src, dst) = pair();
    put(&*src, "a", "a", t(1)).await;
    for i in 0..5 {
        put(&*dst, &format!("x{i}"), "x", t(1)).await;
    }
    let capped = opts().with_delete(true).with_max_delete(Some(4));
    let r = sync(src.clone(), dst.clone(), capped.clone())
        .await
        .unwrap();
    assert_eq!(r.deleted, 0);
    assert!(r
        .delete_refused
        .as_deref()
        .unwrap()
        .contains("--max-delete 4"));
    assert_eq!(dst.len(), 6);
    let r = sync(src.clone(), dst.clone(), capped.with_max_delete(Some(5)))
        .await
        .unwrap();
    assert_eq!(r.deleted, 5);
}

#[tokio::test]
async fn dry_run_plans_everything_and_writes_nothing() {
    let (src, dst) = pair();
    put(&*src, "new", "n", t(1)).await;
    put(&*src, "same", "s", t(1)).await;
    put(&*src, "changed", "c2", t(2)).await;
    put(&*dst, "same", "s", t(1)).await;
    put(&*dst, "changed", "c1", t(1)).await;
    put(&*dst, "extra", "e", t(1)).await;
    let before = contents(&*dst).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let dry = opts()
        .with_dry_run(true)
        .with_delete(true)
        .with_on_event(Some(Arc::new(move |e: &Event| {
            ev.lock().unwrap().push(e.clone())
        })));
    let r = sync(src.clone(), dst.clone(), dry).await.unwrap();
    assert!(r.dry_run);
    assert_eq!((r.transferred, r.skipped, r.deleted), (2, 1, 1));
    assert_eq!(contents(&*dst).await, before, "nothing written");
    let mut plan: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Done {
                action,
                key,
                reason,
                dry_run: true,
                ..
            } => Some(format!("{action} {key}: {reason}")),
            _ => None,
        })
        .collect();
    plan.sort();
    assert_eq!(
        plan,
        [
            "delete extra: not in source",
            "skip same: adopted: same content, both objects have the same ETag",
            "transfer changed: etag differs",
            "transfer new: missing at destination",
        ]
    );
}

#[tokio::test]
async fn filters_select_keys_and_protect_excluded_ones_from_deletion() {
    let (src, dst) = pair();
    for k in ["a.jpg", "b.png", "d/c.jpg", "tmp/x.jpg", "big.jpg"] {
        let data = if k == "big.jpg" {
            "x".repeat(1000)
        } else {
            "x".into()
        };
        put(&*src, k, data, t(1)).await;
    }
    put(&*dst, "old.png", "o", t(1)).await;
    let mut filters = Filters::new(&["*.jpg".into()], &["/tmp/**".into()], &[], &[]).unwrap();
    filters.max_size = Some(100);
    let r = sync(
        src.clone(),
        dst.clone(),
        opts().with_filters(filters).with_delete(true),
    )
    .await
    .unwrap();
    assert_eq!(r.transferred, 2);
    assert_eq!(
        r.filtered, 4,
        "b.png, tmp/x.jpg, big.jpg, and old.png at the destination"
    );
    assert_eq!(r.deleted, 0, "old.png is outside the filters: not deleted");
    assert_eq!(
        contents(&*dst).await.keys().collect::<Vec<_>>(),
        ["a.jpg", "d/c.jpg", "old.png"]
    );
}

#[tokio::test]
async fn metadata_travels_with_objects() {
    let (src, dst) = pair();
    let mut md = std::collections::BTreeMap::new();
    md.insert("owner".to_owned(), "me".to_owned());
    src.put(
        &key("page.html"),
        larder_store::Body::from_bytes("<p>"),
        larder_store::PutOptions::default()
            .with_content_type(Some("text/html".into()))
            .with_cache_control(Some("no-cache".into()))
            .with_metadata(md.clone())
            .with_mtime(Some(t(5))),
    )
    .await
    .unwrap();
    sync(src.clone(), dst.clone(), opts()).await.unwrap();
    let m = dst.head(&key("page.html")).await.unwrap().unwrap();
    assert_eq!(m.content_type.as_deref(), Some("text/html"));
    assert_eq!(m.cache_control.as_deref(), Some("no-cache"));
    assert_eq!(m.metadata, md);
    assert_eq!(m.mtime, Some(t(5)));
}

#[tokio::test]
async fn many_deletions_spill_to_disk_and_all_run() {
    let (src, dst) = pair();
    put(&*src, "keep", "k", t(1)).await;
    for i in 0..10_500 {
        put(&*dst, &format!("extra/{i:05}"), "x", t(1)).await;
    }
    let r = sync(src.clone(), dst.clone(), opts().with_delete(true))
        .await
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.deleted, 10_500);
    assert_eq!(dst.len(), 1);
}

#[tokio::test]
async fn archived_source_objects_are_skipped_and_reported_never_read() {
    use larder_index::{Index, IndexSource, ObjectRow, Policy, Strategy, Vault};
    use larder_store::wrap::CountingStore;
    use larder_sync::vault::IndexedRemote;
    // A remote whose index says `cold` is in Glacier (as an inventory delivers it).
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.sqlite3");
    let mut ix = Index::open(&db).unwrap();
    ix.add_vault(&Vault {
        name: "v".into(),
        local_dir: dir.path().join("local"),
        remote: "s3://b/p/".into(),
        strategy: Strategy::Cache,
        policy: Policy::default(),
    })
    .unwrap();
    let remote = Arc::new(MemoryStore::new());
    put(&*remote, "cold", "frozen", t(1)).await;
    put(&*remote, "warm", "sunny", t(2)).await;
    let row = |k: &str, class: &str, size| {
        Ok(ObjectRow {
            key: k.into(),
            size,
            etag: None,
            storage_class: Some(class.into()),
            last_modified: None,
        })
    };
    ix.replace_objects(
        "v",
        IndexSource::Inventory,
        vec![row("cold", "GLACIER", 6), row("warm", "STANDARD", 5)],
        None,
    )
    .unwrap();
    let counting = Arc::new(CountingStore::new(remote.clone()));
    let src = Arc::new(IndexedRemote::new(counting.clone(), &db, "v"));
    let dst = Arc::new(MemoryStore::new());
    for dry_run in [true, false] {
        let events = Arc::new(Mutex::new(Vec::new()));
        let ev = events.clone();
        let o = opts()
            .with_dry_run(dry_run)
            .with_on_event(Some(Arc::new(move |e: &Event| {
                ev.lock().unwrap().push(e.clone())
            })));
        let r = sync(src.clone(), dst.clone(), o).await.unwrap();
        assert_eq!((r.transferred, r.archived), (1, 1), "dry run {dry_run}");
        assert!(events.lock().unwrap().iter().any(|e| matches!(
            e,
            Event::Done { action: Action::Skip, key, reason: Reason::Archived(c), .. }
                if key == "cold" && c == "GLACIER"
        )));
    }
    assert_eq!(
        counting.counts().snapshot()[2],
        1,
        "one GET (warm, in the real run); cold never read"
    );
    assert_eq!(contents(&*dst).await.keys().collect::<Vec<_>>(), ["warm"]);
}

#[tokio::test]
async fn progress_tells_each_transfer_and_its_bytes_as_they_move() {
    // A directory source: its reads come in chunks, as a large body's do.
    let dir = tempfile::tempdir().unwrap();
    let src = Arc::new(larder_store::LocalStore::new(dir.path()));
    let dst = Arc::new(MemoryStore::new());
    put(&*src, "small", "abc", t(1)).await;
    let big = larder_store::conformance::pattern(5 << 20, 3);
    put(&*src, "big", big.clone(), t(2)).await;
    put(&*src, "same", "x", t(3)).await;
    sync(src.clone(), dst.clone(), opts()).await.unwrap();
    put(&*src, "small", "abcd", t(4)).await;
    put(
        &*src,
        "big",
        larder_store::conformance::pattern(5 << 20, 4),
        t(5),
    )
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let o = opts().with_on_progress(Some(Arc::new(move |p: &larder_sync::Progress| {
        s2.lock().unwrap().push(p.clone())
    })));
    sync(src.clone(), dst.clone(), o).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    use larder_sync::Progress::{Bytes, Started};
    for (key, size) in [("small", 4u64), ("big", 5 << 20)] {
        assert!(
            seen.contains(&Started {
                key: key.into(),
                size
            }),
            "{key} started: {seen:?}"
        );
        let moved: Vec<u64> = seen
            .iter()
            .filter_map(|p| match p {
                Bytes {
                    key: k,
                    done,
                    size: s,
                } if k == key && *s == size => Some(*done),
                _ => None,
            })
            .collect();
        assert_eq!(moved.last(), Some(&size), "{key} all moved");
        assert!(
            moved.windows(2).all(|w| w[0] < w[1]),
            "{key} grows: {moved:?}"
        );
    }
    let big_steps = seen
        .iter()
        .filter(|p| matches!(p, Bytes { key, .. } if key == "big"))
        .count();
    assert!(
        big_steps > 1,
        "a large body moves in steps, told as it goes"
    );
    assert!(
        !seen
            .iter()
            .any(|p| matches!(p, Started { key, .. } | Bytes { key, .. } if key == "same")),
        "an up-to-date key is not transferred"
    );
}

#[tokio::test]
async fn reports_events_and_progress_serialize_for_logs() {
    let (src, dst) = pair();
    put(&*src, "a", "data", t(1)).await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let (e2, p2) = (events.clone(), events.clone());
    let o = opts()
        .with_on_event(Some(Arc::new(move |e: &Event| {
            e2.lock().unwrap().push(serde_json::to_value(e).unwrap())
        })))
        .with_on_progress(Some(Arc::new(move |p: &larder_sync::Progress| {
            p2.lock().unwrap().push(serde_json::to_value(p).unwrap())
        })));
    let r = sync(src, dst, o).await.unwrap();
    let report = serde_json::to_value(&r).unwrap();
    assert_eq!(report["transferred"], 1);
    assert_eq!(report["etag_verified"], 1);
    assert!(report["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    let events = events.lock().unwrap().clone();
    // The form `larder sync --json` prints (schema 1).
    let done = events.iter().find(|e| e["event"] == "transfer").unwrap();
    assert_eq!(done["key"], "a");
    assert_eq!(done["reason"], "missing at destination");
    assert_eq!(done["etag_verified"], true);
    assert_eq!(done["done"], 1);
    assert!(events
        .iter()
        .any(|e| e["progress"] == "started" && e["size"] == 4));
}

#[tokio::test]
async fn a_run_flushes_its_target_once_and_a_dry_run_never() {
    let src = Arc::new(MemoryStore::new());
    for k in ["a/1", "a/2", "b/3"] {
        put(&*src, k, k, t(1)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let dst = Arc::new(larder_store::wrap::CountingStore::new(Arc::new(
        larder_store::LocalStore::new(dir.path()),
    )));
    let flushes = || {
        dst.counts()
            .flush
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let dry = sync(src.clone(), dst.clone(), opts().with_dry_run(true))
        .await
        .unwrap();
    // A dry run counts what it would transfer, writes nothing and so flushes nothing.
    assert_eq!((dry.transferred, flushes()), (3, 0));
    assert!(!dir.path().join("a").exists());
    let run = sync(src.clone(), dst.clone(), opts()).await.unwrap();
    assert_eq!((run.transferred, flushes()), (3, 1));
    assert_eq!(std::fs::read(dir.path().join("b/3")).unwrap(), b"b/3");
}
