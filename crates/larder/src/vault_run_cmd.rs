//! Running a vault: `vault sync NAME` (and its dry run), `vault watch NAME`, the meter that
//! holds the budgets, and the one-run-per-vault lock.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use larder_index::{Index, Strategy};
use larder_store::{S3Store, S3Url, Store};
use serde_json::json;

use crate::cli::S3Args;
use crate::exit;

/// Another process is syncing the vault.
#[derive(Debug)]
pub(crate) struct VaultBusy(pub String);

impl std::fmt::Display for VaultBusy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VaultBusy {}

/// `vault watch NAME`: a sync every `interval` until Ctrl-C or SIGTERM; a tick while another
/// process syncs the vault is skipped.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn watch(
    db: &std::path::Path,
    name: &str,
    interval: Option<Duration>,
    s3: &S3Args,
    json: bool,
    quiet: bool,
) -> anyhow::Result<i32> {
    let v = Index::open(db)?.vault(name)?;
    let every = interval
        .or(v.policy.interval_secs.map(Duration::from_secs))
        .ok_or_else(|| {
            crate::commands::UsageError(format!(
                "vault `{name}` has no interval: give --interval or `larder vault sync set {name} --interval 15m`"
            ))
        })?;
    let stop = crate::signals::Stop::listen();
    loop {
        let started = std::time::Instant::now();
        let run = RunArgs {
            dry_run: false,
            refresh: true,
            pricing: true,
            include: &[],
        };
        match run_vault_sync(db, name, &run, s3, json, quiet).await {
            Ok(code) if !quiet && !json => {
                eprintln!(
                    "vault `{name}`: run ended (exit {code}); next in {}",
                    humantime::format_duration(every)
                );
            }
            Ok(_) => {}
            Err(e) if e.downcast_ref::<VaultBusy>().is_some() => {
                if !quiet {
                    eprintln!("vault `{name}`: tick skipped: {e}");
                }
            }
            // A failed run (the network, say) does not end the watch.
            Err(e) => eprintln!(
                "larder: error: vault `{name}`: {}",
                crate::redact::redact(&format!("{e:#}"))
            ),
        }
        let wait = every.saturating_sub(started.elapsed());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.token.cancelled() => return Ok(stop.exit_code()),
        }
    }
}

/// The request meter of a vault run: its budgets and price table.
pub(crate) fn meter_for(
    v: &larder_index::Vault,
) -> (
    Arc<larder_store::meter::RequestMeter>,
    larder_store::meter::Pricing,
) {
    use larder_store::meter::{Limits, RequestKind, RequestMeter};
    let b = &v.policy.budgets;
    let t = v
        .policy
        .pricing
        .unwrap_or(larder_index::PriceTable::S3_STANDARD_US_EAST_1);
    let limits = Limits {
        upload_bytes: b.upload_bytes,
        download_bytes: b.download_bytes,
        price_usd: b.price_usd,
        pricing: larder_store::meter::Pricing {
            list_per_1000: t.list,
            get_per_1000: t.get,
            head_per_1000: t.head,
            put_per_1000: t.put,
            delete_per_1000: t.delete,
            out_per_gb: t.out_gb,
        },
        ..Limits::default()
    }
    .with(RequestKind::List, b.list)
    .with(RequestKind::Get, b.get)
    .with(RequestKind::Head, b.head)
    .with(RequestKind::Put, b.put)
    .with(RequestKind::Delete, b.delete);
    let pricing = limits.pricing;
    (Arc::new(RequestMeter::new(limits)), pricing)
}

/// The vault's remote, every request through `meter`; checked (one HeadBucket).
pub(crate) async fn open_remote(
    v: &larder_index::Vault,
    s3: &S3Args,
    meter: &Arc<larder_store::meter::RequestMeter>,
) -> anyhow::Result<Arc<dyn Store>> {
    let store = open_remote_unchecked(v, s3, meter).await?;
    store.check().await?;
    Ok(Arc::new(store))
}

/// [`open_remote`] without the HeadBucket: for `vault get`, whose one GET says as much.
pub(crate) async fn open_remote_unchecked(
    v: &larder_index::Vault,
    s3: &S3Args,
    meter: &Arc<larder_store::meter::RequestMeter>,
) -> anyhow::Result<S3Store> {
    let mut o = crate::commands::s3_options(s3);
    o.meter = Some(meter.clone());
    Ok(S3Store::new(S3Url::parse(&v.remote)?, o).await?)
}

/// The options of a vault run (8 MiB parts; no metadata cache, no event handler).
pub(crate) fn sync_options(
    db: &std::path::Path,
    v: larder_index::Vault,
    remote: Option<Arc<dyn Store>>,
    meter: Arc<larder_store::meter::RequestMeter>,
    pricing: larder_store::meter::Pricing,
    dry_run: bool,
) -> larder_sync::vault::VaultSyncOptions {
    larder_sync::vault::VaultSyncOptions::new(db, v, remote)
        .with_meter(meter)
        .with_dry_run(dry_run)
        .with_pricing(pricing)
}

