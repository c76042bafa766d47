//! A local directory as a [`Store`].
//!
//! # Keys and paths
//!
//! Keys map to paths below the root through [`key_to_relative_path`], which refuses every key
//! that could escape the root (`..`, absolute keys, backslashes, NUL) with
//! [`ErrorKind::InvalidKey`]. A key that clashes with what is on disk (key `a/b` where `a` is a
//! file, or key `a` where `a` is a directory) is [`ErrorKind::Conflict`]: a directory cannot be
//! both, unlike a bucket.
//!
//! # The walk
//!
//! [`Store::list`] yields keys in S3's order (by key bytes) while reading one directory at a
//! time: the children of a directory are sorted by name, a subdirectory `d` sorting as `d/`,
//! so `a-b` (`-` is 0x2d) comes before the keys under `a/` (`/` is 0x2f), which come before
//! `a0`. Memory holds the sorted children of the directories on the current path only. The
//! walk runs on a blocking thread and hands entries over a bounded channel; dropping the
//! stream stops it.
//!
//! Larder's own temp files (names starting with [`TEMP_PREFIX`]) are never listed. Sockets,
//! FIFOs and devices are never read: each is an error item naming it (kind
//! [`ErrorKind::Unsupported`]), as is a file name that is not UTF-8; the walk goes on.
//!
//! # Symlinks
//!
//! [`SymlinkPolicy::Follow`] (the default, as `aws s3 sync`) lists a link as what it points
//! to; a link to a directory that is already on the current path (a loop) is an error item
//! and is not entered, and a dangling link is an error item. [`SymlinkPolicy::Skip`] ignores
//! links altogether (rclone's default).
//!
//! # Writes
//!
//! A put streams into a temp file beside the target (`.larder-tmp.<random>`), fsyncs it,
//! sets its mtime, and renames it over the target, so a reader sees the old file or the
//! whole new one. A failed or cancelled put removes its temp file. The directories the
//! renames (and deletes) changed are synced once each by [`Store::flush`], which the sync
//! engine calls before it reports a run done, rather than once per file; a crash before it
//! can lose a new name, never leave a torn file. Directories the store made or found are
//! remembered, so a put into one of them makes no `mkdir` or `stat`.

use std::collections::VecDeque;
use std::fmt;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;

use crate::error::{Error, ErrorKind, Op, Result};

use crate::key::{key_to_relative_path, name_to_segment, split_prefix, KeyError, TEMP_PREFIX};
use crate::local_meta::FileMeta;
use crate::types::*;
use crate::{Key, Store};

mod dirs;
mod put;

/// What the walk does with symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SymlinkPolicy {
    /// List a link as its target; loops and dangling links are error items.
    #[default]
    Follow,
    /// Ignore links.
    Skip,
}

/// A directory as a [`Store`]. See the module docs.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<PathBuf>,
    symlinks: SymlinkPolicy,
    /// Remove stale temp files met while listing: see [`LocalStore::with_temp_cleanup`].
    cleanup: Option<Arc<TempCleanup>>,
    /// Set once a write found that the file system keeps no extended attributes (warned).
    no_xattrs: Arc<std::sync::atomic::AtomicBool>,
    /// Directories known to exist, and those to sync at the flush.
    dirs: Arc<dirs::Dirs>,
}

/// What [`LocalStore::with_temp_cleanup`] removes, and how many it did.
#[derive(Debug)]
struct TempCleanup {
    before: std::time::SystemTime,
    removed: std::sync::atomic::AtomicU64,
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root.display())
    }
}

