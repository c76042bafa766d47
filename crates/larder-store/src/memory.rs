//! An in-memory store, for fast tests. It behaves as S3 does where it matters to larder:
//! byte-ordered listings, MD5 (or, past a part size, multipart) ETags, metadata and checksums
//! that round-trip, `a` and `a/b` side by side.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};

use crate::error::{Error, ErrorKind, Op, Result};
use crate::integrity::{self, Hasher};
use crate::types::*;
use crate::{Key, Store};

/// How many entries a listing copies out under the lock at a time.
const LIST_PAGE: usize = 1000;

#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    meta: ObjectMeta,
    tags: Option<Tags>,
}

/// An in-memory [`Store`]. Clones share the same objects.
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Arc<RwLock<BTreeMap<String, Object>>>,
    /// ETags are multipart ETags of this part size for bodies larger than it.
    part_size: Option<u64>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("objects", &self.len())
            .field("part_size", &self.part_size)
            .finish()
    }
}

impl fmt::Display for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("memory://")
    }
}

impl MemoryStore {
    /// An empty store with single-part (MD5) ETags.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that gives bodies larger than `part_size` a multipart ETag, as an S3
    /// upload with that part size would.
    pub fn with_part_size(part_size: u64) -> Self {
        MemoryStore {
            part_size: Some(part_size.max(1)),
            ..Self::default()
        }
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.read().expect("memory store lock").len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A conditional put's precondition, checked as S3 does: [`ErrorKind::Conflict`] when
    /// it does not hold.
    fn check_condition(&self, key: &Key, condition: Option<&WriteCondition>) -> Result<()> {
        let Some(condition) = condition else {
            return Ok(());
        };
        let map = self.objects.read().expect("memory store lock");
        let current = map.get(key.as_str()).and_then(|o| o.meta.etag.as_deref());
        let holds = match condition {
            WriteCondition::IfNoneMatch => map.get(key.as_str()).is_none(),
            WriteCondition::IfMatch(want) => current == Some(want.trim_matches('"')),
        };
        if holds {
            Ok(())
        } else {
            Err(
                Error::new(ErrorKind::Conflict, Op::Put, self.location(key.as_str()))
                    .with_detail("precondition failed"),
            )
        }
    }

    fn not_found(&self, op: Op, key: &Key) -> Error {
        Error::new(ErrorKind::NotFound, op, self.location(key.as_str()))
            .with_detail("no such object")
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        let objects = self.objects.clone();
        let prefix = prefix.to_owned();
        // Pages of LIST_PAGE entries, each copied out under the read lock, so a listing of a
        // huge store holds one page at a time, as an S3 listing does.
        let start: Bound<String> = Bound::Included(prefix.clone());
        stream::unfold(Some(start), move |cursor| {
            let objects = objects.clone();
            let prefix = prefix.clone();
            async move {
                let cursor = cursor?;
                let page: Vec<Entry> = {
                    let map = objects.read().expect("memory store lock");
                    map.range::<String, _>((cursor, Bound::Unbounded))
                        .take_while(|(k, _)| k.starts_with(&prefix))
                        .take(LIST_PAGE)
                        .map(|(_, o)| o.meta.to_entry())
                        .collect()
                };
                if page.is_empty() {
                    return None;
                }
                let next = (page.len() == LIST_PAGE)
                    .then(|| Bound::Excluded(page[page.len() - 1].key.as_str().to_owned()));
                Some((stream::iter(page.into_iter().map(Ok)), next))
            }
        })
        .flatten()
        .boxed()
    }

    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        let map = self.objects.read().expect("memory store lock");
        Ok(map.get(key.as_str()).map(|o| o.meta.clone()))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let obj = {
            let map = self.objects.read().expect("memory store lock");
            map.get(key.as_str()).cloned()
        };
        let obj = obj.ok_or_else(|| self.not_found(Op::Get, key))?;
        if let Some(want) = &opts.if_match {
            if obj.meta.etag.as_deref() != Some(integrity::normalize_etag(want).as_str()) {
                return Err(
                    Error::new(ErrorKind::Conflict, Op::Get, self.location(key.as_str()))
                        .with_detail("the object changed (ETag does not match If-Match)"),
                );
            }
        }
        if let Some(etag) = &opts.if_none_match {
            if obj.meta.etag.as_deref() == Some(integrity::normalize_etag(etag).as_str()) {
                return Err(Error::new(
                    ErrorKind::NotModified,
                    Op::Get,
                    self.location(key.as_str()),
                )
                .with_detail("not modified (ETag matches If-None-Match)"));
            }
        }
        let size = obj.data.len() as u64;
        let range = match &opts.range {
            None => 0..size,
            Some(r) => r.resolve(size, Op::Get, &self.location(key.as_str()))?,
        };
        let data = obj.data.slice(range.start as usize..range.end as usize);
        let mut meta = obj.meta;
        if !opts.checksum {
            meta.checksum = None;
        }
        Ok(GetResult {
            meta,
            range,
            body: stream::once(async move { Ok(data) }).boxed(),
            part_md5s: None,
        })
    }

