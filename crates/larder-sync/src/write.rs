//! What a transfer writes besides the bytes: the source's metadata carried (s3sync and
//! `aws s3 sync` carry it), what the user overrides, the tags, and the write's condition.
//!
//! The source's GET answers with its system metadata (Content-Type, Cache-Control,
//! Content-Encoding/-Disposition/-Language, Expires, website redirect) and user metadata, so
//! carrying them costs no request. Tags are not in a GET's answer: when both sides keep tags
//! and the GET says the object has some (`x-amz-tagging-count`), one GetObjectTagging reads
//! them; an object without tags costs nothing more.

use std::collections::BTreeMap;

use larder_store::{Headers, ObjectMeta, PutOptions, Tags, WriteCondition};

/// How a transfer's write is dressed. The default carries everything the source has and
/// overrides nothing.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Leave the source's system metadata behind (s3sync `--no-sync-system-metadata`):
    /// Content-Type, Cache-Control and the other headers; overrides still apply.
    pub no_system_metadata: bool,
    /// Leave the source's user metadata behind (`--no-sync-user-defined-metadata`). larder's
    /// own recorded mtime is still written.
    pub no_user_metadata: bool,
    /// Do not copy tags from the source (`--disable-tagging`).
    pub no_tags: bool,
    /// Content-Type for every object written (`--content-type`).
    pub content_type: Option<String>,
    /// Cache-Control for every object written (`--cache-control`).
    pub cache_control: Option<String>,
    /// Headers for every object written: each one set replaces the source's
    /// (`--content-encoding`, `--content-disposition`, `--content-language`, `--expires`,
    /// `--website-redirect`).
    pub headers: Headers,
    /// User metadata for every object written, instead of the source's (`--metadata`).
    pub metadata: Option<BTreeMap<String, String>>,
    /// Tags for every object written, instead of the source's (`--tagging`).
    pub tags: Option<Tags>,
    /// Storage class for every object written (`--storage-class`); else the destination's
    /// default (an archive class is never carried by surprise).
    pub storage_class: Option<String>,
    /// Guard every write with a precondition (`--if-none-match`, `--if-match`).
    pub condition: Option<Conditional>,
}

larder_store::with_setters!(WriteOptions {
    with_no_system_metadata => no_system_metadata: bool,
    with_no_user_metadata => no_user_metadata: bool,
    with_no_tags => no_tags: bool,
    with_content_type => content_type: Option<String>,
    with_cache_control => cache_control: Option<String>,
    with_headers => headers: Headers,
    with_metadata => metadata: Option<BTreeMap<String, String>>,
    with_tags => tags: Option<Tags>,
    with_storage_class => storage_class: Option<String>,
    with_condition => condition: Option<Conditional>,
});

/// The precondition of every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conditional {
    /// Never overwrite: a key the destination has is skipped (planned from the listing, and
    /// `If-None-Match: *` on the write for one that appeared since).
    IfNoneMatch,
    /// Overwrite only the version that was compared (`If-Match` with the ETag the listing
    /// showed); a key the listing did not show is written with `If-None-Match: *`.
    IfMatch,
}

impl WriteOptions {
    /// Whether tags must be read from the source: both sides keep them and nothing replaces
    /// them.
    pub(crate) fn carries_tags(&self, src_tagging: bool, dst_tagging: bool) -> bool {
        !self.no_tags && self.tags.is_none() && src_tagging && dst_tagging
    }

    /// The precondition of a write over `dst_etag` (the ETag the destination's listing
    /// showed, `None` when it showed no object).
    pub(crate) fn condition(
        &self,
        dst_exists: bool,
        dst_etag: Option<&str>,
    ) -> Option<WriteCondition> {
        match (self.condition?, dst_exists, dst_etag) {
            (_, false, _) => Some(WriteCondition::IfNoneMatch),
            (Conditional::IfMatch, true, Some(e)) => Some(WriteCondition::IfMatch(e.to_owned())),
            // An object listed without an ETag cannot be guarded; the plan skips it.
            (Conditional::IfMatch, true, None) | (Conditional::IfNoneMatch, true, _) => {
                Some(WriteCondition::IfNoneMatch)
            }
        }
    }

    /// The put options for an object read with `meta`: the source's metadata unless left
    /// behind, each override over it, then `guessed` for a Content-Type nobody gave.
    pub(crate) fn put_options(
        &self,
        meta: &ObjectMeta,
        guessed: impl FnOnce() -> Option<String>,
        tags: Option<Tags>,
    ) -> PutOptions {
        let carry = !self.no_system_metadata;
        let content_type = self
            .content_type
            .clone()
            .or_else(|| carry.then(|| meta.content_type.clone()).flatten())
            .or_else(guessed);
        let cache_control = self
            .cache_control
            .clone()
            .or_else(|| carry.then(|| meta.cache_control.clone()).flatten());
        let base = if carry {
            meta.headers.clone()
        } else {
            Headers::default()
        };
        let metadata = match &self.metadata {
            Some(m) => m.clone(),
            None if self.no_user_metadata => BTreeMap::new(),
            None => meta.metadata.clone(),
        };
        PutOptions::default()
            .with_content_type(content_type)
            .with_cache_control(cache_control)
            .with_headers(base.overridden_by(&self.headers))
            .with_metadata(metadata)
            .with_tags(self.tags.clone().or(tags))
            .with_storage_class(self.storage_class.clone())
    }
}

