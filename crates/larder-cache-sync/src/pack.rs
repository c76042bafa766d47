//! Packs: a zstd frame around a tar whose first member is `meta.json`, then the files it
//! names, flat. Writing is what kache writes; reading assumes the pack is hostile.
//!
//! A pack is read in one pass: `meta.json` is parsed and checked against the listing (cache
//! key, namespace, file names, hash shapes, the size cap) before any file is written; each
//! file is streamed into a staged cache write that hashes it (BLAKE3, and the cache's own
//! SRI hash) as it goes; nothing becomes visible until every declared file is there and
//! matches. Links, devices, absolute names, `..` and duplicates are refused.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Component, Path};

use larder_cache::{Cache, Integrity, Staged, WriteOptions};

use crate::local::entry_cache_key;
use crate::meta::{CachedFile, EntryMeta};

/// Bounds on what a pack may make this machine do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes one pack may unpack to (its members' declared sizes, summed).
    pub max_unpacked: u64,
    /// The largest `meta.json` accepted.
    pub max_meta: u64,
    /// The largest zstd window accepted, as a power of two (bounds the decoder's memory
    /// whatever the frame header claims).
    pub window_log_max: u32,
}

impl Default for Limits {
    /// kache's bounds: 8 GiB unpacked, a 128 MiB window; 16 MiB of `meta.json`.
    fn default() -> Self {
        Limits {
            max_unpacked: 8 << 30,
            max_meta: 16 << 20,
            window_log_max: 27,
        }
    }
}

/// Why a pack was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// The pack is corrupt or hostile; the text says how.
    #[error("{0}")]
    Refused(String),
    /// Reading the compressed stream failed (a truncated or corrupt zstd frame, or the
    /// network).
    #[error("cannot read the pack: {0}")]
    Read(#[source] io::Error),
    /// The cache could not take a file.
    #[error(transparent)]
    Cache(#[from] larder_cache::Error),
}

fn refused(msg: impl Into<String>) -> PackError {
    PackError::Refused(msg.into())
}

/// Builds a pack in memory: `meta.json` first, then each file.
pub struct PackWriter {
    tar: tar::Builder<zstd::stream::write::Encoder<'static, Vec<u8>>>,
}

impl std::fmt::Debug for PackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter").finish_non_exhaustive()
    }
}

impl PackWriter {
    /// Starts a pack with its `meta.json`.
    ///
    /// # Errors
    ///
    /// When the encoder cannot be set up.
    pub fn new(meta_json: &[u8], level: i32) -> io::Result<Self> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), level)?;
        enc.include_checksum(true)?;
        let mut w = PackWriter {
            tar: tar::Builder::new(enc),
        };
        w.add(
            "meta.json",
            meta_json.len() as u64,
            false,
            &mut &meta_json[..],
        )?;
        Ok(w)
    }

    /// Appends a file of `size` bytes read from `data`.
    ///
    /// # Errors
    ///
    /// A read error, or `data` ending before `size` bytes.
    pub fn add(
        &mut self,
        name: &str,
        size: u64,
        executable: bool,
        data: &mut impl Read,
    ) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(size);
        h.set_mode(if executable { 0o755 } else { 0o644 });
        h.set_mtime(0);
        let mut counted = Counted {
            inner: data.take(size),
            n: 0,
        };
        self.tar.append_data(&mut h, name, &mut counted)?;
        if counted.n != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("`{name}` ended after {} of {size} bytes", counted.n),
            ));
        }
        Ok(())
    }

    /// The compressed pack.
    ///
    /// # Errors
    ///
    /// When the encoder fails.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        self.tar.into_inner()?.finish()
    }
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// What the listing says a pack is.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The namespace it was listed under.
    pub namespace: &'a str,
    /// The cache key it was listed as.
    pub cache_key: &'a str,
}

