//! Vault sync, strategy `sync`: two-way, with three-way change detection and conflicts.
//!
//! Each side's changes are measured against the **base** ([`larder_index::twoway`]): every
//! key as both sides had it after the last sync that settled it. The remote side is the
//! vault's index (refreshed as in `mirror`: one conditional GET of the manifest, no LIST);
//! the local side is a walk of the directory.
//!
//! | local since base | remote since base | step |
//! | --- | --- | --- |
//! | changed | unchanged | upload, or delete the object |
//! | unchanged | changed | download, or delete the file |
//! | changed | changed | same bytes: settle; else a **conflict** |
//!
//! A conflict goes to the vault's policy, or to the user's resolution of that key
//! (`vault sync resolve`), which takes precedence:
//!
//! * `keep_local` / `keep_remote`: that side's version wins;
//! * `overwrite`: the newer version wins;
//! * `keep_both`: the newer wins and the older is kept beside it on both sides, as
//!   `name.conflict-<host>-<UTC time>.ext` (a free name, in the same directory);
//! * `ask`: nothing changes for that key; it is listed (`vault sync conflicts`) until resolved.
//!
//! Deleted on one side and modified on the other is a conflict, not a deletion: under every
//! policy but `ask` the modified version is restored on the side that deleted it.
//!
//! The base is updated only for keys whose step succeeded, so an interrupted run resumes
//! without false conflicts (a key uploaded but not settled is found equal on both sides).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use larder_index::twoway::{BaseRow, Conflict};
use larder_index::{Index, ObjectRow};
use larder_store::integrity::{etag_part_count, normalize_etag, Hasher};
use larder_store::{Entry, ErrorKind, Key, LocalStore, Store};

use crate::execute::{transfer, with_retries, TransferOptions};
use crate::vault::{publish, refresh, IndexedRemote, VaultError, VaultReport, VaultSyncOptions};

/// What a two-way sync does with a conflict; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// The local version wins.
    KeepLocal,
    /// The remote version wins.
    KeepRemote,
    /// Nothing changes; the conflict is listed until resolved.
    Ask,
    /// The newer version wins.
    Overwrite,
    /// The newer wins; the older is kept beside it, on both sides.
    KeepBoth,
}

impl std::str::FromStr for ConflictPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep_local" => Ok(ConflictPolicy::KeepLocal),
            "keep_remote" => Ok(ConflictPolicy::KeepRemote),
            "ask" => Ok(ConflictPolicy::Ask),
            "overwrite" => Ok(ConflictPolicy::Overwrite),
            "keep_both" => Ok(ConflictPolicy::KeepBoth),
            _ => Err(format!(
                "unknown conflict policy `{s}` (keep_local, keep_remote, ask, overwrite, keep_both)"
            )),
        }
    }
}

/// Which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The local directory.
    Local,
    /// The bucket.
    Remote,
}

/// One key's step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Upload the local file.
    Upload,
    /// Download the object.
    Download,
    /// Delete the object (deleted locally).
    DeleteRemote,
    /// Delete the file (deleted remotely).
    DeleteLocal,
    /// Both sides hold the same bytes: record them as the base.
    Settle,
    /// Gone from both sides: forget it.
    Forget,
    /// Keep both versions: the `loser`'s goes to `name` on both sides, the other wins.
    KeepBoth {
        /// The side whose version is renamed.
        loser: Side,
        /// Its new key.
        name: String,
    },
    /// A conflict left for the user (`ask`).
    Conflict(String),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Upload => f.write_str("upload"),
            Step::Download => f.write_str("download"),
            Step::DeleteRemote => f.write_str("delete-remote"),
            Step::DeleteLocal => f.write_str("delete-local"),
            Step::Settle => f.write_str("settle"),
            Step::Forget => f.write_str("forget"),
            Step::KeepBoth { .. } => f.write_str("keep-both"),
            Step::Conflict(_) => f.write_str("conflict"),
        }
    }
}

/// What a two-way sync did (or, dry, would do).
#[derive(Debug, Clone, Default)]
pub struct TwoWayReport {
    /// Each key's step, in key order.
    pub steps: Vec<(String, Step)>,
    /// Steps carried out.
    pub done: u64,
    /// Keys whose step failed, with why.
    pub failed: Vec<(String, String)>,
    /// Conflicts left for the user.
    pub conflicts: u64,
    /// Local names that are not valid keys (reported, never skipped silently).
    pub invalid: Vec<String>,
    /// The refresh and publish of the index, the requests and the stall, as `mirror` reports
    /// them.
    pub vault: VaultReport,
}

