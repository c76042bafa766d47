//! The subcommands: resolve arguments into library options, run, render, map to exit codes.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use larder_store::{ErrorKind, LocalStore, S3Options, S3Store, S3Url, Store, SymlinkPolicy};
use larder_sync::{Filters, MetaCache};
use serde_json::json;

use crate::cli::{Args, Command, FilterArgs, LsArgs, PairArgs, S3Args, SideArgs};
use crate::exit;

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let g = args.global;
    match args.command {
        Command::Sync(mut a) => {
            crate::config::resolve_pair(&mut a.pair);
            let out = crate::sync_cmd::Output {
                json: g.json,
                quiet: g.quiet,
                verbose: g.verbose,
            };
            crate::sync_cmd::run_sync(*a, out).await
        }
        Command::Verify(mut a) => {
            crate::config::resolve_pair(&mut a.pair);
            crate::verify_cmd::run_verify(*a, g.json, g.quiet).await
        }
        Command::Ls(mut ls) => {
            crate::config::resolve_one(&mut ls.location, &mut ls.s3);
            run_ls(ls, g.json).await
        }
        Command::Cache(crate::cli::CacheArgs {
            cache,
            command: crate::cli::CacheCommand::Sync(a),
        }) => crate::cache_sync_cmd::run(cache, *a, g.json, g.quiet).await,
        Command::Cache(c) => {
            tokio::task::spawn_blocking(move || crate::cache_cmd::run(c, g.json, g.quiet)).await?
        }
        Command::Vault(v) => crate::vault_cmd::run(v, g.json, g.quiet).await,
        Command::Cleanup {
            mut location,
            older_than,
            dry_run,
            mut s3,
        } => {
            crate::config::resolve_one(&mut location, &mut s3);
            run_cleanup(&location, older_than, dry_run, &s3, g.json, g.quiet).await
        }
        Command::Man { dir } => crate::man::run(dir.as_deref()),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Args::command(),
                "larder",
                &mut std::io::stdout(),
            );
            Ok(exit::OK)
        }
    }
}

/// `hint:` lines for an error, from its kind.
pub fn hints(e: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in e.chain() {
        if let Some(se) = cause.downcast_ref::<larder_store::Error>() {
            match se.kind() {
                ErrorKind::PermissionDenied => out.push(
                    "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, --profile) and the bucket's policy".to_owned(),
                ),
                ErrorKind::Transient if se.detail().is_some_and(|d| d.contains("could not reach")) => out.push(
                    "is the server running, and is --endpoint-url right?".to_owned(),
                ),
                ErrorKind::NotFound if se.location().starts_with("s3://") => out.push(
                    "check the bucket name, the region and --endpoint-url".to_owned(),
                ),
                _ => {}
            }
            break;
        }
    }
    out
}

/// The exit code of a failed command: invalid arguments (a bad URL, filter or option) are
/// usage errors, everything else an error.
/// A usage error found after parsing (exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn exit_code(e: &anyhow::Error) -> i32 {
    let usage = e.chain().any(|c| {
        c.downcast_ref::<larder_sync::filter::FilterError>()
            .is_some()
            || c.downcast_ref::<UsageError>().is_some()
            || c.downcast_ref::<larder_store::Error>()
                .is_some_and(|se| se.kind() == ErrorKind::InvalidConfig)
    });
    if usage {
        exit::USAGE
    } else {
        exit::ERROR
    }
}

pub fn s3_options(a: &S3Args) -> S3Options {
    S3Options::default()
        .with_endpoint_url(a.endpoint_url.clone())
        .with_region(a.region.clone())
        .with_profile(a.profile.clone())
        .with_force_path_style(a.path_style)
        .with_connect_timeout(a.connect_timeout)
        .with_read_timeout(a.timeout)
        .with_idle_timeout(a.idle_timeout)
        .with_adaptive(!a.fixed_concurrency)
        .with_anonymous(a.no_sign_request)
        .with_request_payer(a.request_payer)
}

