//! The cache API: round trips, corruption never returned, torn lines, verify, concurrency.

use std::io::{Read, Write};
use std::time::Duration;

use larder_cache::{Cache, Error, Integrity, WriteOptions};

fn content_files(cache: &Cache) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![cache.root().join("content-v2")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn put_get_info_ls_rm() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    let meta = serde_json::json!({"url": "https://example.invalid/a"});
    let sri = c
        .put_with(
            "k1",
            b"one",
            WriteOptions::default().with_metadata(Some(meta.clone())),
        )
        .unwrap();
    c.put("k2", b"two").unwrap();
    assert_eq!(c.get("k1").unwrap(), b"one");
    assert_eq!(c.get_hash(&sri).unwrap(), b"one");
    let info = c.info("k1").unwrap().unwrap();
    assert_eq!((info.size, info.metadata.clone()), (Some(3), Some(meta)));
    assert_eq!(info.integrity, sri);
    assert!(info.path.is_file());
    assert!(c.exists_hash(&sri));
    let keys: Vec<String> = c.ls().unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["k1", "k2"]);
    // Overwrite: the last line wins.
    c.put("k1", b"uno").unwrap();
    assert_eq!(c.get("k1").unwrap(), b"uno");
    c.rm_entry("k1").unwrap();
    assert!(c.info("k1").unwrap().is_none());
    assert!(matches!(c.get("k1"), Err(Error::EntryNotFound(k)) if k == "k1"));
    assert!(c.exists_hash(&sri), "content stays until verify");
    c.rm_content(&sri).unwrap();
    assert!(matches!(c.get_hash(&sri), Err(Error::ContentNotFound(_))));
    c.clear().unwrap();
    assert!(c.ls().unwrap().is_empty());
}

#[test]
fn corrupt_content_is_an_error_never_data() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    let sri = c.put("k", b"precious bytes").unwrap();
    let path = c.content_path(&sri);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = c.get("k").unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(err.to_string().contains("`k`"), "{err}");
    let mut r = c.reader("k").unwrap();
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).unwrap();
    assert!(matches!(r.check(), Err(Error::Integrity { .. })));
    // verify removes it and the entry that pointed to it.
    let st = c.verify(Duration::from_secs(3600)).unwrap();
    assert_eq!(
        (st.bad_content, st.rejected_entries, st.total_entries),
        (1, 1, 0)
    );
    assert!(c.info("k").unwrap().is_none());
}

#[test]
fn torn_index_lines_are_ignored() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    c.put("k", b"v1").unwrap();
    let bucket = larder_cache::index::bucket_path(d.path(), "k");
    // A writer killed mid-line, and garbage.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&bucket)
        .unwrap();
    f.write_all(b"\n5f2b9c\t{\"key\":\"k\",\"integ").unwrap();
    f.write_all(b"\nnot even a line").unwrap();
    drop(f);
    assert_eq!(c.get("k").unwrap(), b"v1");
    c.put("k", b"v2").unwrap();
    assert_eq!(c.get("k").unwrap(), b"v2");
}

#[test]
fn streaming_writer_commits_and_reader_checks() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    let mut w = c.writer(Some("big"), WriteOptions::default()).unwrap();
    for i in 0..100u8 {
        w.write_all(&[i; 10_000]).unwrap();
    }
    assert!(
        c.info("big").unwrap().is_none(),
        "nothing visible before commit"
    );
    let sri = w.commit().unwrap();
    let mut r = c.reader("big").unwrap();
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).unwrap();
    assert_eq!(r.check().unwrap(), sri);
    assert_eq!(buf.len(), 1_000_000);
    // A writer dropped without commit leaves nothing, not even its temp file.
    let mut w = c
        .writer(Some("abandoned"), WriteOptions::default())
        .unwrap();
    w.write_all(b"partial").unwrap();
    drop(w);
    assert!(c.info("abandoned").unwrap().is_none());
    assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn expected_integrity_or_size_mismatch_commits_nothing() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    let other: Integrity = Integrity::compute(larder_cache::Algorithm::Sha512, b"other");
    let err = c
        .put_with(
            "k",
            b"data",
            WriteOptions::default().with_integrity(Some(other)),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }));
    let err = c
        .put_with("k", b"data", WriteOptions::default().with_size(Some(5)))
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }));
    assert!(c.info("k").unwrap().is_none());
    assert!(content_files(&c).is_empty());
}

