//! Deciding each key's step: what changed on each side since the base, and conflicts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use larder_index::twoway::BaseRow;
use larder_index::ObjectRow;
use larder_store::integrity::normalize_etag;
use larder_store::FileStamp;

use super::{ConflictPolicy, Side, Step};

/// One local file.
#[derive(Debug, Clone)]
pub(super) struct LocalFile {
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) modified: SystemTime,
    pub(super) ino: u64,
    pub(super) ctime_ns: i64,
}

impl LocalFile {
    pub(super) fn of(m: &std::fs::Metadata) -> LocalFile {
        let s = FileStamp::of(m);
        LocalFile {
            size: s.size,
            mtime_ns: s.mtime_ns,
            modified: m.modified().unwrap_or(UNIX_EPOCH),
            ino: s.ino,
            ctime_ns: s.ctime_ns,
        }
    }
}

pub(super) fn local_changed(b: Option<&BaseRow>, l: Option<&LocalFile>) -> bool {
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

pub(super) fn remote_changed(b: Option<&BaseRow>, r: Option<&ObjectRow>) -> bool {
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

/// Whether deciding `key` needs to know if the file holds the object's bytes: both are
/// there with one size, and either both changed since the base or there is no base (the
/// same file created on both sides, or a file the cache did not fetch).
pub(super) fn needs_content_check(
    l: Option<&LocalFile>,
    r: Option<&ObjectRow>,
    b: Option<&BaseRow>,
) -> bool {
    match (l, r) {
        (Some(lf), Some(ro)) if lf.size == ro.size && ro.etag.is_some() => {
            b.is_none() || (local_changed(b, l) && remote_changed(b, r))
        }
        _ => false,
    }
}

/// `dir/stem.conflict-<host>-<time>.ext`, free on both sides.
pub(super) fn conflict_name(
    key: &str,
    host: &str,
    now: SystemTime,
    taken: &dyn Fn(&str) -> bool,
) -> String {
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
pub(super) fn plan(
    local: &BTreeMap<String, LocalFile>,
    remote: &BTreeMap<String, ObjectRow>,
    base: &HashMap<String, BaseRow>,
    resolutions: &HashMap<String, ConflictPolicy>,
    policy: ConflictPolicy,
    same: &HashSet<String>,
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
                    (Some(_), Some(_)) => {
                        if same.contains(key.as_str()) {
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

/// Every key's step in a `cache` vault: see [`super::vault_cache_sync`].
pub(super) fn plan_cache(
    local: &BTreeMap<String, LocalFile>,
    remote: &BTreeMap<String, ObjectRow>,
    base: &HashMap<String, BaseRow>,
    wanted: &dyn Fn(&str) -> bool,
    same: &HashSet<String>,
) -> Vec<(String, Step)> {
    let keys: BTreeSet<&String> = local
        .keys()
        .chain(remote.keys())
        .chain(base.keys())
        .collect();
    let mut out = Vec::new();
    for key in keys {
        let (l, r, b) = (local.get(key), remote.get(key), base.get(key));
        let step = match (l, r, b) {
            // Cached: refreshed when the object changed; a local edit is never uploaded.
            (Some(lf), Some(ro), Some(b)) => match (
                local_changed(Some(b), Some(lf)),
                remote_changed(Some(b), Some(ro)),
            ) {
                (_, false) => continue,
                (false, true) => Step::Download,
                (true, true) => Step::Conflict(
                    "cached copy edited locally; a cache vault does not upload".to_owned(),
                ),
            },
            // A file the cache did not fetch: the same bytes are adopted, other bytes left.
            (Some(_), Some(_), None) => {
                if same.contains(key.as_str()) {
                    Step::Settle
                } else {
                    Step::Conflict("a local file the cache did not fetch".to_owned())
                }
            }
            (None, Some(_), _) if wanted(key) => Step::Download,
            // Not cached (or evicted): indexed only.
            (None, Some(_), Some(_)) => Step::Forget,
            (None, Some(_), None) => continue,
            // Gone from the bucket: the unchanged cached copy goes too.
            (Some(lf), None, Some(b)) if !local_changed(Some(b), Some(lf)) => Step::DeleteLocal,
            (Some(_), None, Some(_)) => {
                Step::Conflict("cached copy edited locally; its object is gone".to_owned())
            }
            (None, None, Some(_)) => Step::Forget,
            (Some(_), None, None) | (None, None, None) => continue,
        };
        out.push((key.clone(), step));
    }
    out
}