/// How to run `vault sync NAME`.
#[derive(Debug)]
pub(crate) struct RunArgs<'a> {
    /// Plan only.
    pub dry_run: bool,
    /// Refresh the index (a real run always does).
    pub refresh: bool,
    /// Show prices.
    pub pricing: bool,
    /// Strategy cache: keys to fetch.
    pub include: &'a [String],
}

/// `vault sync NAME` and `vault sync dry-run NAME`.
pub(crate) async fn run_vault_sync(
    db: &std::path::Path,
    name: &str,
    run: &RunArgs<'_>,
    s3: &S3Args,
    json: bool,
    quiet: bool,
) -> anyhow::Result<i32> {
    use larder_sync::vault::vault_sync;
    let (dry_run, refresh, pricing) = (run.dry_run, run.refresh, run.pricing);
    let v = Index::open(db)?.vault(name)?;
    // One run of a vault at a time (a dry run writes nothing and needs no lock).
    let _lock = if dry_run {
        None
    } else {
        let dir = db.parent().unwrap_or(std::path::Path::new("."));
        match larder_index::lock::lock(dir, name)? {
            larder_index::lock::Locked::Held(l) => Some(l),
            larder_index::lock::Locked::Busy(pid) => {
                return Err(VaultBusy(format!(
                    "vault `{name}` is being synced by another larder{}; not starting a second run",
                    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                ))
                .into())
            }
        }
    };
    let (meter, pricing_table) = meter_for(&v);
    let remote = if refresh {
        Some(open_remote(&v, s3, &meter).await?)
    } else {
        None
    };
    if v.strategy != Strategy::Mirror {
        let include = (!run.include.is_empty()).then_some(run.include);
        return crate::vault_twoway_cmd::run(db, v, remote, meter, dry_run, include, json, quiet)
            .await;
    }
    let cache = crate::commands::meta_cache(None);
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let o2 = out.clone();
    let on_event: larder_sync::EventHandler = Arc::new(move |e: &larder_sync::Event| {
        let mut out = o2.lock().expect("stdout lock");
        match e {
            larder_sync::Event::Done {
                action,
                key,
                size,
                reason,
                ..
            } => {
                if *action == larder_sync::Action::Skip
                    && !matches!(
                        reason,
                        larder_sync::Reason::Adopted(_) | larder_sync::Reason::Archived(_)
                    )
                {
                    return;
                }
                if json {
                    let _ = writeln!(out, "{}", crate::json_line(e));
                } else if !quiet {
                    let _ = writeln!(
                        out,
                        "{:<8} {size:>12}  {key}  ({reason})",
                        action.to_string()
                    );
                }
            }
            larder_sync::Event::Failed { error, .. } => {
                if json {
                    let _ = writeln!(out, "{}", crate::json_line(e));
                } else {
                    eprintln!("larder: error: {error}");
                }
            }
            _ => {}
        }
    });
    let r = vault_sync(
        sync_options(db, v, remote, meter, pricing_table, dry_run)
            .with_cache(cache)
            .with_on_event(Some(on_event)),
    )
    .await?;
    let p = &r.plan;
    let price = |usd: f64| {
        if pricing {
            format!("${usd:.6}")
        } else {
            "-".to_owned()
        }
    };
    let failed = r.sync.as_ref().map_or(0, |s| s.errors.len());
    if json {
        let req = |q: &larder_store::meter::Requests| json!({"list": q.list, "get": q.get, "head": q.head, "put": q.put, "delete": q.delete});
        println!(
            "{}",
            json!({
                "schema": crate::JSON_SCHEMA,
                "event": "summary", "vault": name, "dry_run": dry_run, "index": r.index,
                "plan": {"uploads": p.uploads, "upload_bytes": p.upload_bytes, "deletes": p.deletes,
                         "unchanged": p.unchanged, "requests": req(&p.requests),
                         "price_usd": pricing.then_some(p.price_usd)},
                "sent": req(&r.sent), "spent_usd": pricing.then_some(r.spent_usd),
                "transferred": r.sync.as_ref().map(|s| s.transferred),
                "deleted": r.sync.as_ref().map(|s| s.deleted),
                "errors": failed, "stalled": r.stalled, "published_manifest": r.published,
            })
        );
    } else if !quiet {
        let q = &p.requests;
        eprintln!(
            "plan: {} upload(s) ({} bytes), {} delete(s), {} unchanged | requests LIST {} GET {} HEAD {} PUT {} DELETE {} | {} | index: {}",
            p.uploads, p.upload_bytes, p.deletes, p.unchanged, q.list, q.get, q.head, q.put, q.delete,
            price(p.price_usd), r.index
        );
        if !dry_run {
            let s = &r.sent;
            eprintln!(
                "sent: LIST {} GET {} HEAD {} PUT {} DELETE {} | {}{}",
                s.list,
                s.get,
                s.head,
                s.put,
                s.delete,
                price(r.spent_usd),
                if r.published {
                    " | manifest published"
                } else {
                    ""
                }
            );
        }
    }
    if let Some(why) = &r.stalled {
        eprintln!("larder: stalled: {why}");
        return Ok(exit::STALLED);
    }
    Ok(if failed > 0 { exit::ERROR } else { exit::OK })
}
