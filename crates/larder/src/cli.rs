//! Command-line arguments. Every option can also be set by an environment variable
//! (`LARDER_…`), shown in `--help`. Flags parse into these types, then resolve into library
//! options in `commands` (the library never sees argv strings).

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// `larder --version`: the version, the commit it was built from and the target.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("LARDER_COMMIT"),
    ", ",
    env!("LARDER_TARGET"),
    ")"
);

/// Keep local directories and S3-compatible object storage in sync, verified.
#[derive(Debug, Parser)]
#[command(name = "larder", version = VERSION, about, after_help = crate::exit::HELP)]
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
    #[arg(help_heading = "Output")]
    pub quiet: bool,
    /// Print more (repeat for more still).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    #[arg(help_heading = "Output")]
    pub verbose: u8,
    /// Print JSON: one object per line, then a summary object.
    #[arg(long, global = true, env = "LARDER_JSON")]
    #[arg(help_heading = "Output")]
    pub json: bool,
}

/// How to reach an S3-compatible server; `--source-…` and `--target-…` override per side.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct S3Args {
    /// The S3 endpoint URL, for a server other than AWS.
    #[arg(long, env = "LARDER_ENDPOINT_URL", value_name = "URL")]
    #[arg(help_heading = "Locations & S3")]
    pub endpoint_url: Option<String>,
    /// The region of the bucket (AWS), or the one the server expects (Garage: `garage`);
    /// default: the profile's, else us-east-1.
    #[arg(long, env = "LARDER_REGION")]
    #[arg(help_heading = "Locations & S3")]
    pub region: Option<String>,
    /// The AWS profile to take credentials and region from.
    #[arg(long, env = "LARDER_PROFILE")]
    #[arg(help_heading = "Locations & S3")]
    pub profile: Option<String>,
    /// Use path-style addressing (default: on with an endpoint URL); `--path-style` alone
    /// means true, `--path-style=false` turns it off.
    #[arg(long, env = "LARDER_PATH_STYLE", value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    #[arg(help_heading = "Locations & S3")]
    pub path_style: Option<bool>,
    /// Give up connecting to the server after this long (each attempt; retried).
    #[arg(long, env = "LARDER_CONNECT_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    #[arg(help_heading = "Locations & S3")]
    pub connect_timeout: std::time::Duration,
    /// Give up on a request whose answer has not started after this long (each attempt;
    /// retried): a server that accepts connections and never answers.
    #[arg(long, env = "LARDER_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    #[arg(help_heading = "Locations & S3")]
    pub timeout: std::time::Duration,
    /// Fail a transfer whose body moves no byte for this long (retried).
    #[arg(long, env = "LARDER_IDLE_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_timeout)]
    #[arg(help_heading = "Locations & S3")]
    pub idle_timeout: std::time::Duration,
    /// Keep the requests in flight fixed when the server answers 503 SlowDown or 429 (by
    /// default they back off, AIMD, and `Retry-After` is honoured).
    #[arg(long, env = "LARDER_FIXED_CONCURRENCY")]
    #[arg(help_heading = "Locations & S3")]
    pub fixed_concurrency: bool,
    /// Send requests unsigned, without credentials: public buckets (aws-cli's
    /// --no-sign-request).
    #[arg(long, env = "LARDER_NO_SIGN_REQUEST", help_heading = "Locations & S3")]
    pub no_sign_request: bool,
    /// Accept the charges of a requester-pays bucket (`x-amz-request-payer: requester` on
    /// every request).
    #[arg(long, env = "LARDER_REQUEST_PAYER", help_heading = "Locations & S3")]
    pub request_payer: bool,
}

