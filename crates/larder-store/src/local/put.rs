//! Writes to a local directory: a temp file beside the target, written without copying the
//! body, its writeback started as it grows, fsynced, then renamed over the target.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::stream::StreamExt;

use super::{LocalStore, PARTIAL_MARK};
use crate::error::{Error, ErrorKind, Op, Result};
use crate::integrity::Hasher;
use crate::key::TEMP_PREFIX;
use crate::types::*;
use crate::{Key, Store};

impl LocalStore {
    /// Where the partial copy of `key` from a source tagged `tag` is kept: a temp name in
    /// the target's directory, the same for every run.
    pub(super) fn partial_path(target: &Path, key: &Key, tag: &str) -> PathBuf {
        let id = crate::integrity::md5_hex(format!("{}\0{tag}", key.as_str()).as_bytes());
        target
            .parent()
            .expect("a key path has a parent")
            .join(format!("{TEMP_PREFIX}{PARTIAL_MARK}{}", &id[..16]))
    }

    /// Opens the partial copy for a put that starts at `p.offset`: created when new, cut to
    /// the offset, locked (a second writer is refused).
    fn open_partial(
        &self,
        key: &Key,
        target: &Path,
        p: &Partial,
    ) -> Result<(PathBuf, std::fs::File)> {
        use std::io::{Seek, SeekFrom};
        let path = Self::partial_path(target, key, &p.tag);
        let shown = target.display().to_string();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(Op::Put, &shown, e))?;
        if f.try_lock().is_err() {
            return Err(Error::new(ErrorKind::Conflict, Op::Put, shown)
                .with_detail("another larder is writing this file"));
        }
        let len = f
            .metadata()
            .map_err(|e| Error::io(Op::Put, &shown, e))?
            .len();
        if len < p.offset {
            return Err(
                Error::new(ErrorKind::Integrity, Op::Put, shown).with_detail(format!(
                    "the partial copy holds {len} bytes, not the {} to resume from",
                    p.offset
                )),
            );
        }
        f.set_len(p.offset)
            .map_err(|e| Error::io(Op::Put, &shown, e))?;
        let mut f = f;
        f.seek(SeekFrom::Start(p.offset))
            .map_err(|e| Error::io(Op::Put, &shown, e))?;
        Ok((path, f))
    }

    pub(super) async fn put_inner(
        &self,
        key: &Key,
        body: Body,
        opts: &PutOptions,
    ) -> Result<PutResult> {
        if opts.partial.is_none() && body.size().is_some_and(|n| n <= SMALL_PUT) {
            return self.put_small(key, body, opts).await;
        }
        let target = self.path_of(key.as_str(), Op::Put)?;
        let this = self.clone();
        let (t2, k2) = (target.clone(), key.clone());
        self.blocking(key, move || {
            this.make_parents(&k2, &t2)?;
            // Refused now rather than after the whole body is written.
            match this.find_clash(k2.as_str()) {
                Some(clash) => Err(clash),
                None => Ok(()),
            }
        })
        .await?;
        let (tmp, std_file) = match &opts.partial {
            // Opened synchronously (one open(2)): with the open on the blocking pool, a put
            // cancelled while the open was pending would drop the guard first, and the open
            // would then create a temp file that nothing removes.
            None => self.open_temp(&target)?,
            Some(p) => self.open_partial(key, &target, p)?,
        };
        // A partial copy outlives an interrupted put (a later one resumes it); it is removed
        // only when what it holds is known to be wrong (below).
        let guard = TempGuard((opts.partial.is_none()).then(|| tmp.clone()));
        let mut hasher = body_hasher(opts);
        let declared = body.size();
        let mut stream = body.into_stream();
        let at = opts.partial.as_ref().map_or(0, |p| p.offset);
        let mut writer = Writer::new(std_file, at, &target);
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    // Wrong bytes (the source's hash did not match): not worth resuming.
                    if opts.partial.is_some() && e.kind() == ErrorKind::Integrity {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    return Err(e);
                }
            };
            hasher.update(&chunk);
            writer.push(chunk).await?;
        }
        let digests = hasher.finish();
        self.check_size(key, declared, digests.size)?;
        let file = writer.finish().await?;
        let commit = self.committer(&target, opts);
        self.blocking(key, move || commit.run(file, &tmp)).await?;
        guard.disarm();
        Ok(put_result(opts, digests))
    }

    /// A body of at most [`SMALL_PUT`] bytes: gathered first (it is verified as it is read,
    /// so a bad one fails here, before any file exists), then every file operation in one
    /// call on the blocking pool instead of one hop there per operation. A put cancelled
    /// during that call still completes it: the file lands whole, or not at all.
    async fn put_small(&self, key: &Key, body: Body, opts: &PutOptions) -> Result<PutResult> {
        let target = self.path_of(key.as_str(), Op::Put)?;
        let mut hasher = body_hasher(opts);
        let declared = body.size();
        let mut stream = body.into_stream();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            chunks.push(chunk);
        }
        let digests = hasher.finish();
        self.check_size(key, declared, digests.size)?;
        let (this, k2) = (self.clone(), key.clone());
        let commit = self.committer(&target, opts);
        self.blocking(key, move || {
            this.make_parents(&k2, &target)?;
            let (tmp, file) = this.open_temp(&target)?;
            let guard = TempGuard(Some(tmp.clone()));
            write_chunks(&file, &chunks).map_err(|e| Error::io(Op::Put, target.display(), e))?;
            // A directory at the target fails the rename: named as the clash it is.
            commit
                .run(file, &tmp)
                .map_err(|e| this.find_clash(k2.as_str()).unwrap_or(e))?;
            guard.disarm();
            Ok(())
        })
        .await?;
        Ok(put_result(opts, digests))
    }

    /// Creates the target's parent directories (none when this store knows they exist); a
    /// file in the way is a conflict naming it.
    fn make_parents(&self, key: &Key, target: &Path) -> Result<()> {
        let parent = target.parent().expect("a key path has a parent");
        self.dirs.ensure(parent).map_err(|e| {
            self.find_clash(key.as_str())
                .unwrap_or_else(|| Error::io(Op::Put, parent.display(), e))
        })
    }

    /// Creates a fresh temp file beside `target` ([`open_temp`]). A parent this store knew
    /// but that is gone (removed behind its back) is made again, once.
    fn open_temp(&self, target: &Path) -> Result<(PathBuf, std::fs::File)> {
        let parent = target.parent().expect("a key path has a parent");
        match open_temp(target) {
            Err(e) if e.is_not_found() => {
                self.dirs.forget(parent);
                self.dirs
                    .ensure(parent)
                    .map_err(|e| Error::io(Op::Put, parent.display(), e))?;
                open_temp(target)
            }
            r => r,
        }
    }

    /// Runs `f` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        key: &Key,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            Error::new(ErrorKind::Other, Op::Put, self.location(key.as_str())).with_source(e)
        })?
    }

    fn check_size(&self, key: &Key, declared: Option<u64>, read: u64) -> Result<()> {
        match declared {
            Some(want) if want != read => {
                Err(
                    Error::new(ErrorKind::Integrity, Op::Put, self.location(key.as_str()))
                        .with_detail(format!(
                            "the body was {want} bytes long when opened but {read} bytes were read"
                        )),
                )
            }
            _ => Ok(()),
        }
    }

    fn committer(&self, target: &Path, opts: &PutOptions) -> Commit {
        Commit {
            target: target.to_path_buf(),
            attrs: PutOptions {
                content_type: opts.content_type.clone(),
                cache_control: opts.cache_control.clone(),
                headers: opts.headers.clone(),
                metadata: opts.metadata.clone(),
                ..Default::default()
            },
            mtime: opts.mtime,
            no_xattrs: self.no_xattrs.clone(),
            dirs: self.dirs.clone(),
        }
    }
}

