//! Vault sync (strategy `mirror`): the local directory published to the bucket, planned
//! against the vault's remote index instead of a LIST, within budgets.
//!
//! A run:
//!
//! 1. **Refresh** (real runs, or dry runs with `refresh`): one conditional GET of the
//!    vault's manifest (`.larder/manifest.json.gz`, [`larder_index::manifest`]). Unchanged
//!    (304): the index is current. Changed: its rows replace the index (another machine
//!    synced). Absent or unreadable: a fresh index is used as it is; a stale or missing one
//!    is rebuilt by a LIST when the LIST budget allows, or the run **stalls** rather than
//!    trusting it.
//! 2. **Plan**: the sync engine marches the local walk against the index ([`IndexedRemote`]:
//!    its listing and HEADs come from the index, so planning sends nothing), with the
//!    metadata cache and content adoption deciding what is up to date. The plan is counted
//!    as data ([`Plan`]): actions, requests per kind, bytes, price.
//! 3. **Execute**: the same march, for real, through a store whose every request passes a
//!    [`RequestMeter`] holding the vault's budgets. A request that would pass one is never
//!    sent; the run stops there, **stalled**, naming the budget.
//! 4. **Record**: what was written and deleted goes to the index (so the next run resumes
//!    from there); after a complete run the manifest is published, last, and its ETag kept.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use larder_index::manifest::{self, MANIFEST_KEY};
use larder_index::{Index, IndexSource, ObjectRow, Vault};
use larder_store::meter::{Pricing, RequestKind, RequestMeter, Requests};
use larder_store::{
    Body, Capabilities, CopyOptions, DeleteReport, Entry, ErrorKind, GetOptions, GetResult, Key,
    ObjectMeta, PutOptions, PutResult, Store,
};

use crate::{Action, Event, Filters, SyncOptions, SyncReport};

/// A store whose listing and metadata come from a vault's index; reads and writes go to
/// the real remote, and what was written or deleted is recorded for the index.
#[derive(Debug)]
pub struct IndexedRemote {
    inner: Arc<dyn Store>,
    index_path: std::path::PathBuf,
    vault: String,
    changes: Mutex<Changes>,
}

/// What a run wrote and deleted.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Keys written: size and ETag.
    pub upserts: Vec<(String, u64, Option<String>)>,
    /// Keys deleted.
    pub removed: Vec<String>,
}

impl std::fmt::Display for IndexedRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (indexed)", self.inner)
    }
}

fn to_entry(r: ObjectRow) -> Option<Entry> {
    Some(Entry {
        key: Key::new(r.key).ok()?,
        size: r.size,
        last_modified: r.last_modified,
        etag: r.etag,
        storage_class: r.storage_class,
    })
}

impl IndexedRemote {
    /// Wraps `inner` (the vault's remote) with the index of `vault` in `index_path`.
    pub fn new(inner: Arc<dyn Store>, index_path: &std::path::Path, vault: &str) -> Self {
        IndexedRemote {
            inner,
            index_path: index_path.to_path_buf(),
            vault: vault.to_owned(),
            changes: Mutex::default(),
        }
    }

    /// What was written and deleted through it.
    pub fn changes(&self) -> Changes {
        self.changes.lock().expect("changes lock").clone()
    }
}

