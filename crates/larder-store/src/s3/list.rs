//! Listing: `ListObjectsV2`, one page (at most 1,000 keys) in memory at a time; for a
//! directory bucket (S3 Express One Zone), whose listings are not in key order, the whole
//! listing, sorted.

use super::*;

pub(super) use crate::key::decode_url_key as decode_listed_key;

impl S3Store {
    pub(super) fn list_objects(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        let pages = self.list_pages(prefix);
        if self.sorts_listing() {
            sorted(pages)
        } else {
            pages
        }
    }

    /// Whether listings are sorted here: [`S3Options::sort_listing`], or a directory
    /// bucket's name (`…--x-s3`).
    pub(super) fn sorts_listing(&self) -> bool {
        let i = &self.inner;
        i.opts
            .sort_listing
            .unwrap_or_else(|| is_directory_bucket(&i.url.bucket))
    }

    fn list_pages(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
        let this = self.clone();
        let full_prefix = self.full_key(prefix);
        // State: None = finished; Some(token) = fetch the page after `token` (None: first).
        stream::unfold(Some(None::<String>), move |state| {
            let this = this.clone();
            let full_prefix = full_prefix.clone();
            async move {
                let token = state?;
                let i = &this.inner;
                let out = i
                    .client
                    .list_objects_v2()
                    .bucket(&i.url.bucket)
                    .prefix(&full_prefix)
                    .max_keys(i.opts.list_page_size)
                    // Keys with characters XML 1.0 cannot carry (control characters) would
                    // make the whole page unparsable: have them URL-encoded, decoded below.
                    .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                    .set_continuation_token(token)
                    .send()
                    .await;
                let out = match out {
                    Ok(o) => o,
                    Err(e) => return Some((stream::iter(vec![Err(this.listing_error(e))]), None)),
                };
                let entries: Vec<Result<Entry>> = out
                    .contents()
                    .iter()
                    .filter_map(|o| {
                        let raw = o.key()?;
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
                        let key = this.strip(&full)?;
                        Some(Ok(Entry {
                            key,
                            size: o.size().unwrap_or(0).max(0) as u64,
                            last_modified: to_system_time(o.last_modified()),
                            etag: o.e_tag().map(normalize_etag),
                            storage_class: o.storage_class().map(|s| s.as_str().to_owned()),
                        }))
                    })
                    .collect();
                let next = match (out.is_truncated(), out.next_continuation_token()) {
                    (Some(true), Some(t)) => Some(Some(t.to_owned())),
                    _ => None,
                };
                Some((stream::iter(entries), next))
            }
        })
        .flatten()
        .boxed()
    }
}

impl S3Store {
    /// A failed listing page (ListObjectsV2, ListObjectVersions): a missing bucket is named
    /// as such.
    pub(super) fn listing_error<E>(
        &self,
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let err = map_sdk_error(&self.inner.endpoint, e, Op::List, self.location(""));
        if err.kind() == ErrorKind::NotFound {
            err.with_detail(format!("bucket `{}` does not exist", self.inner.url.bucket))
        } else {
            err
        }
    }
}

/// Whether `bucket` names an S3 Express One Zone directory bucket
/// (`name--usw2-az1--x-s3`).
pub(super) fn is_directory_bucket(bucket: &str) -> bool {
    bucket.ends_with("--x-s3")
}

/// The whole listing in key order: the errors first, then the entries sorted.
fn sorted(listing: BoxStream<'static, Result<Entry>>) -> BoxStream<'static, Result<Entry>> {
    stream::once(async move {
        let all: Vec<Result<Entry>> = listing.collect().await;
        let (mut ok, errors): (Vec<_>, Vec<_>) = all.into_iter().partition(|r| r.is_ok());
        ok.sort_by(|a, b| match (a, b) {
            (Ok(a), Ok(b)) => a.key.cmp(&b.key),
            _ => std::cmp::Ordering::Equal,
        });
        stream::iter(errors.into_iter().chain(ok))
    })
    .flatten()
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str) -> Result<Entry> {
        Ok(Entry {
            key: Key::new(k).unwrap(),
            size: 1,
            last_modified: None,
            etag: None,
            storage_class: None,
        })
    }

    #[tokio::test]
    async fn a_directory_buckets_listing_is_sorted_errors_first() {
        assert!(is_directory_bucket("logs--usw2-az1--x-s3"));
        assert!(!is_directory_bucket("logs-x-s3"));
        let err = Error::new(ErrorKind::Transient, Op::List, "s3://b/");
        let listing = stream::iter(vec![entry("b/2"), entry("a"), Err(err), entry("b/10")]).boxed();
        let got: Vec<String> = sorted(listing)
            .map(|r| r.map_or_else(|e| format!("error {}", e.kind()), |e| e.key.into_string()))
            .collect()
            .await;
        assert!(got[0].starts_with("error"), "{got:?}");
        assert_eq!(&got[1..], ["a", "b/10", "b/2"]);
    }
}
