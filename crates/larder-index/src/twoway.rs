//! Two-way sync state of a vault: the **base** (each key as both sides had it after the last
//! sync that settled it — what "changed since" is measured against) and the **conflicts**
//! found, kept until the user resolves them.

use std::collections::HashMap;
use std::time::SystemTime;

use rusqlite::params;

use crate::vault::{from_ns, to_ns, Index};
use crate::{Error, Result};

/// A key as both sides had it after the last sync that settled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRow {
    /// The key.
    pub key: String,
    /// The local file's size.
    pub local_size: u64,
    /// The local file's modification time, nanoseconds since the epoch.
    pub local_mtime_ns: i64,
    /// The local file's inode (0 where there is none): a rename brings another one.
    pub local_ino: u64,
    /// The local file's status-change time (ns; 0 where there is none): a rename, a write,
    /// a `touch` all move it, where size and mtime may look the same.
    pub local_ctime_ns: i64,
    /// The object's size.
    pub remote_size: u64,
    /// The object's ETag.
    pub remote_etag: Option<String>,
}

/// A key changed on both sides since the base, not settled by the policy (or settled and
/// recorded for the user to see).
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The key.
    pub key: String,
    /// `both modified`, `both created`, `deleted locally, modified remotely`, `modified
    /// locally, deleted remotely`.
    pub kind: String,
    /// The local file's size (absent when deleted).
    pub local_size: Option<u64>,
    /// The local file's modification time.
    pub local_modified: Option<SystemTime>,
    /// The object's size (absent when deleted).
    pub remote_size: Option<u64>,
    /// The object's ETag.
    pub remote_etag: Option<String>,
    /// The object's modification time, as the index knows it.
    pub remote_modified: Option<SystemTime>,
    /// When it was found.
    pub found: SystemTime,
    /// The user's decision (`keep_local`, `keep_remote`, `keep_both`), applied by the next
    /// sync.
    pub resolution: Option<String>,
}

impl Index {
    /// The base of `vault`, by key.
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`] or a database error.
    pub fn base(&self, vault: &str) -> Result<HashMap<String, BaseRow>> {
        self.vault(vault)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, local_size, local_mtime_ns, local_ino, local_ctime_ns, remote_size,
                        remote_etag
                 FROM sync_base WHERE vault = ?1",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![vault], |r| {
                let key: Vec<u8> = r.get(0)?;
                Ok(BaseRow {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    local_size: r.get::<_, i64>(1)? as u64,
                    local_mtime_ns: r.get(2)?,
                    local_ino: r.get::<_, i64>(3)? as u64,
                    local_ctime_ns: r.get(4)?,
                    remote_size: r.get::<_, i64>(5)? as u64,
                    remote_etag: r.get(6)?,
                })
            })
            .map_err(self.db())?;
        let mut out = HashMap::new();
        for row in rows {
            let row = row.map_err(self.db())?;
            out.insert(row.key.clone(), row);
        }
        Ok(out)
    }

    /// Records keys settled by a sync (`set`) and keys gone from both sides (`removed`), in
    /// one transaction; a settled key's conflict, if any, goes with it.
    ///
    /// # Errors
    ///
    /// A database error (then nothing was recorded).
    pub fn settle(&mut self, vault: &str, set: &[BaseRow], removed: &[String]) -> Result<()> {
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        for b in set {
            tx.execute(
                "INSERT OR REPLACE INTO sync_base
                 (vault, key, local_size, local_mtime_ns, local_ino, local_ctime_ns, remote_size,
                  remote_etag)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    vault,
                    b.key.as_bytes(),
                    b.local_size as i64,
                    b.local_mtime_ns,
                    b.local_ino as i64,
                    b.local_ctime_ns,
                    b.remote_size as i64,
                    b.remote_etag
                ],
            )
            .map_err(db)?;
            tx.execute(
                "DELETE FROM conflicts WHERE vault = ?1 AND key = ?2",
                params![vault, b.key.as_bytes()],
            )
            .map_err(db)?;
        }
        for k in removed {
            for table in ["sync_base", "conflicts"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE vault = ?1 AND key = ?2"),
                    params![vault, k.as_bytes()],
                )
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    /// Records conflicts found (a resolution already given is kept).
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn record_conflicts(&mut self, vault: &str, found: &[Conflict]) -> Result<()> {
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        for c in found {
            tx.execute(
                "INSERT INTO conflicts (vault, key, kind, local_size, local_mtime_ns, remote_size,
                     remote_etag, remote_modified_ns, found_ns, resolution)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)
                 ON CONFLICT (vault, key) DO UPDATE SET kind = excluded.kind,
                     local_size = excluded.local_size, local_mtime_ns = excluded.local_mtime_ns,
                     remote_size = excluded.remote_size, remote_etag = excluded.remote_etag,
                     remote_modified_ns = excluded.remote_modified_ns",
                params![
                    vault,
                    c.key.as_bytes(),
                    c.kind,
                    c.local_size.map(|n| n as i64),
                    c.local_modified.map(to_ns),
                    c.remote_size.map(|n| n as i64),
                    c.remote_etag,
                    c.remote_modified.map(to_ns),
                    to_ns(c.found)
                ],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// The conflicts of `vault`, by key.
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`] or a database error.
    pub fn conflicts(&self, vault: &str) -> Result<Vec<Conflict>> {
        self.vault(vault)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key, kind, local_size, local_mtime_ns, remote_size, remote_etag,
                        remote_modified_ns, found_ns, resolution
                 FROM conflicts WHERE vault = ?1 ORDER BY key",
            )
            .map_err(self.db())?;
        let rows = stmt
            .query_map(params![vault], |r| {
                let key: Vec<u8> = r.get(0)?;
                Ok(Conflict {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    kind: r.get(1)?,
                    local_size: r.get::<_, Option<i64>>(2)?.map(|n| n as u64),
                    local_modified: r.get::<_, Option<i64>>(3)?.map(from_ns),
                    remote_size: r.get::<_, Option<i64>>(4)?.map(|n| n as u64),
                    remote_etag: r.get(5)?,
                    remote_modified: r.get::<_, Option<i64>>(6)?.map(from_ns),
                    found: from_ns(r.get(7)?),
                    resolution: r.get(8)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(self.db())
    }

    /// Sets the resolution of `key`'s conflict; `false` when there is no such conflict.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn resolve(&mut self, vault: &str, key: &str, resolution: &str) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE conflicts SET resolution = ?3 WHERE vault = ?1 AND key = ?2",
                params![vault, key.as_bytes(), resolution],
            )
            .map_err(self.db())?;
        Ok(n == 1)
    }
}
