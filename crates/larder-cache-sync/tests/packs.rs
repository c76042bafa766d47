//! Reading packs: kache's, larder's, and hostile ones (fixtures from kache's documented
//! format, built by `larder_testutil::kache`, not by the code under test).

use larder_cache::Cache;
use larder_cache_sync::local::entry_cache_key;
use larder_cache_sync::meta::{CachedFile, EntryMeta, LarderEntry};
use larder_cache_sync::pack::{read_pack, Expect, Limits, PackError, PackWriter, Unpacked};
use larder_testutil::kache::{self, Member};

const RLIB: &[u8] = b"!<arch>\nnot really an rlib, but bytes all the same";
const RMETA: &[u8] = b"rust metadata";

fn files() -> Vec<(&'static str, &'static [u8])> {
    vec![("libserde-1.rlib", RLIB), ("libserde-1.rmeta", RMETA)]
}

/// Every file under the cache directory (content, index, temp files).
fn all_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn read(
    pack: &[u8],
    ns: &str,
    ck: &str,
    cache: &Cache,
    limits: Limits,
) -> Result<Unpacked, PackError> {
    read_pack(
        pack,
        Expect {
            namespace: ns,
            cache_key: ck,
        },
        cache,
        &limits,
    )
}

/// A refused pack: the error says `want`, and the cache holds nothing afterwards.
fn refused(pack: &[u8], ck: &str, want: &str) {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path().join("c"));
    let e = read(pack, "serde", ck, &cache, Limits::default()).expect_err("refused");
    assert!(e.to_string().contains(want), "`{e}` does not say `{want}`");
    assert_eq!(
        all_files(&d.path().join("c")),
        Vec::<std::path::PathBuf>::new(),
        "left behind"
    );
}

#[test]
fn a_kache_pack_is_read_and_staged_until_committed() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path());
    let ck = kache::cache_key("serde");
    let pack = kache::pack(&ck, "serde", &files());
    let u = read(&pack, "serde", &ck, &cache, Limits::default()).unwrap();
    assert_eq!(u.meta.cache_key, ck);
    assert_eq!(u.meta.larder, None);
    assert_eq!(u.files.len(), 2);
    assert_eq!(
        u.unpacked,
        (RLIB.len() + RMETA.len() + u.meta_json.len()) as u64
    );
    // Staged: the content is not in the cache yet.
    let (f, staged) = u.files.into_iter().next().unwrap();
    assert_eq!(f.name, "libserde-1.rlib");
    assert!(!cache.exists_hash(staged.integrity()));
    let sri = staged.commit(Some("k"), None).unwrap();
    assert_eq!(cache.get("k").unwrap(), RLIB);
    assert!(cache.exists_hash(&sri));
}

