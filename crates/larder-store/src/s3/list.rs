//! Listing: `ListObjectsV2`, one page (at most 1,000 keys) in memory at a time.

use super::*;

pub(super) use crate::key::decode_url_key as decode_listed_key;

impl S3Store {
    pub(super) fn list_objects(&self, prefix: &str) -> BoxStream<'static, Result<Entry>> {
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
                    Err(e) => {
                        let mut err =
                            map_sdk_error(&this.inner.endpoint, e, Op::List, this.location(""));
                        if err.kind() == ErrorKind::NotFound {
                            err = err
                                .with_detail(format!("bucket `{}` does not exist", i.url.bucket));
                        }
                        return Some((stream::iter(vec![Err(err)]), None));
                    }
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
