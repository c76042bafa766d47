//! `larder cache …`: the local content-addressed cache.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use larder_cache::{Cache, Entry, WriteOptions};
use serde_json::json;

use crate::cli::{CacheArgs, CacheCommand};
use crate::exit;

/// The cache directory of `--cache DIR` (default: [`default_dir`]). npm's cache root (`~/.npm`,
/// or what `npm --cache DIR` was given) holds the cacache in `_cacache/`: given such a root
/// (a `_cacache` directory inside, no `index-v5` of its own), that is the cache.
pub(crate) fn cache_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match given {
        Some(d) => d,
        None => return default_dir(),
    };
    let npm = dir.join("_cacache");
    if npm.is_dir() && !dir.join("index-v5").exists() {
        return Ok(npm);
    }
    Ok(dir)
}

pub(crate) fn default_dir() -> anyhow::Result<PathBuf> {
    // $XDG_CACHE_HOME (~/.cache) on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on
    // Windows.
    let cache =
        dirs::cache_dir().context("no --cache given and no home directory to default to")?;
    Ok(cache.join("larder/cacache"))
}

fn entry_json(e: &Entry) -> serde_json::Value {
    let ms = e
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    json!({"key": e.key, "integrity": e.integrity.to_string(), "size": e.size,
           "time": ms, "metadata": e.metadata, "path": e.path})
}

fn is_stdio(f: &Option<PathBuf>) -> bool {
    f.as_deref().is_none_or(|p| p == Path::new("-"))
}

pub fn run(a: CacheArgs, json: bool, quiet: bool) -> anyhow::Result<i32> {
    let dir = cache_dir(a.cache)?;
    let cache = Cache::new(&dir);
    match a.command {
        CacheCommand::Put { key, file } => {
            let mut w = cache.writer(Some(&key), WriteOptions::default())?;
            if is_stdio(&file) {
                std::io::copy(&mut std::io::stdin().lock(), &mut w)
                    .context("reading standard input")?;
            } else {
                let path = file.expect("a file");
                let mut f = std::fs::File::open(&path)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
                std::io::copy(&mut f, &mut w)
                    .with_context(|| format!("cannot read `{}`", path.display()))?;
            }
            let sri = w.commit()?;
            if json {
                println!("{}", json!({"key": key, "integrity": sri.to_string()}));
            } else if !quiet {
                println!("{sri}");
            }
            Ok(exit::OK)
        }
        CacheCommand::Get { key, file } => {
            if is_stdio(&file) {
                // Standard output cannot take bytes back: check first, then stream.
                let mut r = cache.reader(&key)?;
                std::io::copy(&mut r, &mut std::io::sink())?;
                r.check()?;
                let mut r = cache.reader(&key)?;
                std::io::copy(&mut r, &mut std::io::stdout().lock())?;
                r.check()?;
            } else {
                let path = file.expect("a file");
                copy_verified(&cache, &key, &path)?;
            }
            Ok(exit::OK)
        }
        CacheCommand::Info { key } => {
            let e = cache
                .info(&key)?
                .ok_or_else(|| larder_cache::Error::EntryNotFound(key.clone()))?;
            if json {
                println!("{}", entry_json(&e));
            } else {
                println!("key        {}", e.key);
                println!("integrity  {}", e.integrity);
                println!(
                    "size       {}",
                    e.size.map(|s| s.to_string()).unwrap_or_default()
                );
                println!("time       {}", humantime::format_rfc3339_millis(e.time));
                println!("path       {}", e.path.display());
                if let Some(m) = &e.metadata {
                    println!("metadata   {m}");
                }
            }
            Ok(exit::OK)
        }
        CacheCommand::Ls => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for e in cache.ls()? {
                if json {
                    writeln!(out, "{}", entry_json(&e))?;
                } else {
                    writeln!(
                        out,
                        "{:>12}  {}  {}",
                        e.size.unwrap_or(0),
                        e.integrity,
                        e.key
                    )?;
                }
            }
            out.flush()?;
            Ok(exit::OK)
        }
        CacheCommand::Rm { key } => {
            if cache.info(&key)?.is_none() {
                return Err(larder_cache::Error::EntryNotFound(key).into());
            }
            cache.rm_entry(&key)?;
            Ok(exit::OK)
        }
        CacheCommand::Verify { progress } => {
            let st = checked(
                &cache,
                Duration::from_secs(3600),
                false,
                &progress,
                json,
                quiet,
            )?;
            report(&st, json, quiet, "would remove");
            let bad = st.bad_content + st.rejected_entries > 0;
            Ok(if bad { exit::WARNING } else { exit::OK })
        }
        CacheCommand::Gc {
            stale_after,
            progress,
        } => {
            let st = checked(&cache, stale_after, true, &progress, json, quiet)?;
            report(&st, json, quiet, "removed");
            Ok(exit::OK)
        }
        CacheCommand::Clear => {
            cache.clear()?;
            Ok(exit::OK)
        }
        CacheCommand::Sync(_) => unreachable!("`cache sync` is run by cache_sync_cmd"),
    }
}

/// Checks (or, with `repair`, collects) the cache with progress: content files checked
/// and their bytes.
fn checked(
    cache: &larder_cache::Cache,
    stale: Duration,
    repair: bool,
    args: &crate::progress::ProgressArgs,
    json: bool,
    quiet: bool,
) -> anyhow::Result<larder_cache::VerifyStats> {
    let progress = crate::progress::Progress::start(args.mode(json, quiet), json, "files", false);
    let p = progress.clone();
    let st = cache.verify_reporting(stale, repair, &move |_size| p.tick());
    progress.finish();
    Ok(st?)
}

fn report(st: &larder_cache::VerifyStats, json: bool, quiet: bool, verb: &str) {
    if json {
        println!(
            "{}",
            json!({"verified_content": st.verified_content, "bad_content": st.bad_content,
                   "reclaimed_count": st.reclaimed_count, "reclaimed_size": st.reclaimed_size,
                   "total_entries": st.total_entries, "rejected_entries": st.rejected_entries,
                   "removed_tmp": st.removed_tmp})
        );
    } else if !quiet {
        println!(
            "{} content files verified, {} entries; {verb}: {} corrupt, {} unreferenced ({} bytes), {} dead entries, {} stale temp files",
            st.verified_content, st.total_entries, st.bad_content, st.reclaimed_count,
            st.reclaimed_size, st.rejected_entries, st.removed_tmp
        );
    }
}

/// Streams KEY's content into a temp file beside `dest`, checks it, then renames.
fn copy_verified(cache: &Cache, key: &str, dest: &Path) -> anyhow::Result<()> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut r = cache.reader(key)?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in `{}`", dir.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        tmp.write_all(&buf[..n])
            .with_context(|| format!("cannot write `{}`", dest.display()))?;
    }
    r.check()?; // a corrupt read is dropped with the temp file
    tmp.as_file().sync_all()?;
    tmp.persist(dest)
        .with_context(|| format!("cannot write `{}`", dest.display()))?;
    Ok(())
}
