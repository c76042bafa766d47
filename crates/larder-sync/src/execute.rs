//! Execute: one verified transfer, with retries.
//!
//! # Verification
//!
//! The source's bytes are hashed as they stream through ([`VerifyingStream`]). When the
//! source is an object with an MD5-shaped ETag (single part, or `-N` with a known part
//! size), or has the additional checksum asked for, the digest is compared at the end of the
//! stream, and a mismatch is an error *from the stream*: the destination's put fails before
//! anything becomes visible (a local temp file is never renamed, a multipart upload is
//! aborted, a single PUT is never sent). On the destination side the S3 backend compares the
//! server's ETag and checksum with what it sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use larder_store::integrity::{
    etag_part_count, normalize_etag, Checksum, ChecksumAlgorithm, CompositeHasher, Hasher,
};
use larder_store::{
    Body, ByteStream, Entry, Error, ErrorKind, GetOptions, ObjectMeta, Op, PutOptions, Result,
    Store,
};

/// What was verified for one transfer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// The ETag / MD5 was compared (source read or destination write).
    pub etag: bool,
    /// The additional checksum was compared.
    pub checksum: bool,
    /// The server copied the bytes (CopyObject / UploadPartCopy); larder read none of them,
    /// and [`Verified::etag`] says the copy's ETag is the source's.
    pub server_side: bool,
}

/// The outcome of one transfer.
#[derive(Debug, Clone)]
pub struct Transferred {
    /// Bytes moved.
    pub bytes: u64,
    /// What was checked.
    pub verified: Verified,
    /// The destination's ETag, for the metadata cache.
    pub dst_etag: Option<String>,
    /// The source mtime recorded at the destination.
    pub mtime: Option<std::time::SystemTime>,
    /// The source object's ETag and its own recorded mtime (user metadata, not
    /// LastModified), as the GET answered: what a HEAD would have told.
    pub src_seen: Option<(String, Option<std::time::SystemTime>)>,
    /// The version id the destination gave the write, where it versions objects.
    pub dst_version: Option<String>,
}

/// What the source's bytes must hash to.
#[derive(Debug, Clone, Default)]
struct Expect {
    size: u64,
    md5: Option<String>,
    multipart: Option<(u64, String)>,
    checksum: Option<Checksum>,
}

#[derive(Debug, Default)]
struct Outcome {
    etag_checked: bool,
    checksum_checked: bool,
}

/// Hashes a body as it passes and fails the stream at its end if the digest is wrong.
struct VerifyingStream {
    inner: ByteStream,
    hasher: Option<Hasher>,
    /// Part MD5s computed by the read itself (parallel), complete when the body ends.
    part_md5s: Option<larder_store::PartMd5s>,
    composite: Option<CompositeHasher>,
    expect: Expect,
    location: String,
    outcome: Arc<Mutex<Outcome>>,
}

