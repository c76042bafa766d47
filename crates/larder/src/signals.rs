//! Orderly stops: SIGINT (Ctrl-C) and SIGTERM (systemd, Kubernetes, CI runners) cancel the
//! run, which aborts multipart uploads in flight and removes temp files, and the process
//! exits 130 or 143. A second signal exits at once with the same code.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::exit;

/// A cancellation token fired by the first SIGINT or SIGTERM, and the exit code that signal
/// asks for (0 until one arrives).
#[derive(Debug, Clone)]
pub struct Stop {
    pub token: CancellationToken,
    code: Arc<AtomicI32>,
}

impl Stop {
    /// Starts listening; call inside the runtime.
    pub fn listen() -> Stop {
        let stop = Stop {
            token: CancellationToken::new(),
            code: Arc::new(AtomicI32::new(0)),
        };
        let s = stop.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let Some((code, name)) = next_signal().await else {
                    return;
                };
                if !first {
                    eprintln!("larder: {name} again: exiting now");
                    std::process::exit(code);
                }
                first = false;
                eprintln!(
                    "larder: {name}: stopping, aborting uploads in flight (again to exit now)"
                );
                s.code.store(code, Ordering::SeqCst);
                s.token.cancel();
            }
        });
        stop
    }

    /// The exit code of the signal that stopped the run.
    pub fn exit_code(&self) -> i32 {
        match self.code.load(Ordering::SeqCst) {
            0 => exit::INTERRUPTED,
            c => c,
        }
    }
}

#[cfg(unix)]
async fn next_signal() -> Option<(i32, &'static str)> {
    use tokio::signal::unix::{signal, SignalKind};
    // Registered once per call; a signal between two calls is still delivered (tokio keeps
    // the handler installed once registered).
    let mut int = signal(SignalKind::interrupt()).ok()?;
    let mut term = signal(SignalKind::terminate()).ok()?;
    tokio::select! {
        _ = int.recv() => Some((exit::INTERRUPTED, "interrupted")),
        _ = term.recv() => Some((exit::TERMINATED, "terminated (SIGTERM)")),
    }
}

#[cfg(not(unix))]
async fn next_signal() -> Option<(i32, &'static str)> {
    tokio::signal::ctrl_c().await.ok()?;
    Some((exit::INTERRUPTED, "interrupted"))
}
