//! `larder sync`: the arguments resolved into stores and a library sync, its events and
//! progress shown, its report summarised and mapped to an exit code.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::HumanBytes;
use larder_store::{LocalStore, S3Options, S3Store, S3Url, Store, SymlinkPolicy};
use larder_sync::{Action, Event, Reason, ServerSideCopy, SyncOptions, SyncReport};
use serde_json::json;

use crate::cli::SyncArgs;
use crate::commands::{
    filters, meta_cache, open_pair, side_options, uploads_journal, version_map, versioned_source,
    UsageError,
};
use crate::exit;
use crate::lua_args::Callbacks;
use crate::progress::Progress;

/// How much a run prints.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
}

/// The stores of a run and what it keeps of them for the summary.
struct Opened {
    src: Arc<dyn Store>,
    dst: Arc<dyn Store>,
    /// A local destination, whose stale temp files the walk removes (counted).
    local_dst: Option<Arc<LocalStore>>,
    throttle: Arc<larder_store::throttle::Throttle>,
    journal: Option<Arc<dyn larder_store::journal::UploadJournal>>,
}

pub async fn run_sync(mut a: SyncArgs, out: Output) -> anyhow::Result<i32> {
    if let Some(p) = &a.dest_prefix {
        a.pair.dst = with_dest_prefix(&a.pair.dst, p)?;
    }
    check_versions(&a)?;
    let callbacks = a.lua.load()?;
    let opened = open_stores(&a, &callbacks).await?;
    let progress = Progress::start(
        a.progress.mode(out.json, out.quiet),
        out.json,
        "objects",
        true,
    );
    let stop = crate::signals::Stop::listen();
    let opts = sync_options(&a, &callbacks, out, &progress, &stop)?;
    let (src, dst) = (opened.src.clone(), opened.dst.clone());
    let report = if a.enable_versioning {
        let versions = (!a.no_cache)
            .then(|| version_map(a.state_dir.as_deref()))
            .flatten();
        let opts = opts.with_versions(versions);
        larder_sync::versioning::sync_versions(src, dst, opts).await?
    } else {
        larder_sync::sync(src, dst, opts).await?
    };
    progress.finish();
    // Uploads killed runs left under the destination, which this run did not resume.
    let mut orphans_aborted = 0;
    if opened.journal.is_some() && !report.cancelled {
        let s3 = side_options(&a.pair.s3, &a.pair.sides, false);
        let o = tuned(&a, &opened.throttle, &opened.journal, s3);
        if let Ok(s) = S3Store::new(S3Url::parse(&a.pair.dst)?, o).await {
            orphans_aborted = s.abort_orphans().await;
        }
    }
    print_summary(&report, &opened, orphans_aborted, out);
    Ok(if report.cancelled {
        stop.exit_code()
    } else if report.errors.len() > report.verify_failures() {
        exit::ERROR
    } else if report.verify_failures() > 0
        || report.delete_refused.is_some()
        || report.precondition_skipped > 0
    {
        exit::WARNING
    } else {
        exit::OK
    })
}

/// `--enable-versioning` and `--point-in-time` read a versioned bucket.
fn check_versions(a: &SyncArgs) -> anyhow::Result<()> {
    if a.enable_versioning {
        versioned_source(&a.pair, "--enable-versioning")?;
        anyhow::ensure!(
            a.pair.dst.starts_with("s3://"),
            UsageError("--enable-versioning writes versions: the destination must be s3://… (a versioned bucket)".into())
        );
    }
    if a.point_in_time.is_some() {
        versioned_source(&a.pair, "--point-in-time")?;
    }
    Ok(())
}

/// The S3 options every store of the run shares: its throttle, journal and part sizes.
fn tuned(
    a: &SyncArgs,
    throttle: &Arc<larder_store::throttle::Throttle>,
    journal: &Option<Arc<dyn larder_store::journal::UploadJournal>>,
    mut o: S3Options,
) -> S3Options {
    o.throttle = Some(throttle.clone());
    o.journal = journal.clone();
    o.part_size = a.part_size;
    o.multipart_threshold = a.multipart_threshold;
    o.parts_in_flight = a.parts_in_flight;
    o
}