impl LocalStore {
    /// A store rooted at `root`. The directory need not exist: listing a missing root yields
    /// nothing, and the first put creates it.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore {
            root: Arc::new(root.into()),
            symlinks: SymlinkPolicy::default(),
            cleanup: None,
            no_xattrs: Arc::default(),
            dirs: Arc::default(),
        }
    }

    /// Listing also removes larder temp files that a killed run left behind: created before
    /// `before` (the start of this run) and not locked by a live writer (every put holds an
    /// exclusive lock on its temp file until the rename). A writer of another live process
    /// keeps its lock, so its file is left alone. [`LocalStore::stale_temps_removed`] counts
    /// them.
    pub fn with_temp_cleanup(mut self, before: std::time::SystemTime) -> Self {
        self.cleanup = Some(Arc::new(TempCleanup {
            before,
            removed: std::sync::atomic::AtomicU64::new(0),
        }));
        self
    }

    /// How many stale temp files listings have removed (see
    /// [`LocalStore::with_temp_cleanup`]).
    pub fn stale_temps_removed(&self) -> u64 {
        self.cleanup
            .as_ref()
            .map_or(0, |c| c.removed.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Sets the symlink policy.
    pub fn with_symlinks(mut self, policy: SymlinkPolicy) -> Self {
        self.symlinks = policy;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key`, or an [`ErrorKind::InvalidKey`] error for `op`.
    pub fn path_of(&self, key: &str, op: Op) -> Result<PathBuf> {
        key_to_relative_path(key)
            .map(|rel| self.root.join(rel))
            .map_err(|e| self.key_error(op, key, e))
    }

    fn key_error(&self, op: Op, key: &str, e: KeyError) -> Error {
        Error::new(ErrorKind::InvalidKey, op, self.location(key))
            .with_detail(e.to_string())
            .with_source(e)
    }

    /// Finds why `key` cannot be written: a file standing where a directory is needed.
    fn find_clash(&self, key: &str) -> Option<Error> {
        let mut path = self.root.to_path_buf();
        let segs: Vec<&str> = key.split('/').collect();
        for (i, seg) in segs.iter().enumerate() {
            path.push(seg);
            let last = i + 1 == segs.len();
            match std::fs::metadata(&path) {
                Ok(m) if !last && !m.is_dir() => {
                    return Some(
                        Error::new(ErrorKind::Conflict, Op::Put, self.location(key)).with_detail(
                            format!(
                                "the key clashes with the file `{}`",
                                path.strip_prefix(&*self.root).unwrap_or(&path).display()
                            ),
                        ),
                    )
                }
                Ok(m) if last && m.is_dir() => {
                    return Some(
                        Error::new(ErrorKind::Conflict, Op::Put, self.location(key))
                            .with_detail("a directory of the same name is there"),
                    )
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    async fn meta_of(&self, key: &Key, op: Op) -> Result<Option<(PathBuf, std::fs::Metadata)>> {
        let path = self.path_of(key.as_str(), op)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some((path, m))),
            // A directory (or a device) is not an object.
            Ok(_) => Ok(None),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::io(op, path.display(), e)),
        }
    }

    fn object_meta(key: &Key, m: &std::fs::Metadata, fm: FileMeta) -> ObjectMeta {
        let mtime = m.modified().ok();
        ObjectMeta {
            key: key.clone(),
            size: m.len(),
            last_modified: mtime,
            etag: None,
            content_type: fm.content_type,
            cache_control: fm.cache_control,
            metadata: fm.metadata,
            mtime,
            checksum: None,
            storage_class: None,
            headers: fm.headers,
            tag_count: None,
            encryption: None,
        }
    }

    /// Removes the object file at `path` (a directory, or nothing, is no object: left
    /// alone) and the directories it leaves empty, recording the directories changed.
    /// Blocking.
    fn remove_object(&self, path: &Path) -> std::io::Result<()> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if !m.is_dir() => {}
            _ => return Ok(()),
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        self.dirs.changed(path.parent())?;
        self.prune_empty_parents(path)
    }

    /// Removes the directories left empty between `path` and the root, as S3 has no empty
    /// prefixes; otherwise a later put of key `a` would clash with an empty directory `a`.
    fn prune_empty_parents(&self, path: &Path) -> std::io::Result<()> {
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == self.root.as_path() || !d.starts_with(&*self.root) {
                break;
            }
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            self.dirs.forget(d);
            self.dirs.changed(d.parent())?;
            dir = d.parent();
        }
        Ok(())
    }
}

/// What follows [`TEMP_PREFIX`] in the name of a partial copy ([`PutOptions::partial`]).
const PARTIAL_MARK: &str = "partial-";

/// How long a partial copy waits for a run to resume it before a cleanup removes it.
const PARTIAL_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[async_trait]
impl Store for LocalStore {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        let (start_rel, _) = match split_prefix(prefix) {
            Ok(v) => v,
            Err(e) => {
                let err = self.key_error(Op::List, prefix, e);
                return futures::stream::once(async move { Err(err) }).boxed();
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(512);
        let walker = Walker {
            root: self.root.clone(),
            policy: self.symlinks,
            cleanup: self.cleanup.clone(),
            prefix: prefix.to_owned(),
            tx,
        };
        let key_base = match prefix.rfind('/') {
            Some(i) => prefix[..=i].to_owned(),
            None => String::new(),
        };
        tokio::task::spawn_blocking(move || walker.run(&start_rel, key_base));
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        let Some((path, m)) = self.meta_of(key, Op::Head).await? else {
            return Ok(None);
        };
        let fm = file_meta(path).await;
        Ok(Some(Self::object_meta(key, &m, fm)))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let path = self.path_of(key.as_str(), Op::Get)?;
        let not_found = || {
            Error::new(ErrorKind::NotFound, Op::Get, self.location(key.as_str()))
                .with_detail("no such file")
        };
        // One trip to the blocking pool: stat (a FIFO or device is never opened), open, and
        // for a small read the bytes too; most of the cost of many small files is the trips.
        let (p, want) = (path.clone(), opts.range.clone());
        let opened = tokio::task::spawn_blocking(move || -> Result<Option<Opened>> {
            use std::io::{Read, Seek};
            let io = |e: std::io::Error| Error::io(Op::Get, p.display(), e);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Ok(None),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(io(e)),
            }
            let mut file = std::fs::File::open(&p).map_err(io)?;
            // The metadata of what was opened, not of what the path named a moment before.
            let m = file.metadata().map_err(io)?;
            if !m.is_file() {
                return Ok(None);
            }
            let range = match &want {
                None => 0..m.len(),
                Some(r) => r.resolve(m.len(), Op::Get, &p.display().to_string())?,
            };
            if range.start > 0 {
                file.seek(SeekFrom::Start(range.start)).map_err(io)?;
            }
            let len = range.end - range.start;
            let data = if len <= SMALL_READ {
                let mut buf = Vec::with_capacity(len as usize);
                (&mut file).take(len).read_to_end(&mut buf).map_err(io)?;
                let after = file.metadata().map_err(io)?;
                if FileStamp::of(&m) != FileStamp::of(&after) {
                    return Err(changed_while_read(&p.display().to_string()));
                }
                Some(buf)
            } else {
                None
            };
            let file_meta = crate::local_meta::read(&file);
            Ok(Some(Opened {
                file,
                meta: m,
                file_meta,
                range,
                data,
            }))
        })
        .await
        .map_err(|e| {
            Error::new(ErrorKind::Other, Op::Get, path.display().to_string()).with_source(e)
        })??;
        let Some(o) = opened else {
            return Err(not_found());
        };
        let meta = Self::object_meta(key, &o.meta, o.file_meta);
        let range = o.range;
        if let Some(data) = o.data {
            let body = futures::stream::once(async move { Ok(bytes::Bytes::from(data)) }).boxed();
            return Ok(GetResult {
                meta,
                range,
                body,
                part_md5s: None,
            });
        }
        let shown = path.display().to_string();
        // At the end, the file is looked at again: one written to while it was read is not
        // handed on as a torn snapshot (the error is retryable).
        let check = o
            .file
            .try_clone()
            .map_err(|e| Error::io(Op::Get, &shown, e))?;
        let (before, shown2) = (o.meta, shown.clone());
        let file = tokio::fs::File::from_std(o.file);
        let end_check = futures::stream::once(async move {
            let after = tokio::task::spawn_blocking(move || check.metadata())
                .await
                .map_err(|e| Error::new(ErrorKind::Other, Op::Get, shown2.clone()).with_source(e))?
                .map_err(|e| Error::io(Op::Get, &shown2, e))?;
            if FileStamp::of(&before) == FileStamp::of(&after) {
                Ok(None)
            } else {
                Err(changed_while_read(&shown2))
            }
        })
        .filter_map(|r: Result<Option<bytes::Bytes>>| async move { r.transpose() });
        let body = tokio_util::io::ReaderStream::with_capacity(
            file.take(range.end - range.start),
            1 << 20,
        )
        .map_err(move |e| Error::io(Op::Get, &shown, e))
        .chain(end_check)
        .boxed();
        Ok(GetResult {
            meta,
            range,
            body,
            part_md5s: None,
        })
    }

    async fn put(&self, key: &Key, body: Body, opts: PutOptions) -> Result<PutResult> {
        self.put_inner(key, body, &opts).await
    }

    async fn flush(&self) -> Result<()> {
        let dirs = self.dirs.clone();
        tokio::task::spawn_blocking(move || dirs.sync())
            .await
            .map_err(|e| Error::new(ErrorKind::Other, Op::Put, self.location("")).with_source(e))?
            .map_err(|e| Error::io(Op::Put, self.root.display(), e))
    }

    async fn partial(&self, key: &Key, tag: &str) -> Result<Option<(u64, ByteStream)>> {
        let target = self.path_of(key.as_str(), Op::Get)?;
        let path = Self::partial_path(&target, key, tag);
        let shown = target.display().to_string();
        let opened = tokio::task::spawn_blocking(
            move || -> std::io::Result<Option<(u64, std::fs::File)>> {
                let f = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                // Locked: a live run is writing it.
                if f.try_lock().is_err() {
                    return Ok(None);
                }
                let _ = f.unlock();
                let len = f.metadata()?.len();
                Ok(Some((len, f)))
            },
        )
        .await
        .map_err(|e| Error::new(ErrorKind::Other, Op::Get, shown.clone()).with_source(e))?
        .map_err(|e| Error::io(Op::Get, &shown, e))?;
        let Some((len, f)) = opened else {
            return Ok(None);
        };
        let body = tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(f).take(len),
            1 << 20,
        )
        .map_err(move |e| Error::io(Op::Get, &shown, e))
        .boxed();
        Ok(Some((len, body)))
    }

    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        let mut report = DeleteReport::default();
        for key in keys {
            let path = match self.path_of(key.as_str(), Op::Delete) {
                Ok(p) => p,
                Err(e) => {
                    report.failed.push((key.clone(), e));
                    continue;
                }
            };
            // One hop to the blocking pool per key: the removal, the pruning of what it
            // emptied, and a sync of the changed directories when enough are pending.
            let (this, p) = (self.clone(), path.clone());
            let removed = match tokio::task::spawn_blocking(move || this.remove_object(&p)).await {
                Ok(r) => r.map_err(|e| Error::io(Op::Delete, path.display(), e)),
                Err(e) => Err(
                    Error::new(ErrorKind::Other, Op::Delete, path.display().to_string())
                        .with_source(e),
                ),
            };
            if let Err(e) = removed {
                report.failed.push((key.clone(), e));
            }
        }
        Ok(report)
    }

    async fn copy(&self, from: &Key, to: &Key, _opts: CopyOptions) -> Result<PutResult> {
        let (path, m) = self.meta_of(from, Op::Copy).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, Op::Copy, self.location(from.as_str()))
                .with_detail("no such file")
        })?;
        let body = Body::from_file(&path).await?;
        let fm = file_meta(path).await;
        let opts = PutOptions {
            mtime: m.modified().ok(),
            content_type: fm.content_type,
            cache_control: fm.cache_control,
            headers: fm.headers,
            metadata: fm.metadata,
            ..PutOptions::default()
        };
        self.put_inner(to, body, &opts).await
    }

    /// `file://` and the absolute root, so that state recorded for a directory (the
    /// metadata cache's content memo) is found again from another working directory.
    fn identity(&self) -> String {
        let abs = std::path::absolute(self.root.as_path()).unwrap_or_else(|_| (*self.root).clone());
        format!("file://{}", abs.display())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // In extended attributes (see `local_meta`), where the platform has them.
            metadata: cfg!(unix),
            native_mtime: true,
            resumable: true,
            ..Capabilities::default()
        }
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

/// The metadata the file at `path` carries in its extended attributes (none when it cannot
/// be read).
async fn file_meta(path: PathBuf) -> FileMeta {
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&path)
            .map(|f| crate::local_meta::read(&f))
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default()
}

/// What a file that is neither a regular file nor a directory is, for messages.
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        } else if t.is_socket() {
            return "a socket";
        } else if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    let _ = meta;
    "a special file"
}

