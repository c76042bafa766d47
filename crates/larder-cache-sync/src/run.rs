//! Plan (list, compare) and execute (pull, push) a cache sync.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use larder_cache::Cache;
use larder_store::integrity::{etag_part_count, normalize_etag, Hasher};
use larder_store::{Body, ErrorKind, GetOptions, Key, PutOptions, Store};
use serde_json::json;

use crate::layout::{Layout, Manifest, MANIFEST_VERSION};
use crate::local::{self, group_key, Artifact, Source};
use crate::lockfile::{self, Filter};
use crate::meta::{CachedFile, EntryMeta, LarderEntry};
use crate::pack::{self, Expect, Limits, PackWriter};
use crate::{Error, Result};

/// Which way to sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Pull what is missing, then push what is new.
    #[default]
    Both,
    /// Only download.
    Pull,
    /// Only upload.
    Push,
}

/// What to sync, and how.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Which way.
    pub direction: Direction,
    /// Ignore the lockfile filters.
    pub all: bool,
    /// Where the lockfiles are looked for (see [`crate::lockfile`]).
    pub project_dir: PathBuf,
    /// `--manifest-path`: the Cargo workspace whose members are pushed.
    pub manifest_path: Option<PathBuf>,
    /// The layout's prefix in the bucket location (kache's default `artifacts`).
    pub prefix: String,
    /// The bucket location's own prefix (`s3://bucket/<this>`), written into manifests'
    /// `pack_key`.
    pub location_prefix: String,
    /// The namespace of cache entries that have none.
    pub namespace: Option<String>,
    /// Concurrent transfers.
    pub concurrency: usize,
    /// The zstd level of packs.
    pub level: i32,
    /// Bounds on packs read.
    pub limits: Limits,
}

larder_store::with_setters!(Options {
    with_direction => direction: Direction,
    with_all => all: bool,
    with_project_dir => project_dir: PathBuf,
    with_manifest_path => manifest_path: Option<PathBuf>,
    with_prefix => prefix: String,
    with_location_prefix => location_prefix: String,
    with_namespace => namespace: Option<String>,
    with_concurrency => concurrency: usize,
    with_level => level: i32,
    with_limits => limits: Limits,
});

impl Default for Options {
    fn default() -> Self {
        Options {
            direction: Direction::Both,
            all: false,
            project_dir: PathBuf::from("."),
            manifest_path: None,
            prefix: crate::layout::DEFAULT_PREFIX.to_owned(),
            location_prefix: String::new(),
            namespace: None,
            concurrency: 16,
            level: 3,
            limits: Limits::default(),
        }
    }
}

/// One artifact to pull.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Planned {
    /// Its namespace.
    pub namespace: String,
    /// Its cache key.
    pub cache_key: String,
}

/// What a sync would do: data, printed by a dry run and carried out by [`execute`].
#[derive(Debug, Default)]
pub struct Plan {
    /// Artifacts to download, by namespace and cache key.
    pub pull: Vec<Planned>,
    /// Artifacts to upload, by namespace and cache key.
    pub push: Vec<Artifact>,
    /// How the filters were made, and warnings.
    pub notes: Vec<String>,
    /// Prefixes listed: one per namespace, or 1 for the whole `manifests/` tree (each is
    /// one LIST request per 1,000 manifests).
    pub listed_prefixes: u64,
    /// Local entries with no namespace (never pushed).
    pub without_namespace: u64,
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn short(cache_key: &str) -> &str {
    &cache_key[..cache_key.len().min(16)]
}

impl Plan {
    /// kache's dry-run text: `Plan: pull N artifacts, push M artifacts`, then one line per
    /// artifact, `pull <16 hex>... (namespace)`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "Plan: pull {} artifact{}, push {} artifact{}\n",
            self.pull.len(),
            plural(self.pull.len()),
            self.push.len(),
            plural(self.push.len())
        );
        for p in &self.pull {
            out.push_str(&format!(
                "pull {}... ({})\n",
                short(&p.cache_key),
                p.namespace
            ));
        }
        for p in &self.push {
            out.push_str(&format!(
                "push {}... ({})\n",
                short(&p.cache_key),
                p.namespace
            ));
        }
        out
    }
}

