//! The documented exit codes of `larder`.

/// Everything went as asked.
pub const OK: i32 = 0;
/// An error: something could not be done (bad credentials, missing bucket, failed keys).
pub const ERROR: i32 = 1;
/// Invalid arguments or options (clap exits with 2 itself for what it parses).
pub const USAGE: i32 = 2;
/// Done, with warnings: a verification mismatch, deletions refused, or differences found by
/// `verify`.
pub const WARNING: i32 = 3;
/// Stalled: a budget (requests, bytes, price) would have been exceeded, so the run stopped
/// before the request; what was done is recorded, the next run resumes.
pub const STALLED: i32 = 4;
/// Interrupted (Ctrl-C): in-flight uploads aborted, nothing half-written.
pub const INTERRUPTED: i32 = 130;
/// Terminated (SIGTERM): the same orderly stop as Ctrl-C.
pub const TERMINATED: i32 = 143;

/// The exit-code table, as a literal (for `concat!`).
#[macro_export]
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0    success
  1    error (a key failed, bad credentials, missing bucket, unreachable server)
  2    invalid arguments
  3    warnings (a verification mismatch, deletions refused; `verify` found differences)
  4    stalled: a vault budget would have been exceeded; nothing past it was sent
  130  interrupted (Ctrl-C); in-flight uploads were aborted, nothing half-written
  143  terminated (SIGTERM); the same orderly stop as Ctrl-C"
    };
}

/// The text `--help` shows.
pub const HELP: &str = crate::exit_codes!();
