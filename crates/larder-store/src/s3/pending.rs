//! Multipart uploads in progress, and the ones dead runs left behind: listed, aborted.

use super::*;

impl S3Store {
    /// Aborts the multipart uploads under this store's prefix that the journal says dead
    /// runs left and nobody resumed; returns how many. Without a journal, none.
    pub async fn abort_orphans(&self) -> u64 {
        let i = &self.inner;
        let Some(j) = &i.opts.journal else { return 0 };
        let mut n = 0;
        for (key, upload_id) in j.orphans(&i.url.bucket, &i.url.prefix) {
            let res = i
                .client
                .abort_multipart_upload()
                .bucket(&i.url.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
            match res {
                Ok(_) => n += 1,
                Err(SdkError::ServiceError(e)) if e.err().code() == Some("NoSuchUpload") => {}
                Err(e) => {
                    tracing::warn!(key, upload_id, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "could not abort a multipart upload a killed run left");
                    continue;
                }
            }
            j.finished(&i.url.bucket, &upload_id);
        }
        n
    }

    /// The multipart uploads in progress under `prefix` (key, upload id): what an
    /// interrupted upload by another tool left behind, billed until aborted.
    ///
    /// # Errors
    ///
    /// As for a listing.
    pub async fn multipart_uploads(&self, prefix: &str) -> Result<Vec<(Key, String)>> {
        Ok(self
            .pending_uploads(prefix)
            .await?
            .into_iter()
            .map(|u| (u.key, u.upload_id))
            .collect())
    }

    /// Aborts one multipart upload (its parts are deleted; nothing is billed for it after).
    ///
    /// # Errors
    ///
    /// When the server refuses; an upload already gone is not an error.
    pub async fn abort_upload(&self, key: &Key, upload_id: &str) -> Result<()> {
        let i = &self.inner;
        match i
            .client
            .abort_multipart_upload()
            .bucket(&i.url.bucket)
            .key(self.full_key(key.as_str()))
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = map_sdk_error(&i.endpoint, e, Op::Delete, self.location(key.as_str()));
                if err.kind() == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The multipart uploads in progress under `prefix`, with when each was started.
    ///
    /// # Errors
    ///
    /// As for a listing.
    pub async fn pending_uploads(&self, prefix: &str) -> Result<Vec<PendingUpload>> {
        let i = &self.inner;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let page = i
                .client
                .list_multipart_uploads()
                .bucket(&i.url.bucket)
                .prefix(self.full_key(prefix))
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(&self.inner.endpoint, e, Op::List, self.location(prefix))
                })?;
            for u in page.uploads() {
                if let (Some(k), Some(id)) = (u.key().and_then(|k| self.strip(k)), u.upload_id()) {
                    out.push(PendingUpload {
                        key: k,
                        upload_id: id.to_owned(),
                        initiated: to_system_time(u.initiated()),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(out);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return Ok(out);
            }
        }
    }
}
