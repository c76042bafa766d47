//! Filters: which keys a sync considers.
//!
//! Globs follow rclone: `*` and `?` stay within one path segment, `**` crosses segments; a
//! pattern that starts with `/` is anchored at the root, any other matches at any depth
//! (`*.jpg` matches `a.jpg` and `x/y/a.jpg`). Regexes match anywhere in the key unless
//! anchored. An exclude wins over an include; with any include given, a key must match one.
//! A key the filters leave out is neither transferred nor deleted.

use std::time::SystemTime;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use larder_store::Entry;
use regex::Regex;

/// A bad filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A glob that does not parse.
    #[error("invalid glob `{pattern}`")]
    Glob {
        /// The pattern.
        pattern: String,
        /// Why.
        #[source]
        source: globset::Error,
    },
    /// A regex that does not parse.
    #[error("invalid regex `{pattern}`")]
    Regex {
        /// The pattern.
        pattern: String,
        /// Why.
        #[source]
        source: regex::Error,
    },
}

/// The key, size and time filters of a sync.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only these keys (`--files-from`), when given; the other filters apply too.
    pub keys: Option<std::sync::Arc<std::collections::HashSet<String>>>,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
    include_regex: Vec<Regex>,
    exclude_regex: Vec<Regex>,
    /// Only objects of at least this many bytes.
    pub min_size: Option<u64>,
    /// Only objects of at most this many bytes.
    pub max_size: Option<u64>,
    /// Only objects modified after this time (a local file's mtime, an object's upload time).
    pub newer_than: Option<SystemTime>,
    /// Only objects modified before this time.
    pub older_than: Option<SystemTime>,
}

fn globset(patterns: &[String]) -> Result<Option<GlobSet>, FilterError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let anchored = match p.strip_prefix('/') {
            Some(rest) => rest.to_owned(),
            None => format!("{{{p},**/{p}}}"),
        };
        let g = GlobBuilder::new(&anchored)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|source| FilterError::Glob {
                pattern: p.clone(),
                source,
            })?;
        b.add(g);
    }
    b.build().map(Some).map_err(|source| FilterError::Glob {
        pattern: patterns.join(" "),
        source,
    })
}

fn regexes(patterns: &[String]) -> Result<Vec<Regex>, FilterError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(p).map_err(|source| FilterError::Regex {
                pattern: p.clone(),
                source,
            })
        })
        .collect()
}

impl Filters {
    /// Filters from glob and regex patterns.
    ///
    /// # Errors
    ///
    /// A pattern that does not parse, named.
    pub fn new(
        include: &[String],
        exclude: &[String],
        include_regex: &[String],
        exclude_regex: &[String],
    ) -> Result<Self, FilterError> {
        Ok(Filters {
            include: globset(include)?,
            exclude: globset(exclude)?,
            include_regex: regexes(include_regex)?,
            exclude_regex: regexes(exclude_regex)?,
            ..Filters::default()
        })
    }

    /// Whether the key filters keep `key` (size and time aside).
    pub fn keeps_key(&self, key: &str) -> bool {
        if self.keys.as_ref().is_some_and(|k| !k.contains(key)) {
            return false;
        }
        if self.exclude.as_ref().is_some_and(|g| g.is_match(key))
            || self.exclude_regex.iter().any(|r| r.is_match(key))
        {
            return false;
        }
        let any_include = self.include.is_some() || !self.include_regex.is_empty();
        !any_include
            || self.include.as_ref().is_some_and(|g| g.is_match(key))
            || self.include_regex.iter().any(|r| r.is_match(key))
    }

    /// Whether `entry` is kept.
    pub fn keeps(&self, entry: &Entry) -> bool {
        if self.min_size.is_some_and(|m| entry.size < m)
            || self.max_size.is_some_and(|m| entry.size > m)
        {
            return false;
        }
        if let Some(t) = entry.last_modified {
            if self.newer_than.is_some_and(|n| t <= n) || self.older_than.is_some_and(|o| t >= o) {
                return false;
            }
        }
        self.keeps_key(entry.key.as_str())
    }
}

/// Filters on what only a read of the object tells (s3sync's
/// `--filter-include-content-type-regex` and the like): its Content-Type, user metadata and
/// tags. They cost one HEAD (and, for tags, one GetObjectTagging) per object the sync would
/// otherwise transfer; keys already up to date are decided without them.
#[derive(Debug, Clone, Default)]
pub struct ObjectFilters {
    /// Only objects whose Content-Type matches.
    pub include_content_type: Option<Regex>,
    /// Leave out objects whose Content-Type matches.
    pub exclude_content_type: Option<Regex>,
    /// Only objects whose user metadata, as `k1=v1,k2=v2` (keys sorted), matches.
    pub include_metadata: Option<Regex>,
    /// Leave out objects whose user metadata matches.
    pub exclude_metadata: Option<Regex>,
    /// Only objects whose tags, as `k1=v1&k2=v2` (keys sorted, URL-encoded), match.
    pub include_tag: Option<Regex>,
    /// Leave out objects whose tags match.
    pub exclude_tag: Option<Regex>,
}

