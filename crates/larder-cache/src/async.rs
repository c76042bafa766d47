//! The async API: the same operations, run on tokio's blocking pool.

use crate::*;

/// Runs `f` on the blocking pool; a task that panicked or was cancelled is an error
/// naming the cache.
async fn blocking<T: Send + 'static>(
    cache: &Cache,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            op: "run a cache operation on",
            path: cache.root().to_path_buf(),
            source: std::io::Error::other(e),
        })?
}

/// [`Cache::put`], async.
///
/// # Errors
///
/// As [`Cache::put`].
pub async fn put(cache: &Cache, key: &str, data: Vec<u8>) -> Result<Integrity> {
    let (c, k) = (cache.clone(), key.to_owned());
    blocking(cache, move || c.put(&k, &data)).await
}

/// [`Cache::get`], async.
///
/// # Errors
///
/// As [`Cache::get`].
pub async fn get(cache: &Cache, key: &str) -> Result<Vec<u8>> {
    let (c, k) = (cache.clone(), key.to_owned());
    blocking(cache, move || c.get(&k)).await
}

/// [`Cache::get_hash`], async.
///
/// # Errors
///
/// As [`Cache::get_hash`].
pub async fn get_hash(cache: &Cache, sri: &Integrity) -> Result<Vec<u8>> {
    let (c, s) = (cache.clone(), sri.clone());
    blocking(cache, move || c.get_hash(&s)).await
}

/// [`Cache::info`], async.
///
/// # Errors
///
/// As [`Cache::info`].
pub async fn info(cache: &Cache, key: &str) -> Result<Option<Entry>> {
    let (c, k) = (cache.clone(), key.to_owned());
    blocking(cache, move || c.info(&k)).await
}

/// [`Cache::rm_entry`], async.
///
/// # Errors
///
/// As [`Cache::rm_entry`].
pub async fn rm_entry(cache: &Cache, key: &str) -> Result<()> {
    let (c, k) = (cache.clone(), key.to_owned());
    blocking(cache, move || c.rm_entry(&k)).await
}

/// [`Cache::put_hash`], async.
///
/// # Errors
///
/// As [`Cache::put_hash`].
pub async fn put_hash(cache: &Cache, data: Vec<u8>) -> Result<Integrity> {
    let c = cache.clone();
    blocking(cache, move || c.put_hash(&data)).await
}

/// [`Cache::ls`], async.
///
/// # Errors
///
/// As [`Cache::ls`].
pub async fn ls(cache: &Cache) -> Result<Vec<Entry>> {
    let c = cache.clone();
    blocking(cache, move || c.ls()).await
}

/// [`Cache::rm_content`], async.
///
/// # Errors
///
/// As [`Cache::rm_content`].
pub async fn rm_content(cache: &Cache, sri: &Integrity) -> Result<()> {
    let (c, s) = (cache.clone(), sri.clone());
    blocking(cache, move || c.rm_content(&s)).await
}

/// [`Cache::clear`], async.
///
/// # Errors
///
/// As [`Cache::clear`].
pub async fn clear(cache: &Cache) -> Result<()> {
    let c = cache.clone();
    blocking(cache, move || c.clear()).await
}

/// [`Cache::compact`], async.
///
/// # Errors
///
/// As [`Cache::compact`].
pub async fn compact(cache: &Cache) -> Result<u64> {
    let c = cache.clone();
    blocking(cache, move || c.compact()).await
}

/// [`Cache::copy_out`], async.
///
/// # Errors
///
/// As [`Cache::copy_out`].
pub async fn copy_out(cache: &Cache, key: &str, dest: &Path) -> Result<u64> {
    let (c, k, d) = (cache.clone(), key.to_owned(), dest.to_path_buf());
    blocking(cache, move || c.copy_out(&k, &d)).await
}

/// [`Cache::link_to`], async.
///
/// # Errors
///
/// As [`Cache::link_to`].
pub async fn link_to(cache: &Cache, key: &str, file: &Path) -> Result<Integrity> {
    let (c, k, f) = (cache.clone(), key.to_owned(), file.to_path_buf());
    blocking(cache, move || c.link_to(&k, &f)).await
}

/// [`Cache::verify`], async.
///
/// # Errors
///
/// As [`Cache::verify`].
pub async fn verify(cache: &Cache, stale_tmp: Duration) -> Result<VerifyStats> {
    let c = cache.clone();
    blocking(cache, move || c.verify(stale_tmp)).await
}
