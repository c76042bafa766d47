//! What needs a server with versions, tags and conditional writes (radosgw), and how the
//! S3 backend behaves on one without them (Garage).

use futures::TryStreamExt;
use larder_store::{
    Body, ErrorKind, GetOptions, Key, PutOptions, S3Options, ServerFeatures, Store, Tags,
    WriteCondition,
};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn s3_garage_is_detected_without_tags_versions_or_conditional_writes() {
    let prefix = larder_testutil::unique("features");
    let store = larder_testutil::s3_store(S3Options::default(), Some(&prefix)).await;
    assert!(store.capabilities().tagging, "assumed until detected");
    let found = store.detect_features().await.unwrap();
    assert_eq!(
        found,
        ServerFeatures {
            checksums: true,
            ..ServerFeatures::none()
        }
    );
    let caps = store.capabilities();
    assert!(!caps.tagging && !caps.versioning && !caps.conditional_writes);
    // Garage would ignore both and overwrite or drop silently: refused instead, by key.
    for opts in [
        PutOptions::default().with_condition(Some(WriteCondition::IfNoneMatch)),
        PutOptions::default().with_tags(Some(Tags::from([("a".to_owned(), "b".to_owned())]))),
    ] {
        let err = store
            .put(&key("k"), Body::from_bytes("x"), opts)
            .await
            .expect_err("unsupported on Garage");
        assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("k"), "{err}");
    }
    assert!(
        store.head(&key("k")).await.unwrap().is_none(),
        "nothing written"
    );
    assert_eq!(store.tags(&key("k")).await.unwrap(), None);
}

#[tokio::test]
async fn s3_rgw_lists_every_version_and_delete_marker_newest_first() {
    let env = larder_testutil::rgw_bucket(true);
    let store = larder_testutil::store_on(&env, S3Options::default(), None).await;
    let k = key("doc.txt");
    let mut ids = Vec::new();
    for body in ["v1", "v2", "v3"] {
        let r = store
            .put(&k, Body::from_bytes(body), PutOptions::default())
            .await
            .unwrap();
        ids.push(r.version_id.expect("a version id from a versioned bucket"));
    }
    store.delete(std::slice::from_ref(&k)).await.unwrap();
    store
        .put(&key("other"), Body::from_bytes("o"), PutOptions::default())
        .await
        .unwrap();
    let versions: Vec<_> = store.list_versions("").try_collect().await.unwrap();
    let doc: Vec<_> = versions.iter().filter(|v| v.key == k).collect();
    assert_eq!(doc.len(), 4, "{versions:?}");
    assert!(doc[0].delete_marker && doc[0].is_latest, "{doc:?}");
    let listed: Vec<_> = doc[1..].iter().map(|v| v.version_id.clone()).collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    assert_eq!(versions.last().unwrap().key.as_str(), "other");
    // An old version reads back by its id.
    let got = store
        .get(
            &k,
            GetOptions::default().with_version_id(Some(ids[0].clone())),
        )
        .await
        .unwrap();
    let body: Vec<u8> = got
        .body
        .try_fold(Vec::new(), |mut acc, b| async move {
            acc.extend_from_slice(&b);
            Ok(acc)
        })
        .await
        .unwrap();
    assert_eq!(body, b"v1");
}
