//! The sync engine of larder: make a destination store hold what a source store holds,
//! verified.
//!
//! ```
//! use std::sync::Arc;
//! use larder_store::{Body, Key, MemoryStore, PutOptions, Store};
//! use larder_sync::{sync, SyncOptions};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let src = Arc::new(MemoryStore::new());
//! let dst = Arc::new(MemoryStore::new());
//! src.put(&Key::new("a").unwrap(), Body::from_bytes("x"), PutOptions::default()).await.unwrap();
//! let report = sync(src.clone(), dst.clone(), SyncOptions::default()).await.unwrap();
//! assert_eq!(report.transferred, 1);
//! assert_eq!(report.etag_verified, 1);
//! // Again: nothing to do.
//! let report = sync(src, dst, SyncOptions::default()).await.unwrap();
//! assert_eq!((report.transferred, report.skipped), (0, 1));
//! # });
//! ```
//!
//! Against an S3-compatible server with an endpoint (Garage, MinIO, Ceph), with a progress
//! bar's worth of callbacks:
//!
//! ```no_run
//! use std::sync::Arc;
//! use larder_store::{LocalStore, S3Options, S3Store, S3Url};
//! use larder_sync::{sync, Event, Progress, SyncOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let opts = S3Options::default() // credentials: the AWS chain (env, profile, …)
//!     .with_endpoint_url(Some("http://127.0.0.1:3900".into())) // path-style follows
//!     .with_region(Some("garage".into()));
//! let dst = Arc::new(S3Store::new(S3Url::parse("s3://bucket/site")?, opts).await?);
//! let src = Arc::new(LocalStore::new("./site"));
//! let opts = SyncOptions::default()
//!     .with_delete(true)
//!     .with_on_event(Some(Arc::new(|e: &Event| {
//!         if let Event::Failed { key, error } = e {
//!             eprintln!("{key}: {error}");
//!         }
//!     })))
//!     .with_on_progress(Some(Arc::new(|p: &Progress| {
//!         if let Progress::Bytes { key, done, size } = p {
//!             eprintln!("{key}: {done}/{size}");
//!         }
//!     })));
//! let report = sync(src, dst, opts)
//! .await?;
//! println!("{} transferred, {} verified", report.transferred, report.etag_verified);
//! # Ok(())
//! # }
//! ```
//!
//! Option structs are `#[non_exhaustive]`: build them from `Default` with their `with_*`
//! setters, as above.
//!
//! # Pipeline
//!
//! list → [`march()`] → compare ([`compare`]) → plan ([`Action`]) → execute → verify → report.
//! Both listings stream; transfers start while listing goes on, many at a time
//! ([`SyncOptions::concurrency`]). A failed key is recorded in the [`SyncReport`] and the run
//! goes on (unless [`SyncOptions::stop_on_error`]). Deletions (`--delete`) wait until every
//! transfer has succeeded, and are refused when the source listing was empty or had errors,
//! or when there are more than [`SyncOptions::max_delete`].
#![warn(missing_docs)]

pub mod callbacks;
pub mod compare;
mod execute;
pub use execute::Verified;
pub mod rename;
mod server_copy;
pub use server_copy::ServerSideCopy;
mod budget;
pub mod filter;
pub mod inspect;
pub mod march;
mod queue;
pub mod ratelimit;
mod report;
pub mod twoway;
pub mod vault;
pub mod verify;
pub mod versioning;
mod write;
pub use report::{Action, Event, EventHandler, KeyFailure, Progress, ProgressHandler, SyncReport};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use larder_store::integrity::ChecksumAlgorithm;
use larder_store::{Entry, ErrorKind, Key, Store};
use tokio_util::sync::CancellationToken;

pub use compare::{Adoption, Comparator, CompareMode, Decision, Reason};
pub use filter::Filters;
pub use larder_index::MetaCache;
pub use march::{march, MarchItem, Pair};
pub use verify::{verify, Status, VerifyOptions, VerifyReport};
pub use write::{Conditional, WriteOptions};

