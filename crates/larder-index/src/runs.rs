//! The record of a vault's sync runs: when, outcome, counts, requests, bytes, price.

use std::time::SystemTime;

use rusqlite::params;

use crate::vault::{from_ns, to_ns, Index};
use crate::Result;

/// One sync run, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// When it started.
    pub started: SystemTime,
    /// When it ended.
    pub ended: SystemTime,
    /// `ok`, `failed` or `stalled` (and, with two-way sync, `conflicts`).
    pub outcome: String,
    /// Why it stalled or failed.
    pub reason: Option<String>,
    /// Objects uploaded.
    pub uploaded: u64,
    /// Objects deleted.
    pub deleted: u64,
    /// Keys that failed.
    pub failed: u64,
    /// Requests per kind, `{"list": …, "get": …, "head": …, "put": …, "delete": …}`.
    pub requests: serde_json::Value,
    /// Bytes sent.
    pub upload_bytes: u64,
    /// Bytes received.
    pub download_bytes: u64,
    /// What it cost, at the price table's rates.
    pub price_usd: f64,
}

impl Index {
    /// Records a sync run.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn record_run(&self, vault: &str, r: &Run) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO runs (vault, started_ns, ended_ns, outcome, reason, uploaded, deleted,
                 failed, requests, upload_bytes, download_bytes, price_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    vault,
                    to_ns(r.started),
                    to_ns(r.ended),
                    r.outcome,
                    r.reason,
                    r.uploaded as i64,
                    r.deleted as i64,
                    r.failed as i64,
                    r.requests.to_string(),
                    r.upload_bytes as i64,
                    r.download_bytes as i64,
                    r.price_usd
                ],
            )
            .map_err(self.db())?;
        Ok(())
    }

    /// The last `n` runs of a vault, newest first.
    ///
    /// # Errors
    ///
    /// A database error.
    pub fn runs(&self, vault: &str, n: usize) -> Result<Vec<Run>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT started_ns, ended_ns, outcome, reason, uploaded, deleted, failed, requests,
                 upload_bytes, download_bytes, price_usd FROM runs WHERE vault = ?1
                 ORDER BY started_ns DESC LIMIT ?2",
            )
            .map_err(self.db())?;
        let rows = st
            .query_map(params![vault, n as i64], |r| {
                Ok(Run {
                    started: from_ns(r.get(0)?),
                    ended: from_ns(r.get(1)?),
                    outcome: r.get(2)?,
                    reason: r.get(3)?,
                    uploaded: r.get::<_, i64>(4)? as u64,
                    deleted: r.get::<_, i64>(5)? as u64,
                    failed: r.get::<_, i64>(6)? as u64,
                    requests: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                    upload_bytes: r.get::<_, i64>(8)? as u64,
                    download_bytes: r.get::<_, i64>(9)? as u64,
                    price_usd: r.get(10)?,
                })
            })
            .map_err(self.db())?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.db())
    }
}
