//! The local side: which artifacts a cache directory holds, each with its namespace and
//! cache key.
//!
//! Two kinds of entries become artifacts:
//!
//! * **A cache entry** (an npm tarball or packument, anything `larder cache put` stored): one
//!   artifact whose cache key is the BLAKE3 of its key and integrity ([`entry_cache_key`]),
//!   so one entry has one cache key on every machine. Its namespace is the npm package name
//!   for npm's keys ([`npm_package_of_key`], [`namespace_of_package`]), else the entry's
//!   `namespace` metadata, else the `--namespace` given.
//! * **A kache entry pulled from a bucket** (several files plus `meta.json`): one cache entry
//!   per file under `kache:{namespace}/{cache_key}/{file name}`, and the `meta.json` bytes,
//!   verbatim, under `kache:{namespace}/{cache_key}/meta.json`, written last, so its presence
//!   means the group is whole. The group is one artifact; pushing it rebuilds a pack kache
//!   accepts.

use std::collections::BTreeMap;

use larder_cache::{Cache, Entry};

use crate::layout::{is_valid_cache_key, is_valid_namespace};

/// The prefix of npm's (make-fetch-happen's) cache keys.
pub const NPM_KEY_PREFIX: &str = "make-fetch-happen:request-cache:";

/// The prefix of the cache keys of kache entries' files.
pub const GROUP_KEY_PREFIX: &str = "kache:";

/// The cache key of a group's file.
pub fn group_key(namespace: &str, cache_key: &str, name: &str) -> String {
    format!("{GROUP_KEY_PREFIX}{namespace}/{cache_key}/{name}")
}

/// The cache key (64 hex digits) that stands for one cache entry in a bucket.
pub fn entry_cache_key(key: &str, integrity: &str) -> String {
    let mut h = blake3::Hasher::new();
    h.update(b"larder-cache-entry\0");
    // Length-prefixed, so no two (key, integrity) pairs hash the same bytes.
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    h.update(integrity.as_bytes());
    h.finalize().to_hex().to_string()
}

/// The npm package an npm cache key belongs to, from the registry URL in it: tarballs
/// (`…/name/-/name-1.0.0.tgz`, `…/@scope/name/-/name-1.0.0.tgz`) and packuments (`…/name`,
/// `…/@scope%2fname`, `…/@scope/name`), under any registry path.
pub fn npm_package_of_key(key: &str) -> Option<String> {
    let url = key.strip_prefix(NPM_KEY_PREFIX)?;
    let after_scheme = url.split_once("://")?.1;
    let path = after_scheme.split_once('/')?.1;
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let segs: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
    let name_end = segs.iter().position(|s| *s == "-").unwrap_or(segs.len());
    let name = match name_end {
        0 => return None,
        1 => segs[0].to_owned(),
        n if segs[n - 2].starts_with('@') => format!("{}/{}", segs[n - 2], segs[n - 1]),
        n => segs[n - 1].to_owned(),
    };
    (!name.starts_with('@') || name.contains('/')).then_some(name)
}

/// The npm package of pacote's own tarball keys (`pacote:tarball:name@1.0.0`,
/// `pacote:tarball:@scope/name@1.0.0`).
pub fn pacote_package_of_key(key: &str) -> Option<String> {
    let spec = key.strip_prefix("pacote:tarball:")?;
    let at = match spec.strip_prefix('@') {
        Some(rest) => rest.find('@')? + 1,
        None => spec.find('@')?,
    };
    (at > 0).then(|| spec[..at].to_owned())
}

/// The namespace of an npm package: its name, with a scoped `@scope/name` flattened to
/// `scope__name` (DefinitelyTyped's convention), so it fits kache's `[A-Za-z0-9_.-]`. A name
/// that still does not fit (old names with other characters) has none.
pub fn namespace_of_package(name: &str) -> Option<String> {
    let ns = match name.strip_prefix('@') {
        Some(scoped) => {
            let (scope, pkg) = scoped.split_once('/')?;
            format!("{scope}__{pkg}")
        }
        None => name.to_owned(),
    };
    is_valid_namespace(&ns).then_some(ns)
}

/// Where an artifact's bytes are in the cache.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// One cache entry.
    Entry(Entry),
    /// A kache entry: `kache:{namespace}/{cache_key}/…`.
    Group,
}

/// One artifact of the local cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Its namespace.
    pub namespace: String,
    /// Its cache key.
    pub cache_key: String,
    /// Where its bytes are.
    pub source: Source,
}

/// What a cache holds, by cache key.
#[derive(Debug, Default)]
pub struct Scan {
    /// The artifacts, by cache key.
    pub artifacts: BTreeMap<String, Artifact>,
    /// Entries with no namespace (not npm's, no `namespace` metadata, no default given):
    /// never pushed.
    pub without_namespace: u64,
}

/// The namespace of a cache entry that is not a group's file.
pub fn namespace_of_entry(e: &Entry, default: Option<&str>) -> Option<String> {
    if let Some(pkg) = npm_package_of_key(&e.key).or_else(|| pacote_package_of_key(&e.key)) {
        return namespace_of_package(&pkg);
    }
    let from_meta = e
        .metadata
        .as_ref()
        .and_then(|m| m.get("namespace"))
        .and_then(|n| n.as_str())
        .filter(|n| is_valid_namespace(n));
    from_meta.or(default).map(str::to_owned)
}

/// Parses a group file's key into (namespace, cache key, file name).
pub fn parse_group_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(GROUP_KEY_PREFIX)?;
    let (namespace, rest) = rest.split_once('/')?;
    let (cache_key, name) = rest.split_once('/')?;
    (is_valid_namespace(namespace) && is_valid_cache_key(cache_key) && !name.is_empty())
        .then_some((namespace, cache_key, name))
}