/// Per-side overrides, for S3→S3 between servers or accounts.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct SideArgs {
    /// The source's endpoint URL.
    #[arg(long, env = "LARDER_SOURCE_ENDPOINT_URL", value_name = "URL")]
    #[arg(help_heading = "Locations & S3")]
    pub source_endpoint_url: Option<String>,
    /// The target's endpoint URL.
    #[arg(long, env = "LARDER_TARGET_ENDPOINT_URL", value_name = "URL")]
    #[arg(help_heading = "Locations & S3")]
    pub target_endpoint_url: Option<String>,
    /// The source's AWS profile.
    #[arg(long, env = "LARDER_SOURCE_PROFILE")]
    #[arg(help_heading = "Locations & S3")]
    pub source_profile: Option<String>,
    /// The target's AWS profile.
    #[arg(long, env = "LARDER_TARGET_PROFILE")]
    #[arg(help_heading = "Locations & S3")]
    pub target_profile: Option<String>,
    /// The source's region.
    #[arg(long, env = "LARDER_SOURCE_REGION")]
    #[arg(help_heading = "Locations & S3")]
    pub source_region: Option<String>,
    /// The target's region.
    #[arg(long, env = "LARDER_TARGET_REGION")]
    #[arg(help_heading = "Locations & S3")]
    pub target_region: Option<String>,
    /// Read the source unsigned (a public bucket), the target with credentials.
    #[arg(
        long,
        env = "LARDER_SOURCE_NO_SIGN_REQUEST",
        help_heading = "Locations & S3"
    )]
    pub source_no_sign_request: bool,
    /// Pay for the source's requests (a requester-pays bucket).
    #[arg(
        long,
        env = "LARDER_SOURCE_REQUEST_PAYER",
        help_heading = "Locations & S3"
    )]
    pub source_request_payer: bool,
    /// Pay for the target's requests (a requester-pays bucket).
    #[arg(
        long,
        env = "LARDER_TARGET_REQUEST_PAYER",
        help_heading = "Locations & S3"
    )]
    pub target_request_payer: bool,
}

