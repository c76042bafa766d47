//! Carrying one key's step out: verified transfers, deletes, keep-both, each checked against
//! the server first when it would destroy a version.

use std::path::PathBuf;
use std::sync::Arc;

use larder_index::twoway::BaseRow;
use larder_index::ObjectRow;
use larder_store::integrity::normalize_etag;
use larder_store::{Entry, ErrorKind, Key, Store};

use super::plan::LocalFile;
use super::{Side, Step};
use crate::execute::{transfer, with_retries, TransferOptions};

pub(super) fn entry_of_local(key: &str, l: &LocalFile) -> Option<Entry> {
    Some(Entry {
        key: Key::new(key).ok()?,
        size: l.size,
        last_modified: Some(l.modified),
        etag: None,
        storage_class: None,
    })
}

fn entry_of_remote(r: &ObjectRow) -> Option<Entry> {
    Some(Entry {
        key: Key::new(&r.key).ok()?,
        size: r.size,
        last_modified: r.last_modified,
        etag: r.etag.clone(),
        storage_class: r.storage_class.clone(),
    })
}

/// The stores of one run.
pub(super) struct Sides {
    pub(super) local: Arc<dyn Store>,
    /// The remote through the index (what is written is recorded).
    pub(super) remote: Arc<dyn Store>,
    /// The remote itself (a HEAD here asks the server, not the index).
    pub(super) server: Arc<dyn Store>,
    pub(super) dir: PathBuf,
}

impl Sides {
    /// Before a step that overwrites or deletes an object, or deletes a file because the
    /// object is gone: is the object still what the index says?
    /// Another machine's run killed before it published may have changed it; acting on the
    /// index would destroy that version. One HEAD; a moved object fails the step with
    /// [`ErrorKind::Conflict`] (the index is corrected and the next run re-plans).
    async fn check_remote(
        &self,
        key: &str,
        expected: Option<&ObjectRow>,
    ) -> larder_store::Result<()> {
        let k = Key::new(key).map_err(|_| invalid(key))?;
        let now = self.server.head(&k).await?;
        let same = match (expected, &now) {
            (None, None) => true,
            (Some(r), Some(m)) => {
                r.etag.as_deref().map(normalize_etag) == m.etag.as_deref().map(normalize_etag)
            }
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(larder_store::Error::new(
                ErrorKind::Conflict,
                larder_store::Op::Put,
                self.remote.location(key),
            )
            .with_detail("the object changed since the index was written (another machine's run); re-planned on the next run"))
        }
    }

    fn stat(&self, key: &str) -> larder_store::Result<LocalFile> {
        let m = std::fs::metadata(self.dir.join(key))
            .map_err(|e| larder_store::Error::io(larder_store::Op::Get, key, e))?;
        Ok(LocalFile::of(&m))
    }

    async fn upload(&self, key: &str, l: &LocalFile) -> larder_store::Result<BaseRow> {
        let entry = entry_of_local(key, l).ok_or_else(|| invalid(key))?;
        let o = opts();
        let t = with_retries(3, || transfer(&self.local, &self.remote, &entry, None, &o)).await?;
        Ok(BaseRow {
            key: key.to_owned(),
            local_size: l.size,
            local_mtime_ns: l.mtime_ns,
            local_ino: l.ino,
            local_ctime_ns: l.ctime_ns,
            remote_size: t.bytes,
            remote_etag: t.dst_etag,
        })
    }

    async fn download(&self, r: &ObjectRow) -> larder_store::Result<BaseRow> {
        let entry = entry_of_remote(r).ok_or_else(|| invalid(&r.key))?;
        let o = opts();
        with_retries(3, || transfer(&self.remote, &self.local, &entry, None, &o)).await?;
        let l = self.stat(&r.key)?;
        Ok(BaseRow {
            key: r.key.clone(),
            local_size: l.size,
            local_mtime_ns: l.mtime_ns,
            local_ino: l.ino,
            local_ctime_ns: l.ctime_ns,
            remote_size: r.size,
            remote_etag: r.etag.clone(),
        })
    }

