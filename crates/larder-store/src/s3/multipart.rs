//! Multipart uploads: create (or take over from the journal), parts in parallel with their
//! MD5s, complete with the ETag and checksum checked, and the guard that aborts an upload
//! that failed or was cancelled.

use super::*;

impl S3Store {
    /// Creates a multipart upload. The create runs as a background task: if this put is
    /// cancelled while the request is in flight, the upload still comes into being on the
    /// server, and the task, finding no one to hand it to, aborts it.
    pub(super) async fn create_upload(
        &self,
        create: aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder,
        loc: &str,
        full_key: &str,
    ) -> Result<String> {
        let i = &self.inner;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (client, bucket, key2) = (i.client.clone(), i.url.bucket.clone(), full_key.to_owned());
        background().spawn(async move {
            let res = create.send().await;
            if let Err(Ok(orphan)) = tx.send(res) {
                let orphan: aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput = orphan;
                if let Some(id) = orphan.upload_id() {
                    drop(AbortGuard::new(client, bucket, key2, id.to_owned()));
                }
            }
        });
        let created = rx
            .await
            .map_err(|e| Error::new(ErrorKind::Other, Op::Put, loc.to_owned()).with_source(e))?
            .map_err(|e| map_sdk_error(&self.inner.endpoint, e, Op::Put, loc.to_owned()))?;
        Ok(created.upload_id().unwrap_or_default().to_owned())
    }

