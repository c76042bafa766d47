//! What a store writes with every object (ACL, encryption) and what the server supports.

use std::fmt;

use base64::Engine as _;
use md5::Digest as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::types::Tags;

/// The S3 features a server implements beyond the core (GET, PUT, LIST, multipart).
///
/// AWS S3 and Ceph's radosgw have all of them (radosgw's checksums from Reef on); Garage has
/// only the checksums (its other answers are `NotImplemented`). They decide [`crate::Capabilities`], which the sync engine reads before
/// it asks for tags or versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFeatures {
    /// Object versions (ListObjectVersions, `versionId`).
    pub versioning: bool,
    /// Object tags (GetObjectTagging, `x-amz-tagging`).
    pub tagging: bool,
    /// `If-None-Match` / `If-Match` on PutObject and CompleteMultipartUpload.
    pub conditional_writes: bool,
    /// Additional checksums (`x-amz-checksum-*`) stored and returned. Ceph's radosgw before
    /// Reef (18) ignores them, and no request tells: set it off for such a server.
    pub checksums: bool,
    /// HEAD/GET `partNumber` answer with one part (and the part count). Learnt by the store:
    /// radosgw 16 answers with the whole object.
    pub part_numbers: bool,
}

impl Default for ServerFeatures {
    fn default() -> Self {
        ServerFeatures {
            versioning: true,
            tagging: true,
            conditional_writes: true,
            checksums: true,
            part_numbers: true,
        }
    }
}

impl ServerFeatures {
    /// None of them.
    pub fn none() -> Self {
        ServerFeatures {
            versioning: false,
            tagging: false,
            conditional_writes: false,
            checksums: false,
            part_numbers: true,
        }
    }
}

/// Server-side encryption with keys the server manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3 (`AES256`).
    Aes256,
    /// SSE-KMS (`aws:kms`), with this key or the bucket's default.
    Kms {
        /// The KMS key id or ARN.
        key_id: Option<String>,
    },
}

impl Sse {
    /// From `--sse` and `--sse-kms-key-id`.
    ///
    /// # Errors
    ///
    /// A value other than `AES256` / `aws:kms`, or a key id without `aws:kms`.
    pub fn parse(sse: &str, key_id: Option<&str>) -> std::result::Result<Sse, String> {
        match (sse, key_id) {
            ("AES256", None) => Ok(Sse::Aes256),
            ("AES256", Some(_)) => Err("--sse-kms-key-id goes with --sse aws:kms".into()),
            ("aws:kms", k) => Ok(Sse::Kms {
                key_id: k.map(str::to_owned),
            }),
            (other, _) => Err(format!("--sse is AES256 or aws:kms, not `{other}`")),
        }
    }
}

/// An SSE-C key: the server encrypts with it and keeps only its MD5; every read must send it
/// again. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SseCustomerKey {
    key: [u8; 32],
}

impl fmt::Debug for SseCustomerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SseCustomerKey(…)")
    }
}

impl SseCustomerKey {
    /// From 32 raw bytes.
    pub fn new(key: [u8; 32]) -> Self {
        SseCustomerKey { key }
    }

    /// From s3sync's and aws-cli's forms: 32 bytes as base64, or `base64:…`, or 64 hex
    /// digits, or a 32-character string taken as its bytes.
    ///
    /// # Errors
    ///
    /// Anything that is not 32 bytes.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let b64 = base64::engine::general_purpose::STANDARD;
        let raw: Vec<u8> = if let Some(b) = s.strip_prefix("base64:") {
            b64.decode(b).map_err(|e| format!("SSE-C key: {e}"))?
        } else if s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(s).expect("hex digits")
        } else if s.len() == 32 {
            s.as_bytes().to_vec()
        } else {
            b64.decode(s)
                .map_err(|_| "an SSE-C key is 32 bytes: base64, 64 hex digits or 32 characters")?
        };
        let key: [u8; 32] = raw
            .try_into()
            .map_err(|v: Vec<u8>| format!("an SSE-C key is 32 bytes, not {}", v.len()))?;
        Ok(SseCustomerKey { key })
    }

    /// The key as base64 (`x-amz-server-side-encryption-customer-key`).
    pub fn key_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.key)
    }

    /// The key's MD5 as base64 (`…-customer-key-MD5`).
    pub fn key_md5_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(self.key))
    }
}