    async fn delete(&self, side: Side, key: &str) -> larder_store::Result<()> {
        let k = Key::new(key).map_err(|_| invalid(key))?;
        let store = if side == Side::Local {
            &self.local
        } else {
            &self.remote
        };
        let rep = store.delete(&[k]).await?;
        match rep.failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }
}

fn opts() -> TransferOptions {
    TransferOptions::default()
}

fn invalid(key: &str) -> larder_store::Error {
    larder_store::Error::new(
        larder_store::ErrorKind::InvalidKey,
        larder_store::Op::Put,
        key.to_owned(),
    )
    .with_detail("not a valid key")
}

/// Carries out one step; returns the base rows it settles and the keys it forgets.
pub(super) async fn execute(
    s: &Sides,
    key: &str,
    step: &Step,
    l: Option<&LocalFile>,
    r: Option<&ObjectRow>,
) -> larder_store::Result<(Vec<BaseRow>, Vec<String>)> {
    match step {
        Step::Upload => {
            s.check_remote(key, r).await?;
            Ok((vec![s.upload(key, l.expect("a local file")).await?], vec![]))
        }
        Step::Download => Ok((vec![s.download(r.expect("an object")).await?], vec![])),
        Step::DeleteRemote => {
            s.check_remote(key, r).await?;
            s.delete(Side::Remote, key).await?;
            Ok((vec![], vec![key.to_owned()]))
        }
        Step::DeleteLocal => {
            // The index says the object is gone; a run killed elsewhere may have written it
            // without publishing. Deleting the file on a stale index would lose it.
            s.check_remote(key, r).await?;
            s.delete(Side::Local, key).await?;
            Ok((vec![], vec![key.to_owned()]))
        }
        Step::Forget => Ok((vec![], vec![key.to_owned()])),
        Step::Settle => {
            let (l, r) = (l.expect("a local file"), r.expect("an object"));
            Ok((
                vec![BaseRow {
                    key: key.to_owned(),
                    local_size: l.size,
                    local_mtime_ns: l.mtime_ns,
                    local_ino: l.ino,
                    local_ctime_ns: l.ctime_ns,
                    remote_size: r.size,
                    remote_etag: r.etag.clone(),
                }],
                vec![],
            ))
        }
        Step::Conflict(_) => Ok((vec![], vec![])),
        Step::KeepBoth { loser, name } => {
            let (l, r) = (l.expect("a local file"), r.expect("an object"));
            let to = Key::new(name).map_err(|_| invalid(name))?;
            match loser {
                // The object is older: copied aside on the server, fetched under the new
                // name, then the local version replaces it.
                Side::Remote => {
                    let from = Key::new(key).map_err(|_| invalid(key))?;
                    let put = s.remote.copy(&from, &to, Default::default()).await?;
                    let aside = ObjectRow {
                        key: name.clone(),
                        size: put.size,
                        etag: put.etag,
                        storage_class: None,
                        last_modified: r.last_modified,
                    };
                    let kept = s.download(&aside).await?;
                    let won = s.upload(key, l).await?;
                    Ok((vec![kept, won], vec![]))
                }
                // The file is older: renamed aside and uploaded, then the object replaces it.
                Side::Local => {
                    let (from_path, to_path) = (s.dir.join(key), s.dir.join(to.as_str()));
                    larder_store::key::key_to_relative_path(to.as_str())
                        .map_err(|_| invalid(name))?;
                    std::fs::rename(&from_path, &to_path).map_err(|e| {
                        larder_store::Error::io(larder_store::Op::Put, to_path.display(), e)
                    })?;
                    let moved = s.stat(name)?;
                    let kept = s.upload(name, &moved).await?;
                    let won = s.download(r).await?;
                    Ok((vec![kept, won], vec![]))
                }
            }
        }
    }
}