#[test]
fn dropped_staged_files_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path());
    let ck = kache::cache_key("serde");
    let u = read(
        &kache::pack(&ck, "serde", &files()),
        "serde",
        &ck,
        &cache,
        Limits::default(),
    )
    .unwrap();
    drop(u);
    assert_eq!(all_files(d.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_parent_dir_member_is_refused() {
    let ck = kache::cache_key("serde");
    let meta = kache::entry_meta(&ck, "serde", &files());
    let mut m = kache::pack_members(&meta, &files());
    m.push(Member::file("../../evil", b"x"));
    refused(&kache::tar_zst(&m), &ck, "unsafe name");
}

#[test]
fn an_absolute_member_is_refused() {
    let ck = kache::cache_key("serde");
    let meta = kache::entry_meta(&ck, "serde", &files());
    let mut m = kache::pack_members(&meta, &files());
    m.insert(1, Member::file("/etc/evil", b"x"));
    refused(&kache::tar_zst(&m), &ck, "unsafe name");
}

#[test]
fn a_link_member_is_refused() {
    let ck = kache::cache_key("serde");
    let meta = kache::entry_meta(&ck, "serde", &files());
    let mut m = kache::pack_members(&meta, &files());
    m.insert(1, Member::symlink("libserde-1.rlib", "/etc/passwd"));
    refused(&kache::tar_zst(&m), &ck, "not a regular file");
}

#[test]
fn a_meta_json_declaring_a_parent_dir_name_is_refused() {
    let ck = kache::cache_key("serde");
    let evil: Vec<(&str, &[u8])> = vec![("../evil", b"x")];
    refused(&kache::pack(&ck, "serde", &evil), &ck, "unsafe file name");
}

#[test]
fn a_bad_blake3_is_refused() {
    let ck = kache::cache_key("serde");
    let meta = kache::entry_meta(
        &ck,
        "serde",
        &[
            ("libserde-1.rlib", b"other bytes"),
            ("libserde-1.rmeta", RMETA),
        ],
    );
    // The sizes must agree for the hash to be the first thing that differs.
    let mut meta = meta;
    meta["files"][0]["size"] = RLIB.len().into();
    refused(
        &kache::tar_zst(&kache::pack_members(&meta, &files())),
        &ck,
        "BLAKE3",
    );
}

#[test]
fn a_truncated_frame_is_refused() {
    let ck = kache::cache_key("serde");
    let pack = kache::pack(&ck, "serde", &files());
    for cut in [pack.len() - 1, pack.len() / 2, 10] {
        refused(&pack[..cut], &ck, "cannot read the pack");
    }
}

#[test]
fn a_meta_json_naming_another_cache_key_is_refused() {
    let ck = kache::cache_key("serde");
    let other = kache::cache_key("tokio");
    refused(
        &kache::pack(&other, "serde", &files()),
        &ck,
        "names cache key",
    );
}

#[test]
fn a_meta_json_naming_another_namespace_is_refused() {
    let ck = kache::cache_key("serde");
    refused(&kache::pack(&ck, "tokio", &files()), &ck, "names namespace");
}

#[test]
fn a_missing_declared_file_is_refused() {
    let ck = kache::cache_key("serde");
    let meta = kache::entry_meta(&ck, "serde", &files());
    let m = kache::pack_members(&meta, &files()[..1]);
    refused(&kache::tar_zst(&m), &ck, "lacks `libserde-1.rmeta`");
}

#[test]
fn meta_json_must_come_first() {
    let ck = kache::cache_key("serde");
    let meta = kache::entry_meta(&ck, "serde", &files());
    let mut m = kache::pack_members(&meta, &files());
    m.rotate_left(1);
    refused(&kache::tar_zst(&m), &ck, "not meta.json");
}

#[test]
fn a_decompression_bomb_is_refused_before_it_is_written() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path());
    let ck = kache::cache_key("bomb");
    let zeros = vec![0u8; 8 << 20];
    let f: Vec<(&str, &[u8])> = vec![("zeros", &zeros)];
    let pack = kache::pack(&ck, "serde", &f);
    assert!(
        pack.len() < 4096,
        "8 MiB of zeros compress to {} bytes",
        pack.len()
    );
    let limits = Limits {
        max_unpacked: 1 << 20,
        ..Limits::default()
    };
    let e = read(&pack, "serde", &ck, &cache, limits).unwrap_err();
    assert!(e.to_string().contains("cap"), "{e}");
    assert_eq!(all_files(d.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_frame_with_a_window_over_the_cap_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path());
    let ck = kache::cache_key("window");
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let f: Vec<(&str, &[u8])> = vec![("data", &data)];
    let pack = kache::pack(&ck, "serde", &f);
    let limits = Limits {
        window_log_max: 10,
        ..Limits::default()
    };
    let e = read(&pack, "serde", &ck, &cache, limits).unwrap_err();
    assert!(matches!(e, PackError::Read(_)), "{e}");
    // Within the default cap the same pack reads.
    read(&pack, "serde", &ck, &cache, Limits::default()).unwrap();
}

fn larder_pack(key: &str, content: &[u8], integrity: &str, ns: &str) -> (Vec<u8>, String) {
    let ck = entry_cache_key(key, integrity);
    let file = CachedFile {
        name: "content".into(),
        size: content.len() as u64,
        hash: blake3::hash(content).to_hex().to_string(),
        executable: false,
    };
    let entry = LarderEntry {
        key: key.into(),
        integrity: integrity.into(),
        metadata: Some(serde_json::json!({"url": "x"})),
        time: 1_700_000_000_000,
    };
    let meta = serde_json::to_vec(&EntryMeta::for_entry(ns, &ck, file, entry)).unwrap();
    let mut w = PackWriter::new(&meta, 3).unwrap();
    w.add("content", content.len() as u64, false, &mut &content[..])
        .unwrap();
    (w.finish().unwrap(), ck)
}

#[test]
fn a_larder_pack_round_trips_with_its_integrity_checked() {
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path());
    let sri =
        larder_cache::Integrity::compute(larder_cache::Algorithm::Sha512, b"tarball").to_string();
    let key = "make-fetch-happen:request-cache:https://registry.npmjs.org/ms/-/ms-2.1.3.tgz";
    let (pack, ck) = larder_pack(key, b"tarball", &sri, "ms");
    let u = read(&pack, "ms", &ck, &cache, Limits::default()).unwrap();
    assert_eq!(u.meta.larder.as_ref().unwrap().key, key);
    assert_eq!(u.files[0].1.integrity().to_string(), sri);

    // Content that does not match the entry's integrity (BLAKE3 made to match) is refused.
    let (pack, ck) = larder_pack(key, b"tampered", &sri, "ms");
    let e = read(&pack, "ms", &ck, &cache, Limits::default()).unwrap_err();
    assert!(e.to_string().contains("its entry says"), "{e}");

    // An npm entry listed under another package's namespace is refused.
    let (pack, ck) = larder_pack(key, b"tarball", &sri, "react");
    let e = read(&pack, "react", &ck, &cache, Limits::default()).unwrap_err();
    assert!(e.to_string().contains("not of namespace"), "{e}");
}
