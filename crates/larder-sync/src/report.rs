//! What a sync reports: its events, the progress of its bytes, and its final report.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use larder_store::ErrorKind;

use crate::{Reason, Verified};

/// A callback for [`Event`]s.
pub type EventHandler = Arc<dyn Fn(&Event) + Send + Sync>;

/// How the bytes of the transfers in flight move, for progress bars
/// ([`SyncOptions::on_progress`](crate::SyncOptions::on_progress)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "progress", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Progress {
    /// A transfer starts: `size` bytes to move.
    Started {
        /// The key.
        key: String,
        /// Its size.
        size: u64,
    },
    /// `done` of the key's `size` bytes have moved in this attempt (a retry counts again
    /// from its start; a server-side copy reports all of them once it is made).
    Bytes {
        /// The key.
        key: String,
        /// Bytes moved so far.
        done: u64,
        /// The object's size.
        size: u64,
    },
}

/// A callback for [`Progress`]: called as often as a chunk of a body moves, so it must be
/// cheap.
pub type ProgressHandler = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What happened (or, in a dry run, would happen) to one key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Copied from source to destination.
    Transfer,
    /// Left alone.
    Skip,
    /// Deleted from the destination.
    Delete,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Transfer => "transfer",
            Action::Skip => "skip",
            Action::Delete => "delete",
        })
    }
}

/// One event of a sync, for progress and logs.
///
/// Its serde form is one flat object, the lines `larder sync --json` prints (without their
/// `schema`): `{"event": "transfer" | "skip" | "delete", "key", "size", "reason", "dry_run",
/// "adopted", "etag_verified", "checksum_verified", "server_side", "done", "listed"}` for
/// [`Event::Done`], `{"event": "error", "key", "error"}` for [`Event::Failed`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// An action was planned (dry run) or done.
    Done {
        /// What.
        action: Action,
        /// The key.
        key: String,
        /// Its size.
        size: u64,
        /// Why.
        reason: Reason,
        /// Whether this was only planned.
        dry_run: bool,
        /// What was verified, and whether the server copied the bytes.
        verified: Verified,
        /// Progress: keys finished so far, this one included.
        done: u64,
        /// Progress: source entries listed so far (the total, once listing has finished).
        listed: u64,
    },
    /// A key failed.
    Failed {
        /// The key (or a listing location).
        key: String,
        /// The error, one line.
        error: String,
    },
}

impl serde::Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Event::Done {
                action,
                key,
                size,
                reason,
                dry_run,
                verified,
                done,
                listed,
            } => {
                let mut m = s.serialize_map(Some(11))?;
                m.serialize_entry("event", action)?;
                m.serialize_entry("key", key)?;
                m.serialize_entry("size", size)?;
                m.serialize_entry("reason", &reason.to_string())?;
                m.serialize_entry("dry_run", dry_run)?;
                m.serialize_entry("adopted", &matches!(reason, Reason::Adopted(_)))?;
                m.serialize_entry("etag_verified", &verified.etag)?;
                m.serialize_entry("checksum_verified", &verified.checksum)?;
                m.serialize_entry("server_side", &verified.server_side)?;
                m.serialize_entry("done", done)?;
                m.serialize_entry("listed", listed)?;
                m.end()
            }
            Event::Failed { key, error } => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("event", "error")?;
                m.serialize_entry("key", key)?;
                m.serialize_entry("error", error)?;
                m.end()
            }
        }
    }
}

/// One failed key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyFailure {
    /// The key, or a listing location.
    pub key: String,
    /// What kind of failure.
    #[serde(serialize_with = "ser::display")]
    pub kind: ErrorKind,
    /// The message, naming the key and the cause.
    pub message: String,
}