/// Lists the manifests of `namespaces` (`None`: all of them), one LIST stream per namespace,
/// `concurrency` at a time. Returns (namespace, cache key) pairs and the LIST streams run.
async fn list_remote(
    store: &Arc<dyn Store>,
    layout: &Layout,
    namespaces: Option<&BTreeSet<String>>,
    concurrency: usize,
) -> Result<(BTreeSet<(String, String)>, u64)> {
    let prefixes: Vec<String> = match namespaces {
        None => vec![layout.manifests()],
        Some(set) => set
            .iter()
            .map(|ns| layout.namespace_manifests(ns))
            .collect(),
    };
    let n = prefixes.len() as u64;
    let found: Vec<Vec<(String, String)>> = futures::stream::iter(prefixes)
        .map(|prefix| {
            let store = store.clone();
            let layout = layout.clone();
            async move {
                let mut out = Vec::new();
                let mut s = store.list(&prefix);
                while let Some(e) = s.try_next().await? {
                    if let Some(pair) = layout.parse_manifest_key(e.key.as_str()) {
                        out.push(pair);
                    }
                }
                Ok::<_, Error>(out)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok((found.into_iter().flatten().collect(), n))
}

/// Lists what is needed and compares it with the cache: what to pull, what to push.
///
/// # Errors
///
/// A listing that fails, an unreadable cache index, a lockfile that does not parse.
pub async fn plan(store: &Arc<dyn Store>, cache: &Cache, opts: &Options) -> Result<Plan> {
    let layout = Layout::new(&opts.prefix);
    let mut plan = Plan::default();
    let pull_filter = match opts.direction {
        Direction::Push => None,
        _ if opts.all => Some(Filter::All),
        _ => {
            let sel = lockfile::pull_filter(&opts.project_dir)?;
            plan.notes
                .extend(sel.notes.into_iter().map(|n| format!("pull: {n}")));
            Some(sel.filter)
        }
    };
    let scan = {
        let cache = cache.clone();
        let ns = opts.namespace.clone();
        tokio::task::spawn_blocking(move || local::scan(&cache, ns.as_deref()))
            .await
            .expect("the scan does not panic")?
    };
    plan.without_namespace = scan.without_namespace;
    let push_filter = match opts.direction {
        Direction::Pull => None,
        _ if opts.all => Some(Filter::All),
        _ => {
            let (dir, mp) = (opts.project_dir.clone(), opts.manifest_path.clone());
            let sel =
                tokio::task::spawn_blocking(move || lockfile::push_filter(&dir, mp.as_deref()))
                    .await
                    .expect("the filter does not panic")?;
            plan.notes
                .extend(sel.notes.into_iter().map(|n| format!("push: {n}")));
            Some(sel.filter)
        }
    };
    let candidates: Vec<&Artifact> = match &push_filter {
        None => Vec::new(),
        Some(f) => scan
            .artifacts
            .values()
            .filter(|a| f.admits(&a.namespace))
            .collect(),
    };
    // One listing serves both directions: everything when the pull takes every namespace,
    // else just the namespaces pulled or pushed.
    let to_list = match &pull_filter {
        Some(Filter::All) => None,
        other => {
            let mut set: BTreeSet<String> = match other {
                Some(Filter::Only(s)) => s.clone(),
                _ => BTreeSet::new(),
            };
            set.extend(candidates.iter().map(|a| a.namespace.clone()));
            Some(set)
        }
    };
    let (remote, listed) = list_remote(store, &layout, to_list.as_ref(), opts.concurrency).await?;
    plan.listed_prefixes = listed;
    if let Some(f) = &pull_filter {
        plan.pull = remote
            .iter()
            .filter(|(ns, ck)| f.admits(ns) && !scan.artifacts.contains_key(ck))
            .map(|(ns, ck)| Planned {
                namespace: ns.clone(),
                cache_key: ck.clone(),
            })
            .collect();
    }
    let mut push: Vec<Artifact> = candidates
        .into_iter()
        .filter(|a| !remote.contains(&(a.namespace.clone(), a.cache_key.clone())))
        .cloned()
        .collect();
    push.sort_by(|a, b| (&a.namespace, &a.cache_key).cmp(&(&b.namespace, &b.cache_key)));
    plan.push = push;
    Ok(plan)
}

/// One failed artifact.
#[derive(Debug)]
pub struct Failure {
    /// `pull` or `push`.
    pub direction: Direction,
    /// Its namespace.
    pub namespace: String,
    /// Its cache key.
    pub cache_key: String,
    /// Why.
    pub error: Error,
}

impl Failure {
    /// Whether it was a miss (a manifest without its pack).
    pub fn is_miss(&self) -> bool {
        matches!(self.error, Error::Miss(_))
    }
}

/// What [`execute`] did.
#[derive(Debug, Default)]
pub struct Report {
    /// Artifacts downloaded and imported.
    pub pulled: u64,
    /// Artifacts uploaded (pack and manifest).
    pub pushed: u64,
    /// Artifacts another process put in the cache meanwhile (not downloaded again), or
    /// pulled entries older than the cache's own for the same key (not imported).
    pub already_present: u64,
    /// Local entries removed before they could be pushed (skipped).
    pub vanished: u64,
    /// Compressed bytes downloaded.
    pub bytes_down: u64,
    /// Bytes uploaded (packs and manifests).
    pub bytes_up: u64,
    /// The failures.
    pub failures: Vec<Failure>,
}

enum Pulled {
    Imported { compressed: u64 },
    Present,
}

enum Pushed {
    Uploaded { bytes: u64 },
    Vanished,
}

/// Carries out a plan: pulls first, then pushes, each `opts.concurrency` at a time. An
/// artifact that fails is recorded and the others go on.
pub async fn execute(store: &Arc<dyn Store>, cache: &Cache, plan: &Plan, opts: &Options) -> Report {
    let layout = Layout::new(&opts.prefix);
    let mut report = Report::default();
    let conc = opts.concurrency.max(1);
    let mut pulls = futures::stream::iter(plan.pull.iter())
        .map(|p| {
            let (store, cache, layout) = (store.clone(), cache.clone(), layout.clone());
            async move { (p, pull_one(&store, &cache, &layout, p, opts.limits).await) }
        })
        .buffer_unordered(conc);
    while let Some((p, r)) = pulls.next().await {
        match r {
            Ok(Pulled::Imported { compressed }) => {
                report.pulled += 1;
                report.bytes_down += compressed;
            }
            Ok(Pulled::Present) => report.already_present += 1,
            Err(error) => report.failures.push(Failure {
                direction: Direction::Pull,
                namespace: p.namespace.clone(),
                cache_key: p.cache_key.clone(),
                error,
            }),
        }
    }
    drop(pulls);
    let mut pushes = futures::stream::iter(plan.push.iter())
        .map(|a| {
            let (store, cache, layout) = (store.clone(), cache.clone(), layout.clone());
            async move { (a, push_one(&store, &cache, &layout, a, opts).await) }
        })
        .buffer_unordered(conc);
    while let Some((a, r)) = pushes.next().await {
        match r {
            Ok(Pushed::Uploaded { bytes }) => {
                report.pushed += 1;
                report.bytes_up += bytes;
            }
            Ok(Pushed::Vanished) => report.vanished += 1,
            Err(error) => report.failures.push(Failure {
                direction: Direction::Push,
                namespace: a.namespace.clone(),
                cache_key: a.cache_key.clone(),
                error,
            }),
        }
    }
    report
}

/// A reader that hashes (MD5) what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

async fn pull_one(
    store: &Arc<dyn Store>,
    cache: &Cache,
    layout: &Layout,
    p: &Planned,
    limits: Limits,
) -> Result<Pulled> {
    // Another sync (or kache-style import) may have landed it meanwhile.
    let marker = group_key(&p.namespace, &p.cache_key, "meta.json");
    if cache.exists(&marker)? {
        return Ok(Pulled::Present);
    }
    let pack_key = layout.pack_key(&p.namespace, &p.cache_key);
    let key = Key::new(&pack_key).map_err(|e| Error::Local {
        key: pack_key.clone(),
        reason: e.to_string(),
    })?;
    let got = match store.get(&key, GetOptions::default()).await {
        Ok(g) => g,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::Miss(store.location(&pack_key)))
        }
        Err(e) => return Err(e.into()),
    };
    let etag = got.meta.etag.clone();
    let body = got.body.map_err(|e| std::io::Error::other(e.to_string()));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body));
    let (cache2, p2, location) = (cache.clone(), p.clone(), store.location(&pack_key));
    tokio::task::spawn_blocking(move || {
        let mut tee = HashingReader {
            inner: reader,
            hasher: Hasher::new(),
        };
        let expect = Expect {
            namespace: &p2.namespace,
            cache_key: &p2.cache_key,
        };
        let bad = |source| Error::Pack {
            key: location.clone(),
            source,
        };
        let unpacked = pack::read_pack(&mut tee, expect, &cache2, &limits).map_err(bad)?;
        let digests = tee.hasher.finish();
        let md5 = digests.md5_hex().unwrap_or_default();
        // A single-part ETag is the MD5 of the bytes: the download is checked end to end.
        if let Some(etag) = etag
            .map(|e| normalize_etag(&e))
            .filter(|e| etag_part_count(e).is_none())
        {
            if etag != md5 {
                return Err(bad(pack::PackError::Refused(format!(
                    "the bytes read have MD5 {md5}, the object's ETag is {etag}"
                ))));
            }
        }
        Ok(match import(&cache2, &p2, unpacked)? {
            true => Pulled::Imported {
                compressed: digests.size,
            },
            false => Pulled::Present,
        })
    })
    .await
    .expect("an import does not panic")
}