/// How to sync.
#[derive(Clone)]
#[non_exhaustive]
pub struct SyncOptions {
    /// How to tell that a key is up to date.
    pub compare: CompareMode,
    /// A custom comparator; overrides [`SyncOptions::compare`].
    pub comparator: Option<Arc<dyn Comparator>>,
    /// An additional checksum to send, store and verify (and compare, with
    /// [`CompareMode::Checksum`]).
    pub checksum: Option<ChecksumAlgorithm>,
    /// Delete destination keys the source does not have.
    pub delete: bool,
    /// Allow `delete` when the source listing is empty.
    pub allow_empty_source: bool,
    /// Refuse to delete more than this many keys.
    pub max_delete: Option<u64>,
    /// Plan and report, write nothing.
    pub dry_run: bool,
    /// In a dry run, still record what was learnt in the metadata cache (content hashes,
    /// adopted objects), for a caller that plans and then runs at once (vault sync): the
    /// run then reads no file twice. The stores are not written either way.
    pub dry_run_learns: bool,
    /// Which keys to consider.
    pub filters: Filters,
    /// Objects in flight at once.
    pub concurrency: usize,
    /// Bytes the transfers in flight may hold in memory together (bodies of small objects,
    /// parts of large ones); a transfer waits for room.
    pub max_buffer_memory: u64,
    /// Parts of one large object the stores keep in flight (their `parts_in_flight`): a
    /// large transfer reserves one more than this many parts of
    /// [`SyncOptions::max_buffer_memory`].
    pub parts_in_flight: usize,
    /// Transfers started per second, across all workers (`--rate-limit-objects`).
    pub rate_limit_objects: Option<f64>,
    /// Bytes moved per second, across all workers (`--rate-limit-bandwidth`): every byte
    /// read from the source, which is every byte written.
    pub rate_limit_bandwidth: Option<u64>,
    /// When the server copies objects itself instead of larder reading and writing their
    /// bytes (S3 → S3): see [`ServerSideCopy`].
    pub server_side_copy: ServerSideCopy,
    /// Where a versioned sync ([`versioning::sync_versions`]) records the versions it copied
    /// (`versions.sqlite3` in the state directory); `None`: in memory, so every run learns
    /// them again from the destination's metadata (one HEAD per destination version).
    pub versions: Option<Arc<larder_index::VersionMap>>,
    /// Stop at the first failed key (and then delete nothing).
    pub stop_on_error: bool,
    /// Further attempts of a failed transfer (retryable or integrity errors).
    pub retries: u32,
    /// Modification times this close are equal.
    pub mtime_window: Duration,
    /// The part size uploads use, tried first when recomputing a multipart ETag.
    pub part_size: u64,
    /// Guess a Content-Type from the key's extension when the source has none.
    pub guess_content_type: bool,
    /// Which metadata and tags the writes carry, what they override, and their
    /// precondition (see [`WriteOptions`]).
    pub write: WriteOptions,
    /// The metadata cache (see [`MetaCache`]); without one, size-mtime comparisons against
    /// objects HEAD them.
    pub cache: Option<Arc<MetaCache>>,
    /// Called for every planned or finished action.
    pub on_event: Option<EventHandler>,
    /// Called as transfers start and their bytes move (see [`Progress`]).
    pub on_progress: Option<ProgressHandler>,
    /// Filters on Content-Type, user metadata and tags (one HEAD per object that would
    /// otherwise be transferred; tags one more request).
    pub object_filters: filter::ObjectFilters,
    /// With `delete`, also delete destination keys the filters leave out (rclone's and
    /// s3sync's `--delete-excluded`).
    pub delete_excluded: bool,
    /// Decides which source objects are synced, after the filters ([`callbacks`]).
    pub filter_callback: Option<Arc<dyn callbacks::FilterCallback>>,
    /// Changes what each write carries before it is sent ([`callbacks`]).
    pub preprocess_callback: Option<Arc<dyn callbacks::PreprocessCallback>>,
    /// Cancels the run: in-flight transfers are dropped (which aborts multipart uploads and
    /// removes temp files) and the report says `cancelled`.
    pub cancel: CancellationToken,
}

