//! Server-side copy, S3 → S3: the destination's server copies the object (CopyObject, or
//! UploadPartCopy along the source's parts) and larder reads none of its bytes.
//!
//! A copy is written like a put: the source's metadata as [`crate::WriteOptions`] keep and
//! override it, the recorded mtime, the precondition and the preprocess callback. It is
//! verified by its ETag: copied in the source's parts, with MD5-based ETags on both sides and
//! no key-dependent encryption, the copy's ETag is the source's exactly. In
//! [`ServerSideCopy::Auto`] a copy that could not be verified that way is not made; the
//! object is streamed and hashed instead.

use std::sync::Arc;

use larder_store::integrity::{etag_part_count, normalize_etag};
use larder_store::{CopyFrom, Entry, ErrorKind, Result, Store};

use crate::execute::{put_options, TransferOptions, Transferred, Verified};

/// When the server copies objects itself instead of larder reading and writing their bytes
/// (`--server-side-copy`, `--no-server-side-copy`).
///
/// A server-side copy moves no bytes through larder, so the bandwidth limit does not apply
/// to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerSideCopy {
    /// When both sides are on one server with the same credentials and the copy's ETag can
    /// be checked against the source's (the default).
    #[default]
    Auto,
    /// Whenever the source is an object the destination's server can name, even with other
    /// credentials (which must then reach the source bucket) or when the copy cannot be
    /// verified (it is then reported unverified).
    Always,
    /// Never: every object's bytes pass through larder and are hashed on the way.
    Never,
}

/// Copies `entry` server-side when `opts` and the two stores allow it; `None`: stream it.
pub(crate) async fn try_copy(
    src: &Arc<dyn Store>,
    dst: &Arc<dyn Store>,
    entry: &Entry,
    dst_entry: Option<&Entry>,
    opts: &TransferOptions,
) -> Result<Option<Transferred>> {
    let auto = match opts.server_side_copy {
        ServerSideCopy::Never => return Ok(None),
        ServerSideCopy::Auto => true,
        ServerSideCopy::Always => false,
    };
    let Some(source) = src.copy_source(&entry.key) else {
        return Ok(None);
    };
    if auto && !dst.can_copy_from(&source) {
        return Ok(None);
    }
    let (src_caps, dst_caps) = (src.capabilities(), dst.capabilities());
    let listed = entry.etag.as_deref().map(normalize_etag);
    let etags_comparable = src_caps.etag_md5 && dst_caps.etag_md5 && listed.is_some();
    if auto && !etags_comparable {
        return Ok(None);
    }
    // The part layout the copy must reproduce for its ETag to be the source's.
    let parts = listed.as_deref().and_then(etag_part_count);
    let part_size = match parts {
        None => None,
        Some(1) => Some(entry.size.max(1)),
        Some(_) => src.first_part_size(&entry.key).await?,
    };
    let layout_known = parts.is_none() || part_size.is_some();
    if auto && !layout_known {
        return Ok(None);
    }
    let meta = src.head(&entry.key).await?.ok_or_else(|| {
        larder_store::Error::new(
            ErrorKind::NotFound,
            larder_store::Op::Copy,
            src.location(entry.key.as_str()),
        )
        .with_detail("deleted since it was listed")
    })?;
    // SSE-KMS and SSE-C give each object an ETag of its own.
    let key_encrypted = meta.encryption.as_deref().is_some_and(|e| e != "AES256");
    let verify = etags_comparable && layout_known && !key_encrypted;
    if auto && !verify {
        return Ok(None);
    }
    let mtime = meta.mtime.or(entry.last_modified).or(meta.last_modified);
    // The tags are read and written explicitly: radosgw drops them from a copy that
    // replaces the metadata, whatever the tagging directive says.
    let tags = if opts.write.carries_tags(src_caps.tagging, dst_caps.tagging) {
        src.tags(&entry.key).await?
    } else {
        None
    };
    let put_opts = put_options(dst, entry, dst_entry, &meta, mtime, tags, opts)?;
    let from = CopyFrom {
        source,
        size: entry.size,
        part_size,
        keep_tags: false,
        source_etag: listed,
        verify_etag: verify,
    };
    let put = dst.put_copy(&entry.key, &from, put_opts).await?;
    if let Some(p) = &opts.progress {
        p(&crate::Progress::Bytes {
            key: entry.key.to_string(),
            done: put.size,
            size: entry.size,
        });
    }
    Ok(Some(Transferred {
        bytes: put.size,
        verified: Verified {
            etag: verify,
            checksum: false,
            server_side: true,
        },
        dst_etag: put.etag,
        mtime,
        src_seen: meta.etag.clone().map(|e| (e, meta.mtime)),
        dst_version: put.version_id,
    }))
}
