//! The cache as a Store: the conformance suite, and a failed put commits nothing.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use larder_cache::store::CacheStore;
use larder_cache::Cache;
use larder_store::conformance::Fixture;
use larder_store::{Body, ErrorKind, Key, PutOptions, Store};

mod conformance_cache {
    use super::*;
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = CacheStore::new(Cache::new(dir.path().join("cache")));
        Fixture::new(Arc::new(store), 1 << 20).with_guard(dir)
    }
    larder_store::conformance_suite!(fixture);
}

#[tokio::test]
async fn a_failed_body_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::new(dir.path());
    let store = CacheStore::new(cache.clone());
    let chunks: Vec<larder_store::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"partial ")),
        Err(larder_store::Error::new(
            ErrorKind::Transient,
            larder_store::Op::Get,
            "s3://b/k",
        )),
    ];
    let err = store
        .put(
            &Key::new("k").unwrap(),
            Body::from_stream(futures::stream::iter(chunks).boxed(), None),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert!(cache.info("k").unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0,
        "temp file removed"
    );
}
