//! The values that cross the [`Store`](crate::Store) trait.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};

use crate::error::{Error, Op, Result};
use crate::integrity::{Checksum, ChecksumAlgorithm, Digests};
use crate::key::Key;

/// A stream of body chunks.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// One object as a listing reports it: what is known without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, relative to the store's root.
    pub key: Key,
    /// The size in bytes.
    pub size: u64,
    /// When the object was last written: a local file's mtime, an S3 object's upload time.
    pub last_modified: Option<SystemTime>,
    /// The ETag without quotes (S3, memory); `None` for local files.
    pub etag: Option<String>,
    /// The storage class, where the backend has them.
    pub storage_class: Option<String>,
}

/// One version of an object, or a delete marker, as ListObjectVersions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The key, relative to the store's root.
    pub key: Key,
    /// The version id (`null` for an object written before versioning was enabled).
    pub version_id: String,
    /// Whether this is the key's current version (or marker).
    pub is_latest: bool,
    /// A delete marker: the key was deleted at [`Version::last_modified`].
    pub delete_marker: bool,
    /// The size in bytes (0 for a delete marker).
    pub size: u64,
    /// The ETag without quotes (`None` for a delete marker).
    pub etag: Option<String>,
    /// When this version was written.
    pub last_modified: Option<SystemTime>,
}

impl Version {
    /// The listing entry of this version (not meaningful for a delete marker).
    pub fn to_entry(&self) -> Entry {
        Entry {
            key: self.key.clone(),
            size: self.size,
            last_modified: self.last_modified,
            etag: self.etag.clone(),
            storage_class: None,
        }
    }
}

/// Everything known about one object after a `head` or `get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store's root.
    pub key: Key,
    /// The size of the whole object in bytes.
    pub size: u64,
    /// When the object was last written (see [`Entry::last_modified`]).
    pub last_modified: Option<SystemTime>,
    /// The ETag without quotes.
    pub etag: Option<String>,
    /// The Content-Type.
    pub content_type: Option<String>,
    /// The Cache-Control.
    pub cache_control: Option<String>,
    /// User metadata (S3 `x-amz-meta-*`), keys lowercase; larder's own entries removed.
    pub metadata: BTreeMap<String, String>,
    /// The modification time of the source the object was copied from, as recorded by
    /// larder ([`PutOptions::mtime`]); for a local file, its mtime.
    pub mtime: Option<SystemTime>,
    /// The additional checksum the backend stored, when asked for ([`GetOptions::checksum`]).
    pub checksum: Option<Checksum>,
    /// The storage class.
    pub storage_class: Option<String>,
    /// The other HTTP headers stored with the object.
    pub headers: Headers,
    /// How many tags the object has, where a read tells (S3 GetObject's
    /// `x-amz-tagging-count`, sent when there are any); `None`: not known.
    pub tag_count: Option<u64>,
    /// Server-side encryption as the server reported it (`AES256`, `aws:kms`,
    /// `aws:kms:dsse`; [`SSE_C`] for a customer key); `None`: none, or not known.
    pub encryption: Option<String>,
}

/// [`ObjectMeta::encryption`] of an object encrypted with a customer-provided key (SSE-C).
pub const SSE_C: &str = "SSE-C";

/// The HTTP headers S3 keeps with an object besides Content-Type and Cache-Control: what
/// `aws s3 cp` and s3sync call system metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// Content-Encoding (`gzip`).
    pub content_encoding: Option<String>,
    /// Content-Disposition (`attachment; filename="a.pdf"`).
    pub content_disposition: Option<String>,
    /// Content-Language (`en`).
    pub content_language: Option<String>,
    /// Expires, as an HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`).
    pub expires: Option<String>,
    /// x-amz-website-redirect-location (`/other.html`).
    pub website_redirect: Option<String>,
}

impl Headers {
    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        *self == Headers::default()
    }

    /// `self` with every header `over` sets replaced by `over`'s.
    pub fn overridden_by(mut self, over: &Headers) -> Headers {
        let pick = |a: &mut Option<String>, b: &Option<String>| {
            if b.is_some() {
                a.clone_from(b);
            }
        };
        pick(&mut self.content_encoding, &over.content_encoding);
        pick(&mut self.content_disposition, &over.content_disposition);
        pick(&mut self.content_language, &over.content_language);
        pick(&mut self.expires, &over.expires);
        pick(&mut self.website_redirect, &over.website_redirect);
        self
    }
}

