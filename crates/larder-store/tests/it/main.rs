//! Integration tests of larder-store: the conformance suite on every backend, then what is
//! particular to each backend. One binary (matklad, "Delete Cargo Integration Tests").

mod local;
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

mod conformance_s3 {
    use super::*;
    async fn fixture() -> Fixture {
        let store = s3::store_with(s3::small_parts()).await;
        Fixture::new(Arc::new(store), s3::PART)
    }
    larder_store::conformance_suite!(fixture);
}

/// Every test module is declared (a forgotten file would silently not run).
#[test]
fn no_forgotten_test_files() {
    larder_testutil::assert_test_modules_declared(env!("CARGO_MANIFEST_DIR"));
}
