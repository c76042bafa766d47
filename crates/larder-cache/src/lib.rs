//! A verified, content-addressed cache whose directory is npm's `cacache` format, so npm
//! caches can be read and written, and synced.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let cache = larder_cache::Cache::new(dir.path());
//! let sri = cache.put("my-key", b"hello").unwrap();
//! assert_eq!(cache.get("my-key").unwrap(), b"hello");
//! assert_eq!(cache.get_hash(&sri).unwrap(), b"hello");
//! ```
//!
//! Large content streams in and out without being held in memory; the reader checks the
//! digest as the bytes go and fails instead of handing on corrupt ones:
//!
//! ```
//! use std::io::{Read, Write};
//! let dir = tempfile::tempdir().unwrap();
//! let cache = larder_cache::Cache::new(dir.path());
//! let mut w = cache.writer(Some("big"), Default::default()).unwrap();
//! for _ in 0..4 {
//!     w.write_all(&[7u8; 1 << 20]).unwrap();
//! }
//! let sri = w.commit().unwrap(); // hashed as written, renamed into place
//! let mut r = cache.reader("big").unwrap();
//! let mut n = 0;
//! let mut buf = vec![0u8; 64 << 10];
//! loop {
//!     let k = r.read(&mut buf).unwrap();
//!     if k == 0 { break }
//!     n += k;
//! }
//! assert_eq!(n, 4 << 20);
//! assert_eq!(r.check().unwrap(), sri);
//! ```
//!
//! # Layout
//!
//! * `content-v2/<algo>/<hex 2>/<hex 2>/<rest>`: the content, named by its digest.
//! * `index-v5/…`: append-only buckets of index lines (see [`index`]).
//! * `tmp/`: writes in progress; renamed into `content-v2/` when complete.
//!
//! # Safety
//!
//! Content is written to `tmp/`, fsynced and renamed into place, so a content path holds
//! whole content or nothing. An index line is one `write(2)` in append mode; a torn or
//! corrupt line is skipped when read. Every read is hashed, and a mismatch is an
//! [`Error::Integrity`], never data. [`Cache::verify`] removes corrupt and unreferenced
//! content, index entries whose content is gone, and stale temp files.
#![warn(missing_docs)]

pub mod r#async;
pub mod index;
pub mod sri;
pub mod store;
mod stream;

pub use stream::{Reader, Staged, Writer};

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use sri::{Algorithm, Integrity};

/// A cache error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No entry for the key.
    #[error("no cache entry for key `{0}`")]
    EntryNotFound(String),
    /// The index names content that is not there.
    #[error("the content of `{0}` is missing from the cache")]
    ContentNotFound(String),
    /// The content does not hash to its address: corrupt, and not returned.
    #[error("the content of `{what}` is corrupt: expected {expected}, found {found}")]
    Integrity {
        /// The key or integrity read.
        what: String,
        /// What the index or caller expected.
        expected: String,
        /// What the bytes hash to.
        found: String,
    },
    /// A file-system operation failed.
    #[error("failed to {op} `{}`", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An integrity string that does not parse.
    #[error(transparent)]
    BadIntegrity(#[from] sri::BadIntegrity),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// One index entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The content's address.
    pub integrity: Integrity,
    /// When it was written.
    pub time: SystemTime,
    /// The content size, if recorded.
    pub size: Option<u64>,
    /// Free-form metadata.
    pub metadata: Option<serde_json::Value>,
    /// The content's path.
    pub path: PathBuf,
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    /// The hash algorithm (default SHA-512, as npm).
    pub algorithm: Option<Algorithm>,
    /// Metadata to store with the entry.
    pub metadata: Option<serde_json::Value>,
    /// The size the content must have.
    pub size: Option<u64>,
    /// The integrity the content must have.
    pub integrity: Option<Integrity>,
}

larder_store::with_setters!(WriteOptions {
    with_algorithm => algorithm: Option<Algorithm>,
    with_metadata => metadata: Option<serde_json::Value>,
    with_size => size: Option<u64>,
    with_integrity => integrity: Option<Integrity>,
});