/// One local file.
#[derive(Debug, Clone)]
struct LocalFile {
    size: u64,
    mtime_ns: i64,
    modified: SystemTime,
    ino: u64,
    ctime_ns: i64,
}

impl LocalFile {
    fn of(m: &std::fs::Metadata) -> LocalFile {
        let modified = m.modified().unwrap_or(UNIX_EPOCH);
        #[cfg(unix)]
        let (ino, ctime_ns) = {
            use std::os::unix::fs::MetadataExt;
            (m.ino(), m.ctime() * 1_000_000_000 + m.ctime_nsec())
        };
        #[cfg(not(unix))]
        let (ino, ctime_ns) = (0, 0);
        LocalFile {
            size: m.len(),
            mtime_ns: ns(modified),
            modified,
            ino,
            ctime_ns,
        }
    }
}

fn ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn local_changed(b: Option<&BaseRow>, l: Option<&LocalFile>) -> bool {
    match (b, l) {
        (None, None) => false,
        // Size and mtime alone miss a rename of a file with the same size and time (two
        // downloads of one second, say): the inode and the status-change time do not.
        (Some(b), Some(l)) => {
            l.size != b.local_size
                || l.mtime_ns != b.local_mtime_ns
                || l.ino != b.local_ino
                || l.ctime_ns != b.local_ctime_ns
        }
        _ => true,
    }
}

fn remote_changed(b: Option<&BaseRow>, r: Option<&ObjectRow>) -> bool {
    match (b, r) {
        (None, None) => false,
        (Some(b), Some(r)) => {
            r.size != b.remote_size
                || r.etag.as_deref().map(normalize_etag)
                    != b.remote_etag.as_deref().map(normalize_etag)
        }
        _ => true,
    }
}

/// Whether the local file holds the bytes of an object with this ETag (single-part: its
/// MD5; multipart: with the likely part sizes).
fn same_bytes(path: &std::path::Path, size: u64, etag: &str) -> bool {
    let etag = normalize_etag(etag);
    let hash = |part: Option<u64>| -> Option<String> {
        use std::io::Read;
        let mut f = std::fs::File::open(path).ok()?;
        let mut h = Hasher::new();
        if let Some(p) = part {
            h = h.skip_md5().with_part_size(p);
        }
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).ok()?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d = h.finish();
        if d.size != size {
            return None;
        }
        if part.is_some() {
            d.multipart_etag()
        } else {
            d.md5_hex()
        }
    };
    match etag_part_count(&etag) {
        None if etag.len() == 32 => hash(None).as_deref() == Some(etag.as_str()),
        Some(n) => crate::inspect::candidate_part_sizes(size, u64::from(n), &[])
            .into_iter()
            .any(|p| hash(Some(p)).as_deref() == Some(etag.as_str())),
        None => false,
    }
}

/// `dir/stem.conflict-<host>-<time>.ext`, free on both sides.
fn conflict_name(key: &str, host: &str, now: SystemTime, taken: &dyn Fn(&str) -> bool) -> String {
    let (dir, file) = match key.rsplit_once('/') {
        Some((d, f)) => (format!("{d}/"), f),
        None => (String::new(), key),
    };
    let (stem, ext) = match file.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (file, String::new()),
    };
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let t = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
        .replace([':', '-'], "");
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = format!("{dir}{stem}.conflict-{host}-{t}");
    let mut name = format!("{base}{ext}");
    let mut n = 2;
    while taken(&name) {
        name = format!("{base}-{n}{ext}");
        n += 1;
    }
    name
}

