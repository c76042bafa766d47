//! Object versions: a sync of every version (`--enable-versioning`) and a sync of the
//! objects as they were at an instant (`--point-in-time`).
//!
//! Both read the source's ListObjectVersions, which streams keys in order and each key's
//! versions newest first; one key's versions are in memory at a time.
//!
//! * [`PointInTime`] is a source store whose listing is, per key, the newest version not
//!   newer than the instant (a key whose version then was a delete marker, or that did not
//!   exist yet, is left out); reads of it fetch that version. Any sync runs over it: S3 → S3,
//!   S3 → local, `verify`.
//! * [`sync_versions`] copies each key's versions oldest first, so the destination's history
//!   has the source's order (as s3sync, delete markers between versions are not copied; a key
//!   whose latest version is a delete marker is deleted, leaving a marker). What was copied
//!   is recorded in [`VersionMap`] and in each copy's metadata
//!   (`x-amz-meta-larder-source-version-id`), so a re-run copies only newer versions and
//!   costs the two version listings.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use larder_index::VersionMap;
use larder_store::{
    Body, Capabilities, CopyOptions, CopySource, DeleteReport, Entry, ErrorKind, GetOptions,
    GetResult, Key, ObjectMeta, PutOptions, PutResult, Result, Store, Tags, Version,
};

use crate::execute::{self, TransferOptions, Verified};
use crate::{Action, Event, Reason, SyncError, SyncOptions, SyncReport};

/// The user-metadata name under which a versioned sync records the source version a copy
/// came from.
pub const SOURCE_VERSION_METADATA: &str = "larder-source-version-id";

/// Groups a version listing by key: each item is one key's versions, newest first.
pub fn by_key(
    versions: BoxStream<'static, Result<Version>>,
) -> BoxStream<'static, Result<Vec<Version>>> {
    stream::unfold(versions.peekable(), |mut s| async move {
        let first = match s.next().await? {
            Ok(v) => v,
            Err(e) => return Some((Err(e), s)),
        };
        let mut group = vec![first];
        loop {
            let same = matches!(
                std::pin::Pin::new(&mut s).peek().await,
                Some(Ok(v)) if v.key == group[0].key
            );
            if !same {
                break;
            }
            if let Some(Ok(v)) = s.next().await {
                group.push(v);
            }
        }
        Some((Ok(group), s))
    })
    .boxed()
}

/// Of one key's versions (newest first), the one that was current at `at`: the newest not
/// newer than it; `None` when that was a delete marker or the key did not exist yet.
pub fn current_at(versions: &[Version], at: SystemTime) -> Option<&Version> {
    versions
        .iter()
        .find(|v| v.last_modified.is_some_and(|t| t <= at))
        .filter(|v| !v.delete_marker)
}

/// Keys whose reads go to a version other than the latest.
#[derive(Debug, Default)]
struct Pins(Mutex<HashMap<Key, String>>);

/// Which version of a key reads go to.
#[derive(Debug)]
enum Pin {
    /// A point in time: the pinned keys' versions, found by the listing.
    At(SystemTime, Arc<Pins>),
    /// One version, whatever the key (a versioned sync's copy of one version).
    One(String),
}

/// A source store seen as it was at an instant (`--point-in-time`), or one version of one
/// object; see the module docs. Read-only.
///
/// At an instant, only keys whose version then is not the latest are remembered (to read
/// that version), so memory grows with the keys changed since, not with the bucket. A key
/// changed between the listing and its read is caught by the read's `If-Match` on the
/// listed ETag.
#[derive(Debug)]
pub struct PointInTime {
    inner: Arc<dyn Store>,
    pin: Pin,
}

impl PointInTime {
    /// `inner` as it was at `at`.
    pub fn new(inner: Arc<dyn Store>, at: SystemTime) -> Self {
        PointInTime {
            inner,
            pin: Pin::At(at, Arc::default()),
        }
    }

    /// Reads of any key go to `version_id`.
    fn one(inner: Arc<dyn Store>, version_id: String) -> Self {
        PointInTime {
            inner,
            pin: Pin::One(version_id),
        }
    }

    /// The version reads of `key` go to; `None`: the latest.
    fn version(&self, key: &Key) -> Option<String> {
        match &self.pin {
            Pin::At(_, pins) => pins.0.lock().expect("pins lock").get(key).cloned(),
            Pin::One(v) => Some(v.clone()),
        }
    }

    fn read_only(&self, key: &str) -> larder_store::Error {
        larder_store::Error::new(
            ErrorKind::Unsupported,
            larder_store::Op::Put,
            self.location(key),
        )
        .with_detail("a view of past versions is read-only")
    }
}

