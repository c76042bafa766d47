//! The documented exit codes of `larder`.

/// Everything went as asked.
pub const OK: i32 = 0;
/// An error: something could not be done (bad credentials, missing bucket, failed keys).
pub const ERROR: i32 = 1;
/// Invalid arguments or options (clap's own exit code for usage errors).
pub const USAGE: i32 = 2;
/// Done, with warnings: a verification mismatch, or differences found by `verify`.
pub const WARNING: i32 = 3;

/// The text `--help` shows.
pub const HELP: &str = "Exit codes:
  0  success
  1  error (a key failed, bad credentials, missing bucket, unreachable server)
  2  invalid arguments
  3  warnings (a verification mismatch; `verify` found differences)";