/// Reads the cache's index into its artifacts.
///
/// # Errors
///
/// When the index cannot be read.
pub fn scan(cache: &Cache, default_namespace: Option<&str>) -> larder_cache::Result<Scan> {
    let mut out = Scan::default();
    for e in cache.ls()? {
        if e.key.starts_with(GROUP_KEY_PREFIX) {
            if let Some((namespace, cache_key, "meta.json")) = parse_group_key(&e.key) {
                out.artifacts.insert(
                    cache_key.to_owned(),
                    Artifact {
                        namespace: namespace.to_owned(),
                        cache_key: cache_key.to_owned(),
                        source: Source::Group,
                    },
                );
            }
            continue;
        }
        let Some(namespace) = namespace_of_entry(&e, default_namespace) else {
            out.without_namespace += 1;
            continue;
        };
        let cache_key = entry_cache_key(&e.key, &e.integrity.to_string());
        out.artifacts.insert(
            cache_key.clone(),
            Artifact {
                namespace,
                cache_key,
                source: Source::Entry(e),
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(url: &str) -> Option<String> {
        npm_package_of_key(&format!("{NPM_KEY_PREFIX}{url}"))
    }

    #[test]
    fn npm_packages_from_registry_urls() {
        let r = "https://registry.npmjs.org";
        assert_eq!(
            pkg(&format!("{r}/lodash/-/lodash-4.17.21.tgz")).as_deref(),
            Some("lodash")
        );
        assert_eq!(pkg(&format!("{r}/lodash")).as_deref(), Some("lodash"));
        assert_eq!(
            pkg(&format!("{r}/@babel/core/-/core-7.1.0.tgz")).as_deref(),
            Some("@babel/core")
        );
        assert_eq!(
            pkg(&format!("{r}/@babel%2fcore")).as_deref(),
            Some("@babel/core")
        );
        assert_eq!(
            pkg(&format!("{r}/@babel%2Fcore")).as_deref(),
            Some("@babel/core")
        );
        assert_eq!(
            pkg("https://npm.example.com/repository/npm/left-pad/-/left-pad-1.3.0.tgz").as_deref(),
            Some("left-pad")
        );
        assert_eq!(
            pkg("http://127.0.0.1:4873/ms?write=true").as_deref(),
            Some("ms")
        );
        assert_eq!(pkg("https://registry.npmjs.org/"), None);
        assert_eq!(pkg("https://registry.npmjs.org/@scope"), None);
        assert_eq!(npm_package_of_key("other:https://x/y"), None);
    }

    #[test]
    fn pacote_tarball_keys() {
        assert_eq!(
            pacote_package_of_key("pacote:tarball:ms@2.1.3").as_deref(),
            Some("ms")
        );
        assert_eq!(
            pacote_package_of_key("pacote:tarball:@isaacs/x@1.1.0").as_deref(),
            Some("@isaacs/x")
        );
        assert_eq!(
            pacote_package_of_key("pacote:tarball:a@https://h/a@b.tgz").as_deref(),
            Some("a")
        );
        assert_eq!(pacote_package_of_key("pacote:tarball:@x"), None);
        assert_eq!(pacote_package_of_key("pacote:packument:ms"), None);
    }

    #[test]
    fn namespaces_of_packages() {
        assert_eq!(namespace_of_package("lodash").as_deref(), Some("lodash"));
        assert_eq!(
            namespace_of_package("@babel/core").as_deref(),
            Some("babel__core")
        );
        assert_eq!(
            namespace_of_package("JSONStream").as_deref(),
            Some("JSONStream")
        );
        assert_eq!(namespace_of_package("weird!name"), None);
        assert_eq!(namespace_of_package("@noslash"), None);
    }

    #[test]
    fn namespaces_of_other_entries_come_from_metadata_or_the_default() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let with = |metadata| larder_cache::WriteOptions::default().with_metadata(metadata);
        cache
            .put_with(
                "a",
                b"1",
                with(Some(serde_json::json!({"namespace": "tools"}))),
            )
            .unwrap();
        cache
            .put_with(
                "b",
                b"2",
                with(Some(serde_json::json!({"namespace": "../x"}))),
            )
            .unwrap();
        cache.put("c", b"3").unwrap();
        let ns = |default| {
            let scan = scan(&cache, default).unwrap();
            let mut v: Vec<String> = scan
                .artifacts
                .values()
                .map(|a| a.namespace.clone())
                .collect();
            v.sort();
            (v, scan.without_namespace)
        };
        assert_eq!(ns(None), (vec!["tools".to_owned()], 2));
        assert_eq!(
            ns(Some("misc")),
            (
                vec!["misc".to_owned(), "misc".to_owned(), "tools".to_owned()],
                0
            )
        );
    }

    #[test]
    fn entry_cache_keys_are_kache_shaped_and_stable() {
        let a = entry_cache_key("k", "sha512-x");
        assert!(is_valid_cache_key(&a));
        assert_eq!(a, entry_cache_key("k", "sha512-x"));
        assert_ne!(a, entry_cache_key("k", "sha512-y"));
        assert_ne!(entry_cache_key("a\0b", "c"), entry_cache_key("a", "b\0c"));
    }

    #[test]
    fn group_keys_round_trip() {
        let ck = "ab".repeat(32);
        let k = group_key("serde", &ck, "libserde.rlib");
        assert_eq!(
            parse_group_key(&k),
            Some(("serde", ck.as_str(), "libserde.rlib"))
        );
        assert_eq!(parse_group_key("kache:serde/short/x"), None);
    }
}
