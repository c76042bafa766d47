//! Writes: one PutObject, checked by Content-MD5 and its ETag (larger bodies go through
//! [`super::multipart`]).

use super::*;

impl S3Store {
    pub(super) async fn put_object(
        &self,
        key: &Key,
        body: Body,
        mut opts: PutOptions,
    ) -> Result<PutResult> {
        self.check_condition_supported(key, &opts)?;
        if !self.inner.features().checksums {
            // The server would ignore them (radosgw before Reef): nothing to send or check.
            opts.checksum = None;
        }
        let threshold = self.inner.opts.multipart_threshold;
        let size_hint = body.size();
        let mut stream = body.into_stream();
        let mut buf = BytesMut::new();
        let mut eof = false;
        // Read up to one byte past the threshold to learn which kind of upload this is.
        while (buf.len() as u64) <= threshold {
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk?),
                None => {
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            check_declared_size(&self.location(key.as_str()), size_hint, buf.len() as u64)?;
            self.put_single(key, buf.freeze(), &opts).await
        } else {
            self.put_multipart(key, buf, stream, size_hint, &opts).await
        }
    }

    async fn put_single(&self, key: &Key, data: Bytes, opts: &PutOptions) -> Result<PutResult> {
        let i = &self.inner;
        let loc = self.location(key.as_str());
        let mut hasher = Hasher::new();
        if let Some(a) = opts.checksum {
            hasher = hasher.with_checksum(a);
        }
        hasher.update(&data);
        let digests = hasher.finish();
        // Built afresh for each try (a PutObject request with its body cannot be cloned).
        let build = |if_match: Option<String>| -> Result<_> {
            let req = i
                .client
                .put_object()
                .bucket(&i.url.bucket)
                .key(self.full_key(key.as_str()))
                .content_length(data.len() as i64)
                .content_md5(digests.md5_base64().expect("md5 computed"))
                .set_if_match(if_match);
            let mut req = with_write_settings!(req, i, opts);
            if let Some(WriteCondition::IfNoneMatch) = &opts.condition {
                req = req.if_none_match("*");
            }
            if let Some(a) = opts.checksum {
                let c = digests.checksum(a).expect("computed above").value.clone();
                req = with_checksum!(req, a, c);
            }
            Ok(req.body(SdkByteStream::from(data.clone())))
        };
        let send =
            |req: Result<aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder>| {
                let loc = loc.clone();
                async move {
                    // Unsigned payload: the signed Content-MD5 has the server check the body.
                    req?.customize()
                        .disable_payload_signing()
                        .send()
                        .await
                        .map_err(|e| map_sdk_error(&self.inner.endpoint, e, Op::Put, loc))
                }
            };
        let out = send_conditioned(opts.condition.as_ref(), |m| send(build(m))).await?;
        let md5 = digests.md5_hex().expect("md5 computed");
        let etag = match out.e_tag().map(normalize_etag).filter(|e| !e.is_empty()) {
            Some(e) => Some(e),
            None => Some(self.confirm_stored(key, &loc, digests.size, &md5).await?),
        };
        // With SSE-C or SSE-KMS the ETag is not the MD5; the server checked Content-MD5.
        if self.etags_are_md5() {
            check_etag(&loc, Op::Put, etag.as_deref(), &md5)?;
        }
        let checksum = opts
            .checksum
            .and_then(|a| checksum_of(Some(a), response_checksums!(&out)));
        if let (Some(a), Some(got)) = (opts.checksum, &checksum) {
            check_checksum(&loc, Op::Put, got, digests.checksum(a).expect("computed"))?;
        }
        Ok(PutResult {
            size: digests.size,
            etag,
            checksum,
            digests: Some(digests),
            version_id: out.version_id().map(str::to_owned),
        })
    }

    /// A write the server acknowledged without an ETag is not taken on trust: one HEAD must
    /// show the object with the size and the ETag (`want`) of what was sent. Anything else is
    /// an integrity error naming the key, never a silent success. Returns the ETag seen.
    pub(super) async fn confirm_stored(
        &self,
        key: &Key,
        loc: &str,
        size: u64,
        want: &str,
    ) -> Result<String> {
        let unverified = |why: String| {
            Error::new(ErrorKind::Integrity, Op::Put, loc)
                .with_detail(format!("the server answered without an ETag, and {why}"))
        };
        match self.head(key).await? {
            None => Err(unverified("does not have the object".to_owned())),
            Some(m) if m.size != size => Err(unverified(format!(
                "holds {} bytes where {size} were sent",
                m.size
            ))),
            Some(ObjectMeta { etag: None, .. }) => Err(unverified(
                "a HEAD shows none either: the write cannot be verified".to_owned(),
            )),
            Some(ObjectMeta { etag: Some(e), .. }) if e != want && looks_like_md5_etag(&e) => {
                Err(unverified(format!(
                    "the object's ETag `{e}` is not the MD5 of what was sent `{want}`"
                )))
            }
            Some(ObjectMeta { etag: Some(e), .. }) => Ok(e),
        }
    }
}

/// A body that was declared `declared` bytes long (a file's size when opened) must be that
/// long; else the source changed while being read and must not be committed.
pub(super) fn check_declared_size(loc: &str, declared: Option<u64>, read: u64) -> Result<()> {
    match declared {
        Some(want) if want != read => Err(Error::new(ErrorKind::Integrity, Op::Put, loc)
            .with_detail(format!(
                "the body was {want} bytes long when opened but {read} bytes were read; nothing was written"
            ))),
        _ => Ok(()),
    }
}

/// Sends a write under its precondition: `send(None)` when there is no If-Match (an
/// If-None-Match is the builder's to set), else `send(Some(etag))` with each form of the
/// ETag in turn while the server answers 412 (see [`if_match_values`]).
pub(super) async fn send_conditioned<T, F, Fut>(
    condition: Option<&WriteCondition>,
    mut send: F,
) -> Result<T>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let Some(WriteCondition::IfMatch(e)) = condition else {
        return send(None).await;
    };
    let mut values = if_match_values(e).into_iter();
    let mut res = send(values.next()).await;
    for alt in values {
        if matches!(&res, Err(err) if err.kind() == ErrorKind::Conflict) {
            res = send(Some(alt)).await;
        }
    }
    res
}
