//! What a local file keeps besides its bytes and mtime: Content-Type, Cache-Control, the
//! other S3 headers and user metadata, in extended attributes, so S3 → directory → S3
//! round-trips them.
//!
//! | attribute | holds |
//! | --- | --- |
//! | `user.mime_type` | Content-Type (the freedesktop.org name, which file managers read) |
//! | `user.larder.cache_control` | Cache-Control |
//! | `user.larder.content_encoding`, `…content_disposition`, `…content_language` | those headers |
//! | `user.larder.expires`, `user.larder.website_redirect` | Expires, x-amz-website-redirect-location |
//! | `user.larder.meta.NAME` | user metadata `NAME` (`x-amz-meta-NAME`) |
//!
//! Attributes are written on the temp file before it is renamed into place, so a file never
//! carries another version's metadata. A file system without user extended attributes (some
//! network and FAT file systems, non-Unix platforms) keeps none: the first write that finds
//! so logs one warning per store, and the files are written without them. Tags are not kept.

use std::collections::BTreeMap;

use crate::types::{Headers, PutOptions};

/// The metadata read back from a file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FileMeta {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub headers: Headers,
    pub metadata: BTreeMap<String, String>,
}

const CONTENT_TYPE: &str = "user.mime_type";
const PREFIX: &str = "user.larder.";
const META: &str = "user.larder.meta.";

/// The attributes `opts` asks a file to carry.
fn attributes(opts: &PutOptions) -> Vec<(String, &str)> {
    let h = &opts.headers;
    let fixed = [
        (CONTENT_TYPE, &opts.content_type),
        ("user.larder.cache_control", &opts.cache_control),
        ("user.larder.content_encoding", &h.content_encoding),
        ("user.larder.content_disposition", &h.content_disposition),
        ("user.larder.content_language", &h.content_language),
        ("user.larder.expires", &h.expires),
        ("user.larder.website_redirect", &h.website_redirect),
    ];
    fixed
        .into_iter()
        .filter_map(|(n, v)| v.as_deref().map(|v| (n.to_owned(), v)))
        .chain(
            opts.metadata
                .iter()
                .map(|(k, v)| (format!("{META}{}", k.to_ascii_lowercase()), v.as_str())),
        )
        .collect()
}

/// Writes what `opts` carries onto `file`. `Ok(false)`: the file system keeps no user
/// attributes.
#[cfg(unix)]
pub(crate) fn write(file: &std::fs::File, opts: &PutOptions) -> std::io::Result<bool> {
    use xattr::FileExt;
    for (name, value) in attributes(opts) {
        match file.set_xattr(&name, value.as_bytes()) {
            Ok(()) => {}
            Err(e) if unsupported(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

#[cfg(not(unix))]
pub(crate) fn write(_: &std::fs::File, opts: &PutOptions) -> std::io::Result<bool> {
    Ok(attributes(opts).is_empty())
}

#[cfg(unix)]
fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == libc::ENOTSUP || c == libc::EOPNOTSUPP)
        || e.kind() == std::io::ErrorKind::Unsupported
}

/// Reads the metadata a file carries (none where the file system keeps no attributes).
#[cfg(unix)]
pub(crate) fn read(file: &std::fs::File) -> FileMeta {
    use xattr::FileExt;
    let mut m = FileMeta::default();
    let Ok(names) = file.list_xattr() else {
        return m;
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if name != CONTENT_TYPE && !name.starts_with(PREFIX) {
            continue;
        }
        let Ok(Some(value)) = file.get_xattr(name) else {
            continue;
        };
        let Ok(value) = String::from_utf8(value) else {
            continue;
        };
        let h = &mut m.headers;
        match name {
            CONTENT_TYPE => m.content_type = Some(value),
            "user.larder.cache_control" => m.cache_control = Some(value),
            "user.larder.content_encoding" => h.content_encoding = Some(value),
            "user.larder.content_disposition" => h.content_disposition = Some(value),
            "user.larder.content_language" => h.content_language = Some(value),
            "user.larder.expires" => h.expires = Some(value),
            "user.larder.website_redirect" => h.website_redirect = Some(value),
            other => {
                if let Some(k) = other.strip_prefix(META) {
                    m.metadata.insert(k.to_owned(), value);
                }
            }
        }
    }
    m
}

#[cfg(not(unix))]
pub(crate) fn read(_: &std::fs::File) -> FileMeta {
    FileMeta::default()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_others_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let f = std::fs::File::create(&p).unwrap();
        let opts = PutOptions {
            content_type: Some("text/html".into()),
            cache_control: Some("no-cache".into()),
            headers: Headers {
                content_language: Some("fr".into()),
                ..Default::default()
            },
            metadata: [("Owner".to_owned(), "ann".to_owned())].into(),
            ..Default::default()
        };
        assert!(write(&f, &opts).unwrap(), "ext4/tmpfs keep user attributes");
        xattr::set(&p, "user.other.tool", b"x").unwrap();
        let m = read(&std::fs::File::open(&p).unwrap());
        assert_eq!(m.content_type.as_deref(), Some("text/html"));
        assert_eq!(m.cache_control.as_deref(), Some("no-cache"));
        assert_eq!(m.headers.content_language.as_deref(), Some("fr"));
        assert_eq!(m.metadata, [("owner".to_owned(), "ann".to_owned())].into());
    }
}
