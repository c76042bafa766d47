//! The storage layer of larder: one [`Store`] trait over a local directory
//! ([`LocalStore`]), memory ([`MemoryStore`]) and S3-compatible object storage ([`S3Store`]),
//! plus the [`integrity`] primitives every transfer is checked with.
//!
//! ```
//! use futures::TryStreamExt;
//! use larder_store::{Body, GetOptions, Key, MemoryStore, PutOptions, Store};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let key = Key::new("photos/a.jpg").unwrap();
//! let put = store.put(&key, Body::from_bytes("jpeg"), PutOptions::default()).await.unwrap();
//! assert_eq!(put.etag, Some(larder_store::integrity::md5_hex(b"jpeg")));
//! let listed: Vec<_> = store.list("photos/").try_collect().await.unwrap();
//! assert_eq!(listed[0].key, key);
//! let got = store.get(&key, GetOptions::default()).await.unwrap().bytes().await.unwrap();
//! assert_eq!(&got[..], b"jpeg");
//! # });
//! ```
//!
//! # Design
//!
//! * Listings are streams in S3's order (by key bytes), never whole listings in memory.
//! * No SDK type appears in this API: the S3 backend maps its errors and values at the
//!   boundary.
//! * Every write checks what it wrote: the S3 backend compares the ETag the server returns
//!   with the MD5 (or multipart ETag) it computed while sending, and the additional checksum
//!   when one was asked for; the local backend writes a temp file, fsyncs and renames.
//! * Errors are one [`Error`] type with an [`ErrorKind`] to match on.
#![warn(missing_docs)]

pub mod error;
pub mod integrity;
pub mod journal;
pub mod key;
pub mod local;
mod local_meta;
pub mod memory;
pub mod meter;
pub mod s3;
mod setters;
pub mod throttle;
mod types;
pub mod wrap;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};

pub use error::{Error, ErrorKind, Op, Result};
pub use key::{Key, KeyError};
pub use local::{FileStamp, LocalStore, SymlinkPolicy};
pub use memory::MemoryStore;
pub use s3::{S3Options, S3Store, S3Url, ServerFeatures, Sse, SseCustomerKey};
pub use types::{
    Body, ByteStream, Capabilities, CopyFrom, CopyOptions, CopySource, DeleteReport, Entry,
    FirstPart, GetOptions, GetRange, GetResult, Headers, ObjectMeta, PartMd5s, Partial, PutOptions,
    PutResult, Tags, Version, WriteCondition, SSE_C,
};

/// The user-metadata name under which larder records a source's modification time.
pub const MTIME_METADATA: &str = "larder-mtime";

