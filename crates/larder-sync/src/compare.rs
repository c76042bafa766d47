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
//!
//! # Adoption
//!
//! In `size-mtime` mode a key whose mtimes are not both known without a request (an object
//! another tool wrote, so larder recorded no mtime for it), or differ, is first decided by
//! content when that costs no request: the listing carries each object's ETag, so a local
//! file is hashed (MD5, or the multipart ETag with the part size tried from the likely ones)
//! and compared; two objects compare their ETags. Same content: the key is skipped as
//! [`Reason::Adopted`] and the match is recorded in the metadata cache, so the next run needs
//! neither a hash nor a request. Different content: transferred. Only when content cannot
//! decide (ETags that are not MD5-based, multipart layouts that cannot be recomputed) are the
//! recorded mtimes read with a HEAD, including the ones rclone, s3cmd, s5cmd and mc store.
//! A local file larger than [`HASH_BEFORE_HEAD_MAX`] whose object's mtime is not cached is
//! looked at with one HEAD before it is read whole.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use larder_store::integrity::{etag_part_count, normalize_etag, ChecksumAlgorithm};
use larder_store::Entry;

/// How to decide that a key is up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
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

/// Above this size a local file is not hashed to adopt an object before one HEAD has shown
/// that the object's recorded mtime does not already match (a HEAD is cheaper than reading
/// the file).
pub const HASH_BEFORE_HEAD_MAX: u64 = 64 << 20;

/// How a key with no usable recorded mtime was found to hold the right content already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adoption {
    /// The local file's MD5 equals the object's ETag.
    Md5,
    /// The local file's multipart ETag, recomputed with the object's part size, equals it.
    MultipartEtag,
    /// Both objects have the same MD5-based ETag.
    SameEtag,
}

impl fmt::Display for Adoption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Adoption::Md5 => "the file's MD5 equals the object's ETag",
            Adoption::MultipartEtag => "the file's multipart ETag equals the object's",
            Adoption::SameEtag => "both objects have the same ETag",
        })
    }
}

/// The outcome of comparing one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave the destination alone ([`Reason::UpToDate`] or [`Reason::Adopted`]).
    Skip(Reason),
    /// Transfer, for this reason.
    Transfer(Reason),
}

/// Why a key is transferred or skipped: shown by dry-run and in events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Same content, found without a recorded mtime (another tool wrote it): skipped, and
    /// remembered so the next run decides from the metadata cache.
    Adopted(Adoption),
    /// The destination has it and the source does not: deleted by `--delete`.
    Extra,
    /// The source object is in an archive tier (its storage class): its body cannot be read
    /// before a restore, so it is skipped and reported, not failed.
    Archived(String),
    /// A write's precondition (`--if-none-match`, `--if-match`) does not hold: the
    /// destination is left as it is, and the run ends with a warning.
    Precondition(String),
    /// A version of the source object the destination does not have yet (a versioned sync,
    /// `--enable-versioning`): its version id.
    Version(String),
    /// The source's latest version is a delete marker: deleted at the destination too.
    DeleteMarker,
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
            Reason::Adopted(how) => write!(f, "adopted: same content, {how}"),
            Reason::Extra => f.write_str("not in source"),
            Reason::Precondition(why) => write!(f, "left as it is: {why}"),
            Reason::Version(id) => write!(f, "version {id} not yet synced"),
            Reason::DeleteMarker => f.write_str("deleted at the source (delete marker)"),
            Reason::Archived(class) => {
                write!(f, "archived ({class}): restore it before it can be read")
            }
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
    /// The data's modification time when it is known without a request (a local file's, or
    /// one the metadata cache holds for this version of the object); `None` otherwise.
    async fn known_mtime(&self, side: Side, entry: &Entry) -> Option<SystemTime>;
    /// Whether `side`'s ETags are MD5-based, so content can be compared through them.
    fn etag_md5(&self, side: Side) -> bool;
    /// Called when `src` and `dst` were found to hold the same content without a usable
    /// recorded mtime: remember it (the source's mtime is `src_mtime`), so the next
    /// comparison of the same versions is decided from recorded state.
    fn adopted(&self, src: &Entry, dst: &Entry, src_mtime: Option<SystemTime>);
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

/// Decides whether `src` must be transferred over `dst`.
pub async fn compare(
    mode: CompareMode,
    custom: Option<&Arc<dyn Comparator>>,
    checksum: Option<ChecksumAlgorithm>,
    window: Duration,
    inspector: &dyn Inspector,
    src: &Entry,
    dst: &Entry,
) -> Decision {
    use Decision::{Skip, Transfer};
    if let Some(c) = custom {
        return match c.compare(src, dst) {
            Some(r) => Transfer(Reason::Custom(r)),
            None => Skip(Reason::UpToDate),
        };
    }
    if src.size != dst.size {
        return Transfer(Reason::Size {
            src: src.size,
            dst: dst.size,
        });
    }
    let equal = |same: bool, otherwise: Reason| {
        if same {
            Skip(Reason::UpToDate)
        } else {
            Transfer(otherwise)
        }
    };
    match mode {
        CompareMode::Size => Skip(Reason::UpToDate),
        CompareMode::SizeMtime => size_mtime(inspector, window, src, dst).await,
        CompareMode::Etag => {
            let (s, d) = etags(inspector, src, dst).await;
            equal(s.is_some() && s == d, Reason::Etag)
        }
        CompareMode::Checksum => {
            let Some(a) = checksum else {
                return Transfer(Reason::Checksum);
            };
            let (s, d) = checksums(inspector, a, src, dst).await;
            equal(s.is_some() && s == d, Reason::Checksum)
        }
    }
}

