//! S3 Inventory deliveries as index rows.
//!
//! Three shapes are read:
//!
//! * a CSV with a header row (column names as S3 writes them — `Bucket, Key, Size,
//!   LastModifiedDate, ETag, StorageClass, …` — or in snake_case: `last_modified_date`);
//! * a CSV without one, given a schema (`bucket,key,size,last_modified_date,etag,…`);
//! * a real delivery: `manifest.json` (its `fileSchema`, `files[]` with `size` and
//!   `MD5checksum`, `creationTimestamp`) and the gzipped CSVs it names, found below the
//!   manifest's directory or one of its parents by the longest matching suffix of their
//!   keys, and `manifest.checksum` (the MD5 of `manifest.json`) beside it.
//!
//! Either of the CSV shapes may be gzipped (`.gz`). Everything is checked before a row is
//! written: the manifest's checksum, every data file's size and MD5, gzip framing (a
//! truncated member is an error), every row's columns, size and date. A broken delivery is
//! refused whole ([`crate::Error::Inventory`]) and, since rows go to the index in one
//! transaction, the index stays exactly as it was.
//!
//! Keys are URL-encoded in inventories (form encoding: `+` is a space); they are decoded
//! exactly once, so `%2B` is a `+` and `%25` a `%`. Rows of another bucket, outside the
//! vault's prefix, older versions (`IsLatest` false) and delete markers are left out.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

use crate::vault::ObjectRow;
use crate::{Error, Result};

/// A column an inventory may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Bucket,
    Key,
    Size,
    LastModified,
    Etag,
    StorageClass,
    IsLatest,
    IsDeleteMarker,
    IntelligentTieringAccessTier,
    Other,
}

fn column(name: &str) -> Column {
    let n: String = name
        .trim()
        .chars()
        .filter(|c| !matches!(c, '_' | ' ' | '-'))
        .flat_map(char::to_lowercase)
        .collect();
    match n.as_str() {
        "bucket" => Column::Bucket,
        "key" => Column::Key,
        "size" => Column::Size,
        "lastmodifieddate" | "lastmodified" => Column::LastModified,
        "etag" => Column::Etag,
        "storageclass" => Column::StorageClass,
        "islatest" => Column::IsLatest,
        "isdeletemarker" => Column::IsDeleteMarker,
        "intelligenttieringaccesstier" => Column::IntelligentTieringAccessTier,
        _ => Column::Other,
    }
}

/// Parses a schema: names separated by commas.
fn schema(s: &str) -> Vec<Column> {
    s.split(',').map(column).collect()
}

/// One data file of a delivery.
#[derive(Debug, Clone)]
struct DataFile {
    path: PathBuf,
    /// Size and MD5 from the manifest.
    expect: Option<(u64, String)>,
    gzip: bool,
    /// Whether its first row is a header.
    header: bool,
}

/// A delivery, checked and ready to be read as rows.
#[derive(Debug, Clone)]
pub struct Delivery {
    files: Vec<DataFile>,
    schema: Option<Vec<Column>>,
    /// The manifest's MD5 and creation time, for the index state.
    pub manifest: Option<(String, SystemTime)>,
    /// The bucket the manifest says the inventory is of.
    pub source_bucket: Option<String>,
}

fn refuse(file: &Path, why: impl Into<String>) -> Error {
    Error::Inventory {
        file: file.display().to_string(),
        why: why.into(),
    }
}

fn md5_of(path: &Path) -> Result<(u64, String)> {
    let mut f =
        std::fs::File::open(path).map_err(|e| refuse(path, format!("cannot read it: {e}")))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f
            .read(&mut buf)
            .map_err(|e| refuse(path, format!("cannot read it: {e}")))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, hex::encode(h.finalize())))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    source_bucket: Option<String>,
    file_format: Option<String>,
    file_schema: Option<String>,
    creation_timestamp: Option<String>,
    files: Vec<ManifestFile>,
}

#[derive(serde::Deserialize)]
struct ManifestFile {
    key: String,
    size: u64,
    #[serde(rename = "MD5checksum")]
    md5: String,
}

