//! What compare needs beyond a listing: recorded mtimes, local ETags, checksums.
//!
//! Asked only when sizes already match. An object's recorded mtime comes from the
//! [`MetaCache`] when its ETag and size are the ones cached (what
//! larder saw or wrote last time), else from one HEAD, which is then cached: a re-sync of
//! unchanged data makes no HEAD.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::StreamExt;
use larder_store::integrity::{etag_part_count, ChecksumAlgorithm, CompositeHasher, Hasher};
use larder_store::{Entry, GetOptions, Store};

use crate::compare::{Inspector, Side};
use larder_index::MetaCache;

const MIB: u64 = 1 << 20;

/// Part sizes other tools use, tried when recomputing a multipart ETag of a local file.
const COMMON_PART_SIZES: [u64; 13] = [
    8 * MIB,
    5 * MIB,
    16 * MIB,
    15 * MIB,
    10 * MIB,
    25 * MIB,
    32 * MIB,
    50 * MIB,
    64 * MIB,
    100 * MIB,
    128 * MIB,
    256 * MIB,
    512 * MIB,
];

/// Part sizes that split `size` bytes into exactly `parts` parts, most likely first.
pub fn candidate_part_sizes(size: u64, parts: u64, preferred: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    let fits = |p: u64| p > 0 && size.div_ceil(p) == parts;
    for &p in preferred.iter().chain(COMMON_PART_SIZES.iter()) {
        if fits(p) && !out.contains(&p) {
            out.push(p);
        }
    }
    // The size rounded up to whole MiB, as tools that pick the part size from the file do.
    let even = size.div_ceil(parts).div_ceil(MIB) * MIB;
    if fits(even) && !out.contains(&even) {
        out.push(even);
    }
    out
}

/// An [`Inspector`] over the two stores of a sync.
pub struct StoreInspector {
    src: Arc<dyn Store>,
    dst: Arc<dyn Store>,
    cache: Option<Arc<MetaCache>>,
    /// Whether what is learnt is written to the cache (not in a dry run).
    record: bool,
    part_size: u64,
    heads: AtomicU64,
    /// The stores' identities, the metadata cache's keys (built once, not per lookup).
    ids: [String; 2],
}

impl std::fmt::Debug for StoreInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreInspector")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .finish_non_exhaustive()
    }
}

impl StoreInspector {
    /// An inspector; `part_size` is the one larder uploads with (tried first).
    pub fn new(
        src: Arc<dyn Store>,
        dst: Arc<dyn Store>,
        cache: Option<Arc<MetaCache>>,
        part_size: u64,
    ) -> Self {
        let ids = [src.identity(), dst.identity()];
        StoreInspector {
            src,
            dst,
            cache,
            record: true,
            part_size,
            heads: AtomicU64::new(0),
            ids,
        }
    }

    /// Reads the metadata cache but writes nothing to it: a dry run leaves no state behind,
    /// so the run after it sends exactly the requests the dry run counted.
    pub fn read_only(mut self) -> Self {
        self.record = false;
        self
    }

    /// The cache, when what is learnt may be written to it.
    fn recorder(&self) -> Option<&MetaCache> {
        self.cache.as_deref().filter(|_| self.record)
    }

    /// The identity of `side`'s store.
    pub fn identity(&self, side: Side) -> &str {
        match side {
            Side::Src => &self.ids[0],
            Side::Dst => &self.ids[1],
        }
    }

    pub(crate) fn store(&self, side: Side) -> &Arc<dyn Store> {
        match side {
            Side::Src => &self.src,
            Side::Dst => &self.dst,
        }
    }

    /// How many HEAD requests the inspector made.
    pub fn heads(&self) -> u64 {
        self.heads.load(Ordering::Relaxed)
    }

    /// HEADs `entry` on `side`, counted with the inspector's HEADs; errors are the caller's.
    pub(crate) async fn counted_head(
        &self,
        side: Side,
        entry: &Entry,
    ) -> larder_store::Result<Option<larder_store::ObjectMeta>> {
        self.heads.fetch_add(1, Ordering::Relaxed);
        self.store(side).head(&entry.key).await
    }