/// What [`Cache::verify`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyStats {
    /// Content files that hashed correctly and are referenced.
    pub verified_content: u64,
    /// Content files removed because they were corrupt.
    pub bad_content: u64,
    /// Content files removed because no entry referenced them.
    pub reclaimed_count: u64,
    /// Bytes those removals freed.
    pub reclaimed_size: u64,
    /// Index entries kept.
    pub total_entries: u64,
    /// Index entries dropped (content missing or corrupt).
    pub rejected_entries: u64,
    /// Stale temp files removed.
    pub removed_tmp: u64,
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_name() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Cache {
    /// The cache at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where content with this integrity lives.
    pub fn content_path(&self, sri: &Integrity) -> PathBuf {
        let h = sri.hex();
        self.root
            .join("content-v2")
            .join(sri.algorithm.as_str())
            .join(&h[..2])
            .join(&h[2..4])
            .join(&h[4..])
    }

    /// Writes `data` under `key`; returns its integrity.
    ///
    /// # Errors
    ///
    /// File-system failures, naming the path.
    pub fn put(&self, key: &str, data: &[u8]) -> Result<Integrity> {
        self.put_with(key, data, WriteOptions::default())
    }

    /// Writes `data` under `key` with options.
    ///
    /// # Errors
    ///
    /// File-system failures; [`Error::Integrity`] when `opts` named an integrity or size the
    /// data does not have.
    pub fn put_with(&self, key: &str, data: &[u8], opts: WriteOptions) -> Result<Integrity> {
        let mut w = self.writer(Some(key), opts)?;
        w.write_all(data).map_err(io("write", &w.tmp))?;
        w.commit()
    }

    /// Writes content without an index entry.
    ///
    /// # Errors
    ///
    /// As [`Cache::put`].
    pub fn put_hash(&self, data: &[u8]) -> Result<Integrity> {
        let mut w = self.writer(None, WriteOptions::default())?;
        w.write_all(data).map_err(io("write", &w.tmp))?;
        w.commit()
    }

    /// A streaming writer; nothing is visible until [`Writer::commit`].
    ///
    /// # Errors
    ///
    /// When the temp file cannot be created.
    pub fn writer(&self, key: Option<&str>, opts: WriteOptions) -> Result<Writer> {
        let dir = self.root.join("tmp");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let tmp = dir.join(random_name());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        Ok(Writer {
            cache: self.clone(),
            key: key.map(str::to_owned),
            hasher: sri::IntegrityHasher::new(match &opts.integrity {
                Some(want) => want.algorithm,
                None => opts.algorithm.unwrap_or(Algorithm::Sha512),
            }),
            opts,
            file: Some(file),
            tmp,
            size: 0,
            committed: false,
        })
    }

    /// The entry of `key`, if any.
    ///
    /// # Errors
    ///
    /// When the index cannot be read.
    pub fn info(&self, key: &str) -> Result<Option<Entry>> {
        let line = index::find(&self.root, key).map_err(io("read the index of", &self.root))?;
        Ok(line.and_then(|l| self.entry(l)))
    }

    fn entry(&self, l: index::Line) -> Option<Entry> {
        let integrity: Integrity = l.integrity.as_deref()?.parse().ok()?;
        Some(Entry {
            path: self.content_path(&integrity),
            key: l.key,
            integrity,
            time: UNIX_EPOCH + Duration::from_millis(l.time),
            size: l.size,
            metadata: l.metadata,
        })
    }

    /// Reads the content of `key`, verified.
    ///
    /// # Errors
    ///
    /// [`Error::EntryNotFound`], [`Error::ContentNotFound`], [`Error::Integrity`].
    pub fn get(&self, key: &str) -> Result<Vec<u8>> {
        let e = self
            .info(key)?
            .ok_or_else(|| Error::EntryNotFound(key.to_owned()))?;
        self.read_verified(&e.integrity, key)
    }

    /// Reads content by integrity, verified.
    ///
    /// # Errors
    ///
    /// [`Error::ContentNotFound`], [`Error::Integrity`].
    pub fn get_hash(&self, sri: &Integrity) -> Result<Vec<u8>> {
        self.read_verified(sri, &sri.to_string())
    }

    fn read_verified(&self, sri: &Integrity, what: &str) -> Result<Vec<u8>> {
        let path = self.content_path(sri);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ContentNotFound(what.to_owned()))
            }
            Err(e) => return Err(io("read", &path)(e)),
        };
        let found = Integrity::compute(sri.algorithm, &data);
        if found != *sri {
            return Err(Error::Integrity {
                what: what.to_owned(),
                expected: sri.to_string(),
                found: found.to_string(),
            });
        }
        Ok(data)
    }

    /// A streaming reader of `key`'s content; call [`Reader::check`] at the end.
    ///
    /// # Errors
    ///
    /// [`Error::EntryNotFound`], [`Error::ContentNotFound`].
    pub fn reader(&self, key: &str) -> Result<Reader> {
        let e = self
            .info(key)?
            .ok_or_else(|| Error::EntryNotFound(key.to_owned()))?;
        self.reader_hash_named(&e.integrity, key)
    }

    /// A streaming reader of content by integrity.
    ///
    /// # Errors
    ///
    /// [`Error::ContentNotFound`].
    pub fn reader_hash(&self, sri: &Integrity) -> Result<Reader> {
        self.reader_hash_named(sri, &sri.to_string())
    }

    fn reader_hash_named(&self, sri: &Integrity, what: &str) -> Result<Reader> {
        let path = self.content_path(sri);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::ContentNotFound(what.to_owned()))
            }
            Err(e) => return Err(io("open", &path)(e)),
        };
        Ok(Reader {
            file,
            hasher: sri::IntegrityHasher::new(sri.algorithm),
            expected: sri.clone(),
            what: what.to_owned(),
        })
    }

    /// Indexes content that is already in the cache under `key` (a copy without moving
    /// bytes).
    ///
    /// # Errors
    ///
    /// [`Error::ContentNotFound`] when the content is not there; index write failures.
    pub fn insert(
        &self,
        key: &str,
        sri: &Integrity,
        size: Option<u64>,
        metadata: Option<serde_json::Value>,
    ) -> Result<()> {
        if !self.exists_hash(sri) {
            return Err(Error::ContentNotFound(sri.to_string()));
        }
        let line = index::Line {
            key: key.to_owned(),
            integrity: Some(sri.to_string()),
            time: now_ms(),
            size,
            metadata,
        };
        index::append(&self.root, &line).map_err(io("append to the index of", &self.root))
    }

    /// Whether `key` has an entry (its content is not checked).
    ///
    /// # Errors
    ///
    /// When the index cannot be read.
    pub fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.info(key)?.is_some())
    }

    /// Whether content with this integrity is present (not verified).
    pub fn exists_hash(&self, sri: &Integrity) -> bool {
        self.content_path(sri).is_file()
    }

    /// Every live entry, by bucket.
    ///
    /// # Errors
    ///
    /// When the index cannot be read.
    pub fn ls(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for b in index::buckets(&self.root).map_err(io("list", &self.root))? {
            let lines = index::read_bucket(&b).map_err(io("read", &b))?;
            out.extend(index::live(lines).into_iter().filter_map(|l| self.entry(l)));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Removes `key`'s entry (its content stays until [`Cache::verify`]).
    ///
    /// # Errors
    ///
    /// When the index cannot be written.
    pub fn rm_entry(&self, key: &str) -> Result<()> {
        let line = index::Line {
            key: key.to_owned(),
            integrity: None,
            time: now_ms(),
            size: None,
            metadata: None,
        };
        index::append(&self.root, &line).map_err(io("append to the index of", &self.root))
    }

    /// Removes content (entries pointing at it then read as missing content).
    ///
    /// # Errors
    ///
    /// A file-system failure other than not-found.
    pub fn rm_content(&self, sri: &Integrity) -> Result<()> {
        let p = self.content_path(sri);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &p)(e)),
        }
    }

    /// Removes the index, the content and temp files.
    ///
    /// # Errors
    ///
    /// A file-system failure other than not-found.
    pub fn clear(&self) -> Result<()> {
        for d in ["index-v5", "content-v2", "tmp"] {
            let p = self.root.join(d);
            match std::fs::remove_dir_all(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &p)(e)),
            }
        }
        Ok(())
    }

    /// Copies `key`'s content to `dest`, verified, through a temp file beside it.
    ///
    /// # Errors
    ///
    /// As [`Cache::get`], and file-system failures at `dest`.
    pub fn copy_out(&self, key: &str, dest: &Path) -> Result<u64> {
        let data = self.get(key)?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let tmp = dir.join(format!(".larder-tmp.{}", random_name()));
        let r = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, dest)
        })();
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("write", dest)(e));
        }
        Ok(data.len() as u64)
    }

    /// Hard-links `key`'s content to `dest` after verifying it. The link shares the cache's
    /// bytes: writing through it would corrupt the cache (which the next read would catch).
    ///
    /// # Errors
    ///
    /// As [`Cache::get`], and the link failing.
    pub fn hard_link_out(&self, key: &str, dest: &Path) -> Result<()> {
        let e = self
            .info(key)?
            .ok_or_else(|| Error::EntryNotFound(key.to_owned()))?;
        self.read_verified(&e.integrity, key)?;
        std::fs::hard_link(&e.path, dest).map_err(io("link", dest))
    }

    /// Clones `key`'s content to `dest` on file systems that share blocks (Btrfs, XFS, APFS),
    /// after verifying it; falls back to a verified copy elsewhere. Returns whether it cloned.
    ///
    /// # Errors
    ///
    /// As [`Cache::get`], and file-system failures at `dest`.
    pub fn reflink_out(&self, key: &str, dest: &Path) -> Result<bool> {
        let e = self
            .info(key)?
            .ok_or_else(|| Error::EntryNotFound(key.to_owned()))?;
        self.read_verified(&e.integrity, key)?;
        match reflink_copy::reflink(&e.path, dest) {
            Ok(()) => Ok(true),
            Err(_) => self.copy_out(key, dest).map(|_| false),
        }
    }

    /// Indexes an existing file under `key` without copying it: the content path becomes a
    /// symlink to `file` (absolute). Reads verify it like any content, so a later change to
    /// the file is an [`Error::Integrity`], never wrong data.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or the link or index written.
    pub fn link_to(&self, key: &str, file: &Path) -> Result<Integrity> {
        let file = std::fs::canonicalize(file).map_err(io("resolve", file))?;
        let mut h = sri::IntegrityHasher::new(Algorithm::Sha512);
        let mut f = std::fs::File::open(&file).map_err(io("open", &file))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io("read", &file))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as u64;
        }
        let sri = h.finish();
        let dest = self.content_path(&sri);
        let dir = dest.parent().expect("content path has a parent");
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        if !dest.exists() {
            let tmp = dir.join(format!(".link-{}", random_name()));
            std::os::unix::fs::symlink(&file, &tmp).map_err(io("link", &tmp))?;
            std::fs::rename(&tmp, &dest).map_err(io("rename into", &dest))?;
        }
        self.insert(key, &sri, Some(size), None)?;
        Ok(sri)
    }

    /// Rewrites every index bucket with only its live lines (the last per key, deletions
    /// dropped); content is not touched.
    ///
    /// # Errors
    ///
    /// File-system failures.
    pub fn compact(&self) -> Result<u64> {
        let mut dropped = 0;
        for b in index::buckets(&self.root).map_err(io("list", &self.root))? {
            let lines = index::read_bucket(&b).map_err(io("read", &b))?;
            let before = lines.len();
            let keep = index::live(lines);
            dropped += (before - keep.len()) as u64;
            if keep.is_empty() {
                std::fs::remove_file(&b).map_err(io("remove", &b))?;
                continue;
            }
            let text: String = keep
                .iter()
                .map(|l| index::format_line(&serde_json::to_string(l).expect("serializable")))
                .collect();
            let tmp = b.with_extension(format!("tmp{}", random_name()));
            std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
            std::fs::rename(&tmp, &b).map_err(io("rename", &b))?;
        }
        Ok(dropped)
    }

    /// Checks every content file and index entry: removes corrupt content, content no entry
    /// references, entries whose content is gone, and temp files older than `stale_tmp`;
    /// rewrites each bucket with only its live lines.
    ///
    /// # Errors
    ///
    /// File-system failures.
    pub fn verify(&self, stale_tmp: Duration) -> Result<VerifyStats> {
        self.verify_with(stale_tmp, true, &|_| {})
    }

    /// [`Cache::verify`] (`repair`) or [`Cache::check`], calling `checked` with the size of
    /// each content file as it is checked (for progress).
    ///
    /// # Errors
    ///
    /// File-system failures.
    pub fn verify_reporting(
        &self,
        stale_tmp: Duration,
        repair: bool,
        checked: &dyn Fn(u64),
    ) -> Result<VerifyStats> {
        self.verify_with(stale_tmp, repair, checked)
    }

    /// What [`Cache::verify`] would remove, without removing anything.
    ///
    /// # Errors
    ///
    /// File-system failures.
    pub fn check(&self, stale_tmp: Duration) -> Result<VerifyStats> {
        self.verify_with(stale_tmp, false, &|_| {})
    }

    fn verify_with(
        &self,
        stale_tmp: Duration,
        repair: bool,
        checked: &dyn Fn(u64),
    ) -> Result<VerifyStats> {
        let mut st = VerifyStats::default();
        let mut removed = std::collections::HashSet::new();
        // Live entries, per bucket.
        let mut buckets = Vec::new();
        let mut referenced = std::collections::HashSet::new();
        for b in index::buckets(&self.root).map_err(io("list", &self.root))? {
            let lines = index::live(index::read_bucket(&b).map_err(io("read", &b))?);
            for l in &lines {
                if let Some(i) = l
                    .integrity
                    .as_deref()
                    .and_then(|s| s.parse::<Integrity>().ok())
                {
                    referenced.insert(self.content_path(&i));
                }
            }
            buckets.push((b, lines));
        }
        // Content: drop corrupt and unreferenced files.
        let content = self.root.join("content-v2");
        let mut stack = vec![content.clone()];
        while let Some(d) = stack.pop() {
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("list", &d)(e)),
            };
            for e in rd {
                let e = e.map_err(io("list", &d))?;
                let p = e.path();
                if e.file_type().map_err(io("stat", &p))?.is_dir() {
                    stack.push(p);
                    continue;
                }
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                let good = content_matches_path(&content, &p);
                checked(size);
                if !good {
                    st.bad_content += 1;
                } else if !referenced.contains(&p) {
                    st.reclaimed_count += 1;
                    st.reclaimed_size += size;
                } else {
                    st.verified_content += 1;
                    continue;
                }
                if repair {
                    std::fs::remove_file(&p).map_err(io("remove", &p))?;
                } else {
                    removed.insert(p);
                }
            }
        }
        // Index: keep entries whose content is (still) there; compact each bucket.
        for (b, lines) in buckets {
            let (keep, drop): (Vec<_>, Vec<_>) = lines.into_iter().partition(|l| {
                l.integrity
                    .as_deref()
                    .and_then(|s| s.parse::<Integrity>().ok())
                    .is_some_and(|i| {
                        let p = self.content_path(&i);
                        p.is_file() && !removed.contains(&p)
                    })
            });
            st.total_entries += keep.len() as u64;
            st.rejected_entries += drop.len() as u64;
            if !repair {
                continue;
            }
            let mut text = String::new();
            for l in &keep {
                let json = serde_json::to_string(l).expect("serializable");
                text.push_str(&index::format_line(&json));
            }
            let tmp = b.with_extension(format!("tmp{}", random_name()));
            if keep.is_empty() {
                std::fs::remove_file(&b).map_err(io("remove", &b))?;
            } else {
                std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
                std::fs::rename(&tmp, &b).map_err(io("rename", &b))?;
            }
        }
        // Stale temp files: what crashed writers left.
        let tmp = self.root.join("tmp");
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= stale_tmp);
                if old && (!repair || std::fs::remove_file(e.path()).is_ok()) {
                    st.removed_tmp += 1;
                }
            }
        }
        Ok(st)
    }
}

/// Whether the file at `p` (below `content`) hashes to the address its path names.
fn content_matches_path(content: &Path, p: &Path) -> bool {
    let Ok(rel) = p.strip_prefix(content) else {
        return false;
    };
    let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    let [alg, a, b, rest] = parts.as_slice() else {
        return false;
    };
    let algorithm = match *alg {
        "sha1" => Algorithm::Sha1,
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ => return false,
    };
    let Ok(data) = std::fs::read(p) else {
        return false;
    };
    Integrity::compute(algorithm, &data).hex() == format!("{a}{b}{rest}")
}