/// Removes a larder temp file if no live writer holds its lock and it was created before
/// `before`; whether it did.
fn remove_if_stale(path: &Path, before: std::time::SystemTime) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    // The creation (status change) time: a put sets the temp file's mtime to the source's.
    #[cfg(unix)]
    let created = {
        use std::os::unix::fs::MetadataExt;
        std::time::UNIX_EPOCH
            + std::time::Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32)
    };
    #[cfg(not(unix))]
    let created = meta.modified().unwrap_or(before);
    if created >= before {
        return false;
    }
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    match f.try_lock() {
        Ok(()) => {
            let removed = std::fs::remove_file(path).is_ok();
            if removed {
                tracing::info!(
                    "removed a stale temp file a killed run left: {}",
                    path.display()
                );
            }
            removed
        }
        Err(_) => false,
    }
}

/// What says, without reading a file, that its content may have changed: its size, its
/// modification and status-change times (nanoseconds) and its inode. A write moves the
/// times; a rename onto the path brings another inode (size and mtime alone miss a rename
/// of a file with the same size and time). Where the platform has no inode or ctime, they
/// are 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// The size.
    pub size: u64,
    /// The modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// The status-change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// The inode.
    pub ino: u64,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(m: &std::fs::Metadata) -> FileStamp {
        let mtime_ns = m
            .modified()
            .map_or(0, |t| match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => d.as_nanos() as i64,
                Err(e) => -(e.duration().as_nanos() as i64),
            });
        #[cfg(unix)]
        let (ctime_ns, ino) = {
            use std::os::unix::fs::MetadataExt;
            (m.ctime() * 1_000_000_000 + m.ctime_nsec(), m.ino())
        };
        #[cfg(not(unix))]
        let (ctime_ns, ino) = (0, 0);
        FileStamp {
            size: m.len(),
            mtime_ns,
            ctime_ns,
            ino,
        }
    }
}

