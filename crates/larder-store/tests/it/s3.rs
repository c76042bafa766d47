//! What is particular to the S3 backend, against the Garage test server on 127.0.0.1.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use larder_store::conformance::pattern;
use larder_store::s3::StaticCredentials;
use larder_store::{
    Body, ErrorKind, GetOptions, Key, PutOptions, S3Options, S3Store, S3Url, Store,
};

/// S3's smallest part, so multipart cases stay small.
pub const PART: usize = 5 << 20;

/// Options that make multipart uploads and parallel reads happen at small sizes.
pub fn small_parts() -> S3Options {
    S3Options::default()
        .with_multipart_threshold(PART as u64)
        .with_part_size(PART as u64)
        .with_get_parallel_threshold(PART as u64)
        .with_get_part_size(1 << 20)
}

fn options(mut opts: S3Options) -> (S3Url, S3Options) {
    let env = larder_testutil::s3_env();
    opts.endpoint_url = Some(env.endpoint.clone());
    opts.region = Some(env.region.clone());
    opts.credentials = Some(StaticCredentials {
        access_key_id: env.access_key_id.clone(),
        secret_access_key: env.secret_access_key.clone(),
        session_token: None,
    });
    (S3Url::parse(&format!("s3://{}", env.bucket)).unwrap(), opts)
}

/// A store on the test bucket's root.
pub async fn store_with(opts: S3Options) -> S3Store {
    let (url, opts) = options(opts);
    S3Store::new(url, opts).await.expect("S3 store")
}

/// A store on a fresh prefix of the test bucket.
async fn store_at_prefix(opts: S3Options) -> (S3Store, String) {
    let (mut url, opts) = options(opts);
    let prefix = larder_testutil::unique("s3-it");
    url.prefix = format!("{prefix}/");
    (S3Store::new(url, opts).await.unwrap(), prefix)
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn s3_store_rooted_at_a_prefix_sees_only_its_keys() {
    let (store, prefix) = store_at_prefix(S3Options::default()).await;
    store
        .put(&key("a/b"), Body::from_bytes("x"), PutOptions::default())
        .await
        .unwrap();
    let listed: Vec<_> = store.list("").try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key.as_str(), "a/b");
    assert!(store.location("a/b").ends_with(&format!("/{prefix}/a/b")));
    // The bucket root sees the full key.
    let root = store_with(S3Options::default()).await;
    let listed: Vec<_> = root
        .list(&format!("{prefix}/"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed[0].key.as_str(), format!("{prefix}/a/b"));
}

#[tokio::test]
async fn s3_small_pages_list_everything_in_order() {
    small_pages_in_order(None).await;
}

/// A listing sorted in memory (what a directory bucket's gets) is every key, in order.
#[tokio::test]
async fn s3_a_sorted_listing_is_every_key_in_order() {
    small_pages_in_order(Some(true)).await;
}

async fn small_pages_in_order(sort_listing: Option<bool>) {
    let (store, _) = store_at_prefix(
        S3Options::default()
            .with_list_page_size(7)
            .with_sort_listing(sort_listing),
    )
    .await;
    let names: Vec<String> = (0..50).map(|i| format!("k{:02}", 49 - i)).collect();
    for n in &names {
        store
            .put(&key(n), Body::from_bytes(n.clone()), PutOptions::default())
            .await
            .unwrap();
    }
    let got: Vec<String> = store
        .list("")
        .map_ok(|e| e.key.into_string())
        .try_collect()
        .await
        .unwrap();
    let mut want = names;
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn s3_missing_bucket_is_not_found_naming_the_bucket() {
    let (_, opts) = options(S3Options::default());
    let store = S3Store::new(S3Url::parse("s3://no-such-bucket-larder").unwrap(), opts)
        .await
        .unwrap();
    let err = store.check().await.expect_err("missing bucket");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no-such-bucket-larder"), "{err}");
    let err = store
        .list("")
        .try_collect::<Vec<_>>()
        .await
        .expect_err("list");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("no-such-bucket-larder"), "{err}");
}

#[tokio::test]
async fn s3_wrong_credentials_are_permission_denied() {
    let (url, mut opts) = options(S3Options::default());
    opts.credentials = Some(StaticCredentials {
        access_key_id: "GK000000000000000000000bad".into(),
        secret_access_key: "0".repeat(64),
        session_token: None,
    });
    let store = S3Store::new(url, opts).await.unwrap();
    let err = store
        .list("")
        .try_collect::<Vec<_>>()
        .await
        .expect_err("bad key");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    let err = store
        .put(&key("x"), Body::from_bytes("x"), PutOptions::default())
        .await
        .expect_err("bad key");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
}

#[tokio::test]
async fn s3_unreachable_endpoint_is_transient_and_says_so() {
    // A loopback port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (url, mut opts) = options(S3Options::default());
    opts.endpoint_url = Some(format!("http://127.0.0.1:{port}"));
    opts.max_attempts = 1;
    let store = S3Store::new(url, opts).await.unwrap();
    let err = store.head(&key("x")).await.expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err}");
    assert!(err.is_retryable());
    assert!(
        err.to_string()
            .contains(&format!("could not reach `http://127.0.0.1:{port}`")),
        "{err}"
    );
}

