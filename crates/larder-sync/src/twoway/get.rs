//! `vault get`: one object of the index fetched on access (strategy cache), verified, into
//! the vault's directory, and recorded as cached.

use std::path::PathBuf;
use std::sync::Arc;

use larder_index::twoway::BaseRow;
use larder_index::Index;
use larder_store::{Entry, Key, LocalStore, Store};

use super::plan::LocalFile;
use crate::execute::{transfer, with_retries, TransferOptions};
use crate::vault::{refresh, VaultError, VaultReport, VaultSyncOptions};

/// Fetches `key` into the vault's directory and returns its path. A fresh index costs one
/// GET and nothing else; a stale one is refreshed first (one conditional GET of the
/// manifest).
///
/// # Errors
///
/// The key is not in the index, the index is unusable, the remote or the transfer failed.
pub async fn vault_get(o: &VaultSyncOptions, key: &str) -> Result<PathBuf, VaultError> {
    let name = o.vault.name.clone();
    let mut ix = Index::open(&o.index_path)?;
    let (state, fresh) = crate::vault::index_state(o, &ix)?;
    if !fresh {
        let mut r = VaultReport::default();
        refresh(o, &mut ix, state.as_ref(), fresh, &mut r).await?;
        if let Some(why) = r.stalled {
            return Err(VaultError::NoIndex { vault: name, why });
        }
    }
    let row = ix
        .object(&name, key)?
        .ok_or_else(|| VaultError::NotIndexed {
            vault: name.clone(),
            key: key.to_owned(),
        })?;
    let remote = o.remote.clone().ok_or_else(|| VaultError::NoIndex {
        vault: name.clone(),
        why: "no remote to fetch from".to_owned(),
    })?;
    let k = Key::new(&row.key).map_err(|e| VaultError::NotIndexed {
        vault: name.clone(),
        key: format!("{key} ({e})"),
    })?;
    let entry = Entry {
        key: k,
        size: row.size,
        last_modified: row.last_modified,
        etag: row.etag.clone(),
        storage_class: row.storage_class.clone(),
    };
    let dir = o.vault.local_dir.clone();
    let local: Arc<dyn Store> = Arc::new(LocalStore::new(&dir));
    let opts = TransferOptions {
        guess_content_type: false,
        ..Default::default()
    };
    with_retries(3, || transfer(&remote, &local, &entry, None, &opts)).await?;
    local.flush().await?;
    let path = dir.join(&row.key);
    let m = std::fs::metadata(&path)
        .map_err(|e| larder_store::Error::io(larder_store::Op::Get, path.display(), e))?;
    let l = LocalFile::of(&m);
    ix.settle(
        &name,
        &[BaseRow {
            key: row.key.clone(),
            local_size: l.size,
            local_mtime_ns: l.mtime_ns,
            local_ino: l.ino,
            local_ctime_ns: l.ctime_ns,
            remote_size: row.size,
            remote_etag: row.etag,
        }],
        &[],
    )?;
    Ok(path)
}
