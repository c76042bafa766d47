//! `larder vault …`: vaults, their policy, and their remote index (named as Vaulthalla's
//! `vh vault …`, so its users find them).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use futures::StreamExt;
use larder_index::inventory::Delivery;
use larder_index::{Index, IndexSource, Strategy, Vault};
use larder_store::{S3Store, S3Url, Store};
use serde_json::json;

use crate::cli::{parse_size, S3Args};
use crate::exit;
use crate::vault_run_cmd::{run_vault_sync, watch};

#[derive(Debug, ClapArgs)]
pub struct VaultArgs {
    /// Where vaults and their index live (default: $XDG_DATA_HOME/larder, else
    /// ~/.local/share/larder).
    #[arg(long, global = true, env = "LARDER_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(subcommand)]
    pub command: VaultCommand,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Register a vault: NAME, its local directory and s3://bucket/prefix.
    Add {
        /// The vault's name (A-Z a-z 0-9 _ . -).
        name: String,
        /// The local directory.
        local_dir: PathBuf,
        /// The remote, s3://bucket/prefix.
        remote: String,
        /// mirror (local publishes to the bucket), sync (two-way) or cache (index, fetch
        /// bodies on access).
        #[arg(long, default_value = "mirror")]
        strategy: Strategy,
    },
    /// List the vaults.
    List,
    /// Forget a vault and its index (its files and objects stay).
    Rm {
        /// The vault.
        name: String,
    },
    /// Sync the vault every interval (its policy's, or --interval) until Ctrl-C; a tick
    /// while another process syncs it is skipped.
    Watch {
        /// The vault.
        name: String,
        /// How often (overrides the policy's interval).
        #[arg(long, value_parser = humantime::parse_duration)]
        interval: Option<Duration>,
    },
    /// Print a vault's index rows (key, size, ETag, storage class, last-modified).
    Index {
        /// The vault.
        name: String,
    },
    /// Sync the vault (`vault sync NAME`; strategy mirror: the local directory is published
    /// to the bucket, planned against the index, within the budgets), or manage its policy
    /// and index (`vault sync info|set|dry-run|inventory|events|reconcile NAME`).
    #[command(args_conflicts_with_subcommands = true)]
    Sync {
        #[command(subcommand)]
        command: Option<VaultSyncCommand>,
        /// The vault to sync.
        name: Option<String>,
        /// Strategy cache: also fetch the keys matching this glob (repeat the flag); without
        /// it only what is already cached is refreshed.
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
    },
    /// Strategy cache: fetch one key on access (verified, into the vault's directory, then
    /// to DEST or `-` for standard output). One GET when the index is fresh.
    Get {
        /// The vault.
        name: String,
        /// The key.
        key: String,
        /// Where to copy it too (`-`: standard output).
        dest: Option<PathBuf>,
    },
    /// Strategy cache: remove cached files (never the objects), oldest access first.
    Evict {
        /// The vault.
        name: String,
        /// Files not read for this long.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<Duration>,
        /// Until the cached files take at most this much.
        #[arg(long, value_parser = parse_size, value_name = "SIZE")]
        max_size: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VaultSyncCommand {
    /// The vault's policy and the state of its remote index (source, time, count, fresh or
    /// stale, manifest), and its budgets.
    Info {
        /// The vault.
        name: String,
    },
    /// Change the vault's policy.
    Set(Box<SetArgs>),
    /// Plan a sync and print it with its requests per kind, bytes and price. From the local
    /// index alone by default: no request at all (refuses without a usable index).
    DryRun {
        /// The vault.
        name: String,
        /// Refresh the index first (one conditional GET of the manifest; a LIST only
        /// within the LIST budget).
        #[arg(long, visible_alias = "refresh-remote-index")]
        refresh_index: bool,
        /// Leave prices out.
        #[arg(long)]
        no_pricing: bool,
        /// Accepted for Vaulthalla users: the price table is local (no request).
        #[arg(long, hide = true)]
        refresh_pricing: bool,
    },
    /// Import an S3 Inventory delivery into the index: a manifest.json (beside its
    /// manifest.checksum and data files), or a CSV (.gz allowed) with a header or --schema.
    Inventory {
        /// The vault.
        name: String,
        /// The manifest.json or CSV file.
        #[arg(long)]
        file: PathBuf,
        /// The columns of a CSV without a header, e.g. bucket,key,size,last_modified_date,etag,storage_class.
        #[arg(long)]
        schema: Option<String>,
    },
    /// Apply S3 Event Notifications to the index: S3 messages, JSON arrays or lines, `aws sqs
    /// receive-message` output, Lambda SQS/SNS events, SNS envelopes, EventBridge events.
    Events {
        /// The vault.
        name: String,
        /// The file of events.
        #[arg(long)]
        file: PathBuf,
    },
    /// The conflicts a two-way sync left for you (strategy sync, policy ask), with both
    /// sides' size, time and ETag.
    Conflicts {
        /// The vault.
        name: String,
    },
    /// Settle one conflict; the next `vault sync` applies it.
    Resolve {
        /// The vault.
        name: String,
        /// The key in conflict.
        key: String,
        /// The local version wins (a local deletion deletes the object).
        #[arg(long, group = "resolution")]
        keep_local: bool,
        /// The remote version wins (a remote deletion deletes the file).
        #[arg(long, group = "resolution")]
        keep_remote: bool,
        /// Keep both: the older one beside the newer, on both sides.
        #[arg(long, group = "resolution")]
        keep_both: bool,
    },
    /// Rebuild the index with a ListObjectsV2 pass (one LIST per 1,000 objects). Needs
    /// --allow-list-scan or a LIST budget on the vault.
    Reconcile {
        /// The vault.
        name: String,
        /// Allow an unbudgeted scan of the whole prefix.
        #[arg(long)]
        allow_list_scan: bool,
    },
}

#[derive(Debug, ClapArgs)]
pub struct SetArgs {
    /// The vault.
    pub name: String,
    /// Strategy: mirror, sync or cache.
    #[arg(long)]
    pub strategy: Option<Strategy>,
    /// Periodic sync interval (e.g. 15m; 0 for manual only).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// An index older than this is stale (e.g. 24h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_remote_index_age: Option<Duration>,
    /// Conflict policy for two-way sync: keep_local, keep_remote, ask, overwrite, keep_both.
    #[arg(long, value_parser = ["keep_local", "keep_remote", "ask", "overwrite", "keep_both"])]
    pub on_sync_conflict: Option<String>,
    /// LIST requests per run.
    #[arg(long, value_name = "N")]
    pub s3_budget_list: Option<u64>,
    /// GET requests per run.
    #[arg(long, value_name = "N")]
    pub s3_budget_get: Option<u64>,
    /// PUT requests per run.
    #[arg(long, value_name = "N")]
    pub s3_budget_put: Option<u64>,
    /// HEAD requests per run.
    #[arg(long, value_name = "N")]
    pub s3_budget_head: Option<u64>,
    /// DELETE requests per run.
    #[arg(long, value_name = "N")]
    pub s3_budget_delete: Option<u64>,
    /// Bytes uploaded per run (e.g. 10G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub budget_upload_bytes: Option<u64>,
    /// Bytes downloaded per run.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub budget_download_bytes: Option<u64>,
    /// Estimated price per run, US dollars.
    #[arg(long, value_name = "USD")]
    pub budget_price: Option<f64>,
    /// The vault's price table, US dollars per 1,000 requests and per GB out, over the S3
    /// Standard us-east-1 defaults: e.g. `put=0.0045,list=0.0045,get=0.00036,out_gb=0.01`;
    /// `default` restores them.
    #[arg(long, value_name = "TABLE")]
    pub pricing: Option<String>,
}

fn home(explicit: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = explicit {
        return Ok(d.to_path_buf());
    }
    // $XDG_DATA_HOME (~/.local/share) on Linux, ~/Library/Application Support on macOS,
    // %APPDATA% on Windows.
    let data = dirs::data_dir().context("neither --home, LARDER_HOME nor a home directory")?;
    Ok(data.join("larder"))
}

fn fmt_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub async fn run(a: VaultArgs, json: bool, quiet: bool) -> anyhow::Result<i32> {
    let home = home(a.home.as_deref())?;
    let db = home.join("index.sqlite3");
    let mut ix = Index::open(&db)?;
    match a.command {
        VaultCommand::Add {
            name,
            local_dir,
            remote,
            strategy,
        } => {
            let url = S3Url::parse(&remote)?;
            let local_dir = std::path::absolute(&local_dir)
                .with_context(|| format!("the local directory `{}`", local_dir.display()))?;
            ix.add_vault(&Vault {
                name: name.clone(),
                local_dir,
                remote: url.to_string(),
                strategy,
                policy: Default::default(),
            })?;
            if !quiet {
                eprintln!("vault `{name}` added ({strategy}, {url})");
            }
            Ok(exit::OK)
        }
        VaultCommand::List => {
            let mut out = std::io::stdout().lock();
            for v in ix.vaults()? {
                let state = ix.state(&v.name)?;
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"name": v.name, "local_dir": v.local_dir, "remote": v.remote,
                               "strategy": v.strategy.to_string(),
                               "objects": state.as_ref().map(|s| s.objects)})
                    )?;
                } else {
                    writeln!(
                        out,
                        "{:<20} {:<7} {}  ⇄  {}",
                        v.name,
                        v.strategy.to_string(),
                        v.local_dir.display(),
                        v.remote
                    )?;
                }
            }
            Ok(exit::OK)
        }
        VaultCommand::Rm { name } => {
            ix.remove_vault(&name)?;
            if !quiet {
                eprintln!("vault `{name}` removed (its files and objects are untouched)");
            }
            Ok(exit::OK)
        }
        VaultCommand::Index { name } => {
            ix.vault(&name)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for r in ix.objects(&name) {
                let r = r?;
                let lm = r.last_modified.map(fmt_time);
                if json {
                    writeln!(
                        out,
                        "{}",
                        json!({"key": r.key, "size": r.size, "etag": r.etag,
                               "storage_class": r.storage_class, "last_modified": lm,
                               "archived": r.is_archived()})
                    )?;
                } else {
                    writeln!(
                        out,
                        "{:>12}  {:<20}  {:<12}  {:<36}  {}",
                        r.size,
                        lm.unwrap_or_default(),
                        r.storage_class.as_deref().unwrap_or("-"),
                        r.etag.as_deref().unwrap_or("-"),
                        r.key
                    )?;
                }
            }
            out.flush()?;
            Ok(exit::OK)
        }
        VaultCommand::Watch { name, interval } => {
            drop(ix);
            watch(&db, &name, interval, &a.s3, json, quiet).await
        }
        VaultCommand::Sync {
            command: None,
            name: Some(name),
            include,
        } => {
            drop(ix);
            let run = crate::vault_run_cmd::RunArgs {
                dry_run: false,
                refresh: true,
                pricing: true,
                include: &include,
            };
            run_vault_sync(&db, &name, &run, &a.s3, json, quiet).await
        }
        VaultCommand::Get { name, key, dest } => {
            drop(ix);
            crate::vault_twoway_cmd::get(&db, &name, &key, dest.as_deref(), &a.s3, json, quiet)
                .await
        }
        VaultCommand::Evict {
            name,
            older_than,
            max_size,
        } => crate::vault_twoway_cmd::evict(ix, &name, older_than, max_size, json, quiet),
        VaultCommand::Sync {
            command: None,
            name: None,
            ..
        } => anyhow::bail!("`larder vault sync` needs a vault name or a subcommand (see --help)"),
        VaultCommand::Sync {
            command: Some(command),
            ..
        } => match command {
            VaultSyncCommand::Info { name } => info(&ix, &name, json),
            VaultSyncCommand::DryRun {
                name,
                refresh_index,
                no_pricing,
                refresh_pricing: _,
            } => {
                drop(ix);
                let run = crate::vault_run_cmd::RunArgs {
                    dry_run: true,
                    refresh: refresh_index,
                    pricing: !no_pricing,
                    include: &[],
                };
                run_vault_sync(&db, &name, &run, &a.s3, json, quiet).await
            }
            VaultSyncCommand::Set(s) => set(&ix, *s, quiet),
            VaultSyncCommand::Conflicts { name } => {
                crate::vault_twoway_cmd::conflicts(&ix, &name, json)
            }
            VaultSyncCommand::Resolve {
                name,
                key,
                keep_local,
                keep_remote,
                keep_both,
            } => {
                let how = match (keep_local, keep_remote, keep_both) {
                    (true, _, _) => "keep_local",
                    (_, true, _) => "keep_remote",
                    (_, _, true) => "keep_both",
                    _ => {
                        return Err(crate::commands::UsageError(
                            "say how: --keep-local, --keep-remote or --keep-both".into(),
                        )
                        .into())
                    }
                };
                crate::vault_twoway_cmd::resolve(ix, &name, &key, how, quiet)
            }
            VaultSyncCommand::Inventory { name, file, schema } => {
                let v = ix.vault(&name)?;
                let url = S3Url::parse(&v.remote)?;
                // A delivery in a bucket is fetched first (manifest, checksum, data files),
                // then checked exactly as a local one.
                let fetched = tempfile::tempdir()?;
                let file = match file.to_str().filter(|f| f.starts_with("s3://")) {
                    Some(u) => fetch_delivery(u, fetched.path(), &a.s3).await?,
                    None => file,
                };
                let d = Delivery::open(&file, schema.as_deref())?;
                d.verify()?;
                let manifest = d.manifest.clone();
                let n = ix.replace_objects(
                    &name,
                    IndexSource::Inventory,
                    d.rows(&url.bucket, &url.prefix),
                    manifest,
                )?;
                if !quiet {
                    eprintln!("vault `{name}`: {n} objects indexed from the inventory");
                }
                Ok(exit::OK)
            }
            VaultSyncCommand::Events { name, file } => {
                ix.vault(&name)?;
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read `{}`", file.display()))?;
                let events = larder_index::events::parse(&file.display().to_string(), &text)?;
                let st = ix.apply_events(&name, &events)?;
                if json {
                    println!(
                        "{}",
                        json!({"created": st.created, "removed": st.removed,
                               "stale": st.stale, "ignored": st.ignored})
                    );
                } else if !quiet {
                    eprintln!(
                        "vault `{name}`: {} events: {} created, {} removed, {} stale (an older sequencer), {} ignored",
                        events.len(),
                        st.created,
                        st.removed,
                        st.stale,
                        st.ignored
                    );
                }
                Ok(exit::OK)
            }
            VaultSyncCommand::Reconcile {
                name,
                allow_list_scan,
            } => reconcile(ix, &db, &name, allow_list_scan, &a.s3, quiet).await,
        },
    }
}

