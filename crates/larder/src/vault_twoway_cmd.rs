//! `larder vault sync NAME` for strategy `sync` (two-way), `vault sync conflicts` and
//! `vault sync resolve`.

use std::sync::Arc;
use std::time::SystemTime;

use larder_index::{Index, Vault};
use larder_store::meter::RequestMeter;
use larder_store::Store;
use larder_sync::twoway::{vault_two_way, ConflictPolicy, Step};
use serde_json::json;

use crate::exit;

fn host() -> String {
    std::env::var("LARDER_HOST")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

fn ms(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// Runs (or, dry, plans) a two-way or cache sync and prints a line per step.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    db: &std::path::Path,
    v: Vault,
    remote: Option<Arc<dyn Store>>,
    meter: Arc<RequestMeter>,
    dry_run: bool,
    include: Option<&[String]>,
    json: bool,
    quiet: bool,
) -> anyhow::Result<i32> {
    let policy: ConflictPolicy = v
        .policy
        .on_sync_conflict
        .parse()
        .map_err(|e: String| anyhow::anyhow!("vault `{}`: {e}", v.name))?;
    let pricing = crate::vault_run_cmd::meter_for(&v).1;
    let name = v.name.clone();
    let cache = v.strategy == larder_index::Strategy::Cache;
    let o = crate::vault_run_cmd::sync_options(db, v, remote, meter, pricing, dry_run);
    let r = if cache {
        let filters = include
            .map(|i| larder_sync::Filters::new(i, &[], &[], &[]))
            .transpose()?;
        larder_sync::twoway::vault_cache_sync(o, filters.as_ref()).await?
    } else {
        vault_two_way(o, policy, &host()).await?
    };
    for (key, step) in &r.steps {
        let failed = r.failed.iter().find(|(k, _)| k == key).map(|(_, e)| e);
        let detail = match step {
            Step::KeepBoth { name, .. } => format!("the older kept as {name}"),
            Step::Conflict(kind) => kind.clone(),
            _ => String::new(),
        };
        if json {
            println!(
                "{}",
                json!({"schema": crate::JSON_SCHEMA, "event": step.to_string(), "key": key, "detail": detail,
                       "dry_run": dry_run, "error": failed})
            );
        } else if let Some(e) = failed {
            eprintln!("larder: error: {step} {key}: {e}");
        } else if !quiet {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!("  ({detail})")
            };
            println!("{:<13} {key}{detail}", step.to_string());
        }
    }
    for bad in &r.invalid {
        eprintln!("larder: error: {bad}");
    }
    let q = &r.vault.sent;
    if json {
        println!(
            "{}",
            json!({"schema": crate::JSON_SCHEMA, "event": "summary", "vault": name, "dry_run": dry_run,
                   "steps": r.steps.len(), "done": r.done, "failed": r.failed.len(),
                   "conflicts": r.conflicts, "invalid": r.invalid.len(),
                   "index": r.vault.index, "published": r.vault.published,
                   "stalled": r.vault.stalled,
                   "requests": {"list": q.list, "get": q.get, "head": q.head, "put": q.put, "delete": q.delete}})
        );
    } else if !quiet {
        eprintln!(
            "vault `{name}`: {} step(s){}, {} failed, {} conflict(s) to resolve{}{}",
            r.steps.len(),
            if dry_run { " planned" } else { "" },
            r.failed.len(),
            r.conflicts,
            // Also after a run with no step of its own: what an interrupted run recorded
            // reaches the other machines now.
            if r.vault.published {
                "; index published"
            } else {
                ""
            },
            r.vault
                .stalled
                .as_ref()
                .map(|s| format!("; stalled: {s}"))
                .unwrap_or_default()
        );
        if r.conflicts > 0 {
            eprintln!("see `larder vault sync conflicts {name}`; settle one with `larder vault sync resolve {name} KEY --keep-local|--keep-remote|--keep-both`");
        }
    }
    Ok(if r.vault.stalled.is_some() {
        exit::STALLED
    } else if !r.failed.is_empty() || !r.invalid.is_empty() {
        exit::ERROR
    } else if r.conflicts > 0 {
        exit::WARNING
    } else {
        exit::OK
    })
}

