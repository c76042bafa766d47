//! Verify: the sync status of two locations, without transferring anything.
//!
//! Every key is compared by content: size, then ETag (a local file's MD5, or its multipart
//! ETag recomputed with the part size the object was uploaded with), then, with a checksum
//! algorithm, the additional checksum. It works on data copied by other tools: a multipart
//! object's part size is found the way s3sync's `--auto-chunksize` does (the size of part 1).
//!
//! Asked to ([`VerifyOptions::metadata`], [`VerifyOptions::tagging`]), a key whose bytes
//! match has its system and user metadata (one HEAD per side) and its tags (one request per
//! side) compared too.
//!
//! ```
//! use std::sync::Arc;
//! use larder_store::{Body, Key, MemoryStore, PutOptions, Store};
//! use larder_sync::{verify, Status, VerifyOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let (a, b) = (Arc::new(MemoryStore::new()), Arc::new(MemoryStore::new()));
//! a.put(&Key::new("k").unwrap(), Body::from_bytes("x"), PutOptions::default()).await.unwrap();
//! let on_status = Arc::new(|key: &str, st: &Status| println!("{st} {key}"));
//! let report = verify(a, b, VerifyOptions::default().with_on_status(Some(on_status))).await;
//! assert_eq!(report.missing, 1);
//! assert!(report.differs());
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use larder_store::integrity::ChecksumAlgorithm;
use larder_store::{Entry, ObjectMeta, Store};

use crate::compare::Side;
use crate::filter::encode_tags;
use crate::inspect::StoreInspector;
use crate::{march, Filters, MarchItem, Pair};

/// The status of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Same size, ETag (and checksum, when asked).
    Match,
    /// Sizes differ.
    SizeMismatch {
        /// Source size.
        src: u64,
        /// Destination size.
        dst: u64,
    },
    /// ETags differ.
    EtagMismatch {
        /// Source ETag (or MD5).
        src: Option<String>,
        /// Destination ETag.
        dst: Option<String>,
    },
    /// Additional checksums differ.
    ChecksumMismatch {
        /// Source value.
        src: Option<String>,
        /// Destination value.
        dst: Option<String>,
    },
    /// The bytes match, the metadata does not: the first field that differs
    /// (`content-type`, `cache-control`, …, `x-amz-meta-NAME`).
    MetadataMismatch {
        /// The field.
        field: String,
        /// Its source value.
        src: Option<String>,
        /// Its destination value.
        dst: Option<String>,
    },
    /// The bytes match, the tags do not (each side's `k=v&…`, URL-encoded).
    TaggingMismatch {
        /// Source tags.
        src: String,
        /// Destination tags.
        dst: String,
    },
    /// Only the source has the key.
    Missing,
    /// Only the destination has the key.
    Extra,
    /// The key could not be compared.
    Error(String),
}

impl Status {
    /// A short name: `match`, `size_mismatch`, `etag_mismatch`, `checksum_mismatch`,
    /// `metadata_mismatch`, `tagging_mismatch`, `missing`, `extra`, `error`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Match => "match",
            Status::SizeMismatch { .. } => "size_mismatch",
            Status::EtagMismatch { .. } => "etag_mismatch",
            Status::ChecksumMismatch { .. } => "checksum_mismatch",
            Status::MetadataMismatch { .. } => "metadata_mismatch",
            Status::TaggingMismatch { .. } => "tagging_mismatch",
            Status::Missing => "missing",
            Status::Extra => "extra",
            Status::Error(_) => "error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_owned());
        match self {
            Status::SizeMismatch { src, dst } => write!(f, "size_mismatch ({src} vs {dst})"),
            Status::EtagMismatch { src, dst } => {
                write!(f, "etag_mismatch ({} vs {})", o(src), o(dst))
            }
            Status::ChecksumMismatch { src, dst } => {
                write!(f, "checksum_mismatch ({} vs {})", o(src), o(dst))
            }
            Status::MetadataMismatch { field, src, dst } => {
                write!(f, "metadata_mismatch ({field}: {} vs {})", o(src), o(dst))
            }
            Status::TaggingMismatch { src, dst } => {
                write!(f, "tagging_mismatch ({src:?} vs {dst:?})")
            }
            Status::Error(e) => write!(f, "error ({e})"),
            s => f.write_str(s.name()),
        }
    }
}

/// A callback for each key's [`Status`].
pub type StatusHandler = Arc<dyn Fn(&str, &Status) + Send + Sync>;

/// Options of [`verify`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Also compare this additional checksum.
    pub checksum: Option<ChecksumAlgorithm>,
    /// Which keys to consider.
    pub filters: Filters,
    /// Keys compared at once (default 16 when 0).
    pub concurrency: usize,
    /// The part size larder uploads with, tried first for multipart ETags (default 8 MiB
    /// when 0).
    pub part_size: u64,
    /// Also compare system and user metadata of keys whose bytes match (s3sync's
    /// `--report-metadata-sync-status`): one HEAD per side.
    pub metadata: bool,
    /// Also compare tags of keys whose bytes match (`--report-tagging-sync-status`): one
    /// request per side.
    pub tagging: bool,
    /// Called with each key's status.
    pub on_status: Option<StatusHandler>,
}

