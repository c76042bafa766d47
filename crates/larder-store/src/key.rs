//! Object keys, and the one audited codec between keys and local paths.
//!
//! # Invariants of [`Key`]
//!
//! A key is what S3 accepts: a non-empty UTF-8 string of at most [`MAX_KEY_LEN`] bytes. It is
//! compared and sorted by its bytes (S3's order; no Unicode normalisation or case folding is
//! applied: `é` as one code point and as `e` + combining accent are two keys, as in S3).
//!
//! # Keys as local paths
//!
//! A local directory cannot hold every S3 key. [`key_to_relative_path`] maps a key to a path
//! below a root, segment by segment on `/`, and refuses, with a typed [`KeyError`], any key
//! that could escape the root or could not round-trip:
//!
//! * an absolute key (`/etc/passwd`), an empty segment (`a//b`, a trailing `/`),
//! * a `.` or `..` segment,
//! * a backslash (a path separator on Windows, and a classic escape trick),
//! * a NUL byte,
//! * a segment longer than [`MAX_SEGMENT_LEN`] bytes (the usual file-name limit),
//! * a segment starting with [`TEMP_PREFIX`], reserved for larder's in-flight temp files.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The longest key S3 accepts, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// The longest path segment a local file system accepts, in bytes.
pub const MAX_SEGMENT_LEN: usize = 255;
/// The name prefix of larder's temp files; the local walk never lists them.
pub const TEMP_PREFIX: &str = ".larder-tmp.";

/// Why a string is not a valid key here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is empty.
    #[error("key is empty")]
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`] bytes.
    #[error("key `{0}…` is longer than 1024 bytes")]
    TooLong(String),
    /// The key starts with `/`.
    #[error("key `{0}` is absolute")]
    Absolute(String),
    /// The key has an empty segment (`a//b`, or ends with `/`).
    #[error("key `{0}` has an empty path segment")]
    EmptySegment(String),
    /// The key has a `.` or `..` segment.
    #[error("key `{0}` has a `.` or `..` segment, which would escape or alias its directory")]
    DotSegment(String),
    /// The key contains a backslash.
    #[error("key `{0}` contains a backslash")]
    Backslash(String),
    /// The key contains a NUL byte.
    #[error("key `{0}` contains a NUL byte")]
    Nul(String),
    /// A segment is longer than [`MAX_SEGMENT_LEN`] bytes.
    #[error("key `{0}` has a path segment longer than 255 bytes")]
    SegmentTooLong(String),
    /// A segment uses the reserved temp-file prefix.
    #[error("key `{0}` uses the reserved prefix `.larder-tmp.`")]
    Reserved(String),
    /// A local file name is not valid UTF-8.
    #[error("file name {0:?} is not valid UTF-8")]
    NotUtf8(PathBuf),
}

/// Decodes a key as S3 URL-encodes it (listings with `encoding-type=url`, Inventory CSVs,
/// event notifications): percent-decoding with `+` as a space, exactly once (AWS writes a
/// space as `+` and `+` as `%2B`; Garage writes `%20`). `None` when it is not UTF-8.
pub fn decode_url_key(raw: &str) -> Option<String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

/// A validated object key. See the module docs for its invariants.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Validates `s` as a key.
    ///
    /// # Errors
    ///
    /// [`KeyError::Empty`] or [`KeyError::TooLong`].
    pub fn new(s: impl Into<String>) -> Result<Self, KeyError> {
        let s = s.into();
        if s.is_empty() {
            return Err(KeyError::Empty);
        }
        if s.len() > MAX_KEY_LEN {
            let mut end = 40;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            return Err(KeyError::TooLong(s[..end].to_owned()));
        }
        Ok(Key(s))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Key {
    type Error = KeyError;
    fn try_from(s: &str) -> Result<Self, KeyError> {
        Key::new(s)
    }
}

impl TryFrom<String> for Key {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, KeyError> {
        Key::new(s)
    }
}

/// Checks one `/`-separated segment of `key` as a local file name.
fn check_segment(key: &str, seg: &str) -> Result<(), KeyError> {
    if seg.is_empty() {
        return Err(KeyError::EmptySegment(key.to_owned()));
    }
    if seg == "." || seg == ".." {
        return Err(KeyError::DotSegment(key.to_owned()));
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(KeyError::SegmentTooLong(key.to_owned()));
    }
    if seg.starts_with(TEMP_PREFIX) {
        return Err(KeyError::Reserved(key.to_owned()));
    }
    Ok(())
}

/// Maps a key to a relative path whose components are exactly the key's segments.
///
/// # Errors
///
/// A [`KeyError`] for every key that could escape the root or not round-trip (module docs).
pub fn key_to_relative_path(key: &str) -> Result<PathBuf, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.contains('\0') {
        return Err(KeyError::Nul(key.to_owned()));
    }
    if key.contains('\\') {
        return Err(KeyError::Backslash(key.to_owned()));
    }
    if key.starts_with('/') {
        return Err(KeyError::Absolute(key.to_owned()));
    }
    let mut path = PathBuf::new();
    for seg in key.split('/') {
        check_segment(key, seg)?;
        path.push(seg);
    }
    // Belt and braces: whatever the platform's parser makes of it, only normal components.
    if !path.components().all(|c| matches!(c, Component::Normal(_)))
        || path.components().count() != key.split('/').count()
    {
        return Err(KeyError::DotSegment(key.to_owned()));
    }
    Ok(path)
}