/// The S3 options of one side: the common ones, overridden by `--source-…`/`--target-…`.
pub(crate) fn side_options(common: &S3Args, sides: &SideArgs, source: bool) -> S3Options {
    let mut o = s3_options(common);
    let (endpoint, profile, region) = if source {
        (
            &sides.source_endpoint_url,
            &sides.source_profile,
            &sides.source_region,
        )
    } else {
        (
            &sides.target_endpoint_url,
            &sides.target_profile,
            &sides.target_region,
        )
    };
    if endpoint.is_some() {
        o.endpoint_url = endpoint.clone();
    }
    if profile.is_some() {
        o.profile = profile.clone();
    }
    if region.is_some() {
        o.region = region.clone();
    }
    if source {
        o.anonymous |= sides.source_no_sign_request;
        o.request_payer |= sides.source_request_payer;
    } else {
        o.request_payer |= sides.target_request_payer;
    }
    o
}

/// Opens a location: `s3://…` or a local path. An S3 location is checked (one HeadBucket)
/// so a missing bucket or rejected credentials fail here, with a clear message.
pub(crate) async fn open(
    location: &str,
    opts: S3Options,
    symlinks: SymlinkPolicy,
) -> anyhow::Result<Arc<dyn Store>> {
    open_detecting(location, opts, symlinks, false).await
}

/// As [`open`]; with `detect`, an S3 store also asks its server which of versions, tags and
/// conditional writes it implements (one request, see [`S3Store::detect_features`]).
async fn open_detecting(
    location: &str,
    opts: S3Options,
    symlinks: SymlinkPolicy,
    detect: bool,
) -> anyhow::Result<Arc<dyn Store>> {
    if location.starts_with("s3://") {
        let url = S3Url::parse(location)?;
        let store = S3Store::new(url, opts).await?;
        store.check().await?;
        if detect {
            store.detect_features().await?;
        }
        Ok(Arc::new(store))
    } else if let Some(path) = location.strip_prefix("cacache://") {
        let cache = larder_cache::Cache::new(path);
        Ok(Arc::new(larder_cache::store::CacheStore::new(cache)))
    } else if location.contains("://") {
        Err(
            larder_store::Error::new(ErrorKind::InvalidConfig, larder_store::Op::Open, location)
                .with_detail("neither a local path nor an s3:// URL")
                .into(),
        )
    } else {
        Ok(Arc::new(LocalStore::new(location).with_symlinks(symlinks)))
    }
}

/// Opens the source and destination of `sync` and `verify`. A local source (a directory or
/// a cache directory) must exist: listing a missing one would look like an empty source.
pub(crate) async fn open_pair(
    p: &PairArgs,
    symlinks: SymlinkPolicy,
    tune: impl Fn(S3Options, bool) -> anyhow::Result<S3Options>,
    detect: bool,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn Store>)> {
    let local = p.src.strip_prefix("cacache://").unwrap_or(&p.src);
    if !local.contains("://") && !std::path::Path::new(local).is_dir() {
        anyhow::bail!("the source `{}` is not a directory", p.src);
    }
    refuse_overlap(&p.src, &p.dst)?;
    let side = |source| tune(side_options(&p.s3, &p.sides, source), source);
    let src = open_detecting(&p.src, side(true)?, symlinks, detect)
        .await
        .with_context(|| format!("cannot open the source `{}`", p.src))?;
    let dst = open_detecting(&p.dst, side(false)?, symlinks, detect)
        .await
        .with_context(|| format!("cannot open the destination `{}`", p.dst))?;
    Ok((src, dst))
}

/// Two local locations where one is inside the other (or both are one): a sync would copy
/// the destination into itself, or delete the source. A usage error.
fn refuse_overlap(src: &str, dst: &str) -> anyhow::Result<()> {
    let local = |l: &str| -> Option<std::path::PathBuf> {
        let l = l.strip_prefix("cacache://").unwrap_or(l);
        (!l.contains("://")).then(|| resolve(std::path::Path::new(l)))
    };
    let (Some(a), Some(b)) = (local(src), local(dst)) else {
        return Ok(());
    };
    if a.starts_with(&b) || b.starts_with(&a) {
        return Err(larder_store::Error::new(
            ErrorKind::InvalidConfig,
            larder_store::Op::Open,
            format!("{src}` and `{dst}"),
        )
        .with_detail("the source and the destination overlap (one is inside the other)")
        .into());
    }
    Ok(())
}

