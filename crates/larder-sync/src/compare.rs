//! Compare: is the destination's copy of a key up to date?
//!
//! The modes (`--compare`):
//!
//! * `size-mtime` (default): same size, and the source's modification time equals the one the
//!   destination recorded (a local file's mtime; for an object, the `larder-mtime` metadata
//!   larder writes on upload) within [`SyncOptions::mtime_window`](crate::SyncOptions). The
//!   destination's own LastModified is never used: it is the upload time, not the data's.
//! * `size`: same size.
//! * `etag`: same size, and the destination's ETag equals the source's ETag, or the MD5 (or
//!   multipart ETag) of the local file.
//! * `checksum`: same size, and the additional checksum (`--checksum-algorithm`) of both sides
//!   is equal.
//!
//! Modes that need more than a listing gives ask an [`Inspector`] (which reads object metadata
//! through a cache, or hashes a local file) only when sizes already match.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use larder_store::integrity::ChecksumAlgorithm;
use larder_store::Entry;

/// How to decide that a key is up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompareMode {
    /// Size and source modification time (default).
    #[default]
    SizeMtime,
    /// Size only.
    Size,
    /// Size and ETag / MD5.
    Etag,
    /// Size and the additional checksum.
    Checksum,
}

impl std::str::FromStr for CompareMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "size-mtime" | "size_mtime" | "mtime" => Ok(CompareMode::SizeMtime),
            "size" => Ok(CompareMode::Size),
            "etag" => Ok(CompareMode::Etag),
            "checksum" => Ok(CompareMode::Checksum),
            _ => Err(format!(
                "unknown compare mode `{s}` (expected size-mtime, size, etag or checksum)"
            )),
        }
    }
}

impl fmt::Display for CompareMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompareMode::SizeMtime => "size-mtime",
            CompareMode::Size => "size",
            CompareMode::Etag => "etag",
            CompareMode::Checksum => "checksum",
        })
    }
}

/// Why a key is transferred or skipped: shown by dry-run and in events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The destination does not have it.
    Missing,
    /// Sizes differ.
    Size {
        /// Source size.
        src: u64,
        /// Destination size.
        dst: u64,
    },
    /// Modification times differ (or the destination has none recorded).
    Mtime,
    /// ETags / MD5s differ.
    Etag,
    /// Checksums differ (or one is unknown).
    Checksum,
    /// A custom comparator said so.
    Custom(String),
    /// Up to date under the compare mode.
    UpToDate,
    /// The destination has it and the source does not: deleted by `--delete`.
    Extra,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Missing => f.write_str("missing at destination"),
            Reason::Size { src, dst } => write!(f, "size differs ({src} vs {dst})"),
            Reason::Mtime => f.write_str("modification time differs"),
            Reason::Etag => f.write_str("etag differs"),
            Reason::Checksum => f.write_str("checksum differs"),
            Reason::Custom(s) => f.write_str(s),
            Reason::UpToDate => f.write_str("up to date"),
            Reason::Extra => f.write_str("not in source"),
        }
    }
}

/// What an inspector can tell about an entry beyond its listing.
#[async_trait]
pub trait Inspector: Send + Sync {
    /// The data's modification time: a local file's mtime, an object's recorded mtime.
    async fn mtime(&self, side: Side, entry: &Entry) -> Option<SystemTime>;
    /// The ETag the object has, or the one it would have if uploaded (MD5 or multipart ETag,
    /// with the part count of `like`'s ETag).
    async fn etag(&self, side: Side, entry: &Entry, like: Option<&str>) -> Option<String>;
    /// The additional checksum's value; one computed from local bytes takes the shape of
    /// `like` (composite with the same part count).
    async fn checksum(
        &self,
        side: Side,
        entry: &Entry,
        algorithm: ChecksumAlgorithm,
        like: Option<&str>,
    ) -> Option<String>;
    /// Whether `side` stores checksums (so its value is read, not computed).
    fn stores_checksums(&self, side: Side) -> bool;
}

/// Which side of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The source.
    Src,
    /// The destination.
    Dst,
}

/// A comparator from the library: `Some(reason)` to transfer, `None` to skip.
pub trait Comparator: Send + Sync + fmt::Debug {
    /// Compares a source and a destination entry with the same key.
    fn compare(&self, src: &Entry, dst: &Entry) -> Option<String>;
}

/// Decides whether `src` must be transferred over `dst`. `None`: up to date.
pub async fn compare(
    mode: CompareMode,
    custom: Option<&Arc<dyn Comparator>>,
    checksum: Option<ChecksumAlgorithm>,
    window: Duration,
    inspector: &dyn Inspector,
    src: &Entry,
    dst: &Entry,
) -> Option<Reason> {
    if let Some(c) = custom {
        return c.compare(src, dst).map(Reason::Custom);
    }
    if src.size != dst.size {
        return Some(Reason::Size {
            src: src.size,
            dst: dst.size,
        });
    }
    match mode {
        CompareMode::Size => None,
        CompareMode::SizeMtime => {
            let (a, b) = (
                inspector.mtime(Side::Src, src).await,
                inspector.mtime(Side::Dst, dst).await,
            );
            match (a, b) {
                (Some(a), Some(b)) if within(a, b, window) => None,
                _ => Some(Reason::Mtime),
            }
        }
        CompareMode::Etag => {
            let (s, d) = etags(inspector, src, dst).await;
            match (s, d) {
                (Some(s), Some(d)) if s == d => None,
                _ => Some(Reason::Etag),
            }
        }
        CompareMode::Checksum => {
            let Some(a) = checksum else {
                return Some(Reason::Checksum);
            };
            let (s, d) = checksums(inspector, a, src, dst).await;
            match (s, d) {
                (Some(s), Some(d)) if s == d => None,
                _ => Some(Reason::Checksum),
            }
        }
    }
}

/// Both sides' ETags, a local side's computed in the shape (part count, part size) of the
/// other's.
pub(crate) async fn etags(
    inspector: &dyn Inspector,
    src: &Entry,
    dst: &Entry,
) -> (Option<String>, Option<String>) {
    let d = inspector.etag(Side::Dst, dst, src.etag.as_deref()).await;
    let s = inspector.etag(Side::Src, src, d.as_deref()).await;
    (s, d)
}

/// Both sides' checksums: the stored one read first, the other computed in its shape
/// (composite with the same part count where it is).
pub(crate) async fn checksums(
    inspector: &dyn Inspector,
    algorithm: ChecksumAlgorithm,
    src: &Entry,
    dst: &Entry,
) -> (Option<String>, Option<String>) {
    if inspector.stores_checksums(Side::Src) {
        let s = inspector.checksum(Side::Src, src, algorithm, None).await;
        let d = inspector
            .checksum(Side::Dst, dst, algorithm, s.as_deref())
            .await;
        (s, d)
    } else {
        let d = inspector.checksum(Side::Dst, dst, algorithm, None).await;
        let s = inspector
            .checksum(Side::Src, src, algorithm, d.as_deref())
            .await;
        (s, d)
    }
}

fn within(a: SystemTime, b: SystemTime, window: Duration) -> bool {
    let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
    d <= window
}
