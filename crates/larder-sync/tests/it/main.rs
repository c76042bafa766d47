//! Integration tests of the sync engine: semantics on memory stores, every direction against
//! the Garage test server, and faults.

mod adopt;
mod conditions;
mod directions;
mod faults;
mod semantics;
mod server_copy;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use larder_store::{Body, GetOptions, Key, PutOptions, Store};
use larder_sync::{MetaCache, SyncOptions};

pub fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// A fixed, distinct mtime per test file.
pub fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::new(1_600_000_000 + secs, 0)
}

pub async fn put(store: &dyn Store, k: &str, data: impl Into<Bytes>, mtime: SystemTime) {
    store
        .put(
            &key(k),
            Body::from_bytes(data.into()),
            PutOptions::default().with_mtime(Some(mtime)),
        )
        .await
        .unwrap_or_else(|e| panic!("put {k}: {e}"));
}

/// Every key and its bytes.
pub async fn contents(store: &dyn Store) -> BTreeMap<String, Bytes> {
    let entries: Vec<_> = store.list("").try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for e in entries {
        let b = store
            .get(&e.key, GetOptions::default())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.insert(e.key.into_string(), b);
    }
    out
}

pub fn opts() -> SyncOptions {
    SyncOptions::default().with_cache(Some(Arc::new(MetaCache::in_memory())))
}

/// Every test module is declared (a forgotten file would silently not run).
#[test]
fn no_forgotten_test_files() {
    larder_testutil::assert_test_modules_declared(env!("CARGO_MANIFEST_DIR"));
}