impl fmt::Display for PointInTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pin {
            Pin::At(at, _) => write!(
                f,
                "{} at {}",
                self.inner,
                humantime::format_rfc3339_millis(*at)
            ),
            Pin::One(v) => write!(f, "{} (version {v})", self.inner),
        }
    }
}

#[async_trait]
impl Store for PointInTime {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        let Pin::At(at, pins) = &self.pin else {
            return self.inner.list(prefix);
        };
        let (at, pins) = (*at, pins.clone());
        by_key(self.inner.list_versions(prefix))
            .filter_map(move |group| {
                let pins = pins.clone();
                async move {
                    let group = match group {
                        Ok(g) => g,
                        Err(e) => return Some(Err(e)),
                    };
                    let v = current_at(&group, at)?;
                    if !v.is_latest {
                        pins.0
                            .lock()
                            .expect("pins lock")
                            .insert(v.key.clone(), v.version_id.clone());
                    }
                    Some(Ok(v.to_entry()))
                }
            })
            .boxed()
    }
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        match self.version(key) {
            Some(v) => self.inner.head_version(key, &v).await,
            None => self.inner.head(key).await,
        }
    }
    async fn get(&self, key: &Key, mut opts: GetOptions) -> Result<GetResult> {
        if opts.version_id.is_none() {
            opts.version_id = self.version(key);
        }
        self.inner.get(key, opts).await
    }
    async fn put(&self, key: &Key, _: Body, _: PutOptions) -> Result<PutResult> {
        Err(self.read_only(key.as_str()))
    }
    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        Err(self.read_only(keys.first().map_or("", Key::as_str)))
    }
    async fn copy(&self, from: &Key, _: &Key, _: CopyOptions) -> Result<PutResult> {
        Err(self.read_only(from.as_str()))
    }
    fn copy_source(&self, key: &Key) -> Option<CopySource> {
        let mut s = self.inner.copy_source(key)?;
        s.version_id = self.version(key);
        Some(s)
    }
    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        match self.version(key) {
            Some(v) => self.inner.version_part_size(key, &v).await,
            None => self.inner.first_part_size(key).await,
        }
    }
    async fn tags(&self, key: &Key) -> Result<Option<Tags>> {
        match self.version(key) {
            Some(v) => self.inner.version_tags(key, &v).await,
            None => self.inner.tags(key).await,
        }
    }
    fn list_versions(&self, prefix: &str) -> BoxStream<'static, Result<Version>> {
        self.inner.list_versions(prefix)
    }
    fn identity(&self) -> String {
        self.inner.identity()
    }
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn location(&self, key: &str) -> String {
        match &self.pin {
            Pin::One(v) => format!("{}?versionId={v}", self.inner.location(key)),
            Pin::At(..) => self.inner.location(key),
        }
    }
}

/// What to do for one key in a versioned sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPlan {
    /// Source versions to copy, oldest first.
    pub copy: Vec<Version>,
    /// Source versions already at the destination.
    pub synced: u64,
    /// The source's latest version is a delete marker and the destination's is not: delete
    /// the key there (a delete marker on a versioned bucket).
    pub delete: bool,
}

/// Plans one key: `src` and `dst` are its versions on each side (newest first), `synced`
/// maps source version ids to the destination version ids they were copied as.
pub fn plan_key(src: &[Version], dst: &[Version], synced: &HashMap<String, String>) -> KeyPlan {
    let at_dst: HashSet<&str> = dst
        .iter()
        .filter(|v| !v.delete_marker)
        .map(|v| v.version_id.as_str())
        .collect();
    let present = |v: &Version| {
        synced
            .get(&v.version_id)
            .is_some_and(|d| at_dst.contains(d.as_str()))
    };
    // Oldest first, versions only: a delete marker between versions is not copied.
    let chain: Vec<&Version> = src.iter().rev().filter(|v| !v.delete_marker).collect();
    let last_synced = chain.iter().rposition(|v| present(v));
    let copy: Vec<Version> = chain[last_synced.map_or(0, |i| i + 1)..]
        .iter()
        .map(|v| (*v).clone())
        .collect();
    let synced_n = chain.iter().filter(|v| present(v)).count() as u64;
    let src_deleted = src.first().is_some_and(|v| v.delete_marker);
    let dst_live = dst.first().is_some_and(|v| !v.delete_marker);
    KeyPlan {
        delete: src_deleted && (dst_live || !copy.is_empty()),
        copy,
        synced: synced_n,
    }
}