    async fn head(&self, side: Side, entry: &Entry) -> Option<larder_store::ObjectMeta> {
        match self.counted_head(side, entry).await {
            Ok(Some(meta)) => {
                if let (Some(c), Some(etag)) = (self.recorder(), &meta.etag) {
                    if Some(etag) == entry.etag.as_ref() && meta.size == entry.size {
                        c.record(
                            self.identity(side),
                            entry.key.as_str(),
                            etag,
                            meta.size,
                            meta.mtime,
                        );
                    }
                }
                Some(meta)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }

    /// The part sizes to recompute a multipart value of `entry` with: the exact one when the
    /// other side's object tells it (the size of its part 1, one HEAD, as s3sync's
    /// `--auto-chunksize`), else the likely ones.
    async fn part_sizes(&self, side: Side, entry: &Entry, parts: u64) -> Vec<u64> {
        match self.exact_part_size(side, entry, parts).await {
            Some(p) => vec![p],
            None => candidate_part_sizes(entry.size, parts, &[self.part_size]),
        }
    }

    /// The part size of the object on the other side than `side` (one HEAD), when it splits
    /// `entry` into `parts` parts.
    async fn exact_part_size(&self, side: Side, entry: &Entry, parts: u64) -> Option<u64> {
        let other = match side {
            Side::Src => Side::Dst,
            Side::Dst => Side::Src,
        };
        self.heads.fetch_add(1, Ordering::Relaxed);
        match self.store(other).first_part_size(&entry.key).await {
            Ok(Some(p)) if entry.size.div_ceil(p) == parts => Some(p),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    }

    /// The ETag a local entry would have, in the shape of `like`: remembered from an earlier
    /// hash of the same file (same size and mtime) when the metadata cache has it, else
    /// computed and remembered. A multipart shape is tried with the likely part sizes first
    /// and asks the object for its exact one (one HEAD) only when none of them matches.
    async fn local_etag(&self, side: Side, entry: &Entry, like: Option<&str>) -> Option<String> {
        let like = like.map(larder_store::integrity::normalize_etag);
        if let (Some(c), Some(like), Some(mtime)) = (&self.cache, &like, entry.last_modified) {
            if c.lookup(self.identity(side), entry.key.as_str(), like, entry.size)
                == Some(Some(mtime))
            {
                return like.clone().into();
            }
        }
        let parts = like.as_deref().and_then(etag_part_count).filter(|n| *n > 1);
        let etag = match parts {
            None => self
                .hash_local(side, entry, &[], None)
                .await
                .and_then(|d| d[0].md5_hex())?,
            Some(parts) => {
                let parts = u64::from(parts);
                let guesses = candidate_part_sizes(entry.size, parts, &[self.part_size]);
                let mut etags = self.multipart_etags(side, entry, &guesses).await?;
                if !etags.iter().any(|e| Some(e) == like.as_ref()) {
                    if let Some(p) = self.exact_part_size(side, entry, parts).await {
                        if !guesses.contains(&p) {
                            etags = self.multipart_etags(side, entry, &[p]).await?;
                        }
                    }
                }
                etags
                    .iter()
                    .find(|e| Some(*e) == like.as_ref())
                    .or(etags.first())
                    .cloned()?
            }
        };
        if let (Some(c), Some(mtime)) = (self.recorder(), entry.last_modified) {
            c.record(
                self.identity(side),
                entry.key.as_str(),
                &etag,
                entry.size,
                Some(mtime),
            );
        }
        Some(etag)
    }

    async fn multipart_etags(
        &self,
        side: Side,
        entry: &Entry,
        part_sizes: &[u64],
    ) -> Option<Vec<String>> {
        if part_sizes.is_empty() {
            return Some(Vec::new());
        }
        let digests = self.hash_local(side, entry, part_sizes, None).await?;
        Some(digests.iter().filter_map(|d| d.multipart_etag()).collect())
    }

    /// Streams an entry's bytes through `f`; `None` when it cannot be read (logged).
    async fn read(&self, side: Side, entry: &Entry, mut f: impl FnMut(&[u8])) -> Option<()> {
        let opts = GetOptions::default().with_size_hint(Some(entry.size));
        let got = match self.store(side).get(&entry.key, opts).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("{e}");
                return None;
            }
        };
        let mut body = got.body;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => f(&c),
                Err(e) => {
                    tracing::warn!("{e}");
                    return None;
                }
            }
        }
        Some(())
    }

    /// Hashes a local entry with several part sizes at once.
    async fn hash_local(
        &self,
        side: Side,
        entry: &Entry,
        part_sizes: &[u64],
        checksum: Option<ChecksumAlgorithm>,
    ) -> Option<Vec<larder_store::integrity::Digests>> {
        let mut hashers: Vec<Hasher> = if part_sizes.is_empty() {
            vec![Hasher::new()]
        } else {
            part_sizes
                .iter()
                .map(|p| Hasher::new().with_part_size(*p))
                .collect()
        };
        if let Some(a) = checksum {
            hashers[0] = std::mem::take(&mut hashers[0]).with_checksum(a);
        }
        self.read(side, entry, |chunk| {
            for h in &mut hashers {
                h.update(chunk);
            }
        })
        .await?;
        Some(hashers.into_iter().map(Hasher::finish).collect())
    }
}

