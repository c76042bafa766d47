//! Integration tests of the cache: the API, corruption, concurrency, and interop with npm's
//! cacache (through Node) and the `cacache` crate.

mod api;
mod interop;
mod store;

#[test]
fn no_forgotten_test_files() {
    larder_testutil::assert_test_modules_declared(env!("CARGO_MANIFEST_DIR"));
}