/// Where a versioned sync keeps what it copied.
fn version_map(opts: &SyncOptions) -> Arc<VersionMap> {
    opts.versions
        .clone()
        .unwrap_or_else(|| Arc::new(VersionMap::in_memory()))
}

/// Copies every version of every key from `src` to `dst` (both versioned); see the module
/// docs. Options used: concurrency (keys at once), retries, dry run, checksum, filters (on
/// keys), write, rate limits, events and cancellation. Keys only the destination has are
/// left alone.
///
/// # Errors
///
/// When a version listing fails at its start (a bucket without versions, a missing bucket,
/// rejected credentials); failed keys are in the report.
pub async fn sync_versions(
    src: Arc<dyn Store>,
    dst: Arc<dyn Store>,
    opts: SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    crate::write::check_supported(&opts.write, dst.as_ref())?;
    let map = version_map(&opts);
    let (src_id, dst_id) = (src.identity(), dst.identity());
    let mut src_groups = by_key(src.list_versions("")).peekable();
    let mut dst_groups = by_key(dst.list_versions("")).peekable();
    // A listing that fails at its very start (no such bucket, rejected credentials, a store
    // without versions) stops the run before anything is copied.
    for (s, store) in [(&mut src_groups, &src), (&mut dst_groups, &dst)] {
        let starts_with_error = matches!(
            std::pin::Pin::new(&mut *s).peek().await,
            Some(Err(e)) if e.location() == store.location("")
        );
        if starts_with_error {
            if let Some(Err(e)) = s.next().await {
                return Err(SyncError::Store(e));
            }
        }
    }
    let pairs = merge_by_key(src_groups.boxed(), dst_groups.boxed());
    let topts = Arc::new(TransferOptions::for_sync(&opts));
    let objects_limit = opts
        .rate_limit_objects
        .map(crate::ratelimit::RateLimiter::objects);
    let shared = Arc::new(opts.clone());
    let ctx = Arc::new(KeyCtx {
        src,
        dst,
        map,
        src_id,
        dst_id,
        topts,
        objects_limit,
        opts: shared.clone(),
    });
    let mut results = pairs
        .map(|pair| {
            let ctx = ctx.clone();
            async move { ctx.key(pair).await }
        })
        .buffered(opts.concurrency.max(1))
        .boxed();
    let mut report = SyncReport {
        dry_run: opts.dry_run,
        ..SyncReport::default()
    };
    let emit = |ev: Event| {
        if let Some(f) = &opts.on_event {
            f(&ev);
        }
    };
    let mut done = 0u64;
    loop {
        let next = tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => {
                report.cancelled = true;
                break;
            }
            n = results.next() => n,
        };
        let Some(outcome) = next else { break };
        report.src_listed += outcome.src_listed;
        report.dst_listed += outcome.dst_listed;
        report.skipped += outcome.skipped;
        report.filtered += outcome.filtered;
        report.heads += outcome.heads;
        for d in outcome.done {
            match d.action {
                Action::Transfer => report.count_transfer(d.size, d.verified),
                Action::Delete => report.deleted += 1,
                Action::Skip => {}
            }
            done += 1;
            emit(Event::Done {
                action: d.action,
                key: outcome.key.clone(),
                size: d.size,
                reason: d.reason,
                dry_run: opts.dry_run,
                verified: d.verified,
                done,
                listed: report.src_listed,
            });
        }
        if let Some(f) = outcome.failure {
            emit(Event::Failed {
                key: f.key.clone(),
                error: f.message.clone(),
            });
            report.errors.push(f);
            if opts.stop_on_error {
                break;
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// One key's versions on each side.
type KeyPair = (Vec<Version>, Vec<Version>);

/// Merges two grouped version listings by key bytes.
fn merge_by_key(
    src: BoxStream<'static, Result<Vec<Version>>>,
    dst: BoxStream<'static, Result<Vec<Version>>>,
) -> BoxStream<'static, Result<KeyPair>> {
    stream::unfold(
        (src.peekable(), dst.peekable()),
        |(mut s, mut d)| async move {
            // Which side goes first: an error as soon as it is met, else the smaller key.
            let (a, b) = futures::join!(
                std::pin::Pin::new(&mut s).peek(),
                std::pin::Pin::new(&mut d).peek()
            );
            let take = match (a, b) {
                (None, None) => return None,
                (Some(Err(_)), _) | (Some(Ok(_)), None) => Ordering::Less,
                (_, Some(Err(_))) | (None, Some(Ok(_))) => Ordering::Greater,
                (Some(Ok(a)), Some(Ok(b))) => a[0]
                    .key
                    .as_str()
                    .as_bytes()
                    .cmp(b[0].key.as_str().as_bytes()),
            };
            let item = match take {
                Ordering::Less => s.next().await?.map(|g| (g, Vec::new())),
                Ordering::Greater => d.next().await?.map(|g| (Vec::new(), g)),
                Ordering::Equal => match (s.next().await?, d.next().await?) {
                    (Ok(a), Ok(b)) => Ok((a, b)),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                },
            };
            Some((item, (s, d)))
        },
    )
    .boxed()
}

struct KeyCtx {
    src: Arc<dyn Store>,
    dst: Arc<dyn Store>,
    map: Arc<VersionMap>,
    src_id: String,
    dst_id: String,
    topts: Arc<TransferOptions>,
    objects_limit: Option<Arc<crate::ratelimit::RateLimiter>>,
    opts: Arc<SyncOptions>,
}

/// One action done (or planned) for a key.
struct Done {
    action: Action,
    size: u64,
    reason: Reason,
    verified: Verified,
}

#[derive(Default)]
struct KeyOutcome {
    key: String,
    done: Vec<Done>,
    failure: Option<crate::KeyFailure>,
    src_listed: u64,
    dst_listed: u64,
    skipped: u64,
    filtered: u64,
    heads: u64,
}

impl KeyCtx {
    async fn key(&self, pair: Result<KeyPair>) -> KeyOutcome {
        let mut out = KeyOutcome::default();
        let (src, dst) = match pair {
            Ok(p) => p,
            Err(e) => {
                out.failure = Some(crate::failure(e.location(), &e));
                return out;
            }
        };
        out.src_listed = src.len() as u64;
        out.dst_listed = dst.len() as u64;
        let Some(key) = src.first().map(|v| v.key.clone()) else {
            return out;
        };
        out.key = key.as_str().to_owned();
        // The filter callback judges the key by its newest version.
        let kept = match src.iter().find(|v| !v.delete_marker) {
            Some(newest) => crate::callback_keeps(&self.opts, &newest.to_entry()),
            None => Ok(true),
        };
        match kept {
            _ if !self.opts.filters.keeps_key(key.as_str()) => out.filtered = 1,
            Ok(false) => out.filtered = 1,
            Err(f) => out.failure = Some(f),
            Ok(true) => {
                if let Err(e) = self.run_key(&key, &src, &dst, &mut out).await {
                    out.failure = Some(crate::failure(key.as_str(), &e));
                }
            }
        }
        out
    }

    async fn run_key(
        &self,
        key: &Key,
        src: &[Version],
        dst: &[Version],
        out: &mut KeyOutcome,
    ) -> Result<()> {
        let state = |e: larder_index::StateError| {
            larder_store::Error::new(
                ErrorKind::Other,
                larder_store::Op::Put,
                self.dst.location(key.as_str()),
            )
            .with_detail(format!("the record of versions copied: {e}"))
        };
        let mut synced = self
            .map
            .synced(&self.src_id, &self.dst_id, key.as_str())
            .map_err(state)?;
        // Destination versions this map does not know: their metadata says where they came
        // from (once; what is learnt is recorded). Foreign ones are recorded as such.
        let known: HashSet<String> = synced.values().cloned().collect();
        for v in dst
            .iter()
            .filter(|v| !v.delete_marker && !known.contains(&v.version_id))
        {
            out.heads += 1;
            let origin = self
                .dst
                .head_version(key, &v.version_id)
                .await?
                .and_then(|m| m.metadata.get(SOURCE_VERSION_METADATA).cloned())
                .unwrap_or_else(|| format!("!foreign {}", v.version_id));
            if !self.opts.dry_run {
                self.map
                    .record(
                        &self.src_id,
                        &self.dst_id,
                        key.as_str(),
                        &origin,
                        &v.version_id,
                    )
                    .map_err(state)?;
            }
            synced.insert(origin, v.version_id.clone());
        }
        let plan = plan_key(src, dst, &synced);
        out.skipped += plan.synced;
        for v in &plan.copy {
            let reason = Reason::Version(v.version_id.clone());
            if self.opts.dry_run {
                out.done.push(Done {
                    action: Action::Transfer,
                    size: v.size,
                    reason,
                    verified: Verified::default(),
                });
                continue;
            }
            if let Some(l) = &self.objects_limit {
                l.acquire(1).await;
            }
            let one: Arc<dyn Store> =
                Arc::new(PointInTime::one(self.src.clone(), v.version_id.clone()));
            let mut topts = (*self.topts).clone();
            topts
                .extra_metadata
                .insert(SOURCE_VERSION_METADATA.to_owned(), v.version_id.clone());
            let entry = v.to_entry();
            if let Some(p) = &self.opts.on_progress {
                p(&crate::Progress::Started {
                    key: entry.key.to_string(),
                    size: entry.size,
                });
            }
            let t = execute::with_retries(self.opts.retries, || {
                execute::transfer(&one, &self.dst, &entry, None, &topts)
            })
            .await?;
            // Without a version id the write replaced the key's only copy: the history is
            // lost there, and a re-run could not tell what was copied.
            let dv = t.dst_version.filter(|v| v != "null").ok_or_else(|| {
                larder_store::Error::new(
                    ErrorKind::Unsupported,
                    larder_store::Op::Put,
                    self.dst.location(key.as_str()),
                )
                .with_detail(
                    "the destination gave the write no version id: enable versioning on its bucket",
                )
            })?;
            self.map
                .record(&self.src_id, &self.dst_id, key.as_str(), &v.version_id, &dv)
                .map_err(state)?;
            out.done.push(Done {
                action: Action::Transfer,
                size: t.bytes,
                reason,
                verified: t.verified,
            });
        }
        if plan.delete {
            if !self.opts.dry_run {
                let r = self.dst.delete(std::slice::from_ref(key)).await?;
                if let Some((_, e)) = r.failed.into_iter().next() {
                    return Err(e);
                }
            }
            out.done.push(Done {
                action: Action::Delete,
                size: 0,
                reason: Reason::DeleteMarker,
                verified: Verified::default(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn v(id: &str, secs: u64, marker: bool, latest: bool) -> Version {
        Version {
            key: Key::new("k").unwrap(),
            version_id: id.to_owned(),
            is_latest: latest,
            delete_marker: marker,
            size: if marker { 0 } else { 1 },
            etag: (!marker).then(|| id.to_owned()),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    #[test]
    fn the_version_current_at_an_instant_is_the_newest_not_newer() {
        // Newest first: v3 at 30, a marker at 20, v1 at 10.
        let vs = [
            v("v3", 30, false, true),
            v("m", 20, true, false),
            v("v1", 10, false, false),
        ];
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(current_at(&vs, at(5)), None, "did not exist yet");
        assert_eq!(current_at(&vs, at(10)).unwrap().version_id, "v1");
        assert_eq!(current_at(&vs, at(15)).unwrap().version_id, "v1");
        assert_eq!(current_at(&vs, at(25)), None, "deleted then");
        assert_eq!(current_at(&vs, at(31)).unwrap().version_id, "v3");
    }

    #[test]
    fn versions_after_the_last_synced_one_are_copied_oldest_first() {
        let src = [
            v("m2", 50, true, true),
            v("v4", 40, false, false),
            v("m1", 30, true, false),
            v("v2", 20, false, false),
            v("v1", 10, false, false),
        ];
        // Nothing synced: every version, oldest first, intermediate marker skipped, and the
        // latest marker deletes.
        let p = plan_key(&src, &[], &HashMap::new());
        let ids: Vec<_> = p.copy.iter().map(|v| v.version_id.as_str()).collect();
        assert_eq!(ids, ["v1", "v2", "v4"]);
        assert!(p.delete);
        // v1 and v2 synced: only v4; a destination whose latest is a marker needs no delete.
        let dst = [
            v("d-m", 35, true, true),
            v("d2", 21, false, false),
            v("d1", 11, false, false),
        ];
        let synced = HashMap::from([
            ("v1".to_owned(), "d1".to_owned()),
            ("v2".to_owned(), "d2".to_owned()),
        ]);
        let p = plan_key(&src, &dst, &synced);
        let ids: Vec<_> = p.copy.iter().map(|v| v.version_id.as_str()).collect();
        assert_eq!((ids, p.synced), (vec!["v4"], 2));
        assert!(p.delete, "v4 is copied, then deleted");
        // A recorded copy that is gone from the destination counts as not synced.
        let p = plan_key(&src, &dst[..2], &synced);
        assert_eq!(p.synced, 1);
        // All synced and the destination deleted too: nothing.
        let dst = [v("d-m2", 60, true, true), v("d4", 41, false, false)];
        let synced = HashMap::from([("v4".to_owned(), "d4".to_owned())]);
        let p = plan_key(&src, &dst, &synced);
        assert!(p.copy.is_empty() && !p.delete);
    }
}