impl Delivery {
    /// Opens `path`: a `manifest.json`, or a CSV (`.gz` allowed) with a header, or without
    /// one when `schema` is given.
    ///
    /// # Errors
    ///
    /// [`Error::Inventory`] naming the file at fault.
    pub fn open(path: &Path, schema_arg: Option<&str>) -> Result<Delivery> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".json") {
            return Self::open_manifest(path);
        }
        if !path.is_file() {
            return Err(refuse(path, "no such file"));
        }
        Ok(Delivery {
            files: vec![DataFile {
                path: path.to_path_buf(),
                expect: None,
                gzip: name.ends_with(".gz"),
                header: schema_arg.is_none(),
            }],
            schema: schema_arg.map(schema),
            manifest: None,
            source_bucket: None,
        })
    }

    fn open_manifest(path: &Path) -> Result<Delivery> {
        let text = std::fs::read(path).map_err(|e| refuse(path, format!("cannot read it: {e}")))?;
        let checksum = path.with_file_name("manifest.checksum");
        let (_, md5) = md5_of(path)?;
        match std::fs::read_to_string(&checksum) {
            Ok(want) if want.trim().eq_ignore_ascii_case(&md5) => {}
            Ok(want) => {
                return Err(refuse(
                    path,
                    format!(
                        "its MD5 is {md5} but manifest.checksum says {}",
                        want.trim()
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!("{}: no manifest.checksum beside it", path.display());
            }
            Err(e) => return Err(refuse(&checksum, format!("cannot read it: {e}"))),
        }
        let m: Manifest = serde_json::from_slice(&text)
            .map_err(|e| refuse(path, format!("not an S3 Inventory manifest: {e}")))?;
        match m.file_format.as_deref() {
            Some("CSV") | None => {}
            Some(other) => {
                return Err(refuse(
                    path,
                    format!("format {other} is not supported (CSV is)"),
                ))
            }
        }
        let schema_text = m
            .file_schema
            .ok_or_else(|| refuse(path, "it has no fileSchema"))?;
        let created = m
            .creation_timestamp
            .as_deref()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
            .unwrap_or(UNIX_EPOCH);
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files = Vec::new();
        for f in m.files {
            let found = locate(dir, &f.key).ok_or_else(|| {
                refuse(
                    path,
                    format!(
                        "data file `{}` is missing (looked below {} and its parents)",
                        f.key,
                        dir.display()
                    ),
                )
            })?;
            files.push(DataFile {
                gzip: f.key.ends_with(".gz"),
                path: found,
                expect: Some((f.size, f.md5.to_ascii_lowercase())),
                header: false,
            });
        }
        Ok(Delivery {
            files,
            schema: Some(schema(&schema_text)),
            manifest: Some((md5, created)),
            source_bucket: m.source_bucket,
        })
    }

    /// Checks every data file's size and MD5 against the manifest.
    ///
    /// # Errors
    ///
    /// [`Error::Inventory`] naming the first file that differs.
    pub fn verify(&self) -> Result<()> {
        for f in &self.files {
            if let Some((size, md5)) = &f.expect {
                let (n, got) = md5_of(&f.path)?;
                if n != *size {
                    return Err(refuse(
                        &f.path,
                        format!("{n} bytes, the manifest says {size}"),
                    ));
                }
                if got != *md5 {
                    return Err(refuse(
                        &f.path,
                        format!("MD5 {got}, the manifest says {md5}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The rows of objects in `bucket` under `prefix`, keys relative to it, in file order.
    /// Call [`Delivery::verify`] first.
    pub fn rows<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> impl Iterator<Item = Result<ObjectRow>> + 'a {
        self.files.iter().flat_map(move |f| {
            FileRows::new(
                f,
                self.schema.clone(),
                bucket,
                prefix,
                self.source_bucket.as_deref(),
            )
        })
    }
}

/// The data file `key` names, below `dir` or one of its parents: the longest suffix of the
/// key that exists wins.
fn locate(dir: &Path, key: &str) -> Option<PathBuf> {
    let segs: Vec<&str> = key
        .split('/')
        .filter(|s| !s.is_empty() && *s != "..")
        .collect();
    for start in 0..segs.len() {
        let rel: PathBuf = segs[start..].iter().collect();
        for base in dir.ancestors() {
            let p = base.join(&rel);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// The rows of one data file.
struct FileRows<'a> {
    file: &'a DataFile,
    reader: Option<csv::Reader<Box<dyn Read + 'a>>>,
    schema: Option<Vec<Column>>,
    bucket: &'a str,
    prefix: &'a str,
    source_bucket: Option<&'a str>,
    line: u64,
    failed: bool,
}

impl<'a> FileRows<'a> {
    fn new(
        file: &'a DataFile,
        schema: Option<Vec<Column>>,
        bucket: &'a str,
        prefix: &'a str,
        source_bucket: Option<&'a str>,
    ) -> Self {
        FileRows {
            file,
            reader: None,
            schema,
            bucket,
            prefix,
            source_bucket,
            line: 0,
            failed: false,
        }
    }

    fn open(&mut self) -> Result<()> {
        let f = std::fs::File::open(&self.file.path)
            .map_err(|e| refuse(&self.file.path, format!("cannot read it: {e}")))?;
        let inner: Box<dyn Read + 'a> = if self.file.gzip {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(f)))
        } else {
            Box::new(BufReader::new(f))
        };
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(inner);
        if self.file.header {
            let mut head = csv::StringRecord::new();
            let got = r
                .read_record(&mut head)
                .map_err(|e| self.bad(e.to_string()))?;
            if !got {
                return Err(self.bad("empty: not even a header row".into()));
            }
            self.line += 1;
            let cols: Vec<Column> = head.iter().map(column).collect();
            if !cols.contains(&Column::Key) {
                return Err(self.bad(format!(
                    "the first row `{}` is not a header with a Key column (give --schema for a CSV without one)",
                    head.iter().collect::<Vec<_>>().join(",")
                )));
            }
            self.schema = Some(cols);
        }
        match &self.schema {
            Some(s) if s.contains(&Column::Key) && s.contains(&Column::Size) => {}
            _ => return Err(self.bad("the schema needs at least Key and Size columns".into())),
        }
        self.reader = Some(r);
        Ok(())
    }

    fn bad(&self, why: String) -> Error {
        let at = if self.line > 0 {
            format!("row {}: {why}", self.line)
        } else {
            why
        };
        refuse(&self.file.path, at)
    }

    fn row(&mut self, rec: &csv::StringRecord) -> Result<Option<ObjectRow>> {
        let schema = self.schema.as_ref().expect("opened");
        if rec.len() != schema.len() {
            return Err(self.bad(format!(
                "{} fields where the schema has {}",
                rec.len(),
                schema.len()
            )));
        }
        let get = |c: Column| schema.iter().position(|s| *s == c).map(|i| &rec[i]);
        let bucket = get(Column::Bucket).or(self.source_bucket);
        if bucket.is_some_and(|b| b != self.bucket) {
            return Ok(None);
        }
        if get(Column::IsLatest).is_some_and(|v| v.eq_ignore_ascii_case("false"))
            || get(Column::IsDeleteMarker).is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Ok(None);
        }
        let raw = get(Column::Key).expect("schema has Key");
        let key = decode_key(raw)
            .ok_or_else(|| self.bad(format!("key `{raw}` is not URL-encoded UTF-8")))?;
        let Some(rel) = key.strip_prefix(self.prefix) else {
            return Ok(None);
        };
        if rel.is_empty() {
            return Ok(None);
        }
        let size_text = get(Column::Size).expect("schema has Size");
        let size: u64 = size_text
            .trim()
            .parse()
            .map_err(|_| self.bad(format!("size `{size_text}` of `{key}` is not a number")))?;
        let last_modified = match get(Column::LastModified).map(str::trim) {
            None | Some("") => None,
            Some(t) => Some(
                humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
                    .map_err(|e| self.bad(format!("date `{t}` of `{key}`: {e}")))?,
            ),
        };
        let etag = get(Column::Etag)
            .map(|e| e.trim().trim_matches('"').to_ascii_lowercase())
            .filter(|e| !e.is_empty());
        let mut storage_class = get(Column::StorageClass)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        // Intelligent-Tiering's archive tiers need a restore, as Glacier does.
        if let Some(tier) = get(Column::IntelligentTieringAccessTier) {
            if matches!(tier.trim(), "ARCHIVE_ACCESS" | "DEEP_ARCHIVE_ACCESS") {
                storage_class = Some(match tier.trim() {
                    "ARCHIVE_ACCESS" => "GLACIER".to_owned(),
                    _ => "DEEP_ARCHIVE".to_owned(),
                });
            }
        }
        Ok(Some(ObjectRow {
            key: rel.to_owned(),
            size,
            etag,
            storage_class,
            last_modified,
        }))
    }
}

impl Iterator for FileRows<'_> {
    type Item = Result<ObjectRow>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.reader.is_none() {
            if let Err(e) = self.open() {
                self.failed = true;
                return Some(Err(e));
            }
        }
        let mut rec = csv::StringRecord::new();
        loop {
            let got = self.reader.as_mut().expect("opened").read_record(&mut rec);
            self.line += 1;
            match got {
                Ok(false) => return None,
                Ok(true) => match self.row(&rec) {
                    Ok(Some(r)) => return Some(Ok(r)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                },
                Err(e) => {
                    self.failed = true;
                    return Some(Err(self.bad(format!("cannot be read: {e}"))));
                }
            }
        }
    }
}

pub use larder_store::key::decode_url_key as decode_key;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_by_either_name() {
        assert_eq!(column("LastModifiedDate"), Column::LastModified);
        assert_eq!(column("last_modified_date"), Column::LastModified);
        assert_eq!(column(" ETag"), Column::Etag);
        assert_eq!(column("e_tag"), Column::Etag);
        assert_eq!(column("StorageClass"), Column::StorageClass);
        assert_eq!(column("ChecksumAlgorithm"), Column::Other);
    }

    #[test]
    fn keys_are_decoded_exactly_once() {
        assert_eq!(decode_key("a+b").as_deref(), Some("a b"));
        assert_eq!(decode_key("a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(decode_key("100%25").as_deref(), Some("100%"));
        assert_eq!(decode_key("%2525").as_deref(), Some("%25"));
        assert_eq!(decode_key("caf%C3%A9").as_deref(), Some("café"));
        assert_eq!(decode_key("bad%FF"), None);
    }
}