fn info(ix: &Index, name: &str, json: bool) -> anyhow::Result<i32> {
    let v = ix.vault(name)?;
    let st = ix.state(name)?;
    let max_age = Duration::from_secs(v.policy.max_remote_index_age_secs);
    let fresh = st.as_ref().map(|s| s.is_fresh(max_age, SystemTime::now()));
    let b = &v.policy.budgets;
    let runs = ix.runs(name, 5)?;
    let run_json = |r: &larder_index::Run| {
        json!({
            "started": fmt_time(r.started), "ended": fmt_time(r.ended),
            "outcome": r.outcome, "reason": r.reason, "uploaded": r.uploaded,
            "deleted": r.deleted, "failed": r.failed, "requests": r.requests,
            "upload_bytes": r.upload_bytes, "download_bytes": r.download_bytes,
            "price_usd": r.price_usd,
        })
    };
    if json {
        println!(
            "{}",
            json!({
                "last_runs": runs.iter().map(run_json).collect::<Vec<_>>(),
                "name": v.name, "local_dir": v.local_dir, "remote": v.remote,
                "strategy": v.strategy.to_string(),
                "interval_seconds": v.policy.interval_secs,
                "max_remote_index_age_seconds": v.policy.max_remote_index_age_secs,
                "on_sync_conflict": v.policy.on_sync_conflict,
                "index": st.as_ref().map(|s| json!({
                    "source": s.source.as_str(), "indexed_at": fmt_time(s.indexed_at),
                    "objects": s.objects, "manifest_etag": s.manifest_etag,
                    "manifest_generated_at": s.manifest_generated_at.map(fmt_time),
                    "fresh": fresh,
                })),
                "budgets": serde_json::to_value(b).expect("budgets serialise"),
                "pricing": serde_json::to_value(
                    v.policy.pricing.unwrap_or(larder_index::PriceTable::S3_STANDARD_US_EAST_1)
                ).expect("prices serialise"),
            })
        );
        return Ok(exit::OK);
    }
    println!("vault            {}", v.name);
    println!("local            {}", v.local_dir.display());
    println!("remote           {}", v.remote);
    println!("strategy         {}", v.strategy);
    println!(
        "interval         {}",
        v.policy
            .interval_secs
            .map_or("manual".to_owned(), |s| humantime::format_duration(
                Duration::from_secs(s)
            )
            .to_string())
    );
    println!("conflicts        {}", v.policy.on_sync_conflict);
    match &st {
        None => println!("remote index     none yet (import an inventory or reconcile)"),
        Some(s) => {
            println!(
                "remote index     {} objects from {}, indexed {} ({}, max age {})",
                s.objects,
                s.source.as_str(),
                fmt_time(s.indexed_at),
                if fresh == Some(true) {
                    "fresh"
                } else {
                    "stale"
                },
                humantime::format_duration(max_age)
            );
            if let Some(e) = &s.manifest_etag {
                println!(
                    "manifest         {e}, generated {}",
                    s.manifest_generated_at.map(fmt_time).unwrap_or_default()
                );
            }
        }
    }
    let show = |n: Option<u64>| n.map_or("unlimited".to_owned(), |n| n.to_string());
    println!(
        "budgets          LIST {} GET {} PUT {} HEAD {} DELETE {} | up {} down {} | price {}",
        show(b.list),
        show(b.get),
        show(b.put),
        show(b.head),
        show(b.delete),
        show(b.upload_bytes),
        show(b.download_bytes),
        b.price_usd
            .map_or("unlimited".to_owned(), |p| format!("${p:.4}"))
    );
    for (i, r) in runs.iter().enumerate() {
        let q = &r.requests;
        println!(
            "{}{} {:<8} {} up, {} deleted, {} failed | LIST {} GET {} HEAD {} PUT {} DELETE {} | {} bytes up | ${:.6}{}",
            if i == 0 { "last runs        " } else { "                 " },
            fmt_time(r.started),
            r.outcome,
            r.uploaded,
            r.deleted,
            r.failed,
            q["list"],
            q["get"],
            q["head"],
            q["put"],
            q["delete"],
            r.upload_bytes,
            r.price_usd,
            r.reason.as_deref().map_or(String::new(), |w| format!(" | {w}"))
        );
    }
    Ok(exit::OK)
}