/// Milliseconds since the epoch, as cache entries record time.
fn ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Makes a checked pack visible in the cache: a cache entry under its own key, or a kache
/// entry's files and then its `meta.json`. `false`: not imported, because the cache holds
/// that entry already, or a newer one for its key (an older packument, say).
fn import(cache: &Cache, p: &Planned, u: pack::Unpacked) -> Result<bool> {
    if let Some(entry) = &u.meta.larder {
        let (_, staged) = u.files.into_iter().next().expect("checked: one file");
        if let Some(have) = cache.info(&entry.key)? {
            if have.integrity.to_string() == entry.integrity || ms(have.time) > entry.time {
                return Ok(false);
            }
        }
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(entry.time);
        staged.commit_at(Some(&entry.key), entry.metadata.clone(), time)?;
        return Ok(true);
    }
    for (f, staged) in u.files {
        let metadata = json!({"namespace": p.namespace,
            "kache": {"cache_key": p.cache_key, "blake3": f.hash, "executable": f.executable}});
        staged.commit(
            Some(&group_key(&p.namespace, &p.cache_key, &f.name)),
            Some(metadata),
        )?;
    }
    let metadata = json!({"namespace": p.namespace,
        "kache": {"cache_key": p.cache_key, "files": u.meta.files.len()}});
    cache.put_with(
        &group_key(&p.namespace, &p.cache_key, "meta.json"),
        &u.meta_json,
        larder_cache::WriteOptions::default().with_metadata(Some(metadata)),
    )?;
    Ok(true)
}