#[async_trait]
impl Store for IndexedRemote {
    fn list(&self, prefix: &str) -> BoxStream<'static, larder_store::Result<Entry>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let (path, vault, prefix) = (
            self.index_path.clone(),
            self.vault.clone(),
            prefix.to_owned(),
        );
        let loc = self.inner.location("");
        tokio::task::spawn_blocking(move || {
            let fail = |e: larder_index::Error| {
                larder_store::Error::new(ErrorKind::Other, larder_store::Op::List, loc.clone())
                    .with_detail(format!("the vault index: {e}"))
            };
            let ix = match Index::open(&path) {
                Ok(ix) => ix,
                Err(e) => {
                    let _ = tx.blocking_send(Err(fail(e)));
                    return;
                }
            };
            for row in ix.objects(&vault) {
                let item = match row {
                    Ok(r) if !r.key.starts_with(&prefix) => continue,
                    Ok(r) => match to_entry(r) {
                        Some(e) => Ok(e),
                        None => continue,
                    },
                    Err(e) => Err(fail(e)),
                };
                if tx.blocking_send(item).is_err() {
                    return;
                }
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx).boxed()
    }

    async fn head(&self, key: &Key) -> larder_store::Result<Option<ObjectMeta>> {
        let (path, vault, k) = (self.index_path.clone(), self.vault.clone(), key.clone());
        let loc = self.inner.location(key.as_str());
        let row = tokio::task::spawn_blocking(move || {
            Index::open(&path).and_then(|ix| ix.object(&vault, k.as_str()))
        })
        .await
        .map_err(|e| {
            larder_store::Error::new(ErrorKind::Other, larder_store::Op::Head, loc.clone())
                .with_source(e)
        })?
        .map_err(|e| {
            larder_store::Error::new(ErrorKind::Other, larder_store::Op::Head, loc)
                .with_detail(format!("the vault index: {e}"))
        })?;
        Ok(row.and_then(to_entry).map(|e| ObjectMeta {
            key: e.key,
            size: e.size,
            last_modified: e.last_modified,
            etag: e.etag,
            content_type: None,
            cache_control: None,
            metadata: Default::default(),
            mtime: None,
            checksum: None,
            storage_class: e.storage_class,
            headers: Default::default(),
            tag_count: None,
            encryption: None,
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> larder_store::Result<GetResult> {
        self.inner.get(key, opts).await
    }

    async fn put(
        &self,
        key: &Key,
        body: Body,
        opts: PutOptions,
    ) -> larder_store::Result<PutResult> {
        let r = self.inner.put(key, body, opts).await?;
        self.changes.lock().expect("changes lock").upserts.push((
            key.as_str().to_owned(),
            r.size,
            r.etag.clone(),
        ));
        Ok(r)
    }

    async fn delete(&self, keys: &[Key]) -> larder_store::Result<DeleteReport> {
        let r = self.inner.delete(keys).await?;
        let mut c = self.changes.lock().expect("changes lock");
        for k in keys {
            if !r.failed.iter().any(|(f, _)| f == k) {
                c.removed.push(k.as_str().to_owned());
            }
        }
        Ok(r)
    }

    async fn copy(
        &self,
        from: &Key,
        to: &Key,
        opts: CopyOptions,
    ) -> larder_store::Result<PutResult> {
        let put = self.inner.copy(from, to, opts).await?;
        self.changes.lock().expect("changes lock").upserts.push((
            to.as_str().to_owned(),
            put.size,
            put.etag.clone(),
        ));
        Ok(put)
    }

    /// The index holds no part layout: recomputing a multipart ETag tries the likely part
    /// sizes only, so planning sends nothing.
    async fn first_part_size(&self, _key: &Key) -> larder_store::Result<Option<u64>> {
        Ok(None)
    }

    fn identity(&self) -> String {
        self.inner.identity()
    }

    async fn flush(&self) -> larder_store::Result<()> {
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }
}

/// A plan, as data: what a vault sync will do and what it will cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Objects to upload.
    pub uploads: u64,
    /// Bytes to upload.
    pub upload_bytes: u64,
    /// Remote objects to delete.
    pub deletes: u64,
    /// Keys up to date (adopted ones included).
    pub unchanged: u64,
    /// Requests per kind: those the refresh already sent, plus those execution will send
    /// (uploads with their parts, batched deletes, the manifest).
    pub requests: Requests,
    /// The estimated price, US dollars.
    pub price_usd: f64,
}

/// How to run a vault sync.
#[derive(Clone)]
#[non_exhaustive]
pub struct VaultSyncOptions {
    /// The vault database.
    pub index_path: std::path::PathBuf,
    /// The vault.
    pub vault: Vault,
    /// Opens the remote with a meter (budgets) attached: the caller knows credentials and
    /// endpoints. `None` for a dry run from the index alone.
    pub remote: Option<Arc<dyn Store>>,
    /// The meter the remote's requests pass through.
    pub meter: Arc<RequestMeter>,
    /// Plan and report only.
    pub dry_run: bool,
    /// Part size and multipart threshold of uploads, for the request estimate.
    pub part_size: u64,
    /// Objects above this size are uploaded in parts.
    pub multipart_threshold: u64,
    /// The prices.
    pub pricing: Pricing,
    /// The metadata cache.
    pub cache: Option<Arc<larder_index::MetaCache>>,
    /// Planned and finished actions.
    pub on_event: Option<crate::EventHandler>,
}

larder_store::with_setters!(VaultSyncOptions {
    with_index_path => index_path: std::path::PathBuf,
    with_vault => vault: Vault,
    with_remote => remote: Option<Arc<dyn Store>>,
    with_meter => meter: Arc<RequestMeter>,
    with_dry_run => dry_run: bool,
    with_part_size => part_size: u64,
    with_multipart_threshold => multipart_threshold: u64,
    with_pricing => pricing: Pricing,
    with_cache => cache: Option<Arc<larder_index::MetaCache>>,
    with_on_event => on_event: Option<crate::EventHandler>,
});

impl VaultSyncOptions {
    /// Options for a run of `vault` with its index at `index_path` and its remote (`None`:
    /// opened from the vault's URL): a real run, 8 MiB parts, default pricing, no metadata
    /// cache, no event handler, a fresh request meter.
    pub fn new(
        index_path: impl Into<std::path::PathBuf>,
        vault: Vault,
        remote: Option<Arc<dyn Store>>,
    ) -> Self {
        VaultSyncOptions {
            index_path: index_path.into(),
            vault,
            remote,
            meter: Arc::new(RequestMeter::default()),
            dry_run: false,
            part_size: 8 << 20,
            multipart_threshold: 8 << 20,
            pricing: Pricing::default(),
            cache: None,
            on_event: None,
        }
    }
}

impl std::fmt::Debug for VaultSyncOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSyncOptions")
            .field("vault", &self.vault.name)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// The outcome of a vault sync.
#[derive(Debug, Clone, Default)]
pub struct VaultReport {
    /// The plan it made.
    pub plan: Plan,
    /// The sync engine's report of the execution (`None` for a dry run).
    pub sync: Option<SyncReport>,
    /// Requests really sent.
    pub sent: Requests,
    /// The price of what was sent.
    pub spent_usd: f64,
    /// Why the run stopped early, naming the budget or the stale index.
    pub stalled: Option<String>,
    /// Where the index came from this run (`manifest`, unchanged, `reconcile`…).
    pub index: String,
    /// Whether a manifest was published.
    pub published: bool,
}

/// An error that stops a vault sync before it plans.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The index database.
    #[error(transparent)]
    Index(#[from] larder_index::Error),
    /// The remote.
    #[error(transparent)]
    Store(#[from] larder_store::Error),
    /// A key the vault's index does not have.
    #[error("vault `{vault}` has no `{key}` in its index")]
    NotIndexed {
        /// The vault.
        vault: String,
        /// The key.
        key: String,
    },
    /// A dry run without a usable index.
    #[error("vault `{vault}` has no usable remote index ({why}); import an inventory, reconcile, or dry-run with --refresh-index")]
    NoIndex {
        /// The vault.
        vault: String,
        /// Why.
        why: String,
    },
}

fn filters() -> Filters {
    // The vault's own `.larder/` is never synced, in either direction.
    Filters::new(&[], &["/.larder/**".to_owned()], &[], &[]).expect("a valid glob")
}

/// Predicted PUT requests of one upload.
fn puts_for(size: u64, threshold: u64, part: u64) -> u64 {
    if size <= threshold {
        1
    } else {
        size.div_ceil(part.max(1)) + 2 // parts, create and complete
    }
}

/// Runs a vault sync: see the module docs.
///
/// # Errors
///
/// When the index cannot be read, a dry run has no usable index, or the remote cannot be
/// reached at all; budgets exhausted and stale indexes are a [`VaultReport::stalled`].
pub async fn vault_sync(o: VaultSyncOptions) -> Result<VaultReport, VaultError> {
    let name = o.vault.name.clone();
    let started = SystemTime::now();
    let mut report = VaultReport::default();
    let mut ix = Index::open(&o.index_path)?;
    let (state, fresh) = index_state(&o, &ix)?;

    // 1. Refresh.
    refresh(&o, &mut ix, state.as_ref(), fresh, &mut report).await?;
    if report.stalled.is_some() {
        report.sent = o.meter.requests();
        report.spent_usd = o.meter.price();
        record_run(&ix, &name, started, &report, &o.meter)?;
        return Ok(report);
    }

    // 2. Plan: the engine's dry run over the index (no request).
    let local: Arc<dyn Store> = Arc::new(larder_store::LocalStore::new(&o.vault.local_dir));
    let plan_remote: Arc<dyn Store> = match &o.remote {
        Some(r) => Arc::new(IndexedRemote::new(r.clone(), &o.index_path, &name)),
        None => Arc::new(IndexedRemote::new(
            Arc::new(larder_store::MemoryStore::new()),
            &o.index_path,
            &name,
        )),
    };
    let plan = Arc::new(Mutex::new(Plan::default()));
    // The plan's events reach the caller in a dry run; a real run reports what it did.
    let (p2, on_event) = (plan.clone(), o.on_event.clone().filter(|_| o.dry_run));
    let (threshold, part) = (o.multipart_threshold, o.part_size);
    let planner = Arc::new(move |e: &Event| {
        if let Event::Done { action, size, .. } = e {
            let mut p = p2.lock().expect("plan lock");
            match action {
                Action::Transfer => {
                    p.uploads += 1;
                    p.upload_bytes += size;
                    p.requests
                        .add(RequestKind::Put, puts_for(*size, threshold, part));
                }
                Action::Delete => p.deletes += 1,
                Action::Skip => p.unchanged += 1,
            }
        }
        if let Some(f) = &on_event {
            f(e);
        }
    });
    let base = SyncOptions {
        delete: true,
        filters: filters(),
        cache: o.cache.clone(),
        part_size: o.part_size,
        ..SyncOptions::default()
    };
    let dry = crate::sync(
        local.clone(),
        plan_remote,
        SyncOptions {
            dry_run: true,
            // A real run executes right after: the files hashed to plan are not hashed
            // again. A dry run of the vault learns nothing (it writes no state).
            dry_run_learns: !o.dry_run,
            on_event: Some(planner),
            ..base.clone()
        },
    )
    .await
    .map_err(|crate::SyncError::Store(e)| VaultError::Store(e))?;
    {
        let mut p = plan.lock().expect("plan lock");
        if dry.delete_refused.is_some() {
            p.deletes = 0;
        }
        let batches = p.deletes.div_ceil(1000);
        p.requests.add(RequestKind::Delete, batches);
        if p.uploads + p.deletes > 0 {
            p.requests.add(RequestKind::Put, 1); // the manifest, published last
        }
        let sent = o.meter.requests();
        for k in RequestKind::ALL {
            p.requests.add(k, sent.of(k));
        }
        p.price_usd = o.pricing.price(&p.requests, 0);
    }
    report.plan = plan.lock().expect("plan lock").clone();
    let Some(remote) = o.remote.clone().filter(|_| !o.dry_run) else {
        report.sent = o.meter.requests();
        report.spent_usd = o.meter.price();
        return Ok(report);
    };

    // 3. Execute, metered; stop at the first refused request.
    let indexed = Arc::new(IndexedRemote::new(remote.clone(), &o.index_path, &name));
    let cancel = tokio_util::sync::CancellationToken::new();
    let (meter, c2, user) = (o.meter.clone(), cancel.clone(), o.on_event.clone());
    let watcher: crate::EventHandler = Arc::new(move |e: &Event| {
        if matches!(e, Event::Failed { .. }) && meter.stalled().is_some() {
            c2.cancel();
            return; // a request the budget refused: reported once, as the stall
        }
        if let Some(f) = &user {
            f(e);
        }
    });
    let run = crate::sync(
        local,
        indexed.clone(),
        SyncOptions {
            on_event: Some(watcher),
            cancel,
            ..base
        },
    )
    .await
    .map_err(|crate::SyncError::Store(e)| VaultError::Store(e))?;

    // 4. Record, then publish the manifest after a complete run.
    let changes = indexed.changes();
    ix.record_sync(&name, &changes.upserts, &changes.removed)?;
    report.stalled = o.meter.stalled();
    let complete = report.stalled.is_none() && run.errors.is_empty() && !run.cancelled;
    let changed = !changes.upserts.is_empty() || !changes.removed.is_empty();
    // Published after a complete run that changed something, or when the bucket has none
    // yet (as far as this index knows, after the refresh).
    let st = ix.state(&name)?;
    let has_manifest = st.as_ref().is_some_and(|s| s.manifest_etag.is_some());
    let unpublished = st.as_ref().is_some_and(|s| s.unpublished);
    if complete && (changed || !has_manifest || unpublished) {
        publish(&o, &mut ix, &remote, &mut report).await?;
    }
    report.sync = Some(run);
    report.sent = o.meter.requests();
    report.spent_usd = o.meter.price();
    record_run(&ix, &name, started, &report, &o.meter)?;
    Ok(report)
}

/// The vault's index state and whether it is fresh (younger than the policy's max age).
pub(crate) fn index_state(
    o: &VaultSyncOptions,
    ix: &Index,
) -> Result<(Option<larder_index::IndexState>, bool), VaultError> {
    let max_age = Duration::from_secs(o.vault.policy.max_remote_index_age_secs);
    let state = ix.state(&o.vault.name)?;
    let fresh = state
        .as_ref()
        .is_some_and(|s| s.is_fresh(max_age, SystemTime::now()));
    Ok((state, fresh))
}

/// Step 1 of a run: brings the index up to date (see the module docs); a stale index that
/// cannot be refreshed sets [`VaultReport::stalled`].
pub(crate) async fn refresh(
    o: &VaultSyncOptions,
    ix: &mut Index,
    state: Option<&larder_index::IndexState>,
    fresh: bool,
    report: &mut VaultReport,
) -> Result<(), VaultError> {
    let name = o.vault.name.clone();
    let max_age = Duration::from_secs(o.vault.policy.max_remote_index_age_secs);
    match &o.remote {
        None => {
            let why = match state {
                None => Some("it was never indexed".to_owned()),
                Some(s) if !fresh => Some(format!(
                    "it is stale: indexed {} ago, max age {}",
                    humanize(
                        SystemTime::now()
                            .duration_since(s.indexed_at)
                            .unwrap_or_default()
                    ),
                    humanize(max_age)
                )),
                _ => None,
            };
            if let Some(why) = why {
                return Err(VaultError::NoIndex { vault: name, why });
            }
            report.index = "local index".to_owned();
        }
        Some(remote) => {
            let key = Key::new(MANIFEST_KEY).expect("a valid key");
            let got = remote
                .get(
                    &key,
                    GetOptions::default()
                        .with_if_none_match(state.and_then(|s| s.manifest_etag.clone())),
                )
                .await;
            match got {
                Err(e) if e.kind() == ErrorKind::NotModified => {
                    ix.touch(&name)?;
                    report.index = "manifest unchanged".to_owned();
                }
                Ok(g) => {
                    let etag = g.meta.etag.clone().unwrap_or_default();
                    let bytes = g.bytes().await?;
                    match manifest::decode(&bytes) {
                        Ok((rows, at)) => {
                            ix.replace_objects(
                                &name,
                                IndexSource::Manifest,
                                rows.into_iter().map(Ok),
                                Some((etag, at)),
                            )?;
                            report.index = "manifest (changed)".to_owned();
                        }
                        Err(why) if fresh => {
                            tracing::warn!("vault `{name}`: the manifest is unreadable ({why}); the index is fresh, going on");
                            report.index = "local index (manifest unreadable)".to_owned();
                        }
                        Err(why) => {
                            report.stalled = Some(format!(
                                "the index is stale and the manifest `{MANIFEST_KEY}` is unreadable: {why}"
                            ));
                        }
                    }
                }
                Err(e) if fresh => {
                    if e.kind() != ErrorKind::NotFound {
                        tracing::warn!(
                            "vault `{name}`: no manifest read ({e}); the index is fresh, going on"
                        );
                    }
                    report.index = "local index".to_owned();
                }
                Err(e) => {
                    let why = if e.kind() == ErrorKind::NotFound {
                        "there is no manifest".to_owned()
                    } else {
                        format!("the manifest cannot be read: {e}")
                    };
                    let list_budget = o.vault.policy.budgets.list;
                    if list_budget.is_some() {
                        // The meter holds the LIST budget: a refused LIST fails the listing.
                        match reconcile(&o.index_path, &name, &**remote, None).await {
                            Ok(Ok(_)) => report.index = "reconcile (LIST)".to_owned(),
                            Ok(Err(why)) => report.stalled = Some(why),
                            Err(e) => match o.meter.stalled() {
                                Some(why) => report.stalled = Some(why),
                                None => return Err(e),
                            },
                        }
                    } else {
                        report.stalled = Some(format!(
                            "the index is {} and {why}; run `larder vault sync reconcile {name}` or set a LIST budget",
                            if state.is_none() { "missing" } else { "stale" }
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Publishes the index as the vault's manifest, last, and keeps its ETag.
pub(crate) async fn publish(
    o: &VaultSyncOptions,
    ix: &mut Index,
    remote: &Arc<dyn Store>,
    report: &mut VaultReport,
) -> Result<(), VaultError> {
    let name = &o.vault.name;
    let now = SystemTime::now();
    let rows: Vec<ObjectRow> = ix.objects(name).collect::<Result<_, _>>()?;
    let bytes = manifest::encode(rows, now);
    match remote
        .put(
            &Key::new(MANIFEST_KEY).expect("a valid key"),
            Body::from_bytes(bytes),
            PutOptions::default().with_content_type(Some("application/gzip".to_owned())),
        )
        .await
    {
        Ok(put) => {
            ix.record_manifest(name, put.etag.as_deref().unwrap_or(""), now)?;
            report.published = true;
        }
        Err(e) => match o.meter.stalled() {
            Some(why) => report.stalled = Some(why),
            None => tracing::warn!("vault `{name}`: the manifest was not published: {e}"),
        },
    }
    Ok(())
}

/// Records a real run (its outcome, counts, requests, bytes, price) in the index.
fn record_run(
    ix: &Index,
    name: &str,
    started: SystemTime,
    r: &VaultReport,
    meter: &RequestMeter,
) -> Result<(), VaultError> {
    let failed = r.sync.as_ref().map_or(0, |s| s.errors.len() as u64);
    let (outcome, reason) = match (&r.stalled, failed) {
        (Some(why), _) => ("stalled", Some(why.clone())),
        (None, 0) => ("ok", None),
        (None, n) => ("failed", Some(format!("{n} key(s) failed"))),
    };
    let done = (
        r.sync.as_ref().map_or(0, |s| s.transferred),
        r.sync.as_ref().map_or(0, |s| s.deleted),
        failed,
    );
    let row = run_row(
        started,
        (outcome, reason),
        done,
        &r.sent,
        meter,
        r.spent_usd,
    );
    ix.record_run(name, &row)?;
    Ok(())
}

/// A run's row: when, outcome and reason, (uploaded, deleted, failed), what it sent.
pub(crate) fn run_row(
    started: SystemTime,
    (outcome, reason): (&str, Option<String>),
    (uploaded, deleted, failed): (u64, u64, u64),
    q: &Requests,
    meter: &RequestMeter,
    price_usd: f64,
) -> larder_index::Run {
    larder_index::Run {
        started,
        ended: SystemTime::now(),
        outcome: outcome.to_owned(),
        reason,
        uploaded,
        deleted,
        failed,
        requests: serde_json::json!({"list": q.list, "get": q.get, "head": q.head,
                                     "put": q.put, "delete": q.delete}),
        upload_bytes: meter.upload_bytes(),
        download_bytes: meter.download_bytes(),
        price_usd,
    }
}

/// Rebuilds `vault`'s index from a listing of `remote`, streamed (one page in memory) into
/// one transaction that commits only when the listing completed. With `list_limit`, the
/// pass stops before the LIST that would pass it (page n+1 starts at object n*1,000+1) and
/// returns `Ok(Err(reason))`, the index unchanged. Returns the rows indexed.
///
/// # Errors
///
/// The listing's or the index's error; the index is unchanged.
pub async fn reconcile(
    index_path: &std::path::Path,
    vault: &str,
    remote: &dyn Store,
    list_limit: Option<u64>,
) -> Result<Result<u64, String>, VaultError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<larder_index::Result<ObjectRow>>(2048);
    let (path, name) = (index_path.to_path_buf(), vault.to_owned());
    let writer = tokio::task::spawn_blocking(move || {
        Index::open(&path)?.replace_objects(&name, IndexSource::Reconcile, rx, None)
    });
    let mut list = remote.list("");
    let (mut seen, mut stalled, mut failed) = (0u64, None, None);
    while let Some(item) = list.next().await {
        let row = match item {
            Ok(e) => {
                seen += 1;
                if let Some(b) = list_limit.filter(|b| seen > b * 1000) {
                    stalled = Some(format!(
                        "LIST budget {b} exhausted: the prefix holds more than {} objects",
                        b * 1000
                    ));
                    let _ = tx.send(Err(larder_index::Error::Invalid("stalled".into())));
                    break;
                }
                Ok(ObjectRow {
                    key: e.key.into_string(),
                    size: e.size,
                    etag: e.etag,
                    storage_class: e.storage_class,
                    last_modified: e.last_modified,
                })
            }
            Err(e) => {
                let _ = tx.send(Err(larder_index::Error::Invalid(e.to_string())));
                failed = Some(e);
                break;
            }
        };
        if tx.send(row).is_err() {
            break;
        }
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| VaultError::Index(larder_index::Error::Invalid(e.to_string())))?;
    if let Some(why) = stalled {
        return Ok(Err(why));
    }
    if let Some(e) = failed {
        return Err(VaultError::Store(e));
    }
    Ok(Ok(written?))
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
