//! The journal of multipart uploads in progress (`uploads.sqlite3` in the state directory):
//! [`larder_store::journal::UploadJournal`] on SQLite.
//!
//! Each row is owned by a process, named by its pid and its start time (from `/proc`, so a
//! reused pid is not mistaken for the owner). A row whose owner is gone is what a killed run
//! left: the next upload of the same key takes it over and resumes it; the rest are aborted
//! by the next sync to that bucket (`orphans`). Where `/proc` is missing, a row is taken as
//! dead after a day.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use larder_store::journal::{JournalUpload, UploadJournal};
use rusqlite::{params, Connection};

use crate::StateError;

const MIGRATIONS: &[&str] = &["CREATE TABLE uploads (
        bucket TEXT NOT NULL,
        key TEXT NOT NULL,
        upload_id TEXT NOT NULL PRIMARY KEY,
        part_size INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        started_ms INTEGER NOT NULL
    );
    CREATE INDEX uploads_by_key ON uploads (bucket, key);"];

/// The journal; see the module docs.
#[derive(Debug)]
pub struct Uploads {
    conn: Mutex<Connection>,
    pid: u32,
    pid_start: Option<u64>,
}

/// A process's start time in clock ticks since boot (`/proc/PID/stat`, field 22).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Uploads {
    /// Opens (creating) the journal at `path`.
    ///
    /// # Errors
    ///
    /// When the file or its directory cannot be created or is not a database of ours.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let conn = crate::db::open(path, MIGRATIONS)
            .map_err(|e| StateError::new(path.display().to_string(), e))?;
        let pid = std::process::id();
        Ok(Uploads {
            conn: Mutex::new(conn),
            pid,
            pid_start: process_start(pid),
        })
    }

    /// Whether the owner of a row is still running.
    fn alive(&self, pid: u32, pid_start: Option<u64>, started_ms: i64) -> bool {
        if pid == self.pid && pid_start == self.pid_start {
            return true;
        }
        if Path::new("/proc/self/stat").exists() {
            return pid_start.is_some() && process_start(pid) == pid_start;
        }
        now_ms() - started_ms < 24 * 3600 * 1000
    }

    fn dead_rows(
        &self,
        conn: &Connection,
        sql: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Vec<(String, String, u64)> {
        let mut stmt = match conn.prepare(sql) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("upload journal: {e}");
                return Vec::new();
            }
        };
        let rows = stmt.query_map(args, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, u32>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        });
        let Ok(rows) = rows else { return Vec::new() };
        rows.flatten()
            .filter(|(_, _, _, pid, start, started)| {
                !self.alive(*pid, start.map(|s| s as u64), *started)
            })
            .map(|(key, id, ps, ..)| (key, id, ps as u64))
            .collect()
    }
}

impl UploadJournal for Uploads {
    fn take_over(&self, bucket: &str, key: &str, part_size: u64) -> Option<JournalUpload> {
        let conn = self.conn.lock().expect("journal lock");
        let rows = self.dead_rows(
            &conn,
            "SELECT key, upload_id, part_size, pid, pid_start, started_ms FROM uploads
             WHERE bucket = ?1 AND key = ?2 AND part_size = ?3 ORDER BY started_ms DESC",
            &[&bucket, &key, &(part_size as i64)],
        );
        let (_, upload_id, _) = rows.into_iter().next()?;
        // Owned from now on: no other run takes it, and it is not an orphan.
        let updated = conn
            .execute(
                "UPDATE uploads SET pid = ?1, pid_start = ?2 WHERE upload_id = ?3",
                params![self.pid, self.pid_start.map(|s| s as i64), upload_id],
            )
            .ok()?;
        (updated == 1).then_some(JournalUpload {
            upload_id,
            part_size,
        })
    }

