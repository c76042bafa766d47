//! Object versions (ListObjectVersions, HEAD by version) and tags (GetObjectTagging).

use super::*;

impl S3Store {
    /// Every version and delete marker under `prefix`, one page in memory at a time: keys in
    /// order, each key's versions newest first. A page holds versions and markers in two
    /// lists; they are merged back into that order.
    pub(super) fn versions_stream(&self, prefix: &str) -> BoxStream<'static, Result<Version>> {
        let this = self.clone();
        let full_prefix = self.full_key(prefix);
        // State: None = finished; Some((key marker, version marker)) = the next page.
        stream::unfold(Some((None::<String>, None::<String>)), move |state| {
            let this = this.clone();
            let full_prefix = full_prefix.clone();
            async move {
                let (key_marker, version_marker) = state?;
                let i = &this.inner;
                let out = i
                    .client
                    .list_object_versions()
                    .bucket(&i.url.bucket)
                    .prefix(&full_prefix)
                    .max_keys(i.opts.list_page_size)
                    .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                    .set_key_marker(key_marker)
                    .set_version_id_marker(version_marker)
                    .send()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) => return Some((stream::iter(vec![Err(this.listing_error(e))]), None)),
                };
                let mut page: Vec<Result<Version>> = Vec::new();
                let decode = |raw: &str| -> Option<Result<Key>> {
                    let Some(full) = decode_listed_key(raw) else {
                        return Some(Err(Error::new(
                            ErrorKind::InvalidKey,
                            Op::List,
                            this.location(""),
                        )
                        .with_detail(format!(
                            "the server listed a key that is not valid URL-encoded UTF-8: `{}`",
                            raw.escape_debug()
                        ))));
                    };
                    this.strip(&full).map(Ok)
                };
                for v in out.versions() {
                    let Some(key) = v.key().and_then(decode) else {
                        continue;
                    };
                    page.push(key.map(|key| Version {
                        key,
                        version_id: v.version_id().unwrap_or("null").to_owned(),
                        is_latest: v.is_latest().unwrap_or(false),
                        delete_marker: false,
                        size: v.size().unwrap_or(0).max(0) as u64,
                        etag: v.e_tag().map(normalize_etag),
                        last_modified: to_system_time(v.last_modified()),
                    }));
                }
                for m in out.delete_markers() {
                    let Some(key) = m.key().and_then(decode) else {
                        continue;
                    };
                    page.push(key.map(|key| Version {
                        key,
                        version_id: m.version_id().unwrap_or("null").to_owned(),
                        is_latest: m.is_latest().unwrap_or(false),
                        delete_marker: true,
                        size: 0,
                        etag: None,
                        last_modified: to_system_time(m.last_modified()),
                    }));
                }
                // Keys in byte order; within a key, newest first (ties: the latest one).
                page.sort_by(|a, b| match (a, b) {
                    (Ok(a), Ok(b)) => a
                        .key
                        .as_str()
                        .as_bytes()
                        .cmp(b.key.as_str().as_bytes())
                        .then(b.last_modified.cmp(&a.last_modified))
                        .then(b.is_latest.cmp(&a.is_latest)),
                    _ => std::cmp::Ordering::Equal,
                });
                let next = match (
                    out.is_truncated(),
                    out.next_key_marker(),
                    out.next_version_id_marker(),
                ) {
                    (Some(true), Some(k), v) => Some((
                        Some(decode_listed_key(k).unwrap_or_else(|| k.to_owned())),
                        v.map(str::to_owned),
                    )),
                    _ => None,
                };
                Some((stream::iter(page), next))
            }
        })
        .flatten()
        .boxed()
    }

    /// GetObjectTagging; `None` when the server does not implement tagging.
    pub(super) async fn object_tags(&self, key: &Key) -> Result<Option<Tags>> {
        self.object_tags_of(key, None).await
    }

    /// GetObjectTagging of the object or of one version of it.
    pub(super) async fn object_tags_of(
        &self,
        key: &Key,
        version_id: Option<&str>,
    ) -> Result<Option<Tags>> {
        let i = &self.inner;
        let (full, loc) = (self.full_key(key.as_str()), self.location(key.as_str()));
        self.tags_at(&i.url.bucket, &full, version_id, Op::Head, loc)
            .await
    }

    /// GetObjectTagging of `bucket/full_key` (this store's, or a copy's source), reached with
    /// this store's client; `None` where the server keeps no tags.
    pub(super) async fn tags_at(
        &self,
        bucket: &str,
        full_key: &str,
        version_id: Option<&str>,
        op: Op,
        loc: String,
    ) -> Result<Option<Tags>> {
        let i = &self.inner;
        if !i.features().tagging {
            return Ok(None);
        }
        let out = i
            .client
            .get_object_tagging()
            .bucket(bucket)
            .key(full_key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|e| map_sdk_error(&i.endpoint, e, op, loc));
        let out = match out {
            // A server without object tags (Garage) whose features were not detected.
            Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(None),
            r => r?,
        };
        Ok(Some(
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect(),
        ))
    }
}

