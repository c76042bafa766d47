//! The subcommands.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt;
use larder_store::{ErrorKind, LocalStore, S3Options, S3Store, S3Url, Store};

use crate::cli::{Args, Command, LsArgs, S3Args};
use crate::exit;

pub async fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Command::Ls(ls) => run_ls(ls, args.global.json).await,
    }
}

/// `hint:` lines for an error, from its kind.
pub fn hints(e: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in e.chain() {
        if let Some(se) = cause.downcast_ref::<larder_store::Error>() {
            match se.kind() {
                ErrorKind::PermissionDenied => out.push(
                    "check the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, --profile) and the bucket's policy".to_owned(),
                ),
                ErrorKind::Transient if se.detail().is_some_and(|d| d.contains("could not reach")) => out.push(
                    "is the server running, and is --endpoint-url right?".to_owned(),
                ),
                _ => {}
            }
            break;
        }
    }
    out
}

pub fn s3_options(a: &S3Args) -> S3Options {
    S3Options {
        endpoint_url: a.endpoint_url.clone(),
        region: a.region.clone(),
        profile: a.profile.clone(),
        force_path_style: a.path_style,
        ..S3Options::default()
    }
}

/// Opens a location: `s3://…` or a local path.
pub async fn open(location: &str, s3: &S3Args) -> anyhow::Result<Arc<dyn Store>> {
    if location.starts_with("s3://") {
        let url = S3Url::parse(location)?;
        let store = S3Store::new(url, s3_options(s3)).await?;
        Ok(Arc::new(store))
    } else if location.contains("://") {
        anyhow::bail!("`{location}` is neither a local path nor an s3:// URL")
    } else {
        Ok(Arc::new(LocalStore::new(location)))
    }
}

async fn run_ls(a: LsArgs, json: bool) -> anyhow::Result<i32> {
    let store = open(&a.location, &a.s3).await?;
    let mut list = store.list("");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut errors = 0usize;
    while let Some(item) = list.next().await {
        match item {
            Ok(e) => {
                let mtime = e
                    .last_modified
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string())
                    .unwrap_or_default();
                if json {
                    writeln!(
                        out,
                        "{{\"key\":{},\"size\":{},\"last_modified\":{},\"etag\":{}}}",
                        json_str(e.key.as_str()),
                        e.size,
                        json_str(&mtime),
                        e.etag
                            .as_deref()
                            .map(json_str)
                            .unwrap_or_else(|| "null".into())
                    )?;
                } else {
                    writeln!(out, "{:>12}  {:20}  {}", e.size, mtime, e.key)?;
                }
            }
            Err(e) => {
                out.flush()?;
                errors += 1;
                if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::PermissionDenied {
                    return Err(e).with_context(|| format!("cannot list `{}`", a.location));
                }
                eprintln!("larder: error: {e}");
            }
        }
    }
    out.flush()?;
    Ok(if errors > 0 { exit::ERROR } else { exit::OK })
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
