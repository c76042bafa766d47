//! Which source versions a versioned sync (`--enable-versioning`) has copied, and as which
//! destination versions (`versions.sqlite3` in the state directory).
//!
//! A re-run copies only the versions this map does not hold, so it costs the two version
//! listings and nothing per version already synced. Each copy also carries its origin
//! version id as metadata (`x-amz-meta-larder-source-version-id`), so a machine without this
//! map learns it from one HEAD per destination version it does not know, once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection};

use crate::StateError;

const MIGRATIONS: &[&str] = &["CREATE TABLE synced_versions (
        src TEXT NOT NULL,
        dst TEXT NOT NULL,
        key BLOB NOT NULL,
        src_version TEXT NOT NULL,
        dst_version TEXT NOT NULL,
        PRIMARY KEY (src, dst, key, src_version)
    ) WITHOUT ROWID;"];

/// The map; see the module docs.
#[derive(Debug)]
pub struct VersionMap {
    conn: Mutex<Connection>,
    path: String,
}

impl VersionMap {
    /// Opens (creating) the map at `path`.
    ///
    /// # Errors
    ///
    /// When the file or its directory cannot be created or is not a database of ours.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let conn = crate::db::open(path, MIGRATIONS)
            .map_err(|e| StateError::new(path.display().to_string(), e))?;
        Ok(VersionMap {
            conn: Mutex::new(conn),
            path: path.display().to_string(),
        })
    }

    /// A map that lives in memory only (tests, `--no-meta-cache`).
    pub fn in_memory() -> Self {
        let conn = Connection::open_in_memory()
            .and_then(|c| crate::db::init(c, MIGRATIONS))
            .expect("an in-memory SQLite database");
        VersionMap {
            conn: Mutex::new(conn),
            path: ":memory:".to_owned(),
        }
    }

    /// The versions of `key` copied from store `src` to store `dst`: source version id →
    /// destination version id.
    ///
    /// # Errors
    ///
    /// When the database cannot be read.
    pub fn synced(
        &self,
        src: &str,
        dst: &str,
        key: &str,
    ) -> Result<HashMap<String, String>, StateError> {
        let conn = self.conn.lock().expect("version map lock");
        let mut stmt = conn
            .prepare_cached(
                "SELECT src_version, dst_version FROM synced_versions
                 WHERE src = ?1 AND dst = ?2 AND key = ?3",
            )
            .map_err(|e| StateError::new(self.path.clone(), e))?;
        let rows = stmt
            .query_map(params![src, dst, key.as_bytes()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<HashMap<_, _>, _>>())
            .map_err(|e| StateError::new(self.path.clone(), e))?;
        Ok(rows)
    }

    /// Records that `src_version` of `key` was copied as `dst_version`.
    ///
    /// # Errors
    ///
    /// When the database cannot be written.
    pub fn record(
        &self,
        src: &str,
        dst: &str,
        key: &str,
        src_version: &str,
        dst_version: &str,
    ) -> Result<(), StateError> {
        let conn = self.conn.lock().expect("version map lock");
        conn.execute(
            "INSERT OR REPLACE INTO synced_versions (src, dst, key, src_version, dst_version)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![src, dst, key.as_bytes(), src_version, dst_version],
        )
        .map(drop)
        .map_err(|e| StateError::new(self.path.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_back_per_store_pair_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("versions.sqlite3");
        let m = VersionMap::open(&path).unwrap();
        m.record("s", "d", "k", "v1", "w1").unwrap();
        m.record("s", "d", "k", "v2", "w2").unwrap();
        m.record("s", "other", "k", "v3", "w3").unwrap();
        m.record("s", "d", "k2", "v4", "w4").unwrap();
        drop(m);
        let m = VersionMap::open(&path).unwrap();
        let got = m.synced("s", "d", "k").unwrap();
        assert_eq!(
            got,
            HashMap::from([
                ("v1".to_owned(), "w1".to_owned()),
                ("v2".to_owned(), "w2".to_owned())
            ])
        );
        assert!(m.synced("s", "d", "nope").unwrap().is_empty());
    }
}