fn set(ix: &Index, s: SetArgs, quiet: bool) -> anyhow::Result<i32> {
    let v = ix.vault(&s.name)?;
    let mut p = v.policy.clone();
    if let Some(i) = s.interval {
        p.interval_secs = (!i.is_zero()).then_some(i.as_secs().max(1));
    }
    if let Some(a) = s.max_remote_index_age {
        p.max_remote_index_age_secs = a.as_secs();
    }
    if let Some(c) = s.on_sync_conflict {
        c.parse::<larder_sync::twoway::ConflictPolicy>()
            .map_err(|e| crate::commands::UsageError(format!("--on-sync-conflict: {e}")))?;
        p.on_sync_conflict = c;
    }
    let b = &mut p.budgets;
    for (field, value) in [
        (&mut b.list, s.s3_budget_list),
        (&mut b.get, s.s3_budget_get),
        (&mut b.put, s.s3_budget_put),
        (&mut b.head, s.s3_budget_head),
        (&mut b.delete, s.s3_budget_delete),
        (&mut b.upload_bytes, s.budget_upload_bytes),
        (&mut b.download_bytes, s.budget_download_bytes),
    ] {
        if value.is_some() {
            *field = value;
        }
    }
    if let Some(price) = s.budget_price {
        anyhow::ensure!(
            price.is_finite() && price >= 0.0,
            "--budget-price {price}: a price is a number of dollars, 0 or more"
        );
        b.price_usd = Some(price);
    }
    if let Some(t) = &s.pricing {
        p.pricing = match t.as_str() {
            "default" => None,
            t => Some(
                larder_index::PriceTable::parse(t)
                    .map_err(|e| anyhow::anyhow!("--pricing: {e}"))?,
            ),
        };
    }
    ix.set_policy(&s.name, s.strategy.unwrap_or(v.strategy), &p)?;
    if !quiet {
        eprintln!("vault `{}` updated", s.name);
    }
    Ok(exit::OK)
}

