//! The streaming writer (and its staged, not yet visible content) and the verifying reader.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{index, io, sri, Algorithm, Cache, Error, Integrity, Result, WriteOptions};

/// A streaming writer; see [`Cache::writer`].
#[derive(Debug)]
pub struct Writer {
    pub(crate) cache: Cache,
    pub(crate) key: Option<String>,
    pub(crate) opts: WriteOptions,
    pub(crate) hasher: sri::IntegrityHasher,
    pub(crate) file: Option<std::fs::File>,
    pub(crate) tmp: PathBuf,
    pub(crate) size: u64,
    pub(crate) committed: bool,
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.as_mut().expect("open until commit").write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Writer {
    /// Makes the content (and the entry, with a key) visible; returns the integrity.
    ///
    /// # Errors
    ///
    /// [`Error::Integrity`] when the options named another size or integrity (nothing is
    /// committed); file-system failures.
    pub fn commit(self) -> Result<Integrity> {
        let key = self.key.clone();
        let metadata = self.opts.metadata.clone();
        self.stage()?.commit(key.as_deref(), metadata)
    }

    /// Finishes writing and checks the content against the options, without making anything
    /// visible yet: the bytes stay in a temp file until [`Staged::commit`], and are removed
    /// if the [`Staged`] is dropped. Lets a caller check several contents (the files of one
    /// pack) before committing any.
    ///
    /// # Errors
    ///
    /// As [`Writer::commit`].
    pub fn stage(mut self) -> Result<Staged> {
        let file = self.file.take().expect("open until commit");
        file.sync_all().map_err(io("sync", &self.tmp))?;
        drop(file);
        let sri = std::mem::replace(&mut self.hasher, sri::IntegrityHasher::new(Algorithm::Sha1))
            .finish();
        let what = self.key.clone().unwrap_or_else(|| sri.to_string());
        if let Some(want) = &self.opts.integrity {
            // The hasher ran with the wanted algorithm (see `Cache::writer`).
            if sri != *want {
                return Err(Error::Integrity {
                    what,
                    expected: want.to_string(),
                    found: sri.to_string(),
                });
            }
        }
        if let Some(want) = self.opts.size {
            if want != self.size {
                return Err(Error::Integrity {
                    what,
                    expected: format!("{want} bytes"),
                    found: format!("{} bytes", self.size),
                });
            }
        }
        // The temp file now belongs to the `Staged`.
        self.committed = true;
        Ok(Staged {
            cache: self.cache.clone(),
            tmp: std::mem::take(&mut self.tmp),
            integrity: sri,
            size: self.size,
            done: false,
        })
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Content written and checked but not yet visible; see [`Writer::stage`]. Dropped without
/// [`Staged::commit`], its temp file is removed.
#[derive(Debug)]
pub struct Staged {
    pub(crate) cache: Cache,
    pub(crate) tmp: PathBuf,
    pub(crate) integrity: Integrity,
    pub(crate) size: u64,
    pub(crate) done: bool,
}

impl Staged {
    /// The content's integrity.
    pub fn integrity(&self) -> &Integrity {
        &self.integrity
    }

    /// The content's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Moves the content into place and, with a key, appends its index entry.
    ///
    /// # Errors
    ///
    /// File-system failures, naming the path.
    pub fn commit(
        self,
        key: Option<&str>,
        metadata: Option<serde_json::Value>,
    ) -> Result<Integrity> {
        self.commit_at(key, metadata, SystemTime::now())
    }

    /// [`Staged::commit`], with the entry dated `time` (an entry copied from elsewhere keeps
    /// its time).
    ///
    /// # Errors
    ///
    /// File-system failures, naming the path.
    pub fn commit_at(
        mut self,
        key: Option<&str>,
        metadata: Option<serde_json::Value>,
        time: SystemTime,
    ) -> Result<Integrity> {
        let dest = self.cache.content_path(&self.integrity);
        let dir = dest.parent().expect("content path has a parent");
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        // Same digest, same bytes: an existing file is kept (and the temp dropped).
        if dest.is_file() {
            let _ = std::fs::remove_file(&self.tmp);
        } else {
            std::fs::rename(&self.tmp, &dest).map_err(io("rename into", &dest))?;
        }
        self.done = true;
        if let Some(key) = key {
            let line = index::Line {
                key: key.to_owned(),
                integrity: Some(self.integrity.to_string()),
                time: time
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                size: Some(self.size),
                metadata,
            };
            index::append(&self.cache.root, &line)
                .map_err(io("append to the index of", &self.cache.root))?;
        }
        Ok(self.integrity.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A streaming reader; see [`Cache::reader`]. The bytes it returns are not yet verified:
/// call [`Reader::check`] at the end and discard them on error.
#[derive(Debug)]
pub struct Reader {
    pub(crate) file: std::fs::File,
    pub(crate) hasher: sri::IntegrityHasher,
    pub(crate) expected: Integrity,
    pub(crate) what: String,
}

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl Reader {
    /// Checks that everything read hashes to the expected integrity.
    ///
    /// # Errors
    ///
    /// [`Error::Integrity`].
    pub fn check(self) -> Result<Integrity> {
        let found = self.hasher.finish();
        if found == self.expected {
            Ok(found)
        } else {
            Err(Error::Integrity {
                what: self.what,
                expected: self.expected.to_string(),
                found: found.to_string(),
            })
        }
    }
}
