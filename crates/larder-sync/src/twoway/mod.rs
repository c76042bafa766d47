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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use larder_index::twoway::Conflict;
use larder_index::{Index, ObjectRow};
use larder_store::{ErrorKind, Key, LocalStore, Store};

mod exec;
mod get;
mod plan;

pub use get::vault_get;

use exec::{execute, Sides};
use plan::{plan, LocalFile};

use crate::compare::Inspector as _;
use crate::inspect::StoreInspector;
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
    run(o, Mode::TwoWay { policy, host }).await
}

/// Runs a vault sync of strategy `cache`: the bucket is never written. Keys present locally
/// are refreshed when their object changed (a local edit of one is reported as a conflict,
/// never uploaded), removed when their object is gone; keys `include` admits (none without
/// it) are fetched;
/// the rest stays indexed only (`vault get` fetches one on access). An evicted file is
/// simply not cached any more.
///
/// # Errors
///
/// As [`vault_two_way`].
pub async fn vault_cache_sync(
    o: VaultSyncOptions,
    include: Option<&crate::Filters>,
) -> Result<TwoWayReport, VaultError> {
    run(o, Mode::Cache { include }).await
}

/// What a run plans with.
enum Mode<'a> {
    TwoWay {
        policy: ConflictPolicy,
        host: &'a str,
    },
    Cache {
        include: Option<&'a crate::Filters>,
    },
}

async fn run(o: VaultSyncOptions, mode: Mode<'_>) -> Result<TwoWayReport, VaultError> {
    let name = o.vault.name.clone();
    let started = SystemTime::now();
    let mut report = TwoWayReport::default();
    let mut ix = Index::open(&o.index_path)?;
    let (state, fresh) = crate::vault::index_state(&o, &ix)?;
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
    let same = same_content(&o, &local_store, &local, &remote, &base).await;
    report.steps = match &mode {
        Mode::TwoWay { policy, host } => {
            plan(&local, &remote, &base, &resolutions, *policy, &same, host)
        }
        Mode::Cache { include } => {
            let wanted = |k: &str| include.is_some_and(|f| f.keeps_key(k));
            plan::plan_cache(&local, &remote, &base, &wanted, &same)
        }
    };
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
    // The local renames and removals, made durable before they are settled as the base.
    // Failing that, nothing is settled: the next run finds the files and plans again.
    sides.local.flush().await.map_err(VaultError::Store)?;
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
    let writes = matches!(mode, Mode::TwoWay { .. });
    if writes
        && report.vault.stalled.is_none()
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

/// The keys whose file holds exactly its object's bytes, among those where that decides
/// the step ([`plan::needs_content_check`]). The file's ETag is computed by the engine's
/// inspector: an MD5, or a multipart ETag tried with the likely part sizes in one read
/// (the exact one from a HEAD only when none fits).
async fn same_content(
    o: &VaultSyncOptions,
    local_store: &Arc<dyn Store>,
    local: &BTreeMap<String, LocalFile>,
    remote: &BTreeMap<String, ObjectRow>,
    base: &HashMap<String, larder_index::twoway::BaseRow>,
) -> HashSet<String> {
    let server: Arc<dyn Store> = match &o.remote {
        Some(r) => r.clone(),
        None => Arc::new(larder_store::MemoryStore::new()),
    };
    let inspector = StoreInspector::new(local_store.clone(), server, o.cache.clone(), o.part_size);
    let inspector = if o.dry_run {
        inspector.read_only()
    } else {
        inspector
    };
    let mut same = HashSet::new();
    for (key, ro) in remote {
        let l = local.get(key);
        if !plan::needs_content_check(l, Some(ro), base.get(key)) {
            continue;
        }
        let (Some(lf), Some(etag)) = (l, ro.etag.as_deref()) else {
            continue;
        };
        let Some(entry) = exec::entry_of_local(key, lf) else {
            continue;
        };
        let want = larder_store::integrity::normalize_etag(etag);
        if inspector
            .etag(crate::compare::Side::Src, &entry, Some(etag))
            .await
            .as_deref()
            == Some(want.as_str())
        {
            same.insert(key.clone());
        }
    }
    same
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
    use super::plan::conflict_name;
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

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
