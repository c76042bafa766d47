//! Vaults and their remote index.
//!
//! A vault is a named pair (local directory, `s3://bucket/prefix/`) with a [`Policy`]. Its
//! index holds one [`ObjectRow`] per remote object (keys relative to the vault's prefix)
//! and an [`IndexState`]: where the rows came from and when. Bulk sources (inventory,
//! reconcile) replace all rows in one transaction; [`Index::objects`] streams them in key
//! byte order, as a listing would, so a sync can march over the index instead of a LIST.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};

pub use crate::policy::{Budgets, Policy, PriceTable, Strategy};
pub use crate::runs::Run;
use crate::{Error, Result};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE vaults (
        name TEXT PRIMARY KEY,
        local_dir TEXT NOT NULL,
        remote TEXT NOT NULL,
        strategy TEXT NOT NULL,
        policy TEXT NOT NULL,
        created_ns INTEGER NOT NULL
    );
    CREATE TABLE remote_index (
        vault TEXT NOT NULL REFERENCES vaults(name) ON DELETE CASCADE,
        key BLOB NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT,
        storage_class TEXT,
        last_modified_ns INTEGER,
        source TEXT NOT NULL,
        PRIMARY KEY (vault, key)
    ) WITHOUT ROWID;
    CREATE TABLE index_state (
        vault TEXT PRIMARY KEY REFERENCES vaults(name) ON DELETE CASCADE,
        source TEXT NOT NULL,
        indexed_ns INTEGER NOT NULL,
        objects INTEGER NOT NULL,
        manifest_etag TEXT,
        manifest_generated_ns INTEGER
    );",
    // Events: the last sequencer applied per key, and tombstones (a removal remembered so an
    // older create delivered later does not resurrect the key).
    "ALTER TABLE remote_index ADD COLUMN sequencer TEXT;
    ALTER TABLE remote_index ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;",
    // One row per sync run: what it did and what it spent.
    "CREATE TABLE runs (
        vault TEXT NOT NULL REFERENCES vaults(name) ON DELETE CASCADE,
        started_ns INTEGER NOT NULL,
        ended_ns INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        reason TEXT,
        uploaded INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        failed INTEGER NOT NULL,
        requests TEXT NOT NULL,
        upload_bytes INTEGER NOT NULL,
        download_bytes INTEGER NOT NULL,
        price_usd REAL NOT NULL
    );
    CREATE INDEX runs_by_vault ON runs (vault, started_ns);",
    // Two-way sync: each key's state on both sides after the last sync that settled it, and
    // the conflicts found (with the user's resolution, once given).
    "CREATE TABLE sync_base (
        vault TEXT NOT NULL REFERENCES vaults(name) ON DELETE CASCADE,
        key BLOB NOT NULL,
        local_size INTEGER NOT NULL,
        local_mtime_ns INTEGER NOT NULL,
        local_ino INTEGER NOT NULL,
        local_ctime_ns INTEGER NOT NULL,
        remote_size INTEGER NOT NULL,
        remote_etag TEXT,
        PRIMARY KEY (vault, key)
    ) WITHOUT ROWID;
    CREATE TABLE conflicts (
        vault TEXT NOT NULL REFERENCES vaults(name) ON DELETE CASCADE,
        key BLOB NOT NULL,
        kind TEXT NOT NULL,
        local_size INTEGER,
        local_mtime_ns INTEGER,
        remote_size INTEGER,
        remote_etag TEXT,
        remote_modified_ns INTEGER,
        found_ns INTEGER NOT NULL,
        resolution TEXT,
        PRIMARY KEY (vault, key)
    ) WITHOUT ROWID;
    ALTER TABLE index_state ADD COLUMN unpublished INTEGER NOT NULL DEFAULT 0;",
];

/// What [`Index::apply_events`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Creations applied (rows upserted).
    pub created: u64,
    /// Removals applied (rows tombstoned).
    pub removed: u64,
    /// Events older than (or as old as) the last one applied to their key.
    pub stale: u64,
    /// Events of another bucket, outside the prefix, under `.larder/`, or that change
    /// nothing (restores, tagging, test events).
    pub ignored: u64,
}