/// Decides every key's step.
fn plan(
    local: &BTreeMap<String, LocalFile>,
    remote: &BTreeMap<String, ObjectRow>,
    base: &HashMap<String, BaseRow>,
    resolutions: &HashMap<String, ConflictPolicy>,
    policy: ConflictPolicy,
    local_dir: &std::path::Path,
    host: &str,
) -> Vec<(String, Step)> {
    let keys: BTreeSet<&String> = local
        .keys()
        .chain(remote.keys())
        .chain(base.keys())
        .collect();
    let now = SystemTime::now();
    let mut out = Vec::new();
    for key in keys {
        let (l, r, b) = (local.get(key), remote.get(key), base.get(key));
        let step = match (local_changed(b, l), remote_changed(b, r)) {
            (false, false) => continue,
            (true, false) => match (l, r) {
                (Some(_), _) => Step::Upload,
                (None, Some(_)) => Step::DeleteRemote,
                (None, None) => Step::Forget,
            },
            (false, true) => match (l, r) {
                (_, Some(_)) => Step::Download,
                (Some(_), None) => Step::DeleteLocal,
                (None, None) => Step::Forget,
            },
            (true, true) => {
                let kind = match (l, r) {
                    (None, None) => {
                        out.push((key.clone(), Step::Forget));
                        continue;
                    }
                    (Some(lf), Some(ro)) => {
                        let same = lf.size == ro.size
                            && ro
                                .etag
                                .as_deref()
                                .is_some_and(|e| same_bytes(&local_dir.join(key), lf.size, e));
                        if same {
                            out.push((key.clone(), Step::Settle));
                            continue;
                        }
                        if b.is_none() {
                            "both created"
                        } else {
                            "both modified"
                        }
                    }
                    (None, Some(_)) => "deleted locally, modified remotely",
                    (Some(_), None) => "modified locally, deleted remotely",
                };
                let chosen = resolutions.get(key.as_str()).copied();
                let p = chosen.unwrap_or(policy);
                match (l, r, p) {
                    (_, _, ConflictPolicy::Ask) => Step::Conflict(kind.to_owned()),
                    // Deleted on one side, modified on the other: a policy restores the
                    // modified version; only the user's own resolution deletes it.
                    (None, Some(_), ConflictPolicy::KeepLocal) if chosen.is_some() => {
                        Step::DeleteRemote
                    }
                    (Some(_), None, ConflictPolicy::KeepRemote) if chosen.is_some() => {
                        Step::DeleteLocal
                    }
                    (None, Some(_), _) => Step::Download,
                    (Some(_), None, _) => Step::Upload,
                    (Some(lf), Some(ro), p) => {
                        let local_newer = ro.last_modified.is_none_or(|t| lf.modified >= t);
                        match p {
                            ConflictPolicy::KeepLocal => Step::Upload,
                            ConflictPolicy::KeepRemote => Step::Download,
                            ConflictPolicy::Overwrite if local_newer => Step::Upload,
                            ConflictPolicy::Overwrite => Step::Download,
                            _ => {
                                let taken =
                                    |n: &str| local.contains_key(n) || remote.contains_key(n);
                                Step::KeepBoth {
                                    loser: if local_newer {
                                        Side::Remote
                                    } else {
                                        Side::Local
                                    },
                                    name: conflict_name(key, host, now, &taken),
                                }
                            }
                        }
                    }
                    (None, None, _) => Step::Forget,
                }
            }
        };
        out.push((key.clone(), step));
    }
    out
}

fn entry_of_local(key: &str, l: &LocalFile) -> Option<Entry> {
    Some(Entry {
        key: Key::new(key).ok()?,
        size: l.size,
        last_modified: Some(l.modified),
        etag: None,
        storage_class: None,
    })
}

fn entry_of_remote(r: &ObjectRow) -> Option<Entry> {
    Some(Entry {
        key: Key::new(&r.key).ok()?,
        size: r.size,
        last_modified: r.last_modified,
        etag: r.etag.clone(),
        storage_class: r.storage_class.clone(),
    })
}

/// The stores of one run.
struct Sides {
    local: Arc<dyn Store>,
    /// The remote through the index (what is written is recorded).
    remote: Arc<dyn Store>,
    /// The remote itself (a HEAD here asks the server, not the index).
    server: Arc<dyn Store>,
    dir: PathBuf,
}

impl Sides {
    /// Before a step that overwrites or deletes an object, or deletes a file because the
    /// object is gone: is the object still what the index says?
    /// Another machine's run killed before it published may have changed it; acting on the
    /// index would destroy that version. One HEAD; a moved object fails the step with
    /// [`ErrorKind::Conflict`] (the index is corrected and the next run re-plans).
    async fn check_remote(
        &self,
        key: &str,
        expected: Option<&ObjectRow>,
    ) -> larder_store::Result<()> {
        let k = Key::new(key).map_err(|_| invalid(key))?;
        let now = self.server.head(&k).await?;
        let same = match (expected, &now) {
            (None, None) => true,
            (Some(r), Some(m)) => {
                r.etag.as_deref().map(normalize_etag) == m.etag.as_deref().map(normalize_etag)
            }
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(larder_store::Error::new(
                ErrorKind::Conflict,
                larder_store::Op::Put,
                self.remote.location(key),
            )
            .with_detail("the object changed since the index was written (another machine's run); re-planned on the next run"))
        }
    }

