//! The metadata cache: what larder last saw or wrote of each object, in SQLite.
//!
//! A listing gives an object's key, size and ETag but not its user metadata, where larder
//! records the source's mtime. Looking that up is a HEAD per object; this cache keeps
//! `(store, key) → (etag, size, mtime)` so it is asked once per object version. An entry is
//! used only while the listing still shows the same ETag and size, so a changed object is
//! never judged by stale metadata. The cache is only an optimisation: deleting it costs HEADs,
//! never correctness.
//!
//! It also remembers what a local file's content hashed to (store `file://…`, keyed by size
//! and mtime), so a file adopted or compared by ETag once is not read again.
//!
//! Schema changes are append-only migrations keyed by `PRAGMA user_version`; the database
//! runs in WAL mode with `synchronous = NORMAL`. Writes are batched (one transaction per
//! 2,048 rows, and at [`MetaCache::flush`]) and lookups share read transactions: a crash may
//! lose the last writes and a reader may see another process's writes late, which only costs
//! work (hashes, HEADs), never a wrong answer, since every row is checked against the
//! version (ETag and size, or size and mtime) it describes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

/// A cache that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the state database `{path}`")]
pub struct StateError {
    path: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StateError {
    pub(crate) fn new(
        path: String,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StateError {
            path,
            source: Box::new(source),
        }
    }
}

const MIGRATIONS: &[&str] = &["CREATE TABLE objects (
        store TEXT NOT NULL,
        key TEXT NOT NULL,
        etag TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER,
        PRIMARY KEY (store, key)
    ) WITHOUT ROWID;"];

/// See the module docs.
#[derive(Debug)]
pub struct MetaCache {
    inner: Mutex<Inner>,
}

/// A row as written: `None` forgets the key.
type Row = Option<(String, u64, Option<i64>)>;

/// Writes wait here and go to SQLite in one transaction per [`FLUSH_EVERY`] (and at
/// [`MetaCache::flush`] or drop): one commit per object would cost more than the sync.
#[derive(Debug)]
struct Inner {
    conn: Connection,
    pending: HashMap<(String, String), Row>,
    /// Lookups made in the read transaction now open (0: none open). Reads share one
    /// transaction, so SQLite takes its file locks once per [`READS_PER_TRANSACTION`], not
    /// once per lookup; writers of other processes are not blocked by it (WAL).
    reads: usize,
}

/// Lookups per read transaction.
const READS_PER_TRANSACTION: usize = 4096;

/// Pending writes that trigger a flush.
const FLUSH_EVERY: usize = 2048;

fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
    }
}

fn from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

impl MetaCache {
    /// Opens (creating) the cache at `path`.
    ///
    /// # Errors
    ///
    /// When the file or its directory cannot be created or is not a database of ours.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let err = |source: Box<dyn std::error::Error + Send + Sync>| StateError {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        }
        let conn = Connection::open(path).map_err(|e| err(e.into()))?;
        Self::init(conn).map_err(|e| err(e.into()))
    }

    /// A cache in memory, gone with the process.
    pub fn in_memory() -> Self {
        Self::init(Connection::open_in_memory().expect("sqlite in memory"))
            .expect("migrations on an empty database")
    }

    fn init(conn: Connection) -> rusqlite::Result<Self> {
        let conn = crate::db::init(conn, MIGRATIONS)?;
        Ok(MetaCache {
            inner: Mutex::new(Inner {
                conn,
                pending: HashMap::new(),
                reads: 0,
            }),
        })
    }

    /// Writes what is pending. Called by `sync` at its end and on drop; a crash before it
    /// loses those records, which only costs work (hashes, HEADs) on the next run.
    pub fn flush(&self) {
        let mut inner = self.inner.lock().expect("cache lock");
        if let Err(e) = inner.flush() {
            tracing::warn!("metadata cache write failed: {e}");
        }
    }

    /// The recorded mtime of `key` in `store` if the cache holds this version (same ETag and
    /// size): `Some(None)` when that version has no recorded mtime, `None` on a miss.
    pub fn lookup(
        &self,
        store: &str,
        key: &str,
        etag: &str,
        size: u64,
    ) -> Option<Option<SystemTime>> {
        let mut inner = self.inner.lock().expect("cache lock");
        let row: Row = match inner.pending.get(&(store.to_owned(), key.to_owned())) {
            Some(pending) => pending.clone(),
            None => inner
                .begin_read()
                .and_then(|conn| {
                    conn.prepare_cached(
                        "SELECT etag, size, mtime_ns FROM objects WHERE store = ?1 AND key = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![store, key], |r| {
                            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
                        })
                        .optional()
                    })
                })
                .unwrap_or_else(|e| {
                    tracing::warn!("metadata cache read failed: {e}");
                    None
                }),
        };
        match row {
            Some((e, s, m)) if e == etag && s == size => Some(m.map(from_ns)),
            _ => None,
        }
    }

    /// Records what `store` holds at `key`.
    pub fn record(&self, store: &str, key: &str, etag: &str, size: u64, mtime: Option<SystemTime>) {
        self.write(store, key, Some((etag.to_owned(), size, mtime.map(to_ns))));
    }

    /// Forgets `key` in `store` (after a delete).
    pub fn forget(&self, store: &str, key: &str) {
        self.write(store, key, None);
    }

    fn write(&self, store: &str, key: &str, row: Row) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner
            .pending
            .insert((store.to_owned(), key.to_owned()), row);
        if inner.pending.len() >= FLUSH_EVERY {
            if let Err(e) = inner.flush() {
                tracing::warn!("metadata cache write failed: {e}");
            }
        }
    }
}