/// A place that holds objects by key.
///
/// Keys are relative to the store's root (a directory, a bucket and prefix). Object-safe:
/// used as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static {
    /// Streams every object whose key starts with `prefix` (a plain string prefix, as in S3:
    /// `a` matches `a`, `ab` and `a/b`), sorted by key bytes. Memory stays bounded whatever
    /// the number of objects.
    ///
    /// An item may be an error (an unreadable directory, an unrepresentable file name); the
    /// stream goes on after it where the backend can.
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>>;

    /// The object's metadata, or `None` when there is no such object.
    ///
    /// # Errors
    ///
    /// Anything but not-found.
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>>;

    /// Reads an object, or a range of it, as a stream.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when there is no such object, [`ErrorKind::InvalidRange`] for a
    /// range past its end; read errors later come from the stream.
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult>;

    /// Writes an object from a stream, replacing any object at `key`. Nothing is visible at
    /// `key` until the whole body has been written and checked.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Integrity`] when the backend stored something other than what was sent,
    /// [`ErrorKind::InvalidKey`] / [`ErrorKind::Conflict`] for keys a backend cannot hold.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the previous object (or none) at `key`; an S3 multipart
    /// upload in flight is aborted in the background.
    async fn put(&self, key: &Key, body: Body, opts: PutOptions) -> Result<PutResult>;

    /// Deletes objects. Deleting a missing key succeeds.
    ///
    /// # Errors
    ///
    /// When the whole batch failed (credentials, network); per-key failures are in the report.
    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport>;

    /// Copies an object within the store without moving its bytes through larder where the
    /// backend can. Metadata is kept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NotFound`] when `from` does not exist.
    async fn copy(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult>;

    /// Where a server-side copy would read `key` from; `None` where no other store can copy
    /// it without its bytes passing through larder (local files, SSE-C objects).
    fn copy_source(&self, key: &Key) -> Option<CopySource> {
        let _ = key;
        None
    }

    /// Whether [`Store::put_copy`] reaches `source` as it is: same server, same credentials.
    /// A copy may still be tried without (the credentials may reach both buckets).
    fn can_copy_from(&self, source: &CopySource) -> bool {
        let _ = source;
        false
    }

    /// Writes `to` as a server-side copy of [`CopyFrom::source`], with the metadata, tags,
    /// storage class and precondition of `opts` (`opts.mtime` recorded as for a put); the
    /// bytes never pass through larder.
    ///
    /// The default is an error of kind [`ErrorKind::Unsupported`].
    ///
    /// # Errors
    ///
    /// As for [`Store::put`]; [`ErrorKind::Conflict`] when the source no longer has
    /// [`CopyFrom::source_etag`]; [`ErrorKind::Integrity`] when
    /// [`CopyFrom::verify_etag`] is set and the copy's ETag is not the source's.
    async fn put_copy(&self, to: &Key, from: &CopyFrom, opts: PutOptions) -> Result<PutResult> {
        let _ = (from, opts);
        Err(
            Error::new(ErrorKind::Unsupported, Op::Copy, self.location(to.as_str()))
                .with_detail("this store cannot copy objects server-side"),
        )
    }

    /// The size of part 1 of an object uploaded in parts (its ETag ends in `-N`), so its
    /// multipart ETag can be recomputed from a local copy; `None` where the backend does not
    /// keep parts or the object is one part.
    ///
    /// # Errors
    ///
    /// As for [`Store::head`].
    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        let _ = key;
        Ok(None)
    }

    /// [`Store::first_part_size`], plus the whole-object CRC the same lookup reports, where
    /// the backend reports one: one request for both on S3.
    ///
    /// # Errors
    ///
    /// As for [`Store::head`].
    async fn first_part(&self, key: &Key) -> Result<FirstPart> {
        Ok(FirstPart {
            size: self.first_part_size(key).await?,
            ..FirstPart::default()
        })
    }

    /// The object's tags; `None` where the backend keeps none (or the server does not
    /// implement tagging).
    ///
    /// # Errors
    ///
    /// As for [`Store::head`]; a missing object is [`ErrorKind::NotFound`].
    async fn tags(&self, key: &Key) -> Result<Option<Tags>> {
        let _ = key;
        Ok(None)
    }

    /// What [`Store::head`] tells of one version of an object (S3 `versionId`); `None` when
    /// that version does not exist.
    ///
    /// The default is an error of kind [`ErrorKind::Unsupported`]: stores without versions.
    ///
    /// # Errors
    ///
    /// As for [`Store::head`].
    async fn head_version(&self, key: &Key, version_id: &str) -> Result<Option<ObjectMeta>> {
        let _ = version_id;
        Err(Error::new(
            ErrorKind::Unsupported,
            Op::Head,
            self.location(key.as_str()),
        )
        .with_detail("this store keeps no object versions"))
    }

    /// The tags of one version of an object; `None` where the backend keeps none.
    ///
    /// # Errors
    ///
    /// As for [`Store::tags`].
    async fn version_tags(&self, key: &Key, version_id: &str) -> Result<Option<Tags>> {
        let _ = (key, version_id);
        Ok(None)
    }

    /// As [`Store::first_part_size`], of one version of an object.
    ///
    /// # Errors
    ///
    /// As for [`Store::head`].
    async fn version_part_size(&self, key: &Key, version_id: &str) -> Result<Option<u64>> {
        let _ = (key, version_id);
        Ok(None)
    }

    /// Streams every version and delete marker of the objects under `prefix`: keys in
    /// S3's order, each key's versions newest first (as ListObjectVersions answers).
    ///
    /// The default is one error of kind [`ErrorKind::Unsupported`]: stores without
    /// versions.
    fn list_versions(&self, prefix: &str) -> BoxStream<'static, Result<Version>> {
        let _ = prefix;
        let err = Error::new(ErrorKind::Unsupported, Op::List, self.location(""))
            .with_detail("this store keeps no object versions");
        futures::stream::iter([Err(err)]).boxed()
    }

    /// The partial copy of `key` an interrupted put with this `tag` left
    /// ([`PutOptions::partial`]): its length and its bytes. `None` when there is none, it is
    /// in use, or the store keeps none.
    async fn partial(&self, key: &Key, tag: &str) -> Result<Option<(u64, ByteStream)>> {
        let _ = (key, tag);
        Ok(None)
    }

    /// Makes durable what earlier puts and deletes changed but left to be made durable
    /// together: a local directory syncs, once each, the directories whose entries its
    /// renames and removals changed (a put's bytes are durable when it returns, its new name
    /// after the flush). Stores that defer nothing do nothing. Callers that write many keys
    /// flush before they report them done; what no flush covered is synced when the store's
    /// last handle is dropped.
    async fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// A string that names this store's data uniquely (endpoint, bucket, prefix; or path),
    /// for caches of what was seen in it.
    fn identity(&self) -> String {
        self.location("")
    }

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// The location of `key` for messages: a path or an `s3://` URL.
    fn location(&self, key: &str) -> String;
}