/// A LIST pass that rebuilds the index. Streams: rows go to the index as pages arrive, all
/// in one transaction that only commits when the listing completed.
async fn reconcile(
    ix: Index,
    db: &std::path::Path,
    name: &str,
    allow: bool,
    s3: &S3Args,
    quiet: bool,
) -> anyhow::Result<i32> {
    let v = ix.vault(name)?;
    let known = ix.state(name)?.map_or(0, |s| s.objects);
    let estimate = known.div_ceil(1000).max(1);
    let budget = v.policy.budgets.list;
    if !allow && budget.is_none() {
        anyhow::bail!(
            "reconcile of vault `{name}` lists the whole prefix (about {estimate} LIST requests \
             for {known} indexed objects): pass --allow-list-scan, or set a LIST budget with \
             `larder vault sync set {name} --s3-budget-list N`"
        );
    }
    if !quiet {
        eprintln!(
            "reconcile of vault `{name}`: about {estimate} LIST request(s) (one per 1,000 objects; {known} indexed){}",
            budget.map_or(String::new(), |b| format!(", LIST budget {b}"))
        );
    }
    let url = S3Url::parse(&v.remote)?;
    let store = S3Store::new(url, crate::commands::s3_options(s3)).await?;
    store.check().await?;
    let limit = if allow { None } else { budget };
    drop(ix);
    let n = match larder_sync::vault::reconcile(db, name, &store, limit).await? {
        Ok(n) => n,
        Err(why) => {
            eprintln!("larder: stalled: {why}; the index is unchanged");
            return Ok(exit::STALLED);
        }
    };
    if !quiet {
        eprintln!("vault `{name}`: {n} objects indexed by reconcile");
    }
    Ok(exit::OK)
}