impl VerifyingStream {
    fn check(&mut self) -> Result<()> {
        let hasher = self.hasher.take().expect("checked once");
        let d = hasher.finish();
        let fail = |what: String| {
            Err(Error::new(ErrorKind::Integrity, Op::Get, self.location.clone()).with_detail(what))
        };
        if d.size != self.expect.size {
            return fail(format!(
                "read {} bytes, the source said {}",
                d.size, self.expect.size
            ));
        }
        let mut out = self.outcome.lock().expect("outcome lock");
        if let Some(want) = &self.expect.md5 {
            let got = d.md5_hex().unwrap_or_default();
            if got != *want {
                return fail(format!(
                    "the bytes read hash to MD5 {got} but the source's ETag is {want}"
                ));
            }
            out.etag_checked = true;
        }
        if let Some((p, want)) = &self.expect.multipart {
            let got = match &self.part_md5s {
                Some(m) => match m.in_order() {
                    Some(parts) if parts.len() as u64 == d.size.div_ceil(*p).max(1) => {
                        larder_store::integrity::multipart_etag(&parts)
                    }
                    _ => {
                        return fail(format!(
                            "the read did not hash every {p}-byte part of the object"
                        ))
                    }
                },
                None => d.multipart_etag().unwrap_or_default(),
            };
            if got != *want {
                return fail(format!(
                    "the bytes read have multipart ETag {got} but the source's is {want}"
                ));
            }
            out.etag_checked = true;
        }
        if let Some(want) = &self.expect.checksum {
            let got = match self.composite.take() {
                Some(c) => c.finish(),
                None => d.checksum(want.algorithm).cloned().expect("computed"),
            };
            if got.value != want.value {
                return fail(format!(
                    "the bytes read have {} {} but the source's is {}",
                    want.algorithm, got.value, want.value
                ));
            }
            out.checksum_checked = true;
        }
        Ok(())
    }
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.hasher.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.hasher.as_mut().expect("live").update(&chunk);
                if let Some(c) = &mut this.composite {
                    c.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.hasher = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => match this.check() {
                Ok(()) => Poll::Ready(None),
                Err(e) => Poll::Ready(Some(Err(e))),
            },
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Options of one transfer.
#[derive(Clone)]
pub(crate) struct TransferOptions {
    pub checksum: Option<ChecksumAlgorithm>,
    pub guess_content_type: bool,
    pub write: crate::WriteOptions,
    pub bandwidth: Option<Arc<crate::ratelimit::RateLimiter>>,
    /// User metadata added to every write (a versioned sync's origin version id).
    pub extra_metadata: std::collections::BTreeMap<String, String>,
    /// Changes each write before it is sent.
    pub preprocess: Option<Arc<dyn crate::callbacks::PreprocessCallback>>,
    /// When the server copies the object instead.
    pub server_side_copy: crate::ServerSideCopy,
    /// Told as the bytes move.
    pub progress: Option<crate::ProgressHandler>,
    /// What the transfers in flight may hold in memory together.
    pub memory: Option<Arc<crate::budget::MemoryBudget>>,
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("checksum", &self.checksum)
            .field("write", &self.write)
            .field("server_side_copy", &self.server_side_copy)
            .finish_non_exhaustive()
    }
}

impl Default for TransferOptions {
    /// A plain copy: no checksum, the Content-Type guessed, nothing overridden or limited.
    fn default() -> Self {
        TransferOptions {
            checksum: None,
            guess_content_type: true,
            write: Default::default(),
            bandwidth: None,
            extra_metadata: Default::default(),
            preprocess: None,
            server_side_copy: Default::default(),
            progress: None,
            memory: None,
        }
    }
}

impl TransferOptions {
    /// What a sync's transfers share: its checksum, write options, bandwidth limit and
    /// preprocess callback.
    pub fn for_sync(opts: &crate::SyncOptions) -> Self {
        TransferOptions {
            checksum: opts.checksum,
            guess_content_type: opts.guess_content_type,
            write: opts.write.clone(),
            bandwidth: opts
                .rate_limit_bandwidth
                .map(crate::ratelimit::RateLimiter::bytes),
            extra_metadata: Default::default(),
            preprocess: opts.preprocess_callback.clone(),
            server_side_copy: opts.server_side_copy,
            progress: opts.on_progress.clone(),
            memory: Some(Arc::new(crate::budget::MemoryBudget::new(
                opts.max_buffer_memory,
                opts.part_size,
                opts.parts_in_flight as u64 + 1,
            ))),
        }
    }
}

/// The Content-Type a key's extension suggests.
pub(crate) fn guessed_content_type(key: &str) -> Option<String> {
    mime_guess::from_path(key)
        .first()
        .map(|m| m.essence_str().to_owned())
}

/// Copies `entry` from `src` to `dst` (over `dst_entry`, as listed), verified.
pub(crate) async fn transfer(
    src: &Arc<dyn Store>,
    dst: &Arc<dyn Store>,
    entry: &Entry,
    dst_entry: Option<&Entry>,
    opts: &TransferOptions,
) -> Result<Transferred> {
    if let Some(t) = crate::server_copy::try_copy(src, dst, entry, dst_entry, opts).await? {
        return Ok(t);
    }
    // The bytes pass through here: their share of the memory budget first.
    let _room = match &opts.memory {
        Some(m) => Some(m.reserve(entry.size).await),
        None => None,
    };
    let src_caps = src.capabilities();
    let want_checksum = opts.checksum.filter(|_| src_caps.checksums);
    // A multipart object: its part size first (one HEAD), so the read can be split along
    // its parts and each part hashed on its own, in parallel.
    let listed_parts = entry
        .etag
        .as_deref()
        .and_then(etag_part_count)
        .filter(|n| *n > 1);
    let first = match listed_parts {
        Some(_) if src_caps.etag_md5 => src.first_part(&entry.key).await?,
        _ => larder_store::FirstPart::default(),
    };
    let part_size = first.size;
    // A whole-object CRC stored with the version listed covers every byte: the read is
    // verified by it, at memory speed, instead of by MD5s. A multipart object's comes with
    // the part-size lookup; a large single-part object's with the read itself (below).
    let crc_stands =
        |c: &Checksum| c.is_full_crc() && want_checksum.is_none_or(|a| a == c.algorithm);
    let listed_etag = entry.etag.as_deref().map(normalize_etag);
    let mut by_crc = first
        .full_crc
        .filter(|c| first.etag == listed_etag && crc_stands(c));
    // AWS stores a CRC64NVME with every new object: for a large single-part one the read
    // asks for the stored checksum (in the GET's headers, or the one HEAD a parallel read
    // makes for it), which then spares a serial MD5 of every byte.
    let single_crc = listed_parts.is_none()
        && src_caps.etag_md5
        && src_caps.checksums
        && entry.size >= CRC_LOOKUP_MIN;
    // A large read into a store that keeps partial copies goes through one, so a failed or
    // killed run is resumed from the whole parts it wrote; the bytes kept are hashed again
    // with the rest, so the source's ETag still vouches for every byte.
    let resume = match (&entry.etag, dst.capabilities().resumable, src_caps.etag_md5) {
        (Some(etag), true, true) if entry.size >= RESUME_MIN => {
            let tag = format!("{}-{}", normalize_etag(etag), entry.size);
            let block = part_size.unwrap_or(RESUME_BLOCK).max(1);
            let found = dst.partial(&entry.key, &tag).await.unwrap_or_else(|e| {
                tracing::warn!("{e}; downloading it whole");
                None
            });
            let (offset, prefix) = match found {
                Some((len, bytes)) if len >= block => {
                    let last_whole = (entry.size - 1) / block * block;
                    ((len / block * block).min(last_whole), Some(bytes))
                }
                _ => (0, None),
            };
            Some((tag, offset, prefix))
        }
        _ => None,
    };
    let offset = resume.as_ref().map_or(0, |r| r.1);
    if offset > 0 {
        tracing::info!(key = %entry.key, offset, "resuming a download from its partial copy");
    }
    let got = src
        .get(
            &entry.key,
            GetOptions::default()
                .with_range((offset > 0).then_some(larder_store::GetRange::From(offset)))
                .with_size_hint(Some(entry.size))
                .with_checksum((want_checksum.is_some() || single_crc) && by_crc.is_none())
                .with_if_match(entry.etag.clone().map(|e| format!("\"{e}\"")))
                .with_part_md5s(if offset > 0 || by_crc.is_some() {
                    None
                } else {
                    part_size
                }),
        )
        .await?;
    let part_md5s = got.part_md5s.clone();
    let meta = got.meta;
    if single_crc && by_crc.is_none() {
        // The read pinned its checksum to the version it read (conditional on the ETag).
        by_crc = meta.checksum.clone().filter(|c| crc_stands(c));
    }
    let mut expect = Expect {
        size: meta.size,
        ..Default::default()
    };
    if src_caps.etag_md5 && by_crc.is_none() {
        if let Some(etag) = meta.etag.as_deref().map(normalize_etag) {
            match etag_part_count(&etag) {
                None if etag.len() == 32 => expect.md5 = Some(etag),
                // A one-part multipart upload: md5(md5(body))-1.
                Some(1) => expect.multipart = Some((meta.size.max(1), etag)),
                Some(_) => {
                    let p = match part_size {
                        Some(p) => Some(p),
                        None => src.first_part_size(&entry.key).await?,
                    };
                    if let Some(p) = p {
                        expect.multipart = Some((p, etag));
                    }
                }
                None => {}
            }
        }
    }
    // Hash only what will be compared: the MD5 for a single-part ETag, the part MD5s for a
    // multipart one (the destination's put computes what it sends itself).
    let mut hasher = Hasher::new();
    if expect.md5.is_none() {
        hasher = hasher.skip_md5();
    }
    // Part MD5s the read computed along the same parts replace a serial pass.
    let parallel_md5s = match (&expect.multipart, part_md5s) {
        (Some((p, _)), Some(m)) if Some(*p) == part_size => Some(m),
        _ => None,
    };
    if let (Some((p, _)), None) = (&expect.multipart, &parallel_md5s) {
        hasher = hasher.with_part_size(*p);
    }
    let mut composite = None;
    if let Some(c) = by_crc {
        hasher = hasher.with_checksum(c.algorithm);
        expect.checksum = Some(c);
    } else if let (Some(a), Some(c)) = (want_checksum, meta.checksum.clone()) {
        if c.algorithm == a {
            hasher = hasher.with_checksum(a);
            if c.is_composite() {
                let p = match &expect.multipart {
                    Some((p, _)) => Some(*p),
                    None => src.first_part_size(&entry.key).await?,
                };
                if let Some(p) = p {
                    composite = Some(CompositeHasher::new(a, p));
                    expect.checksum = Some(c);
                }
            } else {
                expect.checksum = Some(c);
            }
        }
    }
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let (partial, inner) = match resume {
        Some((tag, offset, Some(prefix))) if offset > 0 => (
            Some(larder_store::Partial { tag, offset }),
            limit_bytes(prefix, offset).chain(got.body).boxed(),
        ),
        Some((tag, _, _)) => (Some(larder_store::Partial { tag, offset: 0 }), got.body),
        None => (None, got.body),
    };
    let inner = match &opts.bandwidth {
        Some(l) => l.limit(inner),
        None => inner,
    };
    let body = VerifyingStream {
        inner,
        hasher: Some(hasher),
        part_md5s: parallel_md5s,
        composite,
        expect,
        location: src.location(entry.key.as_str()),
        outcome: outcome.clone(),
    };
    // Without a recorded mtime the source's LastModified stands for it, as compare reads it:
    // the listing's (milliseconds), not the GET's Last-Modified header (whole seconds), or
    // the next run would see the times differ.
    let mtime = meta.mtime.or(entry.last_modified).or(meta.last_modified);
    let src_seen = meta.etag.clone().map(|e| (e, meta.mtime));
    let dst_caps = dst.capabilities();
    // Tags: read only for an object the GET said has some (or could not say).
    let tags = if opts.write.carries_tags(src_caps.tagging, dst_caps.tagging)
        && meta.tag_count != Some(0)
    {
        src.tags(&entry.key).await?
    } else {
        None
    };
    let put_opts =
        put_options(dst, entry, dst_entry, &meta, mtime, tags, opts)?.with_partial(partial);
    // The kept bytes went through the hash; the store writes only what follows them.
    let body = skip_bytes(Box::pin(body), offset);
    let body = match &opts.progress {
        Some(p) => reporting(body, p.clone(), entry, offset),
        None => body,
    };
    let put = dst
        .put(
            &entry.key,
            Body::from_stream(body, Some(meta.size - offset)),
            put_opts,
        )
        .await?;
    let o = outcome.lock().expect("outcome lock");
    let verified = Verified {
        // The S3 backend refuses a put whose ETag differs from the MD5 of what it sent.
        etag: o.etag_checked || (dst_caps.etag_md5 && put.etag.is_some()),
        checksum: o.checksum_checked || (dst_caps.checksums && put.checksum.is_some()),
        server_side: false,
    };
    Ok(Transferred {
        bytes: put.size,
        verified,
        dst_etag: put.etag,
        mtime,
        src_seen,
        dst_version: put.version_id,
    })
}

/// What a write of `entry` carries: the source's metadata (`meta`) as the write options
/// keep and override it, `tags`, the mtime to record, the precondition over what the
/// destination listed, and what the preprocess callback changes.
pub(crate) fn put_options(
    dst: &Arc<dyn Store>,
    entry: &Entry,
    dst_entry: Option<&Entry>,
    meta: &ObjectMeta,
    mtime: Option<std::time::SystemTime>,
    tags: Option<larder_store::Tags>,
    opts: &TransferOptions,
) -> Result<PutOptions> {
    // A directory keeps a Content-Type given (extended attributes), but needs no guess.
    let caps = dst.capabilities();
    let metadata = caps.metadata && !caps.native_mtime;
    let guess = || {
        (opts.guess_content_type && metadata)
            .then(|| guessed_content_type(entry.key.as_str()))
            .flatten()
    };
    let mut put_opts = opts
        .write
        .put_options(meta, guess, tags)
        .with_mtime(mtime)
        .with_checksum(opts.checksum)
        .with_condition(opts.write.condition(
            dst_entry.is_some(),
            dst_entry.and_then(|d| d.etag.as_deref()),
        ));
    put_opts.metadata.extend(opts.extra_metadata.clone());
    if let Some(p) = &opts.preprocess {
        p.preprocess(meta, &mut put_opts).map_err(|e| {
            larder_store::Error::new(
                ErrorKind::Other,
                larder_store::Op::Put,
                dst.location(entry.key.as_str()),
            )
            .with_detail(format!("preprocess callback: {e}"))
        })?;
    }
    Ok(put_opts)
}

/// A single-part read at least this large asks for the object's stored checksum, to be
/// verified by a whole-object CRC where there is one.
const CRC_LOOKUP_MIN: u64 = 16 << 20;

/// Reads at least this large are written through a partial copy, to be resumed.
const RESUME_MIN: u64 = 16 << 20;

/// A single-part object's partial copy is resumed from a multiple of this.
const RESUME_BLOCK: u64 = 8 << 20;

/// `s`, telling `progress` how many bytes of `entry` have moved as each chunk passes
/// (`offset` were already there).
fn reporting(
    s: ByteStream,
    progress: crate::ProgressHandler,
    entry: &Entry,
    offset: u64,
) -> ByteStream {
    let (key, size) = (entry.key.to_string(), entry.size);
    let mut done = offset;
    s.inspect(move |chunk| {
        if let Ok(c) = chunk {
            done += c.len() as u64;
            progress(&crate::Progress::Bytes {
                key: key.clone(),
                done,
                size,
            });
        }
    })
    .boxed()
}

/// The first `n` bytes of `s`.
fn limit_bytes(s: ByteStream, n: u64) -> ByteStream {
    futures::stream::unfold((s, n), |(mut s, left)| async move {
        if left == 0 {
            return None;
        }
        match s.next().await? {
            Ok(mut b) => {
                if b.len() as u64 > left {
                    b.truncate(left as usize);
                }
                let left = left - b.len() as u64;
                Some((Ok(b), (s, left)))
            }
            Err(e) => Some((Err(e), (s, 0))),
        }
    })
    .boxed()
}

/// `s` without its first `n` bytes.
fn skip_bytes(s: ByteStream, n: u64) -> ByteStream {
    if n == 0 {
        return s;
    }
    futures::stream::unfold((s, n), |(mut s, mut skip)| async move {
        loop {
            match s.next().await? {
                Ok(mut b) if skip > 0 => {
                    let k = (b.len() as u64).min(skip);
                    skip -= k;
                    let rest = b.split_off(k as usize);
                    if !rest.is_empty() {
                        return Some((Ok(rest), (s, skip)));
                    }
                }
                other => return Some((other, (s, skip))),
            }
        }
    })
    .boxed()
}

/// Retries `f` on retryable and integrity errors: `retries` more attempts, exponential
/// backoff from 100 ms (with up to as much again of jitter), capped at 10 s.
pub(crate) async fn with_retries<T, F, Fut>(retries: u32, f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    use backon::Retryable;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(retries as usize)
        .with_jitter();
    f.retry(backoff)
        .when(|e: &Error| e.is_retryable() || e.kind() == ErrorKind::Integrity)
        .notify(|e, wait| tracing::info!("retrying after {wait:?}: {e}"))
        .await
}
