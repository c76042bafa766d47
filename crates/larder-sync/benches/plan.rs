//! Planning a sync of N entries per side (in-memory stores, dry run) must keep memory flat:
//! the march holds one entry per side, the plan streams. This prints, for 100,000 and
//! 1,000,000 entries per side, the time and how far peak RSS rose above the RSS with both
//! stores filled:
//!
//!     cargo bench -p larder-sync --bench plan
//!
//! (A plain `main`, not criterion: the figure of interest is memory, measured once per size.)

use std::sync::Arc;
use std::time::Instant;

use larder_store::{Body, Key, MemoryStore, PutOptions, Store};
use larder_sync::{sync, CompareMode, SyncOptions};

/// `(VmRSS, VmHWM)` in KiB.
fn rss() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak RSS to the current RSS (Linux `clear_refs` 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn fill(store: &MemoryStore, n: usize, offset: usize) {
    for j in offset..offset + n {
        let k = Key::new(format!("dir{:03}/object-{j:09}", j % 997)).unwrap();
        store
            .put(&k, Body::from_bytes(&b"x"[..]), PutOptions::default())
            .await
            .unwrap();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is ignored.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("entries/side  planned   seconds  entries/s   rss-before  peak-rise");
    for n in [100_000usize, 1_000_000] {
        rt.block_on(async {
            let src = Arc::new(MemoryStore::new());
            let dst = Arc::new(MemoryStore::new());
            // Half the keys on both sides, a quarter only in each.
            fill(&src, n, 0).await;
            fill(&dst, n, n / 2).await;
            let (before, _) = rss();
            reset_peak();
            let started = Instant::now();
            let report = sync(
                src.clone(),
                dst.clone(),
                SyncOptions::default()
                    .with_dry_run(true)
                    .with_delete(true)
                    .with_compare(CompareMode::Size),
            )
            .await
            .unwrap();
            let secs = started.elapsed().as_secs_f64();
            let (_, peak) = rss();
            let planned = report.transferred + report.skipped + report.deleted;
            println!(
                "{n:>12}  {planned:>8}  {secs:>7.2}  {:>9.0}  {:>8} KiB  {:>6} KiB",
                (2 * n) as f64 / secs,
                before,
                peak.saturating_sub(before),
            );
            assert_eq!(report.transferred as usize, n / 2);
            assert_eq!(report.skipped as usize, n / 2);
        });
    }
}