/// Downloads an S3 Inventory delivery (`s3://bucket/…/manifest.json`, its
/// `manifest.checksum`, and every data file it names, which are keys of the same bucket)
/// under `dir`, keeping their keys as paths; returns the local manifest's path.
async fn fetch_delivery(url: &str, dir: &std::path::Path, s3: &S3Args) -> anyhow::Result<PathBuf> {
    let rest = url.strip_prefix("s3://").expect("an s3:// URL");
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(_, k)| k.ends_with(".json"))
        .with_context(|| format!("`{url}` is not s3://bucket/…/manifest.json"))?;
    let store = S3Store::new(
        S3Url::parse(&format!("s3://{bucket}"))?,
        crate::commands::s3_options(s3),
    )
    .await?;
    store.check().await?;
    let fetch = |key: String| {
        let store = store.clone();
        async move {
            let k = larder_store::Key::new(key.clone())?;
            let path = larder_store::key::key_to_relative_path(&key)
                .map(|rel| dir.join(rel))
                .with_context(|| format!("inventory key `{key}`"))?;
            let got = store
                .get(&k, Default::default())
                .await
                .with_context(|| format!("cannot read the inventory file `s3://{bucket}/{key}`"))?;
            std::fs::create_dir_all(path.parent().expect("a file path"))?;
            let mut f = std::fs::File::create(&path)?;
            let mut body = got.body;
            while let Some(chunk) = body.next().await {
                f.write_all(&chunk?)?;
            }
            anyhow::Ok(path)
        }
    };
    let manifest = fetch(key.to_owned()).await?;
    let checksum = key
        .rsplit_once('/')
        .map_or("manifest.checksum".to_owned(), |(d, _)| {
            format!("{d}/manifest.checksum")
        });
    if let Err(e) = fetch(checksum).await {
        tracing::warn!("no manifest.checksum beside `{url}`: {e:#}");
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest)?)
        .with_context(|| format!("`{url}` is not an S3 Inventory manifest"))?;
    let keys: Vec<String> = doc["files"]
        .as_array()
        .with_context(|| format!("`{url}` is not an S3 Inventory manifest: no `files`"))?
        .iter()
        .filter_map(|f| f["key"].as_str().map(str::to_owned))
        .collect();
    for k in keys {
        fetch(k).await?;
    }
    Ok(manifest)
}
