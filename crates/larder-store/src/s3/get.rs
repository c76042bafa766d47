//! Reads: one GetObject, or parallel ranged GETs along the object's parts, each part hashed
//! on its own.

use super::*;
use futures::stream::TryStreamExt as _;

impl S3Store {
    pub(super) async fn get_object(&self, key: &Key, opts: GetOptions) -> Result<GetResult> {
        let i = &self.inner;
        let loc = self.location(key.as_str());
        let parallel = opts.range.is_none()
            && opts
                .size_hint
                .is_some_and(|s| s >= i.opts.get_parallel_threshold);
        // Ranges aligned to the object's parts, each hashed on its own, when asked for and
        // the parts are small enough to hold a few in memory.
        let aligned = opts
            .part_md5s
            .filter(|p| parallel && (MIB..=MAX_ALIGNED_PART).contains(p));
        let step = aligned.unwrap_or(i.opts.get_part_size);
        let header = match &opts.range {
            Some(GetRange::Bounded(r)) if r.start >= r.end => {
                return Err(Error::new(ErrorKind::InvalidRange, Op::Get, loc)
                    .with_detail(format!("range {} is empty", GetRange::Bounded(r.clone()))))
            }
            Some(GetRange::Bounded(r)) => Some(format!("bytes={}-{}", r.start, r.end - 1)),
            Some(GetRange::From(s)) => Some(format!("bytes={s}-")),
            None if parallel => Some(format!("bytes=0-{}", step - 1)),
            None => None,
        };
        let out = self.get_range(key, header, &opts, None).await?;
        let (range, total) = match out.content_range().and_then(parse_content_range) {
            Some((a, b, total)) => (a..b + 1, total),
            None => {
                let n = out.content_length().unwrap_or(0).max(0) as u64;
                (0..n, n)
            }
        };
        let mut meta = object_meta!(&out, key.clone(), total);
        if self.inner.features().tagging {
            meta.tag_count = Some(out.tag_count().unwrap_or(0).max(0) as u64);
        }
        if !opts.checksum {
            meta.checksum = None;
        } else if parallel && range.end < total {
            // A ranged response carries no whole-object checksum: ask for it once, pinned to
            // the version being read.
            let head = self.head(key).await?;
            meta.checksum = match head {
                Some(h) if h.etag == meta.etag => h.checksum,
                _ => {
                    return Err(Error::new(ErrorKind::Conflict, Op::Get, loc)
                        .with_detail("the object changed while being read"))
                }
            };
        }
        let md5s = aligned.map(|_| PartMd5s::default());
        let first_body = body_stream(out.body, loc.clone());
        let first: ByteStream = match &md5s {
            // Part 0 is read and hashed like the others, so no part is hashed serially.
            Some(m) => {
                let (m, loc, len) = (m.clone(), loc.clone(), range.end - range.start);
                stream::once(async move {
                    let buf = collect_range(first_body, 0, len, &loc).await?;
                    hash_part(buf, 0, &m).await
                })
                .map_ok(chunks_stream)
                .try_flatten()
                .boxed()
            }
            None => first_body,
        };
        if !parallel || range.end >= total {
            let range = if parallel { 0..total } else { range };
            return Ok(GetResult {
                meta,
                range,
                body: first,
                part_md5s: md5s,
            });
        }
        // Parallel ranged GETs for the rest, pinned to the first response's ETag.
        let etag = meta.etag.clone();
        let version_id = opts.version_id.clone();
        let ranges: Vec<(u64, u64)> = (range.end..total)
            .step_by(step as usize)
            .map(|s| (s, (s + step).min(total)))
            .collect();
        let this = self.clone();
        let key2 = key.clone();
        let md5s2 = md5s.clone();
        let rest = stream::iter(ranges)
            .map(move |(s, e)| {
                let this = this.clone();
                let key = key2.clone();
                let etag = etag.clone();
                let md5s = md5s2.clone();
                let version_id = version_id.clone();
                tokio::spawn(async move {
                    let loc = this.location(key.as_str());
                    let out = this
                        .get_range(
                            &key,
                            Some(format!("bytes={}-{}", s, e - 1)),
                            &GetOptions {
                                version_id,
                                ..GetOptions::default()
                            },
                            etag.map(|e| format!("\"{e}\"")),
                        )
                        .await?;
                    let buf =
                        collect_range(body_stream(out.body, loc.clone()), s, e - s, &loc).await?;
                    match &md5s {
                        Some(m) => hash_part(buf, s / step, m).await,
                        None => Ok(buf),
                    }
                })
            })
            .buffered(i.opts.get_parts_in_flight)
            .map(move |joined| match joined {
                Ok(r) => r,
                Err(e) => Err(Error::new(ErrorKind::Other, Op::Get, "parallel get").with_source(e)),
            })
            .map_ok(chunks_stream)
            .try_flatten();
        Ok(GetResult {
            meta,
            range: 0..total,
            body: first.chain(rest).boxed(),
            part_md5s: md5s,
        })
    }