/// An absolute path with symlinks resolved as far as the path exists (the rest appended).
fn resolve(p: &std::path::Path) -> std::path::PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// The lines of a filter file: trimmed, without blanks and `#` comments.
fn filter_lines(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the filter file `{}`", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

pub(crate) fn filters(a: &FilterArgs) -> anyhow::Result<Filters> {
    let mut include = a.include.clone();
    for f in &a.include_from {
        include.extend(filter_lines(f)?);
    }
    let mut exclude = a.exclude.clone();
    for f in &a.exclude_from {
        exclude.extend(filter_lines(f)?);
    }
    let mut f = Filters::new(&include, &exclude, &a.include_regex, &a.exclude_regex)?;
    if let Some(path) = &a.files_from {
        let keys = filter_lines(path)?
            .into_iter()
            .map(|k| k.trim_start_matches('/').to_owned())
            .collect();
        f.keys = Some(Arc::new(keys));
    }
    f.min_size = a.min_size;
    f.max_size = a.max_size;
    f.newer_than = a.newer_than;
    f.older_than = a.older_than;
    Ok(f)
}

/// Refuses `flag` (which reads object versions) on a source that is not a bucket.
pub(crate) fn versioned_source(pair: &PairArgs, flag: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        pair.src.starts_with("s3://"),
        UsageError(format!(
            "{flag} reads a versioned bucket: the source must be s3://…"
        ))
    );
    Ok(())
}

/// Opens the state file `name` in the state directory; `None`, with a warning saying what
/// that costs (`without`), when it cannot be opened: state saves requests and work, never
/// decides correctness.
fn open_state<T>(
    explicit: Option<&std::path::Path>,
    name: &str,
    open: impl FnOnce(&std::path::Path) -> Result<T, larder_index::StateError>,
    without: &str,
) -> Option<Arc<T>> {
    let d = state_dir(explicit)?;
    match open(&d.join(name)) {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            tracing::warn!("{e}; {without}");
            None
        }
    }
}

/// The journal of multipart uploads (uploads a killed run left are resumed or aborted).
pub(crate) fn uploads_journal(
    explicit: Option<&std::path::Path>,
) -> Option<Arc<dyn larder_store::journal::UploadJournal>> {
    let j = open_state(
        explicit,
        "uploads.sqlite3",
        larder_index::Uploads::open,
        "multipart uploads a killed run leaves will start over",
    )?;
    Some(j)
}

/// The record of versions a versioned sync copied.
pub(crate) fn version_map(
    explicit: Option<&std::path::Path>,
) -> Option<Arc<larder_index::VersionMap>> {
    open_state(
        explicit,
        "versions.sqlite3",
        larder_index::VersionMap::open,
        "versions copied are learnt again from the destination",
    )
}

/// The metadata cache (what each object's ETag stands for).
pub(crate) fn meta_cache(explicit: Option<&std::path::Path>) -> Option<Arc<MetaCache>> {
    open_state(
        explicit,
        "meta.sqlite3",
        MetaCache::open,
        "going on without it",
    )
}

fn state_dir(explicit: Option<&std::path::Path>) -> Option<std::path::PathBuf> {
    if let Some(d) = explicit {
        return Some(d.to_path_buf());
    }
    // Commands without a --state-dir flag (vault) still honour the variable.
    if let Some(d) = std::env::var_os("LARDER_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(std::path::PathBuf::from(d));
    }
    // $XDG_CACHE_HOME (~/.cache) on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on
    // Windows.
    dirs::cache_dir().map(|d| d.join("larder"))
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

async fn run_ls(a: LsArgs, json: bool) -> anyhow::Result<i32> {
    let store = open(&a.location, s3_options(&a.s3), SymlinkPolicy::Follow).await?;
    if a.versions {
        return run_ls_versions(&*store, &a.location, json).await;
    }
    let mut list = store.list("");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut errors = 0usize;
    while let Some(item) = list.next().await {
        match item {
            Ok(e) => {
                let mtime = e
                    .last_modified
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_default();
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"key": e.key.as_str(), "size": e.size, "last_modified": mtime, "etag": e.etag})
                    )?;
                } else {
                    writeln!(out, "{:>12}  {:20}  {}", e.size, mtime, e.key)?;
                }
            }
            Err(e) => {
                out.flush()?;
                errors += 1;
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) {
                    return Err(e).with_context(|| format!("cannot list `{}`", a.location));
                }
                eprintln!("larder: error: {e}");
            }
        }
    }
    out.flush()?;
    Ok(if errors > 0 { exit::ERROR } else { exit::OK })
}

