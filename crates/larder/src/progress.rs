//! Progress while a run goes: on a terminal, a bar with bytes moved of the bytes to move
//! (the total grows while the listing is still going), objects, rate and ETA, and a line of
//! its own for each large object in flight, moving as its bytes move; off a terminal (CI
//! logs), one heartbeat line every `--stats-interval`. Sizes and durations are indicatif's
//! human forms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;
use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressStyle};
use larder_sync::Progress as Moved;

/// Objects at least this large get a line of their own under the bar.
const OWN_LINE: u64 = 16 << 20;

/// `--progress`, `--no-progress`, `--stats-interval`.
#[derive(Debug, Clone, ClapArgs)]
pub struct ProgressArgs {
    /// Show progress: a bar on a terminal, a heartbeat line elsewhere (the default).
    #[arg(
        long,
        help_heading = "Output",
        env = "LARDER_PROGRESS",
        conflicts_with = "no_progress"
    )]
    pub progress: bool,
    /// Show no progress: neither the bar nor the heartbeat.
    #[arg(long, help_heading = "Output", env = "LARDER_NO_PROGRESS")]
    pub no_progress: bool,
    /// Off a terminal, print one progress line this often (`0s`: never).
    #[arg(long, help_heading = "Output", env = "LARDER_STATS_INTERVAL", value_name = "DURATION", default_value = "1m", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar on standard error (a terminal).
    Bar,
    /// A line every interval: JSON on standard output with `--json`, else on standard error.
    Heartbeat(Duration),
    /// Nothing.
    Off,
}

impl ProgressArgs {
    /// The mode for a run printing JSON or not, quiet or not.
    pub fn mode(&self, json: bool, quiet: bool) -> Mode {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        if self.no_progress || quiet {
            Mode::Off
        } else if terminal && !json {
            Mode::Bar
        } else if self.stats_interval.is_zero() {
            Mode::Off
        } else {
            Mode::Heartbeat(self.stats_interval)
        }
    }
}

/// The progress of one run. Cheap to clone; every clone shows the same run.
#[derive(Clone)]
pub struct Progress(Arc<Inner>);

