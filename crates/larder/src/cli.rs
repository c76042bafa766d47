//! Command-line arguments. Every option can also be set by an environment variable
//! (`LARDER_…`), shown in `--help`.

use clap::{Args as ClapArgs, Parser, Subcommand};

/// Keep local directories and S3-compatible object storage in sync, verified.
#[derive(Debug, Parser)]
#[command(name = "larder", version, about, after_help = crate::exit::HELP)]
pub struct Args {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, ClapArgs)]
pub struct GlobalArgs {
    /// Print only errors.
    #[arg(short, long, global = true, env = "LARDER_QUIET")]
    pub quiet: bool,
    /// Print more (repeat for more still).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print JSON: one object per line.
    #[arg(long, global = true, env = "LARDER_JSON")]
    pub json: bool,
}

/// How to reach an S3-compatible server.
#[derive(Debug, Clone, ClapArgs)]
pub struct S3Args {
    /// The S3 endpoint URL, for a server other than AWS.
    #[arg(long, env = "LARDER_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The region.
    #[arg(long, env = "LARDER_REGION")]
    pub region: Option<String>,
    /// The AWS profile to take credentials and region from.
    #[arg(long, env = "LARDER_PROFILE")]
    pub profile: Option<String>,
    /// Use path-style addressing (default: on with --endpoint-url).
    #[arg(long, env = "LARDER_PATH_STYLE")]
    pub path_style: Option<bool>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the objects at a location: a local path or s3://bucket/prefix.
    Ls(LsArgs),
}

#[derive(Debug, ClapArgs)]
pub struct LsArgs {
    /// A local directory or s3://bucket/prefix.
    pub location: String,
    #[command(flatten)]
    pub s3: S3Args,
}
