//! kache's v3 remote layout: where manifests and packs live, what a manifest says, and which
//! listed keys are accepted.
//!
//! ```text
//! {prefix}/v3/manifests/{namespace}/{cache_key}.json   small; the only thing listed
//! {prefix}/v3/packs/{namespace}/{cache_key}.tar.zst    zstd frame around a tar
//! ```

use serde::{Deserialize, Serialize};

/// kache's default prefix.
pub const DEFAULT_PREFIX: &str = "artifacts";

/// The manifest format version kache writes and reads.
pub const MANIFEST_VERSION: u32 = 3;

/// Is `s` a cache key of kache's shape: exactly 64 lowercase hex digits (a BLAKE3 digest)?
/// Keys from a listing go into local names and object keys: anything else is skipped, never
/// repaired.
pub fn is_valid_cache_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Is `s` a namespace of kache's shape: `[A-Za-z0-9_.-]`, 1 to 128 characters, no `..`?
pub fn is_valid_namespace(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.contains("..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The object keys of one bucket location's v3 tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// The layout under `prefix` (kache's default: [`DEFAULT_PREFIX`]); an empty prefix puts
    /// `v3/` at the top.
    pub fn new(prefix: &str) -> Self {
        Layout {
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    fn join(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    /// The prefix every manifest is under (ends with `/`).
    pub fn manifests(&self) -> String {
        self.join("v3/manifests/")
    }

    /// The prefix of one namespace's manifests (ends with `/`).
    pub fn namespace_manifests(&self, namespace: &str) -> String {
        self.join(&format!("v3/manifests/{namespace}/"))
    }

    /// The manifest's key.
    pub fn manifest_key(&self, namespace: &str, cache_key: &str) -> String {
        self.join(&format!("v3/manifests/{namespace}/{cache_key}.json"))
    }

    /// The pack's key.
    pub fn pack_key(&self, namespace: &str, cache_key: &str) -> String {
        self.join(&format!("v3/packs/{namespace}/{cache_key}.tar.zst"))
    }

    /// The namespace and cache key of a key listed under [`Layout::manifests`], when it has
    /// kache's shape; anything else (a stray object, a hostile name) is `None`.
    pub fn parse_manifest_key(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.manifests())?.strip_suffix(".json")?;
        let (namespace, cache_key) = rest.split_once('/')?;
        (is_valid_namespace(namespace) && is_valid_cache_key(cache_key))
            .then(|| (namespace.to_owned(), cache_key.to_owned()))
    }
}

/// The small JSON object written last, as the commit marker of a pack: kache's compact
/// `V3Manifest`, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_VERSION`].
    pub version: u32,
    /// The cache key.
    pub cache_key: String,
    /// The namespace (kache calls it the crate name).
    pub crate_name: String,
    /// The pack's object key in the bucket.
    pub pack_key: String,
    /// The pack's size.
    pub pack_bytes: u64,
    /// The unpacked size: the files plus `meta.json`.
    pub original_bytes: u64,
    /// The number of files (not counting `meta.json`).
    pub file_count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_kache() {
        let l = Layout::new("artifacts");
        let ck = "a".repeat(64);
        assert_eq!(
            l.manifest_key("serde", &ck),
            format!("artifacts/v3/manifests/serde/{ck}.json")
        );
        assert_eq!(
            l.pack_key("serde", &ck),
            format!("artifacts/v3/packs/serde/{ck}.tar.zst")
        );
        assert_eq!(Layout::new("").manifests(), "v3/manifests/");
        assert_eq!(Layout::new("/x/").manifests(), "x/v3/manifests/");
    }

    #[test]
    fn listing_accepts_only_kache_shapes() {
        let l = Layout::new("artifacts");
        let ck = "0123456789abcdef".repeat(4);
        let ok = format!("artifacts/v3/manifests/tokio_util/{ck}.json");
        assert_eq!(
            l.parse_manifest_key(&ok),
            Some(("tokio_util".to_owned(), ck.clone()))
        );
        for bad in [
            format!("artifacts/v3/manifests/tokio/{}.json", ck.to_uppercase()),
            format!("artifacts/v3/manifests/tokio/{}.json", &ck[1..]),
            format!("artifacts/v3/manifests/../{ck}.json"),
            format!("artifacts/v3/manifests/a..b/{ck}.json"),
            format!("artifacts/v3/manifests/a/b/{ck}.json"),
            format!("artifacts/v3/manifests/@s/{ck}.json"),
            format!("artifacts/v3/manifests/tokio/{ck}.json.tmp"),
            format!("artifacts/v3/packs/tokio/{ck}.tar.zst"),
        ] {
            assert_eq!(l.parse_manifest_key(&bad), None, "{bad}");
        }
    }

    #[test]
    fn namespaces() {
        assert!(is_valid_namespace("serde"));
        assert!(is_valid_namespace("babel__core"));
        assert!(is_valid_namespace(&"a".repeat(128)));
        for bad in ["", "a/b", "..", "a..b", "a b", "@x", "nul\0"] {
            assert!(!is_valid_namespace(bad), "{bad:?}");
        }
        assert!(!is_valid_namespace(&"a".repeat(129)));
    }

    #[test]
    fn manifest_json_is_kache_compact() {
        let m = Manifest {
            version: 3,
            cache_key: "k".into(),
            crate_name: "serde".into(),
            pack_key: "p".into(),
            pack_bytes: 1,
            original_bytes: 2,
            file_count: 1,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"version":3,"cache_key":"k","crate_name":"serde","pack_key":"p","pack_bytes":1,"original_bytes":2,"file_count":1}"#
        );
    }
}