/// The result of a sync. Partial failures are here, not in an `Err`.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct SyncReport {
    /// Objects transferred, in either direction (or, in a dry run, to transfer).
    pub transferred: u64,
    /// Objects up to date (adopted ones included).
    pub skipped: u64,
    /// Of the skipped, objects found to hold the right content without a usable recorded
    /// mtime (written by another tool) and remembered as such: see [`Reason::Adopted`].
    pub adopted: u64,
    /// Of the skipped, source objects in an archive tier, not read (see
    /// [`Reason::Archived`]).
    pub archived: u64,
    /// Objects deleted (or to delete).
    pub deleted: u64,
    /// Objects left out by the filters.
    pub filtered: u64,
    /// Bytes transferred (or to transfer).
    pub bytes: u64,
    /// Transfers whose ETag / MD5 was verified.
    pub etag_verified: u64,
    /// Transfers whose additional checksum was verified.
    pub checksum_verified: u64,
    /// Of the transferred, objects the server copied (CopyObject / UploadPartCopy) without
    /// their bytes passing through larder: see [`SyncOptions::server_side_copy`](crate::SyncOptions::server_side_copy).
    pub server_side_copies: u64,
    /// Source entries listed.
    #[serde(rename = "source_listed")]
    pub src_listed: u64,
    /// Destination entries listed.
    #[serde(rename = "target_listed")]
    pub dst_listed: u64,
    /// HEAD requests made to compare.
    pub heads: u64,
    /// Of the skipped, keys left alone because a write's precondition did not hold
    /// ([`Reason::Precondition`]): a warning.
    pub precondition_skipped: u64,
    /// Failed keys.
    pub errors: Vec<KeyFailure>,
    /// Why deletions did not run, when `delete` was asked for.
    pub delete_refused: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether the run was cancelled.
    pub cancelled: bool,
    /// How long it took (seconds, when serialized).
    #[serde(rename = "elapsed_seconds", serialize_with = "ser::seconds")]
    pub elapsed: Duration,
}

impl SyncReport {
    /// Counts one transfer of `size` bytes and what was verified of it.
    pub(crate) fn count_transfer(&mut self, size: u64, verified: Verified) {
        self.transferred += 1;
        self.bytes += size;
        self.etag_verified += u64::from(verified.etag);
        self.checksum_verified += u64::from(verified.checksum);
        self.server_side_copies += u64::from(verified.server_side);
    }

    /// Failures that are verification mismatches.
    pub fn verify_failures(&self) -> usize {
        self.errors
            .iter()
            .filter(|e| e.kind == ErrorKind::Integrity)
            .count()
    }
}

/// How the reports and events serialize what has no serde form of its own.
mod ser {
    use serde::Serializer;

    /// As its `Display` text.
    pub fn display<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    /// As seconds.
    pub fn seconds<S: Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Adoption;
    use serde_json::json;

    /// The serde forms are what `larder sync --json` prints: a change here is a schema
    /// change for every script that reads them.
    #[test]
    fn events_and_reports_serialize_in_the_cli_schema() {
        let done = Event::Done {
            action: Action::Skip,
            key: "a/b".into(),
            size: 3,
            reason: Reason::Adopted(Adoption::Md5),
            dry_run: true,
            verified: Verified {
                etag: true,
                checksum: false,
                server_side: false,
            },
            done: 1,
            listed: 2,
        };
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            json!({"event": "skip", "key": "a/b", "size": 3,
                   "reason": "adopted: same content, the file's MD5 equals the object's ETag",
                   "dry_run": true, "adopted": true, "etag_verified": true,
                   "checksum_verified": false, "server_side": false, "done": 1, "listed": 2})
        );
        let failed = Event::Failed {
            key: "k".into(),
            error: "boom".into(),
        };
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"event": "error", "key": "k", "error": "boom"})
        );
        let report = SyncReport {
            src_listed: 4,
            dst_listed: 5,
            elapsed: Duration::from_millis(1500),
            ..SyncReport::default()
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(
            (
                &v["source_listed"],
                &v["target_listed"],
                &v["elapsed_seconds"]
            ),
            (&json!(4), &json!(5), &json!(1.5))
        );
    }
}