    /// The parts of an upload on the server: number → (ETag, size).
    pub(super) async fn upload_parts(
        &self,
        full_key: &str,
        upload_id: &str,
    ) -> Result<HashMap<i32, (String, u64)>> {
        let i = &self.inner;
        let mut out = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let page = i
                .client
                .list_parts()
                .bucket(&i.url.bucket)
                .key(full_key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| map_sdk_error(&i.endpoint, e, Op::List, full_key.to_owned()))?;
            for p in page.parts() {
                if let (Some(n), Some(e)) = (p.part_number(), p.e_tag()) {
                    out.insert(n, (normalize_etag(e), p.size().unwrap_or(0).max(0) as u64));
                }
            }
            match page.next_part_number_marker() {
                Some(m) if page.is_truncated() == Some(true) => marker = Some(m.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// A multipart upload of `first` followed by the rest of `stream`.
    pub(super) async fn put_multipart(
        &self,
        key: &Key,
        first: BytesMut,
        mut stream: ByteStream,
        size_hint: Option<u64>,
        opts: &PutOptions,
    ) -> Result<PutResult> {
        let i = &self.inner;
        let loc = self.location(key.as_str());
        let full_key = self.full_key(key.as_str());
        // Raise the part size when a known size would need more than 10,000 parts.
        let mut part_size = i.opts.part_size;
        if let Some(n) = size_hint {
            while n.div_ceil(part_size) > MAX_PARTS {
                part_size *= 2;
            }
        }
        let composite = opts.checksum.filter(|a| a.supports_composite());
        let full_object = opts.checksum.filter(|a| !a.supports_composite());
        let create = i
            .client
            .create_multipart_upload()
            .bucket(&i.url.bucket)
            .key(&full_key);
        let mut create = with_write_settings!(create, i, opts);
        if let Some(a) = opts.checksum {
            create =
                create
                    .checksum_algorithm(sdk_algorithm(a))
                    .checksum_type(if composite.is_some() {
                        ChecksumType::Composite
                    } else {
                        ChecksumType::FullObject
                    });
        }
        // A journal (and no additional checksum, which each part would need to carry): an
        // upload of this key a killed run left is resumed, its parts checked by their MD5.
        let journal = i.opts.journal.clone().filter(|_| opts.checksum.is_none());
        let mut on_server: HashMap<i32, (String, u64)> = HashMap::new();
        let mut resumed = None;
        if let Some(j) = &journal {
            if let Some(up) = j.take_over(&i.url.bucket, &full_key, part_size) {
                match self.upload_parts(&full_key, &up.upload_id).await {
                    Ok(parts) => {
                        tracing::info!(key = %loc, parts = parts.len(), "resuming a multipart upload a killed run left");
                        on_server = parts;
                        resumed = Some(up.upload_id);
                    }
                    // Gone (aborted, completed, expired): start anew.
                    Err(_) => j.finished(&i.url.bucket, &up.upload_id),
                }
            }
        }
        let upload_id = match resumed {
            Some(id) => id,
            None => {
                let id = self.create_upload(create, &loc, &full_key).await?;
                if let Some(j) = &journal {
                    j.started(
                        &i.url.bucket,
                        &full_key,
                        &crate::journal::JournalUpload {
                            upload_id: id.clone(),
                            part_size,
                        },
                    );
                }
                id
            }
        };
        let mut guard = AbortGuard::new(
            i.client.clone(),
            i.url.bucket.clone(),
            full_key.clone(),
            upload_id.clone(),
        );
        guard.journal = journal.clone();

        // Each part's MD5 (Content-MD5, and the ETag) is computed in its own task, on the
        // blocking pool, so the parts in flight hash on as many cores; this pass keeps only
        // the size and the full-object checksum. The whole body's MD5 is of no use here.
        let mut hasher = Hasher::new().skip_md5();
        if let Some(a) = opts.checksum {
            hasher = hasher.with_checksum(a);
        }
        let mut done: Vec<PartDone> = Vec::new();
        let mut buf = first;
        let mut part_number: i32 = 0;
        let mut eof = false;
        loop {
            // Fill one part.
            while !eof && (buf.len() as u64) < part_size {
                match stream.next().await {
                    Some(chunk) => buf.extend_from_slice(&chunk?),
                    None => eof = true,
                }
            }
            if buf.is_empty() && (eof && part_number > 0) {
                break;
            }
            let take = (buf.len() as u64).min(part_size) as usize;
            let part = buf.split_to(take).freeze();
            hasher.update(&part);
            part_number += 1;
            if part_number as u64 > MAX_PARTS {
                return Err(
                    Error::new(ErrorKind::InvalidConfig, Op::Put, loc).with_detail(format!(
                        "the body needs more than 10,000 parts of {part_size} bytes"
                    )),
                );
            }
            // Wait for a free slot, failing fast on the first error.
            while guard.tasks.len() >= i.opts.parts_in_flight {
                done.push(join_part(&mut guard.tasks, &loc).await?);
            }
            let client = i.client.clone();
            let (bucket, fk, uid, l) = (
                i.url.bucket.clone(),
                full_key.clone(),
                upload_id.clone(),
                loc.clone(),
            );
            let on_server = on_server
                .remove(&part_number)
                .filter(|(_, size)| *size == part.len() as u64)
                .map(|(etag, _)| etag);
            // Every part carries its own checksum: servers refuse parts without one once the
            // upload declared an algorithm, composite or full-object.
            guard.tasks.spawn(upload_part(
                client,
                i.endpoint.clone(),
                bucket,
                fk,
                uid,
                part_number,
                part,
                opts.checksum,
                l,
                on_server,
                i.opts.sse_c.clone(),
            ));
            if eof && buf.is_empty() {
                break;
            }
        }
        while !guard.tasks.is_empty() {
            done.push(join_part(&mut guard.tasks, &loc).await?);
        }
        // Before completing: a source that changed size while read is not committed.
        check_declared_size(&loc, size_hint, hasher.size())?;
        done.sort_by_key(|p| p.number);
        let mut digests = hasher.finish();
        digests.part_md5s = Some(done.iter().map(|p| p.md5).collect());

        let parts: Vec<CompletedPart> = done
            .iter()
            .map(|p| {
                let mut b = CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(p.etag.clone());
                if let (Some(a), Some(raw)) = (opts.checksum, &p.checksum) {
                    let v = Checksum::from_raw(a, raw).value;
                    b = with_checksum!(b, a, v);
                }
                b.build()
            })
            .collect();
        let mut complete = i
            .client
            .complete_multipart_upload()
            .bucket(&i.url.bucket)
            .key(&full_key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        if let Some(a) = full_object {
            let v = digests.checksum(a).expect("computed").value.clone();
            complete = complete
                .checksum_crc64_nvme(v)
                .checksum_type(ChecksumType::FullObject);
        }
        if let Some(WriteCondition::IfNoneMatch) = &opts.condition {
            complete = complete.if_none_match("*");
        }
        complete = with_sse_c!(complete, &i.opts);
        let send = |c: aws_sdk_s3::operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder| {
            let loc = loc.clone();
            async move {
                c.send()
                    .await
                    .map_err(|e| map_sdk_error(&self.inner.endpoint, e, Op::Put, loc))
            }
        };
        let out = send_conditioned(opts.condition.as_ref(), |m| {
            send(complete.clone().set_if_match(m))
        })
        .await?;
        guard.disarm();
        if let Some(j) = &journal {
            j.finished(&i.url.bucket, &upload_id);
        }

        let expected = integrity::multipart_etag(&done.iter().map(|p| p.md5).collect::<Vec<_>>());
        let etag = match out.e_tag().map(normalize_etag).filter(|e| !e.is_empty()) {
            Some(e) => Some(e),
            None => Some(
                self.confirm_stored(key, &loc, digests.size, &expected)
                    .await?,
            ),
        };
        if self.etags_are_md5() {
            check_etag(&loc, Op::Put, etag.as_deref(), &expected)?;
        }
        let checksum = opts
            .checksum
            .and_then(|a| checksum_of(Some(a), response_checksums!(&out)));
        if let Some(got) = &checksum {
            let want = match composite {
                Some(a) => composite_checksum(
                    a,
                    &done
                        .iter()
                        .map(|p| p.checksum.clone().unwrap_or_default())
                        .collect::<Vec<_>>(),
                ),
                None => digests.checksum(got.algorithm).expect("computed").clone(),
            };
            check_checksum(&loc, Op::Put, got, &want)?;
        }
        Ok(PutResult {
            size: digests.size,
            etag,
            checksum,
            digests: Some(digests),
            version_id: out.version_id().map(str::to_owned),
        })
    }
}

pub(super) struct PartDone {
    number: i32,
    etag: String,
    md5: [u8; 16],
    checksum: Option<Vec<u8>>,
}

async fn join_part(
    tasks: &mut tokio::task::JoinSet<Result<PartDone>>,
    loc: &str,
) -> Result<PartDone> {
    match tasks.join_next().await.expect("a task is in flight") {
        Ok(r) => r,
        Err(e) => Err(Error::new(ErrorKind::Other, Op::Put, loc).with_source(e)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload_part(
    client: Client,
    endpoint: Arc<str>,
    bucket: String,
    key: String,
    upload_id: String,
    number: i32,
    data: Bytes,
    checksum: Option<ChecksumAlgorithm>,
    loc: String,
    on_server: Option<String>,
    sse_c: Option<super::SseCustomerKey>,
) -> Result<PartDone> {
    let d = data.clone();
    let md5 = tokio::task::spawn_blocking(move || integrity::md5(&d))
        .await
        .map_err(|e| Error::new(ErrorKind::Other, Op::Put, loc.clone()).with_source(e))?;
    // A part a killed run already uploaded, with these very bytes: not sent again.
    if let Some(etag) = on_server.filter(|e| *e == hex::encode(md5)) {
        return Ok(PartDone {
            number,
            etag,
            md5,
            checksum: None,
        });
    }
    let raw = checksum.map(|a| checksum_raw(a, &data));
    let mut req = client
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .content_length(data.len() as i64)
        .content_md5(base64_of(&md5));
    if let Some(k) = &sse_c {
        req = req
            .sse_customer_algorithm("AES256")
            .sse_customer_key(k.key_base64())
            .sse_customer_key_md5(k.key_md5_base64());
    }
    if let (Some(a), Some(r)) = (checksum, &raw) {
        let v = Checksum::from_raw(a, r).value;
        req = with_checksum!(req, a, v);
    }
    // The body is not part of the signature: Content-MD5, which is, makes the server check
    // every byte, and a SHA-256 of each part would be a third pass over it.
    let out = req
        .body(SdkByteStream::from(data))
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .map_err(|e| map_sdk_error(&endpoint, e, Op::Put, format!("{loc} (part {number})")))?;
    let etag = out.e_tag().map(normalize_etag).unwrap_or_default();
    // An SSE-C part's ETag is not its MD5; the server checked Content-MD5.
    if sse_c.is_none() {
        check_etag(
            &format!("{loc} (part {number})"),
            Op::Put,
            Some(&etag),
            &hex::encode(md5),
        )?;
    }
    Ok(PartDone {
        number,
        etag,
        md5,
        checksum: raw,
    })
}

/// Aborts a multipart upload unless disarmed: on error, and when the put is cancelled.
///
/// It owns the part uploads in flight. S3 warns that parts still uploading while an upload
/// is aborted may land afterwards and keep storage (and the bill) alive, so the abort waits
/// for those tasks to end, then aborts and checks with `ListParts` until the upload is gone
/// (a few tries).
pub(super) struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
    tasks: tokio::task::JoinSet<Result<PartDone>>,
    /// Told once the abort is confirmed.
    journal: Option<Arc<dyn crate::journal::UploadJournal>>,
}

impl AbortGuard {
    pub(super) fn new(client: Client, bucket: String, key: String, upload_id: String) -> Self {
        AbortGuard {
            client,
            bucket,
            key,
            upload_id: Some(upload_id),
            tasks: tokio::task::JoinSet::new(),
            journal: None,
        }
    }

    pub(super) fn disarm(mut self) {
        self.upload_id = None;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        let journal = self.journal.take();
        let mut tasks = std::mem::take(&mut self.tasks);
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                bucket,
                key,
                upload_id,
                "no runtime to abort a multipart upload"
            );
            return;
        };
        background().spawn_on(
            async move {
            tasks.shutdown().await;
            for attempt in 0..6u32 {
                if let Err(e) = client
                    .abort_multipart_upload()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .send()
                    .await
                {
                    let gone = matches!(&e, SdkError::ServiceError(c) if c.err().code() == Some("NoSuchUpload"));
                    if !gone {
                        tracing::warn!(bucket, key, upload_id, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "could not abort a multipart upload");
                    }
                }
                // A part request the server had already received may still land after the
                // abort and bring the upload back: look again only after a pause.
                tokio::time::sleep(std::time::Duration::from_millis(300 * (u64::from(attempt) + 1)))
                    .await;
                let still = client
                    .list_parts()
                    .bucket(&bucket)
                    .key(&key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                if still.is_err() {
                    // NoSuchUpload: gone for good.
                    if let Some(j) = &journal {
                        j.finished(&bucket, &upload_id);
                    }
                    return;
                }
            }
            tracing::warn!(bucket, key, upload_id, "a multipart upload may be left behind: `larder cleanup s3://{bucket}/{key}` aborts it");
        },
            &rt,
        );
    }
}