/// A precondition on a write (S3 conditional writes): the put fails with
/// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) instead of replacing something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Only if no object exists at the key (`If-None-Match: *`).
    IfNoneMatch,
    /// Only if the object at the key still has this ETag (`If-Match`), unquoted.
    IfMatch(String),
}

/// Object tags: key → value, at most 10 on S3.
pub type Tags = BTreeMap<String, String>;

impl ObjectMeta {
    /// The listing entry of this object.
    pub fn to_entry(&self) -> Entry {
        Entry {
            key: self.key.clone(),
            size: self.size,
            last_modified: self.last_modified,
            etag: self.etag.clone(),
            storage_class: self.storage_class.clone(),
        }
    }
}

/// A byte range of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetRange {
    /// `start..end`; an end past the object's size is clamped to it, as in HTTP.
    Bounded(Range<u64>),
    /// From an offset to the end.
    From(u64),
}

impl GetRange {
    /// The concrete range within an object of `size` bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidRange`](crate::ErrorKind::InvalidRange) when the range starts at or
    /// past the end of a non-empty object or is empty.
    pub fn resolve(&self, size: u64, op: Op, location: &str) -> Result<Range<u64>> {
        let (start, end) = match self {
            GetRange::Bounded(r) => (r.start, r.end.min(size)),
            GetRange::From(s) => (*s, size),
        };
        if start >= end {
            return Err(
                Error::new(crate::ErrorKind::InvalidRange, op, location).with_detail(format!(
                    "range {self} is not satisfiable for an object of {size} bytes"
                )),
            );
        }
        Ok(start..end)
    }
}

impl fmt::Display for GetRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetRange::Bounded(r) => write!(f, "{}..{}", r.start, r.end),
            GetRange::From(s) => write!(f, "{s}.."),
        }
    }
}

/// Options of [`Store::get`](crate::Store::get).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GetOptions {
    /// Read only this range.
    pub range: Option<GetRange>,
    /// Ask for the stored additional checksum ([`ObjectMeta::checksum`]).
    pub checksum: bool,
    /// The object's size when the caller already knows it (from a listing): lets the S3
    /// backend split a large read into parallel ranged GETs without a HEAD first.
    pub size_hint: Option<u64>,
    /// Fail unless the object's ETag is this one (S3 `If-Match`).
    pub if_match: Option<String>,
    /// Fail with [`crate::ErrorKind::NotModified`] when the object's ETag is still this one
    /// (S3 `If-None-Match`): a refresh that costs one request and no body.
    pub if_none_match: Option<String>,
    /// Read in ranges aligned to parts of this size and compute each part's MD5 as it
    /// arrives, on the blocking pool, in parallel ([`GetResult::part_md5s`]): a multipart
    /// ETag is then verified without a serial MD5 pass over the whole body. Backends that
    /// cannot leave [`GetResult::part_md5s`] empty; so does a read too small to split.
    pub part_md5s: Option<u64>,
    /// Read this version of the object (S3 `versionId`).
    pub version_id: Option<String>,
}

crate::with_setters!(GetOptions {
    with_range => range: Option<GetRange>,
    with_checksum => checksum: bool,
    with_size_hint => size_hint: Option<u64>,
    with_if_match => if_match: Option<String>,
    with_if_none_match => if_none_match: Option<String>,
    with_part_md5s => part_md5s: Option<u64>,
    with_version_id => version_id: Option<String>,
});

/// What one lookup of part 1 of an object tells ([`Store::first_part`](crate::Store::first_part)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FirstPart {
    /// The size of part 1, as [`Store::first_part_size`] gives it.
    ///
    /// [`Store::first_part_size`]: crate::Store::first_part_size
    pub size: Option<u64>,
    /// The ETag of the object the lookup found (normalized), to pin what follows to it.
    pub etag: Option<String>,
    /// The whole object's CRC (CRC32, CRC32C or CRC64NVME, stored as a full-object checksum),
    /// where the server reported one with the part: it covers every byte, so a read can be
    /// verified by it instead of by recomputing part MD5s.
    pub full_crc: Option<Checksum>,
}

/// The MD5 of each part of a read, by part index; complete once the body has ended.
#[derive(Debug, Clone, Default)]
pub struct PartMd5s(std::sync::Arc<std::sync::Mutex<BTreeMap<u64, [u8; 16]>>>);

