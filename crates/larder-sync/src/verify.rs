//! Verify: the sync status of two locations, without transferring anything.
//!
//! Every key is compared by content: size, then ETag (a local file's MD5, or its multipart
//! ETag recomputed with the part size the object was uploaded with), then, with a checksum
//! algorithm, the additional checksum. It works on data copied by other tools: a multipart
//! object's part size is found the way s3sync's `--auto-chunksize` does (the size of part 1).

use std::fmt;
use std::sync::Arc;

use futures::StreamExt;
use larder_store::integrity::ChecksumAlgorithm;
use larder_store::{Entry, Store};

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
    /// Only the source has the key.
    Missing,
    /// Only the destination has the key.
    Extra,
    /// The key could not be compared.
    Error(String),
}

impl Status {
    /// A short name: `match`, `size_mismatch`, `etag_mismatch`, `checksum_mismatch`,
    /// `missing`, `extra`, `error`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Match => "match",
            Status::SizeMismatch { .. } => "size_mismatch",
            Status::EtagMismatch { .. } => "etag_mismatch",
            Status::ChecksumMismatch { .. } => "checksum_mismatch",
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
            Status::Error(e) => write!(f, "error ({e})"),
            s => f.write_str(s.name()),
        }
    }
}

/// A callback for each key's [`Status`].
pub type StatusHandler = Arc<dyn Fn(&str, &Status) + Send + Sync>;

/// Options of [`verify`].
#[derive(Clone, Default)]
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
    /// Called with each key's status.
    pub on_status: Option<StatusHandler>,
}

impl fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("checksum", &self.checksum)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Counts of each status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Keys that match.
    pub matched: u64,
    /// Keys whose sizes differ.
    pub size_mismatch: u64,
    /// Keys whose ETags differ.
    pub etag_mismatch: u64,
    /// Keys whose checksums differ.
    pub checksum_mismatch: u64,
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
            + self.missing
            + self.extra
            + self.errors
            > 0
    }
}

async fn status_of(
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
                        let st = status_of(&insp, checksum, &s, &d).await;
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