/// `vault sync conflicts NAME`.
pub fn conflicts(ix: &Index, name: &str, json: bool) -> anyhow::Result<i32> {
    let list = ix.conflicts(name)?;
    for c in &list {
        if json {
            println!(
                "{}",
                json!({"key": c.key, "kind": c.kind,
                       "local": {"size": c.local_size, "modified_ms": ms(c.local_modified)},
                       "remote": {"size": c.remote_size, "etag": c.remote_etag, "modified_ms": ms(c.remote_modified)},
                       "found_ms": ms(Some(c.found)), "resolution": c.resolution})
            );
        } else {
            let side = |size: Option<u64>, extra: String| match size {
                Some(n) => format!("{n} bytes{extra}"),
                None => "deleted".to_owned(),
            };
            println!(
                "{}  [{}]\n  local   {}\n  remote  {}{}",
                c.key,
                c.kind,
                side(c.local_size, String::new()),
                side(
                    c.remote_size,
                    c.remote_etag
                        .as_ref()
                        .map(|e| format!(", ETag {e}"))
                        .unwrap_or_default()
                ),
                c.resolution
                    .as_ref()
                    .map(|r| format!("\n  resolved: {r} (applied by the next sync)"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(exit::OK)
}

/// `vault sync resolve NAME KEY --keep-…`.
pub fn resolve(
    mut ix: Index,
    name: &str,
    key: &str,
    how: &str,
    quiet: bool,
) -> anyhow::Result<i32> {
    ix.vault(name)?;
    if !ix.resolve(name, key, how)? {
        anyhow::bail!(
            "vault `{name}` has no conflict on `{key}` (see `larder vault sync conflicts {name}`)"
        );
    }
    if !quiet {
        eprintln!("`{key}`: {how}; the next `larder vault sync {name}` applies it");
    }
    Ok(exit::OK)
}

/// `vault get NAME KEY [DEST|-]`.
pub async fn get(
    db: &std::path::Path,
    name: &str,
    key: &str,
    dest: Option<&std::path::Path>,
    s3: &crate::cli::S3Args,
    json: bool,
    quiet: bool,
) -> anyhow::Result<i32> {
    let v = Index::open(db)?.vault(name)?;
    let (meter, pricing) = crate::vault_run_cmd::meter_for(&v);
    let remote: Arc<dyn Store> =
        Arc::new(crate::vault_run_cmd::open_remote_unchecked(&v, s3, &meter).await?);
    let o = crate::vault_run_cmd::sync_options(db, v, Some(remote), meter.clone(), pricing, false);
    let path = larder_sync::twoway::vault_get(&o, key).await?;
    match dest {
        Some(d) if d == std::path::Path::new("-") => {
            let mut f = std::fs::File::open(&path)?;
            std::io::copy(&mut f, &mut std::io::stdout().lock())?;
        }
        Some(d) => {
            std::fs::copy(&path, d)
                .map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", d.display()))?;
        }
        None => {}
    }
    let q = meter.requests();
    if json {
        eprintln!(
            "{}",
            json!({"schema": crate::JSON_SCHEMA, "event": "summary", "key": key, "path": path,
                   "requests": {"list": q.list, "get": q.get, "head": q.head, "put": q.put, "delete": q.delete}})
        );
    } else if !quiet && dest.is_none_or(|d| d != std::path::Path::new("-")) {
        eprintln!("{key}: cached at {} ({} GET)", path.display(), q.get);
    }
    Ok(exit::OK)
}

/// `vault evict NAME [--older-than D] [--max-size S]`: cached files removed, least recently
/// read first; the objects stay, and the next sync does not take the removal for a deletion.
pub fn evict(
    mut ix: Index,
    name: &str,
    older_than: Option<std::time::Duration>,
    max_size: Option<u64>,
    json: bool,
    quiet: bool,
) -> anyhow::Result<i32> {
    let v = ix.vault(name)?;
    anyhow::ensure!(
        v.strategy == larder_index::Strategy::Cache,
        "vault `{name}` has strategy {}: only a cache vault evicts (elsewhere a removed file is a deletion)",
        v.strategy
    );
    // Cached files: those the base records (fetched by the cache), by last access.
    let mut cached: Vec<(String, u64, SystemTime)> = ix
        .base(name)?
        .into_keys()
        .filter_map(|k| {
            let m = std::fs::metadata(v.local_dir.join(&k)).ok()?;
            let used = m.accessed().or_else(|_| m.modified()).ok()?;
            Some((k, m.len(), used))
        })
        .collect();
    cached.sort_by_key(|(_, _, t)| *t);
    let mut total: u64 = cached.iter().map(|(_, n, _)| n).sum();
    let cutoff = older_than.and_then(|d| SystemTime::now().checked_sub(d));
    let mut evicted = Vec::new();
    let mut freed = 0;
    for (k, n, used) in cached {
        let old = cutoff.is_some_and(|c| used < c);
        let over = max_size.is_some_and(|m| total > m);
        if !(old || over) {
            continue;
        }
        let path = v.local_dir.join(&k);
        std::fs::remove_file(&path)?;
        // Directories the eviction emptied go too (never the vault's own).
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != v.local_dir) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        total -= n;
        freed += n;
        evicted.push(k);
    }
    ix.settle(name, &[], &evicted)?;
    if json {
        println!(
            "{}",
            json!({"schema": crate::JSON_SCHEMA, "event": "summary", "evicted": evicted.len(), "bytes": freed, "cached_bytes": total})
        );
    } else if !quiet {
        eprintln!(
            "vault `{name}`: evicted {} file(s), {freed} bytes; {total} bytes cached",
            evicted.len()
        );
    }
    Ok(exit::OK)
}