/// The BLAKE3 and size of content, read once and checked against its integrity. A single
/// entry's pack needs them in `meta.json`, ahead of the file: its content is read twice
/// (here, then into the pack, checked again); a kache entry's `meta.json` has them already.
fn blake3_of(cache: &Cache, sri: &larder_cache::Integrity) -> larder_cache::Result<(String, u64)> {
    let mut r = cache.reader_hash(sri)?;
    let mut h = blake3::Hasher::new();
    let n = std::io::copy(&mut r, &mut h).map_err(|e| larder_cache::Error::Io {
        op: "read",
        path: cache.content_path(sri),
        source: e,
    })?;
    r.check()?;
    Ok((h.finalize().to_hex().to_string(), n))
}

/// Packs content, checked against its integrity; returns the BLAKE3 of what was packed.
fn add_checked(
    w: &mut PackWriter,
    cache: &Cache,
    sri: &larder_cache::Integrity,
    name: &str,
    size: u64,
    executable: bool,
) -> larder_cache::Result<String> {
    struct Blake3Reader<R> {
        inner: R,
        hasher: blake3::Hasher,
    }
    impl<R: std::io::Read> std::io::Read for Blake3Reader<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.hasher.update(&buf[..n]);
            Ok(n)
        }
    }
    let mut r = Blake3Reader {
        inner: cache.reader_hash(sri)?,
        hasher: blake3::Hasher::new(),
    };
    w.add(name, size, executable, &mut r)
        .map_err(|e| larder_cache::Error::Io {
            op: "pack",
            path: cache.content_path(sri),
            source: e,
        })?;
    let hash = r.hasher.finalize().to_hex().to_string();
    r.inner.check()?;
    Ok(hash)
}

