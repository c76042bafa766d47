//! The index: `index-v5/` buckets of append-only lines.
//!
//! # Format (npm's cacache)
//!
//! A key's bucket is `index-v5/<h[0..2]>/<h[2..4]>/<h[4..]>` where `h` is the hex SHA-256 of
//! the key. Each write appends one line, `"\n" + hex(sha1(json)) + "\t" + json`, with `json` an
//! object `{"key", "integrity", "time", "size", "metadata"}`. A line whose hash does not match
//! (torn by a crash, or corrupt) is skipped; the last line for a key wins; a `null` integrity
//! marks the key deleted.
//!
//! The `cacache` Rust crate swaps the two hashes (bucket by SHA-1 of the key, line hash
//! SHA-256). Lines of either kind are accepted (the hash's length tells which), and a key is
//! looked up in both buckets; larder writes npm's layout.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha1::Digest as _;

/// One index line, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The key.
    pub key: String,
    /// The integrity string, `None` for a deletion.
    pub integrity: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub time: u64,
    /// The content size.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
    /// Free-form metadata.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metadata: Option<serde_json::Value>,
}

fn segments(root: &Path, hex: &str) -> PathBuf {
    root.join("index-v5")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(&hex[4..])
}

/// npm's bucket of `key`.
pub fn bucket_path(root: &Path, key: &str) -> PathBuf {
    segments(root, &hex::encode(sha2::Sha256::digest(key.as_bytes())))
}

/// The `cacache` crate's bucket of `key`.
pub fn rs_bucket_path(root: &Path, key: &str) -> PathBuf {
    segments(root, &hex::encode(sha1::Sha1::digest(key.as_bytes())))
}

/// The line npm writes for `json`.
pub fn format_line(json: &str) -> String {
    format!(
        "\n{}\t{json}",
        hex::encode(sha1::Sha1::digest(json.as_bytes()))
    )
}

/// Parses a bucket's text into its valid lines, in order; torn and corrupt lines are skipped.
pub fn parse_bucket(text: &str) -> Vec<Line> {
    text.split('\n')
        .filter_map(|l| {
            let (hash, json) = l.split_once('\t')?;
            let ok = match hash.len() {
                40 => hex::encode(sha1::Sha1::digest(json.as_bytes())) == hash,
                64 => hex::encode(sha2::Sha256::digest(json.as_bytes())) == hash,
                _ => false,
            };
            if !ok {
                return None;
            }
            serde_json::from_str::<Line>(json).ok()
        })
        .collect()
}

/// Reads a bucket; a missing bucket is empty.
pub fn read_bucket(path: &Path) -> std::io::Result<Vec<Line>> {
    match std::fs::read(path) {
        Ok(b) => Ok(parse_bucket(&String::from_utf8_lossy(&b))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Appends `line` to `key`'s bucket in one `write(2)` on an `O_APPEND` descriptor, so
/// concurrent writers (threads or processes) never interleave within a line.
pub fn append(root: &Path, line: &Line) -> std::io::Result<()> {
    let path = bucket_path(root, &line.key);
    std::fs::create_dir_all(path.parent().expect("bucket has a parent"))?;
    let json = serde_json::to_string(line).map_err(std::io::Error::other)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    f.write_all(format_line(&json).as_bytes())
}

/// The current line of `key`: the last one in either bucket layout, `None` when absent or
/// deleted.
pub fn find(root: &Path, key: &str) -> std::io::Result<Option<Line>> {
    let mut last: Option<Line> = None;
    for path in [bucket_path(root, key), rs_bucket_path(root, key)] {
        // The last matching line in file order wins, as in npm.
        for line in read_bucket(&path)? {
            if line.key == key {
                last = Some(line);
            }
        }
        if last.is_some() {
            break;
        }
    }
    Ok(last.filter(|l| l.integrity.is_some()))
}

/// Every bucket file below `index-v5/`.
pub fn buckets(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("index-v5")];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The live entries of a bucket: per key the last line, deletions dropped.
pub fn live(lines: Vec<Line>) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for l in lines {
        match out.iter_mut().find(|o| o.key == l.key) {
            Some(o) => *o = l,
            None => out.push(l),
        }
    }
    out.retain(|l| l.integrity.is_some());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_and_corrupt_lines_are_skipped_and_the_last_wins() {
        let a = serde_json::to_string(&Line {
            key: "k".into(),
            integrity: Some("sha512-x".into()),
            time: 1,
            size: Some(1),
            metadata: None,
        })
        .unwrap();
        let b = a.replace("\"time\":1", "\"time\":2");
        let mut text = format_line(&a);
        text.push_str(&format_line(&b));
        text.push_str("\n0123\t{\"key\":\"k\"}"); // bad hash
        text.push_str(&format_line(&a)[..20]); // torn
        let lines = parse_bucket(&text);
        assert_eq!(lines.len(), 2);
        assert_eq!(live(lines)[0].time, 2);
    }

    #[test]
    fn npm_bucket_path_shape() {
        let p = bucket_path(Path::new("/c"), "my-key");
        let h = hex::encode(sha2::Sha256::digest(b"my-key"));
        assert_eq!(
            p,
            Path::new("/c/index-v5")
                .join(&h[..2])
                .join(&h[2..4])
                .join(&h[4..])
        );
    }
}
