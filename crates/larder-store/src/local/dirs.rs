//! The directories a local store writes into: which it knows exist (so a put into a known
//! directory makes no `mkdir` or `stat`), and which have entries changed since they were last
//! synced (so a rename is made durable by one directory sync per directory, at
//! [`Store::flush`](crate::Store::flush), instead of one per file).
//!
//! A put's bytes are durable before its rename (the temp file is fsynced first), so a crash
//! before the directory sync leaves the old file or the whole new one, never a torn one; the
//! flush only makes the new names themselves durable.
//!
//! Memory stays bounded whatever the tree: the known set is a cache, emptied when it
//! reaches [`MAX_DIRS`]; the set to sync is synced early when it does.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Entries either set holds at most.
const MAX_DIRS: usize = 16_384;

#[derive(Debug, Default)]
pub(super) struct Dirs {
    known: Mutex<HashSet<PathBuf>>,
    unsynced: Mutex<HashSet<PathBuf>>,
}

impl Dirs {
    /// Makes sure `dir` and its parents are directories. A directory made here is a changed
    /// entry of its parent (synced at the flush).
    pub(super) fn ensure(&self, dir: &Path) -> io::Result<()> {
        if lock(&self.known).contains(dir) {
            return Ok(());
        }
        self.create(dir)
    }

    fn create(&self, dir: &Path) -> io::Result<()> {
        match std::fs::create_dir(dir) {
            Ok(()) => self.changed(dir.parent())?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if !std::fs::metadata(dir)?.is_dir() {
                    return Err(e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) else {
                    return Err(e);
                };
                self.create(parent)?;
                match std::fs::create_dir(dir) {
                    Ok(()) => self.changed(Some(parent))?,
                    // Made meanwhile by another writer.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        let mut known = lock(&self.known);
        if known.len() >= MAX_DIRS {
            known.clear();
        }
        known.insert(dir.to_path_buf());
        Ok(())
    }

    /// `dir` may be gone (removed by a delete, or by someone else): the next put into it
    /// makes it again.
    pub(super) fn forget(&self, dir: &Path) {
        lock(&self.known).remove(dir);
    }

    /// An entry of `dir` was added, renamed or removed. Called on the blocking pool: when
    /// the set is full, it is synced here.
    pub(super) fn changed(&self, dir: Option<&Path>) -> io::Result<()> {
        let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        let full = {
            let mut unsynced = lock(&self.unsynced);
            unsynced.insert(d.to_path_buf());
            unsynced.len() >= MAX_DIRS
        };
        if full {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs every directory with changed entries. A directory that is gone meanwhile needs
    /// nothing; the first other failure is returned (the rest are still tried).
    pub(super) fn sync(&self) -> io::Result<()> {
        let dirs = std::mem::take(&mut *lock(&self.unsynced));
        let mut first = None;
        for d in dirs {
            match sync_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first.get_or_insert_with(|| {
                        io::Error::new(
                            e.kind(),
                            format!(
                                "syncing the directory {} (to make its new entries durable): {e}",
                                d.display()
                            ),
                        )
                    });
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// What no flush synced is synced when the store's last handle goes.
impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    // Windows cannot open a directory as a file; its renames are as durable as it makes
    // them.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_makes_missing_parents_once_and_records_their_parents_as_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs::default();
        let deep = tmp.path().join("a/b/c");
        dirs.ensure(&deep).unwrap();
        assert!(deep.is_dir());
        let changed = lock(&dirs.unsynced).clone();
        let want: HashSet<PathBuf> = [tmp.path(), &tmp.path().join("a"), &tmp.path().join("a/b")]
            .into_iter()
            .map(Path::to_path_buf)
            .collect();
        assert_eq!(changed, want);
        // Known now: removed behind the store's back, it is not made again until forgotten.
        std::fs::remove_dir(&deep).unwrap();
        dirs.ensure(&deep).unwrap();
        assert!(!deep.exists());
        dirs.forget(&deep);
        dirs.ensure(&deep).unwrap();
        assert!(deep.is_dir());
        dirs.sync().unwrap();
        assert!(lock(&dirs.unsynced).is_empty());
    }

    #[test]
    fn the_directories_to_sync_are_synced_early_when_they_reach_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs::default();
        for i in 0..MAX_DIRS - 1 {
            dirs.changed(Some(&tmp.path().join(format!("d{i}"))))
                .unwrap();
        }
        assert_eq!(lock(&dirs.unsynced).len(), MAX_DIRS - 1);
        dirs.changed(Some(tmp.path())).unwrap();
        assert!(lock(&dirs.unsynced).is_empty(), "synced at the bound");
    }

    #[test]
    fn a_file_in_the_way_is_an_error_and_a_vanished_directory_syncs_as_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = Dirs::default();
        std::fs::write(tmp.path().join("f"), b"x").unwrap();
        assert!(dirs.ensure(&tmp.path().join("f")).is_err());
        assert!(dirs.ensure(&tmp.path().join("f/g")).is_err());
        dirs.changed(Some(&tmp.path().join("gone"))).unwrap();
        dirs.sync().unwrap();
    }
}
