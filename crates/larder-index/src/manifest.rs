//! The manifest a vault publishes under `.larder/` in its prefix after each successful sync:
//! the index as gzipped JSON, with its generation time, object count and a SHA-256 of its
//! rows inside. It is written last, so it is the commit marker; another machine reads it
//! instead of listing, and a machine with a fresh index asks for it conditionally (ETag
//! unchanged: nothing else to read).

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::vault::ObjectRow;

/// The manifest's key, relative to the vault's prefix.
pub const MANIFEST_KEY: &str = ".larder/manifest.json.gz";

/// Keys under this prefix are the vault's own: never indexed, synced or deleted.
pub const RESERVED_PREFIX: &str = ".larder/";

/// One row as the manifest stores it: `[key, size, etag, storage_class, last_modified_ms]`.
type Row = (String, u64, Option<String>, Option<String>, Option<u64>);

#[derive(Serialize, Deserialize)]
struct Doc {
    format: String,
    version: u32,
    generated_at_ms: u64,
    objects: u64,
    rows_sha256: String,
    rows: Vec<Row>,
}

const FORMAT: &str = "larder-vault-manifest";

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rows_digest(rows: &[Row]) -> String {
    let json = serde_json::to_vec(rows).expect("rows serialise");
    hex::encode(Sha256::digest(json))
}

/// Encodes `rows` (in key order) as a manifest generated at `at`.
pub fn encode(rows: impl IntoIterator<Item = ObjectRow>, at: SystemTime) -> Vec<u8> {
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| {
            (
                r.key,
                r.size,
                r.etag,
                r.storage_class,
                r.last_modified.map(ms),
            )
        })
        .collect();
    let doc = Doc {
        format: FORMAT.to_owned(),
        version: 1,
        generated_at_ms: ms(at),
        objects: rows.len() as u64,
        rows_sha256: rows_digest(&rows),
        rows,
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(&doc).expect("manifest serialises"))
        .expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// Decodes a manifest: its rows and generation time.
///
/// # Errors
///
/// A message saying what is wrong (not gzip, not a larder manifest, a count or checksum
/// that does not match its rows).
pub fn decode(bytes: &[u8]) -> Result<(Vec<ObjectRow>, SystemTime), String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(|e| format!("not a gzipped manifest: {e}"))?;
    let doc: Doc =
        serde_json::from_slice(&json).map_err(|e| format!("not a larder manifest: {e}"))?;
    if doc.format != FORMAT || doc.version != 1 {
        return Err(format!(
            "format {} version {} is not one this larder reads",
            doc.format, doc.version
        ));
    }
    if doc.objects != doc.rows.len() as u64 {
        return Err(format!(
            "it says {} objects but holds {} rows",
            doc.objects,
            doc.rows.len()
        ));
    }
    if rows_digest(&doc.rows) != doc.rows_sha256 {
        return Err("its rows do not match their SHA-256".to_owned());
    }
    let at = UNIX_EPOCH + Duration::from_millis(doc.generated_at_ms);
    let rows = doc
        .rows
        .into_iter()
        .filter(|r| !r.0.starts_with(RESERVED_PREFIX))
        .map(|(key, size, etag, storage_class, lm)| ObjectRow {
            key,
            size,
            etag,
            storage_class,
            last_modified: lm.map(|m| UNIX_EPOCH + Duration::from_millis(m)),
        })
        .collect();
    Ok((rows, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let rows = vec![
            ObjectRow {
                key: "a b".into(),
                size: 3,
                etag: Some("abc".into()),
                storage_class: Some("GLACIER".into()),
                last_modified: Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            },
            ObjectRow {
                key: "é".into(),
                size: 0,
                etag: None,
                storage_class: None,
                last_modified: None,
            },
        ];
        let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        let bytes = encode(rows.clone(), at);
        assert_eq!(decode(&bytes).unwrap(), (rows, at));
        assert!(decode(b"nope").unwrap_err().contains("gzip"));
        // Change one row's size and re-compress: the checksum inside catches it.
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut json)
            .unwrap();
        let text = String::from_utf8(json)
            .unwrap()
            .replace("[\"a b\",3,", "[\"a b\",4,");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        assert!(decode(&gz.finish().unwrap())
            .unwrap_err()
            .contains("SHA-256"));
    }
}