    async fn put(&self, key: &Key, body: Body, opts: PutOptions) -> Result<PutResult> {
        let mut hasher = Hasher::new();
        if let Some(p) = self.part_size {
            hasher = hasher.with_part_size(p);
        }
        if let Some(a) = opts.checksum {
            hasher = hasher.with_checksum(a);
        }
        let mut buf = BytesMut::new();
        let mut stream = body.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        let digests = hasher.finish();
        self.check_condition(key, opts.condition.as_ref())?;
        let multipart = matches!(self.part_size, Some(p) if digests.size > p);
        let etag = if multipart {
            digests.multipart_etag().expect("part size set")
        } else {
            digests.md5_hex().expect("md5 computed")
        };
        let checksum = opts.checksum.and_then(|a| digests.checksum(a).cloned());
        let meta = ObjectMeta {
            key: key.clone(),
            size: digests.size,
            last_modified: Some(SystemTime::now()),
            etag: Some(etag.clone()),
            content_type: opts.content_type,
            cache_control: opts.cache_control,
            metadata: opts.metadata,
            mtime: opts.mtime,
            checksum: checksum.clone(),
            storage_class: Some(opts.storage_class.unwrap_or_else(|| "STANDARD".to_owned())),
            headers: opts.headers,
            tag_count: Some(opts.tags.as_ref().map_or(0, |t| t.len() as u64)),
            encryption: None,
        };
        self.objects.write().expect("memory store lock").insert(
            key.as_str().to_owned(),
            Object {
                data: buf.freeze(),
                meta,
                tags: opts.tags,
            },
        );
        Ok(PutResult {
            size: digests.size,
            etag: Some(etag),
            checksum,
            digests: Some(digests),
            version_id: None,
        })
    }

    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        let mut map = self.objects.write().expect("memory store lock");
        for k in keys {
            map.remove(k.as_str());
        }
        Ok(DeleteReport::default())
    }

    async fn copy(&self, from: &Key, to: &Key, _opts: CopyOptions) -> Result<PutResult> {
        let mut map = self.objects.write().expect("memory store lock");
        let mut obj = map
            .get(from.as_str())
            .cloned()
            .ok_or_else(|| self.not_found(Op::Copy, from))?;
        obj.meta.key = to.clone();
        obj.meta.last_modified = Some(SystemTime::now());
        let result = PutResult {
            size: obj.meta.size,
            etag: obj.meta.etag.clone(),
            checksum: obj.meta.checksum.clone(),
            digests: None,
            version_id: None,
        };
        map.insert(to.as_str().to_owned(), obj);
        Ok(result)
    }

    async fn tags(&self, key: &Key) -> Result<Option<Tags>> {
        let map = self.objects.read().expect("memory store lock");
        match map.get(key.as_str()) {
            Some(o) => Ok(Some(o.tags.clone().unwrap_or_default())),
            None => Err(self.not_found(Op::Head, key)),
        }
    }

    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        let map = self.objects.read().expect("memory store lock");
        Ok(match (map.get(key.as_str()), self.part_size) {
            (Some(o), Some(p)) if o.meta.size > p => Some(p),
            _ => None,
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            metadata: true,
            checksums: true,
            etag_md5: true,
            multipart: self.part_size.is_some(),
            file_and_prefix: true,
            tagging: true,
            conditional_writes: true,
            part_lookup: self.part_size.is_some(),
            ..Capabilities::default()
        }
    }

    fn location(&self, key: &str) -> String {
        format!("memory://{key}")
    }
}