larder_store::with_setters!(VerifyOptions {
    with_checksum => checksum: Option<ChecksumAlgorithm>,
    with_filters => filters: Filters,
    with_concurrency => concurrency: usize,
    with_part_size => part_size: u64,
    with_metadata => metadata: bool,
    with_tagging => tagging: bool,
    with_on_status => on_status: Option<StatusHandler>,
});

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("checksum", &self.checksum)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Counts of each status.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Keys that match.
    #[serde(rename = "match")]
    pub matched: u64,
    /// Keys whose sizes differ.
    pub size_mismatch: u64,
    /// Keys whose ETags differ.
    pub etag_mismatch: u64,
    /// Keys whose checksums differ.
    pub checksum_mismatch: u64,
    /// Keys whose bytes match and metadata does not ([`VerifyOptions::metadata`]).
    pub metadata_mismatch: u64,
    /// Keys whose bytes match and tags do not ([`VerifyOptions::tagging`]).
    pub tagging_mismatch: u64,
    /// Keys only in the source.
    pub missing: u64,
    /// Keys only in the destination.
    pub extra: u64,
    /// Keys that could not be compared.
    pub errors: u64,
    /// Keys whose ETag was compared and matched.
    pub etag_matches: u64,
    /// Keys whose checksum was compared and matched.
    pub checksum_matches: u64,
}

impl VerifyReport {
    /// Whether anything differs or failed.
    pub fn differs(&self) -> bool {
        self.size_mismatch
            + self.etag_mismatch
            + self.checksum_mismatch
            + self.metadata_mismatch
            + self.tagging_mismatch
            + self.missing
            + self.extra
            + self.errors
            > 0
    }
}

/// What [`status_of`] compares besides size and ETag.
#[derive(Debug, Clone, Copy)]
struct Compare {
    checksum: Option<ChecksumAlgorithm>,
    metadata: bool,
    tagging: bool,
}

async fn status_of(insp: &StoreInspector, c: Compare, s: &Entry, d: &Entry) -> Status {
    match content_status(insp, c.checksum, s, d).await {
        Status::Match => {}
        other => return other,
    }
    let (src, dst) = (insp.store(Side::Src), insp.store(Side::Dst));
    if c.metadata {
        let heads = futures::future::try_join(src.head(&s.key), dst.head(&d.key)).await;
        match heads {
            Ok((Some(sm), Some(dm))) => {
                if let Some((field, src, dst)) = metadata_difference(&sm, &dm) {
                    return Status::MetadataMismatch { field, src, dst };
                }
            }
            Ok(_) => return Status::Error(format!("{}: deleted while compared", s.key)),
            Err(e) => return Status::Error(e.to_string()),
        }
    }
    if c.tagging {
        match futures::future::try_join(src.tags(&s.key), dst.tags(&d.key)).await {
            Ok((st, dt)) => {
                let (st, dt) = (st.unwrap_or_default(), dt.unwrap_or_default());
                if st != dt {
                    return Status::TaggingMismatch {
                        src: encode_tags(&st),
                        dst: encode_tags(&dt),
                    };
                }
            }
            Err(e) => return Status::Error(e.to_string()),
        }
    }
    Status::Match
}

/// The first field of system or user metadata that differs: its name and both values.
pub fn metadata_difference(
    s: &ObjectMeta,
    d: &ObjectMeta,
) -> Option<(String, Option<String>, Option<String>)> {
    let (sh, dh) = (&s.headers, &d.headers);
    let system = [
        ("content-type", &s.content_type, &d.content_type),
        ("cache-control", &s.cache_control, &d.cache_control),
        (
            "content-encoding",
            &sh.content_encoding,
            &dh.content_encoding,
        ),
        (
            "content-disposition",
            &sh.content_disposition,
            &dh.content_disposition,
        ),
        (
            "content-language",
            &sh.content_language,
            &dh.content_language,
        ),
        ("expires", &sh.expires, &dh.expires),
        (
            "website-redirect-location",
            &sh.website_redirect,
            &dh.website_redirect,
        ),
    ];
    for (name, a, b) in system {
        if a != b {
            return Some((name.to_owned(), a.clone(), b.clone()));
        }
    }
    let names: std::collections::BTreeSet<&String> =
        s.metadata.keys().chain(d.metadata.keys()).collect();
    names.into_iter().find_map(|k| {
        let (a, b) = (s.metadata.get(k), d.metadata.get(k));
        (a != b).then(|| (format!("x-amz-meta-{k}"), a.cloned(), b.cloned()))
    })
}