impl PartMd5s {
    /// Records part `index`'s MD5.
    pub fn insert(&self, index: u64, md5: [u8; 16]) {
        self.0.lock().expect("part md5s lock").insert(index, md5);
    }

    /// The MD5s in part order, when parts 0..n are all there.
    pub fn in_order(&self) -> Option<Vec<[u8; 16]>> {
        let m = self.0.lock().expect("part md5s lock");
        let ok = m.keys().enumerate().all(|(i, k)| i as u64 == *k);
        ok.then(|| m.values().copied().collect())
    }
}

/// Options of [`Store::put`](crate::Store::put).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PutOptions {
    /// The Content-Type.
    pub content_type: Option<String>,
    /// The Cache-Control.
    pub cache_control: Option<String>,
    /// User metadata; keys are lowercased by S3.
    pub metadata: BTreeMap<String, String>,
    /// The modification time to record: a local file gets it as its mtime, an object carries
    /// it as metadata (`x-amz-meta-larder-mtime`).
    pub mtime: Option<SystemTime>,
    /// Compute this checksum, send it, and check what the backend stored.
    pub checksum: Option<ChecksumAlgorithm>,
    /// Write through a partial copy that outlives a failed or killed put, so a later one
    /// resumes it (stores with [`Capabilities::resumable`]; others ignore it).
    pub partial: Option<Partial>,
    /// Content-Encoding, Content-Disposition, Content-Language, Expires, website redirect.
    pub headers: Headers,
    /// Tags to set on the object (stores with [`Capabilities::tagging`]; others ignore them).
    pub tags: Option<Tags>,
    /// The storage class (`STANDARD_IA`, `GLACIER_IR`, …); else the store's default.
    pub storage_class: Option<String>,
    /// Fail instead of writing unless this holds (stores with
    /// [`Capabilities::conditional_writes`]; others refuse it as unsupported).
    pub condition: Option<WriteCondition>,
}

crate::with_setters!(PutOptions {
    with_content_type => content_type: Option<String>,
    with_cache_control => cache_control: Option<String>,
    with_metadata => metadata: BTreeMap<String, String>,
    with_mtime => mtime: Option<SystemTime>,
    with_checksum => checksum: Option<ChecksumAlgorithm>,
    with_partial => partial: Option<Partial>,
    with_headers => headers: Headers,
    with_tags => tags: Option<Tags>,
    with_storage_class => storage_class: Option<String>,
    with_condition => condition: Option<WriteCondition>,
});

/// A put through a partial copy: see [`PutOptions::partial`] and
/// [`crate::Store::partial`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// The source's identity (its ETag and size, say): a partial copy of another source is
    /// never resumed.
    pub tag: String,
    /// The body starts at this offset: the partial copy's first `offset` bytes are kept.
    pub offset: u64,
}

/// Options of [`Store::copy`](crate::Store::copy).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CopyOptions {
    /// The source's size when known (saves a HEAD when deciding on a multipart copy).
    pub size_hint: Option<u64>,
}

crate::with_setters!(CopyOptions {
    with_size_hint => size_hint: Option<u64>,
});

/// An object a server-side copy reads ([`Store::copy_source`](crate::Store::copy_source)):
/// where it is and who may read it, so a destination can tell whether it reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// The server: its endpoint URL, or `aws` and the region.
    pub server: String,
    /// Who reads: the access key id, or the profile whose credentials the store uses.
    pub principal: String,
    /// The bucket.
    pub bucket: String,
    /// The object's full key in the bucket (the store's prefix included).
    pub key: String,
    /// One version of the object; `None`: the current one.
    pub version_id: Option<String>,
}

impl fmt::Display for CopySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)?;
        if let Some(v) = &self.version_id {
            write!(f, " (version {v})")?;
        }
        Ok(())
    }
}

/// What [`Store::put_copy`](crate::Store::put_copy) copies, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFrom {
    /// The object.
    pub source: CopySource,
    /// Its size.
    pub size: u64,
    /// Copy it in parts of this size (UploadPartCopy), as it was uploaded, so the copy's
    /// multipart ETag is the source's; `None`: one CopyObject, or parts of the store's part
    /// size past S3's 5 GiB limit on one.
    pub part_size: Option<u64>,
    /// The copy gets the source's tags (read from it); else [`PutOptions::tags`].
    pub keep_tags: bool,
    /// Copy only while the source has this ETag (`x-amz-copy-source-if-match`), unquoted.
    pub source_etag: Option<String>,
    /// Fail with [`ErrorKind::Integrity`](crate::ErrorKind::Integrity) unless the copy's
    /// ETag is [`CopyFrom::source_etag`]: the same bytes, in the same parts.
    pub verify_etag: bool,
}