fn changed_while_read(path: &str) -> Error {
    // Transient: retried, as a read that may go through next time.
    Error::new(ErrorKind::Transient, Op::Get, path.to_owned()).with_detail(
        "the file changed while it was read (size, times or inode); not sent as a torn copy",
    )
}

/// A file opened by [`LocalStore::get`] on the blocking pool.
struct Opened {
    file: std::fs::File,
    meta: std::fs::Metadata,
    file_meta: FileMeta,
    range: std::ops::Range<u64>,
    /// The bytes of the range, when it is small enough to read at once.
    data: Option<Vec<u8>>,
}

/// Reads up to this size are done in one blocking call and one chunk.
const SMALL_READ: u64 = 256 << 10;

/// The blocking walk behind [`LocalStore::list`].
struct Walker {
    root: Arc<PathBuf>,
    policy: SymlinkPolicy,
    cleanup: Option<Arc<TempCleanup>>,
    prefix: String,
    tx: tokio::sync::mpsc::Sender<Result<Entry>>,
}

enum ChildKind {
    File(std::fs::Metadata),
    Dir { id: (u64, u64) },
}

struct Child {
    /// The name, with a `/` appended for a directory: the sort key.
    sort: String,
    path: PathBuf,
    kind: ChildKind,
}

struct Frame {
    /// Children in ascending order, consumed from the front.
    children: VecDeque<Child>,
    /// The key prefix of this directory (`""` or ending with `/`).
    key_base: String,
    id: (u64, u64),
}