/// Refuses, before anything is listed, write settings the destination cannot honour: a
/// precondition it would ignore (and so overwrite), tags it would drop.
pub(crate) fn check_supported(
    w: &WriteOptions,
    dst: &dyn larder_store::Store,
) -> Result<(), larder_store::Error> {
    let caps = dst.capabilities();
    let missing = if w.condition.is_some() && !caps.conditional_writes {
        "conditional writes (--if-none-match, --if-match)"
    } else if w.tags.as_ref().is_some_and(|t| !t.is_empty()) && !caps.tagging {
        "object tags (--tagging)"
    } else {
        return Ok(());
    };
    Err(larder_store::Error::new(
        larder_store::ErrorKind::Unsupported,
        larder_store::Op::Open,
        dst.location(""),
    )
    .with_detail(format!("the destination does not implement {missing}")))
}

/// Why a transfer over `dst` (listed) is skipped without a request, under the write's
/// precondition; `None`: write it.
pub(crate) fn planned_skip(w: &WriteOptions, dst: &larder_store::Entry) -> Option<String> {
    match (w.condition?, &dst.etag) {
        (Conditional::IfNoneMatch, _) => Some("exists at the destination (--if-none-match)".into()),
        (Conditional::IfMatch, None) => {
            Some("the destination's listing shows no ETag to match (--if-match)".into())
        }
        (Conditional::IfMatch, Some(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larder_store::Key;

    fn meta() -> ObjectMeta {
        ObjectMeta {
            key: Key::new("a.html").unwrap(),
            size: 1,
            last_modified: None,
            etag: None,
            content_type: Some("text/html".into()),
            cache_control: Some("max-age=9".into()),
            metadata: BTreeMap::from([("owner".into(), "a".into())]),
            mtime: None,
            checksum: None,
            storage_class: Some("STANDARD_IA".into()),
            headers: Headers {
                content_encoding: Some("gzip".into()),
                content_language: Some("fr".into()),
                ..Default::default()
            },
            tag_count: None,
            encryption: None,
        }
    }

    #[test]
    fn carries_the_source_by_default_and_overrides_field_by_field() {
        let w = WriteOptions::default();
        let p = w.put_options(&meta(), || Some("guess/never".into()), None);
        assert_eq!(p.content_type.as_deref(), Some("text/html"));
        assert_eq!(p.cache_control.as_deref(), Some("max-age=9"));
        assert_eq!(p.headers, meta().headers);
        assert_eq!(p.metadata, meta().metadata);
        assert_eq!(p.storage_class, None, "a storage class is not carried");

        let w = WriteOptions {
            content_type: Some("text/plain".into()),
            headers: Headers {
                content_language: Some("de".into()),
                ..Default::default()
            },
            metadata: Some(BTreeMap::from([("k".into(), "v".into())])),
            tags: Some(Tags::from([("t".into(), "1".into())])),
            storage_class: Some("GLACIER_IR".into()),
            ..Default::default()
        };
        let from_src = Some(Tags::from([("src".into(), "x".into())]));
        let p = w.put_options(&meta(), || None, from_src);
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        assert_eq!(p.headers.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(p.headers.content_language.as_deref(), Some("de"));
        assert_eq!(p.metadata.get("k").map(String::as_str), Some("v"));
        assert!(!p.metadata.contains_key("owner"));
        assert_eq!(p.tags, w.tags);
        assert_eq!(p.storage_class.as_deref(), Some("GLACIER_IR"));
    }

    #[test]
    fn leaves_metadata_behind_when_asked_and_guesses_only_what_nobody_gave() {
        let w = WriteOptions {
            no_system_metadata: true,
            no_user_metadata: true,
            cache_control: Some("no-cache".into()),
            ..Default::default()
        };
        let p = w.put_options(&meta(), || Some("text/x-guessed".into()), None);
        assert_eq!(p.content_type.as_deref(), Some("text/x-guessed"));
        assert_eq!(p.cache_control.as_deref(), Some("no-cache"));
        assert!(p.headers.is_empty());
        assert!(p.metadata.is_empty());
    }

    #[test]
    fn conditions_follow_what_the_listing_showed() {
        let none = WriteOptions::default();
        assert_eq!(none.condition(true, Some("e")), None);
        let inm = WriteOptions {
            condition: Some(Conditional::IfNoneMatch),
            ..Default::default()
        };
        assert_eq!(
            inm.condition(false, None),
            Some(WriteCondition::IfNoneMatch)
        );
        let im = WriteOptions {
            condition: Some(Conditional::IfMatch),
            ..Default::default()
        };
        assert_eq!(
            im.condition(true, Some("abc")),
            Some(WriteCondition::IfMatch("abc".into()))
        );
        assert_eq!(im.condition(false, None), Some(WriteCondition::IfNoneMatch));
        assert!(im.carries_tags(true, true) && !im.carries_tags(true, false));
    }
}
