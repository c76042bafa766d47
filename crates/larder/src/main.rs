//! `larder`: keep local directories and S3-compatible object storage in sync, verified.
//!
//! A thin layer over the library crates: flags parse into `cli::Args`, resolve into library
//! options, and errors map to the documented exit codes (`exit.rs`).

mod cache_cmd;
mod cache_sync_cmd;
mod cli;
mod commands;
mod config;
mod exit;
mod lua_args;
mod man;
mod progress;
mod redact;
mod signals;
mod sync_cmd;
mod vault_cmd;
mod vault_run_cmd;
mod vault_twoway_cmd;
mod verify_cmd;
mod write_args;

use clap::Parser;

/// The version of the JSON lines larder prints (`"schema": 1` in each event and summary):
/// raised when a field changes meaning or goes away; new fields may come without a raise.
pub const JSON_SCHEMA: u32 = 1;

/// A library value (an event, a report) as a JSON line: its serde form with `schema`
/// added and error texts redacted.
pub fn json_line(v: &impl serde::Serialize) -> serde_json::Value {
    let mut v =
        serde_json::to_value(v).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
    if let Some(m) = v.as_object_mut() {
        m.insert("schema".into(), JSON_SCHEMA.into());
        if let Some(serde_json::Value::String(e)) = m.get_mut("error") {
            *e = redact::redact(e).into_owned();
        }
    }
    v
}

fn main() {
    {
        use clap::CommandFactory;
        if let Err(e) = config::load(&config::known_env(&cli::Args::command())) {
            eprintln!("larder: error: {e}");
            std::process::exit(exit::USAGE);
        }
    }
    let args = cli::Args::parse();
    init_tracing(&args.global);
    let json = args.global.json;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("larder: error: could not start the async runtime: {e}");
            std::process::exit(exit::ERROR);
        }
    };
    let code = match rt.block_on(async {
        let result = commands::run(args).await;
        // Aborts of multipart uploads that failed or were interrupted finish before exit.
        if !larder_store::s3::finish_background_aborts(std::time::Duration::from_secs(30)).await {
            eprintln!("larder: warning: an aborted multipart upload may be left behind");
        }
        result
    }) {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`larder ls … | head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                exit::OK
            } else {
                let full = format!("{e:#}");
                let message = redact::redact(&full);
                let hints = commands::hints(&e);
                let code = commands::exit_code(&e);
                eprintln!("larder: error: {message}");
                for hint in &hints {
                    eprintln!("hint: {hint}");
                }
                if json {
                    // Scripts read standard output: the fatal error, then a summary, there too.
                    println!(
                        "{}",
                        serde_json::json!({"schema": JSON_SCHEMA, "event": "error", "fatal": true,
                                           "error": message, "hints": hints, "exit_code": code})
                    );
                    println!(
                        "{}",
                        serde_json::json!({"schema": JSON_SCHEMA, "event": "summary",
                                           "fatal": true, "exit_code": code})
                    );
                }
                code
            }
        }
    };
    // Background tasks (an abort of a multipart upload) get a moment to finish.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code);
}

fn init_tracing(g: &cli::GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info,larder=debug",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("LARDER_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    if g.json {
        // With --json, logs are JSON too (one object per line, on standard error).
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(|| redact::Stderr)
            .with_target(false)
            .init();
        return;
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| redact::Stderr)
        // Colours only on a terminal, and never with NO_COLOR set (no escape codes in CI logs).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_target(false)
        .init();
}
