//! The cache as a [`Store`], so `larder sync` can read from or write to it
//! (`cacache:///path/to/cache`).
//!
//! Keys are cache keys; an object's bytes are the entry's content, verified on every read.
//! Content-Type, Cache-Control, user metadata and larder's mtime are kept in the entry's JSON
//! metadata (`{"content-type": …, "cache-control": …, "larder-mtime": …, "user": {…}}`).
//! A server-side copy indexes the same content under the new key.
//!
//! Listing reads the whole index and sorts its keys, so its memory grows with the number of
//! entries (the index is hashed by key and has no order to stream in).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use larder_store::{
    Body, Capabilities, CopyOptions, DeleteReport, Entry as StoreEntry, Error as StoreError,
    ErrorKind, GetOptions, GetResult, Key, ObjectMeta, Op, PutOptions, PutResult, Store,
};

use crate::{Cache, Entry, Error, WriteOptions};

/// A cache directory as a [`Store`].
#[derive(Debug, Clone)]
pub struct CacheStore {
    cache: Arc<Cache>,
}

impl CacheStore {
    /// The store over `cache`.
    pub fn new(cache: Cache) -> Self {
        CacheStore {
            cache: Arc::new(cache),
        }
    }
}

impl fmt::Display for CacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cacache://{}", self.cache.root().display())
    }
}

fn store_error(e: Error, op: Op, location: String) -> StoreError {
    let kind = match &e {
        Error::EntryNotFound(_) | Error::ContentNotFound(_) => ErrorKind::NotFound,
        Error::Integrity { .. } => ErrorKind::Integrity,
        Error::BadIntegrity(_) => ErrorKind::Integrity,
        Error::Io { .. } => ErrorKind::Io,
    };
    StoreError::new(kind, op, location)
        .with_detail(e.to_string())
        .with_source(e)
}

async fn blocking<T: Send + 'static>(
    op: Op,
    location: String,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> larder_store::Result<T> {
    let loc = location.clone();
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::new(ErrorKind::Other, op, location).with_source(e))?
        .map_err(|e| store_error(e, op, loc))
}