impl S3Store {
    /// HEAD of the object, or of one version of it; `None` when it does not exist.
    pub(super) async fn head_object(
        &self,
        key: &Key,
        version_id: Option<&str>,
    ) -> Result<Option<ObjectMeta>> {
        let i = &self.inner;
        let req = i
            .client
            .head_object()
            .bucket(&i.url.bucket)
            .key(self.full_key(key.as_str()))
            .checksum_mode(ChecksumMode::Enabled)
            .set_version_id(version_id.map(str::to_owned));
        let out = with_sse_c!(req, &i.opts).send().await;
        match out {
            Ok(o) => {
                let size = o.content_length().unwrap_or(0).max(0) as u64;
                Ok(Some(object_meta!(&o, key.clone(), size)))
            }
            Err(e) => {
                let err = map_sdk_error(
                    &self.inner.endpoint,
                    e,
                    Op::Head,
                    self.location(key.as_str()),
                );
                if err.kind() == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// HEAD `partNumber=1` of the object (or of one version of it): the first part's size.
    pub(super) async fn part_size_of(
        &self,
        key: &Key,
        version_id: Option<&str>,
    ) -> Result<Option<u64>> {
        Ok(self.part_lookup(key, version_id, false).await?.size)
    }

    /// HEAD of part 1: its size, the object's ETag and, with `crc`, the whole-object CRC the
    /// server reports with it (`x-amz-checksum-type: FULL_OBJECT`).
    pub(super) async fn part_lookup(
        &self,
        key: &Key,
        version_id: Option<&str>,
        crc: bool,
    ) -> Result<FirstPart> {
        let i = &self.inner;
        if !i.features().part_numbers {
            return Ok(FirstPart::default());
        }
        let mut req = i
            .client
            .head_object()
            .bucket(&i.url.bucket)
            .key(self.full_key(key.as_str()))
            .part_number(1)
            .set_version_id(version_id.map(str::to_owned));
        let crc = crc && i.features().checksums;
        if crc {
            req = req.checksum_mode(ChecksumMode::Enabled);
        }
        let out = with_sse_c!(req, &i.opts).send().await.map_err(|e| {
            map_sdk_error(
                &self.inner.endpoint,
                e,
                Op::Head,
                self.location(key.as_str()),
            )
        })?;
        let full = matches!(
            out.checksum_type(),
            Some(aws_sdk_s3::types::ChecksumType::FullObject)
        );
        let full_crc =
            checksum_of(None, response_checksums!(&out)).filter(|c| crc && full && c.is_full_crc());
        let size = match out.parts_count() {
            Some(n) if n > 1 => out.content_length().map(|l| l.max(0) as u64),
            _ => {
                // A multipart ETag without a part count: the server ignored `partNumber`
                // (radosgw 16). Learnt once; later lookups cost no request.
                let parts = out
                    .e_tag()
                    .map(normalize_etag)
                    .as_deref()
                    .and_then(crate::integrity::etag_part_count);
                if parts.is_some_and(|n| n > 1) {
                    i.features.write().expect("features lock").part_numbers = false;
                }
                None
            }
        };
        Ok(FirstPart {
            size,
            etag: out.e_tag().map(|e| normalize_etag(e).to_string()),
            full_crc,
        })
    }
}