    fn stat(&self, key: &str) -> larder_store::Result<LocalFile> {
        let m = std::fs::metadata(self.dir.join(key))
            .map_err(|e| larder_store::Error::io(larder_store::Op::Get, key, e))?;
        Ok(LocalFile::of(&m))
    }

    async fn upload(&self, key: &str, l: &LocalFile) -> larder_store::Result<BaseRow> {
        let entry = entry_of_local(key, l).ok_or_else(|| invalid(key))?;
        let o = opts();
        let t = with_retries(3, || transfer(&self.local, &self.remote, &entry, &o)).await?;
        Ok(BaseRow {
            key: key.to_owned(),
            local_size: l.size,
            local_mtime_ns: l.mtime_ns,
            local_ino: l.ino,
            local_ctime_ns: l.ctime_ns,
            remote_size: t.bytes,
            remote_etag: t.dst_etag,
        })
    }

    async fn download(&self, r: &ObjectRow) -> larder_store::Result<BaseRow> {
        let entry = entry_of_remote(r).ok_or_else(|| invalid(&r.key))?;
        let o = opts();
        with_retries(3, || transfer(&self.remote, &self.local, &entry, &o)).await?;
        let l = self.stat(&r.key)?;
        Ok(BaseRow {
            key: r.key.clone(),
            local_size: l.size,
            local_mtime_ns: l.mtime_ns,
            local_ino: l.ino,
            local_ctime_ns: l.ctime_ns,
            remote_size: r.size,
            remote_etag: r.etag.clone(),
        })
    }