#[test]
fn verify_reclaims_unreferenced_content_and_stale_tmp() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    c.put("keep", b"keep").unwrap();
    c.put("gone", b"gone").unwrap();
    c.rm_entry("gone").unwrap();
    c.put_hash(b"orphan").unwrap();
    std::fs::write(d.path().join("tmp/left-by-crash"), b"x").unwrap();
    let st = c.verify(Duration::ZERO).unwrap();
    assert_eq!(st.verified_content, 1);
    assert_eq!(st.reclaimed_count, 2);
    assert_eq!(st.total_entries, 1);
    assert_eq!(st.removed_tmp, 1);
    assert_eq!(content_files(&c).len(), 1);
    assert_eq!(c.get("keep").unwrap(), b"keep");
}

#[test]
fn concurrent_writers_never_corrupt() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let root = root.clone();
            std::thread::spawn(move || {
                let c = Cache::new(root);
                for i in 0..200 {
                    // Shared keys and shared content across threads.
                    c.put(
                        &format!("shared-{}", i % 20),
                        format!("v{}", i % 7).as_bytes(),
                    )
                    .unwrap();
                    c.put(&format!("t{t}-{i}"), format!("{t}:{i}").as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = Cache::new(&root);
    for e in c.ls().unwrap() {
        c.get(&e.key)
            .unwrap_or_else(|err| panic!("{}: {err}", e.key));
    }
    assert_eq!(c.ls().unwrap().len(), 8 * 200 + 20);
    let st = c.verify(Duration::from_secs(3600)).unwrap();
    assert_eq!((st.bad_content, st.rejected_entries), (0, 0));
}

#[tokio::test]
async fn async_api() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    let sri = larder_cache::r#async::put(&c, "k", b"async".to_vec())
        .await
        .unwrap();
    assert_eq!(larder_cache::r#async::get(&c, "k").await.unwrap(), b"async");
    assert_eq!(
        larder_cache::r#async::get_hash(&c, &sri).await.unwrap(),
        b"async"
    );
    larder_cache::r#async::rm_entry(&c, "k").await.unwrap();
    assert!(larder_cache::r#async::info(&c, "k")
        .await
        .unwrap()
        .is_none());
}

#[test]
fn link_to_indexes_a_file_in_place_and_notices_changes() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path().join("cache"));
    let file = d.path().join("big-file");
    std::fs::write(&file, b"existing bytes").unwrap();
    let sri = c.link_to("linked", &file).unwrap();
    assert_eq!(c.get("linked").unwrap(), b"existing bytes");
    assert!(std::fs::symlink_metadata(c.content_path(&sri))
        .unwrap()
        .file_type()
        .is_symlink());
    std::fs::write(&file, b"changed behind our back").unwrap();
    assert!(matches!(c.get("linked"), Err(Error::Integrity { .. })));
}

#[test]
fn copy_hard_link_and_reflink_out_are_verified() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path().join("cache"));
    c.put("k", b"payload").unwrap();
    let (a, b, r) = (d.path().join("a"), d.path().join("b"), d.path().join("r"));
    assert_eq!(c.copy_out("k", &a).unwrap(), 7);
    c.hard_link_out("k", &b).unwrap();
    c.reflink_out("k", &r).unwrap(); // a clone or, on this file system, a verified copy
    for p in [&a, &b, &r] {
        assert_eq!(std::fs::read(p).unwrap(), b"payload");
    }
    // Corrupt content is not handed out.
    let path = c.info("k").unwrap().unwrap().path;
    std::fs::remove_file(&b).unwrap(); // the hard link shares the corrupted inode otherwise
    std::fs::write(&path, b"Payload").unwrap();
    let x = d.path().join("x");
    assert!(matches!(c.copy_out("k", &x), Err(Error::Integrity { .. })));
    assert!(!x.exists());
    assert!(matches!(
        c.hard_link_out("k", &x),
        Err(Error::Integrity { .. })
    ));
    assert!(matches!(
        c.reflink_out("k", &x),
        Err(Error::Integrity { .. })
    ));
    assert!(!x.exists());
}

#[test]
fn compact_keeps_only_live_lines() {
    let d = tempfile::tempdir().unwrap();
    let c = Cache::new(d.path());
    for i in 0..5 {
        c.put("k", format!("v{i}").as_bytes()).unwrap();
    }
    c.put("gone", b"x").unwrap();
    c.rm_entry("gone").unwrap();
    assert_eq!(c.compact().unwrap(), 4 + 2);
    assert_eq!(c.get("k").unwrap(), b"v4");
    assert!(c.info("gone").unwrap().is_none());
    let bucket = larder_cache::index::bucket_path(d.path(), "k");
    assert_eq!(larder_cache::index::read_bucket(&bucket).unwrap().len(), 1);
}