#[async_trait]
impl<T: Store + ?Sized> Store for Arc<T>
where
    Arc<T>: std::fmt::Debug + std::fmt::Display,
{
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        (**self).list(prefix)
    }
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        (**self).head(key).await
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        (**self).get(key, opts).await
    }
    async fn put(&self, key: &Key, body: Body, opts: PutOptions) -> Result<PutResult> {
        (**self).put(key, body, opts).await
    }
    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        (**self).delete(keys).await
    }
    async fn copy(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult> {
        (**self).copy(from, to, opts).await
    }
    fn copy_source(&self, key: &Key) -> Option<CopySource> {
        (**self).copy_source(key)
    }
    fn can_copy_from(&self, source: &CopySource) -> bool {
        (**self).can_copy_from(source)
    }
    async fn put_copy(&self, to: &Key, from: &CopyFrom, opts: PutOptions) -> Result<PutResult> {
        (**self).put_copy(to, from, opts).await
    }
    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        (**self).first_part_size(key).await
    }
    async fn first_part(&self, key: &Key) -> Result<FirstPart> {
        (**self).first_part(key).await
    }
    async fn partial(&self, key: &Key, tag: &str) -> Result<Option<(u64, ByteStream)>> {
        (**self).partial(key, tag).await
    }
    async fn flush(&self) -> Result<()> {
        (**self).flush().await
    }
    async fn tags(&self, key: &Key) -> Result<Option<Tags>> {
        (**self).tags(key).await
    }
    fn list_versions(&self, prefix: &str) -> BoxStream<'static, Result<Version>> {
        (**self).list_versions(prefix)
    }
    async fn head_version(&self, key: &Key, version_id: &str) -> Result<Option<ObjectMeta>> {
        (**self).head_version(key, version_id).await
    }
    async fn version_tags(&self, key: &Key, version_id: &str) -> Result<Option<Tags>> {
        (**self).version_tags(key, version_id).await
    }
    async fn version_part_size(&self, key: &Key, version_id: &str) -> Result<Option<u64>> {
        (**self).version_part_size(key, version_id).await
    }
    fn identity(&self) -> String {
        (**self).identity()
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn location(&self, key: &str) -> String {
        (**self).location(key)
    }
}

