//! The conformance suite every [`Store`] backend must pass: plain async functions over a
//! [`Fixture`], gated by [`Capabilities`](crate::Capabilities).
//!
//! A backend's tests instantiate all of it with [`conformance_suite!`](crate::conformance_suite),
//! which lists every case in one place, so a new case runs on every backend:
//!
//! ```ignore
//! async fn fixture() -> Fixture { Fixture::new(Arc::new(MemoryStore::new()), 5 << 20) }
//! larder_store::conformance_suite!(fixture);
//! ```
//!
//! Each case works under its own random prefix, so cases can run in parallel against one
//! bucket.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use rand::{Rng, RngCore, SeedableRng};

use crate::integrity::{md5_hex, ChecksumAlgorithm, Hasher};
use crate::{
    Body, CopyOptions, Entry, ErrorKind, GetOptions, GetRange, Headers, Key, PutOptions, Store,
    Tags, WriteCondition,
};

/// Generates one `#[tokio::test]` per conformance case, each calling `$fixture().await` for a
/// fresh [`Fixture`].
#[macro_export]
macro_rules! conformance_suite {
    ($fixture:path) => {
        $crate::conformance_suite!(@cases $fixture;
            list_order_and_pagination,
            prefix_semantics,
            odd_keys,
            empty_object,
            multipart_object,
            overwrite,
            delete_is_idempotent,
            not_found,
            metadata_round_trip,
            headers_round_trip,
            tags_round_trip,
            conditional_writes,
            mtime_round_trip,
            checksum_round_trip,
            range_reads,
            server_side_copy,
            file_and_prefix,
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture().await;
                $crate::conformance::$case(&fixture).await;
            }
        )*
    };
}

/// A store under test and what the suite needs to know about it.
#[derive(Clone)]
pub struct Fixture {
    /// The store.
    pub store: Arc<dyn Store>,
    /// A random prefix this case works under (ends with `/`).
    pub prefix: String,
    /// A body size that makes the backend upload more than one part (its part size).
    pub part_size: usize,
    /// Kept alive as long as the fixture (a temp directory, a server handle).
    pub guard: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// A fixture over `store` with a fresh random prefix.
    pub fn new(store: Arc<dyn Store>, part_size: usize) -> Self {
        let n: u64 = rand::thread_rng().gen();
        Fixture {
            store,
            prefix: format!("conformance-{n:016x}/"),
            part_size,
            guard: None,
        }
    }

    /// Keeps `guard` alive as long as the fixture.
    pub fn with_guard(mut self, guard: impl std::any::Any + Send + Sync) -> Self {
        self.guard = Some(Arc::new(guard));
        self
    }

    /// The key `name` below this case's prefix.
    pub fn key(&self, name: &str) -> Key {
        Key::new(format!("{}{name}", self.prefix)).expect("valid test key")
    }

    async fn put(&self, name: &str, data: impl Into<Bytes>) -> Key {
        let key = self.key(name);
        self.store
            .put(&key, Body::from_bytes(data.into()), PutOptions::default())
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:#}"));
        key
    }

    async fn read(&self, key: &Key) -> Bytes {
        self.store
            .get(key, GetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"))
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("read {key}: {e}"))
    }