struct Inner {
    bars: Option<(MultiProgress, ProgressBar)>,
    /// `objects` or `keys`.
    noun: &'static str,
    /// Whether bytes move (sync) or only keys are counted (verify).
    bytes: bool,
    json: bool,
    started: Instant,
    listed: AtomicU64,
    done: AtomicU64,
    total: AtomicU64,
    moved: AtomicU64,
    /// Transfers in flight: bytes moved so far, and a line of their own when large.
    in_flight: Mutex<HashMap<String, (u64, Option<ProgressBar>)>>,
    heartbeat: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    /// Starts showing progress of a run that moves bytes (`bytes`) or only counts keys.
    pub fn start(mode: Mode, json: bool, noun: &'static str, bytes: bool) -> Progress {
        let bars = (mode == Mode::Bar).then(|| {
            let multi = MultiProgress::new();
            let main = multi.add(ProgressBar::new(0));
            let template = if bytes {
                "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} | {msg}"
            } else {
                "{spinner} {elapsed_precise} {msg}"
            };
            main.set_style(ProgressStyle::with_template(template).expect("template"));
            main.enable_steady_tick(Duration::from_millis(120));
            (multi, main)
        });
        let p = Progress(Arc::new(Inner {
            bars,
            noun,
            bytes,
            json,
            started: Instant::now(),
            listed: AtomicU64::new(0),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            in_flight: Mutex::default(),
            heartbeat: Mutex::default(),
        }));
        if let Mode::Heartbeat(every) = mode {
            let me = p.clone();
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    me.beat();
                }
            });
            *p.0.heartbeat.lock().expect("heartbeat lock") = Some(task);
        }
        p
    }

    /// The library's byte progress, for [`larder_sync::SyncOptions::on_progress`].
    pub fn handler(&self) -> larder_sync::ProgressHandler {
        let me = self.clone();
        Arc::new(move |m: &Moved| me.moved(m))
    }

    fn moved(&self, m: &Moved) {
        let i = &self.0;
        let mut in_flight = i.in_flight.lock().expect("in-flight lock");
        match m {
            Moved::Started { key, size } => {
                i.total.fetch_add(*size, Ordering::Relaxed);
                let own = i
                    .bars
                    .as_ref()
                    .filter(|_| *size >= OWN_LINE)
                    .map(|(multi, main)| {
                        let b = multi.insert_after(main, ProgressBar::new(*size));
                        b.set_style(
                        ProgressStyle::with_template(
                            "  {msg:.dim} [{bar:24}] {bytes}/{total_bytes} {binary_bytes_per_sec}",
                        )
                        .expect("template"),
                    );
                        b.set_message(key.clone());
                        b
                    });
                in_flight.insert(key.clone(), (0, own));
            }
            Moved::Bytes { key, done, .. } => {
                // Called per chunk: no key copied unless the transfer is new to us.
                let entry = match in_flight.get_mut(key) {
                    Some(e) => e,
                    None => in_flight.entry(key.clone()).or_default(),
                };
                // A retry starts again: what its first attempt moved is taken back.
                if *done >= entry.0 {
                    i.moved.fetch_add(done - entry.0, Ordering::Relaxed);
                } else {
                    i.moved.fetch_sub(entry.0 - done, Ordering::Relaxed);
                }
                entry.0 = *done;
                if let Some(b) = &entry.1 {
                    b.set_position(*done);
                }
            }
            _ => {}
        }
        drop(in_flight);
        self.refresh_bytes();
    }

    /// One more item counted (a file checked), with no key in flight.
    pub fn tick(&self) {
        self.0.done.fetch_add(1, Ordering::Relaxed);
        self.refresh();
    }

    /// One key finished (done, skipped or failed); `listed`: source entries listed so far.
    pub fn finished(&self, key: &str, listed: u64) {
        let i = &self.0;
        if let Some((_, Some(b))) = i.in_flight.lock().expect("in-flight lock").remove(key) {
            b.finish_and_clear();
        }
        i.done.fetch_add(1, Ordering::Relaxed);
        i.listed.fetch_max(listed, Ordering::Relaxed);
        self.refresh();
    }

    /// Prints `line` above the bar; `false` when there is no bar (the caller prints it).
    pub fn println(&self, line: &str) -> bool {
        match &self.0.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
                true
            }
            None => false,
        }
    }

    /// Stops showing progress: the bar is cleared, the heartbeat stops.
    pub fn finish(&self) {
        if let Some((multi, main)) = &self.0.bars {
            main.finish_and_clear();
            let _ = multi.clear();
        }
        if let Some(t) = self.0.heartbeat.lock().expect("heartbeat lock").take() {
            t.abort();
        }
    }

    /// The bar after bytes moved (per chunk: no text is formatted).
    fn refresh_bytes(&self) {
        let i = &self.0;
        if let Some((_, main)) = &i.bars {
            main.set_length(i.total.load(Ordering::Relaxed));
            main.set_position(i.moved.load(Ordering::Relaxed));
        }
    }

    /// The bar after a key finished: its bytes and its counts.
    fn refresh(&self) {
        self.refresh_bytes();
        if let Some((_, main)) = &self.0.bars {
            main.set_message(self.counts());
        }
    }

    /// `12/40 objects`, or `12 keys done` while nothing says how many there are.
    fn counts(&self) -> String {
        let i = &self.0;
        let (done, listed) = (
            i.done.load(Ordering::Relaxed),
            i.listed.load(Ordering::Relaxed),
        );
        if listed > 0 {
            format!("{done}/{listed} {}", i.noun)
        } else {
            format!("{done} {} done", i.noun)
        }
    }

    /// One heartbeat line.
    fn beat(&self) {
        let i = &self.0;
        let elapsed = i.started.elapsed();
        let moved = i.moved.load(Ordering::Relaxed);
        let total = i.total.load(Ordering::Relaxed);
        let rate = (moved as f64 / elapsed.as_secs_f64().max(0.001)) as u64;
        if i.json {
            println!(
                "{}",
                serde_json::json!({
                    "schema": crate::JSON_SCHEMA,
                    "event": "progress", "done": i.done.load(Ordering::Relaxed),
                    "listed": i.listed.load(Ordering::Relaxed), "bytes": moved,
                    "total_bytes": total, "elapsed_seconds": elapsed.as_secs_f64(),
                })
            );
        } else if i.bytes {
            eprintln!(
                "larder: {}, {} of {} moved, {}/s, {} elapsed",
                self.counts(),
                HumanBytes(moved),
                HumanBytes(total),
                HumanBytes(rate),
                HumanDuration(elapsed)
            );
        } else {
            eprintln!(
                "larder: {} compared, {} elapsed",
                self.counts(),
                HumanDuration(elapsed)
            );
        }
    }
}