/// Validates that `prefix` (a listing prefix, which may end with `/` or in the middle of a
/// segment) could only ever match keys below the root: the complete segments before its last
/// `/` must be valid segments. Returns the directory to start a walk in and the partial name.
pub(crate) fn split_prefix(prefix: &str) -> Result<(PathBuf, &str), KeyError> {
    match prefix.rsplit_once('/') {
        None => Ok((PathBuf::new(), prefix)),
        Some((dir, rest)) => Ok((key_to_relative_path(dir)?, rest)),
    }
}

/// Maps a file name met in a walk to a key segment.
pub(crate) fn name_to_segment(path: &Path, name: &std::ffi::OsStr) -> Result<String, KeyError> {
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| KeyError::NotUtf8(path.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_validation() {
        assert_eq!(Key::new(""), Err(KeyError::Empty));
        assert!(Key::new("a".repeat(1024)).is_ok());
        assert!(matches!(
            Key::new("é".repeat(513)),
            Err(KeyError::TooLong(_))
        ));
    }

    #[test]
    fn codec_accepts_ordinary_keys() {
        assert_eq!(
            key_to_relative_path("a/b c/+%#?é.txt").unwrap(),
            PathBuf::from("a").join("b c").join("+%#?é.txt")
        );
        assert_eq!(
            key_to_relative_path("..a/b..").unwrap(),
            PathBuf::from("..a/b..")
        );
    }

    #[test]
    fn codec_refuses_escapes_and_unrepresentable_keys() {
        type Check = fn(&KeyError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, KeyError::Empty)),
            ("/etc/passwd", |e| matches!(e, KeyError::Absolute(_))),
            ("..", |e| matches!(e, KeyError::DotSegment(_))),
            ("../x", |e| matches!(e, KeyError::DotSegment(_))),
            ("a/../../x", |e| matches!(e, KeyError::DotSegment(_))),
            ("a/./b", |e| matches!(e, KeyError::DotSegment(_))),
            (".", |e| matches!(e, KeyError::DotSegment(_))),
            ("a//b", |e| matches!(e, KeyError::EmptySegment(_))),
            ("dir/", |e| matches!(e, KeyError::EmptySegment(_))),
            ("a\\..\\..\\x", |e| matches!(e, KeyError::Backslash(_))),
            ("a\0b", |e| matches!(e, KeyError::Nul(_))),
            ("a/.larder-tmp.x", |e| matches!(e, KeyError::Reserved(_))),
        ];
        for (key, ok) in cases {
            let err = key_to_relative_path(key).expect_err(key);
            assert!(ok(&err), "{key:?} gave {err:?}");
        }
        let long = format!("a/{}", "x".repeat(256));
        assert!(matches!(
            key_to_relative_path(&long),
            Err(KeyError::SegmentTooLong(_))
        ));
    }

    #[test]
    fn prefix_split() {
        assert_eq!(split_prefix("").unwrap(), (PathBuf::new(), ""));
        assert_eq!(split_prefix("ab").unwrap(), (PathBuf::new(), "ab"));
        assert_eq!(split_prefix("a/b/").unwrap(), (PathBuf::from("a/b"), ""));
        assert_eq!(split_prefix("a/b/c").unwrap(), (PathBuf::from("a/b"), "c"));
        assert!(split_prefix("../x").is_err());
    }
}