/// Opens both sides, seen as the flags ask (a point in time, transformed keys).
async fn open_stores(a: &SyncArgs, callbacks: &Callbacks) -> anyhow::Result<Opened> {
    let symlinks = if a.no_follow_symlinks {
        SymlinkPolicy::Skip
    } else {
        SymlinkPolicy::Follow
    };
    // One throttle for the run: its stats go in the summary.
    let throttle = larder_store::throttle::Throttle::new(1024);
    // Multipart uploads in progress are journalled: a killed run's are resumed or aborted.
    // (Only uploads to S3 are journalled: no state file for a run that makes none.)
    let journal = (!a.dry_run && a.pair.dst.starts_with("s3://"))
        .then(|| uploads_journal(a.state_dir.as_deref()))
        .flatten();
    // Tags copied S3 → S3, or tags or a precondition asked for: what each server implements
    // decides (one request per side; a plain sync makes none).
    let s3_to_s3 = a.pair.src.starts_with("s3://") && a.pair.dst.starts_with("s3://");
    let detect = a.write.needs_features() || (s3_to_s3 && !a.write.disable_tagging);
    let tune_side = |o: S3Options, source: bool| -> anyhow::Result<S3Options> {
        let mut o = tuned(a, &throttle, &journal, o);
        a.write.apply(&mut o, source)?;
        Ok(o)
    };
    let transform: Option<Arc<dyn larder_sync::callbacks::KeyTransform>> =
        match (&a.transform, &callbacks.transform) {
            (Some(t), _) => Some(Arc::new(
                larder_sync::rename::SedTransform::parse(t).map_err(|e| UsageError(e.0))?,
            )),
            (None, Some(l)) => Some(l.clone()),
            (None, None) => None,
        };
    anyhow::ensure!(
        transform.is_none() || !a.enable_versioning,
        UsageError("a key transform and --enable-versioning cannot be combined".into())
    );
    let (mut src, mut dst) = open_pair(&a.pair, symlinks, tune_side, detect).await?;
    if let Some(t) = a.point_in_time {
        src = Arc::new(larder_sync::versioning::PointInTime::new(src, t));
    }
    if let Some(t) = transform {
        src = Arc::new(larder_sync::rename::Renamed::new(src, t));
    }
    // A local destination: temp files a killed run left are removed as the walk meets them.
    let local_dst = (!a.dry_run && !a.pair.dst.contains("://")).then(|| {
        Arc::new(
            LocalStore::new(&a.pair.dst)
                .with_symlinks(symlinks)
                .with_temp_cleanup(std::time::SystemTime::now()),
        )
    });
    if let Some(l) = &local_dst {
        dst = l.clone();
    }
    Ok(Opened {
        src,
        dst,
        local_dst,
        throttle,
        journal,
    })
}

/// The library's options from the flags, with the event printer and progress attached.
fn sync_options(
    a: &SyncArgs,
    callbacks: &Callbacks,
    out: Output,
    progress: &Progress,
    stop: &crate::signals::Stop,
) -> anyhow::Result<SyncOptions> {
    let compare = if a.size_only {
        larder_sync::CompareMode::Size
    } else if a.checksum {
        anyhow::ensure!(
            a.checksum_algorithm.is_some(),
            UsageError("--checksum compares an additional checksum: name it with --checksum-algorithm (sha256, sha1, crc32, crc32c, crc64nvme); without one every same-size key would be re-sent".into())
        );
        larder_sync::CompareMode::Checksum
    } else {
        a.compare
    };
    let printer = printer(out, a.dry_run, progress.clone());
    // The event script sees every event the output does, after it.
    let on_event: larder_sync::EventHandler = match callbacks.events.clone() {
        None => printer,
        Some(lua) => Arc::new(move |e: &Event| {
            printer(e);
            if let Err(err) = lua.on_event(e) {
                tracing::warn!("{err}");
            }
        }),
    };
    Ok(SyncOptions::default()
        .with_compare(compare)
        .with_checksum(a.checksum_algorithm)
        .with_delete(a.delete)
        .with_allow_empty_source(a.allow_empty_source)
        .with_max_delete(a.max_delete)
        .with_dry_run(a.dry_run)
        .with_filters(filters(&a.pair.filters)?)
        .with_concurrency(a.concurrency)
        .with_max_buffer_memory(a.max_buffer_memory)
        // Downloads keep 4 ranges in flight, uploads --parts-in-flight parts.
        .with_parts_in_flight(a.parts_in_flight.max(4))
        .with_rate_limit_objects(a.rate_limit_objects.map(|n| n as f64))
        .with_rate_limit_bandwidth(a.rate_limit_bandwidth)
        .with_guess_content_type(!a.no_guess_mime_type)
        .with_server_side_copy(match (a.server_side_copy, a.no_server_side_copy) {
            (true, _) => ServerSideCopy::Always,
            (_, true) => ServerSideCopy::Never,
            _ => ServerSideCopy::Auto,
        })
        .with_stop_on_error(a.stop_on_error)
        .with_retries(a.retries)
        .with_mtime_window(a.modify_window)
        .with_part_size(a.part_size)
        .with_cache(
            (!a.no_cache)
                .then(|| meta_cache(a.state_dir.as_deref()))
                .flatten(),
        )
        .with_on_event(Some(on_event))
        .with_on_progress(Some(progress.handler()))
        .with_cancel(stop.token.clone())
        .with_write(a.write.write_options())
        .with_object_filters(object_filters(a)?)
        .with_delete_excluded(a.delete_excluded)
        .with_filter_callback(
            callbacks
                .filter
                .clone()
                .map(|f| f as Arc<dyn larder_sync::callbacks::FilterCallback>),
        )
        .with_preprocess_callback(
            callbacks
                .preprocess
                .clone()
                .map(|p| p as Arc<dyn larder_sync::callbacks::PreprocessCallback>),
        ))
}