#[async_trait]
impl Inspector for StoreInspector {
    async fn mtime(&self, side: Side, entry: &Entry) -> Option<SystemTime> {
        let store = self.store(side);
        if store.capabilities().native_mtime {
            return entry.last_modified;
        }
        let cached = match (&self.cache, &entry.etag) {
            (Some(c), Some(etag)) => {
                c.lookup(self.identity(side), entry.key.as_str(), etag, entry.size)
            }
            _ => None,
        };
        let recorded = match cached {
            Some(hit) => hit,
            None => self.head(side, entry).await.and_then(|m| m.mtime),
        };
        match side {
            // A source object without a recorded mtime was last written at its LastModified;
            // that is also what a transfer records at the destination.
            Side::Src => recorded.or(entry.last_modified),
            // A destination's own LastModified is its upload time: never compared.
            Side::Dst => recorded,
        }
    }

    async fn etag(&self, side: Side, entry: &Entry, like: Option<&str>) -> Option<String> {
        match &entry.etag {
            Some(e) => Some(e.clone()),
            None => self.local_etag(side, entry, like).await,
        }
    }

    async fn checksum(
        &self,
        side: Side,
        entry: &Entry,
        algorithm: ChecksumAlgorithm,
        like: Option<&str>,
    ) -> Option<String> {
        if self.stores_checksums(side) {
            return self
                .head(side, entry)
                .await
                .and_then(|m| m.checksum)
                .filter(|c| c.algorithm == algorithm)
                .map(|c| c.value);
        }
        let parts = like
            .and_then(|l| l.rsplit_once('-'))
            .and_then(|(_, n)| n.parse::<u64>().ok());
        let Some(parts) = parts else {
            let d = self.hash_local(side, entry, &[], Some(algorithm)).await?;
            return d[0].checksum(algorithm).map(|c| c.value.clone());
        };
        // A composite checksum: recompute it for the part sizes that give that many parts.
        let sizes = self.part_sizes(side, entry, parts).await;
        let mut hashers: Vec<CompositeHasher> = sizes
            .iter()
            .map(|p| CompositeHasher::new(algorithm, *p))
            .collect();
        if hashers.is_empty() {
            return None;
        }
        self.read(side, entry, |chunk| {
            for h in &mut hashers {
                h.update(chunk);
            }
        })
        .await?;
        let values: Vec<String> = hashers.into_iter().map(|h| h.finish().value).collect();
        values
            .iter()
            .find(|v| Some(v.as_str()) == like)
            .or(values.first())
            .cloned()
    }

    fn stores_checksums(&self, side: Side) -> bool {
        self.store(side).capabilities().checksums
    }

    async fn known_mtime(&self, side: Side, entry: &Entry) -> Option<SystemTime> {
        if self.store(side).capabilities().native_mtime {
            return entry.last_modified;
        }
        let (c, etag) = (self.cache.as_ref()?, entry.etag.as_ref()?);
        let recorded = c.lookup(self.identity(side), entry.key.as_str(), etag, entry.size)?;
        match side {
            Side::Src => recorded.or(entry.last_modified),
            Side::Dst => recorded,
        }
    }

    fn etag_md5(&self, side: Side) -> bool {
        self.store(side).capabilities().etag_md5
    }

    fn adopted(&self, _src: &Entry, dst: &Entry, src_mtime: Option<SystemTime>) {
        // An object destination now stands for the source's mtime; a local destination's
        // content was remembered when it was hashed.
        if self.store(Side::Dst).capabilities().native_mtime {
            return;
        }
        if let (Some(c), Some(etag), Some(mtime)) = (self.recorder(), &dst.etag, src_mtime) {
            c.record(
                self.identity(Side::Dst),
                dst.key.as_str(),
                etag,
                dst.size,
                Some(mtime),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_candidates() {
        let c = candidate_part_sizes(20 * MIB, 3, &[8 * MIB]);
        assert_eq!(c[0], 8 * MIB);
        assert!(c.iter().all(|p| (20 * MIB).div_ceil(*p) == 3));
        assert!(candidate_part_sizes(100, 3, &[8 * MIB])
            .iter()
            .all(|p| 100u64.div_ceil(*p) == 3));
    }
}