larder_store::with_setters!(SyncOptions {
    with_compare => compare: CompareMode,
    with_comparator => comparator: Option<Arc<dyn Comparator>>,
    with_checksum => checksum: Option<ChecksumAlgorithm>,
    with_delete => delete: bool,
    with_allow_empty_source => allow_empty_source: bool,
    with_max_delete => max_delete: Option<u64>,
    with_dry_run => dry_run: bool,
    with_dry_run_learns => dry_run_learns: bool,
    with_filters => filters: Filters,
    with_concurrency => concurrency: usize,
    with_max_buffer_memory => max_buffer_memory: u64,
    with_parts_in_flight => parts_in_flight: usize,
    with_rate_limit_objects => rate_limit_objects: Option<f64>,
    with_rate_limit_bandwidth => rate_limit_bandwidth: Option<u64>,
    with_server_side_copy => server_side_copy: ServerSideCopy,
    with_versions => versions: Option<Arc<larder_index::VersionMap>>,
    with_stop_on_error => stop_on_error: bool,
    with_retries => retries: u32,
    with_mtime_window => mtime_window: Duration,
    with_part_size => part_size: u64,
    with_guess_content_type => guess_content_type: bool,
    with_write => write: WriteOptions,
    with_cache => cache: Option<Arc<MetaCache>>,
    with_on_event => on_event: Option<EventHandler>,
    with_on_progress => on_progress: Option<ProgressHandler>,
    with_object_filters => object_filters: filter::ObjectFilters,
    with_delete_excluded => delete_excluded: bool,
    with_filter_callback => filter_callback: Option<Arc<dyn callbacks::FilterCallback>>,
    with_preprocess_callback => preprocess_callback: Option<Arc<dyn callbacks::PreprocessCallback>>,
    with_cancel => cancel: CancellationToken,
});

impl fmt::Debug for SyncOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncOptions")
            .field("compare", &self.compare)
            .field("checksum", &self.checksum)
            .field("delete", &self.delete)
            .field("dry_run", &self.dry_run)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            compare: CompareMode::default(),
            comparator: None,
            checksum: None,
            delete: false,
            allow_empty_source: false,
            max_delete: None,
            dry_run: false,
            dry_run_learns: false,
            filters: Filters::default(),
            concurrency: 128,
            max_buffer_memory: 64 << 20,
            parts_in_flight: 4,
            rate_limit_objects: None,
            rate_limit_bandwidth: None,
            server_side_copy: ServerSideCopy::default(),
            versions: None,
            stop_on_error: false,
            retries: 3,
            mtime_window: Duration::ZERO,
            part_size: 8 << 20,
            guess_content_type: true,
            write: WriteOptions::default(),
            cache: None,
            on_event: None,
            on_progress: None,
            object_filters: Default::default(),
            delete_excluded: false,
            filter_callback: None,
            preprocess_callback: None,
            cancel: CancellationToken::new(),
        }
    }
}

/// An error that stops a sync before it starts.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A store could not be used at all (missing bucket, rejected credentials).
    #[error(transparent)]
    Store(#[from] larder_store::Error),
}

/// The outcome of one pair.
enum Step {
    Done {
        action: Action,
        key: Key,
        size: u64,
        reason: Reason,
        verified: execute::Verified,
    },
    Filtered,
    Delete(Entry),
    Failed {
        failure: KeyFailure,
        /// The source listing failed here: it may be incomplete, so nothing may be deleted.
        src_listing: bool,
    },
}

fn failure(key: &str, e: &larder_store::Error) -> KeyFailure {
    KeyFailure {
        key: key.to_owned(),
        kind: e.kind(),
        message: e.to_string(),
    }
}