impl ObjectFilters {
    /// Whether any is set.
    pub fn is_empty(&self) -> bool {
        self.include_content_type.is_none()
            && self.exclude_content_type.is_none()
            && !self.needs_tags()
            && self.include_metadata.is_none()
            && self.exclude_metadata.is_none()
    }

    /// Whether a tag filter is set (the tags must be read).
    pub fn needs_tags(&self) -> bool {
        self.include_tag.is_some() || self.exclude_tag.is_some()
    }

    /// Whether an object with this Content-Type, user metadata and tags is kept. An object
    /// without a Content-Type (or without tags) matches against the empty string.
    pub fn keeps(
        &self,
        content_type: Option<&str>,
        metadata: &std::collections::BTreeMap<String, String>,
        tags: Option<&larder_store::Tags>,
    ) -> bool {
        let check = |inc: &Option<Regex>, exc: &Option<Regex>, text: &str| {
            inc.as_ref().is_none_or(|r| r.is_match(text))
                && exc.as_ref().is_none_or(|r| !r.is_match(text))
        };
        let md = metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let tags = tags.map(encode_tags).unwrap_or_default();
        check(
            &self.include_content_type,
            &self.exclude_content_type,
            content_type.unwrap_or(""),
        ) && check(&self.include_metadata, &self.exclude_metadata, &md)
            && check(&self.include_tag, &self.exclude_tag, &tags)
    }
}

/// Tags as `k1=v1&k2=v2`: keys sorted, keys and values URL-encoded.
pub(crate) fn encode_tags(t: &larder_store::Tags) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    t.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Compiles an optional regex, naming it when it does not parse.
///
/// # Errors
///
/// A pattern that does not parse.
pub fn regex(pattern: Option<&str>) -> Result<Option<Regex>, FilterError> {
    pattern
        .map(|p| {
            Regex::new(p).map_err(|source| FilterError::Regex {
                pattern: p.to_owned(),
                source,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(inc: &[&str], exc: &[&str]) -> Filters {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Filters::new(&s(inc), &s(exc), &[], &[]).unwrap()
    }

    #[test]
    fn globs() {
        let jpg = f(&["*.jpg"], &[]);
        assert!(jpg.keeps_key("a.jpg"));
        assert!(jpg.keeps_key("x/y/a.jpg"));
        assert!(!jpg.keeps_key("a.png"));
        let anchored = f(&["/top/*"], &[]);
        assert!(anchored.keeps_key("top/a"));
        assert!(!anchored.keeps_key("top/a/b"), "* stays in a segment");
        assert!(!anchored.keeps_key("x/top/a"));
        let deep = f(&["/top/**"], &[]);
        assert!(deep.keeps_key("top/a/b"));
        let ex = f(&[], &["*.tmp", "/cache/**"]);
        assert!(ex.keeps_key("a"));
        assert!(!ex.keeps_key("d/x.tmp"));
        assert!(!ex.keeps_key("cache/a/b"));
        assert!(ex.keeps_key("d/cache/a"));
        let both = f(&["*.jpg"], &["secret/**"]);
        assert!(!both.keeps_key("secret/a.jpg"), "exclude wins");
    }

    #[test]
    fn regexes_and_errors() {
        let r = Filters::new(&[], &[], &["^logs/.*\\.gz$".into()], &["2019".into()]).unwrap();
        assert!(r.keeps_key("logs/a.gz"));
        assert!(!r.keeps_key("logs/2019.gz"));
        assert!(!r.keeps_key("x/logs/a.gz"));
        let e = Filters::new(&[], &[], &["(".into()], &[]).unwrap_err();
        assert!(e.to_string().contains("`(`"));
        assert!(Filters::new(&["a[".into()], &[], &[], &[]).is_err());
    }
}

#[cfg(test)]
mod object_tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn content_type_metadata_and_tags_filter_by_regex() {
        let f = ObjectFilters {
            include_content_type: regex(Some("^image/")).unwrap(),
            exclude_metadata: regex(Some("(^|,)private=yes(,|$)")).unwrap(),
            include_tag: regex(Some("(^|&)team=web(&|$)")).unwrap(),
            ..Default::default()
        };
        let md = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
            p.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
        };
        let web = md(&[("team", "web"), ("z", "a b")]);
        assert!(f.keeps(Some("image/png"), &md(&[]), Some(&web)));
        assert!(!f.keeps(Some("text/html"), &md(&[]), Some(&web)));
        assert!(
            !f.keeps(None, &md(&[]), Some(&web)),
            "no type matches as empty"
        );
        assert!(!f.keeps(Some("image/png"), &md(&[("private", "yes")]), Some(&web)));
        assert!(!f.keeps(Some("image/png"), &md(&[]), None));
        assert!(f.needs_tags() && !f.is_empty());
        assert!(ObjectFilters::default().is_empty());
        // Tags are matched URL-encoded, keys sorted.
        let enc = ObjectFilters {
            include_tag: regex(Some("^a=1&z=a%20b$")).unwrap(),
            ..Default::default()
        };
        assert!(enc.keeps(None, &md(&[]), Some(&md(&[("z", "a b"), ("a", "1")]))));
        assert!(regex(Some("(")).is_err());
    }
}