    async fn delete(&self, side: Side, key: &str) -> larder_store::Result<()> {
        let k = Key::new(key).map_err(|_| invalid(key))?;
        let store = if side == Side::Local {
            &self.local
        } else {
            &self.remote
        };
        let rep = store.delete(&[k]).await?;
        match rep.failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

fn opts() -> TransferOptions {
    TransferOptions {
        checksum: None,
        guess_content_type: true,
    }
}

fn invalid(key: &str) -> larder_store::Error {
    larder_store::Error::new(
        larder_store::ErrorKind::InvalidKey,
        larder_store::Op::Put,
        key.to_owned(),
    )
    .with_detail("not a valid key")
}

/// Carries out one step; returns the base rows it settles and the keys it forgets.
async fn execute(
    s: &Sides,
    key: &str,
    step: &Step,
    l: Option<&LocalFile>,
    r: Option<&ObjectRow>,
) -> larder_store::Result<(Vec<BaseRow>, Vec<String>)> {
    match step {
        Step::Upload => {
            s.check_remote(key, r).await?;
            Ok((vec![s.upload(key, l.expect("a local file")).await?], vec![]))
        }
        Step::Download => Ok((vec![s.download(r.expect("an object")).await?], vec![])),
        Step::DeleteRemote => {
            s.check_remote(key, r).await?;
            s.delete(Side::Remote, key).await?;
            Ok((vec![], vec![key.to_owned()]))
        }
        Step::DeleteLocal => {
            // The index says the object is gone; a run killed elsewhere may have written it
            // without publishing. Deleting the file on a stale index would lose it.
            s.check_remote(key, r).await?;
            s.delete(Side::Local, key).await?;
            Ok((vec![], vec![key.to_owned()]))
        }
        Step::Forget => Ok((vec![], vec![key.to_owned()])),
        Step::Settle => {
            let (l, r) = (l.expect("a local file"), r.expect("an object"));
            Ok((
                vec![BaseRow {
                    key: key.to_owned(),
                    local_size: l.size,
                    local_mtime_ns: l.mtime_ns,
                    local_ino: l.ino,
                    local_ctime_ns: l.ctime_ns,
                    remote_size: r.size,
                    remote_etag: r.etag.clone(),
                }],
                vec![],
            ))
        }
        Step::Conflict(_) => Ok((vec![], vec![])),
        Step::KeepBoth { loser, name } => {
            let (l, r) = (l.expect("a local file"), r.expect("an object"));
            let to = Key::new(name).map_err(|_| invalid(name))?;
            match loser {
                // The object is older: copied aside on the server, fetched under the new
                // name, then the local version replaces it.
                Side::Remote => {
                    let from = Key::new(key).map_err(|_| invalid(key))?;
                    let put = s.remote.copy(&from, &to, Default::default()).await?;
                    let aside = ObjectRow {
                        key: name.clone(),
                        size: put.size,
                        etag: put.etag,
                        storage_class: None,
                        last_modified: r.last_modified,
                    };
                    let kept = s.download(&aside).await?;
                    let won = s.upload(key, l).await?;
                    Ok((vec![kept, won], vec![]))
                }
                // The file is older: renamed aside and uploaded, then the object replaces it.
                Side::Local => {
                    let (from_path, to_path) = (s.dir.join(key), s.dir.join(to.as_str()));
                    larder_store::key::key_to_relative_path(to.as_str())
                        .map_err(|_| invalid(name))?;
                    std::fs::rename(&from_path, &to_path).map_err(|e| {
                        larder_store::Error::io(larder_store::Op::Put, to_path.display(), e)
                    })?;
                    let moved = s.stat(name)?;
                    let kept = s.upload(name, &moved).await?;
                    let won = s.download(r).await?;
                    Ok((vec![kept, won], vec![]))
                }
            }
        }
    }
}

/// Runs a two-way vault sync: see the module docs.
///
/// # Errors
///
/// As [`crate::vault::vault_sync`]: the index, an unusable index for a dry run, an
/// unreachable remote. Keys that fail are in [`TwoWayReport::failed`].
pub async fn vault_two_way(
    o: VaultSyncOptions,
    policy: ConflictPolicy,
    host: &str,
) -> Result<TwoWayReport, VaultError> {
    let name = o.vault.name.clone();
    let started = SystemTime::now();
    let mut report = TwoWayReport::default();
    let mut ix = Index::open(&o.index_path)?;
    let state = ix.state(&name)?;
    let max_age = Duration::from_secs(o.vault.policy.max_remote_index_age_secs);
    let fresh = state
        .as_ref()
        .is_some_and(|s| s.is_fresh(max_age, SystemTime::now()));
    refresh(&o, &mut ix, state.as_ref(), fresh, &mut report.vault).await?;
    if report.vault.stalled.is_some() {
        return Ok(report);
    }

    // Both sides, and the base.
    let dir = o.vault.local_dir.clone();
    let local_store: Arc<dyn Store> =
        Arc::new(LocalStore::new(&dir).with_temp_cleanup(SystemTime::now()));
    let mut local = BTreeMap::new();
    let mut listing = local_store.list("");
    while let Some(item) = listing.next().await {
        match item {
            Ok(e) if e.key.as_str().starts_with(".larder/") => {}
            Ok(e) => match std::fs::metadata(dir.join(e.key.as_str())) {
                Ok(m) => {
                    local.insert(e.key.as_str().to_owned(), LocalFile::of(&m));
                }
                // Gone since it was listed: as if not there.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => report.invalid.push(format!("{}: {err}", e.key)),
            },
            Err(e) => report.invalid.push(e.to_string()),
        }
    }
    drop(listing);
    let remote: BTreeMap<String, ObjectRow> = ix
        .objects(&name)
        .filter_map(|r| r.ok())
        .filter(|r| !r.key.starts_with(".larder/"))
        .map(|r| (r.key.clone(), r))
        .collect();
    let base = ix.base(&name)?;
    let resolutions: HashMap<String, ConflictPolicy> = ix
        .conflicts(&name)?
        .into_iter()
        .filter_map(|c| Some((c.key, c.resolution?.parse().ok()?)))
        .collect();
    report.steps = plan(&local, &remote, &base, &resolutions, policy, &dir, host);
    report.conflicts = report
        .steps
        .iter()
        .filter(|(_, s)| matches!(s, Step::Conflict(_)))
        .count() as u64;
    let Some(remote_store) = o.remote.clone().filter(|_| !o.dry_run) else {
        report.vault.sent = o.meter.requests();
        return Ok(report);
    };

    // Carry the steps out, a few at a time; settle what succeeded.
    let indexed = Arc::new(IndexedRemote::new(
        remote_store.clone(),
        &o.index_path,
        &name,
    ));
    let sides = Sides {
        local: local_store,
        remote: indexed.clone(),
        server: remote_store.clone(),
        dir,
    };
    let results: Vec<_> = futures::stream::iter(report.steps.iter())
        .map(|(key, step)| {
            let (sides, l, r) = (&sides, local.get(key), remote.get(key));
            async move { (key, step, execute(sides, key, step, l, r).await) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let (mut settled, mut forgotten, mut found) = (Vec::new(), Vec::new(), Vec::new());
    let mut stale = Vec::new();
    for (key, step, res) in results {
        match res {
            Ok((set, gone)) => {
                report.done += u64::from(!matches!(step, Step::Conflict(_)));
                settled.extend(set);
                forgotten.extend(gone);
                if let Step::Conflict(kind) = step {
                    let (l, r) = (local.get(key), remote.get(key));
                    found.push(Conflict {
                        key: key.clone(),
                        kind: kind.clone(),
                        local_size: l.map(|l| l.size),
                        local_modified: l.map(|l| l.modified),
                        remote_size: r.map(|r| r.size),
                        remote_etag: r.and_then(|r| r.etag.clone()),
                        remote_modified: r.and_then(|r| r.last_modified),
                        found: SystemTime::now(),
                        resolution: None,
                    });
                }
            }
            Err(e) => {
                // The object is gone or changed since the index said so (a run killed before
                // it recorded, or published, what it did): the index is corrected for this
                // key, so the next run plans from what is there.
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) {
                    stale.push(key.clone());
                }
                report.failed.push((key.clone(), e.to_string()));
            }
        }
    }
    let (mut healed_up, mut healed_gone) = (Vec::new(), Vec::new());
    for key in stale {
        let Ok(k) = Key::new(&key) else { continue };
        match remote_store.head(&k).await {
            Ok(Some(m)) => healed_up.push((key, m.size, m.etag)),
            Ok(None) => healed_gone.push(key),
            Err(e) => tracing::warn!("vault `{name}`: cannot look at `{key}` again: {e}"),
        }
    }
    ix.record_sync(&name, &healed_up, &healed_gone)?;
    let changes = indexed.changes();
    ix.record_sync(&name, &changes.upserts, &changes.removed)?;
    ix.settle(&name, &settled, &forgotten)?;
    ix.record_conflicts(&name, &found)?;
    report.vault.stalled = o.meter.stalled();
    let changed = !changes.upserts.is_empty() || !changes.removed.is_empty();
    let st = ix.state(&name)?;
    let has_manifest = st.as_ref().is_some_and(|s| s.manifest_etag.is_some());
    let unpublished = st.as_ref().is_some_and(|s| s.unpublished);
    if report.vault.stalled.is_none()
        && report.failed.is_empty()
        && (changed || !has_manifest || unpublished)
    {
        publish(&o, &mut ix, &remote_store, &mut report.vault).await?;
    }
    report.vault.sent = o.meter.requests();
    report.vault.spent_usd = o.meter.price();
    record(&ix, &name, started, &report, &o)?;
    Ok(report)
}

fn record(
    ix: &Index,
    name: &str,
    started: SystemTime,
    r: &TwoWayReport,
    o: &VaultSyncOptions,
) -> Result<(), VaultError> {
    let (outcome, reason) = match (&r.vault.stalled, r.failed.len(), r.conflicts) {
        (Some(why), _, _) => ("stalled", Some(why.clone())),
        (None, n, _) if n > 0 => ("failed", Some(format!("{n} key(s) failed"))),
        (None, _, n) if n > 0 => ("conflicts", Some(format!("{n} conflict(s) to resolve"))),
        _ => ("ok", None),
    };
    let count = |f: fn(&Step) -> bool| r.steps.iter().filter(|(_, s)| f(s)).count() as u64;
    let done = (
        count(|s| matches!(s, Step::Upload | Step::KeepBoth { .. })),
        count(|s| matches!(s, Step::DeleteRemote | Step::DeleteLocal)),
        r.failed.len() as u64,
    );
    let row = crate::vault::run_row(
        started,
        (outcome, reason),
        done,
        &r.vault.sent,
        &o.meter,
        r.vault.spent_usd,
    );
    ix.record_run(name, &row)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_names_keep_the_extension_and_are_free() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let taken = |n: &str| n == "docs/report.conflict-laptop-20231114T221320Z.txt";
        assert_eq!(
            conflict_name("docs/report.txt", "laptop", t, &taken),
            "docs/report.conflict-laptop-20231114T221320Z-2.txt"
        );
        assert_eq!(
            conflict_name("Makefile", "ci runner", t, &|_| false),
            "Makefile.conflict-ci_runner-20231114T221320Z"
        );
        assert_eq!(
            conflict_name(".env", "h", t, &|_| false),
            ".env.conflict-h-20231114T221320Z"
        );
    }

    #[test]
    fn policies_parse() {
        for p in ["keep_local", "keep_remote", "ask", "overwrite", "keep_both"] {
            assert!(p.parse::<ConflictPolicy>().is_ok());
        }
        assert!("newest".parse::<ConflictPolicy>().is_err());
    }
}
