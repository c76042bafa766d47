//! S3 Inventory deliveries made as AWS documents them (manifest.json, manifest.checksum,
//! gzipped CSVs with every field quoted), imported into a vault's index; and each kind of
//! broken delivery refused with the index unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};

use larder_index::inventory::Delivery;
use larder_index::{Error, Index, IndexSource, ObjectRow, Policy, Strategy, Vault};
use md5::{Digest, Md5};

const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, IntelligentTieringAccessTier";

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// One row, every field quoted, as S3 Inventory writes CSV.
#[allow(clippy::too_many_arguments)]
fn line(
    bucket: &str,
    key: &str,
    latest: bool,
    marker: bool,
    size: &str,
    etag: &str,
    class: &str,
    tier: &str,
) -> String {
    format!(
        "\"{bucket}\",\"{key}\",\"v1\",\"{latest}\",\"{marker}\",\"{size}\",\"2024-03-01T12:00:00.000Z\",\"{etag}\",\"{class}\",\"false\",\"{tier}\"\n"
    )
}

/// The data files' contents: URL-encoded keys (`+` a space, `%2B`, `%25`, NFC and NFD),
/// multipart ETags, every storage class, another bucket, an old version, a delete marker,
/// and keys outside the vault's prefix.
fn data() -> (String, String) {
    let e = "0123456789abcdef0123456789abcdef";
    let mp = "fedcba9876543210fedcba9876543210-12";
    let mut a = String::new();
    a += &line(
        "src",
        "site/with+space.txt",
        true,
        false,
        "10",
        e,
        "STANDARD",
        "",
    );
    a += &line(
        "src",
        "site/plus%2Bsign.txt",
        true,
        false,
        "11",
        e,
        "STANDARD_IA",
        "",
    );
    a += &line(
        "src",
        "site/100%25.txt",
        true,
        false,
        "12",
        e,
        "ONEZONE_IA",
        "",
    );
    a += &line(
        "src",
        "site/caf%C3%A9",
        true,
        false,
        "13",
        e,
        "STANDARD",
        "",
    ); // NFC
    a += &line(
        "src",
        "site/cafe%CC%81",
        true,
        false,
        "14",
        e,
        "STANDARD",
        "",
    ); // NFD
    a += &line(
        "src",
        "site/big.bin",
        true,
        false,
        "100000000",
        mp,
        "STANDARD",
        "",
    );
    a += &line(
        "src",
        "site/old-version",
        false,
        false,
        "1",
        e,
        "STANDARD",
        "",
    );
    a += &line("src", "site/deleted", true, true, "", "", "", "");
    let mut b = String::new();
    b += &line(
        "src",
        "site/cold/glacier",
        true,
        false,
        "15",
        e,
        "GLACIER",
        "",
    );
    b += &line(
        "src",
        "site/cold/deep",
        true,
        false,
        "16",
        e,
        "DEEP_ARCHIVE",
        "",
    );
    b += &line(
        "src",
        "site/cold/gir",
        true,
        false,
        "17",
        e,
        "GLACIER_IR",
        "",
    );
    b += &line(
        "src",
        "site/cold/it",
        true,
        false,
        "18",
        e,
        "INTELLIGENT_TIERING",
        "ARCHIVE_ACCESS",
    );
    b += &line(
        "src",
        "site/cold/it-frequent",
        true,
        false,
        "19",
        e,
        "INTELLIGENT_TIERING",
        "FREQUENT",
    );
    b += &line(
        "src",
        "site/rr",
        true,
        false,
        "20",
        e,
        "REDUCED_REDUNDANCY",
        "",
    );
    b += &line("src", "other/outside", true, false, "21", e, "STANDARD", "");
    b += &line(
        "another",
        "site/elsewhere",
        true,
        false,
        "22",
        e,
        "STANDARD",
        "",
    );
    (a, b)
}