/// Makes `dst` hold what `src` holds. See the crate docs.
///
/// # Errors
///
/// Only when a listing fails at its very start with an error that no key could escape
/// (missing bucket, rejected credentials, unreachable server); everything else is in the
/// report.
pub async fn sync(
    src: Arc<dyn Store>,
    dst: Arc<dyn Store>,
    opts: SyncOptions,
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    write::check_supported(&opts.write, dst.as_ref())?;
    let mut report = SyncReport {
        dry_run: opts.dry_run,
        ..SyncReport::default()
    };
    let mut inspector =
        inspect::StoreInspector::new(src.clone(), dst.clone(), opts.cache.clone(), opts.part_size);
    if opts.dry_run && !opts.dry_run_learns {
        inspector = inspector.read_only();
    }
    let inspector = Arc::new(inspector);
    let emit = |ev: Event| {
        if let Some(f) = &opts.on_event {
            f(&ev);
        }
    };
    let src_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let dst_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = |s: futures::stream::BoxStream<'static, larder_store::Result<Entry>>,
                   c: Arc<std::sync::atomic::AtomicU64>| {
        s.inspect(move |r| {
            if r.is_ok() {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .boxed()
    };
    let mut src_list = counted(src.list(""), src_count.clone()).peekable();
    let mut dst_list = counted(dst.list(""), dst_count.clone()).peekable();
    // A listing whose very first answer is an error no retry fixes (missing bucket, rejected
    // credentials, an endpoint that is not S3 or does not answer) is fatal: checked on both
    // sides before anything is planned, so no transfer starts blind.
    {
        let (mut s, mut d) = (
            std::pin::Pin::new(&mut src_list),
            std::pin::Pin::new(&mut dst_list),
        );
        let (a, b) = futures::join!(s.as_mut().peek(), d.as_mut().peek());
        let fatal = |first: Option<&larder_store::Result<Entry>>, store: &Arc<dyn Store>| {
            matches!(first, Some(Err(e)) if e.op() == larder_store::Op::List
                && e.location() == store.location("")
                && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::Transient))
        };
        let (src_fatal, dst_fatal) = (fatal(a, &src), fatal(b, &dst));
        if src_fatal || dst_fatal {
            let first = if src_fatal {
                s.next().await
            } else {
                d.next().await
            };
            let Some(Err(e)) = first else {
                unreachable!("peeked an error")
            };
            return Err(SyncError::Store(e));
        }
    }
    let items = march(src_list.boxed(), dst_list.boxed()).boxed();

    let topts = Arc::new(execute::TransferOptions::for_sync(&opts));
    let objects_limit = opts.rate_limit_objects.map(ratelimit::RateLimiter::objects);
    // Shared by every step: SyncOptions holds compiled filters, too costly to clone per key.
    let shared = Arc::new(opts.clone());
    let steps = items.map(|item| {
        let (src, dst, inspector, opts, topts, limit) = (
            src.clone(),
            dst.clone(),
            inspector.clone(),
            shared.clone(),
            topts.clone(),
            objects_limit.clone(),
        );
        async move {
            step(
                item,
                &src,
                &dst,
                &inspector,
                &opts,
                &topts,
                limit.as_deref(),
            )
            .await
        }
    });
    // A dry run reports its plan in key order; a real run finishes keys in any order.
    // Boxed so that dropping it below really drops the transfers in flight (cancel, stop).
    let mut steps: futures::stream::BoxStream<'_, Step> = if opts.dry_run {
        steps.buffered(opts.concurrency.max(1)).boxed()
    } else {
        steps.buffer_unordered(opts.concurrency.max(1)).boxed()
    };

    let mut deletes = queue::DeleteQueue::default();
    let mut src_errors = 0u64;
    loop {
        let next = tokio::select! {
            biased;
            _ = opts.cancel.cancelled() => {
                report.cancelled = true;
                break;
            }
            n = steps.next() => n,
        };
        let Some(step) = next else { break };
        match step {
            Step::Done {
                action,
                key,
                size,
                reason,
                verified,
            } => {
                match action {
                    Action::Transfer => report.count_transfer(size, verified),
                    Action::Skip => {
                        report.skipped += 1;
                        report.adopted += matches!(reason, Reason::Adopted(_)) as u64;
                        report.archived += matches!(reason, Reason::Archived(_)) as u64;
                        report.precondition_skipped +=
                            matches!(reason, Reason::Precondition(_)) as u64;
                    }
                    Action::Delete => {}
                }
                emit(Event::Done {
                    action,
                    key: key.into_string(),
                    size,
                    reason,
                    dry_run: opts.dry_run,
                    verified,
                    done: report.transferred + report.skipped + report.errors.len() as u64,
                    listed: src_count.load(std::sync::atomic::Ordering::Relaxed),
                });
            }
            Step::Filtered => report.filtered += 1,
            Step::Delete(e) => {
                if let Err(err) = deletes.push(queue::Pending {
                    key: e.key,
                    size: e.size,
                }) {
                    // Without the queue, deletions cannot run safely; transfers go on.
                    report.delete_refused =
                        Some(format!("the queue of pending deletions failed: {err}"));
                }
            }
            Step::Failed {
                failure,
                src_listing,
            } => {
                src_errors += src_listing as u64;
                emit(Event::Failed {
                    key: failure.key.clone(),
                    error: failure.message.clone(),
                });
                report.errors.push(failure);
                if opts.stop_on_error {
                    break;
                }
            }
        }
    }
    // Dropping in-flight transfers aborts multipart uploads and removes temp files.
    drop(steps);
    report.src_listed = src_count.load(std::sync::atomic::Ordering::Relaxed);
    report.dst_listed = dst_count.load(std::sync::atomic::Ordering::Relaxed);

    if opts.delete && !deletes.is_empty() {
        let refused = if let Some(why) = report.delete_refused.take() {
            Some(why)
        } else if report.cancelled {
            Some("the run was cancelled".to_owned())
        } else if src_errors > 0 {
            Some(format!(
                "the source listing had {src_errors} error(s), so it may be incomplete"
            ))
        } else if !report.errors.is_empty() {
            Some(format!(
                "{} key(s) failed; deletions run only after every transfer succeeded",
                report.errors.len()
            ))
        } else if report.src_listed == 0 && !opts.allow_empty_source {
            Some("the source is empty (use --allow-empty-source to delete everything)".to_owned())
        } else if opts.max_delete.is_some_and(|m| deletes.len() > m) {
            Some(format!(
                "{} deletions exceed --max-delete {}",
                deletes.len(),
                opts.max_delete.unwrap_or(0)
            ))
        } else {
            None
        };
        match refused {
            Some(why) => report.delete_refused = Some(why),
            None => delete_all(&dst, deletes, &opts, &mut report, &emit).await,
        }
    }
    // What the transfers and deletions left to be made durable together (a local
    // directory's renames) is, before the run reports them done.
    if !opts.dry_run {
        if let Err(e) = dst.flush().await {
            emit(Event::Failed {
                key: String::new(),
                error: e.to_string(),
            });
            report.errors.push(failure("", &e));
        }
    }
    report.heads = inspector.heads();
    if let Some(c) = &opts.cache {
        c.flush();
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

async fn delete_all(
    dst: &Arc<dyn Store>,
    deletes: queue::DeleteQueue,
    opts: &SyncOptions,
    report: &mut SyncReport,
    emit: &impl Fn(Event),
) {
    let batches = match deletes.into_batches(1000) {
        Ok(b) => b,
        Err(e) => {
            report.delete_refused = Some(format!("the queue of pending deletions failed: {e}"));
            return;
        }
    };
    let dst_id = dst.identity();
    for batch in batches {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                report.delete_refused = Some(format!("the queue of pending deletions failed: {e}"));
                return;
            }
        };
        let keys: Vec<Key> = batch.iter().map(|p| p.key.clone()).collect();
        let failed: Vec<(Key, larder_store::Error)> = if opts.dry_run {
            Vec::new()
        } else {
            match dst.delete(&keys).await {
                Ok(r) => r.failed,
                Err(e) => keys
                    .iter()
                    .map(|k| (k.clone(), batch_failure(&e, &dst.location(k.as_str()))))
                    .collect(),
            }
        };
        for p in batch {
            if let Some((_, err)) = failed.iter().find(|(k, _)| *k == p.key) {
                let f = failure(p.key.as_str(), err);
                emit(Event::Failed {
                    key: f.key.clone(),
                    error: f.message.clone(),
                });
                report.errors.push(f);
                continue;
            }
            if let Some(c) = &opts.cache {
                c.forget(&dst_id, p.key.as_str());
            }
            report.deleted += 1;
            emit(Event::Done {
                action: Action::Delete,
                key: p.key.into_string(),
                size: p.size,
                reason: Reason::Extra,
                dry_run: opts.dry_run,
                verified: Verified::default(),
                done: report.transferred + report.skipped + report.deleted,
                listed: report.src_listed,
            });
        }
    }
}

/// A failed batch delete, as the failure of one key in it: named by the key's location, with
/// the batch's cause (not its message, which names the batch).
fn batch_failure(e: &larder_store::Error, location: &str) -> larder_store::Error {
    larder_store::Error::new(e.kind(), e.op(), location)
        .with_detail(e.detail().unwrap_or(e.kind().as_str()).to_owned())
        .with_retryable(e.is_retryable())
}

/// Storage classes whose objects must be restored before they can be read (S3 Glacier
/// Flexible Retrieval and Deep Archive; Intelligent-Tiering's archive tiers are indexed under
/// these names by the vault index).
pub fn is_archive_class(class: &str) -> bool {
    matches!(
        class,
        "GLACIER" | "DEEP_ARCHIVE" | "GLACIER_FLEXIBLE_RETRIEVAL"
    )
}

/// A "folder" object (`photos/`, empty), as consoles create: a directory cannot hold it as a
/// file, and it carries no data, so it is left out where the destination has directories.
fn is_dir_marker(e: &Entry, dst: &Arc<dyn Store>) -> bool {
    e.size == 0 && e.key.as_str().ends_with('/') && !dst.capabilities().file_and_prefix
}

/// Whether the object filters keep a source object: one HEAD (its Content-Type, guessed from
/// the key where the store keeps none, and user metadata; counted in the report's HEADs)
/// and, for tag filters, its tags.
async fn object_filters_keep(
    src: &Arc<dyn Store>,
    inspector: &inspect::StoreInspector,
    entry: &Entry,
    opts: &SyncOptions,
) -> larder_store::Result<bool> {
    let f = &opts.object_filters;
    let meta = inspector.counted_head(compare::Side::Src, entry).await?;
    let content_type = meta
        .as_ref()
        .and_then(|m| m.content_type.clone())
        .or_else(|| execute::guessed_content_type(entry.key.as_str()));
    let metadata = meta.map(|m| m.metadata).unwrap_or_default();
    let tags = if f.needs_tags() {
        src.tags(&entry.key).await?
    } else {
        None
    };
    Ok(f.keeps(content_type.as_deref(), &metadata, tags.as_ref()))
}

/// The filter callback's verdict on a source entry (true without one); a failed call fails
/// the key, named with the script's error.
pub(crate) fn callback_keeps(opts: &SyncOptions, s: &Entry) -> Result<bool, KeyFailure> {
    let Some(f) = &opts.filter_callback else {
        return Ok(true);
    };
    f.keep(s).map_err(|e| KeyFailure {
        key: s.key.as_str().to_owned(),
        kind: ErrorKind::Other,
        message: format!("{}: filter callback: {e}", s.key),
    })
}

async fn step(
    item: MarchItem,
    src: &Arc<dyn Store>,
    dst: &Arc<dyn Store>,
    inspector: &inspect::StoreInspector,
    opts: &SyncOptions,
    topts: &execute::TransferOptions,
    objects_limit: Option<&ratelimit::RateLimiter>,
) -> Step {
    // An archived source object needs a restore before its body can be read: planned
    // transfers of it are skipped and reported (in dry runs too), never attempted.
    let archived = |s: &Entry| {
        s.storage_class
            .as_deref()
            .filter(|c| is_archive_class(c))
            .map(|c| Step::Done {
                action: Action::Skip,
                key: s.key.clone(),
                size: s.size,
                reason: Reason::Archived(c.to_owned()),
                verified: Default::default(),
            })
    };
    let (entry, reason, dst_entry) = match item {
        MarchItem::SrcError(e) => {
            return Step::Failed {
                failure: failure(e.location(), &e),
                src_listing: true,
            }
        }
        MarchItem::DstError(e) => {
            return Step::Failed {
                failure: failure(e.location(), &e),
                src_listing: false,
            }
        }
        MarchItem::Pair(Pair::DstOnly(d)) => {
            // A key the filters leave out is not the sync's business, not even to delete.
            return if opts.delete
                && (opts.delete_excluded || opts.filters.keeps_key(d.key.as_str()))
            {
                Step::Delete(d)
            } else {
                Step::Filtered
            };
        }
        MarchItem::Pair(Pair::SrcOnly(s)) => {
            if !opts.filters.keeps(&s) || is_dir_marker(&s, dst) {
                return Step::Filtered;
            }
            match callback_keeps(opts, &s) {
                Ok(true) => {}
                Ok(false) => return Step::Filtered,
                Err(failure) => {
                    return Step::Failed {
                        failure,
                        src_listing: false,
                    }
                }
            }
            if let Some(skip) = archived(&s) {
                return skip;
            }
            (s, Reason::Missing, None)
        }
        MarchItem::Pair(Pair::Both(s, d)) => {
            if is_dir_marker(&s, dst) {
                return Step::Filtered;
            }
            let excluded = |d: Entry| {
                if opts.delete && opts.delete_excluded {
                    Step::Delete(d)
                } else {
                    Step::Filtered
                }
            };
            if !opts.filters.keeps(&s) {
                return excluded(d);
            }
            match callback_keeps(opts, &s) {
                Ok(true) => {}
                Ok(false) => return excluded(d),
                Err(failure) => {
                    return Step::Failed {
                        failure,
                        src_listing: false,
                    }
                }
            }
            match compare::compare(
                opts.compare,
                opts.comparator.as_ref(),
                opts.checksum,
                opts.mtime_window,
                inspector,
                &s,
                &d,
            )
            .await
            {
                Decision::Skip(reason) => {
                    return Step::Done {
                        action: Action::Skip,
                        key: s.key,
                        size: s.size,
                        reason,
                        verified: Default::default(),
                    }
                }
                Decision::Transfer(r) => match archived(&s) {
                    Some(skip) => return skip,
                    None => {
                        if let Some(why) = write::planned_skip(&opts.write, &d) {
                            return Step::Done {
                                action: Action::Skip,
                                key: s.key,
                                size: s.size,
                                reason: Reason::Precondition(why),
                                verified: Default::default(),
                            };
                        }
                        (s, r, Some(d))
                    }
                },
            }
        }
    };
    if !opts.object_filters.is_empty() {
        match object_filters_keep(src, inspector, &entry, opts).await {
            Ok(true) => {}
            Ok(false) => {
                return match dst_entry {
                    Some(d) if opts.delete && opts.delete_excluded => Step::Delete(d),
                    _ => Step::Filtered,
                }
            }
            Err(e) => {
                return Step::Failed {
                    failure: failure(entry.key.as_str(), &e),
                    src_listing: false,
                }
            }
        }
    }
    if opts.dry_run {
        return Step::Done {
            action: Action::Transfer,
            key: entry.key,
            size: entry.size,
            reason,
            verified: Default::default(),
        };
    }
    if let Some(l) = objects_limit {
        l.acquire(1).await;
    }
    if let Some(p) = &opts.on_progress {
        p(&Progress::Started {
            key: entry.key.to_string(),
            size: entry.size,
        });
    }
    let result = execute::with_retries(opts.retries, || {
        execute::transfer(src, dst, &entry, dst_entry.as_ref(), topts)
    })
    .await;
    match result {
        Ok(t) => {
            if let (Some(c), Some(etag)) = (&opts.cache, &t.dst_etag) {
                if !dst.capabilities().native_mtime {
                    c.record(
                        inspector.identity(compare::Side::Dst),
                        entry.key.as_str(),
                        etag,
                        t.bytes,
                        t.mtime,
                    );
                }
            }
            // What the GET told of the source object, so the next run needs no HEAD nor a
            // hash of the file just written to decide it is up to date.
            if let (Some(c), Some((etag, mtime))) = (&opts.cache, &t.src_seen) {
                if !src.capabilities().native_mtime && Some(etag) == entry.etag.as_ref() {
                    c.record(
                        inspector.identity(compare::Side::Src),
                        entry.key.as_str(),
                        etag,
                        t.bytes,
                        *mtime,
                    );
                }
            }
            Step::Done {
                action: Action::Transfer,
                key: entry.key,
                size: t.bytes,
                reason,
                verified: t.verified,
            }
        }
        // The destination changed since it was listed (or the key appeared): left alone,
        // reported as a warning, never overwritten.
        Err(e) if e.kind() == ErrorKind::Conflict && opts.write.condition.is_some() => {
            tracing::warn!("{e}: left as it is");
            Step::Done {
                action: Action::Skip,
                key: entry.key,
                size: entry.size,
                reason: Reason::Precondition(
                    "the destination changed since it was listed (precondition failed)".into(),
                ),
                verified: Default::default(),
            }
        }
        Err(e) => Step::Failed {
            failure: failure(entry.key.as_str(), &e),
            src_listing: false,
        },
    }
}
