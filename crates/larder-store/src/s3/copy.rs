//! Server-side copy: one CopyObject, or UploadPartCopy along the source's parts (or past
//! 5 GiB), with the metadata, tags and precondition of a put, and the copy's ETag checked
//! against the source's.

use super::*;

impl S3Store {
    /// Where a copy reads `key` from; none with SSE-C (the copy would need the key).
    pub(super) fn copy_source_of(&self, key: &Key) -> Option<CopySource> {
        let i = &self.inner;
        if i.opts.sse_c.is_some() {
            return None;
        }
        Some(CopySource {
            server: self.server_id(),
            principal: self.principal(),
            bucket: i.url.bucket.clone(),
            key: self.full_key(key.as_str()),
            version_id: None,
        })
    }

    /// The server: its endpoint URL, or AWS in a region.
    fn server_id(&self) -> String {
        let i = &self.inner;
        match &i.opts.endpoint_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!(
                "aws:{}",
                i.client
                    .config()
                    .region()
                    .map_or("us-east-1", |r| r.as_ref())
            ),
        }
    }

    /// Who the store reads and writes as: the access key id, or the profile the credential
    /// chain starts from.
    fn principal(&self) -> String {
        let o = &self.inner.opts;
        match (&o.credentials, &o.profile) {
            (Some(c), _) => c.access_key_id.clone(),
            (None, Some(p)) => format!("profile:{p}"),
            (None, None) => match std::env::var("AWS_ACCESS_KEY_ID") {
                Ok(k) if !k.is_empty() => k,
                _ => format!(
                    "profile:{}",
                    std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into())
                ),
            },
        }
    }

    pub(super) fn reaches(&self, source: &CopySource) -> bool {
        source.server == self.server_id() && source.principal == self.principal()
    }

    /// Writes `to` as a copy of `from.source` (see [`Store::put_copy`]).
    pub(super) async fn copy_in(
        &self,
        to: &Key,
        from: &CopyFrom,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.copy_with(to, from, opts, false).await
    }

    /// [`S3Store::copy_in`]; `source_sse_c`: the source is this store's, encrypted with its
    /// customer key.
    async fn copy_with(
        &self,
        to: &Key,
        from: &CopyFrom,
        mut opts: PutOptions,
        source_sse_c: bool,
    ) -> Result<PutResult> {
        self.check_condition_supported(to, &opts)?;
        let i = &self.inner;
        if !i.features().checksums {
            opts.checksum = None;
        }
        let loc = self.location(to.as_str());
        let what = format!("{} to {loc}", from.source);
        let header = copy_source_header(&from.source);
        let source_if_match = from.source_etag.as_ref().map(|e| format!("\"{e}\""));
        if from.keep_tags {
            // Read and written explicitly: radosgw drops the tags of a copy that replaces
            // the metadata, whatever the tagging directive says.
            let s = &from.source;
            opts.tags = self
                .tags_at(
                    &s.bucket,
                    &s.key,
                    s.version_id.as_deref(),
                    Op::Copy,
                    what.clone(),
                )
                .await?;
        }
        let in_parts = from.part_size.is_some() || from.size > i.opts.copy_multipart_threshold;
        let result = if in_parts {
            self.copy_parts(to, from, &opts, &header, &what, source_sse_c)
                .await?
        } else {
            let send = |if_match: Option<String>| {
                let mut req = i
                    .client
                    .copy_object()
                    .bucket(&i.url.bucket)
                    .key(self.full_key(to.as_str()))
                    .copy_source(&header)
                    .set_copy_source_if_match(source_if_match.clone())
                    .metadata_directive(MetadataDirective::Replace)
                    .set_if_match(if_match);
                let what = what.clone();
                let opts = &opts;
                async move {
                    req = with_write_settings!(req, i, opts);
                    if i.features().tagging {
                        req = req.tagging_directive(TaggingDirective::Replace);
                    }
                    if let (true, Some(k)) = (source_sse_c, &i.opts.sse_c) {
                        req = req
                            .copy_source_sse_customer_algorithm("AES256")
                            .copy_source_sse_customer_key(k.key_base64())
                            .copy_source_sse_customer_key_md5(k.key_md5_base64());
                    }
                    if let Some(WriteCondition::IfNoneMatch) = &opts.condition {
                        req = req.if_none_match("*");
                    }
                    if let Some(a) = opts.checksum {
                        req = req.checksum_algorithm(sdk_algorithm(a));
                    }
                    req.send()
                        .await
                        .map_err(|e| map_sdk_error(&i.endpoint, e, Op::Copy, what))
                }
            };
            let out = send_conditioned(opts.condition.as_ref(), send).await?;
            let r = out.copy_object_result();
            PutResult {
                size: from.size,
                etag: r.and_then(|r| r.e_tag()).map(normalize_etag),
                checksum: opts.checksum.and_then(|a| {
                    let r = r?;
                    checksum_of(
                        Some(a),
                        [
                            (ChecksumAlgorithm::Crc32, r.checksum_crc32()),
                            (ChecksumAlgorithm::Crc32c, r.checksum_crc32_c()),
                            (ChecksumAlgorithm::Crc64Nvme, r.checksum_crc64_nvme()),
                            (ChecksumAlgorithm::Sha1, r.checksum_sha1()),
                            (ChecksumAlgorithm::Sha256, r.checksum_sha256()),
                        ],
                    )
                }),
                digests: None,
                version_id: out.version_id().map(str::to_owned),
            }
        };
        let mut result = result;
        if result.version_id.is_none() {
            result.version_id = self
                .copied_version(to, result.etag.as_deref(), &what)
                .await?;
        }
        let tagging = i.features().tagging;
        if let Some(tags) = opts.tags.as_ref().filter(|t| tagging && !t.is_empty()) {
            // radosgw ignores the tags sent with a copy that replaces the metadata.
            self.set_tags(to, tags, result.version_id.as_deref(), &what)
                .await?;
        }
        if from.verify_etag {
            let want = from.source_etag.as_deref().unwrap_or_default();
            if result.etag.as_deref() != Some(want) {
                return Err(
                    Error::new(ErrorKind::Integrity, Op::Copy, what).with_detail(format!(
                        "the copy's ETag `{}` is not the source's `{want}`",
                        result.etag.as_deref().unwrap_or("")
                    )),
                );
            }
        }
        Ok(result)
    }

    /// A multipart copy: parts of `from.part_size` (the source's, so the ETag is its), or of
    /// this store's part size.
    async fn copy_parts(
        &self,
        to: &Key,
        from: &CopyFrom,
        opts: &PutOptions,
        header: &str,
        what: &str,
        source_sse_c: bool,
    ) -> Result<PutResult> {
        let i = &self.inner;
        let full = self.full_key(to.as_str());
        let mut create = i
            .client
            .create_multipart_upload()
            .bucket(&i.url.bucket)
            .key(&full);
        create = with_write_settings!(create, i, opts);
        let created = create
            .send()
            .await
            .map_err(|e| map_sdk_error(&i.endpoint, e, Op::Copy, what.to_owned()))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let guard = AbortGuard::new(
            i.client.clone(),
            i.url.bucket.clone(),
            full.clone(),
            upload_id.clone(),
        );
        let part_size = from.part_size.unwrap_or_else(|| {
            let mut p = i.opts.part_size;
            while from.size.div_ceil(p) > MAX_PARTS {
                p *= 2;
            }
            p
        });
        let ranges: Vec<(i32, u64, u64)> = (0..from.size.max(1))
            .step_by(part_size.max(1) as usize)
            .enumerate()
            .map(|(n, s)| (n as i32 + 1, s, (s + part_size).min(from.size)))
            .collect();
        let source_if_match = from.source_etag.as_ref().map(|e| format!("\"{e}\""));
        let parts: Vec<Result<CompletedPart>> = stream::iter(ranges)
            .map(|(n, s, e)| {
                let mut req = i
                    .client
                    .upload_part_copy()
                    .bucket(&i.url.bucket)
                    .key(&full)
                    .upload_id(&upload_id)
                    .part_number(n)
                    .copy_source(header)
                    .set_copy_source_if_match(source_if_match.clone());
                if e > s {
                    req = req.copy_source_range(format!("bytes={}-{}", s, e - 1));
                }
                req = with_sse_c!(req, &i.opts);
                if let (true, Some(k)) = (source_sse_c, &i.opts.sse_c) {
                    req = req
                        .copy_source_sse_customer_algorithm("AES256")
                        .copy_source_sse_customer_key(k.key_base64())
                        .copy_source_sse_customer_key_md5(k.key_md5_base64());
                }
                async move {
                    let out = req.send().await.map_err(|err| {
                        map_sdk_error(&i.endpoint, err, Op::Copy, format!("{what} (part {n})"))
                    })?;
                    Ok(CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(
                            out.copy_part_result()
                                .and_then(|r| r.e_tag())
                                .map(str::to_owned),
                        )
                        .build())
                }
            })
            .buffered(i.opts.parts_in_flight)
            .collect()
            .await;
        let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
        let complete = i
            .client
            .complete_multipart_upload()
            .bucket(&i.url.bucket)
            .key(&full)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        let complete = with_sse_c!(complete, &i.opts);
        let send = |if_match: Option<String>| {
            let mut c = complete.clone().set_if_match(if_match);
            if let Some(WriteCondition::IfNoneMatch) = &opts.condition {
                c = c.if_none_match("*");
            }
            async move {
                c.send()
                    .await
                    .map_err(|e| map_sdk_error(&i.endpoint, e, Op::Copy, what.to_owned()))
            }
        };
        let out = send_conditioned(opts.condition.as_ref(), send).await?;
        guard.disarm();
        Ok(PutResult {
            size: from.size,
            etag: out.e_tag().map(normalize_etag),
            checksum: None,
            digests: None,
            version_id: out.version_id().map(str::to_owned),
        })
    }

    /// The version id of the copy just written at `to`, for a server that answered without
    /// one: a HEAD (conditional on the copy's ETag) tells it, or tells that the bucket keeps
    /// no versions, which is remembered so later copies need no HEAD.
    async fn copied_version(
        &self,
        to: &Key,
        etag: Option<&str>,
        what: &str,
    ) -> Result<Option<String>> {
        let i = &self.inner;
        if !i.features().versioning || i.copy_versions.get() == Some(&false) {
            return Ok(None);
        }
        let out = i
            .client
            .head_object()
            .bucket(&i.url.bucket)
            .key(self.full_key(to.as_str()))
            .set_if_match(etag.map(|e| format!("\"{e}\"")));
        let out = with_sse_c!(out, &i.opts)
            .send()
            .await
            .map_err(|e| map_sdk_error(&i.endpoint, e, Op::Copy, format!("{what} (version)")))?;
        let version = out.version_id().filter(|v| *v != "null").map(str::to_owned);
        let _ = i.copy_versions.set(version.is_some());
        Ok(version)
    }

    /// Sets the tags of what was just written at `key` (the version written, where the
    /// bucket keeps versions).
    async fn set_tags(
        &self,
        key: &Key,
        tags: &Tags,
        version_id: Option<&str>,
        what: &str,
    ) -> Result<()> {
        let i = &self.inner;
        let set = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(
                tags.iter()
                    .map(|(k, v)| {
                        aws_sdk_s3::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .expect("key and value set")
                    })
                    .collect(),
            ))
            .build()
            .expect("tag set given");
        i.client
            .put_object_tagging()
            .bucket(&i.url.bucket)
            .key(self.full_key(key.as_str()))
            .set_version_id(version_id.map(str::to_owned))
            .tagging(set)
            .send()
            .await
            .map_err(|e| map_sdk_error(&i.endpoint, e, Op::Copy, format!("{what} (tags)")))?;
        Ok(())
    }

    /// [`Store::copy`]: within this store, metadata and tags kept.
    pub(super) async fn copy_object(
        &self,
        from: &Key,
        to: &Key,
        opts: CopyOptions,
    ) -> Result<PutResult> {
        let i = &self.inner;
        let source = CopySource {
            server: self.server_id(),
            principal: self.principal(),
            bucket: i.url.bucket.clone(),
            key: self.full_key(from.as_str()),
            version_id: None,
        };
        let size = match opts.size_hint {
            Some(s) => s,
            None if i.opts.copy_multipart_threshold < MAX_SINGLE => {
                self.head(from).await?.map_or(0, |m| m.size)
            }
            // Without a size, try the single copy; S3 refuses it past 5 GiB.
            None => 0,
        };
        if size <= i.opts.copy_multipart_threshold {
            // One CopyObject keeps metadata and tags as they are (and SSE-C needs the key
            // for both sides, which the store has).
            let mut req = i
                .client
                .copy_object()
                .bucket(&i.url.bucket)
                .key(self.full_key(to.as_str()))
                .copy_source(copy_source_header(&source))
                .metadata_directive(MetadataDirective::Copy);
            req = with_sse_c!(req, &i.opts);
            if let Some(k) = &i.opts.sse_c {
                req = req
                    .copy_source_sse_customer_algorithm("AES256")
                    .copy_source_sse_customer_key(k.key_base64())
                    .copy_source_sse_customer_key_md5(k.key_md5_base64());
            }
            let what = format!(
                "{} to {}",
                self.location(from.as_str()),
                self.location(to.as_str())
            );
            let out = req
                .send()
                .await
                .map_err(|e| map_sdk_error(&i.endpoint, e, Op::Copy, what))?;
            return Ok(PutResult {
                size,
                etag: out
                    .copy_object_result()
                    .and_then(|r| r.e_tag())
                    .map(normalize_etag),
                checksum: None,
                digests: None,
                version_id: out.version_id().map(str::to_owned),
            });
        }
        // In parts: the metadata is carried explicitly.
        let meta = self.head(from).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, Op::Copy, self.location(from.as_str()))
                .with_detail("no such object")
        })?;
        let put = PutOptions {
            content_type: meta.content_type.clone(),
            cache_control: meta.cache_control.clone(),
            metadata: meta.metadata.clone(),
            mtime: meta.mtime,
            headers: meta.headers.clone(),
            storage_class: meta.storage_class.clone(),
            ..Default::default()
        };
        let from = CopyFrom {
            source,
            size: meta.size,
            part_size: None,
            keep_tags: true,
            source_etag: meta.etag.clone(),
            verify_etag: false,
        };
        self.copy_with(to, &from, put, true).await
    }
}

/// `x-amz-copy-source`: `bucket/key`, the key escaped, and the version asked for.
fn copy_source_header(s: &CopySource) -> String {
    let mut h = format!("{}/{}", s.bucket, utf8_percent_encode(&s.key, COPY_SOURCE));
    if let Some(v) = &s.version_id {
        h.push_str("?versionId=");
        h.push_str(&utf8_percent_encode(v, COPY_SOURCE).to_string());
    }
    h
}