/// Bodies up to this size are gathered and written in one blocking call
/// ([`LocalStore::put_small`]).
const SMALL_PUT: u64 = 1 << 20;

/// Only the size and an asked-for checksum: the bytes were verified as they were read (the
/// sync engine checks them against the source's ETag before the put returns), so a
/// whole-body MD5 here would be a second, serial pass over every byte.
fn body_hasher(opts: &PutOptions) -> Hasher {
    let hasher = Hasher::new().skip_md5();
    match opts.checksum {
        Some(a) => hasher.with_checksum(a),
        None => hasher,
    }
}

fn put_result(opts: &PutOptions, digests: crate::integrity::Digests) -> PutResult {
    PutResult {
        size: digests.size,
        etag: None,
        checksum: opts.checksum.and_then(|a| digests.checksum(a).cloned()),
        digests: Some(digests),
        version_id: None,
    }
}

/// Creates a fresh temp file beside `target`, locked: a cleanup
/// ([`LocalStore::with_temp_cleanup`]) takes an unlocked temp file for one a killed run left
/// behind (where locks are unsupported, files are left). Errors name the target, the path
/// the user knows.
fn open_temp(target: &Path) -> Result<(PathBuf, std::fs::File)> {
    let parent = target.parent().expect("a key path has a parent");
    let tmp = parent.join(format!("{TEMP_PREFIX}{:016x}", rand_u64()));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(Op::Put, target.display(), e))?;
    let _ = f.try_lock();
    Ok((tmp, f))
}

/// What a written temp file becomes: the target, with its metadata and mtime, its bytes
/// durable (its name too, once the store is flushed).
struct Commit {
    target: PathBuf,
    attrs: PutOptions,
    mtime: Option<SystemTime>,
    no_xattrs: Arc<std::sync::atomic::AtomicBool>,
    dirs: Arc<super::dirs::Dirs>,
}