/// A pack read and checked; its files are staged in the cache, not yet visible.
#[derive(Debug)]
pub struct Unpacked {
    /// The parsed `meta.json`.
    pub meta: EntryMeta,
    /// `meta.json`'s bytes, verbatim.
    pub meta_json: Vec<u8>,
    /// Each declared file, staged, in `meta.json`'s order.
    pub files: Vec<(CachedFile, Staged)>,
    /// The bytes unpacked (files and `meta.json`).
    pub unpacked: u64,
}

/// Is `name` a relative path of normal components only?
fn safe_name(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn is_blob_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks `meta.json` against the listing and itself; returns the integrity a larder
/// entry's file must have.
fn check_meta(
    meta: &EntryMeta,
    expect: Expect<'_>,
    limits: &Limits,
) -> Result<Option<Integrity>, PackError> {
    if meta.cache_key != expect.cache_key {
        return Err(refused(format!(
            "meta.json names cache key {}, not the listed {}",
            meta.cache_key, expect.cache_key
        )));
    }
    if meta.crate_name != expect.namespace {
        return Err(refused(format!(
            "meta.json names namespace `{}`, not the listed `{}`",
            meta.crate_name, expect.namespace
        )));
    }
    let mut total = 0u64;
    let mut seen = std::collections::BTreeSet::new();
    for f in &meta.files {
        let ok = safe_name(Path::new(&f.name)).is_some_and(|n| n == f.name);
        if !ok || f.name == "meta.json" {
            return Err(refused(format!(
                "meta.json declares an unsafe file name {:?}",
                f.name
            )));
        }
        if !is_blob_hash(&f.hash) {
            return Err(refused(format!(
                "meta.json declares a malformed hash for `{}`",
                f.name
            )));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(refused(format!("meta.json declares `{}` twice", f.name)));
        }
        total = total.saturating_add(f.size);
    }
    if total > limits.max_unpacked {
        return Err(refused(format!(
            "meta.json declares {total} bytes, over the {}-byte cap",
            limits.max_unpacked
        )));
    }
    let Some(entry) = &meta.larder else {
        return Ok(None);
    };
    if meta.files.len() != 1 {
        return Err(refused("a cache entry's pack must hold exactly one file"));
    }
    let integrity: Integrity = entry.integrity.parse().map_err(|_| {
        refused(format!(
            "meta.json has a bad integrity `{}`",
            entry.integrity
        ))
    })?;
    if entry_cache_key(&entry.key, &entry.integrity) != expect.cache_key {
        return Err(refused(format!(
            "the entry `{}` does not have the cache key {}",
            entry.key, expect.cache_key
        )));
    }
    let pkg = crate::local::npm_package_of_key(&entry.key)
        .or_else(|| crate::local::pacote_package_of_key(&entry.key));
    if let Some(pkg) = pkg {
        if crate::local::namespace_of_package(&pkg).as_deref() != Some(expect.namespace) {
            return Err(refused(format!(
                "the entry `{}` is not of namespace `{}`",
                entry.key, expect.namespace
            )));
        }
    }
    Ok(Some(integrity))
}

struct Blake3Tee<'a, W> {
    inner: &'a mut W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Blake3Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a pack from `compressed` (to its end), checks it against `expect` and stages its
/// files in `cache`.
///
/// # Errors
///
/// [`PackError::Refused`] for anything a pack kache or larder writes would not contain, a
/// file whose BLAKE3 or size differs from `meta.json`, or a cache entry whose content does
/// not match its integrity; [`PackError::Read`] for a corrupt or truncated frame. Nothing is
/// left behind: staged files are removed when the error drops them.
pub fn read_pack<R: Read>(
    compressed: R,
    expect: Expect<'_>,
    cache: &Cache,
    limits: &Limits,
) -> Result<Unpacked, PackError> {
    let mut decoder = zstd::stream::read::Decoder::new(compressed).map_err(PackError::Read)?;
    decoder
        .window_log_max(limits.window_log_max)
        .map_err(PackError::Read)?;
    let mut archive = tar::Archive::new(decoder);
    let mut meta: Option<(EntryMeta, Vec<u8>, Option<Integrity>)> = None;
    let mut staged: BTreeMap<String, (u64, Staged)> = BTreeMap::new();
    let mut declared_total = 0u64;
    for member in archive.entries().map_err(PackError::Read)? {
        let mut member = member.map_err(PackError::Read)?;
        let raw = member.path().map_err(PackError::Read)?.into_owned();
        let Some(name) = safe_name(&raw) else {
            return Err(refused(format!(
                "member {:?} has an unsafe name",
                raw.display().to_string()
            )));
        };
        let kind = member.header().entry_type();
        if !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            return Err(refused(format!(
                "member `{name}` is not a regular file ({kind:?})"
            )));
        }
        let size = member.size();
        declared_total = declared_total.saturating_add(size);
        if declared_total > limits.max_unpacked.saturating_add(limits.max_meta) {
            return Err(refused(format!(
                "the pack unpacks to more than {} bytes (a decompression bomb?)",
                limits.max_unpacked
            )));
        }
        let Some((m, _, integrity)) = &meta else {
            if name != "meta.json" {
                return Err(refused(format!(
                    "the first member is `{name}`, not meta.json"
                )));
            }
            if size > limits.max_meta {
                return Err(refused(format!("meta.json is {size} bytes, over the cap")));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            member.read_to_end(&mut bytes).map_err(PackError::Read)?;
            let parsed: EntryMeta = serde_json::from_slice(&bytes)
                .map_err(|e| refused(format!("meta.json does not parse: {e}")))?;
            let integrity = check_meta(&parsed, expect, limits)?;
            meta = Some((parsed, bytes, integrity));
            continue;
        };
        let Some(declared) = m.files.iter().find(|f| f.name == name) else {
            // Not declared: not imported (kache ignores such members too).
            continue;
        };
        if staged.contains_key(&name) {
            return Err(refused(format!("member `{name}` appears twice")));
        }
        if size != declared.size {
            return Err(refused(format!(
                "member `{name}` is {size} bytes, meta.json says {}",
                declared.size
            )));
        }
        let opts = WriteOptions::default()
            .with_integrity(integrity.clone())
            .with_size(Some(size));
        let mut w = cache.writer(None, opts)?;
        let mut tee = Blake3Tee {
            inner: &mut w,
            hasher: blake3::Hasher::new(),
        };
        io::copy(&mut member, &mut tee).map_err(PackError::Read)?;
        let found = tee.hasher.finalize().to_hex();
        if !found.as_str().eq_ignore_ascii_case(&declared.hash) {
            return Err(refused(format!(
                "`{name}` has BLAKE3 {found}, meta.json says {}",
                declared.hash
            )));
        }
        let s = w.stage().map_err(|e| match e {
            larder_cache::Error::Integrity {
                expected, found, ..
            } => refused(format!("`{name}` is {found}, its entry says {expected}")),
            other => PackError::Cache(other),
        })?;
        staged.insert(name, (size, s));
    }
    // Read the frame to its end, so a caller hashing the compressed bytes sees them all and
    // a truncated frame is an error here.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(PackError::Read)?;
    let Some((meta, meta_json, _)) = meta else {
        return Err(refused("the pack is empty (no meta.json)"));
    };
    let mut files = Vec::with_capacity(meta.files.len());
    let mut unpacked = meta_json.len() as u64;
    for f in &meta.files {
        let Some((size, s)) = staged.remove(&f.name) else {
            return Err(refused(format!(
                "the pack lacks `{}`, declared in meta.json",
                f.name
            )));
        };
        unpacked += size;
        files.push((f.clone(), s));
    }
    Ok(Unpacked {
        meta,
        meta_json,
        files,
        unpacked,
    })
}