/// A vault as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct Vault {
    /// Its name.
    pub name: String,
    /// The local directory.
    pub local_dir: PathBuf,
    /// The remote, `s3://bucket/prefix/`.
    pub remote: String,
    /// The strategy.
    pub strategy: Strategy,
    /// The policy.
    pub policy: Policy,
}

/// Where a vault's index rows came from last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSource {
    /// larder's manifest under `.larder/` in the bucket.
    Manifest,
    /// An S3 Inventory delivery.
    Inventory,
    /// S3 event notifications.
    Events,
    /// A ListObjectsV2 pass.
    Reconcile,
    /// What a sync wrote and saw.
    Sync,
}

impl IndexSource {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexSource::Manifest => "manifest",
            IndexSource::Inventory => "inventory",
            IndexSource::Events => "events",
            IndexSource::Reconcile => "reconcile",
            IndexSource::Sync => "sync",
        }
    }

    fn parse(s: &str) -> IndexSource {
        match s {
            "manifest" => IndexSource::Manifest,
            "inventory" => IndexSource::Inventory,
            "events" => IndexSource::Events,
            "reconcile" => IndexSource::Reconcile,
            _ => IndexSource::Sync,
        }
    }
}

/// The state of a vault's index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexState {
    /// Where the rows came from last.
    pub source: IndexSource,
    /// When.
    pub indexed_at: SystemTime,
    /// Rows in the index.
    pub objects: u64,
    /// The ETag of the manifest last read or written.
    pub manifest_etag: Option<String>,
    /// When that manifest was generated.
    pub manifest_generated_at: Option<SystemTime>,
    /// The index holds changes a sync made that no manifest in the bucket has yet.
    pub unpublished: bool,
}

impl IndexState {
    /// Whether the index is younger than `max_age` at `now`.
    pub fn is_fresh(&self, max_age: Duration, now: SystemTime) -> bool {
        now.duration_since(self.indexed_at)
            .map_or(true, |age| age <= max_age)
    }
}

/// One remote object in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRow {
    /// The key, relative to the vault's prefix.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// Its ETag, without quotes.
    pub etag: Option<String>,
    /// Its storage class (`STANDARD`, `GLACIER`, …).
    pub storage_class: Option<String>,
    /// Its LastModified.
    pub last_modified: Option<SystemTime>,
}

impl ObjectRow {
    /// Whether its body needs a restore before it can be read (archive tiers).
    pub fn is_archived(&self) -> bool {
        matches!(
            self.storage_class.as_deref(),
            Some("GLACIER" | "DEEP_ARCHIVE" | "GLACIER_FLEXIBLE_RETRIEVAL")
        )
    }
}

pub(crate) fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_nanos().min(i64::MAX as u128) as i64),
    }
}

