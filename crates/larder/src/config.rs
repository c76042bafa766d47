//! The optional config file: defaults for any option, and named remotes.
//!
//! ```toml
//! # $XDG_CONFIG_HOME/larder/config.toml (~/.config/larder/config.toml; LARDER_CONFIG=FILE
//! # for another, LARDER_CONFIG= for none)
//! [defaults]                  # any option, by its long name: one value each
//! concurrency = 64
//! checksum-algorithm = "crc32c"
//!
//! [remotes.garage]            # `garage:bucket/prefix` is s3://bucket/prefix on this server
//! endpoint-url = "http://127.0.0.1:3900"
//! region = "garage"
//! profile = "garage"
//! ```
//!
//! Precedence: a flag, then its environment variable, then the file, then the built-in
//! default. A default is applied by setting the option's environment variable
//! (`LARDER_CONCURRENCY`) before the arguments are parsed, unless it is already set, so
//! clap's own flag > env > default order does the rest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

/// A named remote: where `NAME:bucket/prefix` points.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Remote {
    /// Its endpoint URL.
    pub endpoint_url: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// The AWS profile with its credentials.
    pub profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: BTreeMap<String, toml::Value>,
    #[serde(default)]
    remotes: BTreeMap<String, Remote>,
}

static REMOTES: OnceLock<BTreeMap<String, Remote>> = OnceLock::new();

/// The config file in force: `LARDER_CONFIG` (empty: none), else the platform's config
/// directory's `larder/config.toml` when it exists.
fn path() -> Option<PathBuf> {
    match std::env::var_os("LARDER_CONFIG") {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::config_dir()
            .map(|d| d.join("larder").join("config.toml"))
            .filter(|p| p.exists()),
    }
}

/// Reads the config file, if any: sets the environment variable of each default not already
/// set, and keeps the remotes. `known` are the environment variables options read.
///
/// # Errors
///
/// A file that cannot be read or parsed, an unknown option or a value that is not one
/// string, number or boolean: one line naming the file and the key.
pub fn load(known: &[String]) -> Result<(), String> {
    let Some(path) = path() else {
        let _ = REMOTES.set(BTreeMap::new());
        return Ok(());
    };
    let file = read(&path)?;
    let shown = path.display();
    for (key, value) in &file.defaults {
        let var = format!("LARDER_{}", key.replace('-', "_").to_ascii_uppercase());
        if !known.contains(&var) {
            return Err(format!(
                "config file {shown}: `{key}` is not an option (defaults are options by their long name, such as `concurrency`)"
            ));
        }
        let text = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "config file {shown}: `{key}` must be one string, number or boolean, not {}",
                    other.type_str()
                ))
            }
        };
        if std::env::var_os(&var).is_none() {
            // Single-threaded here: before the runtime or any other thread starts.
            std::env::set_var(&var, text);
        }
    }
    let _ = REMOTES.set(file.remotes);
    Ok(())
}

fn read(path: &Path) -> Result<File, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let first = e.to_string();
        let first = first.lines().last().unwrap_or_default().trim().to_owned();
        format!("config file {}: {first}", path.display())
    })
}

/// `NAME:bucket/prefix` with NAME a remote of the config file: the `s3://` URL and the
/// remote. Anything else (a path, an `s3://` URL, an unknown name) is `None`.
pub fn remote(location: &str) -> Option<(String, Remote)> {
    let (name, rest) = location.split_once(':')?;
    if rest.starts_with("//") || name.contains('/') {
        return None;
    }
    let r = REMOTES.get()?.get(name)?;
    Some((format!("s3://{rest}"), r.clone()))
}

/// Rewrites a sync's or verify's `NAME:bucket/prefix` locations into `s3://` URLs, with the
/// remote's endpoint, region and profile for that side (where no flag set them).
pub fn resolve_pair(pair: &mut crate::cli::PairArgs) {
    let sides = &mut pair.sides;
    if let Some((url, r)) = remote(&pair.src) {
        pair.src = url;
        fill(&mut sides.source_endpoint_url, r.endpoint_url);
        fill(&mut sides.source_region, r.region);
        fill(&mut sides.source_profile, r.profile);
    }
    if let Some((url, r)) = remote(&pair.dst) {
        pair.dst = url;
        fill(&mut sides.target_endpoint_url, r.endpoint_url);
        fill(&mut sides.target_region, r.region);
        fill(&mut sides.target_profile, r.profile);
    }
}

/// As [`resolve_pair`], for a command of one location.
pub fn resolve_one(location: &mut String, s3: &mut crate::cli::S3Args) {
    if let Some((url, r)) = remote(location) {
        *location = url;
        fill(&mut s3.endpoint_url, r.endpoint_url);
        fill(&mut s3.region, r.region);
        fill(&mut s3.profile, r.profile);
    }
}

fn fill(slot: &mut Option<String>, value: Option<String>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// Every environment variable the options of `cmd` and its subcommands read.
pub fn known_env(cmd: &clap::Command) -> Vec<String> {
    let mut out: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for sub in cmd.get_subcommands() {
        out.extend(known_env(sub));
    }
    out
}