/// Prints each event: JSON lines with `--json`; else the plan (dry run, `-v`) and failures,
/// above the progress bar when there is one.
fn printer(out: Output, print_plan: bool, progress: Progress) -> larder_sync::EventHandler {
    let stdout = Arc::new(Mutex::new(std::io::stdout()));
    Arc::new(move |e: &Event| {
        let mut w = stdout.lock().expect("stdout lock");
        match e {
            Event::Done { key, listed, .. } => progress.finished(key, *listed),
            Event::Failed { key, .. } => progress.finished(key, 0),
            _ => {}
        }
        if out.json {
            let _ = writeln!(w, "{}", crate::json_line(e));
            return;
        }
        match e {
            Event::Done {
                action,
                key,
                size,
                reason,
                ..
            } => {
                // Adopted and archived keys are skips a user wants to see: larder decided
                // by content, or could not read the object.
                let shown = matches!(
                    reason,
                    Reason::Adopted(_) | Reason::Archived(_) | Reason::Precondition(_)
                );
                if ((print_plan || out.verbose > 0) && (*action != Action::Skip || shown))
                    || out.verbose > 1
                {
                    let label = match reason {
                        Reason::Adopted(_) => "adopt".to_owned(),
                        Reason::Precondition(_) => "keep".to_owned(),
                        Reason::Archived(_) => "archived".to_owned(),
                        _ => action.to_string(),
                    };
                    let line = format!("{label:<8} {size:>12}  {key}  ({reason})");
                    if !progress.println(&line) {
                        let _ = writeln!(w, "{line}");
                    }
                }
            }
            Event::Failed { error, .. } => {
                let line = format!("larder: error: {}", crate::redact::redact(error));
                if !progress.println(&line) {
                    eprintln!("{line}");
                }
            }
            _ => {}
        }
    })
}