/// Which keys to consider.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct FilterArgs {
    /// Only keys matching this glob, rclone-style (repeatable; `*` stays within a segment,
    /// `**` crosses, `{a,b}` alternates, a leading `/` anchors at the root).
    #[arg(long, env = "LARDER_INCLUDE", value_name = "GLOB")]
    #[arg(help_heading = "Filters")]
    pub include: Vec<String>,
    /// Leave out keys matching this glob (repeatable; wins over --include).
    #[arg(long, env = "LARDER_EXCLUDE", value_name = "GLOB")]
    #[arg(help_heading = "Filters")]
    pub exclude: Vec<String>,
    /// Include globs read from FILE, one per line (`#` starts a comment).
    #[arg(long, env = "LARDER_INCLUDE_FROM", value_name = "FILE")]
    #[arg(help_heading = "Filters")]
    pub include_from: Vec<PathBuf>,
    /// Exclude globs read from FILE, one per line (`#` starts a comment).
    #[arg(long, env = "LARDER_EXCLUDE_FROM", value_name = "FILE")]
    #[arg(help_heading = "Filters")]
    pub exclude_from: Vec<PathBuf>,
    /// Only the keys listed in FILE, one per line (`#` starts a comment), as rclone's
    /// --files-from; the other filters still apply.
    #[arg(long, env = "LARDER_FILES_FROM", value_name = "FILE")]
    #[arg(help_heading = "Filters")]
    pub files_from: Option<PathBuf>,
    /// Only keys matching this regex (repeatable).
    #[arg(
        long,
        visible_alias = "filter-include-regex",
        env = "LARDER_INCLUDE_REGEX",
        value_name = "REGEX"
    )]
    #[arg(help_heading = "Filters")]
    pub include_regex: Vec<String>,
    /// Leave out keys matching this regex (repeatable).
    #[arg(
        long,
        visible_alias = "filter-exclude-regex",
        env = "LARDER_EXCLUDE_REGEX",
        value_name = "REGEX"
    )]
    #[arg(help_heading = "Filters")]
    pub exclude_regex: Vec<String>,
    /// Only objects of at least this size (bytes, or with K, M, G, Ki, Mi, Gi).
    #[arg(long, visible_alias = "filter-larger-size", env = "LARDER_MIN_SIZE", value_name = "SIZE", value_parser = parse_size)]
    #[arg(help_heading = "Filters")]
    pub min_size: Option<u64>,
    /// Only objects of at most this size.
    #[arg(long, visible_alias = "filter-smaller-size", env = "LARDER_MAX_SIZE", value_name = "SIZE", value_parser = parse_size)]
    #[arg(help_heading = "Filters")]
    pub max_size: Option<u64>,
    /// Only objects modified after this time (RFC 3339, or an age such as `7d`, `12h`).
    #[arg(long, visible_alias = "filter-mtime-after", env = "LARDER_NEWER_THAN", value_name = "TIME", value_parser = parse_time)]
    #[arg(help_heading = "Filters")]
    pub newer_than: Option<std::time::SystemTime>,
    /// Only objects modified before this time (RFC 3339, or an age).
    #[arg(long, visible_alias = "filter-mtime-before", env = "LARDER_OLDER_THAN", value_name = "TIME", value_parser = parse_time)]
    #[arg(help_heading = "Filters")]
    pub older_than: Option<std::time::SystemTime>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make DST hold what SRC holds: a local path, s3://bucket/prefix or cacache:///dir.
    #[command(after_help = crate::exit::HELP, after_long_help = SYNC_EXAMPLES)]
    Sync(Box<SyncArgs>),
    /// Compare SRC and DST key by key (size, ETag, checksum) without transferring.
    #[command(after_help = crate::exit::HELP, after_long_help = VERIFY_EXAMPLES)]
    Verify(Box<VerifyArgs>),
    /// List the objects at a location: a local path, s3://bucket/prefix or cacache:///dir.
    #[command(after_help = crate::exit::HELP)]
    Ls(LsArgs),
    /// The local content-addressed cache (npm cacache format).
    #[command(after_help = crate::exit::HELP)]
    Cache(CacheArgs),
    /// Vaults: a local directory paired with s3://bucket/prefix, with a persistent index of
    /// the remote objects, a policy and budgets.
    #[command(after_help = crate::exit::HELP)]
    Vault(crate::vault_cmd::VaultArgs),
    /// List and abort multipart uploads left behind under s3://bucket/prefix (an interrupted
    /// upload by any tool is billed until aborted).
    #[command(after_help = crate::exit::HELP)]
    Cleanup {
        /// The location, s3://bucket/prefix.
        location: String,
        /// Only uploads started longer ago than this (uploads in progress elsewhere are
        /// younger); `0s` for all.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// List what would be aborted, abort nothing.
        #[arg(long, short = 'n', visible_alias = "dryrun")]
        dry_run: bool,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Print shell completions (install: `larder completions bash >
    /// ~/.local/share/bash-completion/completions/larder`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page, or with --dir write one per command into DIR/man1 (install:
    /// `larder man --dir ~/.local/share/man`, then `man larder`, `man larder-sync`).
    Man {
        /// The man directory to write into (its `man1` is created).
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// `larder sync --help`'s examples, then the exit codes.
const SYNC_EXAMPLES: &str = concat!(
    "Examples:
  larder sync ./site s3://bucket/site              upload what changed (size and mtime)
  larder sync s3://bucket/site ./site --delete     download, and delete local files the bucket lacks
  larder sync ./photos s3://b/p --include '*.{jpg,png}' --exclude 'tmp/**'
  larder sync s3://a/x s3://b/x --dry-run          print the plan, change nothing
  larder sync ./x s3://b/x --checksum-algorithm crc64nvme -c   compare by stored checksum
  larder sync s3://a s3://b --enable-versioning    every version, oldest first
  LARDER_ENDPOINT_URL=http://127.0.0.1:3900 larder sync ./x s3://b/x   a non-AWS server

",
    crate::exit_codes!()
);

/// `larder verify --help`'s examples, then the exit codes.
const VERIFY_EXAMPLES: &str = concat!(
    "Examples:
  larder verify ./site s3://bucket/site --only-differences
  larder verify s3://a s3://b --report-metadata --report-tagging
  larder --json verify ./x s3://b/x --checksum-algorithm sha256

",
    crate::exit_codes!()
);

#[derive(Debug, ClapArgs)]
pub struct SyncArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// How to tell a key is up to date: size-mtime, size, etag or checksum.
    #[arg(long, env = "LARDER_COMPARE", default_value = "size-mtime", value_parser = compare_mode())]
    #[arg(help_heading = "Compare")]
    pub compare: larder_sync::CompareMode,
    /// Same as --compare size (rclone, aws-cli).
    #[arg(long, conflicts_with_all = ["checksum"])]
    #[arg(help_heading = "Compare")]
    pub size_only: bool,
    /// Same as --compare checksum (rclone's -c): needs --checksum-algorithm.
    #[arg(long, short = 'c')]
    #[arg(help_heading = "Compare")]
    pub checksum: bool,
    /// Send, store and verify this additional checksum: sha256, sha1, crc32, crc32c, crc64nvme.
    #[arg(long, env = "LARDER_CHECKSUM_ALGORITHM", value_name = "ALGO", value_parser = checksum_algorithm())]
    #[arg(help_heading = "Compare")]
    pub checksum_algorithm: Option<larder_store::integrity::ChecksumAlgorithm>,
    /// Delete destination keys the source does not have (after every transfer succeeded).
    #[arg(long, env = "LARDER_DELETE")]
    #[arg(help_heading = "Deletion")]
    pub delete: bool,
    /// Let --delete empty the destination when the source is empty.
    #[arg(long, env = "LARDER_ALLOW_EMPTY_SOURCE")]
    #[arg(help_heading = "Deletion")]
    pub allow_empty_source: bool,
    /// Refuse all deletions when there would be more than N.
    #[arg(long, env = "LARDER_MAX_DELETE", value_name = "N")]
    #[arg(help_heading = "Deletion")]
    pub max_delete: Option<u64>,
    /// Print the plan (action, key, size, reason) and write nothing.
    #[arg(long, short = 'n', visible_alias = "dryrun", env = "LARDER_DRY_RUN")]
    #[arg(help_heading = "Run")]
    pub dry_run: bool,
    /// Copy every version of each key, oldest first, so the destination's history has the
    /// source's order (S3 → S3, both buckets versioned); a re-run copies only versions not
    /// yet copied. Delete markers between versions are not copied; a key whose latest
    /// version is a delete marker is deleted at the destination.
    #[arg(long, env = "LARDER_ENABLE_VERSIONING", conflicts_with_all = ["point_in_time", "delete"])]
    #[arg(help_heading = "Versions")]
    pub enable_versioning: bool,
    /// Sync the source (a versioned bucket) as it was at this instant (RFC 3339, e.g.
    /// 2026-11-30T12:00:00Z): each key's newest version not newer than it; keys deleted by
    /// then, or not yet written, are left out.
    #[arg(long, env = "LARDER_POINT_IN_TIME", value_name = "TIME", value_parser = parse_instant)]
    #[arg(help_heading = "Versions")]
    pub point_in_time: Option<std::time::SystemTime>,
    /// Objects in flight at once (at least 1). Small objects are latency-bound (each local
    /// file is fsynced), so many in flight pay off; large ones are held back by
    /// --max-buffer-memory.
    #[arg(long, short = 'j', visible_alias = "transfers", env = "LARDER_CONCURRENCY", default_value_t = 128, value_parser = parse_positive)]
    #[arg(help_heading = "Performance")]
    pub concurrency: usize,
    /// Memory the transfers in flight may hold together: each reserves its size, or for a
    /// large object its parts in flight plus one, and waits for room (`64Mi`, `1Gi`).
    #[arg(long, env = "LARDER_MAX_BUFFER_MEMORY", value_name = "SIZE", default_value = "64Mi", value_parser = parse_size)]
    #[arg(help_heading = "Performance")]
    pub max_buffer_memory: u64,
    /// Start at most N transfers a second, across all workers (s3sync's option; smooth, a
    /// token bucket).
    #[arg(long, env = "LARDER_RATE_LIMIT_OBJECTS", value_name = "N", value_parser = parse_positive)]
    #[arg(help_heading = "Performance")]
    pub rate_limit_objects: Option<usize>,
    /// Move at most SIZE bytes a second, across all workers and both directions (`10Mi`,
    /// `500K`): every byte read from the source, which is every byte written.
    #[arg(long, env = "LARDER_RATE_LIMIT_BANDWIDTH", value_name = "SIZE", value_parser = parse_rate_size)]
    #[arg(help_heading = "Performance")]
    pub rate_limit_bandwidth: Option<u64>,
    /// Do not guess a Content-Type from a key's extension when the source has none (the
    /// object then gets the server's default, `application/octet-stream` on S3).
    #[arg(
        long,
        visible_alias = "no-guess-content-type",
        env = "LARDER_NO_GUESS_MIME_TYPE"
    )]
    #[arg(help_heading = "Keys")]
    pub no_guess_mime_type: bool,
    /// Give each source key another destination key: a sed substitution
    /// `s/REGEX/REPLACEMENT/[g]` (any delimiter; `\1` for groups), e.g. `s/^raw\//clean\//`.
    /// --delete prunes the destination against the new keys. The source is listed whole and
    /// sorted first (memory grows with its number of keys); two keys made one fail by name.
    #[arg(
        long,
        env = "LARDER_TRANSFORM",
        value_name = "s/REGEX/REPL/",
        conflicts_with = "enable_versioning"
    )]
    #[arg(help_heading = "Keys")]
    pub transform: Option<String>,
    /// Write under PREFIX inside the destination (`s3://b/x --dest-prefix y/` writes to
    /// `s3://b/x/y/…`): --delete prunes only there.
    #[arg(long, env = "LARDER_DEST_PREFIX", value_name = "PREFIX")]
    #[arg(help_heading = "Keys")]
    pub dest_prefix: Option<String>,
    /// S3 → S3: always let the destination's server copy the objects (CopyObject /
    /// UploadPartCopy), even with other credentials (they must reach the source bucket) or
    /// when the copy's ETag cannot be checked against the source's. By default the server
    /// copies whenever both sides are on one endpoint with the same credentials and the copy
    /// can be verified; otherwise the bytes pass through larder. A server-side copy is not
    /// counted by --rate-limit-bandwidth.
    #[arg(
        long,
        env = "LARDER_SERVER_SIDE_COPY",
        conflicts_with = "no_server_side_copy"
    )]
    #[arg(help_heading = "Performance")]
    pub server_side_copy: bool,
    /// S3 → S3: never copy server-side; every byte passes through larder and is hashed.
    #[arg(long, env = "LARDER_NO_SERVER_SIDE_COPY")]
    #[arg(help_heading = "Performance")]
    pub no_server_side_copy: bool,
    /// Parts of one object in flight at once (at least 1).
    #[arg(long, env = "LARDER_PARTS_IN_FLIGHT", default_value_t = 4, value_parser = parse_positive)]
    #[arg(help_heading = "Performance")]
    pub parts_in_flight: usize,
    /// Part size of multipart uploads.
    #[arg(long, env = "LARDER_PART_SIZE", default_value = "8Mi", value_parser = parse_size)]
    #[arg(help_heading = "Performance")]
    pub part_size: u64,
    /// Objects larger than this are uploaded in parts.
    #[arg(long, env = "LARDER_MULTIPART_THRESHOLD", default_value = "8Mi", value_parser = parse_size)]
    #[arg(help_heading = "Performance")]
    pub multipart_threshold: u64,
    /// Stop at the first failed key (and delete nothing).
    #[arg(long, env = "LARDER_STOP_ON_ERROR")]
    #[arg(help_heading = "Run")]
    pub stop_on_error: bool,
    /// Further attempts of a failed transfer.
    #[arg(long, env = "LARDER_RETRIES", default_value_t = 3)]
    #[arg(help_heading = "Performance")]
    pub retries: u32,
    /// Modification times this close count as equal (e.g. `1s` for FAT file systems).
    #[arg(long, env = "LARDER_MODIFY_WINDOW", default_value = "0s", value_parser = humantime::parse_duration)]
    #[arg(help_heading = "Compare")]
    pub modify_window: std::time::Duration,
    /// Do not use the metadata cache in the state dir (size-mtime then hashes files or HEADs
    /// objects of equal size). Not to be confused with `larder cache`.
    #[arg(
        long = "no-meta-cache",
        alias = "no-cache",
        env = "LARDER_NO_META_CACHE"
    )]
    #[arg(help_heading = "Compare")]
    pub no_cache: bool,
    /// Where larder keeps its metadata cache.
    #[arg(long, env = "LARDER_STATE_DIR", value_name = "DIR")]
    #[arg(help_heading = "Run")]
    pub state_dir: Option<PathBuf>,
    /// Skip local symlinks instead of following them.
    #[arg(long, env = "LARDER_NO_FOLLOW_SYMLINKS")]
    #[arg(help_heading = "Run")]
    pub no_follow_symlinks: bool,
    #[command(flatten)]
    pub write: crate::write_args::WriteArgs,
    /// With --delete, also delete destination keys the filters leave out.
    #[arg(long, env = "LARDER_DELETE_EXCLUDED", requires = "delete")]
    #[arg(help_heading = "Deletion")]
    pub delete_excluded: bool,
    /// Only objects whose Content-Type matches this regex (one HEAD per object that would
    /// be transferred; a local file's type is guessed from its name).
    #[arg(
        long,
        env = "LARDER_FILTER_INCLUDE_CONTENT_TYPE_REGEX",
        value_name = "REGEX"
    )]
    #[arg(help_heading = "Filters on what a read tells")]
    pub filter_include_content_type_regex: Option<String>,
    /// Leave out objects whose Content-Type matches this regex.
    #[arg(
        long,
        env = "LARDER_FILTER_EXCLUDE_CONTENT_TYPE_REGEX",
        value_name = "REGEX"
    )]
    #[arg(help_heading = "Filters on what a read tells")]
    pub filter_exclude_content_type_regex: Option<String>,
    /// Only objects whose user metadata, as `k1=v1,k2=v2` (keys sorted), matches this regex.
    #[arg(
        long,
        env = "LARDER_FILTER_INCLUDE_METADATA_REGEX",
        value_name = "REGEX"
    )]
    #[arg(help_heading = "Filters on what a read tells")]
    pub filter_include_metadata_regex: Option<String>,
    /// Leave out objects whose user metadata matches this regex.
    #[arg(
        long,
        env = "LARDER_FILTER_EXCLUDE_METADATA_REGEX",
        value_name = "REGEX"
    )]
    #[arg(help_heading = "Filters on what a read tells")]
    pub filter_exclude_metadata_regex: Option<String>,
    /// Only objects whose tags, as `k1=v1&k2=v2` (keys sorted, URL-encoded), match this regex
    /// (one more request per object that would be transferred).
    #[arg(long, env = "LARDER_FILTER_INCLUDE_TAG_REGEX", value_name = "REGEX")]
    #[arg(help_heading = "Filters on what a read tells")]
    pub filter_include_tag_regex: Option<String>,
    /// Leave out objects whose tags match this regex.
    #[arg(long, env = "LARDER_FILTER_EXCLUDE_TAG_REGEX", value_name = "REGEX")]
    #[arg(help_heading = "Filters on what a read tells")]
    pub filter_exclude_tag_regex: Option<String>,
    #[command(flatten)]
    pub lua: crate::lua_args::LuaArgs,
    #[command(flatten)]
    pub progress: crate::progress::ProgressArgs,
}