pub(crate) fn from_ns(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// The vault database (`$LARDER_HOME/index.sqlite3`).
#[derive(Debug)]
pub struct Index {
    pub(crate) conn: Connection,
    pub(crate) path: String,
}

/// Rows per page of [`Index::objects`].
const PAGE: usize = 1000;

impl Index {
    /// Opens (creating) the database at `path`.
    ///
    /// # Errors
    ///
    /// When it cannot be created, is not a database, or has a newer schema.
    pub fn open(path: &Path) -> Result<Index> {
        let shown = path.display().to_string();
        let conn = crate::db::open(path, MIGRATIONS).map_err(|source| Error::Db {
            path: shown.clone(),
            source,
        })?;
        Ok(Index { conn, path: shown })
    }

    /// An index in memory, for tests.
    pub fn in_memory() -> Index {
        let conn = crate::db::init(
            Connection::open_in_memory().expect("sqlite in memory"),
            MIGRATIONS,
        )
        .expect("migrations on an empty database");
        Index {
            conn,
            path: ":memory:".to_owned(),
        }
    }

    pub(crate) fn db(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Registers a vault.
    ///
    /// # Errors
    ///
    /// [`Error::VaultExists`], [`Error::Invalid`] for a name that is not
    /// `[A-Za-z0-9_.-]{1,64}`, or a database error.
    pub fn add_vault(&self, v: &Vault) -> Result<()> {
        let ok = !v.name.is_empty()
            && v.name.len() <= 64
            && v.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(Error::Invalid(format!(
                "vault name `{}`: use 1 to 64 of A-Z a-z 0-9 _ . -",
                v.name
            )));
        }
        let policy = serde_json::to_string(&v.policy).expect("policy serialises");
        let r = self.conn.execute(
            "INSERT INTO vaults (name, local_dir, remote, strategy, policy, created_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                v.name,
                v.local_dir.to_string_lossy(),
                v.remote,
                v.strategy.to_string(),
                policy,
                to_ns(SystemTime::now())
            ],
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::VaultExists(v.name.clone()))
            }
            Err(e) => Err((self.db())(e)),
        }
    }

    /// The vault named `name`.
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`] or a database error.
    pub fn vault(&self, name: &str) -> Result<Vault> {
        self.conn
            .query_row(
                "SELECT name, local_dir, remote, strategy, policy FROM vaults WHERE name = ?1",
                params![name],
                row_to_vault,
            )
            .optional()
            .map_err(self.db())?
            .ok_or_else(|| Error::NoVault(name.to_owned()))
    }

    /// Every vault, by name.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn vaults(&self) -> Result<Vec<Vault>> {
        let mut st = self
            .conn
            .prepare("SELECT name, local_dir, remote, strategy, policy FROM vaults ORDER BY name")
            .map_err(self.db())?;
        let rows = st.query_map([], row_to_vault).map_err(self.db())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())
    }

    /// Removes a vault and its index (not its local files, not its objects).
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`] or a database error.
    pub fn remove_vault(&self, name: &str) -> Result<()> {
        let n = self
            .conn
            .execute("DELETE FROM vaults WHERE name = ?1", params![name])
            .map_err(self.db())?;
        if n == 0 {
            return Err(Error::NoVault(name.to_owned()));
        }
        Ok(())
    }

    /// Replaces a vault's policy and strategy.
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`] or a database error.
    pub fn set_policy(&self, name: &str, strategy: Strategy, policy: &Policy) -> Result<()> {
        let json = serde_json::to_string(policy).expect("policy serialises");
        let n = self
            .conn
            .execute(
                "UPDATE vaults SET strategy = ?2, policy = ?3 WHERE name = ?1",
                params![name, strategy.to_string(), json],
            )
            .map_err(self.db())?;
        if n == 0 {
            return Err(Error::NoVault(name.to_owned()));
        }
        Ok(())
    }

    /// Replaces every index row of `vault` with `rows`, and its state, in one transaction:
    /// on any error (from `rows` too) the index stays exactly as it was. Returns the rows
    /// written. Duplicate keys: the last wins.
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`], the first error `rows` yields, or a database error.
    pub fn replace_objects(
        &mut self,
        vault: &str,
        source: IndexSource,
        rows: impl IntoIterator<Item = Result<ObjectRow>>,
        manifest: Option<(String, SystemTime)>,
    ) -> Result<u64> {
        self.vault(vault)?;
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute("DELETE FROM remote_index WHERE vault = ?1", params![vault])
            .map_err(db)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT OR REPLACE INTO remote_index
                     (vault, key, size, etag, storage_class, last_modified_ns, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db)?;
            for row in rows {
                let r = row?;
                if r.key.starts_with(crate::manifest::RESERVED_PREFIX) {
                    continue; // the vault's own (its manifest): never indexed
                }
                ins.execute(params![
                    vault,
                    r.key.as_bytes(),
                    r.size as i64,
                    r.etag,
                    r.storage_class,
                    r.last_modified.map(to_ns),
                    source.as_str()
                ])
                .map_err(db)?;
            }
        }
        let count = live_rows(&tx, vault).map_err(db)?;
        let (etag, generated) = match manifest {
            Some((e, t)) => (Some(e), Some(to_ns(t))),
            None => (None, None),
        };
        tx.execute(
            "INSERT OR REPLACE INTO index_state
             (vault, source, indexed_ns, objects, manifest_etag, manifest_generated_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                vault,
                source.as_str(),
                to_ns(SystemTime::now()),
                count,
                etag,
                generated
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(count as u64)
    }

    /// Applies S3 events to `vault`'s index (see [`crate::events`]), in one transaction.
    /// Only events of the vault's bucket and prefix count, never keys under its `.larder/`.
    /// The index state's time moves only when the vault was indexed before: events alone
    /// do not make a complete index.
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`] or a database error (then nothing was applied).
    pub fn apply_events(
        &mut self,
        vault: &str,
        events: &[crate::events::S3Event],
    ) -> Result<EventStats> {
        use crate::events::{sequencer_cmp, Change};
        let v = self.vault(vault)?;
        let (bucket, prefix) = split_remote(&v.remote);
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let mut stats = EventStats::default();
        let tx = self.conn.transaction().map_err(db)?;
        for e in events {
            let Some(rel) = e.key.strip_prefix(prefix.as_str()) else {
                stats.ignored += 1;
                continue;
            };
            if e.bucket != bucket
                || rel.is_empty()
                || rel.starts_with(".larder/")
                || e.change == Change::Other
            {
                stats.ignored += 1;
                continue;
            }
            let last: Option<Option<String>> = tx
                .query_row(
                    "SELECT sequencer FROM remote_index WHERE vault = ?1 AND key = ?2",
                    params![vault, rel.as_bytes()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            if let (Some(Some(last)), Some(seq)) = (&last, &e.sequencer) {
                if sequencer_cmp(seq, last) != std::cmp::Ordering::Greater {
                    stats.stale += 1;
                    continue;
                }
            }
            let (size, etag, deleted) = match &e.change {
                Change::Created { size, etag } => (*size as i64, etag.clone(), 0),
                _ => (0, None, 1),
            };
            tx.execute(
                "INSERT OR REPLACE INTO remote_index
                 (vault, key, size, etag, storage_class, last_modified_ns, source, sequencer, deleted)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, 'events', ?6, ?7)",
                params![
                    vault,
                    rel.as_bytes(),
                    size,
                    etag,
                    e.time.map(to_ns),
                    e.sequencer,
                    deleted
                ],
            )
            .map_err(db)?;
            if deleted == 1 {
                stats.removed += 1;
            } else {
                stats.created += 1;
            }
        }
        tx.execute(
            "UPDATE index_state SET source = 'events', indexed_ns = ?2,
             objects = (SELECT COUNT(*) FROM remote_index WHERE vault = ?1 AND deleted = 0)
             WHERE vault = ?1",
            params![vault, to_ns(SystemTime::now())],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(stats)
    }

    /// Records what a sync did: `upserts` written (key, size, ETag) and `removed` keys, in
    /// one transaction; the state's source becomes `sync` and its time now. Returns the
    /// rows the index then holds.
    ///
    /// # Errors
    ///
    /// [`Error::NoVault`] or a database error (then nothing was recorded).
    pub fn record_sync(
        &mut self,
        vault: &str,
        upserts: &[(String, u64, Option<String>)],
        removed: &[String],
    ) -> Result<u64> {
        self.vault(vault)?;
        let path = self.path.clone();
        let db = |source| Error::Db {
            path: path.clone(),
            source,
        };
        let now = to_ns(SystemTime::now());
        let tx = self.conn.transaction().map_err(db)?;
        for (key, size, etag) in upserts {
            tx.execute(
                "INSERT OR REPLACE INTO remote_index
                 (vault, key, size, etag, storage_class, last_modified_ns, source, sequencer, deleted)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, 'sync', NULL, 0)",
                params![vault, key.as_bytes(), *size as i64, etag, now],
            )
            .map_err(db)?;
        }
        for key in removed {
            tx.execute(
                "DELETE FROM remote_index WHERE vault = ?1 AND key = ?2",
                params![vault, key.as_bytes()],
            )
            .map_err(db)?;
        }
        let count = live_rows(&tx, vault).map_err(db)?;
        // Changes not in the bucket's manifest yet: the next complete run publishes them,
        // even when it changes nothing itself (this run may be killed before it publishes).
        let changed = i64::from(!upserts.is_empty() || !removed.is_empty());
        tx.execute(
            "INSERT INTO index_state (vault, source, indexed_ns, objects, unpublished)
             VALUES (?1, 'sync', ?2, ?3, ?4)
             ON CONFLICT(vault) DO UPDATE SET source = 'sync', indexed_ns = ?2, objects = ?3,
                 unpublished = MAX(unpublished, ?4)",
            params![vault, now, count, changed],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(count as u64)
    }

    /// Records the manifest now in the bucket (its ETag and generation time) and marks the
    /// index as current: the conditional GET of the next sync compares against it.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn record_manifest(&self, vault: &str, etag: &str, generated: SystemTime) -> Result<()> {
        self.conn
            .execute(
                "UPDATE index_state SET manifest_etag = ?2, manifest_generated_ns = ?3,
                 indexed_ns = ?4, unpublished = 0 WHERE vault = ?1",
                params![vault, etag, to_ns(generated), to_ns(SystemTime::now())],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// Marks the index as checked now (the manifest's ETag was unchanged).
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn touch(&self, vault: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE index_state SET indexed_ns = ?2 WHERE vault = ?1",
                params![vault, to_ns(SystemTime::now())],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// One index row.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn object(&self, vault: &str, key: &str) -> Result<Option<ObjectRow>> {
        self.conn
            .query_row(
                "SELECT size, etag, storage_class, last_modified_ns FROM remote_index
                 WHERE vault = ?1 AND key = ?2 AND deleted = 0",
                params![vault, key.as_bytes()],
                |r| {
                    Ok(ObjectRow {
                        key: key.to_owned(),
                        size: r.get::<_, i64>(0)? as u64,
                        etag: r.get(1)?,
                        storage_class: r.get(2)?,
                        last_modified: r.get::<_, Option<i64>>(3)?.map(from_ns),
                    })
                },
            )
            .optional()
            .map_err(self.db())
    }

    /// The state of a vault's index, `None` when it was never indexed.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn state(&self, vault: &str) -> Result<Option<IndexState>> {
        self.conn
            .query_row(
                "SELECT source, indexed_ns, objects, manifest_etag, manifest_generated_ns,
                        unpublished
                 FROM index_state WHERE vault = ?1",
                params![vault],
                |r| {
                    Ok(IndexState {
                        source: IndexSource::parse(&r.get::<_, String>(0)?),
                        indexed_at: from_ns(r.get(1)?),
                        objects: r.get::<_, i64>(2)? as u64,
                        manifest_etag: r.get(3)?,
                        manifest_generated_at: r.get::<_, Option<i64>>(4)?.map(from_ns),
                        unpublished: r.get::<_, i64>(5)? != 0,
                    })
                },
            )
            .optional()
            .map_err(self.db())
    }

    /// A vault's index rows in key byte order, read a page at a time (memory stays flat).
    pub fn objects<'a>(&'a self, vault: &'a str) -> impl Iterator<Item = Result<ObjectRow>> + 'a {
        let mut after: Option<Vec<u8>> = None;
        let mut page: std::vec::IntoIter<ObjectRow> = Vec::new().into_iter();
        let mut done = false;
        std::iter::from_fn(move || loop {
            if let Some(r) = page.next() {
                return Some(Ok(r));
            }
            if done {
                return None;
            }
            let rows = self.page(vault, after.as_deref());
            match rows {
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
                Ok(rows) => {
                    done = rows.len() < PAGE;
                    after = rows.last().map(|r| r.key.as_bytes().to_vec());
                    page = rows.into_iter();
                }
            }
        })
    }

    fn page(&self, vault: &str, after: Option<&[u8]>) -> Result<Vec<ObjectRow>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT key, size, etag, storage_class, last_modified_ns FROM remote_index
                 WHERE vault = ?1 AND deleted = 0 AND (?2 IS NULL OR key > ?2)
                 ORDER BY key LIMIT ?3",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map(params![vault, after, PAGE as i64], |r| {
                let key: Vec<u8> = r.get(0)?;
                Ok(ObjectRow {
                    key: String::from_utf8_lossy(&key).into_owned(),
                    size: r.get::<_, i64>(1)? as u64,
                    etag: r.get(2)?,
                    storage_class: r.get(3)?,
                    last_modified: r.get::<_, Option<i64>>(4)?.map(from_ns),
                })
            })
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())
    }
}

/// The rows of a vault's index that are not tombstones.
fn live_rows(conn: &Connection, vault: &str) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COUNT(*) FROM remote_index WHERE vault = ?1 AND deleted = 0",
        params![vault],
        |r| r.get(0),
    )
}

/// `s3://bucket/prefix/` → (`bucket`, `prefix/`).
fn split_remote(remote: &str) -> (String, String) {
    let rest = remote.strip_prefix("s3://").unwrap_or(remote);
    match rest.split_once('/') {
        Some((b, p)) => (b.to_owned(), p.to_owned()),
        None => (rest.to_owned(), String::new()),
    }
}

fn row_to_vault(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vault> {
    let strategy: String = r.get(3)?;
    let policy: String = r.get(4)?;
    Ok(Vault {
        name: r.get(0)?,
        local_dir: PathBuf::from(r.get::<_, String>(1)?),
        remote: r.get(2)?,
        strategy: strategy.parse().unwrap_or(Strategy::Mirror),
        policy: serde_json::from_str(&policy).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(name: &str) -> Vault {
        Vault {
            name: name.to_owned(),
            local_dir: PathBuf::from("/data/site"),
            remote: "s3://bucket/site/".to_owned(),
            strategy: Strategy::Mirror,
            policy: Policy::default(),
        }
    }

    fn row(key: &str, size: u64) -> Result<ObjectRow> {
        Ok(ObjectRow {
            key: key.to_owned(),
            size,
            etag: Some(format!("{size:032x}")),
            storage_class: Some("STANDARD".to_owned()),
            last_modified: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        })
    }

    #[test]
    fn vaults_are_added_listed_changed_and_removed() {
        let ix = Index::in_memory();
        ix.add_vault(&vault("b")).unwrap();
        ix.add_vault(&vault("a")).unwrap();
        assert!(matches!(
            ix.add_vault(&vault("a")),
            Err(Error::VaultExists(_))
        ));
        assert!(matches!(
            ix.add_vault(&vault("../x")),
            Err(Error::Invalid(_))
        ));
        let names: Vec<String> = ix.vaults().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["a", "b"]);
        let mut p = Policy::default();
        p.budgets.put = Some(5);
        p.interval_secs = Some(900);
        ix.set_policy("a", Strategy::Cache, &p).unwrap();
        let a = ix.vault("a").unwrap();
        assert_eq!((a.strategy, a.policy), (Strategy::Cache, p));
        ix.remove_vault("a").unwrap();
        assert!(matches!(ix.vault("a"), Err(Error::NoVault(_))));
        assert!(matches!(ix.remove_vault("a"), Err(Error::NoVault(_))));
    }

    #[test]
    fn objects_replace_atomically_and_stream_in_key_byte_order() {
        let mut ix = Index::in_memory();
        ix.add_vault(&vault("v")).unwrap();
        let keys = ["b", "a/b", "a-b", "a", "é", "Z"];
        let n = ix
            .replace_objects(
                "v",
                IndexSource::Reconcile,
                keys.iter().map(|k| row(k, 1)),
                None,
            )
            .unwrap();
        assert_eq!(n, 6);
        let got: Vec<String> = ix.objects("v").map(|r| r.unwrap().key).collect();
        assert_eq!(
            got,
            ["Z", "a", "a-b", "a/b", "b", "é"],
            "byte order, as S3 lists"
        );
        // A failing source leaves everything as it was.
        let bad = vec![row("x", 1), Err(Error::Invalid("broken".into()))];
        assert!(ix
            .replace_objects("v", IndexSource::Inventory, bad, None)
            .is_err());
        assert_eq!(ix.objects("v").count(), 6);
        let st = ix.state("v").unwrap().unwrap();
        assert_eq!((st.source, st.objects), (IndexSource::Reconcile, 6));
        assert!(st.is_fresh(Duration::from_secs(60), SystemTime::now()));
        assert!(!st.is_fresh(
            Duration::from_secs(60),
            SystemTime::now() + Duration::from_secs(61)
        ));
    }

    #[test]
    fn many_objects_page_through() {
        let mut ix = Index::in_memory();
        ix.add_vault(&vault("v")).unwrap();
        let rows = (0..2_500).map(|i| row(&format!("k{i:05}"), i));
        ix.replace_objects("v", IndexSource::Reconcile, rows, None)
            .unwrap();
        let got: Vec<ObjectRow> = ix.objects("v").map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 2_500);
        assert!(got.windows(2).all(|w| w[0].key < w[1].key));
        assert_eq!(got[1234], row("k01234", 1234).unwrap());
    }
}