/// A pack of an artifact: its bytes, unpacked size and file count. `None`: the entry is gone.
fn build_pack(cache: &Cache, a: &Artifact, level: i32) -> Result<Option<(Vec<u8>, u64, usize)>> {
    let gone = |e: &larder_cache::Error| {
        matches!(
            e,
            larder_cache::Error::EntryNotFound(_) | larder_cache::Error::ContentNotFound(_)
        )
    };
    // Errors name the entry as the cache knows it: its own key, or the kache entry's
    // `meta.json` key.
    let named = match &a.source {
        Source::Entry(e) => e.key.clone(),
        Source::Group => group_key(&a.namespace, &a.cache_key, "meta.json"),
    };
    let io = |e: std::io::Error| Error::Local {
        key: named.clone(),
        reason: format!("cannot pack it: {e}"),
    };
    match &a.source {
        Source::Entry(e) => {
            // Re-read the entry: it may have been replaced or removed since the scan.
            match cache.info(&e.key)? {
                Some(now) if now.integrity == e.integrity => {}
                _ => return Ok(None),
            }
            let (hash, size) = match blake3_of(cache, &e.integrity) {
                Ok(x) => x,
                Err(err) if gone(&err) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            let time = ms(e.time);
            let file = CachedFile {
                name: "content".to_owned(),
                size,
                hash,
                executable: false,
            };
            let entry = LarderEntry {
                key: e.key.clone(),
                integrity: e.integrity.to_string(),
                metadata: e.metadata.clone(),
                time,
            };
            let meta = EntryMeta::for_entry(&a.namespace, &a.cache_key, file, entry);
            let meta_json = serde_json::to_vec(&meta).expect("meta.json serializes");
            let mut w = PackWriter::new(&meta_json, level).map_err(io)?;
            match add_checked(&mut w, cache, &e.integrity, "content", size, false) {
                Ok(_) => {}
                Err(err) if gone(&err) => return Ok(None),
                Err(err) => return Err(err.into()),
            }
            Ok(Some((
                w.finish().map_err(io)?,
                size + meta_json.len() as u64,
                1,
            )))
        }
        Source::Group => {
            let marker = group_key(&a.namespace, &a.cache_key, "meta.json");
            let meta_json = match cache.get(&marker) {
                Ok(b) => b,
                Err(err) if gone(&err) => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            let meta: EntryMeta = serde_json::from_slice(&meta_json).map_err(|e| Error::Local {
                key: marker.clone(),
                reason: format!("meta.json does not parse: {e}"),
            })?;
            let mut w = PackWriter::new(&meta_json, level).map_err(io)?;
            let mut total = meta_json.len() as u64;
            for f in &meta.files {
                let key = group_key(&a.namespace, &a.cache_key, &f.name);
                let Some(entry) = cache.info(&key)? else {
                    return Err(Error::Local {
                        key,
                        reason: "a file of this kache entry is missing from the cache".to_owned(),
                    });
                };
                // meta.json has the size and BLAKE3: packed in one read, checked after (a
                // mismatch discards the pack, which is only in memory).
                let mismatch = |what: String| Error::Local {
                    key: key.clone(),
                    reason: format!("{what}, meta.json says {} ({} bytes)", f.hash, f.size),
                };
                let size = entry.size.unwrap_or(f.size);
                if size != f.size {
                    return Err(mismatch(format!("{size} bytes")));
                }
                let hash =
                    add_checked(&mut w, cache, &entry.integrity, &f.name, size, f.executable)
                        .map_err(|e| match e {
                            larder_cache::Error::Io { source, .. }
                                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
                            {
                                mismatch("fewer bytes".to_owned())
                            }
                            e => e.into(),
                        })?;
                if !hash.eq_ignore_ascii_case(&f.hash) {
                    return Err(mismatch(format!("BLAKE3 {hash}")));
                }
                total += size;
            }
            Ok(Some((w.finish().map_err(io)?, total, meta.files.len())))
        }
    }
}

async fn push_one(
    store: &Arc<dyn Store>,
    cache: &Cache,
    layout: &Layout,
    a: &Artifact,
    opts: &Options,
) -> Result<Pushed> {
    let (cache2, a2, level) = (cache.clone(), a.clone(), opts.level);
    let built = tokio::task::spawn_blocking(move || build_pack(&cache2, &a2, level))
        .await
        .expect("packing does not panic")?;
    let Some((pack, original_bytes, file_count)) = built else {
        return Ok(Pushed::Vanished);
    };
    let pack_key = layout.pack_key(&a.namespace, &a.cache_key);
    let manifest_key = layout.manifest_key(&a.namespace, &a.cache_key);
    let key = |k: &str| {
        Key::new(k).map_err(|e| Error::Local {
            key: k.to_owned(),
            reason: e.to_string(),
        })
    };
    let pack_bytes = pack.len() as u64;
    // The pack first: the manifest is the commit marker.
    store
        .put(
            &key(&pack_key)?,
            Body::from_bytes(pack),
            PutOptions::default(),
        )
        .await?;
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        cache_key: a.cache_key.clone(),
        crate_name: a.namespace.clone(),
        pack_key: if opts.location_prefix.is_empty() {
            pack_key.clone()
        } else {
            format!("{}/{pack_key}", opts.location_prefix.trim_end_matches('/'))
        },
        pack_bytes,
        original_bytes,
        file_count,
    };
    let body = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let manifest_bytes = body.len() as u64;
    store
        .put(
            &key(&manifest_key)?,
            Body::from_bytes(body),
            PutOptions::default().with_content_type(Some("application/json".to_owned())),
        )
        .await?;
    Ok(Pushed::Uploaded {
        bytes: pack_bytes + manifest_bytes,
    })
}