#[derive(Debug, ClapArgs)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub pair: PairArgs,
    /// Also compare this additional checksum.
    #[arg(long, env = "LARDER_CHECKSUM_ALGORITHM", value_name = "ALGO", value_parser = checksum_algorithm())]
    #[arg(help_heading = "Compare")]
    pub checksum_algorithm: Option<larder_store::integrity::ChecksumAlgorithm>,
    /// Keys compared at once (at least 1).
    #[arg(long, short = 'j', env = "LARDER_CONCURRENCY", default_value_t = 16, value_parser = parse_positive)]
    #[arg(help_heading = "Performance")]
    pub concurrency: usize,
    /// Print only keys that differ.
    #[arg(long, env = "LARDER_ONLY_DIFFERENCES")]
    #[arg(help_heading = "Output")]
    pub only_differences: bool,
    /// Also compare system metadata (Content-Type, Cache-Control, Content-Encoding/
    /// -Disposition/-Language, Expires, website redirect) and user metadata of keys whose
    /// bytes match: one HEAD per side and key.
    #[arg(
        long,
        visible_alias = "report-metadata-sync-status",
        env = "LARDER_REPORT_METADATA"
    )]
    #[arg(help_heading = "Compare")]
    pub report_metadata: bool,
    /// Also compare the tags of keys whose bytes match: one request per side and key.
    #[arg(
        long,
        visible_alias = "report-tagging-sync-status",
        env = "LARDER_REPORT_TAGGING"
    )]
    #[arg(help_heading = "Compare")]
    pub report_tagging: bool,
    /// Compare the source (a versioned bucket) as it was at this instant (RFC 3339).
    #[arg(long, env = "LARDER_POINT_IN_TIME", value_name = "TIME", value_parser = parse_instant)]
    #[arg(help_heading = "Compare")]
    pub point_in_time: Option<std::time::SystemTime>,
    #[command(flatten)]
    pub progress: crate::progress::ProgressArgs,
}