async fn run_ls_versions(
    store: &dyn larder_store::Store,
    location: &str,
    json: bool,
) -> anyhow::Result<i32> {
    let mut list = store.list_versions("");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut errors = 0usize;
    while let Some(item) = list.next().await {
        match item {
            Ok(v) => {
                let when = v
                    .last_modified
                    .map(|t| humantime::format_rfc3339_millis(t).to_string())
                    .unwrap_or_default();
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"key": v.key.as_str(), "version_id": v.version_id,
                               "is_latest": v.is_latest, "delete_marker": v.delete_marker,
                               "size": v.size, "last_modified": when, "etag": v.etag})
                    )?;
                } else {
                    let size = if v.delete_marker {
                        "(deleted)".to_owned()
                    } else {
                        v.size.to_string()
                    };
                    let latest = if v.is_latest { "*" } else { " " };
                    writeln!(
                        out,
                        "{size:>12}  {when:24}  {latest} {:<32}  {}",
                        v.version_id, v.key
                    )?;
                }
            }
            Err(e) => {
                out.flush()?;
                errors += 1;
                if matches!(
                    e.kind(),
                    ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::Unsupported
                ) {
                    return Err(e).with_context(|| format!("cannot list versions of `{location}`"));
                }
                eprintln!("larder: error: {e}");
            }
        }
    }
    out.flush()?;
    Ok(if errors > 0 { exit::ERROR } else { exit::OK })
}

async fn run_cleanup(
    location: &str,
    older_than: Duration,
    dry_run: bool,
    s3: &S3Args,
    json: bool,
    quiet: bool,
) -> anyhow::Result<i32> {
    let url = S3Url::parse(location)?;
    let store = S3Store::new(url, s3_options(s3)).await?;
    store.check().await?;
    let cutoff = std::time::SystemTime::now() - older_than;
    let (mut aborted, mut kept, mut failed) = (0u64, 0u64, 0u64);
    for u in store.pending_uploads("").await? {
        let old = u.initiated.is_none_or(|t| t <= cutoff);
        let started = u
            .initiated
            .map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_default();
        let outcome = if !old {
            kept += 1;
            "kept (younger)"
        } else if dry_run {
            aborted += 1;
            "would abort"
        } else {
            match store.abort_upload(&u.key, &u.upload_id).await {
                Ok(()) => {
                    aborted += 1;
                    "aborted"
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("larder: error: {e}");
                    "failed"
                }
            }
        };
        if json {
            println!(
                "{}",
                json!({"schema": crate::JSON_SCHEMA, "event": "upload", "key": u.key.as_str(), "upload_id": u.upload_id,
                       "started": started, "outcome": outcome})
            );
        } else if !quiet {
            println!("{outcome:<15} {started:<20}  {}  ({})", u.key, u.upload_id);
        }
    }
    if json {
        println!(
            "{}",
            json!({"schema": crate::JSON_SCHEMA, "event": "summary", "aborted": aborted, "kept": kept, "failed": failed, "dry_run": dry_run})
        );
    } else if !quiet {
        eprintln!(
            "{} {aborted} upload(s), kept {kept} younger than {}, {failed} failed",
            if dry_run { "would abort" } else { "aborted" },
            humantime::format_duration(older_than)
        );
    }
    Ok(if failed > 0 { exit::ERROR } else { exit::OK })
}