/// Writes a delivery as S3 does: `inv/src/cfg/data/*.csv.gz` and
/// `inv/src/cfg/2024-03-02T00-00Z/manifest.json` + `manifest.checksum`. Returns the
/// manifest's path.
fn deliver(root: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let mut entries = Vec::new();
    for (name, bytes) in files {
        let key = format!("inv/src/cfg/data/{name}");
        let p = root.join(&key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        entries.push(format!(
            "{{\"key\": \"{key}\", \"size\": {}, \"MD5checksum\": \"{}\"}}",
            bytes.len(),
            md5_hex(bytes)
        ));
    }
    let manifest = format!(
        "{{\n \"sourceBucket\": \"src\",\n \"destinationBucket\": \"arn:aws:s3:::inv-dest\",\n \"version\": \"2016-11-30\",\n \"creationTimestamp\": \"1709337600000\",\n \"fileFormat\": \"CSV\",\n \"fileSchema\": \"{SCHEMA}\",\n \"files\": [{}]\n}}\n",
        entries.join(", ")
    );
    let dir = root.join("inv/src/cfg/2024-03-02T00-00Z");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    std::fs::write(dir.join("manifest.checksum"), md5_hex(manifest.as_bytes())).unwrap();
    dir.join("manifest.json")
}

fn index() -> Index {
    let ix = Index::in_memory();
    ix.add_vault(&Vault {
        name: "v".into(),
        local_dir: "/tmp/v".into(),
        remote: "s3://src/site/".into(),
        strategy: Strategy::Mirror,
        policy: Policy::default(),
    })
    .unwrap();
    ix
}

fn import(ix: &mut Index, path: &Path, schema: Option<&str>) -> Result<u64, Error> {
    let d = Delivery::open(path, schema)?;
    d.verify()?;
    let manifest = d.manifest.clone();
    ix.replace_objects(
        "v",
        IndexSource::Inventory,
        d.rows("src", "site/"),
        manifest,
    )
}

fn rows(ix: &Index) -> Vec<ObjectRow> {
    ix.objects("v").map(|r| r.unwrap()).collect()
}

#[test]
fn a_real_delivery_imports_exactly() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = data();
    let m = deliver(d.path(), &[("a.csv.gz", gz(&a)), ("b.csv.gz", gz(&b))]);
    let mut ix = index();
    assert_eq!(import(&mut ix, &m, None).unwrap(), 12);
    let got = rows(&ix);
    let keys: Vec<&str> = got.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "100%.txt",
            "big.bin",
            "cafe\u{301}", // NFD: `e` (0x65) sorts before `é`'s first byte (0xC3)
            "caf\u{e9}",
            "cold/deep",
            "cold/gir",
            "cold/glacier",
            "cold/it",
            "cold/it-frequent",
            "plus+sign.txt",
            "rr",
            "with space.txt",
        ]
    );
    let big = got.iter().find(|r| r.key == "big.bin").unwrap();
    assert_eq!(big.size, 100_000_000);
    assert_eq!(
        big.etag.as_deref(),
        Some("fedcba9876543210fedcba9876543210-12")
    );
    let archived: Vec<&str> = got
        .iter()
        .filter(|r| r.is_archived())
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(
        archived,
        ["cold/deep", "cold/glacier", "cold/it"],
        "restore needed"
    );
    assert_eq!(
        got[0].last_modified,
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_709_294_400))
    );
    let st = ix.state("v").unwrap().unwrap();
    assert_eq!((st.source, st.objects), (IndexSource::Inventory, 12));
    assert!(st.manifest_etag.is_some());
    assert_eq!(
        st.manifest_generated_at,
        Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_709_337_600_000))
    );
}