async fn content_status(
    insp: &StoreInspector,
    checksum: Option<ChecksumAlgorithm>,
    s: &Entry,
    d: &Entry,
) -> Status {
    if s.size != d.size {
        return Status::SizeMismatch {
            src: s.size,
            dst: d.size,
        };
    }
    let (se, de) = crate::compare::etags(insp, s, d).await;
    if se.is_none() || se != de {
        return Status::EtagMismatch { src: se, dst: de };
    }
    if let Some(a) = checksum {
        let (sc, dc) = crate::compare::checksums(insp, a, s, d).await;
        if sc.is_none() || sc != dc {
            return Status::ChecksumMismatch { src: sc, dst: dc };
        }
    }
    Status::Match
}

/// Compares `src` and `dst` key by key. See the module docs.
pub async fn verify(src: Arc<dyn Store>, dst: Arc<dyn Store>, opts: VerifyOptions) -> VerifyReport {
    let part_size = if opts.part_size == 0 {
        8 << 20
    } else {
        opts.part_size
    };
    let insp = Arc::new(StoreInspector::new(
        src.clone(),
        dst.clone(),
        None,
        part_size,
    ));
    let checksum = opts.checksum;
    let compare = Compare {
        checksum,
        metadata: opts.metadata,
        tagging: opts.tagging,
    };
    let filters = opts.filters.clone();
    let statuses = march(src.list(""), dst.list(""))
        .filter_map(move |item| {
            let keep = match &item {
                MarchItem::Pair(Pair::SrcOnly(e) | Pair::Both(e, _)) => filters.keeps(e),
                MarchItem::Pair(Pair::DstOnly(e)) => filters.keeps_key(e.key.as_str()),
                _ => true,
            };
            async move { keep.then_some(item) }
        })
        .map(|item| {
            let insp = insp.clone();
            async move {
                match item {
                    MarchItem::SrcError(e) | MarchItem::DstError(e) => {
                        (e.location().to_owned(), Status::Error(e.to_string()))
                    }
                    MarchItem::Pair(Pair::SrcOnly(e)) => (e.key.into_string(), Status::Missing),
                    MarchItem::Pair(Pair::DstOnly(e)) => (e.key.into_string(), Status::Extra),
                    MarchItem::Pair(Pair::Both(s, d)) => {
                        let st = status_of(&insp, compare, &s, &d).await;
                        (s.key.into_string(), st)
                    }
                }
            }
        })
        .buffered(if opts.concurrency == 0 {
            16
        } else {
            opts.concurrency
        });
    futures::pin_mut!(statuses);
    let mut r = VerifyReport::default();
    while let Some((key, st)) = statuses.next().await {
        match &st {
            Status::Match => {
                r.matched += 1;
                r.etag_matches += 1;
                r.checksum_matches += checksum.is_some() as u64;
            }
            Status::SizeMismatch { .. } => r.size_mismatch += 1,
            Status::EtagMismatch { .. } => r.etag_mismatch += 1,
            Status::ChecksumMismatch { .. } => {
                r.checksum_mismatch += 1;
                r.etag_matches += 1;
            }
            Status::MetadataMismatch { .. } => {
                r.metadata_mismatch += 1;
                r.etag_matches += 1;
            }
            Status::TaggingMismatch { .. } => {
                r.tagging_mismatch += 1;
                r.etag_matches += 1;
            }
            Status::Missing => r.missing += 1,
            Status::Extra => r.extra += 1,
            Status::Error(_) => r.errors += 1,
        }
        if let Some(f) = &opts.on_status {
            f(&key, &st);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            key: larder_store::Key::new("k").unwrap(),
            size: 1,
            last_modified: None,
            etag: None,
            content_type: Some("text/plain".into()),
            cache_control: None,
            metadata: [("a".to_owned(), "1".to_owned())].into(),
            mtime: None,
            checksum: None,
            storage_class: None,
            headers: Default::default(),
            tag_count: None,
            encryption: None,
        }
    }

    #[test]
    fn the_first_metadata_difference_is_named() {
        let (s, mut d) = (meta(), meta());
        assert_eq!(metadata_difference(&s, &d), None);
        d.headers.content_language = Some("fr".into());
        d.metadata.insert("b".into(), "2".into());
        assert_eq!(
            metadata_difference(&s, &d),
            Some(("content-language".into(), None, Some("fr".into())))
        );
        d.headers.content_language = None;
        assert_eq!(
            metadata_difference(&s, &d),
            Some(("x-amz-meta-b".into(), None, Some("2".into())))
        );
        // larder's own entries (the recorded mtime) are not user metadata.
        d.metadata.remove("b");
        d.mtime = Some(std::time::SystemTime::UNIX_EPOCH);
        assert_eq!(metadata_difference(&s, &d), None);
    }
}