impl Commit {
    fn run(self, file: std::fs::File, tmp: &Path) -> Result<()> {
        let target = &self.target;
        let io = |e| Error::io(Op::Put, target.display(), e);
        // Before the rename: the file appears with its metadata, never another's.
        match crate::local_meta::write(&file, &self.attrs) {
            Ok(true) => {}
            Ok(false) => {
                if !self
                    .no_xattrs
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(
                        "{}: the file system keeps no extended attributes, so Content-Type and metadata are not kept",
                        target.display()
                    );
                }
            }
            Err(e) => {
                let why = format!("could not set its extended attributes: {e}");
                return Err(io(e).with_detail(why));
            }
        }
        if let Some(t) = self.mtime {
            file.set_modified(t).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        // Renamed while still open and locked (Unix allows it), so no cleanup can take the
        // file for stale in between; elsewhere closed first, as rename requires.
        #[cfg(not(unix))]
        drop(file);
        std::fs::rename(tmp, target).map_err(io)?;
        #[cfg(unix)]
        drop(file);
        // The rename itself is made durable with the directory's other changes, at the
        // store's flush (one directory sync for all the files put there).
        self.dirs.changed(target.parent()).map_err(io)
    }
}

/// Writes a put's body to its temp file on the blocking pool, without copying it: chunks
/// are gathered up to [`WRITE_BATCH`] and written in one blocking call. Every
/// [`WRITEBACK_STEP`] written, Linux is asked to start writing them to disk
/// ([`start_writeback`]), so the fsync before the rename finds little left to flush and a
/// large download's disk writes overlap its network reads.
struct Writer {
    file: Arc<std::fs::File>,
    batch: Vec<bytes::Bytes>,
    batched: usize,
    written: u64,
    flushed_to: u64,
    target: String,
}

/// Bytes gathered before a write.
const WRITE_BATCH: usize = 1 << 20;
/// Bytes written between two writeback requests.
const WRITEBACK_STEP: u64 = 8 << 20;

impl Writer {
    /// A writer of `file` from its offset `at` (a resumed partial copy's length, else 0).
    fn new(file: std::fs::File, at: u64, target: &Path) -> Self {
        Writer {
            file: Arc::new(file),
            batch: Vec::new(),
            batched: 0,
            written: at,
            flushed_to: at,
            target: target.display().to_string(),
        }
    }

    async fn push(&mut self, chunk: bytes::Bytes) -> Result<()> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= WRITE_BATCH {
            self.write().await?;
        }
        Ok(())
    }

    async fn write(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        let len = std::mem::take(&mut self.batched) as u64;
        let file = self.file.clone();
        let end = self.written + len;
        let writeback = (end - self.flushed_to >= WRITEBACK_STEP).then_some(self.flushed_to);
        let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            write_chunks(&file, &batch)?;
            if let Some(from) = writeback {
                start_writeback(&file, from, end - from);
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Other, Op::Put, self.target.clone()).with_source(e))?;
        done.map_err(|e| Error::io(Op::Put, self.target.clone(), e))?;
        self.written = end;
        if writeback.is_some() {
            self.flushed_to = end;
        }
        Ok(())
    }

    /// Writes what is gathered and hands the file back.
    async fn finish(mut self) -> Result<std::fs::File> {
        if !self.batch.is_empty() {
            self.write().await?;
        }
        Ok(Arc::try_unwrap(self.file)
            .unwrap_or_else(|f| f.try_clone().expect("a file handle can be duplicated")))
    }
}

/// Writes `chunks` one after the other with as few `writev` calls as the platform allows.
fn write_chunks(mut file: &std::fs::File, chunks: &[bytes::Bytes]) -> std::io::Result<()> {
    use std::io::{IoSlice, Write};
    /// Linux's `IOV_MAX`: more slices in one call is `EINVAL`.
    const MAX_SLICES: usize = 1024;
    for group in chunks.chunks(MAX_SLICES) {
        let mut slices: Vec<IoSlice<'_>> = group.iter().map(|c| IoSlice::new(c)).collect();
        let mut rest = &mut slices[..];
        // Drops leading empty slices: a group of only empty chunks writes nothing (a
        // `writev` of them would return 0, read as WriteZero below).
        IoSlice::advance_slices(&mut rest, 0);
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Asks the kernel to start writing `len` bytes from `offset` to disk, without waiting for
/// it: on Linux, `POSIX_FADV_DONTNEED` over dirty pages starts their writeback (and drops
/// the clean ones from the page cache, which a download does not read again). Elsewhere
/// the fsync before the rename does it all.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use rustix::fs::{fadvise, Advice};
    // Advice: a failure only means the fsync does all the work.
    let _ = fadvise(
        file,
        offset,
        std::num::NonZeroU64::new(len),
        Advice::DontNeed,
    );
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

/// Removes a temp file when a put fails or is cancelled.
struct TempGuard(Option<PathBuf>);

impl TempGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher as _};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_past_the_slice_limit_are_written_whole_and_in_order() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        // More slices than one writev takes, of uneven sizes (some empty).
        let chunks: Vec<bytes::Bytes> = (0..2500u32)
            .map(|i| bytes::Bytes::from(vec![(i % 251) as u8; (i % 7) as usize]))
            .collect();
        write_chunks(tmp.as_file(), &chunks).unwrap();
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(std::fs::read(tmp.path()).unwrap(), want);
    }
}