#[test]
fn broken_deliveries_are_refused_whole_and_the_index_is_unchanged() {
    let (a, b) = data();
    let mut ix = index();
    let good = tempfile::tempdir().unwrap();
    let m = deliver(good.path(), &[("a.csv.gz", gz(&a))]);
    import(&mut ix, &m, None).unwrap();
    let before = rows(&ix);
    let state_before = ix.state("v").unwrap();

    type Break = fn(&Path, &Path);
    let cases: [(&str, Break, &str); 5] = [
        (
            "a data file with the same size and a wrong MD5",
            |_, data| {
                let mut bytes = std::fs::read(data).unwrap();
                let n = bytes.len();
                bytes[n / 2] ^= 0x20;
                std::fs::write(data, bytes).unwrap();
            },
            "MD5",
        ),
        (
            "a truncated gzip (manifest updated to match)",
            |m, data| {
                let bytes = std::fs::read(data).unwrap();
                let cut = &bytes[..bytes.len() - 12];
                std::fs::write(data, cut).unwrap();
                // Make size and MD5 agree, so only the gzip framing is wrong.
                let text = std::fs::read_to_string(m).unwrap();
                let start = text.find("\"size\": ").unwrap() + 8;
                let end = start + text[start..].find(',').unwrap();
                let mut text = format!("{}{}{}", &text[..start], cut.len(), &text[end..]);
                let md5_at = text.find("\"MD5checksum\": \"").unwrap() + 16;
                text.replace_range(md5_at..md5_at + 32, &md5_hex(cut));
                std::fs::write(m, &text).unwrap();
                std::fs::write(
                    m.with_file_name("manifest.checksum"),
                    md5_hex(text.as_bytes()),
                )
                .unwrap();
            },
            "cannot be read",
        ),
        (
            "a missing data file",
            |_, data| std::fs::remove_file(data).unwrap(),
            "missing",
        ),
        (
            "a wrong manifest.checksum",
            |m, _| {
                std::fs::write(
                    m.with_file_name("manifest.checksum"),
                    "00000000000000000000000000000000",
                )
                .unwrap();
            },
            "manifest.checksum",
        ),
        (
            "a row with the wrong number of fields",
            |m, data| {
                let bad = gz("\"src\",\"site/x\",\"1\"\n");
                std::fs::write(data, &bad).unwrap();
                let text = std::fs::read_to_string(m).unwrap();
                let start = text.find("\"size\": ").unwrap() + 8;
                let end = start + text[start..].find(',').unwrap();
                let mut text = format!("{}{}{}", &text[..start], bad.len(), &text[end..]);
                let md5_at = text.find("\"MD5checksum\": \"").unwrap() + 16;
                text.replace_range(md5_at..md5_at + 32, &md5_hex(&bad));
                std::fs::write(m, &text).unwrap();
                std::fs::write(
                    m.with_file_name("manifest.checksum"),
                    md5_hex(text.as_bytes()),
                )
                .unwrap();
            },
            "fields",
        ),
    ];
    for (name, break_it, says) in cases {
        let d = tempfile::tempdir().unwrap();
        let m = deliver(d.path(), &[("a.csv.gz", gz(&b)), ("b.csv.gz", gz(&a))]);
        let data = d.path().join("inv/src/cfg/data/a.csv.gz");
        break_it(&m, &data);
        let err = import(&mut ix, &m, None).expect_err(name);
        assert!(matches!(err, Error::Inventory { .. }), "{name}: {err}");
        assert!(err.to_string().contains(says), "{name}: {err}");
        assert_eq!(rows(&ix), before, "{name}: index unchanged");
        assert_eq!(
            ix.state("v").unwrap(),
            state_before,
            "{name}: state unchanged"
        );
    }
}

#[test]
fn plain_csvs_with_a_header_or_a_schema() {
    let d = tempfile::tempdir().unwrap();
    let mut ix = index();
    let with_header = d.path().join("inv.csv");
    std::fs::write(
        &with_header,
        "Bucket,Key,Size,LastModifiedDate,ETag,StorageClass\nsrc,site/a+b,3,2024-03-01T12:00:00Z,\"abc\",STANDARD\nsrc,site/c,4,,,\n",
    )
    .unwrap();
    assert_eq!(import(&mut ix, &with_header, None).unwrap(), 2);
    assert_eq!(rows(&ix)[0].key, "a b");
    let snake = d.path().join("inv2.csv.gz");
    std::fs::write(
        &snake,
        gz("src,site/x,5,2024-03-01T12:00:00.000Z,\"0123456789abcdef0123456789abcdef\",GLACIER\n"),
    )
    .unwrap();
    assert_eq!(
        import(
            &mut ix,
            &snake,
            Some("bucket,key,size,last_modified_date,etag,storage_class")
        )
        .unwrap(),
        1
    );
    assert!(rows(&ix)[0].is_archived());
    // Without a header and without --schema: refused, with a hint.
    let err = import(&mut ix, &snake, None).unwrap_err();
    assert!(err.to_string().contains("--schema"), "{err}");
    assert_eq!(rows(&ix).len(), 1);
}
