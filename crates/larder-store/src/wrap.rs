//! Stores that wrap a store: [`CountingStore`] counts requests by kind, [`FaultStore`]
//! corrupts or fails reads on purpose. Both pass everything else through.
//!
//! Tests use them to prove what the sync engine does ("a no-op sync makes no PUT", "a
//! flipped byte is caught"), without hooks in production code.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};

use crate::types::*;
use crate::{Key, Result, Store};

/// Request counts of a [`CountingStore`].
#[derive(Debug, Default)]
pub struct Counts {
    /// `list` calls.
    pub list: AtomicU64,
    /// `head` calls.
    pub head: AtomicU64,
    /// `get` calls.
    pub get: AtomicU64,
    /// `put` calls.
    pub put: AtomicU64,
    /// `delete` calls.
    pub delete: AtomicU64,
    /// `copy` calls.
    pub copy: AtomicU64,
    /// `flush` calls.
    pub flush: AtomicU64,
}

impl Counts {
    /// `(list, head, get, put, delete, copy)` now.
    pub fn snapshot(&self) -> [u64; 6] {
        [
            self.list.load(Ordering::Relaxed),
            self.head.load(Ordering::Relaxed),
            self.get.load(Ordering::Relaxed),
            self.put.load(Ordering::Relaxed),
            self.delete.load(Ordering::Relaxed),
            self.copy.load(Ordering::Relaxed),
        ]
    }
}

/// Counts the calls made to a store.
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn Store>,
    counts: Arc<Counts>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        CountingStore {
            inner,
            counts: Arc::default(),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> &Arc<Counts> {
        &self.counts
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[async_trait]
impl Store for CountingStore {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        bump(&self.counts.list);
        self.inner.list(prefix)
    }
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        bump(&self.counts.head);
        self.inner.head(key).await
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        bump(&self.counts.get);
        self.inner.get(key, opts).await
    }
    async fn put(&self, key: &Key, body: Body, opts: PutOptions) -> Result<PutResult> {
        bump(&self.counts.put);
        self.inner.put(key, body, opts).await
    }
    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        bump(&self.counts.delete);
        self.inner.delete(keys).await
    }
    async fn copy(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult> {
        bump(&self.counts.copy);
        self.inner.copy(from, to, opts).await
    }
    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        bump(&self.counts.head);
        self.inner.first_part_size(key).await
    }
    async fn first_part(&self, key: &Key) -> Result<FirstPart> {
        bump(&self.counts.head);
        self.inner.first_part(key).await
    }
    fn identity(&self) -> String {
        self.inner.identity()
    }
    async fn flush(&self) -> Result<()> {
        bump(&self.counts.flush);
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }
}

/// Flips one bit in the body of the first `corrupt_reads` whole-object reads of keys that
/// contain `key_filter`, as a bad disk, NIC or proxy would.
#[derive(Debug, Clone)]
pub struct FaultStore {
    inner: Arc<dyn Store>,
    key_filter: String,
    remaining: Arc<AtomicU64>,
}

impl FaultStore {
    /// Corrupts the next `corrupt_reads` reads of keys containing `key_filter` (`""`: all).
    pub fn new(inner: Arc<dyn Store>, key_filter: &str, corrupt_reads: u64) -> Self {
        FaultStore {
            inner,
            key_filter: key_filter.to_owned(),
            remaining: Arc::new(AtomicU64::new(corrupt_reads)),
        }
    }

    /// How many corruptions are still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Relaxed)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl Store for FaultStore {
    fn list(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        self.inner.list(prefix)
    }
    async fn head(&self, key: &Key) -> Result<Option<ObjectMeta>> {
        self.inner.head(key).await
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let mut got = self.inner.get(key, opts).await?;
        let hit = key.as_str().contains(&self.key_filter)
            && got.range.end > got.range.start
            && self
                .remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
        if hit {
            // Digests the inner store computed describe the bytes before the fault; a body
            // changed after them is hashed again downstream, as bytes changed on the wire
            // are hashed as they arrive (the proxy tests flip bytes before any hashing).
            got.part_md5s = None;
            let mut first = true;
            got.body = got
                .body
                .map(move |chunk| {
                    chunk.map(|c| {
                        if first && !c.is_empty() {
                            first = false;
                            let mut b = BytesMut::from(&c[..]);
                            b[0] ^= 0x01;
                            Bytes::from(b)
                        } else {
                            c
                        }
                    })
                })
                .boxed();
        }
        Ok(got)
    }
    async fn put(&self, key: &Key, body: Body, opts: PutOptions) -> Result<PutResult> {
        self.inner.put(key, body, opts).await
    }
    async fn delete(&self, keys: &[Key]) -> Result<DeleteReport> {
        self.inner.delete(keys).await
    }
    async fn copy(&self, from: &Key, to: &Key, opts: CopyOptions) -> Result<PutResult> {
        self.inner.copy(from, to, opts).await
    }
    async fn first_part_size(&self, key: &Key) -> Result<Option<u64>> {
        self.inner.first_part_size(key).await
    }
    async fn first_part(&self, key: &Key) -> Result<FirstPart> {
        self.inner.first_part(key).await
    }
    fn identity(&self) -> String {
        self.inner.identity()
    }
    async fn flush(&self) -> Result<()> {
        self.inner.flush().await
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }
}