    async fn get_range(
        &self,
        key: &Key,
        range: Option<String>,
        opts: &GetOptions,
        if_match: Option<String>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput> {
        let i = &self.inner;
        let mut req = i
            .client
            .get_object()
            .bucket(&i.url.bucket)
            .key(self.full_key(key.as_str()))
            .set_range(range)
            .set_if_match(if_match.or_else(|| opts.if_match.clone()))
            .set_if_none_match(
                opts.if_none_match
                    .as_ref()
                    .map(|e| format!("\"{}\"", normalize_etag(e))),
            )
            .set_version_id(opts.version_id.clone());
        req = with_sse_c!(req, &i.opts);
        if opts.checksum {
            req = req.checksum_mode(ChecksumMode::Enabled);
        }
        req.send().await.map_err(|e| {
            map_sdk_error(
                &self.inner.endpoint,
                e,
                Op::Get,
                self.location(key.as_str()),
            )
        })
    }
}

/// Parts larger than this are not read as aligned ranges (a few are held in memory at once).
const MAX_ALIGNED_PART: u64 = 16 * MIB;

/// Reads a range's body whole, as the chunks it arrived in (not copied), checking its
/// length.
async fn collect_range(
    mut body: ByteStream,
    start: u64,
    len: u64,
    loc: &str,
) -> Result<Vec<Bytes>> {
    let mut chunks = Vec::new();
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        got += chunk.len() as u64;
        chunks.push(chunk);
    }
    if got != len {
        return Err(
            Error::new(ErrorKind::Integrity, Op::Get, loc).with_detail(format!(
                "range {start}..{} returned {got} bytes",
                start + len,
            )),
        );
    }
    Ok(chunks)
}

/// Hashes one part on the blocking pool (the parts in flight hash on as many cores) and
/// records its MD5.
async fn hash_part(chunks: Vec<Bytes>, index: u64, md5s: &PartMd5s) -> Result<Vec<Bytes>> {
    let m = md5s.clone();
    tokio::task::spawn_blocking(move || {
        m.insert(index, integrity::md5_of_chunks(&chunks));
        chunks
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Other, Op::Get, "part hash").with_source(e))
}

/// A part's chunks as body items.
fn chunks_stream(chunks: Vec<Bytes>) -> impl futures::Stream<Item = Result<Bytes>> {
    stream::iter(chunks.into_iter().map(Ok))
}

/// Parses `bytes START-END/TOTAL`.
fn parse_content_range(s: &str) -> Option<(u64, u64, u64)> {
    let s = s.trim().strip_prefix("bytes ")?;
    let (range, total) = s.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

fn body_stream(body: SdkByteStream, loc: String) -> ByteStream {
    stream::unfold(Some(body), move |body| {
        let loc = loc.clone();
        async move {
            let mut body = body?;
            match body.try_next().await {
                Ok(Some(b)) => Some((Ok(b), Some(body))),
                Ok(None) => None,
                Err(e) => {
                    let cause = root_cause(&e);
                    let detail = if cause.contains("throughput") {
                        // The SDK's stalled-stream protection (S3Options::idle_timeout).
                        format!("the body stalled: no byte arrived within the idle timeout (timed out; {cause})")
                    } else {
                        format!("the connection failed while reading the body: {cause}")
                    };
                    Some((
                        Err(Error::new(ErrorKind::Transient, Op::Get, loc)
                            .with_detail(detail)
                            .with_source(e)),
                        None,
                    ))
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }
}