    fn started(&self, bucket: &str, key: &str, upload: &JournalUpload) {
        let conn = self.conn.lock().expect("journal lock");
        if let Err(e) = conn.execute(
            "INSERT OR REPLACE INTO uploads (bucket, key, upload_id, part_size, pid, pid_start, started_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                bucket,
                key,
                upload.upload_id,
                upload.part_size as i64,
                self.pid,
                self.pid_start.map(|s| s as i64),
                now_ms()
            ],
        ) {
            tracing::warn!("upload journal: cannot record an upload: {e}");
        }
    }

    fn finished(&self, _bucket: &str, upload_id: &str) {
        let conn = self.conn.lock().expect("journal lock");
        if let Err(e) = conn.execute("DELETE FROM uploads WHERE upload_id = ?1", [upload_id]) {
            tracing::warn!("upload journal: cannot forget an upload: {e}");
        }
    }

    fn orphans(&self, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        let conn = self.conn.lock().expect("journal lock");
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        self.dead_rows(
            &conn,
            "SELECT key, upload_id, part_size, pid, pid_start, started_ms FROM uploads
             WHERE bucket = ?1 AND key LIKE ?2 ESCAPE '\\'",
            &[&bucket, &pattern],
        )
        .into_iter()
        .map(|(k, id, _)| (k, id))
        .collect()
    }
}

/// The owner of a row, for tests.
#[cfg(test)]
fn owner(conn: &Connection, upload_id: &str) -> Option<u32> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT pid FROM uploads WHERE upload_id = ?1",
        [upload_id],
        |r| r.get(0),
    )
    .optional()
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(id: &str) -> JournalUpload {
        JournalUpload {
            upload_id: id.into(),
            part_size: 5 << 20,
        }
    }

    #[test]
    fn a_live_owners_upload_is_neither_taken_nor_an_orphan() {
        let d = tempfile::tempdir().unwrap();
        let j = Uploads::open(&d.path().join("u.sqlite3")).unwrap();
        j.started("b", "dir/k", &up("u1"));
        assert_eq!(j.take_over("b", "dir/k", 5 << 20), None);
        assert_eq!(j.orphans("b", "dir/"), Vec::<(String, String)>::new());
        j.finished("b", "u1");
        assert_eq!(owner(&j.conn.lock().unwrap(), "u1"), None);
    }

    #[test]
    fn a_dead_owners_upload_is_taken_over_once_and_the_rest_are_orphans() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("u.sqlite3");
        let j = Uploads::open(&path).unwrap();
        j.started("b", "dir/k", &up("old"));
        j.started("b", "dir/k", &up("new"));
        j.started("b", "dir/k2", &up("other"));
        j.started("b", "elsewhere/x_y", &up("far"));
        // As if a run that is not running any more had written them.
        j.conn
            .lock()
            .unwrap()
            .execute("UPDATE uploads SET pid = 4194303, pid_start = 1", [])
            .unwrap();
        j.conn
            .lock()
            .unwrap()
            .execute(
                "UPDATE uploads SET started_ms = started_ms + 1 WHERE upload_id = 'new'",
                [],
            )
            .unwrap();
        assert_eq!(
            j.take_over("b", "dir/k", 1 << 20),
            None,
            "another part size"
        );
        assert_eq!(
            j.take_over("b", "dir/k", 5 << 20),
            Some(up("new")),
            "the newest"
        );
        assert_eq!(j.take_over("b", "dir/k", 5 << 20), Some(up("old")));
        assert_eq!(j.take_over("b", "dir/k", 5 << 20), None, "both owned now");
        assert_eq!(
            j.orphans("b", "dir/"),
            vec![("dir/k2".to_owned(), "other".to_owned())]
        );
        assert_eq!(
            j.orphans("b", "dir_"),
            Vec::<(String, String)>::new(),
            "`_` is literal"
        );
        assert_eq!(
            j.orphans("other-bucket", ""),
            Vec::<(String, String)>::new()
        );
        assert_eq!(
            owner(&j.conn.lock().unwrap(), "new"),
            Some(std::process::id())
        );
    }
}