/// What a put wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// The bytes written.
    pub size: u64,
    /// The ETag the backend reported, without quotes; it has been checked against
    /// [`PutResult::digests`] where the backend's ETags are MD5-based.
    pub etag: Option<String>,
    /// The additional checksum the backend reported; it has been checked.
    pub checksum: Option<Checksum>,
    /// What larder computed over the bytes it sent (MD5, part MD5s, checksums); `None` for a
    /// server-side copy, whose bytes never passed through larder.
    pub digests: Option<Digests>,
    /// The version id, where the backend versions objects.
    pub version_id: Option<String>,
}

/// What a batch delete did not delete. Deleting a missing key is a success.
#[derive(Debug, Default)]
pub struct DeleteReport {
    /// The keys that were asked to be deleted and were not, with why.
    pub failed: Vec<(Key, Error)>,
}

/// What a backend can do; the conformance suite and the sync engine check these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Content-Type, Cache-Control and user metadata round-trip.
    pub metadata: bool,
    /// Additional checksums are stored and returned.
    pub checksums: bool,
    /// ETags are MD5-based (single part: the MD5; multipart: MD5 of part MD5s).
    pub etag_md5: bool,
    /// Large objects are written in parts (ETag `…-N`).
    pub multipart: bool,
    /// `a` and `a/b` can both exist.
    pub file_and_prefix: bool,
    /// The backend keeps a native mtime (a local file system).
    pub native_mtime: bool,
    /// [`Store::first_part_size`](crate::Store::first_part_size) can tell a multipart
    /// object's part size (S3: HEAD `partNumber=1`; radosgw 16 ignores it).
    pub part_lookup: bool,
    /// Object versions.
    pub versioning: bool,
    /// Object tags.
    pub tagging: bool,
    /// If-None-Match / If-Match on writes.
    pub conditional_writes: bool,
    /// Keeps partial copies of interrupted puts ([`PutOptions::partial`]) to resume.
    pub resumable: bool,
}

/// A body to write: a stream of chunks and, when known, its total size.
pub struct Body {
    stream: ByteStream,
    size: Option<u64>,
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// A body from bytes in memory.
    pub fn from_bytes(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let size = data.len() as u64;
        Body {
            stream: futures::stream::once(async move { Ok(data) }).boxed(),
            size: Some(size),
        }
    }

    /// A body from a stream of chunks, of unknown or known size.
    pub fn from_stream(stream: ByteStream, size: Option<u64>) -> Self {
        Body { stream, size }
    }

    /// A body that streams a local file in 1 MiB reads.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened; read errors come from the stream, naming the path.
    pub async fn from_file(path: &Path) -> Result<Self> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(Op::Get, path.display(), e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io(Op::Get, path.display(), e))?
            .len();
        let shown = path.display().to_string();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
            .map_err(move |e| Error::io(Op::Get, &shown, e))
            .boxed();
        Ok(Body {
            stream,
            size: Some(size),
        })
    }

    /// The total size, when known.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The chunks.
    pub fn into_stream(self) -> ByteStream {
        self.stream
    }
}

/// What a get returns: the object's metadata, the range being read, and the bytes.
pub struct GetResult {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The byte range the body holds.
    pub range: Range<u64>,
    /// The bytes.
    pub body: ByteStream,
    /// Per-part MD5s, when asked for with [`GetOptions::part_md5s`] and the backend read in
    /// aligned parts.
    pub part_md5s: Option<PartMd5s>,
}

impl fmt::Debug for GetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl GetResult {
    /// Reads the whole body into memory, checking that its length matches the range.
    ///
    /// # Errors
    ///
    /// A read error, or [`ErrorKind::Integrity`](crate::ErrorKind::Integrity) when fewer or
    /// more bytes arrive than the range holds.
    pub async fn bytes(self) -> Result<Bytes> {
        let want = self.range.end - self.range.start;
        let mut buf = BytesMut::with_capacity(want.min(64 << 20) as usize);
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        if buf.len() as u64 != want {
            return Err(
                Error::new(crate::ErrorKind::Integrity, Op::Get, self.meta.key.as_str())
                    .with_detail(format!("expected {want} bytes, read {}", buf.len())),
            );
        }
        Ok(buf.freeze())
    }
}