impl Inner {
    /// The connection inside a read transaction (opened, or renewed past
    /// [`READS_PER_TRANSACTION`] so the WAL can be checkpointed).
    fn begin_read(&mut self) -> rusqlite::Result<&Connection> {
        if self.reads >= READS_PER_TRANSACTION {
            self.end_read()?;
        }
        if self.reads == 0 {
            self.conn.execute_batch("BEGIN DEFERRED")?;
        }
        self.reads += 1;
        Ok(&self.conn)
    }

    fn end_read(&mut self) -> rusqlite::Result<()> {
        if self.reads > 0 {
            self.reads = 0;
            self.conn.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> rusqlite::Result<()> {
        self.end_read()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO objects (store, key, etag, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut del = tx.prepare_cached("DELETE FROM objects WHERE store = ?1 AND key = ?2")?;
            for ((store, key), row) in self.pending.drain() {
                match row {
                    Some((etag, size, mtime)) => {
                        put.execute(params![store, key, etag, size as i64, mtime])?
                    }
                    None => del.execute(params![store, key])?,
                };
            }
        }
        tx.commit()
    }
}

impl Drop for MetaCache {
    fn drop(&mut self) {
        if let Ok(inner) = self.inner.get_mut() {
            if let Err(e) = inner.flush() {
                tracing::warn!("metadata cache write failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_only_for_the_same_version() {
        let c = MetaCache::in_memory();
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 42);
        c.record("s3://b/", "k", "abc", 3, Some(t));
        assert_eq!(c.lookup("s3://b/", "k", "abc", 3), Some(Some(t)));
        assert_eq!(c.lookup("s3://b/", "k", "abd", 3), None, "other etag");
        assert_eq!(c.lookup("s3://b/", "k", "abc", 4), None, "other size");
        assert_eq!(c.lookup("s3://other/", "k", "abc", 3), None, "other store");
        c.forget("s3://b/", "k");
        assert_eq!(c.lookup("s3://b/", "k", "abc", 3), None);
    }

    #[test]
    fn pending_writes_are_read_back_and_flushed_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("meta.sqlite3");
        let c = MetaCache::open(&p).unwrap();
        let n = FLUSH_EVERY * 2 + 10;
        for i in 0..n {
            c.record("s", &format!("k{i}"), "e", i as u64, None);
        }
        c.forget("s", "k0");
        assert_eq!(c.lookup("s", "k0", "e", 0), None, "a pending forget wins");
        assert_eq!(c.lookup("s", "k1", "e", 1), Some(None), "flushed");
        assert_eq!(
            c.lookup("s", &format!("k{}", n - 1), "e", n as u64 - 1),
            Some(None)
        );
        // Another connection sees the flushed batches, not yet the pending rest.
        let other = MetaCache::open(&p).unwrap();
        assert_eq!(other.lookup("s", "k1", "e", 1), Some(None));
        assert_eq!(
            other.lookup("s", &format!("k{}", n - 1), "e", n as u64 - 1),
            None
        );
        c.flush();
        // `other` reads from its snapshot until its read transaction is renewed (a stale
        // row is still a true fact about the version it names); a new reader sees it all.
        let third = MetaCache::open(&p).unwrap();
        assert_eq!(
            third.lookup("s", &format!("k{}", n - 1), "e", n as u64 - 1),
            Some(None)
        );
        assert_eq!(third.lookup("s", "k0", "e", 0), None);
    }

    #[test]
    fn survives_reopen_and_negative_times() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/meta.sqlite3");
        let t = UNIX_EPOCH - Duration::new(10, 5);
        MetaCache::open(&p)
            .unwrap()
            .record("s", "k", "e", 1, Some(t));
        assert_eq!(
            MetaCache::open(&p).unwrap().lookup("s", "k", "e", 1),
            Some(Some(t))
        );
    }
}