/// The summary (a JSON object, or one line) and the warnings a user must see.
fn print_summary(report: &SyncReport, o: &Opened, orphans_aborted: u64, out: Output) {
    let secs = report.elapsed.as_secs_f64().max(0.001);
    let stale = o.local_dst.as_ref().map_or(0, |l| l.stale_temps_removed());
    let throttle = o.throttle.stats();
    if out.json {
        println!("{}", {
            // The report's own serde form, and what only the command knows.
            let mut v = crate::json_line(report);
            let failures: Vec<_> = report
                .errors
                .iter()
                .map(|f| {
                    json!({"key": f.key, "kind": f.kind.to_string(),
                                    "message": crate::redact::redact(&f.message)})
                })
                .collect();
            v["event"] = json!("summary");
            v["errors"] = json!(report.errors.len());
            v["failures"] = json!(failures);
            v["verify_failures"] = json!(report.verify_failures());
            v["throttled"] = json!(throttle.throttled);
            v["throttle_decreases"] = json!(throttle.decreases);
            v["min_concurrency"] = json!(throttle.min_limit);
            v["orphan_uploads_aborted"] = json!(orphans_aborted);
            v["stale_temps_removed"] = json!(stale);
            v["objects_per_second"] = json!(report.transferred as f64 / secs);
            v["mib_per_second"] = json!(crate::commands::mib(report.bytes) / secs);
            v
        });
    } else if !out.quiet {
        let (verb, deleted) = if report.dry_run {
            ("would transfer", "would delete")
        } else {
            ("transferred", "deleted")
        };
        let some = |n: u64, text: String| if n > 0 { text } else { String::new() };
        eprintln!(
            "{verb} {} objects ({}{}), skipped {}{}, {deleted} {}{} | etag verified {}, checksum verified {} | {:.1} objects/s, {}/s, {}",
            report.transferred,
            HumanBytes(report.bytes),
            some(report.server_side_copies, format!(", {} copied server-side", report.server_side_copies)),
            report.skipped,
            some(report.adopted, format!(" ({} adopted by content)", report.adopted)),
            report.deleted,
            some(report.filtered, format!(", filtered {}", report.filtered)),
            report.etag_verified,
            report.checksum_verified,
            report.transferred as f64 / secs,
            HumanBytes((report.bytes as f64 / secs) as u64),
            // To the millisecond: "362ms", "4s 120ms".
            humantime::format_duration(Duration::from_millis(report.elapsed.as_millis() as u64)),
        );
    }
    if stale > 0 && !out.quiet && !out.json {
        eprintln!("larder: removed {stale} stale temp file(s) an interrupted run left behind");
    }
    if report.archived > 0 && !out.quiet && !out.json {
        eprintln!(
            "larder: {} archived object(s) skipped: restore them (S3 RestoreObject) to sync them",
            report.archived
        );
    }
    if let Some(why) = &report.delete_refused {
        eprintln!("larder: warning: no deletions: {why}");
    }
    if report.precondition_skipped > 0 && !out.json {
        eprintln!(
            "larder: warning: {} key(s) left as they are: their precondition (--if-none-match / --if-match) did not hold",
            report.precondition_skipped
        );
    }
    if !report.errors.is_empty() && !out.quiet {
        // Listed again at the end, where a long run's log is read first.
        if !out.json {
            for e in &report.errors {
                eprintln!("larder: failed: {}", crate::redact::redact(&e.message));
            }
        }
        eprintln!("larder: {} key(s) failed", report.errors.len());
    }
}

fn object_filters(a: &SyncArgs) -> anyhow::Result<larder_sync::filter::ObjectFilters> {
    use larder_sync::filter::regex;
    Ok(larder_sync::filter::ObjectFilters {
        include_content_type: regex(a.filter_include_content_type_regex.as_deref())?,
        exclude_content_type: regex(a.filter_exclude_content_type_regex.as_deref())?,
        include_metadata: regex(a.filter_include_metadata_regex.as_deref())?,
        exclude_metadata: regex(a.filter_exclude_metadata_regex.as_deref())?,
        include_tag: regex(a.filter_include_tag_regex.as_deref())?,
        exclude_tag: regex(a.filter_exclude_tag_regex.as_deref())?,
    })
}

/// `dst` with `prefix` inside it (`--dest-prefix`): `s3://b/x` + `y/` is `s3://b/x/y/`, a
/// directory's subdirectory likewise.
fn with_dest_prefix(dst: &str, prefix: &str) -> anyhow::Result<String> {
    let p = prefix.trim_matches('/');
    let bad = |why: &str| UsageError(format!("--dest-prefix `{prefix}`: {why}"));
    anyhow::ensure!(!p.is_empty(), bad("empty"));
    anyhow::ensure!(
        p.split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\')),
        bad("a prefix is key segments, without `.`, `..`, `//` or backslashes")
    );
    if dst.starts_with("s3://") {
        Ok(format!("{}/{p}/", dst.trim_end_matches('/')))
    } else if dst.contains("://") {
        Err(bad("only for a directory or s3://… destination").into())
    } else {
        Ok(std::path::Path::new(dst)
            .join(p)
            .to_string_lossy()
            .into_owned())
    }
}
