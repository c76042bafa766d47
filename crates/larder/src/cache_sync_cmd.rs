//! `larder cache sync`: resolve the arguments, plan, print or execute, report.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use larder_cache::Cache;
use larder_cache_sync::{layout, Direction, Options, Plan, Report};
use larder_store::meter::{Limits, RequestMeter};
use larder_store::{S3Url, SymlinkPolicy};
use serde_json::json;

use crate::cli::CacheSyncArgs;
use crate::commands::UsageError;
use crate::exit;

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn options(a: &CacheSyncArgs, url: &S3Url) -> anyhow::Result<Options> {
    if let Some(ns) = &a.namespace {
        if !layout::is_valid_namespace(ns) {
            return Err(UsageError(format!(
                "--namespace `{ns}`: a namespace is 1 to 128 of [A-Za-z0-9_.-], without `..`"
            ))
            .into());
        }
    }
    let direction = match (a.pull, a.push) {
        (true, false) => Direction::Pull,
        (false, true) => Direction::Push,
        _ => Direction::Both,
    };
    Ok(Options::default()
        .with_direction(direction)
        .with_all(a.all)
        .with_project_dir(std::env::current_dir().context("cannot read the current directory")?)
        .with_manifest_path(a.manifest_path.clone())
        .with_prefix(a.prefix.clone())
        .with_location_prefix(url.prefix.trim_end_matches('/').to_owned())
        .with_namespace(a.namespace.clone())
        .with_concurrency(a.concurrency as usize)
        .with_level(a.compression_level)
        .with_limits(larder_cache_sync::pack::Limits {
            max_unpacked: a.max_unpacked_size,
            ..Default::default()
        }))
}

fn plan_json(plan: &Plan) -> serde_json::Value {
    json!({
        "schema": crate::JSON_SCHEMA,
        "event": "plan",
        "pull": plan.pull.iter().map(|p| json!({"namespace": p.namespace, "cache_key": p.cache_key})).collect::<Vec<_>>(),
        "push": plan.push.iter().map(|p| json!({"namespace": p.namespace, "cache_key": p.cache_key})).collect::<Vec<_>>(),
        "listed_prefixes": plan.listed_prefixes,
        "without_namespace": plan.without_namespace,
        "notes": plan.notes,
    })
}

fn report_json(r: &Report, notes: &[String], meter: &RequestMeter) -> serde_json::Value {
    let q = meter.requests();
    json!({
        "schema": crate::JSON_SCHEMA,
        "event": "summary",
        "pulled": r.pulled,
        "pushed": r.pushed,
        "already_present": r.already_present,
        "vanished": r.vanished,
        "failed": r.failures.len(),
        "misses": r.failures.iter().filter(|f| f.is_miss()).count(),
        "bytes_down": r.bytes_down,
        "bytes_up": r.bytes_up,
        "notes": notes,
        "requests": {"list": q.list, "get": q.get, "head": q.head, "put": q.put, "delete": q.delete},
        "failures": r.failures.iter().map(|f| json!({
            "direction": if f.direction == Direction::Pull { "pull" } else { "push" },
            "namespace": f.namespace,
            "cache_key": f.cache_key,
            "miss": f.is_miss(),
            "error": error_line(&f.error),
        })).collect::<Vec<_>>(),
    })
}

/// An error and its causes on one line.
fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

pub async fn run(
    cache: Option<PathBuf>,
    a: CacheSyncArgs,
    json: bool,
    quiet: bool,
) -> anyhow::Result<i32> {
    let dir = crate::cache_cmd::cache_dir(cache)?;
    if !a.remote.starts_with("s3://") {
        return Err(UsageError(format!(
            "`{}`: cache sync needs an s3://bucket[/prefix] location",
            a.remote
        ))
        .into());
    }
    let url = S3Url::parse(&a.remote)?;
    let opts = options(&a, &url)?;
    let meter = Arc::new(RequestMeter::new(Limits::default()));
    let mut s3 = crate::commands::s3_options(&a.s3);
    s3.meter = Some(meter.clone());
    let store = crate::commands::open(&a.remote, s3, SymlinkPolicy::default())
        .await
        .with_context(|| format!("cannot open `{}`", a.remote))?;
    let cache = Cache::new(&dir);
    let plan = larder_cache_sync::plan(&store, &cache, &opts).await?;
    if !quiet && !json {
        if plan.without_namespace > 0 && opts.direction != Direction::Pull {
            eprintln!(
                "push: {} cache entr{} without a namespace (not npm's, no `namespace` metadata) not pushed; --namespace NS names them",
                plan.without_namespace,
                if plan.without_namespace == 1 { "y" } else { "ies" }
            );
        }
        for n in &plan.notes {
            eprintln!("{n}");
        }
    }
    if a.dry_run {
        if json {
            println!("{}", plan_json(&plan));
        } else {
            print!("{}", plan.render());
        }
        return Ok(exit::OK);
    }
    if !quiet && !json {
        print!(
            "{}",
            plan.render()
                .lines()
                .next()
                .map(|l| format!("{l}\n"))
                .unwrap_or_default()
        );
    }
    let report = larder_cache_sync::execute(&store, &cache, &plan, &opts).await;
    for f in &report.failures {
        let dir = if f.direction == Direction::Pull {
            "pull"
        } else {
            "push"
        };
        let what = if f.is_miss() { "miss" } else { "error" };
        eprintln!(
            "{what}: {dir} {}... ({}): {}",
            &f.cache_key[..16],
            f.namespace,
            error_line(&f.error)
        );
    }
    if json {
        println!("{}", report_json(&report, &plan.notes, &meter));
    } else if !quiet {
        println!(
            "pulled {} artifact{} ({:.2} MiB), pushed {} artifact{} ({:.2} MiB); {} already present, {} vanished, {} failed",
            report.pulled,
            plural(report.pulled),
            crate::commands::mib(report.bytes_down),
            report.pushed,
            plural(report.pushed),
            crate::commands::mib(report.bytes_up),
            report.already_present,
            report.vanished,
            report.failures.len()
        );
    }
    if !report.failures.is_empty() && !a.allow_partial {
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}