/// Characters escaped in a tag key or value of the `x-amz-tagging` header (a URL query).
const TAG: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// An `Expires` value from what a user types: an HTTP date as is, or an RFC 3339 time
/// (s3sync's and aws-cli's form) turned into one.
///
/// # Errors
///
/// When it is neither.
pub fn expires_header(s: &str) -> std::result::Result<String, String> {
    use aws_smithy_types::date_time::Format;
    let s = s.trim();
    if aws_smithy_types::DateTime::from_str(s, Format::HttpDate).is_ok() {
        return Ok(s.to_owned());
    }
    let t = aws_smithy_types::DateTime::from_str(s, Format::DateTime).map_err(|_| {
        format!("`{s}` is neither an RFC 3339 time (2030-01-01T00:00:00Z) nor an HTTP date")
    })?;
    t.fmt(Format::HttpDate).map_err(|e| format!("`{s}`: {e}"))
}

/// The `x-amz-tagging` header for `tags`: `k1=v1&k2=v2`, URL-encoded.
pub fn tagging_header(tags: &Tags) -> String {
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, TAG),
                utf8_percent_encode(v, TAG)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses `--tagging` (`k1=v1&k2=v2`, URL-encoded as in the header, as aws-cli and s3sync
/// take it).
///
/// # Errors
///
/// A pair without `=`, an empty key, bad percent-encoding, more than 10 tags.
pub fn parse_tagging(s: &str) -> std::result::Result<Tags, String> {
    let mut tags = Tags::new();
    if s.is_empty() {
        return Ok(tags);
    }
    for pair in s.split('&') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("tag `{pair}` is not key=value"))?;
        let dec = |x: &str| {
            percent_encoding::percent_decode_str(&x.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("tag `{pair}` is not valid URL-encoded UTF-8"))
        };
        let (k, v) = (dec(k)?, dec(v)?);
        if k.is_empty() {
            return Err(format!("tag `{pair}` has an empty key"));
        }
        tags.insert(k, v);
    }
    if tags.len() > 10 {
        return Err(format!("S3 allows 10 tags per object, not {}", tags.len()));
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_takes_rfc3339_or_an_http_date() {
        assert_eq!(
            expires_header("2033-12-01T16:00:00Z").unwrap(),
            "Thu, 01 Dec 2033 16:00:00 GMT"
        );
        assert_eq!(
            expires_header("Thu, 01 Dec 2033 16:00:00 GMT").unwrap(),
            "Thu, 01 Dec 2033 16:00:00 GMT"
        );
        assert!(expires_header("tomorrow").is_err());
    }

    #[test]
    fn tagging_round_trips() {
        let t: Tags = [
            ("a b".to_owned(), "x&y=z".to_owned()),
            ("k".into(), "".into()),
        ]
        .into_iter()
        .collect();
        let h = tagging_header(&t);
        assert_eq!(h, "a%20b=x%26y%3Dz&k=");
        assert_eq!(parse_tagging(&h).unwrap(), t);
        assert!(parse_tagging("novalue").is_err());
        assert!(parse_tagging("=v").is_err());
    }

    #[test]
    fn sse_c_keys() {
        let hex = "00".repeat(32);
        assert_eq!(SseCustomerKey::parse(&hex).unwrap().key, [0u8; 32]);
        let b = SseCustomerKey::new([7; 32]).key_base64();
        assert_eq!(SseCustomerKey::parse(&b).unwrap().key, [7; 32]);
        assert_eq!(
            SseCustomerKey::parse(&format!("base64:{b}")).unwrap().key,
            [7; 32]
        );
        assert!(SseCustomerKey::parse("short").is_err());
        assert_eq!(
            format!("{:?}", SseCustomerKey::new([1; 32])),
            "SseCustomerKey(…)"
        );
    }
}
