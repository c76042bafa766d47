//! Opening a database: directory, WAL, busy timeout, append-only migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// Opens (creating) `path` and applies the `migrations` it has not seen yet, each in its own
/// transaction with `user_version` bumped in the same one.
pub(crate) fn open(path: &Path, migrations: &[&str]) -> Result<Connection, rusqlite::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("cannot create `{}`: {e}", dir.display())),
            )
        })?;
    }
    init(Connection::open(path)?, migrations)
}

/// Sets a fresh connection up and migrates it.
pub(crate) fn init(conn: Connection, migrations: &[&str]) -> Result<Connection, rusqlite::Error> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version as usize > migrations.len() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "the database is at schema version {version}, newer than this larder knows ({})",
                migrations.len()
            )),
        ));
    }
    for (i, m) in migrations.iter().enumerate().skip(version as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {m} PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(conn)
}