fn meta_of(key: &Key, e: &Entry, size: u64) -> ObjectMeta {
    let m = e.metadata.as_ref();
    let s = |name: &str| {
        m.and_then(|m| m.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let user: BTreeMap<String, String> = m
        .and_then(|m| m.get("user"))
        .and_then(|u| u.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    ObjectMeta {
        key: key.clone(),
        size,
        last_modified: Some(e.time),
        etag: None,
        content_type: s("content-type"),
        cache_control: s("cache-control"),
        metadata: user,
        mtime: s(larder_store::MTIME_METADATA).and_then(|t| larder_store::parse_mtime(&t)),
        checksum: None,
        storage_class: None,
        headers: larder_store::Headers {
            content_encoding: s("content-encoding"),
            content_disposition: s("content-disposition"),
            content_language: s("content-language"),
            expires: s("expires"),
            website_redirect: s("website-redirect-location"),
        },
        tag_count: None,
        encryption: None,
    }
}

fn metadata_json(opts: &PutOptions) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if let Some(c) = &opts.content_type {
        m.insert("content-type".into(), c.clone().into());
    }
    if let Some(c) = &opts.cache_control {
        m.insert("cache-control".into(), c.clone().into());
    }
    let h = &opts.headers;
    for (name, v) in [
        ("content-encoding", &h.content_encoding),
        ("content-disposition", &h.content_disposition),
        ("content-language", &h.content_language),
        ("expires", &h.expires),
        ("website-redirect-location", &h.website_redirect),
    ] {
        if let Some(v) = v {
            m.insert(name.into(), v.clone().into());
        }
    }
    if let Some(t) = opts.mtime {
        m.insert(
            larder_store::MTIME_METADATA.into(),
            larder_store::format_mtime(t).into(),
        );
    }
    if !opts.metadata.is_empty() {
        m.insert(
            "user".into(),
            opts.metadata
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
    }
    m.into()
}

#[async_trait]
impl Store for CacheStore {
    fn list(&self, prefix: &str) -> BoxStream<'static, larder_store::Result<StoreEntry>> {
        let cache = self.cache.clone();
        let prefix = prefix.to_owned();
        let loc = self.location("");
        stream::once(async move {
            let entries = blocking(Op::List, loc, move || cache.ls()).await;
            let items: Vec<larder_store::Result<StoreEntry>> = match entries {
                Err(e) => vec![Err(e)],
                Ok(mut v) => {
                    v.retain(|e| e.key.starts_with(&prefix));
                    v.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
                    v.into_iter()
                        .filter_map(|e| {
                            Some(Ok(StoreEntry {
                                key: Key::new(e.key).ok()?,
                                size: e.size.unwrap_or(0),
                                last_modified: Some(e.time),
                                etag: None,
                                storage_class: None,
                            }))
                        })
                        .collect()
                }
            };
            stream::iter(items)
        })
        .flatten()
        .boxed()
    }

    async fn head(&self, key: &Key) -> larder_store::Result<Option<ObjectMeta>> {
        let (cache, k) = (self.cache.clone(), key.as_str().to_owned());
        let e = blocking(Op::Head, self.location(key.as_str()), move || {
            cache.info(&k)
        })
        .await?;
        Ok(e.map(|e| {
            let size = e.size.unwrap_or(0);
            meta_of(key, &e, size)
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> larder_store::Result<GetResult> {
        let (cache, k) = (self.cache.clone(), key.as_str().to_owned());
        let loc = self.location(key.as_str());
        // Read whole and verified: a range of unverified bytes is never returned.
        let (e, data) = blocking(Op::Get, loc.clone(), move || {
            let e = cache
                .info(&k)?
                .ok_or_else(|| Error::EntryNotFound(k.clone()))?;
            let data = cache.get_hash(&e.integrity).map_err(|err| match err {
                Error::Integrity {
                    expected, found, ..
                } => Error::Integrity {
                    what: k.clone(),
                    expected,
                    found,
                },
                other => other,
            })?;
            Ok((e, data))
        })
        .await?;
        let size = data.len() as u64;
        let range = match &opts.range {
            None => 0..size,
            Some(r) => r.resolve(size, Op::Get, &loc)?,
        };
        let body = Bytes::from(data).slice(range.start as usize..range.end as usize);
        Ok(GetResult {
            meta: meta_of(key, &e, size),
            range,
            body: stream::once(async move { Ok(body) }).boxed(),
            part_md5s: None,
        })
    }

    async fn put(
        &self,
        key: &Key,
        body: Body,
        opts: PutOptions,
    ) -> larder_store::Result<PutResult> {
        let loc = self.location(key.as_str());
        let cache = self.cache.clone();
        let k = key.as_str().to_owned();
        let metadata = metadata_json(&opts);
        let declared = body.size();
        // A blocking writer fed through a bounded channel: memory holds a few chunks.
        // `None` marks the end of a complete body; a channel closed without it means the body
        // failed or the put was cancelled, and nothing is committed.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Option<Bytes>>(8);
        let writer =
            tokio::task::spawn_blocking(move || -> Result<(crate::Integrity, u64), Error> {
                let mut w = cache.writer(
                    Some(&k),
                    WriteOptions {
                        metadata: Some(metadata),
                        size: declared,
                        ..WriteOptions::default()
                    },
                )?;
                let mut n = 0u64;
                for chunk in rx {
                    let Some(chunk) = chunk else {
                        return Ok((w.commit()?, n));
                    };
                    n += chunk.len() as u64;
                    w.write_all(&chunk).map_err(|source| Error::Io {
                        op: "write",
                        path: cache.root().join("tmp"),
                        source,
                    })?;
                }
                Err(Error::Io {
                    op: "finish writing",
                    path: cache.root().join("tmp"),
                    source: std::io::Error::other("the body ended early; nothing was committed"),
                })
            });
        let mut stream = body.into_stream();
        let mut sent = 0u64;
        let mut failed = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    sent += c.len() as u64;
                    if tx.send(Some(c)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            drop(tx); // without the end marker: the writer drops its temp file
            let _ = writer.await;
            return Err(e);
        }
        let _ = tx.send(None);
        drop(tx);
        let (sri, n) = writer
            .await
            .map_err(|e| StoreError::new(ErrorKind::Other, Op::Put, loc.clone()).with_source(e))?
            .map_err(|e| store_error(e, Op::Put, loc.clone()))?;
        debug_assert_eq!(n, sent);
        let _ = sri;
        Ok(PutResult {
            size: n,
            etag: None,
            checksum: None,
            digests: None,
            version_id: None,
        })
    }

    async fn delete(&self, keys: &[Key]) -> larder_store::Result<DeleteReport> {
        let mut report = DeleteReport::default();
        for key in keys {
            let (cache, k) = (self.cache.clone(), key.as_str().to_owned());
            let r = blocking(Op::Delete, self.location(key.as_str()), move || {
                if cache.info(&k)?.is_some() {
                    cache.rm_entry(&k)?;
                }
                Ok(())
            })
            .await;
            if let Err(e) = r {
                report.failed.push((key.clone(), e));
            }
        }
        Ok(report)
    }

    async fn copy(&self, from: &Key, to: &Key, _: CopyOptions) -> larder_store::Result<PutResult> {
        let (cache, f, t) = (
            self.cache.clone(),
            from.as_str().to_owned(),
            to.as_str().to_owned(),
        );
        let size = blocking(Op::Copy, self.location(from.as_str()), move || {
            let e = cache
                .info(&f)?
                .ok_or_else(|| Error::EntryNotFound(f.clone()))?;
            cache.insert(&t, &e.integrity, e.size, e.metadata.clone())?;
            Ok(e.size.unwrap_or(0))
        })
        .await?;
        Ok(PutResult {
            size,
            etag: None,
            checksum: None,
            digests: None,
            version_id: None,
        })
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.metadata = true;
        c.file_and_prefix = true;
        c
    }

    fn location(&self, key: &str) -> String {
        format!("cacache://{}#{key}", self.cache.root().display())
    }
}
