//! Server-side copy: one CopyObject, or UploadPartCopy in parts above 5 GiB, checked.

use super::*;

impl S3Store {
    pub(super) async fn copy_object(
        &self,
        from: &Key,
        to: &Key,
        opts: CopyOptions,
    ) -> Result<PutResult> {
        let i = &self.inner;
        let loc = self.location(to.as_str());
        let source = format!(
            "{}/{}",
            i.url.bucket,
            utf8_percent_encode(&self.full_key(from.as_str()), COPY_SOURCE)
        );
        let size = match opts.size_hint {
            Some(s) => s,
            None if i.opts.copy_multipart_threshold < MAX_SINGLE => {
                self.head(from)
                    .await?
                    .ok_or_else(|| {
                        Error::new(ErrorKind::NotFound, Op::Copy, self.location(from.as_str()))
                            .with_detail("no such object")
                    })?
                    .size
            }
            // Without a size, try the single copy; S3 refuses it past 5 GiB.
            None => 0,
        };
        if size <= i.opts.copy_multipart_threshold {
            let out = i
                .client
                .copy_object()
                .bucket(&i.url.bucket)
                .key(self.full_key(to.as_str()))
                .copy_source(&source)
                .metadata_directive(MetadataDirective::Copy)
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error(
                        &self.inner.endpoint,
                        e,
                        Op::Copy,
                        format!("{} to {loc}", self.location(from.as_str())),
                    )
                })?;
            let r = out.copy_object_result();
            return Ok(PutResult {
                size,
                etag: r.and_then(|r| r.e_tag()).map(normalize_etag),
                checksum: None,
                digests: None,
                version_id: out.version_id().map(str::to_owned),
            });
        }
        // Multipart copy: metadata must be carried explicitly.
        let meta = self.head(from).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, Op::Copy, self.location(from.as_str()))
        })?;
        let mut md = meta.metadata.clone();
        if let Some(t) = meta.mtime {
            md.insert(MTIME_METADATA.to_owned(), format_mtime(t));
        }
        let created = i
            .client
            .create_multipart_upload()
            .bucket(&i.url.bucket)
            .key(self.full_key(to.as_str()))
            .set_content_type(meta.content_type.clone())
            .set_cache_control(meta.cache_control.clone())
            .set_metadata(Some(md.into_iter().collect()))
            .send()
            .await
            .map_err(|e| map_sdk_error(&self.inner.endpoint, e, Op::Copy, loc.clone()))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let guard = AbortGuard::new(
            i.client.clone(),
            i.url.bucket.clone(),
            self.full_key(to.as_str()),
            upload_id.clone(),
        );
        let mut part_size = i.opts.part_size;
        while meta.size.div_ceil(part_size) > MAX_PARTS {
            part_size *= 2;
        }
        let ranges: Vec<(i32, u64, u64)> = (0..meta.size)
            .step_by(part_size as usize)
            .enumerate()
            .map(|(n, s)| (n as i32 + 1, s, (s + part_size).min(meta.size)))
            .collect();
        let parts: Vec<Result<CompletedPart>> = stream::iter(ranges)
            .map(|(n, s, e)| {
                let req = i
                    .client
                    .upload_part_copy()
                    .bucket(&i.url.bucket)
                    .key(self.full_key(to.as_str()))
                    .upload_id(&upload_id)
                    .part_number(n)
                    .copy_source(&source)
                    .copy_source_range(format!("bytes={}-{}", s, e - 1))
                    .set_copy_source_if_match(meta.etag.as_ref().map(|e| format!("\"{e}\"")));
                let loc = loc.clone();
                async move {
                    let out = req.send().await.map_err(|e| {
                        map_sdk_error(
                            &self.inner.endpoint,
                            e,
                            Op::Copy,
                            format!("{loc} (part {n})"),
                        )
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
        let out = i
            .client
            .complete_multipart_upload()
            .bucket(&i.url.bucket)
            .key(self.full_key(to.as_str()))
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_sdk_error(&self.inner.endpoint, e, Op::Copy, loc.clone()))?;
        guard.disarm();
        Ok(PutResult {
            size: meta.size,
            etag: out.e_tag().map(normalize_etag),
            checksum: None,
            digests: None,
            version_id: out.version_id().map(str::to_owned),
        })
    }
}