/// The two locations of `sync` and `verify`, which keys to consider, and how to reach S3.
#[derive(Debug, ClapArgs)]
pub struct PairArgs {
    /// Source: a local directory, s3://bucket/prefix or cacache:///cache/dir.
    pub src: String,
    /// Destination: a local directory, s3://bucket/prefix or cacache:///cache/dir.
    pub dst: String,
    #[command(flatten)]
    pub filters: FilterArgs,
    #[command(flatten)]
    pub s3: S3Args,
    #[command(flatten)]
    pub sides: SideArgs,
}

#[derive(Debug, ClapArgs)]
pub struct LsArgs {
    /// A local directory, s3://bucket/prefix or cacache:///cache/dir.
    pub location: String,
    /// Every version and delete marker of each key, newest first (a versioned bucket).
    #[arg(long)]
    pub versions: bool,
    #[command(flatten)]
    pub s3: S3Args,
}

/// Parses a count that must be at least 1.
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// Parses a timeout: a duration (`500ms`, `10s`, `5m`) that is not zero.
pub fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "`{s}` is not a duration (e.g. 500ms, 10s, 5m): {e}"
        )),
    }
}

/// Parses `1234`, `10K`, `5M`, `1G` (powers of 1000) and `10Ki`, `8Mi`, `1Gi` (of 1024);
/// a trailing `B` is allowed.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 1048576, 10M, 8Mi)"))?;
    let mult: u64 = match unit {
        "" => 1,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return Err(format!("`{s}`: unknown size unit `{unit}`")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parses a bandwidth: a size a second that is not zero.
pub fn parse_rate_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err("must be more than zero bytes a second".to_owned()),
        n => Ok(n),
    }
}