/// Formats a time as larder's mtime metadata value: Unix seconds with nanoseconds
/// (`1700000000.123456789`).
pub fn format_mtime(t: std::time::SystemTime) -> String {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => format!("{}.{:09}", d.as_secs(), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            format!("-{}.{:09}", d.as_secs(), d.subsec_nanos())
        }
    }
}

/// Parses [`format_mtime`]'s output (and plain or fractional Unix seconds, as rclone writes).
pub fn parse_mtime(s: &str) -> Option<std::time::SystemTime> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let d = std::time::Duration::new(secs, nanos);
    if neg {
        std::time::UNIX_EPOCH.checked_sub(d)
    } else {
        std::time::UNIX_EPOCH.checked_add(d)
    }
}

/// The modification time other tools record in an object's user metadata (keys lowercase,
/// without `x-amz-meta-`), so that a bucket they filled can be compared without re-sending:
///
/// * `mtime`: rclone and s3fs (Unix seconds, fractional allowed);
/// * `file-mtime`: s5cmd (Unix seconds);
/// * `s3cmd-attrs`: s3cmd (`…/mtime:1700000000/…`);
/// * `mc-attrs`: MinIO `mc` with `--preserve` (`…/mtime:1700000000#123456789/…`).
///
/// The first present and well-formed wins, in that order. larder's own
/// [`MTIME_METADATA`] is read before any of these (by the backends).
pub fn foreign_mtime<'a>(
    mut get: impl FnMut(&str) -> Option<&'a str>,
) -> Option<std::time::SystemTime> {
    if let Some(t) = get("mtime").and_then(parse_mtime) {
        return Some(t);
    }
    if let Some(t) = get("file-mtime").and_then(parse_mtime) {
        return Some(t);
    }
    for name in ["s3cmd-attrs", "mc-attrs"] {
        let Some(attrs) = get(name) else { continue };
        let found = attrs.split('/').find_map(|a| {
            let v = a.trim().strip_prefix("mtime:")?;
            match v.split_once('#') {
                Some((secs, nanos)) => {
                    let nanos: u32 = nanos.parse().ok().filter(|n| *n < 1_000_000_000)?;
                    parse_mtime(&format!("{secs}.{nanos:09}"))
                }
                None => parse_mtime(v),
            }
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn mtime_round_trip() {
        for t in [
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::new(5, 1),
        ] {
            assert_eq!(parse_mtime(&format_mtime(t)), Some(t));
        }
        assert_eq!(
            parse_mtime("1700000000.5"),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_mtime("x"), None);
    }

    #[test]
    fn other_tools_mtimes() {
        let t = |secs, nanos| Some(UNIX_EPOCH + Duration::new(secs, nanos));
        let read = |pairs: &[(&'static str, &'static str)]| {
            let pairs = pairs.to_vec();
            foreign_mtime(move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
        };
        assert_eq!(
            read(&[("mtime", "1700000000.25")]),
            t(1_700_000_000, 250_000_000)
        );
        assert_eq!(read(&[("file-mtime", "1700000001")]), t(1_700_000_001, 0));
        assert_eq!(
            read(&[(
                "s3cmd-attrs",
                "atime:1700000009/ctime:1700000008/gid:0/md5:abc/mode:33188/mtime:1700000002/uid:0"
            )]),
            t(1_700_000_002, 0)
        );
        assert_eq!(
            read(&[(
                "mc-attrs",
                "atime:1700000009#1/mtime:1700000003#5/mode:33188"
            )]),
            t(1_700_000_003, 5)
        );
        assert_eq!(
            read(&[("mtime", "garbage"), ("file-mtime", "1700000004")]),
            t(1_700_000_004, 0),
            "a malformed value is passed over"
        );
        assert_eq!(read(&[("s3cmd-attrs", "mode:33188/uid:0")]), None);
        assert_eq!(read(&[("other", "1700000000")]), None);
    }
}