    async fn list(&self, prefix: &str) -> Vec<Entry> {
        self.store
            .list(&format!("{}{prefix}", self.prefix))
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("list {prefix}: {e}"))
    }

    /// The keys of a listing, relative to this case's prefix.
    async fn list_names(&self, prefix: &str) -> Vec<String> {
        self.list(prefix)
            .await
            .into_iter()
            .map(|e| e.key.as_str()[self.prefix.len()..].to_owned())
            .collect()
    }

    async fn put_many(&self, names: &[String]) {
        futures::stream::iter(names)
            .map(|n| async move {
                self.put(n, n.clone().into_bytes()).await;
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
    }
}

/// Bytes of a deterministic pseudo-random pattern.
pub fn pattern(len: usize, seed: u64) -> Bytes {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v.into()
}

fn sorted_by_bytes(mut v: Vec<String>) -> Vec<String> {
    v.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    v
}

/// 2,500 keys (three S3 pages) come back complete, once each, in key-byte order — including
/// `a-b` before `a/b` before `a0`, and non-ASCII after ASCII — and one batch delete removes
/// them all.
pub async fn list_order_and_pagination(f: &Fixture) {
    let mut names: Vec<String> = (0..2_460).map(|i| format!("{:x}/{i:05}", i % 7)).collect();
    names.extend(
        [
            "a-b",
            "a/b",
            "a0",
            "a.b",
            "a_b",
            "a~",
            "A",
            "Z",
            "z",
            "!",
            " x",
            "é",
            "日本/語",
            "e\u{301}",
            "😀",
            "a/b-c",
            "a/c/d",
            "a/b0",
            "ab",
            "b",
            "b/",
            "x y/z",
        ]
        .iter()
        .filter(|n| !n.ends_with('/'))
        .map(|s| s.to_string()),
    );
    while names.len() < 2_500 {
        names.push(format!("pad/{:05}", names.len()));
    }
    f.put_many(&names).await;
    let listed = f.list("").await;
    let got: Vec<String> = listed
        .iter()
        .map(|e| e.key.as_str()[f.prefix.len()..].to_owned())
        .collect();
    assert_eq!(got.len(), 2_500, "every key listed once");
    assert_eq!(
        got,
        sorted_by_bytes(names.clone()),
        "listing is in key-byte order"
    );
    for e in &listed {
        let name = &e.key.as_str()[f.prefix.len()..];
        assert_eq!(e.size, name.len() as u64, "size of {name}");
    }
    let keys: Vec<Key> = listed.into_iter().map(|e| e.key).collect();
    let report = f.store.delete(&keys).await.expect("batch delete");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(f.list("").await.is_empty(), "all deleted");
}

/// A listing prefix is a plain string prefix, not a directory.
pub async fn prefix_semantics(f: &Fixture) {
    let names: Vec<String> = ["p/ab", "p/a/b", "p/ac", "pa", "p/b", "q"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    f.put_many(&names).await;
    assert_eq!(f.list_names("p/a").await, ["p/a/b", "p/ab", "p/ac"]);
    assert_eq!(f.list_names("p/").await, ["p/a/b", "p/ab", "p/ac", "p/b"]);
    assert_eq!(
        f.list_names("p").await,
        ["p/a/b", "p/ab", "p/ac", "p/b", "pa"]
    );
    assert_eq!(f.list_names("p/a/").await, ["p/a/b"]);
    assert!(f.list_names("p/zz").await.is_empty());
    assert!(f.list_names("nothing/here/").await.is_empty());
    assert_eq!(f.list_names("").await.len(), names.len());
}

/// Keys with characters that URL encoding, XML and signing get wrong (control characters
/// included), and a key of 1,000 bytes, round-trip through put, list, head and get.
pub async fn odd_keys(f: &Fixture) {
    let mut names: Vec<String> = [
        "with space",
        "plus+sign",
        "percent%20",
        "100%",
        "hash#tag",
        "question?mark",
        "amp&er",
        "equals=",
        "semi;colon",
        "comma,",
        "quote'",
        "dq\"",
        "<angle>",
        "caret^",
        "brace{}",
        "back`tick",
        "tilde~",
        "dollar$",
        "at@",
        "star*",
        "paren()",
        "unicodé",
        "日本語",
        "emoji😀",
        "dir with space/file name",
        "trailing.dot.",
        ".hidden",
        "..dots",
        "-dash",
        // Characters XML 1.0 cannot carry: listed only with encoding-type=url.
        "ctl-\u{1}.txt",
        "esc-\u{1b}[0m",
        "tab\there",
        "del-\u{7f}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // 1,000 bytes in all (with the case prefix), in segments a file system accepts.
    let mut long = String::from("long");
    while f.prefix.len() + long.len() < 1000 {
        let room = 1000 - f.prefix.len() - long.len();
        let seg = room.saturating_sub(1).min(200);
        if seg == 0 {
            long.push('x');
        } else {
            long.push('/');
            long.push_str(&"k".repeat(seg));
        }
    }
    assert_eq!(f.prefix.len() + long.len(), 1000);
    names.push(long);
    f.put_many(&names).await;
    assert_eq!(f.list_names("").await, sorted_by_bytes(names.clone()));
    for n in &names {
        let key = f.key(n);
        let meta = f.store.head(&key).await.expect("head").expect("exists");
        assert_eq!(meta.key, key);
        assert_eq!(meta.size, n.len() as u64, "{n}");
        assert_eq!(&f.read(&key).await[..], n.as_bytes(), "{n}");
    }
}

/// An empty object is listed, headed and read as zero bytes.
pub async fn empty_object(f: &Fixture) {
    let key = f.put("empty", Bytes::new()).await;
    let meta = f.store.head(&key).await.unwrap().expect("exists");
    assert_eq!(meta.size, 0);
    if f.store.capabilities().etag_md5 {
        assert_eq!(meta.etag.as_deref(), Some(md5_hex(b"").as_str()));
    }
    assert!(f.read(&key).await.is_empty());
    let listed = f.list("").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, 0);
}

/// An object of more than two parts round-trips byte for byte, read whole, in parallel
/// ranges (with a size hint) and streamed; its ETag is the multipart ETag where the backend
/// uploads in parts.
pub async fn multipart_object(f: &Fixture) {
    let len = 2 * f.part_size + 12_345;
    let data = pattern(len, 7);
    let key = f.key("big");
    // Streamed in uneven chunks, of unknown length, as a file read would be.
    let chunks: Vec<crate::Result<Bytes>> = data
        .chunks(1_000_003)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = Body::from_stream(futures::stream::iter(chunks).boxed(), None);
    let put = f
        .store
        .put(&key, body, PutOptions::default())
        .await
        .expect("multipart put");
    assert_eq!(put.size, len as u64);
    let caps = f.store.capabilities();
    if caps.multipart {
        let mut h = Hasher::new().with_part_size(f.part_size as u64);
        h.update(&data);
        let want = h.finish().multipart_etag().unwrap();
        assert!(want.ends_with("-3"));
        assert_eq!(put.etag.as_deref(), Some(want.as_str()));
        let meta = f.store.head(&key).await.unwrap().unwrap();
        assert_eq!(meta.etag.as_deref(), Some(want.as_str()));
        let part = f.store.first_part_size(&key).await.unwrap();
        // A server that cannot tell says so (None, and from then on in its capabilities);
        // a wrong size is never an answer.
        let want_part = f
            .store
            .capabilities()
            .part_lookup
            .then_some(f.part_size as u64);
        assert_eq!(part, want_part, "part size of a multipart object");
    }
    let whole = f.read(&key).await;
    assert_eq!(whole.len(), len);
    assert!(whole == data, "whole read differs");
    let hinted = f
        .store
        .get(
            &key,
            GetOptions {
                size_hint: Some(len as u64),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(hinted.range, 0..len as u64);
    assert_eq!(hinted.meta.size, len as u64);
    assert!(
        hinted.bytes().await.unwrap() == data,
        "parallel read differs"
    );
}

/// A second put replaces the first, size and all.
pub async fn overwrite(f: &Fixture) {
    let key = f.put("obj", "first version, longer").await;
    f.put("obj", "second").await;
    assert_eq!(&f.read(&key).await[..], b"second");
    let meta = f.store.head(&key).await.unwrap().unwrap();
    assert_eq!(meta.size, 6);
    let listed = f.list("").await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, 6);
    if f.store.capabilities().etag_md5 {
        assert_eq!(listed[0].etag.as_deref(), Some(md5_hex(b"second").as_str()));
    }
}

/// Deleting removes; deleting again, or deleting what never was, succeeds.
pub async fn delete_is_idempotent(f: &Fixture) {
    let a = f.put("dir/a", "a").await;
    let b = f.put("dir/b", "b").await;
    let never = f.key("never/was");
    let report = f.store.delete(&[a.clone(), never.clone()]).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(f.store.head(&a).await.unwrap().is_none());
    assert_eq!(f.list_names("").await, ["dir/b"]);
    let report = f.store.delete(&[a, never, b.clone()]).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(f.list("").await.is_empty());
    // A key may come back after its parent "directory" emptied.
    f.put("dir", "now a file").await;
    assert_eq!(f.list_names("").await, ["dir"]);
}

/// A missing object is `None` from head and `NotFound` from get and copy, naming the key.
pub async fn not_found(f: &Fixture) {
    let key = f.key("missing/object");
    assert!(f.store.head(&key).await.unwrap().is_none());
    let err = f
        .store
        .get(&key, GetOptions::default())
        .await
        .expect_err("get of a missing key");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("missing/object"), "{err}");
    let err = f
        .store
        .copy(&key, &f.key("to"), CopyOptions::default())
        .await
        .expect_err("copy of a missing key");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // A missing prefix lists nothing.
    assert!(f.list("missing/").await.is_empty());
}

/// Content-Type, Cache-Control and user metadata come back from head and get.
pub async fn metadata_round_trip(f: &Fixture) {
    if !f.store.capabilities().metadata {
        return;
    }
    let key = f.key("meta.json");
    let mut metadata = BTreeMap::new();
    metadata.insert("owner".to_owned(), "team-a".to_owned());
    metadata.insert("x-spaced".to_owned(), "a value with spaces".to_owned());
    let opts = PutOptions {
        content_type: Some("application/json".to_owned()),
        cache_control: Some("max-age=60".to_owned()),
        metadata: metadata.clone(),
        ..Default::default()
    };
    f.store
        .put(&key, Body::from_bytes("{}"), opts)
        .await
        .unwrap();
    let head = f.store.head(&key).await.unwrap().unwrap();
    assert_eq!(head.content_type.as_deref(), Some("application/json"));
    assert_eq!(head.cache_control.as_deref(), Some("max-age=60"));
    assert_eq!(head.metadata, metadata);
    let got = f.store.get(&key, GetOptions::default()).await.unwrap();
    assert_eq!(got.meta.content_type.as_deref(), Some("application/json"));
    assert_eq!(got.meta.metadata, metadata);
}

/// Content-Encoding, -Disposition, -Language, Expires and the website redirect round-trip
/// where metadata does, on the HEAD and on the GET.
pub async fn headers_round_trip(f: &Fixture) {
    if !f.store.capabilities().metadata {
        return;
    }
    let key = f.key("page.html.gz");
    let headers = Headers {
        content_encoding: Some("gzip".to_owned()),
        content_disposition: Some("attachment; filename=\"page.html\"".to_owned()),
        content_language: Some("de-CH".to_owned()),
        expires: Some("Thu, 01 Dec 2033 16:00:00 GMT".to_owned()),
        website_redirect: Some("/elsewhere.html".to_owned()),
    };
    let opts = PutOptions {
        content_type: Some("text/html".to_owned()),
        headers: headers.clone(),
        ..Default::default()
    };
    f.store
        .put(&key, Body::from_bytes("<p>"), opts)
        .await
        .unwrap();
    let head = f.store.head(&key).await.unwrap().unwrap();
    assert_eq!(head.headers, headers);
    let got = f.store.get(&key, GetOptions::default()).await.unwrap();
    assert_eq!(got.meta.headers, headers);
    assert_eq!(got.meta.content_type.as_deref(), Some("text/html"));
}

/// Tags written with an object come back from [`Store::tags`]; an object written without
/// any has none, and an overwrite replaces them.
pub async fn tags_round_trip(f: &Fixture) {
    if !f.store.capabilities().tagging {
        return;
    }
    let key = f.key("tagged");
    let tags: Tags = [("team", "a b"), ("tier", "hot&cold=1")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let opts = PutOptions {
        tags: Some(tags.clone()),
        ..Default::default()
    };
    f.store
        .put(&key, Body::from_bytes("x"), opts)
        .await
        .unwrap();
    assert_eq!(f.store.tags(&key).await.unwrap(), Some(tags));
    let plain = f.put("plain", "y").await;
    assert_eq!(f.store.tags(&plain).await.unwrap(), Some(Tags::new()));
    f.store
        .put(&key, Body::from_bytes("z"), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(f.store.tags(&key).await.unwrap(), Some(Tags::new()));
}

/// `If-None-Match: *` refuses to replace an object and `If-Match` one whose ETag changed,
/// both as [`ErrorKind::Conflict`] naming the key, with the object left as it was.
pub async fn conditional_writes(f: &Fixture) {
    if !f.store.capabilities().conditional_writes {
        return;
    }
    let put = |key: Key, data: &'static str, condition: WriteCondition| {
        let store = f.store.clone();
        async move {
            let opts = PutOptions {
                condition: Some(condition),
                ..Default::default()
            };
            store.put(&key, Body::from_bytes(data), opts).await
        }
    };
    let key = f.key("guarded");
    let first = put(key.clone(), "one", WriteCondition::IfNoneMatch)
        .await
        .expect("a new key under If-None-Match");
    let err = put(key.clone(), "two", WriteCondition::IfNoneMatch)
        .await
        .expect_err("If-None-Match over an existing key");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("guarded"), "{err}");
    assert_eq!(&f.read(&key).await[..], b"one");
    let etag = first.etag.expect("an ETag");
    let err = put(
        key.clone(),
        "three",
        WriteCondition::IfMatch("0123456789abcdef0123456789abcdef".into()),
    )
    .await
    .expect_err("If-Match with another ETag");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(&f.read(&key).await[..], b"one");
    put(key.clone(), "four", WriteCondition::IfMatch(etag))
        .await
        .expect("If-Match with the current ETag");
    assert_eq!(&f.read(&key).await[..], b"four");
}

/// The mtime given to put comes back, to the nanosecond where the backend keeps it.
pub async fn mtime_round_trip(f: &Fixture) {
    let t = UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    let key = f.key("dated");
    f.store
        .put(
            &key,
            Body::from_bytes("x"),
            PutOptions {
                mtime: Some(t),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let head = f.store.head(&key).await.unwrap().unwrap();
    assert_eq!(head.mtime, Some(t));
    let got = f.store.get(&key, GetOptions::default()).await.unwrap();
    assert_eq!(got.meta.mtime, Some(t));
    if f.store.capabilities().native_mtime {
        assert_eq!(f.list("").await[0].last_modified, Some(t));
    } else {
        let now = SystemTime::now();
        let lm = f.list("").await[0].last_modified.expect("upload time");
        assert!(lm > t && lm <= now + Duration::from_secs(300), "{lm:?}");
    }
}

/// Every additional checksum is sent, stored and returned — for a single-part and a
/// multipart object — and matches what larder computes.
pub async fn checksum_round_trip(f: &Fixture) {
    if !f.store.capabilities().checksums {
        return;
    }
    for a in ChecksumAlgorithm::ALL {
        for (name, len) in [("small", 10_000), ("large", 2 * f.part_size + 1)] {
            let key = f.key(&format!("{a}/{name}"));
            let data = pattern(len, len as u64);
            let put = f
                .store
                .put(
                    &key,
                    Body::from_bytes(data.clone()),
                    PutOptions {
                        checksum: Some(a),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_or_else(|e| panic!("put with {a}: {e:#}"));
            let stored = put
                .checksum
                .clone()
                .unwrap_or_else(|| panic!("{a} {name}: no checksum"));
            assert_eq!(stored.algorithm, a);
            if !stored.is_composite() {
                let mut h = Hasher::new().with_checksum(a);
                h.update(&data);
                assert_eq!(&stored, h.finish().checksum(a).unwrap(), "{a} {name}");
            }
            let head = f.store.head(&key).await.unwrap().unwrap();
            assert_eq!(head.checksum.as_ref(), Some(&stored), "head {a} {name}");
            let got = f
                .store
                .get(
                    &key,
                    GetOptions {
                        checksum: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(got.meta.checksum.as_ref(), Some(&stored), "get {a} {name}");
            assert!(got.bytes().await.unwrap() == data);
        }
    }
}

/// Ranges: bounded, open-ended, clamped at the end, and refused past it.
pub async fn range_reads(f: &Fixture) {
    let data = pattern(100_000, 3);
    let key = f.put("ranged", data.clone()).await;
    let read = |r: GetRange| {
        let key = key.clone();
        async move {
            let got = f
                .store
                .get(
                    &key,
                    GetOptions {
                        range: Some(r),
                        ..Default::default()
                    },
                )
                .await?;
            let range = got.range.clone();
            let size = got.meta.size;
            got.bytes().await.map(|b| (range, size, b))
        }
    };
    let (r, size, b) = read(GetRange::Bounded(10..20)).await.unwrap();
    assert_eq!((r, size, &b[..]), (10..20, 100_000, &data[10..20]));
    let (r, _, b) = read(GetRange::From(99_990)).await.unwrap();
    assert_eq!((r, &b[..]), (99_990..100_000, &data[99_990..]));
    let (r, _, b) = read(GetRange::Bounded(99_000..200_000)).await.unwrap();
    assert_eq!((r, &b[..]), (99_000..100_000, &data[99_000..]));
    let (_, _, b) = read(GetRange::Bounded(0..1)).await.unwrap();
    assert_eq!(&b[..], &data[..1]);
    let err = read(GetRange::From(100_000))
        .await
        .expect_err("past the end");
    assert_eq!(err.kind(), ErrorKind::InvalidRange, "{err}");
}

/// A copy within the store has the same bytes and metadata.
pub async fn server_side_copy(f: &Fixture) {
    let src = f.key("src/object");
    let mut metadata = BTreeMap::new();
    metadata.insert("k".to_owned(), "v".to_owned());
    let data = pattern(50_000, 9); // below every part size: a single-part ETag
    let t = UNIX_EPOCH + Duration::new(1_650_000_000, 5);
    f.store
        .put(
            &src,
            Body::from_bytes(data.clone()),
            PutOptions {
                content_type: Some("text/plain".to_owned()),
                metadata: metadata.clone(),
                mtime: Some(t),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let dst = f.key("dst/copied object+");
    let res = f
        .store
        .copy(&src, &dst, CopyOptions::default())
        .await
        .unwrap();
    if f.store.capabilities().etag_md5 {
        assert_eq!(res.etag.as_deref(), Some(md5_hex(&data).as_str()));
    }
    assert!(f.read(&dst).await == data);
    let head = f.store.head(&dst).await.unwrap().unwrap();
    assert_eq!(head.mtime, Some(t));
    if f.store.capabilities().metadata {
        assert_eq!(head.metadata, metadata);
        assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    }
    assert!(f.store.head(&src).await.unwrap().is_some(), "source kept");
}

/// `a` and `a/b` both exist where the backend allows it; elsewhere the second is a
/// `Conflict` naming the key, and nothing is written.
pub async fn file_and_prefix(f: &Fixture) {
    let a = f.put("a", "file").await;
    let ab = f.key("a/b");
    let res = f
        .store
        .put(&ab, Body::from_bytes("nested"), PutOptions::default())
        .await;
    if f.store.capabilities().file_and_prefix {
        res.expect("a and a/b side by side");
        assert_eq!(f.list_names("").await, ["a", "a/b"]);
    } else {
        let err = res.expect_err("a/b under the file a");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        assert!(err.to_string().contains("a/b"), "{err}");
        assert_eq!(f.list_names("").await, ["a"]);
        assert_eq!(&f.read(&a).await[..], b"file");
        // And the reverse: a file where a directory is.
        f.put("d/e", "x").await;
        let err = f
            .store
            .put(&f.key("d"), Body::from_bytes("y"), PutOptions::default())
            .await
            .expect_err("d over the directory d");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    }
}
