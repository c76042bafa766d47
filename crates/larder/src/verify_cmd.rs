//! `larder verify`: two locations compared key by key, each key's status printed, the
//! counts summarised, differences exit 3.

use std::sync::Arc;

use larder_store::SymlinkPolicy;
use larder_sync::{Status, VerifyOptions};
use serde_json::json;

use crate::cli::VerifyArgs;
use crate::commands::{filters, open_pair, versioned_source, UsageError};
use crate::exit;

pub async fn run_verify(a: VerifyArgs, json: bool, quiet: bool) -> anyhow::Result<i32> {
    if a.point_in_time.is_some() {
        versioned_source(&a.pair, "--point-in-time")?;
    }
    let (mut src, dst) = open_pair(&a.pair, SymlinkPolicy::Follow, |o, _| Ok(o), false).await?;
    if let Some(t) = a.point_in_time {
        src = Arc::new(larder_sync::versioning::PointInTime::new(src, t));
    }
    type Keeps = fn(&larder_store::Capabilities) -> bool;
    let checks: [(bool, &str, Keeps, &str); 2] = [
        (
            a.report_metadata,
            "--report-metadata",
            |c| c.metadata,
            "metadata",
        ),
        (a.report_tagging, "--report-tagging", |c| c.tagging, "tags"),
    ];
    for (asked, flag, keeps, what) in checks {
        let sides = [(&src, &a.pair.src), (&dst, &a.pair.dst)];
        if let Some((_, name)) = sides
            .iter()
            .find(|(s, _)| asked && !keeps(&s.capabilities()))
        {
            return Err(
                UsageError(format!("{flag}: {name} does not keep {what} to compare")).into(),
            );
        }
    }
    let only_diff = a.only_differences;
    let progress =
        crate::progress::Progress::start(a.progress.mode(json, quiet), json, "keys", false);
    let p2 = progress.clone();
    let on_status = Arc::new(move |key: &str, st: &Status| {
        p2.finished(key, 0);
        if only_diff && *st == Status::Match {
            return;
        }
        if json {
            let mut v = json!({"schema": crate::JSON_SCHEMA, "event": "status", "key": key, "status": st.name()});
            match st {
                Status::Error(e) => v["error"] = json!(e),
                Status::Match | Status::Missing | Status::Extra => {}
                other => v["detail"] = json!(other.to_string()),
            }
            println!("{v}");
        } else if !quiet {
            let line = format!("{:<18} {key}", st.to_string());
            if !p2.println(&line) {
                println!("{line}");
            }
        }
    });
    let report = larder_sync::verify(
        src,
        dst,
        VerifyOptions::default()
            .with_checksum(a.checksum_algorithm)
            .with_filters(filters(&a.pair.filters)?)
            .with_concurrency(a.concurrency)
            .with_on_status(Some(on_status))
            .with_metadata(a.report_metadata)
            .with_tagging(a.report_tagging),
    )
    .await;
    progress.finish();
    if json {
        println!("{}", {
            let mut v = crate::json_line(&report);
            v["event"] = json!("summary");
            v
        });
    } else if !quiet {
        eprintln!(
            "match {}, size mismatch {}, etag mismatch {}, checksum mismatch {}{}{}, missing {}, extra {}, errors {}",
            report.matched, report.size_mismatch, report.etag_mismatch, report.checksum_mismatch,
            if a.report_metadata { format!(", metadata mismatch {}", report.metadata_mismatch) } else { String::new() },
            if a.report_tagging { format!(", tagging mismatch {}", report.tagging_mismatch) } else { String::new() },
            report.missing, report.extra, report.errors
        );
    }
    Ok(if report.errors > 0 {
        exit::ERROR
    } else if report.differs() {
        exit::WARNING
    } else {
        exit::OK
    })
}