#[tokio::test]
async fn s3_failed_multipart_upload_is_aborted() {
    let (store, _) = store_at_prefix(small_parts()).await;
    // Three parts' worth of data, then a read error.
    let chunks: Vec<larder_store::Result<Bytes>> = vec![
        Ok(pattern(PART, 1)),
        Ok(pattern(PART, 2)),
        Ok(pattern(PART, 3)),
        Err(larder_store::Error::new(
            ErrorKind::Io,
            larder_store::Op::Get,
            "/tmp/source",
        )),
    ];
    let body = Body::from_stream(futures::stream::iter(chunks).boxed(), None);
    let err = store
        .put(&key("broken"), body, PutOptions::default())
        .await
        .expect_err("the body failed");
    assert_eq!(err.kind(), ErrorKind::Io);
    assert!(
        store.head(&key("broken")).await.unwrap().is_none(),
        "nothing visible"
    );
    // The abort runs in the background; it must land promptly.
    let left = larder_testutil::uploads_left_after_abort(&store, "").await;
    assert!(left.is_empty(), "uploads left behind: {left:?}");
}

#[tokio::test]
async fn s3_parallel_get_refuses_an_object_overwritten_mid_read() {
    let (store, _) = store_at_prefix(small_parts()).await;
    let k = key("moving");
    let v1 = pattern(3 * PART, 1);
    store
        .put(&k, Body::from_bytes(v1.clone()), PutOptions::default())
        .await
        .unwrap();
    let got = store
        .get(
            &k,
            GetOptions::default().with_size_hint(Some(v1.len() as u64)),
        )
        .await
        .unwrap();
    store
        .put(
            &k,
            Body::from_bytes(pattern(3 * PART, 2)),
            PutOptions::default(),
        )
        .await
        .unwrap();
    let err = got
        .bytes()
        .await
        .expect_err("mixed versions must not be returned");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
}

#[tokio::test]
async fn s3_put_of_a_body_shorter_than_declared_is_an_integrity_error() {
    let (store, _) = store_at_prefix(S3Options::default()).await;
    let body = Body::from_stream(
        futures::stream::iter(vec![Ok(Bytes::from_static(b"short"))]).boxed(),
        Some(10),
    );
    let err = store
        .put(&key("short"), body, PutOptions::default())
        .await
        .expect_err("size changed");
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(
        store.head(&key("short")).await.unwrap().is_none(),
        "nothing committed"
    );
}

#[tokio::test]
async fn s3_copy_past_the_threshold_is_a_multipart_copy_with_metadata() {
    let (store, _) =
        store_at_prefix(small_parts().with_copy_multipart_threshold(PART as u64)).await;
    let data = pattern(2 * PART + 100, 4);
    let mut md = std::collections::BTreeMap::new();
    md.insert("k".to_owned(), "v".to_owned());
    store
        .put(
            &key("src"),
            Body::from_bytes(data.clone()),
            PutOptions::default()
                .with_content_type(Some("application/x-test".into()))
                .with_metadata(md.clone()),
        )
        .await
        .unwrap();
    let r = store
        .copy(
            &key("src"),
            &key("dst"),
            larder_store::CopyOptions::default(),
        )
        .await
        .unwrap();
    assert!(r.etag.unwrap().ends_with("-3"), "copied in parts");
    let got = store.get(&key("dst"), GetOptions::default()).await.unwrap();
    assert_eq!(got.meta.metadata, md);
    assert_eq!(got.meta.content_type.as_deref(), Some("application/x-test"));
    assert!(got.bytes().await.unwrap() == data);
}
