//! `meta.json`, the first member of every pack: kache's `EntryMeta`, plus larder's own
//! cache-entry fields in an extra `larder` object that kache ignores.

use serde::{Deserialize, Serialize};

/// One file of a pack, as kache's `CachedFile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFile {
    /// The file's name in the pack (relative, no `..`).
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Its BLAKE3 digest, hex.
    pub hash: String,
    /// Whether it was executable.
    #[serde(default)]
    pub executable: bool,
}

/// The cache entry a larder-written pack carries: enough to recreate the npm-compatible
/// index entry exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LarderEntry {
    /// The cache key (`make-fetch-happen:request-cache:<url>` for npm).
    pub key: String,
    /// The content's integrity (`sha512-…`); checked on import.
    pub integrity: String,
    /// The entry's metadata, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// When the entry was written, in milliseconds since the epoch.
    pub time: u64,
}

/// kache's `EntryMeta`. Fields kache requires are always written; a kache-written
/// `meta.json` is also kept verbatim (see the crate docs), so fields this struct does not
/// know survive a round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The cache key.
    pub cache_key: String,
    /// kache's cache-key recipe version (0: unknown).
    #[serde(default)]
    pub key_schema: u32,
    /// The namespace.
    pub crate_name: String,
    /// kache: the crate types.
    #[serde(default)]
    pub crate_types: Vec<String>,
    /// The files.
    pub files: Vec<CachedFile>,
    /// kache: the compiler's standard output.
    #[serde(default)]
    pub stdout: String,
    /// kache: the compiler's standard error.
    #[serde(default)]
    pub stderr: String,
    /// kache: features.
    #[serde(default)]
    pub features: Vec<String>,
    /// kache: the target.
    #[serde(default)]
    pub target: String,
    /// kache: the profile.
    #[serde(default)]
    pub profile: String,
    /// kache: compile time.
    #[serde(default)]
    pub compile_time_ms: u64,
    /// kache: emitted kinds.
    #[serde(default)]
    pub emit_kinds: Vec<String>,
    /// larder's cache entry, in packs larder wrote from a cache entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub larder: Option<LarderEntry>,
}

impl EntryMeta {
    /// The `meta.json` of one cache entry's pack.
    pub fn for_entry(
        namespace: &str,
        cache_key: &str,
        file: CachedFile,
        entry: LarderEntry,
    ) -> Self {
        EntryMeta {
            cache_key: cache_key.to_owned(),
            key_schema: 0,
            crate_name: namespace.to_owned(),
            crate_types: Vec::new(),
            files: vec![file],
            stdout: String::new(),
            stderr: String::new(),
            features: Vec::new(),
            target: String::new(),
            profile: String::new(),
            compile_time_ms: 0,
            emit_kinds: Vec::new(),
            larder: Some(entry),
        }
    }
}
