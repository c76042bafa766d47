//! Integration tests of larder-store: the conformance suite on every backend, then what is
//! particular to each backend. One binary (matklad, "Delete Cargo Integration Tests").

mod local;
mod rgw;
mod s3;

use std::sync::Arc;

use larder_store::conformance::Fixture;
use larder_store::{LocalStore, MemoryStore};

/// Multipart ETags past 64 KiB, so the suite's multipart case stays small.
const MEMORY_PART: usize = 64 << 10;

mod conformance_memory {
    use super::*;
    async fn fixture() -> Fixture {
        Fixture::new(
            Arc::new(MemoryStore::with_part_size(MEMORY_PART as u64)),
            MEMORY_PART,
        )
    }
    larder_store::conformance_suite!(fixture);
}

mod conformance_local {
    use super::*;
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = LocalStore::new(dir.path().join("root"));
        Fixture::new(Arc::new(store), 1 << 20).with_guard(dir)
    }
    larder_store::conformance_suite!(fixture);
}

/// Garage, with what it implements detected as the CLI does (no tags, versions or
/// conditional writes: those cases check nothing here and run on radosgw).
mod conformance_s3 {
    use super::*;
    async fn fixture() -> Fixture {
        let store = s3::store_with(s3::small_parts()).await;
        store.detect_features().await.expect("features");
        Fixture::new(Arc::new(store), s3::PART)
    }
    larder_store::conformance_suite!(fixture);
}

/// radosgw (Ceph): the whole suite, tags and conditional writes included.
mod conformance_s3_rgw {
    use super::*;
    async fn fixture() -> Fixture {
        let store = larder_testutil::rgw_store(rgw_options(), None).await;
        let found = store.detect_features().await.expect("features");
        assert!(found.tagging && found.conditional_writes, "{found:?}");
        Fixture::new(Arc::new(store), s3::PART)
    }
    larder_store::conformance_suite!(fixture);
}

/// Options for the radosgw test server: small parts, and no additional checksums (Ceph 16,
/// Debian's, ignores them).
pub fn rgw_options() -> larder_store::S3Options {
    let mut o = s3::small_parts();
    o.features.checksums = false;
    o
}

/// Every test module is declared (a forgotten file would silently not run).
#[test]
fn no_forgotten_test_files() {
    larder_testutil::assert_test_modules_declared(env!("CARGO_MANIFEST_DIR"));
}