/// Parses an RFC 3339 instant (`2026-11-30T12:00:00Z`, fractions and offsets allowed).
pub fn parse_instant(s: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .or_else(|_| humantime::parse_rfc3339(s.trim()))
        .map_err(|_| format!("`{s}` is not an RFC 3339 time (e.g. 2026-11-30T12:00:00Z)"))
}

/// Parses an RFC 3339 time or an age before now (`7d`, `12h`).
pub fn parse_time(s: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let age = humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is neither an RFC 3339 time nor an age such as 7d"))?;
    std::time::SystemTime::now()
        .checked_sub(age)
        .ok_or_else(|| format!("`{s}` is too far back"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1234"), Ok(1234));
        assert_eq!(parse_size("10K"), Ok(10_000));
        assert_eq!(parse_size("8Mi"), Ok(8 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5Q").is_err());
    }

    #[test]
    fn times() {
        assert!(parse_time("2024-01-02T03:04:05Z").is_ok());
        let week = parse_time("7d").unwrap();
        assert!(week < std::time::SystemTime::now());
        assert!(parse_time("yesterday-ish").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}

#[derive(Debug, ClapArgs)]
pub struct CacheArgs {
    /// The cache directory (default: the user cache directory's `larder/cacache`).
    #[arg(long, global = true, env = "LARDER_CACHE", value_name = "DIR")]
    pub cache: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Store FILE (or standard input) under KEY; prints its integrity.
    Put {
        /// The key.
        key: String,
        /// The file; `-` or nothing for standard input.
        file: Option<PathBuf>,
    },
    /// Write KEY's content, verified, to FILE (or standard output).
    Get {
        /// The key.
        key: String,
        /// The file; `-` or nothing for standard output.
        file: Option<PathBuf>,
    },
    /// Show KEY's entry.
    Info {
        /// The key.
        key: String,
    },
    /// List the entries.
    Ls,
    /// Remove KEY's entry (content goes at the next gc).
    Rm {
        /// The key.
        key: String,
    },
    /// Check every entry and content file; change nothing; exit 3 if anything is wrong.
    Verify {
        #[command(flatten)]
        progress: crate::progress::ProgressArgs,
    },
    /// Remove corrupt and unreferenced content, dead entries and stale temp files.
    Gc {
        /// Temp files older than this are stale.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        stale_after: std::time::Duration,
        #[command(flatten)]
        progress: crate::progress::ProgressArgs,
    },
    /// Remove everything in the cache.
    Clear,
    /// Sync the cache with a bucket in kache's v3 layout: pull what the project's lockfiles
    /// need, push what it built (both by default).
    Sync(Box<CacheSyncArgs>),
}

/// `larder cache sync`.
#[derive(Debug, ClapArgs)]
pub struct CacheSyncArgs {
    /// The bucket location, s3://bucket[/prefix].
    #[arg(env = "LARDER_CACHE_REMOTE", value_name = "S3_URL")]
    pub remote: String,
    /// Only download.
    #[arg(long, conflicts_with = "push")]
    pub pull: bool,
    /// Only upload.
    #[arg(long)]
    pub push: bool,
    /// Ignore the lockfile filters: pull and push every namespace.
    #[arg(long)]
    pub all: bool,
    /// Print the plan (`Plan: pull N artifacts, push M artifacts`, a line per artifact);
    /// transfer nothing.
    #[arg(short = 'n', long, visible_alias = "dryrun")]
    pub dry_run: bool,
    /// The Cargo.toml whose workspace members are pushed (push only; the pull filter always
    /// reads the current directory's lockfiles).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// The layout's prefix inside the bucket location.
    #[arg(long, default_value = "artifacts", value_name = "P")]
    pub prefix: String,
    /// The namespace of cache entries that have none (not npm's, no `namespace` metadata).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Concurrent transfers.
    #[arg(long, env = "LARDER_S3_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub concurrency: u32,
    /// Exit 0 even when some artifacts failed (they are still reported).
    #[arg(long)]
    pub allow_partial: bool,
    /// Refuse packs that unpack to more than this.
    #[arg(long, default_value = "8GiB", value_parser = parse_size, value_name = "SIZE")]
    pub max_unpacked_size: u64,
    /// The zstd level of packs pushed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub compression_level: i32,
    #[command(flatten)]
    pub s3: S3Args,
}

/// `--compare`'s values, listed by `--help` and completed by the shells.
fn compare_mode() -> impl clap::builder::TypedValueParser<Value = larder_sync::CompareMode> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["size-mtime", "size", "etag", "checksum"])
        .map(|v| v.parse().expect("one of the listed values"))
}

/// `--checksum-algorithm`'s values, listed by `--help` and completed by the shells.
fn checksum_algorithm(
) -> impl clap::builder::TypedValueParser<Value = larder_store::integrity::ChecksumAlgorithm> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["crc64nvme", "crc32c", "crc32", "sha256", "sha1"])
        .map(|v| v.parse().expect("one of the listed values"))
}