fn dir_id(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

impl Walker {
    /// Sends an item; false when the receiver is gone and the walk should stop.
    fn send(&self, item: Result<Entry>) -> bool {
        self.tx.blocking_send(item).is_ok()
    }

    fn run(self, start_rel: &Path, key_base: String) {
        let start = self.root.join(start_rel);
        let m = match std::fs::metadata(&start) {
            Ok(m) if m.is_dir() => m,
            // A missing root or prefix directory holds no keys.
            Ok(_) => return,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return
            }
            Err(e) => {
                self.send(Err(Error::io(Op::List, start.display(), e)));
                return;
            }
        };
        let mut stack = Vec::new();
        match self.read_dir(&start, &key_base) {
            Some(children) => stack.push(Frame {
                children,
                key_base,
                id: dir_id(&m),
            }),
            None => return,
        }
        while let Some(frame) = stack.last_mut() {
            let Some(child) = frame.children.pop_front() else {
                stack.pop();
                continue;
            };
            match child.kind {
                ChildKind::File(m) => {
                    let key = format!("{}{}", frame.key_base, child.sort);
                    if !key.starts_with(&self.prefix) {
                        continue;
                    }
                    let key = match Key::new(key) {
                        Ok(k) => k,
                        Err(e) => {
                            let err = Error::new(
                                ErrorKind::InvalidKey,
                                Op::List,
                                child.path.display().to_string(),
                            )
                            .with_detail(e.to_string());
                            if !self.send(Err(err)) {
                                return;
                            }
                            continue;
                        }
                    };
                    let entry = Entry {
                        key,
                        size: m.len(),
                        last_modified: m.modified().ok(),
                        etag: None,
                        storage_class: None,
                    };
                    if !self.send(Ok(entry)) {
                        return;
                    }
                }
                ChildKind::Dir { id } => {
                    let base = format!("{}{}", frame.key_base, child.sort);
                    // Enter only directories that can hold keys with the prefix.
                    if !(base.starts_with(&self.prefix) || self.prefix.starts_with(&base)) {
                        continue;
                    }
                    if stack.iter().any(|f| f.id == id) {
                        let err = Error::new(
                            ErrorKind::Conflict,
                            Op::List,
                            child.path.display().to_string(),
                        )
                        .with_detail(
                            "symlink loop: the link points to a directory that contains it",
                        );
                        if !self.send(Err(err)) {
                            return;
                        }
                        continue;
                    }
                    match self.read_dir(&child.path, &base) {
                        Some(children) => stack.push(Frame {
                            children,
                            key_base: base,
                            id,
                        }),
                        None => return,
                    }
                }
            }
        }
    }

    /// Reads and sorts one directory. `None` when the receiver is gone.
    fn read_dir(&self, dir: &Path, key_base: &str) -> Option<VecDeque<Child>> {
        let mut children = Vec::new();
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => {
                return self
                    .send(Err(Error::io(Op::List, dir.display(), e)))
                    .then(VecDeque::new);
            }
        };
        for de in rd {
            let de = match de {
                Ok(de) => de,
                Err(e) => {
                    if !self.send(Err(Error::io(Op::List, dir.display(), e))) {
                        return None;
                    }
                    continue;
                }
            };
            let path = de.path();
            let name = match name_to_segment(&path, &de.file_name()) {
                Ok(n) => n,
                Err(e) => {
                    let err =
                        Error::new(ErrorKind::InvalidKey, Op::List, path.display().to_string())
                            .with_detail(e.to_string());
                    if !self.send(Err(err)) {
                        return None;
                    }
                    continue;
                }
            };
            if name.starts_with(TEMP_PREFIX) {
                if let Some(c) = &self.cleanup {
                    // A partial copy is kept a day for a later run to resume.
                    let partial = name
                        .strip_prefix(TEMP_PREFIX)
                        .is_some_and(|rest| rest.starts_with(PARTIAL_MARK));
                    let before = if partial {
                        c.before.min(
                            std::time::SystemTime::now()
                                .checked_sub(PARTIAL_KEPT)
                                .unwrap_or(std::time::UNIX_EPOCH),
                        )
                    } else {
                        c.before
                    };
                    if remove_if_stale(&path, before) {
                        c.removed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                continue;
            }
            // Quick reject of whole subtrees outside the prefix, before any stat.
            let key_start = format!("{key_base}{name}");
            if !(key_start.starts_with(&self.prefix) || self.prefix.starts_with(&key_start)) {
                continue;
            }
            let ft = match de.file_type() {
                Ok(ft) => ft,
                Err(e) => {
                    if !self.send(Err(Error::io(Op::List, path.display(), e))) {
                        return None;
                    }
                    continue;
                }
            };
            let meta = if ft.is_symlink() {
                if self.policy == SymlinkPolicy::Skip {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        let err = Error::io(Op::List, path.display(), e)
                            .with_detail("dangling or unreadable symlink");
                        if !self.send(Err(err)) {
                            return None;
                        }
                        continue;
                    }
                }
            } else {
                match de.metadata() {
                    Ok(m) => m,
                    Err(e) => {
                        if !self.send(Err(Error::io(Op::List, path.display(), e))) {
                            return None;
                        }
                        continue;
                    }
                }
            };
            if meta.is_dir() {
                children.push(Child {
                    sort: format!("{name}/"),
                    path,
                    kind: ChildKind::Dir { id: dir_id(&meta) },
                });
            } else if meta.is_file() {
                children.push(Child {
                    sort: name,
                    path,
                    kind: ChildKind::File(meta),
                });
            } else {
                // Never read (a FIFO would block, a device never ends), never silently
                // dropped: an error item naming it, and the walk goes on.
                let err = Error::new(ErrorKind::Unsupported, Op::List, path.display().to_string())
                    .with_detail(format!(
                        "{} is not a regular file: skipped, not read",
                        special_kind(&meta)
                    ));
                if !self.send(Err(err)) {
                    return None;
                }
            }
        }
        children.sort_unstable_by(|a, b| a.sort.as_bytes().cmp(b.sort.as_bytes()));
        Some(children.into())
    }
}
