//! The journal of multipart uploads in progress: what a run killed mid-upload (SIGKILL, a
//! crash, power loss) left on the server, so the next run resumes it from the parts already
//! there, or aborts it. Implemented on SQLite by `larder-index`.

/// A multipart upload a journal hands over for resuming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalUpload {
    /// The upload id.
    pub upload_id: String,
    /// Its part size.
    pub part_size: u64,
}

/// Where [`crate::S3Store`] records its multipart uploads; see the module docs.
///
/// An upload is *owned* by the process that recorded it; `take_over` and `orphans` only
/// return uploads whose owner is no longer running.
pub trait UploadJournal: Send + Sync + std::fmt::Debug {
    /// An upload of `key` in `bucket` with `part_size` that a dead run left, now owned by the
    /// caller; the newest when there are several.
    fn take_over(&self, bucket: &str, key: &str, part_size: u64) -> Option<JournalUpload>;
    /// Records an upload just created.
    fn started(&self, bucket: &str, key: &str, upload: &JournalUpload);
    /// Forgets an upload completed or aborted.
    fn finished(&self, bucket: &str, upload_id: &str);
    /// Uploads under `prefix` in `bucket` that dead runs left (key, upload id), to abort.
    fn orphans(&self, bucket: &str, prefix: &str) -> Vec<(String, String)>;
}