/// `size-mtime` with adoption (see the module docs). Sizes are already equal.
async fn size_mtime(
    inspector: &dyn Inspector,
    window: Duration,
    src: &Entry,
    dst: &Entry,
) -> Decision {
    let a = inspector.known_mtime(Side::Src, src).await;
    let b = inspector.known_mtime(Side::Dst, dst).await;
    if let (Some(a), Some(b)) = (a, b) {
        if within(a, b, window) {
            return Decision::Skip(Reason::UpToDate);
        }
    }
    if let Some(d) = by_content(inspector, window, src, dst, a, b).await {
        return d;
    }
    // Content cannot decide: the recorded mtimes, read with a HEAD where not cached.
    let a = match a {
        Some(a) => Some(a),
        None => inspector.mtime(Side::Src, src).await,
    };
    let b = match b {
        Some(b) => Some(b),
        None => inspector.mtime(Side::Dst, dst).await,
    };
    match (a, b) {
        (Some(a), Some(b)) if within(a, b, window) => Decision::Skip(Reason::UpToDate),
        _ => Decision::Transfer(Reason::Mtime),
    }
}

/// Decides by content when ETags allow it; `None` when they cannot tell.
async fn by_content(
    inspector: &dyn Inspector,
    window: Duration,
    src: &Entry,
    dst: &Entry,
    a: Option<SystemTime>,
    b: Option<SystemTime>,
) -> Option<Decision> {
    let md5 = |side: Side, etag: &str| inspector.etag_md5(side) && looks_like_md5_etag(etag);
    match (src.etag.as_deref(), dst.etag.as_deref()) {
        (Some(s), Some(d)) => {
            if !md5(Side::Src, s) || !md5(Side::Dst, d) {
                return None;
            }
            if normalize_etag(s) == normalize_etag(d) {
                inspector.adopted(src, dst, a);
                return Some(Decision::Skip(Reason::Adopted(Adoption::SameEtag)));
            }
            // Two single-part MD5s that differ: different bytes. Multipart ones may be the
            // same bytes cut at other part sizes.
            (etag_part_count(s).is_none() && etag_part_count(d).is_none())
                .then_some(Decision::Transfer(Reason::Etag))
        }
        (None, Some(d)) if md5(Side::Dst, d) => {
            // A large file: one HEAD may show the recorded mtime matches, before reading it.
            if b.is_none() && src.size > HASH_BEFORE_HEAD_MAX {
                let (Some(a), Some(m)) = (a, inspector.mtime(Side::Dst, dst).await) else {
                    return local_vs_object(inspector, Side::Src, src, dst, d, a).await;
                };
                if within(a, m, window) {
                    return Some(Decision::Skip(Reason::UpToDate));
                }
            }
            local_vs_object(inspector, Side::Src, src, dst, d, a).await
        }
        (Some(s), None) if md5(Side::Src, s) => {
            if a.is_none() && dst.size > HASH_BEFORE_HEAD_MAX {
                let (Some(m), Some(b)) = (inspector.mtime(Side::Src, src).await, b) else {
                    return local_vs_object(inspector, Side::Dst, dst, src, s, a).await;
                };
                if within(m, b, window) {
                    return Some(Decision::Skip(Reason::UpToDate));
                }
            }
            local_vs_object(inspector, Side::Dst, dst, src, s, a).await
        }
        _ => None,
    }
}

/// Compares a local file with an object through the object's MD5-based ETag.
async fn local_vs_object(
    inspector: &dyn Inspector,
    local_side: Side,
    local: &Entry,
    object: &Entry,
    object_etag: &str,
    src_mtime: Option<SystemTime>,
) -> Option<Decision> {
    let want = normalize_etag(object_etag);
    let multipart = etag_part_count(&want).is_some();
    let got = inspector.etag(local_side, local, Some(&want)).await?;
    if got == want {
        let (src, dst) = match local_side {
            Side::Src => (local, object),
            Side::Dst => (object, local),
        };
        inspector.adopted(src, dst, src_mtime);
        let how = if multipart {
            Adoption::MultipartEtag
        } else {
            Adoption::Md5
        };
        Some(Decision::Skip(Reason::Adopted(how)))
    } else if multipart {
        // The part size may have been a guess: let the recorded mtimes decide.
        None
    } else {
        Some(Decision::Transfer(Reason::Etag))
    }
}

fn looks_like_md5_etag(e: &str) -> bool {
    let e = normalize_etag(e);
    let (hex, parts) = e.split_once('-').unwrap_or((&e, "1"));
    hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && parts.parse::<u32>().is_ok()
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
